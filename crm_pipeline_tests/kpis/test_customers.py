"""Customers as of a day from the order book (docs/outputs.md 2.3), and the KPI inputs that read a state as of D-30."""

import datetime as dt

import dagster as dg
import pandas as pd

from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
from crm_pipeline.kpis.customers import active_customers, order_book_input, winback_candidates
from crm_pipeline.kpis.framework import KpiInput
from crm_pipeline.kpis.persons import PersonRemap

X = dt.date(2026, 12, 31)
BOOK = pd.DataFrame({
    "order_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o7"],
    "person_id": ["pa", "pb", "pb", "pc", "pd", "pe", "pf"],
    # pa: yesterday; pb: 100 d ago, and 10 d ago but fully refunded; pc: exactly 364 d ago; pd: 365 d ago (out);
    # pe: 90 d ago, partially refunded; pf: 89 d ago
    "order_day": [X - dt.timedelta(days=d) for d in (1, 100, 10, 364, 365, 90, 89)],
    "fully_refunded": [False, False, True, False, False, False, False],
})


def remap(*merges: tuple[str, str]) -> PersonRemap:
    return PersonRemap(pd.DataFrame({
        "change_date": [X] * len(merges), "kind": ["merge"] * len(merges),
        "kept_person_id": [m[0] for m in merges], "other_person_id": [m[1] for m in merges],
        "reason": ["test"] * len(merges)}, columns=IDENTITY_MERGES_SCHEMA.names))


def test_active_customers_have_an_order_non_refunded_at_x_in_the_last_365_days():
    assert sorted(active_customers(BOOK, X, PersonRemap.none())) == ["pa", "pb", "pc", "pe", "pf"]


def test_winback_candidates_last_bought_364_to_90_days_ago():
    # pb's order of 10 days ago is fully refunded: its latest non-refunded order is 100 days old
    assert sorted(winback_candidates(BOOK, X, PersonRemap.none())) == ["pb", "pc", "pe"]


def test_a_later_merge_makes_two_parts_one_person():
    # pf (89 days ago) merged into pc: their latest order is 89 days old, so no win-back candidate any more
    merged = remap(("pc", "pf"))
    assert sorted(active_customers(BOOK, X, merged)) == ["pa", "pb", "pc", "pe"]
    assert sorted(winback_candidates(BOOK, X, merged)) == ["pb", "pe"]


def test_a_state_as_of_d_minus_30_is_a_shifted_window_input():
    shifted = order_book_input("book_30", offset_days=30, columns=("order_id",))
    assert shifted.partition_mapping == dg.TimeWindowPartitionMapping(start_offset=-30, end_offset=-30)
    assert shifted.io_metadata == {"columns": ["order_id"], "window": True}
    assert shifted.window_text == " (at D-30)"
    week = KpiInput("events", ("ingest", "events"), window_days=7, offset_days=14)
    assert week.partition_mapping == dg.TimeWindowPartitionMapping(start_offset=-20, end_offset=-14)
    assert week.window_text == " (7 d to D-14)"
    same_day = KpiInput("orders", ("ingest", "orders"))
    assert (same_day.partition_mapping, same_day.io_metadata, same_day.window_text) == (None, None, "")
