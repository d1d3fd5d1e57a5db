"""The value KPIs (aov_arpu, refund_and_discount, ltv, revenue_per_recipient) on a hand-built order book and refund
ledger, numbers worked out by hand in the comments, with the traps: refunds dated in the window of orders placed
before it, partial refunds, a day without orders, orders exactly on the window boundary."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.attribution.journeys import JOURNEY_TOUCHES_SCHEMA, JOURNEYS_SCHEMA
from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA, IDENTITY_MERGES_SCHEMA
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
from crm_pipeline.kpis.aggregates import FIRST_ORDERS_SCHEMA
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_SCHEMA, REFUND_LEDGER_SCHEMA
from crm_pipeline.kpis.value import (
    EMAIL_SENDS_SCHEMA,
    KPIS,
    aov_arpu,
    daily_email_sends,
    ltv,
    net_of_refunds,
    refund_and_discount,
    revenue_per_recipient,
)
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import records, stored

D = dt.date(2026, 10, 31)
N = None
NO_CHANGES = PersonRemap.none()
KPI = {k.name: k for k in KPIS}


def day(offset: int) -> dt.date:
    return D - dt.timedelta(days=offset)


def order(order_id: str, person: str, offset: int, net: float, discount: float = 0.0,
          fully_refunded: bool = False) -> dict:
    """An order placed `offset` days before D (15:00 UTC), gross = net + discount (reporting currency)."""
    return {"order_id": order_id, "person_id": person, "ordered_at": pd.Timestamp(f"{day(offset)}T15:00", tz="UTC"),
            "order_day": day(offset), "currency": "USD", "net_revenue": net, "net_revenue_original": net,
            "gross_revenue": net + discount, "discount_amount": discount, "refunded_original": 0.0, "refunded": 0.0,
            "count_refunds": int(fully_refunded), "fully_refunded": fully_refunded, "categories": "shoes"}


def refund(refund_id: str, order_id: str, person: str, offset: int, order_offset: int, amount: float) -> dict:
    return {"refund_id": refund_id, "order_id": order_id, "person_id": person,
            "refunded_at": pd.Timestamp(f"{day(offset)}T12:00", tz="UTC"), "refund_day": day(offset),
            "order_day": day(order_offset), "amount": amount}


BOOK = stored(ORDER_BOOK_SCHEMA, [
    order("o1", "P1", 0, 100.0, discount=20.0),  # gross 120
    order("o2", "P2", 0, 50.0, fully_refunded=True),  # refunded on D: still an order placed on D
    order("o3", "P1", 29, 30.0),  # D-29: the first day of the 30-day window
    order("o4", "P3", 30, 200.0, discount=50.0),  # D-30: outside the 30-day window; partially refunded on D-5
    order("o5", "P4", 364, 10.0),  # D-364: still makes P4 active
    order("o6", "P5", 365, 10.0),  # D-365: too old to make P5 active
    order("o7", "P6", 100, 60.0, fully_refunded=True),  # P6's only order is fully refunded: not active
])
LEDGER = stored(REFUND_LEDGER_SCHEMA, [
    refund("r1", "o2", "P2", 0, 0, 50.0),  # full refund of o2, dated D
    refund("r2", "o4", "P3", 5, 30, 40.0),  # partial refund dated in the window, of an order placed before it
    refund("r3", "o7", "P6", 98, 100, 60.0),  # dated before the window
    refund("r4", "o5", "P4", 30, 364, 5.0),  # dated D-30: just outside the window
])
# active customers at D: P1 (o1, o3), P3 (o4, partial refunds never remove an order), P4 (o5 on D-364) = 3


def merge(kept: str, other: str) -> PersonRemap:
    return PersonRemap(pd.DataFrame({"change_date": [D], "kind": ["merge"], "kept_person_id": [kept],
                                     "other_person_id": [other], "reason": ["test"]},
                                    columns=IDENTITY_MERGES_SCHEMA.names))


def table(name: str, rows) -> pd.DataFrame:
    frame = finalise(KPI[name], rows)
    failed = [r.check_name for r in standard_checks(KPI[name], dg.AssetKey(name), frame) if not r.passed]
    assert failed == [], failed
    return frame


def test_net_of_refunds_deducts_the_refunds_dated_in_the_window_whatever_the_order_day():
    # D-29..D: orders o1 + o2 + o3 = 180; refunds r1 (50, dated D) + r2 (40, of o4 placed on D-30) = 90
    assert net_of_refunds(BOOK, LEDGER, day(29), D) == 90.0
    # D-30..D-30: o4 = 200, refund r4 = 5 (of an order placed on D-364)
    assert net_of_refunds(BOOK, LEDGER, day(30), day(30)) == 195.0


def test_aov_arpu_is_revenue_net_of_refunds_per_order_and_per_active_customer():
    frame = table("aov_arpu", aov_arpu(BOOK, LEDGER, NO_CHANGES, D))
    assert records(frame) == [
        # headline: aov 30d
        (N, N, 90.0, 3.0, 30.0, "currency"),
        # 1d: o1 + o2 = 150 - r1 50 = 100 over 2 orders (o2 refunded, still placed) = 50
        ("aov", "1d", 100.0, 2.0, 50.0, "currency"),
        # 30d: 180 - 90 = 90 over o1, o2, o3 (o3 on the boundary D-29; o4 on D-30 is out) = 30
        ("aov", "30d", 90.0, 3.0, 30.0, "currency"),
        # arpu: over the 3 active customers (P1, P3, P4)
        ("arpu", "1d", 100.0, 3.0, 100.0 / 3.0, "currency"),
        ("arpu", "30d", 90.0, 3.0, 30.0, "currency"),
    ]


def test_aov_arpu_on_a_day_without_orders_but_with_a_refund():
    # D-5: no order placed; r2 (40) dated that day: R 1d = -40, aov 1d = -40 / 0 = null. Active at D-5
    # (orders in D-369..D-5 non-refunded): P1 (o3), P3 (o4), P4 (o5), P5 (o6 on D-365) = 4: arpu 1d = -10.
    # 30d (D-34..D-5): o3 30 + o4 200 - r2 40 - r4 5 = 185 over 2 orders
    frame = table("aov_arpu", aov_arpu(BOOK, LEDGER, NO_CHANGES, day(5)))
    assert records(frame) == [
        (N, N, 185.0, 2.0, 92.5, "currency"),
        ("aov", "1d", -40.0, 0.0, N, "currency"),
        ("aov", "30d", 185.0, 2.0, 92.5, "currency"),
        ("arpu", "1d", -40.0, 4.0, -10.0, "currency"),
        ("arpu", "30d", 185.0, 4.0, 46.25, "currency"),
    ]


def test_arpu_counts_persons_merged_later_once():
    # P4 merged into P1 after D: active customers P1, P3 = 2; arpu 30d = 90 / 2
    frame = table("aov_arpu", aov_arpu(BOOK, LEDGER, merge("P1", "P4"), D))
    assert records(frame.loc[frame["metric"] == "arpu"]) == [("arpu", "1d", 100.0, 2.0, 50.0, "currency"),
                                                             ("arpu", "30d", 90.0, 2.0, 45.0, "currency")]


def test_refund_and_discount_over_the_orders_and_refunds_of_the_window():
    frame = table("refund_and_discount", refund_and_discount(BOOK, LEDGER, D))
    assert records(frame) == [
        # refund_rate: refunds dated D-29..D (r1 50 + r2 40, r2 of an order placed before the window) / net revenue
        # of o1, o2, o3 (180, refunds not deducted) = 0.5
        (N, 90.0, 180.0, 0.5, "ratio"),
        # discount_amount / gross_revenue over o1, o2, o3: 20 / (120 + 50 + 30) = 0.1
        ("discount_to_gross", 20.0, 200.0, 0.1, "ratio"),
        # orders with a discount: o1 of 3
        ("discounted_order_share", 1.0, 3.0, 1.0 / 3.0, "ratio"),
        ("refund_rate", 90.0, 180.0, 0.5, "ratio"),
    ]


def test_a_refund_rate_above_one_only_warns():
    # D-1: orders in D-30..D-1 are o3 (30) and o4 (200); refunds dated there: r2 40 and r4 5 -> 45 / 230
    # (o4 on D-30 is in this window, r1 dated D is not)
    frame = table("refund_and_discount", refund_and_discount(BOOK, LEDGER, day(1)))
    assert records(frame.iloc[:1]) == [(N, 45.0, 230.0, 45.0 / 230.0, "ratio")]
    # refunds above the window's revenue: a book holding only o3 (30) with the refunds r1 + r2 (90) dated in
    # D-29..D = 3, outside [0, 1]: refund_rate is unbounded (docs/outputs.md section 1), its bound check only warns
    high = finalise(KPI["refund_and_discount"], refund_and_discount(BOOK.loc[BOOK["order_id"] == "o3"], LEDGER, D))
    assert records(high.iloc[:1]) == [(N, 90.0, 30.0, 3.0, "ratio")]
    bounds = next(r for r in standard_checks(KPI["refund_and_discount"], dg.AssetKey("k"), high)
                  if r.check_name == "ratios_within_bounds")
    assert not bounds.passed and bounds.severity == dg.AssetCheckSeverity.WARN


# ---------------------------------------------------------------------------------------------------------------
# ltv: the book above plus orders that reach the bucket and window boundaries

SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="UTC",
                    start_date=day(600))
LTV_BOOK = pd.concat([BOOK, stored(ORDER_BOOK_SCHEMA, [
    order("o8", "P7", 90, 20.0),  # P7's first order 90 days before D: tenure 90-364
    *(order(f"o9{i}", "P8", 89, 15.0) for i in "abcd"),  # P8: 4 orders (4-6) on D-89: tenure 0-89
    order("o10", "P9", 547, 70.0),  # D-547: the first day of the 18-month window, outside the 12-month one
    order("o11", "P1", 400, 40.0),  # P1's first order: only in the 18-month window
])], ignore_index=True)
# each person's first order: P5's on D-365 is 365 days old (365+); P4's on D-364 (90-364)
FIRST_ORDERS = stored(FIRST_ORDERS_SCHEMA, [
    {"person_id": p, "first_order_id": f"f{p}", "first_ordered_at": pd.Timestamp(f"{day(offset)}T15:00", tz="UTC")}
    for p, offset in (("P1", 400), ("P2", 0), ("P3", 30), ("P4", 364), ("P5", 365), ("P6", 100), ("P7", 90),
                      ("P8", 89), ("P9", 547))])


def test_ltv_by_window_frequency_and_tenure():
    # 12m (D-364..D): persons with an order non-refunded at D: P1 (o1, o3: 2), P3 (o4: 1), P4 (o5: 1),
    # P7 (o8: 1), P8 (4); P2 and P6 only have fully refunded orders: out, with their refunds r1 and r3.
    # Per person: P1 100 + 30 = 130; P3 200 - r2 40 = 160; P4 10 - r4 5 = 5; P7 20; P8 60 -> 375 / 5 = 75.
    # 18m (D-547..D): + P1's o11 (40) = 170, + P5 (o6) 10, + P9 (o10 on D-547) 70 -> 495 / 7.
    # Tenure (days from the first order to D): P3 30, P8 89 -> 0-89; P7 90, P4 364 -> 90-364; P1 400,
    # P5 365, P9 547 -> 365+.
    frame = table("ltv", ltv(LTV_BOOK, LEDGER, FIRST_ORDERS, NO_CHANGES, D, SETTINGS))
    assert records(frame) == [
        (N, N, N, 375.0, 5.0, 75.0, "currency"),
        ("12m", N, N, 375.0, 5.0, 75.0, "currency"),
        ("12m", N, "0-89", 220.0, 2.0, 110.0, "currency"),  # P3 160 + P8 60
        ("12m", N, "365+", 130.0, 1.0, 130.0, "currency"),  # P1
        ("12m", N, "90-364", 25.0, 2.0, 12.5, "currency"),  # P4 5 + P7 20
        ("12m", "1", N, 185.0, 3.0, 185.0 / 3.0, "currency"),  # P3, P4, P7
        ("12m", "2-3", N, 130.0, 1.0, 130.0, "currency"),  # P1
        ("12m", "4-6", N, 60.0, 1.0, 60.0, "currency"),  # P8
        ("12m", "7+", N, 0.0, 0.0, N, "currency"),
        ("18m", N, N, 495.0, 7.0, 495.0 / 7.0, "currency"),
        ("18m", N, "0-89", 220.0, 2.0, 110.0, "currency"),
        ("18m", N, "365+", 250.0, 3.0, 250.0 / 3.0, "currency"),  # P1 170 + P5 10 + P9 70
        ("18m", N, "90-364", 25.0, 2.0, 12.5, "currency"),
        ("18m", "1", N, 265.0, 5.0, 53.0, "currency"),  # P3 160, P4 5, P5 10, P7 20, P9 70
        ("18m", "2-3", N, 170.0, 1.0, 170.0, "currency"),  # P1: o1, o3, o11
        ("18m", "4-6", N, 60.0, 1.0, 60.0, "currency"),
        ("18m", "7+", N, 0.0, 0.0, N, "currency"),
    ]


def test_ltv_a_fully_refunded_order_of_a_customer_cancels_out_and_is_not_counted():
    # P3 also bought o12 (25) on D-10, fully refunded on D-8 (r5 25): its revenue and refund cancel (P3 stays at
    # 200 - 40 = 160) and it is no order non-refunded at D (P3 stays in frequency bucket 1)
    book = pd.concat([LTV_BOOK, stored(ORDER_BOOK_SCHEMA, [order("o12", "P3", 10, 25.0, fully_refunded=True)])],
                     ignore_index=True)
    ledger = pd.concat([LEDGER, stored(REFUND_LEDGER_SCHEMA, [refund("r5", "o12", "P3", 8, 10, 25.0)])],
                       ignore_index=True)
    frame = table("ltv", ltv(book, ledger, FIRST_ORDERS, NO_CHANGES, D, SETTINGS))
    months12 = frame.loc[(frame["window"] == "12m") & frame["tenure_bucket"].isna()]
    assert records(months12.iloc[:2]) == [("12m", N, N, 375.0, 5.0, 75.0, "currency"),
                                          ("12m", "1", N, 185.0, 3.0, 185.0 / 3.0, "currency")]  # P3, P4, P7
    assert records(frame) == records(table("ltv", ltv(LTV_BOOK, LEDGER, FIRST_ORDERS, NO_CHANGES, D, SETTINGS)))


def test_ltv_puts_every_person_in_one_bucket_of_each_kind_also_after_a_merge():
    # P9 merged into P5 after D: one person with o6 (D-365) and o10 (D-547): 2 orders (2-3), 80, first order on
    # D-547 (365+). 18m: 6 persons, numerator unchanged (495)
    frame = ltv(LTV_BOOK, LEDGER, FIRST_ORDERS, merge("P5", "P9"), D, SETTINGS)
    frame = table("ltv", frame)
    months18 = frame.loc[frame["window"] == "18m"]
    assert records(months18.loc[months18["frequency_bucket"].isin(["1", "2-3"])]) == [
        ("18m", "1", N, 185.0, 3.0, 185.0 / 3.0, "currency"),  # P3, P4, P7
        ("18m", "2-3", N, 250.0, 2.0, 125.0, "currency"),  # P1 170, P5 + P9 80
    ]
    for window in ("12m", "18m"):
        rows = frame.loc[frame["window"] == window]
        whole = rows.loc[rows["frequency_bucket"].isna() & rows["tenure_bucket"].isna()].iloc[0]
        for dimension in ("frequency_bucket", "tenure_bucket"):
            buckets = rows.loc[rows[dimension].notna()]
            assert buckets["denominator"].sum() == whole["denominator"], (window, dimension)
            assert buckets["numerator"].sum() == pytest.approx(whole["numerator"]), (window, dimension)
    assert records(months18.iloc[:1]) == [("18m", N, N, 495.0, 6.0, 82.5, "currency")]


def test_ltv_tenure_counts_days_in_the_reporting_timezone():
    # P8's first order at 03:00 UTC on D-89 is 23:00 on D-90 in New York: tenure 90, no longer 0-89
    first = FIRST_ORDERS.copy()
    first.loc[first["person_id"] == "P8", "first_ordered_at"] = pd.Timestamp(f"{day(89)}T03:00", tz="UTC")
    new_york = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://",
                        timezone="America/New_York", start_date=day(600))
    frame = table("ltv", ltv(LTV_BOOK, LEDGER, first, NO_CHANGES, D, new_york))
    tenure = frame.loc[(frame["window"] == "12m") & frame["tenure_bucket"].notna()]
    assert records(tenure) == [("12m", N, "0-89", 160.0, 1.0, 160.0, "currency"),  # P3
                               ("12m", N, "365+", 130.0, 1.0, 130.0, "currency"),
                               ("12m", N, "90-364", 85.0, 3.0, 85.0 / 3.0, "currency")]  # P4, P7, P8


# ---------------------------------------------------------------------------------------------------------------
# revenue_per_recipient


def at(offset: int, hour: str) -> pd.Timestamp:
    return pd.Timestamp(f"{day(offset)}T{hour}", tz="UTC")


def sends(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    """(campaign, person, days before D, hh:mm of the first send that day) as the 30-day window input."""
    return stored(EMAIL_SENDS_SCHEMA, [{"campaign_id": c, "person_id": p, "first_sent_at": at(o, h), "count_sends": 1,
                                        "date": str(day(o))} for c, p, o, h in rows], window=True)


def journeys(rows: list[tuple[str, str, int, str, float, tuple[str | None, ...]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(order, person, days before D, hh:mm, net revenue, campaign of each journey touch in order): the journeys and
    journey touches of the 30-day window."""
    orders = stored(JOURNEYS_SCHEMA, [
        {"order_id": o, "person_id": p, "ordered_at": at(d, h), "net_revenue": net, "count_touches": len(t),
         "count_channels": min(len(t), 1), "date": str(day(d))} for o, p, d, h, net, t in rows], window=True)
    touches = stored(JOURNEY_TOUCHES_SCHEMA, [
        {"order_id": o, "touch_rank": rank, "touch_count": len(t), "touch_at": at(d + 1, "12:00"),
         "order_at": at(d, h), "channel": "email", "campaign_id": campaign, "event_id": f"{o}-{rank}",
         "date": str(day(d))} for o, p, d, h, net, t in rows for rank, campaign in enumerate(t, start=1)], window=True)
    return orders, touches


