"""Secrets never reach Dagster's storage or the screen, and automated runs refuse the public development key.

Dagster stores every resource's configuration in the snapshot of each run it records (zlib-compressed inside
the run storage's SQLite database), so the storage test decompresses every cell of every SQLite file under
DAGSTER_HOME before searching, and checks that its search does find what *is* stored: the variables' names.
"""

import contextlib
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from crm_pipeline.definitions import DAILY_JOB_NAME, build_definitions
from crm_pipeline.resources import PipelineSettingsResource
from crm_pipeline.restatement import SENSOR_NAME
from crm_pipeline.settings import DEVELOPMENT_PII_KEY, Settings, mask_url

DAY1, DAY2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
SCHEDULE_NAME = f"{DAILY_JOB_NAME}_schedule"
LEADS = dg.AssetKey(["ingest", "crm_leads"])
REFUSAL = "CRM_PII_KEY is not set: scheduled, sensor and backfill runs refuse to pseudonymise with the public " \
          "development key"


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql+psycopg://crm:S3cret@db.internal:5432/crm") == \
        "postgresql+psycopg://crm:***@db.internal:5432/crm"
    assert mask_url("sqlite:////srv/crm.sqlite") == "sqlite:////srv/crm.sqlite"
    assert mask_url("not a url at all: S3cret") == "<unparsable database URL>"  # never echoed


def test_an_unparsable_database_url_is_refused_without_repeating_it(tmp_path):
    with pytest.raises(ValueError, match="CRM_DATABASE_URL is not a valid SQLAlchemy URL") as caught:
        Settings.from_env({"CRM_DATABASE_URL": "postgres:S3cret@db"}, base_dir=tmp_path)
    assert "S3cret" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# the rule: secrets from the environment become EnvVars; plain values only for what is no secret


def _settings(tmp_path: Path, **overrides) -> Settings:
    settings = Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                        database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}", start_date=DAY1)
    return settings.with_overrides(**overrides)


def test_secrets_from_the_environment_become_env_vars(tmp_path):
    env = {"CRM_DATABASE_URL": "postgresql+psycopg://crm:S3cret@db/crm", "CRM_PII_KEY": "a-real-key"}
    settings = Settings.from_env(env, base_dir=tmp_path)
    resource = PipelineSettingsResource.from_settings(settings, env=env)
    assert isinstance(resource.database_url, dg.EnvVar) and resource.database_url == "CRM_DATABASE_URL"
    assert isinstance(resource.pii_key, dg.EnvVar) and resource.pii_key == "CRM_PII_KEY"
    # a distinctive SQLite path from the environment is passed as a reference as well
    sqlite_env = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'crm-blue.sqlite'}"}
    resource = PipelineSettingsResource.from_settings(Settings.from_env(sqlite_env, base_dir=tmp_path), env=sqlite_env)
    assert isinstance(resource.database_url, dg.EnvVar)


def test_values_that_are_no_secret_may_be_plain(tmp_path):
    settings = _settings(tmp_path, storage_options={"endpoint_url": "http://127.0.0.1:9000"})
    resource = PipelineSettingsResource.from_settings(settings, env={})
    assert not isinstance(resource.database_url, dg.EnvVar)
    assert resource.database_url == settings.database_url  # the embedded SQLite path
    assert resource.pii_key == DEVELOPMENT_PII_KEY and not isinstance(resource.pii_key, dg.EnvVar)
    no_password = settings.with_overrides(database_url="postgresql+psycopg://crm@db/crm")  # .pgpass, trust, ...
    assert PipelineSettingsResource.from_settings(no_password, env={}).database_url == no_password.database_url


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"database_url": "postgresql+psycopg://crm:S3cret@db/crm"},
         "a database URL with a password must come from the environment variable CRM_DATABASE_URL"),
        ({"pii_key": "S3cret"}, "a PII key must come from the environment variable CRM_PII_KEY"),
        ({"storage_options": {"endpoint_url": "http://minio:9000", "key": "AKIA", "secret": "S3cret"}},
         "storage options must not hold credentials (key, secret)"),
        ({"storage_options": {"client_kwargs": {"aws_secret_access_key": "S3cret"}}},
         "storage options must not hold credentials (aws_secret_access_key)"),
    ],
)
def test_a_secret_that_does_not_come_from_the_environment_is_refused(tmp_path, overrides, message):
    settings = _settings(tmp_path, **overrides)
    # the variable set to another value is no excuse: only the value read from it becomes a reference
    env = {"CRM_DATABASE_URL": "postgresql+psycopg://crm:other@db/crm", "CRM_PII_KEY": "other"}
    for attempt in (lambda: PipelineSettingsResource.from_settings(settings, env=env),
                    lambda: build_definitions(settings)):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            attempt()
        assert "S3cret" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# automated runs and the development key


