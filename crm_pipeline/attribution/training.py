"""Training sets of the data-driven models (docs/outputs.md 2.7), kept as trailing-window state snapshots.

For day D the models train on the journeys of the orders in D-89..D (converting) and, for each person with
touches in D-89..D but no order there, those touches (non-converting). Two compact states make that cheap:
`converting_paths` (one row per order with touches in the window: its channel path) and `person_day_paths`
(one row per person and day in the window: the day's channels in touch order). State D = state D-1 without
the day that left the window + day D's rows, so a day never re-reads 90 daily files.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.attribution.models import MarkovModel, ShapleyModel, apply_path_transform
from crm_pipeline.metadata import string_array

TRAINING_DAYS = 90
SEPARATOR = " > "

_S = pa.string()
CONVERTING_PATHS_SCHEMA = pa.schema([
    pa.field("order_id", _S, nullable=False),
    pa.field("person_id", _S),
    pa.field("order_date", pa.date32(), nullable=False),
    pa.field("channel_path", _S, nullable=False),
    pa.field("net_revenue", pa.float64(), nullable=False),
])
PERSON_DAY_PATHS_SCHEMA = pa.schema([
    pa.field("person_id", _S, nullable=False),
    pa.field("touch_date", pa.date32(), nullable=False),
    pa.field("channel_path", _S, nullable=False),  # the day's touches in (touch_at, event_id) order
    pa.field("count_touches", pa.int64(), nullable=False),
])
CHANNEL_MODEL_VALUES_SCHEMA = pa.schema([
    pa.field("model", _S, nullable=False),  # markov (removal effect) | shapley
    pa.field("channel", _S, nullable=False),
    pa.field("value", pa.float64(), nullable=False),
    pa.field("share", pa.float64()),  # value / sum of the model's values (null when all are 0)
])
MARKOV_TRANSITIONS_SCHEMA = pa.schema([
    pa.field("from_state", _S, nullable=False),
    pa.field("to_state", _S, nullable=False),
    pa.field("probability", pa.float64(), nullable=False),
])


def window_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=TRAINING_DAYS - 1)


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.date


def update_converting_paths(previous: pd.DataFrame | None, journeys: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """State D: yesterday's converting paths still in the window + the orders of D with at least one touch."""
    today = journeys.loc[journeys["count_touches"].to_numpy() > 0]
    today = pd.DataFrame({"order_id": today["order_id"].to_numpy(), "person_id": today["person_id"].to_numpy(),
                          "order_date": day, "channel_path": today["channel_path"].to_numpy(),
                          "net_revenue": today["net_revenue"].to_numpy(dtype=float)})
    frames = [today]
    if previous is not None and len(previous):
        kept = previous.loc[(_dates(previous["order_date"]) >= window_start(day)).to_numpy()
                            & (_dates(previous["order_date"]) < day).to_numpy()]
        frames.insert(0, kept)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["order_date", "order_id"], ignore_index=True)[list(CONVERTING_PATHS_SCHEMA.names)]


def update_person_day_paths(previous: pd.DataFrame | None, touches: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """State D: yesterday's person-days still in the window + one row per person with touches on D."""
    ordered = touches.dropna(subset=["person_id"]).sort_values(["person_id", "touch_at", "event_id"])
    grouped = ordered.groupby("person_id", sort=True)["channel"]
    today = pd.DataFrame({"channel_path": grouped.agg(SEPARATOR.join), "count_touches": grouped.size()})
    today = today.reset_index().assign(touch_date=day)
    frames = [today]
    if previous is not None and len(previous):
        dates = _dates(previous["touch_date"])
        frames.insert(0, previous.loc[((dates >= window_start(day)) & (dates < day)).to_numpy()])
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["touch_date", "person_id"], ignore_index=True)[list(PERSON_DAY_PATHS_SCHEMA.names)]