SENDS = sends([
    ("c1", "P1", 10, "09:00"), ("c1", "P1", 5, "08:00"),  # P1's first send of c1 in the window: D-10
    ("c1", "P2", 29, "08:00"),  # the window's first day
    ("c1", "P3", 3, "10:00"),  # P3's only order's last touch carries no campaign
    ("c2", "P4", 1, "10:00"),  # c2's only recipient never ordered
    ("c3", "P1", 20, "10:00"),
])
JOURNEYS, TOUCHES = journeys([
    ("j1", "P1", 5, "12:00", 100.0, ("c3", "c1")),  # after the first send of c1, last touch c1: c1
    ("j2", "P1", 12, "12:00", 40.0, ("c1",)),  # before P1's first send of c1: no credit
    ("j3", "P2", 29, "07:00", 30.0, ("c1",)),  # an hour before P2's send on the same day: no credit
    ("j4", "P2", 29, "09:00", 25.0, ("c1",)),  # an hour after it: c1
    ("j5", "P1", 2, "12:00", 60.0, ("c1", "c3")),  # last touch c3: c3, not c1
    ("j6", "P5", 4, "12:00", 80.0, ("c1",)),  # P5 received no send: nobody's
    ("j7", "P3", 1, "12:00", 50.0, ("c1", None)),  # last touch without a campaign: nobody's
    ("j8", "P4", 1, "12:00", 70.0, ()),  # no touches
])


