"""Sales pipeline KPIs on hand-built CRM snapshots, with every number worked out by hand (D = 2026-11-30, UTC
unless a test says otherwise; the 30-day window is 11-01..11-30, the 90-day one 09-02..11-30)."""

import math

import pandas as pd
import pytest

from crm_pipeline.kpis.sales import KPIS
from crm_pipeline_tests.kpis.crm_helpers import kpi_table, row, ts

BY_NAME = {k.name: k for k in KPIS}


LEADS = pd.DataFrame({
    "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8"],
    "created_at": ts(["2026-11-28T10:00", "2026-11-29T08:00", "2026-11-30T09:00", "2026-11-20T00:00",
                      "2026-10-20T00:00", "2026-11-25T00:00", "2026-12-01T00:00", "2026-11-10T00:00"]),
    "source": pd.Series(["web", "web", "event", None, "web", "event", "late", "web"], dtype="string"),
    # L6 answered only after D: not answered as of D; L7 is created after D: it does not exist yet on D
    "first_response_at": ts(["2026-11-28T12:00", "2026-11-30T08:00", None, "2026-11-22T00:00",
                             "2026-11-01T00:00", "2026-12-02T00:00", "2026-12-01T01:00", "2026-11-11T01:00"]),
    "qualified_at": ts([None, "2026-11-29T00:00", "2026-12-01T00:00", None, "2026-11-02T00:00", None, None, None]),
    "converted_at": ts(["2026-11-29T00:00", None, "2026-12-01T00:00", None, None, None, None, "2026-11-15T00:00"]),
})

OPPORTUNITIES = pd.DataFrame({
    "opportunity_id": ["O1", "O2", "O3", "O4", "O5", "O6", "O7", "O8"],
    "lead_id": pd.Series(["L1", "L2", "L4", None, "L99", "L8", None, "L5"], dtype="string"),
    "created_at": ts(["2026-11-29T00:00", "2026-12-01T00:00", "2026-11-25T00:00", "2026-10-01T00:00",
                      "2026-09-15T00:00", "2026-11-12T00:00", "2026-11-01T00:00", "2026-10-25T00:00"]),
    "closed_at": ts(["2026-11-30T12:00", None, "2026-11-27T00:00", "2026-11-05T00:00", "2026-10-15T00:00",
                     "2026-12-03T00:00", None, "2026-11-10T00:00"]),
    # O6 is won only after D: open at D
    "stage": pd.Series(["won", "open", "lost", "won", "won", "won", "open", "lost"], dtype="string"),
    "amount": [1000.0, 50.0, 500.0, 300.0, 700.0, 2000.0, 100.0, 50.0],
    "opportunity_type": pd.Series(["new_business", "renewal", "upsell", None, "new_business", "upsell", "renewal",
                                   "cross_sell"], dtype="string"),
})


def table(name: str, timezone: str = "UTC", **inputs: pd.DataFrame) -> pd.DataFrame:
    return kpi_table(BY_NAME[name], timezone, **inputs)


def test_lead_response_time_by_hand():
    t = table("lead_response_time", crm_leads=LEADS)
    # answered in the window: L1 2 h, L2 24 h, L4 48 h, L5 288 h (created before the window), L8 25 h
    assert row(t, metric=None, source=None) == (387.0, 5.0, 77.4, "hours")  # headline: mean_hours
    assert row(t, metric="mean_hours", source=None) == (387.0, 5.0, 77.4, "hours")
    assert row(t, metric="median_hours", source=None) == (None, 5.0, 25.0, "hours")
    assert row(t, metric="p90_hours", source=None) == (None, 5.0, 192.0, "hours")  # 48 + 0.6 x (288 - 48)
    assert row(t, metric="mean_hours", source="web") == (339.0, 4.0, 84.75, "hours")
    assert row(t, metric="median_hours", source="web") == (None, 4.0, 24.5, "hours")
    assert row(t, metric="p90_hours", source="web") == (None, 4.0, 209.1, "hours")  # 25 + 0.7 x 263
    assert row(t, metric="mean_hours", source="(none)") == (48.0, 1.0, 48.0, "hours")
    # `event` is a value of the unanswered population only: quotient 0/0 and an empty median
    assert row(t, metric="mean_hours", source="event") == (0.0, 0.0, None, "hours")
    assert row(t, metric="median_hours", source="event") == (None, 0.0, None, "hours")
    # created in the window and 24 h old at the end of D: L1, L2 (answered at exactly 24 h), L4, L6, L8 (L3 is
    # too young); not answered within 24 h: L4 (48 h), L6 (answered after D), L8 (25 h)
    assert row(t, metric="unanswered_24h_share", source=None) == (3.0, 5.0, 0.6, "ratio")
    assert row(t, metric="unanswered_24h_share", source="web")[:2] == (1.0, 3.0)
    assert row(t, metric="unanswered_24h_share", source="event") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, metric="unanswered_24h_share", source="(none)") == (1.0, 1.0, 1.0, "ratio")
    assert "late" not in set(t["source"].dropna())  # L7 does not exist yet on D
    assert len(t) == 1 + 4 * 4


