"""Journey KPIs on hand-built days, with the numerators, denominators and values worked out by hand."""

import math

import pandas as pd
import pytest

from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.journey import KPIS
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline_tests.conftest import records

BY_NAME = {k.name: k for k in KPIS}

# o1: 3 channels / 5 touches, 10 days; o2: 1 channel / 1 touch, 2 days; o3: no touch; o4: 12 channels / 12 touches, 4 d
JOURNEYS = pd.DataFrame({
    "order_id": ["o1", "o2", "o3", "o4"], "net_revenue": [100.0, 50.0, 25.0, 10.0],
    "count_channels": [3, 1, 0, 12], "count_touches": [5, 1, 0, 12],
    "days_from_first_touch": [10.0, 2.0, None, 4.0],
})


def table(name: str, **inputs: pd.DataFrame) -> pd.DataFrame:
    kpi = BY_NAME[name]
    frame = finalise(kpi, kpi.compute(**inputs))
    assert all(c.passed for c in standard_checks(kpi, kpi_key(kpi), frame)), name
    return frame


def row(frame: pd.DataFrame, **dims: str | None) -> dict:
    match = pd.Series(True, index=frame.index)
    for name, value in dims.items():
        match &= frame[name].isna() if value is None else frame[name] == value
    assert match.sum() == 1, dims
    return frame.loc[match].iloc[0].to_dict()


def test_influences_per_order_by_hand():
    t = table("influences_per_order", journeys=JOURNEYS)
    # channels: (3 + 1 + 0 + 12) / 4 orders = 4.0; touches: (5 + 1 + 0 + 12) / 4 = 4.5
    total = row(t, metric=None, bucket=None)  # the headline: channels
    assert (total["numerator"], total["denominator"], total["value"], total["unit"]) == (16.0, 4.0, 4.0, "count")
    assert row(t, metric="touches", bucket=None)["value"] == 4.5
    # order shares: bucket 0 -> o3, 1 -> o2, 3 -> o1, 10+ -> o4: 1/4 each; the other buckets 0/4
    assert row(t, metric="order_share", bucket="3")["value"] == 0.25
    assert row(t, metric="order_share", bucket="10+")["numerator"] == 1.0
    assert row(t, metric="order_share", bucket="5")["value"] == 0.0
    assert len(t) == 1 + 2 + 11  # total, channels, touches, 11 buckets: fixed values every day


def test_influences_per_order_on_an_empty_day_writes_zero_over_zero():
    t = table("influences_per_order", journeys=JOURNEYS.iloc[0:0])
    total = row(t, metric=None, bucket=None)
    assert (total["numerator"], total["denominator"]) == (0.0, 0.0) and math.isnan(total["value"])
    assert len(t) == 14


def test_attributed_revenue_by_hand():
    credits = pd.DataFrame({
        "order_id": ["o1", "o1", "o2", "o1", "o2"], "model": ["linear", "linear", "linear", "first_touch",
                                                               "first_touch"],
        "channel": ["seo", "email", "(unattributed)", "seo", "(unattributed)"],
        "credit": [0.5, 0.5, 1.0, 1.0, 1.0], "attributed_revenue": [50.0, 50.0, 50.0, 100.0, 50.0],
    })
    t = table("attributed_revenue", journeys=JOURNEYS.iloc[:2], order_attribution=credits)
    assert row(t, model=None, channel=None)["value"] == 150.0  # net revenue of the day's orders
    assert row(t, model="linear", channel=None)["value"] == 150.0
    assert row(t, model="linear", channel="email")["numerator"] == 50.0
    assert pd.isna(row(t, model="linear", channel="email")["denominator"])  # count form
    assert row(t, model="markov", channel=None)["value"] == 0.0  # every model has its row every day
    assert len(t[t["channel"].isna()]) == 1 + 8


def test_time_to_conversion_by_hand():
    t = table("time_to_conversion", journeys=JOURNEYS)
    # orders with touches: 10, 2, 4 days -> median 4, mean 16 / 3
    median = row(t, metric="median_days")
    assert (pd.isna(median["numerator"]), median["denominator"], median["value"]) == (True, 3.0, 4.0)
    assert row(t, metric="mean_days")["value"] == pytest.approx(16 / 3)
    assert row(t, metric=None)["value"] == 4.0  # the headline is the median


def test_the_standard_checks_fail_on_broken_tables():
    kpi = BY_NAME["time_to_conversion"]
    good = finalise(kpi, kpi.compute(journeys=JOURNEYS))
    names = lambda frame: {c.check_name for c in standard_checks(kpi, kpi_key(kpi), frame) if not c.passed}  # noqa: E731
    assert names(good) == set()
    no_total = good[good["metric"].notna()]  # defect: the total row is missing
    assert names(no_total) == {"total_row_exists"}
    wrong = good.copy()
    wrong.loc[wrong["metric"] == "mean_days", "value"] = 9.0  # defect: value != numerator / denominator
    assert names(wrong) == {"value_is_numerator_over_denominator"}
    twice = pd.concat([good, good.tail(1)], ignore_index=True)  # defect: a duplicated dimension tuple
    assert "dimensions_are_unique" in names(twice)
    bad_unit = good.assign(unit="minutes")  # defect: a unit outside the list
    assert names(bad_unit) == {"columns_types_and_units_are_valid"}
    ratio_kpi = BY_NAME["influences_per_order"]
    shares = finalise(ratio_kpi, ratio_kpi.compute(journeys=JOURNEYS))
    shares.loc[shares["bucket"] == "3", ["numerator", "value"]] = [5.0, 1.25]  # defect: a share above 1
    failed = {c.check_name: c for c in standard_checks(ratio_kpi, kpi_key(ratio_kpi), shares) if not c.passed}
    assert set(failed) == {"ratios_within_bounds"}


