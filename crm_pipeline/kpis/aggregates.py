"""Compact daily aggregates the KPIs read instead of raw events, so trailing windows stay cheap.

`aggregates/visits`: one row per channel x device type x hour of day (reporting timezone) with the day's
visits (session_start events). Thirty of these tiny files replace 30 days of events for the visit KPIs.
"""

from collections.abc import Callable, Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.identity.graph import (
    IDENTIFIER_COLUMN_NAMES,
    PERSON_LOOKUP_COLUMNS,
    attach_person_id,
    resolve_person_ids,
)
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.metadata import column_schema
from crm_pipeline.resources import OWNERS, PipelineSettingsResource

VISITS_KEY = dg.AssetKey(["aggregates", "visits"])
VISITS_PK = ["channel", "channel_group", "device_type", "hour"]
VISITS_SCHEMA = pa.schema([
    pa.field("channel", pa.string(), nullable=False),
    pa.field("channel_group", pa.string()),
    pa.field("device_type", pa.string()),  # null: the visit had no device type
    pa.field("hour", pa.string(), nullable=False),  # "00".."23" in the reporting timezone
    pa.field("count_visits", pa.int64(), nullable=False),
])


def daily_visits(events: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The day's session_start events counted by channel, group, device type and local hour."""
    visits = events.loc[(events["event_type"] == "session_start").to_numpy()]
    hour = visits["occurred_at"].dt.tz_convert(timezone).dt.hour.map("{:02d}".format)
    frame = pd.DataFrame({"channel": visits["channel"].to_numpy(), "channel_group": visits["channel_group"].to_numpy(),
                          "device_type": visits["device_type"].to_numpy(), "hour": hour.to_numpy()})
    out = frame.groupby(VISITS_PK, dropna=False).size().rename("count_visits").reset_index()
    return out.sort_values(VISITS_PK, na_position="first", ignore_index=True)


def visits_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=VISITS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per channel x channel group x device type x hour of day (reporting timezone) with "
                    "the visits (session_start events) of day D: the compact input of the visit KPIs.",
        ins={"events": dg.AssetIn(key=dg.AssetKey(["ingest", "events"]), metadata={
            "columns": ["event_type", "occurred_at", "channel", "channel_group", "device_type"]})},
        metadata={"dagster/column_schema": column_schema(VISITS_SCHEMA), "primary_key": VISITS_PK},
        check_specs=[
            checks.schema_spec(VISITS_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(VISITS_PK), asset=VISITS_KEY, blocking=True,
                              partitions_def=partitions,
                              description=checks.primary_key_description(VISITS_PK, ["channel_group", "device_type"]))],
    )
    def visits(settings: PipelineSettingsResource, events: pd.DataFrame):
        frame = daily_visits(events, settings.get().timezone)
        yield from checks.written(VISITS_KEY, frame, VISITS_SCHEMA,
                                  metadata={"visits": int(frame["count_visits"].sum())})
        yield checks.primary_key_is_unique(VISITS_KEY, frame, VISITS_PK, nullable=["channel_group", "device_type"])

    return visits


def _events_by_person_asset(partitions: dg.DailyPartitionsDefinition, *, key: dg.AssetKey, schema: pa.Schema,
                            pk: list[str], description: str, event_columns: list[str],
                            compute: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame],
                            summary: Callable[[pd.DataFrame], dict[str, int]],
                            nullable: Sequence[str] = ()) -> dg.AssetsDefinition:
    """A daily aggregate of the day's events with persons attached by the identity map of D: the same inputs,
    checks (primary key, schema) and output handling for each."""

    @dg.asset(
        key=key, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"}, description=description,
        ins={"events": dg.AssetIn(key=dg.AssetKey(["ingest", "events"]),
                                  metadata={"columns": [*event_columns, *IDENTIFIER_COLUMN_NAMES]}),
             "identity_map": dg.AssetIn(key=dg.AssetKey(["identity", "identity_map"]), metadata={
                 "columns": list(PERSON_LOOKUP_COLUMNS)})},
        metadata={"dagster/column_schema": column_schema(schema), "primary_key": pk},
        check_specs=[
            checks.schema_spec(key, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(pk), asset=key, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(pk, nullable))],
    )
    def aggregate(events: pd.DataFrame, identity_map: pd.DataFrame):
        frame = compute(events, identity_map)
        yield from checks.written(key, frame, schema, metadata=summary(frame))
        yield checks.primary_key_is_unique(key, frame, pk, nullable=nullable)

    return aggregate


