"""Cost KPIs (cac, crc, incremental_lift) and the campaign aggregates on hand-built days, with the numerators,
denominators and values worked out by hand."""

import datetime as dt
import math

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline import checks
from crm_pipeline.attribution.credits import ORDER_ATTRIBUTION_SCHEMA
from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA, IDENTITY_MERGES_SCHEMA
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
from crm_pipeline.kpis import aggregates, campaigns, retention, states
from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.cost import KPIS
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.metadata import arrow_table
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
    # a negative lift or interval may only warn (unbounded, docs/outputs.md section 1); every other check passes
    failed = [c.check_name for c in standard_checks(kpi, kpi_key(kpi), frame)
              if not c.passed and c.severity != dg.AssetCheckSeverity.WARN]
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

BOOK_COLUMNS = ["person_id", "order_day", "fully_refunded", "net_revenue"]


def book(rows: list[tuple[str, str, bool]], window: bool) -> pd.DataFrame:
    frame = stored(states.ORDER_BOOK_SCHEMA, [
        {"order_id": f"o{i}", "person_id": p, "ordered_at": ts(f"{d}T12:00"), "order_day": dt.date.fromisoformat(d),
         "fully_refunded": refunded, "net_revenue": 10.0, "refunded_original": 0.0, "refunded": 0.0,
         "count_refunds": 0, "date": "2026-10-01"} for i, (p, d, refunded) in enumerate(rows)], window=window)
    return frame[[*BOOK_COLUMNS, *(["date"] if window else [])]]


BOOK_D30 = book([  # as of 2026-10-01: active = an order non-refunded at 10-01 placed in 2025-10-02..2026-10-01
    ("P1", "2026-09-01", False),
    ("P2", "2025-10-02", False),  # first day of the 365-day activity window: active at D-30
    ("P3", "2026-09-15", False),  # refunded in full later (book of D): not active at D
    ("P4", "2025-10-01", False),  # a day too old: not active at D-30 (churned, then returns)
    ("P6", "2026-09-20", False),  # merged into P7 later
    ("P9", "2025-10-31", False),  # active at D-30; its last order at D is 365 days old: not active at D
    ("P10", "2025-11-01", False),  # active at D-30; 364 days old at D: still active
], window=False)
# the customer_status state of D-30, as the KPI reads it (a window of one day)
STATUS_D30 = retention.customer_status(BOOK_D30, D - dt.timedelta(days=30)).assign(date="2026-10-01")

# the order book of D (2026-10-31): active = an order non-refunded at D placed in 2025-11-01..2026-10-31
BOOK_D = book([
    ("P1", "2026-01-01", False), ("P1", "2026-10-20", False),
    ("P2", "2025-10-02", False), ("P2", "2026-10-05", False),
    ("P3", "2026-09-15", True),  # fully refunded at D: not active at D
    ("P4", "2026-10-25", False),  # churned at D-30, back at D
    ("P6", "2026-09-20", False),  # merged into P7 since: one person, active at both days
    ("P8", "2026-10-30", False),  # new: not active at D-30
    ("P9", "2025-10-31", False),  # 365 days old at D: not active
    ("P10", "2025-11-01", False),  # 364 days old at D: active
], window=False)


def test_crc_by_hand():
    frame = table("crc", costs=COSTS, customer_status_30=STATUS_D30, order_book=BOOK_D, remap=merges(("P7", "P6")),
                  day=D)
    # retention costs dated 10-02..10-31: 70 (email media) + 60 (tools, first day) = 130; the 1000 of 10-01 is out
    # active at D-30: P1, P2, P3, P6 -> P7, P9, P10; at D: P1, P2, P4, P6 -> P7, P8, P10; both: P1, P2, P7, P10 = 4
    assert records(frame) == [(130.0, 4.0, 32.5, "currency")]


def test_crc_in_the_first_30_days_has_no_customer_at_d30():
    # before D-30 has a partition the state reads as a frame with only a `date` column
    frame = table("crc", costs=COSTS, customer_status_30=pd.DataFrame({"date": pd.Series([], dtype="string")}),
                  order_book=BOOK_D, remap=NO_CHANGES, day=D)
    assert records(frame) == [(130.0, 0.0, N, "currency")]


# ---------------------------------------------------------------------------------------------------------------
# incremental_lift: D-43 = 2026-09-18, D-14 = 2026-10-17

def contact(campaign_id: str, person_id: str, is_holdout: bool, at: str) -> dict:
    return {"campaign_id": campaign_id, "person_id": person_id, "is_holdout": is_holdout,
            "first_contact_at": ts(at), "date": at[:10]}


