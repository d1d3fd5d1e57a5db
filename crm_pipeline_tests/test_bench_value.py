"""bench/value_kpis.py at a tiny scale: its builders give every input with its asset's declared columns and
types, and every Retention and Monetise KPI (and ad_conversion_rate) computes its rows on them. The benchmark's
speed is measured by the script, never here."""

import dataclasses
import datetime as dt
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.kpis.framework import KpiInput
from crm_pipeline.kpis.states import ORDER_BOOK_DAYS
from crm_pipeline.metadata import arrow_table
from crm_pipeline_tests.kpis.test_empty_inputs import SCHEMAS

_spec = importlib.util.spec_from_file_location(
    "bench_value_kpis", Path(__file__).resolve().parents[1] / "bench" / "value_kpis.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

D = bench.D


@pytest.fixture(scope="module")
def world():
    return bench.World(scale=0.001, history_days=730)  # 200 persons, about 2.7k orders


@pytest.fixture(scope="module")
def results():
    return bench.run(scale=0.001, history_days=730)


def test_the_benchmark_covers_the_retention_and_monetise_kpis_and_ad_conversion_rate():
    names = {k.name for k in bench.benchmarked()}
    assert names == {k.name for k in ALL_KPIS if k.family in ("Retention", "Monetise")
                     or k.name == "ad_conversion_rate"}
    assert {"ltv", "aov_arpu", "registrant_retention", "clv_predictive"} <= names
    # every input those KPIs read has a builder, or is a KPI's own partition (computed by the KPI)
    keys = {tuple(i.key) for k in bench.benchmarked() for i in k.inputs}
    assert {k for k in keys if k not in bench.BUILDERS and not bench.Inputs._kpi(k)} == set()


def test_every_kpi_returns_its_rows_with_one_total_row(results):
    assert set(results) == {"customer_rfm", *(k.name for k in bench.benchmarked())}
    for kpi in bench.benchmarked():
        seconds, frame = results[kpi.name]
        assert seconds >= 0 and len(frame) >= 1, kpi.name
        dims = kpi.dimension_names
        totals = frame[dims].isna().all(axis=1) if dims else pd.Series(True, index=frame.index)
        assert int(totals.sum()) == 1, kpi.name
        assert arrow_table(frame, kpi.schema).schema == kpi.schema
    # 200 persons with two years of orders: somebody is an active customer at D
    assert len(results["customer_rfm"][1]) > 0


@pytest.mark.parametrize("key", sorted(set(SCHEMAS) & set(bench.BUILDERS)), ids="/".join)
def test_a_builder_gives_its_asset_columns_with_their_declared_types(world, key):
    table, dates = bench.BUILDERS[key](world, D - dt.timedelta(days=2), D)
    assert table.schema == SCHEMAS[key]
    assert dates is None or (len(dates) == len(table) and set(dates.to_pylist())
                             <= {str(D - dt.timedelta(days=i)) for i in range(3)})


@pytest.mark.parametrize("key", sorted(k for k in SCHEMAS if k[0] == "kpi"), ids="/".join)
def test_a_kpis_own_partition_has_its_schema(world, key):
    table = bench.Inputs(world, bench.settings_for(730)).table(key, D, D, window=False)
    assert table.schema == SCHEMAS[key] and table.num_rows >= 1


def test_the_order_book_holds_548_days_and_the_refunds_up_to_its_day(world):
    book = bench.book(world, D, D)[0].to_pandas()
    oldest = D - dt.timedelta(days=ORDER_BOOK_DAYS - 1)
    assert book["order_day"].min() >= oldest and book["order_day"].max() <= D
    assert len(book) == int(((world.o_day >= world.day_number(oldest)) & (world.o_day <= world.day_number(D))).sum())
    # fully refunded: the refunds up to the end of D add up to the net revenue (to the cent)
    assert (book["fully_refunded"] == (book["refunded"] >= book["net_revenue"] - 0.005)).all()
    assert (book.loc[book["count_refunds"] == 0, "refunded"] == 0).all()
    # the book of D-30 ends at D-30 and does not know the refunds made since: never more refunded than at D
    earlier = bench.book(world, D - dt.timedelta(days=30), D - dt.timedelta(days=30))[0].to_pandas()
    assert earlier["order_day"].max() <= D - dt.timedelta(days=30)
    both = earlier.merge(book, on="order_id", suffixes=("_then", "_now"))
    assert len(both) and (both["refunded_then"] <= both["refunded_now"]).all()
    assert (both["refunded_then"] < both["refunded_now"]).any() or not len(world.r_at)

def test_a_window_input_carries_each_rows_day_and_only_its_columns(world):
    inputs = bench.Inputs(world, bench.settings_for(730))
    frame = inputs.frame(KpiInput("email_sends", ("aggregates", "email_sends"), window_days=30))
    assert list(frame.columns) == [*SCHEMAS[("aggregates", "email_sends")].names, "date"]
    # one campaign a weekday: 2026-11-01..11-30 has 21 weekdays, each with 32% of the 200 persons (64)
    assert frame["date"].nunique() == 21 and len(frame) == 21 * 64
    shifted = inputs.frame(KpiInput("order_book", ("aggregates", "order_book"), columns=("person_id",),
                                    offset_days=30))
    assert list(shifted.columns) == ["person_id", "date"] and set(shifted["date"]) <= {"2026-10-31"}


def test_a_kpi_reading_an_input_without_a_builder_fails_loudly(world):
    kpi = next(k for k in bench.benchmarked() if k.name == "ltv")
    unknown = dataclasses.replace(kpi, inputs=(KpiInput("mystery", ("aggregates", "mystery")),))
    with pytest.raises(KeyError, match="no builder for the input aggregates/mystery"):
        bench.Inputs(world, bench.settings_for(730)).of(unknown)



def test_a_kpi_reading_its_own_previous_partition_gets_it_computed_by_the_kpi(world):
    ltv = next(k for k in bench.benchmarked() if k.name == "ltv")
    inputs = bench.Inputs(world, bench.settings_for(730))
    previous = inputs.frame(KpiInput("previous", ("kpi", "ltv"), offset_days=1))
    assert list(previous.columns) == [*ltv.schema.names, "date"] and set(previous["date"]) == {"2026-11-29"}
    # the total row and, per window (12m, 18m), its own row, 3 tenure and 4 frequency buckets: 1 + 2 x 8
    assert len(previous) == 17
