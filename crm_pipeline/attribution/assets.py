"""The attribution asset group: touches of each day, and the journeys and credits of each day's orders."""

import math

import dagster as dg
import pandas as pd

from crm_pipeline import checks
from crm_pipeline.attribution.credits import (
    CHANNEL_ROAS_SCHEMA,
    ORDER_ATTRIBUTION_SCHEMA,
    channel_roas,
    credit_sums,
    order_attribution,
    revenue_gaps,
)
from crm_pipeline.attribution.journeys import (
    JOURNEY_TOUCHES_SCHEMA,
    JOURNEYS_SCHEMA,
    TOUCHES_SCHEMA,
    JourneyConfig,
    extract_touches,
    journey_touches,
    journeys_table,
)
from crm_pipeline.attribution.models import MODELS, apply_path_transform
from crm_pipeline.attribution.training import (
    CHANNEL_MODEL_VALUES_SCHEMA,
    CONVERTING_PATHS_SCHEMA,
    MARKOV_TRANSITIONS_SCHEMA,
    PATH_SUMMARY_SCHEMA,
    PERSON_DAY_PATHS_SCHEMA,
    TRAINING_DAYS,
    fit_models,
    path_summary,
    training_paths,
    update_converting_paths,
    update_person_day_paths,
)
from crm_pipeline.identity.assets import MAP_KEY
from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.kpis.persons import IDENTITY_MERGES_PATH, PersonRemap
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings

GROUP = "attribution"
KINDS = {"python", "pandas", "parquet"}
TOUCHES_KEY = dg.AssetKey(["attribution", "touches"])
JOURNEYS_KEY = dg.AssetKey(["attribution", "journeys"])
ATTRIBUTION_KEY = dg.AssetKey(["attribution", "order_attribution"])
JOURNEY_TOUCHES_KEY = dg.AssetKey(["attribution", "journey_touches"])
CONVERTING_KEY = dg.AssetKey(["attribution", "converting_paths"])
PERSON_DAYS_KEY = dg.AssetKey(["attribution", "person_day_paths"])
MODEL_VALUES_KEY = dg.AssetKey(["attribution", "channel_model_values"])
TRANSITIONS_KEY = dg.AssetKey(["attribution", "markov_transitions"])
PATH_SUMMARY_KEY = dg.AssetKey(["attribution", "path_summary"])
ROAS_KEY = dg.AssetKey(["attribution", "channel_roas"])
ATTRIBUTION_PK = ["order_id", "model", "channel", "campaign_id"]
MAP_COLUMNS = list(PERSON_LOOKUP_COLUMNS)
# reconciliation tolerance: half a cent over the whole day
CENT = 0.005



def touches_asset(partitions: dg.DailyPartitionsDefinition, config: JourneyConfig) -> dg.AssetsDefinition:
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
        check_specs=[
            checks.schema_spec(TOUCHES_KEY, partitions),
            dg.AssetCheckSpec("event_id_is_unique", asset=TOUCHES_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["event_id"])),
                     dg.AssetCheckSpec("every_touch_has_a_person", asset=TOUCHES_KEY, partitions_def=partitions,
                                       description="every touch carries an identifier the identity map knows")],
    )
    def touches(events: pd.DataFrame, identity_map: pd.DataFrame):
        frame = extract_touches(events, identity_map, config)
        yield from checks.written(TOUCHES_KEY, frame, TOUCHES_SCHEMA, metadata={
            "touches": len(frame), "by_channel": dg.MetadataValue.json(
                {str(k): int(v) for k, v in frame["channel"].value_counts().sort_index().items()})})
        yield checks.primary_key_is_unique(TOUCHES_KEY, frame, ["event_id"])
        yield checks.every_touch_has_a_person(TOUCHES_KEY, frame)

    return touches


