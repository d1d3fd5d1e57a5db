"""Compact daily aggregates the KPIs read instead of raw events, so trailing windows stay cheap.

`aggregates/visits`: one row per channel x device type x hour of day (reporting timezone) with the day's
visits (session_start events). Thirty of these tiny files replace 30 days of events for the visit KPIs.
"""

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.metadata import arrow_table, column_schema
from crm_pipeline.resources import OWNERS, PipelineSettingsResource

VISITS_KEY = dg.AssetKey(["aggregates", "visits"])
VISITS_PK = ["channel", "channel_group", "device_type", "hour"]
VISITS_SCHEMA = pa.schema([
    pa.field("channel", pa.string(), nullable=False),
    pa.field("channel_group", pa.string()),
    pa.field("device_type", pa.string()),  # null: the visit had no device type
    pa.field("hour", pa.string(), nullable=False),  # "00".."23" in the reporting timezone
    pa.field("count_visits", pa.int64(), nullable=False),
])


def daily_visits(events: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The day's session_start events counted by channel, group, device type and local hour."""
    visits = events.loc[(events["event_type"] == "session_start").to_numpy()]
    hour = visits["occurred_at"].dt.tz_convert(timezone).dt.hour.map("{:02d}".format)
    frame = pd.DataFrame({"channel": visits["channel"].to_numpy(), "channel_group": visits["channel_group"].to_numpy(),
                          "device_type": visits["device_type"].to_numpy(), "hour": hour.to_numpy()})
    out = frame.groupby(VISITS_PK, dropna=False).size().rename("count_visits").reset_index()
    return out.sort_values(VISITS_PK, na_position="first", ignore_index=True)


def visits_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=VISITS_KEY, partitions_def=partitions, group_name="aggregates", owners=OWNERS,
        kinds={"python", "pandas", "parquet"},
        description="One row per channel x channel group x device type x hour of day (reporting timezone) with "
                    "the visits (session_start events) of day D: the compact input of the visit KPIs.",
        ins={"events": dg.AssetIn(key=dg.AssetKey(["ingest", "events"]), metadata={
            "columns": ["event_type", "occurred_at", "channel", "channel_group", "device_type"]})},
        metadata={"dagster/column_schema": column_schema(VISITS_SCHEMA), "primary_key": VISITS_PK},
        check_specs=[dg.AssetCheckSpec(checks.primary_key_check_name(VISITS_PK), asset=VISITS_KEY, blocking=True,
                                       partitions_def=partitions)],
    )
    def visits(settings: PipelineSettingsResource, events: pd.DataFrame):
        frame = daily_visits(events, settings.get().timezone)
        yield dg.Output(arrow_table(frame, VISITS_SCHEMA), metadata={"visits": int(frame["count_visits"].sum())})
        yield checks.primary_key_is_unique(VISITS_KEY, frame, VISITS_PK, nullable=["channel_group", "device_type"])

    return visits
