"""The ingestion asset group: one asset per source and day, each with its quarantine and inline checks.

Assets are thin: they call the Dagster-free functions of `landing.py` / `crm.py`, write clean rows and
quarantined rows, and emit their checks for exactly the partition they wrote.
"""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS, LANDING_SOURCES, SEEN_ID_SOURCES
from crm_pipeline.ingestion.crm import (
    CRM_SCHEMAS,
    CRM_TABLES,
    CUSTOMER_SNAPSHOT_SCHEMA,
    extract_crm_day,
    merge_snapshot,
    split_customer_profiles,
)
from crm_pipeline.ingestion.landing import (
    FX_LATEST_SCHEMA,
    fx_state_before,
    ingest_landing_day,
    seen_ids_before,
    seen_ids_schema,
    update_fx_latest,
    update_seen_ids,
)
from crm_pipeline.ingestion.late import landing_listing
from crm_pipeline.ingestion.layout import landing_root_exists
from crm_pipeline.ingestion.readers import shown
from crm_pipeline.ingestion.result import QUARANTINE_SCHEMA, IngestResult
from crm_pipeline.metadata import arrow_table, column_schema, partition_day
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

# the amounts of the clean rows in the reporting currency, bounded by CRM_MAX_AMOUNT
LANDING_AMOUNTS: dict[str, Sequence[str]] = {
    "orders": ("gross_revenue", "discount_amount", "net_revenue", "cost_of_goods"),
    "refunds": ("amount",),
    "costs": ("amount",),
}

# the ids state of each money source (contract.SEEN_ID_SOURCES)
SEEN_IDS_KEYS: dict[str, dg.AssetKey] = {
    "orders": dg.AssetKey(["ingest", "order_ids"]),
    "refunds": dg.AssetKey(["ingest", "refund_ids"]),
}

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



QUARANTINE_PK = ["source_file", "row_number"]  # row_number is null for a whole unparsable file


def quarantine_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["quarantine", source])


def _ingest_checks(key: dg.AssetKey, source: str, pk: Sequence[str], partitions: dg.PartitionsDefinition,
                   *, files: bool, amounts: Sequence[str] = ()) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(checks.primary_key_check_name(QUARANTINE_PK), asset=quarantine_key(source), blocking=True,
                          partitions_def=partitions, description="one entry per rejected row (or whole file)"),
        checks.schema_spec(quarantine_key(source), partitions),
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
        specs.append(dg.AssetCheckSpec("no_skipped_files", asset=key, partitions_def=partitions,
                                       description="warns, naming them, when files of the day's landing folder "
                                                   "were not read (other suffixes, symbolic links, sub-folders; "
                                                   "markers such as _SUCCESS are expected)"))
        specs.append(dg.AssetCheckSpec("landing_root_exists", asset=key, blocking=True, partitions_def=partitions,
                                       description="fails when CRM_LANDING_ROOT holds nothing at all (missing)"))
    else:
        specs.append(dg.AssetCheckSpec("crm_table_not_emptied", asset=key, blocking=True, partitions_def=partitions,
                                       description="fails when the table is empty or missing while the previous "
                                                   "snapshot had rows"))
    if amounts:
        specs.append(dg.AssetCheckSpec(checks.AMOUNTS_CHECK, asset=key, blocking=True, partitions_def=partitions,
                                       description=f"{', '.join(amounts)}: finite, >= 0 and at most CRM_MAX_AMOUNT"))
    return specs


