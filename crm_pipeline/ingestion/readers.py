"""Reading landing-zone files as text, on local disk or any fsspec URL, in record batches.

Every value is handed on *as delivered*, as text: validation decides what a value means and quarantine must
be able to show the original. So CSV columns are read as strings (no type inference that would turn `007`
into `7`), JSON numbers become their decimal text, and Parquet timestamps become ISO-8601 strings with their
offset.

Files are streamed: CSV and JSON lines are parsed block by block (gzip decompressed as a stream), Parquet row
group by row group, so a caller that keeps only some rows of each batch holds those rows plus one batch, never
a whole file. A file that cannot be read as a whole raises `UnreadableFile` (never skipped silently): invalid
UTF-8, a parse error, a repeated column name, or more than `Settings.max_file_bytes` of decompressed data (a
decompression bomb is stopped there, never read to its end). The error carries a content-free summary for
metadata and logs, and the parser's full message (which may quote a row) for the quarantine only.

Folder entries that are not read (markers, hidden files, other suffixes, symbolic links, sub-folders, names
with control characters) are listed with their reason, so a user sees a file that was never read.
"""

import codecs
import csv
import datetime as dt
import gzip
import io
import json
import os
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from crm_pipeline.ingestion.result import SkippedFile
from crm_pipeline.settings import Settings
from crm_pipeline.storage.fs import filesystem, is_local, join

# Suffixes compare case-insensitively (`EVENTS.CSV` is read): exports from some systems upper-case them.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".jsonl", ".json.gz", ".csv.gz")

# pandas dtype of every text column handed on: Arrow-backed, so string work stays vectorised and cheap
TEXT_DTYPE = pd.StringDtype("pyarrow")

# Text parsed per batch (CSV, JSON lines); also the longest row one can hold (Arrow's default). Arrow's
# streaming readers parse a few blocks ahead, so reading costs a few tens of MB beyond the rows a caller keeps;
# larger blocks buy little speed for much more memory (8 MiB: ~200 MB).
BLOCK_BYTES = 1 << 20
PARQUET_BATCH_ROWS = 65_536
# JSON lines the generic (slow) parser turns into one batch
FALLBACK_BATCH_LINES = 20_000

_BOM = codecs.BOM_UTF8
# characters that would let a file name forge or hide log lines: controls (\n, \r, ESC), format characters
# (right-to-left override), line and paragraph separators
_UNPRINTABLE = frozenset(("Cc", "Cf", "Zl", "Zp"))


