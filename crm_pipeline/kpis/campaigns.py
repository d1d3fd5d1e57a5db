"""Campaign contacts, campaign starts and first ad clicks: the compact inputs of incremental_lift and
ad_conversion_rate (docs/kpi_catalog.md).

`aggregates/campaign_contacts`: one row per campaign x person x group (sent: email_send, sms_send, push_send;
holdout: holdout_assigned) with the first such event of day D. `aggregates/campaign_starts`: a state, one row per
campaign with its first send or holdout_assigned event ever (from CRM_START_DATE), so the KPI can tell which
campaigns started in D-43..D-14 without re-reading history. `aggregates/ad_clicks`: one row per person with
an ad_click on day D and their first one of the day (read from the events, whatever the journeys' touch set).
"""

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.identity.graph import attach_person_id
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.kpis.aggregates import _events_by_person_asset
from crm_pipeline.metadata import column_schema
from crm_pipeline.resources import OWNERS

SEND_EVENT_TYPES = ("email_send", "sms_send", "push_send")
HOLDOUT_EVENT_TYPE = "holdout_assigned"

CAMPAIGN_CONTACTS_KEY = dg.AssetKey(["aggregates", "campaign_contacts"])
CAMPAIGN_CONTACTS_PK = ["campaign_id", "person_id", "is_holdout"]
CAMPAIGN_CONTACTS_SCHEMA = pa.schema([
    pa.field("campaign_id", pa.string(), nullable=False),
    pa.field("person_id", pa.string(), nullable=False),  # as of day D (remapped through later merges by KPIs)
    pa.field("is_holdout", pa.bool_(), nullable=False),  # holdout_assigned (true) or a send event (false)
    pa.field("first_contact_at", pa.timestamp("us", tz="UTC"), nullable=False),  # the first such event of D
])

CAMPAIGN_STARTS_KEY = dg.AssetKey(["aggregates", "campaign_starts"])
CAMPAIGN_STARTS_SCHEMA = pa.schema([
    pa.field("campaign_id", pa.string(), nullable=False),
    pa.field("first_contact_at", pa.timestamp("us", tz="UTC"), nullable=False),  # first send or holdout ever
])


def daily_campaign_contacts(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The day's send and holdout_assigned events with a campaign: the first per campaign, person and group."""
    contacts = events.loc[(events["event_type"].isin([*SEND_EVENT_TYPES, HOLDOUT_EVENT_TYPE])
                           & events["campaign_id"].notna()).to_numpy()]
    frame = pd.DataFrame({"campaign_id": contacts["campaign_id"].astype("string").to_numpy(),
                          "person_id": attach_person_id(contacts, identity_map).to_numpy(),
                          "is_holdout": (contacts["event_type"] == HOLDOUT_EVENT_TYPE).to_numpy(dtype=bool),
                          "first_contact_at": pd.to_datetime(contacts["occurred_at"], utc=True).to_numpy()})
    frame = frame.dropna(subset=["person_id"])
    out = frame.groupby(CAMPAIGN_CONTACTS_PK)["first_contact_at"].min().reset_index()
    out["first_contact_at"] = pd.to_datetime(out["first_contact_at"], utc=True)
    return out.sort_values(CAMPAIGN_CONTACTS_PK, ignore_index=True)[list(CAMPAIGN_CONTACTS_SCHEMA.names)]


def update_campaign_starts(previous: pd.DataFrame | None, contacts: pd.DataFrame) -> pd.DataFrame:
    """Each campaign's first contact ever as of D: yesterday's state plus the campaigns contacted on D."""
    today = contacts[["campaign_id", "first_contact_at"]]
    both = pd.concat([previous[["campaign_id", "first_contact_at"]], today], ignore_index=True) \
        if previous is not None and len(previous) else today.copy()
    both["first_contact_at"] = pd.to_datetime(both["first_contact_at"], utc=True)
    out = both.groupby("campaign_id")["first_contact_at"].min().reset_index()
    out["first_contact_at"] = pd.to_datetime(out["first_contact_at"], utc=True)
    return out.sort_values("campaign_id", ignore_index=True)[list(CAMPAIGN_STARTS_SCHEMA.names)]


def campaign_contacts_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=CAMPAIGN_CONTACTS_KEY, schema=CAMPAIGN_CONTACTS_SCHEMA, pk=CAMPAIGN_CONTACTS_PK,
        description="One row per campaign x person x group (is_holdout: holdout_assigned; else a send: email_send, "
                    "sms_send, push_send) contacted on day D, with the first such event of the day; persons as of "
                    "D. The compact input of incremental_lift.",
        event_columns=["event_type", "campaign_id", "occurred_at"], compute=daily_campaign_contacts,
        summary=lambda frame: {"campaigns": int(frame["campaign_id"].nunique()), "contacts": len(frame)})