def _emit_checks(key: dg.AssetKey, source: str, table: pa.Table, quarantine: pa.Table, schema: pa.Schema,
                 pk: Sequence[str], result: IngestResult, settings: Settings, *, files: bool,
                 amounts: Sequence[str] = ()):
    yield checks.primary_key_is_unique(quarantine_key(source), quarantine.select(QUARANTINE_PK).to_pandas(),
                                       QUARANTINE_PK, nullable=["row_number"])
    yield checks.schema_is_declared(quarantine_key(source), quarantine, QUARANTINE_SCHEMA)
    frame = table.select(list(pk)).to_pandas()
    yield checks.row_counts_reconcile(key, result)
    yield checks.primary_key_is_unique(key, frame, pk, nullable=NULLABLE_KEY_COLUMNS)
    yield checks.schema_matches(key, table, schema)
    yield checks.quarantine_rate_below_threshold(key, result, settings.quarantine_warn_rate)
    if files:
        yield checks.no_unparsable_files(key, result)
        yield checks.no_skipped_files(key, result)
    if amounts:
        yield checks.amounts_are_within_range(key, result.clean, amounts, settings.max_amount)


def _only_selected(context: dg.AssetExecutionContext, events: Iterator[dg.Output | dg.AssetCheckResult]):
    """Pass on the outputs and check results of this run's selection.

    The multi-assets are subsettable because a backfill restates a self-dependent snapshot (and what reads it)
    up to the latest day while its quarantine is only needed for the requested days: Dagster then selects
    the snapshot alone for the later days.
    """
    outputs = context.op_execution_context.selected_output_names
    check_keys = context.selected_asset_check_keys
    for event in events:
        if isinstance(event, dg.Output):
            if event.output_name in outputs:
                yield event
        elif dg.AssetCheckKey(event.asset_key, event.check_name) in check_keys:
            yield event


def _count_metadata(source: str, result: IngestResult) -> dict[str, object]:
    counts = dict(result.counts())
    return {
        "source": source,
        **counts,
        "quarantine_by_reason": dg.MetadataValue.json(result.quarantine_by_reason()),
        "unparsable_files": dg.MetadataValue.json([shown(f.path) for f in result.unparsable_files]),
    }


def _out(key: dg.AssetKey, description: str, **kwargs: object) -> dg.AssetOut:
    """An output of an ingestion multi-asset. Optional, because the multi-assets are subsettable."""
    return dg.AssetOut(key=key, description=description, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                       is_required=False, **kwargs)


def _quarantine_out(source: str) -> dg.AssetOut:
    return _out(
        key=dg.AssetKey(["quarantine", source]),
        description=QUARANTINE_DESCRIPTION.format(source=source),
        tags={"pii": "raw"},
        metadata={"dagster/column_schema": column_schema(QUARANTINE_SCHEMA)},
    )


def _seen_ids_out(source: str) -> dg.AssetOut:
    schema = seen_ids_schema(source)
    column = schema.names[0]
    return _out(
        key=SEEN_IDS_KEYS[source],
        description=(
            f"One row per {column} delivered clean on one of the last CRM_DUPLICATE_ID_HORIZON_DAYS days up to D "
            f"(default 400), with the day of its first clean delivery. A state: D = D-1 + the new ids of "
            f"ingest/{source} of D - the ids first seen before the horizon. Ingestion of D checks its ids against "
            f"D-1's, so a {column} delivered again on a later day (another version: at least its timestamp "
            f"differs) is quarantined as duplicate_id_conflict instead of counted twice."
        ),
        metadata={"dagster/column_schema": column_schema(schema), "primary_key": [column]},
    )


