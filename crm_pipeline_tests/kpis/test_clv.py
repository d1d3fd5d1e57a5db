"""Predictive CLV on hand-built order histories: the order history state, every buyer's summary (x, t, T,
monetary) with the traps, the predictions and the KPI, numbers worked out by hand."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
from crm_pipeline.kpis import clv_model
from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.clv import (
    CLV_PREDICTIONS_SCHEMA,
    HORIZON_DAYS,
    KPIS,
    buyer_summaries,
    clv_predictive,
    model_table,
    predict_clv,
)
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import (
    ORDER_BOOK_SCHEMA,
    ORDER_HISTORY_SCHEMA,
    update_order_book,
    update_order_history,
)
from crm_pipeline.metadata import arrow_table

TZ = "Europe/Berlin"
START = dt.date(2025, 6, 1)
LAST = 420  # the days run: START .. START + 420
# an order book of a year: the mechanism (the book's oldest day moves into the history) is the same for the
# pipeline's longer book, and a year keeps the hand-built history short
BOOK_DAYS = 365
KPI = KPIS[0]
FX = pd.DataFrame({"currency": ["EUR"], "rate_date": [START], "rate_to_reporting": [1.25]})
NO_CHANGES = PersonRemap.none()


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


def at(n: int, hour: str = "10:00") -> str:
    """A UTC timestamp on day START + n."""
    return f"{day(n).isoformat()}T{hour}Z"


# (order_id, customer_id, ordered_at (UTC), net revenue in USD)
ORDERS = [
    ("a1", "C1", at(0), 10.0), ("a2", "C1", at(0, "18:00"), 5.0),  # two orders on one day: one order day of 15
    ("a3", "C1", at(30), 20.0),  # refunded on day 410, after it left the book (day 395): stays counted
    ("a4", "C1", at(400), 40.0),
    ("b1", "C2", at(10), 100.0),  # fully refunded on day 20: no order day
    ("b2", "C2", at(50), 30.0),  # partially refunded: counted with its whole net revenue
    ("b3", "C2", at(200), 50.0),
    # Berlin is UTC+2 in June: 21:30 UTC is 23:30 on day 5, 22:30 UTC is 00:30 on day 6: two order days
    ("c1", "C3", at(5, "21:30"), 8.0), ("c2", "C3", at(5, "22:30"), 12.0),
    # P5 merges into P4 on day 390: their orders of day 380 make one order day, those of days 3 and 4 two
    ("d1", "C4", at(3), 10.0), ("e1", "C5", at(4), 7.0), ("e2", "C5", at(100), 20.0),
    ("d2", "C4", at(380), 5.0), ("e3", "C5", at(380), 6.0),
]
# (refund_id, order_id, day, amount in USD)
REFUNDS = [("r1", "b1", 20, 100.0), ("r2", "b2", 60, 10.0), ("r3", "a3", 410, 20.0)]
MERGE_DAY = 390  # P5 -> P4


def person_of(customer: str, n: int) -> str:
    return {"C1": "P1", "C2": "P2", "C3": "P3", "C4": "P4", "C5": "P4" if n >= MERGE_DAY else "P5"}[customer]


def identity_map(n: int) -> pd.DataFrame:
    customers = ["C1", "C2", "C3", "C4", "C5"]
    return pd.DataFrame({"identifier_type": "customer_id", "identifier": customers,
                         "person_id": [person_of(c, n) for c in customers], "is_refused": False})


def merges(n: int) -> pd.DataFrame:
    rows = [(day(n), "merge", "P4", "P5", "test")] if n == MERGE_DAY else []
    return pd.DataFrame(rows, columns=IDENTITY_MERGES_SCHEMA.names)


def local_day(ts: str) -> dt.date:
    return pd.Timestamp(ts).tz_convert(TZ).date()


def orders_of(n: int) -> pd.DataFrame:
    rows = [r for r in ORDERS if local_day(r[2]) == day(n)]
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "net_revenue"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    return frame.assign(net_revenue_original=frame["net_revenue"], gross_revenue=frame["net_revenue"],
                        discount_amount=0.0, cost_of_goods=None, currency="USD", categories="x",
                        email_hash=None, anonymous_id=None, device_id=None)


def refunds_of(n: int) -> pd.DataFrame:
    rows = [(r[0], r[1], "USD", r[3], r[3]) for r in REFUNDS if r[2] == n]
    return pd.DataFrame(rows, columns=["refund_id", "order_id", "currency", "amount", "amount_original"])


CHECKED_DAYS = (0, 5, 6, 20, 30, 60, 200, 364, 365, 366, 367, 368, 380, 389, 390, 394, 395, 396, 400, 410, LAST)


def eventful_days() -> list[int]:
    """The days on which a state can change: orders, refunds, the merge, the days orders reach the book's
    oldest day (taken into the history) and leave the book, plus the days the tests look at. On every other day
    both updates are no-ops (`test_a_quiet_day_changes_neither_state`), so they are skipped to keep this fast."""
    order_days = {(local_day(r[2]) - START).days for r in ORDERS}
    days = order_days | {r[2] for r in REFUNDS} | {MERGE_DAY} | {n + 364 for n in order_days} | {
        n + 365 for n in order_days} | set(CHECKED_DAYS)
    return sorted(n for n in days if n <= LAST)


def next_states(book, history, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The order book and the order history of day n from those of the day before, as the daily runs build
    them, through Parquet's types."""
    book, _ = update_order_book(book, orders_of(n), refunds_of(n), FX, identity_map(n), merges(n), TZ, "USD",
                                day(n) - dt.timedelta(days=BOOK_DAYS - 1))
    history, _ = update_order_history(history, book, merges(n), day(n), BOOK_DAYS)
    return arrow_table(book, ORDER_BOOK_SCHEMA).to_pandas(), arrow_table(history, ORDER_HISTORY_SCHEMA).to_pandas()


