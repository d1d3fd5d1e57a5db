"""What ingesting one source for one day produces, and how quarantined rows are stored."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

# Every quarantine dataset has this one schema, whatever the source, so a whole history reads as one table.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),  # landing file or CRM table the row came from
        pa.field("row_number", pa.int64()),  # 0-based row within that file (null for a whole file)
        pa.field("record_id", pa.string()),  # the row's id where it has one
        pa.field("reason", pa.string(), nullable=False),  # machine-readable reason (docs/inputs.md section 3)
        pa.field("detail", pa.string()),  # human-readable detail (column, value, parser error)
        pa.field("record", pa.string()),  # the original row as JSON (all values as delivered, as text)
    ]
)

# Reasons are a closed vocabulary: downstream checks and users filter on them.
REASONS = (
    "missing_required_field",
    "unparsable_timestamp",
    "unparsable_number",
    "negative_amount",
    "unknown_event_type",
    "unknown_currency",
    "unknown_survey_type",
    "score_out_of_range",
    "contact_count_below_1",
    "duplicate_id_conflict",
    "folder_day_mismatch",
    "missing_fx_rate",
    "no_identifier",
    "invalid_value",  # a value outside its closed list (cost_type, objective, sale_type, rate <= 0, ...)
    "amount_out_of_range",  # an amount above CRM_MAX_AMOUNT in the reporting currency, an fx rate out of range
    "unparsable_file",
)


def records_as_json(frame: pd.DataFrame) -> pd.Series:
    """Each row of `frame` as a JSON object of its original values as text (missing -> null)."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype="string")
    text = frame.astype("string")
    cols = list(text.columns)
    values = text.to_numpy(dtype=object, na_value=None)
    # json.dumps per quarantined row: quarantine is the small exceptional set, never the bulk of a day
    return pd.Series([json.dumps(dict(zip(cols, row, strict=True))) for row in values], index=frame.index,
                     dtype="string")


def empty_quarantine() -> pd.DataFrame:
    return QUARANTINE_SCHEMA.empty_table().to_pandas()


def quarantine_frame(
    original: pd.DataFrame, reason: pd.Series, *, source_file: pd.Series, row_number: pd.Series,
    record_id: pd.Series | None = None, detail: pd.Series | None = None,
) -> pd.DataFrame:
    """Quarantine rows for the rows of `original` (same index as the other series)."""
    n = len(original)
    return pd.DataFrame(
        {
            "source_file": source_file.astype("string").to_numpy(),
            "row_number": row_number.astype("int64").to_numpy(),
            "record_id": (record_id.astype("string").to_numpy() if record_id is not None
                          else pd.array([pd.NA] * n, dtype="string")),
            "reason": reason.astype("string").to_numpy(),
            "detail": (detail.astype("string").to_numpy() if detail is not None
                       else pd.array([pd.NA] * n, dtype="string")),
            "record": records_as_json(original).to_numpy(),
        }
    )


@dataclass(frozen=True)
class UnparsableFile:
    """A landing file that could not be read as a whole.

    `error` is a content-free summary (exception type, file, position, kind of error): it is what metadata, checks
    and logs show. `detail` is the parser's full message, which may quote the offending row (emails, phones): it
    goes to the quarantine only, the restricted area.
    """

    path: str
    error: str
    detail: str = ""


@dataclass(frozen=True)
class SkippedFile:
    """An entry of a landing folder that was not read, and why.

    `expected` entries are an exporter's bookkeeping (`_SUCCESS`, `.part.tmp`): listed, but no reason to warn.
    """

    path: str
    reason: str
    expected: bool = False


@dataclass
class IngestResult:
    """Clean rows, quarantined rows and the counts that must reconcile for one source and assigned day."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    rows_duplicate: int
    files_read: int = 0
    unparsable_files: list[UnparsableFile] = field(default_factory=list)
    # entries of the partition's own landing folder that were not read (markers, other suffixes, symlinks)
    skipped_files: list[SkippedFile] = field(default_factory=list)
    # CRM: rows of the table created or updated on D when it was extracted (the late-data sensor compares)
    rows_on_day: int | None = None
    # CRM: rows in the whole table when it was extracted (0 when the table does not exist)
    table_rows: int | None = None

    @property
    def rows_clean(self) -> int:
        return len(self.clean)

    @property
    def rows_quarantined(self) -> int:
        """Quarantined rows; a whole unparsable file is one quarantine entry but no counted row."""
        if self.quarantine.empty:
            return 0
        return int((self.quarantine["reason"] != "unparsable_file").sum())

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.rows_clean + self.rows_quarantined + self.rows_duplicate

    def quarantine_by_reason(self) -> dict[str, int]:
        if self.quarantine.empty:
            return {}
        counts = self.quarantine["reason"].value_counts()
        return {str(k): int(v) for k, v in sorted(counts.items())}

    def counts(self) -> Mapping[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_clean": self.rows_clean,
            "rows_quarantined": self.rows_quarantined,
            "rows_duplicate": self.rows_duplicate,
            "files_read": self.files_read,
            "files_unparsable": len(self.unparsable_files),
            "quarantine_rate": float(np.float64(self.rows_quarantined) / self.rows_in) if self.rows_in else 0.0,
            **({"rows_on_day": self.rows_on_day} if self.rows_on_day is not None else {}),
            **({"table_rows": self.table_rows} if self.table_rows is not None else {}),
        }
