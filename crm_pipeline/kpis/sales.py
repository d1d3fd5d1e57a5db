"""Sales pipeline KPIs (docs/kpi_catalog.md "Sales pipeline"): CRM rows as of D (docs/outputs.md 2.5), one pure function each.

Every function reads the latest-state snapshots of D (`ingest/crm_leads`, `ingest/crm_opportunities`) and
places a row in a window only through its lifecycle timestamps (created_at, first_response_at, qualified_at,
converted_at, closed_at) at or before the end of D, so a backfill reproduces the daily runs. A stage counts
only with its timestamp: won = stage `won` and closed_at <= end of D.
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.kpis.crm_rows import NONE, breakdown, by_end_of, in_days, labels, open_values, window
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count, percentile, quotient
from crm_pipeline.settings import Settings

LEADS = ("ingest", "crm_leads")
OPPORTUNITIES = ("ingest", "crm_opportunities")
ORDERS = ("ingest", "orders")
LEAD_COLUMNS = ("lead_id", "created_at", "source", "first_response_at", "qualified_at", "converted_at")
OPPORTUNITY_COLUMNS = ("opportunity_id", "lead_id", "created_at", "closed_at", "stage", "amount", "opportunity_type")
OPPORTUNITY_TYPES = ("new_business", "upsell", "cross_sell", "renewal")

HOURS = 3600.0
DAYS = 86400.0


def _created(frame: pd.DataFrame, day: dt.date, settings: Settings) -> pd.DataFrame:
    """The rows created at or before the end of D: a row created later does not exist yet on D."""
    return frame.loc[by_end_of(frame["created_at"], day, settings.timezone)]


def _elapsed(start: pd.Series, end: pd.Series, unit: float) -> pd.Series:
    return (pd.to_datetime(end, utc=True) - pd.to_datetime(start, utc=True)).dt.total_seconds() / unit


def _mean(values: pd.Series, unit: str):
    """A mean as a quotient row: numerator = sum, denominator = observations."""
    def measure(mask: np.ndarray, **dims: str | None) -> dict:
        chosen = values.to_numpy(dtype=float)[mask]
        return quotient(float(chosen.sum()), float(len(chosen)), unit, **dims)
    return measure


def _percentile(values: pd.Series, q: float, unit: str):
    def measure(mask: np.ndarray, **dims: str | None) -> dict:
        return percentile(values.to_numpy(dtype=float)[mask], q, unit, **dims)
    return measure


def _share(flags: np.ndarray, unit: str = "ratio"):
    """Rows flagged / rows of the population (x 100 for percent)."""
    def measure(mask: np.ndarray, **dims: str | None) -> dict:
        return quotient(float(flags[mask].sum()), float(mask.sum()), unit, **dims)
    return measure


def _total(values: np.ndarray, unit: str = "count"):
    """Count form: the sum over the population (a number of rows when `values` are ones)."""
    def measure(mask: np.ndarray, **dims: str | None) -> dict:
        return count(float(values[mask].sum()), unit, **dims)
    return measure


def lead_response_time(crm_leads: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Hours to the first response of the leads answered in D-29..D, and the share of the leads created in the
    window (and 24 h old by the end of D) not answered within 24 h; per metric and source."""
    tz = settings.timezone
    first, last = window(day, 30)
    leads = _created(crm_leads, day, settings)
    answered = leads.loc[in_days(leads["first_response_at"], first, last, tz)]
    hours = _elapsed(answered["created_at"], answered["first_response_at"], HOURS)
    created = pd.to_datetime(leads["created_at"], utc=True)
    # created_at + 24 h <= end of D: facts of D are those before the first instant after D
    old_enough = in_days(leads["created_at"], first, last, tz) & \
        by_end_of(created + pd.Timedelta(hours=24), day, tz)
    due = leads.loc[old_enough]
    late = ~(pd.to_datetime(due["first_response_at"], utc=True)
             <= pd.to_datetime(due["created_at"], utc=True) + pd.Timedelta(hours=24)).fillna(False).to_numpy(dtype=bool)
    source_answered, source_due = labels(answered["source"]), labels(due["source"])
    values = open_values(source_answered, source_due)
    rows: list[dict] = []
    for metric, measure in (("mean_hours", _mean(hours, "hours")), ("median_hours", _percentile(hours, 50, "hours")),
                            ("p90_hours", _percentile(hours, 90, "hours"))):
        rows += breakdown("source", values, source_answered, measure, metric=metric)
    rows += breakdown("source", values, source_due, _share(late), metric="unanswered_24h_share")
    return rows


