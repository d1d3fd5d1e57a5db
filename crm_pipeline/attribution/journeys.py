"""Touches and journeys (docs/attribution.md, docs/outputs.md 2.7), Dagster-free and vectorised.

A *touch* is a marketing interaction (configurable event types; opens and impressions only as view-through).
An order's *journey* is its buyer's touches within the lookback before the order, ordered by
(touch_at, event_id). Persons are attached with the identity map of the order's day, from the touches'
identifiers, so a touch on another device of the same person counts and a later merge is followed.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline.identity.graph import IDENTIFIER_COLUMN_NAMES, attach_person_id
from crm_pipeline.settings import Settings

DEFAULT_TOUCH_EVENT_TYPES: tuple[str, ...] = (
    "ad_click", "email_click", "sms_click", "push_open", "social_interaction", "session_start",
    "browser_app_click", "app_open",
)
VIEW_THROUGH_EVENT_TYPES: tuple[str, ...] = ("email_open", "ad_impression")

_S, _TS = pa.string(), pa.timestamp("us", tz="UTC")

# One row per touch event of the day (grain: event_id). Identifiers are kept (hashes only) so that journeys
# attach persons with the identity of the order's day.
TOUCHES_SCHEMA = pa.schema([
    pa.field("event_id", _S, nullable=False),
    pa.field("touch_at", _TS, nullable=False),
    pa.field("event_type", _S, nullable=False),
    pa.field("channel", _S, nullable=False),
    pa.field("channel_group", _S),
    pa.field("campaign_id", _S),
    pa.field("device_type", _S),
    *(pa.field(c, _S) for c in IDENTIFIER_COLUMN_NAMES),
    pa.field("person_id", _S),  # as of the touch's day (journeys re-attach with the order's day)
    pa.field("is_view_through", pa.bool_(), nullable=False),
])

# One row per order of the day (grain: order_id).
JOURNEYS_SCHEMA = pa.schema([
    pa.field("order_id", _S, nullable=False),
    pa.field("person_id", _S),
    pa.field("ordered_at", _TS, nullable=False),
    pa.field("net_revenue", pa.float64(), nullable=False),
    pa.field("count_touches", pa.int64(), nullable=False),
    pa.field("count_channels", pa.int64(), nullable=False),
    pa.field("channel_path", _S),  # channels in touch order, " > "-separated (null without touches)
    pa.field("days_from_first_touch", pa.float64()),  # (ordered_at - first touch) in days; null without touches
])


# One row per order of the day x touch of its journey (grain: order_id, touch_rank).
JOURNEY_TOUCHES_SCHEMA = pa.schema([
    pa.field("order_id", _S, nullable=False),
    pa.field("touch_rank", pa.int64(), nullable=False),  # 1..n in (touch_at, event_id) order
    pa.field("touch_count", pa.int64(), nullable=False),
    pa.field("touch_at", _TS, nullable=False),
    pa.field("order_at", _TS, nullable=False),
    pa.field("channel", _S, nullable=False),
    pa.field("campaign_id", _S),
    pa.field("event_id", _S, nullable=False),
])


@dataclass(frozen=True)
class JourneyConfig:
    """Which events are touches and which touches make a journey (defaults: docs/outputs.md 2.7)."""

    touch_event_types: tuple[str, ...] = DEFAULT_TOUCH_EVENT_TYPES
    view_through: bool = False  # also email_open and ad_impression
    lookback_days: float = 30.0
    # per-channel lookback overrides in days, e.g. {"email": 5, "sms": 1}
    lookback_days_by_channel: Mapping[str, float] = field(default_factory=dict)
    stop_at_previous_order: bool = False
    max_touches: int | None = None  # keep the last N touches of a journey

    @classmethod
    def from_settings(cls, settings: Settings) -> "JourneyConfig":
        return cls(view_through=settings.attribution_view_through, lookback_days=settings.attribution_lookback_days,
                   lookback_days_by_channel=dict(settings.attribution_lookback_by_channel),
                   stop_at_previous_order=settings.attribution_stop_at_previous_order,
                   max_touches=settings.attribution_max_touches)

    @property
    def max_lookback_days(self) -> float:
        return max([self.lookback_days, *self.lookback_days_by_channel.values()])


def extract_touches(events: pd.DataFrame, identity_map: pd.DataFrame, config: JourneyConfig) -> pd.DataFrame:
    """The touches among a day's clean events, with the person of the day (TOUCHES_SCHEMA columns)."""
    types = list(config.touch_event_types) + (list(VIEW_THROUGH_EVENT_TYPES) if config.view_through else [])
    touches = events.loc[events["event_type"].isin(types).to_numpy()].copy()
    touches = touches.rename(columns={"occurred_at": "touch_at"})
    touches["person_id"] = attach_person_id(touches, identity_map)
    touches["is_view_through"] = touches["event_type"].isin(VIEW_THROUGH_EVENT_TYPES).to_numpy()
    touches = touches.sort_values(["touch_at", "event_id"], ignore_index=True)
    return touches[list(TOUCHES_SCHEMA.names)]


