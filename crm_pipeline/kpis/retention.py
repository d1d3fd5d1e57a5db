"""Retention and loyalty KPIs (docs/kpi_catalog.md "Retention and loyalty"), part 1: customer retention, churn, win-back
conversion and renewals, and the state they read at D-30.

Customers at D-30 come from `aggregates/customer_status` of D-30: one row per person with an order in the year up
to that day, the latest day of an order non-refunded then and the year's net revenue. (A KPI cannot read the order
book twice, at D-30 and at D: Dagster keys an asset's inputs by upstream asset. The status is also far smaller:
one row per person, three columns.) Customers at D come from the order book of D. Both carry their persons through the identity
changes since D-30 (`remap`, docs/outputs.md 2.2), so a person merged in between is one customer on both days.
Subscription terms are CRM rows as of D (docs/outputs.md 2.5): a term counts through its term_start and term_end, and is
renewed at D when a later term of its subscription has started by the end of D; the status column is never read.
Dormant persons at D-30 (docs/outputs.md 2.2) come from `aggregates/engagement_recency` of D-30, each person's latest day
with an engagement.
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS, resolve_person_ids
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.kpis.aggregates import PERSON_ENGAGEMENT_KEY
from crm_pipeline.kpis.count import registrant_persons
from crm_pipeline.kpis.crm_rows import breakdown, by_end_of, in_days, labels, open_values, window
from crm_pipeline.kpis.customers import (
    ACTIVE_DAYS,
    WINBACK_MIN_DAYS,
    active_customers,
    non_refunded,
    order_book_input,
    order_days,
    persons,
    placed_in,
)
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_KEY
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS
from crm_pipeline.settings import Settings

LOOKBACK_DAYS = 30  # the start population is taken at D-30
FIRST_ORDERS = ("aggregates", "first_orders")
SUBSCRIPTION_TERMS = ("ingest", "crm_subscription_terms")
TERM_COLUMNS = ("term_id", "subscription_id", "plan", "amount", "term_start", "term_end")
BOOK_COLUMNS = ("person_id", "order_day", "fully_refunded")
CUSTOMER_STATUS = ("aggregates", "customer_status")
CUSTOMER_STATUS_KEY = dg.AssetKey(list(CUSTOMER_STATUS))
CUSTOMER_STATUS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),  # as of D
    # the latest day of an order non-refunded at D in D-364..D; null: every order of the year is fully refunded
    pa.field("last_order_date", pa.date32()),
    # net revenue of the orders placed in D-364..D, refunded or not (refunds not deducted), reporting currency
    pa.field("net_revenue_365d", pa.float64(), nullable=False),
])
# a state at D-30 with its 365-day activity window reads back to D-394 (docs/outputs.md 2.8)
AT_D_MINUS_30_DAYS = LOOKBACK_DAYS + ACTIVE_DAYS
# terms ending in D-36..D-7 with the default 7-day grace
TERM_WINDOW_DAYS = 30
TERMS_READ_DAYS = TERM_WINDOW_DAYS + 7
ENGAGEMENT_RECENCY = ("aggregates", "engagement_recency")
ENGAGEMENT_RECENCY_KEY = dg.AssetKey(list(ENGAGEMENT_RECENCY))
ENGAGEMENT_RECENCY_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),  # as of D
    pa.field("last_engaged_date", pa.date32(), nullable=False),  # the latest day with an engagement, up to D
])
DORMANT_DAYS = 90  # dormant at X: engaged on or before X, not in X-89..X


def _start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=LOOKBACK_DAYS)


# ---------------------------------------------------------------------------------------------------------------
# the customer status of a day

def customer_status(order_book: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """One row per person with an order placed in D-364..D (`order_book`: the book of D): the latest day of such
    an order non-refunded at D (null: none) and the net revenue of all of them (refunds not deducted)."""
    year = order_book.loc[placed_in(order_book, day - dt.timedelta(days=ACTIVE_DAYS - 1), day)]
    kept = non_refunded(year)
    days = pd.Series(order_days(year), index=year.index).where(kept)
    frame = pd.DataFrame({"person_id": year["person_id"].astype("string"), "last_order_date": days,
                          "net_revenue_365d": year["net_revenue"].astype(float).fillna(0.0)})
    status = frame.groupby("person_id", sort=True).agg(last_order_date=("last_order_date", "max"),
                                                     net_revenue_365d=("net_revenue_365d", "sum")).reset_index()
    status["last_order_date"] = pd.to_datetime(status["last_order_date"]).dt.date.astype(object)
    status["last_order_date"] = status["last_order_date"].where(status["last_order_date"].notna(), None)
    return status[list(CUSTOMER_STATUS_SCHEMA.names)]


def state_frame(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """A state read as of D-30 with its columns: before any partition of the state exists (a new deployment)
    the IO manager hands over a frame with no column but `date`."""
    if set(schema.names) <= set(frame.columns):
        return frame
    if len(frame):
        raise ValueError(f"a state frame with rows lacks columns {sorted(set(schema.names) - set(frame.columns))}")
    return schema.empty_table().to_pandas()


def status_as_of_now(status: pd.DataFrame, remap: PersonRemap) -> pd.DataFrame:
    """The status with its persons carried through later identity changes: parts merged since are one person
    (the latest of their order days, the sum of their revenue). Indexed by person_id."""
    status = state_frame(status, CUSTOMER_STATUS_SCHEMA)
    frame = pd.DataFrame({"person_id": remap(status["person_id"]).to_numpy(),
                          "last_order_date": pd.to_datetime(status["last_order_date"]).to_numpy(),
                          "net_revenue_365d": status["net_revenue_365d"].astype(float).to_numpy()})
    frame = frame.loc[frame["person_id"].notna().to_numpy()]
    return frame.groupby("person_id").agg(last_order_date=("last_order_date", "max"),
                                          net_revenue_365d=("net_revenue_365d", "sum"))


def active_at(status: pd.DataFrame) -> pd.Index:
    """Active customers at the status' day (docs/outputs.md 2.3): an order non-refunded then in its year."""
    return pd.Index(status.index[status["last_order_date"].notna().to_numpy()], name="person_id")