@pytest.fixture(scope="module")
def states() -> dict[int, tuple[pd.DataFrame, pd.DataFrame]]:
    out, book, history = {}, None, None
    for n in eventful_days():
        book, history = next_states(book, history, n)
        out[n] = (book, history)
    return out


def from_scratch(n: int) -> pd.DataFrame:
    """The summaries of day n straight from every order and refund, persons as of day n: the definition (an
    order is refunded at D when its refunds up to D total its net revenue), with refunds dated 365 days or more
    after their order's day left out, as documented."""
    orders = pd.DataFrame(ORDERS, columns=["order_id", "customer_id", "ordered_at", "net_revenue"])
    orders["day"] = orders["ordered_at"].map(local_day)
    orders = orders.loc[orders["day"] <= day(n)]
    refunds = pd.DataFrame(REFUNDS, columns=["refund_id", "order_id", "refund_day", "amount"])
    refunds = refunds.merge(orders[["order_id", "day"]], on="order_id")
    applied = refunds.loc[(refunds["refund_day"].map(day) <= day(n))
                          & (refunds["refund_day"].map(day) <= refunds["day"] + dt.timedelta(days=364))]
    refunded = orders["order_id"].map(applied.groupby("order_id")["amount"].sum()).fillna(0.0)
    kept = orders.loc[refunded < orders["net_revenue"] - 0.005]
    kept = kept.assign(person_id=[person_of(c, n) for c in kept["customer_id"]])
    rows = []
    for person, days in kept.groupby("person_id"):
        per_day = days.groupby("day")["net_revenue"].sum().sort_index()
        x = len(per_day) - 1
        rows.append({"person_id": person, "x": x, "t": (per_day.index[-1] - per_day.index[0]).days,
                     "T": (day(n) - per_day.index[0]).days,
                     "monetary": float(per_day.iloc[1:].sum() / x) if x else 0.0})
    return pd.DataFrame(rows, columns=["person_id", "x", "t", "T", "monetary"])


def summaries(states, n: int, remap: PersonRemap = NO_CHANGES) -> pd.DataFrame:
    book, history = states[n]
    return buyer_summaries(book, history, remap, day(n), BOOK_DAYS)


def test_summaries_count_order_days_with_the_traps(states):
    got = summaries(states, LAST).set_index("person_id")
    assert got.to_dict("index") == {
        # days 0 (10 + 5), 30 (20: refunded after it left the book), 400 (40)
        "P1": {"x": 2, "t": 400, "T": 420, "monetary": (20 + 40) / 2},
        # day 10 fully refunded: the first order day is 50 (30, partially refunded), then 200 (50)
        "P2": {"x": 1, "t": 150, "T": 370, "monetary": 50.0},
        # 23:30 and 00:30 Berlin time: two days, although both orders are on day 5 in UTC
        "P3": {"x": 1, "t": 1, "T": 415, "monetary": 12.0},
        # P4 and P5 merged: days 3 (10), 4 (7), 100 (20), 380 (5 + 6, one day)
        "P4": {"x": 3, "t": 377, "T": 417, "monetary": (7 + 20 + 11) / 3},
    }


