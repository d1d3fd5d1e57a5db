"""Landing-zone files: `<root>/<source>/date=YYYY-MM-DD/<name>.<ext>` in mixed formats.

Rows are buffered per day folder and written once the folder can receive no more rows (a row lands in
the folder of its day as the exporter's clock sees it, which may be the neighbouring day near
midnight). Formats rotate by source, file and day; `.jsonl` and `.json.gz` are newline-delimited JSON
(one object per line), `.csv.gz` / `.json.gz` gzip with a zero mtime so the bytes are reproducible.
"""

import gzip
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .common import Calendar, Frame, concat_frames, frame_len, render_ts, take

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl", "json.gz", "csv.gz")
TS_COLUMN = {"events": "occurred_at", "orders": "ordered_at", "refunds": "refunded_at"}
FLOATS = {
    "orders": ("gross_revenue", "discount_amount", "cost_of_goods"),
    "refunds": ("amount",),
    "costs": ("amount",),
    "fx_rates": ("rate_to_reporting",),
}
DATE_SOURCES = ("costs", "fx_rates")
# rotation offsets so that sources and files of one day use different formats
_OFFSET = {"events/web": 0, "events/app": 1, "events/email": 2, "events/messaging": 3, "events/social_ads": 4,
           "orders/orders": 1, "refunds/refunds": 2, "costs/costs": 3, "fx_rates/fx_rates": 4}  # fmt: skip


def file_format(source: str, part: str, day: int) -> str:
    return FORMATS[(day + _OFFSET.get(f"{source}/{part}", 0)) % len(FORMATS)]


