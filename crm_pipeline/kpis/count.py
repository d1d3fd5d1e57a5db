"""Count KPIs (docs/kpi_catalog.md "Count: marketing assets")."""

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS, attach_person_id
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings


def end_of_day(day: dt.date, timezone: str) -> pd.Timestamp:
    """The first instant after day D in the reporting timezone, in UTC (facts count when < this)."""
    return pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZoneInfo(timezone))).tz_convert("UTC")


def registrant_persons(customers: pd.DataFrame, identity_map: pd.DataFrame, day: dt.date,
                       timezone: str) -> pd.Series:
    """Persons with a customer record created at or before the end of D."""
    registered = customers.loc[(customers["created_at"] < end_of_day(day, timezone)).to_numpy()]
    return attach_person_id(registered, identity_map).dropna().drop_duplicates()


def uar_30d(person_engagement: pd.DataFrame, crm_customers: pd.DataFrame, identity_map: pd.DataFrame,
            remap: PersonRemap, day: dt.date, settings: Settings) -> list[dict]:
    """Registrants at D with >= 1 engagement in D-29..D, in all and per channel of their engagements."""
    registrants = set(remap(registrant_persons(crm_customers, identity_map, day, settings.timezone)))
    engaged = person_engagement
    if len(engaged) and "date" in engaged.columns:
        first = (day - dt.timedelta(days=29)).isoformat()
        engaged = engaged.loc[(engaged["date"].astype(str) >= first).to_numpy()]
    persons = remap(engaged["person_id"])
    active = pd.DataFrame({"person_id": persons.to_numpy(), "channel": engaged["channel"].to_numpy()})
    active = active.loc[active["person_id"].isin(registrants).to_numpy()]
    rows = [count(float(active["person_id"].nunique()))]
    per_channel = active.groupby("channel")["person_id"].nunique()
    rows += [count(float(n), channel=str(c)) for c, n in per_channel.items()]
    return rows



ASSETS = ("registered_customers", "email_subscribers", "email_openers_180d", "app_installs", "app_active_30d",
          "browser_app_installs", "browser_app_active_30d", "social_followers", "mailing_list", "sms_list")
# list membership: (join signal, leave signal); "the latest join is strictly later than the latest leave"
LISTS = {"email_subscribers": ("email_subscribe", "email_end"), "social_followers": ("social_follow", "social_unfollow"),
         "mailing_list": ("mail_subscribe", "mail_unsubscribe"), "sms_list": ("sms_optin", "sms_optout")}
# installations: (install, uninstall, activity) signals, kept per (person, device_id)
INSTALLATIONS = {"app": ("app_install", "app_uninstall", "app_open"),
                 "browser_app": ("browser_app_install", "browser_app_uninstall", "browser_app_click")}


def start_of_day(day: dt.date, timezone: str) -> pd.Timestamp:
    return end_of_day(day - dt.timedelta(days=1), timezone)


