"""Anomaly warnings: a KPI's headline far from its own recent behaviour.

The headline of D is compared with the headlines of D-w..D-1 (w = CRM_ANOMALY_WINDOW_DAYS, default 28) taken
from `kpi_scorecard`, read straight from storage (one small file per day, read once per process and day, not a
dependency: a scorecard missing for some earlier day only shortens the history). Robust z = (x - median) /
(1.4826 x MAD), the MAD scaled to a standard deviation for normal data; a flat history (MAD = 0) uses 1% of
|median| as its scale, so a constant KPI that moves by more than a few percent warns and one that stays put
does not. With fewer than CRM_ANOMALY_MIN_DAYS days of history the check passes and says so.
"""

import datetime as dt
import math

import dagster as dg
import numpy as np
import pandas as pd

from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs as storage

SCORECARD_PATH = ("kpi_scorecard",)
MAD_TO_SD = 1.4826
FLAT_SCALE = 0.01  # of |median| when the history's MAD is 0


def trailing_headlines(settings: Settings, day: dt.date, window_days: int) -> pd.DataFrame:
    """kpi, date, value of the scorecards of D-window..D-1 that exist."""
    tables = storage.read_partitions(settings.warehouse_root, SCORECARD_PATH, settings.storage_options,
                                     first=(day - dt.timedelta(days=window_days)).isoformat(),
                                     last=(day - dt.timedelta(days=1)).isoformat(), columns=["kpi", "value"])
    frames = [table.to_pandas().assign(date=key) for key, table in tables.items()]
    if not frames:
        return pd.DataFrame({"kpi": pd.Series([], dtype=str), "value": pd.Series([], dtype=float),
                             "date": pd.Series([], dtype=str)})
    return pd.concat(frames, ignore_index=True)


def robust_z(value: float | None, history: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(z, median, scale) of `value` against `history` (non-null values); z is None without a value."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or len(history) == 0:
        return None, None, None
    median = float(np.median(history))
    mad = float(np.median(np.abs(history - median)))
    scale = MAD_TO_SD * mad if mad > 0 else FLAT_SCALE * abs(median)
    if scale == 0:  # a history of zeros: any other value is an anomaly
        return (0.0 if value == median else math.inf), median, 0.0
    return (value - median) / scale, median, scale


def anomaly_check(name: str, key: dg.AssetKey, headline: float | None, history: pd.DataFrame,
                  settings: Settings) -> dg.AssetCheckResult:
    """WARN when the headline is more than CRM_ANOMALY_THRESHOLD robust standard deviations from the median of
    the trailing scorecards."""
    past = history.loc[(history["kpi"] == name).to_numpy(), "value"].astype(float).dropna().to_numpy()
    z, median, scale = robust_z(headline, past)
    enough = len(past) >= settings.anomaly_min_days
    anomalous = enough and z is not None and abs(z) > settings.anomaly_threshold
    return dg.AssetCheckResult(
        asset_key=key, check_name="headline_within_usual_range", passed=not anomalous,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"headline": headline, "trailing_median": median, "robust_scale": scale,
                  "robust_z": None if z is None or math.isinf(z) else round(z, 3), "z_is_infinite":
                  bool(z is not None and math.isinf(z)), "days_of_history": len(past),
                  "threshold": settings.anomaly_threshold,
                  "evaluated": bool(enough and z is not None)})
