"""The row builders every KPI uses: their values are finite or null, never NaN or inf."""

import dagster as dg

from crm_pipeline.kpis.count import KPIS
from crm_pipeline.kpis.framework import finalise, quotient, standard_checks


def test_quotient_by_hand():
    assert quotient(3.0, 4.0, "percent", channel="email") == {
        "channel": "email", "numerator": 3.0, "denominator": 4.0, "value": 75.0, "unit": "percent"}
    assert quotient(3.0, 0.0, "ratio")["value"] is None
    assert quotient(None, 2.0, "ratio")["value"] is None


def test_quotient_too_large_for_a_float_is_null():
    """Revenue over a cost of 1e-300 (a positive amount ingestion accepts) overflows: null, not inf."""
    row = quotient(1e9, 1e-300, "ratio")
    assert row["value"] is None
    assert (row["numerator"], row["denominator"]) == (1e9, 1e-300)  # the parts stay for the reader


def test_standard_checks_accept_an_overflowing_quotient_as_undefined():
    kpi = {k.name: k for k in KPIS}["uar_30d"]
    frame = finalise(kpi, [quotient(1e9, 1e-300, "count")])
    results = {r.check_name: r for r in standard_checks(kpi, dg.AssetKey(["kpi", "uar_30d"]), frame)}
    assert all(r.passed for r in results.values()), {n: r.metadata for n, r in results.items() if not r.passed}
    # while a value that is not numerator / denominator still fails
    frame.loc[0, "value"] = 5.0
    results = {r.check_name: r for r in standard_checks(kpi, dg.AssetKey(["kpi", "uar_30d"]), frame)}
    assert not results["value_is_numerator_over_denominator"].passed
