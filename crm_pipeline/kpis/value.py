"""Monetise KPIs, value part (docs/kpi_catalog.md "Monetise: value and cost"): aov_arpu, refund_and_discount, ltv and
revenue_per_recipient, one pure function each, and the daily aggregate `aggregates/email_sends` that
revenue_per_recipient reads instead of 30 days of raw events.

Orders and their refund status at D come from the order book of D (`aggregates/order_book`, the orders of the last
548 days), refunds by the day they are dated from the refund ledger of D (`aggregates/refund_ledger`). "Net of
refunds" (docs/outputs.md 2.3) is `net_of_refunds`: the net revenue of the orders placed in a window minus the refunds
dated in it, of any order the book held when the refund arrived. Both states hold persons as of D; a run carries
them through the identity changes logged since (`remap`, docs/outputs.md 2.2).
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline.identity.graph import attach_person_id
from crm_pipeline.kpis.aggregates import FIRST_ORDERS_KEY, _events_by_person_asset
from crm_pipeline.kpis.customers import active_customers, non_refunded, order_book_input, placed_in
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_DAYS, REFUND_LEDGER_KEY, day_numbers
from crm_pipeline.settings import Settings

REFUND_LEDGER = tuple(REFUND_LEDGER_KEY.path)
JOURNEYS = ("attribution", "journeys")
JOURNEY_TOUCHES = ("attribution", "journey_touches")
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
    """R of docs/outputs.md 2.3: net revenue of the orders placed in first..last (refunded or not) minus the refunds dated
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
# revenue_per_recipient, and its daily aggregate of email sends

EMAIL_SENDS_KEY = dg.AssetKey(["aggregates", "email_sends"])
EMAIL_SENDS_PK = ["campaign_id", "person_id"]
EMAIL_SENDS_SCHEMA = pa.schema([
    pa.field("campaign_id", pa.string(), nullable=False),
    pa.field("person_id", pa.string(), nullable=False),  # as of day D (remapped through later changes by KPIs)
    pa.field("first_sent_at", pa.timestamp("us", tz="UTC"), nullable=False),  # the person's first send that day
    pa.field("count_sends", pa.int64(), nullable=False),
])
FOLLOW_UP = pd.Timedelta(days=30)  # orders within 30 d after the first send count


def daily_email_sends(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The day's email_send events with a campaign_id, per campaign and person: the first send and the sends."""
    sends = events.loc[((events["event_type"] == "email_send") & events["campaign_id"].notna()).to_numpy()]
    frame = pd.DataFrame({"campaign_id": sends["campaign_id"].astype("string").to_numpy(),
                          "person_id": attach_person_id(sends, identity_map).to_numpy(),
                          "sent_at": pd.to_datetime(sends["occurred_at"], utc=True).array})
    out = frame.dropna(subset=["person_id"]).groupby(EMAIL_SENDS_PK).agg(
        first_sent_at=("sent_at", "min"), count_sends=("sent_at", "size")).reset_index()
    return out.sort_values(EMAIL_SENDS_PK, ignore_index=True)[list(EMAIL_SENDS_SCHEMA.names)]


def email_sends_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=EMAIL_SENDS_KEY, schema=EMAIL_SENDS_SCHEMA, pk=EMAIL_SENDS_PK,
        description="One row per email campaign (campaign_id) and person with an email_send of the campaign on day "
                    "D: the first send's instant and the number of sends, persons as of D (sends without a "
                    "campaign_id are left out). The compact input of revenue_per_recipient.",
        event_columns=["event_type", "occurred_at", "campaign_id"], compute=daily_email_sends,
        summary=lambda frame: {"campaigns": int(frame["campaign_id"].nunique()), "recipients": len(frame),
                               "sends": int(frame["count_sends"].sum())})


