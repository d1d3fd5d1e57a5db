"""Benchmark: every Retention and Monetise KPI (and ad_conversion_rate) on a `medium` day with a long history.

    python bench/value_kpis.py                       # medium world, 730 days of history (the book holds 548)
    python bench/value_kpis.py --history-days 180    # a young deployment: compare, the cost flattens at 548
    python bench/value_kpis.py --scale 5             # five times the persons, orders, sends and engagement

The inputs are synthetic but sized like the generator's `medium` world (200k persons): 3,500 orders a day (the
small world's 176 a day x 20) from buyers of skewed propensity (Gamma 0.5) who arrive steadily and buy for
an exponential lifetime (so each day has new buyers and registrants), 10% of orders refunded (60% in
full, 30% the same day, the rest 1-14 days later), 61% of persons registered, five identifiers a person, one
email campaign per weekday to a third of the persons (with a 5% holdout), 0.3 engagement rows (person x
channel) per person a day, 2% of persons clicking an ad a day, monthly subscription terms for 8% of the
customers, the generator's cost lines. There is one builder per upstream asset key, giving that asset's
columns with their declared Arrow types, as of a day or for a window of daily partitions; each KPI gets its
inputs as its asset would (the declared columns only, a `date` column on windows and shifted inputs) and is
timed on its compute and `finalise`, with `day`, `settings` and a `PersonRemap` without changes where the
compute takes them; the `customer_rfm` state is timed too. A KPI that carries its closed cells over from its
own partition of D-1 gets that partition computed by the KPI itself (with no D-1 of its own). A KPI that reads
a key no builder covers is an error, never skipped. Prints time per KPI, the total and the process's peak memory:
a KPI's inputs are built for it and dropped after it, but beside the whole synthetic history, so the peak is an
upper bound of one asset's. Speed targets are checked here, never in timed tests.
"""

import argparse
import datetime as dt
import gc
import importlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_pipeline.generator.population import CATEGORIES, PAID_CHANNELS, TOUCH_CHANNELS
from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.kpis.framework import KpiDefinition, KpiInput, finalise
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_DAYS
from crm_pipeline.metadata import arrow_table
from crm_pipeline.settings import Settings

D = dt.date(2026, 11, 30)
HISTORY_DAYS = 730
WORLD_DAYS = 2_000  # the shop is older than the pipeline: history_days must not exceed it
FAMILIES = ("Retention", "Monetise")
ALSO = ("ad_conversion_rate",)

PERSONS = 200_000
ORDERS_PER_DAY = 3_500
REFUND_SHARE, FULL_REFUND_SHARE = 0.10, 0.6
REGISTERED_SHARE = 0.61
ENGAGEMENT_ROWS_PER_PERSON_DAY = 0.3
SEND_SHARE, HOLDOUT_SHARE = 0.32, 0.05
AD_CLICKERS_SHARE = 0.02
SUBSCRIBER_SHARE = 0.08
TOUCHES_PER_PERSON_DAY, SIGNUPS_PER_PERSON_DAY = 0.53, 0.02
DAY_S = 86_400
MODELS = ("first_touch", "last_non_direct", "last_touch", "linear", "markov", "position_based", "shapley",
          "time_decay")


def _ids(prefix: str, n: int) -> pa.Array:
    """prefix + a zero-padded number, n of them, built in Arrow (no loop over rows)."""
    if n == 0:  # numpy's string functions reduce over the lengths: not on an empty array
        return pa.array([], pa.string())
    return pa.array(np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), 9)))


def _stamp(day: dt.date) -> np.datetime64:
    return np.datetime64(day, "s")


def _utc(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]").astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))


def _days(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]").astype("datetime64[D]"), pa.date32())


def _day_rng(seed: int, name: str, day: dt.date) -> np.random.Generator:
    """One stream per (asset, day): a day's partition is the same whichever window reads it."""
    return np.random.default_rng([seed, sum(map(ord, name)), day.toordinal()])


