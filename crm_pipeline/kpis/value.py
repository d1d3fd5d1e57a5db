"""Monetise KPIs, value part (kpis.md "Monetise: value and cost"): aov_arpu, refund_and_discount, ltv and
revenue_per_recipient, one pure function each.

Orders and their refund status at D come from the order book of D (`aggregates/order_book`, the orders of the last
548 days), refunds by the day they are dated from the refund ledger of D (`aggregates/refund_ledger`). "Net of
refunds" (kpis.md 2.3) is `net_of_refunds`: the net revenue of the orders placed in a window minus the refunds
dated in it, of any order the book held when the refund arrived. Both states hold persons as of D; a run carries
them through the identity changes logged since (`remap`, kpis.md 2.2).
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.kpis.aggregates import FIRST_ORDERS_KEY
from crm_pipeline.kpis.customers import active_customers, non_refunded, order_book_input, placed_in
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_DAYS, REFUND_LEDGER_KEY, day_numbers
from crm_pipeline.settings import Settings

REFUND_LEDGER = tuple(REFUND_LEDGER_KEY.path)
WINDOWS_1D_30D = {"1d": 1, "30d": 30}


def refund_ledger_input(columns: tuple[str, ...] = ("person_id", "refund_day", "amount")) -> KpiInput:
    """The refund ledger of D (every refund dated in the last 548 days of an order the book held) as an input."""
    return KpiInput("refund_ledger", REFUND_LEDGER, columns=columns)


def window_start(day: dt.date, days: int) -> dt.date:
    """The first day of the window D-days+1..D."""
    return day - dt.timedelta(days=days - 1)


def dated_in(ledger: pd.DataFrame, first: dt.date, last: dt.date) -> np.ndarray:
    """True for the refunds dated on a day in first..last (both included, reporting timezone)."""
    days = day_numbers(ledger["refund_day"])
    return (days >= _day_number(first)) & (days <= _day_number(last))


def net_of_refunds(book: pd.DataFrame, ledger: pd.DataFrame, first: dt.date, last: dt.date) -> float:
    """R of kpis.md 2.3: net revenue of the orders placed in first..last (refunded or not) minus the refunds dated
    in first..last, whatever the day of their order (refunds of orders the book never held are not in the ledger)."""
    revenue = book["net_revenue"].astype(float).to_numpy()[placed_in(book, first, last)].sum()
    refunds = ledger["amount"].astype(float).to_numpy()[dated_in(ledger, first, last)].sum()
    return float(revenue - refunds)


def _day_number(day: dt.date) -> int:
    return int(np.datetime64(day, "D").astype(np.int64))


# ---------------------------------------------------------------------------------------------------------------
# aov_arpu

def aov_arpu(order_book: pd.DataFrame, refund_ledger: pd.DataFrame, remap: PersonRemap, day: dt.date) -> list[dict]:
    """R (net of refunds) per order placed in the window (refunded or not) and per active customer at D."""
    active = float(len(active_customers(order_book, day, remap)))
    rows = []
    for window, days in WINDOWS_1D_30D.items():
        first = window_start(day, days)
        revenue = net_of_refunds(order_book, refund_ledger, first, day)
        orders = float(placed_in(order_book, first, day).sum())
        rows += [quotient(revenue, orders, "currency", metric="aov", window=window),
                 quotient(revenue, active, "currency", metric="arpu", window=window)]
    return rows


# ---------------------------------------------------------------------------------------------------------------
# refund_and_discount

def refund_and_discount(order_book: pd.DataFrame, refund_ledger: pd.DataFrame, day: dt.date) -> list[dict]:
    """Refunds dated in D-29..D against the net revenue of the orders placed in it; the discounts of those orders."""
    first = window_start(day, 30)
    placed = placed_in(order_book, first, day)
    net = order_book["net_revenue"].astype(float).to_numpy()[placed]
    discount = order_book["discount_amount"].astype(float).fillna(0.0).to_numpy()[placed]
    gross = order_book["gross_revenue"].astype(float).to_numpy()[placed]
    refunds = refund_ledger["amount"].astype(float).to_numpy()[dated_in(refund_ledger, first, day)]
    return [quotient(float(refunds.sum()), float(net.sum()), "ratio", metric="refund_rate"),
            quotient(float((discount > 0).sum()), float(placed.sum()), "ratio", metric="discounted_order_share"),
            quotient(float(discount.sum()), float(gross.sum()), "ratio", metric="discount_to_gross")]


# ---------------------------------------------------------------------------------------------------------------
# ltv

LTV_WINDOWS = {"12m": 365, "18m": 548}  # D-364..D, D-547..D
FREQUENCY_BUCKETS = ("1", "2-3", "4-6", "7+")
FREQUENCY_EDGES = (0, 1, 3, 6, np.inf)  # orders non-refunded at D in the window: (0, 1], (1, 3], (3, 6], (6, inf)
TENURE_BUCKETS = ("0-89", "90-364", "365+")
TENURE_EDGES = (-np.inf, 89, 364, np.inf)  # days from the day of the first order to D


def first_order_days(first_orders: pd.DataFrame, book: pd.DataFrame, book_persons: np.ndarray, remap: PersonRemap,
                     timezone: str) -> pd.Series:
    """Day number of each person's first order (refunded later or not), in the reporting timezone: the earliest of
    their parts' first orders (persons merged later are one person) and of the book's orders, which the first
    orders state holds too (the book only guards a person the state does not know yet)."""
    ordered_at = pd.to_datetime(first_orders["first_ordered_at"], utc=True).dt.tz_convert(timezone)
    days = pd.concat([
        pd.Series(day_numbers(ordered_at.dt.date), index=remap(first_orders["person_id"]).to_numpy()),
        pd.Series(day_numbers(book["order_day"]), index=book_persons)])
    days = days.loc[days.index.notna()]
    return days.groupby(level=0).min()


def ltv(order_book: pd.DataFrame, refund_ledger: pd.DataFrame, first_orders: pd.DataFrame, remap: PersonRemap,
        day: dt.date, settings: Settings) -> list[dict]:
    """Per window: over the persons with an order non-refunded at D in it, the net revenue of their orders placed
    in it minus the refunds dated in it of any of their orders, per person; and so by frequency and tenure bucket.
    Each person is one row of one groupby, so one bucket of each kind (the bucket denominators add up to the
    window's)."""
    book_persons = remap(order_book["person_id"]).to_numpy()
    ledger_persons = remap(refund_ledger["person_id"]).to_numpy()
    first_day = first_order_days(first_orders, order_book, book_persons, remap, settings.timezone)
    net = order_book["net_revenue"].astype(float).to_numpy()
    kept = non_refunded(order_book)
    amounts = refund_ledger["amount"].astype(float).to_numpy()
    rows = []
    for window, days in LTV_WINDOWS.items():
        first = window_start(day, days)
        placed = placed_in(order_book, first, day)
        orders = pd.DataFrame({"person_id": book_persons[placed], "revenue": net[placed],
                               "orders": kept[placed].astype(np.int64)}).dropna(subset=["person_id"])
        per_person = orders.groupby("person_id").sum()
        per_person = per_person.loc[per_person["orders"] > 0]
        dated = dated_in(refund_ledger, first, day)
        refunds = pd.Series(amounts[dated], index=ledger_persons[dated]).groupby(level=0).sum()
        value = per_person["revenue"] - refunds.reindex(per_person.index).fillna(0.0)
        frequency = pd.cut(per_person["orders"], FREQUENCY_EDGES, labels=FREQUENCY_BUCKETS).astype("string")
        tenure_days = _day_number(day) - first_day.reindex(per_person.index)
        tenure = pd.cut(tenure_days, TENURE_EDGES, labels=TENURE_BUCKETS).astype("string")
        rows.append(quotient(float(value.sum()), float(len(value)), "currency", window=window))
        for dimension, buckets, labels in (("frequency_bucket", FREQUENCY_BUCKETS, frequency),
                                           ("tenure_bucket", TENURE_BUCKETS, tenure)):
            for bucket in buckets:
                members = (labels == bucket).fillna(False).to_numpy(dtype=bool)
                rows.append(quotient(float(value.to_numpy()[members].sum()), float(members.sum()), "currency",
                                     window=window, **{dimension: bucket}))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# declarations

BOOK_COLUMNS = ("person_id", "order_day", "net_revenue", "fully_refunded")
NET_OF_REFUNDS = ("net revenue (gross_revenue - discount_amount) of the orders placed in the window minus the refunds "
                  "dated in the window, of any order")
LEDGER_EXCLUSIONS = (f"refunds of orders placed before CRM_START_DATE, or dated {ORDER_BOOK_DAYS} or more days after "
                     "their order's day (the order book no longer holds the order)")

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="aov_arpu", family="Monetise", seed="002",
        description="One row per metric (aov, arpu) x window (1d = D, 30d = D-29..D): revenue net of refunds per "
                    "order placed in the window and per active customer at the end of D.",
        formula=f"R = {NET_OF_REFUNDS}; aov = R / orders placed in the window (refunded or not); arpu = R / active "
                "customers at D (persons with an order non-refunded at D in D-364..D)",
        window="1d, 30d (active customers: D-364..D)",
        population="orders placed in the window; refunds dated in it; active customers at D", unit="currency",
        exclusions=LEDGER_EXCLUSIONS,
        dimensions=(Dimension("metric", ("aov", "arpu")), Dimension("window", tuple(WINDOWS_1D_30D))),
        headline={"metric": "aov", "window": "30d"},
        inputs=(order_book_input(columns=BOOK_COLUMNS), refund_ledger_input()),
        lineage={"numerator": ("order_book.net_revenue", "order_book.order_day", "refund_ledger.amount",
                               "refund_ledger.refund_day"),
                 "denominator": ("order_book.order_day", "order_book.person_id", "order_book.fully_refunded")},
        compute=aov_arpu, window_days=365, remap_days=1),  # both states hold persons as of D
    KpiDefinition(
        name="refund_and_discount", family="Monetise", seed="002",
        description="One row per metric (refund_rate, discounted_order_share, discount_to_gross) for D-29..D: the "
                    "refunds dated in the window against the net revenue of the orders placed in it, and how much "
                    "of those orders is discounted.",
        formula="refund_rate = refunds dated in the window / net revenue of the orders placed in the window (refunds "
                "not deducted); discounted_order_share = orders with discount_amount > 0 / orders; "
                "discount_to_gross = sum of discount_amount / sum of gross_revenue over the orders in the window",
        window="30d (D-29..D)", population="orders placed in D-29..D; refunds dated in D-29..D (of any order)",
        unit="ratio", exclusions=LEDGER_EXCLUSIONS,
        dimensions=(Dimension("metric", ("refund_rate", "discounted_order_share", "discount_to_gross")),),
        headline={"metric": "refund_rate"},
        inputs=(order_book_input(columns=("order_day", "net_revenue", "gross_revenue", "discount_amount")),
                refund_ledger_input(columns=("refund_day", "amount"))),
        lineage={"numerator": ("refund_ledger.amount", "refund_ledger.refund_day", "order_book.discount_amount"),
                 "denominator": ("order_book.net_revenue", "order_book.gross_revenue", "order_book.order_day")},
        unbounded_metrics=("refund_rate", "discount_to_gross"),
        compute=refund_and_discount, window_days=30),
    KpiDefinition(
        name="ltv", family="Monetise", seed="000",
        description="One row per window (12m = D-364..D, 18m = D-547..D) and per window x frequency_bucket and "
                    "window x tenure_bucket: revenue net of refunds per customer of the window.",
        formula="denominator = persons with an order non-refunded at D placed in the window; numerator = over those "
                "persons, net revenue of their orders placed in the window - refunds dated in the window of any of "
                "their orders; frequency_bucket by their number of orders non-refunded at D in the window (1, 2-3, "
                "4-6, 7+), tenure_bucket by the days from the day of their first order (refunded or not) to D "
                "(0-89, 90-364, 365+)",
        window="12m (D-364..D), 18m (D-547..D)",
        population="persons with an order non-refunded at D in the window", unit="currency",
        exclusions=LEDGER_EXCLUSIONS + "; refunds of persons without an order non-refunded at D in the window",
        dimensions=(Dimension("window", tuple(LTV_WINDOWS)), Dimension("frequency_bucket", FREQUENCY_BUCKETS),
                    Dimension("tenure_bucket", TENURE_BUCKETS)),
        headline={"window": "12m"},
        inputs=(order_book_input(columns=BOOK_COLUMNS), refund_ledger_input(),
                KpiInput("first_orders", tuple(FIRST_ORDERS_KEY.path), columns=("person_id", "first_ordered_at"))),
        lineage={"frequency_bucket": ("order_book.fully_refunded", "order_book.order_day"),
                 "tenure_bucket": ("first_orders.first_ordered_at", "order_book.order_day"),
                 "numerator": ("order_book.net_revenue", "order_book.order_day", "refund_ledger.amount",
                               "refund_ledger.refund_day", "refund_ledger.person_id"),
                 "denominator": ("order_book.person_id", "order_book.order_day", "order_book.fully_refunded")},
        compute=ltv, window_days=ORDER_BOOK_DAYS, remap_days=1),  # the states hold persons as of D
)
