"""Small vectorised helpers shared by the generator: random streams, calendar, strings, timestamps.

Rows are held as *frames*: plain dicts of equally long numpy arrays (object arrays for strings, None
for null). They are cheaper to build, concatenate and corrupt than DataFrames, and become Arrow
tables only when written.
"""

import datetime as dt
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Frame = dict[str, np.ndarray]

SECONDS_PER_DAY = 86_400
# sentinel for a missing timestamp in int64 epoch-second arrays
NA_TS = np.iinfo(np.int64).min


def stream(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator for one purpose (and day), derived only from the seed and the keys.

    Why: each day and each component gets its own stream, so changing how one part draws numbers does
    not shift every later part, and nothing depends on hash randomisation or the wall clock.
    """
    entropy = [seed] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class Calendar:
    """Days of the world in the reporting timezone, as epoch seconds of their local midnights."""

    start: dt.date
    days: int
    tz: ZoneInfo
    # local midnights of days -PAD .. days + PAD (index i holds day i - PAD)
    midnights: np.ndarray

    PAD = 40

    @classmethod
    def build(cls, start: dt.date, days: int, timezone: str) -> "Calendar":
        tz = ZoneInfo(timezone)
        stamps = [
            int(dt.datetime.combine(start + dt.timedelta(days=i), dt.time(), tzinfo=tz).timestamp())
            for i in range(-cls.PAD, days + cls.PAD + 1)
        ]
        return cls(start=start, days=days, tz=tz, midnights=np.asarray(stamps, dtype=np.int64))

    def day_start(self, day: int) -> int:
        return int(self.midnights[day + self.PAD])

    def day_end(self, day: int) -> int:
        """First second of the next day (exclusive end)."""
        return int(self.midnights[day + 1 + self.PAD])

    @property
    def start_ts(self) -> int:
        return self.day_start(0)

    @property
    def end_ts(self) -> int:
        """Exclusive end of the world: midnight after the last day."""
        return self.day_end(self.days - 1)

    def day_of(self, ts: np.ndarray) -> np.ndarray:
        """Day index (0 = start) of epoch seconds in the reporting timezone."""
        return np.searchsorted(self.midnights, ts, side="right").astype(np.int64) - 1 - self.PAD

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=int(day))

    def dates(self, days: np.ndarray) -> np.ndarray:
        """ISO date strings of day indices (object array)."""
        base = np.datetime64(self.start, "D")
        return np.datetime_as_string(base + np.asarray(days, dtype="timedelta64[D]"), unit="D").astype(object)


# ---------------------------------------------------------------------------------------------- strings


def nulls(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def as_obj(values: Sequence[str] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)


def _arrow(x: object, n: int) -> pa.Array | pa.Scalar:
    if isinstance(x, str):
        return pa.scalar(x)
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        return pc.cast(pa.array(arr, pa.int64()), pa.string())
    return pa.array(arr, pa.string())


def concat(*parts: object, n: int | None = None) -> np.ndarray:
    """Element-wise string concatenation of arrays (str, int) and scalars; a null part gives null."""
    if n is None:
        n = next(len(p) for p in parts if not isinstance(p, str))
    arrays = [_arrow(p, n) for p in parts]
    out = pc.binary_join_element_wise(*arrays, "")
    if isinstance(out, pa.Scalar):
        return np.full(n, out.as_py(), dtype=object)
    return out.to_numpy(zero_copy_only=False).astype(object)


def ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """`prefix` + zero-padded numbers, e.g. ids("C", [7], 8) -> ["C00000007"]."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers), pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "").to_numpy(zero_copy_only=False).astype(object)


def upper(values: np.ndarray) -> np.ndarray:
    return pc.utf8_upper(pa.array(values, pa.string())).to_numpy(zero_copy_only=False).astype(object)


def lower(values: np.ndarray) -> np.ndarray:
    return pc.utf8_lower(pa.array(values, pa.string())).to_numpy(zero_copy_only=False).astype(object)


def join_nonnull(columns: Sequence[np.ndarray], sep: str) -> np.ndarray:
    """Join the non-null values of each row with `sep` (e.g. categories 'a|b')."""
    arrays = [pa.array(c, pa.string()) for c in columns]
    out = pc.binary_join_element_wise(*arrays, pa.scalar(sep), null_handling="skip")
    return out.to_numpy(zero_copy_only=False).astype(object)


def choice_str(rng: np.random.Generator, options: Sequence[str], n: int, p: Sequence[float] | None = None) -> np.ndarray:
    return as_obj(options)[rng.choice(len(options), size=n, p=p)]


# ------------------------------------------------------------------------------------------- timestamps

# How a timestamp is written in text files and the CRM: (suffix, offset seconds). Every style denotes
# the same instant; naive means UTC (docs/inputs.md).
TS_STYLES: tuple[tuple[str, int], ...] = (
    ("+00:00", 0),
    ("Z", 0),
    ("", 0),
    ("+02:00", 7200),
    ("-05:00", -18000),
    ("+01:00", 3600),
    ("+05:30", 19800),
)
STYLE_UTC, STYLE_Z, STYLE_NAIVE, STYLE_CEST, STYLE_EST, STYLE_CET, STYLE_IST = range(7)
_SUFFIX = np.asarray([s for s, _ in TS_STYLES], dtype=object)
_OFFSET = np.asarray([o for _, o in TS_STYLES], dtype=np.int64)


def draw_styles(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """Per-row timestamp style codes; weights over TS_STYLES (padded with zeros)."""
    w = np.zeros(len(TS_STYLES))
    w[: len(weights)] = weights
    return rng.choice(len(TS_STYLES), size=n, p=w / w.sum()).astype(np.int8)


def render_ts(ts: np.ndarray, style: np.ndarray, override: np.ndarray | None = None) -> np.ndarray:
    """ISO-8601 strings of epoch seconds in each row's style; NA_TS -> None; override wins when set."""
    ts = np.asarray(ts, dtype=np.int64)
    valid = ts != NA_TS
    style = np.asarray(style, dtype=np.int64)
    local = np.where(valid, ts + _OFFSET[style], 0)
    text = pc.replace_substring(pc.cast(pa.array(local, pa.timestamp("s")), pa.string()), " ", "T")
    out = pc.binary_join_element_wise(text, pa.array(_SUFFIX[style], pa.string()), "")
    result = out.to_numpy(zero_copy_only=False).astype(object)
    result[~valid] = None
    if override is not None:
        has = override != None  # noqa: E711 - element-wise test on an object array
        result[has] = override[has]
    return result


# ----------------------------------------------------------------------------------------------- frames


def frame_len(frame: Frame) -> int:
    return len(next(iter(frame.values()))) if frame else 0


def take(frame: Frame, index: np.ndarray) -> Frame:
    return {k: v[index] for k, v in frame.items()}


def concat_frames(frames: Iterable[Frame], columns: Sequence[str], defaults: dict[str, object]) -> Frame:
    """Concatenate frames, filling a column a frame lacks with its default (None for strings)."""
    frames = [f for f in frames if frame_len(f)]
    out: Frame = {}
    for col in columns:
        parts = []
        for f in frames:
            if col in f:
                parts.append(f[col])
            else:
                fill = defaults.get(col)
                dtype = object if fill is None or isinstance(fill, str) else type(fill)
                parts.append(np.full(frame_len(f), fill, dtype=dtype))
        if parts:
            out[col] = np.concatenate(parts)
        else:
            fill = defaults.get(col)
            out[col] = np.empty(0, dtype=object if fill is None or isinstance(fill, str) else type(fill))
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
