"""cohort_retention (docs/kpi_catalog.md "Retention and loyalty") on a small world of orders and refunds, run day by day the
way the asset runs (each partition reading its own previous one) and rebuilt from scratch, numbers worked out by
hand in the comments, with the traps: an order in the last hour of a month and one in the first hour of the
next, a refund dated in a later month than its order, an order fully refunded within its month, an empty
cohort (null headline), the first month, the last day of a month, channels."""

import datetime as dt
import functools

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA, IDENTITY_MERGES_SCHEMA, PERSON_LOOKUP_COLUMNS
from crm_pipeline.ingestion.crm import CRM_SCHEMAS
from crm_pipeline.kpis.aggregates import FIRST_ORDERS_SCHEMA
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.lifetime import KPIS, headline_cohort, month_label, month_number
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_SCHEMA, REFUND_LEDGER_SCHEMA
from crm_pipeline.metadata import arrow_table
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import records, stored

N = None
KPI = {k.name: k for k in KPIS}["cohort_retention"]
START = dt.date(2026, 8, 1)
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", start_date=START)
NO_CHANGES = PersonRemap.none()

# (order_id, person, ordered_at UTC, net revenue)
ORDERS = [
    ("o1", "P1", "2026-08-10T10:00", 100.0),  # P1: cohort 2026-08
    ("o2", "P2", "2026-08-31T23:00", 50.0),  # P2: cohort 2026-08, the last hour of August
    ("o3", "P1", "2026-09-01T00:30", 40.0),  # the first hour of September: P1's month 1
    ("o4", "P3", "2026-09-15T12:00", 80.0),  # P3: cohort 2026-09; fully refunded in October (r1)
    ("o5", "P2", "2026-09-20T12:00", 30.0),  # partially refunded in September (r2)
    ("o7", "P1", "2026-10-20T12:00", 25.0),  # fully refunded within October (r3)
    ("o8", "P2", "2026-10-31T20:00", 60.0),  # the last day of October
    ("o6", "P4", "2026-11-05T12:00", 70.0),  # P4: cohort 2026-11; nobody's first order is in October
]
# (refund_id, order_id, refunded_at UTC, amount)
REFUNDS = [
    ("r1", "o4", "2026-10-03T09:00", 80.0),
    ("r2", "o5", "2026-09-25T12:00", 10.0),
    ("r3", "o7", "2026-10-22T12:00", 25.0),
]
# acquisition channels: P1 email, P2 paid_search, P3 email, P4 no customer record: (none)
CUSTOMERS = stored(CRM_SCHEMAS["customers"], [
    {"customer_id": c, "created_at": pd.Timestamp("2026-01-01", tz="UTC"), "acquisition_channel": ch}
    for c, ch in (("C1", "email"), ("C2", "paid_search"), ("C3", "email"))])[
    ["customer_id", "created_at", "acquisition_channel"]]