def test_the_states_carried_day_by_day_give_the_summaries_computed_from_scratch(states):
    # around the first orders, refunds, the days orders leave the book (364-368, 394-396), the merge and the
    # late refund
    for n in CHECKED_DAYS:
        got = summaries(states, n)
        expected = from_scratch(n)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False,
                                      obj=f"summaries of day {n}")
    # what the history holds on the last day: the order days up to day 56 (= 420 - 364)
    history = states[LAST][1].set_index("person_id")
    assert history["count_order_days"].to_dict() == {"P1": 2, "P2": 1, "P3": 2, "P4": 2}
    assert history.loc["P4", "first_day_net_revenue"] == 10.0 and history.loc["P4", "net_revenue"] == 17.0
    assert history.loc["P1", "last_order_date"] == day(30)


def test_persons_merged_after_the_day_are_one_buyer(states):
    later = pd.DataFrame([(day(LAST + 5), "merge", "P1", "P3", "test")], columns=IDENTITY_MERGES_SCHEMA.names)
    got = summaries(states, LAST, PersonRemap(later)).set_index("person_id")
    assert sorted(got.index) == ["P1", "P2", "P4"]
    # P1's days 0 (15), 30 (20), 400 (40) and P3's days 5 (8), 6 (12)
    assert got.loc["P1"].to_dict() == {"x": 4, "t": 400, "T": 420, "monetary": (8 + 12 + 20 + 40) / 4}


def test_a_merge_of_two_histories_older_than_the_book_counts_a_shared_day_twice():
    # the documented limit of the summary state: it keeps no list of days, so a day on which both persons
    # ordered more than a year before their merge counts twice; first and last day and revenue stay exact
    history = pd.DataFrame({"person_id": ["P4", "P5"], "first_order_date": [day(3), day(3)],
                            "first_day_net_revenue": [10.0, 7.0], "count_order_days": [1, 2],
                            "net_revenue": [10.0, 27.0], "last_order_date": [day(3), day(100)]})
    book = arrow_table(pd.DataFrame(columns=ORDER_BOOK_SCHEMA.names), ORDER_BOOK_SCHEMA).to_pandas()
    merged, taken_in = update_order_history(history, book, merges(MERGE_DAY), day(MERGE_DAY), BOOK_DAYS)
    assert taken_in.empty
    assert merged.to_dict("records") == [{
        "person_id": "P4", "first_order_date": day(3), "first_day_net_revenue": 17.0, "count_order_days": 3,
        "net_revenue": 37.0, "last_order_date": day(100)}]


def test_a_quiet_day_changes_neither_state(states):
    # what lets the fixture skip days: a day without orders, refunds or merges whose oldest book day had no
    # orders leaves the book and the history as they were
    for before, quiet in ((6, 7), (200, 201), (380, 381)):
        assert quiet not in eventful_days()
        book, history = next_states(*states[before], quiet)
        pd.testing.assert_frame_equal(book, states[before][0])
        pd.testing.assert_frame_equal(history, states[before][1])


# ---------------------------------------------------------------------------------------------------------------
# predictions and the KPI

def cdnow_in_days() -> pd.DataFrame:
    """The CDNOW sample shipped by `lifetimes` as day-grain summaries (weeks x 7, rounded to whole days)."""
    from crm_pipeline_tests.kpis.test_clv_model import lifetimes_dataset

    cdnow = lifetimes_dataset("cdnow_customers_summary_with_transactions.csv")
    t = np.round(cdnow["t_x"] * 7).astype("int64")
    return pd.DataFrame({"person_id": [f"P{i:04d}" for i in cdnow["ID"]], "x": cdnow["x"].astype("int64"), "t": t,
                         "T": np.maximum(np.round(cdnow["T"] * 7).astype("int64"), t),
                         "monetary": cdnow["zbar"].astype(float)})


