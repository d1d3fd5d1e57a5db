"""Retention KPIs on hand-built order books and subscription terms, every number worked out by hand.

D = 2026-11-30, X = D-30 = 2026-10-31 (UTC unless a test says otherwise). Active at X: an order non-refunded at X
in X-364..X = 2025-11-01..2026-10-31; active at D: in D-364..D = 2025-12-01..2026-11-30; new customers: first
order in D-29..D = 11-01..11-30; win-back candidates at X: latest order non-refunded at X in X-364..X-90 =
2025-11-01..2026-08-02; subscription terms counted: term_end in D-36..D-7 = 10-25..11-23.
"""

import dataclasses
import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from crm_pipeline.definitions import build_definitions
from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
from crm_pipeline.ingestion.crm import CRM_SCHEMAS
from crm_pipeline.kpis import states
from crm_pipeline.kpis.assets import build_kpi_assets, kpi_key
from crm_pipeline.kpis.customers import active_customers, winback_candidates
from crm_pipeline.kpis.framework import KpiDefinition, finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.retention import (
    CUSTOMER_STATUS_SCHEMA,
    ENGAGEMENT_RECENCY_SCHEMA,
    KPIS,
    active_at,
    customer_status,
    status_as_of_now,
    update_engagement_recency,
    winback_candidates_at,
)
from crm_pipeline.metadata import arrow_table
from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs as storage
from crm_pipeline_tests.conftest import records, stored, write_identity_changes
from crm_pipeline_tests.kpis.crm_helpers import D, row, settings, ts

BY_NAME = {k.name: k for k in KPIS}
X = D - dt.timedelta(days=30)
SETTINGS = settings()


def ago(base: dt.date, days: int) -> dt.date:
    return base - dt.timedelta(days=days)


def book(rows: list[tuple[str, str, dt.date, bool, float]]) -> pd.DataFrame:
    """An order book: (order_id, person_id, order_day, fully_refunded at the book's day, net_revenue)."""
    return pd.DataFrame(rows, columns=["order_id", "person_id", "order_day", "fully_refunded", "net_revenue"])


# the order book of X
BOOK_X = book([
    ("o1", "pa", ago(X, 10), False, 50.0),
    ("o2", "pb", ago(X, 364), False, 100.0),  # first day of X's year: active at X, out of D's year
    ("o3", "pc", ago(X, 360), False, 30.0),  # out of D's year: pc lapses, and returns with o8
    ("o4", "pd", ago(X, 400), False, 70.0),  # not active at X; returns with o9
    ("o5", "pe", ago(X, 5), False, 40.0),  # refunded in full after X (o5 in the book of D)
    ("o13", "pe", ago(X, 30), True, 10.0),  # already refunded at X: pe stays active through o5
    ("o6", "pf", ago(X, 20), True, 80.0),  # refunded at X: pf is not active at X
    ("o7", "pi_old", ago(X, 100), False, 60.0),  # pi_old is merged into pi after X
    ("o12", "pk", X, False, 5.0),  # on X itself
    ("o15", "pl", ago(X, 500), False, 9.0),  # long lapsed; returns with o16
    ("o17", "pm", ago(X, 90), False, 15.0),  # latest order exactly X-90: a win-back candidate
])
# the order book of D: the same orders with refunds as of D (persons as of D), and the orders since X
BOOK_D = book([
    ("o1", "pa", ago(X, 10), False, 50.0),
    ("o2", "pb", ago(X, 364), False, 100.0),
    ("o3", "pc", ago(X, 360), False, 30.0),
    ("o8", "pc", ago(D, 5), False, 20.0),
    ("o4", "pd", ago(X, 400), False, 70.0),
    ("o9", "pd", ago(D, 3), False, 10.0),
    ("o5", "pe", ago(X, 5), True, 40.0),
    ("o13", "pe", ago(X, 30), True, 10.0),
    ("o6", "pf", ago(X, 20), True, 80.0),
    ("o7", "pi", ago(X, 100), False, 60.0),
    ("o14", "pi", ago(D, 1), True, 12.0),  # refunded, still an order in D-29..D
    ("o10", "pg", ago(D, 10), False, 25.0),  # new customer
    ("o11", "ph", ago(D, 2), True, 15.0),  # new customer, first order refunded: new but not active
    ("o12", "pk", X, False, 5.0),
    ("o15", "pl", ago(X, 500), False, 9.0),
    ("o16", "pl", ago(D, 1), False, 8.0),
    ("o17", "pm", ago(X, 90), False, 15.0),
])
STATUS_X = customer_status(BOOK_X, X)
FIRST_ORDERS = pd.DataFrame({
    "person_id": ["pa", "pb", "pc", "pd", "pe", "pf", "pi", "pg", "ph", "pk", "pl", "pm"],
    "first_order_id": ["o1", "o2", "o3", "o4", "o13", "o6", "o7", "o10", "o11", "o12", "o15", "o17"],
    # pk's first order is late on D-30: just before the window of new customers
    "first_ordered_at": ts([f"{ago(X, 10)}T10:00", f"{ago(X, 364)}T10:00", f"{ago(X, 360)}T10:00",
                            f"{ago(X, 400)}T10:00", f"{ago(X, 30)}T10:00", f"{ago(X, 20)}T10:00",
                            f"{ago(X, 100)}T10:00", f"{ago(D, 10)}T10:00", f"{ago(D, 2)}T10:00", f"{X}T23:00",
                            f"{ago(X, 500)}T10:00", f"{ago(X, 90)}T10:00"]),
})


