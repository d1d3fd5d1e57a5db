"""The Definitions load, and every asset carries what a user needs to trust it."""

import datetime as dt

import dagster as dg
import pytest

from crm_pipeline.definitions import build_definitions, daily_partitions
from crm_pipeline.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                    database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}", start_date=dt.date(2026, 10, 1),
                    timezone="Europe/Berlin")


def test_definitions_are_loadable(settings):
    dg.Definitions.validate_loadable(build_definitions(settings))


def test_module_level_defs_load_without_side_effects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from crm_pipeline import definitions

    loaded = definitions.defs()  # the @dg.definitions function Dagster calls
    assert isinstance(loaded, dg.Definitions)
    assert not (tmp_path / "data").exists()  # building definitions touches no disk


def test_every_asset_is_documented_owned_typed_and_checked(settings):
    # description with its grain, owners, kinds, group, column schema, a primary-key check, a schema check
    # (both inline, run with every materialisation) and a partition-aware freshness check
    defs = build_definitions(settings)
    specs = list(defs.resolve_all_asset_specs())
    assert len(specs) >= 19
    check_keys = defs.resolve_asset_graph().asset_check_keys
    checked = {key.asset_key for key in check_keys if key.name == "freshness_check"}
    inline: dict[dg.AssetKey, set[str]] = {}
    for key in check_keys:
        if key.name != "freshness_check":
            inline.setdefault(key.asset_key, set()).add(key.name)
    problems = []
    for spec in specs:
        name = spec.key.to_user_string()
        if not (spec.description or "").startswith("One row per"):
            problems.append(f"{name}: description does not start with its grain")
        if not spec.owners:
            problems.append(f"{name}: no owners")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
        if not spec.group_name or spec.group_name == "default":
            problems.append(f"{name}: no group")
        if "dagster/column_schema" not in spec.metadata:
            problems.append(f"{name}: no column schema")
        names = inline.get(spec.key, set())
        if not any(n.endswith("_is_unique") or n == "dimensions_are_unique" for n in names):
            problems.append(f"{name}: no primary-key check")
        if not names & {"schema_matches_contract", "schema_matches_declared", "columns_types_and_units_are_valid"}:
            problems.append(f"{name}: no schema check")
        if spec.key not in checked:
            problems.append(f"{name}: no freshness check")
        if spec.partitions_def is None:
            problems.append(f"{name}: not partitioned")
    assert problems == []


def test_partitions_follow_the_reporting_timezone(settings):
    partitions = daily_partitions(settings)
    assert partitions.timezone == "Europe/Berlin"
    assert partitions.get_first_partition_key() == "2026-10-01"


def test_schedule_runs_yesterday_at_the_configured_hour(settings):
    defs = build_definitions(settings.with_overrides(schedule_hour=3, allow_development_pii_key=True))
    schedule = defs.resolve_schedule_def("crm_daily_job_schedule")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"

    def tick(when: dt.datetime):  # what the scheduler daemon evaluates (it passes the code location)
        return schedule.evaluate_tick(dg.build_schedule_context(
            scheduled_execution_time=when, repository_def=defs.get_repository_def()))

    requests = tick(dt.datetime(2026, 11, 20, 3, 0, tzinfo=settings.tz)).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [("2026-11-19", "2026-11-19")]
    assert requests[0].tags["dagster/schedule_name"] == "crm_daily_job_schedule"
    # 00:30 in Berlin on Nov 20 is still Nov 19 in UTC: the day is the reporting timezone's
    assert [r.partition_key for r in tick(dt.datetime(2026, 11, 20, 0, 30, tzinfo=settings.tz)).run_requests] == [
        "2026-11-19"]
    assert "no complete day" in tick(dt.datetime(2026, 10, 1, 3, 0, tzinfo=settings.tz)).skip_message


def test_every_asset_has_a_partition_aware_freshness_check(settings):
    defs = build_definitions(settings)
    check_keys = defs.resolve_asset_graph().asset_check_keys
    fresh = {k.asset_key for k in check_keys if "freshness" in k.name}
    assert fresh == {spec.key for spec in defs.resolve_all_asset_specs()}


