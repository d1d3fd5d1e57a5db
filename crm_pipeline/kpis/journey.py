"""Journey KPIs (docs/kpi_catalog.md "Journey and attribution"): one declaration and one pure function each."""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.attribution.models import MODELS
from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS, attach_person_id
from crm_pipeline.kpis.count import end_of_day
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count, median, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings

BUCKETS = (*(str(i) for i in range(10)), "10+")
JOURNEYS = ("attribution", "journeys")
ATTRIBUTION = ("attribution", "order_attribution")


def influences_per_order(journeys: pd.DataFrame) -> list[dict]:
    """Orders of D: distinct channels and touches per journey, and the share of orders per channel count."""
    orders = float(len(journeys))
    channels = journeys["count_channels"].astype(float)
    rows = [quotient(float(channels.sum()), orders, "count", metric="channels"),
            quotient(float(journeys["count_touches"].astype(float).sum()), orders, "count", metric="touches")]
    bucket = np.where(channels >= 10, "10+", channels.clip(upper=9).astype(int).astype(str))
    per_bucket = pd.Series(bucket).value_counts()
    rows += [quotient(float(per_bucket.get(b, 0)), orders, "ratio", metric="order_share", bucket=b) for b in BUCKETS]
    return rows


def attributed_revenue(journeys: pd.DataFrame, order_attribution: pd.DataFrame) -> list[dict]:
    """Orders of D: revenue per model and per model x channel (credit > 0); total = the day's net revenue."""
    rows = [count(float(journeys["net_revenue"].astype(float).sum()), "currency")]
    per_model = order_attribution.groupby("model")["attributed_revenue"].sum()
    rows += [count(float(per_model.get(model, 0.0)), "currency", model=model) for model in MODELS]
    credited = order_attribution.loc[order_attribution["credit"].astype(float) > 0]
    per_channel = credited.groupby(["model", "channel"])["attributed_revenue"].sum()
    rows += [count(float(v), "currency", model=m, channel=c) for (m, c), v in per_channel.items()]
    return rows


def time_to_conversion(journeys: pd.DataFrame) -> list[dict]:
    """Orders of D with at least one touch: days from the earliest touch to the order."""
    days = journeys.loc[journeys["count_touches"] > 0, "days_from_first_touch"].astype(float).to_numpy()
    return [median(days, "days", metric="median_days"),
            quotient(float(days.sum()), float(len(days)), "days", metric="mean_days")]


def time_to_first_value(first_orders: pd.DataFrame, crm_customers: pd.DataFrame, identity_map: pd.DataFrame,
                        remap: PersonRemap, day: dt.date, settings: Settings) -> list[dict]:
    """Persons whose first order is on D and who registered at or before it: median days from registration."""
    start, end = (end_of_day(day - dt.timedelta(days=1), settings.timezone), end_of_day(day, settings.timezone))
    # persons merged later have one first order: the earliest of their parts' (ties: lowest order id)
    first_orders = first_orders.assign(person_id=remap(first_orders["person_id"]).to_numpy(),
                                       first_ordered_at=pd.to_datetime(first_orders["first_ordered_at"], utc=True))
    first_orders = first_orders.sort_values(["person_id", "first_ordered_at", "first_order_id"]).drop_duplicates(
        "person_id")
    ordered_at = first_orders["first_ordered_at"]
    new = first_orders.loc[((ordered_at >= start) & (ordered_at < end)).to_numpy()]
    registered = pd.DataFrame({"person_id": remap(attach_person_id(crm_customers, identity_map)).to_numpy(),
                               "created_at": pd.to_datetime(crm_customers["created_at"], utc=True).to_numpy()})
    registration = registered.dropna(subset=["person_id"]).groupby("person_id")["created_at"].min()
    # `map` gives an untyped (object) column when no person is looked up (a day without a new buyer): parse it
    registered_at = pd.to_datetime(new["person_id"].map(registration), utc=True)
    elapsed = new["first_ordered_at"] - registered_at  # NaT for a buyer who never registered
    days = elapsed.loc[(elapsed >= pd.Timedelta(0)).to_numpy()].dt.total_seconds() / 86400
    return [median(days.to_numpy(dtype=float), "days")]


KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="influences_per_order", family="Journey", seed="000",
        description="One row per metric (channels, touches) and per order_share x bucket, for the orders placed on "
                    "day D: how many channels and touches influence an order.",
        formula="channels = sum of distinct channels in each journey / orders; touches = touches / orders; "
                "order_share(bucket) = orders with that many distinct channels / orders",
        window="1d (orders placed on D; journeys look back 30 d)", population="orders placed on D; an order "
        "without touches has 0 channels and 0 touches", unit="count, ratio",
        dimensions=(Dimension("metric", ("channels", "touches", "order_share")), Dimension("bucket", BUCKETS)),
        headline={"metric": "channels"}, inputs=(KpiInput("journeys", JOURNEYS),),
        lineage={"bucket": ("journeys.count_channels",),
                 "numerator": ("journeys.count_channels", "journeys.count_touches"),
                 "denominator": ("journeys.order_id",)},
        compute=influences_per_order, window_days=31),
    KpiDefinition(
        name="attributed_revenue", family="Journey", seed="002",
        description="One row per attribution model and per model x credited channel, for the orders placed on day "
                    "D: the revenue each model credits to each channel.",
        formula="sum of credit x net revenue (refunds not deducted); total and every model = net revenue of D",
        window="1d", population="orders placed on D, credits of docs/outputs.md 2.7", unit="currency",
        dimensions=(Dimension("model", MODELS), Dimension("channel")), headline={},
        inputs=(KpiInput("journeys", JOURNEYS, columns=("order_id", "net_revenue")),
                KpiInput("order_attribution", ATTRIBUTION)),
        lineage={"model": ("order_attribution.model",), "channel": ("order_attribution.channel",),
                 "numerator": ("order_attribution.attributed_revenue", "order_attribution.credit",
                               "journeys.net_revenue")},
        compute=attributed_revenue, window_days=90),  # markov/shapley train on D-89..D
    KpiDefinition(
        name="time_to_conversion", family="Journey", seed="002",
        description="One row per metric (median_days, mean_days) for the orders placed on day D with at least one "
                    "touch: days from the earliest touch of the journey to the order.",
        formula="median and mean of (ordered_at - earliest journey touch) / 86400 s",
        window="1d (journeys look back 30 d)", population="orders placed on D with >= 1 touch", unit="days",
        dimensions=(Dimension("metric", ("median_days", "mean_days")),), headline={"metric": "median_days"},
        inputs=(KpiInput("journeys", JOURNEYS),), lineage={"numerator": ("journeys.days_from_first_touch",),
                 "denominator": ("journeys.days_from_first_touch", "journeys.count_touches")},
        compute=time_to_conversion, window_days=31),
    KpiDefinition(
        name="time_to_first_value", family="Journey", seed="002",
        description="One row per day (no dimensions) for the persons whose first order is on D and whose registration "
                    "is at or before it: the median days from registration to the first order.",
        formula="median of (first ordered_at - earliest created_at of the person's customer records) / 86400 s",
        window="1d (first orders ever: complete from CRM_START_DATE + 365 d)", population="persons whose first "
        "order is on D and who registered at or before it", unit="days", dimensions=(), headline={},
        inputs=(KpiInput("first_orders", ("aggregates", "first_orders")),
                KpiInput("crm_customers", ("ingest", "crm_customers"), columns=("customer_id", "created_at")),
                KpiInput("identity_map", ("identity", "identity_map"), columns=PERSON_LOOKUP_COLUMNS)),
        lineage={"denominator": ("first_orders.person_id", "first_orders.first_ordered_at"),
                 "value": ("first_orders.first_ordered_at", "crm_customers.created_at", "crm_customers.customer_id",
                           "identity_map.person_id")},
        compute=time_to_first_value, window_days=365,
        remap_days=1),  # first_orders and the identity map are as of D: only later changes apply
)