STARTS = stored(campaigns.CAMPAIGN_STARTS_SCHEMA, [
    {"campaign_id": "C1", "first_contact_at": ts("2026-09-18T00:00")},  # first instant of D-43: in
    {"campaign_id": "C2", "first_contact_at": ts("2026-09-17T23:59")},  # a minute too early: out
    {"campaign_id": "C3", "first_contact_at": ts("2026-10-17T23:00")},  # last hour of D-14: in
    {"campaign_id": "C4", "first_contact_at": ts("2026-10-01T00:00")},  # no holdout: out
    {"campaign_id": "C5", "first_contact_at": ts("2026-10-18T00:00")},  # started after D-14: out
])
CONTACTS = stored(campaigns.CAMPAIGN_CONTACTS_SCHEMA, [
    contact("C1", "S1", False, "2026-09-18T00:00"),
    contact("C1", "S2", False, "2026-09-20T10:00"),
    contact("C1", "S3", False, "2026-10-17T12:00"),  # first send on D-14: counts
    contact("C1", "S4", False, "2026-10-18T01:00"),  # first send after D-14: left out
    contact("C1", "B1", True, "2026-09-19T08:00"),  # held out, then sent: sent only, from the send
    contact("C1", "B1", False, "2026-09-25T08:00"),
    contact("C1", "H1", True, "2026-09-19T08:00"),
    contact("C1", "H2", True, "2026-09-19T08:00"),
    contact("C1", "H3", True, "2026-09-19T08:00"),
    contact("C1", "H5", True, "2026-09-19T08:00"),  # H5 is merged into S1 later: one person, sent
    contact("C3", "T1", False, "2026-10-17T23:00"),
    contact("C3", "T2", True, "2026-10-20T09:00"),  # the only holdout, after D-14: holdout group empty
    contact("C2", "S1", False, "2026-09-20T10:00"), contact("C2", "H1", True, "2026-09-20T10:00"),
    contact("C4", "S1", False, "2026-10-01T00:00"),
    contact("C5", "S1", False, "2026-10-18T00:00"), contact("C5", "H1", True, "2026-10-18T00:00"),
], window=True)
ORDER_BOOK = stored(states.ORDER_BOOK_SCHEMA, [
    {"order_id": f"o{i}", "person_id": p, "ordered_at": ts(at), "order_day": dt.date.fromisoformat(at[:10]),
     "fully_refunded": refunded, "refunded_original": 0.0, "refunded": 0.0, "count_refunds": 0}
    for i, (p, at, refunded) in enumerate([
        ("S1", "2026-10-02T00:00", False),  # exactly 14 d after the send: converted
        ("S2", "2026-09-20T10:00", False),  # at the send itself: not after it
        ("S2", "2026-10-04T10:00:01", False),  # 14 d and 1 s after: too late
        ("S3", "2026-10-20T00:00", False),  # converted
        ("S4", "2026-10-19T00:00", False),  # (left out anyway)
        ("B1", "2026-09-24T00:00", False),  # after the holdout, before the send: B1 is sent, not converted
        ("H1", "2026-09-30T00:00", False),  # converted
        ("H3", "2026-09-25T00:00", True),  # refunded later: still a conversion
        ("T1", "2026-10-18T00:00", False),  # converted
    ])])[["person_id", "ordered_at"]]


