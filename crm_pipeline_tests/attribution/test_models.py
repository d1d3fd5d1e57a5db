"""The attribution models of docs/outputs.md 2.7 on hand-built journeys whose credits were worked out by hand.

Conventions: channels are short names (`ad`, `email`, `sms`, `direct`; `A`, `B`, `C` in the data-driven
examples), orders `o1`, training journeys `j0`, `j1`, ...; every expected value carries its arithmetic.
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from crm_pipeline.attribution.models import (
    CONVERSION,
    HEURISTIC_MODELS,
    MODELS,
    NULL,
    PATH_TRANSFORMS,
    START,
    UNATTRIBUTED,
    MarkovModel,
    ShapleyModel,
    apply_path_transform,
    data_driven_credits,
    heuristic_credits,
    markov_removal_effects,
    shapley_values,
    unattributed_credits,
)

ORDER_AT = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def make_touches(journeys: dict[str, list[str]], ages: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """The journeys.py touch table: touches in the given order, `ages` in days before the order (default:
    n-1, n-2, ..., 0 so the list order is the time order)."""
    rows = []
    for order_id, channels in journeys.items():
        order_ages = (ages or {}).get(order_id, [float(len(channels) - 1 - i) for i in range(len(channels))])
        for rank, (channel, age) in enumerate(zip(channels, order_ages, strict=True), start=1):
            rows.append({
                "order_id": order_id, "touch_rank": rank, "touch_count": len(channels),
                "touch_at": ORDER_AT - pd.Timedelta(days=age), "order_at": ORDER_AT, "channel": channel,
                "campaign_id": None if channel == "direct" else f"cmp_{channel}", "event_id": f"{order_id}_e{rank}",
            })
    return pd.DataFrame(rows).astype({"order_id": "string", "channel": "string", "campaign_id": "string",
                                      "event_id": "string"})


def make_paths(journeys: list[tuple[str, bool]]) -> tuple[pd.DataFrame, pd.Series]:
    """Training paths from ("ABC", converted) pairs: one letter = one step's channel."""
    rows = [(f"j{i}", step, channel) for i, (path, _) in enumerate(journeys)
            for step, channel in enumerate(path, start=1)]
    paths = pd.DataFrame(rows, columns=["journey_id", "step", "channel"])
    converted = pd.Series([flag for _, flag in journeys], index=[f"j{i}" for i in range(len(journeys))])
    return paths, converted


def credits_by_order(credited: pd.DataFrame) -> dict[str, list[float]]:
    ordered = credited.sort_values(["order_id", "touch_rank"])
    return {str(k): list(v) for k, v in ordered.groupby("order_id")["credit"]}


# ---------------------------------------------------------------------------------------------------------
# Heuristic models
# ---------------------------------------------------------------------------------------------------------

JOURNEYS = {
    "o1": ["email"],                                   # 1 touch
    "o2": ["ad", "email"],                             # 2 touches
    "o2d": ["ad", "direct"],                           # 2 touches, direct last
    "o3": ["ad", "email", "direct"],                   # 3 touches, direct last
    "o5": ["ad", "email", "sms", "ad", "direct"],      # 5 touches, a channel repeated, direct last
    "rep": ["email", "email", "email"],                # same channel three times
    "alld": ["direct", "direct", "direct"],            # all direct
    "dmid": ["direct", "ad", "direct", "direct"],      # the only non-direct touch is the 2nd
}
THIRD = 1 / 3
EXPECTED_HEURISTIC = {
    "first_touch": {  # 1 to rank 1
        "o1": [1], "o2": [1, 0], "o2d": [1, 0], "o3": [1, 0, 0], "o5": [1, 0, 0, 0, 0],
        "rep": [1, 0, 0], "alld": [1, 0, 0], "dmid": [1, 0, 0, 0],
    },
    "last_touch": {  # 1 to rank n, direct or not
        "o1": [1], "o2": [0, 1], "o2d": [0, 1], "o3": [0, 0, 1], "o5": [0, 0, 0, 0, 1],
        "rep": [0, 0, 1], "alld": [0, 0, 1], "dmid": [0, 0, 0, 1],
    },
    "last_non_direct": {  # 1 to the last non-direct touch; all direct -> the last touch
        "o1": [1], "o2": [0, 1], "o2d": [1, 0], "o3": [0, 1, 0], "o5": [0, 0, 0, 1, 0],
        "rep": [0, 0, 1], "alld": [0, 0, 1], "dmid": [0, 1, 0, 0],
    },
    "linear": {  # 1/n each
        "o1": [1], "o2": [0.5, 0.5], "o2d": [0.5, 0.5], "o3": [THIRD] * 3, "o5": [0.2] * 5,
        "rep": [THIRD] * 3, "alld": [THIRD] * 3, "dmid": [0.25] * 4,
    },
    "position_based": {  # 1; 0.5/0.5; 0.4 first, 0.4 last, 0.2 / (n-2) each middle touch
        "o1": [1], "o2": [0.5, 0.5], "o2d": [0.5, 0.5],
        "o3": [0.4, 0.2, 0.4],                           # 0.2 / 1
        "o5": [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4],     # 0.2 / 3 = 0.0666...
        "rep": [0.4, 0.2, 0.4], "alld": [0.4, 0.2, 0.4],
        "dmid": [0.4, 0.1, 0.1, 0.4],                    # 0.2 / 2
    },
}


