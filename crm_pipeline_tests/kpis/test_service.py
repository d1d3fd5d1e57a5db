"""Service, satisfaction and deliverability KPIs on hand-built snapshots, every number worked out by hand.
D = 2026-11-30 (a Monday), UTC; the 30-day window is 11-01..11-30."""

import datetime as dt
import math

import pandas as pd
import pytest

from crm_pipeline.kpis.service import KPIS
from crm_pipeline_tests.kpis.crm_helpers import D, kpi_table, row, settings, ts

BY_NAME = {k.name: k for k in KPIS}


def table(name: str, timezone: str = "UTC", **inputs: pd.DataFrame) -> pd.DataFrame:
    return kpi_table(BY_NAME[name], timezone, **inputs)


def surveys(kind: str, scores: list[float], responded: list[str] | None = None) -> pd.DataFrame:
    responded = responded or ["2026-11-15T12:00"] * len(scores)
    return pd.DataFrame({"response_id": [f"{kind}{i}" for i in range(len(scores))],
                         "responded_at": ts(responded), "survey_type": pd.Series([kind] * len(scores), dtype="string"),
                         "score": [float(s) for s in scores]})


def test_nps_by_hand():
    # in the window: 10, 9, 9 promoters, 8 passive, 6 and 0 detractors; a 10 before the window and a 0 after D
    responses = pd.concat([surveys("nps", [10, 9, 9, 8, 6, 0]),
                           surveys("nps", [10, 0], ["2026-10-15T00:00", "2026-12-01T00:00"]),
                           surveys("csat", [1])], ignore_index=True)
    t = table("nps", crm_survey_responses=responses)
    assert len(t) == 1
    assert row(t) == (1.0, 6.0, round(100 / 6, 9), "score")  # (3 - 2) / 6 x 100


def test_nps_with_only_passives_is_zero_and_without_responses_null():
    assert row(table("nps", crm_survey_responses=surveys("nps", [7, 8]))) == (0.0, 2.0, 0.0, "score")
    assert row(table("nps", crm_survey_responses=surveys("nps", []))) == (0.0, 0.0, None, "score")


def test_csat_by_hand():
    t = table("csat", crm_survey_responses=pd.concat([surveys("csat", [5, 4, 3, 1]), surveys("nps", [10])]))
    assert row(t, metric=None) == (2.0, 4.0, 50.0, "percent")
    assert row(t, metric="mean_score") == (13.0, 4.0, 3.25, "score")
    assert row(t, metric="seed_mean_pct") == (13.0, 20.0, 65.0, "percent")


def test_ces_by_hand():
    t = table("ces", crm_survey_responses=surveys("ces", [7, 5, 4]))
    assert row(t, metric=None) == (16.0, 3.0, round(16 / 3, 9), "score")
    assert row(t, metric="pct_low_effort") == (2.0, 3.0, round(200 / 3, 9), "percent")
    assert row(t, metric="seed_mean_pct") == (16.0, 21.0, round(1600 / 21, 9), "percent")


TICKETS = pd.DataFrame({
    "ticket_id": ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9"],
    "created_at": ts(["2026-11-27T16:00", "2026-11-30T09:00", "2026-11-29T20:00", "2026-11-30T20:00",
                      "2026-11-30T22:00", "2026-11-10T08:00", "2026-11-20T10:00", "2026-10-01T00:00",
                      "2026-12-01T00:00"]),
    "first_response_at": ts(["2026-11-30T10:00", "2026-11-30T09:30", "2026-11-29T22:00", None, None,
                             "2026-11-10T20:00", "2026-11-20T11:00", "2026-12-05T00:00", "2026-12-01T00:10"]),
    "resolved_at": ts(["2026-11-30T11:00", "2026-11-30T10:00", "2026-11-29T23:00", None, None,
                       "2026-11-12T00:00", "2026-11-21T00:00", None, "2026-12-01T01:00"]),
    "contact_count": pd.array([1, 2, 1, None, None, None, 3, None, 1], dtype="Int64"),
    "reopened": pd.array([False, False, True, None, None, False, None, None, False], dtype="boolean"),
    "channel": pd.Series(["email", "chat", "chat", "phone", "social", "email", None, "email", "email"],
                         dtype="string"),
})


