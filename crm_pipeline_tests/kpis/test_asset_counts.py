"""asset_counts and the latest-signal state it reads, on hand-built days with the numbers worked out by hand."""

import dataclasses
import datetime as dt

import pandas as pd

from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.count import KPIS
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import update_person_signals
from crm_pipeline.settings import Settings

KPI = {k.name: k for k in KPIS}["asset_counts"]
START = dt.date(2026, 10, 1)
D = dt.date(2026, 10, 31)
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="Europe/Berlin",
                    start_date=START)
NO_CHANGES = PersonRemap.none()
IDENTITY = pd.DataFrame({"identifier_type": ["customer_id"] * 5, "identifier": ["C1", "C2", "C3", "C4", "C9"],
                         "person_id": ["P1", "P2", "P3", "P4", "P9"], "is_refused": [False] * 5})
CUSTOMERS = pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"],
                          "created_at": pd.to_datetime(["2026-10-01T08:00Z", "2026-10-30T12:00Z",
                                                        "2026-10-31T12:00Z",
                                                        "2026-10-31T23:30Z"])})  # D+1 in Berlin


def events(rows: list[tuple]) -> pd.DataFrame:
    """(customer_id, event_type, occurred_at UTC, device_id, bounce_type)"""
    frame = pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at", "device_id", "bounce_type"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    for column in ("email_hash", "phone_hash", "anonymous_id"):
        frame[column] = None
    return frame


NO_ORDERS = pd.DataFrame({"order_id": pd.Series([], dtype="string"), "ordered_at": pd.to_datetime([], utc=True),
                          **{c: pd.Series([], dtype="string") for c in ("customer_id", "email_hash", "anonymous_id",
                                                                        "device_id")}})
NO_MERGES = NO_CHANGES.changes

# D-1 (Oct 30): the state the day before
DAY_BEFORE = events([
    ("C1", "email_subscribe", "2026-09-01T10:00Z", None, None),
    ("C1", "email_unsubscribe", "2026-10-30T10:00Z", None, None),  # P1 unsubscribed on D-1 ...
    ("C2", "email_subscribe", "2026-10-30T11:00Z", None, None),
    ("C2", "app_install", "2026-10-30T09:00Z", "dA", None),
    ("C2", "app_install", "2026-10-30T09:00Z", "dB", None),
    ("C3", "sms_optin", "2026-10-30T09:00Z", None, None),
    ("C3", "sms_optout", "2026-10-30T09:00Z", None, None),  # a tie is not membership
    ("C9", "social_follow", "2026-10-30T09:00Z", None, None),
])
ON_D = events([
    ("C1", "email_subscribe", "2026-10-31T08:00Z", None, None),  # ... and re-subscribed on D: a subscriber again
    ("C1", "email_open", "2026-10-31T09:00Z", None, None),
    ("C2", "email_bounce", "2026-10-31T10:00Z", None, "soft"),  # a soft bounce does not end it
    ("C2", "email_complaint", "2026-10-31T10:30Z", None, None),  # nor does a complaint
    ("C2", "app_uninstall", "2026-10-31T10:00Z", "dA", None),
    ("C2", "app_open", "2026-10-31T11:00Z", "dA", None),  # an open on an uninstalled installation
    ("C2", "app_open", "2026-10-31T11:00Z", "dB", None),  # dB is still installed: active
    ("C3", "email_subscribe", "2026-10-31T07:00Z", None, None),
    ("C3", "email_bounce", "2026-10-31T08:00Z", None, "hard"),  # a hard bounce ends it
    ("C3", "app_install", "2026-10-31T07:00Z", None, None),  # events without device_id: one installation
    ("C3", "app_open", "2026-10-31T08:00Z", None, None),
    ("C4", "browser_app_install", "2026-10-31T08:00Z", "x", None),
    ("C4", "mail_subscribe", "2026-10-31T08:00Z", None, None),
    ("C9", "social_unfollow", "2026-10-31T08:00Z", None, None),
    ("C9", "social_follow", "2026-10-31T09:00Z", None, None),  # re-follows later the same day
])


def states() -> pd.DataFrame:
    before = update_person_signals(None, DAY_BEFORE, NO_ORDERS, IDENTITY, NO_MERGES)
    today = update_person_signals(before, ON_D, NO_ORDERS, IDENTITY, NO_MERGES)
    return pd.concat([before.assign(date="2026-10-30"), today.assign(date="2026-10-31")], ignore_index=True)


