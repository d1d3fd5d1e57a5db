"""Shared fixtures for the whole test suite."""

import datetime as dt
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from crm_pipeline.settings import Settings

S3_BUCKET = "crm-test-bucket"


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files (the tests' worlds and warehouses, Dagster's test instances) go to a RAM disk where the
    machine has one and TMPDIR does not say otherwise: Dagster's SQLite event log commits (and syncs) once per
    event, which made more than a third of a whole-graph test run's time on a real disk."""
    if os.environ.get("TMPDIR"):
        return
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 4 * 2**30:
        os.environ["TMPDIR"] = str(shm)
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again

_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server with one empty-at-start bucket."""

    endpoint_url: str
    bucket: str = S3_BUCKET
    storage_options: dict[str, Any] = field(default_factory=dict)

    def url(self, *parts: str) -> str:
        """``s3://<bucket>/<parts...>``."""
        return "/".join([f"s3://{self.bucket}", *(p.strip("/") for p in parts)])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for the whole session, with bucket ``S3_BUCKET``.

    Dummy AWS credentials are set in the environment only while the fixture is active (saved and
    restored at teardown), so that no test can reach a real AWS account. Use
    ``s3_server.storage_options`` (endpoint_url, key, secret) for fsspec / pandas / the IO manager.
    Tests should write under a prefix of their own: the bucket is shared by the session.
    """
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in _DUMMY_AWS_ENV}
    os.environ.update(_DUMMY_AWS_ENV)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=S3_BUCKET)
        yield S3Server(
            endpoint_url=endpoint,
            storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"},
        )
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


DEFAULT_POSTGRES_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, uniquely named database on the test PostgreSQL server, dropped afterwards.

    The server is `CRM_TEST_POSTGRES_URL` (a URL to any existing database on it, used to create and drop the
    test database), default `postgresql+psycopg://postgres@127.0.0.1:5432/postgres`. A server that cannot be
    reached skips the test with the reason instead of failing it: the SQLite variants still run offline.
    """
    server = sa.make_url(os.environ.get("CRM_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_SERVER_URL)
    shown = server.render_as_string(hide_password=True)
    if server.get_backend_name() != "postgresql":
        pytest.fail(f"CRM_TEST_POSTGRES_URL must be a postgresql URL, got {shown}")
    name = f"crm_test_{uuid.uuid4().hex[:16]}"
    # CREATE/DROP DATABASE cannot run in a transaction; a short connect timeout keeps an absent server quick
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5},
                             poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name is generated above, not user input
    except (sa.exc.SQLAlchemyError, ImportError, OSError) as error:
        admin.dispose()
        pytest.skip(f"no PostgreSQL server reachable at {shown}: {error}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE (PostgreSQL 13+): a connection a failed test left open must not keep the database alive
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def tiny_world(root: Path, start: dt.date, days: int, seed: int, **options: Any) -> Settings:
    """Generate a tiny world (landing files, SQLite CRM, truth) under `root`; the settings that read it, with
    the warehouse beside it. `options`: more arguments of `generate_world` (e.g. bad_rate)."""
    from crm_pipeline.generator import generate_world

    generate_world(str(root / "landing"), f"sqlite:///{root / 'crm.sqlite'}", str(root / "truth"),
                   scale="tiny", start=start, days=days, seed=seed, **options)
    return Settings(landing_root=str(root / "landing"), warehouse_root=str(root / "warehouse"),
                    database_url=f"sqlite:///{root / 'crm.sqlite'}", start_date=start)


def stored(schema: "pa.Schema", rows: list[dict] | None = None, window: bool = False) -> pd.DataFrame:
    """`rows` (none: a day without rows) as the IO manager hands a partition written with `schema` to an asset:
    typed columns, a `date` column appended for a window input (the partition of each row)."""
    table = pa.Table.from_pylist(rows or [], schema=schema)
    if window:
        dates = [str(r.get("date", "")) for r in rows or []]
        table = table.append_column("date", pa.array(dates, pa.string()))
    return table.to_pandas()


def records(frame: pd.DataFrame) -> list[tuple]:
    """The rows of `frame` as tuples with every null (None, NaN, NA, NaT) as None, to compare with rows written
    out by hand."""
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


def write_identity_changes(settings: Settings, day: dt.date, rows: list[tuple[str, str, str]]) -> None:
    """Write identity_merges partition `day` with (kind, kept_person_id, other_person_id) rows, as the
    identity step would (any storage the settings name)."""
    from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
    from crm_pipeline.storage import fs as storage

    table = pa.Table.from_pydict({
        "change_date": [day] * len(rows), "kind": [r[0] for r in rows], "kept_person_id": [r[1] for r in rows],
        "other_person_id": [r[2] for r in rows], "reason": ["test"] * len(rows)}, schema=IDENTITY_MERGES_SCHEMA)
    fs, path = storage.filesystem(storage.join(settings.warehouse_root, "identity", "identity_merges",
                                               f"date={day.isoformat()}", "part.parquet"), settings.storage_options)
    storage.write_table_atomic(fs, path, table)