def training_paths(converting: pd.DataFrame, person_days: pd.DataFrame, transform: str = "none"
                   ) -> tuple[pd.DataFrame, pd.Series]:
    """(paths: journey_id, step, channel; converted by journey_id) for the models, after the path transform.

    Converting journeys: one per order (`o:<order_id>`). Non-converting: one per person without an order in the
    window (`p:<person_id>`), their touches of the window in day order. The paths are filtered, sorted, split
    and flattened in Arrow; `journey_id` and `channel` are categoricals, so a full medium window (6M person-day
    paths, 15M tokens) never becomes one Python string per token.
    """
    buyers = string_array(converting["person_id"].dropna())
    days = pa.table({"person_id": string_array(person_days["person_id"]),
                     "touch_date": pa.array(pd.to_datetime(person_days["touch_date"]).to_numpy(), pa.timestamp("s")),
                     "channel_path": string_array(person_days["channel_path"])})
    quiet = days.filter(pc.invert(pc.is_in(days["person_id"], value_set=buyers)))
    quiet = quiet.sort_by([("person_id", "ascending"), ("touch_date", "ascending")])
    journey = pa.concat_arrays([
        pc.binary_join_element_wise("o:", string_array(converting["order_id"].astype("string")), ""),
        pc.binary_join_element_wise("p:", quiet["person_id"].combine_chunks(), ""),
    ])
    path = pa.concat_arrays([string_array(converting["channel_path"].astype("string")),
                             quiet["channel_path"].combine_chunks()])
    lists = pc.split_pattern(path, SEPARATOR)
    parent = pc.list_parent_indices(lists).to_numpy()
    journey_codes = pc.dictionary_encode(journey)
    codes = journey_codes.indices.to_numpy(zero_copy_only=False)[parent]
    channels = pc.dictionary_encode(pc.list_flatten(lists))
    position = np.arange(len(codes), dtype=np.int64)
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = codes[1:] != codes[:-1]  # a journey's rows are consecutive
    step = position - np.maximum.accumulate(np.where(starts, position, 0)) + 1
    names = journey_codes.dictionary.to_pandas().astype(object)
    tokens = pd.DataFrame({
        "journey_id": pd.Categorical.from_codes(codes, categories=pd.Index(names)),
        "channel": pd.Categorical.from_codes(channels.indices.to_numpy(zero_copy_only=False),
                                             categories=channels.dictionary.to_pylist()),
        "step": step,
    })
    if transform != "none":
        tokens = apply_path_transform(tokens, transform, journey_column="journey_id", rank_column="step",
                                      count_column="step_count")
    ids = pd.Index(names)
    converted = pd.Series(ids.str.startswith("o:"), index=ids)
    present = np.zeros(len(ids), dtype=bool)
    present[np.unique(tokens["journey_id"].cat.codes.to_numpy())] = True
    return tokens[["journey_id", "step", "channel"]].reset_index(drop=True), converted[present]


