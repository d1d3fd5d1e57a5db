"""Cost KPIs (cac, crc) on hand-built days, with the numerators, denominators and values worked out by hand."""

import datetime as dt

import pandas as pd

from crm_pipeline.attribution.credits import ORDER_ATTRIBUTION_SCHEMA
from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
from crm_pipeline.kpis import aggregates, states
from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.cost import KPIS
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import records, stored

BY_NAME = {k.name: k for k in KPIS}
D = dt.date(2026, 10, 31)  # window D-29..D = 2026-10-02..2026-10-31; D-30 = 2026-10-01
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="UTC",
                    start_date=dt.date(2025, 9, 1))
NO_CHANGES = PersonRemap.none()
N = None


def merges(*pairs: tuple[str, str]) -> PersonRemap:
    """Later identity merges: (surviving id, absorbed id)."""
    return PersonRemap(stored(IDENTITY_MERGES_SCHEMA, [
        {"change_date": D, "kind": "merge", "kept_person_id": kept, "other_person_id": other, "reason": "test"}
        for kept, other in pairs]))


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def table(name: str, **inputs) -> pd.DataFrame:
    kpi = BY_NAME[name]
    frame = finalise(kpi, kpi.compute(**inputs))
    failed = [c.check_name for c in standard_checks(kpi, kpi_key(kpi), frame) if not c.passed]
    assert failed == [], (name, failed)
    return frame


def cost(day: str, cost_type: str, objective: str, channel: str | None, amount: float) -> dict:
    return {"cost_date": dt.date.fromisoformat(day), "cost_type": cost_type, "objective": objective,
            "channel": channel, "amount": amount, "currency": "USD", "date": day}


COSTS = stored(CLEAN_SCHEMAS["costs"], [
    cost("2026-10-01", "media", "acquisition", "ppc", 1000.0),  # the day before the window: out
    cost("2026-10-02", "media", "acquisition", "ppc", 100.0),  # the window's first day: in
    cost("2026-10-15", "media", "acquisition", "display", 30.0),  # spend, but no new customer on display
    cost("2026-10-15", "media", "retention", "email", 70.0),  # retention: crc only
    cost("2026-10-20", "media", "acquisition", None, 20.0),  # media without a channel: (none)
    cost("2026-10-20", "agency", "brand", None, 500.0),  # brand: neither
    cost("2026-10-31", "salaries", "acquisition", None, 50.0),  # D itself, not media: total only
    cost("2026-10-02", "tools", "retention", None, 60.0),  # retention, first day of the window
    cost("2026-10-01", "tools", "retention", None, 1000.0),  # retention, the day before the window: out
], window=True)[["cost_date", "cost_type", "objective", "channel", "amount", "date"]]


# ---------------------------------------------------------------------------------------------------------------
# cac

FIRST_ORDERS = stored(aggregates.FIRST_ORDERS_SCHEMA, [
    {"person_id": "P1", "first_order_id": "o1", "first_ordered_at": ts("2026-10-02T00:00")},  # first instant: in
    {"person_id": "P2", "first_order_id": "o2", "first_ordered_at": ts("2026-10-01T23:59:59")},  # day before: out
    {"person_id": "P3", "first_order_id": "o3", "first_ordered_at": ts("2026-10-31T23:00")},  # no touch
    {"person_id": "P4", "first_order_id": "o4", "first_ordered_at": ts("2026-10-10T12:00")},  # email
    # P5's first order is in the window, but P5 is merged into P2 later: P2's first order (o2) is older
    {"person_id": "P5", "first_order_id": "o5", "first_ordered_at": ts("2026-10-12T12:00")},
])


def credit(order_id: str, model: str, channel: str, value: float = 1.0, day: str = "2026-10-10") -> dict:
    return {"order_id": order_id, "model": model, "channel": channel, "campaign_id": None, "credit": value,
            "attributed_revenue": 10.0 * value, "date": day}


ATTRIBUTION = stored(ORDER_ATTRIBUTION_SCHEMA, [
    credit("o1", "first_touch", "ppc"), credit("o1", "linear", "ppc", 0.5), credit("o1", "linear", "display", 0.5),
    credit("o1", "last_touch", "display"),  # only first_touch counts
    credit("o3", "first_touch", "(unattributed)"),
    credit("o4", "first_touch", "email"),
    credit("o5", "first_touch", "ppc"),
], window=True)[["order_id", "model", "channel", "credit", "date"]]


