"""Data-quality check logic as plain functions, so each is tested passing and failing without Dagster runs.

Each returns a `dg.AssetCheckResult`; the assets emit them for exactly the partition they wrote.
"""

from collections.abc import Sequence

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline.ingestion.readers import shown
from crm_pipeline.ingestion.result import IngestResult
from crm_pipeline.metadata import arrow_table


def primary_key_check_name(columns: Sequence[str]) -> str:
    return f"{'_'.join(columns)}_is_unique" if len(columns) <= 2 else "primary_key_is_unique"


def primary_key_description(columns: Sequence[str], nullable: Sequence[str] = ()) -> str:
    """The description of the spec of `primary_key_is_unique(..., columns, nullable)`."""
    if not nullable:
        return f"({', '.join(columns)}) is never null and never repeated"
    return f"({', '.join(columns)}) is never repeated (null equals null); only {', '.join(nullable)} may be null"


def primary_key_is_unique(
    asset_key: dg.AssetKey, frame: pd.DataFrame, columns: Sequence[str], nullable: Sequence[str] = ()
) -> dg.AssetCheckResult:
    """The grain: no key occurs twice (null-safe: null equals null) and no non-nullable key column is null."""
    keys = frame[list(columns)]
    required = [c for c in columns if c not in nullable]
    null_rows = int(keys[required].isna().any(axis=1).sum())
    repeated = keys.duplicated(keep=False)  # once: on millions of rows (events, ids states) it is the cost
    duplicate_rows = int(repeated.sum())
    examples = keys[repeated].head(5).astype("string").to_dict("records")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=primary_key_check_name(columns),
        passed=null_rows == 0 and duplicate_rows == 0,
        metadata={"null_key_rows": null_rows, "duplicate_key_rows": duplicate_rows,
                  "examples": dg.MetadataValue.json(examples)},
    )


SCHEMA_CHECK = "schema_matches_declared"  # derived tables; ingestion outputs call it schema_matches_contract


def schema_matches(asset_key: dg.AssetKey, table: pa.Table, expected: pa.Schema,
                   check_name: str = "schema_matches_contract") -> dg.AssetCheckResult:
    """The written columns, their order and Arrow types are exactly the declared ones, and no column declared
    not-nullable holds a null (Arrow does not enforce that when a table is built from pandas)."""
    actual = {f.name: str(f.type) for f in table.schema}
    wanted = {f.name: str(f.type) for f in expected}
    missing = sorted(set(wanted) - set(actual))
    extra = sorted(set(actual) - set(wanted))
    wrong = sorted(c for c in set(wanted) & set(actual) if wanted[c] != actual[c])
    in_order = table.schema.names == expected.names
    nulls = {f.name: table.column(f.name).null_count for f in expected
             if not f.nullable and f.name in actual and table.column(f.name).null_count}
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=not (missing or extra or wrong or nulls) and in_order,
        metadata={"missing_columns": ", ".join(missing) or "-", "extra_columns": ", ".join(extra) or "-",
                  "wrong_types": ", ".join(f"{c}: {actual[c]} != {wanted[c]}" for c in wrong) or "-",
                  "column_order_matches": in_order,
                  "nulls_in_required_columns": dg.MetadataValue.json(nulls)},
    )


def schema_spec(asset_key: dg.AssetKey, partitions: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(SCHEMA_CHECK, asset=asset_key, blocking=True, partitions_def=partitions,
                             description="the written table has exactly the declared columns, order and Arrow "
                                         "types, and no nulls in columns declared not-nullable")


def schema_is_declared(asset_key: dg.AssetKey, table: pa.Table, expected: pa.Schema) -> dg.AssetCheckResult:
    return schema_matches(asset_key, table, expected, SCHEMA_CHECK)


def row_counts_reconcile(asset_key: dg.AssetKey, result: IngestResult) -> dg.AssetCheckResult:
    """Nothing is lost: rows in = rows clean + rows quarantined + exact duplicates dropped."""
    counts = result.counts()
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="row_counts_reconcile",
        passed=result.reconciles,
        metadata={k: counts[k] for k in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate")},
    )


def quarantine_rate_below_threshold(
    asset_key: dg.AssetKey, result: IngestResult, threshold: float
) -> dg.AssetCheckResult:
    """Warns when more than `threshold` of a day's rows went to quarantine (a broken export, usually)."""
    rate = float(result.counts()["quarantine_rate"])
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="quarantine_rate_below_threshold",
        passed=rate <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_rate": rate, "threshold": threshold,
                  "by_reason": dg.MetadataValue.json(result.quarantine_by_reason())},
    )