def journey_touches(orders: pd.DataFrame, touches: pd.DataFrame, identity_map: pd.DataFrame,
                    config: JourneyConfig, remap: Callable[[pd.Series], pd.Series] | None = None
                    ) -> tuple[pd.DataFrame, pd.Series]:
    """(the touches of every order's journey, the person of every order).

    Orders and touches are attached to persons from their identifiers with the identity map of D, then carried
    through `remap` (the identity changes logged after D, docs/outputs.md 2.2), so a re-run after two persons merged
    joins the touches of both to the order.

    Touch rows carry order_id, touch_rank (1..n by (touch_at, event_id)), touch_count, touch_at, order_at,
    channel, campaign_id, event_id. Window: order_at - lookback < touch_at <= order_at (docs/outputs.md 2.1).
    """
    remap = remap or (lambda ids: ids)
    order_person = remap(attach_person_id(orders, identity_map))
    buyers = pd.DataFrame({"order_id": orders["order_id"].to_numpy(), "person_id": order_person.to_numpy(),
                           "order_at": pd.to_datetime(orders["ordered_at"], utc=True).to_numpy()})
    buyers = buyers.dropna(subset=["person_id"])
    person = remap(attach_person_id(touches, identity_map))
    cand = pd.DataFrame({"person_id": person.to_numpy(),
                         "touch_at": pd.to_datetime(touches["touch_at"], utc=True).to_numpy(),
                         "channel": touches["channel"].to_numpy(), "campaign_id": touches["campaign_id"].to_numpy(),
                         "event_id": touches["event_id"].to_numpy()}).dropna(subset=["person_id"])
    joined = buyers.merge(cand, on="person_id", how="inner")
    age = pd.to_datetime(joined["order_at"], utc=True) - pd.to_datetime(joined["touch_at"], utc=True)
    lookback = joined["channel"].map(dict(config.lookback_days_by_channel)).fillna(config.lookback_days)
    keep = (age >= pd.Timedelta(0)) & (age < pd.to_timedelta(lookback.to_numpy(dtype=float), unit="D"))
    joined = joined.loc[keep.to_numpy()]
    if config.stop_at_previous_order:
        previous = _previous_order_at(orders, order_person)
        joined = joined.merge(previous, on="order_id", how="left")
        joined = joined.loc[~(joined["previous_order_at"] >= joined["touch_at"]).fillna(False).to_numpy()]
        joined = joined.drop(columns="previous_order_at")
    joined = joined.sort_values(["order_id", "touch_at", "event_id"], ignore_index=True)
    if config.max_touches is not None:
        from_end = joined.groupby("order_id").cumcount(ascending=False)
        joined = joined.loc[(from_end < config.max_touches).to_numpy()].reset_index(drop=True)
    joined["touch_rank"] = joined.groupby("order_id").cumcount() + 1
    joined["touch_count"] = joined.groupby("order_id")["touch_rank"].transform("max")
    columns = ["order_id", "touch_rank", "touch_count", "touch_at", "order_at", "channel", "campaign_id", "event_id"]
    return joined[columns], order_person


def _previous_order_at(orders: pd.DataFrame, order_person: pd.Series) -> pd.DataFrame:
    """Each order's buyer's previous order time among the given orders (for stop_at_previous_order)."""
    frame = pd.DataFrame({"order_id": orders["order_id"].to_numpy(), "person_id": order_person.to_numpy(),
                          "ordered_at": orders["ordered_at"].to_numpy()}).sort_values(["person_id", "ordered_at"])
    frame["previous_order_at"] = frame.groupby("person_id")["ordered_at"].shift(1)
    return frame[["order_id", "previous_order_at"]]


def journeys_table(orders: pd.DataFrame, order_person: pd.Series, touches: pd.DataFrame) -> pd.DataFrame:
    """One row per order (JOURNEYS_SCHEMA): touch and channel counts, the channel path, days from first touch."""
    grouped = touches.groupby("order_id", sort=False)
    stats = pd.DataFrame({
        "count_touches": grouped.size(),
        "count_channels": grouped["channel"].nunique(),
        "channel_path": grouped["channel"].agg(" > ".join),
        "first_touch_at": grouped["touch_at"].min(),
    })
    out = pd.DataFrame({"order_id": orders["order_id"].to_numpy(), "person_id": order_person.to_numpy(),
                        "ordered_at": orders["ordered_at"].to_numpy(),
                        "net_revenue": orders["net_revenue"].to_numpy(dtype=float)})
    out = out.merge(stats, left_on="order_id", right_index=True, how="left")
    out["count_touches"] = out["count_touches"].fillna(0).astype(np.int64)
    out["count_channels"] = out["count_channels"].fillna(0).astype(np.int64)
    first = pd.to_datetime(out["first_touch_at"], utc=True)
    out["days_from_first_touch"] = (pd.to_datetime(out["ordered_at"], utc=True) - first).dt.total_seconds() / 86400.0
    return out.drop(columns="first_touch_at").sort_values("order_id", ignore_index=True)[list(JOURNEYS_SCHEMA.names)]
