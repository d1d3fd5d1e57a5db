"""Attribution models (docs/outputs.md 2.7), Dagster-free and vectorised.

Inputs are long tables, never per-order Python objects, so a day of ~10^5 orders costs a handful of
groupby passes:

- `touches`: one row per journey touch (order_id, touch_rank 1..n in (touch_at, event_id) order,
  touch_count n, touch_at, order_at, channel, campaign_id, event_id), built by journeys.py. Orders
  without touches are absent; `unattributed_credits` credits them.
- `paths`: one row per step of a training journey (journey_id, step, channel) for the data-driven models,
  with `converted`, a bool Series indexed by journey_id, because training also needs journeys that did
  not convert (docs/outputs.md 2.7), which have no order_id.

Heuristic models credit touches; the data-driven models (Markov removal effect, Shapley value) produce
one value per channel that `data_driven_credits` turns into per-order channel shares. Every model's
credits sum to 1 per order, which is what makes attributed revenue reconcile to net revenue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

HEURISTIC_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
)
MODELS: tuple[str, ...] = (*HEURISTIC_MODELS, "markov", "shapley")
PATH_TRANSFORMS: tuple[str, ...] = ("none", "unique", "first", "frequency", "remove_direct")

UNATTRIBUTED = "(unattributed)"
DIRECT = "direct"

# Markov chain special states; parenthesised like UNATTRIBUTED so they cannot collide with a channel name
START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"
# separator of the channels of a higher-order Markov state label ("email > ad")
STATE_SEPARATOR = " > "

# position_based (40/20/40): share of each end touch for journeys of three or more touches
_POSITION_END_SHARE = 0.4

_TOUCH_COLUMNS = ("order_id", "touch_rank", "touch_count", "channel")
_PATH_COLUMNS = ("journey_id", "step", "channel")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; has {list(frame.columns)}")


# ---------------------------------------------------------------------------------------------------------
# Heuristic models
# ---------------------------------------------------------------------------------------------------------


def heuristic_credits(touches: pd.DataFrame, model: str, *, half_life_days: float = 7.0) -> pd.DataFrame:
    """One row per touch: `touches` plus a float `credit`; credits sum to 1 per order (docs/outputs.md 2.7).

    Relies on touch_rank/touch_count as built by journeys.py (1..n per order) instead of re-sorting,
    so the journey order (occurred_at, event_id) is decided in one place only.
    """
    _require(touches, _TOUCH_COLUMNS, "touches")
    out = touches.copy()
    rank = out["touch_rank"].to_numpy(dtype=np.int64)
    count = out["touch_count"].to_numpy(dtype=np.int64)
    if model == "first_touch":
        credit = (rank == 1).astype(float)
    elif model == "last_touch":
        credit = (rank == count).astype(float)
    elif model == "last_non_direct":
        non_direct_rank = out["touch_rank"].where(out["channel"].ne(DIRECT).fillna(True).astype(bool))
        target = non_direct_rank.groupby(out["order_id"], sort=False).transform("max")
        # all-direct journey: the last touch (NaN target falls back to n)
        target = target.fillna(out["touch_count"]).to_numpy(dtype=np.int64)
        credit = (rank == target).astype(float)
    elif model == "linear":
        credit = 1.0 / count
    elif model == "time_decay":
        if not half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
        age_days = (out["order_at"] - out["touch_at"]) / pd.Timedelta(days=1)
        # shift by the order's youngest touch before exponentiating: the same weights after
        # normalisation, but no underflow to 0/0 for long lookbacks or short half-lives
        relative = age_days - age_days.groupby(out["order_id"], sort=False).transform("min")
        weight = pd.Series(np.exp2(-relative.to_numpy(dtype=float) / half_life_days), index=out.index)
        credit = (weight / weight.groupby(out["order_id"], sort=False).transform("sum")).to_numpy()
    elif model == "position_based":
        is_end = (rank == 1) | (rank == count)
        middle = (1.0 - 2 * _POSITION_END_SHARE) / np.maximum(count - 2, 1)
        credit = np.select([count == 1, count == 2, is_end], [1.0, 0.5, _POSITION_END_SHARE], default=middle)
    else:
        raise ValueError(f"unknown heuristic model {model!r}; expected one of {HEURISTIC_MODELS}")
    out["credit"] = np.asarray(credit, dtype=float)
    return out


def unattributed_credits(order_ids: pd.Series | pd.Index | list[str]) -> pd.DataFrame:
    """One row per order without touches: credit 1 to `(unattributed)` (docs/outputs.md 2.7), campaign_id null."""
    ids = pd.Series(order_ids, dtype="string").reset_index(drop=True)
    return pd.DataFrame({
        "order_id": ids,
        "channel": pd.Series(UNATTRIBUTED, index=ids.index, dtype="string"),
        "campaign_id": pd.Series(pd.NA, index=ids.index, dtype="string"),
        "credit": np.ones(len(ids), dtype=float),
    })


# ---------------------------------------------------------------------------------------------------------
# Path transforms
# ---------------------------------------------------------------------------------------------------------


def apply_path_transform(touches: pd.DataFrame, transform: str, *, journey_column: str = "order_id",
                         rank_column: str = "touch_rank", count_column: str = "touch_count") -> pd.DataFrame:
    """The journeys of `touches` after a path transform, re-ranked 1..n (count_column updated if present).

    - `none`: unchanged; `unique`: consecutive repeats of a channel collapse to the first of the run;
    - `first`: only the first occurrence of each channel; `frequency`: one row per distinct channel (its
      first touch) with a `frequency` column counting its touches, in order of first occurrence;
    - `remove_direct`: `direct` touches dropped unless direct is the journey's only channel (a journey
      must keep at least one touch, or the order would silently become unattributed).

    The column names are parameters so the same transform serves the training `paths`
    (journey_id, step) of the data-driven models.
    """
    if transform not in PATH_TRANSFORMS:
        raise ValueError(f"unknown path transform {transform!r}; expected one of {PATH_TRANSFORMS}")
    _require(touches, (journey_column, rank_column, "channel"), "touches")
    ordered = touches.sort_values([journey_column, rank_column], kind="stable")
    if transform == "none":
        return ordered.reset_index(drop=True)
    journey = ordered[journey_column]
    channel = ordered["channel"]
    if transform == "unique":
        previous = channel.groupby(journey, sort=False).shift(1)
        keep = (channel.ne(previous) | previous.isna()).to_numpy(dtype=bool)
    elif transform == "first":
        keep = ~ordered.duplicated([journey_column, "channel"]).to_numpy()
    elif transform == "frequency":
        ordered = ordered.copy()
        ordered["frequency"] = (ordered.groupby([journey_column, "channel"], sort=False, dropna=False)[rank_column]
                                .transform("size").astype(np.int64))
        keep = ~ordered.duplicated([journey_column, "channel"]).to_numpy()
    else:  # remove_direct
        is_direct = channel.eq(DIRECT).fillna(False).astype(bool)
        all_direct = is_direct.groupby(journey, sort=False).transform("all")
        keep = (~is_direct | all_direct).to_numpy(dtype=bool)
    out = ordered.loc[keep].copy()
    grouped = out.groupby(journey_column, sort=False)
    out[rank_column] = grouped.cumcount().astype(np.int64) + 1
    if count_column in out.columns:
        out[count_column] = grouped[rank_column].transform("size").astype(np.int64)
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# Training paths
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
    """Training paths in array form: sorted steps with integer channel and journey codes."""

    channels: pd.Index  # channel names, sorted; codes index into it
    channel_code: np.ndarray  # per step
    journey_code: np.ndarray  # per step
    position: np.ndarray  # 0-based step position within the journey
    is_last: np.ndarray  # per step: the journey's last step
    journey_converted: np.ndarray  # per journey code: bool


def _unique_rows(lags: np.ndarray, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(lags, axis=0, return_inverse=True), fast: each row of channel codes (-1 = none) becomes one
    integer in base n_channels + 1, whose numeric order is the rows' lexicographic order."""
    base = n_channels + 1
    if base ** lags.shape[1] >= 2**62:  # too many channels x order for one integer: the general (slow) way
        keys, inverse = np.unique(lags, axis=0, return_inverse=True)
        return keys, inverse.reshape(-1)
    packed = np.zeros(len(lags), dtype=np.int64)
    for column in range(lags.shape[1]):
        packed = packed * base + (lags[:, column] + 1)
    unique, inverse = np.unique(packed, return_inverse=True)
    keys = np.empty((len(unique), lags.shape[1]), dtype=np.int64)
    rest = unique.copy()
    for column in reversed(range(lags.shape[1])):
        keys[:, column] = rest % base - 1
        rest //= base
    return keys, inverse.reshape(-1)


