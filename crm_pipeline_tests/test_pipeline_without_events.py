"""Real Dagster runs of the whole graph for a shop with orders and a CRM but no events source at all (docs/inputs.md
section 2: a source with no folder is empty and everything downstream runs), followed by a day on which every
landing source is empty (past the generated range: no folder of any source, no CRM row created or updated).

Every asset is materialised for every day with every blocking check passing, and the numbers are the ones
docs/outputs.md section 1 prescribes for empty populations.
"""

import datetime as dt
import os
import shutil
import time

import dagster as dg
import pandas as pd
import pyarrow.dataset as pads
import pytest
from dagster._core.event_api import PartitionKeyFilter  # as crm_pipeline.health: no public API for this

from crm_pipeline.cli import run_range
from crm_pipeline.definitions import build_definitions
from crm_pipeline.health import check_outcomes
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS, LANDING_SOURCES
from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.restatement import evaluate
from crm_pipeline_tests.conftest import records, tiny_world

pytestmark = pytest.mark.slow

START = dt.date(2026, 10, 1)
GENERATED = [START + dt.timedelta(days=i) for i in range(3)]
QUIET = START + dt.timedelta(days=3)  # past the generated range: every landing source is empty
DAYS = [*GENERATED, QUIET]
MODELS = ("first_touch", "last_non_direct", "last_touch", "linear", "markov", "position_based", "shapley",
          "time_decay")
N = None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("orders_only")
    # no bad rows, so that every check of every day can be asserted; the anomaly check needs 2 days of history
    settings = tiny_world(root, START, days=len(GENERATED), seed=3, bad_rate=0.0).with_overrides(
        ground_truth_root=str(root / "truth"), anomaly_min_days=2)
    shutil.rmtree(root / "landing" / "events")  # an orders-only shop: no events folder at all
    with dg.instance_for_test() as instance:
        rows = run_range(settings, DAYS[0], DAYS[-1], instance=instance, echo=lambda *_: None)
        yield settings, root, instance, pd.DataFrame(rows)


def part(settings, *path: str, day: dt.date) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(settings.warehouse_root, *path, f"date={day}", "part.parquet"))


def row(frame: pd.DataFrame, **dims: str | None) -> tuple:
    """(numerator, denominator, value, unit) of the one row with these dimension values (None: null)."""
    match = pd.Series(True, index=frame.index)
    for name, value in dims.items():
        match &= frame[name].isna() if value is None else frame[name] == value
    assert match.sum() == 1, dims
    return records(frame.loc[match, ["numerator", "denominator", "value", "unit"]])[0]


def metadata(instance, key: list[str], day: dt.date) -> dict[str, object]:
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[day.isoformat()]), limit=1).records
    return {k: v.value for k, v in found[0].asset_materialization.metadata.items()}


def check_evaluation(instance, key: list[str], check_name: str, day: dt.date) -> dg.AssetCheckEvaluation:
    """The evaluation of an asset's check in the run that materialised the asset's partition `day`."""
    materialised = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[day.isoformat()]), limit=1).records[0]
    for event in instance.all_logs(materialised.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = event.dagster_event.event_specific_data
        if evaluation.asset_key == dg.AssetKey(key) and evaluation.check_name == check_name:
            return evaluation
    raise AssertionError(f"{key}:{check_name} was not evaluated on {day}")


def test_every_asset_is_materialised_every_day_and_no_check_fails(run):
    settings, _, instance, _ = run
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string())
    assert len(keys) >= 60
    wanted = {d.isoformat() for d in DAYS}
    assert {k.to_user_string() for k in keys if set(instance.get_materialized_partitions(k)) != wanted} == set()
    check_keys = sorted({c for a in defs.assets or [] for c in a.check_keys}, key=lambda c: c.to_user_string())
    for day in DAYS:
        counts, failed = check_outcomes(instance, check_keys, day.isoformat())
        assert failed == [] and counts["not_evaluated"] == 0, (day, counts)
        assert counts["passed"] + counts["warned"] == len(check_keys)
    # an empty day is not flagged as suspicious: it adds no warning of its own. The warnings it shares with the
    # day before are about the history (a CLV fit on three days of orders cannot be pinned down; service KPIs
    # whose 30-day windows are still filling move away from their trailing median), not about the empty day.
    quiet = warned_checks(instance, check_keys, QUIET)
    assert set(quiet) <= set(warned_checks(instance, check_keys, GENERATED[-1])), quiet
    assert not [name for name in quiet if name.startswith(("ingest/", "quarantine/", "identity", "attribution"))]