def test_incremental_lift_by_hand():
    frame = table("incremental_lift", campaign_contacts=CONTACTS, campaign_starts=STARTS, order_book=ORDER_BOOK,
                  remap=merges(("S1", "H5")), day=D, settings=SETTINGS)
    # C1 sent: S1 (converted), S2 (no), S3 (converted), B1 (no) -> 2 / 4 = 50 %
    # C1 holdout: H1 (converted), H2 (no), H3 (converted, refunded) -> 2 / 3 = 66.667 %; H5 is S1 (sent)
    # C1 lift = 50 - 66.667 = -16.667 pp; half width = 1.959964 x 100 x sqrt(.5 x .5 / 4 + 2/3 x 1/3 / 3)
    #   = 195.9964 x sqrt(0.0625 + 0.0740741) = 195.9964 x 0.3695594 = 72.4323
    # C3 sent: T1 (converted) -> 1 / 1 = 100 %; holdout empty (T2 after D-14): 0 / 0, lift null
    # pooled (campaign, person) pairs: sent 3 / 5 = 60 %, holdout 2 / 3; lift = -6.667 pp,
    #   half width = 195.9964 x sqrt(.6 x .4 / 5 + 2/9 / 3) = 195.9964 x 0.3493910 = 68.4794
    c1_half = 1.959964 * 100 * math.sqrt(0.5 * 0.5 / 4 + (2 / 3) * (1 / 3) / 3)
    pooled_half = 1.959964 * 100 * math.sqrt(0.6 * 0.4 / 5 + (2 / 3) * (1 / 3) / 3)
    assert c1_half == pytest.approx(72.4323, abs=1e-4) and pooled_half == pytest.approx(68.4794, abs=1e-4)
    c1_lift, pooled_lift = 50 - 200 / 3, 60 - 200 / 3
    expected = [
        (N, N, pooled_lift, N, pooled_lift, "percent"),
        (N, "ci_high", pooled_lift + pooled_half, N, pooled_lift + pooled_half, "percent"),
        (N, "ci_low", pooled_lift - pooled_half, N, pooled_lift - pooled_half, "percent"),
        (N, "conversion_rate_holdout", 2.0, 3.0, 200 / 3, "percent"),
        (N, "conversion_rate_sent", 3.0, 5.0, 60.0, "percent"),
        (N, "lift", pooled_lift, N, pooled_lift, "percent"),
        ("C1", "ci_high", c1_lift + c1_half, N, c1_lift + c1_half, "percent"),
        ("C1", "ci_low", c1_lift - c1_half, N, c1_lift - c1_half, "percent"),
        ("C1", "conversion_rate_holdout", 2.0, 3.0, 200 / 3, "percent"),
        ("C1", "conversion_rate_sent", 2.0, 4.0, 50.0, "percent"),
        ("C1", "lift", c1_lift, N, c1_lift, "percent"),
        ("C3", "ci_high", N, N, N, "percent"),
        ("C3", "ci_low", N, N, N, "percent"),
        ("C3", "conversion_rate_holdout", 0.0, 0.0, N, "percent"),
        ("C3", "conversion_rate_sent", 1.0, 1.0, 100.0, "percent"),
        ("C3", "lift", N, N, N, "percent"),
    ]
    got = records(frame)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):  # nulls exactly, numbers to float rounding
        assert [v is None for v in g] == [v is None for v in e], (g, e)
        assert [v for v in g if v is not None] == pytest.approx([v for v in e if v is not None], abs=1e-9), (g, e)


def test_incremental_lift_without_the_merge_keeps_h5_in_the_holdout():
    frame = table("incremental_lift", campaign_contacts=CONTACTS, campaign_starts=STARTS, order_book=ORDER_BOOK,
                  remap=NO_CHANGES, day=D, settings=SETTINGS)
    # H5 (no order) joins C1's holdout: 2 / 4 = 50 %, so C1's lift is 50 - 50 = 0
    c1 = frame.loc[frame["campaign_id"] == "C1"].set_index("metric")
    assert c1.loc["conversion_rate_holdout", ["numerator", "denominator", "value"]].tolist() == [2.0, 4.0, 50.0]
    assert c1.loc["lift", "value"] == 0.0


def test_incremental_lift_with_no_campaign_in_its_window_writes_the_empty_rows():
    # on 2026-12-31 every campaign above started before D-43 (2026-11-18)
    frame = table("incremental_lift", campaign_contacts=CONTACTS.iloc[0:0], campaign_starts=STARTS,
                  order_book=ORDER_BOOK, remap=NO_CHANGES, day=dt.date(2026, 12, 31), settings=SETTINGS)
    assert records(frame) == [
        (N, N, N, N, N, "percent"), (N, "ci_high", N, N, N, "percent"), (N, "ci_low", N, N, N, "percent"),
        (N, "conversion_rate_holdout", 0.0, 0.0, N, "percent"), (N, "conversion_rate_sent", 0.0, 0.0, N, "percent"),
        (N, "lift", N, N, N, "percent")]


# ---------------------------------------------------------------------------------------------------------------
# the campaign aggregates

def test_campaign_contacts_and_starts_of_a_day():
    events = stored(CLEAN_SCHEMAS["events"], [
        {"event_id": f"e{i}", "occurred_at": ts(at), "event_type": kind, "campaign_id": campaign,
         "customer_id": customer}
        for i, (kind, campaign, customer, at) in enumerate([
            ("email_send", "C1", "c1", "2026-10-05T10:00"),
            ("sms_send", "C1", "c1", "2026-10-05T08:00"),  # the first send of the day for (C1, P1)
            ("holdout_assigned", "C1", "c2", "2026-10-05T09:00"),
            ("push_send", "C2", "c2", "2026-10-05T11:00"),
            ("email_open", "C1", "c1", "2026-10-05T07:00"),  # not a send
            ("email_send", None, "c1", "2026-10-05T06:00"),  # no campaign
            ("email_send", "C1", "unknown", "2026-10-05T06:00"),  # no person: left out
        ])])
    identity_map = stored(IDENTITY_MAP_SCHEMA, [
        {"identifier_type": "customer_id", "identifier": "c1", "person_id": "P1", "is_refused": False},
        {"identifier_type": "customer_id", "identifier": "c2", "person_id": "P2", "is_refused": False}])
    contacts = campaigns.daily_campaign_contacts(events, identity_map)
    assert records(contacts) == [("C1", "P1", False, ts("2026-10-05T08:00")), ("C1", "P2", True, ts("2026-10-05T09:00")),
                                 ("C2", "P2", False, ts("2026-10-05T11:00"))]
    assert checks.schema_is_declared(dg.AssetKey("c"), arrow_table(contacts, campaigns.CAMPAIGN_CONTACTS_SCHEMA),
                                     campaigns.CAMPAIGN_CONTACTS_SCHEMA).passed
    previous = stored(campaigns.CAMPAIGN_STARTS_SCHEMA, [
        {"campaign_id": "C1", "first_contact_at": ts("2026-10-01T12:00")},
        {"campaign_id": "C0", "first_contact_at": ts("2026-09-01T12:00")}])
    # C1 keeps its older start; C2 starts today; C0 is carried
    assert records(campaigns.update_campaign_starts(previous, contacts)) == [
        ("C0", ts("2026-09-01T12:00")), ("C1", ts("2026-10-01T12:00")), ("C2", ts("2026-10-05T11:00"))]
    assert records(campaigns.update_campaign_starts(None, contacts.iloc[0:0])) == []