def test_sales_conversion_rate_by_hand():
    t = table("sales_conversion_rate", crm_leads=LEADS, crm_opportunities=OPPORTUNITIES)
    # leads created in the window: L1, L2, L3, L4, L6, L8; converted by the end of D: L1, L8 (L3 only after D);
    # with an opportunity created by the end of D: L1 (O1), L4 (O3), L8 (O6, still open); O2 of L2 is created
    # after D
    assert row(t, metric=None, source=None)[:3] == (2.0, 6.0, pytest.approx(1 / 3))
    assert row(t, metric="lead_to_opportunity", source=None)[:3] == (3.0, 6.0, 0.5)
    assert row(t, metric="conversion_rate", source="web")[:2] == (2.0, 3.0)
    assert row(t, metric="lead_to_opportunity", source="web")[:2] == (2.0, 3.0)
    assert row(t, metric="conversion_rate", source="event") == (0.0, 2.0, 0.0, "ratio")
    assert row(t, metric="lead_to_opportunity", source="(none)") == (1.0, 1.0, 1.0, "ratio")
    assert len(t) == 1 + 2 * 4


def test_close_rate_by_hand():
    t = table("close_rate", crm_opportunities=OPPORTUNITIES)
    # closed in the window: O1 won, O4 won, O3 lost, O8 lost (O5 closed before it, O6 is won after D)
    assert row(t, opportunity_type=None) == (2.0, 4.0, 0.5, "ratio")
    assert row(t, opportunity_type="new_business") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, opportunity_type="upsell") == (0.0, 1.0, 0.0, "ratio")
    assert row(t, opportunity_type="(none)") == (1.0, 1.0, 1.0, "ratio")
    assert row(t, opportunity_type="cross_sell") == (0.0, 1.0, 0.0, "ratio")
    assert len(t) == 5


def test_close_rate_places_a_close_in_its_reporting_day():
    late_evening = OPPORTUNITIES.assign(closed_at=ts(["2026-10-31T23:30"] + [None] * 7))  # 11-01 00:30 in Berlin
    assert row(table("close_rate", crm_opportunities=late_evening), opportunity_type=None)[:2] == (0.0, 0.0)
    berlin = table("close_rate", "Europe/Berlin", crm_opportunities=late_evening)
    assert row(berlin, opportunity_type=None) == (1.0, 1.0, 1.0, "ratio")


def test_sales_cycle_length_by_hand():
    t = table("sales_cycle_length", crm_leads=LEADS, crm_opportunities=OPPORTUNITIES)
    # O1: from L1's creation 11-28 10:00 to 11-30 12:00 = 2 d 2 h; O4 has no lead: from its own creation, 35 d
    cycles = [2 + 2 / 24, 35.0]
    assert row(t, metric=None) == (round(sum(cycles), 9), 2.0, round(sum(cycles) / 2, 9), "days")
    assert row(t, metric="median_days") == (None, 2.0, round(sum(cycles) / 2, 9), "days")


