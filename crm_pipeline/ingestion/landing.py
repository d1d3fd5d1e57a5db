"""Ingesting one landing-zone source for one assigned day (docs/inputs.md sections 1, 3, 4), without Dagster.

`ingest_landing_day(source, D, settings)` reads the landing folders D-1, D and D+1, keeps the rows assigned
to D, and turns them into clean rows, quarantined rows and counts that reconcile:

1. Assignment: a row belongs to the day of its timestamp (`date` for costs and fx_rates) in the reporting
   timezone when that is parsable and within one day of its folder's day, else to its folder's day.
   Files are streamed and assigned batch by batch, so only the rows of D (and one batch) are ever in memory.
2. Exact re-deliveries (the same values in every contract column, whatever the file) are dropped and
   counted; the first by folder day, file name and row number is kept. Values are compared as meant, not as
   spelled: `2026-10-01T12:00:00Z` and `2026-10-01T14:00:00+02:00` are the same instant, `12.50` and `12.5`
   the same amount, leading/trailing blanks do not count.
3. Validation: a row failing a check is quarantined with the first failing reason of
   `contract.VALIDATION_ORDER` (missing_required_field, no_identifier, unparsable_timestamp,
   unparsable_number, negative_amount, unknown_event_type, unknown_currency, invalid_value,
   folder_day_mismatch, missing_fx_rate, amount_out_of_range).
4. Among the rows that passed, a repeated id (event_id, order_id, refund_id; rate_date + currency for fx)
   with different content keeps the first and quarantines the later ones as `duplicate_id_conflict`; so is
   an order_id / refund_id already delivered on an earlier day (`seen_ids`, the state `update_seen_ids`
   keeps day after day), so that its money is never counted on two days.
5. The rest is normalised (UTC, channels, device types, E.164, keyed email/phone hashes, reporting
   currency) into exactly `CLEAN_SCHEMAS[source]`, sorted by id.

Privacy: clean rows carry only `email_hash` / `phone_hash`. A quarantine `record` keeps the original row,
raw emails and phones included (that is what makes it reviewable), so the quarantine area holds PII and
belongs to the restricted zone.

Everything is vectorised over the rows; per-row Python runs only to serialise the (few) quarantined rows.
"""

import datetime as dt
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.ingestion.contract import (
    BOUNCE_TYPES,
    CASE_INSENSITIVE,
    CLEAN_SCHEMAS,
    CLEAN_SORT_KEYS,
    CONFLICT_REASON,
    CONTRACTS,
    COST_TYPES,
    DEFAULT_BOUNCE_TYPE,
    DEFAULT_SALE_TYPE,
    DEVICE_TYPES,
    EVENT_TYPES,
    FX_RATE_RANGE,
    INTERACTION_KINDS,
    ISO_4217,
    OBJECTIVES,
    SALE_TYPES,
    SEEN_ID_SOURCES,
    VALIDATION_ORDER,
    LandingContract,
)
from crm_pipeline.ingestion.layout import list_landing_days
from crm_pipeline.ingestion.normalise import (
    canonical_channel,
    channel_group,
    clean_text,
    derive_channel,
    local_day,
    normalise_email,
    normalise_phone,
    overflows,
    parse_date,
    parse_number,
    parse_utc,
    pseudonymise,
)
from crm_pipeline.ingestion.readers import (
    TEXT_DTYPE,
    UnreadableFile,
    list_landing_folder,
    read_landing_batches,
    shown,
    text_frame,
)
from crm_pipeline.ingestion.result import (
    QUARANTINE_SCHEMA,
    IngestResult,
    SkippedFile,
    UnparsableFile,
    records_as_json,
)
from crm_pipeline.metadata import string_array
from crm_pipeline.settings import Settings

log = logging.getLogger(__name__)

# The state `update_fx_latest` keeps between days: the latest known rate of each currency.
FX_LATEST_SCHEMA = pa.schema(
    [
        pa.field("currency", pa.string()),
        pa.field("rate_date", pa.date32()),
        pa.field("rate_to_reporting", pa.float64()),
    ]
)

FIRST_SEEN = "first_seen_date"


def seen_ids_schema(source: str) -> pa.Schema:
    """The state `update_seen_ids` keeps for a money source (contract.SEEN_ID_SOURCES): one row per id of a
    clean row, with the assigned day of its first clean delivery."""
    column = CONTRACTS[source].id_columns[0]
    return pa.schema([pa.field(column, pa.string(), nullable=False), pa.field(FIRST_SEEN, pa.date32(), nullable=False)])

# bookkeeping columns carried beside the delivered ones (never part of a record or of clean output)
_FILE = "__file_index"
_ROW = "__row_number"
_VALUE = "__day_value"  # the parsed timestamp (UTC) or date of the assigning column
_MISMATCH = "__folder_day_mismatch"
_META = (_FILE, _ROW, _VALUE, _MISMATCH)

_ONE_DAY = np.timedelta64(1, "D")


# ---------------------------------------------------------------------------------------------------------------
# public API


