"""The one place that builds the Dagster `Definitions`.

`dagster dev`, `dagster definitions validate`, `workspace.yaml` and `[tool.dagster]` all load `defs` from this
module. `defs` is a `@dg.definitions` function, so importing the module reads no environment and touches no disk;
Dagster calls it when it loads the code location.
"""

import warnings

import dagster as dg

from crm_pipeline.attribution.assets import build_attribution_assets
from crm_pipeline.health import pipeline_health_asset
from crm_pipeline.identity.assets import build_identity_assets
from crm_pipeline.ingestion.assets import build_ingestion_assets
from crm_pipeline.kpis.assets import build_kpi_assets
from crm_pipeline.resources import PipelineSettingsResource
from crm_pipeline.restatement import build_restatement_sensor
from crm_pipeline.settings import Settings
from crm_pipeline.storage.io_manager import ParquetIOManager

DAILY_JOB_NAME = "crm_daily_job"
# how long after the schedule's hour yesterday's partition must exist before freshness checks fail
FRESHNESS_GRACE_HOURS = 4


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Days in the reporting timezone from CRM_START_DATE to yesterday (the last complete day)."""
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), timezone=settings.timezone)


def build_definitions(settings: Settings, *, secrets_from_env: bool = True) -> dg.Definitions:
    # Partition-aware checks (a preview feature) and the partition-aware freshness checks (superseded by the
    # asset-level FreshnessPolicy, which is not partition-aware) are used on purpose; their warnings would
    # otherwise print once per asset every time the code location loads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.filterwarnings("ignore", message=".*is superseded.*")
        return _build_definitions(settings, secrets_from_env=secrets_from_env)


def _build_definitions(settings: Settings, *, secrets_from_env: bool) -> dg.Definitions:
    partitions = daily_partitions(settings)
    assets = [*build_ingestion_assets(partitions), *build_identity_assets(partitions),
              *build_attribution_assets(partitions, settings), *build_kpi_assets(partitions)]
    assets.append(pipeline_health_asset(partitions, assets))

    daily_job = dg.define_asset_job(
        DAILY_JOB_NAME,
        selection=dg.AssetSelection.all(),
        description="Materialises one day of the whole graph (ingestion -> ... -> KPIs) in one in-process run.",
        executor_def=dg.in_process_executor,
    )
    daily_schedule = dg.build_schedule_from_partitioned_job(
        daily_job, hour_of_day=settings.schedule_hour, minute_of_hour=0,
        description=f"Every day at {settings.schedule_hour:02d}:00 ({settings.timezone}) materialise yesterday.",
    )
    deadline_hour = (settings.schedule_hour + FRESHNESS_GRACE_HOURS) % 24
    # Partition-aware freshness: yesterday's partition must exist by the deadline. The newer asset-level
    # FreshnessPolicy looks at any partition's materialisation (a backfill would look fresh), so these checks
    # are used instead although Dagster marks them superseded.
    freshness_checks = dg.build_time_partition_freshness_checks(
        assets=assets, deadline_cron=f"0 {deadline_hour} * * *", timezone=settings.timezone,
        severity=dg.AssetCheckSeverity.WARN,
    )
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks, name="freshness_checks_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=freshness_checks,
        jobs=[daily_job],
        schedules=[daily_schedule],
        sensors=[freshness_sensor, build_restatement_sensor(settings)],
        resources={
            "io_manager": ParquetIOManager(base_path=settings.warehouse_root,
                                           storage_options=dict(settings.storage_options)),
            "settings": PipelineSettingsResource.from_settings(settings, secrets_from_env=secrets_from_env),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
