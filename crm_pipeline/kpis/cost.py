"""Cost KPIs of the Monetise family (docs/kpi_catalog.md "Monetise: value and cost"): what acquiring and retaining a
customer costs. One declaration and one pure function each.

Costs are the clean `ingest/costs` lines (reporting currency, one partition per cost `date`); new customers
come from the first-order state `aggregates/first_orders`, their channel from the `first_touch` credits of
`attribution/order_attribution`; active customers at D-30 from the `customer_status` state of D-30
(`kpis.retention`), at D from the order book of D (`kpis.customers`). incremental_lift and
ad_conversion_rate (Journey family) read the compact campaign and ad-click aggregates of `kpis.campaigns`.
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.kpis.campaigns import AD_CLICKS_KEY, CAMPAIGN_CONTACTS_KEY, CAMPAIGN_STARTS_KEY
from crm_pipeline.kpis.count import end_of_day
from crm_pipeline.kpis.customers import ACTIVE_DAYS, active_customers, order_book_input
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.retention import CUSTOMER_STATUS, active_at, status_as_of_now
from crm_pipeline.settings import Settings

WINDOW_DAYS = 30
COSTS = ("ingest", "costs")
FIRST_ORDERS = ("aggregates", "first_orders")
ATTRIBUTION = ("attribution", "order_attribution")
COST_COLUMNS = ("cost_date", "cost_type", "objective", "channel", "amount")
UNATTRIBUTED = "(unattributed)"
NONE = "(none)"  # a media cost line without a channel (docs/outputs.md section 1: a missing open value)


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
    """The `first_touch` channel (docs/outputs.md 2.7) of each order; `(unattributed)` for an order without touches."""
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


def crc(costs: pd.DataFrame, customer_status_30: pd.DataFrame, order_book: pd.DataFrame, remap: PersonRemap,
        day: dt.date) -> list[dict]:
    """Retention costs of D-29..D per person active at D-30 (the `customer_status` state of D-30) and at D (the
    order book of D), both carried through the identity changes since."""
    retention = costs_in(costs, day - dt.timedelta(days=WINDOW_DAYS - 1), day, "retention")
    kept = active_at(status_as_of_now(customer_status_30, remap)).intersection(
        active_customers(order_book, day, remap))
    return [quotient(float(retention["amount"].astype(float).sum()), float(len(kept)), "currency")]


def converted(starts: pd.DataFrame, order_book: pd.DataFrame, remap: PersonRemap, days: int,
              end: pd.Timestamp) -> pd.Series:
    """For each row of `starts` (person_id as of the newest identity, start_at): whether the person has an order
    of the book (refunded or not) within `days` d after start_at (start_at < ordered_at <= start_at + days) and
    before `end`."""
    at = pd.to_datetime(order_book["ordered_at"], utc=True)
    start_at = pd.to_datetime(starts["start_at"], utc=True)
    # only the orders that can count (after the earliest start, within `days` of the latest, before `end`), and
    # instants kept as datetimes (to_numpy on a tz-aware column makes slow object arrays)
    keep = ((at > start_at.min()) & (at <= start_at.max() + pd.Timedelta(days=days)) & (at < end)).to_numpy()
    orders = pd.DataFrame({"person_id": remap(order_book["person_id"].loc[keep]).to_numpy(),
                           "ordered_at": at.loc[keep].reset_index(drop=True)})
    matched = starts.reset_index(drop=True).reset_index().merge(orders, on="person_id")
    # typed again: a merge without rows gives untyped (object) columns
    ordered_at = pd.to_datetime(matched["ordered_at"], utc=True)
    after = ordered_at - pd.to_datetime(matched["start_at"], utc=True)
    within = (after > pd.Timedelta(0)) & (after <= pd.Timedelta(days=days)) & (ordered_at < end)
    return pd.Series(np.isin(np.arange(len(starts)), matched.loc[within.to_numpy(), "index"].to_numpy()),
                     index=starts.index)


# incremental_lift: campaigns starting in D-43..D-14, persons first contacted by D-14, conversions within 14 d
LIFT_FIRST_DAYS_BACK = 43
LIFT_LAST_DAYS_BACK = 14
CONVERSION_DAYS = 14
Z_95 = 1.959964
LIFT_METRICS = ("conversion_rate_sent", "conversion_rate_holdout", "lift", "ci_low", "ci_high")


def lift_rows(sent: float, sent_converted: float, holdout: float, holdout_converted: float,
              campaign_id: str | None = None) -> list[dict]:
    """The five metrics of one campaign (or pooled): rates as quotients (percent), lift and its Wald 95 % interval
    in percentage points (count form), null when either group is empty."""
    rows = [quotient(sent_converted, sent, "percent", campaign_id=campaign_id, metric="conversion_rate_sent"),
            quotient(holdout_converted, holdout, "percent", campaign_id=campaign_id, metric="conversion_rate_holdout")]
    if sent and holdout:
        p_s, p_h = sent_converted / sent, holdout_converted / holdout
        lift = (p_s - p_h) * 100
        half = Z_95 * 100 * float(np.sqrt(p_s * (1 - p_s) / sent + p_h * (1 - p_h) / holdout))
        rows += [count(lift, "percent", campaign_id=campaign_id, metric="lift"),
                 count(lift - half, "percent", campaign_id=campaign_id, metric="ci_low"),
                 count(lift + half, "percent", campaign_id=campaign_id, metric="ci_high")]
    else:
        rows += [{"campaign_id": campaign_id, "metric": metric, "numerator": None, "denominator": None, "value": None,
                  "unit": "percent"} for metric in ("lift", "ci_low", "ci_high")]
    return rows


def incremental_lift(campaign_contacts: pd.DataFrame, campaign_starts: pd.DataFrame, order_book: pd.DataFrame,
                     remap: PersonRemap, day: dt.date, settings: Settings) -> list[dict]:
    """Per campaign with a holdout that started in D-43..D-14: conversion within 14 d of the person's first send
    (sent group) or first holdout_assigned (holdout group: no send at all), persons first contacted by D-14."""
    tz = settings.timezone
    cutoff = end_of_day(day - dt.timedelta(days=LIFT_LAST_DAYS_BACK), tz)
    started = pd.to_datetime(campaign_starts["first_contact_at"], utc=True)
    begun = (started >= end_of_day(day - dt.timedelta(days=LIFT_FIRST_DAYS_BACK + 1), tz)) & (started < cutoff)
    contacts = campaign_contacts.assign(person_id=remap(campaign_contacts["person_id"]).to_numpy(),
                                        first_contact_at=pd.to_datetime(campaign_contacts["first_contact_at"],
                                                                        utc=True))
    with_holdout = contacts.loc[contacts["is_holdout"].astype(bool).to_numpy(), "campaign_id"].unique()
    campaigns = pd.Index(campaign_starts.loc[begun.to_numpy(), "campaign_id"]).intersection(pd.Index(with_holdout))
    contacts = contacts.loc[contacts["campaign_id"].isin(campaigns).to_numpy()]
    # one row per (campaign, person): a send makes the person sent (even if also held out), at the first send
    first = (contacts.groupby(["campaign_id", "person_id", "is_holdout"])["first_contact_at"].min().reset_index()
             .sort_values(["campaign_id", "person_id", "is_holdout"]).drop_duplicates(["campaign_id", "person_id"]))
    pairs = first.loc[(first["first_contact_at"] < cutoff).to_numpy()].reset_index(drop=True)
    pairs["converted"] = converted(pairs.rename(columns={"first_contact_at": "start_at"}), order_book, remap,
                                   CONVERSION_DAYS, end_of_day(day, tz)).to_numpy()
    # per campaign and group: persons and converted persons
    tally = pairs.groupby(["campaign_id", "is_holdout"])["converted"].agg(["size", "sum"]).astype(float)
    tally = tally.unstack("is_holdout").reindex(index=sorted(campaigns), columns=pd.MultiIndex.from_product(
        [["size", "sum"], [False, True]]), fill_value=0.0).fillna(0.0)
    sent, sent_converted = tally[("size", False)], tally[("sum", False)]
    held, held_converted = tally[("size", True)], tally[("sum", True)]
    rows = lift_rows(float(sent.sum()), float(sent_converted.sum()), float(held.sum()),
                     float(held_converted.sum()))  # pooled: (campaign, person) pairs
    for campaign_id in tally.index:
        rows += lift_rows(float(sent[campaign_id]), float(sent_converted[campaign_id]), float(held[campaign_id]),
                          float(held_converted[campaign_id]), campaign_id=campaign_id)
    return rows


def ad_conversion_rate(ad_clicks: pd.DataFrame, order_book: pd.DataFrame, remap: PersonRemap, day: dt.date,
                       settings: Settings) -> list[dict]:
    """Persons with an ad_click in D-29..D who ordered within 30 d after their first one there / those persons."""
    clicks = pd.DataFrame({"person_id": remap(ad_clicks["person_id"]).to_numpy(),
                           "start_at": pd.to_datetime(ad_clicks["first_click_at"], utc=True).to_numpy()})
    first = day - dt.timedelta(days=WINDOW_DAYS - 1)
    tz = settings.timezone
    in_window = (clicks["start_at"] >= end_of_day(first - dt.timedelta(days=1), tz)) & (
        clicks["start_at"] < end_of_day(day, tz))
    persons = clicks.loc[in_window.to_numpy()].groupby("person_id")["start_at"].min().reset_index()
    persons["start_at"] = pd.to_datetime(persons["start_at"], utc=True)
    hit = converted(persons, order_book, remap, WINDOW_DAYS, end_of_day(day, tz))
    return [quotient(float(hit.sum()), float(len(persons)), "ratio")]


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
        compute=cac, window_days=365,  # first orders ever: complete from CRM_START_DATE + 365 d (docs/outputs.md 2.8)
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
                KpiInput("customer_status_30", CUSTOMER_STATUS, offset_days=WINDOW_DAYS),
                order_book_input("order_book", columns=BOOK_COLUMNS)),
        lineage={"numerator": ("costs.amount", "costs.objective", "costs.cost_date"),
                 "denominator": ("customer_status_30.person_id", "customer_status_30.last_order_date",
                                 "order_book.person_id", "order_book.order_day", "order_book.fully_refunded")},
        compute=crc, window_days=ACTIVE_DAYS + WINDOW_DAYS,
        remap_days=WINDOW_DAYS + 1),  # the order book of D-30 holds persons as of D-30
    KpiDefinition(
        name="incremental_lift", family="Monetise", seed="002",
        description="One row per campaign (campaign_id) x metric and per metric pooled over (campaign, person) "
                    "pairs, for the campaigns with a holdout whose first send or holdout_assigned event is in "
                    "D-43..D-14: conversion of the sent and the holdout group within 14 d, and the lift.",
        formula="conversion_rate_sent = sent persons with an order within 14 d after their first send / sent "
                "persons x 100; conversion_rate_holdout likewise (holdout_assigned, no send); lift = rate_sent - "
                "rate_holdout (percentage points); ci_low, ci_high = lift -/+ 1.959964 x 100 x sqrt(p_s(1-p_s)/n_s "
                "+ p_h(1-p_h)/n_h) (Wald 95 %); lift and its interval null when either group is empty",
        window="D-43..D (campaigns starting in D-43..D-14, persons first contacted by the end of D-14, orders up "
               "to the end of D)",
        population="(campaign, person) pairs: a person with a send event of the campaign is in the sent group "
                   "(also when held out too); a person with its holdout_assigned and no send in the holdout group; "
                   "only persons whose own first event of their group is on or before the end of D-14",
        exclusions="campaigns without a holdout_assigned event; send events are email_send, sms_send, push_send; "
                   "a contact whose identifiers resolve to no person",
        unit="percent", dimensions=(Dimension("campaign_id"), Dimension("metric", LIFT_METRICS)),
        headline={"metric": "lift"},
        inputs=(KpiInput("campaign_contacts", tuple(CAMPAIGN_CONTACTS_KEY.path),
                         window_days=LIFT_FIRST_DAYS_BACK + 1),
                KpiInput("campaign_starts", tuple(CAMPAIGN_STARTS_KEY.path)),
                order_book_input(columns=("person_id", "ordered_at"))),
        lineage={"campaign_id": ("campaign_contacts.campaign_id", "campaign_starts.campaign_id"),
                 "numerator": ("campaign_contacts.person_id", "campaign_contacts.first_contact_at",
                               "campaign_contacts.is_holdout", "campaign_starts.first_contact_at",
                               "order_book.person_id", "order_book.ordered_at"),
                 "denominator": ("campaign_contacts.person_id", "campaign_contacts.is_holdout",
                                 "campaign_starts.first_contact_at")},
        unbounded_metrics=("lift", "ci_low", "ci_high"),
        compute=incremental_lift, window_days=365,  # a campaign's first event ever: complete from start + 365 d
        remap_days=LIFT_FIRST_DAYS_BACK + 1),  # contacts hold persons as of their own day, from D-43
    KpiDefinition(
        name="ad_conversion_rate", family="Journey", seed="003",
        description="One row per day (no dimensions): the share of persons with an ad_click in D-29..D who placed "
                    "an order within 30 d after their first ad_click in that window (up to the end of D).",
        formula="persons with an order (refunded or not) with first ad_click < ordered_at <= first ad_click + 30 d "
                "and ordered_at <= end of D / persons with an ad_click in D-29..D",
        window="30d (D-29..D)", population="persons with an ad_click in D-29..D (first ad_click in the window)",
        exclusions="ad_clicks whose identifiers resolve to no person", unit="ratio", dimensions=(), headline={},
        inputs=(KpiInput("ad_clicks", tuple(AD_CLICKS_KEY.path), window_days=WINDOW_DAYS),
                order_book_input(columns=("person_id", "ordered_at"))),
        lineage={"numerator": ("ad_clicks.person_id", "ad_clicks.first_click_at", "order_book.person_id",
                               "order_book.ordered_at"),
                 "denominator": ("ad_clicks.person_id", "ad_clicks.first_click_at")},
        compute=ad_conversion_rate, window_days=WINDOW_DAYS),
)
