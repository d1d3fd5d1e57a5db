"""The trailing-window training states and the training set they give, on hand-built rows."""

import datetime as dt

import pandas as pd

from crm_pipeline.attribution.training import (
    path_summary,
    training_paths,
    update_converting_paths,
    update_person_day_paths,
)

D = dt.date(2026, 12, 31)


def test_converting_paths_keep_ninety_days_and_only_orders_with_touches():
    previous = pd.DataFrame({"order_id": ["old", "edge"], "person_id": ["P1", "P2"],
                             "order_date": [D - dt.timedelta(days=90), D - dt.timedelta(days=89)],
                             "channel_path": ["seo", "email > direct"], "net_revenue": [10.0, 30.0]})
    journeys = pd.DataFrame({"order_id": ["o1", "o2"], "person_id": ["P3", "P4"], "count_touches": [2, 0],
                             "channel_path": ["ppc > email", None], "net_revenue": [50.0, 20.0]})
    state = update_converting_paths(previous, journeys, D)
    # D-90 left the window (D-89..D is 90 days); o2 had no touch
    assert state["order_id"].tolist() == ["edge", "o1"]
    assert state["channel_path"].tolist() == ["email > direct", "ppc > email"]


def test_person_day_paths_order_touches_and_slide_the_window():
    touches = pd.DataFrame({
        "person_id": ["P1", "P1", "P2", None], "channel": ["email", "seo", "ppc", "display"],
        "touch_at": pd.to_datetime(["2026-12-31T10:00Z", "2026-12-31T09:00Z", "2026-12-31T08:00Z",
                                    "2026-12-31T08:00Z"]),
        "event_id": ["b", "a", "c", "d"],
    })
    previous = pd.DataFrame({"person_id": ["P1", "P9"], "touch_date": [D - dt.timedelta(days=1), D - dt.timedelta(days=90)],
                             "channel_path": ["direct", "seo"], "count_touches": [1, 1]})
    state = update_person_day_paths(previous, touches, D)
    assert state[["person_id", "channel_path", "count_touches"]].values.tolist() == [
        ["P1", "direct", 1], ["P1", "seo > email", 2], ["P2", "ppc", 1]]


def test_training_set_converting_orders_and_persons_without_an_order():
    converting = pd.DataFrame({"order_id": ["o1"], "person_id": ["P1"], "order_date": [D],
                               "channel_path": ["seo > email"]})
    person_days = pd.DataFrame({"person_id": ["P1", "P2", "P2"],
                                "touch_date": [D, D - dt.timedelta(days=3), D],
                                "channel_path": ["seo > email", "ppc", "display > ppc"], "count_touches": [2, 1, 2]})
    paths, converted = training_paths(converting, person_days)
    journeys = paths.groupby("journey_id", sort=False)["channel"].agg(list).to_dict()
    # P1 bought in the window: only its order's journey counts; P2's days join in date order
    assert journeys == {"o:o1": ["seo", "email"], "p:P2": ["ppc", "display", "ppc"]}
    assert paths.groupby("journey_id")["step"].agg(list).to_dict() == {"o:o1": [1, 2], "p:P2": [1, 2, 3]}
    assert converted.to_dict() == {"o:o1": True, "p:P2": False}


def test_path_summary_counts_conversions_and_revenue_per_transformed_path():
    converting = pd.DataFrame({"order_id": ["o1", "o2", "o3"], "person_id": ["P1", "P2", "P3"], "order_date": [D] * 3,
                               "channel_path": ["seo > seo > email", "seo > email", "ppc"],
                               "net_revenue": [10.0, 20.0, 5.0]})
    person_days = pd.DataFrame({"person_id": ["P4", "P5"], "touch_date": [D, D],
                                "channel_path": ["seo > email", "ppc > ppc"], "count_touches": [2, 2]})
    plain = path_summary(converting, person_days).set_index("channel_path")
    assert plain.loc["seo > email", ["count_journeys", "count_conversions", "count_non_conversions"]].tolist() == [
        2, 1, 1]
    assert plain.loc["seo > email", "net_revenue"] == 20.0 and plain.loc["seo > email", "conversion_rate"] == 0.5
    # "unique" collapses repeats: seo > seo > email joins seo > email, ppc > ppc joins ppc
    unique = path_summary(converting, person_days, "unique").set_index("channel_path")
    assert unique["count_journeys"].to_dict() == {"seo > email": 3, "ppc": 2}
    assert unique.loc["seo > email", "net_revenue"] == 30.0
    assert unique["path_rank"].to_dict() == {"seo > email": 1, "ppc": 2}
