"""Every check passes on a clean fixture and fails on one with a deliberate, commented defect."""

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from crm_pipeline import checks
from crm_pipeline.ingestion.result import IngestResult, SkippedFile, UnparsableFile, empty_quarantine

KEY = dg.AssetKey(["ingest", "orders"])
SCHEMA = pa.schema([pa.field("order_id", pa.string()), pa.field("amount", pa.float64())])


def _result(rows_in: int, clean: int, quarantined: int, duplicates: int, files=()) -> IngestResult:
    quarantine = pd.DataFrame({"reason": ["negative_amount"] * quarantined, "source_file": "f.csv"})
    return IngestResult(clean=pd.DataFrame({"order_id": [f"o{i}" for i in range(clean)]}),
                        quarantine=quarantine if quarantined else empty_quarantine(),
                        rows_in=rows_in, rows_duplicate=duplicates, unparsable_files=list(files))


def test_primary_key_passes_on_unique_keys():
    frame = pd.DataFrame({"order_id": ["a", "b", "c"]})
    assert checks.primary_key_is_unique(KEY, frame, ["order_id"]).passed


@pytest.mark.parametrize(
    ("ids", "nulls", "duplicates"),
    [
        (["a", "b", "a"], 0, 2),  # defect: "a" twice
        (["a", None, "c"], 1, 0),  # defect: a null key
    ],
)
def test_primary_key_fails_on_duplicates_and_nulls(ids, nulls, duplicates):
    result = checks.primary_key_is_unique(KEY, pd.DataFrame({"order_id": ids}), ["order_id"])
    assert not result.passed
    assert result.metadata["null_key_rows"].value == nulls
    assert result.metadata["duplicate_key_rows"].value == duplicates


def test_primary_key_is_null_safe_on_nullable_columns():
    frame = pd.DataFrame({"cost_date": ["d1", "d1", "d1"], "channel": [None, "ppc", None]})
    ok = checks.primary_key_is_unique(KEY, frame.iloc[:2], ["cost_date", "channel"], nullable=["channel"])
    assert ok.passed  # a null channel is a value of the grain, not a defect
    # defect: (d1, null) twice — null equals null for uniqueness
    bad = checks.primary_key_is_unique(KEY, frame, ["cost_date", "channel"], nullable=["channel"])
    assert not bad.passed and bad.metadata["duplicate_key_rows"].value == 2
    assert bad.check_name == "cost_date_channel_is_unique"


def test_schema_matches_passes_on_the_declared_schema():
    table = pa.table({"order_id": ["a"], "amount": [1.0]}, schema=SCHEMA)
    assert checks.schema_matches(KEY, table, SCHEMA).passed


def test_schema_matches_fails_on_type_missing_and_order():
    wrong_type = pa.table({"order_id": ["a"], "amount": ["1.0"]})  # defect: amount as text
    result = checks.schema_matches(KEY, wrong_type, SCHEMA)
    assert not result.passed and "amount" in result.metadata["wrong_types"].value
    reordered = pa.table({"amount": [1.0], "order_id": ["a"]})  # defect: column order differs
    assert not checks.schema_matches(KEY, reordered, SCHEMA).passed
    missing = pa.table({"order_id": ["a"]})  # defect: amount missing
    assert checks.schema_matches(KEY, missing, SCHEMA).metadata["missing_columns"].value == "amount"


def test_row_counts_reconcile():
    assert checks.row_counts_reconcile(KEY, _result(10, 7, 2, 1)).passed
    broken = checks.row_counts_reconcile(KEY, _result(10, 7, 1, 1))  # defect: one row lost
    assert not broken.passed
    assert broken.metadata["rows_in"].value == 10 and broken.metadata["rows_clean"].value == 7


def test_quarantine_rate_warns_above_threshold():
    assert checks.quarantine_rate_below_threshold(KEY, _result(100, 96, 4, 0), 0.05).passed
    high = checks.quarantine_rate_below_threshold(KEY, _result(100, 90, 10, 0), 0.05)  # defect: 10% bad
    assert not high.passed and high.severity == dg.AssetCheckSeverity.WARN
    assert high.metadata["quarantine_rate"].value == pytest.approx(0.10)


def test_no_unparsable_files_names_the_file():
    assert checks.no_unparsable_files(KEY, _result(1, 1, 0, 0)).passed
    bad = checks.no_unparsable_files(KEY, _result(1, 1, 0, 0, [UnparsableFile("landing/x.json.gz", "EOF")]))
    assert not bad.passed and "landing/x.json.gz" in bad.description


