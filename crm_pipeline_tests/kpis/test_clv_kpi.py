"""clv (docs/kpi_catalog.md "Monetise: value and cost") on a hand-built order book of D, the customer status of D-30 (built by
the state's own function from the order book of D-30) and a refund ledger, numbers
worked out by hand in the comments, with the traps: refunds dated in the window of orders placed before it, a
fully refunded order (still an order placed), the window boundaries D-364 / D-365, the churn of a customer who
lapses, a merge that turns a churned customer into an active one, no customer at D-30 (null churn), orders
without cost of goods."""

import dataclasses
import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
from crm_pipeline.kpis.assets import ALL_KPIS, kpi_asset
from crm_pipeline.kpis.customers import order_book_input
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.lifetime import KPIS, clv, customer_churn, expected_lifetime
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.retention import CUSTOMER_STATUS_SCHEMA, customer_status
from crm_pipeline.kpis.states import ORDER_BOOK_SCHEMA, REFUND_LEDGER_SCHEMA
from crm_pipeline_tests.conftest import records, stored

D = dt.date(2026, 10, 31)
N = None
NO_CHANGES = PersonRemap.none()
KPI = {k.name: k for k in KPIS}["clv"]


def day(offset: int) -> dt.date:
    return D - dt.timedelta(days=offset)


def order(order_id: str, person: str, offset: int, net: float, cost: float | None = None,
          fully_refunded: bool = False) -> dict:
    """An order placed `offset` days before D (15:00 UTC), in the reporting currency."""
    return {"order_id": order_id, "person_id": person, "ordered_at": pd.Timestamp(f"{day(offset)}T15:00", tz="UTC"),
            "order_day": day(offset), "currency": "USD", "net_revenue": net, "net_revenue_original": net,
            "gross_revenue": net, "discount_amount": 0.0, "cost_of_goods": cost, "refunded_original": 0.0,
            "refunded": 0.0, "count_refunds": int(fully_refunded), "fully_refunded": fully_refunded,
            "categories": "shoes"}


def refund(refund_id: str, order_id: str, person: str, offset: int, order_offset: int, amount: float) -> dict:
    return {"refund_id": refund_id, "order_id": order_id, "person_id": person,
            "refunded_at": pd.Timestamp(f"{day(offset)}T12:00", tz="UTC"), "refund_day": day(offset),
            "order_day": day(order_offset), "amount": amount}


# the book of D: every order of the last 548 days, refund status as of D
BOOK = stored(ORDER_BOOK_SCHEMA, [
    order("o1", "P1", 0, 100.0, cost=40.0),
    order("o2", "P2", 10, 50.0, fully_refunded=True),  # fully refunded on D-5: still an order placed
    order("o3", "P3", 40, 200.0, cost=80.0),  # partially refunded on D-3: P3 stays active
    order("o4", "P4", 364, 30.0),  # D-364: in the window, makes P4 active at D
    order("o7", "P4", 365, 1000.0),  # D-365: just outside the window
    order("o5", "P5", 380, 60.0),  # P5: active at D-30 (D-394..D-30), not at D: churned
    order("o6", "P6", 200, 70.0, fully_refunded=True),  # refunded on D-150: P6 is active at neither day
])
# the book of D-30: the orders placed up to D-30, refund status as of D-30
BOOK_D30 = stored(ORDER_BOOK_SCHEMA, [
    order("o3", "P3", 40, 200.0, cost=80.0),
    order("o4", "P4", 364, 30.0),
    order("o7", "P4", 365, 1000.0),
    order("o5", "P5", 380, 60.0),
    order("o6", "P6", 200, 70.0, fully_refunded=True),
])
LEDGER = stored(REFUND_LEDGER_SCHEMA, [
    refund("r1", "o2", "P2", 5, 10, 50.0),
    refund("r2", "o3", "P3", 3, 40, 20.0),
    refund("r3", "o5", "P5", 100, 380, 10.0),  # dated in the window, of an order placed before it
    refund("r4", "o6", "P6", 150, 200, 70.0),
    refund("r5", "o7", "P4", 365, 365, 5.0),  # dated D-365: outside the window
])
# R = o1 100 + o2 50 + o3 200 + o4 30 + o6 70 = 450 - (r1 50 + r2 20 + r3 10 + r4 70 = 150) = 300; O = 5
# A = active at D: P1, P3, P4 = 3; active at D-30: P3, P4, P5 = 3, of whom P5 is not active at D: c = 1/3
C = 1.0 / 3.0
ANNUAL = 1.0 - (1.0 - C) ** (365.0 / 30.0)  # = 1 - (2/3)^12.1667 = 0.99280
L = 1.0 / ANNUAL  # = 1.00725


