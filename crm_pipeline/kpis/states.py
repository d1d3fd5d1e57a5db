"""Latest-state snapshots the KPIs read instead of whole histories: a day costs the same on day 10 as on day 400.

`aggregates/person_signals`: one row per person x signal x installation with the latest timestamp of the
signal up to the end of D. List memberships ("the latest X is strictly later than the latest Y"), app
installations, recent opens and clicks, and cart abandonment are all questions about latest timestamps, so
one long table of latest timestamps answers every one of them. D = D-1 carried through the merges of D, plus
the events and orders of D, keeping the latest timestamp per key.
"""

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
from crm_pipeline.metadata import arrow_table, column_schema
from crm_pipeline.resources import OWNERS

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
SIGNALS = (*dict.fromkeys(EVENT_SIGNALS.values()), ORDER_SIGNAL)

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
                                    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))},
        metadata={"dagster/column_schema": column_schema(PERSON_SIGNALS_SCHEMA), "primary_key": PERSON_SIGNALS_PK},
        check_specs=[dg.AssetCheckSpec(checks.primary_key_check_name(PERSON_SIGNALS_PK), asset=PERSON_SIGNALS_KEY,
                                       blocking=True, partitions_def=partitions)],
    )
    def person_signals(events: pd.DataFrame, orders: pd.DataFrame, identity_map: pd.DataFrame,
                       identity_merges: pd.DataFrame, previous: pd.DataFrame | None):
        frame = update_person_signals(previous, events, orders, identity_map, identity_merges)
        counts = frame["signal"].value_counts()
        yield dg.Output(arrow_table(frame, PERSON_SIGNALS_SCHEMA), metadata={
            "rows": len(frame), "persons": int(frame["person_id"].nunique()),
            "rows_per_signal": dg.MetadataValue.json({str(k): int(v) for k, v in counts.sort_index().items()})})
        yield checks.primary_key_is_unique(PERSON_SIGNALS_KEY, frame, PERSON_SIGNALS_PK, nullable=["device_id"])

    return person_signals
