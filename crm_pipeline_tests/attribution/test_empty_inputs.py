"""Attribution on empty inputs: a shop without an events source (orders, no touches) and a day without orders.

Inputs are zero-row (or touch-less) partitions as the IO manager hands them to the assets; the expected rows are
written out by hand. Every order without a touch is credited 1 to `(unattributed)` under every model, so the
day's attributed revenue still reconciles to its net revenue.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from crm_pipeline import checks
from crm_pipeline.attribution.assets import attributed_revenue_reconciles, credits_sum_to_one
from crm_pipeline.attribution.credits import ORDER_ATTRIBUTION_SCHEMA, channel_roas, order_attribution
from crm_pipeline.attribution.journeys import (
    JOURNEY_TOUCHES_SCHEMA,
    JOURNEYS_SCHEMA,
    TOUCHES_SCHEMA,
    JourneyConfig,
    extract_touches,
    journey_touches,
    journeys_table,
)
from crm_pipeline.attribution.models import MODELS
from crm_pipeline.attribution.training import (
    CHANNEL_MODEL_VALUES_SCHEMA,
    CONVERTING_PATHS_SCHEMA,
    MARKOV_TRANSITIONS_SCHEMA,
    PATH_SUMMARY_SCHEMA,
    PERSON_DAY_PATHS_SCHEMA,
    fit_models,
    path_summary,
    update_converting_paths,
    update_person_day_paths,
)
from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.metadata import arrow_table
from crm_pipeline_tests.conftest import records, stored

D = dt.date(2026, 10, 31)
CONFIG = JourneyConfig()
IDENTITY = stored(IDENTITY_MAP_SCHEMA, [
    {"identifier_type": "customer_id", "identifier": c, "person_id": p, "is_refused": False}
    for c, p in (("C1", "P1"), ("C2", "P2"))])
ORDER_COLUMNS = ["order_id", "ordered_at", "net_revenue", "customer_id", "email_hash", "anonymous_id", "device_id"]
ORDERS = stored(CLEAN_SCHEMAS["orders"], [
    {"order_id": "o1", "ordered_at": pd.Timestamp("2026-10-31T09:00Z"), "net_revenue": 60.0, "customer_id": "C1"},
    {"order_id": "o2", "ordered_at": pd.Timestamp("2026-10-31T17:30Z"), "net_revenue": 15.5, "customer_id": "C2"},
])[ORDER_COLUMNS]
NO_ORDERS = ORDERS.iloc[0:0]
NO_TOUCHES = stored(TOUCHES_SCHEMA, window=True)  # the 30-day touch window of a shop without events


def _written(frame: pd.DataFrame, schema) -> bool:
    table = arrow_table(frame, schema)
    return table.schema == schema and checks.schema_is_declared(dg.AssetKey("x"), table, schema).passed


def _read_back(frame: pd.DataFrame, schema) -> pd.DataFrame:
    """`frame` as the next asset reads it: written with its schema, read back."""
    return arrow_table(frame, schema).to_pandas()


def test_no_events_give_no_touches():
    touches = extract_touches(stored(CLEAN_SCHEMAS["events"]), IDENTITY, CONFIG)
    assert touches.empty and _written(touches, TOUCHES_SCHEMA)


def test_orders_without_touches_have_empty_journeys_credited_to_unattributed():
    rows, persons = journey_touches(ORDERS, NO_TOUCHES, IDENTITY, CONFIG, PersonRemap.none())
    assert rows.empty and _written(rows, JOURNEY_TOUCHES_SCHEMA)
    journeys = journeys_table(ORDERS, persons, rows)
    assert records(journeys[["order_id", "person_id", "net_revenue", "count_touches", "count_channels",
                             "channel_path", "days_from_first_touch"]]) == [
        ("o1", "P1", 60.0, 0, 0, None, None), ("o2", "P2", 15.5, 0, 0, None, None)]
    assert _written(journeys, JOURNEYS_SCHEMA)

    credits = order_attribution(journeys[["order_id", "net_revenue"]], _read_back(rows, JOURNEY_TOUCHES_SCHEMA),
                                models=MODELS, channel_values=stored(CHANNEL_MODEL_VALUES_SCHEMA))
    # every order x model: credit 1 to (unattributed), its whole net revenue
    assert records(credits) == [(o, m, "(unattributed)", None, 1.0, revenue) for o, revenue in (("o1", 60.0),
                                                                                                ("o2", 15.5))
                                for m in sorted(MODELS)]
    assert _written(credits, ORDER_ATTRIBUTION_SCHEMA)
    assert credits_sum_to_one(credits, journeys, MODELS).passed
    reconciles = attributed_revenue_reconciles(credits, journeys, MODELS)
    assert reconciles.passed and reconciles.metadata["net_revenue"].value == 75.5

    costs = stored(CLEAN_SCHEMAS["costs"], [{"date": D, "cost_type": "media", "objective": "acquisition",
                                             "channel": "ppc", "amount": 20.0, "currency": "USD"}])
    roas = channel_roas(credits, costs, MODELS).set_index(["model", "channel"])
    # spend on a channel that earned nothing shows ROAS 0; (unattributed) has no cost: no ROAS
    assert records(roas.loc["linear"].reset_index()) == [("(unattributed)", 75.5, 0.0, None), ("ppc", 0.0, 20.0, 0.0)]


def test_a_day_without_orders_attributes_nothing_and_still_reconciles():
    rows, persons = journey_touches(NO_ORDERS, NO_TOUCHES, IDENTITY, CONFIG, PersonRemap.none())
    journeys = journeys_table(NO_ORDERS, persons, rows)
    assert journeys.empty and _written(journeys, JOURNEYS_SCHEMA)
    credits = order_attribution(journeys[["order_id", "net_revenue"]], _read_back(rows, JOURNEY_TOUCHES_SCHEMA),
                                models=MODELS, channel_values=stored(CHANNEL_MODEL_VALUES_SCHEMA))
    assert credits.empty and _written(credits, ORDER_ATTRIBUTION_SCHEMA)
    assert credits_sum_to_one(credits, journeys, MODELS).passed
    assert attributed_revenue_reconciles(credits, journeys, MODELS).passed
    roas = channel_roas(credits, stored(CLEAN_SCHEMAS["costs"]), MODELS)
    assert roas.empty


def test_training_states_and_models_without_touches():
    journeys = stored(JOURNEYS_SCHEMA, [{"order_id": "o1", "person_id": "P1",
                                         "ordered_at": pd.Timestamp("2026-10-31T09:00Z"), "net_revenue": 60.0,
                                         "count_touches": 0, "count_channels": 0}])
    converting = update_converting_paths(None, journeys, D)  # an order without touches trains nothing
    person_days = update_person_day_paths(None, stored(TOUCHES_SCHEMA), D)
    assert converting.empty and _written(converting, CONVERTING_PATHS_SCHEMA)
    assert person_days.empty and _written(person_days, PERSON_DAY_PATHS_SCHEMA)

    values, transitions, counts = fit_models(converting, person_days)
    assert values.empty and transitions.empty
    assert counts == {"training_converting_journeys": 0, "training_non_converting_journeys": 0}
    assert _written(values, CHANNEL_MODEL_VALUES_SCHEMA) and _written(transitions, MARKOV_TRANSITIONS_SCHEMA)
    assert checks.transitions_are_stochastic(dg.AssetKey("x"), transitions).passed
    summary = path_summary(converting, person_days)
    assert summary.empty and _written(summary, PATH_SUMMARY_SCHEMA)


def test_training_states_keep_the_window_through_days_without_touches():
    previous = stored(CONVERTING_PATHS_SCHEMA, [
        {"order_id": "o-in", "person_id": "P1", "order_date": D - dt.timedelta(days=89), "channel_path": "seo",
         "net_revenue": 10.0},
        {"order_id": "o-out", "person_id": "P2", "order_date": D - dt.timedelta(days=90), "channel_path": "ppc",
         "net_revenue": 20.0}])
    converting = update_converting_paths(previous, stored(JOURNEYS_SCHEMA), D)
    assert records(converting) == [("o-in", "P1", D - dt.timedelta(days=89), "seo", 10.0)]
    days = stored(PERSON_DAY_PATHS_SCHEMA, [
        {"person_id": "P3", "touch_date": D - dt.timedelta(days=1), "channel_path": "email > seo",
         "count_touches": 2},
        {"person_id": "P4", "touch_date": D - dt.timedelta(days=90), "channel_path": "ppc", "count_touches": 1}])
    person_days = update_person_day_paths(days, stored(TOUCHES_SCHEMA), D)
    assert records(person_days) == [("P3", D - dt.timedelta(days=1), "email > seo", 2)]
    # the models train on what the window still holds: P1's converting seo journey, P3's non-converting one
    values, _, counts = fit_models(converting, person_days)
    assert counts["training_converting_journeys"] == 1 and counts["training_non_converting_journeys"] == 1
    assert set(values["channel"]) == {"email", "seo"}