def test_response_time_by_hand():
    t = table("response_time", crm_support_tickets=TICKETS)
    # first answered in the window: T1 Fri 16:00 -> Mon 10:00 = 66 h (business 1 h Fri + 1 h Mon), T2 0.5 h (0.5),
    # T3 Sunday evening 2 h (0), T6 Tue 08:00 -> 20:00 = 12 h (8), T7 1 h (1); T8 is answered after D, T9 created
    # after D
    assert row(t, metric=None, channel=None) == (81.5, 5.0, 16.3, "hours")
    assert row(t, metric="median_hours", channel=None) == (None, 5.0, 2.0, "hours")
    assert row(t, metric="p90_hours", channel=None) == (None, 5.0, 44.4, "hours")  # 12 + 0.6 x 54
    assert row(t, metric="business_mean_hours", channel=None) == (11.5, 5.0, 2.3, "hours")
    assert row(t, metric="business_median_hours", channel=None) == (None, 5.0, 1.0, "hours")
    assert row(t, metric="business_p90_hours", channel=None) == (None, 5.0, 5.6, "hours")  # 2 + 0.6 x 6
    assert row(t, metric="mean_hours", channel="email") == (78.0, 2.0, 39.0, "hours")
    assert row(t, metric="p90_hours", channel="email") == (None, 2.0, 60.6, "hours")  # 12 + 0.9 x 54
    assert row(t, metric="business_mean_hours", channel="chat") == (0.5, 2.0, 0.25, "hours")
    assert row(t, metric="business_p90_hours", channel="chat") == (None, 2.0, 0.45, "hours")
    assert row(t, metric="mean_hours", channel="(none)") == (1.0, 1.0, 1.0, "hours")
    assert set(t["channel"].dropna()) == {"email", "chat", "(none)"}
    assert len(t) == 1 + 6 * 4


def test_response_time_business_hours_follow_the_configured_schedule():
    from crm_pipeline.kpis.service import response_time

    shop = settings().with_overrides(business_hours="mon-fri 08:00-20:00, sun 18:00-23:00",
                                     business_holidays=(dt.date(2026, 11, 10),))
    rows = {(r["metric"], r["channel"]): r for r in response_time(TICKETS, D, shop)}
    # T1 Fri 16-20 = 4 h + Sun 18-23 = 5 h + Mon 08-10 = 2 h; T2 0.5 h; T3 Sun 20-22 = 2 h; T6 on a holiday: 0;
    # T7 1 h
    assert rows[("business_mean_hours", None)]["numerator"] == pytest.approx(4 + 5 + 2 + 0.5 + 2 + 0 + 1)


def test_first_contact_resolution_by_hand():
    t = table("first_contact_resolution", crm_support_tickets=TICKETS)
    # resolved in the window with a contact_count: T1 (1 contact), T2 (2), T3 (1 but reopened), T7 (3); T6 has no
    # contact_count, T9 is resolved after D
    assert row(t, channel=None) == (1.0, 4.0, 25.0, "percent")
    assert row(t, channel="email") == (1.0, 1.0, 100.0, "percent")
    assert row(t, channel="chat") == (0.0, 2.0, 0.0, "percent")
    assert row(t, channel="(none)") == (0.0, 1.0, 0.0, "percent")
    assert len(t) == 4


