"""channel_scorecard (docs/kpi_catalog.md "Monetise: value and cost"): ten metrics per attribution model and
channel over the orders placed in D-29..D; the daily aggregate `aggregates/asset_signups` its cross_promotion
metric reads, and the state `aggregates/first_order_credits` its acquired_ltv reads.

Credits come from `attribution/order_attribution` (docs/outputs.md 2.7) for the window's orders, and from the state
of first-order credits for the first orders of D-364..D (so no day reads a year of credits); the orders, their persons, days, net revenue and refunds up to D from the
order book of D, refund days from the refund ledger of D, first orders from `aggregates/first_orders`, media spend
from `ingest/costs`. The reach metrics read touches (`attribution/touches`, visits are its session_start touches),
engagements (`aggregates/person_engagement`) and asset sign-ups. Persons are carried through the identity changes
since their partition (`remap`, docs/outputs.md 2.2).
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline import checks
from crm_pipeline.attribution.models import MODELS
from crm_pipeline.identity.graph import attach_person_id
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.kpis.aggregates import FIRST_ORDERS_KEY, _events_by_person_asset
from crm_pipeline.kpis.cost import ATTRIBUTION, COST_COLUMNS, COSTS, NONE, new_customers
from crm_pipeline.kpis.count import end_of_day
from crm_pipeline.kpis.customers import ACTIVE_DAYS, WINBACK_MIN_DAYS, order_book_input
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import REFUND_LEDGER_KEY, day_numbers
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS
from crm_pipeline.settings import Settings

WINDOW_DAYS = 30
ACQUIRED_DAYS = 365  # acquired_ltv: persons whose first order is in D-364..D
SIGNUP_LOOKBACK_DAYS = 7  # cross_promotion: a touch within 7 d before the sign-up
TOUCHES = ("attribution", "touches")
PERSON_ENGAGEMENT = ("aggregates", "person_engagement")
TOP_DECILE_PERCENTILE = 90
CREDIT_METRICS = ("attributed_revenue", "conversions", "new_customers", "reactivated_customers", "acquired_ltv")
REACH_METRICS = ("omni_engager_reach", "cross_promotion", "frequent_visitor_reach")
METRICS = (*CREDIT_METRICS, "spend", "roas", *REACH_METRICS)
UNITS = {"attributed_revenue": "currency", "conversions": "count", "new_customers": "count",
         "reactivated_customers": "count", "acquired_ltv": "currency", "spend": "currency", "roas": "ratio",
         "omni_engager_reach": "ratio", "cross_promotion": "ratio", "frequent_visitor_reach": "ratio"}

# ---------------------------------------------------------------------------------------------------------------
# aggregates/asset_signups: the day's sign-ups to an owned asset, one row per event

SIGNUP_EVENT_TYPES = ("email_subscribe", "app_install", "browser_app_install", "social_follow", "mail_subscribe",
                      "sms_optin")
ASSET_SIGNUPS_KEY = dg.AssetKey(["aggregates", "asset_signups"])
ASSET_SIGNUPS_PK = ["event_id"]
ASSET_SIGNUPS_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("person_id", pa.string()),  # as of D; null: the identifiers resolve to no person
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def _utc_numpy(timestamps: pd.Series) -> np.ndarray:
    """Timestamps as naive UTC datetime64 (a tz-aware `to_numpy` would build one object per row)."""
    return pd.to_datetime(timestamps, utc=True).dt.tz_convert(None).to_numpy()


def daily_asset_signups(events: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The day's asset sign-up events (email_subscribe, app_install, browser_app_install, social_follow,
    mail_subscribe, sms_optin) with their person as of D."""
    signups = events.loc[events["event_type"].isin(SIGNUP_EVENT_TYPES).to_numpy()]
    frame = pd.DataFrame({"event_id": signups["event_id"].to_numpy(),
                          "person_id": attach_person_id(signups, identity_map).to_numpy(),
                          "event_type": signups["event_type"].to_numpy(),
                          "occurred_at": _utc_numpy(signups["occurred_at"])})
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame.sort_values(ASSET_SIGNUPS_PK, ignore_index=True)


