"""What an operator reads: every check says what it asserts (and when it may warn)."""

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crm_pipeline.definitions import DAILY_JOB_NAME, build_definitions
from crm_pipeline.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                    database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}", start_date=dt.date(2026, 10, 1))


def all_check_specs(defs: dg.Definitions) -> list[dg.AssetCheckSpec]:
    return [spec for definition in [*(defs.assets or []), *(defs.asset_checks or [])]
            for spec in definition.check_specs]


def test_every_check_of_the_definitions_has_a_description(settings):
    specs = all_check_specs(build_definitions(settings))
    assert len(specs) > 500  # every asset's inline checks and its freshness check
    missing = sorted(f"{s.asset_key.to_user_string()}:{s.name}" for s in specs if not (s.description or "").strip())
    assert missing == []


def test_checks_that_can_warn_say_when_it_is_expected(settings):
    specs = {(s.asset_key.to_user_string(), s.name): s.description
             for s in all_check_specs(build_definitions(settings))}
    assert "short history" in specs[("kpi/uar_30d", "headline_within_usual_range")]
    assert "not a fault in the data" in specs[("kpi/asset_engagement_ratio", "headline_at_least_target")]
    assert "only a warning for the metrics the catalog declares unbounded" in specs[
        ("kpi/uar_30d", "ratios_within_bounds")]
    # a primary-key check names its columns, and which of them may be null
    assert specs[("attribution/order_attribution", "primary_key_is_unique")] == (
        "(order_id, model, channel, campaign_id) is never repeated (null equals null); only campaign_id may be null")
    assert specs[("kpi_scorecard", "kpi_is_unique")] == "(kpi) is never null and never repeated"


def test_the_daily_job_runs_every_inline_check_and_leaves_freshness_to_its_sensor(settings):
    defs = build_definitions(settings)
    job = defs.resolve_job_def(DAILY_JOB_NAME)
    inline = {k for a in defs.assets or [] for k in a.check_keys}
    assert len(inline) > 400 and inline <= set(job.asset_layer.asset_graph.asset_check_keys)
    # the freshness checks (one multi-check op) are not part of the job
    assert not any(node.name.startswith("freshness_check") for node in job.graph.node_defs)
    # the schedule launches the same job, so its runs carry the job's name
    assert defs.resolve_schedule_def(f"{DAILY_JOB_NAME}_schedule").job_name == DAILY_JOB_NAME


@pytest.mark.slow
def test_command_line_runs_are_named_after_the_daily_job(tmp_path):
    from crm_pipeline.cli import run_range
    from crm_pipeline.generator import generate_world

    day = dt.date(2026, 10, 1)
    generate_world(str(tmp_path / "landing"), f"sqlite:///{tmp_path / 'crm.sqlite'}", str(tmp_path / "truth"),
                   scale="tiny", start=day, days=1, seed=5)
    settings = Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                        database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}", start_date=day)
    with dg.instance_for_test() as instance:
        # one KPI and everything upstream of it
        rows = run_range(settings, day, day, select="+key:kpi/asset_counts", instance=instance, echo=lambda *_: None)
        (run,) = instance.get_runs()
        assert run.job_name == DAILY_JOB_NAME
        assert run.tags["dagster/partition"] == "2026-10-01" and run.tags["crm_pipeline/source"] == "cli"
        assert {r["source"] for r in rows} >= {"crm_customers", "events", "orders"}  # the extractions it reads
        # only the selected assets ran, with their inline checks; no freshness check ran inside the run
        materialised = {r.event_log_entry.dagster_event.asset_key for r in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records}
        defs = build_definitions(settings)
        selected = dg.AssetSelection.from_string("+key:kpi/asset_counts").required_multi_asset_neighbors().resolve(
            defs.resolve_asset_graph())
        kpi = dg.AssetKey(["kpi", "asset_counts"])
        assert {kpi, dg.AssetKey(["ingest", "crm_customers"])} <= materialised <= selected
        assert dg.AssetKey(["kpi_scorecard"]) not in selected
        evaluated = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        names = {r.event_log_entry.dagster_event.event_specific_data.check_name for r in evaluated.records}
        assert {"row_counts_reconcile", "total_row_exists"} <= names and "freshness_check" not in names
        # the KPI's materialisation says which currency its amounts are in and whether its window is complete
        (record,) = instance.fetch_materializations(kpi, limit=1).records
        metadata = record.asset_materialization.metadata
        assert metadata["reporting_currency"].value == "USD"
        # CRM_START_DATE itself: the day's net changes would compare with the day before it
        assert metadata["window_complete"].value is False