def winback_candidates_at(status: pd.DataFrame, day: dt.date) -> pd.Index:
    """Win-back candidates at `day` (the status' day): the latest non-refunded order is on day-364..day-90."""
    cutoff = np.datetime64(day - dt.timedelta(days=WINBACK_MIN_DAYS))
    return pd.Index(status.index[(status["last_order_date"] <= cutoff).fillna(False).to_numpy(dtype=bool)],
                    name="person_id")


def customer_status_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=CUSTOMER_STATUS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per person with an order placed in D-364..D: the latest day of such an order "
                    "non-refunded at the end of D (null: all fully refunded; not null = an active customer at D, "
                    "docs/outputs.md 2.3) and their net revenue (refunds not deducted). From the order book of D, persons as "
                    "of D. The retention KPIs read it as of D-30 (their start population and win-back candidates).",
        ins={"order_book": dg.AssetIn(key=ORDER_BOOK_KEY, metadata={"columns": [
            "person_id", "order_day", "net_revenue", "fully_refunded"]})},
        metadata={"dagster/column_schema": column_schema(CUSTOMER_STATUS_SCHEMA), "primary_key": ["person_id"]},
        check_specs=[checks.schema_spec(CUSTOMER_STATUS_KEY, partitions),
                     dg.AssetCheckSpec("person_id_is_unique", asset=CUSTOMER_STATUS_KEY, blocking=True,
                                       partitions_def=partitions,
                                       description=checks.primary_key_description(["person_id"]))],
    )
    def customer_status_of_day(context: dg.AssetExecutionContext, order_book: pd.DataFrame):
        status = customer_status(order_book, partition_day(context))
        yield from checks.written(CUSTOMER_STATUS_KEY, status, CUSTOMER_STATUS_SCHEMA, metadata={
            "persons": len(status), "active_customers": int(status["last_order_date"].notna().sum())})
        yield checks.primary_key_is_unique(CUSTOMER_STATUS_KEY, status, ["person_id"])

    return customer_status_of_day


