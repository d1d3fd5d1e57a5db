"""Missing sources fail loudly: a landing root with nothing under it, a CRM table that lost its rows, a CRM
database file that does not exist. Never zero rows that look like a quiet day, never a created file.

The runs are real `dagster` runs (the command line's `run_range`) on a generated tiny world: a failing blocking
check stops everything that reads the partition, so identity (and what follows it) never runs on it.
"""

import datetime as dt
import shutil
import uuid
from pathlib import Path

import dagster as dg
import fsspec
import pytest
import sqlalchemy as sa

from crm_pipeline.cli import run_range
from crm_pipeline.ingestion.layout import landing_root_exists
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import tiny_world

DAY1, DAY2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
INGESTION_AND_IDENTITY = "group:ingestion or group:identity"
IDENTITY_MAP = dg.AssetKey(["identity", "identity_map"])


def _settings(landing_root: str, **overrides) -> Settings:
    return Settings(landing_root=landing_root, warehouse_root="unused", database_url="sqlite://", **overrides)


# ---------------------------------------------------------------------------------------------------------------
# the landing root: local and S3


def test_a_local_landing_root_exists_when_it_holds_anything(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    assert not landing_root_exists(_settings(str(root)))  # mistyped: no such folder
    root.mkdir()
    assert not landing_root_exists(_settings(str(root)))  # a folder with nothing in it, like an empty S3 prefix
    (root / "orders").mkdir()  # an orders-only shop: one source folder, no events
    assert landing_root_exists(_settings(str(root)))
    a_file = tmp_path / "landing.csv"
    a_file.write_text("order_id\n")
    assert not landing_root_exists(_settings(str(a_file)))  # a file is no landing root


@pytest.mark.timeout(120)
def test_an_s3_landing_root_exists_when_an_object_lies_under_its_prefix(s3_server) -> None:
    prefix = f"landing-{uuid.uuid4().hex[:8]}"
    settings = _settings(s3_server.url(prefix), storage_options=s3_server.storage_options)
    assert not landing_root_exists(settings)  # no object under the prefix: what a mistyped prefix looks like
    assert not landing_root_exists(_settings(s3_server.url(f"{prefix}-typo"),
                                             storage_options=s3_server.storage_options))
    fs = fsspec.filesystem("s3", **s3_server.storage_options)
    fs.pipe(f"{s3_server.bucket}/{prefix}/orders/date=2026-10-01/orders.csv", b"order_id\n")
    assert landing_root_exists(settings)  # the same file-system instance sees the new object (cache dropped)
    assert not landing_root_exists(_settings("s3://no-such-bucket-crm/landing",
                                             storage_options=s3_server.storage_options))


# ---------------------------------------------------------------------------------------------------------------
# real runs


@pytest.fixture(scope="module")
def pristine_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("missing_sources")
    tiny_world(root, DAY1, days=2, seed=5)
    return root


@pytest.fixture
def world(pristine_world: Path, tmp_path: Path) -> tuple[Settings, Path]:
    """A private copy of the generated world (tests break it) and the settings that read it."""
    root = tmp_path / "world"
    shutil.copytree(pristine_world, root)
    return Settings(landing_root=str(root / "landing"), warehouse_root=str(root / "warehouse"),
                    database_url=f"sqlite:///{root / 'crm.sqlite'}", start_date=DAY1), root


def _run(settings: Settings, day: dt.date, instance: dg.DagsterInstance, select: str) -> list[str]:
    lines: list[str] = []
    run_range(settings, day, day, select=select, instance=instance, echo=lines.append)
    return lines


def _failed_run(settings: Settings, day: dt.date, instance: dg.DagsterInstance, select: str) -> list[str]:
    lines: list[str] = []
    with pytest.raises(SystemExit, match=f"run for {day} failed"):
        run_range(settings, day, day, select=select, instance=instance, echo=lines.append)
    return lines


def _check(instance: dg.DagsterInstance, asset: str, name: str, day: dt.date) -> dg.AssetCheckEvaluation:
    key = dg.AssetCheckKey(dg.AssetKey(asset.split("/")), name)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.partition == day.isoformat()
    return evaluation


def _execute(database_url: str, statement: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_a_missing_landing_root_stops_everything_that_reads_the_landing_sources(world) -> None:
    settings, root = world
    typo = settings.with_overrides(landing_root=str(root / "landnig"))
    with dg.instance_for_test() as instance:
        lines = _failed_run(typo, DAY1, instance, INGESTION_AND_IDENTITY)
        for source in ("events", "fx_rates"):
            assert f"    check ingest/{source}:landing_root_exists did not pass (ERROR)" in lines
            evaluation = _check(instance, f"ingest/{source}", "landing_root_exists", DAY1)
            assert not evaluation.passed and str(root / "landnig") in evaluation.description
        # orders, refunds and costs read the fx rates, which were stopped already; identity reads them all
        for stopped in (["ingest", "fx_rates_latest"], ["ingest", "orders"], ["ingest", "costs"], IDENTITY_MAP.path):
            assert not instance.get_materialized_partitions(dg.AssetKey(stopped))
        assert not (root / "warehouse" / "identity" / "identity_map").exists()
        assert not (root / "landnig").exists()
        # the right root: the same selection goes through and the check passes
        _run(settings, DAY1, instance, INGESTION_AND_IDENTITY)
        assert _check(instance, "ingest/orders", "landing_root_exists", DAY1).passed
        assert instance.get_materialized_partitions(IDENTITY_MAP) == {DAY1.isoformat()}


def test_a_crm_table_that_lost_its_rows_stops_what_reads_it_and_one_that_never_had_rows_does_not(world) -> None:
    settings, _ = world
    _execute(settings.database_url, "DELETE FROM survey_responses")  # a shop without surveys, from the start
    with dg.instance_for_test() as instance:
        _run(settings, DAY1, instance, INGESTION_AND_IDENTITY)
        for table in ("leads", "opportunities", "survey_responses"):
            first = _check(instance, f"ingest/crm_{table}", "crm_table_not_emptied", DAY1)
            assert first.passed and first.metadata["previous_snapshot_rows"].value == 0  # first load
            assert (first.metadata["table_rows"].value > 0) == (table != "survey_responses")
        snapshot_rows = {table: instance.fetch_materializations(dg.AssetKey(["ingest", f"crm_{table}"]), limit=1)
                         .records[0].asset_materialization.metadata["snapshot_rows"].value
                         for table in ("leads", "opportunities")}
        _execute(settings.database_url, "DELETE FROM leads")  # truncated (or a wrong database with an empty one)
        _execute(settings.database_url, "DROP TABLE opportunities")  # a table that existed and is gone

        lines = _failed_run(settings, DAY2, instance, INGESTION_AND_IDENTITY)
        for table, now in (("leads", "has 0 rows"), ("opportunities", "does not exist")):
            assert f"    check ingest/crm_{table}:crm_table_not_emptied did not pass (ERROR)" in lines
            evaluation = _check(instance, f"ingest/crm_{table}", "crm_table_not_emptied", DAY2)
            assert evaluation.description == (
                f"CRM table {table} {now} in the database, but the previous snapshot has {snapshot_rows[table]} "
                "rows: a truncated table, a wrong CRM_DATABASE_URL or a failed replication?")
            assert evaluation.metadata["table_rows"].value == 0
        # a table that never had rows stays fine on its second day too
        assert _check(instance, "ingest/crm_survey_responses", "crm_table_not_emptied", DAY2).passed
        assert instance.get_materialized_partitions(IDENTITY_MAP) == {DAY1.isoformat()}  # not DAY2


def test_a_mistyped_sqlite_crm_path_fails_the_run_and_creates_no_file(world) -> None:
    settings, root = world
    typo = settings.with_overrides(database_url=f"sqlite:///{root / 'crm.sqlit'}")
    with dg.instance_for_test() as instance:
        lines = _failed_run(typo, DAY1, instance, 'key:"ingest/crm_leads"')
        assert any(f"CRM database file {root / 'crm.sqlit'} does not exist" in line for line in lines), lines
        assert not (root / "crm.sqlit").exists()
        assert not instance.get_materialized_partitions(dg.AssetKey(["ingest", "crm_leads"]))