ENGAGEMENT_EVENT_TYPES = (
    "app_open", "browser_app_click", "email_open", "email_click", "sms_click", "push_open", "social_interaction",
    "social_follow", "session_start", "category_view", "cart_add", "login", "ad_click",
)
PERSON_ENGAGEMENT_KEY = dg.AssetKey(["aggregates", "person_engagement"])
PERSON_ENGAGEMENT_PK = ["person_id", "channel"]
PERSON_ENGAGEMENT_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),  # as of day D (remapped through later merges by KPIs)
    pa.field("channel", pa.string(), nullable=False),
    pa.field("count_engagements", pa.int64(), nullable=False),
])


def daily_person_engagement(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The day's engagement events (docs/outputs.md 2.2) counted per person and channel."""
    engaged = events.loc[events["event_type"].isin(ENGAGEMENT_EVENT_TYPES).to_numpy()]
    frame = pd.DataFrame({"person_id": attach_person_id(engaged, identity_map).to_numpy(),
                          "channel": engaged["channel"].to_numpy()}).dropna()
    out = frame.groupby(PERSON_ENGAGEMENT_PK).size().rename("count_engagements").reset_index()
    return out.sort_values(PERSON_ENGAGEMENT_PK, ignore_index=True)


def person_engagement_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=PERSON_ENGAGEMENT_KEY, schema=PERSON_ENGAGEMENT_SCHEMA, pk=PERSON_ENGAGEMENT_PK,
        description="One row per person and channel with engagement events on day D (app_open, browser_app_click, "
                    "email_open, email_click, sms_click, push_open, social_interaction, social_follow, "
                    "session_start, category_view, cart_add, login, ad_click), persons as of D.",
        event_columns=["event_type", "channel"], compute=daily_person_engagement,
        summary=lambda frame: {"persons": int(frame["person_id"].nunique()),
                               "engagements": int(frame["count_engagements"].sum())})

CATEGORY_VIEWS_KEY = dg.AssetKey(["aggregates", "category_views"])
CATEGORY_VIEWS_PK = ["person_id", "category"]
CATEGORY_VIEWS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),  # as of day D
    pa.field("category", pa.string(), nullable=False),
    pa.field("count_views", pa.int64(), nullable=False),
])


def daily_category_views(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The day's category_view events with a category, counted per person and category."""
    views = events.loc[((events["event_type"] == "category_view") & events["category"].notna()).to_numpy()]
    frame = pd.DataFrame({"person_id": attach_person_id(views, identity_map).to_numpy(),
                          "category": views["category"].astype("string").to_numpy()}).dropna()
    out = frame.groupby(CATEGORY_VIEWS_PK).size().rename("count_views").reset_index()
    return out.sort_values(CATEGORY_VIEWS_PK, ignore_index=True)


def category_views_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=CATEGORY_VIEWS_KEY, schema=CATEGORY_VIEWS_SCHEMA, pk=CATEGORY_VIEWS_PK,
        description="One row per person and category with category_view events on day D (views without a "
                    "category are left out), persons as of D: the compact input of the category audiences.",
        event_columns=["event_type", "category"], compute=daily_category_views,
        summary=lambda frame: {"persons": int(frame["person_id"].nunique()),
                               "views": int(frame["count_views"].sum())})

PAIR_EVENT_TYPES = ("email_open", "email_click", "push_open", "sms_click")
COUNTED_EVENT_TYPES = ("email_send", "email_delivered", "email_bounce", "email_complaint", "email_unsubscribe",
                       "push_send", "sms_send", "social_interaction", "session_start")
MESSAGING_KEY = dg.AssetKey(["aggregates", "messaging"])
MESSAGING_PK = ["event_type", "interaction_kind", "person_id", "campaign_id"]
MESSAGING_SCHEMA = pa.schema([
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("interaction_kind", pa.string()),  # like/share/comment on social_interaction rows
    pa.field("person_id", pa.string()),  # opens and clicks only: distinct (person, campaign) pairs
    pa.field("campaign_id", pa.string()),  # opens and clicks only; a missing campaign is "(none)"
    pa.field("count_events", pa.int64(), nullable=False),
])