class World:
    """The persons, customers and the whole order and refund history; the builders slice them per day."""

    def __init__(self, scale: float, history_days: int, seed: int = 7):
        if not 1 <= history_days <= WORLD_DAYS - 600:
            raise ValueError(f"history_days must be in 1..{WORLD_DAYS - 600}")
        rng = np.random.default_rng(seed)
        self.scale, self.seed, self.history_days = scale, seed, history_days
        self.first_day = D - dt.timedelta(days=history_days - 1)
        n = self.persons = max(int(PERSONS * scale), 20)
        self.person_ids = _ids("p_", n)
        self.activity = rng.gamma(0.5, 1.0, n)  # buyers' and engagers' propensity
        # persons arrive steadily over the shop's WORLD_DAYS and buy for an exponential lifetime (mean 540 days),
        # so that every day has about the same orders, new buyers and new registrants; the history is the last
        # `history_days` of that world (the days the pipeline has seen): the same shop whatever its length
        start = _stamp(self.first_day).astype(np.int64)
        end = self.end_of(D)
        arrival = end - (rng.random(n) * WORLD_DAYS * DAY_S).astype(np.int64)
        stop = np.minimum(arrival + (rng.exponential(540, n) * DAY_S).astype(np.int64), end)
        recent = end - 365 * DAY_S  # ORDERS_PER_DAY on average over the last year (the shop still grows slowly)
        alive = np.maximum(stop - np.maximum(arrival, recent), 0) / DAY_S
        rate = self.activity * ORDERS_PER_DAY * scale * 365 / (self.activity * alive).sum()
        begin = np.maximum(arrival, start)
        count = rng.poisson(rate * np.maximum(stop - begin, 0) / DAY_S)
        person = np.repeat(np.arange(n), count)
        k = len(person)
        at = np.repeat(begin, count) + (rng.random(k) * np.repeat(stop - begin, count)).astype(np.int64)
        order = np.argsort(at, kind="stable")
        self.o_person, self.o_at = person[order], at[order]
        self.o_day = self.o_at // DAY_S  # days since 1970 (UTC is the reporting timezone here)
        self.order_ids = _ids("ord-", k)
        gross = np.round(rng.lognormal(4.0, 0.6, k), 2)
        self.o_discount = np.where(rng.random(k) < 0.3, np.round(gross * rng.uniform(0.05, 0.3, k), 2), 0.0)
        self.o_gross, self.o_net = gross, np.round(gross - self.o_discount, 2)
        self.o_cogs = np.where(rng.random(k) < 0.85, np.round(gross * rng.uniform(0.35, 0.65, k), 2), np.nan)
        self.o_categories = pa.array(np.asarray(CATEGORIES, dtype=object)[rng.integers(0, len(CATEGORIES), k)])
        r = np.flatnonzero((rng.random(k) < REFUND_SHARE) & (self.o_net > 0))
        full = rng.random(len(r)) < FULL_REFUND_SHARE
        self.r_order = r
        self.r_amount = np.where(full, self.o_net[r], np.round(self.o_net[r] * rng.uniform(0.1, 0.7, len(r)), 2))
        delay = np.where(rng.random(len(r)) < 0.3, rng.integers(600, 6 * 3600, len(r)),
                         rng.integers(1, 15, len(r)) * DAY_S + rng.integers(-3600, 3600, len(r)))
        self.r_at = self.o_at[r] + delay
        self.refund_ids = _ids("rf-", len(r))
        created = arrival + (rng.exponential(10, n) * DAY_S).astype(np.int64)
        registered = np.flatnonzero((rng.random(n) < REGISTERED_SHARE) & (created < end))
        self.c_person, self.c_created = registered, created[registered]
        self.customer_ids = _ids("C", len(registered))
        self.c_channel = np.asarray(("seo", "ppc", "social", "referral", "email", "direct", None),
                                    dtype=object)[rng.integers(0, 7, len(registered))]

    def end_of(self, day: dt.date) -> int:
        return int(_stamp(day + dt.timedelta(days=1)).astype(np.int64))

    def day_number(self, day: dt.date) -> int:
        return int(np.datetime64(day, "D").astype(np.int64))

    def pids(self, index: np.ndarray) -> pa.Array:
        return self.person_ids.take(pa.array(index, pa.int64()))

    def weekdays(self, first: dt.date, last: dt.date) -> list[dt.date]:
        return [d for d in pd.date_range(first, last).date if d.weekday() < 5]

    def campaign_day(self, day: dt.date) -> tuple[np.ndarray, np.ndarray]:
        """The persons sent and held out of the email campaign of a weekday."""
        rng = _day_rng(self.seed, "campaign", day)
        chosen = rng.permutation(self.persons)[:int(self.persons * (SEND_SHARE + HOLDOUT_SHARE))]
        cut = int(self.persons * SEND_SHARE)
        return np.sort(chosen[:cut]), np.sort(chosen[cut:])


def campaign_id(day: dt.date) -> str:
    return f"cmp-{day:%Y%m%d}-email"


# ---------------------------------------------------------------------------------------------------------------
# builders: one per upstream asset key; a state as of `last`, a daily asset over first..last (one frame with a
# `date` column per row's partition when read as a window)