def remap(*merges: tuple[str, str]) -> PersonRemap:
    """Identity changes after X: (kept, absorbed) merges."""
    return PersonRemap(pd.DataFrame({
        "change_date": [D] * len(merges), "kind": ["merge"] * len(merges),
        "kept_person_id": [m[0] for m in merges], "other_person_id": [m[1] for m in merges],
        "reason": ["test"] * len(merges)}, columns=IDENTITY_MERGES_SCHEMA.names))


MERGED = remap(("pi", "pi_old"))


def table(name: str, day: dt.date = D, changes: PersonRemap = MERGED, config=SETTINGS, **inputs) -> pd.DataFrame:
    """The KPI's finished table; its standard checks pass, bar bound checks that only warn."""
    kpi: KpiDefinition = BY_NAME[name]
    extra = {**({"day": day} if kpi.needs_day else {}), **({"settings": config} if kpi.needs_settings else {}),
             **({"remap": changes} if kpi.needs_remap else {})}
    frame = finalise(kpi, kpi.compute(**inputs, **extra))
    failed = [c for c in standard_checks(kpi, kpi_key(kpi), frame) if not c.passed]
    assert [c.check_name for c in failed if c.severity != dg.AssetCheckSeverity.WARN] == [], name
    return frame


def test_customer_retention_rate_by_hand():
    t = table("customer_retention_rate", customer_status_30=STATUS_X, order_book=BOOK_D, first_orders=FIRST_ORDERS)
    # S (active at X, pi_old = pi): pa, pb, pc, pe, pi, pk, pm = 7 (pd: X-400 is out of X's year; pf refunded)
    # E (active at D): pa, pc (returned), pd (lapsed, returned), pi, pg, pk, pl (lapsed, returned), pm = 8
    #   (pb: out of D's year; pe: refunded since X; ph: its only order refunded)
    # N (first order on 11-01..11-30): pg, ph = 2 (pk's first order is on X, 23:00)
    assert row(t, metric="standard") == (6.0, 7.0, round(6 / 7 * 100, 9), "percent")  # (8 - 2) / 7
    assert row(t, metric=None) == row(t, metric="standard")  # headline
    assert row(t, metric="end_over_start") == (8.0, 7.0, round(8 / 7 * 100, 9), "percent")  # above 100
    # active at X and at D: pa, pc, pi, pk, pm
    assert row(t, metric="cohort_retained") == (5.0, 7.0, round(5 / 7 * 100, 9), "percent")
    assert len(t) == 4