def fit_models(converting: pd.DataFrame, person_days: pd.DataFrame, *, markov_order: int = 1,
               transform: str = "none", training: tuple[pd.DataFrame, pd.Series] | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """(channel values of markov and shapley, Markov transitions, training counts). `training`: the result of
    `training_paths` when the caller already has it (the asset shares it with `path_summary`)."""
    paths, converted = training or training_paths(converting, person_days, transform)
    counts = {"training_converting_journeys": int(converted.sum()),
              "training_non_converting_journeys": int((~converted).sum())}
    if paths.empty or not converted.any():
        empty = CHANNEL_MODEL_VALUES_SCHEMA.empty_table().to_pandas()
        return empty, MARKOV_TRANSITIONS_SCHEMA.empty_table().to_pandas(), counts
    markov = MarkovModel.fit(paths, converted, order=markov_order)
    shapley = ShapleyModel.fit(paths, converted)
    counts["markov_conversion_probability"] = float(markov.conversion_probability)
    counts["shapley_grand_coalition_value"] = float(shapley.grand_coalition_value)
    values = pd.concat([_values("markov", markov.removal_effects), _values("shapley", shapley.values)],
                       ignore_index=True)
    matrix = markov.transition_matrix
    long = matrix.stack().rename("probability").reset_index()
    long.columns = ["from_state", "to_state", "probability"]
    long = long.loc[long["probability"].to_numpy() > 0].sort_values(["from_state", "to_state"], ignore_index=True)
    return values, long, counts


def _values(model: str, values: pd.Series) -> pd.DataFrame:
    total = float(values.sum())
    return pd.DataFrame({"model": model, "channel": values.index.astype(str), "value": values.to_numpy(float),
                         "share": values.to_numpy(float) / total if total > 0 else np.nan}).sort_values(
        "channel", ignore_index=True)


PATH_SUMMARY_SCHEMA = pa.schema([
    pa.field("path_rank", pa.int64(), nullable=False),  # 1 = the most frequent path
    pa.field("channel_path", _S, nullable=False),  # after the path transform
    pa.field("count_journeys", pa.int64(), nullable=False),
    pa.field("count_conversions", pa.int64(), nullable=False),
    pa.field("count_non_conversions", pa.int64(), nullable=False),
    pa.field("conversion_rate", pa.float64(), nullable=False),
    pa.field("net_revenue", pa.float64(), nullable=False),  # of the converting journeys
])


def path_summary(converting: pd.DataFrame, person_days: pd.DataFrame, transform: str = "none",
                 top: int = 500, training: tuple[pd.DataFrame, pd.Series] | None = None) -> pd.DataFrame:
    """The `top` most frequent (transformed) paths of the training window with conversions and revenue.

    Each journey's path string is joined by Arrow (`binary_join` over a list array built from the journeys'
    offsets), not by a Python join per journey: 6M journeys of a medium window take seconds, not minutes.
    """
    paths, converted = training or training_paths(converting, person_days, transform)
    if paths.empty:
        return PATH_SUMMARY_SCHEMA.empty_table().to_pandas()
    code, journey_ids = pd.factorize(paths["journey_id"])
    order = np.lexsort((paths["step"].to_numpy(dtype=np.int64), code))
    code = code[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    channels = pa.array(paths["channel"].to_numpy(dtype=object)[order], type=pa.string())
    lists = pa.ListArray.from_arrays(pa.array(np.r_[starts, len(code)].astype(np.int32)), channels)
    ids = np.asarray(journey_ids, dtype=object)[code[starts]]
    revenue = pd.Series(converting["net_revenue"].to_numpy(dtype=float),
                        index="o:" + converting["order_id"].astype(str))
    is_converted = converted.reindex(pd.Index(ids)).to_numpy(dtype=bool)
    net = np.zeros(len(ids))
    net[is_converted] = revenue.reindex(pd.Index(ids[is_converted])).fillna(0.0).to_numpy()
    journeys = pd.DataFrame({"channel_path": pc.binary_join(lists, SEPARATOR).to_numpy(zero_copy_only=False),
                             "converted": is_converted, "net_revenue": net})
    summary = journeys.groupby("channel_path").agg(count_journeys=("converted", "size"),
                                                   count_conversions=("converted", "sum"),
                                                   net_revenue=("net_revenue", "sum")).reset_index()
    summary["count_conversions"] = summary["count_conversions"].astype("int64")
    summary["count_non_conversions"] = summary["count_journeys"] - summary["count_conversions"]
    summary["conversion_rate"] = summary["count_conversions"] / summary["count_journeys"]
    summary = summary.sort_values(["count_journeys", "channel_path"], ascending=[False, True], ignore_index=True)
    summary = summary.head(top)
    summary["path_rank"] = range(1, len(summary) + 1)
    return summary[list(PATH_SUMMARY_SCHEMA.names)]
