"""Order attribution: every order of the day gets credits per model and channel that sum to 1, so attributed
revenue reconciles exactly to net revenue. Dagster-free."""

import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline.attribution.models import (
    HEURISTIC_MODELS,
    data_driven_credits,
    heuristic_credits,
    unattributed_credits,
)

_S = pa.string()

# One row per order x model x credited channel x campaign (grain: order_id, model, channel, campaign_id).
ORDER_ATTRIBUTION_SCHEMA = pa.schema([
    pa.field("order_id", _S, nullable=False),
    pa.field("model", _S, nullable=False),
    pa.field("channel", _S, nullable=False),  # "(unattributed)" for an order without touches
    pa.field("campaign_id", _S),
    pa.field("credit", pa.float64(), nullable=False),  # share of the order, sums to 1 per order and model
    pa.field("attributed_revenue", pa.float64(), nullable=False),  # credit x net revenue (reporting currency)
])

# a refunded order keeps its attribution (its net revenue is what it earned when placed); KPIs net refunds
# separately (docs/outputs.md 2.3), so the day's attributed revenue reconciles to the day's net revenue of orders


def order_attribution(orders: pd.DataFrame, touches: pd.DataFrame, *, models: tuple[str, ...] = HEURISTIC_MODELS,
                      half_life_days: float = 7.0, channel_values: pd.DataFrame | None = None) -> pd.DataFrame:
    """ORDER_ATTRIBUTION_SCHEMA rows for `orders` (order_id, net_revenue) from their journey touches.

    `channel_values` (model, channel, value) feeds the data-driven models (markov, shapley): an order's credit
    for each channel of its journey = value / the sum over the journey's channels (all zero: linear).
    """
    net = orders.set_index("order_id")["net_revenue"].astype(float)
    unattributed = net.index.difference(pd.Index(touches["order_id"].unique()))
    parts = []
    for model in models:
        if model in HEURISTIC_MODELS:
            credited = heuristic_credits(touches, model, half_life_days=half_life_days)
        else:
            values = (channel_values.loc[channel_values["model"] == model].set_index("channel")["value"]
                      if channel_values is not None else pd.Series(dtype=float))
            credited = data_driven_credits(touches, values)
        credited = pd.concat([credited[["order_id", "channel", "campaign_id", "credit"]],
                              unattributed_credits(pd.Series(unattributed, dtype="string"))], ignore_index=True)
        per_channel = (credited.groupby(["order_id", "channel", "campaign_id"], dropna=False, sort=False)["credit"]
                       .sum().reset_index())
        per_channel.insert(1, "model", model)
        parts.append(per_channel.loc[(per_channel["credit"] > 0).to_numpy()])  # credited channels only
    if not parts:
        return ORDER_ATTRIBUTION_SCHEMA.empty_table().to_pandas()
    out = pd.concat(parts, ignore_index=True)
    out["attributed_revenue"] = out["credit"] * out["order_id"].map(net).to_numpy(dtype=float)
    out = out.sort_values(["order_id", "model", "channel", "campaign_id"], na_position="first", ignore_index=True)
    return out[list(ORDER_ATTRIBUTION_SCHEMA.names)]


def credit_sums(attribution: pd.DataFrame) -> pd.Series:
    """Sum of credits per (order, model): 1 for every pair in a correct table."""
    return attribution.groupby(["order_id", "model"])["credit"].sum()


def revenue_gaps(attribution: pd.DataFrame, orders: pd.DataFrame, models: tuple[str, ...]) -> pd.Series:
    """Per model: attributed revenue minus the day's net revenue (0 to the cent in a correct table)."""
    total = float(orders["net_revenue"].astype(float).sum())
    attributed = attribution.groupby("model")["attributed_revenue"].sum().reindex(list(models), fill_value=0.0)
    return attributed - total


# One row per model x channel for the day (grain: model, channel).
CHANNEL_ROAS_SCHEMA = pa.schema([
    pa.field("model", _S, nullable=False),
    pa.field("channel", _S, nullable=False),
    pa.field("attributed_revenue", pa.float64(), nullable=False),
    pa.field("cost", pa.float64(), nullable=False),  # cost lines of the channel dated D (reporting currency)
    pa.field("roas", pa.float64()),  # attributed revenue / cost; null without cost
])


def channel_roas(attribution: pd.DataFrame, costs: pd.DataFrame, models: tuple[str, ...]) -> pd.DataFrame:
    """Attributed revenue per model and channel beside the channel's cost of the day, and their ratio.

    Every model gets a row for every channel that has attributed revenue or a cost, so a channel that cost money
    and earned nothing under a model shows ROAS 0 rather than disappearing.
    """
    revenue = attribution.groupby(["model", "channel"])["attributed_revenue"].sum()
    cost = costs.dropna(subset=["channel"]).groupby("channel")["amount"].sum()
    channels = sorted(set(revenue.index.get_level_values("channel")) | set(cost.index))
    grid = pd.MultiIndex.from_product([list(models), channels], names=["model", "channel"])
    out = pd.DataFrame({"attributed_revenue": revenue.reindex(grid, fill_value=0.0)}).reset_index()
    out["cost"] = out["channel"].map(cost).fillna(0.0).astype(float)
    roas = out["attributed_revenue"] / out["cost"]
    # null without cost, and when too large for a float (a cost line of 1e-307 is >= 0 and accepted)
    out["roas"] = roas.where((out["cost"] > 0) & np.isfinite(roas))
    return out[list(CHANNEL_ROAS_SCHEMA.names)]