@pytest.mark.parametrize("model", list(EXPECTED_HEURISTIC))
def test_heuristic_credits_match_hand_computed_values(model: str) -> None:
    touches = make_touches(JOURNEYS)
    credited = heuristic_credits(touches, model)
    assert len(credited) == len(touches), "one row per touch"
    assert credited["event_id"].tolist() == touches["event_id"].tolist(), "touch rows are kept in place"
    got = credits_by_order(credited)
    for order_id, expected in EXPECTED_HEURISTIC[model].items():
        assert got[order_id] == pytest.approx(expected, abs=1e-15), f"{model} credits of {order_id} {JOURNEYS[order_id]}"


@pytest.mark.parametrize(
    ("ages", "half_life", "expected"),
    [
        # one touch: weight 2^0 = 1 -> 1
        pytest.param([3.0], 7.0, [1.0], id="one-touch"),
        # ages 14, 7, 0 d: weights 2^-2, 2^-1, 2^0 = 0.25, 0.5, 1 (sum 1.75) -> 1/7, 2/7, 4/7
        pytest.param([14.0, 7.0, 0.0], 7.0, [1 / 7, 2 / 7, 4 / 7], id="ages-14-7-0"),
        # two equal ages: 0.5 each whatever the age
        pytest.param([10.0, 10.0], 7.0, [0.5, 0.5], id="equal-ages"),
        # ages 28, 21, 14, 7, 0: weights 1/16, 1/8, 1/4, 1/2, 1 (sum 31/16) -> 1, 2, 4, 8, 16 over 31
        pytest.param([28.0, 21.0, 14.0, 7.0, 0.0], 7.0, [1 / 31, 2 / 31, 4 / 31, 8 / 31, 16 / 31], id="five"),
        # half-life 14 d, ages 14, 0: weights 0.5, 1 -> 1/3, 2/3
        pytest.param([14.0, 0.0], 14.0, [1 / 3, 2 / 3], id="half-life-14"),
        # fractional age 3.5 d (half a half-life): weights 2^-0.5, 1 -> 1/(1+sqrt 2), sqrt 2/(1+sqrt 2)
        pytest.param([3.5, 0.0], 7.0, [1 / (1 + math.sqrt(2)), math.sqrt(2) / (1 + math.sqrt(2))], id="fractional"),
        # ages 700, 693 d (100 half-lives): 2^-100 and 2^-99 would be tiny; shares still 1/3, 2/3
        pytest.param([700.0, 693.0], 7.0, [1 / 3, 2 / 3], id="old-touches"),
    ],
)
def test_time_decay_halves_the_weight_per_half_life(ages: list[float], half_life: float,
                                                    expected: list[float]) -> None:
    touches = make_touches({"o": ["ad"] * len(ages)}, {"o": ages})
    got = credits_by_order(heuristic_credits(touches, "time_decay", half_life_days=half_life))["o"]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_unknown_model_and_bad_half_life_are_rejected() -> None:
    touches = make_touches({"o": ["ad"]})
    with pytest.raises(ValueError, match="unknown heuristic model"):
        heuristic_credits(touches, "markov")
    with pytest.raises(ValueError, match="half_life_days"):
        heuristic_credits(touches, "time_decay", half_life_days=0)


