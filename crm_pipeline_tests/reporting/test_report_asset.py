"""A real run materialises `report` for days of a tiny world: the page is written beside its section table,
parses, shows every scorecard KPI and the day's numbers, and the demo prints the headlines and its path."""

import datetime as dt
import os

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.cli import print_scorecard, run_range
from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.reporting.assets import REPORT_KEY, page_url
from crm_pipeline.reporting.dashboard import SECTIONS, number, read_page
from crm_pipeline_tests.conftest import tiny_world

pytestmark = pytest.mark.slow

START = dt.date(2026, 10, 1)
DAYS = [START]  # one day: the whole graph runs for it (the sparklines' history is unit-tested)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    settings = tiny_world(root, START, days=2, seed=4)
    with dg.instance_for_test() as instance:
        run_range(settings, DAYS[0], DAYS[-1], instance=instance, echo=lambda *_: None)
        yield settings, instance


def part(settings, *path: str, day: dt.date) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(settings.warehouse_root, *path, f"date={day}", "part.parquet"))


def test_the_page_is_written_beside_its_section_table_and_its_checks_pass(run):
    settings, instance = run
    for day in DAYS:
        folder = os.path.join(settings.warehouse_root, "report", f"date={day}")
        assert sorted(os.listdir(folder)) == ["part.parquet"]  # the page is not inside the dataset
        page = os.path.join(settings.warehouse_root, "dashboards", f"{day}.html")
        sections = part(settings, "report", day=day)
        assert sections["section"].tolist() == [name for name, _ in SECTIONS]
        # every day has a scorecard (every KPI), the day's checks and ingestion counts, and freshness rows
        assert sections.set_index("section").loc[["scorecard", "checks", "quarantine", "freshness"],
                                                 "has_data"].all()
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=REPORT_KEY, asset_partitions=[day.isoformat()]), limit=1).records[0]
        metadata = record.asset_materialization.metadata
        assert metadata["dashboard"].value == page_url(settings, day.isoformat())
        assert metadata["dashboard_bytes"].value == os.path.getsize(page)
        outcomes = {e.check_name: e.passed for e in (
            event.dagster_event.event_specific_data
            for event in instance.all_logs(record.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION))
            if e.asset_key == REPORT_KEY}
        assert outcomes == {"schema_matches_declared": True, "section_is_unique": True,
                            "dashboard_is_written_and_parses": True, "every_scorecard_kpi_appears": True}


def test_the_page_shows_every_scorecard_kpi_with_its_headline_and_sparkline(run):
    settings, _ = run
    day = DAYS[-1]
    scorecard = part(settings, "kpi_scorecard", day=day)
    with open(page_url(settings, day.isoformat()), encoding="utf-8") as f:
        text = f.read()
    page = read_page(text)
    assert page.ok, page.errors
    assert page.kpis == sorted(scorecard["kpi"].tolist())
    assert len(page.kpis) == len(ALL_KPIS)
    # the headline of every KPI is its table cell, formatted as on the page (null: a dash)
    for kpi, value in zip(scorecard["kpi"], scorecard["value"], strict=True):
        row = text.split(f'<tr data-kpi="{kpi}">', 1)[1].split("</tr>", 1)[0]
        assert f'<td class="num">{number(value) if pd.notna(value) else "&ndash;"}</td>' in row, kpi
    # the first day: a KPI with a value draws a one-point sparkline and counts one day
    registered = text.split('<tr data-kpi="asset_counts">', 1)[1].split("</tr>", 1)[0]
    assert registered.count("<polyline") == 1 and registered.endswith('<td class="num">1</td>')
    assert text.count("<script") - text.count("Plotly.newPlot") == 1  # plotly.js embedded once


def test_the_demo_ends_with_the_headlines_and_the_dashboard_path(run, capsys):
    settings, _ = run
    print_scorecard(settings, DAYS[-1])
    out = capsys.readouterr().out
    scorecard = part(settings, "kpi_scorecard", day=DAYS[-1])
    assert f"Scorecard headlines on {DAYS[-1]}:" in out
    lines = out.splitlines()
    assert lines[-1] == f"Dashboard: {page_url(settings, DAYS[-1].isoformat())}"
    assert sum(1 for line in lines if line.split()[:1] and line.split()[0] in set(scorecard["kpi"])) == len(ALL_KPIS)