def sales_conversion_rate(crm_leads: pd.DataFrame, crm_opportunities: pd.DataFrame, day: dt.date,
                          settings: Settings) -> list[dict]:
    """Leads created in D-29..D: the share converted by the end of D, and the share with an opportunity created
    by the end of D; per metric and source."""
    tz = settings.timezone
    leads = crm_leads.loc[in_days(crm_leads["created_at"], *window(day, 30), tz)]
    converted = by_end_of(leads["converted_at"], day, tz)
    opportunities = _created(crm_opportunities, day, settings)
    with_opportunity = leads["lead_id"].isin(opportunities["lead_id"].dropna()).to_numpy(dtype=bool)
    sources = labels(leads["source"])
    values = open_values(sources)
    return [*breakdown("source", values, sources, _share(converted), metric="conversion_rate"),
            *breakdown("source", values, sources, _share(with_opportunity), metric="lead_to_opportunity")]


def _closed(opportunities: pd.DataFrame, stage: str, day: dt.date, days: int, settings: Settings) -> np.ndarray:
    """Opportunities of `stage` whose closed_at falls in D-days+1..D (a stage counts only with its timestamp)."""
    return (opportunities["stage"] == stage).fillna(False).to_numpy(dtype=bool) & \
        in_days(opportunities["closed_at"], *window(day, days), settings.timezone)


