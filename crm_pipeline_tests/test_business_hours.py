"""Business hours between two instants: weekends, holidays, schedules, time zones and daylight saving."""

import datetime as dt

import pandas as pd
import pytest

from crm_pipeline.business_hours import BusinessSchedule

CASES = [
    # (schedule, holidays, timezone, start (UTC), end (UTC), business hours, why)
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-30T10:00", "2026-11-30T12:30", 2.5, "inside one day"),
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-30T07:00", "2026-11-30T08:00", 0.0, "before opening"),
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-30T16:00", "2026-12-01T10:00", 2.0, "over night"),
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-27T16:00", "2026-11-30T10:00", 2.0, "over a weekend"),
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-28T10:00", "2026-11-29T18:00", 0.0, "inside a weekend"),
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-02T09:00", "2026-11-16T09:00", 80.0, "two whole weeks"),
    ("mon-fri 09:00-17:00", ("2026-12-01",), "UTC", "2026-11-30T16:00", "2026-12-02T10:00", 2.0, "over a holiday"),
    ("mon-fri 09:00-17:00", (), "UTC", "2026-11-30T12:00", "2026-11-30T10:00", -2.0, "answered before created"),
    ("mon-fri 09:00-17:00", (), "Europe/Berlin", "2026-11-30T07:00", "2026-11-30T09:00", 1.0, "08:00-10:00 Berlin"),
    # the clocks go back on Sunday 2026-10-25 at 03:00 in Berlin: Friday 16:00 to Monday 10:00 is 2 h of business
    ("mon-fri 09:00-17:00", (), "Europe/Berlin", "2026-10-23T14:00", "2026-10-26T09:00", 2.0, "over a DST change"),
    ("mon-thu 09:00-17:00, fri 09:00-13:00", (), "UTC", "2026-11-27T08:00", "2026-11-27T18:00", 4.0, "short Friday"),
    ("sat-sun 10:00-14:00", (), "UTC", "2026-11-27T00:00", "2026-11-30T00:00", 8.0, "weekend only"),
    ("mon-sun 00:00-24:00", (), "UTC", "2026-11-27T06:00", "2026-11-28T06:00", 24.0, "around the clock"),
]


@pytest.mark.parametrize(("schedule", "holidays", "timezone", "start", "end", "hours", "why"), CASES,
                         ids=[c[-1] for c in CASES])
def test_business_hours(schedule, holidays, timezone, start, end, hours, why):
    s = BusinessSchedule.parse(schedule, [dt.date.fromisoformat(h) for h in holidays], timezone)
    got = s.hours_between(pd.Series(pd.to_datetime([start], utc=True)), pd.Series(pd.to_datetime([end], utc=True)))
    assert got.iloc[0] == pytest.approx(hours), why


def test_business_hours_are_vectorised_and_null_safe():
    s = BusinessSchedule.parse("mon-fri 09:00-17:00")
    start = pd.Series(pd.to_datetime(["2026-11-30T10:00", None, "1969-12-31T10:00"], utc=True))
    end = pd.Series(pd.to_datetime(["2026-11-30T11:00", "2026-11-30T11:00", "1970-01-02T10:00"], utc=True))
    got = s.hours_between(start, end)
    # 1969-12-31 is a Wednesday: 7 h that day, 8 h on Thursday 1970-01-01, 1 h on Friday
    assert got.iloc[0] == 1.0 and pd.isna(got.iloc[1]) and got.iloc[2] == pytest.approx(16.0)


@pytest.mark.parametrize("bad", ["mon-fri 9-17", "mon-fri 17:00-09:00", "monday 09:00-17:00",
                                 "mon-fri 09:00-17:00, fri 18:00-19:00", "mon 09:00-25:00"])
def test_a_bad_schedule_is_refused_with_a_clear_message(bad):
    with pytest.raises(ValueError, match=r"business hours|not a time of day"):
        BusinessSchedule.parse(bad)
