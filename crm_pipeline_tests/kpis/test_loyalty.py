"""Retention and loyalty KPIs (part 2) and customer_rfm on hand-built days, the numbers worked out by hand."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline import checks
from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA, IDENTITY_MERGES_SCHEMA, PERSON_LOOKUP_COLUMNS
from crm_pipeline.ingestion.crm import CRM_SCHEMAS
from crm_pipeline.kpis import aggregates, loyalty, states
from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.metadata import arrow_table
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import records, stored

BY_NAME = {k.name: k for k in loyalty.KPIS}
D = dt.date(2026, 10, 31)
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", start_date=dt.date(2025, 6, 1))
NO_CHANGES = PersonRemap.none()
N = None


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def merged(kept: str, other: str) -> PersonRemap:
    """`other` merged into `kept` after D (a re-run of D sees one person)."""
    return PersonRemap(stored(IDENTITY_MERGES_SCHEMA, [{"change_date": dt.date(2026, 11, 5), "kind": "merge",
                                                        "kept_person_id": kept, "other_person_id": other,
                                                        "reason": "x"}]))


def customers(rows: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    """Customer records (customer_id, created_at, acquisition_channel) as the KPIs read them."""
    return stored(CRM_SCHEMAS["customers"], [
        {"customer_id": c, "created_at": _ts(at), "acquisition_channel": channel} for c, at, channel in rows])[
        ["customer_id", "created_at", "acquisition_channel"]]


def identity(pairs: dict[str, str]) -> pd.DataFrame:
    """customer_id -> person_id."""
    return stored(IDENTITY_MAP_SCHEMA, [
        {"identifier_type": "customer_id", "identifier": c, "person_id": p, "is_refused": False}
        for c, p in pairs.items()])[list(PERSON_LOOKUP_COLUMNS)]


def book(rows: list[tuple]) -> pd.DataFrame:
    """Order book rows (order_id, person_id, ordered_at, net_revenue, fully_refunded, categories), UTC days."""
    return stored(states.ORDER_BOOK_SCHEMA, [
        {"order_id": o, "person_id": p, "ordered_at": _ts(at), "order_day": _ts(at).date(), "currency": "USD",
         "net_revenue": net, "net_revenue_original": net, "refunded_original": net if refunded else 0.0,
         "refunded": net if refunded else 0.0, "count_refunds": int(refunded), "fully_refunded": refunded,
         "categories": categories} for o, p, at, net, refunded, categories in rows])


def first_orders(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return stored(aggregates.FIRST_ORDERS_SCHEMA, [
        {"person_id": p, "first_order_id": o, "first_ordered_at": _ts(at)} for p, o, at in rows])


def table(name: str, **inputs: object) -> pd.DataFrame:
    kpi = BY_NAME[name]
    for i in kpi.inputs:  # only the columns the KPI declares, as the IO manager reads them
        if i.columns:
            frame = inputs[i.name]
            inputs[i.name] = frame[[*i.columns, *(["date"] if "date" in frame.columns else [])]]
    extra = {"day": D, "settings": SETTINGS, "remap": NO_CHANGES}
    frame = finalise(kpi, kpi.compute(**{**extra, **inputs}))
    failed = [c.check_name for c in standard_checks(kpi, kpi_key(kpi), frame) if not c.passed]
    assert failed == [], (name, failed)
    return frame


def row(frame: pd.DataFrame, **dims: str | None) -> tuple:
    match = pd.Series(True, index=frame.index)
    for name, value in dims.items():
        match &= frame[name].isna() if value is None else frame[name] == value
    assert match.sum() == 1, dims
    found = frame.loc[match].iloc[0]
    return tuple(None if pd.isna(found[c]) else found[c] for c in ("numerator", "denominator", "value", "unit"))


# ---------------------------------------------------------------------------------------------------------------
# recency_frequency and customer_rfm

# D = 2026-10-31, active window D-364..D = 2025-11-01..2026-10-31
BOOK = book([
    # P1: three orders; last on D itself (recency 0); 10-01 12:00 -> 10-31 00:00 = 29.5 days over 2 gaps = 14.75
    ("o1", "P1", "2026-10-01T12:00", 30.0, False, "shoes"),
    ("o2", "P1", "2026-10-21T12:00", 50.0, False, "shoes"),
    ("o3", "P1", "2026-10-31T00:00", 20.0, False, "bags"),
    # P2: the refunded o5 is left out: one order on 10-29 (recency 2), no between-orders span
    ("o4", "P2", "2026-10-29T06:00", 100.0, False, "bags"),
    ("o5", "P2", "2026-10-30T18:00", 999.0, True, "bags"),
    # P3: first day of the window (D-364) and 2026-05-01: recency 183, span 181 days over one gap
    ("o6", "P3", "2025-11-01T10:00", 10.0, False, None),
    ("o7", "P3", "2026-05-01T10:00", 40.0, False, None),
    # P4: o8 is on D-365 (outside the window): one order, recency 2
    ("o8", "P4", "2025-10-31T23:00", 500.0, False, None),
    ("o9", "P4", "2026-10-29T08:00", 100.0, False, None),
    # P5: only a fully refunded order: not an active customer
    ("o10", "P5", "2026-09-01T10:00", 70.0, True, None),
])
# channels: P1's earliest record (email; its later record says paid_search); P2's record has none -> (none);
# P3 registers after D -> no record at D -> (none); P4: email
CUSTOMERS = customers([("C1", "2026-01-01T00:00", "email"), ("C1b", "2026-02-01T00:00", "paid_search"),
                       ("C2", "2026-03-01T00:00", None), ("C3", "2026-11-05T00:00", "social"),
                       ("C4", "2026-06-01T00:00", "email")])
IDENTITY = identity({"C1": "P1", "C1b": "P1", "C2": "P2", "C3": "P3", "C4": "P4"})


def test_recency_frequency_by_hand():
    t = table("recency_frequency", order_book=BOOK, crm_customers=CUSTOMERS, identity_map=IDENTITY)
    # active: P1, P2, P3, P4. recency (0 + 2 + 183 + 2) / 4 = 46.75; frequency (3 + 1 + 2 + 1) / 4 = 1.75;
    # mean days between orders over P1 and P3 (>= 2 orders): (14.75 + 181) / 2 = 97.875
    assert row(t, metric=None, acquisition_channel=None) == (187.0, 4.0, 46.75, "days")
    assert row(t, metric="recency_days", acquisition_channel=None) == (187.0, 4.0, 46.75, "days")
    assert row(t, metric="frequency", acquisition_channel=None) == (7.0, 4.0, 1.75, "count")
    assert row(t, metric="mean_days_between_orders", acquisition_channel=None) == (195.75, 2.0, 97.875, "days")
    # email = P1, P4: recency 2 / 2, orders 4 / 2, between P1 only: 14.75 / 1
    assert row(t, metric="recency_days", acquisition_channel="email") == (2.0, 2.0, 1.0, "days")
    assert row(t, metric="frequency", acquisition_channel="email") == (4.0, 2.0, 2.0, "count")
    assert row(t, metric="mean_days_between_orders", acquisition_channel="email") == (14.75, 1.0, 14.75, "days")
    # (none) = P2 (record without a channel) and P3 (no record at D): recency 185 / 2, orders 3 / 2, P3's 181
    assert row(t, metric="recency_days", acquisition_channel="(none)") == (185.0, 2.0, 92.5, "days")
    assert row(t, metric="frequency", acquisition_channel="(none)") == (3.0, 2.0, 1.5, "count")
    assert row(t, metric="mean_days_between_orders", acquisition_channel="(none)") == (181.0, 1.0, 181.0, "days")
    assert len(t) == 1 + 3 + 3 * 2  # no paid_search or social row: no active customer was acquired so


def test_recency_frequency_persons_with_one_order_have_no_span():
    """Only one-order customers: mean_days_between_orders is 0 / 0 (null), not an error."""
    one = book([("o1", "P1", "2026-10-30T10:00", 10.0, False, None)])
    t = table("recency_frequency", order_book=one, crm_customers=CUSTOMERS, identity_map=IDENTITY)
    assert row(t, metric="mean_days_between_orders", acquisition_channel="email") == (0.0, 0.0, N, "days")
    assert row(t, metric="recency_days", acquisition_channel=None) == (1.0, 1.0, 1.0, "days")


def test_recency_frequency_counts_persons_merged_later_once():
    # a re-run after P4 was merged into P1: P1 has 4 orders (10-01 12:00 .. 10-31 00:00: 29.5 days / 3 gaps)
    t = table("recency_frequency", order_book=BOOK, crm_customers=CUSTOMERS, identity_map=IDENTITY,
              remap=merged("P1", "P4"))
    # customers P1, P2, P3: recency (0 + 2 + 183) / 3; frequency (4 + 1 + 2) / 3; between (29.5 / 3 + 181) / 2
    assert row(t, metric="recency_days", acquisition_channel=None) == (185.0, 3.0, 185.0 / 3, "days")
    assert row(t, metric="frequency", acquisition_channel=None) == (7.0, 3.0, 7.0 / 3, "count")
    numerator, denominator, value, _ = row(t, metric="mean_days_between_orders", acquisition_channel=None)
    assert (numerator, denominator, value) == (pytest.approx(29.5 / 3 + 181.0), 2.0,
                                               pytest.approx((29.5 / 3 + 181.0) / 2))


def test_customer_summaries_and_rfm_of_the_book():
    summaries = loyalty.customer_summaries(BOOK, NO_CHANGES, D)
    frame = loyalty.customer_rfm(summaries)
    # R ranks by -recency ascending: P3 (-183) 1, P2 and P4 (-2) 2 (SQL rank: tie), P1 (0) 4; n = 4:
    #   score 1 + floor(5 (rank - 1) / 4): rank 1 -> 1, 2 -> 2, 4 -> 4
    # F: P2, P4 (1 order) rank 1 -> 1; P3 (2) rank 3 -> 3; P1 (3) rank 4 -> 4
    # M: P3 (50) rank 1 -> 1; P1 (30 + 50 + 20 = 100), P2 (100, o5 refunded), P4 (100, o8 outside) rank 2 -> 2
    # segments: P1 R4 F4 champions; P2 R2 F1 hibernating; P3 R1 F3 at_risk; P4 R2 F1 hibernating
    assert records(frame) == [("P1", 0, 3, 100.0, 4, 4, 2, "champions"), ("P2", 2, 1, 100.0, 2, 1, 2, "hibernating"),
                              ("P3", 183, 2, 50.0, 1, 3, 1, "at_risk"), ("P4", 2, 1, 100.0, 2, 1, 2, "hibernating")]
    table = arrow_table(frame, loyalty.CUSTOMER_RFM_SCHEMA)
    key = loyalty.CUSTOMER_RFM_KEY
    assert checks.schema_is_declared(key, table, loyalty.CUSTOMER_RFM_SCHEMA).passed
    assert checks.primary_key_is_unique(key, frame, ["person_id"]).passed
    assert not checks.primary_key_is_unique(key, pd.concat([frame, frame.iloc[:1]]), ["person_id"]).passed


def test_rfm_scores_use_sql_rank_and_every_segment():
    summaries = pd.DataFrame({"person_id": list("ABCDEFG"), "recency_days": [0, 10, 1, 50, 20, 15, 10],
                              "frequency": [5, 5, 1, 3, 2, 2, 1], "monetary": [10.0, 20.0, 30.0, 40.0, 50.0, 50.0, 5.0]})
    frame = loyalty.customer_rfm(summaries).set_index("person_id")
    # n = 7, score = 1 + floor(5 (rank - 1) / 7): rank 1 -> 1, 2 -> 1, 3 -> 2, 4 -> 3, 5 -> 3, 6 -> 4, 7 -> 5
    # R (by -recency): D 1, E 2, F 3, B and G 4 (tie), C 6, A 7 -> D1 E1 F2 B3 G3 C4 A5
    # F: C, G 1 (tie); E, F 3 (tie); D 5; A, B 6 (tie) -> C1 G1 E2 F2 D3 A4 B4
    # M: G 1, A 2, B 3, C 4, D 5, E and F 6 (tie) -> G1 A1 B2 C3 D3 E4 F4
    assert frame["r_score"].to_dict() == {"A": 5, "B": 3, "C": 4, "D": 1, "E": 1, "F": 2, "G": 3}
    assert frame["f_score"].to_dict() == {"A": 4, "B": 4, "C": 1, "D": 3, "E": 2, "F": 2, "G": 1}
    assert frame["m_score"].to_dict() == {"A": 1, "B": 2, "C": 3, "D": 3, "E": 4, "F": 4, "G": 1}
    # first match: A R5 F4 champions; B F4 loyal; C R4 promising; D R1 F3 at_risk; E, F R <= 2 hibernating;
    # G R3 F1 needs_attention
    assert frame["segment"].to_dict() == {"A": "champions", "B": "loyal", "C": "promising", "D": "at_risk",
                                          "E": "hibernating", "F": "hibernating", "G": "needs_attention"}


def test_customer_rfm_of_a_day_without_customers_is_empty_with_its_schema():
    frame = loyalty.customer_rfm(loyalty.customer_summaries(stored(states.ORDER_BOOK_SCHEMA), NO_CHANGES, D))
    table = arrow_table(frame, loyalty.CUSTOMER_RFM_SCHEMA)
    assert table.num_rows == 0 and table.schema == loyalty.CUSTOMER_RFM_SCHEMA


def test_customer_rfm_asset_is_described_and_checked():
    asset = loyalty.customer_rfm_asset(dg.DailyPartitionsDefinition(start_date="2026-10-01"))
    spec = next(iter(asset.specs))
    assert spec.description.startswith("One row per active customer")
    assert spec.metadata["primary_key"] == ["person_id"]
    assert [c.name for c in spec.metadata["dagster/column_schema"].columns] == loyalty.CUSTOMER_RFM_SCHEMA.names
    assert {c.name for c in asset.check_specs} == {"schema_matches_declared", "person_id_is_unique"}
    assert spec.group_name == "kpis" and spec.owners


# ---------------------------------------------------------------------------------------------------------------
# repeat_purchase_rate

def test_repeat_purchase_rate_by_hand():
    # D-60 = 2026-09-01, D-90 = 2026-08-02
    firsts = first_orders([
        ("P1", "a1", "2026-09-01T10:00"),  # 60d; another order the same day (refunded): repeat
        ("P2", "b1", "2026-09-01T23:59:59"),  # 60d; no other order
        ("P3", "c1", "2026-09-01T05:00"),  # 60d; no category written; repeat on D under a part merged later
        ("P4", "d1", "2026-08-02T12:00"),  # 90d; repeat on D
        ("P5", "e1", "2026-08-02T00:00"),  # 90d; no other order
        ("P6", "f1", "2026-09-02T08:00"),  # D-59: no cohort
        ("P7", "g1", "2026-08-01T23:59"),  # D-91: no cohort
        ("P9", "c0", "2026-09-03T08:00"),  # P3's other part (merged later): its first order is not P3's first
    ])
    orders = book([
        ("a1", "P1", "2026-09-01T10:00", 10.0, False, "shoes|bags"),
        ("a2", "P1", "2026-09-01T20:00", 10.0, True, "toys"),
        ("b1", "P2", "2026-09-01T23:59:59", 10.0, False, "bags"),
        ("c1", "P3", "2026-09-01T05:00", 10.0, False, ""),
        ("c0", "P9", "2026-09-03T08:00", 10.0, False, "toys"),
        ("d1", "P4", "2026-08-02T12:00", 10.0, False, "shoes"),
        ("d2", "P4", "2026-10-31T23:00", 10.0, False, "bags"),
        ("e1", "P5", "2026-08-02T00:00", 10.0, False, "toys|shoes"),
        ("f1", "P6", "2026-09-02T08:00", 10.0, False, "shoes"),
        ("f2", "P6", "2026-09-03T08:00", 10.0, False, "shoes"),
        ("g1", "P7", "2026-08-01T23:59", 10.0, False, "shoes"),
        ("g2", "P7", "2026-08-05T23:59", 10.0, False, "shoes"),
    ])
    t = table("repeat_purchase_rate", first_orders=firsts, order_book=orders, remap=merged("P3", "P9"))
    # 60d cohort: P1 (shoes, repeat), P2 (bags, no), P3 ((none), repeat through P9's c0): 2 / 3
    # 90d cohort: P4 (shoes, repeat), P5 (toys, no): 1 / 2
    assert row(t, window=None, category=None) == (2.0, 3.0, 2 / 3, "ratio")
    assert row(t, window="60d", category=None) == (2.0, 3.0, 2 / 3, "ratio")
    assert row(t, window="90d", category=None) == (1.0, 2.0, 0.5, "ratio")
    # categories of both cohorts: (none), bags, shoes, toys; a cohort without the category: 0 / 0, null
    assert row(t, window="60d", category="shoes") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, window="60d", category="bags") == (0.0, 1.0, 0.0, "ratio")
    assert row(t, window="60d", category="(none)") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, window="60d", category="toys") == (0.0, 0.0, N, "ratio")
    assert row(t, window="90d", category="shoes") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, window="90d", category="toys") == (0.0, 1.0, 0.0, "ratio")
    assert row(t, window="90d", category="bags") == (0.0, 0.0, N, "ratio")
    assert len(t) == 1 + 2 + 2 * 4
    # without the merge P3 has no other order: 60d = 1 / 3
    t = table("repeat_purchase_rate", first_orders=firsts, order_book=orders)
    assert row(t, window="60d", category=None) == (1.0, 3.0, 1 / 3, "ratio")


# ---------------------------------------------------------------------------------------------------------------
# activation_rate

def test_activation_rate_by_hand():
    # D-30 = 2026-10-01
    records_ = customers([
        ("C1", "2026-10-01T08:00", None),  # first order exactly 30 x 24 h later: activated
        ("C2", "2026-10-01T09:00", None),  # first order 1 s after 30 x 24 h: not
        ("C3", "2026-10-01T10:00", None),  # first order before registration: not
        ("C4", "2026-10-01T23:00", None),  # first order at the registration instant: activated
        ("C5", "2026-10-01T12:00", None),  # no order: not
        ("C6", "2026-09-30T23:59", None), ("C6b", "2026-10-01T10:00", None),  # registration = 09-30: no cohort
        ("C7", "2026-10-02T00:00", None),  # D-29: no cohort
    ])
    persons = identity({"C1": "P1", "C2": "P2", "C3": "P3", "C4": "P4", "C5": "P5", "C6": "P6", "C6b": "P6",
                        "C7": "P7"})
    firsts = first_orders([("P1", "o1", "2026-10-31T08:00"), ("P2", "o2", "2026-10-31T09:00:01"),
                           ("P3", "o3", "2026-09-15T10:00"), ("P4", "o4", "2026-10-01T23:00"),
                           ("P6", "o6", "2026-10-02T10:00"), ("P7", "o7", "2026-10-03T10:00")])
    t = table("activation_rate", first_orders=firsts, crm_customers=records_, identity_map=persons)
    # cohort P1..P5 = 5, activated P1, P4: 2 / 5
    assert records(t) == [(2.0, 5.0, 0.4, "ratio")]
    # no registration on D-30 (D = 2026-11-01: cohort 2026-10-02 has P7, D = 2026-11-05: nobody): 0 / 0, null
    t = table("activation_rate", first_orders=firsts, crm_customers=records_, identity_map=persons,
              day=dt.date(2026, 11, 5))
    assert records(t) == [(0.0, 0.0, N, "ratio")]


# ---------------------------------------------------------------------------------------------------------------
# registrant_retention

def engagement(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(day, person_id, engagements) as the 180-day window of person_engagement arrives (a `date` column)."""
    return stored(aggregates.PERSON_ENGAGEMENT_SCHEMA, [
        {"date": day, "person_id": p, "channel": "email", "count_engagements": n} for day, p, n in rows],
        window=True)


