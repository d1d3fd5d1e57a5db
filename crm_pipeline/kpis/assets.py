"""The KPI factory: one daily-partitioned asset `kpi/<name>` per declaration, with its standard checks, and
the `kpi_scorecard` that gathers every KPI's total row."""

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.kpis.aggregates import (
    category_views_asset,
    first_orders_asset,
    messaging_asset,
    person_engagement_asset,
    visits_asset,
)
from crm_pipeline.kpis.anomaly import anomaly_check, trailing_headlines
from crm_pipeline.kpis.audiences import KPIS as AUDIENCE_KPIS
from crm_pipeline.kpis.audiences import membership_asset
from crm_pipeline.kpis.campaigns import campaign_assets
from crm_pipeline.kpis.clv import KPIS as CLV_KPIS
from crm_pipeline.kpis.clv import clv_assets
from crm_pipeline.kpis.cost import KPIS as COST_KPIS
from crm_pipeline.kpis.count import KPIS as COUNT_KPIS
from crm_pipeline.kpis.framework import (
    STANDARD_CHECK_DESCRIPTIONS,
    STANDARD_CHECK_NAMES,
    KpiDefinition,
    KpiOutput,
    finalise,
    headline_target_check,
    standard_checks,
)
from crm_pipeline.kpis.journey import KPIS as JOURNEY_KPIS
from crm_pipeline.kpis.lifetime import KPIS as LIFETIME_KPIS
from crm_pipeline.kpis.loyalty import KPIS as LOYALTY_KPIS
from crm_pipeline.kpis.loyalty import customer_rfm_asset
from crm_pipeline.kpis.persons import IDENTITY_MERGES_PATH, PersonRemap
from crm_pipeline.kpis.relate import KPIS as RELATE_KPIS
from crm_pipeline.kpis.retention import KPIS as RETENTION_KPIS
from crm_pipeline.kpis.retention import retention_state_assets
from crm_pipeline.kpis.sales import KPIS as SALES_KPIS
from crm_pipeline.kpis.scorecard_channels import KPIS as SCORECARD_CHANNEL_KPIS
from crm_pipeline.kpis.scorecard_channels import asset_signups_asset, first_order_credits_asset
from crm_pipeline.kpis.service import KPIS as SERVICE_KPIS
from crm_pipeline.kpis.states import (
    order_book_asset,
    order_history_asset,
    person_signals_asset,
    refund_ledger_asset,
)
from crm_pipeline.kpis.value import KPIS as VALUE_KPIS
from crm_pipeline.kpis.value import email_sends_asset
from crm_pipeline.metadata import arrow_table, column_schema, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource

GROUP = "kpis"
KINDS = {"python", "pandas", "parquet"}
ALL_KPIS: tuple[KpiDefinition, ...] = (*COUNT_KPIS, *RELATE_KPIS, *AUDIENCE_KPIS, *JOURNEY_KPIS, *SALES_KPIS,
                                      *SERVICE_KPIS, *CLV_KPIS, *LOYALTY_KPIS, *VALUE_KPIS, *RETENTION_KPIS,
                                      *COST_KPIS, *LIFETIME_KPIS, *SCORECARD_CHANNEL_KPIS)
IDENTITY_MERGES_KEY = dg.AssetKey(list(IDENTITY_MERGES_PATH))
SCORECARD_KEY = dg.AssetKey(["kpi_scorecard"])
SCORECARD_SCHEMA = pa.schema([pa.field("kpi", pa.string(), nullable=False), pa.field("value", pa.float64()),
                              pa.field("unit", pa.string()), pa.field("numerator", pa.float64()),
                              pa.field("denominator", pa.float64())])


def kpi_key(kpi: KpiDefinition) -> dg.AssetKey:
    return dg.AssetKey(["kpi", kpi.name])