def ingest_landing_day(
    source: str, day: dt.date, settings: Settings, fx_latest: pd.DataFrame | None = None,
    seen_ids: pd.DataFrame | None = None,
) -> IngestResult:
    """Clean rows, quarantine and counts of landing source `source` for assigned day `day`.

    `fx_latest` (columns of `FX_LATEST_SCHEMA`) is the latest rate per currency on or before `day`; it is
    needed by orders, refunds and costs unless every amount is in the reporting currency, and unused by the
    fx_rates source itself. `seen_ids` (orders and refunds: `seen_ids_schema`, the state of the day before) are
    the ids first delivered on earlier days: a row that passed but whose id is among them is quarantined as
    `duplicate_id_conflict`, so an order is never counted on two days. Never raises for bad input: bad rows and
    unparsable files are quarantined.
    """
    if source not in CONTRACTS:
        raise ValueError(f"unknown landing source {source!r}; expected one of {sorted(CONTRACTS)}")
    if seen_ids is not None and source not in SEEN_ID_SOURCES:
        raise ValueError(f"{source} keeps no ids across days (only {', '.join(SEEN_ID_SOURCES)})")
    contract = CONTRACTS[source]
    raw, files, unparsable, skipped, files_read = _read_assigned(contract, day, settings)
    rows_in = len(raw)

    norm = pd.DataFrame({c: clean_text(raw[c]) for c in contract.columns}, index=raw.index)
    numbers = pd.DataFrame({c: parse_number(norm[c]) for c in contract.numbers}, index=raw.index)
    # re-delivered rows stay in place (code -1) rather than being filtered out: no copy of the whole day
    redelivered = _exact_redeliveries(contract, norm, numbers, raw[_VALUE])
    rows_duplicate = int(redelivered.sum())

    checks = _Checks(contract, day, settings, raw, norm, numbers, fx_latest)
    reason_code = checks.first_failing()
    reason_code[redelivered] = -1
    passed = reason_code == 0
    ids = checks.ids()
    conflict = np.zeros(len(raw), dtype=bool)
    if ids is not None and passed.any():
        conflict[passed] = ids[passed].duplicated(keep="first").to_numpy()
    good = passed & ~conflict
    first_seen = _first_seen(contract, checks, good, seen_ids)
    # the same id on an earlier day: at least its timestamp differs (a clean row's timestamp is on its day),
    # so it is another version, never an exact re-delivery
    repeated = good & first_seen.notna().to_numpy()
    good &= ~repeated

    source_files = pd.Series(files, dtype=TEXT_DTYPE)
    clean = _clean_frame(contract, checks, good, source_files)
    quarantine = _quarantine(contract, checks, reason_code, conflict, ids, source_files, unparsable,
                             repeated, first_seen)
    result = IngestResult(
        clean=clean, quarantine=quarantine, rows_in=rows_in, rows_duplicate=rows_duplicate,
        files_read=files_read, unparsable_files=unparsable, skipped_files=skipped,
    )
    if not result.reconciles:  # a bug, not bad input: refuse to hand on numbers that do not add up
        raise AssertionError(f"{source} {day}: counts do not reconcile: {dict(result.counts())}")
    return result


def update_fx_latest(prev: pd.DataFrame | None, day_rates: pd.DataFrame) -> pd.DataFrame:
    """The latest rate per currency after merging one day's clean fx rows into the previous state.

    The newer `rate_date` wins; on the same date the day's rows win (a re-run with a corrected rate).
    Sorted by currency, columns and dtypes of `FX_LATEST_SCHEMA`.
    """
    parts = [_fx_state(frame) for frame in (prev, day_rates) if frame is not None and len(frame)]
    if not parts:
        return _fx_state(None)
    combined = pd.concat(parts, ignore_index=True)
    combined = combined.sort_values(["currency", "rate_date"], kind="mergesort")
    latest = combined.drop_duplicates("currency", keep="last")
    return latest.sort_values("currency", kind="mergesort").reset_index(drop=True)


def update_seen_ids(prev: pd.DataFrame | None, source: str, day_clean: pd.DataFrame, day: dt.date,
                    horizon_days: int) -> pd.DataFrame:
    """The ids state of `day`: the state of the day before, without the ids first seen `horizon_days` or more
    days before `day`, followed by the ids of the day's clean rows (first seen on `day`) in id order.

    So the state is ordered by first_seen_date, then id, and each day only appends: no day re-sorts a year of
    ids. The day's clean ids are new by construction (`ingest_landing_day` quarantines the others); should one
    be in `prev` anyway, its earlier day is kept. Arrow columns throughout: a year of ids is millions of rows.
    """
    column = seen_ids_schema(source).names[0]
    oldest = np.datetime64((day - dt.timedelta(days=horizon_days - 1)).isoformat(), "s")
    today = string_array(day_clean[column])
    kept_ids, kept_days = pa.array([], pa.string()), np.array([], dtype="datetime64[s]")
    if prev is not None and len(prev):
        first = pd.to_datetime(prev[FIRST_SEEN]).to_numpy().astype("datetime64[s]")
        recent = first >= oldest
        kept_ids, kept_days = string_array(prev[column]).filter(pa.array(recent)), first[recent]
        # the few ids of the day already kept: probe the state against the day's ids, not the other way round
        again = kept_ids.filter(pc.is_in(kept_ids, value_set=today))
        if len(again):
            today = today.filter(pc.invert(pc.is_in(today, value_set=again)))
    today = pc.take(today, pc.sort_indices(today))
    ids = pa.concat_arrays([kept_ids, today])
    days = np.concatenate([kept_days, np.full(len(today), np.datetime64(day.isoformat(), "s"))])
    return pd.DataFrame({column: pd.Series(ids.to_pandas(types_mapper=pd.ArrowDtype), dtype="string"),
                         FIRST_SEEN: days.astype("datetime64[s]")})


