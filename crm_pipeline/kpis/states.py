"""Latest-state snapshots the KPIs read instead of whole histories: a day costs the same on day 10 as on day 400.

`aggregates/person_signals`: one row per person x signal x installation with the latest timestamp of the
signal up to the end of D. List memberships ("the latest X is strictly later than the latest Y"), app
installations, recent opens and clicks, and cart abandonment are all questions about latest timestamps, so
one long table of latest timestamps answers every one of them. D = D-1 carried through the merges of D, plus
the events and orders of D, keeping the latest timestamp per key.
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.identity.graph import (
    IDENTIFIER_COLUMN_NAMES,
    PERSON_LOOKUP_COLUMNS,
    attach_person_id,
    resolve_person_ids,
)
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource

# signal <- event types; an installation signal is kept per (person, device_id)
EVENT_SIGNALS: dict[str, str] = {
    "email_subscribe": "email_subscribe", "email_unsubscribe": "email_end",  # a hard bounce also ends it
    "email_open": "email_open", "email_click": "email_click",
    "app_install": "app_install", "app_uninstall": "app_uninstall", "app_open": "app_open",
    "browser_app_install": "browser_app_install", "browser_app_uninstall": "browser_app_uninstall",
    "browser_app_click": "browser_app_click",
    "social_follow": "social_follow", "social_unfollow": "social_unfollow",
    "mail_subscribe": "mail_subscribe", "mail_unsubscribe": "mail_unsubscribe",
    "sms_optin": "sms_optin", "sms_optout": "sms_optout",
    "cart_add": "cart_add",
}
INSTALLATION_SIGNALS = frozenset({"app_install", "app_uninstall", "app_open", "browser_app_install",
                                  "browser_app_uninstall", "browser_app_click"})
ORDER_SIGNAL = "order"

PERSON_SIGNALS_KEY = dg.AssetKey(["aggregates", "person_signals"])
PERSON_SIGNALS_PK = ["person_id", "signal", "device_id"]
PERSON_SIGNALS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("signal", pa.string(), nullable=False),
    # installation signals: the event's device_id, null = the person's events without one (one installation);
    # other signals: always null
    pa.field("device_id", pa.string()),
    pa.field("latest_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def day_signals(events: pd.DataFrame, orders: pd.DataFrame, identity_map: pd.DataFrame) -> pd.DataFrame:
    """The latest timestamp per person x signal x installation among the events and orders of one day."""
    event_type = events["event_type"].astype("string")
    signal = event_type.map(EVENT_SIGNALS)
    hard_bounce = (event_type == "email_bounce") & (events["bounce_type"].astype("string") == "hard")
    signal = signal.where(~hard_bounce.fillna(False), "email_end")
    keep = signal.notna().to_numpy()
    chosen = events.loc[keep]
    signal = signal[keep].astype(str).to_numpy()
    device = chosen["device_id"].astype("string").to_numpy(dtype=object, na_value=None)
    device = np.where(np.isin(signal, list(INSTALLATION_SIGNALS)), device, None)
    from_events = pd.DataFrame({"person_id": attach_person_id(chosen, identity_map).to_numpy(),
                                "signal": signal, "device_id": device,
                                "latest_at": pd.to_datetime(chosen["occurred_at"], utc=True).to_numpy()})
    from_orders = pd.DataFrame({"person_id": attach_person_id(orders, identity_map).to_numpy(),
                                "signal": ORDER_SIGNAL, "device_id": None,
                                "latest_at": pd.to_datetime(orders["ordered_at"], utc=True).to_numpy()})
    return _latest(pd.concat([from_events, from_orders], ignore_index=True).dropna(subset=["person_id"]))


def update_person_signals(previous: pd.DataFrame | None, events: pd.DataFrame, orders: pd.DataFrame,
                          identity_map: pd.DataFrame, merges: pd.DataFrame) -> pd.DataFrame:
    """Yesterday's latest timestamps, persons carried through today's merges, updated with today's facts."""
    frames = [day_signals(events, orders, identity_map)]
    if previous is not None and len(previous):
        frames.insert(0, previous.assign(person_id=resolve_person_ids(previous["person_id"], merges).to_numpy()))
    return _latest(pd.concat(frames, ignore_index=True))


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(latest_at=pd.to_datetime(frame["latest_at"], utc=True),
                         person_id=frame["person_id"].astype("string"), signal=frame["signal"].astype("string"),
                         device_id=frame["device_id"].astype("string"))
    out = frame.groupby(PERSON_SIGNALS_PK, dropna=False, sort=False)["latest_at"].max().reset_index()
    return out.sort_values(PERSON_SIGNALS_PK, na_position="first", ignore_index=True)


