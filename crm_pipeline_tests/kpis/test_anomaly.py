"""Anomaly warnings on KPI headlines: robust z by hand, and the trailing scorecards read from storage."""

import datetime as dt
import math

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline.kpis.anomaly import anomaly_check, robust_z, trailing_headlines
from crm_pipeline.kpis.assets import SCORECARD_SCHEMA
from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs as storage

KEY = dg.AssetKey(["kpi", "uar_30d"])
D = dt.date(2026, 10, 31)


def test_robust_z_by_hand():
    history = np.array([10, 11, 9, 10, 12, 10, 8], dtype=float)  # median 10, MAD 1
    z, median, scale = robust_z(20.0, history)
    assert (median, scale) == (10.0, 1.4826) and z == (20 - 10) / 1.4826
    assert robust_z(13.0, history)[0] == 3 / 1.4826
    flat = np.full(7, 5.0)  # MAD 0: the scale is 1% of the median
    assert robust_z(5.0, flat)[0] == 0.0 and math.isclose(robust_z(5.3, flat)[0], 6.0)
    assert robust_z(0.0, np.zeros(7))[0] == 0.0 and math.isinf(robust_z(1.0, np.zeros(7))[0])
    assert robust_z(None, history) == (None, None, None)


def history(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"kpi": "uar_30d", "value": values, "date": [f"d{i}" for i in range(len(values))]})


def test_the_check_warns_only_beyond_the_threshold_and_with_enough_history():
    settings = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://")
    past = history([10, 11, 9, 10, 12, 10, 8])
    quiet, loud = anomaly_check("uar_30d", KEY, 13.0, past, settings), anomaly_check("uar_30d", KEY, 20.0, past,
                                                                                      settings)
    assert quiet.passed and not loud.passed and loud.severity == dg.AssetCheckSeverity.WARN
    assert loud.metadata["robust_z"].value == 6.745 and loud.metadata["days_of_history"].value == 7
    short = anomaly_check("uar_30d", KEY, 1000.0, history([10, 11, 9]), settings)
    assert short.passed and short.metadata["evaluated"].value is False  # 3 days < CRM_ANOMALY_MIN_DAYS
    other_kpi = anomaly_check("owned_paid_ratio", KEY, 1000.0, past, settings)
    assert other_kpi.passed and other_kpi.metadata["days_of_history"].value == 0


def test_trailing_headlines_read_the_scorecards_before_d(tmp_path):
    settings = Settings(landing_root="l", warehouse_root=str(tmp_path), database_url="sqlite://")
    fs, _ = storage.filesystem(str(tmp_path))
    for offset, value in [(0, 99.0), (1, 10.0), (2, 11.0), (28, 12.0), (29, 50.0)]:
        day = (D - dt.timedelta(days=offset)).isoformat()
        table = pa.Table.from_pydict({"kpi": ["uar_30d"], "value": [value], "unit": ["count"], "numerator": [value],
                                      "denominator": [None]}, schema=SCORECARD_SCHEMA)
        storage.write_table_atomic(fs, f"{tmp_path}/kpi_scorecard/date={day}/part.parquet", table)
    past = trailing_headlines(settings, D, 28)
    # D itself and D-29 are outside D-28..D-1
    assert sorted(past["value"]) == [10.0, 11.0, 12.0]
