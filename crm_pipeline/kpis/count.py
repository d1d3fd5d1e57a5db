"""Count KPIs (kpis.md "Count: marketing assets")."""

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



KPIS: tuple[KpiDefinition, ...] = (
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
        compute=uar_30d, window_days=30),
)