IDENTITY = stored(IDENTITY_MAP_SCHEMA, [
    {"identifier_type": "customer_id", "identifier": c, "person_id": p, "is_refused": False}
    for c, p in (("C1", "P1"), ("C2", "P2"), ("C3", "P3"))])[list(PERSON_LOOKUP_COLUMNS)]


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def states_at(x: dt.date) -> dict[str, pd.DataFrame]:
    """The states of day x as the pipeline builds them, every column: the order book (refunds up to x), the
    refund ledger, the first orders."""
    orders = [o for o in ORDERS if _ts(o[2]).date() <= x]
    refunds = [r for r in REFUNDS if _ts(r[2]).date() <= x]
    person = {o[0]: o[1] for o in orders}
    net = {o[0]: o[3] for o in orders}
    refunded = {oid: sum(r[3] for r in refunds if r[1] == oid) for oid in net}
    count = {oid: sum(1 for r in refunds if r[1] == oid) for oid in net}
    book = stored(ORDER_BOOK_SCHEMA, [
        {"order_id": o, "person_id": p, "ordered_at": _ts(at), "order_day": _ts(at).date(), "currency": "USD",
         "net_revenue": v, "net_revenue_original": v, "gross_revenue": v, "discount_amount": 0.0,
         "refunded_original": refunded[o], "refunded": refunded[o], "count_refunds": count[o],
         "fully_refunded": count[o] > 0 and refunded[o] >= v - 0.005, "categories": None}
        for o, p, at, v in orders])
    ledger = stored(REFUND_LEDGER_SCHEMA, [
        {"refund_id": r, "order_id": o, "person_id": person[o], "refunded_at": _ts(at), "refund_day": _ts(at).date(),
         "order_day": _ts(next(x[2] for x in ORDERS if x[0] == o)).date(), "amount": a}
        for r, o, at, a in refunds])
    first: dict[str, tuple] = {}
    for o, p, at, _ in sorted(orders, key=lambda o: (o[2], o[0])):
        first.setdefault(p, (o, _ts(at)))
    firsts = stored(FIRST_ORDERS_SCHEMA, [{"person_id": p, "first_order_id": o, "first_ordered_at": at}
                                          for p, (o, at) in first.items()])
    return {"order_book": book, "refund_ledger": ledger, "first_orders": firsts, "crm_customers": CUSTOMERS,
            "identity_map": IDENTITY}


def inputs_at(x: dt.date) -> dict[str, pd.DataFrame]:
    """The KPI's inputs of day x: only the columns it declares, as the IO manager reads them."""
    columns = {i.name: i.columns for i in KPI.inputs}
    return {name: frame[list(columns[name])] for name, frame in states_at(x).items()}


def stored_partition(frame: pd.DataFrame | None, day: dt.date) -> pd.DataFrame:
    """A partition as the asset reads its previous day: written with the KPI's schema, a `date` column added
    (a window input); no partition: an empty frame."""
    if frame is None:
        return stored(KPI.schema, window=True)
    return arrow_table(frame, KPI.schema).to_pandas().assign(date=day.isoformat())


def run(day: dt.date, previous: pd.DataFrame | None) -> pd.DataFrame:
    result = KPI.compute(**inputs_at(day), previous=stored_partition(previous, day - dt.timedelta(days=1)),
                         remap=NO_CHANGES, day=day, settings=SETTINGS)
    frame = finalise(KPI, result)
    failed = [r.check_name for r in standard_checks(KPI, dg.AssetKey("cohort_retention"), frame) if not r.passed]
    assert failed == [], failed
    return frame


def run_daily(last: dt.date, first: dt.date = START) -> dict[dt.date, pd.DataFrame]:
    """Every partition from `first` to `last`, each reading the one before (the first: none)."""
    out, previous, day = {}, None, first
    while day <= last:
        previous = out[day] = run(day, previous)
        day += dt.timedelta(days=1)
    return out


@functools.cache
def daily() -> dict[dt.date, pd.DataFrame]:
    """The partitions 2026-08-01..2026-11-30 run day by day (once per test session)."""
    return run_daily(dt.date(2026, 11, 30))


def cells(frame: pd.DataFrame, channel: str | None = None) -> list[tuple]:
    """(cohort, months_since, metric, numerator, denominator, value) of one channel's rows (None: all)."""
    rows = frame.loc[frame["cohort"].notna() & (frame["acquisition_channel"].isna() if channel is None
                                                else frame["acquisition_channel"] == channel)]
    return [(c, m, k, n, d, v) for c, m, k, _, n, d, v, _ in records(rows)]


def total(frame: pd.DataFrame) -> tuple:
    return records(frame.loc[frame["cohort"].isna()])[0][4:]


def test_headline_cohort_is_two_months_back_except_on_the_last_day_of_a_month():
    assert month_label(headline_cohort(dt.date(2026, 10, 30))).item() == "2026-08"
    assert month_label(headline_cohort(dt.date(2026, 10, 31))).item() == "2026-09"
    assert month_label(headline_cohort(dt.date(2026, 11, 1))).item() == "2026-09"
    assert month_label(headline_cohort(dt.date(2026, 1, 31))).item() == "2025-12"
    assert month_number(pd.Series([dt.date(2026, 1, 1)]).to_numpy().astype("datetime64[D]"))[0] == 2026 * 12 - 1970 * 12


