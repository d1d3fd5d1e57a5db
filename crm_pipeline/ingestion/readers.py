"""Reading landing-zone files as text, on local disk or any fsspec URL.

Every value is handed on *as delivered*, as text: validation decides what a value means and quarantine must
be able to show the original. So CSV columns are read as strings (no type inference that would turn `007`
into `7`), JSON numbers become their decimal text, and Parquet timestamps become ISO-8601 strings with their
offset. A file that cannot be parsed at all is reported as an `UnparsableFile`, never raised and never
skipped silently.
"""

import csv
import datetime as dt
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from crm_pipeline.ingestion.result import UnparsableFile
from crm_pipeline.settings import Settings
from crm_pipeline.storage.fs import filesystem, join

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".jsonl", ".json.gz", ".csv.gz")

# pandas dtype of every text column handed on: Arrow-backed, so string work stays vectorised and cheap
TEXT_DTYPE = pd.StringDtype("pyarrow")


def day_folder(settings: Settings, source: str, day: dt.date) -> str:
    """`<landing_root>/<source>/date=YYYY-MM-DD` (a local path or a URL)."""
    return join(settings.landing_root, source, f"date={day.isoformat()}")


def list_landing_files(source: str, day: dt.date, settings: Settings) -> list[str]:
    """The files of one landing folder with a supported suffix, sorted by name; a missing folder has none.

    Hidden and marker files (`.name`, `_SUCCESS`) are an exporter's work in progress or bookkeeping, not
    data, and other suffixes are not part of the contract: both are left out (the latter with a warning).
    """
    folder = day_folder(settings, source, day)
    fs, path = filesystem(folder, settings.storage_options)
    # object stores cache listings per file-system instance; a late file must be seen on the next run
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        if entry.get("type") == "directory":
            continue
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if name.startswith((".", "_")):
            continue
        if not name.lower().endswith(SUPPORTED_SUFFIXES):
            log.warning("ignoring landing file with an unsupported suffix: %s", join(folder, name))
            continue
        names.append(name)
    return [join(folder, name) for name in sorted(names)]


def iter_landing_files(
    source: str, day: dt.date, settings: Settings, string_columns: Sequence[str] = ()
) -> Iterator[tuple[str, pa.Table | UnparsableFile]]:
    """(path, all-text table or UnparsableFile) for each file of one landing folder, in name order.

    `string_columns` are the contract's text columns: JSON readers are told they are strings so that an id
    such as `"007"` is never inferred into a number. One file at a time, so the caller can drop the rows of
    other partitions before the next file is read.
    """
    for path in list_landing_files(source, day, settings):
        yield path, read_landing_file(path, settings, string_columns)


def read_landing_file(path: str, settings: Settings, string_columns: Sequence[str] = ()) -> pa.Table | UnparsableFile:
    """One landing file as an Arrow table whose columns are all strings, or why it could not be parsed."""
    fs, fs_path = filesystem(path, settings.storage_options)
    data = fs.cat_file(fs_path)  # I/O errors (permissions, network) are not "unparsable": they propagate
    try:
        return _parse(path, data, string_columns)
    except (pa.ArrowException, ValueError, EOFError, OSError, zlib.error, UnicodeDecodeError, csv.Error,
            json.JSONDecodeError, TypeError) as exc:
        return UnparsableFile(path=path, error=f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------------------------
# formats


def _parse(path: str, data: bytes, string_columns: Sequence[str]) -> pa.Table:
    name = path.lower()
    if name.endswith(".parquet"):
        return as_text_table(pq.read_table(pa.BufferReader(data)))
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        return pa.table({})  # an empty file is an empty delivery, not a broken one
    if name.endswith((".csv", ".csv.gz")):
        return _read_csv(data)
    return _read_json(data, string_columns)


def _read_csv(data: bytes) -> pa.Table:
    """Every column as a string; empty fields stay empty text (they are "missing" to the validation)."""
    first_line = data.split(b"\n", 1)[0].decode("utf-8")
    header = next(csv.reader(io.StringIO(first_line)), [])
    if not header:
        raise ValueError("CSV file without a header line")
    options = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    # exports quote JSON properties; quoted line breaks inside a field must not split the row
    parse = pa_csv.ParseOptions(newlines_in_values=True)
    return as_text_table(pa_csv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=options))


def _read_json(data: bytes, string_columns: Sequence[str]) -> pa.Table:
    """JSON lines (or one JSON array of objects); numbers become their text, nested values their JSON."""
    if data.lstrip()[:1] == b"[":
        return _read_json_fallback(data, lines=False)
    schema = pa.schema([pa.field(c, pa.string()) for c in string_columns])
    try:
        table = pa_json.read_json(
            pa.BufferReader(data),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
    except pa.ArrowInvalid as exc:
        # valid JSON whose types vary between rows (an id sent as a number, an object as properties): Arrow
        # wants one type per column, so the rare irregular file takes the slower generic parser; when that
        # fails too, the file is not JSON lines and Arrow's error (with its row) is the one to report
        try:
            return _read_json_fallback(data, lines=True)
        except ValueError:
            raise exc from None
    return as_text_table(table)


def _json_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_json_fallback(data: bytes, *, lines: bool) -> pa.Table:
    frame = pd.read_json(io.BytesIO(data), lines=lines, dtype=False, precise_float=True)
    if not isinstance(frame, pd.DataFrame):
        raise ValueError("JSON file does not hold objects")
    # per value, but only for files Arrow could not read in one go (irregular exports, never the bulk path)
    columns = {str(c): pa.array([_json_text(v) for v in frame[c].tolist()], type=pa.string()) for c in frame.columns}
    return pa.table(columns) if columns else pa.table({})


# ---------------------------------------------------------------------------------------------------------------
# any Arrow column -> text


def _column_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    typ = column.type
    if pa.types.is_dictionary(typ):
        return _column_as_text(pc.cast(column, typ.value_type))
    if pa.types.is_string(typ):
        return column
    if pa.types.is_timestamp(typ):
        aware = column if typ.tz is not None else pc.cast(column, pa.timestamp(typ.unit, tz="UTC"))
        # ISO 8601 with the stored instant's offset; naive Parquet timestamps are UTC (sources.md)
        return pc.strftime(aware, format="%Y-%m-%dT%H:%M:%S%z")
    if pa.types.is_nested(typ):
        values = [_json_text(v) for v in column.to_pylist()]  # nested Parquet columns are rare extras
        return pa.chunked_array([pa.array(values, type=pa.string())])
    return pc.cast(column, pa.string())


def as_text_table(table: pa.Table) -> pa.Table:
    """The same table with every column converted to `string` (values as delivered, as text)."""
    return pa.table({name: _column_as_text(table.column(i)) for i, name in enumerate(table.column_names)})


def text_frame(table: pa.Table) -> pd.DataFrame:
    """An all-text Arrow table as a pandas frame of Arrow-backed strings (no copy of the string data)."""
    return table.to_pandas(types_mapper=lambda t: TEXT_DTYPE if pa.types.is_string(t) else None)
