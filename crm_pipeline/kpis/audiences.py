"""Audiences (docs/kpi_catalog.md "audiences"): the daily membership table and the sizes KPI.

`audience_membership` (partition D, not under `kpi/`): one row per member and audience, with the first day of
the current continuous membership and whether the person may be activated (a customer record with marketing
consent). It holds person ids only, never contact data. Persons follow the newest identity (docs/outputs.md 2.2).
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS, attach_person_id
from crm_pipeline.ingestion.assets import PREVIOUS_DAY
from crm_pipeline.kpis.aggregates import CATEGORY_VIEWS_KEY
from crm_pipeline.kpis.count import asset_members, end_of_day, later, start_of_day
from crm_pipeline.kpis.customers import ACTIVE_DAYS, non_refunded, placed_in, winback_candidates
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, count
from crm_pipeline.kpis.persons import IDENTITY_MERGES_PATH, PersonRemap
from crm_pipeline.kpis.states import ORDER_BOOK_KEY, PERSON_SIGNALS_KEY
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings

FIXED_AUDIENCES = ("cart_abandoners", "recent_email_clickers", "active_app_users", "winback_candidates")
CART_DAYS, CATEGORY_DAYS, CLICK_DAYS = 7, 30, 30  # D-6..D, D-29..D, D-29..D
ENTHUSIAST_VIEWS = 3
MEMBERSHIP_KEY = dg.AssetKey(["audience_membership"])
MEMBERSHIP_PK = ["person_id", "audience"]
MEMBERSHIP_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("audience", pa.string(), nullable=False),
    pa.field("since", pa.date32(), nullable=False),  # first day of the current continuous membership
    pa.field("activatable", pa.bool_(), nullable=False),  # a customer record of the person has marketing consent
])


def _members(persons: pd.Series | np.ndarray, audience: str | pd.Series | np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"person_id": pd.Series(np.asarray(persons, dtype=object), dtype="string"),
                         "audience": pd.Series(np.broadcast_to(np.asarray(audience, dtype=object),
                                                               (len(persons),)), dtype="string")})


def audience_members(person_signals: pd.DataFrame, order_book: pd.DataFrame, category_views: pd.DataFrame,
                     day: dt.date, timezone: str) -> pd.DataFrame:
    """(person_id, audience) of every audience at the end of D, persons as stored (not yet remapped)."""
    signals = person_signals
    frames = []
    # cart abandoners: the latest cart_add is in D-6..D and no order follows it
    wide = signals.loc[signals["signal"].isin(["cart_add", "order"]).to_numpy()].groupby(
        ["person_id", "signal"])["latest_at"].max().unstack("signal")
    for column in ("cart_add", "order"):
        if column not in wide.columns:
            wide[column] = pd.NaT
    cart, order = (pd.to_datetime(wide[c], utc=True) for c in ("cart_add", "order"))
    abandoned = (cart >= start_of_day(day - dt.timedelta(days=CART_DAYS - 1), timezone)) & ~later(order, cart)
    frames.append(_members(wide.index[abandoned.to_numpy()], "cart_abandoners"))
    # recent email clickers: an email_click in D-29..D
    clicks = signals.loc[(signals["signal"] == "email_click").to_numpy()]
    recent = pd.to_datetime(clicks["latest_at"], utc=True) >= start_of_day(day - dt.timedelta(days=CLICK_DAYS - 1),
                                                                            timezone)
    frames.append(_members(clicks.loc[recent.to_numpy(), "person_id"].unique(), "recent_email_clickers"))
    # active app users: as app_active_30d
    frames.append(_members(asset_members(signals, day, timezone)["app_active_30d"].unique(), "active_app_users"))
    # category enthusiasts: >= 3 category_view of the category in D-29..D
    views = _in_window(category_views, day, CATEGORY_DAYS)
    per_category = views.groupby(["person_id", "category"])["count_views"].sum()
    keen = per_category[per_category >= ENTHUSIAST_VIEWS].reset_index()
    frames.append(_members(keen["person_id"], "category_enthusiasts:" + keen["category"].astype(str)))
    # past purchasers: an order containing the category, non-refunded at D, in D-364..D
    kept = order_book.loc[placed_in(order_book, day - dt.timedelta(days=ACTIVE_DAYS - 1), day)
                          & non_refunded(order_book)]
    contains = kept[["person_id", "categories"]].assign(category=kept["categories"].astype("string").str.split("|"))
    contains = contains.explode("category")
    contains = contains.loc[(contains["category"].notna() & (contains["category"] != "")).to_numpy()]
    contains = contains.drop_duplicates(["person_id", "category"])
    frames.append(_members(contains["person_id"], "past_purchasers:" + contains["category"].astype(str)))
    # win-back candidates at D, per stored person (remapped with the other audiences afterwards)
    frames.append(_members(winback_candidates(order_book, day, PersonRemap.none()), "winback_candidates"))
    return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)


def _in_window(frame: pd.DataFrame, day: dt.date, days: int) -> pd.DataFrame:
    if "date" not in frame.columns or frame.empty:
        return frame
    first = (day - dt.timedelta(days=days - 1)).isoformat()
    dates = frame["date"].astype(str)
    return frame.loc[((dates >= first) & (dates <= day.isoformat())).to_numpy()]


def consenting_persons(customers: pd.DataFrame, identity_map: pd.DataFrame, day: dt.date, timezone: str) -> pd.Series:
    """Persons with a customer record (registered by the end of D) whose marketing_consent is true."""
    yes = customers["marketing_consent"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    yes &= (pd.to_datetime(customers["created_at"], utc=True) < end_of_day(day, timezone)).to_numpy()
    return attach_person_id(customers.loc[yes], identity_map).dropna().drop_duplicates()


def audience_membership(person_signals: pd.DataFrame, order_book: pd.DataFrame, category_views: pd.DataFrame,
                        crm_customers: pd.DataFrame, identity_map: pd.DataFrame, previous: pd.DataFrame | None,
                        remap: PersonRemap, day: dt.date, settings: Settings) -> pd.DataFrame:
    """The membership of D: persons remapped to the newest identity, `since` carried from D-1's membership
    (persons remapped too; merged members keep the earliest), `activatable` from marketing consent."""
    members = audience_members(person_signals, order_book, category_views, day, settings.timezone)
    members = members.assign(person_id=remap(members["person_id"]).to_numpy()).drop_duplicates(ignore_index=True)
    if previous is not None and len(previous):
        carried = previous.assign(person_id=remap(previous["person_id"]).to_numpy(),
                                  audience=previous["audience"].astype("string"),
                                  since=pd.to_datetime(previous["since"]).dt.date)
        earliest = carried.groupby(["person_id", "audience"], as_index=False)["since"].min()
        members = members.merge(earliest, on=["person_id", "audience"], how="left")
    else:
        members = members.assign(since=None)
    members["since"] = members["since"].astype(object).where(members["since"].notna(), day)
    consenting = set(remap(consenting_persons(crm_customers, identity_map, day, settings.timezone)))
    out = members.assign(activatable=members["person_id"].isin(consenting).to_numpy())
    return out.sort_values(MEMBERSHIP_PK, ignore_index=True)[list(MEMBERSHIP_SCHEMA.names)]


def membership_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=MEMBERSHIP_KEY, partitions_def=partitions, group_name="audiences", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per person and audience they belong to at the end of day D: cart_abandoners, "
                    "category_enthusiasts:<c>, recent_email_clickers, past_purchasers:<c>, active_app_users, "
                    "winback_candidates; `since` = first day of the current continuous membership (not before "
                    "CRM_START_DATE), `activatable` = a customer record of the person has marketing consent. "
                    "Person ids only (no contact data); persons follow the newest identity partition.",
        ins={"person_signals": dg.AssetIn(key=PERSON_SIGNALS_KEY),
             "order_book": dg.AssetIn(key=ORDER_BOOK_KEY, metadata={
                 "columns": ["person_id", "order_day", "categories", "fully_refunded"]}),
             "category_views": dg.AssetIn(key=CATEGORY_VIEWS_KEY, partition_mapping=dg.TimeWindowPartitionMapping(
                 start_offset=-(CATEGORY_DAYS - 1), end_offset=0)),
             "crm_customers": dg.AssetIn(key=dg.AssetKey(["ingest", "crm_customers"]), metadata={
                 "columns": ["customer_id", "created_at", "marketing_consent"]}),
             "identity_map": dg.AssetIn(key=dg.AssetKey(["identity", "identity_map"]), metadata={
                 "columns": list(PERSON_LOOKUP_COLUMNS)}),
             "previous": dg.AssetIn(key=MEMBERSHIP_KEY,
                                    partition_mapping=PREVIOUS_DAY)},
        deps=[dg.AssetDep(dg.AssetKey(list(IDENTITY_MERGES_PATH)))],
        metadata={"dagster/column_schema": column_schema(MEMBERSHIP_SCHEMA), "primary_key": MEMBERSHIP_PK},
        check_specs=[
            checks.schema_spec(MEMBERSHIP_KEY, partitions),
            dg.AssetCheckSpec(checks.primary_key_check_name(MEMBERSHIP_PK), asset=MEMBERSHIP_KEY,
                              blocking=True, partitions_def=partitions,
                              description=checks.primary_key_description(MEMBERSHIP_PK)),
                     dg.AssetCheckSpec("since_is_within_the_run", asset=MEMBERSHIP_KEY, blocking=True,
                                       partitions_def=partitions,
                                       description="every `since` lies in CRM_START_DATE..D")],
    )
    def membership(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                   person_signals: pd.DataFrame, order_book: pd.DataFrame, category_views: pd.DataFrame,
                   crm_customers: pd.DataFrame, identity_map: pd.DataFrame, previous: pd.DataFrame | None):
        s = settings.get()
        day = partition_day(context)
        remap = PersonRemap.load(s, day, CATEGORY_DAYS)
        frame = audience_membership(person_signals, order_book, category_views, crm_customers, identity_map,
                                    previous, remap, day, s)
        sizes = frame.groupby("audience").size()
        yield from checks.written(MEMBERSHIP_KEY, frame, MEMBERSHIP_SCHEMA, metadata={
            "rows": len(frame), "persons": int(frame["person_id"].nunique()),
            "activatable_rows": int(frame["activatable"].sum()),
            "audiences": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
            "identity_changes_through": remap.newest_identity_day or "-"})
        yield checks.primary_key_is_unique(MEMBERSHIP_KEY, frame, MEMBERSHIP_PK)
        yield checks.since_is_within_the_run(MEMBERSHIP_KEY, frame, s.start_date, day)

    return membership


def audiences(audience_membership: pd.DataFrame, remap: PersonRemap) -> list[dict]:
    """Reach, and size and activatable members per audience (the four fixed ones always, category audiences
    with at least one member)."""
    m = audience_membership.assign(person_id=remap(audience_membership["person_id"]).to_numpy())
    per = m.groupby(["audience", "person_id"])["activatable"].any().reset_index()
    size = per.groupby("audience").size()
    activatable = per.groupby("audience")["activatable"].sum()
    names = [*FIXED_AUDIENCES, *sorted(set(size.index) - set(FIXED_AUDIENCES))]
    rows = [count(float(per["person_id"].nunique()), metric="reach")]
    for name in names:
        rows.append(count(float(size.get(name, 0)), audience=name, metric="size"))
        rows.append(count(float(activatable.get(name, 0)), audience=name, metric="activatable"))
    return rows


KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="audiences", family="Relate", seed="000",
        description="One row per audience x metric (size, activatable), plus the reach: how many persons each "
                    "audience holds at the end of D and how many of them may be activated (marketing consent).",
        formula="reach = persons in at least one audience; size = members; activatable = members with a customer "
                "record whose marketing_consent is true (persons without consent count in size, not here)",
        window="at D (cart 7 d, clicks and category views 30 d, orders 365 d)",
        population="persons in audience_membership of D", unit="count",
        dimensions=(Dimension("audience"), Dimension("metric", ("reach", "size", "activatable"))),
        headline={"metric": "reach"},
        inputs=(KpiInput("audience_membership", tuple(MEMBERSHIP_KEY.path)),),
        lineage={"audience": ("audience_membership.audience",),
                 "numerator": ("audience_membership.person_id", "audience_membership.audience",
                               "audience_membership.activatable")},
        compute=audiences, window_days=366, remap_days=1,
        exclusions="category audiences without members get no rows (the four others always have theirs); fully "
                   "refunded orders make no past purchaser"),
)