@pytest.fixture
def crm_only(tmp_path: Path) -> Settings:
    """A CRM database with one lead, enough for `ingest/crm_leads` (the runs below select only it)."""
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leads (lead_id TEXT, created_at TEXT)"))
        conn.execute(sa.text("INSERT INTO leads VALUES ('L1', '2026-10-01T10:00:00Z')"))
    engine.dispose()
    return _settings(tmp_path, database_url=url)


def _materialise_leads(defs: dg.Definitions, instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.ExecuteInProcessResult:
    return dg.materialize(list(defs.assets or []), selection=[LEADS], partition_key=DAY1.isoformat(), instance=instance,
                          resources=defs.resources, tags=tags, raise_on_error=False)


def _run_failure(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    error = failure.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.message


@pytest.mark.parametrize(
    ("tag", "value"),
    [("dagster/schedule_name", SCHEDULE_NAME), ("dagster/sensor_name", SENSOR_NAME), ("dagster/backfill", "kqzwxrtm")],
)
def test_runs_dagster_launches_by_itself_refuse_the_development_key(crm_only, tag, value):
    defs = build_definitions(crm_only)
    with dg.instance_for_test() as instance:
        refused = _materialise_leads(defs, instance, {tag: value})
        assert not refused.success
        assert _run_failure(refused).startswith(f"crm_pipeline.resources.DevelopmentKeyRefusedError: Run refused (launched by {tag}={value}): "
                                                f"{REFUSAL}")
        assert not instance.get_materialized_partitions(LEADS)  # refused before any step ran
        allowed = build_definitions(crm_only.with_overrides(allow_development_pii_key=True))
        assert _materialise_leads(allowed, instance, {tag: value}).success


def test_a_manual_run_with_the_development_key_goes_on_with_a_warning(crm_only):
    with dg.instance_for_test() as instance:
        result = _materialise_leads(build_definitions(crm_only), instance, {"crm_pipeline/source": "cli"})
        assert result.success and instance.get_materialized_partitions(LEADS) == {DAY1.isoformat()}
        warnings = [r.user_message for r in instance.all_logs(result.run_id)
                    if r.level == 30 and not r.is_dagster_event]
        assert warnings == ["CRM_PII_KEY is not set: this run pseudonymises emails and phones with the public "
                            "development key; its outputs are not protected (not for production data)"]
        # allowed explicitly (a demo on sample data): the user knows, no warning in every run
        allowed = _materialise_leads(build_definitions(crm_only.with_overrides(allow_development_pii_key=True)),
                                     instance, {"crm_pipeline/source": "cli"})
        assert allowed.success and not [r for r in instance.all_logs(allowed.run_id)
                                        if r.level == 30 and not r.is_dagster_event]


def test_a_real_key_from_the_environment_lets_automated_runs_go(crm_only, monkeypatch):
    monkeypatch.setenv("CRM_PII_KEY", "a-real-key")
    defs = build_definitions(crm_only.with_overrides(pii_key="a-real-key"))
    with dg.instance_for_test() as instance:
        result = _materialise_leads(defs, instance, {"dagster/schedule_name": SCHEDULE_NAME})
        assert result.success
        assert not [r for r in instance.all_logs(result.run_id) if r.level == 30 and not r.is_dagster_event]


def test_the_schedule_and_the_restatement_sensor_say_why_they_launch_nothing(crm_only, monkeypatch):
    """Evaluated the way the daemon evaluates them: the tick records the reason instead of a run that fails."""
    when = dt.datetime(2026, 10, 20, 2, 0, tzinfo=dt.UTC)

    def ticks(settings: Settings, instance: dg.DagsterInstance):
        defs = build_definitions(settings)
        repository = defs.get_repository_def()
        schedule = defs.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=when, repository_def=repository))
        sensor = defs.resolve_sensor_def(SENSOR_NAME).evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=repository))
        return schedule, sensor

    with dg.instance_for_test() as instance:
        schedule, sensor = ticks(crm_only, instance)
        assert schedule.run_requests == [] and schedule.skip_message.startswith(REFUSAL)
        assert sensor.run_requests == [] and sensor.skip_message.startswith(REFUSAL)
        assert sensor.cursor is None  # nothing was evaluated: the late data is still found once a key is set

        monkeypatch.setenv("CRM_PII_KEY", "a-real-key")
        schedule, sensor = ticks(crm_only.with_overrides(pii_key="a-real-key"), instance)
        assert [r.partition_key for r in schedule.run_requests] == ["2026-10-19"]
        assert sensor.skip_message == "nothing is materialised yet"  # evaluated as usual

        schedule, _ = ticks(crm_only.with_overrides(allow_development_pii_key=True), instance)
        assert [r.partition_key for r in schedule.run_requests] == ["2026-10-19"]