class UnreadableFile(Exception):
    """A landing file that cannot be read as a whole.

    `summary` is content-free (what went wrong and where, never a value of the file); `detail` is the parser's
    full message and may quote a row: it belongs in the quarantine only.
    """

    def __init__(self, summary: str, detail: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail or summary


class _StorageError(Exception):
    """An I/O error of the storage (permissions, network) while streaming: not the file's fault, so it must not be
    mistaken for an unparsable file. Carries the original error, which is raised again."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def shown(name: str) -> str:
    """`name` with control, format and line-separator characters escaped, so that a file or column name can never
    start a new log line or hide part of one (`a\\nb.csv` is shown as `a\\x0ab.csv`)."""
    if not any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        return name
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNPRINTABLE else c
                   for c in name)


# ---------------------------------------------------------------------------------------------------------------
# listing


def day_folder(settings: Settings, source: str, day: dt.date) -> str:
    """`<landing_root>/<source>/date=YYYY-MM-DD` (a local path or a URL)."""
    return join(settings.landing_root, source, f"date={day.isoformat()}")


@dataclass(frozen=True)
class LandingFolder:
    """The files of one landing folder that are read ({path: listing info}, in name order) and the entries that
    are not, with their reason."""

    files: dict[str, dict[str, Any]]
    skipped: list[SkippedFile]


def _skip_reason(entry: dict[str, Any], name: str) -> tuple[str, bool] | None:
    """Why a folder entry is not read (and whether that is an exporter's normal bookkeeping), or None."""
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        return "file name holds control characters", False
    if entry.get("islink"):
        # a link could point anywhere on the machine: the landing zone is read only through its own files
        return "symbolic link (not followed)", False
    if entry.get("type") == "directory":
        return "folder (files must lie directly in the day folder)", False
    if entry.get("type") != "file":
        return "not a regular file", False
    if name.startswith((".", "_")):
        return "hidden or marker file (name starts with '.' or '_')", True
    if not name.lower().endswith(SUPPORTED_SUFFIXES):
        return f"unsupported suffix (read: {', '.join(SUPPORTED_SUFFIXES)})", False
    return None


def list_landing_folder(source: str, day: dt.date, settings: Settings) -> LandingFolder:
    """The entries of `<landing_root>/<source>/date=<day>`: files to read in name order, and the skipped ones.

    Read: regular files with a supported suffix (any case). Skipped, and reported: hidden and marker files
    (`.name`, `_SUCCESS`: an exporter's work in progress or bookkeeping), other suffixes, symbolic links (never
    followed), sub-folders, other special files, names with control characters. A missing folder is empty.
    """
    folder = day_folder(settings, source, day)
    fs, path = filesystem(folder, settings.storage_options)
    # object stores cache listings per file-system instance; a late file must be seen on the next run
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return LandingFolder(files={}, skipped=[])
    files: dict[str, dict[str, Any]] = {}
    skipped: list[SkippedFile] = []
    for entry in sorted(entries, key=lambda e: str(e["name"])):
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        reason = _skip_reason(entry, name)
        if reason is None:
            files[join(folder, name)] = entry
        else:
            skipped.append(SkippedFile(path=join(folder, name), reason=reason[0], expected=reason[1]))
    return LandingFolder(files=dict(sorted(files.items())), skipped=skipped)


# ---------------------------------------------------------------------------------------------------------------
# reading


def read_landing_batches(path: str, settings: Settings, string_columns: Sequence[str] = ()) -> Iterator[pa.Table]:
    """The rows of one landing file as a stream of tables whose columns are all strings.

    `string_columns` are the contract's text columns: JSON readers are told they are strings so that an id such
    as `"007"` is never inferred into a number. Raises `UnreadableFile` when the file cannot be read as a whole
    (possibly after some batches were handed out: the caller must then drop them); storage I/O errors propagate.
    """
    fs, fs_path = filesystem(path, settings.storage_options)
    name = path.lower()
    limit = settings.max_file_bytes
    base = shown(path.rsplit("/", 1)[-1])
    progress = _Progress()

    def open_text() -> "_TextStream":
        return _TextStream(_open(fs, fs_path), limit, gzipped=name.endswith(".gz"))

    try:
        if name.endswith(".parquet"):
            batches = _parquet_batches(_open(fs, fs_path), limit, progress)
        elif name.endswith((".csv", ".csv.gz")):
            batches = _csv_batches(open_text(), progress)
        else:
            batches = _json_batches(open_text, string_columns, progress)
        for table in batches:
            yield table
            progress.rows += table.num_rows
    except _StorageError as exc:
        raise exc.error from None
    except UnreadableFile as exc:
        raise UnreadableFile(f"{base}: {exc.summary}", exc.detail) from None
    except _PARSER_ERRORS as exc:
        raise UnreadableFile(f"{base}: {_summary(exc, progress)}", f"{type(exc).__name__}: {exc}") from None


# Errors that mean "this file is not what its suffix says" (never storage errors: those are _StorageError).
_PARSER_ERRORS = (pa.ArrowException, ValueError, EOFError, gzip.BadGzipFile, zlib.error, csv.Error, TypeError)


@dataclass
class _Progress:
    rows: int = 0  # rows handed out before the current batch
    header: tuple[str, ...] = ()  # CSV header, to name a column Arrow only numbers


def _open(fs: fsspec.AbstractFileSystem, path: str) -> "_Storage":
    if is_local(fs):
        # O_NOFOLLOW: a file replaced by a symbolic link after the listing is still not followed
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if os.path.islink(path):
                raise UnreadableFile("a symbolic link: not followed") from None
            raise _StorageError(exc) from None
        return _Storage(os.fdopen(fd, "rb"))
    try:
        return _Storage(fs.open(path, "rb"))
    except OSError as exc:
        raise _StorageError(exc) from None


class _Storage(io.RawIOBase):
    """The raw bytes of a file; an OSError of the storage becomes a _StorageError, so that a decompressor's or
    parser's own OSErrors (a bad gzip header) are the only ones left to mean "unparsable"."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._file.readinto(buffer)
        except OSError as exc:
            raise _StorageError(exc) from None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._file.seek(offset, whence)
        except OSError as exc:
            raise _StorageError(exc) from None

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


class _TextStream(io.RawIOBase):
    """The decompressed bytes of a text file, counted: more than `limit` bytes raise `UnreadableFile` (a
    decompression bomb or an absurd file is stopped there). A leading UTF-8 BOM is dropped."""

    def __init__(self, storage: "_Storage", limit: int, *, gzipped: bool) -> None:
        self._storage = storage
        self._source: Any = gzip.GzipFile(fileobj=storage, mode="rb") if gzipped else storage
        self._limit = limit
        self._read = 0
        self._pending = b""  # bytes looked at by `start` or `first_line`, served again to the parser
        self._eof = False
        self.blank_lines = 0

    def readable(self) -> bool:
        return True

    def _more(self, size: int) -> bytes:
        # never more than one byte beyond the limit is decompressed, whatever size the parser asks for
        data = self._source.read(min(size, self._limit + 1 - self._read))
        self._read += len(data)
        if self._read > self._limit:
            raise UnreadableFile(f"more than {self._limit:,} bytes once decompressed (CRM_MAX_FILE_BYTES): "
                                 "not read to its end")
        if not data:
            self._eof = True
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        data = self._more(len(view))
        view[: len(data)] = data
        return len(data)

    def start(self) -> bytes:
        """The first byte of content (b"" for a blank file), after dropping a BOM and any leading blank lines,
        which are counted in `blank_lines` (so line numbers stay true). Nothing else is consumed."""
        while not self._eof and len(self._pending) < len(_BOM):
            self._pending += self._more(1 << 16)
        if self._pending.startswith(_BOM):
            self._pending = self._pending[len(_BOM):]
        while True:
            content = self._pending.lstrip()
            blank = self._pending[: len(self._pending) - len(content)]
            cut = blank.rfind(b"\n") + 1  # whole blank lines go; the blanks that start the first line stay
            self.blank_lines += blank.count(b"\n")
            self._pending = self._pending[cut:]
            if content or self._eof:
                return content[:1]
            if len(self._pending) > BLOCK_BYTES:
                raise UnreadableFile(f"a line longer than {BLOCK_BYTES:,} bytes")
            self._pending += self._more(1 << 16)  # blank lines are dropped as they come: no blank bomb is kept

    def first_line(self) -> bytes:
        """The first line (without its end), read ahead and kept for the parser."""
        while b"\n" not in self._pending and not self._eof:
            if len(self._pending) > BLOCK_BYTES:
                raise UnreadableFile(f"no line end within the first {BLOCK_BYTES:,} bytes (no header line)")
            self._pending += self._more(1 << 16)
        return self._pending.split(b"\n", 1)[0].rstrip(b"\r")

    def close(self) -> None:
        self._source.close()
        self._storage.close()  # a GzipFile does not close the file it was given
        super().close()


# ---------------------------------------------------------------------------------------------------------------
# formats


def _csv_batches(stream: _TextStream, progress: _Progress) -> Iterator[pa.Table]:
    """Every column as a string; empty fields stay empty text (they are "missing" to the validation)."""
    with stream:
        if not stream.start():
            return  # an empty file is an empty delivery, not a broken one
        line = stream.first_line()
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"UnicodeDecodeError: invalid UTF-8 in the header line at byte {exc.start} "
                                 f"({exc.reason})", f"UnicodeDecodeError: {exc}") from None
        header = next(csv.reader(io.StringIO(text)), [])
        if not header:
            raise UnreadableFile("CSV file without a header line")
        _no_repeated_columns(header)
        progress.header = tuple(header)
        options = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        # exports quote JSON properties; quoted line breaks inside a field must not split the row
        parse = pa_csv.ParseOptions(newlines_in_values=True)
        reader = pa_csv.open_csv(stream, read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                                 parse_options=parse, convert_options=options)
        for batch in reader:
            # Arrow's CSV reader has already checked that the text is UTF-8
            yield pa.Table.from_batches([batch])


def _json_batches(open_text: Callable[[], _TextStream], string_columns: Sequence[str],
                  progress: _Progress) -> Iterator[pa.Table]:
    """JSON lines (or one JSON array of objects); numbers become their text, nested values their JSON.

    Arrow reads the bulk. A file Arrow cannot read (types that vary between rows, a key first seen after the
    first block, a repeated key, or broken JSON) continues with the generic parser from the row where Arrow
    stopped, so the rows already handed out are not handed out twice; the generic parser then says exactly
    what is wrong and where.
    """
    with open_text() as stream:
        first = stream.start()
        if not first:
            return
        if first == b"[":
            yield from _json_array(stream)
            return
        schema = pa.schema([pa.field(c, pa.string()) for c in string_columns])
        options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
        try:
            reader = pa_json.open_json(stream, read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES),
                                       parse_options=options)
            for batch in reader:
                table = as_text_table(pa.Table.from_batches([batch]))
                _check_utf8(table, progress.rows)
                yield table
            return
        except pa.ArrowInvalid:
            pass  # the generic parser takes over below, after the rows Arrow handed out
    with open_text() as stream:
        stream.start()
        yield from _json_lines_fallback(stream, skip=progress.rows)


def _no_repeated_keys(pairs: list[tuple[str, Any]], where: str = "") -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        _no_repeated_columns(keys, where)
    return dict(pairs)


def _no_repeated_columns(names: Sequence[str], where: str = "") -> None:
    """A column named twice (CSV header, JSON object, Parquet schema) makes the file ambiguous: which value counts?"""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UnreadableFile(f"column {shown(name)!r} is repeated{where}: which of its values counts is ambiguous")
        seen.add(name)


def _json_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    # per value, but only for files Arrow could not read (irregular exports, never the bulk path)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pa.table({c: pa.array([_json_text(row.get(c)) for row in rows], type=pa.string()) for c in columns})


def _json_line(line: bytes, number: int) -> dict[str, Any]:
    """One JSON-lines row (`number` is its 1-based line) as a dict; errors say where, never what."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")  # (so that a column number is one of this line)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"UnicodeDecodeError: invalid UTF-8 at line {number}, byte {exc.start} of the line "
                             f"({exc.reason})", f"UnicodeDecodeError at line {number}: {exc}") from None
    try:
        value = json.loads(text, object_pairs_hook=lambda pairs: _no_repeated_keys(pairs, f" at line {number}"))
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"JSONDecodeError: invalid JSON at line {number}, column {exc.colno} ({exc.msg})",
                             f"JSONDecodeError at line {number}: {exc}") from None
    if not isinstance(value, dict):
        raise UnreadableFile(f"line {number} is not a JSON object")
    return value


