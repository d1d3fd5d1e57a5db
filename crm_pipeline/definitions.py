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
from crm_pipeline.reporting.assets import report_asset
from crm_pipeline.resources import PipelineSettingsResource, check_no_credentials
from crm_pipeline.restatement import build_restatement_sensor
from crm_pipeline.settings import Settings
from crm_pipeline.storage.io_manager import ParquetIOManager

DAILY_JOB_NAME = "crm_daily_job"
# how long after the schedule's hour yesterday's partition must exist before freshness checks fail
FRESHNESS_GRACE_HOURS = 4


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Days in the reporting timezone from CRM_START_DATE to yesterday (the last complete day)."""
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), timezone=settings.timezone)


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location for `settings`. Secrets reach the resources as `dg.EnvVar` (and a secret that
    does not come from the environment is refused): see crm_pipeline/resources.py."""
    # Partition-aware checks (a preview feature) and the partition-aware freshness checks (superseded by the
    # asset-level FreshnessPolicy, which is not partition-aware) are used on purpose; their warnings would
    # otherwise print once per asset every time the code location loads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.filterwarnings("ignore", message=".*is superseded.*")
        return _build_definitions(settings)


def daily_schedule(job, settings: Settings) -> dg.ScheduleDefinition:
    """Every day at CRM_SCHEDULE_HOUR (reporting time) request yesterday, the last complete partition.

    Written out instead of `build_schedule_from_partitioned_job` (which requests the same partition) so that a
    tick can say why it launches nothing: runs pseudonymising with the public development key are refused
    at their start (resources.py), so the tick skips with that reason instead of launching a run that fails.
    """
    partitions = daily_partitions(settings)

    @dg.schedule(
        name=f"{job.name}_schedule", job=job, cron_schedule=f"0 {settings.schedule_hour} * * *",
        execution_timezone=settings.timezone,
        description=f"Every day at {settings.schedule_hour:02d}:00 ({settings.timezone}) materialise yesterday.",
    )
    def crm_daily_schedule(context: dg.ScheduleEvaluationContext):
        refusal = settings.automated_run_refusal()
        if refusal:
            return dg.SkipReason(refusal)
        keys = partitions.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return dg.SkipReason(f"no complete day since CRM_START_DATE={settings.start_date} yet")
        return dg.RunRequest(partition_key=keys[-1], run_key=keys[-1])

    return crm_daily_schedule


def _build_definitions(settings: Settings) -> dg.Definitions:
    partitions = daily_partitions(settings)
    assets = [*build_ingestion_assets(partitions), *build_identity_assets(partitions),
              *build_attribution_assets(partitions, settings), *build_kpi_assets(partitions)]
    assets.append(pipeline_health_asset(partitions, assets))
    assets.append(report_asset(partitions))  # after the health asset, which it shows (and which cannot count it)

    deadline_hour = (settings.schedule_hour + FRESHNESS_GRACE_HOURS) % 24
    # Partition-aware freshness: yesterday's partition must exist by the deadline. The newer asset-level
    # FreshnessPolicy looks at any partition's materialisation (a backfill would look fresh), so these checks
    # are used instead although Dagster marks them superseded.
    freshness_checks = dg.build_time_partition_freshness_checks(
        assets=assets, deadline_cron=f"0 {deadline_hour} * * *", timezone=settings.timezone,
        severity=dg.AssetCheckSeverity.WARN,
    )
    # the freshness checks are the sensor's, evaluated between runs: a run of the day does not evaluate them
    daily_job = dg.define_asset_job(
        DAILY_JOB_NAME,
        selection=dg.AssetSelection.all() - dg.AssetSelection.checks(*freshness_checks),
        description="Materialises one day of the whole graph (ingestion -> ... -> KPIs) in one in-process run.",
        executor_def=dg.in_process_executor,
    )
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks, name="freshness_checks_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=freshness_checks,
        jobs=[daily_job],
        schedules=[daily_schedule(daily_job, settings)],
        sensors=[freshness_sensor, build_restatement_sensor(settings)],
        resources={
            "io_manager": ParquetIOManager(base_path=settings.warehouse_root,
                                           storage_options=check_no_credentials(settings.storage_options)),
            "settings": PipelineSettingsResource.from_settings(settings),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
