"""The attribution asset group: touches of each day, and the journeys and credits of each day's orders."""

import datetime as dt
import math

import dagster as dg
import pandas as pd

from crm_pipeline import checks
from crm_pipeline.attribution.credits import (
    ORDER_ATTRIBUTION_SCHEMA,
    credit_sums,
    order_attribution,
    revenue_gaps,
)
from crm_pipeline.attribution.journeys import (
    JOURNEYS_SCHEMA,
    TOUCHES_SCHEMA,
    JourneyConfig,
    extract_touches,
    journey_touches,
    journeys_table,
)
from crm_pipeline.attribution.models import HEURISTIC_MODELS
from crm_pipeline.identity.assets import MAP_KEY
from crm_pipeline.metadata import arrow_table, column_schema
from crm_pipeline.resources import OWNERS

GROUP = "attribution"
KINDS = {"python", "pandas", "parquet"}
TOUCHES_KEY = dg.AssetKey(["attribution", "touches"])
JOURNEYS_KEY = dg.AssetKey(["attribution", "journeys"])
ATTRIBUTION_KEY = dg.AssetKey(["attribution", "order_attribution"])
ATTRIBUTION_PK = ["order_id", "model", "channel", "campaign_id"]
MAP_COLUMNS = ["identifier_type", "identifier", "person_id", "is_refused"]
# reconciliation tolerance: half a cent over the whole day
CENT = 0.005


def _day(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def touches_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    config = JourneyConfig()
    columns = ["event_id", "occurred_at", "event_type", "channel", "channel_group", "campaign_id", "device_type",
               "customer_id", "email_hash", "phone_hash", "device_id", "anonymous_id"]

    @dg.asset(
        key=TOUCHES_KEY, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS,
        description=(
            "One row per marketing touch (event_id) on day D: ad_click, email_click, sms_click, push_open, "
            "social_interaction, session_start, browser_app_click, app_open (email_open and ad_impression only "
            "as view-through when enabled), with channel, campaign, device, the identifiers (hashes only) and "
            "the person as of D."
        ),
        ins={"events": dg.AssetIn(key=dg.AssetKey(["ingest", "events"]), metadata={"columns": columns}),
             "identity_map": dg.AssetIn(key=MAP_KEY, metadata={"columns": MAP_COLUMNS})},
        metadata={"dagster/column_schema": column_schema(TOUCHES_SCHEMA), "primary_key": ["event_id"]},
        check_specs=[dg.AssetCheckSpec("event_id_is_unique", asset=TOUCHES_KEY, blocking=True,
                                       partitions_def=partitions),
                     dg.AssetCheckSpec("every_touch_has_a_person", asset=TOUCHES_KEY, partitions_def=partitions,
                                       description="every touch carries an identifier the identity map knows")],
    )
    def touches(events: pd.DataFrame, identity_map: pd.DataFrame):
        frame = extract_touches(events, identity_map, config)
        yield dg.Output(arrow_table(frame, TOUCHES_SCHEMA), metadata={
            "touches": len(frame), "by_channel": dg.MetadataValue.json(
                {str(k): int(v) for k, v in frame["channel"].value_counts().sort_index().items()})})
        yield checks.primary_key_is_unique(TOUCHES_KEY, frame, ["event_id"])
        orphans = int(frame["person_id"].isna().sum())
        yield dg.AssetCheckResult(asset_key=TOUCHES_KEY, check_name="every_touch_has_a_person",
                                  passed=orphans == 0, metadata={"touches_without_person": orphans})

    return touches


def attribution_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    config = JourneyConfig()
    window_days = math.ceil(config.max_lookback_days)
    models = HEURISTIC_MODELS

    @dg.multi_asset(
        name="order_attribution",
        partitions_def=partitions,
        outs={
            "journeys": dg.AssetOut(
                key=JOURNEYS_KEY, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                description=(
                    "One row per order (order_id) placed on day D: its buyer, net revenue, the number of touches "
                    "and distinct channels in its journey (the buyer's touches on any device in the 30 days "
                    "before the order), the ordered channel path and the days from the first touch."
                ),
                metadata={"dagster/column_schema": column_schema(JOURNEYS_SCHEMA), "primary_key": ["order_id"]}),
            "order_attribution": dg.AssetOut(
                key=ATTRIBUTION_KEY, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                description=(
                    "One row per order placed on day D x attribution model x credited channel x campaign: the "
                    "credit (share of the order) and attributed revenue (credit x net revenue). Models: "
                    + ", ".join(models) + ". An order without touches is credited 1 to (unattributed). For "
                    "every order and model the credits sum to 1, so each model's attributed revenue equals the "
                    "day's net revenue to the cent (blocking checks)."
                ),
                metadata={"dagster/column_schema": column_schema(ORDER_ATTRIBUTION_SCHEMA),
                          "primary_key": ATTRIBUTION_PK, "models": list(models)}),
        },
        ins={
            "orders": dg.AssetIn(key=dg.AssetKey(["ingest", "orders"]), metadata={"columns": [
                "order_id", "ordered_at", "net_revenue", "customer_id", "email_hash", "anonymous_id", "device_id"]}),
            "touches": dg.AssetIn(key=TOUCHES_KEY, partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-window_days, end_offset=0)),
            "identity_map": dg.AssetIn(key=MAP_KEY, metadata={"columns": MAP_COLUMNS}),
        },
        check_specs=[
            dg.AssetCheckSpec("order_id_is_unique", asset=JOURNEYS_KEY, blocking=True, partitions_def=partitions),
            dg.AssetCheckSpec("primary_key_is_unique", asset=ATTRIBUTION_KEY, blocking=True,
                              partitions_def=partitions),
            dg.AssetCheckSpec("credits_sum_to_one", asset=ATTRIBUTION_KEY, blocking=True, partitions_def=partitions,
                              description="for every order and model the credits sum to 1 (within 1e-9)"),
            dg.AssetCheckSpec("attributed_revenue_reconciles", asset=ATTRIBUTION_KEY, blocking=True,
                              partitions_def=partitions,
                              description="per model, attributed revenue = the day's net revenue to the cent"),
        ],
    )
    def order_attribution_assets(orders: pd.DataFrame, touches: pd.DataFrame, identity_map: pd.DataFrame):
        touch_rows, order_person = journey_touches(orders, touches, identity_map, config)
        journeys = journeys_table(orders, order_person, touch_rows)
        attribution = order_attribution(orders, touch_rows, models=models)
        yield dg.Output(arrow_table(journeys, JOURNEYS_SCHEMA), output_name="journeys", metadata={
            "orders": len(journeys), "orders_with_touches": int((journeys["count_touches"] > 0).sum()),
            "touches_in_window": len(touches)})
        yield dg.Output(arrow_table(attribution, ORDER_ATTRIBUTION_SCHEMA), output_name="order_attribution",
                        metadata={"rows": len(attribution), "net_revenue": float(orders["net_revenue"].sum())})
        yield checks.primary_key_is_unique(JOURNEYS_KEY, journeys, ["order_id"])
        yield checks.primary_key_is_unique(ATTRIBUTION_KEY, attribution, ATTRIBUTION_PK, nullable=["campaign_id"])
        yield credits_sum_to_one(attribution, orders, models)
        yield attributed_revenue_reconciles(attribution, orders, models)

    return order_attribution_assets