def fx_state_before(day: dt.date, settings: Settings) -> pd.DataFrame | None:
    """What ingest/fx_rates_latest of the day before `day` holds, folded from the landing zone (every fx day
    from CRM_START_DATE), for a run that has no such partition (a backfill starting late)."""
    state: pd.DataFrame | None = None
    for d in _landing_days("fx_rates", settings, settings.start_date, day - dt.timedelta(days=1)):
        state = update_fx_latest(state, ingest_landing_day("fx_rates", d, settings).clean)
    return state


def seen_ids_before(source: str, day: dt.date, settings: Settings) -> pd.DataFrame:
    """The ids state of the day before `day`, folded from the landing zone, for a run that has no such partition
    (a backfill starting late): the days of the horizon are ingested in order, each against the ids and the fx
    rates of the days before it, as the daily runs do. The fold starts at the horizon, so a late start costs
    at most CRM_DUPLICATE_ID_HORIZON_DAYS days of reading; an id first seen before the horizon and delivered
    again inside it counts as first seen there (the daily runs would have quarantined that second delivery)."""
    horizon = settings.duplicate_id_horizon_days
    first, last = max(settings.start_date, day - dt.timedelta(days=horizon)), day - dt.timedelta(days=1)
    fx = fx_state_before(first, settings)
    fx_days = set(_landing_days("fx_rates", settings, first, last))
    source_days = set(_landing_days(source, settings, first, last))
    column = CONTRACTS[source].id_columns[0]
    state = update_seen_ids(None, source, pd.DataFrame({column: pd.Series([], dtype="string")}), last, horizon)
    for d in sorted(fx_days | source_days):
        if d in fx_days:
            fx = update_fx_latest(fx, ingest_landing_day("fx_rates", d, settings).clean)
        if d in source_days:
            result = ingest_landing_day(source, d, settings, fx_latest=fx, seen_ids=state)
            state = update_seen_ids(state, source, result.clean, d, horizon)
    return state


def _landing_days(source: str, settings: Settings, first: dt.date, last: dt.date) -> list[dt.date]:
    """The assigned days in first..last that can hold rows of `source`: a folder exists at the day or beside it."""
    folders = list_landing_days(source, settings)
    days = {f + dt.timedelta(days=k) for f in folders for k in (-1, 0, 1)}
    return sorted(d for d in days if first <= d <= last)