def person_signals_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=PERSON_SIGNALS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per person x signal x installation with the latest timestamp of the signal up to the "
                    "end of day D: email subscribe / end (unsubscribe or hard bounce) / open / click, app and "
                    "browser-app install / uninstall / open per installation (person, device_id), social follow / "
                    "unfollow, mail and sms list joins and leaves, cart_add and order. A state: D = D-1 carried "
                    "through the merges of D + the events and orders of D. Feeds asset_counts and the audiences.",
        ins={"events": dg.AssetIn(key=dg.AssetKey(["ingest", "events"]), metadata={
                 "columns": ["event_type", "occurred_at", "bounce_type", *IDENTIFIER_COLUMN_NAMES]}),
             "orders": dg.AssetIn(key=dg.AssetKey(["ingest", "orders"]), metadata={
                 "columns": ["order_id", "ordered_at", "customer_id", "email_hash", "anonymous_id", "device_id"]}),
             "identity_map": dg.AssetIn(key=dg.AssetKey(["identity", "identity_map"]), metadata={
                 "columns": list(PERSON_LOOKUP_COLUMNS)}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"])),
             "previous": dg.AssetIn(key=PERSON_SIGNALS_KEY,
                                    partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(PERSON_SIGNALS_SCHEMA), "primary_key": PERSON_SIGNALS_PK},
        check_specs=[
            checks.schema_spec(PERSON_SIGNALS_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(PERSON_SIGNALS_PK), asset=PERSON_SIGNALS_KEY,
                              blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(PERSON_SIGNALS_PK, ["device_id"]))],
    )
    def person_signals(events: pd.DataFrame, orders: pd.DataFrame, identity_map: pd.DataFrame,
                       identity_merges: pd.DataFrame, previous: pd.DataFrame | None):
        frame = update_person_signals(previous, events, orders, identity_map, identity_merges)
        counts = frame["signal"].value_counts()
        yield from checks.written(PERSON_SIGNALS_KEY, frame, PERSON_SIGNALS_SCHEMA, metadata={
            "rows": len(frame), "persons": int(frame["person_id"].nunique()),
            "rows_per_signal": dg.MetadataValue.json({str(k): int(v) for k, v in counts.sort_index().items()})})
        yield checks.primary_key_is_unique(PERSON_SIGNALS_KEY, frame, PERSON_SIGNALS_PK, nullable=["device_id"])

    return person_signals


# ---------------------------------------------------------------------------------------------------------------
# the order book: every order of the last 548 days with what has been refunded of it

# ltv's 18 months look back 548 days (D-547..D); the 365-day rules (active customers, win-back candidates, past
# purchasers, docs/outputs.md 2.3) filter their own days (kpis/customers.py)
ORDER_BOOK_DAYS = 548
REFUND_TOLERANCE = 0.005  # fully refunded: refunds >= net - half a cent (order currency)
ORDER_BOOK_KEY = dg.AssetKey(["aggregates", "order_book"])
ORDER_BOOK_SCHEMA = pa.schema([
    pa.field("order_id", pa.string(), nullable=False),
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("ordered_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("order_day", pa.date32(), nullable=False),  # the day of ordered_at in the reporting timezone
    pa.field("currency", pa.string()),
    pa.field("net_revenue", pa.float64()),  # reporting currency, at the order day's rate
    pa.field("net_revenue_original", pa.float64()),  # order currency
    pa.field("gross_revenue", pa.float64()),  # reporting currency, at the order day's rate
    pa.field("discount_amount", pa.float64()),  # reporting currency
    pa.field("cost_of_goods", pa.float64()),  # reporting currency; null when the order has none
    pa.field("refunded_original", pa.float64(), nullable=False),  # refunds up to D, in the order currency
    pa.field("refunded", pa.float64(), nullable=False),  # refunds up to D, each at its own day's rate (reporting)
    pa.field("count_refunds", pa.int64(), nullable=False),
    pa.field("fully_refunded", pa.bool_(), nullable=False),  # at the end of D (docs/outputs.md 2.3)
    pa.field("categories", pa.string()),  # "|"-separated
])


def refunds_in_order_currency(refunds: pd.DataFrame, book: pd.DataFrame, fx_latest: pd.DataFrame,
                              reporting_currency: str) -> pd.Series:
    """Each refund's amount in the currency of its order: the original amount when the currencies agree, else
    converted through the reporting currency at the refund day's rates (the refund's own rate, then the order
    currency's latest rate on or before that day). Indexed like `refunds`; NaN for an unknown order."""
    order_currency = refunds["order_id"].map(book.drop_duplicates("order_id").set_index("order_id")["currency"])
    same = (refunds["currency"].astype("string") == order_currency.astype("string")).fillna(False)
    rates = fx_latest.set_index("currency")["rate_to_reporting"] if len(fx_latest) else pd.Series(dtype=float)
    rate = order_currency.map(rates).astype(float)
    rate = rate.mask(order_currency == reporting_currency, 1.0)
    converted = refunds["amount"].astype(float) / rate
    return pd.Series(np.where(same, refunds["amount_original"].astype(float), converted), index=refunds.index)


def update_order_book(previous: pd.DataFrame | None, orders: pd.DataFrame, refunds: pd.DataFrame,
                      fx_latest: pd.DataFrame, identity_map: pd.DataFrame, merges: pd.DataFrame, timezone: str,
                      reporting_currency: str, oldest_day: object) -> tuple[pd.DataFrame, pd.Series]:
    """(the book, the amounts of today's refunds applied to it in their orders' currencies).

    The book: yesterday's carried through today's merges, plus today's orders, minus orders placed before
    `oldest_day`, with today's refunds added to their orders (refunds of orders not in the book are ignored:
    older than a year or placed before CRM_START_DATE). An order without refunds is never fully refunded,
    even at a net amount of 0."""
    ordered_at = pd.to_datetime(orders["ordered_at"], utc=True)
    today = pd.DataFrame({
        "order_id": orders["order_id"].astype("string").to_numpy(),
        "person_id": attach_person_id(orders, identity_map).to_numpy(),
        "ordered_at": ordered_at.to_numpy(),
        "order_day": ordered_at.dt.tz_convert(timezone).dt.date.to_numpy(),
        "currency": orders["currency"].astype("string").to_numpy(),
        "net_revenue": orders["net_revenue"].astype(float).to_numpy(),
        "net_revenue_original": orders["net_revenue_original"].astype(float).to_numpy(),
        "gross_revenue": orders["gross_revenue"].astype(float).to_numpy(),
        "discount_amount": orders["discount_amount"].astype(float).to_numpy(),
        "cost_of_goods": orders["cost_of_goods"].astype(float).to_numpy(),
        "refunded_original": 0.0,
        "refunded": 0.0,
        "count_refunds": 0,
        "fully_refunded": False,
        "categories": orders["categories"].astype("string").to_numpy(),
    }).dropna(subset=["person_id"])
    frames = [today]
    if previous is not None and len(previous):
        frames.insert(0, previous.assign(person_id=resolve_person_ids(previous["person_id"], merges).to_numpy()))
    book = pd.concat(frames, ignore_index=True).drop_duplicates("order_id", keep="first")
    book["order_day"] = pd.to_datetime(book["order_day"]).dt.date
    book = book.loc[(book["order_day"] >= oldest_day).to_numpy()].reset_index(drop=True)
    applied = refunds.loc[refunds["order_id"].astype("string").isin(book["order_id"]).to_numpy()]
    amounts = refunds_in_order_currency(applied, book, fx_latest, reporting_currency)
    if len(applied):
        by_order = amounts.groupby(applied["order_id"].astype("string").to_numpy())
        book["refunded_original"] = book["refunded_original"].astype(float) + book["order_id"].map(
            by_order.sum()).fillna(0.0).to_numpy()
        in_reporting = applied["amount"].astype(float).groupby(applied["order_id"].astype("string").to_numpy()).sum()
        book["refunded"] = book["refunded"].astype(float) + book["order_id"].map(in_reporting).fillna(0.0).to_numpy()
        book["count_refunds"] = book["count_refunds"].astype("int64") + book["order_id"].map(
            by_order.size()).fillna(0).astype("int64").to_numpy()
    # an order is fully refunded when it has refunds and they total its net amount to the cent
    book["fully_refunded"] = (book["count_refunds"] > 0) & (
        book["refunded_original"] >= book["net_revenue_original"] - REFUND_TOLERANCE)
    return book.sort_values("order_id", ignore_index=True)[list(ORDER_BOOK_SCHEMA.names)], amounts


def order_book_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=ORDER_BOOK_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description=f"One row per order placed in D-{ORDER_BOOK_DAYS - 1}..D (reporting timezone): its person, "
                    "day, currency, net revenue (reporting and order currency), gross revenue, discount and cost of "
                    "goods (reporting currency), categories, and the refunds dated up to the end of D (order and "
                    "reporting currency) with whether they make it fully refunded (docs/outputs.md 2.3). A state: D = D-1 "
                    f"carried through the merges of D + the orders of D - orders older than {ORDER_BOOK_DAYS} days, "
                    "with the refunds of D applied. Feeds customers at D (active, win-back candidates, buyers), past "
                    "purchasers and the value KPIs.",
        ins={"orders": dg.AssetIn(key=dg.AssetKey(["ingest", "orders"]), metadata={
                 "columns": ["order_id", "ordered_at", "customer_id", "email_hash", "anonymous_id", "device_id",
                             "currency", "net_revenue", "net_revenue_original", "gross_revenue", "discount_amount",
                             "cost_of_goods", "categories"]}),
             "refunds": dg.AssetIn(key=dg.AssetKey(["ingest", "refunds"]), metadata={
                 "columns": ["refund_id", "order_id", "currency", "amount", "amount_original"]}),
             "fx_latest": dg.AssetIn(key=dg.AssetKey(["ingest", "fx_rates_latest"])),
             "identity_map": dg.AssetIn(key=dg.AssetKey(["identity", "identity_map"]), metadata={
                 "columns": list(PERSON_LOOKUP_COLUMNS)}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"])),
             "previous": dg.AssetIn(key=ORDER_BOOK_KEY,
                                    partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(ORDER_BOOK_SCHEMA), "primary_key": ["order_id"]},
        check_specs=[
            checks.schema_spec(ORDER_BOOK_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(["order_id"]), asset=ORDER_BOOK_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["order_id"])),
                     dg.AssetCheckSpec("refunds_reconcile", asset=ORDER_BOOK_KEY, blocking=True,
                                       partitions_def=partitions,
                                       description="booked refunds = those carried from D-1 + the refunds of D applied "
                                                   "(order currency), and no refund amount is unknown")],
    )
    def order_book(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, orders: pd.DataFrame,
                   refunds: pd.DataFrame, fx_latest: pd.DataFrame, identity_map: pd.DataFrame,
                   identity_merges: pd.DataFrame, previous: pd.DataFrame | None):
        s = settings.get()
        day = partition_day(context)
        oldest = day - dt.timedelta(days=ORDER_BOOK_DAYS - 1)
        book, amounts = update_order_book(previous, orders, refunds, fx_latest, identity_map, identity_merges,
                                          s.timezone, s.reporting_currency, oldest)
        yield from checks.written(ORDER_BOOK_KEY, book, ORDER_BOOK_SCHEMA, metadata={
            "orders": len(book), "orders_today": int((book["order_day"] == day).sum()),
            "fully_refunded": int(book["fully_refunded"].sum()), "refunds_applied": len(amounts),
            "refunds_outside_book": len(refunds) - len(amounts)})
        yield checks.primary_key_is_unique(ORDER_BOOK_KEY, book, ["order_id"])
        yield checks.refunds_reconcile(ORDER_BOOK_KEY, previous, book, amounts)

    return order_book


# ---------------------------------------------------------------------------------------------------------------
# the refund ledger: every refund dated in the last 548 days, with the person and day of its order

REFUND_LEDGER_KEY = dg.AssetKey(["aggregates", "refund_ledger"])
REFUND_LEDGER_SCHEMA = pa.schema([
    pa.field("refund_id", pa.string(), nullable=False),
    pa.field("order_id", pa.string(), nullable=False),
    pa.field("person_id", pa.string(), nullable=False),  # the order's person, as of D
    pa.field("refunded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("refund_day", pa.date32(), nullable=False),  # the day of refunded_at in the reporting timezone
    pa.field("order_day", pa.date32(), nullable=False),
    pa.field("amount", pa.float64(), nullable=False),  # reporting currency, at the refund day's rate
])


def update_refund_ledger(previous: pd.DataFrame | None, refunds: pd.DataFrame, book: pd.DataFrame,
                         merges: pd.DataFrame, timezone: str, oldest_day: object) -> pd.DataFrame:
    """Yesterday's ledger carried through today's merges, plus today's refunds of the orders in the order book
    of today (with the order's person and day), minus refunds dated before `oldest_day`. A refund of an order the
    book does not hold (placed before CRM_START_DATE or before the book's horizon) is left out, as docs/outputs.md 2.3
    leaves out the refunds of orders the pipeline has not seen."""
    booked = book.drop_duplicates("order_id").set_index("order_id")
    order_ids = refunds["order_id"].astype("string")
    known = order_ids.isin(booked.index).to_numpy()
    refunded_at = pd.to_datetime(refunds["refunded_at"], utc=True)[known]
    today = pd.DataFrame({
        "refund_id": refunds["refund_id"].astype("string").to_numpy()[known],
        "order_id": order_ids.to_numpy()[known],
        "person_id": booked["person_id"].reindex(order_ids[known]).to_numpy(),
        "refunded_at": refunded_at.to_numpy(),
        "refund_day": refunded_at.dt.tz_convert(timezone).dt.date.to_numpy(),
        "order_day": pd.to_datetime(booked["order_day"].reindex(order_ids[known])).dt.date.to_numpy(),
        "amount": refunds["amount"].astype(float).to_numpy()[known],
    })
    frames = [today]
    if previous is not None and len(previous):
        frames.insert(0, previous.assign(person_id=resolve_person_ids(previous["person_id"], merges).to_numpy()))
    ledger = pd.concat(frames, ignore_index=True).drop_duplicates("refund_id", keep="last")
    ledger["refund_day"] = pd.to_datetime(ledger["refund_day"]).dt.date
    ledger["order_day"] = pd.to_datetime(ledger["order_day"]).dt.date
    ledger = ledger.loc[(ledger["refund_day"] >= oldest_day).to_numpy()]
    return ledger.sort_values("refund_id", ignore_index=True)[list(REFUND_LEDGER_SCHEMA.names)]


def refund_ledger_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=REFUND_LEDGER_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description=f"One row per refund dated in D-{ORDER_BOOK_DAYS - 1}..D (reporting timezone) of an order in the "
                    "order book: the order's person and day, the refund's instant, day and amount in the reporting "
                    "currency (at the refund day's rate). A state: D = D-1 carried through the merges of D + the "
                    f"refunds of D - refunds older than {ORDER_BOOK_DAYS} days. The value KPIs' 'refunds dated in the "
                    "window' (net of refunds, docs/outputs.md 2.3) come from it.",
        ins={"refunds": dg.AssetIn(key=dg.AssetKey(["ingest", "refunds"]), metadata={
                 "columns": ["refund_id", "order_id", "refunded_at", "amount"]}),
             "order_book": dg.AssetIn(key=ORDER_BOOK_KEY, metadata={
                 "columns": ["order_id", "person_id", "order_day"]}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"])),
             "previous": dg.AssetIn(key=REFUND_LEDGER_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(REFUND_LEDGER_SCHEMA), "primary_key": ["refund_id"]},
        check_specs=[
            checks.schema_spec(REFUND_LEDGER_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(["refund_id"]), asset=REFUND_LEDGER_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["refund_id"]))],
    )
    def refund_ledger(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, refunds: pd.DataFrame,
                      order_book: pd.DataFrame, identity_merges: pd.DataFrame, previous: pd.DataFrame | None):
        s = settings.get()
        day = partition_day(context)
        ledger = update_refund_ledger(previous, refunds, order_book, identity_merges, s.timezone,
                                      day - dt.timedelta(days=ORDER_BOOK_DAYS - 1))
        today = ledger["refund_day"] == day
        yield from checks.written(REFUND_LEDGER_KEY, ledger, REFUND_LEDGER_SCHEMA, metadata={
            "refunds": len(ledger), "refunds_today": int(today.sum()),
            "amount_today": float(ledger.loc[today.to_numpy(), "amount"].sum()),
            "refunds_of_unbooked_orders": int(len(refunds) - int(refunds["order_id"].astype("string").isin(
                order_book["order_id"].astype("string")).sum()))})
        yield checks.primary_key_is_unique(REFUND_LEDGER_KEY, ledger, ["refund_id"])

    return refund_ledger
# the order history: what the order book no longer holds, one summary row per person

ORDER_HISTORY_KEY = dg.AssetKey(["aggregates", "order_history"])
ORDER_HISTORY_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("first_order_date", pa.date32(), nullable=False),  # the person's earliest order day (reporting tz)
    pa.field("first_day_net_revenue", pa.float64(), nullable=False),  # net revenue of the orders of that day
    pa.field("count_order_days", pa.int64(), nullable=False),  # days with a non-refunded order
    pa.field("net_revenue", pa.float64(), nullable=False),  # of all those days, refunds not deducted
    pa.field("last_order_date", pa.date32(), nullable=False),
])


def day_numbers(dates: pd.Series | np.ndarray) -> np.ndarray:
    """Dates (date objects, datetimes, strings, or already day numbers) as whole days since 1970-01-01, for
    vectorised day arithmetic."""
    dates = pd.Series(dates)
    if pd.api.types.is_integer_dtype(dates):
        return dates.to_numpy(dtype=np.int64)
    return pd.to_datetime(dates).to_numpy().astype("datetime64[D]").astype(np.int64)


def order_days(book: pd.DataFrame) -> pd.DataFrame:
    """One summary row (ORDER_HISTORY_SCHEMA) per person and day of the book's orders that are not fully
    refunded: two orders on one day are one order day whose revenue is their sum (refunds not deducted)."""
    kept = book.loc[~book["fully_refunded"].astype(bool).to_numpy()]
    per_day = kept.groupby([kept["person_id"].astype("string"), day_numbers(kept["order_day"])],
                           sort=False)["net_revenue"].sum()
    day = per_day.index.get_level_values(1).to_numpy()
    revenue = per_day.to_numpy(dtype=float)
    return pd.DataFrame({"person_id": per_day.index.get_level_values(0).astype("string"),
                         "first_order_date": day, "first_day_net_revenue": revenue, "count_order_days": 1,
                         "net_revenue": revenue, "last_order_date": day})


def combine_order_days(*frames: pd.DataFrame) -> pd.DataFrame:
    """One row per person from summary rows (ORDER_HISTORY_SCHEMA) of disjoint sets of order days: the earliest
    first day and the revenue of that day (summed over the rows starting on it), the numbers of days and the
    revenues added up, the latest last day. Dates come back as day numbers; sorted by person."""
    parts = pd.concat([f.assign(person_id=f["person_id"].astype("string"),
                                first_order_date=day_numbers(f["first_order_date"]),
                                last_order_date=day_numbers(f["last_order_date"])) for f in frames],
                      ignore_index=True)
    persons = parts.groupby("person_id", sort=True)
    first = persons["first_order_date"].transform("min")
    on_first = parts["first_day_net_revenue"].where(parts["first_order_date"] == first, 0.0)
    out = pd.DataFrame({"first_order_date": persons["first_order_date"].min(),
                        "first_day_net_revenue": on_first.groupby(parts["person_id"], sort=True).sum(),
                        "count_order_days": persons["count_order_days"].sum().astype("int64"),
                        "net_revenue": persons["net_revenue"].sum(),
                        "last_order_date": persons["last_order_date"].max()})
    return out.rename_axis("person_id").reset_index()


def update_order_history(previous: pd.DataFrame | None, book: pd.DataFrame, merges: pd.DataFrame,
                         day: dt.date, horizon_days: int = ORDER_BOOK_DAYS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the history of D, the order days it took in today).

    The history of D summarises, per person, the non-refunded order days up to the book's oldest day D-H+1
    (H = ORDER_BOOK_DAYS): yesterday's history (days up to D-H) with its persons carried through the merges of
    D, plus the book's oldest day, whose orders leave the book tomorrow. Their refund status is final from then
    on: the book ignores refunds of orders it no longer holds, and so does the history (an order refunded H or
    more days after its day stays counted). When two persons merge, their summaries combine exactly except for a day on which both had
    orders more than a year ago: the summary keeps no list of days, so that day counts twice."""
    oldest = day - dt.timedelta(days=horizon_days - 1)
    leaving = order_days(book.loc[day_numbers(book["order_day"]) == np.datetime64(oldest, "D").astype(np.int64)])
    frames = [leaving]
    if previous is not None and len(previous):
        frames.insert(0, previous.assign(person_id=resolve_person_ids(previous["person_id"], merges).to_numpy()))
    history = combine_order_days(*frames)
    for column in ("first_order_date", "last_order_date"):  # as the book's order_day: dates
        history[column] = pd.Series(history[column].to_numpy().astype("datetime64[D]")).dt.date.to_numpy()
    return history[list(ORDER_HISTORY_SCHEMA.names)], leaving


def order_history_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=ORDER_HISTORY_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description=f"One row per person with non-refunded orders on days up to D-{ORDER_BOOK_DAYS - 1} (older "
                    "than the order book's other days): the first order day and its net revenue, the number of "
                    "order days, their net revenue (refunds not deducted) and the last order day. A state: D = "
                    "D-1 carried through the merges of D + the book's oldest day, whose refund status is then "
                    "final. With the order book it gives every buyer's whole order history at flat cost "
                    "(clv_predictions).",
        ins={"order_book": dg.AssetIn(key=ORDER_BOOK_KEY, metadata={
                 "columns": ["person_id", "order_day", "net_revenue", "fully_refunded"]}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"])),
             "previous": dg.AssetIn(key=ORDER_HISTORY_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(ORDER_HISTORY_SCHEMA), "primary_key": ["person_id"]},
        check_specs=[
            checks.schema_spec(ORDER_HISTORY_KEY, partitions),
            dg.AssetCheckSpec("person_id_is_unique", asset=ORDER_HISTORY_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["person_id"])),
            dg.AssetCheckSpec("order_days_reconcile", asset=ORDER_HISTORY_KEY, blocking=True,
                              partitions_def=partitions,
                              description="order days and net revenue = those carried from D-1 + those taken in "
                                          "from the book, and every first order day <= last order day <= the "
                                          "book's oldest day")],
    )
    def order_history(context: dg.AssetExecutionContext, order_book: pd.DataFrame, identity_merges: pd.DataFrame,
                      previous: pd.DataFrame | None):
        day = partition_day(context)
        history, leaving = update_order_history(previous, order_book, identity_merges, day)
        yield from checks.written(ORDER_HISTORY_KEY, history, ORDER_HISTORY_SCHEMA, metadata={
            "persons": len(history), "order_days": int(history["count_order_days"].sum()),
            "order_days_taken_in": len(leaving)})
        yield checks.primary_key_is_unique(ORDER_HISTORY_KEY, history, ["person_id"])
        yield checks.order_days_reconcile(ORDER_HISTORY_KEY, previous, leaving, history,
                                          day - dt.timedelta(days=ORDER_BOOK_DAYS - 1))

    return order_history
