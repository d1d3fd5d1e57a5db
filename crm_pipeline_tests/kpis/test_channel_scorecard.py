"""channel_scorecard on a hand-built month: two models with credits (first_touch, linear), three credited channels
(email, ppc, social), a channel with spend and no credit (display), an order without touches, a reactivated buyer
(and one whose earlier order was refunded only after the day before), acquired_ltv with refunds, top-decile ties
and sign-ups 7 d - 1 s, 7 d and 7 d + 1 s after a touch. Every number is worked out by hand in the comments."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.attribution.credits import ORDER_ATTRIBUTION_SCHEMA
from crm_pipeline.attribution.journeys import TOUCHES_SCHEMA
from crm_pipeline.attribution.models import MODELS
from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA, IDENTITY_MERGES_SCHEMA
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
from crm_pipeline.kpis import aggregates, scorecard_channels, states
from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.scorecard_channels import KPIS, METRICS
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import records, stored

KPI = KPIS[0]
D = dt.date(2026, 10, 31)  # window D-29..D = 2026-10-02..2026-10-31; acquired: first orders in 2025-11-01..D
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="UTC",
                    start_date=dt.date(2025, 1, 1))
NO_CHANGES = PersonRemap.none()
N = None


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def order(order_id: str, person: str, at: str, net: float, refunded: float = 0.0) -> dict:
    when = ts(at)
    return {"order_id": order_id, "person_id": person, "ordered_at": when, "order_day": when.date(),
            "currency": "USD", "net_revenue": net, "net_revenue_original": net, "gross_revenue": net,
            "discount_amount": 0.0, "cost_of_goods": None, "refunded_original": refunded, "refunded": refunded,
            "count_refunds": int(refunded > 0), "fully_refunded": refunded >= net - 0.005, "categories": None}


BOOK = stored(states.ORDER_BOOK_SCHEMA, [
    # P1: first order o1 in the window; o3 fully refunded on 10-25: P1's acquired value = 100 + 60 - 60 = 100
    order("o1", "P1", "2026-10-05T10:00", 100.0),
    order("o3", "P1", "2026-10-20T10:00", 60.0, refunded=60.0),
    # P2: first order o0 (2025-10-15, before D-364: not acquired); o0r fully refunded on 08-05, before 10-09.
    # On X = 10-10 P2's latest order non-refunded at X-1 is o0 (2025-10-15, in 2025-10-10..07-11): a win-back
    # candidate the day before, so o2 (P2's first order that day, not o2b) is a reactivation
    order("o0", "P2", "2025-10-15T10:00", 90.0),
    order("o0r", "P2", "2026-08-01T10:00", 80.0, refunded=80.0),
    order("o2", "P2", "2026-10-10T12:00", 200.0),
    order("o2b", "P2", "2026-10-10T18:00", 40.0),
    # P3: first order q1 (06-01, acquired) fully refunded only on 10-20, so still non-refunded at X-1 = 10-14:
    # latest 06-01 <= 10-14 - 90 = 07-16: q2 is a reactivation. Acquired value = 30 + 50 - 30 = 50
    order("q1", "P3", "2026-06-01T10:00", 30.0, refunded=30.0),
    order("q2", "P3", "2026-10-15T10:00", 50.0),
    # P4: r1 (09-15, acquired, outside the window) is within 90 d of o4's day: no reactivation. Value 70 + 80
    order("r1", "P4", "2026-09-15T10:00", 70.0),
    order("o4", "P4", "2026-10-20T10:00", 80.0),
    # P5: an order without touches on D itself: (unattributed); P5's first order, acquired, value 10
    order("o5", "P5", "2026-10-31T23:00", 10.0),
    # P7: one second before the window (D-30 23:59:59): not in any window metric, so affiliate gets no row
    order("ob", "P7", "2026-10-01T23:59:59", 500.0),
])[list(scorecard_channels.BOOK_COLUMNS)]

LEDGER = stored(states.REFUND_LEDGER_SCHEMA, [
    {"refund_id": f"f{i}", "order_id": o, "person_id": p, "refunded_at": ts(at), "refund_day": ts(at).date(),
     "order_day": dt.date(2026, 1, 1), "amount": amount}
    for i, (o, p, at, amount) in enumerate([("o3", "P1", "2026-10-25T10:00", 60.0),
                                            ("o0r", "P2", "2026-08-05T10:00", 80.0),
                                            ("q1", "P3", "2026-10-20T10:00", 30.0)])])[["order_id", "refund_day"]]

FIRST_ORDERS = stored(aggregates.FIRST_ORDERS_SCHEMA, [
    {"person_id": p, "first_order_id": o, "first_ordered_at": ts(at)}
    for p, o, at in [("P1", "o1", "2026-10-05T10:00"), ("P2", "o0", "2025-10-15T10:00"),
                     ("P3", "q1", "2026-06-01T10:00"), ("P4", "r1", "2026-09-15T10:00"),
                     ("P5", "o5", "2026-10-31T23:00"), ("P7", "ob", "2026-10-01T23:59:59")]])

CREDITS = {  # order: (first_touch channel, linear credits)
    "o1": ("email", {"email": 0.5, "ppc": 0.5}), "o3": ("ppc", {"ppc": 1.0}),
    "o2": ("social", {"social": 0.5, "email": 0.5}), "o2b": ("email", {"email": 1.0}),
    "q1": ("social", {"social": 1.0}), "q2": ("ppc", {"ppc": 0.5, "social": 0.5}),
    "r1": ("ppc", {"ppc": 1.0}), "o4": ("email", {"email": 0.5, "ppc": 0.5}),
    "o5": ("(unattributed)", {"(unattributed)": 1.0}),
    "ob": ("affiliate", {"affiliate": 1.0}),
}
NET = dict(zip(BOOK["order_id"], BOOK["net_revenue"], strict=True))


def attribution_rows() -> list[dict]:
    rows = []
    for order_id, (first, linear) in CREDITS.items():
        for model, credits in (("first_touch", {first: 1.0}), ("linear", linear)):
            rows += [{"order_id": order_id, "model": model, "channel": c, "campaign_id": None, "credit": credit,
                      "attributed_revenue": credit * NET[order_id], "date": "2026-10-31"}
                     for c, credit in credits.items()]
    return rows


ALL_CREDITS = stored(ORDER_ATTRIBUTION_SCHEMA, attribution_rows(), window=True)[
    ["order_id", "model", "channel", "credit", "attributed_revenue", "date"]]
# the KPI reads order_attribution for the window's orders (placed 2026-10-02..D) and the credits of older first
# orders from the first_order_credits state
IN_WINDOW = BOOK.loc[(BOOK["ordered_at"] >= ts("2026-10-02T00:00")).to_numpy(), "order_id"]
ATTRIBUTION = ALL_CREDITS.loc[ALL_CREDITS["order_id"].isin(IN_WINDOW).to_numpy()].reset_index(drop=True)
FIRST_CREDITS = scorecard_channels.update_first_order_credits(None, ALL_CREDITS, FIRST_ORDERS, D)


def cost(day: str, cost_type: str, objective: str, channel: str | None, amount: float) -> dict:
    return {"cost_date": dt.date.fromisoformat(day), "cost_type": cost_type, "objective": objective,
            "channel": channel, "amount": amount, "currency": "USD", "date": day}


COSTS = stored(CLEAN_SCHEMAS["costs"], [
    cost("2026-10-01", "media", "acquisition", "ppc", 1000.0),  # the day before the window: out
    cost("2026-10-02", "media", "acquisition", "ppc", 100.0),  # the window's first day: in
    cost("2026-10-15", "media", "retention", "email", 40.0),  # every objective counts
    cost("2026-10-20", "tools", "retention", "email", 500.0),  # not media: out
    cost("2026-10-31", "media", "brand", "display", 30.0),  # spend and no credit: display gets rows
], window=True)[["cost_date", "cost_type", "objective", "channel", "amount", "date"]]


def touch(event_id: str, person: str, channel: str, event_type: str, at: str, view_through: bool = False) -> dict:
    return {"event_id": event_id, "touch_at": ts(at), "event_type": event_type, "channel": channel,
            "person_id": person, "is_view_through": view_through, "date": at[:10]}


TOUCHES = stored(TOUCHES_SCHEMA, [
    touch("t1", "P1", "email", "email_click", "2026-10-05T09:00"),
    touch("t2", "P1", "ppc", "session_start", "2026-10-05T09:30"),
    touch("t3", "P2", "social", "session_start", "2026-10-10T11:00"),
    touch("t4", "P2", "social", "session_start", "2026-10-11T11:00"),
    touch("t5", "P3", "ppc", "ad_click", "2026-10-14T10:00"),
    touch("t6", "P4", "email", "session_start", "2026-10-19T10:00"),
    touch("t7", "P4", "email", "session_start", "2026-10-20T10:00"),
    touch("t8", "P5", "social", "ad_click", "2026-09-30T10:00"),  # before the window: sign-ups only
    touch("t9", "P3", "email", "email_open", "2026-10-14T10:00", view_through=True),  # never a touch here
], window=True)[["person_id", "channel", "event_type", "touch_at", "is_view_through", "date"]]

ENGAGEMENT = stored(aggregates.PERSON_ENGAGEMENT_SCHEMA, [
    {"person_id": p, "channel": c, "count_engagements": 1, "date": day}
    for p, c, day in [("P1", "email", "2026-10-05"), ("P1", "ppc", "2026-10-05"), ("P1", "social", "2026-10-06"),
                      ("P1", "email", "2026-10-07"),  # a channel seen twice counts once
                      ("P2", "email", "2026-10-10"), ("P2", "social", "2026-10-10"), ("P2", "sms", "2026-10-11"),
                      ("P3", "email", "2026-10-14"), ("P4", "ppc", "2026-10-19"), ("P5", "social", "2026-10-30")]
], window=True)[["person_id", "channel", "date"]]


def signup(event_id: str, person: str | None, event_type: str, at: str) -> dict:
    return {"event_id": event_id, "person_id": person, "event_type": event_type, "occurred_at": ts(at),
            "date": at[:10]}


SIGNUPS = stored(scorecard_channels.ASSET_SIGNUPS_SCHEMA, [
    signup("s1", "P5", "email_subscribe", "2026-10-07T10:00"),  # exactly 7 d after t8: t - 7 d < ts fails, out
    signup("s2", "P5", "app_install", "2026-10-07T09:59:59"),  # 7 d - 1 s after t8: social
    signup("s3", "P5", "sms_optin", "2026-10-07T10:00:01"),  # 7 d + 1 s after t8: out
    signup("s4", "P1", "sms_optin", "2026-10-05T09:00"),  # the same instant as t1 (email): in; t2 is later
    signup("s5", None, "social_follow", "2026-10-12T10:00"),  # no person: denominator only
    signup("s6", "P2", "mail_subscribe", "2026-10-01T23:00"),  # the day before the window: out
], window=True)


def scorecard(remap: PersonRemap = NO_CHANGES, **changes: pd.DataFrame) -> pd.DataFrame:
    inputs = {"order_attribution": ATTRIBUTION, "first_order_credits": FIRST_CREDITS, "order_book": BOOK, "refund_ledger": LEDGER,
              "first_orders": FIRST_ORDERS, "costs": COSTS, "touches": TOUCHES, "person_engagement": ENGAGEMENT,
              "asset_signups": SIGNUPS, **changes}
    frame = finalise(KPI, KPI.compute(**inputs, remap=remap, day=D, settings=SETTINGS))
    failed = [c.check_name for c in standard_checks(KPI, kpi_key(KPI), frame)
              if not c.passed and c.severity != dg.AssetCheckSeverity.WARN]
    assert failed == []
    return frame


def cells(frame: pd.DataFrame) -> dict[tuple, tuple]:
    """{(model, channel, metric): (numerator, denominator, value, unit)}."""
    return {row[:3]: row[3:] for row in records(frame)}


def test_the_total_and_the_headline_are_the_net_revenue_of_the_window():
    # o1 100 + o3 60 + o2 200 + o2b 40 + q2 50 + o4 80 + o5 10 = 540 (refunds not deducted; o0, o0r, q1, r1 are
    # older than D-29, ob is one second before it)
    got = cells(scorecard())
    assert got[(N, N, N)] == (540.0, N, 540.0, "currency")
    assert got[(N, N, "attributed_revenue")] == (540.0, N, 540.0, "currency")


def test_channel_rows_per_model_are_the_credited_channels_plus_the_channels_with_spend():
    frame = scorecard()
    channels = frame.dropna(subset=["model"]).groupby("model")["channel"].agg(lambda c: sorted(set(c))).to_dict()
    # credited under first_touch and linear: (unattributed), email, ppc, social; spend: display, email, ppc.
    # affiliate's only credit is ob's, one second before the window: no affiliate row
    assert channels["first_touch"] == ["(unattributed)", "display", "email", "ppc", "social"]
    assert channels["linear"] == ["(unattributed)", "display", "email", "ppc", "social"]
    # the six models without credits here: only the channels with media spend
    for model in set(MODELS) - {"first_touch", "linear"}:
        assert channels[model] == ["display", "email", "ppc"]
    # every listed (model, channel) has all ten metrics
    per_pair = frame.dropna(subset=["model"]).groupby(["model", "channel"])["metric"].agg(sorted)
    assert all(m == sorted(METRICS) for m in per_pair)
    assert len(frame) == 2 + 10 * (5 + 5 + 6 * 3)


def test_credit_metrics_first_touch():
    got = cells(scorecard())
    ft = "first_touch"
    # email: o1 100 + o2b 40 + o4 80 = 220, 3 orders, one first order (o1), no reactivation (o2b is P2's second
    # order of 10-10)
    assert got[(ft, "email", "attributed_revenue")] == (220.0, N, 220.0, "currency")
    assert got[(ft, "email", "conversions")] == (3.0, N, 3.0, "count")
    assert got[(ft, "email", "new_customers")] == (1.0, N, 1.0, "count")
    assert got[(ft, "email", "reactivated_customers")] == (0.0, N, 0.0, "count")
    # ppc: o3 60 + q2 50 = 110; q2 is P3's reactivation (q1, refunded only on 10-20, still counts at 10-14)
    assert got[(ft, "ppc", "attributed_revenue")] == (110.0, N, 110.0, "currency")
    assert got[(ft, "ppc", "conversions")] == (2.0, N, 2.0, "count")
    assert got[(ft, "ppc", "new_customers")] == (0.0, N, 0.0, "count")
    assert got[(ft, "ppc", "reactivated_customers")] == (1.0, N, 1.0, "count")
    # social: o2 200, P2's reactivation (o0r refunded before 10-09 does not count; o0 is 2025-10-15)
    assert got[(ft, "social", "attributed_revenue")] == (200.0, N, 200.0, "currency")
    assert got[(ft, "social", "reactivated_customers")] == (1.0, N, 1.0, "count")
    assert got[(ft, "social", "new_customers")] == (0.0, N, 0.0, "count")
    # (unattributed): o5 10, P5's first order
    assert got[(ft, "(unattributed)", "attributed_revenue")] == (10.0, N, 10.0, "currency")
    assert got[(ft, "(unattributed)", "new_customers")] == (1.0, N, 1.0, "count")
    # display: spend only
    assert got[(ft, "display", "attributed_revenue")] == (0.0, N, 0.0, "currency")
    assert got[(ft, "display", "conversions")] == (0.0, N, 0.0, "count")


def test_credit_metrics_linear():
    got = cells(scorecard())
    li = "linear"
    # email: o1 .5 x 100 + o2 .5 x 200 + o2b 1 x 40 + o4 .5 x 80 = 50 + 100 + 40 + 40 = 230; credits 2.5;
    # new: o1 .5; reactivated: o2 .5
    assert got[(li, "email", "attributed_revenue")] == (230.0, N, 230.0, "currency")
    assert got[(li, "email", "conversions")] == (2.5, N, 2.5, "count")
    assert got[(li, "email", "new_customers")] == (0.5, N, 0.5, "count")
    assert got[(li, "email", "reactivated_customers")] == (0.5, N, 0.5, "count")
    # ppc: o1 50 + o3 60 + q2 25 + o4 40 = 175; credits .5 + 1 + .5 + .5 = 2.5; new .5 (o1); reactivated .5 (q2)
    assert got[(li, "ppc", "attributed_revenue")] == (175.0, N, 175.0, "currency")
    assert got[(li, "ppc", "conversions")] == (2.5, N, 2.5, "count")
    assert got[(li, "ppc", "new_customers")] == (0.5, N, 0.5, "count")
    assert got[(li, "ppc", "reactivated_customers")] == (0.5, N, 0.5, "count")
    # social: o2 100 + q2 25 = 125; credits 1; reactivated o2 .5 + q2 .5 = 1
    assert got[(li, "social", "attributed_revenue")] == (125.0, N, 125.0, "currency")
    assert got[(li, "social", "conversions")] == (1.0, N, 1.0, "count")
    assert got[(li, "social", "reactivated_customers")] == (1.0, N, 1.0, "count")
    # the channels add up to the headline: 230 + 175 + 125 + 10 = 540
    frame = scorecard()
    revenue = frame.loc[(frame["model"] == li) & (frame["metric"] == "attributed_revenue"), "value"].sum()
    assert revenue == pytest.approx(540.0)


def test_acquired_ltv_weights_each_acquired_persons_value_by_the_credit_of_their_first_order():
    got = cells(scorecard())
    # acquired (first order in 2025-11-01..D): P1 (o1, 100 + 60 - 60 = 100), P3 (q1, 30 + 50 - 30 = 50),
    # P4 (r1, outside the 30 d window, 70 + 80 = 150), P5 (o5, 10); P2's first order is 2025-10-15: not acquired
    ft, li = "first_touch", "linear"
    assert got[(ft, "email", "acquired_ltv")] == (100.0, 1.0, 100.0, "currency")  # o1
    assert got[(ft, "social", "acquired_ltv")] == (50.0, 1.0, 50.0, "currency")  # q1
    assert got[(ft, "ppc", "acquired_ltv")] == (150.0, 1.0, 150.0, "currency")  # r1
    assert got[(ft, "(unattributed)", "acquired_ltv")] == (10.0, 1.0, 10.0, "currency")  # o5
    assert got[(ft, "display", "acquired_ltv")] == (0.0, 0.0, N, "currency")  # no first order: 0 / 0
    # linear ppc: (.5 x 100 (o1) + 1 x 150 (r1)) / 1.5 = 200 / 1.5; email: .5 x 100 / .5 = 100
    num, den, value, unit = got[(li, "ppc", "acquired_ltv")]
    assert (num, den, unit) == (200.0, 1.5, "currency") and value == pytest.approx(200.0 / 1.5)
    assert got[(li, "email", "acquired_ltv")] == (50.0, 0.5, 100.0, "currency")


def test_spend_and_roas():
    got = cells(scorecard())
    # media in 10-02..10-31, every objective: ppc 100 (not the 1000 of 10-01), email 40 (not the tools 500),
    # display 30; social and (unattributed) 0
    for model in MODELS:
        assert got[(model, "ppc", "spend")] == (100.0, N, 100.0, "currency")
        assert got[(model, "email", "spend")] == (40.0, N, 40.0, "currency")
        assert got[(model, "display", "spend")] == (30.0, N, 30.0, "currency")
        assert got[(model, "display", "roas")] == (0.0, 30.0, 0.0, "ratio")
    assert got[("first_touch", "email", "roas")] == (220.0, 40.0, 5.5, "ratio")
    assert got[("first_touch", "ppc", "roas")] == (110.0, 100.0, 1.1, "ratio")
    assert got[("linear", "email", "roas")] == (230.0, 40.0, 5.75, "ratio")
    assert got[("linear", "social", "spend")] == (0.0, N, 0.0, "currency")
    assert got[("linear", "social", "roas")] == (125.0, 0.0, N, "ratio")  # no spend: null, never inf
    assert got[("last_touch", "ppc", "roas")] == (0.0, 100.0, 0.0, "ratio")  # no credits under last_touch here


def test_reach_metrics_are_the_same_under_every_model():
    got = cells(scorecard())
    # omni: distinct engagement channels P1 3, P2 3, P3 1, P4 1, P5 1 -> sorted 1,1,1,3,3: p90 at rank 3.6 =
    # 3 + .6 x (3 - 3) = 3: the decile is the tie P1, P2 (2). Touches in the window (t9 is view-through, t8 is
    # before it): email P1, P4; ppc P1, P3; social P2. email 1/2 (P1), ppc 1/2 (P1), social 1/2 (P2)
    # frequent visitors: session_start touches in the window P1 1, P2 2, P4 2 -> sorted 1,2,2: p90 at rank 1.8 =
    # 2: decile P2, P4 (a tie, 2). email 1/2 (P4), ppc 0/2, social 1/2 (P2)
    # cross_promotion: sign-ups s1..s5 in the window (5); s2 (7 d - 1 s after t8) social; s4 (at t1) email; s1
    # exactly 7 d and s3 7 d + 1 s after t8 are out
    expected = {("email", "omni_engager_reach"): (1.0, 2.0, 0.5), ("ppc", "omni_engager_reach"): (1.0, 2.0, 0.5),
                ("display", "omni_engager_reach"): (0.0, 2.0, 0.0),
                ("email", "frequent_visitor_reach"): (1.0, 2.0, 0.5), ("ppc", "frequent_visitor_reach"): (0.0, 2.0, 0.0),
                ("display", "frequent_visitor_reach"): (0.0, 2.0, 0.0),
                ("email", "cross_promotion"): (1.0, 5.0, 0.2), ("ppc", "cross_promotion"): (0.0, 5.0, 0.0),
                ("display", "cross_promotion"): (0.0, 5.0, 0.0)}
    for model in MODELS:
        for (channel, metric), (num, den, value) in expected.items():
            assert got[(model, channel, metric)] == (num, den, value, "ratio"), (model, channel, metric)
    for model in ("first_touch", "linear"):
        assert got[(model, "social", "omni_engager_reach")] == (1.0, 2.0, 0.5, "ratio")
        assert got[(model, "social", "frequent_visitor_reach")] == (1.0, 2.0, 0.5, "ratio")
        assert got[(model, "social", "cross_promotion")] == (1.0, 5.0, 0.2, "ratio")
        assert got[(model, "(unattributed)", "cross_promotion")] == (0.0, 5.0, 0.0, "ratio")


def test_a_later_merge_joins_touches_and_engagements_of_two_ids():
    # P6's touch and engagements are P2's after a merge (P2 kept): P2 gains channel ppc (engagements 4 distinct:
    # email, social, sms, ppc) and a ppc touch in the window. Omni counts P1 3, P2 4, P3 1, P4 1, P5 1 -> sorted
    # 1,1,1,3,4: p90 at 3.6 = 3 + .6 x 1 = 3.6: decile P2 alone; ppc 1/1 (P2 through P6), email 0/1, social 1/1
    remap = PersonRemap(stored(IDENTITY_MERGES_SCHEMA, [{"change_date": D, "kind": "merge", "kept_person_id": "P2",
                                                         "other_person_id": "P6", "reason": "test"}]))
    touches = pd.concat([TOUCHES, stored(TOUCHES_SCHEMA, [touch("t10", "P6", "ppc", "ad_click", "2026-10-20T10:00")],
                                         window=True)[TOUCHES.columns]], ignore_index=True)
    engagement = pd.concat([ENGAGEMENT, pd.DataFrame({"person_id": ["P6"], "channel": ["ppc"],
                                                      "date": ["2026-10-20"]})], ignore_index=True)
    got = cells(scorecard(remap, touches=touches, person_engagement=engagement))
    assert got[("linear", "ppc", "omni_engager_reach")] == (1.0, 1.0, 1.0, "ratio")
    assert got[("linear", "email", "omni_engager_reach")] == (0.0, 1.0, 0.0, "ratio")
    assert got[("linear", "social", "omni_engager_reach")] == (1.0, 1.0, 1.0, "ratio")


def test_a_day_without_orders_keeps_the_spend_channels():
    # no order, touch, engagement or sign-up: the headline is 0, each model lists the spend channels with zero
    # credits, 0 / 0 acquired_ltv and reach, roas 0 / spend
    empty = {"order_attribution": ATTRIBUTION.iloc[0:0], "first_order_credits": FIRST_CREDITS.iloc[0:0],
             "order_book": BOOK.iloc[0:0], "refund_ledger": LEDGER.iloc[0:0],
             "first_orders": FIRST_ORDERS.iloc[0:0], "touches": TOUCHES.iloc[0:0],
             "person_engagement": ENGAGEMENT.iloc[0:0], "asset_signups": SIGNUPS.iloc[0:0]}
    got = cells(scorecard(**empty))
    assert got[(N, N, N)] == (0.0, N, 0.0, "currency")
    assert len(got) == 2 + 8 * 3 * 10
    assert got[("markov", "display", "roas")] == (0.0, 30.0, 0.0, "ratio")
    assert got[("markov", "display", "acquired_ltv")] == (0.0, 0.0, N, "currency")
    assert got[("shapley", "ppc", "frequent_visitor_reach")] == (0.0, 0.0, N, "ratio")
    assert got[("shapley", "ppc", "cross_promotion")] == (0.0, 0.0, N, "ratio")


def test_asset_signups_keeps_every_signup_event_with_its_person():
    events = stored(CLEAN_SCHEMAS["events"], [
        {"event_id": "e1", "event_type": "email_subscribe", "occurred_at": ts("2026-10-05T10:00"),
         "customer_id": "c1"},
        {"event_id": "e2", "event_type": "email_open", "occurred_at": ts("2026-10-05T11:00"), "customer_id": "c1"},
        {"event_id": "e3", "event_type": "sms_optin", "occurred_at": ts("2026-10-05T12:00"), "customer_id": "zz"}])
    identity_map = stored(IDENTITY_MAP_SCHEMA, [
        {"identifier_type": "customer_id", "identifier": "c1", "person_id": "P1", "first_seen_date": D,
         "last_seen_date": D, "is_refused": False}])
    out = scorecard_channels.daily_asset_signups(events, identity_map)
    # e2 is not a sign-up; e3's identifier resolves to no person: kept with a null person
    assert records(out) == [("e1", "P1", "email_subscribe", ts("2026-10-05T10:00")),
                            ("e3", N, "sms_optin", ts("2026-10-05T12:00"))]


def test_reactivation_needs_the_latest_order_non_refunded_the_day_before_in_its_365_to_90_day_band():
    # every buyer orders on X = 10-20; the day before is X-1 = 10-19, whose band is 2025-10-20..07-21
    book = stored(states.ORDER_BOOK_SCHEMA, [
        order("a1", "A", "2026-07-21T10:00", 10.0), order("a2", "A", "2026-10-20T10:00", 10.0),  # (X-1)-90: yes
        order("b1", "B", "2026-07-22T10:00", 10.0), order("b2", "B", "2026-10-20T10:00", 10.0),  # (X-1)-89: no
        order("c1", "C", "2025-10-20T10:00", 10.0), order("c2", "C", "2026-10-20T10:00", 10.0),  # (X-1)-364: yes
        order("d1", "D", "2025-10-19T10:00", 10.0), order("d2", "D", "2026-10-20T10:00", 10.0),  # (X-1)-365: no
        # E's order of 10-19 was fully refunded on 10-19: at X-1 the latest non-refunded is 07-01: yes
        order("e0", "E", "2026-07-01T10:00", 10.0), order("e1", "E", "2026-10-19T10:00", 10.0, refunded=10.0),
        order("e2", "E", "2026-10-20T10:00", 10.0),
        # F's order of 10-19 was refunded only on 10-20: at X-1 it still counts, latest 10-19: no
        order("f0", "F", "2026-07-01T10:00", 10.0), order("f1", "F", "2026-10-19T10:00", 10.0, refunded=10.0),
        order("f2", "F", "2026-10-20T10:00", 10.0),
    ])
    ledger = pd.DataFrame({"order_id": ["e1", "f1"], "refund_day": [dt.date(2026, 10, 19), dt.date(2026, 10, 20)]})
    got = scorecard_channels.reactivation_orders(book, ledger, book["person_id"].to_numpy(), dt.date(2026, 10, 2), D)
    # e1 and f1 (10-19, refunded later) are reactivations themselves: E and F were candidates at 10-18 (07-01)
    assert sorted(got) == ["a2", "c2", "e1", "e2", "f1"]


def test_the_first_order_credits_state_keeps_a_year_of_first_orders():
    # day D: of the credited orders, the first orders o1, q1, r1, o5, ob (FIRST_ORDERS; o0 has no credits) are
    # kept, summed over campaigns; the other orders (o3, o2, ...) are not first orders
    state = scorecard_channels.update_first_order_credits(None, ALL_CREDITS, FIRST_ORDERS, D)
    assert sorted(state["order_id"].unique()) == ["o1", "o5", "ob", "q1", "r1"]
    assert set(state.loc[state["order_id"] == "o1", "channel"]) == {"email", "ppc"}
    assert (state["order_date"] == D).all()
    # two campaigns of one channel are one row
    twice = pd.concat([ALL_CREDITS.loc[ALL_CREDITS["order_id"] == "o1"]] * 2, ignore_index=True)
    summed = scorecard_channels.update_first_order_credits(None, twice, FIRST_ORDERS, D)
    assert records(summed.loc[summed["model"] == "first_touch", ["order_id", "channel", "credit"]]) == [
        ("o1", "email", 2.0)]
    # 364 days later the rows of D are still there; 365 days later they are gone; a re-run of a day replaces its
    # own rows (previous = the state of the day before, which never holds them) without duplicates
    later = D + dt.timedelta(days=364)
    none_today = ALL_CREDITS.iloc[0:0]
    kept = scorecard_channels.update_first_order_credits(state, none_today, FIRST_ORDERS, later)
    assert len(kept) == len(state)
    gone = scorecard_channels.update_first_order_credits(state, none_today, FIRST_ORDERS, later + dt.timedelta(days=1))
    assert gone.empty
    again = scorecard_channels.update_first_order_credits(state, ALL_CREDITS, FIRST_ORDERS, D)
    assert again.equals(state)


def test_the_state_gives_the_same_scorecard_as_a_year_of_credits():
    # reading every credit directly (no state) and reading the window's credits + the state agree cell for cell
    direct = cells(scorecard(order_attribution=ALL_CREDITS, first_order_credits=FIRST_CREDITS.iloc[0:0]))
    assert cells(scorecard()) == direct
