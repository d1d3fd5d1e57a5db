"""The dashboard page built from tiny hand-made tables: its numbers, escaping, sections, empty days, read-back
and the report's own checks (passing and failing)."""

import datetime as dt
import html

import pandas as pd
import pytest

from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.kpis.framework import KpiDefinition
from crm_pipeline.reporting.assets import every_scorecard_kpi_appears, page_parses, page_url, write_page
from crm_pipeline.reporting.dashboard import (
    SECTIONS,
    DashboardInputs,
    build_dashboard,
    cell,
    funnel_stages,
    read_page,
    sparkline,
)
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import S3Server, stored

DAY = "2026-12-31"
N = None
KPIS: dict[str, KpiDefinition] = {k.name: k for k in ALL_KPIS}
EVIL_CHANNEL = "<script>alert(1)</script>"
EVIL_SOURCE = "=cmd|' /C calc'!A0"
HEALTH_COLUMNS = ["area", "subject", "measure", "value"]
SCORECARD_COLUMNS = ["kpi", "value", "unit", "numerator", "denominator", "date"]


def day(offset: int) -> str:
    return (dt.date.fromisoformat(DAY) + dt.timedelta(days=offset)).isoformat()


def kpi_table(name: str, rows: list[tuple]) -> pd.DataFrame:
    """A KPI partition as the IO manager hands it over: rows are (dimensions..., numerator, denominator, value,
    unit) in the KPI's column order."""
    schema = KPIS[name].schema
    return stored(schema, [dict(zip(schema.names, row, strict=True)) for row in rows])


COHORT_ROWS = [
    ("2026-11", "1", "retention", N, 1.0, 4.0, 0.25, "ratio"),
    ("2026-11", "0", "retention", N, 4.0, 4.0, 1.0, "ratio"),
    ("2026-12", "0", "retention", N, 2.0, 2.0, 1.0, "ratio"),
    ("2026-12", "0", "retention", "email", 1.0, 1.0, 1.0, "ratio"),  # by channel: not in the matrix
    ("2026-12", "0", "revenue", N, 50.0, N, 50.0, "currency"),  # another metric: not in the matrix
]


def cohort_table(rows: list[tuple]) -> pd.DataFrame:
    """cohort_retention with the columns of its catalog entry (docs/kpi_catalog.md)."""
    return pd.DataFrame(rows, columns=["cohort", "months_since", "metric", "acquisition_channel", "numerator",
                                       "denominator", "value", "unit"])


