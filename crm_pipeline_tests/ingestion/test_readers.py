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

from crm_pipeline.ingestion import readers
from crm_pipeline.ingestion.landing import ingest_landing_day
from crm_pipeline.ingestion.readers import UnreadableFile, list_landing_folder, read_landing_batches
from crm_pipeline.settings import Settings
from crm_pipeline_tests.ingestion.test_landing import encode, event, make_settings, reasons, write

D = dt.date(2026, 10, 2)
FORMATS = ("csv", "csv.gz", "jsonl", "json.gz", "parquet")


def read(settings: Settings, path: str, string_columns: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    batches = list(read_landing_batches(path, settings, string_columns))
    table = pa.concat_tables(batches, promote_options="default")
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
        ("a.csv.gz", gzip.compress(b"event_id,occurred_at\n" + b"e1,2026-10-02T10:00:00Z\n" * 200)[:60],
         "a.csv.gz: EOFError: truncated gzip stream"),
        ("a.json.gz", b"this is not gzip", "a.json.gz: BadGzipFile: not a gzip file"),
        ("a.parquet", b"PAR1 garbage without a footer", "a.parquet: ArrowInvalid: not a Parquet file"),
        ("a.jsonl", b'{"event_id": "e1"}\n{"event_id": \n',
         "a.jsonl: JSONDecodeError: invalid JSON at line 2, column 14 (Expecting value)"),
        ("a.csv", b"event_id,occurred_at\ne1,2026-10-02,extra,fields\n",
         "a.csv: ArrowInvalid: a CSV row has 4 fields where the header has 2"),
        ("a.csv", b"\xff\xfe\x00garbage\x00\n\x81\x82,\x83\n",
         "a.csv: UnicodeDecodeError: invalid UTF-8 in the header line at byte 0 (invalid start byte)"),
    ],
)
def test_unparsable_files_are_reported_not_raised(tmp_path: Path, name: str, content: bytes, error: str) -> None:
    settings = make_settings(tmp_path)
    path = write(settings, "events", D, name, content)
    with pytest.raises(UnreadableFile) as raised:
        list(read_landing_batches(path, settings))
    assert raised.value.summary.startswith(error), raised.value.summary
    result = ingest_landing_day("events", D, settings)
    assert result.quarantine[["source_file", "reason"]].values.tolist() == [[path, "unparsable_file"]]
    assert [(f.path, f.error) for f in result.unparsable_files] == [(path, raised.value.summary)]
    # the quarantine keeps the parser's own message (its exception type first)
    assert result.quarantine["detail"].iloc[0] == raised.value.detail
    assert raised.value.detail.startswith(error.split(": ")[1]), raised.value.detail


def test_empty_file_is_an_empty_delivery(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.csv", b"")
    write(settings, "events", D, "b.jsonl.json.gz", gzip.compress(b""))
    result = ingest_landing_day("events", D, settings)
    assert (result.rows_in, result.files_read, result.unparsable_files) == (0, 2, [])


def test_blank_lines_before_the_content(tmp_path: Path) -> None:
    """A BOM and blank lines before the header or the first object are skipped; line numbers still count them;
    a file of blanks only is an empty delivery."""
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.csv", b"\xef\xbb\xbf\n\r\n  \nevent_id,occurred_at,event_type,anonymous_id\n"
                                          b"e1,2026-10-02T10:00:00Z,login,a1\n")
    write(settings, "events", D, "b.csv.gz", gzip.compress(b" \n\t\r\n" * 1000))
    broken = write(settings, "events", D, "c.jsonl", b"\n \n" + b'{"event_id": "e2", }\n')
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["e1"]
    assert [(f.path, f.error) for f in result.unparsable_files] == [
        (broken, "c.jsonl: JSONDecodeError: invalid JSON at line 3, column 20 (Expecting property name enclosed in "
                 "double quotes)")]
    assert (result.rows_in, result.files_read) == (1, 2)


