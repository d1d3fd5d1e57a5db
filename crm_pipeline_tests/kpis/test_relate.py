"""Visit KPIs on a hand-built visits aggregate, numbers worked out by hand."""

import datetime as dt

import dagster as dg
import pandas as pd

from crm_pipeline.kpis.aggregates import daily_visits
from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.relate import KPIS
from crm_pipeline_tests.conftest import stored

BY_NAME = {k.name: k for k in KPIS}
D = dt.date(2026, 10, 31)


def days_before(n: int) -> str:
    return (D - dt.timedelta(days=n)).isoformat()


VISITS = pd.DataFrame([
    ("email", "owned", "mobile", "12", 3, days_before(0)),
    ("ppc", "paid", "desktop", "09", 2, days_before(0)),
    ("seo", "owned", "desktop", "09", 1, days_before(10)),
    ("social", "earned", None, "20", 4, days_before(29)),
    ("ppc", "paid", "mobile", "12", 1, days_before(30)),  # outside every window
], columns=["channel", "channel_group", "device_type", "hour", "count_visits", "date"])


def table(name: str, visits: pd.DataFrame = VISITS) -> tuple[pd.DataFrame, list[dg.AssetCheckResult]]:
    kpi = BY_NAME[name]
    frame = finalise(kpi, kpi.compute(visits=visits, day=D))
    return frame.set_index([d for d in kpi.dimension_names]), standard_checks(kpi, kpi_key(kpi), frame)


def test_asset_engagement_ratio_by_hand():
    t, results = table("asset_engagement_ratio")
    assert all(r.passed for r in results)
    assert t.loc["1d", ["numerator", "denominator", "value"]].tolist() == [3.0, 5.0, 0.6]  # email 3 of 5 on D
    assert t.loc["30d", ["numerator", "denominator", "value"]].tolist() == [3.0, 10.0, 0.3]  # seo is not an asset
    assert t["value"].iloc[0] == 0.3 and pd.isna(t.index[0])  # the total row is the 30d headline


def test_owned_paid_ratio_by_hand():
    t, results = table("owned_paid_ratio")
    assert t.loc[("owned_to_paid", "1d"), "value"] == 1.5  # owned 3 / paid 2
    assert t.loc[("owned_to_paid", "30d"), "value"] == 2.0  # owned 3 + 1 / paid 2
    assert t.loc[("earned_share", "30d"), ["numerator", "denominator", "value"]].tolist() == [4.0, 10.0, 0.4]
    assert t.loc[("earned_share", "1d"), "value"] == 0.0
    # owned_to_paid above 1 is allowed: the bound check warns, it does not block
    failed = [r for r in results if not r.passed]
    assert [(r.check_name, r.severity) for r in failed] == [("ratios_within_bounds", dg.AssetCheckSeverity.WARN)]


def test_device_hour_index_by_hand():
    t, results = table("device_hour_index")
    assert all(r.passed for r in results)
    # D-27..D: mobile 12h (3), desktop 09h (2 + 1); 6 visits, all with a device type
    total = t.iloc[0]
    assert (total["numerator"], total["denominator"], total["value"], total["unit"]) == (6.0, 6.0, 1.0, "ratio")
    mobile_noon = t.loc[("mobile", "12")]  # (3/3) / (3/6) = 2 -> index 200
    assert (mobile_noon["numerator"], mobile_noon["denominator"], mobile_noon["value"]) == (1.0, 0.5, 200.0)
    assert t.loc[("mobile", "09"), "value"] == 0.0  # the hour has visits, none from mobile
    assert pd.isna(t.loc[("desktop", "00"), "value"])  # no visit at all in that hour
    assert len(t) == 1 + 2 * 24


def test_empty_window_gives_zero_over_zero():
    t, results = table("asset_engagement_ratio", VISITS.iloc[0:0])
    assert t.loc["30d", ["numerator", "denominator"]].tolist() == [0.0, 0.0] and pd.isna(t.loc["30d", "value"])
    assert all(r.passed for r in results)


