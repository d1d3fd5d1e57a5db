"""Reading landing files of every format as text, listing folders, and reporting unparsable files."""

import datetime as dt
import gzip
import io
import json
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_pipeline.ingestion.landing import ingest_landing_day
from crm_pipeline.ingestion.readers import list_landing_files, read_landing_file
from crm_pipeline.ingestion.result import UnparsableFile
from crm_pipeline.settings import Settings
from crm_pipeline_tests.ingestion.test_landing import encode, event, make_settings, write

D = dt.date(2026, 10, 2)
FORMATS = ("csv", "csv.gz", "jsonl", "json.gz", "parquet")


def read(settings: Settings, path: str, string_columns: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    table = read_landing_file(path, settings, string_columns)
    assert isinstance(table, pa.Table), table
    assert all(pa.types.is_string(t) for t in table.schema.types)
    return table.to_pydict()


@pytest.mark.parametrize("suffix", FORMATS)
def test_each_format_is_ingested(tmp_path: Path, suffix: str) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, f"part.{suffix}", [event("e1", "2026-10-02T10:00:00+02:00", customer_id="007"),
                                                    event("e2", "2026-10-02T11:00:00Z", event_type="nope")])
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["e1"]
    assert result.clean["customer_id"].tolist() == ["007"]  # text stays text: no inference to 7
    assert result.quarantine["reason"].tolist() == ["unknown_event_type"]
    assert (result.files_read, result.rows_in, result.reconciles) == (1, 2, True)


