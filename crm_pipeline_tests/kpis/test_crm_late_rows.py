"""CRM rows change after the fact: a row that arrives late for an already processed day (a backdated import,
replication lag) is noticed by the restatement sensor, and re-running that day gives the corrected KPI."""

import datetime as dt
import sqlite3

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.cli import run_range
from crm_pipeline.definitions import build_definitions
from crm_pipeline.restatement import evaluate
from crm_pipeline_tests.conftest import tiny_world

pytestmark = pytest.mark.slow

START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]
SELECT = ("key:ingest/events or key:ingest/crm_survey_responses or key:ingest/crm_support_tickets or key:kpi/nps "
          "or key:kpi/first_contact_resolution")


def kpi_total(settings, name: str, day: dt.date) -> tuple[float, float]:
    frame = pd.read_parquet(f"{settings.warehouse_root}/kpi/{name}/date={day}/part.parquet")
    dims = [c for c in frame.columns if c not in ("numerator", "denominator", "value", "unit")]
    total = frame[frame[dims].isna().all(axis=1)] if dims else frame
    return float(total["numerator"].iloc[0]), float(total["denominator"].iloc[0])


def insert(db: sqlite3.Connection, table: str, **values: object) -> None:
    columns = [r[1] for r in db.execute(f"pragma table_info({table})")]
    row = {c: values.get(c) for c in columns}
    db.execute(f"insert into {table} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
               list(row.values()))


def test_a_late_survey_response_and_ticket_restate_their_day(tmp_path):
    settings = tiny_world(tmp_path, START, days=4, seed=21)
    with dg.instance_for_test() as instance:
        run_range(settings, DAYS[0], DAYS[-1], select=SELECT, instance=instance, echo=lambda *_: None)
        before = {d: (kpi_total(settings, "nps", d), kpi_total(settings, "first_contact_resolution", d))
                  for d in DAYS}
        graph = build_definitions(settings).resolve_asset_graph()
        now = pd.Timestamp.now(tz="UTC")
        _, cursor = evaluate(settings, instance, graph, None, now)

        day = DAYS[1]
        with sqlite3.connect(tmp_path / "crm.sqlite") as db:
            # two promoters and a ticket resolved at first contact, written now but dated on DAYS[1]
            for i in range(2):
                insert(db, "survey_responses", response_id=f"R-LATE-{i}", customer_id=None,
                       responded_at=f"{day}T10:00:00Z", updated_at=f"{day}T10:00:00Z", survey_type="nps", score=10)
            insert(db, "support_tickets", ticket_id="T-LATE", created_at=f"{day}T08:00:00Z",
                   updated_at=f"{day}T09:00:00Z", first_response_at=f"{day}T08:30:00Z",
                   resolved_at=f"{day}T09:00:00Z", contact_count=1, reopened=0, channel="chat")
        request, _ = evaluate(settings, instance, graph, cursor, now)
        assert isinstance(request, dg.RunRequest)
        subset = request.asset_graph_subset
        for name in ("nps", "first_contact_resolution"):
            assert set(subset.get_partitions_subset(dg.AssetKey(["kpi", name])).get_partition_keys()) == \
                {str(DAYS[1]), str(DAYS[2])}

        run_range(settings, DAYS[1], DAYS[2], select=SELECT, instance=instance, echo=lambda *_: None)
        for d in DAYS:
            (nps_n, nps_d), (fcr_n, fcr_d) = before[d]
            added = 2.0 if d >= day else 0.0  # the responses count on their own day and in later windows
            assert kpi_total(settings, "nps", d) == (nps_n + added, nps_d + added), d
            assert kpi_total(settings, "first_contact_resolution", d) == (fcr_n + added / 2, fcr_d + added / 2), d