def kpi_table(predictions: pd.DataFrame, model: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    out = clv_predictive(predictions, model)
    frame = finalise(KPI, out.rows)
    assert all(c.passed for c in standard_checks(KPI, kpi_key(KPI), frame))
    return frame.assign(metric=frame["metric"].fillna("(total)")).set_index("metric"), dict(out.metadata)


def test_predictions_and_the_kpi_of_a_fitted_day():
    summaries = cdnow_in_days()
    predictions, fit = predict_clv(summaries)
    assert fit.error is None and fit.spend_excluded == 0
    arrow_table(predictions, CLV_PREDICTIONS_SCHEMA)  # the declared types, no null where none is allowed
    assert fit.bgnbd.persons == 2357 and fit.gamma_gamma.persons == 946
    assert fit.bgnbd.params == pytest.approx({"r": 0.2427, "alpha": 30.9, "a": 0.793, "b": 2.43}, rel=0.01)
    x, t, T, m = (summaries[c].to_numpy(dtype=float) for c in ("x", "t", "T", "monetary"))
    purchases = clv_model.expected_purchases(fit.bgnbd.params, HORIZON_DAYS, x, t, T)
    spend = clv_model.expected_spend(fit.gamma_gamma.params, x, m)
    assert predictions["expected_purchases_12m"].to_numpy() == pytest.approx(purchases, rel=1e-12)
    assert predictions["expected_value_12m"].to_numpy() == pytest.approx(purchases * spend, rel=1e-12)
    assert predictions.loc[predictions["x"] == 0, "p_alive"].eq(1.0).all()
    model = model_table(fit).set_index(["model", "parameter"])
    assert model.loc[("bg_nbd", "alpha"), "value"] == fit.bgnbd.params["alpha"]
    assert model["count_persons"].to_dict()[("gamma_gamma", "q")] == 946 and model["error"].isna().all()

    frame, metadata = kpi_table(predictions, model_table(fit))
    headline = frame.loc["(total)"]
    assert headline["numerator"] == pytest.approx((purchases * spend).sum()) and headline["denominator"] == 2357
    assert frame.loc["p_alive", "value"] == pytest.approx(predictions["p_alive"].mean())
    assert frame.loc["expected_purchases_12m", "unit"] == "count"
    assert frame.loc["expected_value_12m", "value"] == headline["value"]
    assert metadata["bg_nbd_r"].value == fit.bgnbd.params["r"] and metadata["fit_error"] == "-"
    assert metadata["clear_maximum"] is True and fit.bgnbd.clear_maximum and fit.gamma_gamma.clear_maximum
    assert metadata["gamma_gamma_v"].value == fit.gamma_gamma.params["v"]


@pytest.mark.parametrize(("summaries", "why"), [
    # one-time buyers only
    (pd.DataFrame({"person_id": ["P1", "P2"], "x": [0, 0], "t": [0, 0], "T": [40, 3], "monetary": [0.0, 0.0]}),
     "no buyer has a repeat order day"),
    # one repeat buyer: no maximum
    (pd.DataFrame({"person_id": ["P1", "P2"], "x": [2, 0], "t": [10, 0], "T": [30, 20], "monetary": [5.0, 0.0]}),
     "did not converge"),
    # repeat spend so spread that the mean of its distribution is infinite (Gamma-Gamma q <= 1)
    (cdnow_in_days().assign(monetary=lambda f: np.where(f["x"] > 0, 10.0 ** (f.index % 7), 0.0)), "<= 1"),
])
def test_a_day_the_models_cannot_fit_gives_null_values_and_says_why(summaries, why):
    predictions, fit = predict_clv(summaries)
    assert why in fit.error
    arrow_table(predictions, CLV_PREDICTIONS_SCHEMA)
    assert predictions[["expected_purchases_12m", "p_alive", "expected_value_12m"]].isna().all().all()
    assert predictions[["person_id", "x", "t", "T", "monetary"]].equals(summaries.reset_index(drop=True))
    model = model_table(fit)
    assert len(model) == 7 and model["value"].isna().all() and model["error"].eq(fit.error).all()
    frame, metadata = kpi_table(predictions, model)
    # every value null; the buyers are still counted
    assert frame["value"].isna().all() and frame["numerator"].isna().all()
    assert (frame["denominator"] == len(summaries)).all()
    assert metadata["fit_error"] == fit.error and metadata["bg_nbd_r"] == "-" and metadata["clear_maximum"] is False


def test_a_day_without_buyers_writes_zero_over_zero():
    empty = pd.DataFrame({"person_id": pd.Series([], dtype="string"), "x": pd.Series([], dtype="int64"),
                          "t": pd.Series([], dtype="int64"), "T": pd.Series([], dtype="int64"),
                          "monetary": pd.Series([], dtype=float)})
    predictions, fit = predict_clv(empty)
    assert fit.error == "FitError: no buyers at D" and predictions.empty
    frame, _ = kpi_table(predictions, model_table(fit))
    assert (frame["numerator"] == 0).all() and (frame["denominator"] == 0).all() and frame["value"].isna().all()


def test_no_buyers_at_all_in_the_states():
    book = arrow_table(pd.DataFrame(columns=ORDER_BOOK_SCHEMA.names), ORDER_BOOK_SCHEMA).to_pandas()
    history = arrow_table(pd.DataFrame(columns=ORDER_HISTORY_SCHEMA.names), ORDER_HISTORY_SCHEMA).to_pandas()
    summaries = buyer_summaries(book, history, NO_CHANGES, START)
    assert summaries.empty and list(summaries.columns) == ["person_id", "x", "t", "T", "monetary"]