def test_listing_is_sorted_and_skips_non_data(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    for name in ("b.csv", "a.parquet", "C.JSONL", "_SUCCESS", ".a.csv.tmp", "notes.txt", "c.json.gz"):
        write(settings, "events", D, name, b"")
    folder = tmp_path / "landing/events/date=2026-10-02"
    assert list(list_landing_folder("events", D, settings).files) == [
        str(folder / n) for n in ("C.JSONL", "a.parquet", "b.csv", "c.json.gz")]
    assert list_landing_folder("events", dt.date(2030, 1, 1), settings).files == {}  # missing folder: no files
    assert list_landing_folder("clicks", D, settings).files == {}


@pytest.mark.s3
def test_s3_landing_root(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    try:
        server = request.getfixturevalue("s3_server")  # moto server from crm_pipeline_tests/conftest.py
    except pytest.FixtureLookupError:
        pytest.skip("no s3_server fixture in crm_pipeline_tests/conftest.py")

    root = server.url("landing-readers-test")
    settings = Settings(landing_root=root, warehouse_root=server.url("warehouse-readers-test"),
                        database_url="sqlite://", storage_options=server.storage_options, max_file_bytes=1 << 20)
    fs = fsspec.filesystem("s3", **server.storage_options)
    for offset, name in ((0, "a.csv.gz"), (0, "b.parquet"), (1, "a.jsonl")):
        day = D + dt.timedelta(days=offset)
        rows = [event(f"{name}-{offset}", "2026-10-02T23:00:00Z" if offset else "2026-10-02T10:00:00Z")]
        fs.pipe_file(f"{root}/events/date={day}/{name}", encode(name, rows))
    fs.pipe_file(f"{root}/events/date={D}/broken.parquet", b"not parquet")
    fs.pipe_file(f"{root}/events/date={D}/c-bomb.csv.gz", _bomb(200_000))  # streamed from S3, stopped at 1 MiB
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["a.csv.gz-0", "a.jsonl-1", "b.parquet-0"]
    assert result.clean["source_file"].tolist()[0] == f"{root}/events/date=2026-10-02/a.csv.gz"
    assert result.quarantine[["source_file", "reason"]].values.tolist() == [
        [f"{root}/events/date=2026-10-02/broken.parquet", "unparsable_file"],
        [f"{root}/events/date=2026-10-02/c-bomb.csv.gz", "unparsable_file"]]
    assert result.unparsable_files[1].error == (
        "c-bomb.csv.gz: more than 1,048,576 bytes once decompressed (CRM_MAX_FILE_BYTES): not read to its end")
    # a file dropped late is seen by the next run (no stale listing cache)
    fs.pipe_file(f"{root}/events/date={D}/c.jsonl", encode("c.jsonl", [event("late", "2026-10-02T12:00:00Z")]))
    assert "late" in ingest_landing_day("events", D, settings).clean["event_id"].tolist()
    assert json.loads(json.dumps(result.counts()))["files_read"] == 3


# ---------------------------------------------------------------------------------------------------------------
# whole files that cannot be read: invalid UTF-8, repeated columns, content-free errors


def _with_bad_row(name: str, column: str, bad: bytes) -> bytes:
    """Three events in the format of `name` whose row 1 has `bad` (raw bytes) in `column`."""
    rows = [event("e0", "2026-10-02T10:00:00Z"), event("e1", "2026-10-02T11:00:00Z", **{column: "@@BAD@@"}),
            event("e2", "2026-10-02T12:00:00Z")]
    if name.endswith(".parquet"):
        values = [(r.get(column) or "").encode().replace(b"@@BAD@@", bad) or None for r in rows]
        table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != column} for r in rows])
        # a binary column, or a string column holding bytes that are not UTF-8 (Parquet writers do not check)
        array = pa.array(values, pa.binary())
        table = table.append_column(column, array if "binary" in name else array.view(pa.string()))
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    plain = encode(name.removesuffix(".gz"), rows).replace(b"@@BAD@@", bad)
    return gzip.compress(plain, mtime=0) if name.endswith(".gz") else plain


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("bad.jsonl", "bad.jsonl: invalid UTF-8 text in column 'email', row 1"),
        ("bad.json.gz", "bad.json.gz: invalid UTF-8 text in column 'email', row 1"),
        ("bad.parquet", "bad.parquet: invalid UTF-8 text in column 'email', row 1"),
        ("bad-binary.parquet", "bad-binary.parquet: invalid UTF-8 text in column 'email', row 1"),
        # Arrow's CSV reader checks the text itself and names the column only
        ("bad.csv", "bad.csv: ArrowInvalid: invalid UTF-8 text in column 'email'"),
        ("bad.csv.gz", "bad.csv.gz: ArrowInvalid: invalid UTF-8 text in column 'email'"),
    ],
)
def test_invalid_utf8_quarantines_the_whole_file(tmp_path: Path, name: str, error: str) -> None:
    """Regression: invalid UTF-8 in a JSON-lines file failed the whole day (ArrowInvalid in clean_text, no file
    named). Now the file is one `unparsable_file` entry saying where, and the day's other files are ingested."""
    settings = make_settings(tmp_path)
    write(settings, "events", D, "good.csv", [event("g1", "2026-10-02T10:00:00Z")])
    path = write(settings, "events", D, name, _with_bad_row(name, "email", b"bob\xff\xfe@example.com"))
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["g1"]
    assert result.quarantine[["source_file", "reason"]].values.tolist() == [[path, "unparsable_file"]]
    assert [(f.path, f.error) for f in result.unparsable_files] == [(path, error)]
    assert (result.rows_in, result.files_read, result.reconciles) == (1, 1, True)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("a.csv", b"event_id,email,occurred_at,email\ne1,a@x.com,2026-10-02T10:00:00Z,b@x.com\n",
         "a.csv: column 'email' is repeated: which of its values counts is ambiguous"),
        ("a.jsonl", b'{"event_id": "e1", "email": "a@x.com", "email": "b@x.com"}\n',
         "a.jsonl: column 'email' is repeated at line 1: which of its values counts is ambiguous"),
        # an irregular file (an id sent as a number) takes the generic parser, which checks the keys too
        ("b.jsonl", b'{"event_id": 1}\n\n{"event_id": "e1", "email": "a@x.com", "email": "b@x.com"}\n',
         "b.jsonl: column 'email' is repeated at line 3: which of its values counts is ambiguous"),
        ("a.parquet", None, "a.parquet: column 'email' is repeated: which of its values counts is ambiguous"),
    ],
)
def test_a_repeated_column_makes_the_file_unparsable(tmp_path: Path, name: str, content: bytes | None,
                                                      error: str) -> None:
    """Regression: a header `event_id,email,email` (or a repeated JSON key, or two Parquet columns of one name)
    silently kept the last value. Such a file is ambiguous: quarantined, naming the column."""
    settings = make_settings(tmp_path)
    if content is None:
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_arrays([pa.array(["e1"]), pa.array(["a@x.com"]), pa.array(["b@x.com"])],
                                            names=["event_id", "email", "email"]), sink)
        content = sink.getvalue()
    path = write(settings, "events", D, name, content)
    result = ingest_landing_day("events", D, settings)
    assert [(f.path, f.error) for f in result.unparsable_files] == [(path, error)]
    assert result.quarantine["reason"].tolist() == ["unparsable_file"] and result.rows_in == 0