def journeys_asset(partitions: dg.DailyPartitionsDefinition, config: JourneyConfig) -> dg.AssetsDefinition:
    window_days = math.ceil(config.max_lookback_days)

    @dg.multi_asset(
        name="journeys",
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
            "journey_touches": dg.AssetOut(
                key=JOURNEY_TOUCHES_KEY, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                description=(
                    "One row per order placed on day D x touch of its journey (order_id, touch_rank): the touches "
                    "the attribution models credit, ranked by (touch_at, event_id)."
                ),
                metadata={"dagster/column_schema": column_schema(JOURNEY_TOUCHES_SCHEMA),
                          "primary_key": ["order_id", "touch_rank"]}),
        },
        ins={
            "orders": dg.AssetIn(key=dg.AssetKey(["ingest", "orders"]), metadata={"columns": [
                "order_id", "ordered_at", "net_revenue", "customer_id", "email_hash", "anonymous_id", "device_id"]}),
            "touches": dg.AssetIn(key=TOUCHES_KEY, partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-window_days, end_offset=0)),
            "identity_map": dg.AssetIn(key=MAP_KEY, metadata={"columns": MAP_COLUMNS}),
        },
        deps=[dg.AssetDep(dg.AssetKey(list(IDENTITY_MERGES_PATH)))],  # read directly: persons follow identity
        check_specs=[
            checks.schema_spec(JOURNEYS_KEY, partitions),
            checks.schema_spec(JOURNEY_TOUCHES_KEY, partitions),
            dg.AssetCheckSpec("order_id_is_unique", asset=JOURNEYS_KEY, blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(["order_id"])),
            dg.AssetCheckSpec("order_id_touch_rank_is_unique", asset=JOURNEY_TOUCHES_KEY, blocking=True,
                              partitions_def=partitions,
                              description=checks.primary_key_description(["order_id", "touch_rank"])),
        ],
    )
    def journeys(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, orders: pd.DataFrame,
                 touches: pd.DataFrame, identity_map: pd.DataFrame):
        # persons as of the newest identity partition (docs/outputs.md 2.2): a re-run after a merge joins both parts
        remap = PersonRemap.load(settings.get(), partition_day(context), 1)
        touch_rows, order_person = journey_touches(orders, touches, identity_map, config, remap)
        table = journeys_table(orders, order_person, touch_rows)
        yield from checks.written(JOURNEYS_KEY, table, JOURNEYS_SCHEMA, output_name="journeys", metadata={
            "orders": len(table), "orders_with_touches": int((table["count_touches"] > 0).sum()),
            "touches_in_window": len(touches), "identity_changes_through": remap.newest_identity_day or "-",
            "identity_merges_applied": remap.merges})
        yield from checks.written(JOURNEY_TOUCHES_KEY, touch_rows, JOURNEY_TOUCHES_SCHEMA,
                                  output_name="journey_touches",
                                  metadata={"rows": len(touch_rows)})
        yield checks.primary_key_is_unique(JOURNEYS_KEY, table, ["order_id"])
        yield checks.primary_key_is_unique(JOURNEY_TOUCHES_KEY, touch_rows, ["order_id", "touch_rank"])

    return journeys