def _seen_ids_checks(source: str, partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    key = SEEN_IDS_KEYS[source]
    column = seen_ids_schema(source).names[0]
    return [dg.AssetCheckSpec(checks.primary_key_check_name([column]), asset=key, blocking=True,
                              partitions_def=partitions, description=f"{column} is never null and never repeated"),
            checks.schema_spec(key, partitions)]


def landing_asset(source: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """`ingest/<source>` + `quarantine/<source>` for a landing-zone source, + its ids state for orders and
    refunds (`ingest/order_ids`, `ingest/refund_ids`: self-dependent, the state of D-1 is an input)."""
    key = dg.AssetKey(["ingest", source])
    schema = CLEAN_SCHEMAS[source]
    pk = LANDING_PRIMARY_KEYS[source]
    amounts = LANDING_AMOUNTS.get(source, ())
    remembers_ids = source in SEEN_ID_SOURCES
    description = (
        f"{LANDING_DESCRIPTIONS[source]} in the reporting timezone. Read from the landing folders D-1, D and D+1 "
        "(parquet, csv, jsonl, json.gz, csv.gz), validated against the input contract, normalised (UTC, "
        "channel taxonomy, E.164, lower-cased emails), emails/phones pseudonymised, exact re-deliveries dropped, "
        "bad rows quarantined with a reason."
    )
    if remembers_ids:
        description += " An id already delivered on an earlier day is quarantined (duplicate_id_conflict)."
    outs = {
        "clean": _out(key=key, description=description,
                      metadata={"dagster/column_schema": column_schema(schema), "primary_key": list(pk)}),
        "quarantine": _quarantine_out(source),
    }
    ins = {"fx_latest": dg.AssetIn(key=FX_LATEST_KEY)} if source in SOURCES_NEEDING_FX else {}
    check_specs = _ingest_checks(key, source, pk, partitions, files=True, amounts=amounts)
    if remembers_ids:
        outs["ids"] = _seen_ids_out(source)
        # the ids of D-1 decide which rows of D are clean: every output depends on them
        ins["previous_ids"] = dg.AssetIn(key=SEEN_IDS_KEYS[source], partition_mapping=PREVIOUS_DAY)
        check_specs += _seen_ids_checks(source, partitions)

    def run(context: dg.AssetExecutionContext, settings: Settings, fx_latest: pd.DataFrame | None,
            previous_ids: pd.DataFrame | None):
        day = partition_day(context)
        # listed before reading: a file arriving meanwhile is read but unrecorded, so it triggers a harmless
        # re-run instead of being recorded unread (the late-data sensor compares with this listing)
        listing = landing_listing(source, day, settings)
        root_exists = landing_root_exists(settings)
        bootstrapped = remembers_ids and previous_ids is None and day > settings.start_date
        if bootstrapped:
            previous_ids = seen_ids_before(source, day, settings)
        result = ingest_landing_day(source, day, settings, fx_latest=fx_latest,
                                    seen_ids=previous_ids if remembers_ids else None)
        if remembers_ids:  # first: Dagster wants a multi-asset's outputs in dependency order
            yield from _seen_ids_events(source, previous_ids, result, day, settings, bootstrapped)
        table = arrow_table(result.clean, schema)
        metadata = {**_count_metadata(source, result), "landing_files": dg.MetadataValue.json(listing),
                    "skipped_files": dg.MetadataValue.json(checks.skipped_files(result))}
        yield dg.Output(table, output_name="clean", metadata=metadata)
        quarantine = arrow_table(result.quarantine, QUARANTINE_SCHEMA)
        yield dg.Output(quarantine, output_name="quarantine",
                        metadata={"by_reason": dg.MetadataValue.json(result.quarantine_by_reason())})
        yield from _emit_checks(key, source, table, quarantine, schema, pk, result, settings, files=True,
                                amounts=amounts)
        yield checks.landing_root_exists(key, settings.landing_root, root_exists)
        # content-free summaries and escaped names only: a log line never quotes a row nor is forged by a name
        if result.unparsable_files:
            context.log.error(f"{source} {context.partition_key}: unparsable files quarantined: "
                              + "; ".join(f.error for f in result.unparsable_files))
        unexpected = [f for f in result.skipped_files if not f.expected]
        if unexpected:
            context.log.warning(f"{source} {context.partition_key}: landing files not read: "
                                + "; ".join(f"{shown(f.path)} ({f.reason})" for f in unexpected))

    decorator = dg.multi_asset(
        name=f"ingest_{source}", outs=outs, ins=ins, partitions_def=partitions, check_specs=check_specs,
        can_subset=True,
    )
    if remembers_ids:
        def with_fx_and_ids(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                            fx_latest: pd.DataFrame, previous_ids: pd.DataFrame | None):
            yield from _only_selected(context, run(context, settings.get(), fx_latest, previous_ids))

        return decorator(with_fx_and_ids)
    if ins:
        def with_fx(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, fx_latest: pd.DataFrame):
            yield from _only_selected(context, run(context, settings.get(), fx_latest, None))

        return decorator(with_fx)

    def without_fx(context: dg.AssetExecutionContext, settings: PipelineSettingsResource):
        yield from _only_selected(context, run(context, settings.get(), None, None))

    return decorator(without_fx)


def _seen_ids_events(source: str, previous: pd.DataFrame | None, result: IngestResult, day: dt.date,
                     settings: Settings, bootstrapped: bool):
    key = SEEN_IDS_KEYS[source]
    schema = seen_ids_schema(source)
    state = update_seen_ids(previous, source, result.clean, day, settings.duplicate_id_horizon_days)
    table = arrow_table(state, schema)
    yield dg.Output(table, output_name="ids", metadata={
        "ids": len(state), "ids_added": result.rows_clean, "horizon_days": settings.duplicate_id_horizon_days,
        "oldest_first_seen": str(state[schema.names[1]].min().date()) if len(state) else "-",
        # the state of D-1 was missing (a backfill starting late): folded from the landing zone instead
        "bootstrapped": bootstrapped})
    yield checks.primary_key_is_unique(key, state, schema.names[:1])
    yield checks.schema_is_declared(key, table, schema)


def extraction_key(table: str) -> dg.AssetKey:
    """The asset whose materialisations carry the extraction counts of a CRM table (customers: the full
    snapshot, restricted/customer_profiles; ingest/crm_customers is its projection)."""
    return PROFILES_KEY if table == "customers" else dg.AssetKey(["ingest", f"crm_{table}"])


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
                                       partitions_def=partitions,
                                       description=checks.primary_key_description(["currency"])),
                     checks.schema_spec(FX_LATEST_KEY, partitions),
                     dg.AssetCheckSpec("rates_are_positive", asset=FX_LATEST_KEY, blocking=True,
                                       partitions_def=partitions,
                                       description="every currency's rate to the reporting currency is known and > 0")],
    )
    def fx_rates_latest(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                        fx_rates: pd.DataFrame, previous: pd.DataFrame | None):
        s = settings.get()
        day = partition_day(context)
        if previous is None and day > s.start_date:
            # no earlier partition (a backfill starting late): 'the latest earlier rate' must not depend on
            # what was run, so the state is folded from the landing zone
            previous = fx_state_before(day, s)
        state = update_fx_latest(previous, fx_rates)
        table = arrow_table(state, FX_LATEST_SCHEMA)
        yield dg.Output(table, metadata={"currencies": ", ".join(state["currency"].astype(str)) or "-"})
        yield checks.primary_key_is_unique(FX_LATEST_KEY, state, ["currency"])
        yield checks.schema_is_declared(FX_LATEST_KEY, table, FX_LATEST_SCHEMA)
        yield checks.rates_are_positive(FX_LATEST_KEY, state)

    return fx_rates_latest