def _json_lines_fallback(stream: _TextStream, skip: int) -> Iterator[pa.Table]:
    """JSON lines with Python's parser, in batches, after skipping the first `skip` rows (blank lines are no
    rows, as for Arrow)."""
    reader = io.BufferedReader(stream, buffer_size=1 << 20)
    rows: list[dict[str, Any]] = []
    seen = 0
    number = stream.blank_lines
    while True:
        line = reader.readline(BLOCK_BYTES + 1)
        if not line:
            break
        number += 1
        if len(line) > BLOCK_BYTES and not line.endswith(b"\n"):
            raise UnreadableFile(f"line {number} is longer than {BLOCK_BYTES:,} bytes")
        if not line.strip():
            continue
        seen += 1
        if seen <= skip:
            continue
        rows.append(_json_line(line, number))
        if len(rows) == FALLBACK_BATCH_LINES:
            yield _rows_table(rows)
            rows = []
    if rows:
        yield _rows_table(rows)


def _json_array(stream: _TextStream) -> Iterator[pa.Table]:
    """One JSON array of objects: read whole (bounded by the decompressed-size limit), then handed out in batches."""
    data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"UnicodeDecodeError: invalid UTF-8 at byte {exc.start} ({exc.reason})",
                             f"UnicodeDecodeError: {exc}") from None
    del data
    try:
        value = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"JSONDecodeError: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})",
                             f"JSONDecodeError: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UnreadableFile("JSON file does not hold objects")
    for start in range(0, len(value), FALLBACK_BATCH_LINES):
        yield _rows_table(value[start:start + FALLBACK_BATCH_LINES])