@dataclass
class LandingWriter:
    root: Path
    cal: Calendar
    columns: dict[str, tuple[str, ...]]
    files: list[dict[str, object]] = field(default_factory=list)
    rows_written: dict[str, int] = field(default_factory=dict)
    broken: list[dict[str, object]] = field(default_factory=list)
    broken_day: int | None = None
    _buffers: dict[str, dict[int, list[Frame]]] = field(default_factory=dict)

    def add(self, source: str, frame: Frame) -> None:
        if not frame_len(frame):
            return
        buf = self._buffers.setdefault(source, {})
        folders = frame["_folder"]
        if (folders == folders[0]).all():
            buf.setdefault(int(folders[0]), []).append(frame)
            return
        for folder in np.unique(folders):
            buf.setdefault(int(folder), []).append(take(frame, np.flatnonzero(folders == folder)))

    def flush(self, source: str, upto: int | None = None) -> None:
        """Write every buffered folder of `source` up to day `upto` (all when None)."""
        buf = self._buffers.get(source, {})
        for folder in sorted(buf):
            if upto is not None and folder > upto:
                continue
            frames = buf.pop(folder)
            cols = list(frames[0])
            self._write_folder(source, folder, concat_frames(frames, cols, {"_resend": False}))

    def flush_all(self) -> None:
        for source in list(self._buffers):
            self.flush(source)

    # -------------------------------------------------------------------------------------- files
    def _folder_path(self, source: str, folder: int) -> Path:
        return self.root / source / f"date={self.cal.date(folder).isoformat()}"

    def _write_folder(self, source: str, folder: int, frame: Frame) -> None:
        folder_path = self._folder_path(source, folder)
        folder_path.mkdir(parents=True, exist_ok=True)
        resend = frame.get("_resend", np.zeros(frame_len(frame), dtype=bool))
        tsraw = frame.get("_tsraw")
        garbage = tsraw != None if tsraw is not None else np.zeros(frame_len(frame), dtype=bool)  # noqa: E711
        prefix = "events_" if source == "events" else ""
        for part in sorted(set(frame["_part"].tolist())):
            in_part = frame["_part"] == part
            fmt = file_format(source, part, folder)
            groups = [(f"{prefix}{part}", fmt, in_part & ~resend), (f"{prefix}{part}-resent", fmt, in_part & resend)]
            if fmt == "parquet":
                # a timestamp that is not a timestamp cannot live in a typed Parquet column: such rows
                # arrive in a hand-made CSV beside the export
                groups = [(name, fmt, m & ~garbage) for name, fmt, m in groups]
                groups.append((f"{prefix}{part}-manual", "csv", in_part & garbage))
            for name, ext, mask in groups:
                if mask.any():
                    self._write_file(source, folder, folder_path / f"{name}.{ext}", ext, take(frame, np.flatnonzero(mask)), part)
        if source == "events" and folder == self.broken_day:
            self._write_broken(folder_path, folder, take(frame, np.arange(min(20, frame_len(frame)))))

    def _table(self, source: str, frame: Frame, ext: str) -> pa.Table:
        cols = self.columns[source]
        arrays = {}
        ts_col = TS_COLUMN.get(source)
        for col in cols:
            if col == ts_col:
                if ext == "parquet":
                    arrays[col] = pa.array(frame["_ts"] * 1_000_000, pa.timestamp("us", tz="UTC"))
                else:
                    arrays[col] = pa.array(render_ts(frame["_ts"], frame["_style"], frame.get("_tsraw")), pa.string())
            elif col == "date" and source in DATE_SOURCES:
                dates = self.cal.dates(frame["_folder"])
                arrays[col] = pa.array(pd.to_datetime(dates).date) if ext == "parquet" else pa.array(dates, pa.string())
            elif col in FLOATS.get(source, ()):
                arrays[col] = pa.array(np.asarray(frame[col], dtype=np.float64), pa.float64(), from_pandas=True)
            else:
                arrays[col] = pa.array(frame[col], pa.string())
        return pa.table(arrays)

    def _write_file(self, source: str, folder: int, path: Path, ext: str, frame: Frame, part: str) -> None:
        if source not in DATE_SOURCES:
            # rows arrive in id order already; sort only when they do not (cheap check first)
            ids = frame[self.columns[source][0]]
            if len(ids) > 1 and not (ids[1:] >= ids[:-1]).all():
                frame = take(frame, np.argsort(ids.astype(str), kind="stable"))
        table = self._table(source, frame, ext)
        path.write_bytes(encode(table, ext))
        n = table.num_rows
        self.rows_written[source] = self.rows_written.get(source, 0) + n
        self.files.append(
            {"source": source, "day": self.cal.date(folder), "part": part, "path": path.relative_to(self.root).as_posix(), "rows": n}
        )

    def _write_broken(self, folder_path: Path, folder: int, frame: Frame) -> None:
        """A re-delivery whose gzip stream was cut off: the whole file is unreadable."""
        data = encode(self._table("events", frame, "json.gz"), "json.gz")
        path = folder_path / "events_social_ads-retry.json.gz"
        path.write_bytes(data[: max(20, len(data) // 2)])
        self.broken.append(
            {"path": path.relative_to(self.root).as_posix(), "source": "events", "day": self.cal.date(folder),
             "reason": "unparsable_file", "detail": "truncated gzip stream (re-delivery of rows also delivered intact)",
             "rows": frame_len(frame)}
        )  # fmt: skip


def encode(table: pa.Table, ext: str) -> bytes:
    """File bytes of a table in one of the landing formats (deterministic)."""
    if ext == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="snappy")
        return sink.getvalue()
    if ext in ("csv", "csv.gz"):
        sink = io.BytesIO()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
        data = sink.getvalue()
    else:
        # in slices, so a million-row file never becomes one big DataFrame plus one big string
        chunks = []
        for start in range(0, table.num_rows, 100_000):
            text = table.slice(start, 100_000).to_pandas().to_json(orient="records", lines=True, force_ascii=False, double_precision=10)
            chunks.append(text.encode("utf-8") if text.endswith("\n") else (text + "\n").encode("utf-8"))
        data = b"".join(chunks)
    if ext.endswith(".gz"):
        return gzip.compress(data, compresslevel=6, mtime=0)
    return data