def test_new_customers_are_counted_on_their_local_day():
    # in Berlin pk's first order (10-31 23:00 UTC) is on 11-01 00:00: a new customer of D-29..D, N = 3
    t = table("customer_retention_rate", config=settings("Europe/Berlin"), customer_status_30=STATUS_X,
              order_book=BOOK_D, first_orders=FIRST_ORDERS)
    assert row(t, metric="standard") == (5.0, 7.0, round(5 / 7 * 100, 9), "percent")


def test_end_over_start_above_100_only_warns():
    kpi = BY_NAME["customer_retention_rate"]
    t = table("customer_retention_rate", customer_status_30=STATUS_X, order_book=BOOK_D, first_orders=FIRST_ORDERS)
    bounds = next(c for c in standard_checks(kpi, kpi_key(kpi), t) if c.check_name == "ratios_within_bounds")
    assert (bounds.passed, bounds.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_churn_rate_by_hand():
    t = table("churn_rate", customer_status_30=STATUS_X, order_book=BOOK_D, crm_subscription_terms=TERMS)
    # lost: active at X and not at D: pb (year ran out), pe (refunded since X) = 2 of 7
    assert row(t, metric="customer") == (2.0, 7.0, round(2 / 7 * 100, 9), "percent")
    assert row(t, metric=None) == row(t, metric="customer")
    # terms ending 10-25..11-23: t1 10 (renewed), t4 30, t6 50 (renewed only after D), t8 60 (renewed): 80 / 150
    assert row(t, metric="revenue") == (80.0, 150.0, round(80 / 150 * 100, 9), "percent")
    # orders placed in X-364..X of S: pa 50 + pb 100 + pc 30 + pe 40 + 10 (refunded, still counted) + pi 60 +
    # pk 5 + pm 15 = 310 (pd's o4 is older, pf is not active); of pb and pe: 150
    assert row(t, metric="revenue_lost") == (150.0, 310.0, round(150 / 310 * 100, 9), "percent")


def test_without_the_merge_the_absorbed_part_looks_churned():
    # pi_old is no person at D: it would count as lost (3 of 7), and a win-back candidate who did not return
    t = table("churn_rate", changes=PersonRemap.none(), customer_status_30=STATUS_X, order_book=BOOK_D,
              crm_subscription_terms=TERMS)
    assert row(t, metric="customer") == (3.0, 7.0, round(3 / 7 * 100, 9), "percent")
    w = table("winback_conversion_rate", changes=PersonRemap.none(), customer_status_30=STATUS_X, order_book=BOOK_D)
    assert row(w) == (1.0, 4.0, 0.25, "ratio")


def test_winback_conversion_rate_by_hand():
    t = table("winback_conversion_rate", customer_status_30=STATUS_X, order_book=BOOK_D)
    # candidates at X: pb, pc, pi, pm (exactly X-90) = 4; pa, pe, pk bought later than
    # X-90, pd and pl are not active at X, pf's only order is refunded.
    # converted (an order in 11-01..11-30, refunded or not): pc (o8), pi (o14, refunded) = 2
    assert list(t.columns) == ["numerator", "denominator", "value", "unit"]
    assert row(t) == (2.0, 4.0, 0.5, "ratio")


TERMS = pd.DataFrame({
    "term_id": ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"],
    "subscription_id": ["s1", "s1", "s2", "s3", "s4", "s5", "s5", "s6", "s6"],
    "plan": pd.Series(["basic", "basic", "basic", "pro", "pro", "pro", "pro", None, None], dtype="string"),
    "amount": [10.0, 10.0, 20.0, 30.0, 40.0, 50.0, 50.0, 60.0, 60.0],
    "term_start": ts(["2025-10-25T00:00", "2026-10-25T00:00", "2025-10-24T00:00", "2025-11-23T00:00",
                      "2025-11-24T00:00", "2025-11-10T00:00", "2026-12-01T00:00", "2025-11-01T00:00",
                      "2026-11-15T00:00"]),
    # t1 ends on the first instant of D-36, t3 on the last of D-37, t4 on the last of D-7, t5 on the first of D-6
    "term_end": ts(["2026-10-25T00:00:00", "2027-10-25T00:00:00", "2026-10-24T23:59:59", "2026-11-23T23:59:59",
                    "2026-11-24T00:00:00", "2026-11-10T00:00:00", "2027-12-01T00:00:00", "2026-11-01T00:00:00",
                    "2027-11-15T00:00:00"]),
})


def test_renewal_rate_by_hand():
    t = table("renewal_rate", crm_subscription_terms=TERMS)
    # terms ending 10-25..11-23: t1 (basic, renewed by t2 on 10-25), t4 (pro), t6 (pro: t7 starts only on 12-01,
    # after D), t8 (no plan, renewed by t9) -> 2 of 4; t3 (D-37) and t5 (D-6) are outside the window
    assert row(t, plan=None) == (2.0, 4.0, 0.5, "ratio")
    assert row(t, plan="basic") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, plan="pro") == (0.0, 2.0, 0.0, "ratio")
    assert row(t, plan="(none)") == (1.0, 1.0, 1.0, "ratio")
    assert t["plan"].tolist()[1:] == ["(none)", "basic", "pro"] and len(t) == 4