def test_first_orders_state_and_time_to_first_value_by_hand():
    import datetime as dt

    from crm_pipeline.kpis.aggregates import update_first_orders
    from crm_pipeline.settings import Settings

    identity = pd.DataFrame({"identifier_type": ["customer_id"] * 4, "identifier": ["C1", "C2", "C3", "C4"],
                             "person_id": ["P1", "P2", "P3", "P4"], "is_refused": [False] * 4})
    no_merges = pd.DataFrame(columns=["change_date", "kind", "kept_person_id", "other_person_id", "reason"])
    previous = pd.DataFrame({"person_id": ["P1"], "first_order_id": ["o0"],
                             "first_ordered_at": pd.to_datetime(["2026-10-20T10:00Z"])})
    orders = pd.DataFrame({"order_id": ["o2", "o1", "o3", "o4"], "customer_id": ["C1", "C2", "C2", "C3"],
                           "ordered_at": pd.to_datetime(["2026-10-31T09:00Z", "2026-10-31T12:00Z",
                                                         "2026-10-31T12:00Z", "2026-10-31T18:00Z"])})
    for col in ("email_hash", "anonymous_id", "device_id"):
        orders[col] = None
    state = update_first_orders(previous, orders, identity, no_merges).set_index("person_id")
    # P1 keeps its earlier first order; P2's tie at 12:00 goes to the lowest order_id
    assert state["first_order_id"].to_dict() == {"P1": "o0", "P2": "o1", "P3": "o4"}
    customers = pd.DataFrame({"customer_id": ["C1", "C2", "C3"],
                              "created_at": pd.to_datetime(["2026-10-01T00:00Z", "2026-10-29T12:00Z",
                                                            "2026-11-02T00:00Z"])})
    kpi = BY_NAME["time_to_first_value"]
    settings = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://")
    frame = finalise(kpi, kpi.compute(first_orders=state.reset_index(), crm_customers=customers,
                                      identity_map=identity, remap=PersonRemap(no_merges), day=dt.date(2026, 10, 31),
                                      settings=settings))
    # first orders on D: P2 (registered 2 days before) and P3 (registers after: excluded); P1's is older
    only = frame.iloc[0]
    assert len(frame) == 1 and pd.isna(only["numerator"])  # median form: null numerator
    assert (only["denominator"], only["value"], only["unit"]) == (1.0, 2.0, "days")
    assert all(c.passed for c in standard_checks(kpi, kpi_key(kpi), frame))
    # a re-run after P2 was merged into P1 (docs/outputs.md 2.2): the merged person's first order is P1's older o0
    later = pd.DataFrame({"change_date": [dt.date(2026, 11, 5)], "kind": ["merge"], "kept_person_id": ["P1"],
                          "other_person_id": ["P2"], "reason": ["x"]})
    frame = finalise(kpi, kpi.compute(first_orders=state.reset_index(), crm_customers=customers,
                                      identity_map=identity, remap=PersonRemap(later), day=dt.date(2026, 10, 31),
                                      settings=settings))
    assert frame[["denominator"]].values.tolist() == [[0.0]] and pd.isna(frame["value"].iloc[0])


def test_time_to_first_value_on_a_day_without_a_new_buyer():
    """A quiet day (first orders exist, none on D) is normal: the median row of an empty population, not a
    crash (regression: `.dt` on the empty object column left by mapping no person to a registration)."""
    import datetime as dt

    from crm_pipeline.settings import Settings

    identity = pd.DataFrame({"identifier_type": ["customer_id"], "identifier": ["C1"], "person_id": ["P1"],
                             "is_refused": [False]})
    first_orders = pd.DataFrame({"person_id": ["P1"], "first_order_id": ["o1"],
                                 "first_ordered_at": pd.to_datetime(["2026-10-30T10:00Z"])})
    customers = pd.DataFrame({"customer_id": ["C1"], "created_at": pd.to_datetime(["2026-10-01T00:00Z"])})
    kpi = BY_NAME["time_to_first_value"]
    settings = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://")
    frame = finalise(kpi, kpi.compute(first_orders=first_orders, crm_customers=customers, identity_map=identity,
                                      remap=PersonRemap.none(), day=dt.date(2026, 10, 31), settings=settings))
    assert records(frame) == [(None, 0.0, None, "days")]  # a median: null numerator, denominator 0
    assert all(c.passed for c in standard_checks(kpi, kpi_key(kpi), frame))
