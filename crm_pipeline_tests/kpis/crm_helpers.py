"""Shared helpers of the tests of the KPIs on CRM rows: hand-built timestamps, a KPI's finished table (its
standard checks must pass) and one row of it as (numerator, denominator, value, unit)."""

import datetime as dt

import pandas as pd

from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.framework import KpiDefinition, finalise, standard_checks
from crm_pipeline.settings import Settings

D = dt.date(2026, 11, 30)


def settings(timezone: str = "UTC") -> Settings:
    return Settings(landing_root="-", warehouse_root="-", database_url="sqlite://", timezone=timezone,
                    start_date=dt.date(2026, 1, 1))


def ts(values: list[str | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"), utc=True)


def kpi_table(kpi: KpiDefinition, timezone: str = "UTC", **inputs: pd.DataFrame) -> pd.DataFrame:
    extra = {**({"day": D} if kpi.needs_day else {}), **({"settings": settings(timezone)} if kpi.needs_settings else {})}
    frame = finalise(kpi, kpi.compute(**inputs, **extra))
    failed = [c.check_name for c in standard_checks(kpi, kpi_key(kpi), frame) if not c.passed]
    assert not failed, f"{kpi.name}: standard checks failed: {failed}"
    return frame


def row(frame: pd.DataFrame, **dims: str | None) -> tuple:
    """The row with exactly these dimension values (None: null) as (numerator, denominator, value, unit), the
    numbers rounded to 9 decimals and nulls as None."""
    match = pd.Series(True, index=frame.index)
    for name, value in dims.items():
        match &= frame[name].isna() if value is None else frame[name] == value
    assert match.sum() == 1, dims
    r = frame.loc[match].iloc[0]
    return tuple(None if pd.isna(r[c]) else (round(r[c], 9) if c != "unit" else r[c])
                 for c in ("numerator", "denominator", "value", "unit"))
