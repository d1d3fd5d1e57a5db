"""The restatement sensor on a real tiny world: late landing files, late CRM rows and identity changes each
give one backfill request of the right asset partitions, and none twice."""

import datetime as dt
import json
import os
import sqlite3
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.cli import run_range
from crm_pipeline.definitions import build_definitions
from crm_pipeline.restatement import evaluate, person_counting_keys
from crm_pipeline_tests.conftest import tiny_world, write_identity_changes

START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]
HEADER = '"event_id","occurred_at","event_type","channel","device_type","customer_id"\n'


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("late")
    settings = tiny_world(root, START, days=4, seed=5)
    with dg.instance_for_test() as instance:
        run_range(settings, DAYS[0], DAYS[-1], select="group:ingestion", instance=instance, echo=lambda *_: None)
        yield settings, root, instance


def requested(request) -> dict[str, set[str]]:
    """{asset key: partitions} of a backfill request."""
    assert isinstance(request, dg.RunRequest), request
    subset = request.asset_graph_subset
    return {k.to_user_string(): set(subset.get_partitions_subset(k).get_partition_keys())
            for k in subset.asset_keys}


def write_events(root: Path, folder_day: dt.date, name: str, occurred: list[str], age_minutes: float) -> Path:
    path = root / "landing" / "events" / f"date={folder_day}" / name
    rows = "".join(f'"late-{name}-{i}","{ts}","session_start","seo","desktop","C-LATE"\n'
                   for i, ts in enumerate(occurred))
    path.write_text(HEADER + rows)
    stamp = time.time() - age_minutes * 60
    os.utime(path, (stamp, stamp))
    return path


def test_the_sensor_requests_late_days_once_and_only_what_they_affect(ingested):
    settings, root, instance = ingested
    graph = build_definitions(settings).resolve_asset_graph()
    every_asset = {k.to_user_string() for k in graph.materializable_asset_keys}
    now = pd.Timestamp.now(tz="UTC")

    first, cursor = evaluate(settings, instance, graph, None, now)
    assert isinstance(first, dg.SkipReason)  # nothing late; identity history taken as handled

    # a late file in folder D (= DAYS[1]): D and every later day, for every asset
    write_events(root, DAYS[1], "events_late.csv", [f"{DAYS[1]}T12:00:00Z"], age_minutes=30)
    request, cursor = evaluate(settings, instance, graph, cursor, now)
    parts = requested(request)
    assert set(parts) == every_asset
    assert parts["ingest/events"] == {str(DAYS[1]), str(DAYS[2])} and parts["kpi/uar_30d"] == parts["ingest/events"]
    assert "events: 1 late file(s)" in request.tags["crm/restatement"]
    again, cursor = evaluate(settings, instance, graph, cursor, now)
    assert isinstance(again, dg.SkipReason)  # the same change is not requested twice

    # a file in folder DAYS[2] whose rows all belong to DAYS[2] is late for DAYS[2] only, not for DAYS[1]
    # (which reads that folder too); a file still being written (modified a minute ago) waits
    write_events(root, DAYS[2], "events_next.csv", [f"{DAYS[2]}T12:00:00Z"], age_minutes=30)
    write_events(root, DAYS[0], "events_fresh.csv", [f"{DAYS[0]}T12:00:00Z"], age_minutes=1)
    request, cursor = evaluate(settings, instance, graph, cursor, now)
    assert requested(request)["ingest/events"] == {str(DAYS[2])}
    # ... until it has been quiet for the settle time
    request, cursor = evaluate(settings, instance, graph, cursor, now + pd.Timedelta(minutes=15))
    assert requested(request)["ingest/events"] == {str(d) for d in DAYS}


def test_late_crm_rows_request_their_day(ingested):
    settings, root, instance = ingested
    graph = build_definitions(settings).resolve_asset_graph()
    now = pd.Timestamp.now(tz="UTC")
    _, cursor = evaluate(settings, instance, graph, None, now + pd.Timedelta(days=1))  # landing changes: seen
    _, cursor = evaluate(settings, instance, graph, cursor, now + pd.Timedelta(days=1))
    with sqlite3.connect(root / "crm.sqlite") as db:
        columns = [r[1] for r in db.execute("pragma table_info(leads)")]
        row = dict(zip(columns, db.execute("select * from leads limit 1").fetchone(), strict=True))
        row.update(lead_id="L-LATE", created_at=f"{DAYS[0]}T09:00:00Z", updated_at=f"{DAYS[0]}T09:00:00Z")
        db.execute(f"insert into leads ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
                   list(row.values()))
    request, cursor = evaluate(settings, instance, graph, cursor, now + pd.Timedelta(days=1))
    assert requested(request)["ingest/crm_leads"] == {str(d) for d in DAYS}
    assert "crm_leads: 1 late row(s)" in request.tags["crm/restatement"]
    assert isinstance(evaluate(settings, instance, graph, cursor, now + pd.Timedelta(days=1))[0], dg.SkipReason)