def _encode_paths(paths: pd.DataFrame, converted: pd.Series) -> _Paths:
    _require(paths, _PATH_COLUMNS, "paths")
    steps = paths.loc[paths["channel"].notna(), list(_PATH_COLUMNS)]
    # journeys numbered in order of appearance, then steps sorted by (journey, step) on integers: sorting the
    # journey ids themselves (strings) cost seconds on a full training window and changes nothing downstream
    journey_code, journeys = pd.factorize(steps["journey_id"])
    order = np.lexsort((steps["step"].to_numpy(dtype=np.int64), journey_code))
    steps = steps.iloc[order]
    journey_code = journey_code[order]
    channel_code, channels = pd.factorize(steps["channel"], sort=True)
    flags = converted.reindex(journeys)
    if flags.isna().any():
        missing = list(journeys[flags.isna().to_numpy()][:5])
        raise ValueError(f"`converted` has no flag for journey(s) {missing} of `paths`")
    n = len(steps)
    starts = np.ones(n, dtype=bool)
    starts[1:] = journey_code[1:] != journey_code[:-1]
    index = np.arange(n, dtype=np.int64)
    position = index - np.maximum.accumulate(np.where(starts, index, 0))
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = starts[1:]
    return _Paths(channels=pd.Index(channels), channel_code=channel_code.astype(np.int64),
                  journey_code=journey_code.astype(np.int64), position=position, is_last=is_last,
                  journey_converted=flags.to_numpy(dtype=bool))


