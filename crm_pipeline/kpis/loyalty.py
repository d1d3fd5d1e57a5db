"""Retention and loyalty KPIs (docs/kpi_catalog.md "Retention and loyalty", part 2): recency_frequency with the person-level
asset `customer_rfm`, repeat_purchase_rate, activation_rate and registrant_retention.

Customers come from the order book of D (`customers.py`), first orders from `aggregates/first_orders`,
registrations and acquisition channels from the customers CRM snapshot of D, engagements from the daily
`aggregates/person_engagement`. Every stored person id is carried through the identity changes after it
(`remap`, docs/outputs.md 2.2), so two parts merged later are one customer, one registrant and one first order.
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS, attach_person_id
from crm_pipeline.kpis.count import end_of_day
from crm_pipeline.kpis.crm_rows import breakdown, labels, open_values
from crm_pipeline.kpis.customers import ACTIVE_DAYS, ORDER_BOOK, non_refunded, order_book_input, placed_in
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient
from crm_pipeline.kpis.persons import IDENTITY_MERGES_PATH, PersonRemap
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings

FIRST_ORDERS = ("aggregates", "first_orders")
CRM_CUSTOMERS = ("ingest", "crm_customers")
IDENTITY_MAP = ("identity", "identity_map")
PERSON_ENGAGEMENT = ("aggregates", "person_engagement")
DAY = pd.Timedelta(days=1)

# ---------------------------------------------------------------------------------------------------------------
# persons: registrations and first orders as of D


def registrations(crm_customers: pd.DataFrame, identity_map: pd.DataFrame, remap: PersonRemap, day: dt.date,
                  timezone: str) -> pd.DataFrame:
    """One row per registrant at D: `registered_at` (the earliest created_at of the person's records) and the
    `acquisition_channel` of that earliest record (ties: lowest customer_id; null when the record has none)."""
    created_at = pd.to_datetime(crm_customers["created_at"], utc=True)
    counted = (created_at < end_of_day(day, timezone)).fillna(False).to_numpy(dtype=bool)
    records = crm_customers.loc[counted]
    channel = (records["acquisition_channel"] if "acquisition_channel" in records.columns
               else pd.Series(None, index=records.index, dtype="string"))
    frame = pd.DataFrame({
        "person_id": remap(attach_person_id(records, identity_map)).to_numpy(),
        "registered_at": created_at[counted].reset_index(drop=True),  # kept tz-aware (no per-value objects)
        "customer_id": records["customer_id"].astype("string").to_numpy(),
        "acquisition_channel": channel.astype("string").to_numpy(),
    }).dropna(subset=["person_id"])
    earliest = frame.sort_values(["person_id", "registered_at", "customer_id"]).drop_duplicates("person_id")
    return earliest.set_index("person_id")[["registered_at", "acquisition_channel"]]


def first_orders_as_of(first_orders: pd.DataFrame, remap: PersonRemap) -> pd.DataFrame:
    """One row per buyer (persons as of the newest identity): the earliest first order of their parts (ties:
    lowest order id), indexed by person_id."""
    frame = first_orders.assign(person_id=remap(first_orders["person_id"]).to_numpy(),
                                first_ordered_at=pd.to_datetime(first_orders["first_ordered_at"], utc=True),
                                first_order_id=first_orders["first_order_id"].astype("string"))
    frame = frame.sort_values(["person_id", "first_ordered_at", "first_order_id"]).drop_duplicates("person_id")
    return frame.set_index("person_id")[["first_order_id", "first_ordered_at"]]


def local_days(stamps: pd.Series, timezone: str) -> np.ndarray:
    """The day (reporting timezone) of each timestamp, as numpy days (NaT for a missing one)."""
    stamps = pd.to_datetime(stamps, utc=True)
    return stamps.dt.tz_convert(timezone).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(
        "datetime64[D]")


# ---------------------------------------------------------------------------------------------------------------
# recency, frequency, monetary


def customer_summaries(order_book: pd.DataFrame, remap: PersonRemap, day: dt.date) -> pd.DataFrame:
    """One row per active customer at D (persons as of the newest identity), over their orders non-refunded at D
    placed in D-364..D: recency_days (D - day of the last order), frequency (orders), monetary (their net revenue,
    refunds not deducted) and span_days (last - first ordered_at, fractional days). Sorted by person_id."""
    chosen = placed_in(order_book, day - dt.timedelta(days=ACTIVE_DAYS - 1), day) & non_refunded(order_book)
    orders = order_book.loc[chosen]
    frame = pd.DataFrame({
        "person_id": remap(orders["person_id"]).to_numpy(),
        "order_day": pd.to_datetime(orders["order_day"]).to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"),
        # UTC instants as whole microseconds: fractional days between orders by integer arithmetic
        "ordered_us": pd.to_datetime(orders["ordered_at"], utc=True).dt.tz_localize(None).to_numpy(
            dtype="datetime64[us]").astype(np.int64),
        "net_revenue": orders["net_revenue"].astype(float).to_numpy(),
    }).dropna(subset=["person_id"])
    per_person = frame.groupby("person_id", sort=True)
    out = pd.DataFrame({
        "last_day": per_person["order_day"].max(),
        "frequency": per_person.size().astype("int64"),
        "monetary": per_person["net_revenue"].sum(min_count=1),
        "span_days": (per_person["ordered_us"].max() - per_person["ordered_us"].min()).astype(float) / 86400e6,
    })
    last_day = out["last_day"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    out["recency_days"] = (np.datetime64(day, "D") - last_day).astype(np.int64)
    out.index = out.index.astype("string")
    return out.rename_axis("person_id").reset_index()


CUSTOMER_RFM_KEY = dg.AssetKey(["customer_rfm"])
CUSTOMER_RFM_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("recency_days", pa.int64(), nullable=False),  # D - day of the last order
    pa.field("frequency", pa.int64(), nullable=False),  # orders non-refunded at D in D-364..D
    pa.field("monetary", pa.float64()),  # net revenue of those orders (refunds not deducted)
    pa.field("r_score", pa.int64(), nullable=False),  # 1..5, 5 = most recent
    pa.field("f_score", pa.int64(), nullable=False),
    pa.field("m_score", pa.int64(), nullable=False),
    pa.field("segment", pa.string(), nullable=False),
])
SEGMENTS = ("champions", "loyal", "promising", "at_risk", "hibernating", "needs_attention")


def rank_score(values: pd.Series) -> np.ndarray:
    """score = 1 + floor(5 x (rank - 1) / n) with SQL rank() ascending (ties share the lowest rank, the next
    rank skips); n = the number of values."""
    n = len(values)
    if not n:
        return np.zeros(0, dtype=np.int64)
    rank = values.rank(method="min", ascending=True).to_numpy(dtype=np.int64)
    return 1 + (5 * (rank - 1)) // n


def customer_rfm(summaries: pd.DataFrame) -> pd.DataFrame:
    """One row per active customer (CUSTOMER_RFM_SCHEMA): R, F, M scores and the first matching segment."""
    r = rank_score(-summaries["recency_days"].astype(np.int64))
    f = rank_score(summaries["frequency"].astype(np.int64))
    m = rank_score(summaries["monetary"].astype(float).fillna(0.0))
    segment = np.select([(r >= 4) & (f >= 4), f >= 4, r >= 4, (r <= 2) & (f >= 3), r <= 2],
                        list(SEGMENTS[:-1]), default=SEGMENTS[-1])
    return pd.DataFrame({
        "person_id": summaries["person_id"].astype("string").to_numpy(),
        "recency_days": summaries["recency_days"].to_numpy(dtype=np.int64),
        "frequency": summaries["frequency"].to_numpy(dtype=np.int64),
        "monetary": summaries["monetary"].astype(float).to_numpy(),
        "r_score": r, "f_score": f, "m_score": m, "segment": segment.astype(object),
    }, columns=CUSTOMER_RFM_SCHEMA.names)


def customer_rfm_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=CUSTOMER_RFM_KEY, partitions_def=partitions, group_name="kpis", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per active customer at the end of day D (a person with an order non-refunded at D "
                    "placed in D-364..D): recency_days (D - day of the last such order), frequency (those orders), "
                    "monetary (their net revenue, refunds not deducted), the R, F and M scores 1 + floor(5 x (rank "
                    "- 1) / n) with SQL rank() ascending by -recency_days, frequency and monetary over the n active "
                    "customers, and the segment: the first of champions (R >= 4 and F >= 4), loyal (F >= 4), "
                    "promising (R >= 4), at_risk (R <= 2 and F >= 3), hibernating (R <= 2), needs_attention. "
                    "Person ids only; persons follow the newest identity partition.",
        ins={"order_book": dg.AssetIn(key=dg.AssetKey(list(ORDER_BOOK)), metadata={
            "columns": ["person_id", "ordered_at", "order_day", "net_revenue", "fully_refunded"]})},
        # persons follow identity changes read straight from identity_merges (docs/outputs.md 2.2): lineage only
        deps=[dg.AssetDep(dg.AssetKey(list(IDENTITY_MERGES_PATH)))],
        metadata={"dagster/column_schema": column_schema(CUSTOMER_RFM_SCHEMA), "primary_key": ["person_id"]},
        check_specs=[
            checks.schema_spec(CUSTOMER_RFM_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(["person_id"]), asset=CUSTOMER_RFM_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["person_id"]))],
    )
    def customer_rfm_table(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                           order_book: pd.DataFrame):
        day = partition_day(context)
        remap = PersonRemap.load(settings.get(), day, 1)  # the order book holds persons as of D
        frame = customer_rfm(customer_summaries(order_book, remap, day))
        per_segment = frame["segment"].value_counts()
        yield from checks.written(CUSTOMER_RFM_KEY, frame, CUSTOMER_RFM_SCHEMA, metadata={
            "customers": len(frame), "identity_changes_through": remap.newest_identity_day or "-",
            "customers_per_segment": dg.MetadataValue.json({s: int(per_segment.get(s, 0)) for s in SEGMENTS})})
        yield checks.primary_key_is_unique(CUSTOMER_RFM_KEY, frame, ["person_id"])

    return customer_rfm_table


RF_METRICS = ("recency_days", "frequency", "mean_days_between_orders")


def recency_frequency(order_book: pd.DataFrame, crm_customers: pd.DataFrame, identity_map: pd.DataFrame,
                      remap: PersonRemap, day: dt.date, settings: Settings) -> list[dict]:
    """Active customers at D: mean recency, orders per customer and mean days between orders, in all and by the
    acquisition channel of the earliest customer record (no record, or none written on it: `(none)`)."""
    people = customer_summaries(order_book, remap, day)
    registered = registrations(crm_customers, identity_map, remap, day, settings.timezone)
    channel = labels(people["person_id"].map(registered["acquisition_channel"]))
    recency = people["recency_days"].to_numpy(dtype=float)
    frequency = people["frequency"].to_numpy(dtype=float)
    repeat = frequency >= 2
    span_days = people["span_days"].to_numpy(dtype=float)
    between = np.divide(span_days, frequency - 1, out=np.zeros(len(people)), where=repeat)

    def measure(metric: str):
        def row(mask: np.ndarray, **dims: str | None) -> dict:
            if metric == "mean_days_between_orders":
                return quotient(float(between[mask & repeat].sum()), float((mask & repeat).sum()), "days", **dims)
            values, unit = (recency, "days") if metric == "recency_days" else (frequency, "count")
            return quotient(float(values[mask].sum()), float(mask.sum()), unit, **dims)
        return row

    values = open_values(channel)
    return [r for metric in RF_METRICS
            for r in breakdown("acquisition_channel", values, channel, measure(metric), metric=metric)]


# ---------------------------------------------------------------------------------------------------------------
# repeat purchases, activation, registrant retention

REPEAT_WINDOWS = {"60d": 60, "90d": 90}


def first_categories(categories: pd.Series) -> pd.Series:
    """The first category written on each order (`|`-separated), null when none is written."""
    first = categories.astype("string").str.split("|").str[0].str.strip()
    return first.mask(first == "")


def repeat_purchase_rate(first_orders: pd.DataFrame, order_book: pd.DataFrame, remap: PersonRemap, day: dt.date,
                         settings: Settings) -> list[dict]:
    """Persons whose first order is on D-N (N = 60, 90) with another order (refunded or not) on D-N..D, same
    day included / those persons; in all and by the first category written on the first order."""
    first = first_orders_as_of(first_orders, remap)
    first_day = local_days(first["first_ordered_at"], settings.timezone)
    starts = {window: day - dt.timedelta(days=n) for window, n in REPEAT_WINDOWS.items()}
    # only the cohorts' persons and the orders of D-90..D matter (the cohorts' first orders are among them)
    in_cohorts = np.isin(first_day, [np.datetime64(start, "D") for start in starts.values()])
    first, first_day = first.loc[in_cohorts], first_day[in_cohorts]
    recent = order_book.loc[placed_in(order_book, min(starts.values()), day)]
    order_ids = recent["order_id"].astype("string").to_numpy()
    written = pd.Series(recent["categories"].astype("string").to_numpy(), index=order_ids)
    category = labels(first_categories(first["first_order_id"].map(written[~written.index.duplicated()])))
    orders = pd.DataFrame({"person_id": remap(recent["person_id"]).to_numpy(), "order_id": order_ids,
                           "order_day": recent["order_day"].to_numpy()})
    orders = orders.loc[orders["person_id"].isin(first.index).to_numpy()]
    # another order: any order of the person but their first one
    orders = orders.loc[(orders["order_id"] != orders["person_id"].map(first["first_order_id"])).to_numpy()]
    cohorts: dict[str, tuple[pd.Series, np.ndarray]] = {}
    for window, start in starts.items():
        member = first_day == np.datetime64(start, "D")
        cohort = first.index[member]
        later = orders.loc[placed_in(orders, start, day) & orders["person_id"].isin(cohort).to_numpy()]
        repeated = pd.Index(cohort).isin(later["person_id"].unique())
        cohorts[window] = (category[member], repeated)
    values = open_values(*(keys for keys, _ in cohorts.values()))
    rows = []
    for window, (keys, repeated) in cohorts.items():
        def measure(mask: np.ndarray, repeated: np.ndarray = repeated, **dims: str | None) -> dict:
            return quotient(float(repeated[mask].sum()), float(mask.sum()), "ratio", **dims)
        rows += breakdown("category", values, keys, measure, window=window)
    return rows


ACTIVATION_DAYS = 30


def activation_rate(first_orders: pd.DataFrame, crm_customers: pd.DataFrame, identity_map: pd.DataFrame,
                    remap: PersonRemap, day: dt.date, settings: Settings) -> list[dict]:
    """Registrants whose registration is on D-30 with their first order at or within 30 x 24 h after the
    registration instant / those registrants."""
    registered = registrations(crm_customers, identity_map, remap, day, settings.timezone)
    on_day = local_days(registered["registered_at"], settings.timezone) == np.datetime64(
        day - dt.timedelta(days=ACTIVATION_DAYS), "D")
    cohort = registered.loc[on_day]
    first = first_orders_as_of(first_orders, remap)
    first_at = pd.to_datetime(first["first_ordered_at"].reindex(cohort.index), utc=True)  # NaT: no order
    registered_at = pd.to_datetime(cohort["registered_at"], utc=True)
    activated = (first_at >= registered_at) & (first_at <= registered_at + ACTIVATION_DAYS * DAY)
    return [quotient(float(activated.fillna(False).sum()), float(len(cohort)), "ratio")]


RETENTION_WINDOWS = {"30d": 30, "90d": 90, "180d": 180}


def registrant_retention(person_engagement: pd.DataFrame, crm_customers: pd.DataFrame,
                         identity_map: pd.DataFrame, remap: PersonRemap, day: dt.date,
                         settings: Settings) -> list[dict]:
    """Cohort = registrants whose registration falls on D-N (N = 30, 90, 180): the share with >= 1 engagement on
    D-N+1..D and their engagements per member."""
    registered = registrations(crm_customers, identity_map, remap, day, settings.timezone)
    registration_day = local_days(registered["registered_at"], settings.timezone)
    # 180 days of rows (10M on a medium day): each stored id is remapped and each partition's date parsed once
    stored, stored_ids = person_engagement["person_id"].factorize()
    persons = remap(pd.Series(stored_ids, dtype="string")).to_numpy()
    if "date" in person_engagement.columns:
        day_codes, day_values = person_engagement["date"].factorize()
        dates = pd.to_datetime(pd.Series(day_values, dtype="string")).to_numpy(dtype="datetime64[ns]").astype(
            "datetime64[D]")[day_codes]
    else:
        dates = np.full(len(person_engagement), np.datetime64(day, "D"))
    counts = person_engagement["count_engagements"].astype(float).to_numpy()
    rows = []
    for window, n in RETENTION_WINDOWS.items():
        cohort = registered.index[registration_day == np.datetime64(day - dt.timedelta(days=n), "D")]
        first = np.datetime64(day - dt.timedelta(days=n - 1), "D")
        inside = pd.Index(persons).isin(cohort)[stored] & (dates >= first)
        per_person = pd.Series(counts[inside]).groupby(persons[stored[inside]]).sum()
        members = float(len(cohort))
        rows += [quotient(float((per_person > 0).sum()), members, "ratio", metric="retention_rate", window=window),
                 quotient(float(per_person.sum()), members, "count", metric="avg_engagements", window=window)]
    return rows


_CUSTOMERS_INPUTS = (KpiInput("crm_customers", CRM_CUSTOMERS,
                              columns=("customer_id", "created_at", "acquisition_channel")),
                     KpiInput("identity_map", IDENTITY_MAP, columns=PERSON_LOOKUP_COLUMNS))
_REGISTRATION = "registration = the earliest created_at of the person's customer records (created <= end of D)"

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="recency_frequency", family="Retention", seed="000",
        description="One row per metric (recency_days, frequency, mean_days_between_orders) and per metric x "
                    "acquisition_channel, over the active customers at the end of day D and their orders "
                    "non-refunded at D in D-364..D (person-level scores: customer_rfm).",
        formula="recency_days = sum of (D - day of the last order) / customers; frequency = orders / customers; "
                "mean_days_between_orders = sum over customers with >= 2 orders of (last - first ordered_at, "
                "days) / (their orders - 1) / those customers",
        window="365d (D-364..D)",
        population="active customers at D (an order non-refunded at D in D-364..D) and those orders; the channel "
                   "is the acquisition_channel of the person's earliest customer record ((none) without one)",
        unit="days, count",
        dimensions=(Dimension("metric", RF_METRICS), Dimension("acquisition_channel")),
        headline={"metric": "recency_days"},
        inputs=(order_book_input(columns=("order_id", "person_id", "ordered_at", "order_day", "net_revenue",
                                          "fully_refunded")),
                *_CUSTOMERS_INPUTS),
        lineage={"acquisition_channel": ("crm_customers.acquisition_channel", "crm_customers.created_at"),
                 "numerator": ("order_book.order_day", "order_book.ordered_at", "order_book.fully_refunded"),
                 "denominator": ("order_book.person_id", "order_book.fully_refunded")},
        compute=recency_frequency, window_days=ACTIVE_DAYS,
        remap_days=1,  # the order book, the snapshot and the identity map are as of D
        exclusions="orders fully refunded at D"),
    KpiDefinition(
        name="repeat_purchase_rate", family="Retention", seed="002",
        description="One row per window (60d, 90d) and per window x category: of the persons whose first order is "
                    "on D-60 (D-90), the share with another order on D-60..D (D-90..D).",
        formula="persons whose first order is on D-N with another order (refunded or not) on D-N..D, same day "
                "included / persons whose first order is on D-N",
        window="60d, 90d (cohorts of D-60, D-90; first orders ever: complete from CRM_START_DATE + 365 d)",
        population="persons whose first order (earliest ordered_at, ties: lowest order_id; refunded later or not) "
                   "is on D-N; category = the first category written on that order ((none) without one)",
        unit="ratio",
        dimensions=(Dimension("window", tuple(REPEAT_WINDOWS)), Dimension("category")),
        headline={"window": "60d"},
        inputs=(KpiInput("first_orders", FIRST_ORDERS),
                order_book_input(columns=("order_id", "person_id", "order_day", "categories"))),
        lineage={"category": ("order_book.categories", "first_orders.first_order_id"),
                 "numerator": ("order_book.order_id", "order_book.person_id", "order_book.order_day"),
                 "denominator": ("first_orders.person_id", "first_orders.first_ordered_at")},
        compute=repeat_purchase_rate, window_days=366, remap_days=1),
    KpiDefinition(
        name="activation_rate", family="Retention", seed="002",
        description="One row per day (no dimensions) for the registrants whose registration is on D-30: the share "
                    "whose first order is at or within 30 x 24 h after the registration instant.",
        formula="registrants registered on D-30 with registration <= first ordered_at <= registration + 30 x 24 h "
                "/ registrants registered on D-30",
        window="D-30..D (registrations and first orders ever: complete from CRM_START_DATE + 365 d)",
        population=f"registrants whose registration is on D-30; {_REGISTRATION}", unit="ratio",
        dimensions=(), headline={},
        inputs=(KpiInput("first_orders", FIRST_ORDERS), *_CUSTOMERS_INPUTS),
        lineage={"numerator": ("first_orders.first_ordered_at", "crm_customers.created_at"),
                 "denominator": ("crm_customers.customer_id", "crm_customers.created_at", "identity_map.person_id")},
        compute=activation_rate, window_days=366, remap_days=1,
        exclusions="a first order before the registration never activates"),
    KpiDefinition(
        name="registrant_retention", family="Retention", seed="000",
        description="One row per metric (retention_rate, avg_engagements) x window (30d, 90d, 180d): of the "
                    "registrants whose registration falls on D-N, the share engaged on D-N+1..D and their "
                    "engagement events per member.",
        formula="retention_rate = cohort members with >= 1 engagement on D-N+1..D / cohort; avg_engagements = "
                "engagement events of cohort members on D-N+1..D / cohort",
        window="30/90/180d (cohorts of D-30, D-90, D-180; registrations ever: complete from CRM_START_DATE + 365 d)",
        population=f"registrants whose registration falls on D-N; {_REGISTRATION}; engagements as docs/outputs.md 2.2, "
                   "under any identifier of the person", unit="ratio, count",
        dimensions=(Dimension("metric", ("retention_rate", "avg_engagements")),
                    Dimension("window", tuple(RETENTION_WINDOWS))),
        headline={"metric": "retention_rate", "window": "30d"},
        inputs=(KpiInput("person_engagement", PERSON_ENGAGEMENT, window_days=180), *_CUSTOMERS_INPUTS),
        lineage={"numerator": ("person_engagement.person_id", "person_engagement.count_engagements"),
                 "denominator": ("crm_customers.customer_id", "crm_customers.created_at", "identity_map.person_id")},
        compute=registrant_retention, window_days=366,
        remap_days=180),  # engagement person ids are stored as of their own day, up to D-179
)
