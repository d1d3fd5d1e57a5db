"""A failing blocking check stops its asset's consumers in a real run, and the fixed run goes through."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.cli import run_range
from crm_pipeline.kpis import aggregates
from crm_pipeline_tests.conftest import tiny_world

DAY = dt.date(2026, 10, 1)
VISITS_AND_CONSUMERS = 'key:"aggregates/visits" or key:"kpi/asset_engagement_ratio" or key:"kpi/owned_paid_ratio"'


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocking")
    settings = tiny_world(root, DAY, days=2, seed=3)
    with dg.instance_for_test() as instance:
        run_range(settings, DAY, DAY, select="group:ingestion", instance=instance, echo=lambda *_: None)
        yield settings, root / "warehouse", instance


def test_a_broken_aggregate_stops_the_kpis_that_read_it(world, monkeypatch):
    settings, warehouse, instance = world
    real = aggregates.daily_visits

    def duplicated(events: pd.DataFrame, timezone: str) -> pd.DataFrame:  # defect: every row twice
        frame = real(events, timezone)
        return pd.concat([frame, frame], ignore_index=True)

    monkeypatch.setattr(aggregates, "daily_visits", duplicated)
    lines: list[str] = []
    with pytest.raises(SystemExit, match="run for 2026-10-01 failed"):
        run_range(settings, DAY, DAY, select=VISITS_AND_CONSUMERS, instance=instance, echo=lines.append)
    assert any("aggregates/visits:primary_key_is_unique did not pass" in line for line in lines)
    # the broken table was written (it is the asset's own partition) but nothing downstream ran on it
    assert (warehouse / "aggregates" / "visits" / f"date={DAY}").exists()
    for kpi in ("asset_engagement_ratio", "owned_paid_ratio"):
        assert not (warehouse / "kpi" / kpi).exists()
        assert not instance.get_materialized_partitions(dg.AssetKey(["kpi", kpi]))

    monkeypatch.setattr(aggregates, "daily_visits", real)  # fixed: the same run goes through
    run_range(settings, DAY, DAY, select=VISITS_AND_CONSUMERS, instance=instance, echo=lambda *_: None)
    assert (warehouse / "kpi" / "asset_engagement_ratio" / f"date={DAY}" / "part.parquet").exists()