def test_revenue_per_recipient_credits_the_last_touch_campaign_after_the_first_send():
    frame = table("revenue_per_recipient", revenue_per_recipient(SENDS, JOURNEYS, TOUCHES, NO_CHANGES))
    assert records(frame) == [
        # pooled over the 5 (campaign, person) pairs: 100 + 25 + 60 = 185
        (N, 185.0, 5.0, 37.0, "currency"),
        ("c1", 125.0, 3.0, 125.0 / 3.0, "currency"),  # j1 100 + j4 25 over P1, P2, P3
        ("c2", 0.0, 1.0, 0.0, "currency"),  # a campaign whose recipient never ordered
        ("c3", 60.0, 1.0, 60.0, "currency"),  # j5
    ]


def test_revenue_per_recipient_in_a_window_without_orders():
    # sends but no order in 30 days (empty journeys): every campaign 0 per recipient, pooled 0 / 5
    frame = table("revenue_per_recipient", revenue_per_recipient(SENDS, JOURNEYS.iloc[:0], TOUCHES.iloc[:0],
                                                                 NO_CHANGES))
    assert records(frame) == [(N, 0.0, 5.0, 0.0, "currency"), ("c1", 0.0, 3.0, 0.0, "currency"),
                              ("c2", 0.0, 1.0, 0.0, "currency"), ("c3", 0.0, 1.0, 0.0, "currency")]


