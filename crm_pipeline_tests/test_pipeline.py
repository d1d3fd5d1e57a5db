"""Real Dagster runs of the whole graph on a tiny generated world, read back as a downstream user would."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from crm_pipeline.cli import explain, run_range
from crm_pipeline.generator import generate_world
from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.settings import Settings

pytestmark = pytest.mark.slow

START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_world(str(root / "landing"), f"sqlite:///{root / 'crm.sqlite'}", str(root / "truth"),
                   scale="tiny", start=START, days=4, seed=11)
    return root


def _settings(world: Path, warehouse: Path) -> Settings:
    return Settings(landing_root=str(world / "landing"), warehouse_root=str(warehouse),
                    database_url=f"sqlite:///{world / 'crm.sqlite'}", start_date=START,
                    ground_truth_root=str(world / "truth"))


@pytest.fixture(scope="module")
def materialised(world, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("warehouse")
    settings = _settings(world, warehouse)
    with dg.instance_for_test() as instance:
        rows = run_range(settings, DAYS[0], DAYS[-1], instance=instance, echo=lambda *_: None)
        yield settings, warehouse, rows, instance


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_source_and_day_is_written_and_counts_reconcile(materialised):
    _, _, rows, _ = materialised
    summary = pd.DataFrame(rows)
    assert len(summary) == 11 * len(DAYS)  # 5 landing sources + 6 CRM tables, every day
    assert (summary["rows_in"] == summary["clean"] + summary["quarantined"] + summary["duplicates"]).all()
    events = summary[summary["source"] == "events"]
    assert (events["clean"] > 0).all()
    assert events["quarantined"].sum() > 0  # the generator injects bad rows at 1%


def test_outputs_read_back_as_hive_datasets(materialised):
    _, warehouse, rows, _ = materialised
    clean_rows = {r["source"]: 0 for r in rows}
    for r in rows:
        clean_rows[r["source"]] += int(r["clean"])
    for source in ("events", "orders", "refunds", "costs", "fx_rates"):
        root = warehouse / "ingest" / source
        days = sorted(p.name for p in root.iterdir())
        assert days == [f"date={d}" for d in DAYS]
        assert all([f.name for f in (root / d).iterdir()] == ["part.parquet"] for d in days)
        dataset = pads.dataset(str(root), format="parquet", partitioning="hive")
        table = dataset.to_table()
        assert table.num_rows == clean_rows[source]
        days_with_rows = sorted({str(r["day"]) for r in rows if r["source"] == source and int(r["clean"])})
        assert sorted(set(table.column("date").to_pylist())) == days_with_rows
        frame = pd.read_parquet(root)  # pandas over the whole history: no `date` column inside the files
        assert len(frame) == clean_rows[source]
    events = pd.read_parquet(warehouse / "ingest" / "events")
    assert events["event_id"].is_unique
    assert "email" not in events.columns and "phone" not in events.columns
    assert events["email_hash"].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
    quarantine = pads.dataset(str(warehouse / "quarantine" / "events"), format="parquet",
                              partitioning="hive").to_table().to_pandas()
    assert quarantine["reason"].notna().all()
    assert all(json.loads(r) for r in quarantine["record"].dropna())


def test_crm_snapshots_grow_and_profiles_stay_restricted(materialised):
    _, warehouse, _, _ = materialised
    sizes = [len(pd.read_parquet(warehouse / "ingest" / "crm_customers" / f"date={d}" / "part.parquet"))
             for d in DAYS]
    assert sizes == sorted(sizes) and sizes[0] > 0
    public = pd.read_parquet(warehouse / "ingest" / "crm_customers")
    assert not {"email", "phone", "first_name", "last_name", "date_of_birth", "address_line"} & set(public.columns)
    profiles = pd.read_parquet(warehouse / "restricted" / "customer_profiles" / f"date={DAYS[-1]}")
    assert len(profiles) == sizes[-1]


def test_rerunning_a_day_is_idempotent(materialised):
    settings, warehouse, _, instance = materialised
    day = DAYS[-1]  # the newest day: no later identity change can apply
    files = sorted(p for p in warehouse.rglob(f"date={day}/*") if p.is_file())
    before = {p: _digest(p) for p in files}
    run_range(settings, day, day, instance=instance, echo=lambda *_: None)
    after_files = sorted(p for p in warehouse.rglob(f"date={day}/*") if p.is_file())
    assert after_files == files  # no extra files, no temporary leftovers
    assert {p: _digest(p) for p in after_files} == before


def test_rerunning_an_old_day_differs_only_by_later_identity_changes(materialised):
    settings, warehouse, _, instance = materialised
    day = DAYS[0]
    files = sorted(p for p in warehouse.rglob(f"date={day}/*") if p.is_file())
    before = {p: _digest(p) for p in files}
    run_range(settings, day, day, instance=instance, echo=lambda *_: None)
    changed = {p.parent.parent.relative_to(warehouse).as_posix() for p in files if _digest(p) != before[p]}
    from crm_pipeline.restatement import person_counting_keys

    # only what follows persons through later identity changes (docs/outputs.md 2.2) may change: the journeys and the
    # training states and models fed by them, the person-counting KPIs and audiences; never ingestion,
    # identity, touches or the visit aggregates
    remapping = {k.to_user_string() for k in person_counting_keys()} | {"audience_membership"}
    trained = {p.relative_to(warehouse).as_posix() for p in (warehouse / "attribution").iterdir() if p.is_dir()}
    assert changed <= remapping | (trained - {"attribution/touches"})
    changes = pd.read_parquet(warehouse / "identity" / "identity_merges", columns=["change_date"])
    if not (pd.to_datetime(changes["change_date"]).dt.date > day).any():
        assert not changed
    again = {p: _digest(p) for p in files}
    run_range(settings, day, day, instance=instance, echo=lambda *_: None)
    assert {p: _digest(p) for p in files} == again  # and a second re-run changes nothing


def test_a_late_file_changes_the_day_when_rerun(world, tmp_path):
    settings = _settings(world, tmp_path / "warehouse")
    day = DAYS[0]
    with dg.instance_for_test() as instance:
        run_range(settings, day, day, select="key:ingest/events or key:quarantine/events", instance=instance, echo=lambda *_: None)
        path = tmp_path / "warehouse" / "ingest" / "events" / f"date={day}" / "part.parquet"
        before = pd.read_parquet(path)
        late = pd.DataFrame({
            "event_id": ["late-1", "late-2"],
            "occurred_at": [f"{day}T10:00:00+00:00", f"{day}T11:30:00+00:00"],
            "event_type": ["session_start", "login"],
            "anonymous_id": ["cookie-late", "cookie-late"],
            "customer_id": [None, "C-late"],
            "referrer": ["https://www.google.com/", None],
        })
        late_dir = Path(settings.landing_root) / "events" / f"date={day}"
        late_file = late_dir / "zz_late_delivery.csv"
        late.to_csv(late_file, index=False)
        try:
            run_range(settings, day, day, select="key:ingest/events or key:quarantine/events", instance=instance, echo=lambda *_: None)
        finally:
            late_file.unlink()
        after = pd.read_parquet(path)
    assert len(after) == len(before) + 2
    added = after[after["event_id"].isin(["late-1", "late-2"])].set_index("event_id")
    assert added.loc["late-1", "channel"] == "seo"
    assert added.loc["late-2", "channel"] == "direct"


def _metadata(instance, key: list[str], day: dt.date) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[day.isoformat()]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_kpi_materialisations_carry_column_lineage_and_row_counts(materialised):
    _, _, _, instance = materialised
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["kpi", "uar_30d"]), asset_partitions=[DAYS[-1].isoformat()]),
        limit=1).records
    metadata = records[0].asset_materialization.metadata
    lineage = metadata["dagster/column_lineage"].value
    deps = {(d.asset_key.to_user_string(), d.column_name) for d in lineage.deps_by_column["numerator"]}
    assert ("aggregates/person_engagement", "person_id") in deps
    assert ("identity/identity_merges", "other_person_id") in deps  # persons follow later merges
    assert {d.column_name for d in lineage.deps_by_column["channel"]} == {"channel"}
    assert metadata["dagster/row_count"].value == metadata["rows"].value > 0


def test_pipeline_health_reports_the_day(materialised):
    _, warehouse, rows, instance = materialised
    day = DAYS[-1]
    health = pd.read_parquet(warehouse / "pipeline_health" / f"date={day}" / "part.parquet")
    t = health.set_index(["area", "subject", "measure"])["value"]
    events = next(r for r in rows if r["source"] == "events" and r["day"] == day.isoformat())
    assert t[("ingestion", "events", "rows_in")] == events["rows_in"]
    assert t[("ingestion", "events", "rows_quarantined")] == events["quarantined"]
    assert 0 < t[("identity", "all", "match_rate")] <= 1
    journeys = pd.read_parquet(warehouse / "attribution" / "journeys" / f"date={day}" / "part.parquet")
    assert t[("attribution", "orders", "orders")] == len(journeys)
    # every inline check of the day ran before the health asset; the world's unparsable file of the last day is
    # the one (non-blocking) failure, and the health asset's own check warns about it
    metadata = _metadata(instance, ["pipeline_health"], day)
    assert metadata["checks_not_evaluated"] == 0 and metadata["failed_checks"] == ["ingest/events:no_unparsable_files"]
    assert metadata["checks_passed"] > 100 and t[("checks", "all", "passed")] == metadata["checks_passed"]


def test_the_demo_prints_the_days_health(materialised, capsys):
    from crm_pipeline.cli import print_health_summary

    _, _, _, instance = materialised
    print_health_summary(DAYS[-1], instance)
    out = capsys.readouterr().out
    assert f"Health on {DAYS[-1]}: checks " in out and "0 not evaluated" in out
    assert "failed: ingest/events:no_unparsable_files" in out


def test_identity_maps_every_identifier_to_one_person(materialised):
    _, warehouse, _, _ = materialised
    identity = warehouse / "identity"
    events = pd.read_parquet(warehouse / "ingest" / "events")
    for i, day in enumerate(DAYS):
        idmap = pd.read_parquet(identity / "identity_map" / f"date={day}" / "part.parquet")
        assert not idmap.duplicated(["identifier_type", "identifier"]).any()
        assert idmap["person_id"].str.fullmatch(r"p_[0-9a-f]{16}").all()
        seen = events[events["date"].astype(str) <= day.isoformat()]
        cookies = set(seen["anonymous_id"].dropna())
        assert cookies <= set(idmap.loc[idmap["identifier_type"] == "anonymous_id", "identifier"])
        if i:  # the map only grows: every identifier of yesterday is still there
            before = pd.read_parquet(identity / "identity_map" / f"date={DAYS[i - 1]}" / "part.parquet")
            assert len(before.merge(idmap, on=["identifier_type", "identifier"])) == len(before)
    for name in ("identity_map", "identity_links", "identity_merges", "identity_rejections", "fuzzy_matches"):
        columns = set(pd.read_parquet(identity / name).columns)
        assert not columns & {"email", "phone", "first_name", "last_name", "date_of_birth", "address_line"}, name
    rejections = pd.read_parquet(identity / "identity_rejections" / f"date={DAYS[-1]}" / "part.parquet")
    assert set(rejections["reason"]) <= {"placeholder", "hub", "cardinality", "shared"}
    assert len(rejections) > 0  # the generator's shared devices and placeholder emails are refused


def test_identity_quality_against_ground_truth(materialised):
    _, _, _, instance = materialised
    md = _metadata(instance, ["identity", "identity_map"], DAYS[-1])
    assert md["quality_identifiers_precision"] >= 0.99
    assert md["quality_identifiers_f1_reachable"] >= 0.99
    assert md["quality_customer_records_f1"] >= 0.99
    assert md["quality_customer_records_count_true_pairs"] > 0  # the tiny world has duplicate registrations


def test_explain_a_person_with_two_customer_records(materialised):
    settings, warehouse, _, _ = materialised
    idmap = pd.read_parquet(warehouse / "identity" / "identity_map" / f"date={DAYS[-1]}" / "part.parquet")
    customers = idmap[idmap["identifier_type"] == "customer_id"]
    person = customers["person_id"].value_counts().index[0]
    assert (customers["person_id"] == person).sum() >= 2
    person_id, table = explain(settings, person)
    assert person_id == person
    mine = table[table["row_kind"] == "identifier"]
    assert set(mine["identifier_a"]) == set(idmap.loc[idmap["person_id"] == person, "identifier"])
    accepted = table[(table["row_kind"] == "link") & (table["is_accepted"] == True)]  # noqa: E712
    assert len(accepted) >= len(mine) - 1  # enough accepted links to hold them together
    cid = customers.loc[customers["person_id"] == person, "identifier"].iloc[0]
    assert explain(settings, cid, "customer_id")[0] == person


def test_attribution_reconciles_with_the_days_orders(materialised):
    _, warehouse, _, _ = materialised
    for day in DAYS:
        orders = pd.read_parquet(warehouse / "ingest" / "orders" / f"date={day}" / "part.parquet")
        journeys = pd.read_parquet(warehouse / "attribution" / "journeys" / f"date={day}" / "part.parquet")
        credits = pd.read_parquet(warehouse / "attribution" / "order_attribution" / f"date={day}" / "part.parquet")
        assert sorted(journeys["order_id"]) == sorted(orders["order_id"])  # one journey per order of the day
        per_model = credits.groupby("model")["attributed_revenue"].sum()
        assert set(per_model.index) == {"first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
                                        "position_based", "markov", "shapley"}
        assert (per_model - orders["net_revenue"].sum()).abs().max() < 0.005  # to the cent
        sums = credits.groupby(["order_id", "model"])["credit"].sum()
        assert ((sums - 1).abs() < 1e-9).all()
        no_touch = journeys.loc[journeys["count_touches"] == 0, "order_id"]
        unattributed = credits[credits["order_id"].isin(no_touch)]
        assert set(unattributed["channel"]) <= {"(unattributed)"}
    touches = pd.read_parquet(warehouse / "attribution" / "touches")
    assert set(touches["event_type"]) <= {"ad_click", "email_click", "sms_click", "push_open", "social_interaction",
                                          "session_start", "browser_app_click", "app_open"}
    assert touches["person_id"].notna().all()


def test_data_driven_models_are_trained_on_the_trailing_window(materialised):
    _, warehouse, _, instance = materialised
    day = DAYS[-1]
    values = pd.read_parquet(warehouse / "attribution" / "channel_model_values" / f"date={day}" / "part.parquet")
    assert set(values["model"]) == {"markov", "shapley"}
    assert values["value"].ge(0).all()
    md = _metadata(instance, ["attribution", "channel_model_values"], day)
    converting = pd.read_parquet(warehouse / "attribution" / "converting_paths" / f"date={day}" / "part.parquet")
    journeys = pd.read_parquet(warehouse / "attribution" / "journeys")
    # every order of the window with a touch is a converting training journey
    assert md["training_converting_journeys"] == len(converting) == int((journeys["count_touches"] > 0).sum())
    assert md["training_non_converting_journeys"] > 0
    shapley = values[values["model"] == "shapley"]
    assert shapley["value"].sum() == pytest.approx(md["shapley_grand_coalition_value"])  # efficiency
    transitions = pd.read_parquet(warehouse / "attribution" / "markov_transitions" / f"date={day}" / "part.parquet")
    sums = transitions.groupby("from_state")["probability"].sum()
    assert ((sums - 1).abs() < 1e-9).all()


def test_every_output_dataset_reads_whole_with_pandas_pyarrow_and_duckdb(materialised):
    import duckdb

    _, warehouse, _, _ = materialised
    roots = sorted({p.parent.parent for p in warehouse.rglob("date=*/part.parquet")})
    assert len(roots) >= 60  # every partitioned asset of the graph
    for root in roots:
        files = list(root.glob("date=*/part.parquet"))
        counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        expected = sum(counts)
        assert len(pd.read_parquet(root)) == expected, root
        assert pads.dataset(str(root), format="parquet", partitioning="hive").count_rows() == expected, root
        glob = f"{root}/date=*/part.parquet"
        rows = duckdb.sql(f"select count(*), count(distinct date) from read_parquet('{glob}', "
                          "hive_partitioning = true, union_by_name = true)").fetchall()[0]
        assert rows == (expected, sum(1 for n in counts if n)), root  # the day comes from the folder name


def test_kpis_follow_the_output_conventions_and_fill_the_scorecard(materialised):
    _, warehouse, _, instance = materialised
    for name in (k.name for k in ALL_KPIS):
        root = warehouse / "kpi" / name
        assert sorted(p.name for p in root.iterdir()) == [f"date={d}" for d in DAYS]
        history = pads.dataset(str(root), format="parquet", partitioning="hive").to_table()
        assert history.schema.field("numerator").type == "double" and "unit" in history.schema.names
        frame = pd.read_parquet(root)
        assert frame["unit"].notna().all()
        dims = [c for c in frame.columns if c not in ("numerator", "denominator", "value", "unit", "date")]
        totals = frame[frame[dims].isna().all(axis=1)]
        assert sorted(totals["date"].astype(str)) == [d.isoformat() for d in DAYS]  # one total row a day
        assert _metadata(instance, ["kpi", name], DAYS[0])["window_complete"] is False  # reads before the start
    revenue = pd.read_parquet(warehouse / "kpi" / "attributed_revenue" / f"date={DAYS[-1]}" / "part.parquet")
    orders = pd.read_parquet(warehouse / "ingest" / "orders" / f"date={DAYS[-1]}" / "part.parquet")
    assert revenue.loc[revenue["model"].isna() & revenue["channel"].isna(), "value"].iloc[0] == pytest.approx(
        orders["net_revenue"].sum())
    scorecard = pd.read_parquet(warehouse / "kpi_scorecard" / f"date={DAYS[-1]}" / "part.parquet")
    assert scorecard["kpi"].tolist() == sorted(k.name for k in ALL_KPIS) and scorecard["unit"].notna().all()
    assert "| attributed_revenue |" in _metadata(instance, ["kpi_scorecard"], DAYS[-1])["scorecard"]


def test_clv_predictions_and_the_kpi_are_written_for_every_day(materialised):
    from crm_pipeline.kpis.persons import PersonRemap

    settings, warehouse, _, instance = materialised
    for day in DAYS:
        def read(*key: str, day=day) -> pd.DataFrame:
            return pd.read_parquet(warehouse.joinpath(*key, f"date={day}", "part.parquet"))

        book = read("aggregates", "order_book")
        buyers = PersonRemap.load(settings, day, 1)(book.loc[~book["fully_refunded"], "person_id"])
        predictions = read("clv_predictions")
        assert sorted(predictions["person_id"]) == sorted(set(buyers)) and len(predictions) > 0
        assert not set(predictions.columns) & {"email", "email_hash", "phone", "customer_id", "first_name"}
        assert ((predictions["t"] <= predictions["T"]) & (predictions["x"] >= 0)).all()
        assert (predictions.loc[predictions["x"] == 0, ["t", "monetary"]] == 0).all().all()
        model = read("clv_model")
        assert len(model) == 7
        kpi = read("kpi", "clv_predictive")
        assert kpi["metric"].fillna("(total)").tolist() == ["(total)", "expected_purchases_12m",
                                                            "expected_value_12m", "p_alive"]
        assert (kpi["denominator"] == len(predictions)).all()
        md = _metadata(instance, ["kpi", "clv_predictive"], day)
        if md["fit_error"] == "-":
            assert model["value"].notna().all() and md["bg_nbd_r"] == model.set_index("parameter").loc["r", "value"]
            means = predictions[["expected_value_12m", "expected_purchases_12m", "p_alive"]].mean()
            assert kpi.set_index("metric")["value"].dropna().to_dict() == pytest.approx(means.to_dict())
        else:  # the data of a few days cannot support a fit: null values, the reason in the metadata
            assert kpi["value"].isna().all() and predictions["expected_value_12m"].isna().all()
            assert model["error"].eq(md["fit_error"]).all()
    # the first day has no repeat buyer yet
    assert "no buyer has a repeat order day" in _metadata(instance, ["kpi", "clv_predictive"], DAYS[0])["fit_error"]