def _state_asset(key: dg.AssetKey, schema, upstream: dg.AssetKey, update, description: str,
                 pk: list[str], partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """A trailing-window training state: yesterday's state + the day's rows of `upstream`."""

    @dg.asset(
        key=key, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS, description=description,
        ins={"today": dg.AssetIn(key=upstream),
             "previous": dg.AssetIn(key=key, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(schema), "primary_key": pk},
        check_specs=[
            checks.schema_spec(key, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(pk), asset=key, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(pk))],
    )
    def state(context: dg.AssetExecutionContext, today: pd.DataFrame, previous: pd.DataFrame | None):
        frame = update(previous, today, partition_day(context))
        yield from checks.written(key, frame, schema, metadata={"rows": len(frame), "first_load": previous is None})
        yield checks.primary_key_is_unique(key, frame, pk)

    return state


def models_asset(partitions: dg.DailyPartitionsDefinition, settings: Settings) -> dg.AssetsDefinition:
    transform, order = settings.attribution_path_transform, settings.attribution_markov_order

    @dg.multi_asset(
        name="attribution_models",
        partitions_def=partitions,
        outs={
            "channel_model_values": dg.AssetOut(
                key=MODEL_VALUES_KEY, group_name=GROUP, owners=OWNERS, kinds={"python", "scipy", "parquet"},
                description=(
                    "One row per data-driven model (markov, shapley) and channel, trained for day D on the "
                    "journeys of the orders in D-89..D (converting) and the touches of persons without an order "
                    "there (non-converting): the Markov removal effect (exact absorbing-chain computation) and the "
                    "set-based Shapley value, with each value's share."
                ),
                metadata={"dagster/column_schema": column_schema(CHANNEL_MODEL_VALUES_SCHEMA),
                          "primary_key": ["model", "channel"]}),
            "markov_transitions": dg.AssetOut(
                key=TRANSITIONS_KEY, group_name=GROUP, owners=OWNERS, kinds={"python", "scipy", "parquet"},
                description=(
                    "One row per transition (from_state, to_state) of the first-order Markov chain trained for day "
                    "D, with its maximum-likelihood probability; states (start), the channels, (conversion), (null)."
                ),
                metadata={"dagster/column_schema": column_schema(MARKOV_TRANSITIONS_SCHEMA),
                          "primary_key": ["from_state", "to_state"]}),
            "path_summary": dg.AssetOut(
                key=PATH_SUMMARY_KEY, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                description=(
                    "One row per channel path (after the configured path transform) among the 500 most frequent "
                    "journeys of the training window D-89..D: journeys, conversions, non-conversions, conversion "
                    "rate and the net revenue of the converting ones, ranked by frequency."
                ),
                metadata={"dagster/column_schema": column_schema(PATH_SUMMARY_SCHEMA),
                          "primary_key": ["channel_path"]}),
        },
        ins={"converting_paths": dg.AssetIn(key=CONVERTING_KEY), "person_day_paths": dg.AssetIn(key=PERSON_DAYS_KEY)},
        check_specs=[
            checks.schema_spec(MODEL_VALUES_KEY, partitions),
            checks.schema_spec(TRANSITIONS_KEY, partitions),
            checks.schema_spec(PATH_SUMMARY_KEY, partitions),
            dg.AssetCheckSpec("model_channel_is_unique", asset=MODEL_VALUES_KEY, blocking=True,
                              partitions_def=partitions,
                              description=checks.primary_key_description(["model", "channel"])),
            dg.AssetCheckSpec("from_state_to_state_is_unique", asset=TRANSITIONS_KEY, blocking=True,
                              partitions_def=partitions,
                              description=checks.primary_key_description(["from_state", "to_state"])),
            dg.AssetCheckSpec("transitions_are_stochastic", asset=TRANSITIONS_KEY, blocking=True,
                              partitions_def=partitions,
                              description="the probabilities out of every non-absorbing state sum to 1"),
            dg.AssetCheckSpec("channel_path_is_unique", asset=PATH_SUMMARY_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["channel_path"])),
        ],
    )
    def attribution_models(converting_paths: pd.DataFrame, person_day_paths: pd.DataFrame):
        training = training_paths(converting_paths, person_day_paths, transform)  # split once, used twice
        values, transitions, counts = fit_models(converting_paths, person_day_paths, markov_order=order,
                                                 transform=transform, training=training)
        summary = path_summary(converting_paths, person_day_paths, transform, training=training)
        yield from checks.written(MODEL_VALUES_KEY, values, CHANNEL_MODEL_VALUES_SCHEMA,
                                  output_name="channel_model_values",
                                  metadata={**counts, "training_days": TRAINING_DAYS, "markov_order": order,
                                            "path_transform": transform})
        yield from checks.written(TRANSITIONS_KEY, transitions, MARKOV_TRANSITIONS_SCHEMA,
                                  output_name="markov_transitions")
        yield from checks.written(PATH_SUMMARY_KEY, summary, PATH_SUMMARY_SCHEMA, output_name="path_summary",
                                  metadata={"paths": len(summary)})
        yield checks.primary_key_is_unique(PATH_SUMMARY_KEY, summary, ["channel_path"])
        yield checks.primary_key_is_unique(TRANSITIONS_KEY, transitions, ["from_state", "to_state"])
        yield checks.primary_key_is_unique(MODEL_VALUES_KEY, values, ["model", "channel"])
        yield checks.transitions_are_stochastic(TRANSITIONS_KEY, transitions)

    return attribution_models


def attribution_asset(partitions: dg.DailyPartitionsDefinition, settings: Settings) -> dg.AssetsDefinition:
    models = MODELS
    transform, half_life = settings.attribution_path_transform, settings.attribution_half_life_days

    @dg.asset(
        key=ATTRIBUTION_KEY, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS,
        description=(
            "One row per order placed on day D x attribution model x credited channel x campaign: the credit "
            "(share of the order) and attributed revenue (credit x net revenue). Models: " + ", ".join(models)
            + " (markov and shapley: value of each journey channel / their sum, trained for D). An order without "
            "touches is credited 1 to (unattributed). For every order and model the credits sum to 1, so each "
            "model's attributed revenue equals the day's net revenue to the cent (blocking checks)."
        ),
        ins={"journeys": dg.AssetIn(key=JOURNEYS_KEY, metadata={"columns": ["order_id", "net_revenue"]}),
             "journey_touches": dg.AssetIn(key=JOURNEY_TOUCHES_KEY),
             "channel_model_values": dg.AssetIn(key=MODEL_VALUES_KEY)},
        metadata={"dagster/column_schema": column_schema(ORDER_ATTRIBUTION_SCHEMA), "primary_key": ATTRIBUTION_PK,
                  "models": list(models)},
        check_specs=[
            checks.schema_spec(ATTRIBUTION_KEY, partitions),
            dg.AssetCheckSpec("primary_key_is_unique", asset=ATTRIBUTION_KEY, blocking=True,
                              partitions_def=partitions,
                              description=checks.primary_key_description(ATTRIBUTION_PK, ["campaign_id"])),
            dg.AssetCheckSpec("credits_sum_to_one", asset=ATTRIBUTION_KEY, blocking=True, partitions_def=partitions,
                              description="for every order and model the credits sum to 1 (within 1e-9)"),
            dg.AssetCheckSpec("attributed_revenue_reconciles", asset=ATTRIBUTION_KEY, blocking=True,
                              partitions_def=partitions,
                              description="per model, attributed revenue = the day's net revenue to the cent"),
        ],
    )
    def order_attribution_asset(journeys: pd.DataFrame, journey_touches: pd.DataFrame,
                                channel_model_values: pd.DataFrame):
        touches = journey_touches if transform == "none" else apply_path_transform(journey_touches, transform)
        attribution = order_attribution(journeys, touches, models=models, half_life_days=half_life,
                                        channel_values=channel_model_values)
        yield from checks.written(ATTRIBUTION_KEY, attribution, ORDER_ATTRIBUTION_SCHEMA, metadata={
            "rows": len(attribution), "orders": len(journeys), "net_revenue": float(journeys["net_revenue"].sum())})
        yield checks.primary_key_is_unique(ATTRIBUTION_KEY, attribution, ATTRIBUTION_PK, nullable=["campaign_id"])
        yield credits_sum_to_one(attribution, journeys, models)
        yield attributed_revenue_reconciles(attribution, journeys, models)

    return order_attribution_asset


def roas_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    models = MODELS

    @dg.asset(
        key=ROAS_KEY, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS,
        description=(
            "One row per attribution model and channel (model, channel) for day D: the revenue the model "
            "attributes to the channel, the channel's cost lines dated D and their ratio (ROAS, null without "
            "cost). Channels with cost but no attributed revenue appear with ROAS 0."
        ),
        ins={"order_attribution": dg.AssetIn(key=ATTRIBUTION_KEY),
             "costs": dg.AssetIn(key=dg.AssetKey(["ingest", "costs"]), metadata={"columns": ["channel", "amount"]})},
        metadata={"dagster/column_schema": column_schema(CHANNEL_ROAS_SCHEMA), "primary_key": ["model", "channel"]},
        check_specs=[
            checks.schema_spec(ROAS_KEY, partitions),
            dg.AssetCheckSpec("model_channel_is_unique", asset=ROAS_KEY, blocking=True,
                              partitions_def=partitions,
                              description=checks.primary_key_description(["model", "channel"]))],
    )
    def channel_roas_asset(order_attribution: pd.DataFrame, costs: pd.DataFrame):
        table = channel_roas(order_attribution, costs, models)
        yield from checks.written(ROAS_KEY, table, CHANNEL_ROAS_SCHEMA, metadata={
            "cost": float(costs["amount"].sum()), "channels": int(table["channel"].nunique())})
        yield checks.primary_key_is_unique(ROAS_KEY, table, ["model", "channel"])

    return channel_roas_asset


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


def build_attribution_assets(partitions: dg.DailyPartitionsDefinition,
                             settings: Settings) -> list[dg.AssetsDefinition]:
    config = JourneyConfig.from_settings(settings)
    return [
        touches_asset(partitions, config),
        journeys_asset(partitions, config),
        _state_asset(CONVERTING_KEY, CONVERTING_PATHS_SCHEMA, JOURNEYS_KEY, update_converting_paths, (
            "One row per order placed in D-89..D with at least one touch: its journey's channel path. The "
            "converting half of the data-driven models' training set, kept as a trailing-window state (state D "
            "= state D-1 without the day that left the window + the orders of D)."), ["order_id"], partitions),
        _state_asset(PERSON_DAYS_KEY, PERSON_DAY_PATHS_SCHEMA, TOUCHES_KEY, update_person_day_paths, (
            "One row per person and day in D-89..D with touches: that day's channels in touch order. Persons "
            "without an order in the window form the non-converting half of the training set (state D = state "
            "D-1 without the day that left the window + the touches of D)."), ["person_id", "touch_date"],
            partitions),
        models_asset(partitions, settings),
        attribution_asset(partitions, settings),
        roas_asset(partitions),
    ]
