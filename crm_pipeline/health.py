"""`pipeline_health`: one table per day that says whether the day's numbers can be trusted.

Long format, one row per (area, subject, measure), so the dashboard and a user's own monitoring read one
table whatever the sources and KPIs are:

- ingestion x source: rows_in, rows_clean, rows_quarantined, rows_duplicate, quarantine_rate (from the
  ingestion materialisations of D);
- identity: identifiers_seen, match_rate (share of the identifiers seen on D that belong to a person with
  another identifier), persons, merges, splits;
- attribution: orders, orders_with_touch_share, revenue_with_touch_share (orders placed on D);
- checks: passed, warned, failed, not_evaluated (the latest evaluation of every partitioned check for D, read
  from the Dagster instance; the health asset's own checks and the freshness checks are not counted);
- kpi_anomalies: the count of KPIs whose headline moved beyond CRM_ANOMALY_THRESHOLD, and one robust_z row
  per such KPI (kpis.anomaly).
"""

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from dagster._core.event_api import PartitionKeyFilter  # no public API reads check outcomes per partition

from crm_pipeline import checks
from crm_pipeline.ingestion.assets import extraction_key
from crm_pipeline.ingestion.contract import LANDING_SOURCES
from crm_pipeline.ingestion.crm import CRM_TABLES
from crm_pipeline.kpis.anomaly import robust_z, trailing_headlines
from crm_pipeline.metadata import column_schema, latest_metadata, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings

