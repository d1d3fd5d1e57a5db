"""Late landing files, locally and on an S3 API: the listing ingestion records, and what counts as late."""

import datetime as dt
import os
import time

import fsspec
import pandas as pd
import pytest

from crm_pipeline.ingestion.late import landing_listing, late_landing_files
from crm_pipeline.settings import Settings
from crm_pipeline_tests.ingestion.test_landing import encode, event

D = dt.date(2026, 10, 2)


def exercise(settings: Settings, put) -> None:
    put(f"events/date={D}/a.jsonl", [event("a", "2026-10-02T10:00:00Z")])
    put(f"events/date={D + dt.timedelta(days=1)}/b.jsonl", [event("b", "2026-10-03T10:00:00Z")])  # D+1's rows
    recorded = landing_listing("events", D, settings)
    assert len(recorded) == 2 and all("|" in v for v in recorded.values())
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)  # every file has settled by then
    assert late_landing_files("events", D, recorded, settings, later) == []
    # a re-delivered file in folder D, a new file of D+1 that holds a row of D, one that holds none
    put(f"events/date={D}/a.jsonl", [event("a", "2026-10-02T10:00:00Z"), event("a2", "2026-10-02T11:00:00Z")])
    put(f"events/date={D + dt.timedelta(days=1)}/c.jsonl", [event("c", "2026-10-02T23:30:00Z")])
    put(f"events/date={D + dt.timedelta(days=1)}/d.jsonl", [event("d", "2026-10-03T09:00:00Z")])
    late = late_landing_files("events", D, recorded, settings, later)
    assert sorted(p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] for p in late) == [
        "date=2026-10-02/a.jsonl", "date=2026-10-03/c.jsonl"]
    # files modified after the settle point (here: all of them) wait for a later look
    assert late_landing_files("events", D, recorded, settings, pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)) == []


def test_late_files_on_local_disk(tmp_path):
    settings = Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "w"),
                        database_url="sqlite://")
    clock = [time.time() - 3600]

    def put(relative: str, rows: list[dict]) -> None:
        path = tmp_path / "landing" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(path.name, rows))
        clock[0] += 1  # each write a second later, as files arrive
        os.utime(path, (clock[0], clock[0]))

    exercise(settings, put)


@pytest.mark.timeout(120)
def test_late_files_on_s3(s3_server):
    root = s3_server.url("late-files-test")
    settings = Settings(landing_root=root, warehouse_root=s3_server.url("late-files-warehouse"),
                        database_url="sqlite://", storage_options=s3_server.storage_options)
    fs = fsspec.filesystem("s3", **s3_server.storage_options)

    def put(relative: str, rows: list[dict]) -> None:
        fs.pipe_file(f"{root}/{relative}", encode(relative.rsplit("/", 1)[-1], rows))
        time.sleep(1.1)  # S3 modification times have one-second resolution

    exercise(settings, put)


def test_late_files_are_read_as_ingestion_reads_them(tmp_path, monkeypatch):
    """The sensor assigns a neighbouring folder's file with ingestion's streaming reader: a row of D in a late
    batch of a long file makes it late for D; a file that ingestion would quarantine (here, a repeated column)
    holds no row of D; a skipped file is not in the listing at all."""
    from crm_pipeline.ingestion import readers

    monkeypatch.setattr(readers, "BLOCK_BYTES", 256)  # a couple of rows per batch
    settings = Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "w"),
                        database_url="sqlite://")
    folder = tmp_path / "landing" / "events" / f"date={D + dt.timedelta(days=1)}"
    folder.mkdir(parents=True)
    rows = [event(f"n{i}", "2026-10-03T10:00:00Z") for i in range(30)] + [event("d", "2026-10-02T23:00:00Z")]
    (folder / "long.csv").write_bytes(encode("long.csv", rows))
    (folder / "ambiguous.csv").write_bytes(b"event_id,occurred_at,occurred_at\nx,2026-10-02T23:00:00Z,\n")
    (folder / "rows.json").write_bytes(encode("rows.jsonl", [event("j", "2026-10-02T23:00:00Z")]))
    assert [p.rsplit("/", 1)[-1] for p in landing_listing("events", D, settings)] == ["ambiguous.csv", "long.csv"]
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)
    late = late_landing_files("events", D, {}, settings, later)
    assert [p.rsplit("/", 1)[-1] for p in late] == ["long.csv"]
    # ingestion agrees: the row of D from the long file, nothing from the others
    from crm_pipeline.ingestion.landing import ingest_landing_day

    assert ingest_landing_day("events", D, settings).clean["event_id"].tolist() == ["d"]