def test_registrant_retention_by_hand():
    # D-30 = 2026-10-01, D-90 = 2026-08-02, D-180 = 2026-05-04 (nobody registered then)
    records_ = customers([("C1", "2026-10-01T00:00", None), ("C2", "2026-10-01T12:00", None),
                          ("C3", "2026-10-01T23:59:59", None), ("C4", "2026-08-02T09:00", None),
                          ("C5", "2026-08-03T09:00", None)])
    persons = identity({"C1": "P1", "C2": "P2", "C3": "P3", "C4": "P4", "C5": "P5"})
    engaged = engagement([
        ("2026-10-02", "P1", 3), ("2026-10-31", "P1", 2),  # P1: 5 in D-29..D
        ("2026-10-01", "P2", 4),  # P2: on the registration day D-30 only, outside D-29..D: not retained
        ("2026-10-10", "P9", 1),  # P9 is merged into P3 later: P3 retained with 1
        ("2026-08-02", "P4", 7), ("2026-08-03", "P4", 1),  # P4: D-89..D holds the 1 of 08-03
        ("2026-10-05", "P5", 2),  # P5 registered on D-89: no cohort
    ])
    t = table("registrant_retention", person_engagement=engaged, crm_customers=records_, identity_map=persons,
              remap=merged("P3", "P9"))
    # 30d: cohort P1, P2, P3; retained P1, P3: 2 / 3; engagements 5 + 1 = 6 / 3 = 2
    assert row(t, metric=None, window=None) == (2.0, 3.0, 2 / 3, "ratio")
    assert row(t, metric="retention_rate", window="30d") == (2.0, 3.0, 2 / 3, "ratio")
    assert row(t, metric="avg_engagements", window="30d") == (6.0, 3.0, 2.0, "count")
    # 90d: cohort P4, retained with 1 engagement
    assert row(t, metric="retention_rate", window="90d") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, metric="avg_engagements", window="90d") == (1.0, 1.0, 1.0, "count")
    # 180d: empty cohort: 0 / 0, null
    assert row(t, metric="retention_rate", window="180d") == (0.0, 0.0, N, "ratio")
    assert row(t, metric="avg_engagements", window="180d") == (0.0, 0.0, N, "count")
    assert len(t) == 1 + 6