def kpi_metadata(kpi: KpiDefinition) -> dict[str, object]:
    """The KPI's definition, as asset metadata (and in the catalog)."""
    return {
        "family": kpi.family, "formula": kpi.formula, "window": kpi.window, "population": kpi.population,
        "exclusions": kpi.exclusions, "unit": kpi.unit, "seed": kpi.seed,
        "dimensions": dg.MetadataValue.json({d.name: list(d.values) if d.values else "open"
                                             for d in kpi.dimensions}),
        "headline": dg.MetadataValue.json(dict(kpi.headline) or "its own total row (no metric or window dimension)"),
        "inputs": ", ".join("/".join(i.key) + i.window_text for i in kpi.inputs),
        "dagster/column_schema": column_schema(kpi.schema),
        "primary_key": kpi.dimension_names,
    }


def column_lineage(kpi: KpiDefinition) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(deps_by_column={
        column: [dg.TableColumnDep(asset_key=dg.AssetKey(list(key)), column_name=name) for key, name in deps]
        for column, deps in kpi.column_lineage().items()})


def headline_value(kpi: KpiDefinition, frame: pd.DataFrame) -> float | None:
    total = frame[frame[kpi.dimension_names].isna().all(axis=1)] if kpi.dimension_names else frame
    return float(total["value"].iloc[0]) if len(total) and pd.notna(total["value"].iloc[0]) else None


def kpi_asset(kpi: KpiDefinition, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    key = kpi_key(kpi)
    keys = [i.key for i in kpi.inputs]
    if len(set(keys)) != len(keys):  # Dagster keys an asset's inputs by upstream asset: one would silently vanish
        raise ValueError(f"kpi/{kpi.name} reads an upstream asset twice ({sorted(k for k in set(keys) if keys.count(k) > 1)}): "
                         "read a state as of D-30 through its own asset (e.g. aggregates/customer_status)")
    ins = {
        i.name: dg.AssetIn(key=dg.AssetKey(list(i.key)), metadata=i.io_metadata, partition_mapping=i.partition_mapping)
        for i in kpi.inputs
    }

    @dg.asset(
        key=key, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS,
        description=kpi.description, ins=ins, metadata=kpi_metadata(kpi),
        # persons follow identity changes read straight from identity_merges (docs/outputs.md 2.2): lineage only
        deps=[dg.AssetDep(IDENTITY_MERGES_KEY)] if kpi.needs_remap else None,
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=name != "ratios_within_bounds",
                                       partitions_def=partitions, description=STANDARD_CHECK_DESCRIPTIONS[name])
                     for name in STANDARD_CHECK_NAMES]
        + [dg.AssetCheckSpec("headline_within_usual_range", asset=key, partitions_def=partitions,
                             description="warns when the headline is more than CRM_ANOMALY_THRESHOLD robust "
                                         "standard deviations from its trailing CRM_ANOMALY_WINDOW_DAYS days; on a "
                                         "short history (a few days past CRM_ANOMALY_MIN_DAYS) or a small "
                                         "population a normal day can look unusual")]
        + ([dg.AssetCheckSpec("headline_at_least_target", asset=key, partitions_def=partitions,
                              description=f"warns when the headline is below its target {kpi.warn_below}: a "
                                          "business signal about the day, not a fault in the data")]
           if kpi.warn_below is not None else []),
    )
    def compute_kpi(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, **inputs: pd.DataFrame):
        day = partition_day(context)
        remap = PersonRemap.load(settings.get(), day, kpi.remap_days or kpi.window_days) if kpi.needs_remap else None
        extra = {**({"day": day} if kpi.needs_day else {}),
                 **({"settings": settings.get()} if kpi.needs_settings else {}),
                 **({"remap": remap} if remap is not None else {})}
        result = kpi.compute(**inputs, **extra)
        recorded = result.metadata if isinstance(result, KpiOutput) else {}
        frame = finalise(kpi, result)
        complete = day - dt.timedelta(days=kpi.window_days - 1) >= settings.get().start_date
        yield dg.Output(arrow_table(frame, kpi.schema), metadata={
            **recorded,
            "dagster/column_lineage": column_lineage(kpi),
            "window_complete": complete, "rows": len(frame),
            "reporting_currency": settings.get().reporting_currency,
            "headline_value": headline_value(kpi, frame),
            **({"identity_changes_through": remap.newest_identity_day or "-",
                "identity_merges_applied": remap.merges} if remap is not None else {}),
        })
        yield from standard_checks(kpi, key, frame)
        s = settings.get()
        yield anomaly_check(kpi.name, key, headline_value(kpi, frame),
                            trailing_headlines(s, day, s.anomaly_window_days), s)
        if kpi.warn_below is not None:
            yield headline_target_check(kpi, key, frame)

    return compute_kpi