def no_unparsable_files(asset_key: dg.AssetKey, result: IngestResult) -> dg.AssetCheckResult:
    """Fails, naming the files, when a whole landing file could not be parsed (it is in quarantine).

    The errors shown are the content-free summaries: a parser's full message can quote a row (emails, phones)
    and stays in the quarantine.
    """
    files = [shown(f.path) for f in result.unparsable_files]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="no_unparsable_files",
        passed=not files,
        description=("Unparsable files: " + ", ".join(files)) if files else None,
        metadata={"unparsable_files": dg.MetadataValue.json(
            [{"path": shown(f.path), "error": f.error} for f in result.unparsable_files])},
    )


def landing_root_exists(asset_key: dg.AssetKey, landing_root: str, exists: bool) -> dg.AssetCheckResult:
    """Fails when the landing root holds nothing at all (a missing folder, an S3 prefix without objects): with a
    mistyped CRM_LANDING_ROOT every source reads as empty, so nothing downstream may run on it."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="landing_root_exists",
        passed=exists,
        description=None if exists else (
            f"The landing root {landing_root} does not exist or holds nothing (CRM_LANDING_ROOT): every source "
            "would read as empty. Check the setting; a source without a folder is fine, a root without anything "
            "is not."),
        metadata={"landing_root": landing_root, "exists": exists},
    )


def crm_table_not_emptied(asset_key: dg.AssetKey, table: str, result: IngestResult,
                          previous_snapshot_rows: int | None) -> dg.AssetCheckResult:
    """Fails when a CRM table is empty or missing now while the previous day's snapshot had rows (a truncated
    table, a wrong CRM_DATABASE_URL, a failed replication): the snapshot would carry stale rows forward and the
    day would look quiet. A table that never had rows (no support desk) passes."""
    exists = result.files_read > 0
    table_rows = int(result.table_rows or 0)
    emptied = bool(previous_snapshot_rows) and table_rows == 0
    description = None
    if emptied:
        now = "does not exist" if not exists else "has 0 rows"
        description = (f"CRM table {table} {now} in the database, but the previous snapshot has "
                       f"{previous_snapshot_rows} rows: a truncated table, a wrong CRM_DATABASE_URL or a failed "
                       "replication?")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="crm_table_not_emptied",
        passed=not emptied,
        description=description,
        metadata={"table": table, "table_exists": exists, "table_rows": table_rows,
                  "previous_snapshot_rows": int(previous_snapshot_rows or 0)},
    )


AMOUNTS_CHECK = "amounts_are_within_range"


def amounts_are_within_range(asset_key: dg.AssetKey, frame: pd.DataFrame, columns: Sequence[str],
                             max_amount: float) -> dg.AssetCheckResult:
    """Every present amount is finite, >= 0 and at most `max_amount` (CRM_MAX_AMOUNT): sums, shares and ratios
    of the amounts downstream then stay finite. A missing optional amount (cost_of_goods) is no breach."""
    values = frame[list(columns)].astype("float64").to_numpy()
    outside = ~np.isnan(values) & ~((values >= 0) & (values <= max_amount))  # inf fails the upper bound
    per_column = {c: int(n) for c, n in zip(columns, outside.sum(axis=0), strict=True) if n}
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=AMOUNTS_CHECK,
        passed=not per_column,
        metadata={"rows_out_of_range": int(outside.any(axis=1).sum()), "max_amount": max_amount,
                  "out_of_range_by_column": dg.MetadataValue.json(per_column)},
    )
def no_skipped_files(asset_key: dg.AssetKey, result: IngestResult) -> dg.AssetCheckResult:
    """Warns, naming them, when entries of the day's landing folder were not read: another suffix (`events.json`,
    `orders.CSV.bz2`), a symbolic link, a sub-folder, a name with control characters. Markers and hidden files
    (`_SUCCESS`, `.part.tmp`) are an exporter's normal bookkeeping: listed in the metadata, no warning."""
    unexpected = [f for f in result.skipped_files if not f.expected]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="no_skipped_files",
        passed=not unexpected,
        severity=dg.AssetCheckSeverity.WARN,
        description=("Not read: " + ", ".join(f"{shown(f.path)} ({f.reason})" for f in unexpected))
        if unexpected else None,
        metadata={"skipped_files": dg.MetadataValue.json(skipped_files(result))},
    )


