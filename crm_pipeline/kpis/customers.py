"""Customers as of a day (docs/outputs.md 2.3), read from the order book state `aggregates/order_book`.

The order book of day X holds every order placed in the year up to X (at least; its horizon may be longer)
with `fully_refunded` as of the end of X. So "active customer at X", "win-back candidate at X" and "the orders
non-refunded at X" are questions to the book of X: a KPI that needs them at D-30 reads the book's partition
D-30 (`order_book_input(offset_days=30)`), whose persons it carries through the identity changes since then
(`remap`, docs/outputs.md 2.2; declare `remap_days` to reach back to D-30). A KPI that needs the book of D too cannot
have both inputs (Dagster keys an asset's inputs by upstream asset): it reads `aggregates/customer_status` of D-30
instead (kpis/retention.py), which gives the same persons.

Every rule filters the book's days explicitly, so a longer book never changes an answer.
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.kpis.framework import KpiInput
from crm_pipeline.kpis.persons import PersonRemap

ORDER_BOOK = ("aggregates", "order_book")
ACTIVE_DAYS = 365  # an active customer has an order non-refunded at X in X-364..X
WINBACK_MIN_DAYS = 90  # a win-back candidate's latest such order is on a day in X-364..X-90


def order_book_input(name: str = "order_book", offset_days: int = 0,
                     columns: tuple[str, ...] | None = None) -> KpiInput:
    """The order book of D (or of D-`offset_days`) as a KPI input."""
    return KpiInput(name, ORDER_BOOK, columns=columns, offset_days=offset_days)


def order_days(book: pd.DataFrame) -> np.ndarray:
    """The day of each order in the reporting timezone, as numpy days (comparable with `np.datetime64(day)`)."""
    return pd.to_datetime(book["order_day"]).to_numpy(dtype="datetime64[D]")


def placed_in(book: pd.DataFrame, first: dt.date, last: dt.date) -> np.ndarray:
    """True for the orders placed on a day in first..last (both included)."""
    days = order_days(book)
    return (days >= np.datetime64(first)) & (days <= np.datetime64(last))


def non_refunded(book: pd.DataFrame) -> np.ndarray:
    """True for the orders not fully refunded at the book's day (partial refunds never remove an order)."""
    return ~book["fully_refunded"].astype("boolean").fillna(False).to_numpy(dtype=bool)


def persons(book: pd.DataFrame, rows: np.ndarray, remap: PersonRemap) -> pd.Index:
    """The distinct persons (as of the newest identity partition) of the chosen orders."""
    return pd.Index(remap(book.loc[rows, "person_id"]).dropna().unique(), name="person_id")


def active_customers(book: pd.DataFrame, day: dt.date, remap: PersonRemap) -> pd.Index:
    """Persons with an order non-refunded at `day` placed in day-364..day; `book` is the order book of `day`."""
    first = day - dt.timedelta(days=ACTIVE_DAYS - 1)
    return persons(book, placed_in(book, first, day) & non_refunded(book), remap)


def winback_candidates(book: pd.DataFrame, day: dt.date, remap: PersonRemap) -> pd.Index:
    """Persons whose latest order non-refunded at `day` is on a day in day-364..day-90 (`book`: the order book of
    `day`). Their orders are looked up after remapping: two merged parts count as one person."""
    first = day - dt.timedelta(days=ACTIVE_DAYS - 1)
    chosen = placed_in(book, first, day) & non_refunded(book)
    latest = pd.Series(order_days(book)[chosen], index=remap(book.loc[chosen, "person_id"]).to_numpy())
    latest = latest.groupby(level=0).max()
    cutoff = np.datetime64(day - dt.timedelta(days=WINBACK_MIN_DAYS))
    return pd.Index(latest.index[(latest <= cutoff).to_numpy()], name="person_id")