def close_rate(crm_opportunities: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Opportunities won or lost with closed_at in D-29..D: won / (won + lost), in all and per type."""
    opportunities = _created(crm_opportunities, day, settings)
    won = _closed(opportunities, "won", day, 30, settings)
    lost = _closed(opportunities, "lost", day, 30, settings)
    decided = opportunities.loc[won | lost]
    types = labels(decided["opportunity_type"])
    return breakdown("opportunity_type", open_values(types), types, _share(won[won | lost]))


def sales_cycles(crm_leads: pd.DataFrame, won: pd.DataFrame, day: dt.date, settings: Settings) -> pd.Series:
    """Days from the created_at of each won deal's lead (when lead_id matches a lead created by the end of D)
    else of the opportunity, to closed_at."""
    leads = _created(crm_leads, day, settings).drop_duplicates("lead_id")
    # reindex, not map: it keeps the timestamp type on an empty day
    lead_created = leads.set_index("lead_id")["created_at"].reindex(won["lead_id"].to_numpy())
    start = pd.Series(pd.to_datetime(lead_created, utc=True).to_numpy(), index=won.index).fillna(
        pd.to_datetime(won["created_at"], utc=True))
    return _elapsed(start, won["closed_at"], DAYS)


def sales_cycle_length(crm_leads: pd.DataFrame, crm_opportunities: pd.DataFrame, day: dt.date,
                       settings: Settings) -> list[dict]:
    """Deals won with closed_at in D-29..D: mean and median days from lead (or opportunity) creation to close."""
    opportunities = _created(crm_opportunities, day, settings)
    cycles = sales_cycles(crm_leads, opportunities.loc[_closed(opportunities, "won", day, 30, settings)], day,
                          settings)
    everyone = np.ones(len(cycles), dtype=bool)
    return [_mean(cycles, "days")(everyone, metric="mean_days"),
            _percentile(cycles, 50, "days")(everyone, metric="median_days")]


def pipeline_velocity(crm_leads: pd.DataFrame, crm_opportunities: pd.DataFrame, day: dt.date,
                      settings: Settings) -> list[dict]:
    """open opportunities x mean won amount x close rate / mean cycle days, over the deals closed in D-89..D."""
    opportunities = _created(crm_opportunities, day, settings)
    is_open = ~by_end_of(opportunities["closed_at"], day, settings.timezone)
    won = _closed(opportunities, "won", day, 90, settings)
    lost = _closed(opportunities, "lost", day, 90, settings)
    won_deals = opportunities.loc[won]
    amounts = won_deals["amount"].astype(float)
    cycles = sales_cycles(crm_leads, won_deals, day, settings)
    rows = [count(float(is_open.sum()), metric="open_opportunities"),
            quotient(float(amounts.sum()), float(len(won_deals)), "currency", metric="won_amount_mean"),
            quotient(float(won.sum()), float(won.sum() + lost.sum()), "ratio", metric="close_rate_90d"),
            quotient(float(cycles.sum()), float(len(cycles)), "days", metric="cycle_days_mean")]
    open_count, won_mean, rate, cycle = (r["value"] for r in rows)
    numerator = None if won_mean is None or rate is None else open_count * won_mean * rate
    rows.insert(0, quotient(numerator, cycle, "currency_per_day", metric="velocity"))
    return rows


def lead_source_mix(crm_leads: pd.DataFrame, crm_opportunities: pd.DataFrame, day: dt.date,
                    settings: Settings) -> list[dict]:
    """Window D-29..D: leads created, qualified and converted, and revenue won, per lead source."""
    tz = settings.timezone
    first, last = window(day, 30)
    leads = _created(crm_leads, day, settings)
    sources = labels(leads["source"])
    opportunities = _created(crm_opportunities, day, settings)
    won = opportunities.loc[_closed(opportunities, "won", day, 30, settings)]
    lead_source = sources.set_axis(leads["lead_id"].to_numpy())
    lead_source = lead_source[~lead_source.index.duplicated()]
    won_source = won["lead_id"].map(lead_source).fillna(NONE).astype("string")
    steps = {"leads": in_days(leads["created_at"], first, last, tz),
             "qualified": in_days(leads["qualified_at"], first, last, tz),
             "conversions": in_days(leads["converted_at"], first, last, tz)}
    values = open_values(*(sources[mask] for mask in steps.values()), won_source)
    rows: list[dict] = []
    for metric, mask in steps.items():
        rows += breakdown("source", values, sources, _total(mask.astype(float)), metric=metric)
    rows += breakdown("source", values, won_source, _total(won["amount"].astype(float).fillna(0.0).to_numpy(),
                                                           "currency"), metric="won_revenue")
    return rows


def upsell_crosssell_rate(orders: pd.DataFrame) -> list[dict]:
    """Orders placed in D-29..D (refunded or not, renewals included): the percentage of upsell and cross_sell
    orders. The window input holds exactly the orders assigned to D-29..D."""
    sale_type = orders["sale_type"].astype("string").fillna("standard")
    everyone = np.ones(len(orders), dtype=bool)
    return [_share((sale_type == kind).to_numpy(dtype=bool), "percent")(everyone, metric=kind)
            for kind in ("upsell", "cross_sell")]


def _lineage(*pairs: tuple[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return dict(pairs)


SOURCE = Dimension("source")
CRM_AS_OF_D = ("CRM rows as of D (docs/outputs.md 2.5): a row counts only through its lifecycle timestamps at or before "
               "the end of D")

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="lead_response_time", family="Sales", seed="001",
        description="One row per metric and per metric x lead source: how fast leads get a first response. Hours "
                    "for the leads first answered in D-29..D; the share of the leads created in D-29..D (24 h old "
                    "by the end of D) not answered within 24 h.",
        formula="mean/median/p90 of (first_response_at - created_at) / 3600 s over leads with first_response_at in "
                "D-29..D; unanswered_24h_share = leads created in D-29..D with created_at + 24 h <= end of D and no "
                "first_response_at <= created_at + 24 h / those leads",
        window="30d (D-29..D)", population="leads (ingest/crm_leads as of D) created by the end of D",
        exclusions=CRM_AS_OF_D, unit="hours, ratio",
        dimensions=(Dimension("metric", ("mean_hours", "median_hours", "p90_hours", "unanswered_24h_share")), SOURCE),
        headline={"metric": "mean_hours"},
        inputs=(KpiInput("crm_leads", LEADS, columns=LEAD_COLUMNS),),
        lineage=_lineage(("source", ("crm_leads.source",)),
                         ("numerator", ("crm_leads.created_at", "crm_leads.first_response_at")),
                         ("denominator", ("crm_leads.lead_id", "crm_leads.created_at", "crm_leads.first_response_at"))),
        compute=lead_response_time, window_days=30),
    KpiDefinition(
        name="sales_conversion_rate", family="Sales", seed="001",
        description="One row per metric and per metric x lead source, for the leads created in D-29..D: the share "
                    "converted, and the share with an opportunity, by the end of D.",
        formula="conversion_rate = leads with converted_at <= end of D / leads; lead_to_opportunity = leads with >= 1 "
                "opportunity (by lead_id) created <= end of D / leads",
        window="30d (leads created in D-29..D)", population="leads created in D-29..D", exclusions=CRM_AS_OF_D,
        unit="ratio",
        dimensions=(Dimension("metric", ("conversion_rate", "lead_to_opportunity")), SOURCE),
        headline={"metric": "conversion_rate"},
        inputs=(KpiInput("crm_leads", LEADS, columns=LEAD_COLUMNS),
                KpiInput("crm_opportunities", OPPORTUNITIES, columns=OPPORTUNITY_COLUMNS)),
        lineage=_lineage(("source", ("crm_leads.source",)),
                         ("numerator", ("crm_leads.converted_at", "crm_opportunities.lead_id",
                                        "crm_opportunities.created_at")),
                         ("denominator", ("crm_leads.lead_id", "crm_leads.created_at"))),
        compute=sales_conversion_rate, window_days=30),
    KpiDefinition(
        name="close_rate", family="Sales", seed="004",
        description="One row per opportunity type and one for all types, for the opportunities won or lost with closed_at in "
                    "D-29..D: the share won.",
        formula="won / (won + lost); won (lost) = stage won (lost) and closed_at in D-29..D",
        window="30d (closed in D-29..D)", population="opportunities won or lost with closed_at in D-29..D",
        exclusions=CRM_AS_OF_D + "; open opportunities", unit="ratio",
        dimensions=(Dimension("opportunity_type"),), headline={},
        inputs=(KpiInput("crm_opportunities", OPPORTUNITIES, columns=OPPORTUNITY_COLUMNS),),
        lineage=_lineage(("opportunity_type", ("crm_opportunities.opportunity_type",)),
                         ("numerator", ("crm_opportunities.stage", "crm_opportunities.closed_at")),
                         ("denominator", ("crm_opportunities.stage", "crm_opportunities.closed_at"))),
        compute=close_rate, window_days=30),
    KpiDefinition(
        name="sales_cycle_length", family="Sales", seed="003, 004",
        description="One row per metric (mean_days, median_days) for the deals won with closed_at in D-29..D: days "
                    "from the creation of the deal's lead (or of the opportunity when it has no known lead) to close.",
        formula="(closed_at - created_at of the lead when lead_id matches a lead created <= end of D, else of the "
                "opportunity) / 86400 s; mean = sum / deals, median interpolated",
        window="30d (won in D-29..D)", population="deals won with closed_at in D-29..D", exclusions=CRM_AS_OF_D,
        unit="days", dimensions=(Dimension("metric", ("mean_days", "median_days")),),
        headline={"metric": "mean_days"},
        inputs=(KpiInput("crm_leads", LEADS, columns=LEAD_COLUMNS),
                KpiInput("crm_opportunities", OPPORTUNITIES, columns=OPPORTUNITY_COLUMNS)),
        lineage=_lineage(("numerator", ("crm_opportunities.closed_at", "crm_opportunities.created_at",
                                        "crm_leads.created_at", "crm_opportunities.lead_id")),
                         ("denominator", ("crm_opportunities.stage", "crm_opportunities.closed_at"))),
        compute=sales_cycle_length, window_days=30),
    KpiDefinition(
        name="pipeline_velocity", family="Sales", seed="004",
        description="One row per metric: the pipeline's velocity (revenue per day it is expected to close) and its "
                    "four factors, from the opportunities open at D and the deals closed in D-89..D.",
        formula="velocity = open_opportunities x won_amount_mean x close_rate_90d / cycle_days_mean; "
                "open_opportunities = created <= end of D, closed_at null or later; won_amount_mean = amount of deals "
                "won in D-89..D / those deals (a missing amount counts 0); close_rate_90d = won / (won + lost) in "
                "D-89..D; cycle_days_mean = mean sales cycle (as sales_cycle_length) of the deals won in D-89..D",
        window="90d (D-89..D) and at D", population="opportunities created by the end of D",
        exclusions=CRM_AS_OF_D, unit="currency_per_day, count, currency, ratio, days",
        dimensions=(Dimension("metric", ("velocity", "open_opportunities", "won_amount_mean", "close_rate_90d",
                                         "cycle_days_mean")),),
        headline={"metric": "velocity"},
        inputs=(KpiInput("crm_leads", LEADS, columns=LEAD_COLUMNS),
                KpiInput("crm_opportunities", OPPORTUNITIES, columns=OPPORTUNITY_COLUMNS)),
        lineage=_lineage(("numerator", ("crm_opportunities.created_at", "crm_opportunities.closed_at",
                                        "crm_opportunities.amount", "crm_opportunities.stage")),
                         ("denominator", ("crm_opportunities.closed_at", "crm_opportunities.created_at",
                                          "crm_leads.created_at"))),
        compute=pipeline_velocity, window_days=90),
    KpiDefinition(
        name="lead_source_mix", family="Sales", seed="004",
        description="One row per metric and per metric x lead source, window D-29..D: leads created, qualified "
                    "(seed 004's prospects), converted, and the revenue of the deals won, by the source of their lead.",
        formula="leads = leads created in the window; qualified = leads with qualified_at in the window; conversions "
                "= leads with converted_at in the window; won_revenue = amount of opportunities won with closed_at in "
                "the window, by the source of their lead (no lead: (none))",
        window="30d (D-29..D)", population="leads and opportunities created by the end of D",
        exclusions=CRM_AS_OF_D, unit="count, currency",
        dimensions=(Dimension("metric", ("leads", "qualified", "conversions", "won_revenue")), SOURCE),
        headline={"metric": "leads"},
        inputs=(KpiInput("crm_leads", LEADS, columns=LEAD_COLUMNS),
                KpiInput("crm_opportunities", OPPORTUNITIES, columns=OPPORTUNITY_COLUMNS)),
        lineage=_lineage(("source", ("crm_leads.source", "crm_opportunities.lead_id")),
                         ("numerator", ("crm_leads.created_at", "crm_leads.qualified_at", "crm_leads.converted_at",
                                        "crm_opportunities.amount", "crm_opportunities.closed_at"))),
        compute=lead_source_mix, window_days=30),
    KpiDefinition(
        name="upsell_crosssell_rate", family="Sales", seed="001",
        description="One row per metric (upsell, cross_sell) for the orders placed in D-29..D: the percentage of "
                    "orders of that sale type.",
        formula="upsell = orders with sale_type upsell / orders x 100; cross_sell likewise (missing sale_type = "
                "standard)",
        window="30d (orders placed in D-29..D)", population="orders placed in D-29..D, refunded or not, renewals "
        "included", unit="percent",
        dimensions=(Dimension("metric", ("upsell", "cross_sell")),), headline={"metric": "upsell"},
        inputs=(KpiInput("orders", ORDERS, window_days=30, columns=("order_id", "sale_type")),),
        lineage=_lineage(("numerator", ("orders.sale_type",)), ("denominator", ("orders.order_id",))),
        compute=upsell_crosssell_rate, window_days=30),
)