def test_the_demo_explains_each_check_that_did_not_pass_from_its_description(settings, capsys):
    from crm_pipeline.cli import checks_not_passed, print_checks_not_passed

    defs = build_definitions(settings)
    day = dt.date(2026, 11, 3)

    def evaluation(asset: list[str], name: str, passed: bool, partition: str = "2026-11-03",
                   severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(asset_key=dg.AssetKey(asset), check_name=name, passed=passed,
                                       severity=severity, partition=partition)

    with dg.instance_for_test() as instance:
        for event in [
            evaluation(["kpi", "uar_30d"], "headline_within_usual_range", False),
            evaluation(["kpi", "aov_arpu"], "headline_within_usual_range", False),
            evaluation(["kpi", "ltv"], "headline_within_usual_range", True),  # passed: not listed
            evaluation(["kpi", "ltv"], "headline_within_usual_range", False, partition="2026-11-02"),  # other day
            evaluation(["ingest", "events"], "no_unparsable_files", False, severity=dg.AssetCheckSeverity.ERROR),
            evaluation(["ingest", "orders"], "quarantine_rate_below_threshold", True),
        ]:
            instance.report_runless_asset_event(event)
        problems = checks_not_passed(instance, defs, day)
        print_checks_not_passed(day, settings, instance)
    anomaly = next(s.description for s in defs.resolve_assets_def(dg.AssetKey(["kpi", "aov_arpu"])).check_specs
                   if s.name == "headline_within_usual_range")
    assert [(p[0], p[1], p[2]) for p in problems] == [
        ("ERROR", "no_unparsable_files", ["ingest/events"]),
        ("WARN", "headline_within_usual_range", ["kpi/aov_arpu", "kpi/uar_30d"])]
    assert problems[1][3] == anomaly and "short history" in anomaly
    out = capsys.readouterr().out.splitlines()
    assert out[-3] == "Checks that did not pass on 2026-11-03, and when each is expected:"
    assert out[-1] == f"  WARN  headline_within_usual_range on kpi/aov_arpu, kpi/uar_30d: {anomaly}"
    assert out[-2].startswith("  ERROR no_unparsable_files on ingest/events: fails, naming them, when whole files")


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    body = text[start + 1:text.index("\n## ", start + 1)]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_the_readme_snippets_read_kpi_outputs_with_pandas_and_duckdb(tmp_path, monkeypatch):
    pytest.importorskip("duckdb")
    from crm_pipeline.kpis.assets import ALL_KPIS
    from crm_pipeline.metadata import arrow_table

    kpi = next(k for k in ALL_KPIS if k.name == "aov_arpu")
    # two days as the IO manager writes them (one file per partition, the day only in the folder name); the
    # values follow docs/outputs.md's example: on 11-02 R = 200 from 4 orders, R = 3000 from 50 orders in
    # 30 days, 400 active customers; 11-03 a quiet day: 30-day revenue 3000 from 50 orders, nothing on the day
    days = {
        "2026-11-02": [(None, None, 3000, 50, 60), ("aov", "1d", 200, 4, 50), ("aov", "30d", 3000, 50, 60),
                       ("arpu", "1d", 200, 400, 0.5), ("arpu", "30d", 3000, 400, 7.5)],
        "2026-11-03": [(None, None, 3000, 50, 60), ("aov", "1d", 0, 0, None), ("aov", "30d", 3000, 50, 60),
                       ("arpu", "1d", 0, 400, 0.0), ("arpu", "30d", 3000, 400, 7.5)],
    }
    for day, rows in days.items():
        frame = pd.DataFrame(rows, columns=["metric", "window", "numerator", "denominator", "value"]).assign(
            unit="currency")
        frame[["numerator", "denominator", "value"]] = frame[["numerator", "denominator", "value"]].astype(float)
        folder = tmp_path / "data" / "warehouse" / "kpi" / "aov_arpu" / f"date={day}"
        folder.mkdir(parents=True)
        pq.write_table(arrow_table(frame, kpi.schema), folder / "part.parquet")
    monkeypatch.chdir(tmp_path)

    pandas_block, duckdb_block = [b for b in _readme_python_blocks("Reading the outputs") if "spark" not in b]
    scope: dict = {}
    exec(pandas_block, scope)
    headline = scope["headline"]
    assert [str(d) for d in headline["date"]] == ["2026-11-02", "2026-11-03"]
    assert headline["value"].tolist() == [60.0, 60.0] and set(headline["unit"]) == {"currency"}
    assert len(scope["aov_arpu"]) == 10 and len(scope["one_day"]) == 5
    exec(duckdb_block, scope)
    daily = scope["daily"]
    assert [str(d)[:10] for d in daily["date"]] == ["2026-11-02", "2026-11-03"]
    assert daily["aov_30d"].tolist() == [60.0, 60.0]


def test_the_docs_cite_only_documents_that_ship_with_the_project():
    repo = README.parent
    texts = {path: path.read_text() for path in [README, *sorted((repo / "docs").glob("*.md")),
                                                 *sorted((repo / "crm_pipeline").rglob("*.py"))]}
    cited = {name for text in texts.values() for name in re.findall(r"docs/([a-z_]+\.md)", text)}
    assert {"outputs.md", "inputs.md", "kpi_catalog.md", "checks.md"} <= cited
    assert all((repo / "docs" / name).is_file() for name in cited), cited
    # the hand-written documents never send a reader to a specification that is not in the repository
    # (docs/kpi_catalog.md is generated from the KPI declarations)
    hand_written = [p for p in texts if p.suffix == ".md" and p.name != "kpi_catalog.md"]
    for path in hand_written:
        assert not re.search(r"(?<![/\w])(kpis|sources|architecture|style)\.md", texts[path]), path
