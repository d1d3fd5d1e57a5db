"""Touches and journeys on hand-built rows: windows, ranks, persons across devices."""

import pandas as pd
import pytest

from crm_pipeline.attribution.journeys import JourneyConfig, extract_touches, journey_touches, journeys_table

T0 = pd.Timestamp("2026-10-31T12:00:00Z")  # the order


def ts(days_before: float) -> pd.Timestamp:
    return T0 - pd.Timedelta(days=days_before)


IDENTITY = pd.DataFrame({
    "identifier_type": ["anonymous_id", "device_id", "customer_id", "anonymous_id"],
    "identifier": ["k1", "d1", "C1", "k2"],
    "person_id": ["P1", "P1", "P1", "P2"],
    "is_refused": [False, False, False, False],
})


def events(*rows: tuple) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["event_id", "occurred_at", "event_type", "channel", "anonymous_id",
                                        "device_id", "customer_id"])
    for col in ("channel_group", "campaign_id", "device_type", "email_hash", "phone_hash"):
        frame[col] = pd.Series([None] * len(frame), dtype="string")
    return frame


def test_extract_touches_keeps_touch_types_and_view_through_when_enabled():
    ev = events(("e1", ts(1), "session_start", "seo", "k1", None, None),
                ("e2", ts(1), "email_open", "email", "k1", None, None),
                ("e3", ts(1), "login", "direct", "k1", None, "C1"),
                ("e4", ts(2), "ad_click", "display", "k2", None, None))
    plain = extract_touches(ev, IDENTITY, JourneyConfig())
    assert plain["event_id"].tolist() == ["e4", "e1"]  # sorted by time; opens and logins are no touches
    assert plain.set_index("event_id")["person_id"].to_dict() == {"e4": "P2", "e1": "P1"}
    viewed = extract_touches(ev, IDENTITY, JourneyConfig(view_through=True))
    assert viewed.set_index("event_id")["is_view_through"].to_dict() == {"e4": False, "e1": False, "e2": True}


def _touches(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["event_id", "touch_at", "channel", "anonymous_id", "device_id"]).assign(
        campaign_id=None, customer_id=None, email_hash=None, phone_hash=None)


ORDERS = pd.DataFrame({"order_id": ["o1"], "ordered_at": [T0], "net_revenue": [90.0], "customer_id": ["C1"],
                       "email_hash": [None], "anonymous_id": [None], "device_id": [None]})


def test_a_journey_takes_the_buyers_touches_on_every_device_within_30_days():
    touches = _touches(
        ("t_old", ts(31), "ppc", "k1", None),  # outside the window
        ("t_edge", ts(30), "ppc", "k1", None),  # exactly 30 d before: excluded (t - 30 d < ts <= t)
        ("t_web", ts(20), "seo", "k1", None),  # the buyer's cookie
        ("t_app", ts(2), "mobile_app", None, "d1"),  # the buyer's phone
        ("t_b", ts(2), "email", "k1", None),  # same time as t_app: ranked by event_id
        ("t_now", ts(0), "direct", "k1", None),  # at the order time: included
        ("t_after", ts(-1), "ppc", "k1", None),  # after the order
        ("t_other", ts(1), "display", "k2", None),  # another person
    )
    rows, person = journey_touches(ORDERS, touches, IDENTITY, JourneyConfig())
    assert person.tolist() == ["P1"]
    assert rows["event_id"].tolist() == ["t_web", "t_app", "t_b", "t_now"]
    assert rows["touch_rank"].tolist() == [1, 2, 3, 4] and set(rows["touch_count"]) == {4}
    journeys = journeys_table(ORDERS, person, rows)
    row = journeys.iloc[0]
    assert (row["count_touches"], row["count_channels"]) == (4, 4)
    assert row["channel_path"] == "seo > mobile_app > email > direct"
    assert row["days_from_first_touch"] == pytest.approx(20.0)


def test_journey_options_lookback_per_channel_and_max_touches():
    touches = _touches(("a", ts(10), "email", "k1", None), ("b", ts(3), "email", "k1", None),
                       ("c", ts(2), "sms", "k1", None), ("d", ts(0.5), "sms", "k1", None))
    short = JourneyConfig(lookback_days_by_channel={"email": 5, "sms": 1})
    assert journey_touches(ORDERS, touches, IDENTITY, short)[0]["event_id"].tolist() == ["b", "d"]
    last_two = JourneyConfig(max_touches=2)
    assert journey_touches(ORDERS, touches, IDENTITY, last_two)[0]["event_id"].tolist() == ["c", "d"]


def test_a_journey_can_stop_at_the_previous_order():
    orders = pd.concat([ORDERS, ORDERS.assign(order_id="o0", ordered_at=ts(5))], ignore_index=True)
    touches = _touches(("a", ts(8), "seo", "k1", None), ("b", ts(3), "ppc", "k1", None))
    rows, _ = journey_touches(orders, touches, IDENTITY, JourneyConfig(stop_at_previous_order=True))
    assert rows.groupby("order_id")["event_id"].agg(list).to_dict() == {"o0": ["a"], "o1": ["b"]}
    rows, _ = journey_touches(orders, touches, IDENTITY, JourneyConfig())
    assert rows.groupby("order_id")["event_id"].agg(list).to_dict() == {"o0": ["a"], "o1": ["a", "b"]}


def test_an_order_without_touches_has_an_empty_journey():
    rows, person = journey_touches(ORDERS, _touches(), IDENTITY, JourneyConfig())
    journeys = journeys_table(ORDERS, person, rows)
    assert journeys[["count_touches", "count_channels"]].iloc[0].tolist() == [0, 0]
    assert pd.isna(journeys["channel_path"].iloc[0]) and pd.isna(journeys["days_from_first_touch"].iloc[0])


def test_a_rerun_after_a_later_merge_joins_the_touches_of_both_persons():
    import datetime as dt

    from crm_pipeline.kpis.persons import PersonRemap

    touches = _touches(("t_buyer", ts(3), "seo", "k1", None), ("t_other", ts(1), "display", "k2", None))
    rows, person = journey_touches(ORDERS, touches, IDENTITY, JourneyConfig())
    assert rows["event_id"].tolist() == ["t_buyer"]  # as of D, k2 is somebody else
    # P2 (cookie k2) is merged into P1 after D: the re-run credits k2's touch too (docs/outputs.md 2.2)
    later = pd.DataFrame({"change_date": [dt.date(2026, 11, 4)], "kind": ["merge"], "kept_person_id": ["P1"],
                          "other_person_id": ["P2"], "reason": ["x"]})
    rows, person = journey_touches(ORDERS, touches, IDENTITY, JourneyConfig(), PersonRemap(later))
    assert rows["event_id"].tolist() == ["t_buyer", "t_other"] and person.tolist() == ["P1"]