def test_a_renewal_after_d_counts_once_it_has_started():
    # on 12-01 t7 has started: t6 is renewed (window 10-26..11-24 now also takes t5 and drops t1)
    t = table("renewal_rate", day=D + dt.timedelta(days=1), crm_subscription_terms=TERMS)
    # t4, t5, t6 (renewed), t8 (renewed): 2 of 4; pro: t6 of t4, t5, t6
    assert row(t, plan=None) == (2.0, 4.0, 0.5, "ratio")
    assert row(t, plan="pro") == (1.0, 3.0, round(1 / 3, 9), "ratio")
    assert "basic" not in t["plan"].dropna().tolist()


def test_the_grace_period_is_a_setting():
    # no grace: terms ending 11-01..11-30: t4 30, t5 40, t6 50, t8 60 (renewed) -> 1 of 4; 120 of 180 lost
    config = dataclasses.replace(SETTINGS, renewal_grace_days=0)
    t = table("renewal_rate", config=config, crm_subscription_terms=TERMS)
    assert row(t, plan=None) == (1.0, 4.0, 0.25, "ratio")
    c = table("churn_rate", config=config, customer_status_30=STATUS_X, order_book=BOOK_D, crm_subscription_terms=TERMS)
    assert row(c, metric="revenue") == (120.0, 180.0, round(120 / 180 * 100, 9), "percent")


def test_the_grace_period_comes_from_the_environment():
    assert Settings.from_env({}).renewal_grace_days == 7
    assert Settings.from_env({"CRM_RENEWAL_GRACE_DAYS": "14"}).renewal_grace_days == 14
    with pytest.raises(ValueError, match="CRM_RENEWAL_GRACE_DAYS"):
        Settings.from_env({"CRM_RENEWAL_GRACE_DAYS": "-1"})


def test_term_window_follows_the_reporting_timezone():
    # in New York t1 ends on 10-24 20:00 (before D-36) and t3 on 10-24 19:59: both out; t5 ends on 11-23 19:00
    # (D-7): in; t4 ends on 11-23 18:59: in; t6, t8 in. t7 starts on 11-30 19:00 local, by the end of D: t6 is
    # renewed -> t4, t5, t6 (renewed), t8 (renewed) = 2 of 4; pro: 1 of 3
    t = table("renewal_rate", config=settings("America/New_York"), crm_subscription_terms=TERMS)
    assert row(t, plan=None) == (2.0, 4.0, 0.5, "ratio")
    assert row(t, plan="pro") == (1.0, 3.0, round(1 / 3, 9), "ratio")
    assert "basic" not in t["plan"].dropna().tolist()