def test_errors_outside_the_quarantine_never_quote_a_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: a parser's message quotes the offending row (here an email and a phone number), and it went
    into the check metadata and the logs. Outside the quarantine only a content-free summary is shown; the
    quarantine `detail` keeps the full message (the restricted area)."""
    settings = make_settings(tmp_path)
    secrets = ("jane.doe@example.com", "+15551234567")
    write(settings, "events", D, "a.csv", b"event_id,occurred_at,email\n"
                                          b"e1,2026-10-02T10:00:00Z,jane.doe@example.com,+15551234567\n")
    write(settings, "events", D, "b.jsonl", b'{"event_id": "e2", "email": "jane.doe@example.com", '
                                            b'"phone": "+15551234567"\n')
    caplog.set_level("DEBUG")
    result = ingest_landing_day("events", D, settings)
    assert [f.error for f in result.unparsable_files] == [
        "a.csv: ArrowInvalid: a CSV row has 4 fields where the header has 3",
        "b.jsonl: JSONDecodeError: invalid JSON at line 1, column 76 (Expecting ',' delimiter)",
    ]
    assert all(secret in result.quarantine["detail"].iloc[0] for secret in secrets)
    assert not any(secret in record.getMessage() for record in caplog.records for secret in secrets)
    assert len(caplog.records) == 2  # one warning per file


# ---------------------------------------------------------------------------------------------------------------
# streaming: batches, decompression bombs, storage errors


def test_files_are_read_in_batches_with_true_row_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With blocks of 512 bytes (a few rows each) every format gives the same rows and row numbers as one read;
    a JSON file that turns irregular after some blocks continues with the generic parser without repeating a
    row."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 512)
    monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 7)
    settings = make_settings(tmp_path)
    for name in ("a.csv", "b.jsonl", "c.parquet", "d.json.gz"):
        rows = [event(f"{name[0]}{i:02d}", "2026-10-02T10:00:00Z") for i in range(40)]
        rows[33]["occurred_at"] = "not a time"  # in a late batch: its row number must count the earlier ones
        if name == "b.jsonl":
            rows[25]["event_id"] = 125  # a number among strings: Arrow stops after some blocks
            # blank lines are no rows, for Arrow as for the generic parser that continues after it
            lines = [json.dumps(r).encode() + (b"\n\n  \n" if i % 9 == 0 else b"\n") for i, r in enumerate(rows)]
            write(settings, "events", D, name, b"".join(lines))
            continue
        write(settings, "events", D, name, rows)
    result = ingest_landing_day("events", D, settings)
    assert reasons(result) == [(n, 33, "unparsable_timestamp") for n in ("a.csv", "b.jsonl", "c.parquet",
                                                                         "d.json.gz")]
    assert result.rows_in == 160 and result.rows_clean == 156 and result.reconciles
    assert sorted(result.clean["event_id"])[:3] == ["125", "a00", "a01"]
    assert len(result.clean) == result.clean["event_id"].nunique()


def _bomb(rows: int) -> bytes:
    """A gzip of `rows` valid CSV rows of D (about 50 bytes each) whose stream is cut before its end."""
    text = b"event_id,occurred_at,event_type,anonymous_id\n" + b"e1,2026-10-02T10:00:00Z,login,a1\n" * rows
    return gzip.compress(text, mtime=0)[:-8]  # no trailer: reading to the end would fail with EOFError


def test_a_decompression_bomb_is_stopped_at_the_limit(tmp_path: Path) -> None:
    """A file whose decompressed size exceeds CRM_MAX_FILE_BYTES is quarantined when the limit is passed: the
    truncated end of this gzip is never reached (reading to it would report EOFError instead)."""
    settings = make_settings(tmp_path, max_file_bytes=1 << 20)
    write(settings, "events", D, "a.csv", [event("g1", "2026-10-02T10:00:00Z")])
    bomb = write(settings, "events", D, "bomb.csv.gz", _bomb(200_000))  # ~7 MB once decompressed
    small = write(settings, "events", D, "small.csv.gz", _bomb(10))
    result = ingest_landing_day("events", D, settings)
    assert [(f.path, f.error) for f in result.unparsable_files] == [
        (bomb, "bomb.csv.gz: more than 1,048,576 bytes once decompressed (CRM_MAX_FILE_BYTES): not read to its end"),
        (small, "small.csv.gz: EOFError: truncated gzip stream (it ends before its end-of-stream marker)"),
    ]
    assert result.clean["event_id"].tolist() == ["g1"] and result.rows_in == 1


def test_a_parquet_file_that_decodes_beyond_the_limit_is_stopped(tmp_path: Path) -> None:
    """Dictionary and run-length encodings keep a Parquet file tiny however large its decoded text: the decoded
    bytes count against the limit, batch by batch."""
    settings = make_settings(tmp_path, max_file_bytes=1 << 20)
    sink = io.BytesIO()
    pq.write_table(pa.table({"event_id": pa.array(["e" * 200] * 100_000).dictionary_encode()}), sink)
    assert len(sink.getvalue()) < 10_000
    path = write(settings, "events", D, "a.parquet", sink.getvalue())
    result = ingest_landing_day("events", D, settings)
    assert [(f.path, f.error) for f in result.unparsable_files] == [
        (path, "a.parquet: more than 1,048,576 bytes of text once decoded (CRM_MAX_FILE_BYTES): not read to its end")]


def test_a_storage_error_is_raised_not_quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing read of the storage (network, permissions) is not the file's fault: it fails the run instead of
    quarantining a good file."""
    settings = make_settings(tmp_path)
    path = write(settings, "events", D, "a.csv.gz", encode("a.csv.gz", [event("e1", "2026-10-02T10:00:00Z")]))

    class Failing(io.RawIOBase):
        def readinto(self, buffer: Any) -> int:
            raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(readers, "_open", lambda fs, p: readers._Storage(Failing()))
    with pytest.raises(ConnectionResetError):
        list(read_landing_batches(path, settings))