def status(book: pd.DataFrame, offset: int = 30) -> pd.DataFrame:
    """The customer status of D-`offset` from the order book of that day, as the KPI reads it (D-30: a window
    input, with its `date` column)."""
    return stored(CUSTOMER_STATUS_SCHEMA, customer_status(book, day(offset)).to_dict("records"), window=True)


STATUS_D30 = status(BOOK_D30)


def table(rows) -> pd.DataFrame:
    frame = finalise(KPI, rows)
    failed = [r.check_name for r in standard_checks(KPI, dg.AssetKey("clv"), frame) if not r.passed]
    assert failed == [], failed
    return frame


def merge(kept: str, other: str) -> PersonRemap:
    return PersonRemap(pd.DataFrame({"change_date": [D], "kind": ["merge"], "kept_person_id": [kept],
                                     "other_person_id": [other], "reason": ["test"]},
                                    columns=IDENTITY_MERGES_SCHEMA.names))


def test_customer_churn_counts_the_active_customers_of_d30_no_longer_active_at_d():
    assert customer_churn(STATUS_D30, BOOK, D, NO_CHANGES) == (1.0, 3.0)
    # P5 merged into P1 (active at D): nobody is lost
    assert customer_churn(STATUS_D30, BOOK, D, merge("P1", "P5")) == (0.0, 3.0)


def test_a_customer_who_lapses_and_returns_is_not_churned():
    # P7: an order on D-394 (active at D-30: D-394..D-30), none for a year, back on D-1: active at both days
    # P8: an order on D-395, just too old for D-30; back on D: new at D, not in the churn population
    then = stored(ORDER_BOOK_SCHEMA, [order("a1", "P7", 394, 10.0), order("b1", "P8", 395, 10.0)])
    now = stored(ORDER_BOOK_SCHEMA, [order("a1", "P7", 394, 10.0), order("a2", "P7", 1, 10.0),
                                     order("b1", "P8", 395, 10.0), order("b2", "P8", 0, 10.0)])
    assert customer_churn(status(then), now, D, NO_CHANGES) == (0.0, 1.0)
    # without the return, P7 is lost: c = 1
    assert customer_churn(status(then), now.loc[now["order_id"] != "a2"], D, NO_CHANGES) == (1.0, 1.0)


def test_expected_lifetime_is_capped_at_ten_years():
    assert expected_lifetime(0.0) == 10.0
    assert expected_lifetime(0.05) == 10.0  # 1 / 0.05 = 20 > 10
    assert expected_lifetime(0.25) == 4.0
    assert expected_lifetime(1.0) == 1.0


def test_clv_is_revenue_net_of_refunds_over_the_lifetime_per_active_customer():
    frame = table(clv(BOOK, STATUS_D30, LEDGER, NO_CHANGES, D))
    got = records(frame)
    expected = [
        # headline: clv = R x L / A = 300 L / 3 = 100.72
        (N, 300.0 * L, 3.0, 100.0 * L, "currency"),
        # annual churn = 1 - (1 - 1/3)^(365/30): count form
        ("annual_churn", ANNUAL, N, ANNUAL, "ratio"),
        # aov = 300 / 5 (o2 and o6 fully refunded: still orders placed)
        ("aov", 300.0, 5.0, 60.0, "currency"),
        ("clv", 300.0 * L, 3.0, 100.0 * L, "currency"),
        # margin: R - cost of o1 40 and o3 80 (the others have none: 0) = 180; x L / 3
        ("clv_margin", 180.0 * L, 3.0, 60.0 * L, "currency"),
        ("orders_per_customer", 5.0, 3.0, 5.0 / 3.0, "count"),
    ]
    assert [r[0] for r in got] == [r[0] for r in expected]
    for row, want in zip(got, expected, strict=True):
        assert row[0] == want[0] and row[4] == want[4] and (row[2] is None) == (want[2] is None), row
        assert [x for x in row[1:4] if x is not None] == pytest.approx([x for x in want[1:4] if x is not None],
                                                                        rel=1e-12), row
    assert abs(100.0 * L - 100.725) < 1e-3


def test_clv_with_no_churn_uses_the_ten_year_lifetime():
    # P5 merged into P1: active at D-30 P3, P4, P1 (o5); all active at D: c = 0, annual churn 0, L = 10
    # A stays 3 (P1, P3, P4); clv = 300 x 10 / 3 = 1000; margin 180 x 10 / 3 = 600
    frame = table(clv(BOOK, STATUS_D30, LEDGER, merge("P1", "P5"), D))
    assert records(frame) == [
        (N, 3000.0, 3.0, 1000.0, "currency"),
        ("annual_churn", 0.0, N, 0.0, "ratio"),
        ("aov", 300.0, 5.0, 60.0, "currency"),
        ("clv", 3000.0, 3.0, 1000.0, "currency"),
        ("clv_margin", 1800.0, 3.0, 600.0, "currency"),
        ("orders_per_customer", 5.0, 3.0, 5.0 / 3.0, "count"),
    ]