def test_a_term_started_after_d_does_not_exist_yet():
    late = TERMS.assign(term_start=TERMS["term_start"].where(TERMS["term_id"] != "t8",
                                                             pd.Timestamp("2026-12-02", tz="UTC")))
    # t8 has not started on D: t1 (renewed), t4, t6 -> 1 of 3; and t9 still renews nothing (s6 has no counted term)
    t = table("renewal_rate", crm_subscription_terms=late)
    assert row(t, plan=None) == (1.0, 3.0, round(1 / 3, 9), "ratio")
    assert "(none)" not in t["plan"].dropna().tolist()


EMPTY_STATUS = stored(CUSTOMER_STATUS_SCHEMA, window=True)  # the status of D-30 before that day exists


def test_the_first_30_days_have_no_start_population():
    # the book of D-30 does not exist yet (an empty frame): every share over S is 0 / 0, null; E - N is computed
    t = table("customer_retention_rate", customer_status_30=EMPTY_STATUS, order_book=BOOK_D, first_orders=FIRST_ORDERS)
    assert row(t, metric="standard") == (6.0, 0.0, None, "percent")
    assert row(t, metric="end_over_start") == (8.0, 0.0, None, "percent")
    assert row(t, metric="cohort_retained") == (0.0, 0.0, None, "percent")
    c = table("churn_rate", customer_status_30=EMPTY_STATUS, order_book=BOOK_D, crm_subscription_terms=TERMS.iloc[0:0])
    assert [row(c, metric=m) for m in ("customer", "revenue", "revenue_lost")] == [(0.0, 0.0, None, "percent")] * 3
    w = table("winback_conversion_rate", customer_status_30=EMPTY_STATUS, order_book=BOOK_D)
    assert row(w) == (0.0, 0.0, None, "ratio")


@pytest.mark.parametrize("name", ["customer_retention_rate", "churn_rate", "winback_conversion_rate"])
def test_customers_at_d_minus_30_read_back_to_d_minus_394_and_remap_from_d_minus_30(name: str):
    kpi = BY_NAME[name]
    assert (kpi.window_days, kpi.remap_days) == (395, 31)
    status_30 = next(i for i in kpi.inputs if i.name == "customer_status_30")
    assert status_30.key == ("aggregates", "customer_status") and status_30.io_metadata == {"window": True}
    assert status_30.partition_mapping == dg.TimeWindowPartitionMapping(start_offset=-30, end_offset=-30)


def test_customer_status_by_hand():
    # X's year is 2025-11-01..2026-10-31: pd and pl have no order in it
    assert records(STATUS_X) == [
        ("pa", ago(X, 10), 50.0), ("pb", ago(X, 364), 100.0), ("pc", ago(X, 360), 30.0),
        ("pe", ago(X, 5), 50.0),  # o5 40 + o13 10 (refunded: not its latest order, still revenue)
        ("pf", None, 80.0),  # every order refunded: not active, revenue kept
        ("pi_old", ago(X, 100), 60.0), ("pk", X, 5.0), ("pm", ago(X, 90), 15.0)]
    table = arrow_table(STATUS_X, CUSTOMER_STATUS_SCHEMA)
    assert table.schema == CUSTOMER_STATUS_SCHEMA
    empty = customer_status(stored(states.ORDER_BOOK_SCHEMA), X)
    assert arrow_table(empty, CUSTOMER_STATUS_SCHEMA).num_rows == 0


def test_the_definitions_read_the_order_book_at_d_and_the_status_at_d_minus_30():
    partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assets = {key: a for a in build_kpi_assets(partitions) for key in a.keys}
    churn = assets[dg.AssetKey(["kpi", "churn_rate"])]
    status_key = dg.AssetKey(["aggregates", "customer_status"])
    assert {states.ORDER_BOOK_KEY, status_key} <= set(churn.dependency_keys)
    assert churn.get_partition_mapping(status_key) == dg.TimeWindowPartitionMapping(start_offset=-30,
                                                                                     end_offset=-30)
    assert states.ORDER_BOOK_KEY in assets[status_key].dependency_keys
    reengagement = assets[dg.AssetKey(["kpi", "reengagement_rate"])]
    recency_key = dg.AssetKey(["aggregates", "engagement_recency"])
    assert reengagement.get_partition_mapping(recency_key) == dg.TimeWindowPartitionMapping(start_offset=-30,
                                                                                             end_offset=-30)
    assert assets[recency_key].get_partition_mapping(recency_key) == dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=-1)  # a state: yesterday's partition


