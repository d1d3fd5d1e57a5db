"""Cost KPIs of the Monetise family (kpis.md "Monetise: value and cost"): what acquiring and retaining a
customer costs. One declaration and one pure function each.

Costs are the clean `ingest/costs` lines (reporting currency, one partition per cost `date`); new customers
come from the first-order state `aggregates/first_orders`, their channel from the `first_touch` credits of
`attribution/order_attribution`; active customers from the order book (`kpis.customers`).
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.kpis.count import end_of_day
from crm_pipeline.kpis.customers import active_customers, order_book_input
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings

WINDOW_DAYS = 30
COSTS = ("ingest", "costs")
FIRST_ORDERS = ("aggregates", "first_orders")
ATTRIBUTION = ("attribution", "order_attribution")
COST_COLUMNS = ("cost_date", "cost_type", "objective", "channel", "amount")
UNATTRIBUTED = "(unattributed)"
NONE = "(none)"  # a media cost line without a channel (kpis.md section 1: a missing open value)


def costs_in(costs: pd.DataFrame, first: dt.date, last: dt.date, objective: str) -> pd.DataFrame:
    """The cost lines with `objective` dated first..last (both included); amounts in the reporting currency."""
    days = pd.to_datetime(costs["cost_date"]).to_numpy(dtype="datetime64[D]")
    chosen = (days >= np.datetime64(first)) & (days <= np.datetime64(last)) & (
        costs["objective"] == objective).to_numpy(dtype=bool)
    return costs.loc[chosen]


def new_customers(first_orders: pd.DataFrame, remap: PersonRemap, first: dt.date, last: dt.date,
                  timezone: str) -> pd.DataFrame:
    """Persons whose first order is on a day in first..last: person_id and first_order_id. Persons merged after
    the state was written have one first order, the earliest of their parts' (ties: lowest order id)."""
    frame = first_orders.assign(person_id=remap(first_orders["person_id"]).to_numpy(),
                                first_ordered_at=pd.to_datetime(first_orders["first_ordered_at"], utc=True))
    frame = frame.sort_values(["person_id", "first_ordered_at", "first_order_id"]).drop_duplicates("person_id")
    ordered_at = frame["first_ordered_at"]
    new = (ordered_at >= end_of_day(first - dt.timedelta(days=1), timezone)) & (ordered_at < end_of_day(last, timezone))
    return frame.loc[new.to_numpy(), ["person_id", "first_order_id"]].reset_index(drop=True)


def first_touch_channels(order_ids: pd.Series, order_attribution: pd.DataFrame) -> pd.Series:
    """The `first_touch` channel (kpis.md 2.7) of each order; `(unattributed)` for an order without touches."""
    credited = order_attribution.loc[(order_attribution["model"] == "first_touch").to_numpy()]
    # first_touch credits one touch: one channel per order (the largest credit, should a table hold more)
    credited = credited.sort_values(["order_id", "credit", "channel"], ascending=[True, False, True])
    channel = credited.drop_duplicates("order_id").set_index("order_id")["channel"]
    return order_ids.map(channel).fillna(UNATTRIBUTED).astype(str)


def cac(costs: pd.DataFrame, first_orders: pd.DataFrame, order_attribution: pd.DataFrame, remap: PersonRemap,
        day: dt.date, settings: Settings) -> list[dict]:
    """Acquisition costs of D-29..D per new customer of D-29..D; per channel: media acquisition costs of the
    channel per new customer whose first order's first touch is on it."""
    first = day - dt.timedelta(days=WINDOW_DAYS - 1)
    acquisition = costs_in(costs, first, day, "acquisition")
    media = acquisition.loc[(acquisition["cost_type"] == "media").to_numpy()]
    media_cost = media["amount"].astype(float).groupby(media["channel"].fillna(NONE).astype(str)).sum()
    new = new_customers(first_orders, remap, first, day, settings.timezone)
    customers = first_touch_channels(new["first_order_id"], order_attribution).value_counts()
    rows = [quotient(float(acquisition["amount"].astype(float).sum()), float(len(new)), "currency")]
    for channel in sorted(set(media_cost.index) | set(customers.index)):
        rows.append(quotient(float(media_cost.get(channel, 0.0)), float(customers.get(channel, 0)), "currency",
                             channel=channel))
    return rows