def test_before_the_first_order_there_is_no_cohort_and_the_headline_is_empty():
    # 2026-08-05: no order yet: only the total row, the headline cohort 2026-06 is empty: 0 / 0
    assert records(daily()[dt.date(2026, 8, 5)]) == [(N, N, N, N, 0.0, 0.0, N, "ratio")]
    # 2026-08-10: cohort 2026-08 = {P1}: month 0 retained 1 / 1, revenue 100; c* = 2026-06 precedes it: 0 / 0
    frame = daily()[dt.date(2026, 8, 10)]
    assert total(frame) == (0.0, 0.0, N, "ratio")
    assert cells(frame) == [("2026-08", "0", "cumulative_revenue_per_customer", 100.0, 1.0, 100.0),
                            ("2026-08", "0", "retention", 1.0, 1.0, 1.0),
                            ("2026-08", "0", "revenue", 100.0, N, 100.0)]


# the matrix at 2026-11-30 (all channels), worked out by hand:
# cohort 2026-08 = {P1, P2}, size 2
#   m0 Aug: P1 (o1), P2 (o2 at 23:00 on the 31st): 2/2; revenue 100 + 50 = 150; cumulative 150 / 2 = 75
#   m1 Sep: P1 (o3 at 00:30 on the 1st), P2 (o5, partially refunded): 2/2; 40 + 30 - r2 10 = 60; 210 / 2 = 105
#   m2 Oct: P1's o7 is fully refunded by the end of October: no; P2 (o8): 1/2; 25 + 60 - r3 25 = 60; 270 / 2
#   m3 Nov: no order: 0/2; 0; 270 / 2
# cohort 2026-09 = {P3}, size 1
#   m0 Sep: o4 is not refunded at the end of September: 1/1; 80; 80
#   m1 Oct: no order, r1 80 dated in October: 0/1; -80; 0
#   m2 Nov: 0/1; 0; 0
# cohort 2026-10: nobody's first order is in October: empty, every month 0 / 0
# cohort 2026-11 = {P4}: m0 1/1; 70; 70
MATRIX_NOV_30 = [
    ("2026-08", "0", "cumulative_revenue_per_customer", 150.0, 2.0, 75.0),
    ("2026-08", "0", "retention", 2.0, 2.0, 1.0),
    ("2026-08", "0", "revenue", 150.0, N, 150.0),
    ("2026-08", "1", "cumulative_revenue_per_customer", 210.0, 2.0, 105.0),
    ("2026-08", "1", "retention", 2.0, 2.0, 1.0),
    ("2026-08", "1", "revenue", 60.0, N, 60.0),
    ("2026-08", "2", "cumulative_revenue_per_customer", 270.0, 2.0, 135.0),
    ("2026-08", "2", "retention", 1.0, 2.0, 0.5),
    ("2026-08", "2", "revenue", 60.0, N, 60.0),
    ("2026-08", "3", "cumulative_revenue_per_customer", 270.0, 2.0, 135.0),
    ("2026-08", "3", "retention", 0.0, 2.0, 0.0),
    ("2026-08", "3", "revenue", 0.0, N, 0.0),
    ("2026-09", "0", "cumulative_revenue_per_customer", 80.0, 1.0, 80.0),
    ("2026-09", "0", "retention", 1.0, 1.0, 1.0),
    ("2026-09", "0", "revenue", 80.0, N, 80.0),
    ("2026-09", "1", "cumulative_revenue_per_customer", 0.0, 1.0, 0.0),
    ("2026-09", "1", "retention", 0.0, 1.0, 0.0),
    ("2026-09", "1", "revenue", -80.0, N, -80.0),
    ("2026-09", "2", "cumulative_revenue_per_customer", 0.0, 1.0, 0.0),
    ("2026-09", "2", "retention", 0.0, 1.0, 0.0),
    ("2026-09", "2", "revenue", 0.0, N, 0.0),
    ("2026-10", "0", "cumulative_revenue_per_customer", 0.0, 0.0, N),
    ("2026-10", "0", "retention", 0.0, 0.0, N),
    ("2026-10", "0", "revenue", 0.0, N, 0.0),
    ("2026-10", "1", "cumulative_revenue_per_customer", 0.0, 0.0, N),
    ("2026-10", "1", "retention", 0.0, 0.0, N),
    ("2026-10", "1", "revenue", 0.0, N, 0.0),
    ("2026-11", "0", "cumulative_revenue_per_customer", 70.0, 1.0, 70.0),
    ("2026-11", "0", "retention", 1.0, 1.0, 1.0),
    ("2026-11", "0", "revenue", 70.0, N, 70.0),
]