# dormant at X = 10-31: a registrant at X whose latest engagement on or before X is on or before X-90 = 08-02
RECENCY_X = pd.DataFrame({
    "person_id": ["qa", "qb", "qc", "qd", "qf_old", "qg", "qh"],
    "last_engaged_date": [ago(X, 90), ago(X, 89), ago(X, 290), ago(X, 183), ago(X, 152), ago(X, 100),
                          ago(X, 120)],
})
CUSTOMERS = pd.DataFrame({
    "customer_id": ["C_a", "C_b", "C_c", "C_d", "C_e", "C_f", "C_g", "C_h"],
    # C_d registers on D-25, after X; C_h on X at 23:30 (a registrant at X in UTC)
    "created_at": ts(["2025-05-01T00:00", "2025-05-01T00:00", "2025-05-01T00:00", "2026-11-05T00:00",
                      "2025-05-01T00:00", "2025-05-01T00:00", "2025-05-01T00:00", "2026-10-31T23:30"]),
})
IDENTITY = pd.DataFrame({"identifier_type": ["customer_id"] * 8,
                         "identifier": ["C_a", "C_b", "C_c", "C_d", "C_e", "C_f", "C_g", "C_h"],
                         "person_id": ["qa", "qb", "qc", "qd", "qe", "qf", "qg", "qh"], "is_refused": [False] * 8})
# the person_engagement window D-29..D (persons as of each day); a row of X itself is outside it
ENGAGED = pd.DataFrame({"person_id": ["qa", "qb", "qd", "qf", "qg", "qe", "qa"],
                        "date": [f"{ago(D, 3)}", f"{ago(D, 20)}", f"{ago(D, 1)}", f"{ago(D, 29)}", f"{X}",
                                 f"{D}", f"{D}"]})
MERGED_Q = remap(("qf", "qf_old"))


def test_reengagement_rate_by_hand():
    t = table("reengagement_rate", changes=MERGED_Q, engagement_recency_30=RECENCY_X, person_engagement=ENGAGED,
              crm_customers=CUSTOMERS, identity_map=IDENTITY)
    # dormant at X: qa (last exactly X-90), qc, qf (= qf_old, merged since X), qg, qh (registered late on X) = 5;
    # not: qb, qd (registers after X), qe (never engaged)
    # engaged in D-29..D: qa, qf (on D-29) = 2; qg only on X (outside the window), qc and qh not at all
    assert list(t.columns) == ["numerator", "denominator", "value", "unit"]
    assert row(t) == (2.0, 5.0, 0.4, "ratio")


def test_reengagement_before_the_merge_counts_the_parts_apart():
    # without the merge qf_old has no customer record (not a registrant) and qf never engaged before X
    t = table("reengagement_rate", changes=PersonRemap.none(), engagement_recency_30=RECENCY_X,
              person_engagement=ENGAGED, crm_customers=CUSTOMERS, identity_map=IDENTITY)
    assert row(t) == (1.0, 4.0, 0.25, "ratio")


def test_reengagement_with_nobody_dormant_is_null():
    t = table("reengagement_rate", engagement_recency_30=stored(ENGAGEMENT_RECENCY_SCHEMA, window=True),
              person_engagement=ENGAGED, crm_customers=CUSTOMERS, identity_map=IDENTITY)
    assert row(t) == (0.0, 0.0, None, "ratio")