def test_landing_root_exists_names_the_root():
    assert checks.landing_root_exists(KEY, "s3://shop/landing", True).passed
    missing = checks.landing_root_exists(KEY, "/data/landnig", False)  # defect: a mistyped root
    assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
    assert "/data/landnig" in missing.description and "CRM_LANDING_ROOT" in missing.description
    assert missing.metadata["landing_root"].value == "/data/landnig"


def _crm_result(table_rows: int, exists: bool = True) -> IngestResult:
    return IngestResult(clean=pd.DataFrame({"lead_id": []}), quarantine=empty_quarantine(), rows_in=0,
                        rows_duplicate=0, files_read=int(exists), table_rows=table_rows)


@pytest.mark.parametrize(
    ("table_rows", "exists", "previous_rows"),
    [
        (120, True, 118),  # rows yesterday and today (the day itself may have none)
        (0, True, 0),  # a table that never had rows (no support desk)
        (0, False, 0),  # a table that never existed
        (0, True, None),  # the first load: nothing to compare with
    ],
)
def test_crm_table_not_emptied_passes(table_rows, exists, previous_rows):
    assert checks.crm_table_not_emptied(KEY, "leads", _crm_result(table_rows, exists), previous_rows).passed


@pytest.mark.parametrize(
    ("exists", "now"),
    [
        (True, "has 0 rows"),  # defect: the table was truncated (or the URL names another, empty database)
        (False, "does not exist"),  # defect: the table existed with rows and is gone
    ],
)
def test_crm_table_not_emptied_fails_when_a_table_with_rows_is_emptied(exists, now):
    result = checks.crm_table_not_emptied(KEY, "leads", _crm_result(0, exists), 118)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.description.startswith(f"CRM table leads {now} in the database, but the previous snapshot has "
                                         "118 rows")
    assert {k: v.value for k, v in result.metadata.items()} == {
        "table": "leads", "table_exists": exists, "table_rows": 0, "previous_snapshot_rows": 118}
def test_no_unparsable_files_shows_the_summary_not_the_parser_message():
    # defect: the parser's message quotes the row; only the content-free summary may leave the quarantine
    broken = UnparsableFile("landing/a.csv", "a.csv: ArrowInvalid: a CSV row has 4 fields where the header has 3",
                            "ArrowInvalid: CSV parse error: Expected 3 columns, got 4: e1,jane@example.com,x,y")
    result = checks.no_unparsable_files(KEY, _result(1, 1, 0, 0, [broken]))
    assert not result.passed
    assert result.metadata["unparsable_files"].value == [{"path": "landing/a.csv", "error": broken.error}]
    assert "jane@example.com" not in str(result.metadata) + str(result.description)


def test_no_skipped_files_warns_about_files_that_were_not_read():
    markers = [SkippedFile("landing/_SUCCESS", "hidden or marker file", expected=True)]
    quiet = checks.no_skipped_files(KEY, IngestResult(clean=pd.DataFrame(), quarantine=empty_quarantine(), rows_in=0,
                                                      rows_duplicate=0, skipped_files=markers))
    assert quiet.passed and quiet.metadata["skipped_files"].value == [
        {"path": "landing/_SUCCESS", "reason": "hidden or marker file", "expected": True}]
    # defect: an export delivered with a suffix the pipeline does not read, and a name that forges a log line
    unread = [*markers, SkippedFile("landing/events.json", "unsupported suffix"),
              SkippedFile("landing/a\nERROR x.csv", "file name holds control characters")]
    loud = checks.no_skipped_files(KEY, IngestResult(clean=pd.DataFrame(), quarantine=empty_quarantine(), rows_in=0,
                                                     rows_duplicate=0, skipped_files=unread))
    assert not loud.passed and loud.severity == dg.AssetCheckSeverity.WARN
    assert loud.description == ("Not read: landing/events.json (unsupported suffix), "
                                "landing/a\\nERROR x.csv (file name holds control characters)")
    assert [f["path"] for f in loud.metadata["skipped_files"].value] == [
        "landing/_SUCCESS", "landing/events.json", "landing/a\\nERROR x.csv"]


def test_schema_check_fails_on_a_null_in_a_required_column():
    required = pa.schema([pa.field("order_id", pa.string(), nullable=False), pa.field("amount", pa.float64())])
    # built from Python lists, Arrow accepts the null although the field is declared not-nullable (from pandas it
    # raises, which stops the write); the check does not accept it
    table = pa.Table.from_pydict({"order_id": ["a", None], "amount": [1.0, None]}, schema=required)
    result = checks.schema_is_declared(KEY, table, required)
    assert not result.passed and result.metadata["nulls_in_required_columns"].value == {"order_id": 1}
    assert result.check_name == "schema_matches_declared"
    ok = pa.Table.from_pydict({"order_id": ["a", "b"], "amount": [1.0, None]}, schema=required)
    assert checks.schema_is_declared(KEY, ok, required).passed  # a null where nulls are allowed is fine