def test_a_ui_backfill_of_a_range_targets_exactly_that_range_for_every_asset(settings):
    """What the UI's launch-backfill dialog computes (asset selection + partition names), for the whole graph.

    A state asset that read another asset's previous day shifted its backfill by one day, and a non-subsettable
    multi-asset whose outputs got different ranges was refused by the UI. Dagster has no public API for a
    backfill's target subset, so this uses the one the backfill daemon uses (dagster._core).
    """
    import time

    from dagster._core.execution.asset_backfill import AssetBackfillData

    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = [spec.key for spec in defs.resolve_all_asset_specs()]
    days = ["2026-10-02", "2026-10-03", "2026-10-04"]
    with dg.instance_for_test() as instance:
        data = AssetBackfillData.from_asset_partitions(
            asset_graph=graph, partition_names=days, asset_selection=keys, dynamic_partitions_store=instance,
            backfill_start_timestamp=time.time(), all_partitions=False)
    targeted = {key: sorted(data.target_subset.get_partitions_subset(key).get_partition_keys())
                for key in keys}
    # what reads a trailing window of an asset is restated for the days whose window contains the range
    window_readers = {key for key in keys for parent in graph.get(key).parent_keys
                      if isinstance(graph.get_partition_mapping(key, parent), dg.TimeWindowPartitionMapping)
                      and graph.get_partition_mapping(key, parent).start_offset < 0 and parent != key}
    downstream, frontier = set(), set(window_readers)
    while frontier:  # everything downstream of a window reader
        frontier = {child for key in frontier for child in graph.get(key).child_keys} - downstream
        downstream |= frontier
    shifted = {key.to_user_string(): got for key, got in targeted.items()
               if got != days and key not in window_readers | downstream}
    assert shifted == {}
    for key in window_readers | downstream:
        assert set(days) <= set(targeted[key])
    # a non-subsettable step targets the same days for all of its assets (else the UI refuses the backfill)
    for key in keys:
        for other in graph.get(key).execution_set_asset_keys:
            assert targeted[other] == targeted[key], (key, other)


def test_every_kpi_declares_column_lineage_to_real_upstream_columns(settings):
    from crm_pipeline.kpis.assets import ALL_KPIS

    defs = build_definitions(settings)
    schemas = {spec.key: {c.name for c in spec.metadata["dagster/column_schema"].columns}
               for spec in defs.resolve_all_asset_specs()}
    problems = []
    for kpi in ALL_KPIS:
        lineage = kpi.column_lineage()
        open_dims = [d.name for d in kpi.dimensions if d.values is None]
        problems += [f"{kpi.name}: no lineage for {c}" for c in ("numerator", "value", *open_dims) if c not in lineage]
        for column, deps in lineage.items():
            if column not in kpi.schema.names:
                problems.append(f"{kpi.name}: lineage for unknown output column {column}")
            for key, upstream in deps:
                asset_key = dg.AssetKey(list(key))
                if upstream not in schemas.get(asset_key, set()):
                    problems.append(f"{kpi.name}.{column}: {asset_key.to_user_string()} has no column {upstream}")
    assert problems == []


def test_freshness_goes_from_fresh_to_stale_with_the_clock_and_names_the_missing_partition(settings):
    # Dagster's own clock is frozen (its test utility; there is no public one) and the real freshness check of
    # one asset is executed the way the sensor does, at several instants. Deadline: 02:00 + 4 h, Berlin time.
    from zoneinfo import ZoneInfo

    from dagster._core.test_utils import freeze_time

    defs = build_definitions(settings)
    key = dg.AssetKey(["kpi", "uar_30d"])
    check = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={dg.AssetCheckKey(key, "freshness_check")}, asset_selection=set())

    def evaluate(day: int, hour: int) -> dg.AssetCheckEvaluation:
        with freeze_time(dt.datetime(2026, 11, day, hour, 0, tzinfo=ZoneInfo("Europe/Berlin"))):
            result = check.execute_in_process(instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition="2026-11-01"))
        assert evaluate(2, 7).passed  # yesterday (Nov 1) exists
        assert evaluate(3, 5).passed  # Nov 2 is not due before 06:00
        stale = evaluate(3, 7)
        assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
        assert "partition 2026-11-02" in stale.description
        # a backfill of an old day does not make the asset fresh (the trap of the asset-level policy) ...
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition="2026-10-15"))
        assert not evaluate(3, 8).passed
        # ... yesterday's partition does
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition="2026-11-02"))
        assert evaluate(3, 9).passed