def test_engagement_recency_carries_yesterday_through_merges():
    day = dt.date(2026, 11, 2)
    previous = pd.DataFrame({"person_id": ["p1", "p2", "p3"],
                             "last_engaged_date": [dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 6, 1)]})
    merges = remap(("p2", "p3")).changes  # p3 merged into p2 on D: p2's latest of both stays 11-01
    today = pd.DataFrame({"person_id": ["p1", "p4", "p1"], "channel": ["email", "web", "sms"]})
    state = update_engagement_recency(previous, today, merges, day)
    assert records(state) == [("p1", day), ("p2", dt.date(2026, 11, 1)), ("p4", day)]
    assert arrow_table(state, ENGAGEMENT_RECENCY_SCHEMA).schema == ENGAGEMENT_RECENCY_SCHEMA
    first = update_engagement_recency(None, today.iloc[0:0], merges, day)
    assert arrow_table(first, ENGAGEMENT_RECENCY_SCHEMA).num_rows == 0


# ---------------------------------------------------------------------------------------------------------------
# through Dagster: the status written for X is read by the KPIs of D as their D-30 input

def _order_book_rows(frame: pd.DataFrame) -> list[dict]:
    return [{"order_id": r.order_id, "person_id": r.person_id,
             "ordered_at": dt.datetime.combine(r.order_day, dt.time(12), dt.UTC), "order_day": r.order_day,
             "currency": "USD", "net_revenue": r.net_revenue, "net_revenue_original": r.net_revenue,
             "gross_revenue": r.net_revenue, "discount_amount": 0.0, "cost_of_goods": None,
             "refunded_original": r.net_revenue if r.fully_refunded else 0.0,
             "refunded": r.net_revenue if r.fully_refunded else 0.0, "count_refunds": int(r.fully_refunded),
             "fully_refunded": bool(r.fully_refunded), "categories": None} for r in frame.itertuples()]


def _write(root: str, key: tuple[str, ...], day: dt.date, table: pa.Table) -> None:
    fs, path = storage.filesystem(storage.join(root, *key, f"date={day.isoformat()}", "part.parquet"))
    storage.write_table_atomic(fs, path, table)


def test_the_kpis_of_d_read_the_status_of_d_minus_30_through_dagster(tmp_path):
    config = dataclasses.replace(SETTINGS, landing_root=str(tmp_path / "landing"),
                                 warehouse_root=str(tmp_path / "warehouse"),
                                 database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}")
    root = config.warehouse_root
    for day, frame in ((X, BOOK_X), (D, BOOK_D)):
        _write(root, ("aggregates", "order_book"), day,
               pa.Table.from_pylist(_order_book_rows(frame), schema=states.ORDER_BOOK_SCHEMA))
    _write(root, ("aggregates", "first_orders"), D, pa.Table.from_pandas(FIRST_ORDERS, preserve_index=False))
    _write(root, ("ingest", "crm_subscription_terms"), D, pa.Table.from_pandas(
        TERMS.assign(customer_id="C1", status="active", updated_at=TERMS["term_start"]),
        schema=CRM_SCHEMAS["subscription_terms"], preserve_index=False))
    write_identity_changes(config, D, [("merge", "pi", "pi_old")])
    defs = build_definitions(config)
    assets = list(defs.assets)
    status_key = dg.AssetKey(["aggregates", "customer_status"])
    assert dg.materialize(assets, selection=[status_key], partition_key=X.isoformat(),
                          resources=defs.resources).success
    kpis = [dg.AssetKey(["kpi", name]) for name in ("customer_retention_rate", "churn_rate",
                                                   "winback_conversion_rate", "renewal_rate")]
    result = dg.materialize(assets, selection=kpis, partition_key=D.isoformat(), resources=defs.resources)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations()
               if e.check_name != "ratios_within_bounds")

    def read(name: str) -> pd.DataFrame:
        return pd.read_parquet(f"{root}/kpi/{name}/date={D.isoformat()}/part.parquet")

    # the same numbers as the pure functions above
    assert row(read("customer_retention_rate"), metric="standard") == (6.0, 7.0, round(6 / 7 * 100, 9), "percent")
    assert row(read("churn_rate"), metric="customer") == (2.0, 7.0, round(2 / 7 * 100, 9), "percent")
    assert row(read("churn_rate"), metric="revenue_lost") == (150.0, 310.0, round(150 / 310 * 100, 9), "percent")
    assert row(read("winback_conversion_rate")) == (2.0, 4.0, 0.5, "ratio")
    assert row(read("renewal_rate"), plan=None) == (2.0, 4.0, 0.5, "ratio")
    # D-30's status exists, but the year before it precedes CRM_START_DATE (2026-01-01): not a complete window
    meta = result.asset_materializations_for_node("kpi__churn_rate")[0].metadata
    assert meta["window_complete"].value is False


