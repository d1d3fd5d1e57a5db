"""Relate KPIs on visits (docs/kpi_catalog.md "Relate: engagement and audiences"), from the daily visits aggregate."""

import datetime as dt

import pandas as pd

from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count, quotient
from crm_pipeline.kpis.persons import PersonRemap

VISITS = ("aggregates", "visits")
OWNED_ASSET_CHANNELS = ("email", "sms", "push", "mobile_app", "browser_app", "mailing")
HOURS = tuple(f"{h:02d}" for h in range(24))


def _window(visits: pd.DataFrame, day: dt.date, days: int) -> pd.DataFrame:
    """The visits of day-days+1..day (the window input carries each row's partition in `date`)."""
    if visits.empty or "date" not in visits.columns:
        return visits.iloc[0:0]
    first = (day - dt.timedelta(days=days - 1)).isoformat()
    dates = visits["date"].astype(str)
    return visits.loc[((dates >= first) & (dates <= day.isoformat())).to_numpy()]


def asset_engagement_ratio(visits: pd.DataFrame, day: dt.date) -> list[dict]:
    rows = []
    for window, days in (("1d", 1), ("30d", 30)):
        v = _window(visits, day, days)
        owned = float(v.loc[v["channel"].isin(OWNED_ASSET_CHANNELS).to_numpy(), "count_visits"].sum())
        rows.append(quotient(owned, float(v["count_visits"].sum()), "ratio", window=window))
    return rows


def owned_paid_ratio(visits: pd.DataFrame, day: dt.date) -> list[dict]:
    rows = []
    for window, days in (("1d", 1), ("30d", 30)):
        v = _window(visits, day, days)
        by_group = v.groupby("channel_group")["count_visits"].sum()
        total = float(v["count_visits"].sum())
        owned, paid, earned = (float(by_group.get(g, 0)) for g in ("owned", "paid", "earned"))
        rows += [quotient(owned, paid, "ratio", metric="owned_to_paid", window=window),
                 quotient(owned, total, "ratio", metric="owned_share", window=window),
                 quotient(paid, total, "ratio", metric="paid_share", window=window),
                 quotient(earned, total, "ratio", metric="earned_share", window=window)]
    return rows


def device_hour_index(visits: pd.DataFrame, day: dt.date) -> list[dict]:
    """Visits in D-27..D with a device type: index = 100 x (device's share of its visits in the hour) /
    (the hour's share of all such visits); the total row is the device coverage."""
    v = _window(visits, day, 28)
    all_visits = float(v["count_visits"].sum())
    with_device = v.loc[v["device_type"].notna().to_numpy()]
    n = float(with_device["count_visits"].sum())
    rows = [{"device_type": None, "hour": None, "numerator": n, "denominator": all_visits,
             "value": n / all_visits if all_visits else None, "unit": "ratio"}]
    per_device = with_device.groupby("device_type")["count_visits"].sum()
    per_hour = with_device.groupby("hour")["count_visits"].sum()
    cells = with_device.groupby(["device_type", "hour"])["count_visits"].sum()
    for device, device_visits in per_device.items():
        for hour in HOURS:
            numerator = float(cells.get((device, hour), 0)) / float(device_visits)
            denominator = float(per_hour.get(hour, 0)) / n
            rows.append({"device_type": device, "hour": hour, "numerator": numerator, "denominator": denominator,
                         "value": 100 * numerator / denominator if denominator else None, "unit": "index"})
    return rows


ENGAGEMENT_METRICS = ("email_open_rate", "click_to_open_rate", "email_click_rate", "push_open_rate", "sms_click_rate",
                      "social_interactions", "social_likes", "social_shares", "social_comments", "website_visits")


def engagement_rates(messaging: pd.DataFrame, remap: PersonRemap, day: dt.date) -> list[dict]:
    """Events of D-29..D: opens and clicks as distinct (person, campaign) pairs, the rest as events."""
    m = _window(messaging, day, 30)
    is_pair = m["person_id"].notna()
    pairs = m.loc[is_pair.to_numpy()].assign(
        person_id=lambda f: remap(f["person_id"]).to_numpy())
    distinct = pairs.drop_duplicates(["event_type", "person_id", "campaign_id"])["event_type"].value_counts()
    events = m.loc[(~is_pair).to_numpy()]
    counts = events.groupby("event_type")["count_events"].sum()
    kinds = events.loc[(events["event_type"] == "social_interaction").to_numpy()].groupby(
        "interaction_kind")["count_events"].sum()

    def pair(event_type: str) -> float:
        return float(distinct.get(event_type, 0))

    def n(event_type: str) -> float:
        return float(counts.get(event_type, 0))

    return [
        quotient(pair("email_open"), n("email_delivered"), "ratio", metric="email_open_rate"),
        quotient(pair("email_click"), pair("email_open"), "ratio", metric="click_to_open_rate"),
        quotient(pair("email_click"), n("email_delivered"), "ratio", metric="email_click_rate"),
        quotient(pair("push_open"), n("push_send"), "ratio", metric="push_open_rate"),
        quotient(pair("sms_click"), n("sms_send"), "ratio", metric="sms_click_rate"),
        count(n("social_interaction"), metric="social_interactions"),
        count(float(kinds.get("like", 0)), metric="social_likes"),
        count(float(kinds.get("share", 0)), metric="social_shares"),
        count(float(kinds.get("comment", 0)), metric="social_comments"),
        count(n("session_start"), metric="website_visits"),
    ]