def test_unattributed_credits_give_the_whole_order_to_unattributed() -> None:
    got = unattributed_credits(pd.Series(["o7", "o9"], dtype="string"))
    assert list(got.columns) == ["order_id", "channel", "campaign_id", "credit"]
    assert got["order_id"].tolist() == ["o7", "o9"]
    assert got["channel"].tolist() == [UNATTRIBUTED, UNATTRIBUTED]
    assert got["campaign_id"].isna().all()
    assert got["credit"].tolist() == [1.0, 1.0]
    assert len(unattributed_credits([])) == 0


def test_model_lists() -> None:
    assert HEURISTIC_MODELS == ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
                                "position_based")
    assert MODELS[:6] == HEURISTIC_MODELS
    assert MODELS[6:] == ("markov", "shapley")
    assert UNATTRIBUTED == "(unattributed)"


# ---------------------------------------------------------------------------------------------------------
# Path transforms
# ---------------------------------------------------------------------------------------------------------

TRANSFORM_JOURNEYS = {
    "p": ["A", "A", "B", "A", "direct", "B", "B"],   # events p_e1 .. p_e7
    "d": ["direct", "direct"],                      # direct only
    "m": ["direct", "A"],
}
EXPECTED_TRANSFORMS = {
    # (channels, event_ids kept) per journey
    "none": {"p": (TRANSFORM_JOURNEYS["p"], [1, 2, 3, 4, 5, 6, 7]), "d": (["direct"] * 2, [1, 2]),
             "m": (["direct", "A"], [1, 2])},
    # runs A A | B | A | direct | B B -> the first touch of each run
    "unique": {"p": (["A", "B", "A", "direct", "B"], [1, 3, 4, 5, 6]), "d": (["direct"], [1]),
               "m": (["direct", "A"], [1, 2])},
    # first occurrences: A (e1), B (e3), direct (e5)
    "first": {"p": (["A", "B", "direct"], [1, 3, 5]), "d": (["direct"], [1]), "m": (["direct", "A"], [1, 2])},
    "frequency": {"p": (["A", "B", "direct"], [1, 3, 5]), "d": (["direct"], [1]),
                  "m": (["direct", "A"], [1, 2])},
    # direct dropped from p and m; d is all direct and stays whole
    "remove_direct": {"p": (["A", "A", "B", "A", "B", "B"], [1, 2, 3, 4, 6, 7]), "d": (["direct"] * 2, [1, 2]),
                      "m": (["A"], [2])},
}


@pytest.mark.parametrize("transform", PATH_TRANSFORMS)
def test_path_transforms_keep_the_documented_touches_and_rerank(transform: str) -> None:
    touches = make_touches(TRANSFORM_JOURNEYS)
    # shuffled input: the transform must order by touch_rank itself
    got = apply_path_transform(touches.sample(frac=1.0, random_state=3), transform)
    for order_id, (channels, events) in EXPECTED_TRANSFORMS[transform].items():
        rows = got[got["order_id"] == order_id]
        assert rows["channel"].tolist() == channels, f"{transform}: channels of {order_id}"
        assert rows["event_id"].tolist() == [f"{order_id}_e{i}" for i in events], f"{transform}: events of {order_id}"
        assert rows["touch_rank"].tolist() == list(range(1, len(channels) + 1)), f"{transform}: ranks of {order_id}"
        assert (rows["touch_count"] == len(channels)).all(), f"{transform}: touch_count of {order_id}"


def test_frequency_transform_counts_touches_per_channel() -> None:
    got = apply_path_transform(make_touches(TRANSFORM_JOURNEYS), "frequency")
    frequency = {(r.order_id, r.channel): r.frequency for r in got.itertuples()}
    # p: A at e1, e2, e4 (3); B at e3, e6, e7 (3); direct at e5 (1); d: direct twice; m: one each
    assert frequency == {("p", "A"): 3, ("p", "B"): 3, ("p", "direct"): 1, ("d", "direct"): 2,
                         ("m", "direct"): 1, ("m", "A"): 1}