def test_the_matrix_run_day_by_day_matches_the_hand_computation():
    frame = daily()[dt.date(2026, 11, 30)]
    assert cells(frame) == MATRIX_NOV_30
    # the last day of November: c* = 2026-10, an empty cohort: the headline is 0 / 0, null
    assert total(frame) == (0.0, 0.0, N, "ratio")
    # per channel, the channels of each cohort's members: 2026-08 email = {P1}
    #   m0 1/1, 100, 100; m1 1/1, 40, 140; m2 o7 refunded: 0/1, 25 - 25 = 0, 140; m3 0/1, 0, 140
    assert [(c, m, k, n) for c, m, k, n, _, _ in cells(frame, "email") if c == "2026-08"] == [
        ("2026-08", "0", "cumulative_revenue_per_customer", 100.0), ("2026-08", "0", "retention", 1.0),
        ("2026-08", "0", "revenue", 100.0), ("2026-08", "1", "cumulative_revenue_per_customer", 140.0),
        ("2026-08", "1", "retention", 1.0), ("2026-08", "1", "revenue", 40.0),
        ("2026-08", "2", "cumulative_revenue_per_customer", 140.0), ("2026-08", "2", "retention", 0.0),
        ("2026-08", "2", "revenue", 0.0), ("2026-08", "3", "cumulative_revenue_per_customer", 140.0),
        ("2026-08", "3", "retention", 0.0), ("2026-08", "3", "revenue", 0.0)]
    # 2026-09 email = {P3}; P4 has no customer record: (none), cohort 2026-11 only; no channel row for 2026-10
    assert sorted({(c, ch) for c, _, _, ch in records(frame[["cohort", "months_since", "metric",
                                                             "acquisition_channel"]]) if c and ch}) == [
        ("2026-08", "email"), ("2026-08", "paid_search"), ("2026-09", "email"), ("2026-11", "(none)")]
    assert [(m, k, n, d) for c, m, k, n, d, _ in cells(frame, "paid_search") if k != "retention"] == [
        ("0", "cumulative_revenue_per_customer", 50.0, 1.0), ("0", "revenue", 50.0, N),
        ("1", "cumulative_revenue_per_customer", 70.0, 1.0), ("1", "revenue", 20.0, N),
        ("2", "cumulative_revenue_per_customer", 130.0, 1.0), ("2", "revenue", 60.0, N),
        ("3", "cumulative_revenue_per_customer", 130.0, 1.0), ("3", "revenue", 0.0, N)]


@pytest.mark.parametrize("day", [dt.date(2026, 8, 31), dt.date(2026, 9, 1), dt.date(2026, 9, 30),
                                 dt.date(2026, 10, 1), dt.date(2026, 10, 15), dt.date(2026, 10, 31),
                                 dt.date(2026, 11, 1), dt.date(2026, 11, 30)])
def test_a_matrix_rebuilt_from_scratch_equals_the_carried_one(day: dt.date):
    """Without partition D-1 the asset rebuilds every month from the book of D, each month's refund status
    taken back to its last day: the same rows as the day-by-day run (a refund dated after a month leaves it)."""
    rebuilt = run(day, None)
    pd.testing.assert_frame_equal(rebuilt, daily()[day])