def revenue_per_recipient(email_sends: pd.DataFrame, journeys: pd.DataFrame, journey_touches: pd.DataFrame,
                          remap: PersonRemap) -> list[dict]:
    """Email campaigns with a send in D-29..D: the net revenue (refunds not deducted) of their recipients' orders
    placed within 30 d after the recipient's first send of the campaign in the window whose journey's last touch
    carries the campaign, per recipient; the total pools (campaign, person) pairs. Every order of the window's
    journeys is placed by the end of D, and none before the window's first day can follow a send in it."""
    sends = pd.DataFrame({"campaign_id": email_sends["campaign_id"].astype("string").to_numpy(),
                          "person_id": remap(email_sends["person_id"]).to_numpy(),
                          "first_sent_at": pd.to_datetime(email_sends["first_sent_at"], utc=True).array})
    pairs = sends.dropna(subset=["person_id"]).groupby(EMAIL_SENDS_PK, as_index=False)["first_sent_at"].min()
    last = journey_touches.loc[(journey_touches["touch_rank"] == journey_touches["touch_count"]).to_numpy()
                               & journey_touches["campaign_id"].notna().to_numpy()]
    orders = pd.DataFrame({"order_id": journeys["order_id"].astype("string").to_numpy(),
                           "person_id": remap(journeys["person_id"]).to_numpy(),
                           "ordered_at": pd.to_datetime(journeys["ordered_at"], utc=True).array,
                           "net_revenue": journeys["net_revenue"].astype(float).to_numpy()})
    orders = orders.merge(pd.DataFrame({"order_id": last["order_id"].astype("string").to_numpy(),
                                        "campaign_id": last["campaign_id"].astype("string").to_numpy()}),
                          on="order_id").dropna(subset=["person_id"])
    matched = pairs.merge(orders, on=EMAIL_SENDS_PK)
    # parsed again: a window without sends or orders gives untyped (object) columns
    elapsed = pd.to_datetime(matched["ordered_at"], utc=True) - pd.to_datetime(matched["first_sent_at"], utc=True)
    matched = matched.loc[((elapsed > pd.Timedelta(0)) & (elapsed <= FOLLOW_UP)).to_numpy()]
    revenue = matched.groupby("campaign_id")["net_revenue"].sum()
    recipients = pairs.groupby("campaign_id").size()
    rows = [quotient(float(revenue.sum()), float(len(pairs)), "currency")]
    rows += [quotient(float(revenue.get(campaign, 0.0)), float(n), "currency", campaign_id=campaign)
             for campaign, n in recipients.items()]
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
    KpiDefinition(
        name="revenue_per_recipient", family="Monetise", seed="002",
        description="One row per email campaign (campaign_id) with an email_send in D-29..D: the revenue of the "
                    "orders its recipients placed after it, credited to it by their journey's last touch, per "
                    "recipient; the total pools every (campaign, recipient) pair.",
        formula="numerator = net revenue (refunds not deducted) of the recipients' orders placed within 30 d after "
                "their first send of the campaign in the window (first send < ordered_at <= first send + 30 d, up "
                "to the end of D) whose journey's last touch (docs/outputs.md 2.7) carries the campaign_id; denominator = "
                "recipients (persons with an email_send of the campaign in the window)",
        window="30d (sends in D-29..D; journeys look back 30 d)",
        population="(campaign, person) pairs with an email_send of the campaign in D-29..D", unit="currency",
        exclusions="email_send events without a campaign_id; orders whose journey's last touch carries another or no "
                   "campaign",
        dimensions=(Dimension("campaign_id"),), headline={},
        inputs=(KpiInput("email_sends", tuple(EMAIL_SENDS_KEY.path), window_days=30),
                KpiInput("journeys", JOURNEYS, window_days=30,
                         columns=("order_id", "person_id", "ordered_at", "net_revenue")),
                KpiInput("journey_touches", JOURNEY_TOUCHES, window_days=30,
                         columns=("order_id", "touch_rank", "touch_count", "campaign_id"))),
        lineage={"campaign_id": ("email_sends.campaign_id",),
                 "numerator": ("journeys.net_revenue", "journeys.ordered_at", "journeys.person_id",
                               "journey_touches.campaign_id", "journey_touches.touch_rank",
                               "email_sends.first_sent_at"),
                 "denominator": ("email_sends.campaign_id", "email_sends.person_id")},
        compute=revenue_per_recipient, window_days=60, remap_days=30),  # sends hold persons as of their day
)