def test_path_transform_works_on_training_paths_and_rejects_unknown_names() -> None:
    paths, _ = make_paths([("AAB", True), ("BB", False)])
    got = apply_path_transform(paths, "unique", journey_column="journey_id", rank_column="step")
    assert got[["journey_id", "step", "channel"]].values.tolist() == [["j0", 1, "A"], ["j0", 2, "B"],
                                                                       ["j1", 1, "B"]]
    with pytest.raises(ValueError, match="unknown path transform"):
        apply_path_transform(paths, "dedupe", journey_column="journey_id", rank_column="step")


# ---------------------------------------------------------------------------------------------------------
# Markov chain
# ---------------------------------------------------------------------------------------------------------


def brute_force_conversion(matrix: pd.DataFrame, removed: list[str]) -> float:
    """P(conversion | start) by power iteration of the row-stochastic matrix, transitions into `removed`
    states redirected to (null): independent of the linear solve in the model."""
    p = matrix.copy()
    for state in removed:
        p[NULL] += p[state]
        p[state] = 0.0
    power = p.to_numpy()
    for _ in range(60):  # P^(2^60): every transient mass has been absorbed
        power = power @ power
    return float(power[p.index.get_loc(START), p.columns.get_loc(CONVERSION)])


# Paths:  j0 A>B>conv   j1 A>null   j2 B>C>conv   j3 C>null
# Counts: start->A 2, start->B 1, start->C 1 | A->B 1, A->null 1 | B->conv 1, B->C 1 | C->conv 1, C->null 1
# P:      start: A 1/2, B 1/4, C 1/4;  A: B 1/2, null 1/2;  B: conv 1/2, C 1/2;  C: conv 1/2, null 1/2
# Absorption x(s) = P(conv | s): x_C = 1/2; x_B = 1/2 + 1/2 x_C = 3/4; x_A = 1/2 x_B = 3/8
#   P(conv) = 1/2 * 3/8 + 1/4 * 3/4 + 1/4 * 1/2 = 3/16 + 3/16 + 2/16 = 1/2  (= 2 of 4 journeys converted)
# Remove A: start->A goes to null: 1/4 * 3/4 + 1/4 * 1/2 = 5/16        -> effect 1 - (5/16)/(1/2) = 3/8
# Remove B: x_A = 0 (A->B lost), x_C = 1/2: 1/4 * 1/2 = 1/8             -> effect 1 - (1/8)/(1/2) = 3/4
# Remove C: x_B = 1/2, x_A = 1/4: 1/2 * 1/4 + 1/4 * 1/2 = 1/4           -> effect 1 - (1/4)/(1/2) = 1/2
THREE_CHANNEL_PATHS = [("AB", True), ("A", False), ("BC", True), ("C", False)]


def test_markov_three_channel_example_by_hand() -> None:
    model = MarkovModel.fit(*make_paths(THREE_CHANNEL_PATHS))
    labels = [START, "A", "B", "C", CONVERSION, NULL]
    expected = pd.DataFrame([
        [0, 0.5, 0.25, 0.25, 0, 0],   # start
        [0, 0, 0.5, 0, 0, 0.5],       # A
        [0, 0, 0, 0.5, 0.5, 0],       # B
        [0, 0, 0, 0, 0.5, 0.5],       # C
        [0, 0, 0, 0, 1, 0],           # conversion (absorbing)
        [0, 0, 0, 0, 0, 1],           # null (absorbing)
    ], index=labels, columns=labels, dtype=float)
    pd.testing.assert_frame_equal(model.transition_matrix, expected, atol=1e-12)
    assert model.conversion_probability == pytest.approx(0.5, abs=1e-9)
    assert model.removal_effects.to_dict() == pytest.approx({"A": 3 / 8, "B": 3 / 4, "C": 1 / 2}, abs=1e-9)
    # cross-check against power iteration of the same matrix
    assert brute_force_conversion(model.transition_matrix, []) == pytest.approx(0.5, abs=1e-9)
    for channel, effect in model.removal_effects.items():
        removed = brute_force_conversion(model.transition_matrix, [channel])
        assert 1 - removed / 0.5 == pytest.approx(effect, abs=1e-9), channel
    assert markov_removal_effects(*make_paths(THREE_CHANNEL_PATHS)).equals(model.removal_effects)