def campaign_starts_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=CAMPAIGN_STARTS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per campaign (campaign_id) with a send or holdout_assigned event up to day D: its first "
                    "such event. A state: D = D-1 + the campaigns contacted on D.",
        ins={"campaign_contacts": dg.AssetIn(key=CAMPAIGN_CONTACTS_KEY),
             "previous": dg.AssetIn(key=CAMPAIGN_STARTS_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(CAMPAIGN_STARTS_SCHEMA), "primary_key": ["campaign_id"]},
        check_specs=[
            checks.schema_spec(CAMPAIGN_STARTS_KEY, partitions),
            dg.AssetCheckSpec("campaign_id_is_unique", asset=CAMPAIGN_STARTS_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["campaign_id"]))],
    )
    def campaign_starts(campaign_contacts: pd.DataFrame, previous: pd.DataFrame | None):
        frame = update_campaign_starts(previous, campaign_contacts)
        yield from checks.written(CAMPAIGN_STARTS_KEY, frame, CAMPAIGN_STARTS_SCHEMA,
                                  metadata={"campaigns": len(frame)})
        yield checks.primary_key_is_unique(CAMPAIGN_STARTS_KEY, frame, ["campaign_id"])

    return campaign_starts


AD_CLICKS_KEY = dg.AssetKey(["aggregates", "ad_clicks"])
AD_CLICKS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),  # as of day D (remapped through later merges by KPIs)
    pa.field("first_click_at", pa.timestamp("us", tz="UTC"), nullable=False),  # the first ad_click of D
    pa.field("count_clicks", pa.int64(), nullable=False),
])


def daily_ad_clicks(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The day's ad_click events per person: the first one and how many."""
    clicks = events.loc[(events["event_type"] == "ad_click").to_numpy()]
    frame = pd.DataFrame({"person_id": attach_person_id(clicks, identity_map).to_numpy(),
                          "first_click_at": pd.to_datetime(clicks["occurred_at"], utc=True).to_numpy()})
    out = frame.dropna(subset=["person_id"]).groupby("person_id")["first_click_at"].agg(["min", "size"])
    out = out.reset_index().rename(columns={"min": "first_click_at", "size": "count_clicks"})
    out["first_click_at"] = pd.to_datetime(out["first_click_at"], utc=True)
    out["count_clicks"] = out["count_clicks"].astype("int64")
    return out.sort_values("person_id", ignore_index=True)[list(AD_CLICKS_SCHEMA.names)]


def ad_clicks_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=AD_CLICKS_KEY, schema=AD_CLICKS_SCHEMA, pk=["person_id"],
        description="One row per person with an ad_click on day D: the first ad_click of the day and the number of "
                    "ad_clicks; persons as of D. The compact input of ad_conversion_rate.",
        event_columns=["event_type", "occurred_at"], compute=daily_ad_clicks,
        summary=lambda frame: {"persons": len(frame), "clicks": int(frame["count_clicks"].sum())})


def campaign_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [campaign_contacts_asset(partitions), campaign_starts_asset(partitions), ad_clicks_asset(partitions)]