def test_an_identity_change_restates_the_person_counting_assets_of_earlier_days(ingested):
    settings, _, instance = ingested
    graph = build_definitions(settings).resolve_asset_graph()
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=2)
    _, cursor = evaluate(settings, instance, graph, None, later)
    _, cursor = evaluate(settings, instance, graph, cursor, later)
    assert "identity" in json.loads(cursor)
    write_identity_changes(settings, DAYS[2], [("merge", "p_a", "p_b")])
    request, cursor = evaluate(settings, instance, graph, cursor, later)
    parts = requested(request)
    counting = {k.to_user_string() for k in person_counting_keys()}
    assert set(parts) == counting | {"audience_membership"}
    assert parts["kpi/uar_30d"] == {str(DAYS[0]), str(DAYS[1])}  # the days before the change
    assert parts["audience_membership"] == {str(d) for d in DAYS}  # since chains up to the newest day
    assert "identity changes" in request.tags["crm/restatement"]
    assert isinstance(evaluate(settings, instance, graph, cursor, later)[0], dg.SkipReason)


def test_a_restatement_request_is_a_backfill_the_daemon_accepts(ingested):
    """The sensor daemon turns the request into a backfill exactly like this (dagster._daemon.sensor, no public
    API); each non-subsettable step must be targeted whole, or the backfill fails."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    settings, root, instance = ingested
    graph = build_definitions(settings).resolve_asset_graph()
    now = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)
    _, cursor = evaluate(settings, instance, graph, None, now)
    write_events(root, DAYS[1], "events_daemon.csv", [f"{DAYS[1]}T15:00:00Z"], age_minutes=30)
    write_identity_changes(settings, DAYS[1], [("split", "p_c", "p_d")])
    request, _ = evaluate(settings, instance, graph, cursor, now)
    subset = request.asset_graph_subset
    for key in subset.asset_keys:  # whole steps only
        for sibling in graph.get(key).execution_set_asset_keys:
            assert subset.get_partitions_subset(sibling).get_partition_keys() == \
                subset.get_partitions_subset(key).get_partition_keys(), (key, sibling)
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id="restate", dynamic_partitions_store=instance, backfill_timestamp=time.time(),
        asset_graph_subset=subset, tags=request.tags, title=None, description=None, run_config=None)
    instance.add_backfill(backfill)
    stored = instance.get_backfill("restate")
    assert stored.status == BulkActionStatus.REQUESTED and "crm/restatement" in stored.tags
    targeted = stored.asset_backfill_data.target_subset
    assert set(targeted.get_partitions_subset(dg.AssetKey(["ingest", "events"])).get_partition_keys()) == \
        {str(DAYS[1]), str(DAYS[2])}
    # the identity change of DAYS[1] restates DAYS[0] for the person-counting assets (already in the late range
    # from DAYS[1] on)
    assert str(DAYS[0]) in set(targeted.get_partitions_subset(dg.AssetKey(["kpi", "uar_30d"])).get_partition_keys())


def test_the_sensor_definition_evaluates_through_dagster(ingested):
    """The registered sensor itself (not only `evaluate`): Dagster's context, cursor and result."""
    settings, root, instance = ingested
    # sample data: the sensor may request runs that pseudonymise with the development key (test_secrets.py
    # shows it skipping otherwise)
    defs = build_definitions(settings.with_overrides(allow_development_pii_key=True))
    sensor = next(s for s in defs.sensors if s.name == "restatement_sensor")
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    first = sensor(context)
    assert context.cursor and "identity" in json.loads(context.cursor)
    write_events(root, DAYS[2], "events_sensor.csv", [f"{DAYS[2]}T16:00:00Z"], age_minutes=30)
    second = sensor(dg.build_sensor_context(instance=instance, definitions=defs, cursor=context.cursor))
    requests = second.run_requests if hasattr(second, "run_requests") else [second]
    assert first is not None and any(
        r.asset_graph_subset is not None and str(DAYS[2]) in set(
            r.asset_graph_subset.get_partitions_subset(dg.AssetKey(["ingest", "events"])).get_partition_keys())
        for r in requests if isinstance(r, dg.RunRequest))