_VISITS_30D = (KpiInput("visits", VISITS, window_days=30),)

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="asset_engagement_ratio", family="Relate", seed="000",
        description="One row per window (1d, 30d): the share of visits that come from owned marketing assets.",
        formula="visits whose channel is email, sms, push, mobile_app, browser_app or mailing / all visits",
        window="1d (D) and 30d (D-29..D)", population="visits (session_start events)", unit="ratio",
        dimensions=(Dimension("window", ("1d", "30d")),), headline={"window": "30d"}, inputs=_VISITS_30D,
        lineage={"numerator": ("visits.channel", "visits.count_visits"),
                 "denominator": ("visits.count_visits",)},
        compute=asset_engagement_ratio, window_days=30, warn_below=0.15),
    KpiDefinition(
        name="owned_paid_ratio", family="Relate", seed="000",
        description="One row per metric (owned_to_paid, owned_share, paid_share, earned_share) x window (1d, 30d): "
                    "visits by the group of their channel.",
        formula="owned_to_paid = owned visits / paid visits; <group>_share = the group's visits / all visits",
        window="1d and 30d", population="visits (session_start events)", unit="ratio",
        dimensions=(Dimension("metric", ("owned_to_paid", "owned_share", "paid_share", "earned_share")),
                    Dimension("window", ("1d", "30d"))),
        headline={"metric": "owned_to_paid", "window": "30d"}, inputs=_VISITS_30D, lineage={"numerator": ("visits.channel_group", "visits.count_visits"),
                 "denominator": ("visits.channel_group", "visits.count_visits")},
        compute=owned_paid_ratio,
        unbounded_metrics=("owned_to_paid",), window_days=30),
    KpiDefinition(
        name="engagement_rates", family="Relate", seed="001",
        description="One row per engagement metric over the events of D-29..D: email open, click-to-open, email "
                    "click, push open and sms click rates, social interactions (likes, shares, comments) and "
                    "website visits.",
        formula="opens and clicks count distinct (person, campaign_id) pairs (a missing campaign is one campaign), "
                "the rest count events: email_open_rate = email_open pairs / email_delivered; click_to_open_rate = "
                "email_click pairs / email_open pairs; email_click_rate = email_click pairs / email_delivered; "
                "push_open_rate = push_open pairs / push_send; sms_click_rate = sms_click pairs / sms_send",
        window="30d (D-29..D, each event dated by its own occurred_at)", population="events", unit="ratio, count",
        dimensions=(Dimension("metric", ENGAGEMENT_METRICS),), headline={"metric": "email_open_rate"},
        inputs=(KpiInput("messaging", ("aggregates", "messaging"), window_days=30),),
        lineage={"numerator": ("messaging.event_type", "messaging.person_id", "messaging.campaign_id",
                               "messaging.interaction_kind", "messaging.count_events"),
                 "denominator": ("messaging.event_type", "messaging.person_id", "messaging.campaign_id",
                                 "messaging.count_events")},
        compute=engagement_rates, window_days=30,
        unbounded_metrics=("email_open_rate", "click_to_open_rate", "email_click_rate", "push_open_rate",
                           "sms_click_rate")),
    KpiDefinition(
        name="device_hour_index", family="Relate", seed="000",
        description="One row per device type x hour of day (00..23, reporting timezone) for the visits of D-27..D "
                    "with a device type: how over- or under-represented the hour is for the device (100 = as all).",
        formula="index = 100 x (visits(device, hour) / visits(device)) / (visits(hour) / visits); total row = "
                "device coverage = visits with a device type / all visits",
        window="28d (D-27..D)", population="visits with a device type", unit="index, ratio (total row)",
        dimensions=(Dimension("device_type"), Dimension("hour", HOURS)), headline={},
        inputs=(KpiInput("visits", VISITS, window_days=28),), lineage={"device_type": ("visits.device_type",), "hour": ("visits.hour",),
                 "numerator": ("visits.device_type", "visits.hour", "visits.count_visits"),
                 "denominator": ("visits.hour", "visits.count_visits")},
        compute=device_hour_index, window_days=28),
)