# ---------------------------------------------------------------------------------------------------------
# Markov chain removal effect
# ---------------------------------------------------------------------------------------------------------


def _absorption_probability(q: sp.csr_matrix, to_conversion: np.ndarray, keep: np.ndarray) -> float:
    """P(absorbed in conversion | start) on the transient states `keep` (start = index 0, always kept).

    Dropping a state's row and column is the same as redirecting every transition into it to null:
    that probability mass can no longer reach conversion. Exact: solves (I - Q) x = r (fundamental matrix).
    """
    index = np.flatnonzero(keep)
    sub = q[index][:, index]
    system = (sp.identity(len(index), format="csc") - sub).tocsc()
    x = np.atleast_1d(spla.spsolve(system, to_conversion[index]))
    return float(x[0])


def markov_removal_effects(paths: pd.DataFrame, converted: pd.Series, *, order: int = 1) -> pd.Series:
    """Removal effect per channel of the order-`order` Markov chain fitted on `paths` (see MarkovModel)."""
    return MarkovModel.fit(paths, converted, order=order).removal_effects


@dataclass(frozen=True)
class MarkovModel:
    """An absorbing Markov chain over journeys: (start) -> channel states -> (conversion) | (null).

    States of order k are the last k channels seen (fewer at the start of a journey), labelled by channel
    (k = 1) or channels joined with " > " (k > 1). Transition probabilities are the maximum-likelihood
    estimates from the path counts. The removal effect of channel c, 1 - P(conversion | c removed) /
    P(conversion), asks how much conversion would be lost if c did not exist; removing c removes every
    state containing c (transitions into them go to null). Probabilities are exact (linear solves), not
    simulated, so the model is deterministic and testable to 1e-9.

    Build it with `MarkovModel.fit(paths, converted, order=k)`.
    """

    order: int
    channels: pd.Index
    transition_matrix: pd.DataFrame  # row-stochastic over (start), states, (conversion), (null)
    conversion_probability: float
    removal_effects: pd.Series  # by channel, in [0, 1]

    @classmethod
    def fit(cls, paths: pd.DataFrame, converted: pd.Series, *, order: int = 1) -> MarkovModel:
        """Fit on `paths` (journey_id, step, channel) and `converted` (bool by journey_id)."""
        if not isinstance(order, int | np.integer) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        encoded = _encode_paths(paths, converted)
        n_steps = len(encoded.channel_code)
        channels = encoded.channels

        # state key per step: codes of the last `order` channels, oldest first, -1 where the journey is shorter
        lags = np.full((n_steps, order), -1, dtype=np.int64)
        for lag in range(order):  # loop over the Markov order, not over journeys
            shifted = np.full(n_steps, -1, dtype=np.int64)
            shifted[lag:] = encoded.channel_code[: n_steps - lag]
            shifted[encoded.position < lag] = -1
            lags[:, order - 1 - lag] = shifted
        if n_steps:
            state_keys, step_state = _unique_rows(lags, len(channels))
        else:
            state_keys, step_state = np.empty((0, order), dtype=np.int64), np.empty(0, dtype=np.int64)

        n_states = len(state_keys)
        start, conversion, null = 0, n_states + 1, n_states + 2
        size = n_states + 3
        state_index = step_state + 1  # transient index of each step's state (0 is start)

        previous = np.empty(n_steps, dtype=np.int64)
        previous[1:] = state_index[:-1]
        previous[encoded.position == 0] = start
        last_state = state_index[encoded.is_last]
        absorbed = np.where(encoded.journey_converted[encoded.journey_code[encoded.is_last]], conversion, null)
        source = np.concatenate([previous, last_state])
        target = np.concatenate([state_index, absorbed])
        counts = sp.coo_matrix((np.ones(len(source)), (source, target)), shape=(size, size)).tocsr()
        counts.sum_duplicates()
        out_degree = np.asarray(counts.sum(axis=1)).ravel()
        probabilities = sp.diags(np.divide(1.0, out_degree, out=np.zeros(size), where=out_degree > 0)) @ counts
        probabilities = probabilities.tolil()
        probabilities[conversion, conversion] = 1.0
        probabilities[null, null] = 1.0
        probabilities = probabilities.tocsr()

        labels = [START, *(_state_label(key, channels) for key in state_keys), CONVERSION, NULL]
        matrix = pd.DataFrame(probabilities.toarray(), index=labels, columns=labels)

        transient = n_states + 1
        q = probabilities[:transient][:, :transient].tocsr()
        to_conversion = probabilities[:transient, conversion].toarray().ravel()
        everything = np.ones(transient, dtype=bool)
        base = _absorption_probability(q, to_conversion, everything) if n_steps else 0.0

        effects = np.zeros(len(channels))
        for code in range(len(channels)):  # one linear solve per channel
            keep = np.concatenate([[True], ~(state_keys == code).any(axis=1)])
            if base > 0:
                removed = _absorption_probability(q, to_conversion, keep)
                effects[code] = 1.0 - removed / base
        # exact arithmetic gives [0, 1] (removing states only loses mass); clip solver round-off
        removal = pd.Series(np.clip(effects, 0.0, 1.0), index=pd.Index(channels, name="channel"),
                            name="removal_effect")
        return cls(order=int(order), channels=pd.Index(channels), transition_matrix=matrix,
                   conversion_probability=float(base), removal_effects=removal)