def test_pipeline_velocity_by_hand():
    t = table("pipeline_velocity", crm_leads=LEADS, crm_opportunities=OPPORTUNITIES)
    # open at D: O6 (closes after D), O7 (no close); won in 90 d: O1 1000, O4 300, O5 700 (lead L99 unknown: its
    # own creation, 30 d); lost in 90 d: O3, O8
    assert row(t, metric="open_opportunities") == (2.0, None, 2.0, "count")
    assert row(t, metric="won_amount_mean") == (2000.0, 3.0, round(2000 / 3, 9), "currency")
    assert row(t, metric="close_rate_90d") == (3.0, 5.0, 0.6, "ratio")
    cycle = (2 + 2 / 24 + 35 + 30) / 3
    assert row(t, metric="cycle_days_mean") == (round(3 * cycle, 9), 3.0, round(cycle, 9), "days")
    assert row(t, metric="velocity") == (800.0, round(cycle, 9), round(800 / cycle, 9), "currency_per_day")
    assert row(t, metric=None) == row(t, metric="velocity")


def test_pipeline_velocity_without_won_deals_is_null():
    open_only = OPPORTUNITIES.assign(stage="open", closed_at=ts([None] * 8))
    t = table("pipeline_velocity", crm_leads=LEADS, crm_opportunities=open_only)
    assert row(t, metric="open_opportunities")[2] == 7.0  # O2 is created after D
    assert row(t, metric="won_amount_mean") == (0.0, 0.0, None, "currency")
    assert row(t, metric="velocity") == (None, None, None, "currency_per_day")


def test_lead_source_mix_by_hand():
    t = table("lead_source_mix", crm_leads=LEADS, crm_opportunities=OPPORTUNITIES)
    assert row(t, metric=None, source=None) == (6.0, None, 6.0, "count")
    assert row(t, metric="leads", source="web")[2] == 3.0
    assert row(t, metric="leads", source="event")[2] == 2.0
    # qualified in the window: L2 (web), L5 (web, created before the window); L3 only after D
    assert row(t, metric="qualified", source=None)[2] == 2.0
    assert row(t, metric="qualified", source="web")[2] == 2.0
    assert row(t, metric="qualified", source="event") == (0.0, None, 0.0, "count")
    assert row(t, metric="conversions", source="web")[2] == 2.0
    # won in the window: O1 (lead L1, web) 1000 and O4 (no lead) 300
    assert row(t, metric="won_revenue", source=None) == (1300.0, None, 1300.0, "currency")
    assert row(t, metric="won_revenue", source="web")[2] == 1000.0
    assert row(t, metric="won_revenue", source="(none)")[2] == 300.0
    assert row(t, metric="won_revenue", source="event")[2] == 0.0
    assert len(t) == 1 + 4 * 4


def test_upsell_crosssell_rate_by_hand():
    orders = pd.DataFrame({"order_id": ["a", "b", "c", "d", "e"],
                           "sale_type": pd.Series(["standard", "upsell", "cross_sell", None, "upsell"],
                                                  dtype="string")})
    t = table("upsell_crosssell_rate", orders=orders)
    assert row(t, metric=None) == (2.0, 5.0, 40.0, "percent")
    assert row(t, metric="cross_sell") == (1.0, 5.0, 20.0, "percent")


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_sales_kpi_on_empty_snapshots(name):
    """A day with no CRM rows at all: count form 0, quotients 0/0 with a null value, medians null over 0."""
    inputs = {"crm_leads": LEADS.iloc[0:0], "crm_opportunities": OPPORTUNITIES.iloc[0:0],
              "orders": pd.DataFrame({"order_id": pd.Series([], dtype="string"),
                                      "sale_type": pd.Series([], dtype="string")})}
    kpi = BY_NAME[name]
    wanted = {i.name for i in kpi.inputs}
    t = table(name, **{k: v for k, v in inputs.items() if k in wanted})
    fixed = [d for d in kpi.dimensions if d.values]
    assert len(t) == 1 + (len(fixed[0].values) if fixed else 0)  # open dimensions have no value on an empty day
    for _, r in t.iterrows():
        if r["denominator"] is not None and not math.isnan(r["denominator"]):
            assert r["denominator"] == 0 and math.isnan(r["value"])
        elif r["numerator"] is not None and not math.isnan(r["numerator"]):
            assert r["numerator"] == 0 == r["value"]  # count form
        else:
            assert math.isnan(r["value"])  # velocity: the product of nulls
