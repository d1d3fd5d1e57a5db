"""Helpers of the KPIs that read CRM rows as of D (docs/outputs.md 2.5) and break a metric down by an open dimension.

A CRM row counts on D only through its lifecycle timestamps: a timestamp after the end of D has not happened
yet. `in_days` is that test for a window of days in the reporting timezone; `breakdown` writes a metric's row
and its row per value of an open dimension from one measure function, so every KPI follows docs/outputs.md section 1
("a metric whose own population lacks the value writes 0 or null") the same way.
"""

import datetime as dt
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from crm_pipeline.kpis.count import end_of_day, start_of_day

NONE = "(none)"  # a missing open value (docs/outputs.md section 1)


def in_days(ts: pd.Series, first: dt.date, last: dt.date, timezone: str) -> np.ndarray:
    """True where the timestamp falls on a day in first..last (both included) in `timezone`; null: False."""
    stamps = pd.to_datetime(ts, utc=True)
    inside = (stamps >= start_of_day(first, timezone)) & (stamps < end_of_day(last, timezone))
    return inside.fillna(False).to_numpy(dtype=bool)


def by_end_of(ts: pd.Series, day: dt.date, timezone: str) -> np.ndarray:
    """True where the timestamp is at or before the end of `day` (it has happened as of D); null: False."""
    stamps = pd.to_datetime(ts, utc=True)
    return (stamps < end_of_day(day, timezone)).fillna(False).to_numpy(dtype=bool)


def window(day: dt.date, days: int) -> tuple[dt.date, dt.date]:
    """The first and last day of the trailing window D-days+1..D."""
    return day - dt.timedelta(days=days - 1), day


def labels(values: pd.Series) -> pd.Series:
    """Open-dimension values as written: the text, `(none)` when missing."""
    return values.astype("string").fillna(NONE)


def open_values(*columns: pd.Series) -> list[str]:
    """The union of the open values of the block's populations, sorted."""
    return sorted(set().union(*(set(c.dropna().astype(str)) for c in columns)))


def breakdown(dimension: str, values: Iterable[str], keys: pd.Series, measure: Callable[..., dict],
              **fixed: str | None) -> list[dict]:
    """The metric's row over the whole population, then one row per open value: `measure(mask, **dims)`
    returns the row of the population rows where `mask` is true."""
    everyone = np.ones(len(keys), dtype=bool)
    rows = [measure(everyone, **fixed, **{dimension: None})]
    key_array = keys.astype("string").to_numpy(dtype=object, na_value=None)
    rows += [measure(key_array == value, **fixed, **{dimension: value}) for value in values]
    return rows