def test_markov_handles_loops_exactly() -> None:
    # j0 A>B>A>conv  j1 B>null  j2 A>A>null
    # start: A 2/3, B 1/3 | A: B 1/4 (j0), conv 1/4 (j0), A 1/4 (j2), null 1/4 (j2) | B: A 1/2, null 1/2
    # x_A = 1/4 x_B + 1/4 + 1/4 x_A;  x_B = 1/2 x_A  ->  x_A = 1/8 x_A + 1/4 + 1/4 x_A -> 5/8 x_A = 1/4
    #   x_A = 2/5, x_B = 1/5, P(conv) = 2/3 * 2/5 + 1/3 * 1/5 = 4/15 + 1/15 = 1/3
    # Remove B: x_A = 1/4 + 1/4 x_A -> x_A = 1/3, P = 2/3 * 1/3 = 2/9  -> effect 1 - (2/9)/(1/3) = 1/3
    # Remove A: nothing reaches conversion                               -> effect 1
    model = MarkovModel.fit(*make_paths([("ABA", True), ("B", False), ("AA", False)]))
    assert model.conversion_probability == pytest.approx(1 / 3, abs=1e-12)
    assert model.removal_effects.to_dict() == pytest.approx({"A": 1.0, "B": 1 / 3}, abs=1e-12)
    assert brute_force_conversion(model.transition_matrix, []) == pytest.approx(1 / 3, abs=1e-9)
    assert brute_force_conversion(model.transition_matrix, ["B"]) == pytest.approx(2 / 9, abs=1e-9)


# Paths: j0 A>B>conv  j1 A>B>null  j2 B>A>conv  j3 A>conv
ORDER_TWO_PATHS = [("AB", True), ("AB", False), ("BA", True), ("A", True)]


def test_markov_order_two_example_by_hand() -> None:
    # States = the last two channels: A, B (first step), A > B, B > A.
    # start: A 3/4, B 1/4 | A: A>B 2/3 (j0, j1), conv 1/3 (j3) | B: B>A 1 | A>B: conv 1/2, null 1/2 | B>A: conv 1
    # x_{A>B} = 1/2, x_A = 2/3 * 1/2 + 1/3 = 2/3, x_{B>A} = 1, x_B = 1
    #   P(conv) = 3/4 * 2/3 + 1/4 * 1 = 3/4   (= 3 of 4 journeys)
    # Remove A (states A, A>B, B>A): start->A and B->B>A go to null          -> P 0, effect 1
    # Remove B (states B, A>B, B>A): x_A = 1/3, P = 3/4 * 1/3 = 1/4          -> effect 1 - (1/4)/(3/4) = 2/3
    model = MarkovModel.fit(*make_paths(ORDER_TWO_PATHS), order=2)
    labels = [START, "A", "B", "A > B", "B > A", CONVERSION, NULL]
    expected = pd.DataFrame(0.0, index=labels, columns=labels)
    for (source, target), p in {(START, "A"): 0.75, (START, "B"): 0.25, ("A", "A > B"): 2 / 3,
                                ("A", CONVERSION): 1 / 3, ("B", "B > A"): 1.0, ("A > B", CONVERSION): 0.5,
                                ("A > B", NULL): 0.5, ("B > A", CONVERSION): 1.0, (CONVERSION, CONVERSION): 1.0,
                                (NULL, NULL): 1.0}.items():
        expected.loc[source, target] = p
    pd.testing.assert_frame_equal(model.transition_matrix, expected, atol=1e-12)
    assert model.conversion_probability == pytest.approx(0.75, abs=1e-9)
    assert model.removal_effects.to_dict() == pytest.approx({"A": 1.0, "B": 2 / 3}, abs=1e-9)
    for channel, effect in model.removal_effects.items():
        removed = [s for s in labels[1:-2] if channel in s.split(" > ")]
        assert 1 - brute_force_conversion(model.transition_matrix, removed) / 0.75 == pytest.approx(effect, abs=1e-9)
    # First order on the same paths differs: A: B 1/2, conv 1/2; B: conv 1/3, null 1/3, A 1/3
    # x_A = 1/2 + 1/2 x_B, x_B = 1/3 + 1/3 x_A -> x_A = 4/5, x_B = 3/5, P = 3/4 * 4/5 + 1/4 * 3/5 = 3/4
    # Remove B: x_A = 1/2, P = 3/8 -> 1/2;  remove A: x_B = 1/3, P = 1/12 -> 1 - 1/9 = 8/9
    first = MarkovModel.fit(*make_paths(ORDER_TWO_PATHS))
    assert first.conversion_probability == pytest.approx(0.75, abs=1e-9)
    assert first.removal_effects.to_dict() == pytest.approx({"A": 8 / 9, "B": 0.5}, abs=1e-9)


