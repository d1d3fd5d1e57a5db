"""Customer lifetime KPIs (kpis.md): clv (Monetise) and cohort_retention (Retention).

`clv` reads the order book of D and of D-30 (customers at D and at D-30, `customers.py`) and the refund ledger
of D (net of refunds, `value.net_of_refunds`). Its churn c is churn_rate's `customer` metric, computed by
`customer_churn` from the two books.

Both states hold persons as of their own day; a run carries them through the identity changes logged since
(`remap`, kpis.md 2.2), so two parts merged later are one customer.
"""

import datetime as dt

import pandas as pd

from crm_pipeline.kpis.customers import ACTIVE_DAYS, active_customers, order_book_input, placed_in
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, count, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.value import (
    LEDGER_EXCLUSIONS,
    NET_OF_REFUNDS,
    net_of_refunds,
    refund_ledger_input,
    window_start,
)

CHURN_DAYS = 30  # churn c: persons active at D-30 and not at D / persons active at D-30


def customer_churn(book_then: pd.DataFrame, book_now: pd.DataFrame, day: dt.date, remap: PersonRemap,
                   days: int = CHURN_DAYS) -> tuple[float, float]:
    """(persons active at D-`days` and not active at D, persons active at D-`days`): churn_rate `customer` =
    the first / the second x 100. `book_then` is the order book of D-`days`, `book_now` that of D; the persons of
    both are carried through the identity changes since (`remap`)."""
    start = active_customers(book_then, day - dt.timedelta(days=days), remap)
    still = active_customers(book_now, day, remap)
    return float((~start.isin(still)).sum()), float(len(start))


# ---------------------------------------------------------------------------------------------------------------
# clv

CLV_DAYS = 365  # D-364..D
MAX_LIFETIME_YEARS = 10.0  # L = min(1 / annual churn, 10); 10 when annual churn is 0
CLV_METRICS = ("clv", "clv_margin", "aov", "orders_per_customer", "annual_churn")


def expected_lifetime(annual_churn: float) -> float:
    """L = min(1 / annual churn, 10) years, 10 when annual churn is 0."""
    return MAX_LIFETIME_YEARS if annual_churn <= 0 else min(1.0 / annual_churn, MAX_LIFETIME_YEARS)


def _null(metric: str, unit: str) -> dict:
    return {"metric": metric, "numerator": None, "denominator": None, "value": None, "unit": unit}


def clv(order_book: pd.DataFrame, order_book_d30: pd.DataFrame, refund_ledger: pd.DataFrame, remap: PersonRemap,
        day: dt.date) -> list[dict]:
    """R (net of refunds in D-364..D) x L / A, with L from the 30-day customer churn annualised; AOV, orders per
    customer, the margin version (R - cost of goods) and the annual churn itself."""
    first = window_start(day, CLV_DAYS)
    revenue = net_of_refunds(order_book, refund_ledger, first, day)
    placed = placed_in(order_book, first, day)
    orders = float(placed.sum())
    active = float(len(active_customers(order_book, day, remap)))
    cost = order_book["cost_of_goods"].astype(float).to_numpy()[placed]
    lost, start = customer_churn(order_book_d30, order_book, day, remap)
    rows = [quotient(revenue, orders, "currency", metric="aov"),
            quotient(orders, active, "count", metric="orders_per_customer")]
    if start == 0:  # c is null: so are annual churn, L, clv and clv_margin
        return [_null("clv", "currency"), _null("clv_margin", "currency"), *rows, _null("annual_churn", "ratio")]
    annual = 1.0 - (1.0 - lost / start) ** (365.0 / CHURN_DAYS)
    lifetime = expected_lifetime(annual)
    rows += [quotient(revenue * lifetime, active, "currency", metric="clv"),
             count(annual, "ratio", metric="annual_churn")]
    if (~pd.isna(cost)).any():
        margin = revenue - float(pd.Series(cost).fillna(0.0).sum())
        rows.append(quotient(margin * lifetime, active, "currency", metric="clv_margin"))
    else:  # no order of the window has a cost of goods
        rows.append(_null("clv_margin", "currency"))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# declarations

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="clv", family="Monetise", seed="001",
        description="One row per metric (clv, clv_margin, aov, orders_per_customer, annual_churn) for D-364..D: "
                    "revenue net of refunds per active customer at D over the expected customer lifetime, from the "
                    "30-day customer churn annualised.",
        formula=f"R = {NET_OF_REFUNDS} (D-364..D); O = orders placed in the window (refunded or not); A = active "
                "customers at D; c = churn_rate customer / 100 = persons active at D-30 and not at D / persons "
                "active at D-30; annual churn = 1 - (1 - c)^(365/30); L = min(1 / annual churn, 10) (10 when "
                "annual churn is 0); clv = R x L / A; clv_margin = (R - cost_of_goods of the orders in the window, "
                "missing = 0) x L / A, null when no order in the window has cost_of_goods; aov = R / O; "
                "orders_per_customer = O / A; annual_churn: numerator = value, denominator null; clv, clv_margin "
                "and annual_churn are null when c is null (no active customer at D-30)",
        window="365d (D-364..D; churn: active customers at D-30 and at D, D-394..D)",
        population="orders placed in D-364..D; refunds dated in it; active customers at D and at D-30",
        unit="currency, count, ratio", exclusions=LEDGER_EXCLUSIONS,
        dimensions=(Dimension("metric", CLV_METRICS),),
        headline={"metric": "clv"},
        inputs=(order_book_input(columns=("person_id", "order_day", "net_revenue", "fully_refunded",
                                          "cost_of_goods")),
                order_book_input("order_book_d30", offset_days=CHURN_DAYS,
                                 columns=("person_id", "order_day", "fully_refunded")),
                refund_ledger_input(columns=("refund_day", "amount"))),
        lineage={"numerator": ("order_book.net_revenue", "order_book.order_day", "order_book.cost_of_goods",
                               "refund_ledger.amount", "refund_ledger.refund_day", "order_book_d30.person_id",
                               "order_book_d30.fully_refunded", "order_book.person_id"),
                 "denominator": ("order_book.person_id", "order_book.order_day", "order_book.fully_refunded")},
        compute=clv, window_days=ACTIVE_DAYS + CHURN_DAYS,
        remap_days=CHURN_DAYS + 1),  # the book of D-30 holds persons as of D-30
)