# ---------------------------------------------------------------------------------------------------------------
# folder entries that are not read


def test_skipped_entries_are_reported_with_their_reason(tmp_path: Path) -> None:
    """Regression: files with another suffix and markers were skipped without a trace. They are still not read,
    but each is reported; suffixes compare case-insensitively (EVENTS.CSV is read, orders.CSV.bz2 is not)."""
    settings = make_settings(tmp_path)
    write(settings, "events", D, "EVENTS.CSV", encode("x.csv", [event("e1", "2026-10-02T10:00:00Z")]))
    for name in ("events.json", "orders.CSV.bz2", "_SUCCESS", ".part-1.csv.tmp"):
        write(settings, "events", D, name, b"{}")
    (tmp_path / "landing/events/date=2026-10-02/retry").mkdir()
    write(settings, "events", D + dt.timedelta(days=1), "other-day.json", b"{}")  # its own partition reports it
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["e1"]
    unsupported = "unsupported suffix (read: .parquet, .csv, .jsonl, .json.gz, .csv.gz)"
    marker = "hidden or marker file (name starts with '.' or '_')"
    assert [(Path(f.path).name, f.reason, f.expected) for f in result.skipped_files] == [
        (".part-1.csv.tmp", marker, True),
        ("_SUCCESS", marker, True),
        ("events.json", unsupported, False),
        ("orders.CSV.bz2", unsupported, False),
        ("retry", "folder (files must lie directly in the day folder)", False),
    ]


