"""The daily dashboard: one self-contained HTML page built from the warehouse tables of day D (no Dagster here).

Plots are plotly figures with plotly.js embedded once, inline, in the page's head, so the file opens offline in
any browser (no CDN, no fonts or scripts fetched). The scorecard's 90-day sparklines are small inline SVGs
(44 of them as plotly figures would be 44 WebGL/SVG plots to lay out on load).

Every value that comes from data (a channel name, a campaign id, a device type, a source) can hold HTML or a
spreadsheet formula (`=cmd|...`): table cells are escaped with `html.escape` and a leading formula character
gets a `'` (so a copy of a table into a spreadsheet stays text); labels given to plotly are escaped too
(plotly shows `&lt;` as `<`, and its JSON escapes `<`, `>` and `/`, so no label can close a script).
"""

import datetime as dt
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

SPARKLINE_DAYS = 90
COHORT_CURVES = 12  # the latest cohorts drawn as retention curves (all are in the matrix)
SECTIONS: tuple[tuple[str, str], ...] = (
    ("scorecard", "Scorecard"),
    ("device_hour", "Visits by device and hour of day (28 days, index 100 = the device's usual share)"),
    ("retention", "Retention"),
    ("cohorts", "Cohort retention (share of the first-order cohort ordering in month m)"),
    ("attribution", "Attributed revenue by model and channel (orders placed on D)"),
    ("funnel", "Sales funnel, lead to won (30 days)"),
    ("service", "NPS, CSAT and CES (90 days)"),
    ("quarantine", "Ingestion and quarantine"),
    ("checks", "Checks and anomalies"),
    ("freshness", "Freshness (newest partition in the warehouse)"),
)
# the KPI tables the page shows beside the scorecard (cohort_retention only when the graph computes it)
SHOWN_KPIS = ("device_hour_index", "attributed_revenue", "registrant_retention", "customer_retention_rate",
              "cohort_retention", "lead_source_mix", "sales_conversion_rate", "close_rate", "nps", "csat", "ces")
