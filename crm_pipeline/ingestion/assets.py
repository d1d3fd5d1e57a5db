"""The ingestion asset group: one asset per source and day, each with its quarantine and inline checks.

Assets are thin: they call the Dagster-free functions of `landing.py` / `crm.py`, write clean rows and
quarantined rows, and emit their checks for exactly the partition they wrote.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS, LANDING_SOURCES
from crm_pipeline.ingestion.crm import (
    CRM_SCHEMAS,
    CRM_TABLES,
    PROFILE_SCHEMA,
    extract_crm_day,
    merge_snapshot,
    split_customer_profiles,
)
from crm_pipeline.ingestion.landing import FX_LATEST_SCHEMA, ingest_landing_day, update_fx_latest
from crm_pipeline.ingestion.layout import list_landing_days
from crm_pipeline.ingestion.result import QUARANTINE_SCHEMA, IngestResult
from crm_pipeline.metadata import arrow_table, column_schema
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings

GROUP = "ingestion"
KINDS = {"python", "pandas", "parquet"}
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
FX_LATEST_KEY = dg.AssetKey(["ingest", "fx_rates_latest"])
PROFILES_KEY = dg.AssetKey(["restricted", "customer_profiles"])
SOURCES_NEEDING_FX = ("orders", "refunds", "costs")

LANDING_PRIMARY_KEYS: dict[str, Sequence[str]] = {
    "events": ("event_id",),
    "orders": ("order_id",),
    "refunds": ("refund_id",),
    # costs have no id: after exact re-deliveries are dropped, a cost line is its whole content
    "costs": ("cost_date", "cost_type", "objective", "channel", "campaign_id", "currency", "amount_original"),
    "fx_rates": ("rate_date", "currency"),
}
# key columns that may be null (a cost line without channel or campaign)
NULLABLE_KEY_COLUMNS: Sequence[str] = ("channel", "campaign_id")

CRM_PRIMARY_KEYS: dict[str, str] = {
    "customers": "customer_id",
    "leads": "lead_id",
    "opportunities": "opportunity_id",
    "support_tickets": "ticket_id",
    "survey_responses": "response_id",
    "subscription_terms": "term_id",
}

LANDING_DESCRIPTIONS: dict[str, str] = {
    "events": "One row per customer interaction (event_id) whose occurred_at falls on day D",
    "orders": "One row per order (order_id) whose ordered_at falls on day D, amounts in the reporting currency "
              "beside the originals",
    "refunds": "One row per refund (refund_id) whose refunded_at falls on day D, converted to the reporting currency",
    "costs": "One row per sales & marketing cost line dated day D, converted to the reporting currency",
    "fx_rates": "One row per currency with a rate dated day D (reporting-currency units per unit)",
}

CRM_DESCRIPTIONS: dict[str, str] = {
    "customers": "One row per CRM customer record (customer_id): the latest state known at the end of day D",
    "leads": "One row per lead (lead_id): the latest state known at the end of day D",
    "opportunities": "One row per opportunity (opportunity_id): the latest state known at the end of day D",
    "support_tickets": "One row per support ticket (ticket_id): the latest state known at the end of day D",
    "survey_responses": "One row per survey response (response_id): the latest state known at the end of day D",
    "subscription_terms": "One row per subscription term (term_id): the latest state known at the end of day D",
}

QUARANTINE_DESCRIPTION = (
    "One row per rejected input row (or whole unparsable file) of {source} assigned to day D, with its original "
    "content as JSON, the file it came from and a machine-readable reason. Holds raw values (PII): restricted."
)


def _day(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def _ingest_checks(key: dg.AssetKey, pk: Sequence[str], partitions: dg.PartitionsDefinition,
                   *, files: bool) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec("row_counts_reconcile", asset=key, blocking=True, partitions_def=partitions,
                          description="rows in = clean + quarantined + exact duplicates dropped"),
        dg.AssetCheckSpec(checks.primary_key_check_name(pk), asset=key, blocking=True, partitions_def=partitions,
                          description=f"({', '.join(pk)}) is never null and never repeated"),
        dg.AssetCheckSpec("schema_matches_contract", asset=key, blocking=True, partitions_def=partitions,
                          description="columns and Arrow types are exactly the documented ones"),
        dg.AssetCheckSpec("quarantine_rate_below_threshold", asset=key, partitions_def=partitions,
                          description="warns when the day's quarantine share exceeds CRM_QUARANTINE_WARN_RATE"),
    ]
    if files:
        specs.append(dg.AssetCheckSpec("no_unparsable_files", asset=key, partitions_def=partitions,
                                       description="fails, naming them, when whole files could not be parsed"))
    return specs


def _emit_checks(key: dg.AssetKey, table: pa.Table, schema: pa.Schema, pk: Sequence[str],
                 result: IngestResult, settings: Settings, *, files: bool):
    frame = table.select(list(pk)).to_pandas()
    yield checks.row_counts_reconcile(key, result)
    yield checks.primary_key_is_unique(key, frame, pk, nullable=NULLABLE_KEY_COLUMNS)
    yield checks.schema_matches(key, table, schema)
    yield checks.quarantine_rate_below_threshold(key, result, settings.quarantine_warn_rate)
    if files:
        yield checks.no_unparsable_files(key, result)


def _count_metadata(result: IngestResult) -> dict[str, object]:
    counts = dict(result.counts())
    return {
        **counts,
        "quarantine_by_reason": dg.MetadataValue.json(result.quarantine_by_reason()),
        "unparsable_files": dg.MetadataValue.json([f.path for f in result.unparsable_files]),
    }


def _quarantine_out(source: str) -> dg.AssetOut:
    return dg.AssetOut(
        key=dg.AssetKey(["quarantine", source]),
        description=QUARANTINE_DESCRIPTION.format(source=source),
        group_name=GROUP, owners=OWNERS, kinds=KINDS, tags={"pii": "raw"},
        metadata={"dagster/column_schema": column_schema(QUARANTINE_SCHEMA)},
    )


def landing_asset(source: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """`ingest/<source>` + `quarantine/<source>` for a landing-zone source."""
    key = dg.AssetKey(["ingest", source])
    schema = CLEAN_SCHEMAS[source]
    pk = LANDING_PRIMARY_KEYS[source]
    description = (
        f"{LANDING_DESCRIPTIONS[source]} in the reporting timezone. Read from the landing folders D-1, D and D+1 "
        "(parquet, csv, jsonl, json.gz, csv.gz), validated against the input contract, normalised (UTC, "
        "channel taxonomy, E.164, lower-cased emails), emails/phones pseudonymised, exact re-deliveries dropped, "
        "bad rows quarantined with a reason."
    )
    outs = {
        "clean": dg.AssetOut(key=key, description=description, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                             metadata={"dagster/column_schema": column_schema(schema), "primary_key": list(pk)}),
        "quarantine": _quarantine_out(source),
    }
    ins = {"fx_latest": dg.AssetIn(key=FX_LATEST_KEY)} if source in SOURCES_NEEDING_FX else {}

    def run(context: dg.AssetExecutionContext, settings: Settings, fx_latest: pd.DataFrame | None):
        result = ingest_landing_day(source, _day(context), settings, fx_latest=fx_latest)
        table = arrow_table(result.clean, schema)
        metadata = _count_metadata(result)
        yield dg.Output(table, output_name="clean", metadata=metadata)
        yield dg.Output(arrow_table(result.quarantine, QUARANTINE_SCHEMA), output_name="quarantine",
                        metadata={"by_reason": dg.MetadataValue.json(result.quarantine_by_reason())})
        yield from _emit_checks(key, table, schema, pk, result, settings, files=True)
        if result.unparsable_files:
            context.log.error(f"{source} {context.partition_key}: unparsable files quarantined: "
                              + ", ".join(f.path for f in result.unparsable_files))

    decorator = dg.multi_asset(
        name=f"ingest_{source}", outs=outs, ins=ins, partitions_def=partitions,
        check_specs=_ingest_checks(key, pk, partitions, files=True),
    )
    if ins:
        def with_fx(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, fx_latest: pd.DataFrame):
            yield from run(context, settings.get(), fx_latest)

        return decorator(with_fx)

    def without_fx(context: dg.AssetExecutionContext, settings: PipelineSettingsResource):
        yield from run(context, settings.get(), None)

    return decorator(without_fx)


def _bootstrap_fx(settings: Settings, day: dt.date) -> pd.DataFrame | None:
    """The fx state before `day` when no earlier partition exists (a backfill starting late): fold every
    earlier landing day from CRM_START_DATE, so 'the latest earlier rate' never depends on what was run."""
    state: pd.DataFrame | None = None
    for d in list_landing_days("fx_rates", settings):
        if settings.start_date <= d < day:
            state = update_fx_latest(state, ingest_landing_day("fx_rates", d, settings).clean)
    return state


def fx_rates_latest_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """The latest rate per currency as of day D: a self-dependent state, so no day re-reads history."""

    @dg.asset(
        key=FX_LATEST_KEY,
        description=(
            "One row per currency: the latest fx rate dated on or before day D (reporting-currency units per "
            "unit). State of D = state of D-1 updated with ingest/fx_rates of D; used to convert the orders, "
            "refunds and costs of D."
        ),
        group_name=GROUP, owners=OWNERS, kinds=KINDS, partitions_def=partitions,
        ins={"fx_rates": dg.AssetIn(key=dg.AssetKey(["ingest", "fx_rates"])),
             "previous": dg.AssetIn(key=FX_LATEST_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(FX_LATEST_SCHEMA), "primary_key": ["currency"]},
        check_specs=[dg.AssetCheckSpec("currency_is_unique", asset=FX_LATEST_KEY, blocking=True,
                                       partitions_def=partitions),
                     dg.AssetCheckSpec("rates_are_positive", asset=FX_LATEST_KEY, blocking=True,
                                       partitions_def=partitions)],
    )
    def fx_rates_latest(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                        fx_rates: pd.DataFrame, previous: pd.DataFrame | None):
        s = settings.get()
        day = _day(context)
        if previous is None and day > s.start_date:
            previous = _bootstrap_fx(s, day)
        state = update_fx_latest(previous, fx_rates)
        table = arrow_table(state, FX_LATEST_SCHEMA)
        yield dg.Output(table, metadata={"currencies": ", ".join(state["currency"].astype(str)) or "-"})
        yield checks.primary_key_is_unique(FX_LATEST_KEY, state, ["currency"])
        bad = int((state["rate_to_reporting"].isna() | (state["rate_to_reporting"] <= 0)).sum())
        yield dg.AssetCheckResult(asset_key=FX_LATEST_KEY, check_name="rates_are_positive", passed=bad == 0,
                                  metadata={"non_positive_rates": bad})

    return fx_rates_latest


def crm_asset(table_name: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """`ingest/crm_<table>` (latest-state snapshot as of D) + `quarantine/crm_<table>`."""
    source = f"crm_{table_name}"
    key = dg.AssetKey(["ingest", source])
    schema = CRM_SCHEMAS[table_name]
    pk = (CRM_PRIMARY_KEYS[table_name],)
    is_customers = table_name == "customers"
    description = (
        f"{CRM_DESCRIPTIONS[table_name]}: the snapshot of D-1 merged by primary key with the rows whose "
        "updated_at or creation timestamp falls on D (extracted through SQLAlchemy in chunks, validated, "
        "emails/phones pseudonymised). KPIs read its rows only through their lifecycle timestamps."
    )
    outs = {
        "snapshot": dg.AssetOut(key=key, description=description, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                                metadata={"dagster/column_schema": column_schema(schema), "primary_key": list(pk)}),
        "quarantine": _quarantine_out(source),
    }
    ins = {"previous": dg.AssetIn(key=key, partition_mapping=PREVIOUS_DAY)}
    check_specs = _ingest_checks(key, pk, partitions, files=False)
    if is_customers:
        outs["profiles"] = dg.AssetOut(
            key=PROFILES_KEY, group_name=GROUP, owners=OWNERS, kinds=KINDS, tags={"pii": "raw"},
            description=(
                "One row per CRM customer record (customer_id): normalised names, birth date, address, email and "
                "phone in clear, as of the end of day D. Restricted: read only by identity resolution (fuzzy "
                "matching); nothing downstream of identity may carry these columns."
            ),
            metadata={"dagster/column_schema": column_schema(PROFILE_SCHEMA), "primary_key": ["customer_id"]},
        )
        ins["previous_profiles"] = dg.AssetIn(key=PROFILES_KEY, partition_mapping=PREVIOUS_DAY)
        check_specs.append(dg.AssetCheckSpec("customer_id_is_unique", asset=PROFILES_KEY, blocking=True,
                                             partitions_def=partitions))

    def run(context: dg.AssetExecutionContext, settings: Settings, previous: pd.DataFrame | None,
            previous_profiles: pd.DataFrame | None):
        day = _day(context)
        first_load = previous is None
        result = extract_crm_day(table_name, day, settings, first_load=first_load)
        if is_customers and previous is not None:
            profiles = previous_profiles if previous_profiles is not None else pd.DataFrame(
                {"customer_id": pd.Series([], dtype="string")})
            profile_cols = [c for c in profiles.columns if c not in previous.columns or c == "customer_id"]
            previous = previous.merge(profiles[profile_cols], on="customer_id", how="left")
        snapshot = merge_snapshot(table_name, previous, result.clean)
        metadata = {**_count_metadata(result), "snapshot_rows": len(snapshot), "first_load": first_load}
        if is_customers:
            public, profiles = split_customer_profiles(snapshot)
            table = arrow_table(public, schema)
            yield dg.Output(table, output_name="snapshot", metadata=metadata)
            yield dg.Output(arrow_table(profiles, PROFILE_SCHEMA), output_name="profiles")
            yield checks.primary_key_is_unique(PROFILES_KEY, profiles, ["customer_id"])
        else:
            table = arrow_table(snapshot, schema)
            yield dg.Output(table, output_name="snapshot", metadata=metadata)
        yield dg.Output(arrow_table(result.quarantine, QUARANTINE_SCHEMA), output_name="quarantine",
                        metadata={"by_reason": dg.MetadataValue.json(result.quarantine_by_reason())})
        yield from _emit_checks(key, table, schema, pk, result, settings, files=False)

    decorator = dg.multi_asset(name=f"ingest_{source}", outs=outs, ins=ins, partitions_def=partitions,
                               check_specs=check_specs)
    if is_customers:
        def customers(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                      previous: pd.DataFrame | None, previous_profiles: pd.DataFrame | None):
            yield from run(context, settings.get(), previous, previous_profiles)

        return decorator(customers)

    def crm_table(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                  previous: pd.DataFrame | None):
        yield from run(context, settings.get(), previous, None)

    return decorator(crm_table)


def build_ingestion_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        *(landing_asset(source, partitions) for source in LANDING_SOURCES),
        fx_rates_latest_asset(partitions),
        *(crm_asset(table, partitions) for table in CRM_TABLES),
    ]