# ---------------------------------------------------------------------------------------------------------------
# days in the reporting timezone

NEW_YORK = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="America/New_York",
                    start_date=dt.date(2025, 6, 1))


def test_cohort_days_are_taken_in_the_reporting_timezone():
    # New York is UTC-4 in October: 2026-10-02T03:30Z is 10-01 23:30 local (D-30), 2026-10-01T03:30Z is 09-30
    records_ = customers([("C1", "2026-10-02T03:30", None), ("C2", "2026-10-01T03:30", None)])
    persons = identity({"C1": "P1", "C2": "P2"})
    # P1's first order exactly 30 x 24 h after registration (10-30 23:30 local): activated
    firsts = first_orders([("P1", "o1", "2026-10-31T03:30")])
    t = table("activation_rate", first_orders=firsts, crm_customers=records_, identity_map=persons,
              settings=NEW_YORK)
    assert records(t) == [(1.0, 1.0, 1.0, "ratio")]  # in UTC days the cohort would be P2 alone: 0 / 1
    t = table("registrant_retention", person_engagement=engagement([("2026-10-02", "P1", 2)]),
              crm_customers=records_, identity_map=persons, settings=NEW_YORK)
    assert row(t, metric="retention_rate", window="30d") == (1.0, 1.0, 1.0, "ratio")

    # a first order at 2026-09-02T02:00Z is on 09-01 local (D-60); the other order, 09-02 01:00 local, repeats
    firsts = first_orders([("P1", "a1", "2026-09-02T02:00")])
    orders = book([("a1", "P1", "2026-09-02T02:00", 10.0, False, "shoes"),
                   ("a2", "P1", "2026-09-02T05:00", 10.0, False, "shoes")])
    orders["order_day"] = [dt.date(2026, 9, 1), dt.date(2026, 9, 2)]  # the book's days are local days
    t = table("repeat_purchase_rate", first_orders=firsts, order_book=orders, settings=NEW_YORK)
    assert row(t, window="60d", category="shoes") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, window="90d", category="shoes") == (0.0, 0.0, N, "ratio")