def test_markov_without_conversions_and_with_bad_inputs() -> None:
    model = MarkovModel.fit(*make_paths([("AB", False), ("B", False)]))
    assert model.conversion_probability == 0.0
    assert model.removal_effects.to_dict() == {"A": 0.0, "B": 0.0}
    paths, converted = make_paths([("AB", True)])
    with pytest.raises(ValueError, match="no flag"):
        MarkovModel.fit(paths, converted.iloc[:0])
    with pytest.raises(ValueError, match="order"):
        MarkovModel.fit(paths, converted, order=0)


def test_markov_matches_power_iteration_on_random_paths() -> None:
    paths, converted = random_paths(np.random.default_rng(5), n_journeys=500, n_channels=5)
    model = MarkovModel.fit(paths, converted)
    assert model.conversion_probability == pytest.approx(brute_force_conversion(model.transition_matrix, []),
                                                         abs=1e-9)
    for channel, effect in model.removal_effects.items():
        removed = brute_force_conversion(model.transition_matrix, [channel])
        assert 1 - removed / model.conversion_probability == pytest.approx(effect, abs=1e-9), channel


# ---------------------------------------------------------------------------------------------------------
# Shapley value
# ---------------------------------------------------------------------------------------------------------


def permutation_shapley(model: ShapleyModel) -> dict[str, float]:
    """Textbook Shapley: average marginal contribution over all orderings of the channels."""
    channels = list(model.channels)
    totals = dict.fromkeys(channels, 0.0)
    orderings = list(itertools.permutations(channels))
    for ordering in orderings:
        for i, channel in enumerate(ordering):
            totals[channel] += model.coalition_value(ordering[: i + 1]) - model.coalition_value(ordering[:i])
    return {c: t / len(orderings) for c, t in totals.items()}


def test_shapley_two_channels_by_hand() -> None:
    # converting sets: {A} x2, {B} x1, {A,B} x1 (j3 is A>B>A: a set, repeats ignored); {B} x3 not converting
    # v(A) = 2, v(B) = 1, v(AB) = 2 + 1 + 1 = 4
    # phi_A = 1/2 (v(A) - 0) + 1/2 (v(AB) - v(B)) = 1 + 3/2 = 2.5
    # phi_B = 1/2 (v(B) - 0) + 1/2 (v(AB) - v(A)) = 1/2 + 1 = 1.5     (sum 4 = v(AB))
    model = ShapleyModel.fit(*make_paths([("A", True), ("AA", True), ("B", True), ("ABA", True),
                                          ("B", False), ("BB", False), ("B", False)]))
    assert model.values.to_dict() == pytest.approx({"A": 2.5, "B": 1.5}, abs=1e-12)
    assert model.grand_coalition_value == 4.0
    assert model.coalition_value({"A"}) == 2.0
    assert model.coalition_value({"B"}) == 1.0
    assert permutation_shapley(model) == pytest.approx(model.values.to_dict(), abs=1e-12)