def _parquet_batches(source: "_Storage", limit: int, progress: _Progress) -> Iterator[pa.Table]:
    """Row group by row group, in batches; the data's decoded size counts against `limit`."""
    with source:
        file = pq.ParquetFile(source)
        _no_repeated_columns(file.schema_arrow.names)
        meta = file.metadata
        stored = sum(meta.row_group(g).column(c).total_uncompressed_size
                     for g in range(meta.num_row_groups) for c in range(meta.num_columns))
        if stored > limit:
            raise UnreadableFile(f"{stored:,} bytes once decompressed, more than {limit:,} (CRM_MAX_FILE_BYTES): "
                                 "not read")
        decoded = 0
        for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            table = as_text_table(pa.Table.from_batches([batch]))
            # encodings (dictionaries, run lengths) can expand far beyond the stored size
            decoded += table.nbytes
            if decoded > limit:
                raise UnreadableFile(f"more than {limit:,} bytes of text once decoded (CRM_MAX_FILE_BYTES): "
                                     "not read to its end")
            _check_utf8(table, progress.rows)
            yield table


def _check_utf8(table: pa.Table, first_row: int) -> None:
    """Text must be UTF-8 (JSON and Parquet readers do not check it; CSV's does): name the column and the row."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        offset = first_row
        for chunk in column.chunks:
            try:
                chunk.validate(full=True)
            except pa.ArrowInvalid as exc:
                index = re.search(r"string index (\d+)", str(exc))
                row = f", row {offset + int(index.group(1))}" if index else ""
                raise UnreadableFile(f"invalid UTF-8 text in column {shown(name)!r}{row}",
                                     f"ArrowInvalid in column {shown(name)!r}: {exc}") from None
            offset += len(chunk)


# ---------------------------------------------------------------------------------------------------------------
# content-free summaries of third-party parser errors


def _summary(exc: BaseException, progress: _Progress) -> str:
    """What went wrong and where, from the parser's error, without any value of the file.

    Arrow's CSV messages quote the offending row; so only known message shapes are summarised (their numbers
    kept), anything else is named by its exception type alone. The full message goes to the quarantine.
    """
    kind = type(exc).__name__
    message = str(exc)
    where = f", after {progress.rows:,} rows read" if progress.rows else ""
    if isinstance(exc, EOFError):
        return f"{kind}: truncated gzip stream (it ends before its end-of-stream marker){where}"
    if isinstance(exc, gzip.BadGzipFile):
        return f"{kind}: not a gzip file (bad header)"
    if isinstance(exc, zlib.error):
        return f"{kind}: corrupt gzip data{where}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{kind}: invalid UTF-8 at byte {exc.start} ({exc.reason})"
    columns = re.match(r"CSV parse error: Expected (\d+) columns, got (\d+)", message)
    if columns:
        return f"{kind}: a CSV row has {columns.group(2)} fields where the header has {columns.group(1)}{where}"
    utf8 = re.match(r"In CSV column #(\d+): CSV conversion error to string: invalid UTF8 data", message)
    if utf8:
        index = int(utf8.group(1))
        name = progress.header[index] if index < len(progress.header) else f"#{index}"
        return f"{kind}: invalid UTF-8 text in column {shown(name)!r}{where}"
    if "straddling object straddles" in message:
        return (f"{kind}: a row longer than {BLOCK_BYTES:,} bytes, or a quote that is never closed{where}")
    if "Parquet magic bytes not found" in message or "Parquet file size is 0" in message:
        return f"{kind}: not a Parquet file (no Parquet footer)"
    if "parquet" in message.lower() or "thrift" in message.lower():
        return f"{kind}: corrupt Parquet data"
    return f"{kind}: the file could not be parsed{where} (the parser's message may quote a row: see the quarantine)"


# ---------------------------------------------------------------------------------------------------------------
# any Arrow column -> text


def _column_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    typ = column.type
    if pa.types.is_dictionary(typ):
        return _column_as_text(pc.cast(column, typ.value_type))
    if pa.types.is_string(typ):
        return column
    if pa.types.is_binary(typ):
        # the same bytes read as text (no copy); `_check_utf8` then says where they are not UTF-8
        return pa.chunked_array([chunk.view(pa.string()) for chunk in column.chunks], type=pa.string())
    if pa.types.is_large_binary(typ):
        return _column_as_text(pa.chunked_array([c.view(pa.large_string()) for c in column.chunks]))
    if pa.types.is_timestamp(typ):
        aware = column if typ.tz is not None else pc.cast(column, pa.timestamp(typ.unit, tz="UTC"))
        # ISO 8601 with the stored instant's offset; naive Parquet timestamps are UTC (docs/inputs.md)
        return pc.strftime(aware, format="%Y-%m-%dT%H:%M:%S%z")
    if pa.types.is_nested(typ):
        values = [_json_text(v) for v in column.to_pylist()]  # nested Parquet columns are rare extras
        return pa.chunked_array([pa.array(values, type=pa.string())])
    return pc.cast(column, pa.string())


def as_text_table(table: pa.Table) -> pa.Table:
    """The same table with every column converted to text (values as delivered)."""
    return pa.table({name: _column_as_text(table.column(i)) for i, name in enumerate(table.column_names)})


def text_frame(table: pa.Table) -> pd.DataFrame:
    """An all-text Arrow table as a pandas frame of Arrow-backed strings (no copy of the string data)."""
    return table.to_pandas(types_mapper=lambda t: TEXT_DTYPE if pa.types.is_string(t) else None)