def test_cac_by_hand():
    frame = table("cac", costs=COSTS, first_orders=FIRST_ORDERS, order_attribution=ATTRIBUTION,
                  remap=merges(("P2", "P5")), day=D, settings=SETTINGS)
    # acquisition costs dated 10-02..10-31: 100 (ppc) + 30 (display) + 20 (no channel) + 50 (salaries) = 200;
    # new customers: P1 (first instant of the window), P3, P4 = 3 (P2 before the window, P5 merged into P2)
    # channels: (none) 20 / 0; (unattributed) 0 / 1 (P3); display 30 / 0; email 0 / 1 (P4; its 70 is retention);
    # ppc 100 / 1 (P1; the 1000 of 10-01 is out)
    assert records(frame) == [
        (N, 200.0, 3.0, 200.0 / 3, "currency"),
        ("(none)", 20.0, 0.0, N, "currency"),
        ("(unattributed)", 0.0, 1.0, 0.0, "currency"),
        ("display", 30.0, 0.0, N, "currency"),
        ("email", 0.0, 1.0, 0.0, "currency"),
        ("ppc", 100.0, 1.0, 100.0, "currency"),
    ]


def test_cac_without_the_later_merge_counts_p5_as_new():
    frame = table("cac", costs=COSTS, first_orders=FIRST_ORDERS, order_attribution=ATTRIBUTION,
                  remap=NO_CHANGES, day=D, settings=SETTINGS)
    # P5 is its own person: 4 new customers, two of them on ppc: 100 / 2
    assert records(frame.loc[frame["channel"].isna() | (frame["channel"] == "ppc")]) == [
        (N, 200.0, 4.0, 50.0, "currency"), ("ppc", 100.0, 2.0, 50.0, "currency")]


def test_cac_first_order_without_attribution_rows_is_unattributed_and_days_follow_the_timezone():
    # in New York, 2026-10-02T03:00Z is still 10-01 (out) and 2026-11-01T02:00Z is still 10-31 (in)
    first_orders = stored(aggregates.FIRST_ORDERS_SCHEMA, [
        {"person_id": "P1", "first_order_id": "o1", "first_ordered_at": ts("2026-10-02T03:00")},
        {"person_id": "P9", "first_order_id": "o9", "first_ordered_at": ts("2026-11-01T02:00")},
    ])
    frame = table("cac", costs=COSTS.iloc[0:0], first_orders=first_orders, order_attribution=ATTRIBUTION,
                  remap=NO_CHANGES, day=D,
                  settings=Settings(landing_root="l", warehouse_root="w", database_url="sqlite://",
                                    timezone="America/New_York", start_date=dt.date(2025, 9, 1)))
    # no costs: 0 / 1 (P9, whose order has no attribution rows: (unattributed))
    assert records(frame) == [(N, 0.0, 1.0, 0.0, "currency"), ("(unattributed)", 0.0, 1.0, 0.0, "currency")]


# ---------------------------------------------------------------------------------------------------------------
# crc

BOOK_COLUMNS = ["person_id", "order_day", "fully_refunded"]


def book(rows: list[tuple[str, str, bool]], window: bool) -> pd.DataFrame:
    frame = stored(states.ORDER_BOOK_SCHEMA, [
        {"order_id": f"o{i}", "person_id": p, "ordered_at": ts(f"{d}T12:00"), "order_day": dt.date.fromisoformat(d),
         "fully_refunded": refunded, "refunded_original": 0.0, "refunded": 0.0, "count_refunds": 0,
         "date": "2026-10-01"} for i, (p, d, refunded) in enumerate(rows)], window=window)
    return frame[[*BOOK_COLUMNS, *(["date"] if window else [])]]


BOOK_D30 = book([  # as of 2026-10-01: active = an order non-refunded at 10-01 placed in 2025-10-02..2026-10-01
    ("P1", "2026-09-01", False),
    ("P2", "2025-10-02", False),  # first day of the 365-day activity window: active at D-30
    ("P3", "2026-09-15", False),  # refunded in full later (book of D): not active at D
    ("P4", "2025-10-01", False),  # a day too old: not active at D-30 (churned, then returns)
    ("P6", "2026-09-20", False),  # merged into P7 later
], window=True)
BOOK_D = book([  # as of 2026-10-31: active = placed in 2025-11-01..2026-10-31
    ("P1", "2026-10-20", False),
    ("P2", "2026-10-05", False),
    ("P3", "2026-09-15", True),
    ("P4", "2026-10-25", False),
    ("P7", "2026-10-30", False),
    ("P8", "2026-10-30", False),  # new: not active at D-30
], window=False)


def test_crc_by_hand():
    frame = table("crc", costs=COSTS, order_book=BOOK_D, order_book_d30=BOOK_D30, remap=merges(("P7", "P6")), day=D)
    # retention costs dated 10-02..10-31: 70 (email media) + 60 (tools, first day) = 130; the 1000 of 10-01 is out
    # active at D-30: P1, P2, P3, P6 -> P7; at D: P1, P2, P4, P7, P8; both: P1, P2, P7 = 3; 130 / 3
    assert records(frame) == [(130.0, 3.0, 130.0 / 3, "currency")]


def test_crc_in_the_first_30_days_has_no_customer_at_d30():
    frame = table("crc", costs=COSTS, order_book=BOOK_D, order_book_d30=BOOK_D30.iloc[0:0], remap=NO_CHANGES, day=D)
    assert records(frame) == [(130.0, 0.0, N, "currency")]