# ---------------------------------------------------------------------------------------------------------------
# ad_conversion_rate: window 2026-10-02..2026-10-31

def click(person_id: str, at: str) -> dict:
    return {"person_id": person_id, "first_click_at": ts(at), "count_clicks": 1, "date": at[:10]}


AD_CLICKS = stored(campaigns.AD_CLICKS_SCHEMA, [
    click("A1", "2026-10-01T23:00"),  # the day before the window
    click("A1", "2026-10-05T10:00"),  # A1's first click in the window
    click("A2", "2026-10-02T00:00"),  # first instant of the window
    click("A3", "2026-10-31T20:00"),
    click("A4", "2026-10-10T09:00"),
    click("A5", "2026-10-08T09:00"),  # A5 is merged into A4 later: A4's first click is then 10-08
    click("A6", "2026-10-01T12:00"),  # only before the window
], window=True)[["person_id", "first_click_at", "date"]]
AD_ORDERS = stored(states.ORDER_BOOK_SCHEMA, [
    {"order_id": f"o{i}", "person_id": p, "ordered_at": ts(at), "order_day": dt.date.fromisoformat(at[:10]),
     "fully_refunded": refunded, "refunded_original": 0.0, "refunded": 0.0, "count_refunds": 0}
    for i, (p, at, refunded) in enumerate([
        ("A1", "2026-10-03T00:00", False),  # after the click of 10-01, before the first click in the window
        ("A2", "2026-10-02T00:00", False),  # at the click itself: not after it
        ("A2", "2026-10-20T00:00", True),  # refunded later: a conversion all the same
        ("A4", "2026-10-09T00:00", False),  # after A5's click (10-08), before A4's own (10-10)
        ("A6", "2026-10-05T00:00", False),  # A6 clicked before the window: not in the population
    ])])[["person_id", "ordered_at"]]


def test_ad_conversion_rate_by_hand():
    frame = table("ad_conversion_rate", ad_clicks=AD_CLICKS, order_book=AD_ORDERS, remap=merges(("A4", "A5")), day=D,
                  settings=SETTINGS)
    # persons: A1, A2, A3, A4 (+A5) = 4; converted: A2 (10-20), A4 (10-09 after 10-08) = 2 -> 0.5
    assert records(frame) == [(2.0, 4.0, 0.5, "ratio")]
    frame = table("ad_conversion_rate", ad_clicks=AD_CLICKS, order_book=AD_ORDERS, remap=NO_CHANGES, day=D,
                  settings=SETTINGS)
    # without the merge: A1..A5 = 5 persons; A4's order precedes its own click: only A2 -> 0.2
    assert records(frame) == [(1.0, 5.0, 0.2, "ratio")]


def test_ad_clicks_of_a_day():
    events = stored(CLEAN_SCHEMAS["events"], [
        {"event_id": f"e{i}", "occurred_at": ts(at), "event_type": kind, "customer_id": customer}
        for i, (kind, customer, at) in enumerate([
            ("ad_click", "c1", "2026-10-05T10:00"), ("ad_click", "c1", "2026-10-05T08:00"),
            ("ad_impression", "c2", "2026-10-05T07:00"),  # not a click
            ("ad_click", "unknown", "2026-10-05T06:00"),  # no person: left out
        ])])
    identity_map = stored(IDENTITY_MAP_SCHEMA, [
        {"identifier_type": "customer_id", "identifier": "c1", "person_id": "P1", "is_refused": False},
        {"identifier_type": "customer_id", "identifier": "c2", "person_id": "P2", "is_refused": False}])
    frame = campaigns.daily_ad_clicks(events, identity_map)
    assert records(frame) == [("P1", ts("2026-10-05T08:00"), 2)]
    assert arrow_table(frame, campaigns.AD_CLICKS_SCHEMA).schema == campaigns.AD_CLICKS_SCHEMA