def compute(state: pd.DataFrame, day: dt.date = D, remap: PersonRemap = NO_CHANGES,
            settings: Settings = SETTINGS) -> pd.DataFrame:
    frame = finalise(KPI, KPI.compute(person_signals=state, crm_customers=CUSTOMERS, identity_map=IDENTITY,
                                      remap=remap, day=day, settings=settings))
    assert all(c.passed for c in standard_checks(KPI, kpi_key(KPI), frame))
    return frame


def by_asset(frame: pd.DataFrame, metric: str) -> dict:
    rows = frame[frame["metric"] == metric]
    return dict(zip(rows["asset"], rows["value"], strict=True))


def test_the_latest_signal_state_keeps_the_latest_timestamp_per_installation():
    state = states()
    today = state[state["date"] == "2026-10-31"].set_index(["person_id", "signal", "device_id"])["latest_at"]
    assert today[("P1", "email_subscribe", pd.NA)] == pd.Timestamp("2026-10-31T08:00Z")
    assert today[("P1", "email_end", pd.NA)] == pd.Timestamp("2026-10-30T10:00Z")
    assert today[("P3", "email_end", pd.NA)] == pd.Timestamp("2026-10-31T08:00Z")  # the hard bounce
    assert ("P2", "email_end", pd.NA) not in today.index  # soft bounces and complaints are not signals
    assert today[("P2", "app_uninstall", "dA")] == pd.Timestamp("2026-10-31T10:00Z")
    assert today[("P3", "app_install", pd.NA)] == pd.Timestamp("2026-10-31T07:00Z")
    assert len(today) == 19  # P1 3, P2 6, P3 6, P4 2, P9 2


def test_asset_counts_by_hand():
    frame = compute(states())
    assert by_asset(frame, "size") == {
        "registered_customers": 3.0,  # P1, P2, P3; C4 registers 00:30 on D+1 in Berlin
        "email_subscribers": 2.0,  # P1 (re-subscribed), P2 (soft bounce, complaint); P3 hard-bounced
        "email_openers_180d": 1.0,  # P1
        "app_installs": 2.0,  # P2 (dB, counted once), P3 (installation without device id)
        "app_active_30d": 2.0,  # P2 on dB, P3
        "browser_app_installs": 1.0, "browser_app_active_30d": 0.0,  # P4 installed, never clicked
        "social_followers": 1.0,  # P9 re-followed after unfollowing
        "mailing_list": 1.0, "sms_list": 0.0,  # P3's opt-in and opt-out tie
    }
    # D-1: registrants P1, P2; P2 subscribed (P1 had unsubscribed); P2 with two installations; P9 following
    assert by_asset(frame, "net_change") == {
        "registered_customers": 1.0, "email_subscribers": 1.0, "email_openers_180d": 1.0, "app_installs": 1.0,
        "app_active_30d": 2.0, "browser_app_installs": 1.0, "browser_app_active_30d": 0.0, "social_followers": 0.0,
        "mailing_list": 1.0, "sms_list": 0.0}
    total = frame.iloc[0]
    assert pd.isna(total["asset"]) and (total["numerator"], total["value"]) == (3.0, 3.0)
    assert frame["denominator"].isna().all() and frame["unit"].eq("count").all()  # count form


def test_net_change_is_null_on_the_start_date_and_an_empty_day_is_zero():
    state = states()
    first = compute(state[state["date"] == "2026-10-30"], day=dt.date(2026, 10, 30),
                    settings=dataclasses.replace(SETTINGS, start_date=dt.date(2026, 10, 30)))
    change = first[first["metric"] == "net_change"]
    assert len(change) == 10 and change[["numerator", "denominator", "value"]].isna().all().all()
    assert by_asset(first, "size")["email_subscribers"] == 1.0
    empty = compute(state.iloc[0:0], day=dt.date(2026, 10, 2))
    sizes = by_asset(empty, "size")
    assert sizes.pop("registered_customers") == 1.0 and set(sizes.values()) == {0.0}


def test_a_later_merge_counts_the_merged_persons_once():
    # P9 (the follower) turns out to be P2 after D: asset sizes follow the newest identity (docs/outputs.md 2.2)
    later = pd.DataFrame({"change_date": [dt.date(2026, 11, 3)], "kind": ["merge"], "kept_person_id": ["P2"],
                          "other_person_id": ["P9"], "reason": ["x"]})
    state = states()
    state = pd.concat([state, state[(state["person_id"] == "P2") & (state["signal"] == "email_subscribe")]
                       .assign(person_id="P9")], ignore_index=True)  # P9 also subscribed: one person with P2
    plain, merged = compute(state), compute(state, remap=PersonRemap(later))
    assert by_asset(plain, "size")["email_subscribers"] == 3.0
    assert by_asset(merged, "size")["email_subscribers"] == 2.0
