"""Business hours between two instants, vectorised (docs/kpi_catalog.md `response_time`).

A weekly schedule (one opening window per weekday, e.g. Mon-Fri 09:00-17:00) in a timezone, minus holidays.
The business time between `start` and `end` is `B(end) - B(start)`, where `B(t)` counts the business seconds
from a fixed Monday up to t: whole weeks, the whole days of the current week before t's day, less the holidays
before t's day, plus the open part of t's own day. Everything is numpy arithmetic on arrays; no loop over rows.

Wall-clock time in the schedule's timezone is what counts: a daylight-saving change at night does not change
a 09:00-17:00 day (it has 8 business hours), as a help desk would count it.
"""

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SCHEDULE = "mon-fri 09:00-17:00"
# 1970-01-05 was a Monday: day numbers counted from it give the weekday as `n % 7` (Mon = 0)
_EPOCH_MONDAY = np.datetime64("1970-01-05", "D")
_DAY = 86_400

_ITEM = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<open>\d{1,2}:\d{2})-(?P<close>\d{1,2}:\d{2})$")


def _seconds(text: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or hours * 3600 + minutes * 60 > _DAY:
        raise ValueError(f"not a time of day: {text!r}")
    return hours * 3600 + minutes * 60


@dataclass(frozen=True)
class BusinessSchedule:
    """Opening second of day and closing second of day per weekday (Mon..Sun; equal = closed), holidays
    (dates on which nothing is open), and the timezone the wall-clock times are in."""

    opens: tuple[int, ...]
    closes: tuple[int, ...]
    holidays: tuple[dt.date, ...] = ()
    timezone: str = "UTC"

    @classmethod
    def parse(cls, schedule: str, holidays: Iterable[dt.date] = (), timezone: str = "UTC") -> "BusinessSchedule":
        """`"mon-fri 09:00-17:00, sat 10:00-14:00"`: comma-separated weekday ranges with one window each;
        days not named are closed. A day named twice is an error (one window per day)."""
        opens, closes = [0] * 7, [0] * 7
        named: set[int] = set()
        for item in (part.strip().lower() for part in schedule.split(",")):
            if not item:
                continue
            match = _ITEM.match(item)
            if not match:
                raise ValueError(f"business hours: expected e.g. 'mon-fri 09:00-17:00', got {item!r}")
            first, _, last = match["days"].partition("-")
            if first not in WEEKDAYS or (last and last not in WEEKDAYS):
                raise ValueError(f"business hours: unknown weekday in {item!r} (use {', '.join(WEEKDAYS)})")
            a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
            days = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
            start, end = _seconds(match["open"]), _seconds(match["close"])
            if end <= start:
                raise ValueError(f"business hours: the window of {item!r} closes before it opens")
            for d in days:
                if d in named:
                    raise ValueError(f"business hours: {WEEKDAYS[d]} has more than one window")
                named.add(d)
                opens[d], closes[d] = start, end
        return cls(tuple(opens), tuple(closes), tuple(sorted(set(holidays))), timezone)

    def _cumulative(self, local: np.ndarray) -> np.ndarray:
        """B(t): business seconds from the epoch Monday to each local wall-clock time (int64 seconds)."""
        since_epoch = (local.astype("datetime64[s]") - _EPOCH_MONDAY).astype(np.int64)
        day_number = np.floor_divide(since_epoch, _DAY)
        time_of_day = since_epoch - day_number * _DAY
        opens, closes = np.asarray(self.opens, np.int64), np.asarray(self.closes, np.int64)
        length = closes - opens
        before_weekday = np.concatenate([[0], np.cumsum(length)])  # business seconds of Mon..(w-1)
        weekday = np.mod(day_number, 7)
        whole_days = np.floor_divide(day_number, 7) * before_weekday[7] + before_weekday[weekday]
        partial = np.clip(time_of_day - opens[weekday], 0, length[weekday])
        if self.holidays:
            holiday_numbers = (np.array(self.holidays, dtype="datetime64[D]") - _EPOCH_MONDAY).astype(np.int64)
            holiday_length = length[np.mod(holiday_numbers, 7)]
            lost_before = np.concatenate([[0], np.cumsum(holiday_length)])
            whole_days = whole_days - lost_before[np.searchsorted(holiday_numbers, day_number, side="left")]
            is_holiday = np.isin(day_number, holiday_numbers)
            partial = np.where(is_holiday, 0, partial)
        return whole_days + partial

    def hours_between(self, start: pd.Series, end: pd.Series) -> pd.Series:
        """Business hours from `start` to `end` (UTC timestamps, same index); null where either is null."""
        both = (start.notna() & end.notna()).to_numpy()
        out = np.full(len(start), np.nan)
        if both.any():
            def local(ts: pd.Series) -> np.ndarray:
                utc = pd.to_datetime(ts[both], utc=True)
                return utc.dt.tz_convert(self.timezone).dt.tz_localize(None).to_numpy()

            out[both] = (self._cumulative(local(end)) - self._cumulative(local(start))) / 3600.0
        return pd.Series(out, index=start.index, dtype="float64")