def _decode_set(mask: np.ndarray, channels: pd.Index) -> tuple[str, ...]:
    return tuple(str(channels[word * 62 + bit]) for word, bits in enumerate(mask) for bit in range(62)
                 if (int(bits) >> bit) & 1)


def _state_label(key: np.ndarray, channels: pd.Index) -> str:
    return STATE_SEPARATOR.join(str(channels[c]) for c in key if c >= 0)


# ---------------------------------------------------------------------------------------------------------
# Shapley value
# ---------------------------------------------------------------------------------------------------------


def shapley_values(paths: pd.DataFrame, converted: pd.Series) -> pd.Series:
    """Shapley value per channel (see ShapleyModel for the coalition value)."""
    return ShapleyModel.fit(paths, converted).values


@dataclass(frozen=True)
class ShapleyModel:
    """Set-based "simplified Shapley" of Zhao et al. (2018), the common marketing variant.

    Coalition value: v(S) = conversions of the journeys whose channel SET T is a subset of S
    = sum over T ⊆ S of conv(T), with conv(T) the converting journeys whose distinct channels are exactly T
    (order and repeats within a journey ignored).

    Why this variant rather than "conversion rate of journeys with channel set exactly S":
    - v is a sum of unanimity games conv(T) * u_T, so the Shapley value has the exact closed form
      phi_c = sum over converting journeys containing c of 1 / |channels of the journey|:
      linear in the number of journeys, no 2^n enumeration, exact for any number of channels;
    - efficiency holds exactly: sum phi_c = v(all channels) = all converting journeys;
    - values are never negative, so per-order shares value(c) / sum(values) stay in [0, 1]. The
      exact-set conversion-rate game is not monotone (unobserved sets count 0, the grand coalition is
      often unobserved) and gives negative values, i.e. negative order credits.
    The price: non-converting journeys do not enter v (a channel is not penalised for appearing in
    journeys that did not convert); the Markov model is the one that uses them.

    Build it with `ShapleyModel.fit(paths, converted)`.
    """

    channels: pd.Index
    values: pd.Series  # phi by channel
    grand_coalition_value: float
    journey_sets: pd.DataFrame  # one row per distinct channel set: channels (tuple), journeys, conversions

    @classmethod
    def fit(cls, paths: pd.DataFrame, converted: pd.Series) -> ShapleyModel:
        """Fit on `paths` (journey_id, step, channel) and `converted` (bool by journey_id)."""
        encoded = _encode_paths(paths, converted)
        channels = encoded.channels
        pairs = pd.DataFrame({"journey": encoded.journey_code, "channel": encoded.channel_code})
        pairs = pairs.drop_duplicates()
        set_size = pairs.groupby("journey")["channel"].transform("size").to_numpy(dtype=float)
        converts = encoded.journey_converted[pairs["journey"].to_numpy()]
        share = np.where(converts, 1.0 / set_size, 0.0)
        phi = np.bincount(pairs["channel"].to_numpy(), weights=share, minlength=len(channels)).astype(float)
        values = pd.Series(phi, index=pd.Index(channels, name="channel"), name="shapley_value")

        # the distinct channel sets as bitmasks (62 channels per int64 word), counted without a per-journey loop
        n_journeys = len(encoded.journey_converted)
        words = np.zeros((n_journeys, max(1, -(-len(channels) // 62))), dtype=np.int64)
        codes = pairs["channel"].to_numpy()
        np.add.at(words, (pairs["journey"].to_numpy(), codes // 62), np.left_shift(1, codes % 62))
        masks, set_of_journey = np.unique(words, axis=0, return_inverse=True)
        set_of_journey = set_of_journey.reshape(-1)
        journey_sets = pd.DataFrame({
            "channels": [_decode_set(mask, channels) for mask in masks],  # loop over distinct sets only
            "journeys": np.bincount(set_of_journey, minlength=len(masks)).astype(np.int64),
            "conversions": np.bincount(set_of_journey, weights=encoded.journey_converted.astype(float),
                                       minlength=len(masks)),
        })
        grand = float(journey_sets["conversions"].sum())
        return cls(channels=pd.Index(channels), values=values, grand_coalition_value=grand,
                   journey_sets=journey_sets)

    def coalition_value(self, coalition: set[str] | frozenset[str] | tuple[str, ...] | list[str]) -> float:
        """v(S): conversions of the journeys whose channel set is a subset of `coalition`."""
        members = frozenset(coalition)
        inside = self.journey_sets["channels"].map(lambda channels: members.issuperset(channels))
        return float(self.journey_sets.loc[inside.to_numpy(dtype=bool), "conversions"].sum())


# ---------------------------------------------------------------------------------------------------------
# Per-order credits from channel values
# ---------------------------------------------------------------------------------------------------------


def data_driven_credits(touches: pd.DataFrame, channel_values: pd.Series) -> pd.DataFrame:
    """One row per (order_id, channel) of the journeys in `touches`: credit = value(channel) / the sum of
    the values of the journey's distinct channels (docs/outputs.md 2.7); campaign_id null.

    Unknown channels count 0 and negative values are floored at 0 (shares must stay in [0, 1]). An order
    whose channels are all worth 0 gets `linear` credits (a channel's share of its touches) so every order
    still sums to 1.
    """
    _require(touches, ("order_id", "channel"), "touches")
    per_channel = (touches.groupby(["order_id", "channel"], sort=True, dropna=False)
                   .size().rename("count_touches").reset_index())
    values = pd.Series(channel_values, dtype=float).clip(lower=0.0)
    value = per_channel["channel"].map(values).fillna(0.0).astype(float).to_numpy()
    order = per_channel["order_id"]
    total_value = pd.Series(value).groupby(order.to_numpy(), sort=False).transform("sum").to_numpy()
    touches_per_order = (per_channel["count_touches"].groupby(order, sort=False).transform("sum")
                         .to_numpy(dtype=float))
    linear = per_channel["count_touches"].to_numpy(dtype=float) / touches_per_order
    credit = np.where(total_value > 0, value / np.where(total_value > 0, total_value, 1.0), linear)
    return pd.DataFrame({
        "order_id": per_channel["order_id"],
        "channel": per_channel["channel"],
        "campaign_id": pd.Series(pd.NA, index=per_channel.index, dtype="string"),
        "credit": credit.astype(float),
    })
