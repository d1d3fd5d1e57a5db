"""Every check passes on a clean fixture and fails on one with a deliberate, commented defect."""

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from crm_pipeline import checks
from crm_pipeline.ingestion.result import IngestResult, UnparsableFile, empty_quarantine

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