def scorecard(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


def health(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


def section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]


@pytest.fixture
def full() -> DashboardInputs:
    return sample_inputs()


def sample_inputs() -> DashboardInputs:
    """A day with data in every section, and hostile names from the data (also rendered by the
    browser test)."""
    history = scorecard([
        # aov_arpu on three days: 10, 20, 30 -> a rising 3-point sparkline
        ("aov_arpu", 10.0, "currency", 10.0, 1.0, day(-2)),
        ("aov_arpu", 20.0, "currency", 20.0, 1.0, day(-1)),
        ("aov_arpu", 30.0, "currency", 300.0, 10.0, DAY),
        # nps: 40 promoters - 0 detractors of 150 responses today = 26.6667
        ("nps", 10.0, "score", 1.0, 10.0, day(-1)),
        ("nps", 40 / 150 * 100, "score", 40.0, 150.0, DAY),
        ("csat", 80.0, "percent", 8.0, 10.0, DAY),
        ("ces", 5.5, "score", 11.0, 2.0, DAY),
        # a KPI without a value today (an empty population): listed, a dash, no sparkline
        ("churn_rate", N, "percent", 0.0, 0.0, DAY),
    ])
    tables = {
        "device_hour_index": kpi_table("device_hour_index", [
            (N, N, 8.0, 10.0, 0.8, "ratio"),
            # mobile 6 visits: 3 at 09 of 4 visits at 09 in all, 10 visits in all -> (3/6)/(4/10) x 100 = 125
            ("mobile", "09", 0.5, 0.4, 125.0, "index"),
            (EVIL_SOURCE, "10", 1.0, 0.25, 400.0, "index"),
        ]),
        "attributed_revenue": kpi_table("attributed_revenue", [
            (N, N, 150.0, N, 150.0, "currency"),
            ("linear", N, 150.0, N, 150.0, "currency"),
            ("linear", "email", 100.0, N, 100.0, "currency"),
            ("linear", EVIL_CHANNEL, 50.0, N, 50.0, "currency"),
        ]),
        "registrant_retention": kpi_table("registrant_retention", [
            (N, N, 1.0, 2.0, 0.5, "ratio"),
            ("retention_rate", "30d", 1.0, 2.0, 0.5, "ratio"),
            ("retention_rate", "90d", 1.0, 4.0, 0.25, "ratio"),
            ("retention_rate", "180d", 0.0, 0.0, N, "ratio"),
            ("avg_engagements", "30d", 3.0, 2.0, 1.5, "count"),
        ]),
        "customer_retention_rate": kpi_table("customer_retention_rate", [
            (N, 3.0, 4.0, 75.0, "percent"),
            ("standard", 3.0, 4.0, 75.0, "percent"),
            ("end_over_start", 5.0, 4.0, 125.0, "percent"),
            ("cohort_retained", 3.0, 4.0, 75.0, "percent"),
        ]),
        "lead_source_mix": kpi_table("lead_source_mix", [
            (N, N, 62.0, N, 62.0, "count"),
            ("leads", N, 62.0, N, 62.0, "count"),
            ("leads", EVIL_SOURCE, 62.0, N, 62.0, "count"),
            ("qualified", N, 23.0, N, 23.0, "count"),
            ("conversions", N, 7.0, N, 7.0, "count"),
            ("won_revenue", N, 11963.21, N, 11963.21, "currency"),
        ]),
        "sales_conversion_rate": kpi_table("sales_conversion_rate", [
            ("lead_to_opportunity", N, 20.0, 62.0, 20 / 62, "ratio"),
        ]),
        "close_rate": kpi_table("close_rate", [(N, 2.0, 4.0, 0.5, "ratio")]),
        "cohort_retention": cohort_table(COHORT_ROWS),
        "nps": kpi_table("nps", [(40.0, 150.0, 40 / 150 * 100, "score")]),
    }
    return DashboardInputs(
        day=DAY, scorecard=history,
        health=health([("ingestion", "orders", "rows_in", 10.0), ("ingestion", "orders", "rows_quarantined", 2.0),
                       ("ingestion", EVIL_SOURCE, "rows_in", 5.0), ("ingestion", EVIL_SOURCE, "rows_quarantined", 1.0),
                       ("checks", "all", "passed", 40.0), ("checks", "all", "warned", 1.0),
                       ("checks", "all", "failed", 0.0), ("checks", "all", "not_evaluated", 0.0),
                       ("kpi_anomalies", "all", "kpis_beyond_threshold", 1.0),
                       ("kpi_anomalies", "nps", "robust_z", 4.5)]),
        tables=tables,
        freshness=pd.DataFrame({"asset": ["kpi/nps", "ingest/orders", "ingest/costs"],
                                "newest_partition": [DAY, day(-2), None]}))


def test_the_scorecard_lists_every_kpi_with_its_headline_and_sparkline(full):
    page = build_dashboard(full).html
    parsed = read_page(page)
    assert parsed.ok, parsed.errors
    assert parsed.kpis == ["aov_arpu", "ces", "churn_rate", "csat", "nps"]
    aov = page.split('<tr data-kpi="aov_arpu">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">30</td>' in aov and "<td>currency</td>" in aov
    # days D-2, D-1, D are x = 87, 88, 89 of 0..89: 1 + x/89 x 136 = 133.9, 135.5, 137.0; values 10..30 scaled
    # to y = 26 - (v - 10)/20 x 24 = 26.0, 14.0, 2.0
    assert 'points="133.9,26.0 135.5,14.0 137.0,2.0"' in aov
    assert aov.endswith('<td class="num">3</td>')  # days with a value
    nps = page.split('<tr data-kpi="nps">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">26.6667</td>' in nps
    churn = page.split('<tr data-kpi="churn_rate">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">&ndash;</td>' in churn and "<td>no data</td>" in churn and "<svg" not in churn


def test_a_sparkline_leaves_out_null_days_and_a_flat_series_is_centred():
    import numpy as np

    line = sparkline(np.array([0.0, 1.0, 89.0]), np.array([5.0, np.nan, 5.0]))
    assert 'points="1.0,14.0 137.0,14.0"' in line  # x = 1 + 0 and 1 + 136; flat: height / 2
    assert sparkline(np.array([3.0]), np.array([np.nan])) == "no data"


def test_sections_numbers_and_row_counts(full):
    dashboard = build_dashboard(full)
    page = dashboard.html
    frame = dashboard.sections.set_index("section")
    assert frame.index.tolist() == [name for name, _ in SECTIONS]
    # scorecard 5 KPIs; device 2 cells; retention 2 curve points with a value + 3 metric rows; 3 cohort cells;
    # attribution 2 model x channel rows; funnel 5 stages; service 4 values in the trend (nps twice, csat, ces);
    # 2 sources; 4 check counts + 2 anomaly rows; 3 assets
    assert frame["rows"].to_dict() == {"scorecard": 5, "device_hour": 2, "retention": 5, "cohorts": 3,
                                       "attribution": 2, "funnel": 5, "service": 4, "quarantine": 2, "checks": 6,
                                       "freshness": 3}
    assert frame["has_data"].all()
    assert "Device coverage (visits with a device type): 0.8" in section(page, "device_hour")
    assert "Net revenue of the orders on D: 150" in section(page, "attribution")
    assert "<tr><td>linear</td><td class=\"num\">150</td></tr>" in section(page, "attribution")
    assert "<tr><td>end_over_start</td><td class=\"num\">5</td><td class=\"num\">4</td>" \
           "<td class=\"num\">125</td></tr>" in section(page, "retention")
    # funnel: leads 62, qualified 23, leads with an opportunity 20 (numerator), converted 7, won 2 (numerator)
    assert funnel_stages(full.tables) == [("leads created", 62.0), ("qualified", 23.0), ("with an opportunity", 20.0),
                                          ("converted", 7.0), ("opportunities won", 2.0)]
    assert "Won revenue: 11,963.21" in section(page, "funnel")
    assert "Rows quarantined on this day: 3" in section(page, "quarantine")  # 2 + 1
    checks = section(page, "checks")
    assert "Checks of the day: warned" in checks and "failed: 0" in checks
    assert "<tr><td>nps</td><td class=\"num\">4.5</td></tr>" in checks
    freshness = section(page, "freshness")
    assert "1 of 3 assets have a partition for 2026-12-31; 2 are behind or missing." in freshness
    assert "<tr><td>ingest/orders</td><td>2026-12-29</td><td class=\"num\">2</td><td>behind</td></tr>" in freshness
    assert "<tr><td>ingest/costs</td><td>&ndash;</td><td>&ndash;</td><td>missing</td></tr>" in freshness
    for div in ("plot-device-hour", "plot-registrant-retention", "plot-cohorts", "plot-cohort-curves",
                "plot-attribution", "plot-funnel", "plot-service"):
        assert f'id="{div}"' in page


def test_every_value_from_data_is_escaped(full):
    page = build_dashboard(full).html
    assert EVIL_CHANNEL not in page  # never as markup, not even inside plotly's JSON
    assert "alert(1)" in page  # but shown: escaped for plotly, whose JSON also escapes < > /
    assert "&lt;script&gt;alert(1)&lt;\\u002fscript&gt;" in page
    # a formula from data is text in a table cell, prefixed with ' so a spreadsheet paste keeps it text
    escaped = html.escape("'" + EVIL_SOURCE)
    assert f"<tr><td>{escaped}</td>" in section(page, "quarantine")
    assert f"<td>{html.escape(EVIL_SOURCE)}" not in page
    assert cell("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;" and cell("-1 or 1") == "&#x27;-1 or 1"
    assert cell(1234.5) == "1,234.5" and cell(None) == "&ndash;" and cell(float("nan")) == "&ndash;"


def test_an_empty_day_gives_no_data_sections_and_no_crash():
    # the KPIs' empty-population rows (docs/outputs.md): quotients 0/0 with a null value, counts 0
    empty_tables = {
        "device_hour_index": kpi_table("device_hour_index", [(N, N, 0.0, 0.0, N, "ratio")]),
        "attributed_revenue": kpi_table("attributed_revenue", [(N, N, 0.0, N, 0.0, "currency")]),
        "registrant_retention": kpi_table("registrant_retention", [
            (N, N, 0.0, 0.0, N, "ratio"), ("retention_rate", "30d", 0.0, 0.0, N, "ratio")]),
        "customer_retention_rate": kpi_table("customer_retention_rate", [("standard", 0.0, 0.0, N, "percent")]),
        "cohort_retention": cohort_table([(N, N, N, N, N, N, N, "ratio")]),
        "lead_source_mix": kpi_table("lead_source_mix", [("leads", N, 0.0, N, 0.0, "count")]),
        "close_rate": kpi_table("close_rate", [(N, 0.0, 0.0, N, "ratio")]),
    }
    quiet = scorecard([("nps", N, "score", 0.0, 0.0, DAY), ("uar_30d", 0.0, "count", 0.0, N, DAY)])
    day_health = health([("checks", "all", "passed", 10.0), ("checks", "all", "failed", 0.0)])
    dashboard = build_dashboard(DashboardInputs(day=DAY, scorecard=quiet, health=day_health, tables=empty_tables))
    page = dashboard.html
    assert read_page(page).ok
    has = dashboard.sections.set_index("section")["has_data"].to_dict()
    assert has == {"scorecard": True, "device_hour": False, "retention": False, "cohorts": False,
                   "attribution": False, "funnel": False, "service": False, "quarantine": False, "checks": True,
                   "freshness": False}
    for name, value in has.items():
        assert ("no data:" in section(page, name)) is not value, name
    assert "Checks of the day: passed" in section(page, "checks")
    # nothing at all (no table, no scorecard, no health): every section says so
    nothing = build_dashboard(DashboardInputs(day=DAY, scorecard=pd.DataFrame(columns=SCORECARD_COLUMNS),
                                              health=pd.DataFrame(columns=HEALTH_COLUMNS)))
    assert not nothing.sections["has_data"].any()
    assert read_page(nothing.html).ok
    assert nothing.html.count('<p class="no-data">no data: ') == len(SECTIONS)
    assert "no data: cohort_retention is not computed by this pipeline" in section(nothing.html, "cohorts")


def test_the_cohort_matrix_is_drawn_when_the_kpi_exists():
    table = cohort_table(COHORT_ROWS)
    if "cohort_retention" in KPIS:  # the columns used here are the KPI's own
        assert KPIS["cohort_retention"].schema.names == table.columns.tolist()
    dashboard = build_dashboard(DashboardInputs(day=DAY, scorecard=pd.DataFrame(columns=SCORECARD_COLUMNS),
                                                health=pd.DataFrame(columns=HEALTH_COLUMNS),
                                                tables={"cohort_retention": table}))
    assert dashboard.sections.set_index("section").loc["cohorts", "rows"] == 3
    cohorts = section(dashboard.html, "cohorts")
    assert 'id="plot-cohorts"' in cohorts and 'id="plot-cohort-curves"' in cohorts
    # the 2026-11 curve: month 0 = 4/4, month 1 = 1/4 (plotly's JSON of the trace)
    assert '"mode":"lines+markers","name":"2026-11","x":[0,1],"y":[1.0,0.25]' in cohorts


def test_the_page_checks_pass_on_the_page_and_fail_on_a_broken_one(full):
    page = build_dashboard(full).html
    size = len(page.encode("utf-8"))
    assert page_parses(page, size).passed
    assert not page_parses(page, size + 1).passed  # not the page that was written
    truncated = page[: page.index('<section id="funnel">')]
    result = page_parses(truncated, len(truncated.encode("utf-8")))
    assert not result.passed and result.metadata["errors"].value  # sections missing and tags left open
    today = full.scorecard[full.scorecard["date"] == DAY]
    assert every_scorecard_kpi_appears(today, page).passed
    more = pd.concat([today, scorecard([("ltv", 1.0, "currency", 1.0, 1.0, DAY)])])
    result = every_scorecard_kpi_appears(more, page)
    assert not result.passed and result.metadata["missing"].value == ["ltv"]


def _settings(root: str, **options) -> Settings:
    return Settings(landing_root="unused", warehouse_root=root, database_url="sqlite://",
                    start_date=dt.date(2026, 10, 1), **options)


def test_the_page_is_written_atomically_and_replaced(tmp_path):
    settings = _settings(str(tmp_path / "warehouse"))
    url, text = write_page(settings, DAY, "<p>first</p>")
    assert url == str(tmp_path / "warehouse" / "dashboards" / f"{DAY}.html")
    assert text == "<p>first</p>"
    _, text = write_page(settings, DAY, "<p>second ü</p>")
    assert text == "<p>second ü</p>"
    assert sorted(p.name for p in (tmp_path / "warehouse" / "dashboards").iterdir()) == [
        f"{DAY}.html"]  # no temporary file left


@pytest.mark.s3
def test_the_page_is_written_to_s3(s3_server: S3Server):
    settings = _settings(s3_server.url("report-test"), storage_options=s3_server.storage_options)
    url, text = write_page(settings, DAY, "<p>on s3</p>")
    assert url == page_url(settings, DAY) == s3_server.url("report-test", "dashboards", f"{DAY}.html")
    assert text == "<p>on s3</p>"