def test_a_missing_previous_partition_without_columns_is_rebuilt_too():
    # an asset with no file at all is read as a frame with only the `date` column
    day = dt.date(2026, 10, 15)
    result = KPI.compute(**inputs_at(day), previous=pd.DataFrame({"date": pd.Series([], dtype="string")}),
                         remap=NO_CHANGES, day=day, settings=SETTINGS)
    assert result.metadata["rebuilt_from_order_book"] is True
    pd.testing.assert_frame_equal(finalise(KPI, result), daily()[day])
    # the first partition with an order, without a previous one: month 0 of cohort 2026-08 only
    result = KPI.compute(**inputs_at(dt.date(2026, 8, 10)), previous=pd.DataFrame({"date": []}),
                         remap=NO_CHANGES, day=dt.date(2026, 8, 10), settings=SETTINGS)
    pd.testing.assert_frame_equal(finalise(KPI, result), daily()[dt.date(2026, 8, 10)])


def test_persons_merged_later_are_one_member_of_the_earliest_cohort():
    # P3 merged into P1 after 2026-10-15, the day re-run from scratch: P3's orders are P1's, whose first order
    # (o1, August) puts them in cohort 2026-08 = {P1, P2}; cohort 2026-09 is now empty.
    # September: P1 (o3, o4), P2 (o5): 2/2; 40 + 80 + 30 - r2 10 = 140; cumulative (150 + 140) / 2 = 145
    # October to the 15th: no order (o7 is on the 20th), r1 80 of o4 dated October 3: 0/2; -80; 210 / 2 = 105
    merged = PersonRemap(stored(IDENTITY_MERGES_SCHEMA, [{"change_date": dt.date(2026, 10, 20), "kind": "merge",
                                                          "kept_person_id": "P1", "other_person_id": "P3",
                                                          "reason": "x"}]))
    day = dt.date(2026, 10, 15)
    frame = finalise(KPI, KPI.compute(**inputs_at(day), previous=stored_partition(None, day), remap=merged,
                                      day=day, settings=SETTINGS))
    assert cells(frame) == [
        ("2026-08", "0", "cumulative_revenue_per_customer", 150.0, 2.0, 75.0),
        ("2026-08", "0", "retention", 2.0, 2.0, 1.0), ("2026-08", "0", "revenue", 150.0, N, 150.0),
        ("2026-08", "1", "cumulative_revenue_per_customer", 290.0, 2.0, 145.0),
        ("2026-08", "1", "retention", 2.0, 2.0, 1.0), ("2026-08", "1", "revenue", 140.0, N, 140.0),
        ("2026-08", "2", "cumulative_revenue_per_customer", 210.0, 2.0, 105.0),
        ("2026-08", "2", "retention", 0.0, 2.0, 0.0), ("2026-08", "2", "revenue", -80.0, N, -80.0),
        ("2026-09", "0", "cumulative_revenue_per_customer", 0.0, 0.0, N),
        ("2026-09", "0", "retention", 0.0, 0.0, N), ("2026-09", "0", "revenue", 0.0, N, 0.0),
        ("2026-09", "1", "cumulative_revenue_per_customer", 0.0, 0.0, N),
        ("2026-09", "1", "retention", 0.0, 0.0, N), ("2026-09", "1", "revenue", 0.0, N, 0.0),
        ("2026-10", "0", "cumulative_revenue_per_customer", 0.0, 0.0, N),
        ("2026-10", "0", "retention", 0.0, 0.0, N), ("2026-10", "0", "revenue", 0.0, N, 0.0)]
    assert total(frame) == (2.0, 2.0, 1.0, "ratio")  # c* = 2026-08, month 1