# --- single-asset checks: each passes on a clean input and fails on a commented defect ---------------------------

def test_pairs_are_ordered():
    good = pd.DataFrame({"customer_id_a": ["C1", "C2"], "customer_id_b": ["C2", "C3"]})
    assert checks.pairs_are_ordered(KEY, good).passed
    bad = good.assign(customer_id_a=["C1", "C3"], customer_id_b=["C2", "C2"])  # defect: (C3, C2) is reversed
    assert checks.pairs_are_ordered(KEY, bad).metadata["unordered_rows"].value == 1


def test_every_touch_has_a_person():
    assert checks.every_touch_has_a_person(KEY, pd.DataFrame({"person_id": ["p1", "p2"]})).passed
    assert not checks.every_touch_has_a_person(KEY, pd.DataFrame({"person_id": ["p1", None]})).passed  # orphan


def test_transitions_are_stochastic():
    good = pd.DataFrame({"from_state": ["start", "start", "email"], "to_state": ["email", "null", "conversion"],
                         "probability": [0.25, 0.75, 1.0]})
    assert checks.transitions_are_stochastic(KEY, good).passed
    assert not checks.transitions_are_stochastic(KEY, good.assign(probability=[0.25, 0.7, 1.0])).passed  # 0.95
    negative = good.assign(probability=[-0.25, 1.25, 1.0])  # defect: sums to 1 but not probabilities
    assert checks.transitions_are_stochastic(KEY, negative).metadata["probabilities_outside_0_1"].value == 2


def test_since_is_within_the_run():
    import datetime as dt

    start, day = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
    good = pd.DataFrame({"since": [start, day]})
    assert checks.since_is_within_the_run(KEY, good, start, day).passed
    bad = pd.DataFrame({"since": [dt.date(2026, 9, 30), dt.date(2026, 11, 1)]})  # before the start, after D
    assert checks.since_is_within_the_run(KEY, bad, start, day).metadata["rows_outside"].value == 2


def test_refunds_reconcile():
    previous = pd.DataFrame({"order_id": ["o1", "o2", "old"], "refunded_original": [10.0, 0.0, 5.0]})
    book = pd.DataFrame({"order_id": ["o1", "o2"], "refunded_original": [10.0, 7.5]})  # "old" left the book
    assert checks.refunds_reconcile(KEY, previous, book, pd.Series([7.5])).passed
    # defect: the refund of D applied twice
    assert not checks.refunds_reconcile(KEY, previous, book.assign(refunded_original=[10.0, 15.0]),
                                        pd.Series([7.5])).passed
    # defect: a refund whose amount could not be converted
    assert not checks.refunds_reconcile(KEY, previous, book, pd.Series([7.5, None])).passed


def test_every_kpi_has_a_headline():
    assert checks.every_kpi_has_a_headline(KEY, pd.DataFrame({"kpi": ["a"], "unit": ["count"]})).passed
    result = checks.every_kpi_has_a_headline(KEY, pd.DataFrame({"kpi": ["a", "b"], "unit": ["count", None]}))
    assert not result.passed and result.metadata["missing"].value == "b"


def test_rates_are_positive():
    assert checks.rates_are_positive(KEY, pd.DataFrame({"rate_to_reporting": [1.1, 0.9]})).passed
    assert not checks.rates_are_positive(KEY, pd.DataFrame({"rate_to_reporting": [1.1, 0.0]})).passed


def test_amounts_are_within_range_passes_on_bounded_amounts():
    frame = pd.DataFrame({"net_revenue": [0.0, 12.5, 1e9], "cost_of_goods": [None, 3.0, None]})  # a missing cogs
    result = checks.amounts_are_within_range(KEY, frame, ["net_revenue", "cost_of_goods"], 1e9)
    assert result.passed and result.metadata["rows_out_of_range"].value == 0