def test_shapley_three_channels_by_hand() -> None:
    # converting sets: {A} 1, {A,B} 2, {A,B,C} 3, {C} 1, {B,C} 1 (8); non-converting {B} 1, {C} 1
    # v(A)=1 v(B)=0 v(C)=1 v(AB)=1+2=3 v(AC)=1+1=2 v(BC)=1+1=2 v(ABC)=8
    # weights: |S|=0 -> 1/3, |S|=1 -> 1/6, |S|=2 -> 1/3
    # phi_A = 1/3*1 + 1/6*(3-0) + 1/6*(2-1) + 1/3*(8-2) = 1/3 + 1/2 + 1/6 + 2 = 3
    # phi_B = 1/3*0 + 1/6*(3-1) + 1/6*(2-1) + 1/3*(8-2) = 1/3 + 1/6 + 2 = 2.5
    # phi_C = 1/3*1 + 1/6*(2-1) + 1/6*(2-0) + 1/3*(8-3) = 1/3 + 1/6 + 1/3 + 5/3 = 2.5
    # closed form: phi_A = 1 + 2/2 + 3/3 = 3, phi_B = 2/2 + 3/3 + 1/2 = 2.5, phi_C = 3/3 + 1 + 1/2 = 2.5
    model = ShapleyModel.fit(*make_paths([
        ("A", True), ("AB", True), ("BA", True), ("ABC", True), ("CBA", True), ("CAB", True),
        ("C", True), ("BC", True), ("B", False), ("CC", False),
    ]))
    assert model.values.to_dict() == pytest.approx({"A": 3.0, "B": 2.5, "C": 2.5}, abs=1e-12)
    assert model.grand_coalition_value == 8.0
    assert {c: model.coalition_value(c) for c in ["A", "B", "C", "AB", "AC", "BC", "ABC"]} == {
        "A": 1.0, "B": 0.0, "C": 1.0, "AB": 3.0, "AC": 2.0, "BC": 2.0, "ABC": 8.0}
    assert permutation_shapley(model) == pytest.approx(model.values.to_dict(), abs=1e-12)
    assert abs(model.values.sum() - model.grand_coalition_value) < 1e-12
    assert shapley_values(*make_paths([("A", True)])).to_dict() == {"A": 1.0}


def test_shapley_is_efficient_and_exact_on_many_channels() -> None:
    # 15 channels: no 2^15 enumeration in the model; efficiency to 1e-12 (relative to ~thousands)
    paths, converted = random_paths(np.random.default_rng(11), n_journeys=20_000, n_channels=15)
    model = ShapleyModel.fit(paths, converted)
    assert len(model.values) == 15
    assert model.grand_coalition_value == float(converted.sum())
    assert abs(model.values.sum() - model.grand_coalition_value) <= 1e-12 * model.grand_coalition_value
    assert (model.values >= 0).all()
    # exactness against the textbook formula on a 5-channel sample
    small = ShapleyModel.fit(*random_paths(np.random.default_rng(12), n_journeys=300, n_channels=5))
    assert permutation_shapley(small) == pytest.approx(small.values.to_dict(), abs=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Data-driven credits
# ---------------------------------------------------------------------------------------------------------


def test_data_driven_credits_share_the_order_by_channel_value() -> None:
    touches = make_touches({
        "o1": ["A", "B", "A"],      # A 3/8, B 3/4 -> A (3/8)/(9/8) = 1/3, B 2/3 (repeats do not count twice)
        "o2": ["C"],                # one channel -> 1
        "o3": ["A", "X"],           # X unknown to the model (0) -> A 1, X 0
        "o4": ["Z", "Z", "Y"],      # Z, Y worth 0 -> linear: Z 2/3, Y 1/3
    })
    values = pd.Series({"A": 3 / 8, "B": 3 / 4, "C": 1 / 2, "Z": 0.0, "Y": 0.0})
    got = data_driven_credits(touches, values)
    assert list(got.columns) == ["order_id", "channel", "campaign_id", "credit"]
    assert got["campaign_id"].isna().all()
    credit = {(r.order_id, r.channel): r.credit for r in got.itertuples()}
    assert credit == pytest.approx({("o1", "A"): 1 / 3, ("o1", "B"): 2 / 3, ("o2", "C"): 1.0, ("o3", "A"): 1.0,
                                    ("o3", "X"): 0.0, ("o4", "Y"): 1 / 3, ("o4", "Z"): 2 / 3}, abs=1e-12)


def test_data_driven_credits_fall_back_to_linear_when_every_value_is_zero() -> None:
    touches = make_touches({"o1": ["A", "B", "B", "C"], "o2": ["A"]})
    got = data_driven_credits(touches, pd.Series({"A": 0.0, "B": 0.0, "C": 0.0}))
    credit = {(r.order_id, r.channel): r.credit for r in got.itertuples()}
    # linear: 1/4 per touch, B has two touches
    assert credit == pytest.approx({("o1", "A"): 0.25, ("o1", "B"): 0.5, ("o1", "C"): 0.25, ("o2", "A"): 1.0})
    empty = data_driven_credits(touches, pd.Series(dtype=float))
    assert empty.groupby("order_id")["credit"].sum().tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Every model on a large random table
# ---------------------------------------------------------------------------------------------------------

CHANNELS = np.array(["ad", "email", "sms", "push", "social", "seo", "direct"])


def random_paths(rng: np.random.Generator, *, n_journeys: int, n_channels: int) -> tuple[pd.DataFrame, pd.Series]:
    lengths = rng.integers(1, 7, size=n_journeys)
    journey = np.repeat(np.arange(n_journeys), lengths)
    step = np.concatenate([np.arange(1, n + 1) for n in lengths])
    names = np.array([f"c{i:02d}" for i in range(n_channels)])
    paths = pd.DataFrame({"journey_id": pd.Series(journey).map("j{}".format), "step": step,
                          "channel": names[rng.integers(0, n_channels, size=len(journey))]})
    converted = pd.Series(rng.random(n_journeys) < 0.3, index=[f"j{i}" for i in range(n_journeys)])
    return paths, converted


def random_touches(rng: np.random.Generator, n_orders: int) -> pd.DataFrame:
    counts = rng.integers(1, 9, size=n_orders)
    order = np.repeat(np.arange(n_orders), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(order)) - starts + 1
    order_at = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, n_orders), unit="s")
    # ages decrease with rank so ranks follow time
    age = rng.random(len(order)) * 30
    age = age[np.lexsort((-age, order))]  # order stays grouped (already sorted), ages descend within it
    return pd.DataFrame({
        "order_id": pd.Series(order).map("o{}".format).astype("string"), "touch_rank": rank,
        "touch_count": np.repeat(counts, counts), "touch_at": order_at[order] - pd.to_timedelta(age, unit="D"),
        "order_at": order_at[order], "channel": CHANNELS[rng.integers(0, len(CHANNELS), size=len(order))],
        "campaign_id": None, "event_id": [f"e{i}" for i in range(len(order))],
    })