def _wide(signals: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """One row per person x installation with a latest-timestamp column per signal in `names` (NaT: never)."""
    rows = signals.loc[signals["signal"].isin(names).to_numpy()]
    wide = (rows.assign(latest_at=pd.to_datetime(rows["latest_at"], utc=True))
            .groupby(["person_id", "device_id", "signal"], dropna=False, observed=True)["latest_at"].max()
            .unstack("signal").reset_index())
    for name in names:
        wide[name] = pd.to_datetime(wide[name], utc=True) if name in wide.columns else pd.Series(
            pd.NaT, index=wide.index, dtype="datetime64[us, UTC]")
    return wide


def later(first: pd.Series, second: pd.Series) -> pd.Series:
    """`first` is strictly later than `second` (a missing `second`: never happened)."""
    return (first.notna() & (second.isna() | (first > second))).astype(bool)


def asset_members(signals: pd.DataFrame, day: dt.date, timezone: str) -> dict[str, pd.Series]:
    """The persons in each owned asset at the end of D (except registered_customers), from the latest-signal
    state of D: list memberships, installations and recent activity (docs/kpi_catalog.md asset_counts)."""
    out: dict[str, pd.Series] = {}
    for asset, (join, leave) in LISTS.items():
        wide = _wide(signals, (join, leave))
        out[asset] = wide.loc[later(wide[join], wide[leave]).to_numpy(), "person_id"]
    email = _wide(signals, ("email_subscribe", "email_end", "email_open"))
    subscribed = later(email["email_subscribe"], email["email_end"])
    opened = email["email_open"] >= start_of_day(day - dt.timedelta(days=179), timezone)
    out["email_openers_180d"] = email.loc[(subscribed & opened).to_numpy(), "person_id"]
    for name, (install, uninstall, activity) in INSTALLATIONS.items():
        wide = _wide(signals, (install, uninstall, activity))
        installed = later(wide[install], wide[uninstall])
        active = installed & (wide[activity] >= start_of_day(day - dt.timedelta(days=29), timezone))
        out[f"{name}_installs"] = wide.loc[installed.to_numpy(), "person_id"]
        out[f"{name}_active_30d"] = wide.loc[active.to_numpy(), "person_id"]
    return {asset: members.drop_duplicates() for asset, members in out.items()}


def asset_sizes(signals: pd.DataFrame, customers: pd.DataFrame, identity_map: pd.DataFrame,
                remap: PersonRemap, day: dt.date, timezone: str) -> dict[str, int]:
    """Persons in every owned asset at the end of D, persons remapped to the newest identity."""
    members = asset_members(signals, day, timezone)
    members["registered_customers"] = registrant_persons(customers, identity_map, day, timezone)
    return {asset: int(remap(members[asset]).nunique()) for asset in ASSETS}


def asset_counts(person_signals: pd.DataFrame, crm_customers: pd.DataFrame, identity_map: pd.DataFrame,
                 remap: PersonRemap, day: dt.date, settings: Settings) -> list[dict]:
    """Size of every owned asset at D and its change since D-1 (null on the first day)."""
    dates = person_signals["date"].astype(str) if "date" in person_signals.columns else pd.Series(
        day.isoformat(), index=person_signals.index)
    today = person_signals.loc[(dates == day.isoformat()).to_numpy()]
    yesterday_key = (day - dt.timedelta(days=1)).isoformat()
    first_day = day <= settings.start_date
    size = asset_sizes(today, crm_customers, identity_map, remap, day, settings.timezone)
    rows = [count(float(size[a]), asset=a, metric="size") for a in ASSETS]
    if first_day:
        rows += [{"asset": a, "metric": "net_change", "numerator": None, "denominator": None, "value": None,
                  "unit": "count"} for a in ASSETS]
    else:
        before = asset_sizes(person_signals.loc[(dates == yesterday_key).to_numpy()], crm_customers, identity_map,
                             remap, day - dt.timedelta(days=1), settings.timezone)
        rows += [count(float(size[a] - before[a]), asset=a, metric="net_change") for a in ASSETS]
    return rows


KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="asset_counts", family="Count", seed="000",
        description="One row per owned marketing asset x metric (size, net_change): how many persons each owned "
                    "asset reaches at the end of D, and how that changed since D-1.",
        formula="size = distinct persons in the asset at D; net_change = size(D) - size(D-1) (null on "
                "CRM_START_DATE). Lists: the latest join is strictly later than the latest leave (email: "
                "subscribe vs unsubscribe and hard bounce; social follow/unfollow; mail and sms); installs: an "
                "installation (person, device_id) whose latest install is later than its latest uninstall; "
                "*_active_30d: an app_open / browser_app_click in D-29..D on an installation still installed; "
                "email_openers_180d: email subscribers with an email_open in D-179..D; registered_customers: "
                "registrants at D",
        window="at D (latest states, complete from CRM_START_DATE + 365 d); 30 d and 180 d activity",
        population="persons", unit="count",
        dimensions=(Dimension("asset", ASSETS), Dimension("metric", ("size", "net_change"))),
        headline={"asset": "registered_customers", "metric": "size"},
        inputs=(KpiInput("person_signals", ("aggregates", "person_signals"), window_days=2),
                KpiInput("crm_customers", ("ingest", "crm_customers"), columns=("customer_id", "created_at")),
                KpiInput("identity_map", ("identity", "identity_map"), columns=PERSON_LOOKUP_COLUMNS)),
        lineage={"asset": ("person_signals.signal",),
                 "numerator": ("person_signals.person_id", "person_signals.signal", "person_signals.device_id",
                               "person_signals.latest_at", "crm_customers.customer_id", "crm_customers.created_at",
                               "identity_map.person_id")},
        compute=asset_counts, window_days=366, remap_days=2,
        exclusions="email complaints do not end a subscription; an app_open on an uninstalled installation is not "
                   "activity"),
    KpiDefinition(
        name="uar_30d", family="Count", seed="000",
        description="One row per channel: unique active registrants — registrants at D with at least one "
                    "engagement (of that channel) in D-29..D, under any identifier of the person.",
        formula="distinct persons with a customer record created at or before D and >= 1 engagement event in "
                "D-29..D (app_open, browser_app_click, email_open/click, sms_click, push_open, social_interaction, "
                "social_follow, session_start, category_view, cart_add, login, ad_click)",
        window="30d (D-29..D)", population="registrants at D", unit="count",
        dimensions=(Dimension("channel"),), headline={},
        inputs=(KpiInput("person_engagement", ("aggregates", "person_engagement"), window_days=30),
                KpiInput("crm_customers", ("ingest", "crm_customers"), columns=("customer_id", "created_at")),
                KpiInput("identity_map", ("identity", "identity_map"), columns=PERSON_LOOKUP_COLUMNS)),
        lineage={"channel": ("person_engagement.channel",),
                 "numerator": ("person_engagement.person_id", "crm_customers.customer_id", "crm_customers.created_at",
                               "identity_map.person_id")},
        compute=uar_30d, window_days=30),
)
