"""The `report` asset: the day's dashboard page, written beside its section table in the warehouse."""

import dagster as dg
import pandas as pd

from crm_pipeline import checks
from crm_pipeline.health import HEALTH_KEY, ingestion_keys
from crm_pipeline.kpis.assets import ALL_KPIS, SCORECARD_KEY, kpi_key
from crm_pipeline.kpis.framework import KpiInput
from crm_pipeline.metadata import column_schema
from crm_pipeline.reporting.dashboard import (
    REPORT_SCHEMA,
    SHOWN_KPIS,
    SPARKLINE_DAYS,
    DashboardInputs,
    build_dashboard,
    read_page,
)
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs

REPORT_KEY = dg.AssetKey(["report"])
GROUP = "reporting"
PAGE_FOLDER = "dashboards"  # beside the datasets, never inside one: `read_parquet("<warehouse>/report")` works
SCORECARD_WINDOW = KpiInput("kpi_scorecard", tuple(SCORECARD_KEY.path), window_days=SPARKLINE_DAYS)


def page_url(settings: Settings, day: str) -> str:
    """`<warehouse>/dashboards/YYYY-MM-DD.html` (a local path or an s3:// URL)."""
    return fs.join(settings.warehouse_root, PAGE_FOLDER, f"{day}.html")


def newest_partitions(settings: Settings, keys: list[dg.AssetKey]) -> pd.DataFrame:
    """One row per asset: its newest partition in the warehouse (one listing per asset), null when none."""
    rows = []
    for key in keys:
        found = fs.partition_files(settings.warehouse_root, key.path, settings.storage_options)
        rows.append({"asset": key.to_user_string(), "newest_partition": max(found) if found else None})
    return pd.DataFrame(rows, columns=["asset", "newest_partition"])


def write_page(settings: Settings, day: str, text: str) -> tuple[str, str]:
    """Write the page (atomic on local disk, one PUT on S3) and read it back: (url, text as stored)."""
    url = page_url(settings, day)
    filesystem, path = fs.filesystem(url, settings.storage_options)
    fs.write_bytes_atomic(filesystem, path, text.encode("utf-8"))
    return url, filesystem.cat_file(path).decode("utf-8")


def page_parses(stored: str, expected_bytes: int) -> dg.AssetCheckResult:
    page = read_page(stored)
    return dg.AssetCheckResult(
        asset_key=REPORT_KEY, check_name="dashboard_is_written_and_parses",
        passed=page.ok and len(stored.encode("utf-8")) == expected_bytes,
        metadata={"bytes": len(stored.encode("utf-8")), "sections": dg.MetadataValue.json(page.sections),
                  "errors": dg.MetadataValue.json(page.errors)})


def every_scorecard_kpi_appears(scorecard_today: pd.DataFrame, stored: str) -> dg.AssetCheckResult:
    page = read_page(stored)
    missing = sorted(set(scorecard_today["kpi"].astype(str)) - set(page.kpis))
    return dg.AssetCheckResult(
        asset_key=REPORT_KEY, check_name="every_scorecard_kpi_appears", passed=not missing and len(page.kpis) > 0,
        metadata={"kpis_shown": len(page.kpis), "missing": dg.MetadataValue.json(missing)})


def report_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    shown = [kpi for kpi in ALL_KPIS if kpi.name in SHOWN_KPIS]  # cohort_retention only once it exists
    ins = {
        "kpi_scorecard": dg.AssetIn(key=SCORECARD_KEY, partition_mapping=SCORECARD_WINDOW.partition_mapping),
        "pipeline_health": dg.AssetIn(key=HEALTH_KEY),
        **{kpi.name: dg.AssetIn(key=kpi_key(kpi)) for kpi in shown},
    }
    watched = [*ingestion_keys().values(), *(kpi_key(kpi) for kpi in ALL_KPIS), SCORECARD_KEY, HEALTH_KEY]

    @dg.asset(
        key=REPORT_KEY, partitions_def=partitions, group_name=GROUP, owners=OWNERS,
        kinds={"python", "plotly", "html"}, ins=ins,
        description="One row per dashboard section for day D (section, title, rows drawn, has_data). The "
                    f"dashboard itself is one self-contained HTML page, {PAGE_FOLDER}/YYYY-MM-DD.html "
                    "(plotly.js embedded, opens offline): the scorecard of every KPI headline with "
                    f"{SPARKLINE_DAYS}-day sparklines, the device x hour heat map, registrant, customer and "
                    "cohort retention, attributed revenue by model and channel, the sales funnel from lead to "
                    "won, NPS/CSAT/CES trends, ingestion and quarantine counts, the day's checks and "
                    "anomalies, and how fresh every source and KPI table is.",
        metadata={"dagster/column_schema": column_schema(REPORT_SCHEMA), "primary_key": ["section"],
                  "inputs": ", ".join(["kpi_scorecard (90 d)", "pipeline_health",
                                       *("kpi/" + kpi.name for kpi in shown)])},
        check_specs=[
            checks.schema_spec(REPORT_KEY, partitions),
            dg.AssetCheckSpec("section_is_unique", asset=REPORT_KEY, blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(["section"])),
            dg.AssetCheckSpec("dashboard_is_written_and_parses", asset=REPORT_KEY, partitions_def=partitions,
                              description="the page read back from storage is the one written, every section "
                                          "is there in order and its tags nest"),
            dg.AssetCheckSpec("every_scorecard_kpi_appears", asset=REPORT_KEY, partitions_def=partitions,
                              description="every KPI of the day's kpi_scorecard has its row on the page"),
        ],
    )
    def report(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, kpi_scorecard: pd.DataFrame,
               pipeline_health: pd.DataFrame, **tables: pd.DataFrame):
        s = settings.get()
        day = context.partition_key
        dashboard = build_dashboard(DashboardInputs(day=day, scorecard=kpi_scorecard, health=pipeline_health,
                                                    tables=tables, freshness=newest_partitions(s, watched)))
        url, stored = write_page(s, day, dashboard.html)
        local = "://" not in url
        frame = dashboard.sections
        yield from checks.written(REPORT_KEY, frame, REPORT_SCHEMA, metadata={
            "dashboard": dg.MetadataValue.path(url) if local else dg.MetadataValue.url(url),
            "dashboard_bytes": len(dashboard.html.encode("utf-8")),
            "sections_without_data": dg.MetadataValue.json(frame.loc[~frame["has_data"], "section"].tolist())})
        yield checks.primary_key_is_unique(REPORT_KEY, frame, ["section"])
        yield page_parses(stored, len(dashboard.html.encode("utf-8")))
        yield every_scorecard_kpi_appears(kpi_scorecard[kpi_scorecard["date"] == day], stored)

    return report