def test_refund_in_a_later_month_does_not_restate_the_month_of_its_order():
    # 2026-10-15: r1 (80, October 3) fully refunds P3's September order o4. September stays as it closed:
    # P3 retained (1/1), revenue 80; October carries the refund: revenue -80, cumulative 0
    frame = daily()[dt.date(2026, 10, 15)]
    nine = [c for c in cells(frame) if c[0] == "2026-09"]
    assert nine == [("2026-09", "0", "cumulative_revenue_per_customer", 80.0, 1.0, 80.0),
                    ("2026-09", "0", "retention", 1.0, 1.0, 1.0), ("2026-09", "0", "revenue", 80.0, N, 80.0),
                    ("2026-09", "1", "cumulative_revenue_per_customer", 0.0, 1.0, 0.0),
                    ("2026-09", "1", "retention", 0.0, 1.0, 0.0), ("2026-09", "1", "revenue", -80.0, N, -80.0)]
    # headline mid-October: c* = 2026-08, month 1 (September): 2/2
    assert total(frame) == (2.0, 2.0, 1.0, "ratio")


def test_the_month_of_d_is_partial_and_the_last_day_of_a_month_closes_it():
    # 2026-10-30: in October so far P2 has no order (o8 is on the 31st) and P1's o7 is refunded: 0/2, 25 - 25 = 0
    oct30 = daily()[dt.date(2026, 10, 30)]
    assert [c for c in cells(oct30) if c[:2] == ("2026-08", "2")] == [
        ("2026-08", "2", "cumulative_revenue_per_customer", 210.0, 2.0, 105.0),
        ("2026-08", "2", "retention", 0.0, 2.0, 0.0), ("2026-08", "2", "revenue", 0.0, N, 0.0)]
    # 2026-10-31, the last day: o8 counts (1/2, 60); c* = 2026-09, month 1 = October: P3 no order: 0/1
    oct31 = daily()[dt.date(2026, 10, 31)]
    assert [c for c in cells(oct31) if c[:2] == ("2026-08", "2")] == MATRIX_NOV_30[6:9]
    assert total(oct31) == (0.0, 1.0, 0.0, "ratio")
    # 2026-11-01: October is closed: its cells are carried unchanged, a fresh November column starts
    nov1 = daily()[dt.date(2026, 11, 1)]
    oct_cells = [c for c in cells(oct31) if int(c[1]) + int(c[0][-2:]) == 10]
    assert [c for c in cells(nov1) if int(c[1]) + int(c[0][-2:]) == 10] == oct_cells
    assert [c for c in cells(nov1) if c[:2] == ("2026-08", "3")] == MATRIX_NOV_30[9:12]
    assert total(nov1) == (0.0, 1.0, 0.0, "ratio")  # still c* = 2026-09 (November minus 2)


def test_closed_months_are_read_from_the_previous_partition_not_recomputed():
    # a previous partition whose closed September revenue of cohort 2026-08 says 61 instead of 60: partition
    # 2026-10-15 carries it, and October's cumulative builds on the carried cumulative (211 + 0 = 211)
    previous = daily()[dt.date(2026, 10, 14)].copy()
    sep = (previous["cohort"] == "2026-08") & (previous["months_since"] == "1") & previous["acquisition_channel"].isna()
    previous.loc[sep & (previous["metric"] == "revenue"), ["numerator", "value"]] = 61.0
    previous.loc[sep & (previous["metric"] == "cumulative_revenue_per_customer"), ["numerator", "value"]] = [
        211.0, 105.5]
    frame = run(dt.date(2026, 10, 15), previous)
    got = {(c, m, k): (n, v) for c, m, k, n, _, v in cells(frame) if c == "2026-08"}
    assert got[("2026-08", "1", "revenue")] == (61.0, 61.0)
    # October so far: o7 25 - r3 25 = 0 (o8 comes on the 31st): cumulative 211 / 2
    assert got[("2026-08", "2", "cumulative_revenue_per_customer")] == (211.0, 105.5)


def test_cohort_retention_declares_its_self_dependency_and_headline():
    assert KPI.seed == "002" and KPI.headline == {"metric": "retention", "months_since": "1"}
    previous = next(i for i in KPI.inputs if i.name == "previous")
    assert previous.key == ("kpi", "cohort_retention") and previous.offset_days == 1
    assert previous.partition_mapping == dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