def test_resolution_touches_by_hand():
    t = table("resolution_touches", crm_support_tickets=TICKETS)
    assert row(t, touches=None, channel=None) == (2.0, 4.0, 0.5, "ratio")  # headline: touches 1
    assert row(t, touches="2", channel=None) == (1.0, 4.0, 0.25, "ratio")
    assert row(t, touches="3+", channel=None) == (1.0, 4.0, 0.25, "ratio")
    assert row(t, touches="1", channel="chat") == (1.0, 2.0, 0.5, "ratio")
    assert row(t, touches="2", channel="email") == (0.0, 1.0, 0.0, "ratio")
    assert row(t, touches="3+", channel="(none)") == (1.0, 1.0, 1.0, "ratio")
    assert len(t) == 1 + 3 * 4


def test_sla_breach_rate_by_hand():
    t = table("sla_breach_rate", crm_support_tickets=TICKETS)
    # answered in the window: T1 email (due Sat 16:00, answered Mon: breached), T2 chat (in time), T3 chat (due
    # 21:00, answered 22:00: breached), T6 email (in time); overdue at D with due in the window: T4 phone (due
    # 21:00 on D); T5 is due after D, T7 has no channel and so no target, T8's due is before the window
    assert row(t, channel=None) == (3.0, 5.0, 0.6, "ratio")
    assert row(t, channel="email") == (1.0, 2.0, 0.5, "ratio")
    assert row(t, channel="chat") == (1.0, 2.0, 0.5, "ratio")
    assert row(t, channel="phone") == (1.0, 1.0, 1.0, "ratio")
    assert len(t) == 4


def test_sla_targets_are_configurable():
    from crm_pipeline.kpis.service import sla_breach_rate

    strict = settings().with_overrides(sla_first_response_hours={"email": 1.0, "chat": 1.0, "phone": 1.0})
    total = next(r for r in sla_breach_rate(TICKETS, D, strict) if r["channel"] is None)
    # T6 (12 h) now breaches too; T5 (social) has no target any more
    assert (total["numerator"], total["denominator"]) == (4.0, 5.0)


def test_deliverability_by_hand():
    counted = pd.DataFrame({
        "event_type": ["email_send", "email_send", "email_delivered", "email_bounce", "email_complaint",
                       "email_unsubscribe", "email_open"],
        "interaction_kind": None, "person_id": [None] * 6 + ["p1"], "campaign_id": [None] * 6 + ["c1"],
        "count_events": [60, 40, 90, 8, 1, 3, 50],
        "date": ["2026-11-24", "2026-11-30", "2026-11-30", "2026-11-30", "2026-11-29", "2026-11-28", "2026-11-30"],
    })
    t = table("deliverability", messaging=counted)
    assert row(t, metric=None) == (90.0, 100.0, 0.9, "ratio")
    assert row(t, metric="bounce_rate") == (8.0, 100.0, 0.08, "ratio")
    assert row(t, metric="complaint_rate") == (1.0, 90.0, round(1 / 90, 9), "ratio")
    assert row(t, metric="unsubscribe_rate") == (3.0, 90.0, round(3 / 90, 9), "ratio")


EMPTY = {"crm_survey_responses": surveys("nps", []), "crm_support_tickets": TICKETS.iloc[0:0],
         "messaging": pd.DataFrame({"event_type": pd.Series([], dtype="string"), "interaction_kind": None,
                                    "person_id": pd.Series([], dtype="string"),
                                    "campaign_id": pd.Series([], dtype="string"),
                                    "count_events": pd.Series([], dtype="int64")})}


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_service_kpi_on_an_empty_day(name):
    """Quotients 0/0 with a null value, medians and percentiles null over 0 observations, fixed rows every day."""
    kpi = BY_NAME[name]
    t = table(name, **{i.name: EMPTY[i.name] for i in kpi.inputs})
    fixed = 1
    for dimension in kpi.dimensions:
        fixed *= len(dimension.values) if dimension.values else 1
    assert len(t) == 1 + (fixed if kpi.dimensions and any(d.values for d in kpi.dimensions) else 0)
    assert t["denominator"].eq(0).all() and t["value"].isna().all()
    assert all(n == 0 or math.isnan(n) for n in t["numerator"])