def _table(schema: pa.Schema, columns: dict[str, object], n: int) -> pa.Table:
    """`columns` in the schema's order and types; a column not given is all null."""
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        arrays.append(pa.nulls(n, f.type) if value is None else pa.array(value, f.type)
                      if not isinstance(value, pa.Array) else value.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _schema(path: str) -> pa.Schema:
    """"module:NAME" or "module:NAME[key]": imported when a KPI needs it (a module merged later is no error
    until then)."""
    module, _, name = path.partition(":")
    name, _, key = name.rstrip("]").partition("[")
    found = getattr(importlib.import_module(module), name)
    return found[key] if key else found


def book(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """The order book of `last`: the orders of its 548 days with their refunds up to the end of `last`."""
    lo, hi = w.day_number(last) - (ORDER_BOOK_DAYS - 1), w.day_number(last)
    rows = np.flatnonzero((w.o_day >= lo) & (w.o_day <= hi))
    done = w.r_at < w.end_of(last)
    refunded = np.zeros(len(w.o_at))
    counts = np.zeros(len(w.o_at), dtype=np.int64)
    np.add.at(refunded, w.r_order[done], w.r_amount[done])
    np.add.at(counts, w.r_order[done], 1)
    net = w.o_net[rows]
    taken = pa.array(rows, pa.int64())
    return _table(_schema("crm_pipeline.kpis.states:ORDER_BOOK_SCHEMA"), {
        "order_id": w.order_ids.take(taken), "person_id": w.pids(w.o_person[rows]),
        "ordered_at": _utc(w.o_at[rows]), "order_day": _days(w.o_at[rows]),
        "currency": pa.array(np.full(len(rows), "USD", dtype=object)), "net_revenue": net,
        "net_revenue_original": net, "gross_revenue": w.o_gross[rows], "discount_amount": w.o_discount[rows],
        "cost_of_goods": w.o_cogs[rows], "refunded_original": refunded[rows], "refunded": refunded[rows],
        "count_refunds": counts[rows], "fully_refunded": refunded[rows] >= net - 0.005,
        "categories": w.o_categories.take(taken)}, len(rows)), None


def refund_ledger(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """The refunds dated in the book's 548 days up to `last`, of orders the book of `last` holds."""
    lo = w.day_number(last) - (ORDER_BOOK_DAYS - 1)
    r = np.flatnonzero((w.r_at < w.end_of(last)) & (w.r_at // DAY_S >= lo) & (w.o_day[w.r_order] >= lo))
    order = w.r_order[r]
    return _table(_schema("crm_pipeline.kpis.states:REFUND_LEDGER_SCHEMA"), {
        "refund_id": w.refund_ids.take(pa.array(r, pa.int64())),
        "order_id": w.order_ids.take(pa.array(order, pa.int64())), "person_id": w.pids(w.o_person[order]),
        "refunded_at": _utc(w.r_at[r]), "refund_day": _days(w.r_at[r]), "order_day": _days(w.o_at[order]),
        "amount": w.r_amount[r]}, len(r)), None


def first_orders(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """Each buyer's first order up to the end of `last` (the whole history, also before the book)."""
    upto = np.flatnonzero(w.o_at < w.end_of(last))
    persons, at = np.unique(w.o_person[upto], return_index=True)  # orders are sorted by time
    rows = upto[at]
    return _table(_schema("crm_pipeline.kpis.aggregates:FIRST_ORDERS_SCHEMA"), {
        "person_id": w.pids(persons), "first_order_id": w.order_ids.take(pa.array(rows, pa.int64())),
        "first_ordered_at": _utc(w.o_at[rows])}, len(rows)), None


def crm_customers(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    keep = np.flatnonzero(w.c_created < w.end_of(last))
    return _table(_schema("crm_pipeline.ingestion.crm:CRM_SCHEMAS[customers]"), {
        "customer_id": w.customer_ids.take(pa.array(keep, pa.int64())), "created_at": _utc(w.c_created[keep]),
        "updated_at": _utc(w.c_created[keep]), "country": pa.array(np.full(len(keep), "US", dtype=object)),
        "acquisition_channel": pa.array(w.c_channel[keep]), "marketing_consent": np.ones(len(keep), dtype=bool)},
        len(keep)), None


def identity_map(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """Five identifiers a person: the customer id of the registered, an email hash, two anonymous ids, a device."""
    rng = np.random.default_rng(w.seed + 1)
    n = w.persons
    kinds = [("customer_id", w.customer_ids, w.c_person)]
    for kind, count in (("email_hash", n), ("anonymous_id", 2 * n), ("device_id", n)):
        kinds.append((kind, _ids(f"{kind[:3]}-", count), np.arange(count) % n))
    types = pa.concat_arrays([pa.array(np.full(len(p), k, dtype=object)) for k, _, p in kinds])
    values = pa.concat_arrays([v for _, v, _ in kinds])
    persons = np.concatenate([p for _, _, p in kinds])
    k = len(persons)
    seen = w.day_number(w.first_day) + rng.integers(0, w.history_days, k)
    return _table(_schema("crm_pipeline.identity.graph:IDENTITY_MAP_SCHEMA"), {
        "identifier_type": types, "identifier": values, "person_id": w.pids(persons),
        "first_seen_date": pa.array(seen.astype("datetime64[D]")),
        "last_seen_date": pa.array(np.minimum(seen + rng.integers(0, 200, k), w.day_number(last))
                                   .astype("datetime64[D]")),
        "is_refused": rng.random(k) < 0.001}, k), None


def _daily(build: Callable[[World, dt.date], tuple[dict[str, object], int]], schema: str):
    """A builder of a daily asset: the partitions first..last, concatenated, with each row's partition."""
    def builder(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, pa.Array]:
        tables, dates = [], []
        for day in pd.date_range(max(first, w.first_day), last).date:  # no partition before the first day
            columns, n = build(w, day)
            tables.append(_table(_schema(schema), columns, n))
            dates.append(pa.array(np.full(n, day.isoformat(), dtype=object), pa.string()))
        if not tables:
            return _schema(schema).empty_table(), pa.array([], pa.string())
        return pa.concat_tables(tables), pa.concat_arrays(dates)
    return builder


def _engagement_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    rng = _day_rng(w.seed, "engagement", day)
    k = int(w.persons * ENGAGEMENT_ROWS_PER_PERSON_DAY)
    p = w.activity / w.activity.sum()
    frame = pd.DataFrame({"person": rng.choice(w.persons, k, p=p),
                          "channel": rng.integers(0, len(TOUCH_CHANNELS), k)}).drop_duplicates()
    frame = frame.sort_values(["person", "channel"])
    return {"person_id": w.pids(frame["person"].to_numpy()),
            "channel": pa.array(np.asarray(TOUCH_CHANNELS, dtype=object)[frame["channel"].to_numpy()]),
            "count_engagements": rng.geometric(0.4, len(frame))}, len(frame)


def _sends_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    if day.weekday() >= 5:
        return {}, 0
    sent, _ = w.campaign_day(day)
    at = int(_stamp(day).astype(np.int64)) + 9 * 3600 + _day_rng(w.seed, "sends", day).integers(0, 3600, len(sent))
    return {"campaign_id": pa.array(np.full(len(sent), campaign_id(day), dtype=object)),
            "person_id": w.pids(sent), "first_sent_at": _utc(at),
            "count_sends": np.ones(len(sent), dtype=np.int64)}, len(sent)


def _contacts_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    if day.weekday() >= 5:
        return {}, 0
    sent, held = w.campaign_day(day)
    persons = np.concatenate([sent, held])
    at = int(_stamp(day).astype(np.int64)) + 9 * 3600 + _day_rng(w.seed, "sends", day).integers(0, 3600, len(persons))
    return {"campaign_id": pa.array(np.full(len(persons), campaign_id(day), dtype=object)),
            "person_id": w.pids(persons), "is_holdout": np.arange(len(persons)) >= len(sent),
            "first_contact_at": _utc(at)}, len(persons)


def _orders_of(w: World, day: dt.date) -> np.ndarray:
    number = w.day_number(day)
    return np.arange(np.searchsorted(w.o_day, number), np.searchsorted(w.o_day, number + 1))


def _touch_counts(w: World, rows: np.ndarray) -> np.ndarray:
    """Touches of each order's journey (15% none), the same whichever asset asks."""
    rng = np.random.default_rng([w.seed, 99, int(rows[0]) if len(rows) else 0])
    return np.where(rng.random(len(rows)) < 0.15, 0, rng.geometric(0.3, len(rows)))


def _journeys_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    rows = _orders_of(w, day)
    touches = _touch_counts(w, rows)
    rng = _day_rng(w.seed, "journeys", day)
    channels = np.minimum(touches, rng.integers(1, 4, len(rows)))
    return {"order_id": w.order_ids.take(pa.array(rows, pa.int64())), "person_id": w.pids(w.o_person[rows]),
            "ordered_at": _utc(w.o_at[rows]), "net_revenue": w.o_net[rows], "count_touches": touches,
            "count_channels": channels,
            "channel_path": pa.array(np.where(touches > 0, "ppc > email > direct", None).astype(object)),
            "days_from_first_touch": np.where(touches > 0, rng.random(len(rows)) * 30, np.nan)}, len(rows)


def _touches_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    rows = _orders_of(w, day)
    touches = _touch_counts(w, rows)
    order = np.repeat(rows, touches)
    count = np.repeat(touches, touches)
    rank = np.arange(len(order)) - np.repeat(np.cumsum(touches) - touches, touches) + 1
    rng = _day_rng(w.seed, "touches", day)
    touch_at = w.o_at[order] - (rng.random(len(order)) * 29 * DAY_S).astype(np.int64) * (count - rank + 1) // count
    channel = np.asarray(TOUCH_CHANNELS, dtype=object)[rng.integers(0, len(TOUCH_CHANNELS), len(order))]
    # an email touch carries the campaign of the latest weekday up to its day
    touch_day = touch_at.astype("datetime64[s]").astype("datetime64[D]")
    weekday = (touch_day.astype(np.int64) + 3) % 7  # 0 = Monday
    campaign_day = touch_day - np.maximum(weekday - 4, 0).astype("timedelta64[D]")
    campaign = np.char.add(np.char.add("cmp-", np.char.replace(campaign_day.astype(str), "-", "")), "-email") \
        if len(order) else np.array([], dtype=str)
    return {"order_id": w.order_ids.take(pa.array(order, pa.int64())), "touch_rank": rank, "touch_count": count,
            "touch_at": _utc(touch_at), "order_at": _utc(w.o_at[order]), "channel": pa.array(channel),
            "campaign_id": pa.array(np.where(channel == "email", campaign.astype(object), None)),
            "event_id": _ids(f"ev-{day:%Y%m%d}-", len(order))}, len(order)


def _credits(w: World, rows: np.ndarray) -> tuple[dict[str, object], int]:
    """Each model's credits of the orders `rows`: one or two channels (credit 1/2 each), fixed per order, so that
    order_attribution and the first-order credits state agree."""
    per_model = 1 + rows % 2
    each = per_model * len(MODELS)
    order = np.repeat(rows, each)
    position = np.arange(len(order)) - np.repeat(np.cumsum(each) - each, each)
    split = np.repeat(per_model, each)
    credit = 1.0 / split
    channel = np.asarray(TOUCH_CHANNELS, dtype=object)[(order * 5 + position % split) % len(TOUCH_CHANNELS)]
    return {"order_id": w.order_ids.take(pa.array(order, pa.int64())),
            "model": pa.array(np.asarray(MODELS, dtype=object)[position // split]), "channel": pa.array(channel),
            "credit": credit, "attributed_revenue": np.round(w.o_net[order] * credit, 2)}, len(order)


def _attribution_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    rows = _orders_of(w, day)
    return _credits(w, rows[_touch_counts(w, rows) > 0])


def first_order_credits(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """The credits of the first orders (up to the end of `last`) placed in last-364..last, with their day."""
    upto = np.flatnonzero(w.o_at < w.end_of(last))
    firsts = np.zeros(len(w.o_at), dtype=bool)
    firsts[upto[np.unique(w.o_person[upto], return_index=True)[1]]] = True
    rows = []
    for day in pd.date_range(max(last - dt.timedelta(days=364), w.first_day), last).date:
        today = _orders_of(w, day)
        rows.append(today[(_touch_counts(w, today) > 0) & firsts[today]])
    rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    columns, n = _credits(w, rows)
    order = np.repeat(rows, (1 + rows % 2) * len(MODELS))
    return _table(_schema("crm_pipeline.kpis.scorecard_channels:FIRST_ORDER_CREDITS_SCHEMA"),
                  {**columns, "order_date": _days(w.o_at[order])}, n), None


def _costs_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    """The generator's cost lines: media per paid channel and campaign, email and sms retention, overheads."""
    rng = _day_rng(w.seed, "costs", day)
    size = w.persons / 10_000
    rows = [("media", "acquisition" if i % 3 else "retention", ch, f"cmp-{ch}-{i}", rng.uniform(20, 200) * size)
            for ch in PAID_CHANNELS for i in range(3)]
    rows += [("media", "retention", "email", None, 0.0008 * SEND_SHARE * w.persons + 5 * size),
             ("media", "retention", "sms", None, 0.5 * size)]
    if day.weekday() == 0:
        rows.append(("media", "brand", "podcast", "pod-weekly", 400 * size))
    if day.day == 1:
        rows += [("salaries", "acquisition", None, None, 42_000 * size), ("salaries", "retention", None, None,
                 26_000 * size), ("tools", "retention", None, None, 3_500 * size),
                 ("tools", "acquisition", None, None, 1_200 * size), ("agency", "brand", None, None, 8_000 * size)]
    amount = np.round([r[4] for r in rows], 2)
    return {"cost_date": pa.array(np.full(len(rows), np.datetime64(day, "D"))),
            **{c: pa.array([r[i] for r in rows], pa.string())
               for i, c in enumerate(("cost_type", "objective", "channel", "campaign_id"))},
            "currency": pa.array(["USD"] * len(rows)), "fx_rate": np.ones(len(rows)), "amount": amount,
            "amount_original": amount}, len(rows)


def _ad_clicks_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    rng = _day_rng(w.seed, "ad_clicks", day)
    persons = np.unique(rng.integers(0, w.persons, int(w.persons * AD_CLICKERS_SHARE)))
    at = int(_stamp(day).astype(np.int64)) + rng.integers(0, DAY_S, len(persons))
    return {"person_id": w.pids(persons), "first_click_at": _utc(at),
            "count_clicks": rng.geometric(0.6, len(persons))}, len(persons)


def _touches_of_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    """The day's touch events (ad and message clicks, sessions, app opens): 0.53 a person a day, as the small
    world's 5.3k a day for 10k persons; 95% of them with a person."""
    rng = _day_rng(w.seed, "touch_events", day)
    k = int(w.persons * TOUCHES_PER_PERSON_DAY)
    p = w.activity / w.activity.sum()
    persons = rng.choice(w.persons, k, p=p)
    at = np.sort(int(_stamp(day).astype(np.int64)) + rng.integers(0, DAY_S, k))
    types = np.asarray(("ad_click", "email_click", "sms_click", "push_open", "social_interaction", "session_start",
                        "browser_app_click", "app_open"), dtype=object)[rng.integers(0, 8, k)]
    channel = np.asarray(TOUCH_CHANNELS, dtype=object)[rng.integers(0, len(TOUCH_CHANNELS), k)]
    person_ids = w.pids(persons)
    return {"event_id": _ids(f"ev-{day:%Y%m%d}-t", k), "touch_at": _utc(at), "event_type": pa.array(types),
            "channel": pa.array(channel), "person_id": pc.if_else(pa.array(rng.random(k) < 0.95), person_ids,
                                                                  pa.nulls(k, pa.string())),
            "is_view_through": np.zeros(k, dtype=bool)}, k


def _signups_day(w: World, day: dt.date) -> tuple[dict[str, object], int]:
    """The day's asset sign-ups (email_subscribe, app installs, follows, ...): 2% of persons, as the small world."""
    rng = _day_rng(w.seed, "signups", day)
    k = int(w.persons * SIGNUPS_PER_PERSON_DAY)
    types = np.asarray(("email_subscribe", "app_install", "browser_app_install", "social_follow", "mail_subscribe",
                        "sms_optin"), dtype=object)[rng.integers(0, 6, k)]
    return {"event_id": _ids(f"ev-{day:%Y%m%d}-s", k),
            "person_id": pc.if_else(pa.array(rng.random(k) < 0.9), w.pids(rng.integers(0, w.persons, k)),
                                    pa.nulls(k, pa.string())),
            "event_type": pa.array(types),
            "occurred_at": _utc(int(_stamp(day).astype(np.int64)) + np.sort(rng.integers(0, DAY_S, k)))}, k


def clv_predictions(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """Each buyer's x (repeat order days), t and T (days) and predictions, from the orders up to `last`."""
    upto = np.flatnonzero(w.o_at < w.end_of(last))
    frame = pd.DataFrame({"person": w.o_person[upto], "day": w.o_day[upto], "net": w.o_net[upto]})
    g = frame.groupby("person")
    s = pd.DataFrame({"first": g["day"].min(), "last": g["day"].max(), "days": g["day"].nunique(),
                      "net": g["net"].mean()})
    today = w.day_number(last)
    rng = np.random.default_rng(w.seed + 2)
    alive = rng.beta(2, 2, len(s))
    purchases = alive * rng.gamma(1.0, 1.5, len(s))
    return _table(_schema("crm_pipeline.kpis.clv:CLV_PREDICTIONS_SCHEMA"), {
        "person_id": w.pids(s.index.to_numpy()), "x": (s["days"] - 1).to_numpy(),
        "t": (s["last"] - s["first"]).to_numpy(), "T": (today - s["first"]).to_numpy(),
        "monetary": s["net"].to_numpy(), "expected_purchases_12m": purchases, "p_alive": alive,
        "expected_spend": s["net"].to_numpy(), "expected_value_12m": purchases * s["net"].to_numpy()}, len(s)), None


def clv_model(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    params = [("bg_nbd", "r", 0.243), ("bg_nbd", "alpha", 30.9), ("bg_nbd", "a", 0.793), ("bg_nbd", "b", 2.426),
              ("gamma_gamma", "p", 6.25), ("gamma_gamma", "q", 3.74), ("gamma_gamma", "v", 15.44)]
    return _table(_schema("crm_pipeline.kpis.clv:CLV_MODEL_SCHEMA"), {
        "model": pa.array([p[0] for p in params]), "parameter": pa.array([p[1] for p in params]),
        "value": [p[2] for p in params], "count_persons": np.full(len(params), w.persons // 2),
        "hessian_condition": np.full(len(params), 40.0)}, len(params)), None


def subscription_terms(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """Monthly terms of 8% of the customers from their registration, until they cancel (8% a term, the last
    term `cancelled`) or up to the term running at `last`."""
    rng = np.random.default_rng(w.seed + 3)
    subs = np.flatnonzero((rng.random(len(w.c_person)) < SUBSCRIBER_SHARE) & (w.c_created < w.end_of(last)))
    upto = (w.end_of(last) - w.c_created[subs]) // (30 * DAY_S) + 1
    months = np.minimum(upto, rng.geometric(0.08, len(subs)))  # 8% cancel at the end of a term
    sub = np.repeat(subs, months)
    number = np.arange(len(sub)) - np.repeat(np.cumsum(months) - months, months)
    start = w.c_created[sub] + number * 30 * DAY_S
    ended = np.repeat(months < upto, months) & (number == np.repeat(months - 1, months))
    plan = np.asarray(("basic", "plus", "pro"), dtype=object)[sub % 3]
    return _table(_schema("crm_pipeline.ingestion.crm:CRM_SCHEMAS[subscription_terms]"), {
        "term_id": _ids("T", len(sub)), "subscription_id": pc.binary_join_element_wise(
            "S", pa.array(sub, pa.int64()).cast(pa.string()), ""),
        "customer_id": w.customer_ids.take(pa.array(sub, pa.int64())), "plan": pa.array(plan),
        "amount": np.choose(sub % 3, [9.0, 19.0, 39.0]), "term_start": _utc(start),
        "term_end": _utc(start + 30 * DAY_S), "status": pa.array(np.where(ended, "cancelled", "active")
                                                                   .astype(object)),
        "updated_at": _utc(start)}, len(sub)), None


def customer_status(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """The retention state of `last`, computed by the pipeline's own function from the book of `last`."""
    retention = importlib.import_module("crm_pipeline.kpis.retention")
    frame = retention.customer_status(book(w, first, last)[0].to_pandas(), last)
    return pa.Table.from_pandas(frame, schema=retention.CUSTOMER_STATUS_SCHEMA, preserve_index=False), None


def engagement_recency(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    """Each person ever engaged (85%) with the latest day they did, up to `last`, from the pipeline's first day."""
    rng = np.random.default_rng(w.seed + 4)
    seen = (last - w.first_day).days + 1  # the days of engagement the pipeline has seen by `last`
    persons = np.flatnonzero(rng.random(w.persons) < (0.85 if seen > 0 else 0.0))
    back = np.minimum(rng.exponential(1 / np.maximum(w.activity[persons], 0.01) * 3), seen - 1)
    days = (w.day_number(last) - back.astype(np.int64)).astype("datetime64[D]")
    return _table(_schema("crm_pipeline.kpis.retention:ENGAGEMENT_RECENCY_SCHEMA"), {
        "person_id": w.pids(persons), "last_engaged_date": pa.array(days)}, len(persons)), None


def campaign_starts(w: World, first: dt.date, last: dt.date) -> tuple[pa.Table, None]:
    days = w.weekdays(w.first_day, last)
    at = np.asarray([_stamp(d) for d in days]).astype(np.int64) + 9 * 3600
    return _table(_schema("crm_pipeline.kpis.campaigns:CAMPAIGN_STARTS_SCHEMA"), {
        "campaign_id": pa.array([campaign_id(d) for d in days]), "first_contact_at": _utc(at)}, len(days)), None


BUILDERS: dict[tuple[str, ...], Callable[[World, dt.date, dt.date], tuple[pa.Table, pa.Array | None]]] = {
    ("aggregates", "order_book"): book,
    ("aggregates", "refund_ledger"): refund_ledger,
    ("aggregates", "first_orders"): first_orders,
    ("ingest", "crm_customers"): crm_customers,
    ("identity", "identity_map"): identity_map,
    ("aggregates", "person_engagement"): _daily(_engagement_day, "crm_pipeline.kpis.aggregates:"
                                                                 "PERSON_ENGAGEMENT_SCHEMA"),
    ("aggregates", "email_sends"): _daily(_sends_day, "crm_pipeline.kpis.value:EMAIL_SENDS_SCHEMA"),
    ("attribution", "journeys"): _daily(_journeys_day, "crm_pipeline.attribution.journeys:JOURNEYS_SCHEMA"),
    ("attribution", "journey_touches"): _daily(_touches_day,
                                               "crm_pipeline.attribution.journeys:JOURNEY_TOUCHES_SCHEMA"),
    ("attribution", "order_attribution"): _daily(_attribution_day,
                                                 "crm_pipeline.attribution.credits:ORDER_ATTRIBUTION_SCHEMA"),
    ("ingest", "costs"): _daily(_costs_day, "crm_pipeline.ingestion.contract:CLEAN_SCHEMAS[costs]"),
    ("clv_predictions",): clv_predictions,
    ("clv_model",): clv_model,
    ("ingest", "crm_subscription_terms"): subscription_terms,
    ("aggregates", "customer_status"): customer_status,
    ("aggregates", "engagement_recency"): engagement_recency,
    ("aggregates", "campaign_contacts"): _daily(_contacts_day, "crm_pipeline.kpis.campaigns:"
                                                               "CAMPAIGN_CONTACTS_SCHEMA"),
    ("aggregates", "campaign_starts"): campaign_starts,
    ("aggregates", "ad_clicks"): _daily(_ad_clicks_day, "crm_pipeline.kpis.campaigns:AD_CLICKS_SCHEMA"),
    ("attribution", "touches"): _daily(_touches_of_day, "crm_pipeline.attribution.journeys:TOUCHES_SCHEMA"),
    ("aggregates", "first_order_credits"): first_order_credits,
    ("aggregates", "asset_signups"): _daily(_signups_day,
                                            "crm_pipeline.kpis.scorecard_channels:ASSET_SIGNUPS_SCHEMA"),
}


# ---------------------------------------------------------------------------------------------------------------
# running the KPIs

def benchmarked() -> list[KpiDefinition]:
    """The KPIs of issue #16 found in ALL_KPIS: the Retention and Monetise families and ad_conversion_rate."""
    return [k for k in ALL_KPIS if k.family in FAMILIES or k.name in ALSO]


class Inputs:
    """Each KPI's inputs as its asset receives them, built for that KPI and dropped after it (so the process's
    peak is the world plus one KPI's inputs and work, as close to one asset's run as one process gets)."""

    def __init__(self, world: World, settings: Settings):
        self.world, self.settings = world, settings

    def table(self, key: tuple[str, ...], first: dt.date, last: dt.date, window: bool) -> pa.Table:
        if key not in BUILDERS and not self._kpi(key):
            raise KeyError(f"no builder for the input {'/'.join(key)}: add one to bench/value_kpis.py")
        build = BUILDERS.get(key) or (lambda w, first, last: (self.kpi_partition(self._kpi(key), last), None))
        table, dates = build(self.world, first, last)
        if dates is None and first != last:  # a state read over several days: one partition a day
            days = pd.date_range(first, last).date
            parts = [build(self.world, day, day)[0] for day in days]
            dates = pa.concat_arrays([pa.array([d.isoformat()] * len(t), pa.string())
                                      for d, t in zip(days, parts, strict=True)])
            table = pa.concat_tables(parts)
        elif dates is None:
            dates = pa.array(np.full(len(table), last.isoformat(), dtype=object), pa.string())
        return table.append_column("date", dates) if window else table

    def frame(self, i: KpiInput, day: dt.date = D) -> pd.DataFrame:
        window = i.window_days > 1 or i.offset_days > 0  # as the IO manager hands a window to the asset
        last = day - dt.timedelta(days=i.offset_days)
        table = self.table(tuple(i.key), last - dt.timedelta(days=i.window_days - 1), last, window)
        if i.columns:
            table = table.select([*i.columns, *(["date"] if window else [])])
        return table.to_pandas()

    def of(self, kpi: KpiDefinition) -> dict[str, pd.DataFrame]:
        return {i.name: self.frame(i) for i in kpi.inputs}

    @staticmethod
    def _kpi(key: tuple[str, ...]) -> KpiDefinition | None:
        return next((k for k in ALL_KPIS if ("kpi", k.name) == tuple(key)), None)

    def kpi_partition(self, kpi: KpiDefinition, day: dt.date) -> pa.Table:
        """A KPI's own partition of `day` (a KPI that carries its closed cells over from D-1 reads it): computed
        from its inputs of `day`, its own previous partition missing (a first run, which builds from the states)."""
        frames = {i.name: (self.empty(kpi.schema, window=i.window_days > 1 or i.offset_days > 0)
                           if tuple(i.key) == ("kpi", kpi.name) else self.frame(i, day)) for i in kpi.inputs}
        frame = finalise(kpi, kpi.compute(**frames, **arguments(kpi, self.settings, day)))
        return arrow_table(frame, kpi.schema)

    @staticmethod
    def empty(schema: pa.Schema, window: bool) -> pd.DataFrame:
        table = schema.empty_table()
        return (table.append_column("date", pa.array([], pa.string())) if window else table).to_pandas()


def resident_mb() -> float:
    """The process's resident memory now (Linux), beside the peak so far."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def arguments(kpi: KpiDefinition, settings: Settings, day: dt.date = D) -> dict[str, object]:
    """The extra arguments the KPI asset passes: the day, the settings, persons without identity changes."""
    return {**({"day": day} if kpi.needs_day else {}), **({"settings": settings} if kpi.needs_settings else {}),
            **({"remap": PersonRemap.none()} if kpi.needs_remap else {})}


def settings_for(history_days: int) -> Settings:
    """The reporting timezone UTC; the pipeline started on the first day of the history."""
    return Settings(landing_root="-", warehouse_root="-", database_url="sqlite://", timezone="UTC",
                    start_date=D - dt.timedelta(days=history_days - 1))


def run(scale: float, history_days: int, report: Callable[[str], None] = lambda line: None
        ) -> dict[str, tuple[float, pd.DataFrame]]:
    """{KPI (or customer_rfm): (seconds of compute + finalise, its rows)} on a world of that size."""
    settings = settings_for(history_days)
    t0 = time.perf_counter()
    world = World(scale, history_days)
    inputs = Inputs(world, settings)
    report(f"world built in {time.perf_counter() - t0:.1f} s: {world.persons:,} persons, {len(world.o_at):,} "
           f"orders over {history_days} days, {len(world.r_at):,} refunds, {len(world.c_person):,} customers; "
           f"{resident_mb():.0f} MB resident")
    out: dict[str, tuple[float, pd.DataFrame]] = {}
    report(f"  {'':<24} {'compute':>8} {'':>10} {'inputs in':>9} {'new peak':>8}   (compute + finalise; resident "
           "memory with the KPI's inputs loaded; the process's peak when the compute raised it)")
    loyalty = importlib.import_module("crm_pipeline.kpis.loyalty")
    if hasattr(loyalty, "customer_rfm_asset"):  # the state the loyalty KPIs come with: timed as its asset runs it
        book_frame = inputs.frame(KpiInput("order_book", ("aggregates", "order_book"), columns=(
            "person_id", "ordered_at", "order_day", "net_revenue", "fully_refunded")))
        before, peak_before = resident_mb(), peak_mb()
        t0 = time.perf_counter()
        frame = loyalty.customer_rfm(loyalty.customer_summaries(book_frame, PersonRemap.none(), D))
        out["customer_rfm"] = (time.perf_counter() - t0, frame)
        report(_line("customer_rfm (state)", *out["customer_rfm"], before, peak_before) + f"   inputs: order_book {len(book_frame):,}")
        del book_frame
    for kpi in benchmarked():
        frames = inputs.of(kpi)
        sizes = ", ".join(f"{name} {len(f):,}" for name, f in frames.items())
        before, peak_before = resident_mb(), peak_mb()
        t0 = time.perf_counter()
        frame = finalise(kpi, kpi.compute(**frames, **arguments(kpi, settings)))
        out[kpi.name] = (time.perf_counter() - t0, frame)
        report(_line(kpi.name, *out[kpi.name], before, peak_before) + f"   inputs: {sizes}")
        del frames
        gc.collect()
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _line(name: str, seconds: float, frame: pd.DataFrame, before: float, peak_before: float) -> str:
    """Time and rows; resident memory with the inputs loaded, and the process's peak if the compute raised it."""
    peak = peak_mb()
    raised = f"{peak:5.0f} MB" if peak > peak_before else "     -  "
    return f"  {name:<24} {seconds:6.2f} s {len(frame):5d} rows {before:6.0f} MB {raised}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = the medium world (200k persons)")
    parser.add_argument("--history-days", type=int, default=HISTORY_DAYS,
                        help=f"days of orders before D (the book holds the last {ORDER_BOOK_DAYS})")
    args = parser.parse_args()
    results = run(args.scale, args.history_days, print)
    total = sum(seconds for seconds, _ in results.values())
    peak = peak_mb()
    print(f"all {len(results)} (KPIs and customer_rfm): {total:.1f} s; peak memory of the process {peak:.0f} MB")


if __name__ == "__main__":
    main()