def daily_messaging(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """Opens and clicks per (event type, person, campaign) and sends, deliveries, bounces, complaints,
    unsubscribes, interactions and visits per event type (and interaction kind): what the engagement rates and
    deliverability need, one row per group."""
    pairs = events.loc[events["event_type"].isin(PAIR_EVENT_TYPES).to_numpy()]
    pair_rows = pd.DataFrame({
        "event_type": pairs["event_type"].to_numpy(), "interaction_kind": None,
        "person_id": attach_person_id(pairs, identity_map).to_numpy(),
        "campaign_id": pairs["campaign_id"].fillna("(none)").to_numpy(),
    }).dropna(subset=["person_id"])
    counted = events.loc[events["event_type"].isin(COUNTED_EVENT_TYPES).to_numpy()]
    count_rows = pd.DataFrame({"event_type": counted["event_type"].to_numpy(),
                               "interaction_kind": counted["interaction_kind"].to_numpy(),
                               "person_id": None, "campaign_id": None})
    frame = pd.concat([pair_rows, count_rows], ignore_index=True)
    out = frame.groupby(MESSAGING_PK, dropna=False).size().rename("count_events").reset_index()
    return out.sort_values(MESSAGING_PK, na_position="first", ignore_index=True)


def messaging_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=MESSAGING_KEY, schema=MESSAGING_SCHEMA, pk=MESSAGING_PK,
        description="One row per event type x interaction kind x person x campaign of day D: email/push opens, email "
                    "clicks and sms clicks per (person, campaign); email sends, deliveries, bounces, complaints and "
                    "unsubscribes, push and sms sends, social interactions and visits per event type (person and "
                    "campaign null). The compact input of engagement_rates and deliverability.",
        event_columns=["event_type", "campaign_id", "interaction_kind"], compute=daily_messaging,
        summary=lambda frame: {"rows": len(frame)}, nullable=["interaction_kind", "person_id", "campaign_id"])

FIRST_ORDERS_KEY = dg.AssetKey(["aggregates", "first_orders"])
FIRST_ORDERS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("first_order_id", pa.string(), nullable=False),
    pa.field("first_ordered_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def update_first_orders(previous: pd.DataFrame | None, orders: pd.DataFrame, identity_map: pd.DataFrame,
                        merges: pd.DataFrame) -> pd.DataFrame:
    """Each person's first order (earliest ordered_at, ties: lowest order_id; refunded later or not) as of D:
    yesterday's state with its persons carried through today's merges, plus today's orders."""
    today = pd.DataFrame({"person_id": attach_person_id(orders, identity_map).to_numpy(),
                          "first_order_id": orders["order_id"].to_numpy(),
                          "first_ordered_at": orders["ordered_at"].to_numpy()}).dropna(subset=["person_id"])
    frames = [today]
    if previous is not None and len(previous):
        carried = previous.assign(person_id=resolve_person_ids(previous["person_id"].astype("string"),
                                                               merges).to_numpy())
        frames.insert(0, carried)
    both = pd.concat(frames, ignore_index=True)
    both["first_ordered_at"] = pd.to_datetime(both["first_ordered_at"], utc=True)
    first = both.sort_values(["person_id", "first_ordered_at", "first_order_id"]).drop_duplicates("person_id")
    return first.reset_index(drop=True)[list(FIRST_ORDERS_SCHEMA.names)]


def first_orders_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=FIRST_ORDERS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per person with an order up to day D: the person's first order (earliest ordered_at, "
                    "ties: lowest order_id, refunded later or not). A state: D = D-1 carried through the merges "
                    "of D + the orders of D.",
        ins={"orders": dg.AssetIn(key=dg.AssetKey(["ingest", "orders"]), metadata={
                 "columns": ["order_id", "ordered_at", "customer_id", "email_hash", "anonymous_id", "device_id"]}),
             "identity_map": dg.AssetIn(key=dg.AssetKey(["identity", "identity_map"]), metadata={
                 "columns": list(PERSON_LOOKUP_COLUMNS)}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"])),
             "previous": dg.AssetIn(key=FIRST_ORDERS_KEY,
                                    partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(FIRST_ORDERS_SCHEMA), "primary_key": ["person_id"]},
        check_specs=[
            checks.schema_spec(FIRST_ORDERS_KEY, partitions),
            dg.AssetCheckSpec("person_id_is_unique", asset=FIRST_ORDERS_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["person_id"]))],
    )
    def first_orders(orders: pd.DataFrame, identity_map: pd.DataFrame, identity_merges: pd.DataFrame,
                     previous: pd.DataFrame | None):
        frame = update_first_orders(previous, orders, identity_map, identity_merges)
        yield from checks.written(FIRST_ORDERS_KEY, frame, FIRST_ORDERS_SCHEMA, metadata={"persons": len(frame)})
        yield checks.primary_key_is_unique(FIRST_ORDERS_KEY, frame, ["person_id"])

    return first_orders