def test_customer_rfm_materialises_one_partition_with_its_checks(tmp_path):
    """A real Dagster run: the order book of D (stub upstream, this file's BOOK) through the Parquet IO manager,
    customer_rfm written to <warehouse>/customer_rfm/date=D/part.parquet, both of its checks passing."""
    from crm_pipeline.resources import PipelineSettingsResource
    from crm_pipeline.storage.io_manager import ParquetIOManager

    partitions = dg.DailyPartitionsDefinition(start_date="2026-10-01")
    settings = Settings(landing_root=str(tmp_path / "l"), warehouse_root=str(tmp_path / "w"),
                        database_url="sqlite://", start_date=dt.date(2026, 10, 1))

    @dg.asset(key=states.ORDER_BOOK_KEY, partitions_def=partitions)
    def order_book():
        return arrow_table(BOOK, states.ORDER_BOOK_SCHEMA)

    result = dg.materialize(
        [order_book, loyalty.customer_rfm_asset(partitions)], partition_key=D.isoformat(),
        resources={"io_manager": ParquetIOManager(base_path=settings.warehouse_root, storage_options={}),
                   "settings": PipelineSettingsResource.from_settings(settings)})
    assert result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"schema_matches_declared": True, "person_id_is_unique": True}
    written = pd.read_parquet(tmp_path / "w" / "customer_rfm" / f"date={D}" / "part.parquet")
    # the same rows as test_customer_summaries_and_rfm_of_the_book
    assert records(written[["person_id", "r_score", "f_score", "m_score", "segment"]]) == [
        ("P1", 4, 4, 2, "champions"), ("P2", 2, 1, 2, "hibernating"), ("P3", 1, 3, 1, "at_risk"),
        ("P4", 2, 1, 2, "hibernating")]
    metadata = result.asset_materializations_for_node("customer_rfm")[0].metadata
    assert metadata["customers"].value == 4