def crc(costs: pd.DataFrame, order_book: pd.DataFrame, order_book_d30: pd.DataFrame, remap: PersonRemap,
        day: dt.date) -> list[dict]:
    """Retention costs of D-29..D per person active at D-30 and at D."""
    retention = costs_in(costs, day - dt.timedelta(days=WINDOW_DAYS - 1), day, "retention")
    before = day - dt.timedelta(days=WINDOW_DAYS)
    kept = active_customers(order_book, day, remap).intersection(active_customers(order_book_d30, before, remap))
    return [quotient(float(retention["amount"].astype(float).sum()), float(len(kept)), "currency")]


BOOK_COLUMNS = ("person_id", "order_day", "fully_refunded")

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="cac", family="Monetise", seed="001",
        description="One row per channel (the first order's first_touch channel, or a channel with media "
                    "acquisition costs) and a total row, over D-29..D: the acquisition cost of a new customer.",
        formula="total = costs with objective acquisition (every cost type) dated in D-29..D / new customers in "
                "D-29..D; channel = media costs with objective acquisition of the channel / new customers whose "
                "first order's first_touch channel is the channel ((unattributed): no touch)",
        window="30d (D-29..D)",
        population="new customers: persons whose first order (earliest ordered_at, refunded later or not) is on a "
                   "day in D-29..D; channels with such media costs or such customers",
        exclusions="brand and retention costs; a media cost line without a channel is the channel (none)",
        unit="currency", dimensions=(Dimension("channel"),), headline={},
        inputs=(KpiInput("costs", COSTS, window_days=WINDOW_DAYS, columns=COST_COLUMNS),
                KpiInput("first_orders", FIRST_ORDERS),
                KpiInput("order_attribution", ATTRIBUTION, window_days=WINDOW_DAYS,
                         columns=("order_id", "model", "channel", "credit"))),
        lineage={"channel": ("costs.channel", "order_attribution.channel"),
                 "numerator": ("costs.amount", "costs.objective", "costs.cost_type", "costs.cost_date"),
                 "denominator": ("first_orders.person_id", "first_orders.first_ordered_at",
                                 "order_attribution.order_id", "order_attribution.model")},
        compute=cac, window_days=365,  # first orders ever: complete from CRM_START_DATE + 365 d (kpis.md 2.8)
        remap_days=1),  # first_orders holds persons as of D: only later identity changes apply
    KpiDefinition(
        name="crc", family="Monetise", seed="004",
        description="One row per day (no dimensions): the retention cost of D-29..D per customer active both at "
                    "D-30 and at D.",
        formula="costs with objective retention (every cost type) dated in D-29..D / persons active at D-30 and "
                "at D (an order non-refunded at X placed in X-364..X, for X = D-30 and X = D)",
        window="30d (D-29..D; activity at D-30 reads back to D-394)",
        population="persons active at D-30 and at D", exclusions="acquisition and brand costs",
        unit="currency", dimensions=(), headline={},
        inputs=(KpiInput("costs", COSTS, window_days=WINDOW_DAYS, columns=COST_COLUMNS),
                order_book_input(columns=BOOK_COLUMNS),
                order_book_input("order_book_d30", offset_days=WINDOW_DAYS, columns=BOOK_COLUMNS)),
        lineage={"numerator": ("costs.amount", "costs.objective", "costs.cost_date"),
                 "denominator": ("order_book.person_id", "order_book.order_day", "order_book.fully_refunded",
                                 "order_book_d30.person_id", "order_book_d30.order_day",
                                 "order_book_d30.fully_refunded")},
        compute=crc, window_days=365 + WINDOW_DAYS,
        remap_days=WINDOW_DAYS + 1),  # the order book of D-30 holds persons as of D-30
)