def test_revenue_per_recipient_follows_persons_merged_later():
    # P6 got c2; P7 ordered with c2 as last touch; P7 merged into P6 after D: one recipient who ordered
    extra_sends = pd.concat([SENDS, sends([("c2", "P6", 1, "09:00")])], ignore_index=True)
    orders, touches = journeys([("j9", "P7", 0, "10:00", 20.0, ("c2",))])
    orders, touches = (pd.concat([JOURNEYS, orders], ignore_index=True),
                       pd.concat([TOUCHES, touches], ignore_index=True))
    unmerged = table("revenue_per_recipient", revenue_per_recipient(extra_sends, orders, touches, NO_CHANGES))
    assert records(unmerged.loc[unmerged["campaign_id"] == "c2"]) == [("c2", 0.0, 2.0, 0.0, "currency")]
    merged = table("revenue_per_recipient", revenue_per_recipient(extra_sends, orders, touches, merge("P6", "P7")))
    assert records(merged.iloc[:1]) == [(N, 205.0, 6.0, 205.0 / 6.0, "currency")]
    assert records(merged.loc[merged["campaign_id"] == "c2"]) == [("c2", 20.0, 2.0, 10.0, "currency")]


def test_daily_email_sends_keeps_the_first_send_per_campaign_and_person():
    events = stored(CLEAN_SCHEMAS["events"], [
        {"event_id": "e1", "occurred_at": at(0, "10:00"), "event_type": "email_send", "campaign_id": "c1",
         "customer_id": "C1"},
        {"event_id": "e2", "occurred_at": at(0, "08:00"), "event_type": "email_send", "campaign_id": "c1",
         "customer_id": "C1"},
        {"event_id": "e3", "occurred_at": at(0, "09:00"), "event_type": "email_send", "campaign_id": None,
         "customer_id": "C1"},  # no campaign: left out
        {"event_id": "e4", "occurred_at": at(0, "09:00"), "event_type": "email_open", "campaign_id": "c1",
         "customer_id": "C1"},  # not a send
        {"event_id": "e5", "occurred_at": at(0, "11:00"), "event_type": "email_send", "campaign_id": "c2",
         "customer_id": "C9"},  # no person: left out
    ])
    identity_map = stored(IDENTITY_MAP_SCHEMA, [
        {"identifier_type": "customer_id", "identifier": "C1", "person_id": "P1", "is_refused": False}])
    assert records(daily_email_sends(events, identity_map)) == [("c1", "P1", at(0, "08:00"), 2)]


@pytest.mark.parametrize("name, seed, window_days", [
    ("aov_arpu", "002", 365),  # active customers at D look back 365 days
    ("refund_and_discount", "002", 30),
    ("ltv", "000", 548),
    ("revenue_per_recipient", "002", 60),  # sends of D-29..D, their orders' journeys look back 30 days more
])
def test_declarations_name_their_seed_and_how_far_back_they_read(name: str, seed: str, window_days: int):
    kpi = KPI[name]
    assert (kpi.family, kpi.seed, kpi.window_days) == ("Monetise", seed, window_days)
    assert kpi.description.startswith("One row per")