@pytest.mark.parametrize(
    ("net_revenue", "column_counts"),
    [
        ([1.0, float("inf")], {"net_revenue": 1}),  # defect: an overflow
        ([1.0, 1e9 + 1], {"net_revenue": 1}),  # defect: above the bound
        ([-0.5, 2.0], {"net_revenue": 1}),  # defect: negative
    ],
)
def test_amounts_are_within_range_fails_outside_0_and_the_bound(net_revenue, column_counts):
    frame = pd.DataFrame({"net_revenue": net_revenue, "cost_of_goods": [1.0, 2e9]})  # defect: cogs 2e9 too
    result = checks.amounts_are_within_range(KEY, frame, ["net_revenue", "cost_of_goods"], 1e9)
    assert not result.passed
    assert result.metadata["out_of_range_by_column"].value == {**column_counts, "cost_of_goods": 1}
    assert result.metadata["rows_out_of_range"].value == (2 if net_revenue[0] < 0 else 1)


def test_every_check_of_the_day_passed_warns():
    ok = checks.every_check_of_the_day_passed(KEY, {"passed": 3, "warned": 1, "failed": 0, "not_evaluated": 0}, [])
    assert ok.passed
    bad = checks.every_check_of_the_day_passed(KEY, {"passed": 3, "failed": 1, "not_evaluated": 0}, ["a:b"])
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.WARN
    assert not checks.every_check_of_the_day_passed(KEY, {"failed": 0, "not_evaluated": 2}, []).passed


def test_headline_at_least_target_warns_below_the_target():
    from crm_pipeline.kpis.framework import finalise, headline_target_check
    from crm_pipeline.kpis.relate import KPIS

    kpi = {k.name: k for k in KPIS}["asset_engagement_ratio"]  # target 0.15 (seed 000)

    def frame(value: float) -> pd.DataFrame:
        return finalise(kpi, [{"window": "1d", "numerator": value, "denominator": 1.0, "value": value,
                               "unit": "ratio"},
                              {"window": "30d", "numerator": value, "denominator": 1.0, "value": value,
                               "unit": "ratio"}])

    assert headline_target_check(kpi, KEY, frame(0.2)).passed
    low = headline_target_check(kpi, KEY, frame(0.1))
    assert not low.passed and low.severity == dg.AssetCheckSeverity.WARN


def test_order_days_reconcile():
    key = dg.AssetKey(["aggregates", "order_history"])
    day = pd.Timestamp("2026-10-10").date()
    previous = pd.DataFrame({"count_order_days": [2, 1], "net_revenue": [30.0, 5.0]})
    taken_in = pd.DataFrame({"count_order_days": [1], "net_revenue": [7.0]})
    history = pd.DataFrame({"count_order_days": [3, 1], "net_revenue": [37.0, 5.0],
                            "first_order_date": [day, day], "last_order_date": [day, day]})
    assert checks.order_days_reconcile(key, previous, taken_in, history, day).passed
    assert checks.order_days_reconcile(key, None, taken_in.assign(count_order_days=4, net_revenue=42.0), history,
                                       day).passed  # the first day: everything was taken in
    lost = history.assign(count_order_days=[2, 1])  # defect: a day of the previous history dropped
    assert not checks.order_days_reconcile(key, previous, taken_in, lost, day).passed
    revenue = history.assign(net_revenue=[36.0, 5.0])  # defect: revenue lost
    assert not checks.order_days_reconcile(key, previous, taken_in, revenue, day).passed
    late = history.assign(last_order_date=[day, day + pd.Timedelta(days=1)])  # defect: a day the book still holds
    result = checks.order_days_reconcile(key, previous, taken_in, late, day)
    assert not result.passed and result.metadata["persons_with_misordered_days"].value == 1


def test_models_are_fitted_warns_with_the_reason():
    key = dg.AssetKey(["clv_model"])
    fitted = pd.DataFrame({"value": [0.2, 4.0], "error": [None, None]})
    assert checks.models_are_fitted(key, fitted).passed
    failed = pd.DataFrame({"value": [None, None], "error": ["FitError: no buyers at D"] * 2})  # defect: no fit
    result = checks.models_are_fitted(key, failed)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "no buyers at D" in result.description


def test_likelihood_has_a_clear_maximum_warns_on_a_ridge():
    key = dg.AssetKey(["clv_model"])
    model = pd.DataFrame({"model": ["bg_nbd", "bg_nbd", "gamma_gamma"], "hessian_condition": [165.0, 165.0, 760.0]})
    assert checks.likelihood_has_a_clear_maximum(key, model, 1e6).passed
    not_fitted = model.assign(hessian_condition=None)  # models_are_fitted reports these
    assert checks.likelihood_has_a_clear_maximum(key, not_fitted, 1e6).passed
    ridge = model.assign(hessian_condition=[7.2e9, 7.2e9, 760.0])  # defect: BG/NBD on a ridge
    result = checks.likelihood_has_a_clear_maximum(key, ridge, 1e6)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "bg_nbd" in result.description and "gamma_gamma" not in result.description