def test_in_the_first_30_days_the_status_of_d_minus_30_is_empty_through_dagster(tmp_path):
    start = dt.date(2026, 11, 20)  # D-30 (10-31) precedes CRM_START_DATE: no such partition
    config = dataclasses.replace(SETTINGS, landing_root=str(tmp_path / "landing"), start_date=start,
                                 warehouse_root=str(tmp_path / "warehouse"),
                                 database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}")
    root = config.warehouse_root
    _write(root, ("aggregates", "order_book"), D,
           pa.Table.from_pylist(_order_book_rows(BOOK_D), schema=states.ORDER_BOOK_SCHEMA))
    _write(root, ("aggregates", "first_orders"), D, pa.Table.from_pandas(FIRST_ORDERS, preserve_index=False))
    _write(root, ("ingest", "crm_subscription_terms"), D, CRM_SCHEMAS["subscription_terms"].empty_table())
    defs = build_definitions(config)
    kpis = [dg.AssetKey(["kpi", name]) for name in ("customer_retention_rate", "churn_rate",
                                                   "winback_conversion_rate")]
    result = dg.materialize(list(defs.assets), selection=kpis, partition_key=D.isoformat(),
                            resources=defs.resources)
    assert result.success
    assert [e.check_name for e in result.get_asset_check_evaluations() if not e.passed] == []

    def read(name: str) -> pd.DataFrame:
        return pd.read_parquet(f"{root}/kpi/{name}/date={D.isoformat()}/part.parquet")

    # no customer at D-30: E - N = 8 - 2 over S = 0, a null value
    assert row(read("customer_retention_rate"), metric=None) == (6.0, 0.0, None, "percent")
    assert row(read("churn_rate"), metric=None) == (0.0, 0.0, None, "percent")
    assert row(read("winback_conversion_rate")) == (0.0, 0.0, None, "ratio")


def test_a_state_with_no_partition_yet_reads_as_an_empty_population():
    # the IO manager's frame when no partition of the state exists at all: only the `date` column
    nothing = pd.DataFrame({"date": pd.Series([], dtype="str")})
    t = table("reengagement_rate", engagement_recency_30=nothing, person_engagement=ENGAGED,
              crm_customers=CUSTOMERS, identity_map=IDENTITY)
    assert row(t) == (0.0, 0.0, None, "ratio")
    w = table("winback_conversion_rate", customer_status_30=nothing, order_book=BOOK_D)
    assert row(w) == (0.0, 0.0, None, "ratio")
    with pytest.raises(ValueError, match="lacks columns"):
        table("winback_conversion_rate", customer_status_30=pd.DataFrame({"date": ["2026-10-31"]}),
              order_book=BOOK_D)


@pytest.mark.parametrize(("changes", "pb_is_candidate"), [(PersonRemap.none(), True), (MERGED, True),
                                                          (remap(("pa", "pb")), False)], ids=["none", "pi", "pa_pb"])
def test_the_status_gives_the_persons_the_order_book_gives(changes: PersonRemap, pb_is_candidate: bool):
    # the same rules as customers.active_customers / winback_candidates on the book of X, merges included
    # (pb merged into pa: their latest order is X-10, so pb's X-364 no longer makes a win-back candidate)
    status = status_as_of_now(STATUS_X, changes)
    assert ("pb" in winback_candidates_at(status, X)) == pb_is_candidate
    assert sorted(active_at(status)) == sorted(active_customers(BOOK_X, X, changes))
    assert sorted(winback_candidates_at(status, X)) == sorted(winback_candidates(BOOK_X, X, changes))