def test_symbolic_links_are_not_followed(tmp_path: Path) -> None:
    """Regression: a symbolic link in the landing zone was read, wherever it pointed. It is reported as skipped
    and never read, even when named directly (a file replaced by a link after the listing)."""
    settings = make_settings(tmp_path)
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(encode("x.csv", [event("secret", "2026-10-02T10:00:00Z")]))
    folder = tmp_path / "landing/events/date=2026-10-02"
    folder.mkdir(parents=True)
    (folder / "link.csv").symlink_to(outside)
    result = ingest_landing_day("events", D, settings)
    assert result.rows_in == 0 and result.files_read == 0
    assert [(f.path, f.reason) for f in result.skipped_files] == [
        (str(folder / "link.csv"), "symbolic link (not followed)")]
    with pytest.raises(UnreadableFile, match=r"^link\.csv: a symbolic link: not followed$"):
        list(read_landing_batches(str(folder / "link.csv"), settings))


def test_a_file_name_cannot_forge_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: a file name with a line break wrote a second, forged line into the logs. Such a file is not
    read (reported as skipped) and its name is shown escaped wherever it is logged."""
    settings = make_settings(tmp_path)
    forged = "x.txt\nERROR crm_pipeline: all checks passed\u2028.csv"
    write(settings, "events", D, forged, [event("e1", "2026-10-02T10:00:00Z")])
    write(settings, "events", D, "notes\r\nWARNING fake.txt", b"")
    caplog.set_level("DEBUG")
    result = ingest_landing_day("events", D, settings)
    messages = [record.getMessage() for record in caplog.records]
    assert all("\n" not in m and "\r" not in m and "\u2028" not in m for m in messages), messages
    assert len(messages) == 2
    assert any("x.txt\\nERROR crm_pipeline: all checks passed\\u2028.csv" in m for m in messages), messages
    assert result.rows_in == 0
    assert sorted(f.reason for f in result.skipped_files) == ["file name holds control characters"] * 2
