"""The ingestion assets in real Dagster runs over several days, on hand-built landing files.

An order (and a refund) delivered again on a later day with other content is quarantined on that later day,
so its money is counted once; the ids state chains from day to day, a re-run of an earlier day writes the same
bytes, and a backfill starting late folds the state it lacks from the landing zone.
"""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.cli import run_range
from crm_pipeline.settings import Settings
from crm_pipeline_tests.ingestion.test_landing import at, order, write

pytestmark = pytest.mark.slow

DAY1, DAY2, DAY3 = dt.date(2026, 10, 1), dt.date(2026, 10, 2), dt.date(2026, 10, 3)
SELECTION = " or ".join(f"key:{key}" for key in (
    "ingest/orders", "quarantine/orders", "ingest/order_ids", "ingest/refunds", "quarantine/refunds",
    "ingest/refund_ids", "ingest/fx_rates", "quarantine/fx_rates", "ingest/fx_rates_latest"))


def landing(root: Path) -> Settings:
    settings = Settings(landing_root=str(root / "landing"), warehouse_root=str(root / "warehouse"),
                        database_url=f"sqlite:///{root / 'crm.sqlite'}", start_date=DAY1)
    write(settings, "fx_rates", DAY1, "rates.csv", [{"date": str(DAY1), "currency": "EUR", "rate_to_reporting": "1.25"}])
    write(settings, "orders", DAY1, "orders.csv", [order("o1", "100", "EUR", ordered_at=at(DAY1)),
                                                   order("o2", "50", ordered_at=at(DAY1))])
    write(settings, "orders", DAY2, "orders.csv", [order("o4", "20", ordered_at=at(DAY2))])
    # o1 again two days later, with its timestamp on that day and another amount
    write(settings, "orders", DAY3, "orders.csv", [order("o1", "120", ordered_at=at(DAY3)),
                                                   order("o3", "10", ordered_at=at(DAY3))])
    refund = {"refund_id": "r1", "order_id": "o2", "amount": "5", "currency": "USD"}
    write(settings, "refunds", DAY1, "refunds.csv", [{**refund, "refunded_at": at(DAY1)}])
    write(settings, "refunds", DAY3, "refunds.csv", [{**refund, "refunded_at": at(DAY3)}])
    return settings


def run(settings: Settings, first: dt.date, last: dt.date, instance: dg.DagsterInstance) -> tuple[list, list]:
    lines: list[str] = []
    rows = run_range(settings, first, last, select=SELECTION, instance=instance, echo=lines.append)
    return rows, lines


def partition(settings: Settings, asset: str, day: dt.date) -> Path:
    return Path(settings.warehouse_root) / asset / f"date={day}" / "part.parquet"


def read(settings: Settings, asset: str, day: dt.date) -> pd.DataFrame:
    return pd.read_parquet(partition(settings, asset, day))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    settings = landing(tmp_path_factory.mktemp("orders"))
    with dg.instance_for_test() as instance:
        rows, lines = run(settings, DAY1, DAY3, instance)
        yield settings, instance, rows, lines


def test_an_order_delivered_again_on_a_later_day_is_quarantined_there_and_counted_once(chained):
    settings, _, rows, lines = chained
    orders = pd.concat([read(settings, "ingest/orders", d).assign(day=str(d)) for d in (DAY1, DAY2, DAY3)])
    assert orders[["day", "order_id"]].values.tolist() == [
        ["2026-10-01", "o1"], ["2026-10-01", "o2"], ["2026-10-02", "o4"], ["2026-10-03", "o3"]]
    assert orders["net_revenue"].sum() == 125.0 + 50.0 + 20.0 + 10.0  # o1 once, at its first version
    quarantine = read(settings, "quarantine/orders", DAY3)
    assert quarantine[["record_id", "reason", "detail"]].values.tolist() == [
        ["o1", "duplicate_id_conflict",
         "order_id first delivered on 2026-10-01 (its ordered_at on that day): the first delivery is kept"]]
    assert json.loads(quarantine["record"].iloc[0])["gross_revenue"] == "120"
    refunds = read(settings, "quarantine/refunds", DAY3)
    assert refunds[["record_id", "reason"]].values.tolist() == [["r1", "duplicate_id_conflict"]]
    assert read(settings, "ingest/refunds", DAY3).empty
    # rows in = clean + quarantined + duplicates, for every source and day
    counts = {(r["source"], r["day"]): (r["rows_in"], r["clean"], r["quarantined"], r["duplicates"]) for r in rows}
    assert counts[("orders", "2026-10-03")] == (2, 1, 1, 0)
    assert counts[("refunds", "2026-10-03")] == (1, 0, 1, 0)
    assert all(n == c + q + d for n, c, q, d in counts.values())
    # every check passed every day, but the warning that half of 10-03's orders and refunds are in quarantine
    assert [line.strip() for line in lines if "did not pass" in line] == [
        "check ingest/orders:quarantine_rate_below_threshold did not pass (WARN)",
        "check ingest/refunds:quarantine_rate_below_threshold did not pass (WARN)"]
    warned = [i for i, line in enumerate(lines) if "did not pass" in line]
    assert lines[warned[0] - 1].startswith("[3/3] 2026-10-03")


def test_the_ids_state_chains_from_day_to_day(chained):
    settings, instance, _, _ = chained
    state = read(settings, "ingest/order_ids", DAY3)
    # in the order the days appended them: by first_seen_date, then id
    assert state["order_id"].tolist() == ["o1", "o2", "o4", "o3"]
    assert [str(d) for d in state["first_seen_date"]] == ["2026-10-01", "2026-10-01", "2026-10-02", "2026-10-03"]
    assert read(settings, "ingest/refund_ids", DAY3)["refund_id"].tolist() == ["r1"]
    events = instance.fetch_materializations(dg.AssetKey(["ingest", "order_ids"]), limit=3).records
    metadata = {e.partition_key: {k: v.value for k, v in e.asset_materialization.metadata.items()} for e in events}
    assert {day: (m["ids"], m["ids_added"], m["bootstrapped"]) for day, m in metadata.items()} == {
        "2026-10-01": (2, 2, False), "2026-10-02": (3, 1, False), "2026-10-03": (4, 1, False)}


def test_rerunning_an_earlier_day_after_later_days_writes_the_same_bytes(chained):
    settings, instance, _, _ = chained
    files = [partition(settings, asset, day) for asset in ("ingest/orders", "quarantine/orders", "ingest/order_ids")
             for day in (DAY1, DAY3)]
    before = [digest(f) for f in files]
    run(settings, DAY1, DAY1, instance)  # o1's later copy (10-03) exists: 10-01 still keeps o1
    run(settings, DAY3, DAY3, instance)
    assert [digest(f) for f in files] == before


def test_a_backfill_starting_late_folds_the_missing_state(chained, tmp_path):
    settings, _, _, _ = chained
    late = settings.with_overrides(warehouse_root=str(tmp_path / "warehouse"))
    with dg.instance_for_test() as instance:
        run(late, DAY3, DAY3, instance)  # no partition of 10-02 anywhere
        (event,) = instance.fetch_materializations(dg.AssetKey(["ingest", "order_ids"]), limit=1).records
        assert event.asset_materialization.metadata["bootstrapped"].value is True
    for asset in ("ingest/orders", "quarantine/orders", "ingest/order_ids", "quarantine/refunds"):
        assert digest(partition(late, asset, DAY3)) == digest(partition(settings, asset, DAY3)), asset