def test_two_partitions_materialise_and_the_second_reads_the_first(tmp_path):
    """A real Dagster run: stub upstream states (this file's world) through the Parquet IO manager; partition
    2026-09-30 (the first: no previous partition, rebuilt) then 2026-10-01, which carries September from it."""
    import pyarrow as pa

    from crm_pipeline.kpis.assets import kpi_asset
    from crm_pipeline.resources import PipelineSettingsResource
    from crm_pipeline.storage.io_manager import ParquetIOManager

    first = dt.date(2026, 9, 30)
    partitions = dg.DailyPartitionsDefinition(start_date=first.isoformat())
    settings = Settings(landing_root=str(tmp_path / "l"), warehouse_root=str(tmp_path / "w"),
                        database_url="sqlite://", start_date=first)

    def stub(name: str, key: tuple[str, ...]) -> dg.AssetsDefinition:
        @dg.asset(key=dg.AssetKey(list(key)), partitions_def=partitions, name=None)
        def state(context: dg.AssetExecutionContext):
            frame = states_at(dt.date.fromisoformat(context.partition_key))[name]
            return pa.Table.from_pandas(frame, preserve_index=False)
        return state

    stubs = [stub(i.name, i.key) for i in KPI.inputs if i.name != "previous"]
    resources = {"io_manager": ParquetIOManager(base_path=settings.warehouse_root, storage_options={}),
                 "settings": PipelineSettingsResource.from_settings(settings)}
    for day in (first, first + dt.timedelta(days=1)):
        result = dg.materialize([*stubs, kpi_asset(KPI, partitions)], partition_key=day.isoformat(),
                                resources=resources)
        assert result.success
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        assert failed == []
        metadata = result.asset_materializations_for_node("kpi__cohort_retention")[0].metadata
        assert metadata["rebuilt_from_order_book"].value is (day == first)
        written = pd.read_parquet(tmp_path / "w" / "kpi" / "cohort_retention" / f"date={day}" / "part.parquet")
        assert records(written) == records(daily()[day])
    # September's cells: cohort 2026-08 months 0-1 and 2026-09 month 0 in all (3 cells), per channel 2026-08
    # email and paid_search months 0-1 and 2026-09 email month 0 (5 cells): 8 cells x 3 metrics
    assert metadata["carried_rows"].value == 24


def test_cohorts_and_months_are_calendar_months_of_the_reporting_timezone():
    # New York: P1's first order at 2026-09-01T02:00Z is on August 31 local: cohort 2026-08, month 0; the
    # order book's days are already local. D = 2026-09-01 (New York): month 1 = September, o2 at 15:00Z counts
    new_york = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", start_date=START,
                        timezone="America/New_York")
    day = dt.date(2026, 9, 1)
    book = stored(ORDER_BOOK_SCHEMA, [
        {"order_id": o, "person_id": "P1", "ordered_at": _ts(at), "order_day": local, "currency": "USD",
         "net_revenue": 10.0, "net_revenue_original": 10.0, "refunded_original": 0.0, "refunded": 0.0,
         "count_refunds": 0, "fully_refunded": False}
        for o, at, local in (("o1", "2026-09-01T02:00", dt.date(2026, 8, 31)),
                             ("o2", "2026-09-01T15:00", dt.date(2026, 9, 1)))])
    firsts = stored(FIRST_ORDERS_SCHEMA, [{"person_id": "P1", "first_order_id": "o1",
                                           "first_ordered_at": _ts("2026-09-01T02:00")}])
    columns = {i.name: list(i.columns) for i in KPI.inputs if i.columns}
    frame = finalise(KPI, KPI.compute(
        order_book=book[columns["order_book"]], refund_ledger=stored(REFUND_LEDGER_SCHEMA)[columns["refund_ledger"]],
        first_orders=firsts[columns["first_orders"]], crm_customers=CUSTOMERS, identity_map=IDENTITY,
        previous=stored_partition(None, day), remap=NO_CHANGES, day=day, settings=new_york))
    assert [c for c in cells(frame) if c[2] == "retention"] == [("2026-08", "0", "retention", 1.0, 1.0, 1.0),
                                                               ("2026-08", "1", "retention", 1.0, 1.0, 1.0),
                                                               ("2026-09", "0", "retention", 0.0, 0.0, N)]