def skipped_files(result: IngestResult) -> list[dict[str, object]]:
    """The skipped entries of the day's landing folder as metadata (names escaped: no forged log lines)."""
    return [{"path": shown(f.path), "reason": f.reason, "expected": f.expected} for f in result.skipped_files]


def written(asset_key: dg.AssetKey, frame: pd.DataFrame, schema: pa.Schema, **output: object):
    """The Output of a table built with its declared schema, then its schema check (the spec: `schema_spec`)."""
    table = arrow_table(frame, schema)
    yield dg.Output(table, **output)
    yield schema_is_declared(asset_key, table, schema)


# ---------------------------------------------------------------------------------------------------------------
# checks of single assets (each asset module calls its own; tested passing and failing in test_checks.py)

def pairs_are_ordered(asset_key: dg.AssetKey, pairs: pd.DataFrame) -> dg.AssetCheckResult:
    """Fuzzy record pairs are stored once, as (smaller id, larger id)."""
    unordered = int((pairs["customer_id_a"].astype(str) >= pairs["customer_id_b"].astype(str)).sum())
    return dg.AssetCheckResult(asset_key=asset_key, check_name="pairs_are_ordered", passed=unordered == 0,
                               metadata={"unordered_rows": unordered})


def every_touch_has_a_person(asset_key: dg.AssetKey, touches: pd.DataFrame) -> dg.AssetCheckResult:
    orphans = int(touches["person_id"].isna().sum())
    return dg.AssetCheckResult(asset_key=asset_key, check_name="every_touch_has_a_person", passed=orphans == 0,
                               metadata={"touches_without_person": orphans})


def transitions_are_stochastic(asset_key: dg.AssetKey, transitions: pd.DataFrame) -> dg.AssetCheckResult:
    """The probabilities out of every state sum to 1 (1e-9) and lie in [0, 1]."""
    sums = transitions.groupby("from_state")["probability"].sum()
    bad = sums[(sums - 1.0).abs() > 1e-9]
    outside = int(((transitions["probability"] < 0) | (transitions["probability"] > 1)).sum())
    return dg.AssetCheckResult(asset_key=asset_key, check_name="transitions_are_stochastic",
                               passed=bad.empty and outside == 0,
                               metadata={"states_not_summing_to_one": len(bad), "probabilities_outside_0_1": outside})


def since_is_within_the_run(asset_key: dg.AssetKey, membership: pd.DataFrame, start: object,
                            day: object) -> dg.AssetCheckResult:
    since = pd.to_datetime(membership["since"]).dt.date
    outside = int(((since < start) | (since > day)).sum())
    return dg.AssetCheckResult(asset_key=asset_key, check_name="since_is_within_the_run", passed=outside == 0,
                               metadata={"rows_outside": outside})


def refunds_reconcile(asset_key: dg.AssetKey, previous: pd.DataFrame | None, book: pd.DataFrame,
                      applied_amounts: pd.Series) -> dg.AssetCheckResult:
    """The refunds in the book = those carried from D-1 (for orders still booked) + the refunds of D applied,
    in order currency, and no refund amount is unknown (a missing rate)."""
    carried = 0.0
    if previous is not None and len(previous):
        kept = previous["order_id"].astype("string").isin(book["order_id"].astype("string"))
        carried = float(previous.loc[kept.to_numpy(), "refunded_original"].astype(float).sum())
    unknown = int(applied_amounts.isna().sum())
    expected = carried + float(applied_amounts.fillna(0).sum())
    actual = float(book["refunded_original"].astype(float).sum())
    return dg.AssetCheckResult(asset_key=asset_key, check_name="refunds_reconcile",
                               passed=unknown == 0 and abs(expected - actual) <= 1e-6 * max(1.0, abs(expected)),
                               metadata={"expected_refunded": expected, "booked_refunded": actual,
                                         "refunds_applied": len(applied_amounts), "unknown_amounts": unknown})