def crm_asset(table_name: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """The latest-state snapshot of a CRM table as of D (self-dependent) + `quarantine/crm_<table>`.

    For every table but customers the snapshot is `ingest/crm_<table>`. The customers snapshot carries clear
    profile fields, so it is the restricted `restricted/customer_profiles`; `ingest/crm_customers` is its
    pseudonymised projection (`customers_public_asset`).
    """
    source = f"crm_{table_name}"
    is_customers = table_name == "customers"
    key = PROFILES_KEY if is_customers else dg.AssetKey(["ingest", source])
    schema = CUSTOMER_SNAPSHOT_SCHEMA if is_customers else CRM_SCHEMAS[table_name]
    pk = (CRM_PRIMARY_KEYS[table_name],)
    description = (
        f"{CRM_DESCRIPTIONS[table_name]}: the snapshot of D-1 merged by primary key with the rows whose "
        "updated_at or creation timestamp falls on D (extracted through SQLAlchemy in chunks, validated, "
        "emails/phones pseudonymised). KPIs read its rows only through their lifecycle timestamps."
    )
    if is_customers:
        description += (
            " Restricted: beside the hashes it keeps normalised names, birth date, address, email and phone in "
            "clear, for identity resolution (fuzzy matching) only; everything else reads ingest/crm_customers."
        )
    outs = {
        "snapshot": _out(key=key, description=description, tags={"pii": "raw"} if is_customers else None,
                         metadata={"dagster/column_schema": column_schema(schema), "primary_key": list(pk)}),
        "quarantine": _quarantine_out(source),
    }

    @dg.multi_asset(
        name=f"ingest_{source}", outs=outs, partitions_def=partitions, can_subset=True,
        ins={"previous": dg.AssetIn(key=key, partition_mapping=PREVIOUS_DAY)},
        # the quarantine of D comes from D's extraction alone: it does not depend on the previous snapshot
        # (declaring it would shift a backfill of the quarantine by a day)
        internal_asset_deps={"snapshot": {key}, "quarantine": set()},
        check_specs=_ingest_checks(key, f"crm_{table_name}", pk, partitions, files=False),
    )
    def crm_table(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                  previous: pd.DataFrame | None):
        yield from _only_selected(context, _crm_events(context, settings.get(), table_name, key, schema, pk,
                                                       previous))

    return crm_table


def _crm_events(context: dg.AssetExecutionContext, settings: Settings, table_name: str, key: dg.AssetKey,
                schema: pa.Schema, pk: Sequence[str], previous: pd.DataFrame | None):
    first_load = previous is None
    result = extract_crm_day(table_name, partition_day(context), settings, first_load=first_load)
    snapshot = merge_snapshot(table_name, previous, result.clean)
    table = arrow_table(snapshot, schema)
    metadata = {**_count_metadata(f"crm_{table_name}", result), "snapshot_rows": len(snapshot), "first_load": first_load}
    yield dg.Output(table, output_name="snapshot", metadata=metadata)
    quarantine = arrow_table(result.quarantine, QUARANTINE_SCHEMA)
    yield dg.Output(quarantine, output_name="quarantine",
                    metadata={"by_reason": dg.MetadataValue.json(result.quarantine_by_reason())})
    yield from _emit_checks(key, f"crm_{table_name}", table, quarantine, schema, pk, result, settings, files=False)
    yield checks.crm_table_not_emptied(key, table_name, result, None if previous is None else len(previous))


def customers_public_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey(["ingest", "crm_customers"])
    schema = CRM_SCHEMAS["customers"]

    @dg.asset(
        key=key, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS,
        ins={"profiles": dg.AssetIn(key=PROFILES_KEY)},
        description=(
            f"{CRM_DESCRIPTIONS['customers']}: the pseudonymised projection of restricted/customer_profiles "
            "(emails and phones only as keyed hashes; no names, birth dates or addresses)."
        ),
        metadata={"dagster/column_schema": column_schema(schema), "primary_key": ["customer_id"]},
        check_specs=[
            dg.AssetCheckSpec("customer_id_is_unique", asset=key, blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(["customer_id"])),
            dg.AssetCheckSpec("schema_matches_contract", asset=key, blocking=True, partitions_def=partitions,
                              description="columns and Arrow types are exactly the documented ones"),
        ],
    )
    def crm_customers(profiles: pd.DataFrame):
        public, _ = split_customer_profiles(profiles)
        table = arrow_table(public, schema)
        yield dg.Output(table, metadata={"snapshot_rows": table.num_rows})
        yield checks.primary_key_is_unique(key, public, ["customer_id"])
        yield checks.schema_matches(key, table, schema)

    return crm_customers


def build_ingestion_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        *(landing_asset(source, partitions) for source in LANDING_SOURCES),
        fx_rates_latest_asset(partitions),
        *(crm_asset(table, partitions) for table in CRM_TABLES),
        customers_public_asset(partitions),
    ]