def credits_sum_to_one(attribution: pd.DataFrame, orders: pd.DataFrame, models: tuple[str, ...]) -> dg.AssetCheckResult:
    """Every (order, model) pair exists and its credits sum to 1."""
    sums = credit_sums(attribution)
    expected = pd.MultiIndex.from_product([orders["order_id"].astype(str).unique(), list(models)],
                                          names=["order_id", "model"])
    sums = sums.reindex(expected, fill_value=0.0)
    bad = sums[(sums - 1.0).abs() > 1e-9]
    return dg.AssetCheckResult(
        asset_key=ATTRIBUTION_KEY, check_name="credits_sum_to_one", passed=bad.empty,
        metadata={"pairs_checked": len(sums), "pairs_not_summing_to_one": len(bad),
                  "examples": dg.MetadataValue.json([[o, m, float(v)] for (o, m), v in bad.head(5).items()])})


def attributed_revenue_reconciles(attribution: pd.DataFrame, orders: pd.DataFrame,
                                  models: tuple[str, ...]) -> dg.AssetCheckResult:
    """Per model, the day's attributed revenue equals its net revenue to the cent."""
    gaps = revenue_gaps(attribution, orders, models)
    return dg.AssetCheckResult(
        asset_key=ATTRIBUTION_KEY, check_name="attributed_revenue_reconciles",
        passed=bool((gaps.abs() < CENT).all()),
        metadata={"net_revenue": float(orders["net_revenue"].sum()),
                  "gap_by_model": dg.MetadataValue.json({k: float(v) for k, v in gaps.items()})})


def build_attribution_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [touches_asset(partitions), attribution_asset(partitions)]
