"""The `crm-pipeline` command line, run as a user runs it (through `main`) against a real instance."""

import json

import pandas as pd
import pytest

from crm_pipeline.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("CRM_START_DATE", "2026-10-01")
    for var in ("CRM_LANDING_ROOT", "CRM_WAREHOUSE_ROOT", "CRM_DATABASE_URL", "CRM_TIMEZONE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_generate_out_run_and_status(env, monkeypatch, capsys):
    assert main(["generate", "--scale", "tiny", "--days", "2", "--seed", "3", "--out", "world"]) == 0
    world = env / "world"
    manifest = json.loads((world / "ground_truth" / "manifest.json").read_text())
    assert (manifest["start"], manifest["end"]) == ("2026-10-01", "2026-10-02")
    assert (world / "crm.sqlite").exists() and (world / "landing" / "events").is_dir()

    monkeypatch.setenv("CRM_LANDING_ROOT", str(world / "landing"))
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{world / 'crm.sqlite'}")
    capsys.readouterr()
    assert main(["run", "--start", "2026-10-01", "--end", "2026-10-01", "--select", "group:ingestion"]) == 0
    out = capsys.readouterr().out
    assert "[1/1] 2026-10-01  ok" in out
    assert "in = clean + quarantined + duplicates" in out
    orders = pd.read_parquet(env / "data" / "warehouse" / "ingest" / "orders" / "date=2026-10-01" / "part.parquet")
    assert len(orders) > 0

    assert main(["status"]) == 0
    status = capsys.readouterr().out
    line = next(row for row in status.splitlines() if row.strip().startswith("ingest/orders"))
    assert line.split()[1:4] == ["1", "2026-10-01", "2026-10-01"]


def test_run_refuses_days_outside_the_partitions(env):
    with pytest.raises(SystemExit, match="before the first partition"):
        main(["run", "--start", "2026-09-30", "--end", "2026-10-01"])
    with pytest.raises(SystemExit, match="is before --start"):
        main(["run", "--start", "2026-10-02", "--end", "2026-10-01"])
