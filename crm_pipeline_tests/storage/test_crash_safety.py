"""Crash safety: a real process killed while it writes a partition leaves the previous version intact.

The child process materialises a partition through the real IO manager with `dagster.materialize`. A test-only
wrapper around `os.fsync` (installed in the child before Dagster starts) announces that the new file's bytes
are written and then blocks, so SIGKILL lands exactly between writing the new bytes and making them visible:
the moment a writer that wrote in place would leave a half-written partition.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest

CHILD = textwrap.dedent('''
    import os, sys, time
    import dagster as dg
    import pandas as pd
    from crm_pipeline.storage.io_manager import ParquetIOManager

    root, marker, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_fsync = os.fsync

    def fsync_then_hang(fd):
        real_fsync(fd)
        open(marker, "w").close()  # the new bytes are on disk, not yet renamed into place
        time.sleep(3600)

    days = dg.DailyPartitionsDefinition(start_date="2026-10-01")

    @dg.asset(key=["ingest", "events"], partitions_def=days)
    def events() -> pd.DataFrame:
        return pd.DataFrame({"event_id": [f"new-{i}" for i in range(rows)], "value": range(rows)})

    if rows > 10:
        os.fsync = fsync_then_hang
    dg.materialize([events], partition_key="2026-10-02",
                   resources={"io_manager": ParquetIOManager(base_path=root)})
''')


def run_child(root: Path, marker: Path, rows: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(marker), str(rows)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.timeout(300)
def test_a_run_killed_while_writing_a_partition_leaves_the_previous_version_intact(tmp_path):
    root = tmp_path / "warehouse"
    first = run_child(root, tmp_path / "unused", 3)  # the previous version: 3 rows
    assert first.wait(timeout=240) == 0, first.stderr.read().decode()
    partition = root / "ingest" / "events" / "date=2026-10-02" / "part.parquet"
    before = partition.read_bytes()

    marker = tmp_path / "written"
    child = run_child(root, marker, 200_000)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the child never reached the write"
        time.sleep(0.05)
    temporaries = [p for p in partition.parent.iterdir() if p.name != "part.parquet"]
    assert temporaries and temporaries[0].stat().st_size > 0  # the new version was being written beside it
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL

    assert partition.read_bytes() == before  # the previous version, byte for byte
    assert pd.read_parquet(partition)["event_id"].tolist() == ["new-0", "new-1", "new-2"]
    # whole-history readers skip the dead writer's hidden temporary file
    assert len(pd.read_parquet(root / "ingest" / "events")) == 3
    assert ds.dataset(root / "ingest" / "events", format="parquet", partitioning="hive").count_rows() == 3
    glob = f"{root}/ingest/events/*/*.parquet"
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning = true)").fetchall()[0][0] == 3

    # the next run replaces the partition normally
    again = run_child(root, tmp_path / "unused", 5)
    assert again.wait(timeout=240) == 0, again.stderr.read().decode()
    assert len(pd.read_parquet(partition)) == 5