def every_kpi_has_a_headline(asset_key: dg.AssetKey, scorecard: pd.DataFrame) -> dg.AssetCheckResult:
    missing = scorecard.loc[scorecard["unit"].isna(), "kpi"].tolist()
    return dg.AssetCheckResult(asset_key=asset_key, check_name="every_kpi_has_a_headline", passed=not missing,
                               metadata={"missing": ", ".join(missing) or "-"})


def rates_are_positive(asset_key: dg.AssetKey, rates: pd.DataFrame) -> dg.AssetCheckResult:
    bad = int((rates["rate_to_reporting"].isna() | (rates["rate_to_reporting"] <= 0)).sum())
    return dg.AssetCheckResult(asset_key=asset_key, check_name="rates_are_positive", passed=bad == 0,
                               metadata={"non_positive_rates": bad})


def every_check_of_the_day_passed(asset_key: dg.AssetKey, counts: dict[str, int],
                                  failed: list[str]) -> dg.AssetCheckResult:
    """WARN when a check of the day failed or never ran (pipeline_health)."""
    return dg.AssetCheckResult(asset_key=asset_key, check_name="every_check_of_the_day_passed",
                               passed=counts.get("failed", 0) == 0 and counts.get("not_evaluated", 0) == 0,
                               severity=dg.AssetCheckSeverity.WARN,
                               metadata={**counts, "failed_checks": dg.MetadataValue.json(failed[:50])})


def order_days_reconcile(asset_key: dg.AssetKey, previous: pd.DataFrame | None, taken_in: pd.DataFrame,
                         history: pd.DataFrame, newest_day: object) -> dg.AssetCheckResult:
    """The order history loses nothing and invents nothing: its order days and net revenue = those carried from
    D-1 (merges combine persons, they do not drop days) + those taken in from the book today; and every person's
    first order day <= last order day <= the newest day it may hold."""
    carried_days = int(previous["count_order_days"].sum()) if previous is not None and len(previous) else 0
    carried_revenue = float(previous["net_revenue"].astype(float).sum()) if previous is not None and len(
        previous) else 0.0
    expected_days = carried_days + int(taken_in["count_order_days"].sum())
    expected_revenue = carried_revenue + float(taken_in["net_revenue"].astype(float).sum())
    days, revenue = int(history["count_order_days"].sum()), float(history["net_revenue"].astype(float).sum())
    first, last = (pd.to_datetime(history[c]).dt.date for c in ("first_order_date", "last_order_date"))
    misordered = int(((first > last) | (last > newest_day)).sum())
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name="order_days_reconcile",
        passed=days == expected_days and abs(revenue - expected_revenue) <= 1e-6 * max(1.0, abs(expected_revenue))
        and misordered == 0,
        metadata={"expected_order_days": expected_days, "order_days": days, "expected_net_revenue": expected_revenue,
                  "net_revenue": revenue, "persons_with_misordered_days": misordered})


def models_are_fitted(asset_key: dg.AssetKey, model: pd.DataFrame) -> dg.AssetCheckResult:
    """WARN when the CLV models could not be fitted on the day's data (their predictions are then null)."""
    errors = model["error"].dropna()
    return dg.AssetCheckResult(asset_key=asset_key, check_name="models_are_fitted", passed=errors.empty,
                               severity=dg.AssetCheckSeverity.WARN,
                               description=None if errors.empty else f"CLV models not fitted: {errors.iloc[0]}",
                               metadata={"error": str(errors.iloc[0]) if len(errors) else "-"})


def likelihood_has_a_clear_maximum(asset_key: dg.AssetKey, model: pd.DataFrame,
                                   max_condition: float) -> dg.AssetCheckResult:
    """WARN when a CLV model converged where its likelihood has no clear maximum (the Hessian's condition number
    is `max_condition` or more): a ridge the data cannot pin down, as with a few days of history. Models that
    could not be fitted at all are models_are_fitted's concern."""
    fitted = model.loc[model["hessian_condition"].notna()]
    per_model = fitted.groupby("model")["hessian_condition"].max()
    ridges = per_model[per_model >= max_condition]
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name="likelihood_has_a_clear_maximum", passed=ridges.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if ridges.empty else "no clear maximum of the likelihood for " + ", ".join(
            f"{name} (Hessian condition {value:.3g})" for name, value in ridges.items()),
        metadata={f"{name}_hessian_condition": float(value) for name, value in per_model.items()})