def test_daily_visits_counts_session_starts_by_local_hour():
    events = pd.DataFrame({
        "event_type": ["session_start", "session_start", "login", "session_start"],
        "occurred_at": pd.to_datetime(["2026-10-31T03:30Z", "2026-10-31T03:45Z", "2026-10-31T03:50Z",
                                       "2026-10-31T15:00Z"]),
        "channel": ["seo", "seo", "direct", "email"], "channel_group": ["owned", "owned", "owned", "owned"],
        "device_type": ["mobile", "mobile", "mobile", None],
    })
    # 03:30 UTC is 23:30 the day before in New York (EDT, UTC-4): hours are local
    out = daily_visits(events, "America/New_York")
    rows = out[["channel", "device_type", "hour", "count_visits"]].astype(object).where(out.notna(), None)
    assert rows.values.tolist() == [["email", None, "11", 1], ["seo", "mobile", "23", 2]]


def test_a_day_without_session_starts_writes_an_empty_visits_table():
    """Regression: a day with events but no session_start made an int32 `hour` column Arrow could not write."""
    from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
    from crm_pipeline.kpis.aggregates import VISITS_SCHEMA
    from crm_pipeline.metadata import arrow_table

    events = stored(CLEAN_SCHEMAS["events"], [
        {"event_id": "e1", "occurred_at": dt.datetime(2026, 10, 31, 9, tzinfo=dt.UTC), "event_type": "login",
         "channel": "direct", "channel_group": "owned", "anonymous_id": "k1"}])
    table = arrow_table(daily_visits(events, "UTC"), VISITS_SCHEMA)
    assert table.num_rows == 0 and table.schema == VISITS_SCHEMA


def test_engagement_rates_count_distinct_person_campaign_pairs_by_hand():
    from crm_pipeline.kpis.aggregates import daily_messaging

    identity = pd.DataFrame({"identifier_type": ["anonymous_id"] * 3, "identifier": ["k1", "k2", "k3"],
                             "person_id": ["P1", "P2", "P9"], "is_refused": [False] * 3})
    def day_events(rows):
        frame = pd.DataFrame(rows, columns=["event_type", "campaign_id", "interaction_kind", "anonymous_id"])
        for col in ("customer_id", "email_hash", "phone_hash", "device_id"):
            frame[col] = None
        return frame

    d0 = daily_messaging(day_events([
        ("email_delivered", "c1", None, "k1"), ("email_delivered", "c1", None, "k2"),
        ("email_delivered", "c2", None, "k1"), ("email_delivered", "c2", None, "k2"),
        ("email_open", "c1", None, "k1"), ("email_open", "c1", None, "k1"),  # the same pair twice
        ("email_open", "c1", None, "k2"), ("email_click", "c1", None, "k1"),
        ("social_interaction", None, "like", "k1"), ("social_interaction", None, None, "k2"),
        ("session_start", None, None, "k1"),
    ]), identity).assign(date=days_before(0))
    d5 = daily_messaging(day_events([
        ("email_open", "c1", None, "k3"),  # P9 was merged into P1: the same pair as P1's open of c1
        ("push_send", "p1", None, "k1"), ("push_open", None, None, "k1"),  # a missing campaign is one campaign
    ]), identity).assign(date=days_before(5))
    old = daily_messaging(day_events([("email_open", "c2", None, "k2")]), identity).assign(date=days_before(30))
    merges = pd.DataFrame({"change_date": [D], "kind": ["merge"], "kept_person_id": ["P1"],
                           "other_person_id": ["P9"], "reason": ["x"]})
    kpi = BY_NAME["engagement_rates"]
    frame = finalise(kpi, kpi.compute(messaging=pd.concat([old, d5, d0], ignore_index=True),
                                      remap=PersonRemap(merges), day=D))
    assert all(c.passed or c.severity == dg.AssetCheckSeverity.WARN for c in standard_checks(kpi, kpi_key(kpi), frame))
    t = frame.set_index("metric")
    # open pairs (P1,c1), (P2,c1) = 2 over 4 deliveries; click pairs 1; push 1 pair / 1 send
    assert t.loc["email_open_rate", ["numerator", "denominator", "value"]].tolist() == [2.0, 4.0, 0.5]
    assert t.loc["click_to_open_rate", "value"] == 0.5
    assert t.loc["email_click_rate", "value"] == 0.25
    assert t.loc["push_open_rate", "value"] == 1.0
    assert pd.isna(t.loc["sms_click_rate", "value"]) and t.loc["sms_click_rate", "denominator"] == 0.0
    assert t.loc["social_interactions", "value"] == 2.0 and t.loc["social_likes", "value"] == 1.0
    assert t.loc["social_shares", "value"] == 0.0 and t.loc["website_visits", "value"] == 1.0
    assert frame["value"].iloc[0] == 0.5  # the total row is the email open rate