def test_csv_values_as_delivered(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = write(settings, "orders", D, "a.csv",
                 b'\xef\xbb\xbforder_id,gross_revenue,note\n007,"12.50","two\nlines"\n008,,NULL\n')
    assert read(settings, path) == {"order_id": ["007", "008"], "gross_revenue": ["12.50", ""],
                                    "note": ["two\nlines", "NULL"]}


def test_json_numbers_nested_values_and_mixed_types(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    regular = write(settings, "orders", D, "a.jsonl", b'{"order_id": "o1", "gross_revenue": 12.5, "n": 3}\n'
                                                      b'{"order_id": "o2", "gross_revenue": 7}\n')
    assert read(settings, regular, ("order_id",)) == {"order_id": ["o1", "o2"], "gross_revenue": ["12.5", "7"],
                                                      "n": ["3", None]}
    # an id sent as a number in one row and as text in another, and an object as properties
    mixed = write(settings, "events", D, "b.jsonl", b'{"event_id": 17, "properties": {"kind": "like"}}\n'
                                                    b'{"event_id": "e2", "properties": "{}", "flag": true}\n')
    assert read(settings, mixed, ("event_id", "properties")) == {
        "event_id": ["17", "e2"], "properties": ['{"kind": "like"}', "{}"], "flag": [None, "true"]}


def test_parquet_typed_columns_become_text(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    table = pa.table({
        "occurred_at": pa.array([dt.datetime(2026, 10, 2, 10, 0, 0, 250000)], pa.timestamp("us", tz="UTC")),
        "naive_at": pa.array([dt.datetime(2026, 10, 2, 10)], pa.timestamp("ms")),
        "paris_at": pa.array([dt.datetime(2026, 10, 2, 10)], pa.timestamp("s", tz="Europe/Paris")),
        "day": pa.array([dt.date(2026, 10, 2)], pa.date32()),
        "amount": pa.array([12.5]), "count": pa.array([3], pa.int32()),
        "kind": pa.array(["a"]).dictionary_encode(),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink)
    path = write(settings, "events", D, "a.parquet", sink.getvalue())
    assert read(settings, path) == {
        "occurred_at": ["2026-10-02T10:00:00.250000+0000"], "naive_at": ["2026-10-02T10:00:00.000+0000"],
        "paris_at": ["2026-10-02T12:00:00.000+0200"], "day": ["2026-10-02"], "amount": ["12.5"], "count": ["3"],
        "kind": ["a"],
    }


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("a.csv.gz", gzip.compress(b"event_id,occurred_at\n" + b"e1,2026-10-02T10:00:00Z\n" * 200)[:60], "EOFError"),
        ("a.json.gz", b"this is not gzip", "BadGzipFile"),
        ("a.parquet", b"PAR1 garbage without a footer", "ArrowInvalid"),
        ("a.jsonl", b'{"event_id": "e1"}\n{"event_id": \n', "ArrowInvalid"),
        ("a.csv", b"event_id,occurred_at\ne1,2026-10-02,extra,fields\n", "ArrowInvalid"),
        ("a.csv", b"\xff\xfe\x00garbage\x00\n\x81\x82,\x83\n", "UnicodeDecodeError"),
    ],
)
def test_unparsable_files_are_reported_not_raised(tmp_path: Path, name: str, content: bytes, error: str) -> None:
    settings = make_settings(tmp_path)
    path = write(settings, "events", D, name, content)
    got = read_landing_file(path, settings)
    assert isinstance(got, UnparsableFile)
    assert got.path == path
    assert got.error.startswith(error), got.error
    result = ingest_landing_day("events", D, settings)
    assert result.quarantine[["source_file", "reason"]].values.tolist() == [[path, "unparsable_file"]]
    assert result.quarantine["detail"].iloc[0] == got.error


def test_empty_file_is_an_empty_delivery(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.csv", b"")
    write(settings, "events", D, "b.jsonl.json.gz", gzip.compress(b""))
    result = ingest_landing_day("events", D, settings)
    assert (result.rows_in, result.files_read, result.unparsable_files) == (0, 2, [])


def test_listing_is_sorted_and_skips_non_data(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    for name in ("b.csv", "a.parquet", "C.JSONL", "_SUCCESS", ".a.csv.tmp", "notes.txt", "c.json.gz"):
        write(settings, "events", D, name, b"")
    folder = tmp_path / "landing/events/date=2026-10-02"
    assert list_landing_files("events", D, settings) == [str(folder / n) for n in
                                                          ("C.JSONL", "a.parquet", "b.csv", "c.json.gz")]
    assert list_landing_files("events", dt.date(2030, 1, 1), settings) == []  # missing folder: no files
    assert list_landing_files("clicks", D, settings) == []


@pytest.mark.s3
def test_s3_landing_root(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    try:
        server = request.getfixturevalue("s3_server")  # moto server from crm_pipeline_tests/conftest.py
    except pytest.FixtureLookupError:
        pytest.skip("no s3_server fixture in crm_pipeline_tests/conftest.py")

    root = server.url("landing-readers-test")
    settings = Settings(landing_root=root, warehouse_root=server.url("warehouse-readers-test"),
                        database_url="sqlite://", storage_options=server.storage_options)
    fs = fsspec.filesystem("s3", **server.storage_options)
    for offset, name in ((0, "a.csv.gz"), (0, "b.parquet"), (1, "a.jsonl")):
        day = D + dt.timedelta(days=offset)
        rows = [event(f"{name}-{offset}", "2026-10-02T23:00:00Z" if offset else "2026-10-02T10:00:00Z")]
        fs.pipe_file(f"{root}/events/date={day}/{name}", encode(name, rows))
    fs.pipe_file(f"{root}/events/date={D}/broken.parquet", b"not parquet")
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["a.csv.gz-0", "a.jsonl-1", "b.parquet-0"]
    assert result.clean["source_file"].tolist()[0] == f"{root}/events/date=2026-10-02/a.csv.gz"
    assert result.quarantine[["source_file", "reason"]].values.tolist() == [
        [f"{root}/events/date=2026-10-02/broken.parquet", "unparsable_file"]]
    # a file dropped late is seen by the next run (no stale listing cache)
    fs.pipe_file(f"{root}/events/date={D}/c.jsonl", encode("c.jsonl", [event("late", "2026-10-02T12:00:00Z")]))
    assert "late" in ingest_landing_day("events", D, settings).clean["event_id"].tolist()
    assert json.loads(json.dumps(result.counts()))["files_read"] == 3