def _fx_state(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or not len(frame):
        return pd.DataFrame({
            "currency": pd.Series([], dtype="string"),
            "rate_date": pd.Series([], dtype="datetime64[s]"),
            "rate_to_reporting": pd.Series([], dtype="float64"),
        })
    return pd.DataFrame({
        "currency": frame["currency"].astype("string").to_numpy(),
        "rate_date": pd.to_datetime(frame["rate_date"]).astype("datetime64[s]").to_numpy(),
        "rate_to_reporting": frame["rate_to_reporting"].astype("float64").to_numpy(),
    }).astype({"currency": "string"})


# ---------------------------------------------------------------------------------------------------------------
# reading and assignment


def _read_assigned(
    contract: LandingContract, day: dt.date, settings: Settings
) -> tuple[pd.DataFrame, list[str], list[UnparsableFile], list[SkippedFile], int]:
    """The rows of folders D-1, D, D+1 assigned to D, in (folder day, file name, row) order.

    Files are streamed: only the rows of D are kept, batch by batch. An unparsable file (even one found after
    some of its batches were read) contributes no row, and is reported by the partition of its own folder only,
    so that it is one quarantine entry in all, not three; skipped folder entries likewise.
    """
    tables: list[pa.Table] = []
    files: list[str] = []
    unparsable: list[UnparsableFile] = []
    skipped: list[SkippedFile] = []
    files_read = 0
    for offset in (-1, 0, 1):
        folder_day = day + dt.timedelta(days=offset)
        folder = list_landing_folder(contract.source, folder_day, settings)
        if offset == 0:
            skipped = folder.skipped
            for entry in skipped:
                if not entry.expected:
                    log.warning("landing file not read: %s (%s)", shown(entry.path), entry.reason)
        for path in folder.files:
            try:
                kept = [t for t in assigned_batches(contract, path, folder_day, day, settings, len(files))
                        if t.num_rows]
            except UnreadableFile as exc:
                log.warning("unparsable landing file in %s: %s", shown(path.rsplit("/", 1)[0]), exc.summary)
                if offset == 0:
                    unparsable.append(UnparsableFile(path=path, error=exc.summary, detail=exc.detail))
                continue
            files_read += 1
            files.append(path)
            tables.extend(kept)
    if tables:
        # one chunk per column: the day's vectorised work is much slower on hundreds of batch-sized chunks
        combined = pa.concat_tables(tables, promote_options="default").combine_chunks()
        del tables
    else:
        combined = _assign(contract, pa.table({}), day, day, settings, 0, 0)
    raw = text_frame(combined)
    return raw, files, unparsable, skipped, files_read


def _string_columns(contract: LandingContract) -> list[str]:
    """The contract's text columns (JSON readers must not infer an id such as "007" into a number)."""
    return [c for c in contract.columns if c not in contract.numbers]


def assigned_batches(contract: LandingContract, path: str, folder_day: dt.date, day: dt.date, settings: Settings,
                     file_index: int) -> Iterator[pa.Table]:
    """The rows of one landing file of folder `folder_day` that are assigned to `day`, batch by batch, with the
    bookkeeping columns (row numbers count from the file's first row). Ingestion and the late-data sensor both
    read through here, so a late file's rows are assigned exactly as ingestion assigns them. Raises
    `UnreadableFile` (possibly after some batches: the caller drops them)."""
    first_row = 0
    for table in read_landing_batches(path, settings, _string_columns(contract)):
        yield _assign(contract, table, folder_day, day, settings, file_index, first_row)
        first_row += table.num_rows


def _assign(contract: LandingContract, table: pa.Table, folder_day: dt.date, day: dt.date,
            settings: Settings, file_index: int, first_row: int) -> pa.Table:
    """The rows of one batch of a file assigned to `day`, with the bookkeeping columns added."""
    for column in contract.columns:
        if column not in table.column_names:  # a contract column missing from a file is null in every row
            table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
    text = text_frame(table.select([contract.day_column]))[contract.day_column]
    if contract.day_is_date:
        value = parse_date(text)
        value_day = value
    else:
        value = parse_utc(text)
        value_day = local_day(value, settings.timezone)
    folder = np.datetime64(folder_day.isoformat(), "s")
    offset = (value_day - folder).abs()
    within = (offset <= _ONE_DAY).fillna(False).to_numpy(dtype=bool)
    mismatch = value_day.notna().to_numpy() & ~within
    assigned = np.where(within, value_day.to_numpy(), folder)
    keep = assigned == np.datetime64(day.isoformat(), "s")
    rows = np.flatnonzero(keep)
    # the common case (every row of the batch is of D) keeps the batch as it is, without a copy
    kept = table if len(rows) == table.num_rows else table.take(pa.array(rows))
    meta = {
        _FILE: pa.array(np.full(len(rows), file_index, dtype=np.int32)),
        _ROW: pa.array(rows.astype(np.int64) + first_row),
        _VALUE: pa.Array.from_pandas(value.iloc[rows]).cast(_value_type(contract)),
        _MISMATCH: pa.array(mismatch[rows], type=pa.bool_()),
    }
    for name, array in meta.items():
        kept = kept.append_column(name, array)
    return kept


def _value_type(contract: LandingContract) -> pa.DataType:
    return pa.timestamp("s") if contract.day_is_date else pa.timestamp("us", tz="UTC")


# ---------------------------------------------------------------------------------------------------------------
# exact re-deliveries


def _exact_redeliveries(contract: LandingContract, norm: pd.DataFrame, numbers: pd.DataFrame,
                        day_value: pd.Series) -> np.ndarray:
    """True for a row whose contract values equal an earlier row's (the earlier one is kept).

    Only rows whose id repeats can be equal, so only those are compared in full: each column is factorised
    (vectorised, one column at a time to bound memory) and rows are compared exactly on their codes. Closed
    vocabularies (event_type, channel, currency, ...) compare case-insensitively, as the clean rows do.
    """
    n = len(norm)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    id_columns = [c for c in contract.id_columns if c in norm.columns]
    rows = np.arange(n)
    if id_columns:
        id_keys = pd.DataFrame({c: norm[c].str.lower() if c in CASE_INSENSITIVE else norm[c] for c in id_columns})
        rows = np.flatnonzero(id_keys.duplicated(keep=False).to_numpy())
        if not len(rows):
            return out

    def keys(column: str) -> list[pd.Series]:
        text = norm[column].iloc[rows]
        if column == contract.day_column:
            value = day_value.iloc[rows]
            return [value, text.where(value.isna())]
        if column in contract.numbers:
            number = numbers[column].iloc[rows]
            return [number, text.where(number.isna())]
        return [text.str.lower() if column in CASE_INSENSITIVE else text]

    codes = pd.DataFrame({
        f"{column}#{j}": pd.factorize(key, use_na_sentinel=False)[0].astype(np.int32)
        for column in contract.columns for j, key in enumerate(keys(column))
    })
    out[rows] = codes.duplicated(keep="first").to_numpy()
    return out


# ---------------------------------------------------------------------------------------------------------------
# validation


class _Checks:
    """Parsed values and the validation masks of one assigned day (rows after re-delivery removal)."""

    def __init__(self, contract: LandingContract, day: dt.date, settings: Settings, raw: pd.DataFrame,
                 norm: pd.DataFrame, numbers: pd.DataFrame, fx_latest: pd.DataFrame | None) -> None:
        self.contract = contract
        self.day = day
        self.settings = settings
        self.raw = raw
        self.norm = norm
        self.numbers = numbers
        self.value = raw[_VALUE]
        self.email = normalise_email(norm["email"]) if "email" in norm else None
        self.phone = normalise_phone(norm["phone"], settings.phone_region) if "phone" in norm else None
        self.currency = norm["currency"].str.upper() if "currency" in norm else None
        self.fx_rate = self._fx_rate(fx_latest) if contract.has_currency else None
        self.masks: dict[str, np.ndarray] = {}
        self.details: dict[str, pd.Series] = {}

    # -- parsed values -------------------------------------------------------------------------------------

    def lower(self, column: str) -> pd.Series:
        return self.norm[column].str.lower()

    def _fx_rate(self, fx_latest: pd.DataFrame | None) -> pd.Series:
        """The rate of each row's currency: 1 for the reporting currency, else the latest on or before D."""
        state = _fx_state(fx_latest)
        # never a future rate, even if the caller passes a later state
        state = state[state["rate_date"] <= np.datetime64(self.day.isoformat(), "s")]
        state = state.sort_values(["currency", "rate_date"], kind="mergesort").drop_duplicates("currency", keep="last")
        rates = pd.Series(state["rate_to_reporting"].to_numpy(), index=state["currency"].str.upper().to_numpy())
        assert self.currency is not None
        rate = self.currency.map(rates).astype("float64")
        return rate.mask(self.currency == self.settings.reporting_currency, 1.0)

    def ids(self) -> pd.DataFrame | None:
        """The id columns (clean names) whose repetition with other content is a conflict."""
        if not self.contract.id_columns:
            return None
        if self.contract.source == "fx_rates":
            return pd.DataFrame({"rate_date": self.value, "currency": self.currency}, index=self.norm.index)
        return self.norm[list(self.contract.id_columns)]

    # -- masks, in VALIDATION_ORDER ------------------------------------------------------------------------

    def first_failing(self) -> np.ndarray:
        """0 for a row that passes, else 1 + the index in VALIDATION_ORDER of its first failing check."""
        n = len(self.norm)
        code = np.zeros(n, dtype=np.int8)
        for i, reason in enumerate(VALIDATION_ORDER, start=1):
            mask = getattr(self, f"_check_{reason}")()
            if mask is None:
                continue
            mask = np.asarray(mask, dtype=bool)
            self.masks[reason] = mask
            code[(code == 0) & mask] = i
        return code

    def _check_missing_required_field(self) -> np.ndarray:
        missing = np.zeros(len(self.norm), dtype=bool)
        for column in self.contract.required:
            missing |= self.norm[column].isna().to_numpy()
        return missing

    def _check_no_identifier(self) -> np.ndarray | None:
        if not self.contract.identifiers:
            return None
        present = np.zeros(len(self.norm), dtype=bool)
        for column in self.contract.identifiers:
            # an email/phone that is not one (normalises to nothing) identifies nobody
            values = {"email": self.email, "phone": self.phone}.get(column, self.norm[column])
            assert values is not None
            present |= values.notna().to_numpy()
        return ~present

    def _check_unparsable_timestamp(self) -> np.ndarray:
        return (self.norm[self.contract.day_column].notna() & self.value.isna()).to_numpy()

    def _number_bad(self, column: str) -> np.ndarray:
        """Present but not a number (`abc`, `1,5`, `inf`, `nan`). A number too large for a float (`1e400`) is a
        number, and out of range (amount_out_of_range)."""
        present = self.norm[column].notna().to_numpy()
        number = self.numbers[column]
        return present & ~np.isfinite(number.to_numpy(dtype="float64")) & ~overflows(self.norm[column], number)

    def _check_unparsable_number(self) -> np.ndarray | None:
        if not self.contract.numbers:
            return None
        bad = np.zeros(len(self.norm), dtype=bool)
        for column in self.contract.numbers:
            bad |= self._number_bad(column)
        return bad

    def _negative(self) -> dict[str, np.ndarray]:
        out = {c: (self.numbers[c] < 0).to_numpy() for c in self.contract.amounts}
        if self.contract.source == "orders":
            discount = self.numbers["discount_amount"].fillna(0.0)
            out["net_revenue"] = (self.numbers["gross_revenue"] - discount < 0).to_numpy()
        return out

    def _check_negative_amount(self) -> np.ndarray | None:
        if not self.contract.amounts:
            return None
        negative = np.zeros(len(self.norm), dtype=bool)
        for mask in self._negative().values():
            negative |= mask
        return negative

    def _check_unknown_event_type(self) -> np.ndarray | None:
        if self.contract.source != "events":
            return None
        event_type = self.lower("event_type")
        return (event_type.notna() & ~event_type.isin(EVENT_TYPES)).to_numpy()

    def _check_unknown_currency(self) -> np.ndarray | None:
        if self.currency is None:
            return None
        return (self.currency.notna() & ~self.currency.isin(ISO_4217)).to_numpy()

    def _invalid(self) -> dict[str, np.ndarray]:
        lists = {"costs": {"cost_type": COST_TYPES, "objective": OBJECTIVES}, "orders": {"sale_type": SALE_TYPES}}
        out = {}
        for column, allowed in lists.get(self.contract.source, {}).items():
            values = self.lower(column)
            out[column] = (values.notna() & ~values.isin(allowed)).to_numpy()
        if self.contract.source == "fx_rates":
            out["rate_to_reporting"] = (self.numbers["rate_to_reporting"] <= 0).to_numpy()
        return out

    def _check_invalid_value(self) -> np.ndarray | None:
        invalid = self._invalid()
        if not invalid:
            return None
        out = np.zeros(len(self.norm), dtype=bool)
        for mask in invalid.values():
            out |= mask
        return out

    def converted(self, column: str) -> pd.Series:
        """An amount column in the reporting currency (NaN where the row has no rate)."""
        assert self.fx_rate is not None
        return self.numbers[column] * self.fx_rate

    def _out_of_range(self) -> dict[str, np.ndarray]:
        """Per column: an amount above CRM_MAX_AMOUNT in the reporting currency (an overflow included), or an fx
        rate outside FX_RATE_RANGE. Bounded amounts keep every sum, refund share and ratio downstream finite."""
        if self.contract.source == "fx_rates":
            rate = self.numbers["rate_to_reporting"]
            low, high = FX_RATE_RANGE
            return {"rate_to_reporting": ((rate < low) | (rate > high)).to_numpy()}
        return {column: (self.converted(column) > self.settings.max_amount).to_numpy()
                for column in self.contract.amounts}

    def _check_amount_out_of_range(self) -> np.ndarray | None:
        flags = self._out_of_range()
        if not flags:
            return None
        out = np.zeros(len(self.norm), dtype=bool)
        for mask in flags.values():
            out |= mask
        return out

    def _check_folder_day_mismatch(self) -> np.ndarray:
        return self.raw[_MISMATCH].to_numpy(dtype=bool)

    def _check_missing_fx_rate(self) -> np.ndarray | None:
        if self.fx_rate is None:
            return None
        assert self.currency is not None
        return (self.currency.notna() & self.fx_rate.isna()).to_numpy()

    # -- details of quarantined rows (only ever computed on the few failing rows) -------------------------

    def detail(self, reason: str, rows: np.ndarray) -> pd.Series:
        """Human-readable detail for the rows at positions `rows`, all failing with `reason`."""
        c = self.contract
        norm = self.norm.iloc[rows]
        raw = self.raw.iloc[rows]
        index = norm.index

        def shown(column: str) -> pd.Series:
            return column + "=" + ("'" + raw[column].astype("string") + "'").fillna("null")

        def first_of(flags: dict[str, np.ndarray], text: dict[str, pd.Series | str]) -> pd.Series:
            out = pd.Series(pd.NA, index=index, dtype="string")
            for column in reversed(list(flags)):
                out = out.mask(flags[column][rows], text[column])
            return out

        if reason == "missing_required_field":
            missing = {col: norm[col].isna().to_numpy() for col in c.required}
            out = pd.Series("", index=index, dtype="string")
            for col, flag in missing.items():
                out = out + np.where(flag, col + ", ", "")
            return "missing " + out.str.rstrip(", ")
        if reason == "no_identifier":
            return pd.Series("none of " + ", ".join(c.identifiers), index=index, dtype="string")
        if reason == "unparsable_timestamp":
            return shown(c.day_column)
        if reason == "unparsable_number":
            flags = {col: self._number_bad(col) for col in c.numbers}
            return first_of(flags, {col: shown(col) for col in c.numbers})
        if reason == "negative_amount":
            flags = self._negative()
            text: dict[str, pd.Series | str] = {col: shown(col) + " < 0" for col in c.amounts}
            text["net_revenue"] = "discount_amount > gross_revenue"
            return first_of(flags, text)
        if reason == "unknown_event_type":
            return shown("event_type")
        if reason == "unknown_currency":
            return shown("currency")
        if reason == "invalid_value":
            flags = self._invalid()
            return first_of(flags, {col: shown(col) for col in flags})
        if reason == "folder_day_mismatch":
            value = self.value.iloc[rows]
            value_day = value if c.day_is_date else local_day(value, self.settings.timezone)
            return (c.day_column + " is on " + value_day.dt.strftime("%Y-%m-%d").astype("string")
                    + f" ({self.settings.timezone}), more than one day from its folder")
        if reason == "missing_fx_rate":
            assert self.currency is not None
            return ("no " + self.currency.iloc[rows] + " rate on or before "
                    + self.day.isoformat() + f" (reporting currency {self.settings.reporting_currency})")
        if reason == "amount_out_of_range":
            flags = self._out_of_range()
            if c.source == "fx_rates":
                low, high = FX_RATE_RANGE
                return first_of(flags, {"rate_to_reporting": shown("rate_to_reporting") + f" outside {low:g}..{high:g}"})
            limit = f" {self.settings.reporting_currency}, above CRM_MAX_AMOUNT={self.settings.max_amount:g}"
            return first_of(flags, {col: shown(col) + " is " + self.converted(col).iloc[rows].astype("string") + limit
                                    for col in flags})
        raise ValueError(reason)


# ---------------------------------------------------------------------------------------------------------------
# clean rows


def _device_type(values: pd.Series) -> pd.Series:
    lowered = values.str.lower()
    return lowered.where(lowered.isna() | lowered.isin(DEVICE_TYPES), "other")


def _property(properties: pd.Series, key: str) -> pd.Series:
    """The string value of a top-level-looking `key` in JSON `properties`, trimmed and lower-cased."""
    extracted = properties.str.extract(rf'"{key}"\s*:\s*"([^"]*)"', expand=False)
    return clean_text(extracted).str.lower()


def _clean_frame(contract: LandingContract, checks: _Checks, good: np.ndarray,
                 source_files: pd.Series) -> pd.DataFrame:
    """The clean rows: columns are derived over the whole day, then taken once in id order.

    One take per column (rather than filtering, then sorting) keeps a 1M-row day to one copy of its output.
    """
    source = contract.source
    settings = checks.settings
    s = checks.norm
    value = checks.value
    columns: dict[str, pd.Series] = {}

    if contract.has_currency:
        assert checks.currency is not None and checks.fx_rate is not None
        currency, rate = checks.currency, checks.fx_rate

    if source == "events":
        event_type = s["event_type"].str.lower()
        channel = derive_channel(s["channel"], event_type, s["utm_medium"], s["referrer"],
                                 site_hosts=settings.site_hosts, blog_hosts=settings.blog_hosts)
        bounce = pd.Series(pd.NA, index=s.index, dtype="string")
        is_bounce = (event_type == "email_bounce").fillna(False).to_numpy(dtype=bool) & good
        if is_bounce.any():
            kind = _property(s["properties"][is_bounce], "bounce_type")
            bounce[is_bounce] = kind.where(kind.isin(BOUNCE_TYPES), DEFAULT_BOUNCE_TYPE).to_numpy()
        interaction = pd.Series(pd.NA, index=s.index, dtype="string")
        is_interaction = (event_type == "social_interaction").fillna(False).to_numpy(dtype=bool) & good
        if is_interaction.any():
            kind = _property(s["properties"][is_interaction], "kind")
            interaction[is_interaction] = kind.where(kind.isin(INTERACTION_KINDS)).to_numpy()
        assert checks.email is not None and checks.phone is not None
        columns = {
            "event_id": s["event_id"], "occurred_at": value, "event_type": event_type, "channel": channel,
            "channel_group": channel_group(channel), "campaign_id": s["campaign_id"],
            "device_type": _device_type(s["device_type"]), "session_id": s["session_id"],
            "anonymous_id": s["anonymous_id"], "device_id": s["device_id"], "customer_id": s["customer_id"],
            "email_hash": pseudonymise(checks.email.where(good), settings.pii_key),
            "phone_hash": pseudonymise(checks.phone.where(good), settings.pii_key),
            "utm_source": s["utm_source"], "utm_medium": s["utm_medium"], "utm_campaign": s["utm_campaign"],
            "referrer": s["referrer"], "category": s["category"], "properties": s["properties"],
            "bounce_type": bounce, "interaction_kind": interaction,
        }
    elif source == "orders":
        n = checks.numbers
        gross, cogs = n["gross_revenue"], n["cost_of_goods"]
        discount = n["discount_amount"].fillna(0.0)
        net = gross - discount
        channel = canonical_channel(s["channel"])
        assert checks.email is not None
        columns = {
            "order_id": s["order_id"], "ordered_at": value, "customer_id": s["customer_id"],
            "email_hash": pseudonymise(checks.email.where(good), settings.pii_key),
            "anonymous_id": s["anonymous_id"], "device_id": s["device_id"], "currency": currency,
            "fx_rate": rate, "gross_revenue": gross * rate, "discount_amount": discount * rate,
            "net_revenue": net * rate, "cost_of_goods": cogs * rate, "gross_revenue_original": gross,
            "discount_amount_original": discount, "net_revenue_original": net, "cost_of_goods_original": cogs,
            "sale_type": s["sale_type"].str.lower().fillna(DEFAULT_SALE_TYPE),
            "subscription_id": s["subscription_id"], "categories": s["categories"],
            "device_type": _device_type(s["device_type"]), "channel": channel,
            "channel_group": channel_group(channel),
        }
    elif source == "refunds":
        amount = checks.numbers["amount"]
        columns = {
            "refund_id": s["refund_id"], "order_id": s["order_id"], "refunded_at": value, "currency": currency,
            "fx_rate": rate, "amount": amount * rate, "amount_original": amount,
        }
    elif source == "costs":
        amount = checks.numbers["amount"]
        channel = canonical_channel(s["channel"])
        columns = {
            "cost_date": value, "cost_type": s["cost_type"].str.lower(), "objective": s["objective"].str.lower(),
            "channel": channel, "channel_group": channel_group(channel), "campaign_id": s["campaign_id"],
            "currency": currency, "fx_rate": rate, "amount": amount * rate, "amount_original": amount,
        }
    else:  # fx_rates
        assert checks.currency is not None
        columns = {
            "rate_date": value, "currency": checks.currency,
            "rate_to_reporting": checks.numbers["rate_to_reporting"],
        }

    positions = np.flatnonzero(good)
    sort_keys = list(CLEAN_SORT_KEYS[source])
    keys = pd.DataFrame({k: columns[k].iloc[positions].reset_index(drop=True) for k in sort_keys})
    # stable: rows equal on the keys (costs) keep their delivery order (folder day, file name, row)
    order = positions[keys.sort_values(sort_keys, kind="mergesort", na_position="last").index.to_numpy()]
    clean = {name: col.iloc[order].reset_index(drop=True) for name, col in columns.items()}
    clean["source_file"] = source_files.take(checks.raw[_FILE].to_numpy()[order]).reset_index(drop=True)
    return _conform(pd.DataFrame(clean), CLEAN_SCHEMAS[source])


def _conform(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """Exactly the schema's columns, in order, with pandas dtypes that Arrow writes as the schema's types."""
    out = {}
    for field in schema:
        column = frame[field.name]
        if pa.types.is_string(field.type):
            out[field.name] = column.astype("string")
        elif pa.types.is_timestamp(field.type):
            out[field.name] = column.astype("datetime64[us, UTC]")
        elif pa.types.is_date32(field.type):
            out[field.name] = column.astype("datetime64[s]")
        else:
            out[field.name] = column.astype("float64")
    return pd.DataFrame(out, columns=schema.names)


# ---------------------------------------------------------------------------------------------------------------
# quarantine


def _quarantine(contract: LandingContract, checks: _Checks, reason_code: np.ndarray, conflict: np.ndarray,
                ids: pd.DataFrame | None, source_files: pd.Series, unparsable: list[UnparsableFile],
                repeated: np.ndarray, first_seen: pd.Series) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    raw = checks.raw
    record_columns = [*contract.columns, *(c for c in raw.columns if c not in contract.columns and c not in _META)]
    record_id = _record_id(contract, checks)

    def part(rows: np.ndarray, reason: str, detail: pd.Series) -> pd.DataFrame:
        original = raw.iloc[rows][record_columns]
        # a column only some files carry is noise in the records of the other files' rows
        extras = [c for c in record_columns[len(contract.columns):] if original[c].isna().all()]
        original = original.drop(columns=extras)
        return pd.DataFrame({
            "source_file": source_files.take(raw[_FILE].iloc[rows].to_numpy()).to_numpy(),
            "row_number": raw[_ROW].iloc[rows].to_numpy(),
            "record_id": record_id.iloc[rows].to_numpy(),
            "reason": reason,
            "detail": detail.to_numpy(),
            "record": records_as_json(original).to_numpy(),
        })

    for i, reason in enumerate(VALIDATION_ORDER, start=1):
        rows = np.flatnonzero(reason_code == i)
        if len(rows):
            parts.append(part(rows, reason, checks.detail(reason, rows)))

    rows = np.flatnonzero(conflict)
    if len(rows):
        assert ids is not None
        parts.append(part(rows, CONFLICT_REASON, _conflict_detail(checks, ids, reason_code == 0, rows, source_files)))

    rows = np.flatnonzero(repeated)
    if len(rows):
        column = contract.id_columns[0]
        first = first_seen.iloc[rows].dt.strftime("%Y-%m-%d").astype("string")
        parts.append(part(rows, CONFLICT_REASON, f"{column} first delivered on " + first
                          + f" (its {contract.day_column} on that day): the first delivery is kept"))

    if unparsable:
        parts.append(pd.DataFrame({
            "source_file": [f.path for f in unparsable],
            "row_number": pd.array([pd.NA] * len(unparsable), dtype="Int64"),
            "record_id": pd.array([pd.NA] * len(unparsable), dtype="string"),
            "reason": "unparsable_file",
            "detail": [f.detail or f.error for f in unparsable],
            "record": pd.array([pd.NA] * len(unparsable), dtype="string"),
        }))

    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({f.name: [] for f in QUARANTINE_SCHEMA})
    frame = frame.astype({
        "source_file": "string", "row_number": "Int64", "record_id": "string", "reason": "string",
        "detail": "string", "record": "string",
    })
    frame = frame.sort_values(["source_file", "row_number", "reason"], kind="mergesort", na_position="first")
    return frame[QUARANTINE_SCHEMA.names].reset_index(drop=True)


def _first_seen(contract: LandingContract, checks: _Checks, good: np.ndarray,
                seen_ids: pd.DataFrame | None) -> pd.Series:
    """For each row in `good`, the earlier day its id was first delivered on (from `seen_ids`), else NaT."""
    out = pd.Series(pd.NaT, index=checks.norm.index, dtype="datetime64[s]")
    if seen_ids is None or not len(seen_ids) or not good.any():
        return out
    column = contract.id_columns[0]
    rows = np.flatnonzero(good)
    day_ids = string_array(checks.norm[column].iloc[rows])
    # Arrow's hash lookup, with the day's few thousand ids as the table and the state (a year) probing it
    hit = pc.is_in(string_array(seen_ids[column]), value_set=day_ids).to_numpy(zero_copy_only=False)
    if not hit.any():
        return out
    matched = seen_ids.loc[hit]
    first = pd.to_datetime(matched[FIRST_SEEN]).to_numpy().astype("datetime64[s]")
    position = pc.index_in(day_ids, value_set=string_array(matched[column])).fill_null(-1).to_numpy()
    # only earlier days count, whatever state the caller passes: a day never conflicts with itself or a later one
    found = position >= 0
    found[found] = first[position[found]] < np.datetime64(checks.day.isoformat(), "s")
    out.iloc[rows[found]] = first[position[found]]
    return out


def _record_id(contract: LandingContract, checks: _Checks) -> pd.Series:
    if contract.source == "fx_rates":
        return checks.norm["date"] + "|" + checks.norm["currency"]
    if contract.id_columns:
        return checks.norm[contract.id_columns[0]]
    return pd.Series(pd.NA, index=checks.norm.index, dtype="string")


def _conflict_detail(checks: _Checks, ids: pd.DataFrame, passed: np.ndarray, rows: np.ndarray,
                     source_files: pd.Series) -> pd.Series:
    """Names where the kept row with the same id came from (first passing row of that id)."""
    names = list(ids.columns)
    passed_ids = ids[passed]
    first = passed_ids.assign(_file=checks.raw[_FILE][passed], _row=checks.raw[_ROW][passed])
    first = first.drop_duplicates(names, keep="first")
    conflicting = ids.iloc[rows]
    merged = conflicting.merge(first, on=names, how="left")
    where = source_files.take(merged["_file"].to_numpy()).reset_index(drop=True).astype("string")
    label = "/".join(names)
    return (f"same {label} as " + where + " row " + merged["_row"].astype("string")
            + " with different content").astype("string")