def test_every_model_sums_to_one_per_order_on_10k_orders() -> None:
    rng = np.random.default_rng(2026)
    touches = random_touches(rng, 10_000)
    n_orders = touches["order_id"].nunique()
    sums: dict[str, pd.Series] = {}
    for transform in PATH_TRANSFORMS:
        transformed = apply_path_transform(touches, transform)
        for model in HEURISTIC_MODELS:
            credited = heuristic_credits(transformed, model)
            sums[f"{transform}/{model}"] = credited.groupby("order_id")["credit"].sum()
    # data-driven: converting journeys are the orders' paths, plus 5k non-converting journeys
    training = touches.rename(columns={"order_id": "journey_id", "touch_rank": "step"})[["journey_id", "step",
                                                                                          "channel"]]
    extra, _ = random_paths(rng, n_journeys=5_000, n_channels=3)
    extra["journey_id"] = "n" + extra["journey_id"]
    extra["channel"] = CHANNELS[extra["channel"].str[1:].astype(int).to_numpy()]
    paths = pd.concat([training, extra], ignore_index=True)
    converted = pd.Series(paths["journey_id"].str.startswith("o").to_numpy(), index=paths["journey_id"])
    converted = converted[~converted.index.duplicated()]
    values = {"markov": MarkovModel.fit(paths, converted).removal_effects,
              "shapley": ShapleyModel.fit(paths, converted).values}
    for model, channel_values in values.items():
        sums[model] = data_driven_credits(touches, channel_values).groupby("order_id")["credit"].sum()
    # speed is measured by the benchmark, never by a timed test (those flake)
    for name, per_order in sums.items():
        assert len(per_order) == n_orders, f"{name}: every order credited"
        worst = float((per_order - 1.0).abs().max())
        assert worst <= 1e-12, f"{name}: credits off by {worst} for some order"


def test_packed_unique_rows_equal_numpys_unique_rows() -> None:
    import numpy as np

    from crm_pipeline.attribution.models import _unique_rows

    rng = np.random.default_rng(3)
    for order in (1, 2, 3):
        lags = rng.integers(-1, 12, size=(5000, order))
        keys, inverse = _unique_rows(lags, 12)
        expected_keys, expected_inverse = np.unique(lags, axis=0, return_inverse=True)
        assert (keys == expected_keys).all() and (inverse == expected_inverse.reshape(-1)).all()