SERVICE_KPIS = (("nps", "NPS (score)"), ("csat", "CSAT satisfied (%)"), ("ces", "CES mean (1-7)"))
REPORT_SCHEMA = pa.schema([
    pa.field("section", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("rows", pa.int64(), nullable=False),  # rows of the warehouse tables the section draws
    pa.field("has_data", pa.bool_(), nullable=False),
])
NO_DATA = "no data"
KPI_MEASURES = ("numerator", "denominator", "value", "unit")
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class DashboardInputs:
    """What the page shows. `scorecard` holds kpi_scorecard over the trailing days with a `date` column
    (YYYY-MM-DD); `health` is pipeline_health of D; `tables` maps a KPI name to its table of D (a KPI absent
    from the mapping is not computed by the graph); `freshness` has one row per asset: asset, newest_partition
    (YYYY-MM-DD or null)."""

    day: str
    scorecard: pd.DataFrame
    health: pd.DataFrame
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    freshness: pd.DataFrame | None = None


@dataclass(frozen=True)
class Dashboard:
    html: str
    sections: pd.DataFrame  # one row per section: REPORT_SCHEMA


# ---------------------------------------------------------------------------------------------------- values

def cell(value: object) -> str:
    """A data value as escaped HTML text; a text starting like a spreadsheet formula gets a leading `'`."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "&ndash;"
    if isinstance(value, float | int | np.floating | np.integer) and not isinstance(value, bool):
        return html.escape(number(float(value)))
    text = str(value)
    if text.startswith(FORMULA_START):
        text = "'" + text
    return html.escape(text)


def number(x: float | None) -> str:
    """Up to 4 decimals, thousands separated, trailing zeros dropped: 1234.5 -> 1,234.5; null -> –."""
    if x is None or pd.isna(x):
        return "–"
    return f"{x:,.4f}".rstrip("0").rstrip(".")


def label(value: object) -> str:
    """A category label for plotly (escaped: plotly renders a subset of HTML in labels)."""
    return html.escape("(null)" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))


def _table(columns: list[str], rows: list[list[object]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="num">{cell(v)}</td>' if _is_number(v) else f"<td>{cell(v)}</td>"
                                    for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _is_number(value: object) -> bool:
    """A number with a value (a null is shown as a dash, not right-aligned)."""
    return (isinstance(value, float | int | np.floating | np.integer) and not isinstance(value, bool)
            and not np.isnan(value))


def _no_data(reason: str) -> str:
    return f'<p class="no-data">{NO_DATA}: {html.escape(reason)}</p>'


def _plot(fig: go.Figure, div_id: str, height: int = 380) -> str:
    fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 30, "b": 50}, template="plotly_white")
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG,
                       default_height=f"{height}px")


def _rows(table: pd.DataFrame | None, **dims: str | None) -> pd.DataFrame:
    """The rows of `table` whose dimensions match (None: null, Ellipsis: not null)."""
    if table is None or table.empty:  # absent (not computed) or no rows: no rows, with the KPI columns
        return pd.DataFrame(columns=[*dims, *KPI_MEASURES] if table is None else table.columns)
    match = pd.Series(True, index=table.index)
    for name, value in dims.items():
        column = table[name]
        match &= column.isna() if value is None else column.notna() if value is ... else column == value
    return table[match]


def _one(table: pd.DataFrame | None, column: str = "value", **dims: str | None) -> float | None:
    found = _rows(table, **dims)
    return float(found[column].iloc[0]) if len(found) and pd.notna(found[column].iloc[0]) else None


# -------------------------------------------------------------------------------------------------- sections

def sparkline(dates: np.ndarray, values: np.ndarray, width: int = 140, height: int = 28) -> str:
    """An inline SVG polyline of `values` at x = `dates` (days 0..SPARKLINE_DAYS-1), scaled to its min..max;
    null values are left out; the last point is a dot."""
    keep = ~np.isnan(values)
    if not keep.any():
        return NO_DATA
    x, y = dates[keep], values[keep]
    low, high = float(y.min()), float(y.max())
    ys = np.full(len(y), height / 2) if high == low else (height - 2) - (y - low) / (high - low) * (height - 4)
    xs = 1 + x / max(SPARKLINE_DAYS - 1, 1) * (width - 4)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/>'
            f'<circle cx="{xs[-1]:.1f}" cy="{ys[-1]:.1f}" r="2" fill="#d62728"/></svg>')


def scorecard_section(scorecard: pd.DataFrame, day: str) -> tuple[str, int]:
    today = scorecard[scorecard["date"] == day].sort_values("kpi") if len(scorecard) else scorecard
    if today.empty:
        return _no_data(f"kpi_scorecard has no partition {day}"), 0
    first = dt.date.fromisoformat(day) - dt.timedelta(days=SPARKLINE_DAYS - 1)
    offset = (pd.to_datetime(scorecard["date"]) - pd.Timestamp(first)).dt.days.to_numpy()
    history = scorecard.assign(x=offset, v=scorecard["value"].astype(float)).sort_values(["kpi", "x"])
    series = {kpi: (g["x"].to_numpy(dtype=float), g["v"].to_numpy(dtype=float))
              for kpi, g in history.groupby("kpi", sort=False)}
    rows = []
    for r in today.itertuples():  # one row per KPI (a few dozen), not per data row
        x, v = series.get(r.kpi, (np.array([]), np.array([])))
        days = int((~np.isnan(v)).sum())
        rows.append(f'<tr data-kpi="{html.escape(str(r.kpi))}"><td class="kpi">{cell(r.kpi)}</td>'
                    f'<td class="num">{cell(r.value)}</td><td>{cell(r.unit)}</td>'
                    f"<td>{sparkline(x, v) if days else NO_DATA}</td><td class=\"num\">{days}</td></tr>")
    head = "".join(f"<th>{c}</th>" for c in ("KPI", f"headline {html.escape(day)}", "unit",
                                             f"last {SPARKLINE_DAYS} days", "days with a value"))
    return (f'<table class="scorecard"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>',
            len(today))


def device_hour_section(table: pd.DataFrame | None) -> tuple[str, int]:
    cells = _rows(table, device_type=..., hour=...)
    if cells.empty:
        return _no_data("no visit with a device type in the 28 days"), 0
    grid = cells.pivot_table(index="device_type", columns="hour", values="value", aggfunc="first", dropna=False)
    grid = grid.reindex(columns=sorted(grid.columns))
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(dtype=float), x=[label(h) for h in grid.columns],
                               y=[label(d) for d in grid.index], colorscale="Viridis", colorbar={"title": "index"},
                               hovertemplate="%{y} %{x}:00: %{z:.1f}<extra></extra>"))
    fig.update_xaxes(title="hour of day", type="category")
    coverage = _one(table, device_type=None, hour=None)
    return (_plot(fig, "plot-device-hour", 120 + 40 * len(grid))
            + f"<p>Device coverage (visits with a device type): {cell(coverage)}</p>", len(cells))


def retention_section(registrant: pd.DataFrame | None, customer: pd.DataFrame | None) -> tuple[str, int]:
    curve = _rows(registrant, metric="retention_rate", window=...)
    rates = _rows(customer, metric=...)
    parts: list[str] = []
    if len(curve) and curve["value"].notna().any():
        curve = curve.assign(n=curve["window"].str.rstrip("d").astype(int)).sort_values("n")
        fig = go.Figure(go.Scatter(x=curve["n"].tolist(), y=curve["value"].astype(float).tolist(),
                                   mode="lines+markers", name="registrants"))
        fig.update_xaxes(title="days since registration")
        fig.update_yaxes(title="retained (share)", rangemode="tozero")
        parts.append(_plot(fig, "plot-registrant-retention", 300))
    else:
        parts.append(_no_data("no registrant cohort 30, 90 or 180 days back"))
    if len(rates):
        parts.append("<h3>Customer retention (D-30..D, percent)</h3>" + _table(
            ["metric", "numerator", "denominator", "value"],
            rates[["metric", "numerator", "denominator", "value"]].values.tolist()))
    shown = int(curve["value"].notna().sum()) + (int(rates["value"].notna().sum()) if len(rates) else 0)
    return "".join(parts), shown


def cohorts_section(table: pd.DataFrame | None, computed: bool) -> tuple[str, int]:
    if not computed:
        return _no_data("cohort_retention is not computed by this pipeline"), 0
    cells = _rows(table, metric="retention", cohort=..., months_since=..., acquisition_channel=None)
    if cells.empty:
        return _no_data("no first-order cohort yet"), 0
    cells = cells.assign(m=cells["months_since"].astype(int))
    grid = cells.pivot_table(index="cohort", columns="m", values="value", aggfunc="first", dropna=False)
    grid = grid.sort_index().reindex(columns=sorted(grid.columns))
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(dtype=float), x=[str(m) for m in grid.columns],
                               y=[label(c) for c in grid.index], colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="cohort %{y}, month %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title="months since the first order", type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    curves = go.Figure()
    for cohort in grid.index[-COHORT_CURVES:]:  # one retention curve per recent cohort (a dozen at most)
        row = grid.loc[cohort]
        curves.add_trace(go.Scatter(x=[int(m) for m in row.index], y=row.astype(float).tolist(),
                                    mode="lines+markers", name=label(cohort)))
    curves.update_xaxes(title="months since the first order", dtick=1)
    curves.update_yaxes(title="retained (share)", rangemode="tozero")
    return (_plot(fig, "plot-cohorts", 140 + 28 * len(grid)) + _plot(curves, "plot-cohort-curves", 340),
            len(cells))


def attribution_section(table: pd.DataFrame | None) -> tuple[str, int]:
    cells = _rows(table, model=..., channel=...)
    if cells.empty:
        return _no_data("no order placed on this day"), 0
    fig = go.Figure()
    models = sorted(cells["model"].unique())
    for channel, rows in cells.groupby("channel", sort=True):  # one trace per channel (a handful)
        values = rows.set_index("model")["value"].reindex(models)
        fig.add_trace(go.Bar(x=[label(m) for m in models], y=values.astype(float).tolist(), name=label(channel)))
    fig.update_layout(barmode="stack", legend_title_text="channel")
    fig.update_yaxes(title="net revenue credited")
    totals = _rows(table, model=..., channel=None).sort_values("model")
    return (_plot(fig, "plot-attribution", 420)
            + _table(["model", "attributed revenue"], totals[["model", "value"]].values.tolist())
            + f"<p>Net revenue of the orders on D: {cell(_one(table, model=None, channel=None))}</p>",
            len(cells))


def funnel_stages(tables: Mapping[str, pd.DataFrame]) -> list[tuple[str, float | None]]:
    """(stage, count) from lead to won, each counted in D-29..D by its own timestamp (docs/kpi_catalog.md):
    leads created, qualified, converted; leads created with an opportunity; opportunities won."""
    mix = tables.get("lead_source_mix")
    return [("leads created", _one(mix, metric="leads", source=None)),
            ("qualified", _one(mix, metric="qualified", source=None)),
            ("with an opportunity", _one(tables.get("sales_conversion_rate"), "numerator",
                                         metric="lead_to_opportunity", source=None)),
            ("converted", _one(mix, metric="conversions", source=None)),
            ("opportunities won", _one(tables.get("close_rate"), "numerator", opportunity_type=None))]


def funnel_section(tables: Mapping[str, pd.DataFrame]) -> tuple[str, int]:
    stages = funnel_stages(tables)
    if not any(v for _, v in stages):
        return _no_data("no lead or deal in the 30 days"), 0
    fig = go.Figure(go.Funnel(y=[s for s, _ in stages], x=[v or 0.0 for _, v in stages], textinfo="value"))
    won = _one(tables.get("lead_source_mix"), metric="won_revenue", source=None)
    return (_plot(fig, "plot-funnel", 320) + _table(["stage", "count"], [list(s) for s in stages])
            + f"<p>Won revenue: {cell(won)}</p>", len(stages))


def service_section(scorecard: pd.DataFrame, tables: Mapping[str, pd.DataFrame], day: str) -> tuple[str, int]:
    trend = scorecard[scorecard["kpi"].isin([k for k, _ in SERVICE_KPIS])] if len(scorecard) else scorecard
    trend = trend[trend["value"].notna()] if len(trend) else trend
    today = [[kpi, r.metric if "metric" in tables[kpi].columns else None, r.numerator, r.denominator, r.value,
              r.unit] for kpi, _ in SERVICE_KPIS if kpi in tables for r in tables[kpi].itertuples()]
    if trend.empty:
        return _no_data("no survey response in the 90 days"), 0
    fig = make_subplots(rows=1, cols=len(SERVICE_KPIS), subplot_titles=[t for _, t in SERVICE_KPIS])
    for i, (kpi, title) in enumerate(SERVICE_KPIS, 1):
        rows = trend[trend["kpi"] == kpi].sort_values("date")
        fig.add_trace(go.Scatter(x=rows["date"].tolist(), y=rows["value"].astype(float).tolist(),
                                 mode="lines+markers", name=title), row=1, col=i)
    first = dt.date.fromisoformat(day) - dt.timedelta(days=SPARKLINE_DAYS - 1)
    fig.update_xaxes(type="date", tickformat="%Y-%m-%d", range=[first.isoformat(), day])
    fig.update_layout(showlegend=False)
    return (_plot(fig, "plot-service", 320)
            + _table(["kpi", "metric", "numerator", "denominator", "value", "unit"], today), len(trend))


def quarantine_section(health: pd.DataFrame) -> tuple[str, int]:
    rows = health[health["area"] == "ingestion"] if len(health) else health
    if rows.empty:
        return _no_data("no ingestion counts for this day"), 0
    grid = rows.pivot_table(index="subject", columns="measure", values="value", aggfunc="first", dropna=False)
    measures = [m for m in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate", "quarantine_rate")
                if m in grid.columns]
    grid = grid.reindex(columns=measures).sort_index()
    values = [[source, *grid.loc[source].tolist()] for source in grid.index]
    total = float(grid.get("rows_quarantined", pd.Series(dtype=float)).fillna(0).sum())
    return (f"<p>Rows quarantined on this day: {cell(total)}</p>"
            + _table(["source", *measures], values), len(grid))


def checks_section(health: pd.DataFrame) -> tuple[str, int]:
    checks = health[health["area"] == "checks"] if len(health) else health
    anomalies = health[health["area"] == "kpi_anomalies"] if len(health) else health
    if checks.empty and anomalies.empty:
        return _no_data("no check outcomes for this day"), 0
    counts = dict(zip(checks["measure"], checks["value"], strict=True))
    status = ("failed" if (counts.get("failed") or 0) > 0
              else "warned" if (counts.get("warned") or 0) > 0 else "passed")
    badges = "".join(f'<span class="badge {html.escape(m)}">{html.escape(m)}: {cell(counts.get(m))}</span>'
                     for m in ("passed", "warned", "failed", "not_evaluated"))
    moved = anomalies[anomalies["measure"] == "robust_z"].sort_values("subject")
    return (f'<p class="status {status}">Checks of the day: {status}</p><p>{badges}</p>'
            + (_table(["KPI beyond the anomaly threshold", "robust z"], moved[["subject", "value"]].values.tolist())
               if len(moved) else "<p>No KPI headline moved beyond the anomaly threshold.</p>"),
            len(checks) + len(anomalies))


def freshness_section(freshness: pd.DataFrame | None, day: str) -> tuple[str, int]:
    if freshness is None or freshness.empty:
        return _no_data("no asset listed"), 0
    newest = freshness["newest_partition"]
    lag = (pd.Timestamp(day) - pd.to_datetime(newest)).dt.days
    status = np.where(newest.isna(), "missing", np.where(lag <= 0, "fresh", "behind"))
    frame = freshness.assign(lag=lag.clip(lower=0), status=status).sort_values(["status", "asset"])
    behind = int((frame["status"] != "fresh").sum())
    return (f"<p>{len(frame) - behind} of {len(frame)} assets have a partition for {html.escape(day)}; "
            f"{behind} are behind or missing.</p>"
            + _table(["asset", "newest partition", "days behind", "status"],
                     frame[["asset", "newest_partition", "lag", "status"]].values.tolist()), len(frame))


# ------------------------------------------------------------------------------------------------------ page

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1340px}
h1{margin-bottom:4px} nav a{margin-right:12px} section{margin:28px 0;border-top:1px solid #ddd;padding-top:8px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4;text-align:left} td.num{text-align:right} .no-data{color:#888;font-style:italic}
.badge{display:inline-block;margin-right:8px;padding:2px 8px;border-radius:8px;background:#eee}
.badge.failed,.status.failed{color:#b00} .badge.warned,.status.warned{color:#a60} .status.passed{color:#070}
"""


def build_dashboard(inputs: DashboardInputs) -> Dashboard:
    """The page and one row per section (REPORT_SCHEMA)."""
    tables = inputs.tables
    bodies = {
        "scorecard": scorecard_section(inputs.scorecard, inputs.day),
        "device_hour": device_hour_section(tables.get("device_hour_index")),
        "retention": retention_section(tables.get("registrant_retention"), tables.get("customer_retention_rate")),
        "cohorts": cohorts_section(tables.get("cohort_retention"), "cohort_retention" in tables),
        "attribution": attribution_section(tables.get("attributed_revenue")),
        "funnel": funnel_section(tables),
        "service": service_section(inputs.scorecard, tables, inputs.day),
        "quarantine": quarantine_section(inputs.health),
        "checks": checks_section(inputs.health),
        "freshness": freshness_section(inputs.freshness, inputs.day),
    }
    day = html.escape(inputs.day)
    nav = "".join(f'<a href="#{name}">{html.escape(title.split(" (")[0])}</a>' for name, title in SECTIONS)
    sections = "".join(f'<section id="{name}"><h2>{html.escape(title)}</h2>{bodies[name][0]}</section>'
                       for name, title in SECTIONS)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>CRM dashboard {day}</title>'
            f'<style>{CSS}</style><script type="text/javascript">{get_plotlyjs()}</script></head>'
            f'<body><h1>CRM dashboard</h1><p>As of the end of {day}. Built from the warehouse tables of the day.'
            f"</p><nav>{nav}</nav>{sections}</body></html>\n")
    frame = pd.DataFrame([{"section": name, "title": title, "rows": int(bodies[name][1]),
                           "has_data": bool(bodies[name][1] > 0)} for name, title in SECTIONS],
                         columns=REPORT_SCHEMA.names)
    return Dashboard(html=page, sections=frame)


# ----------------------------------------------------------------------------------------------- read back

VOID_TAGS = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr", "area", "base", "embed",
                       "track"})


class _PageReader(HTMLParser):

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.kpis: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("id"):
            self.sections.append(str(found["id"]))
        if tag == "tr" and found.get("data-kpi"):
            self.kpis.append(str(found["data-kpi"]))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <polyline .../>: opens and closes

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            if tag in self.stack:  # recover: close up to the matching tag
                del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag):]
            return
        self.stack.pop()


@dataclass(frozen=True)
class ParsedPage:
    sections: list[str]
    kpis: list[str]  # the KPIs of the scorecard table, unescaped
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and self.sections == [name for name, _ in SECTIONS]


def read_page(text: str) -> ParsedPage:
    """Parse a written page: its sections in order, the scorecard's KPIs and tag-nesting errors."""
    reader = _PageReader()
    reader.feed(text)
    reader.close()
    errors = reader.errors + ([f"unclosed {reader.stack[-5:]}"] if reader.stack else [])
    return ParsedPage(sections=reader.sections, kpis=reader.kpis, errors=errors[:20])