def test_clv_without_customers_at_d30_is_null_and_without_costs_has_no_margin():
    # the first 30 days: the book of D-30 does not exist yet (an empty frame): c is null, so are annual churn,
    # clv and clv_margin; aov and orders per customer are still computed. Only o4 (no cost of goods) and the
    # refund r5 (outside the window): R = 30, O = 1, A = 1 (P4)
    book = stored(ORDER_BOOK_SCHEMA, [order("o4", "P4", 364, 30.0), order("o7", "P4", 365, 1000.0)])
    ledger = stored(REFUND_LEDGER_SCHEMA, [refund("r5", "o7", "P4", 365, 365, 5.0)])
    # before any customer status exists the IO manager hands over a frame with only the `date` column
    frame = table(clv(book, pd.DataFrame({"date": pd.Series([], dtype="string")}), ledger, NO_CHANGES, D))
    assert records(frame) == [
        (N, N, N, N, "currency"),
        ("annual_churn", N, N, N, "ratio"),
        ("aov", 30.0, 1.0, 30.0, "currency"),
        ("clv", N, N, N, "currency"),
        ("clv_margin", N, N, N, "currency"),
        ("orders_per_customer", 1.0, 1.0, 1.0, "count"),
    ]
    # with customers at D-30 but no order of the window carrying a cost: the margin alone is null
    # (active at D-30: P4 (o4 on D-364, o7 on D-365); at D: P4: c = 0, L = 10; clv = 30 x 10 / 1)
    frame = table(clv(book, status(book), ledger, NO_CHANGES, D))
    assert records(frame.loc[frame["metric"].isin(["clv", "clv_margin"])]) == [
        ("clv", 300.0, 1.0, 300.0, "currency"), ("clv_margin", N, N, N, "currency")]


def test_clv_on_a_day_without_orders_in_the_window_but_with_a_refund():
    # every order is older than the window; a refund dated in it makes R negative: R = -10, O = 0, A = 0
    book = stored(ORDER_BOOK_SCHEMA, [order("o5", "P5", 380, 60.0)])
    ledger = stored(REFUND_LEDGER_SCHEMA, [refund("r3", "o5", "P5", 100, 380, 10.0)])
    # active at D-30: P5; at D: nobody: c = 1, annual churn 1, L = 1; clv = -10 x 1 / 0: null value
    frame = table(clv(book, status(book), ledger, NO_CHANGES, D))
    assert records(frame) == [
        (N, -10.0, 0.0, N, "currency"),
        ("annual_churn", 1.0, N, 1.0, "ratio"),
        ("aov", -10.0, 0.0, N, "currency"),
        ("clv", -10.0, 0.0, N, "currency"),
        ("clv_margin", N, N, N, "currency"),
        ("orders_per_customer", 0.0, 0.0, N, "count"),
    ]


def test_clv_declares_its_seed_window_and_reach_back():
    assert KPI.seed == "001" and KPI.headline == {"metric": "clv"}
    # churn reads the active customers at D-30: D-394..D-30
    assert KPI.window_days == 395 and KPI.remap_days == 31
    assert [(i.name, i.key, i.offset_days) for i in KPI.inputs] == [
        ("order_book", ("aggregates", "order_book"), 0), ("customer_status_30", ("aggregates", "customer_status"), 30),
        ("refund_ledger", ("aggregates", "refund_ledger"), 0)]


@pytest.mark.parametrize("kpi", ALL_KPIS, ids=lambda k: k.name)
def test_every_declared_input_reaches_the_asset(kpi):
    """Dagster keys an asset's inputs by upstream asset: two inputs of one asset (the order book at D and at
    D-30) would silently become one. Each declared input is an input of the built asset."""
    asset = kpi_asset(kpi, dg.DailyPartitionsDefinition(start_date="2026-10-01"))
    assert {i.name: dg.AssetKey(list(i.key)) for i in kpi.inputs}.items() <= asset.keys_by_input_name.items()


def test_a_kpi_reading_an_upstream_asset_twice_is_refused():
    twice = dataclasses.replace(KPI, inputs=(*KPI.inputs, order_book_input("order_book_30", offset_days=30)))
    with pytest.raises(ValueError, match="reads an upstream asset twice"):
        kpi_asset(twice, dg.DailyPartitionsDefinition(start_date="2026-10-01"))
