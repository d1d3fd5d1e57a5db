"""Relate KPIs on visits (kpis.md "Relate: engagement and audiences"), from the daily visits aggregate."""

import datetime as dt

import pandas as pd

from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient

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


_VISITS_30D = (KpiInput("visits", VISITS, window_days=30),)

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="asset_engagement_ratio", family="Relate", seed="000",
        description="One row per window (1d, 30d): the share of visits that come from owned marketing assets.",
        formula="visits whose channel is email, sms, push, mobile_app, browser_app or mailing / all visits",
        window="1d (D) and 30d (D-29..D)", population="visits (session_start events)", unit="ratio",
        dimensions=(Dimension("window", ("1d", "30d")),), headline={"window": "30d"}, inputs=_VISITS_30D,
        compute=asset_engagement_ratio, window_days=30, warn_below=0.15),
    KpiDefinition(
        name="owned_paid_ratio", family="Relate", seed="000",
        description="One row per metric (owned_to_paid, owned_share, paid_share, earned_share) x window (1d, 30d): "
                    "visits by the group of their channel.",
        formula="owned_to_paid = owned visits / paid visits; <group>_share = the group's visits / all visits",
        window="1d and 30d", population="visits (session_start events)", unit="ratio",
        dimensions=(Dimension("metric", ("owned_to_paid", "owned_share", "paid_share", "earned_share")),
                    Dimension("window", ("1d", "30d"))),
        headline={"metric": "owned_to_paid", "window": "30d"}, inputs=_VISITS_30D, compute=owned_paid_ratio,
        unbounded_metrics=("owned_to_paid",), window_days=30),
    KpiDefinition(
        name="device_hour_index", family="Relate", seed="000",
        description="One row per device type x hour of day (00..23, reporting timezone) for the visits of D-27..D "
                    "with a device type: how over- or under-represented the hour is for the device (100 = as all).",
        formula="index = 100 x (visits(device, hour) / visits(device)) / (visits(hour) / visits); total row = "
                "device coverage = visits with a device type / all visits",
        window="28d (D-27..D)", population="visits with a device type", unit="index, ratio (total row)",
        dimensions=(Dimension("device_type"), Dimension("hour", HOURS)), headline={},
        inputs=(KpiInput("visits", VISITS, window_days=28),), compute=device_hour_index, window_days=28),
)