def asset_signups_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    return _events_by_person_asset(
        partitions, key=ASSET_SIGNUPS_KEY, schema=ASSET_SIGNUPS_SCHEMA, pk=ASSET_SIGNUPS_PK,
        description="One row per asset sign-up event of day D (email_subscribe, app_install, browser_app_install, "
                    "social_follow, mail_subscribe, sms_optin) with its person as of D: the compact input of "
                    "channel_scorecard's cross_promotion.",
        event_columns=["event_id", "event_type", "occurred_at"], compute=daily_asset_signups,
        summary=lambda frame: {"signups": len(frame), "persons": int(frame["person_id"].nunique())})


# ---------------------------------------------------------------------------------------------------------------
# the credits of first orders: acquired_ltv's year of credits without reading a year of order_attribution

FIRST_ORDER_CREDITS_KEY = dg.AssetKey(["aggregates", "first_order_credits"])
FIRST_ORDER_CREDITS_PK = ["order_id", "model", "channel"]
FIRST_ORDER_CREDITS_SCHEMA = pa.schema([
    pa.field("order_id", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("channel", pa.string(), nullable=False),
    pa.field("credit", pa.float64(), nullable=False),
    pa.field("attributed_revenue", pa.float64(), nullable=False),
    pa.field("order_date", pa.date32(), nullable=False),
])


def update_first_order_credits(previous: pd.DataFrame | None, order_attribution: pd.DataFrame,
                               first_orders: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The state of D: the rows of D-1 of orders placed in D-364..D, plus the credits (summed over campaigns)
    of the orders of D that are a first order at D (`first_orders` of D). An order that is a person's first
    order at D was one on its own day (a merge only ever keeps the earlier of two first orders), so the state
    holds every first order of the year; the KPI picks the ones that are still first orders."""
    firsts = first_orders["first_order_id"].astype("string")
    today = order_attribution.loc[order_attribution["order_id"].astype("string").isin(firsts).to_numpy()]
    today = (today.astype({"order_id": "string", "model": "string", "channel": "string"})
             .groupby(FIRST_ORDER_CREDITS_PK, as_index=False)[["credit", "attributed_revenue"]].sum())
    today["order_date"] = day
    if previous is not None and len(previous):
        oldest = day - dt.timedelta(days=ACQUIRED_DAYS - 1)
        kept = previous.loc[(pd.to_datetime(previous["order_date"]).dt.date >= oldest).to_numpy()
                            & ~previous["order_id"].astype("string").isin(today["order_id"]).to_numpy()]
        today = pd.concat([kept[FIRST_ORDER_CREDITS_SCHEMA.names], today], ignore_index=True)
    today["order_date"] = pd.to_datetime(today["order_date"]).dt.date
    return today.sort_values(FIRST_ORDER_CREDITS_PK, ignore_index=True)[FIRST_ORDER_CREDITS_SCHEMA.names]


def first_order_credits_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=FIRST_ORDER_CREDITS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per order x model x credited channel for the first orders placed in "
                    f"D-{ACQUIRED_DAYS - 1}..D: the credit and attributed revenue (summed over campaigns) of "
                    "`attribution/order_attribution`. A state: D = D-1 without the orders older than a year + the "
                    "credits of the day's orders that are a first order at D. channel_scorecard's acquired_ltv reads "
                    "it instead of a year of order_attribution.",
        ins={"order_attribution": dg.AssetIn(key=dg.AssetKey(list(ATTRIBUTION)), metadata={
                 "columns": ["order_id", "model", "channel", "credit", "attributed_revenue"]}),
             "first_orders": dg.AssetIn(key=FIRST_ORDERS_KEY, metadata={"columns": ["first_order_id"]}),
             "previous": dg.AssetIn(key=FIRST_ORDER_CREDITS_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(FIRST_ORDER_CREDITS_SCHEMA),
                  "primary_key": FIRST_ORDER_CREDITS_PK},
        check_specs=[
            checks.schema_spec(FIRST_ORDER_CREDITS_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(FIRST_ORDER_CREDITS_PK), asset=FIRST_ORDER_CREDITS_KEY,
                              blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(FIRST_ORDER_CREDITS_PK))],
    )
    def first_order_credits(context: dg.AssetExecutionContext, order_attribution: pd.DataFrame,
                            first_orders: pd.DataFrame, previous: pd.DataFrame | None):
        day = partition_day(context)
        state = update_first_order_credits(previous, order_attribution, first_orders, day)
        today = (state["order_date"] == day).to_numpy()
        yield from checks.written(FIRST_ORDER_CREDITS_KEY, state, FIRST_ORDER_CREDITS_SCHEMA, metadata={
            "rows": len(state), "first_orders": int(state["order_id"].nunique()),
            "first_orders_today": int(state.loc[today, "order_id"].nunique())})
        yield checks.primary_key_is_unique(FIRST_ORDER_CREDITS_KEY, state, FIRST_ORDER_CREDITS_PK)

    return first_order_credits


# ---------------------------------------------------------------------------------------------------------------
# the credit metrics

def _window_bounds(day: dt.date, days: int, timezone: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) in UTC of the days D-days+1..D in the reporting timezone."""
    return end_of_day(day - dt.timedelta(days=days), timezone), end_of_day(day, timezone)


def reactivation_orders(book: pd.DataFrame, ledger: pd.DataFrame, persons: np.ndarray, first: dt.date,
                        day: dt.date) -> pd.Index:
    """The orders placed in first..day that are their buyer's first order on its day X (earliest ordered_at, ties:
    lowest order_id) when the buyer was a win-back candidate at X-1: their latest order non-refunded at X-1 is
    on a day in (X-1)-364..(X-1)-90. An order fully refunded at D became so on the day of its last refund (the
    ledger of D); one whose refunds are older than the ledger was fully refunded before any X."""
    days = day_numbers(book["order_day"])
    refunded_from = pd.Series(day_numbers(ledger["refund_day"]), index=ledger["order_id"].to_numpy())
    refunded_from = refunded_from.groupby(level=0).max()
    full = book["fully_refunded"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    # the first day each order counts as fully refunded (a huge number: never, up to D)
    full_day = np.where(full, book["order_id"].map(refunded_from).fillna(-(2 ** 40)).to_numpy(dtype=float), np.inf)
    orders = pd.DataFrame({"order_id": book["order_id"].to_numpy(), "person_id": persons, "day": days,
                           "ordered_at": _utc_numpy(book["ordered_at"]),
                           "full_day": full_day}).dropna(subset=["person_id"])
    lo, hi = day_numbers(pd.Series([first, day]))
    placed = orders.loc[(orders["day"] >= lo) & (orders["day"] <= hi)]
    firsts = placed.sort_values(["person_id", "day", "ordered_at", "order_id"]).drop_duplicates(["person_id", "day"])
    earlier = firsts[["order_id", "person_id", "day"]].merge(
        orders[["person_id", "day", "full_day"]].rename(columns={"day": "prior_day"}), on="person_id")
    # an earlier order of the buyer, on a day in X-365..X-1, not fully refunded at the end of X-1
    counts = ((earlier["prior_day"] < earlier["day"]) & (earlier["prior_day"] >= earlier["day"] - ACTIVE_DAYS)
              & (earlier["full_day"] >= earlier["day"]))
    latest = earlier.loc[counts.to_numpy()].groupby(["order_id", "day"])["prior_day"].max().reset_index()
    candidate = latest["prior_day"] <= latest["day"] - 1 - WINBACK_MIN_DAYS
    return pd.Index(latest.loc[candidate.to_numpy(), "order_id"], name="order_id")


def credit_sums(order_attribution: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Per model x channel: the sums the credit metrics are built from. `orders` holds one row per order_id with
    in_window, is_first, is_reactivation (0/1) and ltv (the person's value for an acquired first order, else NaN)."""
    rows = order_attribution[["order_id", "model", "channel", "credit", "attributed_revenue"]].merge(
        orders, on="order_id")
    credit = rows["credit"].astype(float)
    acquired = rows["ltv"].notna()
    sums = pd.DataFrame({
        "model": rows["model"].astype(str), "channel": rows["channel"].astype(str),
        "attributed_revenue": rows["attributed_revenue"].astype(float) * rows["in_window"],
        "conversions": credit * rows["in_window"],
        "credited": (credit > 0) & (rows["in_window"] > 0),
        "new_customers": credit * rows["in_window"] * rows["is_first"],
        "reactivated_customers": credit * rows["in_window"] * rows["is_reactivation"],
        "ltv_numerator": (credit * rows["ltv"]).where(acquired, 0.0),
        "ltv_denominator": credit.where(acquired, 0.0)})
    return sums.groupby(["model", "channel"]).sum()


# ---------------------------------------------------------------------------------------------------------------
# the reach metrics (the same under every model)

def top_decile(counts: pd.Series) -> pd.Index:
    """Persons whose count is >= the 90th percentile (docs/outputs.md 2.6) of it over the persons with a count >= 1."""
    counts = counts.loc[counts >= 1]
    if counts.empty:
        return pd.Index([], name="person_id")
    cut = float(np.percentile(counts.to_numpy(dtype=float), TOP_DECILE_PERCENTILE))
    return pd.Index(counts.index[(counts >= cut).to_numpy()], name="person_id")


def reach(decile: pd.Index, touched: pd.DataFrame) -> tuple[pd.Series, float]:
    """Per channel: persons of `decile` with a touch of the channel (touched: person_id, channel pairs); and the
    decile's size."""
    hits = touched.loc[touched["person_id"].isin(decile).to_numpy()]
    return hits.groupby("channel")["person_id"].nunique().astype(float), float(len(decile))


def cross_promotion(signups: pd.DataFrame, touches: pd.DataFrame, start: pd.Timestamp,
                    end: pd.Timestamp) -> tuple[pd.Series, float]:
    """Per channel: sign-ups in [start, end) whose person had a touch of the channel within 7 d before (t - 7 d <
    touch_at <= t); and all such sign-ups."""
    at = pd.to_datetime(signups["occurred_at"], utc=True)
    chosen = signups.loc[((at >= start) & (at < end)).to_numpy(), ["event_id", "person_id", "occurred_at"]]
    pairs = chosen.dropna(subset=["person_id"]).merge(touches[["person_id", "channel", "touch_at"]], on="person_id")
    before = pd.to_datetime(pairs["occurred_at"], utc=True) - pd.to_datetime(pairs["touch_at"], utc=True)
    within = (before >= pd.Timedelta(0)) & (before < pd.Timedelta(days=SIGNUP_LOOKBACK_DAYS))
    hits = pairs.loc[within.to_numpy()].groupby("channel")["event_id"].nunique().astype(float)
    return hits, float(len(chosen))


# ---------------------------------------------------------------------------------------------------------------
# the KPI

def _isin(values: object, pool: object) -> np.ndarray:
    """`values` (string ids) found in `pool`, in Arrow: pandas' isin on Arrow strings converts the pool value by
    value (seconds for a million credits)."""
    wanted = pa.array(np.asarray(pool, dtype=object), pa.string()).unique()
    return pc.is_in(pa.array(np.asarray(values, dtype=object), pa.string()), value_set=wanted).to_numpy(
        zero_copy_only=False)


def channel_scorecard(order_attribution: pd.DataFrame, first_order_credits: pd.DataFrame, order_book: pd.DataFrame,
                      refund_ledger: pd.DataFrame, first_orders: pd.DataFrame, costs: pd.DataFrame, touches: pd.DataFrame,
                      person_engagement: pd.DataFrame, asset_signups: pd.DataFrame, remap: PersonRemap,
                      day: dt.date, settings: Settings) -> list[dict]:
    """The orders placed in D-29..D and their credits: the ten metrics per model x channel (the channels with
    credit > 0 under the model and every channel with media spend in the window)."""
    tz = settings.timezone
    first = day - dt.timedelta(days=WINDOW_DAYS - 1)
    start, end = _window_bounds(day, WINDOW_DAYS, tz)
    persons = remap(order_book["person_id"]).to_numpy()
    ordered_at = pd.to_datetime(order_book["ordered_at"], utc=True)
    in_window = ((ordered_at >= start) & (ordered_at < end)).to_numpy()
    through_d = (ordered_at < end).to_numpy()
    net = order_book["net_revenue"].astype(float).fillna(0.0).to_numpy()

    # acquired persons: first order in D-364..D; their value = net revenue of their orders through D - refunds
    acquired = new_customers(first_orders, remap, day - dt.timedelta(days=ACQUIRED_DAYS - 1), day, tz)
    value = pd.Series(net - order_book["refunded"].astype(float).fillna(0.0).to_numpy(), index=persons)
    value = value.loc[through_d].groupby(level=0).sum()
    ltv = pd.Series(acquired["person_id"].map(value).fillna(0.0).to_numpy(dtype=float),
                    index=acquired["first_order_id"].to_numpy())
    all_firsts = new_customers(first_orders, remap, dt.date(1970, 1, 1), day, tz)["first_order_id"]
    reactivations = reactivation_orders(order_book, refund_ledger, persons, first, day)

    ids = pd.Index(order_book["order_id"].to_numpy()[in_window]).union(pd.Index(ltv.index))
    orders = pd.DataFrame({"order_id": ids,
                           "in_window": _isin(ids, order_book["order_id"].to_numpy()[in_window]).astype(float),
                           "is_first": _isin(ids, all_firsts).astype(float),
                           "is_reactivation": _isin(ids, reactivations).astype(float),
                           "ltv": ltv.reindex(ids).to_numpy(dtype=float)})
    credits = order_attribution[["order_id", "model", "channel", "credit", "attributed_revenue"]]
    older = first_order_credits.loc[~_isin(first_order_credits["order_id"], credits["order_id"]),
                                    credits.columns.tolist()]
    sums = credit_sums(pd.concat([credits, older], ignore_index=True) if len(older) else credits, orders)

    media = costs.loc[(costs["cost_type"] == "media").to_numpy()]
    cost_days = pd.to_datetime(media["cost_date"]).to_numpy(dtype="datetime64[D]")
    media = media.loc[(cost_days >= np.datetime64(first)) & (cost_days <= np.datetime64(day))]
    spend = media["amount"].astype(float).groupby(media["channel"].fillna(NONE).astype(str)).sum()

    # reach: touches (not view-through) in the window and 7 d before it, persons as of now
    touch = touches.loc[~touches["is_view_through"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    touch = pd.DataFrame({"person_id": remap(touch["person_id"]).to_numpy(), "channel": touch["channel"].to_numpy(),
                          "event_type": touch["event_type"].to_numpy(),
                          "touch_at": _utc_numpy(touch["touch_at"])}
                         ).dropna(subset=["person_id"])
    touch["touch_at"] = pd.to_datetime(touch["touch_at"], utc=True)
    windowed = touch.loc[((touch["touch_at"] >= start) & (touch["touch_at"] < end)).to_numpy()]
    touched = windowed[["person_id", "channel"]].drop_duplicates()
    engagement = pd.DataFrame({"person_id": remap(person_engagement["person_id"]).to_numpy(),
                               "channel": person_engagement["channel"].to_numpy()}).dropna()
    omni, omni_size = reach(top_decile(engagement.drop_duplicates().groupby("person_id").size()), touched)
    visits = windowed.loc[(windowed["event_type"] == "session_start").to_numpy()].groupby("person_id").size()
    frequent, frequent_size = reach(top_decile(visits), touched)
    signups = asset_signups.assign(person_id=remap(asset_signups["person_id"]).to_numpy())
    promoted, signup_total = cross_promotion(signups, touch, start, end)

    rows = [count(float(net[in_window].sum()), "currency", metric="attributed_revenue")]
    for model in MODELS:
        credited = sums.loc[model] if model in sums.index.get_level_values("model") else sums.iloc[0:0]
        channels = sorted(set(credited.index[credited["credited"].to_numpy(dtype=bool)]) | set(spend.index))
        table = credited.drop(columns="credited").reindex(channels).fillna(0.0).astype(float)
        for channel in channels:
            got = table.loc[channel].get
            dims = {"model": model, "channel": channel}
            paid = float(spend.get(channel, 0.0))
            rows += [count(got("attributed_revenue"), "currency", metric="attributed_revenue", **dims),
                     count(got("conversions"), metric="conversions", **dims),
                     count(got("new_customers"), metric="new_customers", **dims),
                     count(got("reactivated_customers"), metric="reactivated_customers", **dims),
                     quotient(got("ltv_numerator"), got("ltv_denominator"), "currency", metric="acquired_ltv",
                              **dims),
                     count(paid, "currency", metric="spend", **dims),
                     quotient(got("attributed_revenue"), paid, "ratio", metric="roas", **dims),
                     quotient(float(omni.get(channel, 0.0)), omni_size, "ratio", metric="omni_engager_reach", **dims),
                     quotient(float(promoted.get(channel, 0.0)), signup_total, "ratio", metric="cross_promotion",
                              **dims),
                     quotient(float(frequent.get(channel, 0.0)), frequent_size, "ratio",
                              metric="frequent_visitor_reach", **dims)]
    return rows


BOOK_COLUMNS = ("order_id", "person_id", "ordered_at", "order_day", "net_revenue", "refunded", "fully_refunded")

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="channel_scorecard", family="Monetise", seed="000",
        description="One row per attribution model x channel x metric (the channels with credit > 0 under the model "
                    "and every channel with media spend in the window) and one for metric attributed_revenue over "
                    "all channels, for the orders placed in D-29..D: what each channel earns, costs and reaches.",
        formula="attributed_revenue = sum of credit x net revenue (refunds not deducted); conversions = sum of "
                "credits; new_customers = sum of credits of first orders; reactivated_customers = sum of credits of "
                "the first order on its day X of a buyer who was a win-back candidate at X-1; acquired_ltv = over "
                "persons whose first order is in D-364..D, sum of credit(first order) x (net revenue of their orders "
                "through D - their refunds through D) / sum of credit(first order); spend = media costs of the "
                "channel dated in the window (every objective); roas = attributed_revenue / spend; "
                "omni_engager_reach (frequent_visitor_reach) = persons of the top decile by distinct channels of "
                "their engagements (by visits) in the window with a touch of the channel in the window / that "
                "decile; cross_promotion = asset sign-ups in the window whose person had a touch of the channel "
                "within 7 d before (t - 7 d < touch <= t) / all such sign-ups. Top decile: count >= the 90th "
                "percentile (linear interpolation) over the persons with a count >= 1. Headline: "
                "attributed_revenue over all channels = net revenue of the orders placed in the window.",
        window="30d (D-29..D; acquired_ltv reads first orders of D-364..D, reactivation the year before each day, "
               "cross_promotion touches from D-36)",
        population="orders placed in D-29..D and their credits (docs/outputs.md 2.7); spend, roas and the three reach "
                   "metrics are the same under every model",
        exclusions="view-through touches; costs other than media in spend; a media cost line without a channel is "
                   "the channel (none); sign-ups whose identifiers resolve to no person count only in the "
                   "cross_promotion denominator",
        unit="currency, count, ratio",
        dimensions=(Dimension("model", MODELS), Dimension("channel"), Dimension("metric", METRICS)),
        headline={"metric": "attributed_revenue"},
        inputs=(KpiInput("order_attribution", ATTRIBUTION, window_days=WINDOW_DAYS,
                         columns=("order_id", "model", "channel", "credit", "attributed_revenue")),
                KpiInput("first_order_credits", tuple(FIRST_ORDER_CREDITS_KEY.path)),
                order_book_input(columns=BOOK_COLUMNS),
                KpiInput("refund_ledger", tuple(REFUND_LEDGER_KEY.path), columns=("order_id", "refund_day")),
                KpiInput("first_orders", tuple(FIRST_ORDERS_KEY.path)),
                KpiInput("costs", COSTS, window_days=WINDOW_DAYS, columns=COST_COLUMNS),
                KpiInput("touches", TOUCHES, window_days=WINDOW_DAYS + SIGNUP_LOOKBACK_DAYS,
                         columns=("person_id", "channel", "event_type", "touch_at", "is_view_through")),
                KpiInput("person_engagement", PERSON_ENGAGEMENT, window_days=WINDOW_DAYS,
                         columns=("person_id", "channel")),
                KpiInput("asset_signups", tuple(ASSET_SIGNUPS_KEY.path), window_days=WINDOW_DAYS)),
        lineage={"model": ("order_attribution.model", "first_order_credits.model"),
                 "channel": ("order_attribution.channel", "costs.channel"),
                 "numerator": ("order_attribution.credit", "order_attribution.attributed_revenue",
                               "first_order_credits.credit", "order_book.net_revenue", "order_book.refunded", "order_book.order_day",
                               "order_book.fully_refunded", "refund_ledger.refund_day",
                               "first_orders.first_order_id", "costs.amount", "touches.person_id",
                               "touches.channel", "touches.touch_at", "person_engagement.person_id",
                               "asset_signups.occurred_at"),
                 "denominator": ("order_attribution.credit", "first_order_credits.credit", "costs.amount", "person_engagement.channel",
                                 "touches.event_type", "asset_signups.event_id")},
        unbounded_metrics=("roas",),
        compute=channel_scorecard, window_days=ACQUIRED_DAYS + WINDOW_DAYS,  # a win-back looks back a year
        remap_days=WINDOW_DAYS + SIGNUP_LOOKBACK_DAYS),  # touches hold persons as of their own day, from D-36
)