# ---------------------------------------------------------------------------------------------------------------
# nothing secret in DAGSTER_HOME


def _stored_values(path: Path) -> list[bytes]:
    """The file's bytes, and for a SQLite database every cell (zlib-compressed blobs decompressed)."""
    data = path.read_bytes()
    values = [data]
    if data.startswith(b"SQLite format 3\x00"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):  # names read from the database itself
                    for cell in row:
                        if isinstance(cell, bytes):
                            with contextlib.suppress(zlib.error):  # not every blob is compressed
                                cell = zlib.decompress(cell)
                        values.append(cell if isinstance(cell, bytes) else str(cell).encode())
    return values


def _found_in_storage(home: Path, needles: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        for value in _stored_values(path):
            for needle in needles:
                if needle.encode() in value:
                    found.setdefault(needle, []).append(str(path.relative_to(home)))
    return found


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "crm_pipeline.cli", *args], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def secret_database(request, tmp_path: Path) -> tuple[str, str]:
    """(CRM database URL, the secret in it): a SQLite file with a distinctive name, or a PostgreSQL database
    reached with a password (the test server trusts local connections, so any password is accepted)."""
    token = f"S3cret-{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / f'crm-{token}.sqlite'}", token
    url = sa.make_url(request.getfixturevalue("postgres_url"))
    if url.password:  # a server that wants its own password: that one is the secret
        return url.render_as_string(hide_password=False), str(url.password)
    return url.set(password=token).render_as_string(hide_password=False), token


@pytest.mark.timeout(900)
def test_secrets_set_in_the_environment_never_reach_dagster_storage(secret_database, tmp_path, monkeypatch):
    database_url, secret = secret_database
    pii_key = f"pii-{uuid.uuid4().hex}"
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(home), "CRM_DATABASE_URL": database_url, "CRM_PII_KEY": pii_key,
            "CRM_LANDING_ROOT": str(tmp_path / "world" / "landing"), "CRM_WAREHOUSE_ROOT": str(tmp_path / "warehouse"),
            "CRM_START_DATE": DAY1.isoformat()}

    # the command line: generate (prints where the database is) and a run
    generated = _cli(["generate", "--scale", "tiny", "--days", "2", "--seed", "11"], env, tmp_path)
    assert f"CRM database : {mask_url(database_url)}" in generated.stdout
    manifest = (tmp_path / "world" / "ground_truth" / "manifest.json").read_text()
    assert json.loads(manifest)["paths"]["database_url"] == mask_url(database_url)
    ran = _cli(["run", "--start", DAY1.isoformat(), "--end", DAY1.isoformat(), "--select", "group:ingestion"],
               env, tmp_path)
    for printed in (generated.stdout, generated.stderr, ran.stdout, ran.stderr, manifest):
        assert pii_key not in printed and (secret not in printed or "sqlite" in database_url)

    # what `dagster dev` and the daemon load: the module's Definitions, a schedule tick and the run it requests
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from crm_pipeline.definitions import defs

    definitions = defs()
    when = dt.datetime.combine(DAY2 + dt.timedelta(days=1), dt.time(2), tzinfo=dt.UTC)
    tick = definitions.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=definitions.get_repository_def()))
    (request,) = tick.run_requests
    with dg.DagsterInstance.get() as instance:
        job = definitions.resolve_job_def(DAILY_JOB_NAME)
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                        asset_selection=[LEADS])
        assert result.success and instance.get_materialized_partitions(LEADS) == {DAY1.isoformat(), DAY2.isoformat()}
        runs = instance.get_runs()
        assert len(runs) == 2 and runs[0].tags["dagster/schedule_name"] == SCHEDULE_NAME

    found = _found_in_storage(home, [secret, pii_key, "CRM_PII_KEY", "CRM_DATABASE_URL"])
    assert (found.get(secret), found.get(pii_key)) == (None, None)
    # and the search works: the variables' names are in the stored (compressed) run snapshots
    assert "history/runs.db" in found.get("CRM_PII_KEY", []) and "history/runs.db" in found["CRM_DATABASE_URL"]