def update_engagement_recency(previous: pd.DataFrame | None, person_engagement: pd.DataFrame,
                              merges: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Each person's latest day with an engagement as of D: yesterday's state with its persons carried through
    today's merges, and D for the persons of today's engagement aggregate (attached by the identity map of D)."""
    today = pd.DataFrame({"person_id": person_engagement["person_id"].astype("string").to_numpy(),
                          "last_engaged_date": np.datetime64(day, "D")})
    frames = [today]
    if previous is not None and len(previous):
        frames.insert(0, pd.DataFrame({
            "person_id": resolve_person_ids(previous["person_id"].astype("string"), merges).to_numpy(),
            "last_engaged_date": pd.to_datetime(previous["last_engaged_date"]).to_numpy(dtype="datetime64[D]")}))
    both = pd.concat(frames, ignore_index=True).dropna(subset=["person_id"])
    latest = both.groupby("person_id", sort=True)["last_engaged_date"].max().reset_index()
    latest["last_engaged_date"] = pd.to_datetime(latest["last_engaged_date"]).dt.date.astype(object)
    return latest[list(ENGAGEMENT_RECENCY_SCHEMA.names)]


def engagement_recency_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=ENGAGEMENT_RECENCY_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per person with an engagement (docs/outputs.md 2.2) on or before D: the latest day with "
                    "one. A state: D = D-1 carried through the merges of D + the persons of person_engagement of D. "
                    "reengagement_rate reads it as of D-30 (dormant persons).",
        ins={"person_engagement": dg.AssetIn(key=PERSON_ENGAGEMENT_KEY, metadata={"columns": ["person_id"]}),
             "identity_merges": dg.AssetIn(key=dg.AssetKey(["identity", "identity_merges"])),
             "previous": dg.AssetIn(key=ENGAGEMENT_RECENCY_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(ENGAGEMENT_RECENCY_SCHEMA), "primary_key": ["person_id"]},
        check_specs=[checks.schema_spec(ENGAGEMENT_RECENCY_KEY, partitions),
                     dg.AssetCheckSpec("person_id_is_unique", asset=ENGAGEMENT_RECENCY_KEY, blocking=True,
                                       partitions_def=partitions,
                                       description=checks.primary_key_description(["person_id"]))],
    )
    def engagement_recency(context: dg.AssetExecutionContext, person_engagement: pd.DataFrame,
                           identity_merges: pd.DataFrame, previous: pd.DataFrame | None):
        frame = update_engagement_recency(previous, person_engagement, identity_merges, partition_day(context))
        yield from checks.written(ENGAGEMENT_RECENCY_KEY, frame, ENGAGEMENT_RECENCY_SCHEMA,
                                  metadata={"persons": len(frame)})
        yield checks.primary_key_is_unique(ENGAGEMENT_RECENCY_KEY, frame, ["person_id"])

    return engagement_recency


def retention_state_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The states the retention KPIs read as of D-30."""
    return [customer_status_asset(partitions), engagement_recency_asset(partitions)]


# ---------------------------------------------------------------------------------------------------------------
# the KPIs

def new_customers(first_orders: pd.DataFrame, first: dt.date, last: dt.date, remap: PersonRemap,
                  settings: Settings) -> pd.Index:
    """Persons whose first order (refunded later or not) is on a day in first..last. Parts merged since D keep
    the earliest first order of the person."""
    # `.array` keeps the UTC timestamps typed (to_numpy would make 1 object per row)
    firsts = pd.Series(pd.to_datetime(first_orders["first_ordered_at"], utc=True).array,
                       index=remap(first_orders["person_id"]).to_numpy())
    firsts = firsts[firsts.index.notna()].groupby(level=0).min()
    return pd.Index(firsts.index[in_days(firsts, first, last, settings.timezone)], name="person_id")


def customer_retention_rate(customer_status_30: pd.DataFrame, order_book: pd.DataFrame,
                            first_orders: pd.DataFrame, day: dt.date, settings: Settings,
                            remap: PersonRemap) -> list[dict]:
    """S = active customers at D-30, E = active at D, N = new customers on D-29..D: (E - N) / S, E / S and
    (active at D-30 and at D) / S, in percent."""
    start = active_at(status_as_of_now(customer_status_30, remap))
    end = active_customers(order_book, day, remap)
    new = new_customers(first_orders, *window(day, LOOKBACK_DAYS), remap, settings)
    s = float(len(start))
    return [quotient(float(len(end) - len(new)), s, "percent", metric="standard"),
            quotient(float(len(end)), s, "percent", metric="end_over_start"),
            quotient(float(len(start.intersection(end))), s, "percent", metric="cohort_retained")]


def ended_terms(crm_subscription_terms: pd.DataFrame, day: dt.date, settings: Settings) -> tuple[pd.DataFrame,
                                                                                                np.ndarray]:
    """The subscription terms with term_end in D-(29+g)..D-g (g = the renewal grace, 7 d: D-36..D-7), and
    whether each is renewed at D: a term of the same subscription_id with a later term_start has started by the
    end of D (docs/outputs.md 2.5). Shared by renewal_rate and churn_rate `revenue`."""
    tz = settings.timezone
    terms = crm_subscription_terms.loc[by_end_of(crm_subscription_terms["term_start"], day, tz)]
    last = day - dt.timedelta(days=settings.renewal_grace_days)
    ended = terms.loc[in_days(terms["term_end"], *window(last, TERM_WINDOW_DAYS), tz)]
    starts = pd.to_datetime(terms["term_start"], utc=True)
    latest_start = starts.groupby(terms["subscription_id"].astype("string").to_numpy()).max()
    # the latest start of the term's subscription by the end of D: later than its own start = renewed
    successor_start = latest_start.reindex(ended["subscription_id"].astype("string").to_numpy()).set_axis(ended.index)
    renewed = (successor_start > pd.to_datetime(ended["term_start"], utc=True)).fillna(False).to_numpy(dtype=bool)
    return ended, renewed


def churn_rate(customer_status_30: pd.DataFrame, order_book: pd.DataFrame, crm_subscription_terms: pd.DataFrame,
               day: dt.date, settings: Settings, remap: PersonRemap) -> list[dict]:
    """customer: active at D-30 and not at D / active at D-30; revenue: amount of the ended terms not renewed
    / of all ended terms; revenue_lost: net revenue of the orders in X-364..X (X = D-30) of the persons active at
    X and not at D / of the persons active at X. In percent."""
    status = status_as_of_now(customer_status_30, remap)
    start = active_at(status)
    lost = start.difference(active_customers(order_book, day, remap))
    ended, renewed = ended_terms(crm_subscription_terms, day, settings)
    amounts = ended["amount"].astype(float).fillna(0.0).to_numpy()
    # every order placed in X's year (refunded or not, refunds not deducted) of the persons active at X
    revenue = status["net_revenue_365d"]
    return [quotient(float(len(lost)), float(len(start)), "percent", metric="customer"),
            quotient(float(amounts[~renewed].sum()), float(amounts.sum()), "percent", metric="revenue"),
            quotient(float(revenue.reindex(lost).sum()), float(revenue.reindex(start).sum()), "percent",
                     metric="revenue_lost")]


def winback_conversion_rate(customer_status_30: pd.DataFrame, order_book: pd.DataFrame, day: dt.date,
                            remap: PersonRemap) -> list[dict]:
    """Win-back candidates at D-30 with an order (refunded or not) in D-29..D / win-back candidates at D-30."""
    candidates = winback_candidates_at(status_as_of_now(customer_status_30, remap), _start(day))
    buyers = persons(order_book, placed_in(order_book, *window(day, LOOKBACK_DAYS)), remap)
    return [quotient(float(len(candidates.intersection(buyers))), float(len(candidates)), "ratio")]


def renewal_rate(crm_subscription_terms: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Subscription terms with term_end in D-36..D-7 renewed at D / those terms, in all and per plan."""
    ended, renewed = ended_terms(crm_subscription_terms, day, settings)
    plans = labels(ended["plan"])

    def share(mask: np.ndarray, **dims: str | None) -> dict:
        return quotient(float(renewed[mask].sum()), float(mask.sum()), "ratio", **dims)

    return breakdown("plan", open_values(plans), plans, share)


def dormant_persons(engagement_recency: pd.DataFrame, registrants: pd.Index, day: dt.date,
                    remap: PersonRemap) -> pd.Index:
    """Dormant at `day` (docs/outputs.md 2.2; `engagement_recency`: the state of `day`): registrants at `day` with an
    engagement on or before it and none in day-89..day. Parts merged since are one person."""
    engagement_recency = state_frame(engagement_recency, ENGAGEMENT_RECENCY_SCHEMA)
    latest = pd.Series(pd.to_datetime(engagement_recency["last_engaged_date"]).to_numpy(),
                       index=remap(engagement_recency["person_id"]).to_numpy())
    latest = latest[latest.index.notna()].groupby(level=0).max()
    quiet = (latest <= np.datetime64(day - dt.timedelta(days=DORMANT_DAYS))).to_numpy(dtype=bool)
    return pd.Index(latest.index[quiet], name="person_id").intersection(registrants)


def reengagement_rate(engagement_recency_30: pd.DataFrame, person_engagement: pd.DataFrame,
                      crm_customers: pd.DataFrame, identity_map: pd.DataFrame, day: dt.date, settings: Settings,
                      remap: PersonRemap) -> list[dict]:
    """Persons dormant at D-30 with an engagement in D-29..D / persons dormant at D-30."""
    x = _start(day)
    registrants = pd.Index(remap(registrant_persons(crm_customers, identity_map, x, settings.timezone)).unique())
    dormant = dormant_persons(engagement_recency_30, registrants, x, remap)
    engaged = person_engagement
    if "date" in engaged.columns:  # a window input: the days D-29..D (one partition alone comes without)
        engaged = engaged.loc[(engaged["date"].astype(str) >= (x + dt.timedelta(days=1)).isoformat()).to_numpy()]
    returned = dormant.intersection(pd.Index(remap(engaged["person_id"]).dropna().unique()))
    return [quotient(float(len(returned)), float(len(dormant)), "ratio")]


STATUS_30 = KpiInput("customer_status_30", CUSTOMER_STATUS, offset_days=LOOKBACK_DAYS)
ORDER_BOOK = order_book_input("order_book", columns=BOOK_COLUMNS)
TERMS = KpiInput("crm_subscription_terms", SUBSCRIPTION_TERMS, columns=TERM_COLUMNS)
PERSONS_NOTE = ("persons as of the newest identity partition: parts merged since D-30 are one customer at D-30 "
                "and at D")
TERMS_NOTE = ("subscription terms as CRM rows as of D (docs/outputs.md 2.5): a term counts through term_start and "
              "term_end <= end of D; renewed at D = a later term of the same subscription_id has term_start <= end "
              "of D; status is not read; the 7-day grace is the setting CRM_RENEWAL_GRACE_DAYS")

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="customer_retention_rate", family="Retention", seed="001, 003, 004",
        description="One row per metric (standard, end_over_start, cohort_retained): how many of the active "
                    "customers at D-30 the business still has at D, in the three usual readings.",
        formula="S = active customers at D-30, E = active customers at D, N = new customers (first order) on "
                "D-29..D; standard = (E - N) / S x 100 (seeds 003/004; above 100 when lapsed customers return); "
                "end_over_start = E / S x 100 (seed 001); cohort_retained = persons active at D-30 and at D / S x 100",
        window="D-30..D (activity: 365 d up to D-30 and up to D)",
        population="active customers at D-30 (an order non-refunded at D-30 in D-394..D-30)",
        exclusions=PERSONS_NOTE, unit="percent",
        dimensions=(Dimension("metric", ("standard", "end_over_start", "cohort_retained")),),
        headline={"metric": "standard"},
        inputs=(STATUS_30, ORDER_BOOK, KpiInput("first_orders", FIRST_ORDERS)),
        # E / S exceeds 100 as soon as new customers outnumber the lost ones, like standard: bound checks warn
        unbounded_metrics=("standard", "end_over_start"),
        lineage={"numerator": ("order_book.person_id", "order_book.order_day", "order_book.fully_refunded",
                               "customer_status_30.person_id", "first_orders.person_id", "first_orders.first_ordered_at"),
                 "denominator": ("customer_status_30.person_id", "customer_status_30.last_order_date")},
        compute=customer_retention_rate, window_days=AT_D_MINUS_30_DAYS, remap_days=LOOKBACK_DAYS + 1),
    KpiDefinition(
        name="churn_rate", family="Retention", seed="001, 003, 004",
        description="One row per metric (customer, revenue, revenue_lost): the share of customers, of "
                    "subscription revenue and of order revenue lost between D-30 and D.",
        formula="customer = persons active at D-30 and not at D / active at D-30 x 100; revenue = amount of the "
                "subscription terms with term_end in D-36..D-7 not renewed at D / amount of all those terms x 100; "
                "revenue_lost (seed 001), X = D-30 = net revenue (refunds not deducted) of the orders placed in "
                "X-364..X of the persons active at X and not at D / that of the persons active at X x 100",
        window="D-30..D; terms ending in D-36..D-7; orders of D-394..D-30",
        population="active customers at D-30; subscription terms ending in D-36..D-7",
        exclusions=PERSONS_NOTE + "; " + TERMS_NOTE + "; revenue_lost counts every order placed in X-364..X of "
        "those persons, refunded or not", unit="percent",
        dimensions=(Dimension("metric", ("customer", "revenue", "revenue_lost")),),
        headline={"metric": "customer"},
        inputs=(STATUS_30, ORDER_BOOK, TERMS),
        lineage={"numerator": ("customer_status_30.person_id", "order_book.person_id", "order_book.fully_refunded",
                               "crm_subscription_terms.amount", "crm_subscription_terms.term_start",
                               "crm_subscription_terms.subscription_id", "customer_status_30.net_revenue_365d"),
                 "denominator": ("customer_status_30.person_id", "customer_status_30.last_order_date",
                                 "crm_subscription_terms.amount", "crm_subscription_terms.term_end",
                                 "customer_status_30.net_revenue_365d")},
        compute=churn_rate, window_days=AT_D_MINUS_30_DAYS, remap_days=LOOKBACK_DAYS + 1),
    KpiDefinition(
        name="winback_conversion_rate", family="Retention", seed="002",
        description="One row per day (no dimensions): the share of the win-back candidates at D-30 who ordered "
                    "again in D-29..D.",
        formula="win-back candidates at D-30 (latest order non-refunded at D-30 on a day in D-394..D-120) with an "
                "order (refunded or not) placed in D-29..D / win-back candidates at D-30",
        window="30d (D-29..D)", population="win-back candidates at D-30", exclusions=PERSONS_NOTE, unit="ratio",
        dimensions=(), headline={},
        inputs=(STATUS_30, ORDER_BOOK),
        lineage={"numerator": ("order_book.person_id", "order_book.order_day", "customer_status_30.person_id"),
                 "denominator": ("customer_status_30.person_id", "customer_status_30.last_order_date")},
        compute=winback_conversion_rate, window_days=AT_D_MINUS_30_DAYS, remap_days=LOOKBACK_DAYS + 1),
    KpiDefinition(
        name="renewal_rate", family="Retention", seed="004",
        description="One row per plan and one for all plans, for the subscription terms that ended in D-36..D-7: "
                    "the share renewed by the end of D.",
        formula="terms with term_end in D-36..D-7 renewed at D (a later term of the same subscription_id with "
                "term_start <= end of D) / those terms",
        window="terms ending in D-36..D-7 (7-day grace)", population="subscription terms with term_end in D-36..D-7",
        exclusions=TERMS_NOTE, unit="ratio",
        dimensions=(Dimension("plan"),), headline={},
        inputs=(TERMS,),
        lineage={"plan": ("crm_subscription_terms.plan",),
                 "numerator": ("crm_subscription_terms.subscription_id", "crm_subscription_terms.term_start"),
                 "denominator": ("crm_subscription_terms.term_id", "crm_subscription_terms.term_end")},
        compute=renewal_rate, window_days=TERMS_READ_DAYS),
    KpiDefinition(
        name="reengagement_rate", family="Retention", seed="002",
        description="One row per day (no dimensions): the share of the persons dormant at D-30 who engaged again "
                    "in D-29..D.",
        formula="persons dormant at D-30 (registrants at D-30 with >= 1 engagement on or before D-30 and none in "
                "D-119..D-30) with >= 1 engagement in D-29..D / persons dormant at D-30",
        window="30d (D-29..D); dormant at D-30", population="persons dormant at D-30",
        exclusions="persons as of the newest identity partition: parts merged since D-30 are one person; "
                   "'engaged on or before D-30' is complete from CRM_START_DATE + 365 d (docs/outputs.md 2.8)",
        unit="ratio", dimensions=(), headline={},
        inputs=(KpiInput("engagement_recency_30", ENGAGEMENT_RECENCY, offset_days=LOOKBACK_DAYS),
                KpiInput("person_engagement", ("aggregates", "person_engagement"), window_days=LOOKBACK_DAYS,
                         columns=("person_id",)),
                KpiInput("crm_customers", ("ingest", "crm_customers"), columns=("customer_id", "created_at")),
                KpiInput("identity_map", ("identity", "identity_map"), columns=PERSON_LOOKUP_COLUMNS)),
        lineage={"numerator": ("person_engagement.person_id", "engagement_recency_30.person_id",
                               "engagement_recency_30.last_engaged_date"),
                 "denominator": ("engagement_recency_30.person_id", "engagement_recency_30.last_engaged_date",
                                 "crm_customers.customer_id", "crm_customers.created_at")},
        # "ever engaged" at D-30 is complete once D-30 >= CRM_START_DATE + 365 d
        compute=reengagement_rate, window_days=LOOKBACK_DAYS + ACTIVE_DAYS + 1, remap_days=LOOKBACK_DAYS + 1),
)