def warned_checks(instance, check_keys: list[dg.AssetCheckKey], day: dt.date) -> list[str]:
    """The checks whose latest evaluation for `day` did not pass (the blocking ones are asserted to pass)."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=day.isoformat()))
    return sorted(key.to_user_string() for key, record in latest.items()
                  if record.event is not None and not record.event.dagster_event.event_specific_data.passed)


def test_the_sources_are_counted_and_reconcile(run):
    settings, _, _, summary = run
    assert len(summary) == 11 * len(DAYS)  # every landing source and CRM table, every day
    assert (summary["rows_in"] == summary["clean"] + summary["quarantined"] + summary["duplicates"]).all()
    by = summary.set_index(["day", "source"])
    for day in GENERATED:
        assert by.loc[(day.isoformat(), "events"), "rows_in"] == 0  # no folder: an empty partition
        assert by.loc[(day.isoformat(), "orders"), "clean"] > 0
    quiet = by.loc[QUIET.isoformat()]
    assert (quiet["rows_in"] == 0).all(), quiet  # the day past the range: nothing at all arrived
    for source in LANDING_SOURCES:  # written with the contract's schema, so whole histories read back
        history = pd.read_parquet(os.path.join(settings.warehouse_root, "ingest", source))
        assert set(CLEAN_SCHEMAS[source].names) <= set(history.columns)
        assert len(history) == summary.loc[summary["source"] == source, "clean"].sum()
    assert pd.read_parquet(os.path.join(settings.warehouse_root, "ingest", "events")).empty


def test_every_order_is_unattributed_and_revenue_reconciles(run):
    settings, _, _, _ = run
    for day in DAYS:
        orders = part(settings, "ingest", "orders", day=day)
        journeys = part(settings, "attribution", "journeys", day=day)
        credits = part(settings, "attribution", "order_attribution", day=day)
        assert sorted(journeys["order_id"]) == sorted(orders["order_id"])
        assert (journeys["count_touches"] == 0).all() and journeys["channel_path"].isna().all()
        assert set(credits["channel"]) <= {"(unattributed)"} and (credits["credit"] == 1.0).all()
        assert len(credits) == len(orders) * len(MODELS)
        per_model = credits.groupby("model")["attributed_revenue"].sum().reindex(list(MODELS), fill_value=0.0)
        assert (per_model - orders["net_revenue"].sum()).abs().max() < 0.005
        kpi = part(settings, "kpi", "attributed_revenue", day=day)
        total = kpi.loc[kpi["model"].isna() & kpi["channel"].isna(), "value"].iloc[0]
        assert total == pytest.approx(orders["net_revenue"].sum())
        assert part(settings, "attribution", "touches", day=day).empty
        assert part(settings, "attribution", "channel_model_values", day=day).empty  # nothing to train on
    assert len(part(settings, "ingest", "orders", day=QUIET)) == 0


def test_kpis_that_need_events_write_their_empty_population_rows(run):
    settings, _, _, _ = run
    for day in DAYS:
        assert records(part(settings, "kpi", "uar_30d", day=day)) == [(N, 0.0, N, 0.0, "count")]
        assert records(part(settings, "kpi", "asset_engagement_ratio", day=day)) == [
            (N, 0.0, 0.0, N, "ratio"), ("1d", 0.0, 0.0, N, "ratio"), ("30d", 0.0, 0.0, N, "ratio")]
        assert records(part(settings, "kpi", "device_hour_index", day=day)) == [(N, N, 0.0, 0.0, N, "ratio")]
        rates = part(settings, "kpi", "engagement_rates", day=day)
        assert len(rates) == 11
        assert row(rates, metric="email_open_rate") == (0.0, 0.0, N, "ratio")
        assert row(rates, metric="website_visits") == (0.0, N, 0.0, "count")
        owned = part(settings, "kpi", "owned_paid_ratio", day=day)
        assert len(owned) == 9 and owned["value"].isna().all() and (owned["denominator"] == 0).all()
        orders = float(len(part(settings, "ingest", "orders", day=day)))
        influences = part(settings, "kpi", "influences_per_order", day=day)
        zero, one = (N, N) if orders == 0 else (0.0, 1.0)  # every order has 0 channels: all in bucket 0
        assert row(influences, metric="channels", bucket=None) == (0.0, orders, zero, "count")
        assert row(influences, metric="order_share", bucket="0") == (orders, orders, one, "ratio")
        assert row(influences, metric="order_share", bucket="5") == (0.0, orders, zero, "ratio")
        assert records(part(settings, "kpi", "time_to_conversion", day=day)) == [
            (N, N, 0.0, N, "days"), ("mean_days", 0.0, 0.0, N, "days"), ("median_days", N, 0.0, N, "days")]
        # past purchasers come from orders alone; the event audiences exist with 0 members
        sizes = part(settings, "kpi", "audiences", day=day)
        events_only = sizes[sizes["audience"].isin(["cart_abandoners", "recent_email_clickers", "active_app_users"])]
        assert len(events_only) == 6 and (events_only["value"] == 0).all()


def test_the_quiet_day_carries_the_states_and_writes_empty_day_rows(run):
    settings, _, _, _ = run
    last = GENERATED[-1]
    assert records(part(settings, "kpi", "time_to_first_value", day=QUIET)) == [(N, 0.0, N, "days")]
    assert records(part(settings, "kpi", "attributed_revenue", day=QUIET)) == [
        (N, N, 0.0, N, 0.0, "currency"), *((m, N, 0.0, N, 0.0, "currency") for m in MODELS)]
    counts = part(settings, "kpi", "asset_counts", day=QUIET).set_index(["asset", "metric"])
    registered = part(settings, "kpi", "asset_counts", day=last).set_index(["asset", "metric"]).loc[
        ("registered_customers", "size"), "value"]
    assert registered > 0
    assert counts.loc[("registered_customers", "size"), "value"] == registered  # the CRM state carried over
    assert counts.loc[("registered_customers", "net_change"), "value"] == 0.0
    for state in (("aggregates", "order_book"), ("aggregates", "first_orders"), ("identity", "identity_map")):
        assert len(part(settings, *state, day=QUIET)) == len(part(settings, *state, day=last)) > 0, state
    health = part(settings, "pipeline_health", day=QUIET).set_index(["area", "subject", "measure"])["value"]
    assert health[("attribution", "orders", "orders")] == 0
    assert pd.isna(health[("attribution", "orders", "orders_with_touch_share")])
    assert health[("checks", "all", "failed")] == 0 and health[("checks", "all", "not_evaluated")] == 0
    assert (health.loc["ingestion"].xs("rows_in", level="measure") == 0).all()


def test_the_scorecard_has_every_kpi_and_anomalies_are_judged_on_values_only(run):
    settings, _, instance, _ = run
    names = sorted(k.name for k in ALL_KPIS)
    for day in DAYS:
        scorecard = part(settings, "kpi_scorecard", day=day)
        assert scorecard["kpi"].tolist() == names and scorecard["unit"].notna().all()
    history = pads.dataset(os.path.join(settings.warehouse_root, "kpi_scorecard"), format="parquet",
                           partitioning="hive").to_table().to_pandas()
    assert history.loc[history["kpi"] == "uar_30d", "value"].tolist() == [0.0] * len(DAYS)
    assert history.loc[history["kpi"] == "asset_engagement_ratio", "value"].isna().all()
    day = DAYS[2]  # two days of history before it (CRM_ANOMALY_MIN_DAYS = 2 here)
    # a headline that is always null (no visit ever) has no history to compare with: passes, not evaluated
    ratio = check_evaluation(instance, ["kpi", "asset_engagement_ratio"], "headline_within_usual_range", day)
    assert ratio.passed and ratio.metadata["evaluated"].value is False
    # a headline that is always 0 is compared, and 0 is as usual
    uar = check_evaluation(instance, ["kpi", "uar_30d"], "headline_within_usual_range", day)
    assert uar.passed and uar.metadata["evaluated"].value is True and uar.metadata["robust_z"].value == 0.0
    # the quiet day's revenue of 0 is judged against the days before (a number, not an error)
    revenue = check_evaluation(instance, ["kpi", "attributed_revenue"], "headline_within_usual_range", QUIET)
    assert revenue.metadata["evaluated"].value is True and revenue.metadata["headline"].value == 0.0
    assert revenue.metadata["robust_z"].value < 0


def test_identity_resolves_persons_from_orders_and_the_crm_alone(run):
    _, _, instance, _ = run
    md = metadata(instance, ["identity", "identity_map"], GENERATED[-1])
    assert md["persons"] > 0 and md["quality_identifiers_precision"] >= 0.99
    assert md["quality_customer_records_f1"] >= 0.99  # duplicate CRM records still matched on their profiles
    assert md["quality_identifiers_count_identifiers_unseen"] > 0  # the cookies only events would have shown


def test_the_restatement_sensor_watches_a_shop_without_events(run):
    settings, root, instance, _ = run
    graph = build_definitions(settings).resolve_asset_graph()
    now = pd.Timestamp.now(tz="UTC")
    first, cursor = evaluate(settings, instance, graph, None, now)
    assert isinstance(first, dg.SkipReason)  # no events folder is nothing late
    day = GENERATED[1]
    late = root / "landing" / "orders" / f"date={day}" / "late_orders.csv"
    late.write_text("order_id,ordered_at,customer_id,gross_revenue,currency\n"
                    f"late-1,{day}T12:00:00Z,C-LATE,10.00,USD\n")
    stamp = time.time() - 30 * 60  # settled
    os.utime(late, (stamp, stamp))
    try:
        request, _ = evaluate(settings, instance, graph, cursor, now)
    finally:
        late.unlink()
    assert isinstance(request, dg.RunRequest)
    subset = request.asset_graph_subset
    assert set(subset.get_partitions_subset(dg.AssetKey(["ingest", "orders"])).get_partition_keys()) == {
        d.isoformat() for d in DAYS[1:]}
    assert "orders: 1 late file(s)" in request.tags["crm/restatement"]