def scorecard_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    ins = {kpi.name: dg.AssetIn(key=kpi_key(kpi)) for kpi in ALL_KPIS}

    @dg.asset(
        key=SCORECARD_KEY, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS, ins=ins,
        description="One row per KPI (kpi): the total (headline) row of every KPI for day D: value, unit, "
                    "numerator and denominator, also shown as a Markdown table in the materialisation metadata.",
        metadata={"dagster/column_schema": column_schema(SCORECARD_SCHEMA), "primary_key": ["kpi"]},
        check_specs=[dg.AssetCheckSpec("every_kpi_has_a_headline", asset=SCORECARD_KEY, blocking=True,
                                       partitions_def=partitions, description="every KPI has one row"),
                     dg.AssetCheckSpec("kpi_is_unique", asset=SCORECARD_KEY, blocking=True, partitions_def=partitions,
                                       description=checks.primary_key_description(["kpi"])),
                     checks.schema_spec(SCORECARD_KEY, partitions)],
    )
    def kpi_scorecard(**tables: pd.DataFrame):
        rows = []
        for kpi in ALL_KPIS:
            table = tables[kpi.name]
            total = table[table[kpi.dimension_names].isna().all(axis=1)] if kpi.dimension_names else table
            head = total.iloc[0] if len(total) else None
            rows.append({"kpi": kpi.name, "value": None if head is None else head["value"],
                         "unit": None if head is None else head["unit"],
                         "numerator": None if head is None else head["numerator"],
                         "denominator": None if head is None else head["denominator"]})
        frame = pd.DataFrame(rows, columns=SCORECARD_SCHEMA.names).sort_values("kpi", ignore_index=True)
        frame[["value", "numerator", "denominator"]] = frame[["value", "numerator", "denominator"]].astype(float)
        table = arrow_table(frame, SCORECARD_SCHEMA)
        markdown = "| kpi | value | unit | numerator | denominator |\n|---|---|---|---|---|\n" + "\n".join(
            f"| {r.kpi} | {_fmt(r.value)} | {r.unit} | {_fmt(r.numerator)} | {_fmt(r.denominator)} |"
            for r in frame.itertuples())
        yield dg.Output(table, metadata={"scorecard": dg.MetadataValue.md(markdown)})
        yield checks.primary_key_is_unique(SCORECARD_KEY, frame, ["kpi"])
        yield checks.schema_is_declared(SCORECARD_KEY, table, SCORECARD_SCHEMA)
        yield checks.every_kpi_has_a_headline(SCORECARD_KEY, frame)

    return kpi_scorecard


def _fmt(x: float | None) -> str:
    return "null" if x is None or pd.isna(x) else f"{x:,.4f}".rstrip("0").rstrip(".")


def build_kpi_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [visits_asset(partitions), person_engagement_asset(partitions), messaging_asset(partitions),
            first_orders_asset(partitions), person_signals_asset(partitions), order_book_asset(partitions),
            refund_ledger_asset(partitions), order_history_asset(partitions),
            category_views_asset(partitions), membership_asset(partitions), clv_assets(partitions),
            customer_rfm_asset(partitions),
            email_sends_asset(partitions),
            *retention_state_assets(partitions),
            *campaign_assets(partitions), asset_signups_asset(partitions), first_order_credits_asset(partitions),
            *(kpi_asset(kpi, partitions) for kpi in ALL_KPIS), scorecard_asset(partitions)]
