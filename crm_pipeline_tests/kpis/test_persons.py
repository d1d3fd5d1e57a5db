"""Persons follow identity changes read straight from the warehouse (docs/outputs.md 2.2), locally and on S3."""

import dataclasses
import datetime as dt
import uuid

import pandas as pd
import pytest

from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import S3_BUCKET, write_identity_changes

D = dt.date(2026, 10, 31)


def exercise(settings: Settings) -> None:
    assert PersonRemap.load(settings, D, 30).changes.empty  # nothing materialised yet
    write_identity_changes(settings, D - dt.timedelta(days=40), [("merge", "OLD_KEPT", "OLD_GONE")])  # before the window
    write_identity_changes(settings, D - dt.timedelta(days=5), [("merge", "Y", "X"), ("split", "Y", "S")])
    write_identity_changes(settings, D, [])
    write_identity_changes(settings, D + dt.timedelta(days=3), [("merge", "Z", "Y")])  # a later day, already run
    remap = PersonRemap.load(settings, D, 30)
    assert remap.newest_identity_day == (D + dt.timedelta(days=3)).isoformat()
    assert remap.merges == 2  # the change of D-40 is older than any stored row of the window
    stored = pd.Series(["X", "Y", "Z", "S", "OLD_GONE", "Q"])
    # X -> Y -> Z (chains); a split keeps its id; ids never changed stay
    assert remap(stored).tolist() == ["Z", "Z", "Z", "S", "OLD_GONE", "Q"]
    # a re-materialised identity partition is read again, not served from the cache
    write_identity_changes(settings, D + dt.timedelta(days=3), [("merge", "W", "Y"), ("merge", "W", "Q")])
    assert PersonRemap.load(settings, D, 30)(stored).tolist() == ["W", "W", "Z", "S", "OLD_GONE", "W"]
    # a 60-day window reaches the older change too
    assert PersonRemap.load(settings, D, 60)(pd.Series(["OLD_GONE"])).tolist() == ["OLD_KEPT"]


def test_remap_reads_later_identity_changes_from_local_storage(tmp_path):
    exercise(Settings(landing_root="l", warehouse_root=str(tmp_path / "wh"), database_url="sqlite://"))


@pytest.mark.timeout(120)
def test_remap_reads_later_identity_changes_from_s3(s3_server):
    settings = Settings(landing_root="l", warehouse_root=f"s3://{S3_BUCKET}/remap-{uuid.uuid4().hex[:8]}",
                        database_url="sqlite://")
    exercise(dataclasses.replace(settings, storage_options=s3_server.storage_options))