HEALTH_KEY = dg.AssetKey(["pipeline_health"])
HEALTH_PK = ["area", "subject", "measure"]
HEALTH_SCHEMA = pa.schema([
    pa.field("area", pa.string(), nullable=False),  # ingestion | identity | attribution | checks | kpi_anomalies
    pa.field("subject", pa.string(), nullable=False),  # a source, a KPI, or "all"
    pa.field("measure", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
])
INGESTION_MEASURES = ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate", "quarantine_rate")
OWN_CHECKS = ("primary_key_is_unique", "every_check_of_the_day_passed")


def ingestion_keys() -> dict[str, dg.AssetKey]:
    return {**{s: dg.AssetKey(["ingest", s]) for s in LANDING_SOURCES},
            **{f"crm_{t}": extraction_key(t) for t in CRM_TABLES}}


def _row(area: str, subject: str, measure: str, value: float | None) -> dict:
    return {"area": area, "subject": subject, "measure": measure,
            "value": None if value is None else float(value)}


def health_rows(ingestion: dict[str, dict[str, float]], identity_map: pd.DataFrame, merges: pd.DataFrame,
                journeys: pd.DataFrame, check_counts: dict[str, int], scorecard: pd.DataFrame,
                history: pd.DataFrame, day_iso: str, settings: Settings) -> pd.DataFrame:
    rows = [_row("ingestion", source, m, counts.get(m)) for source, counts in sorted(ingestion.items())
            for m in INGESTION_MEASURES]
    # identity: identifiers seen on D and whether their person holds another identifier
    size = identity_map.groupby("person_id")["person_id"].transform("size")
    seen = pd.to_datetime(identity_map["last_seen_date"]).dt.strftime("%Y-%m-%d") == day_iso
    n_seen = int(seen.sum())
    rows += [_row("identity", "all", "identifiers_seen", n_seen),
             _row("identity", "all", "match_rate", float((size[seen] > 1).sum()) / n_seen if n_seen else None),
             _row("identity", "all", "persons", identity_map["person_id"].nunique()),
             _row("identity", "all", "merges", int((merges["kind"] == "merge").sum())),
             _row("identity", "all", "splits", int((merges["kind"] == "split").sum()))]
    touched = journeys["count_touches"].astype(float) > 0
    revenue = journeys["net_revenue"].astype(float)
    rows += [_row("attribution", "orders", "orders", len(journeys)),
             _row("attribution", "orders", "orders_with_touch_share", touched.mean() if len(journeys) else None),
             _row("attribution", "orders", "revenue_with_touch_share",
                  revenue[touched].sum() / revenue.sum() if revenue.sum() else None)]
    rows += [_row("checks", "all", k, v) for k, v in sorted(check_counts.items())]
    anomalies = []
    for kpi, value in zip(scorecard["kpi"], scorecard["value"], strict=True):
        past = history.loc[(history["kpi"] == kpi).to_numpy(), "value"].astype(float).dropna().to_numpy()
        z, _, _ = robust_z(None if pd.isna(value) else float(value), past)
        if len(past) >= settings.anomaly_min_days and z is not None and abs(z) > settings.anomaly_threshold:
            anomalies.append(_row("kpi_anomalies", str(kpi), "robust_z", z if np.isfinite(z) else None))
    rows += [_row("kpi_anomalies", "all", "kpis_beyond_threshold", len(anomalies)), *anomalies]
    frame = pd.DataFrame(rows, columns=HEALTH_SCHEMA.names)
    return frame.sort_values(HEALTH_PK, ignore_index=True)


def check_outcomes(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], partition: str
                   ) -> tuple[dict[str, int], list[str]]:
    """Counts of the latest evaluation of each check for the partition, and the names of the failed ones."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=partition))
    counts = {"passed": 0, "warned": 0, "failed": 0, "not_evaluated": 0}
    failed: list[str] = []
    for key in check_keys:
        record = latest.get(key)
        event = record.event.dagster_event if record is not None and record.event is not None else None
        evaluation = event.event_specific_data if event is not None else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation):  # never ran, or planned and not (yet) run
            counts["not_evaluated"] += 1
        elif evaluation.passed:
            counts["passed"] += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            counts["warned"] += 1
        else:
            counts["failed"] += 1
            failed.append(key.to_user_string())
    return counts, sorted(failed)


def _ingestion_counts(instance: dg.DagsterInstance, partition: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for source, key in ingestion_keys().items():
        metadata = latest_metadata(instance, key, [partition]).get(partition)
        if metadata is not None:
            out[source] = {m: float(metadata[m]) for m in INGESTION_MEASURES if m in metadata}
    return out


def pipeline_health_asset(partitions: dg.DailyPartitionsDefinition,
                          assets: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The health asset over the inline checks of `assets` (every other asset of the graph)."""
    graph_checks = sorted({k for a in assets for k in a.check_keys}, key=lambda k: k.to_user_string())

    @dg.asset(
        key=HEALTH_KEY, partitions_def=partitions, group_name="health", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per area x subject x measure for day D: rows in/clean/quarantined/duplicate per "
                    "source, identity match rate, persons, merges and splits, the share of orders and revenue "
                    "with at least one touch, the day's checks passed/warned/failed, and the KPIs whose "
                    "headline moved beyond the anomaly threshold. Feeds the dashboard.",
        ins={"kpi_scorecard": dg.AssetIn(key=dg.AssetKey(["kpi_scorecard"])),
             "journeys": dg.AssetIn(key=dg.AssetKey(["attribution", "journeys"]), metadata={
                 "columns": ["order_id", "count_touches", "net_revenue"]}),
             "identity_map": dg.AssetIn(key=dg.AssetKey(["identity", "identity_map"]), metadata={
                 "columns": ["person_id", "last_seen_date"]}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"]))},
        deps=list(ingestion_keys().values()),
        metadata={"dagster/column_schema": column_schema(HEALTH_SCHEMA), "primary_key": HEALTH_PK},
        check_specs=[
            checks.schema_spec(HEALTH_KEY, partitions),
            dg.AssetCheckSpec(OWN_CHECKS[0], asset=HEALTH_KEY, blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(HEALTH_PK)),
                     dg.AssetCheckSpec(OWN_CHECKS[1], asset=HEALTH_KEY, partitions_def=partitions,
                                       description="warns when a check of the day failed or never ran")],
    )
    def pipeline_health(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                        kpi_scorecard: pd.DataFrame, journeys: pd.DataFrame, identity_map: pd.DataFrame,
                        identity_merges: pd.DataFrame):
        s = settings.get()
        day = partition_day(context)
        partition = context.partition_key
        counts, failed = check_outcomes(context.instance, graph_checks, partition)
        frame = health_rows(_ingestion_counts(context.instance, partition), identity_map, identity_merges,
                            journeys, counts, kpi_scorecard, trailing_headlines(s, day, s.anomaly_window_days),
                            partition, s)
        table = frame.assign(value=frame["value"].astype(float))
        markdown = "| area | subject | measure | value |\n|---|---|---|---|\n" + "\n".join(
            f"| {r.area} | {r.subject} | {r.measure} | {'null' if pd.isna(r.value) else f'{r.value:,.4g}'} |"
            for r in table.itertuples())
        yield from checks.written(HEALTH_KEY, table, HEALTH_SCHEMA, metadata={
            "health": dg.MetadataValue.md(markdown), **{f"checks_{k}": v for k, v in counts.items()},
            "failed_checks": dg.MetadataValue.json(failed[:50])})
        yield checks.primary_key_is_unique(HEALTH_KEY, table, HEALTH_PK)
        yield checks.every_check_of_the_day_passed(HEALTH_KEY, counts, failed)

    return pipeline_health
