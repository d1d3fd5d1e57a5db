"""File-system access for local paths and fsspec URLs (s3://...), in one place."""

import io
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system that holds `url` and the path inside it."""
    return url_to_fs(url, **dict(storage_options or {}))


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def write_bytes_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never half of one.

    Local: write a hidden temporary file beside it, fsync, rename over the target (atomic on POSIX).
    Object stores: one PUT, which becomes visible only when complete.
    """
    parent = path.rsplit("/", 1)[0]
    if is_local(fs):
        os.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        fs.pipe_file(path, data)


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    # no write-time statistics that depend on the clock: same table -> same bytes
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_table_atomic(fs: fsspec.AbstractFileSystem, path: str, table: pa.Table) -> None:
    write_bytes_atomic(fs, path, table_to_parquet_bytes(table))


def read_table(fs: fsspec.AbstractFileSystem, path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The file (or only `columns` of it), fetched in one request (one GET on object stores instead of HEAD +
    ranged reads)."""
    return pq.read_table(pa.BufferReader(fs.cat_file(path)), columns=list(columns) if columns else None)



def partition_files(root: str, key_path: Sequence[str], storage_options: Mapping[str, Any] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """{partition key: file info (name, size, modification time)} of every materialised partition of an asset
    in the Hive layout (`<root>/<key path>/date=YYYY-MM-DD/part.parquet`), read straight from storage in one
    listing."""
    fs, base = filesystem(join(root, *key_path), storage_options)
    if not fs.exists(base):
        return {}
    found = fs.glob(f"{base}/date=*/part.parquet", detail=True)
    return dict(sorted((name.rsplit("/", 2)[-2].removeprefix("date="), info) for name, info in found.items()))


def file_signature(info: Mapping[str, Any]) -> str:
    """`size|modification time[|etag]` of a listed file (mtime locally, LastModified on S3, with its ETag
    where the store gives one, since S3 times have one-second resolution): it changes when the file does."""
    stamp = info.get("mtime") or info.get("LastModified")
    etag = info.get("ETag")
    return f"{info.get('size')}|{stamp}" + (f"|{etag}" if etag else "")


_PARTITION_CACHE: dict[tuple, pa.Table] = {}
_PARTITION_CACHE_ENTRIES = 128  # the trailing windows steps read directly are at most a few dozen small files


def read_partitions(root: str, key_path: Sequence[str], storage_options: Mapping[str, Any] | None = None, *,
                    first: str | None = None, last: str | None = None, columns: Sequence[str] | None = None
                    ) -> dict[str, pa.Table]:
    """{partition key: table} of an asset's materialised partitions with first <= key <= last, read straight
    from storage (for small logs a step reads without a partition mapping). One listing per call; each file is
    read once per process while its signature is unchanged, so the assets of one day share the reads."""
    fs, _ = filesystem(root, storage_options)
    out: dict[str, pa.Table] = {}
    for key, info in partition_files(root, key_path, storage_options).items():
        if (first is not None and key < first) or (last is not None and key > last):
            continue
        cache_key = (root, info["name"], file_signature(info), tuple(columns or ()))
        table = _PARTITION_CACHE.get(cache_key)
        if table is None:
            table = read_table(fs, info["name"], columns)
            if len(_PARTITION_CACHE) >= _PARTITION_CACHE_ENTRIES:
                _PARTITION_CACHE.pop(next(iter(_PARTITION_CACHE)))
            _PARTITION_CACHE[cache_key] = table
        out[key] = table
    return out
