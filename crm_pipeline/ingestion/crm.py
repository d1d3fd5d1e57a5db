"""Extraction of the CRM database into daily latest-state snapshots (docs/inputs.md section 2), Dagster-free.

Why this shape: the CRM database holds only each row's *latest* state, so partition D cannot be "the rows of
day D" the way a landing folder is. Partition D of `crm_<table>` is therefore a snapshot: the snapshot of D-1
merged by primary key with the rows touched on D (their `updated_at` *or* creation timestamp falls on D, in
the reporting timezone), taken with their current values. KPIs read those rows only through lifecycle
timestamps <= end of D (docs/outputs.md 2.5), which is what makes a backfill reproduce the daily runs.

The three public functions are what the Dagster assets call:

- `extract_crm_day(table, day, settings, first_load=...)` -> `IngestResult`: the rows of one table for day D,
  validated, normalised and pseudonymised; contract breaches go to the quarantine with a reason.
- `merge_snapshot(table, prev, day_clean)`: snapshot D = snapshot D-1 with D's clean rows replacing theirs.
- `split_customer_profiles(customers)`: the public customer columns and the restricted profile columns
  (clear names, birth date, address, normalised email and phone) that only identity resolution reads.

Extraction, step by step:

1. SQL: SQLAlchemy Core `text()` with bound parameters only; identifiers come from the fixed table list and
   the columns the database reports, quoted by the dialect. Timestamps may be ISO strings with any offset
   (SQLite, text columns) or real timestamp columns (PostgreSQL timestamptz), so the SQL only narrows to a
   window widened by 2 days on each side (date strings compare correctly with both) and pandas filters
   exactly after `parse_utc`. The first load reads the whole table: rows whose creation timestamp is
   missing or unparsable cannot be found by a portable SQL comparison, and they must be quarantined rather
   than silently left out. (The SQL window compares a text timestamp by its leading `YYYY-MM-DD`, so a daily
   run does not see a text value padded with leading blanks; the first load does, and parses it.) A date-only
   value (a `date` column, `2026-10-01`) is midnight UTC of that date, like every offset-less timestamp.
   Rows are streamed in chunks of `settings.crm_chunk_size` and every value is kept
   as the driver delivered it (object columns), so the quarantine shows the original content.
2. Day filter (pandas, exact): the row's updated_at or creation timestamp is within day D in
   `settings.timezone`; with `first_load` every row created before the end of D, plus the rows whose creation
   timestamp is missing or unparsable (they are quarantined, so nothing disappears silently).
3. Exact duplicate rows (every extracted value equal) are dropped and counted in `rows_duplicate`. Two
   valid versions of one primary key (a source table without a key constraint) keep the latest updated_at
   and quarantine the other as `duplicate_id_conflict` (see `_flag_id_conflicts`).
4. Validation: each row gets the *first* failing reason of `VALIDATION_ORDER`, so a row with several defects
   is reported once and always under the same reason.
5. Clean rows: trimmed text (closed-list values and channels lower-cased), UTC timestamps, numbers, booleans;
   emails and phones normalised and replaced by keyed hashes (customers also keep the clear profile fields
   for `split_customer_profiles`).

Counts reconcile for every table and day: rows_in = rows_clean + rows_quarantined + rows_duplicate, where
rows_in counts the rows extracted for D (after the exact day filter). `files_read` is 1 when the table was
read and 0 when the database has no such table (the result is then empty and a warning is logged);
`table_rows` is the number of rows in the whole table at extraction (0 when it does not exist), so that a
table that lost its rows is told apart from a quiet day (the `crm_table_not_emptied` check).

The database is opened with `crm_connection`, which never creates it: a SQLite URL naming a missing file is an
error naming the path, and an unreachable server an error showing the URL with its password masked.

Privacy: clean rows hold no raw email or phone. The quarantine keeps each rejected row's original content
(docs/inputs.md section 3), which for customers, leads, tickets and surveys includes clear contact details; it is
no identity/attribution/KPI/audience output (section 4) but must be access-restricted like the profiles.
"""

import datetime as dt
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql.compiler import IdentifierPreparer

from crm_pipeline.ingestion.normalise import (
    canonical_channel,
    clean_text,
    is_missing,
    normalise_email,
    normalise_phone,
    overflows,
    parse_date,
    parse_number,
    parse_utc,
    pseudonymise,
)
from crm_pipeline.ingestion.result import IngestResult, empty_quarantine, quarantine_frame
from crm_pipeline.settings import Settings, mask_url

logger = logging.getLogger(__name__)

__all__ = [
    "CRM_SCHEMAS",
    "CRM_TABLES",
    "CUSTOMER_SNAPSHOT_SCHEMA",
    "PROFILE_SCHEMA",
    "SURVEY_SCORE_RANGES",
    "VALIDATION_ORDER",
    "CrmDatabaseError",
    "crm_connection",
    "crm_source_name",
    "extract_crm_day",
    "merge_snapshot",
    "snapshot_schema",
    "split_customer_profiles",
]

# ---------------------------------------------------------------------------------------------------------------
# schemas

_TS = pa.timestamp("us", tz="UTC")


def _field(name: str, type_: pa.DataType, required: bool = False) -> pa.Field:
    # required = guaranteed non-null in clean rows (validation quarantines rows where it is missing)
    return pa.field(name, type_, nullable=not required)


CRM_TABLES: tuple[str, ...] = (
    "customers",
    "leads",
    "opportunities",
    "support_tickets",
    "survey_responses",
    "subscription_terms",
)

# One row per record id of the table, with its latest state as of the partition day. No raw email/phone column
# anywhere: they are replaced by `email_hash` / `phone_hash` (HMAC-SHA256 of the normalised value).
CRM_SCHEMAS: Mapping[str, pa.Schema] = MappingProxyType(
    {
        "customers": pa.schema(
            [
                _field("customer_id", pa.string(), True),
                _field("created_at", _TS, True),  # registration
                _field("updated_at", _TS),
                _field("email_hash", pa.string()),
                _field("phone_hash", pa.string()),
                _field("region", pa.string()),
                _field("country", pa.string()),
                _field("acquisition_channel", pa.string()),  # lower-cased: it is a channel
                _field("marketing_consent", pa.bool_()),
            ]
        ),
        "leads": pa.schema(
            [
                _field("lead_id", pa.string(), True),
                _field("created_at", _TS, True),
                _field("updated_at", _TS),
                _field("source", pa.string()),
                _field("email_hash", pa.string()),
                _field("phone_hash", pa.string()),
                _field("customer_id", pa.string()),
                _field("first_response_at", _TS),
                _field("qualified_at", _TS),
                _field("converted_at", _TS),
                _field("status", pa.string()),  # not read by KPIs (docs/outputs.md 2.5); validated, lower-cased
            ]
        ),
        "opportunities": pa.schema(
            [
                _field("opportunity_id", pa.string(), True),
                _field("lead_id", pa.string()),
                _field("customer_id", pa.string()),
                _field("created_at", _TS, True),
                _field("updated_at", _TS),
                _field("closed_at", _TS),
                _field("stage", pa.string(), True),
                _field("amount", pa.float64()),  # reporting currency
                _field("opportunity_type", pa.string()),
            ]
        ),
        "support_tickets": pa.schema(
            [
                _field("ticket_id", pa.string(), True),
                _field("customer_id", pa.string()),
                _field("email_hash", pa.string()),
                _field("created_at", _TS, True),
                _field("updated_at", _TS),
                _field("first_response_at", _TS),
                _field("resolved_at", _TS),
                _field("contact_count", pa.int64()),
                _field("reopened", pa.bool_()),
                _field("channel", pa.string()),
            ]
        ),
        "survey_responses": pa.schema(
            [
                _field("response_id", pa.string(), True),
                _field("customer_id", pa.string()),
                _field("email_hash", pa.string()),
                _field("responded_at", _TS, True),
                _field("updated_at", _TS),
                _field("survey_type", pa.string(), True),
                _field("score", pa.float64(), True),
            ]
        ),
        "subscription_terms": pa.schema(
            [
                _field("term_id", pa.string(), True),
                _field("subscription_id", pa.string(), True),
                _field("customer_id", pa.string(), True),
                _field("plan", pa.string()),
                _field("amount", pa.float64(), True),  # recurring revenue of the term, reporting currency
                _field("term_start", _TS, True),
                _field("term_end", _TS),
                _field("status", pa.string()),  # not read by KPIs (docs/outputs.md 2.5); validated, lower-cased
                _field("updated_at", _TS),
            ]
        ),
    }
)

# Restricted: one row per customer_id with the clear values identity resolution needs for fuzzy matching
# (docs/inputs.md section 4). Nothing but identity may read it. Text is trimmed with its case kept; email is the
# normalised (lower-cased) address and phone the E.164 number.
PROFILE_SCHEMA = pa.schema(
    [
        _field("customer_id", pa.string(), True),
        _field("first_name", pa.string()),
        _field("last_name", pa.string()),
        _field("date_of_birth", pa.date32()),
        _field("address_line", pa.string()),
        _field("city", pa.string()),
        _field("postcode", pa.string()),
        _field("email", pa.string()),
        _field("phone", pa.string()),
        _field("region", pa.string()),
        _field("country", pa.string()),
    ]
)

# What `extract_crm_day("customers", ...)` returns and `merge_snapshot("customers", ...)` keeps: the public
# columns followed by the profile-only ones, split apart by `split_customer_profiles` before anything is
# published.
CUSTOMER_SNAPSHOT_SCHEMA = pa.schema(
    list(CRM_SCHEMAS["customers"])
    + [f for f in PROFILE_SCHEMA if f.name not in CRM_SCHEMAS["customers"].names]
)

SURVEY_SCORE_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType({"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)})

# Every row is quarantined under the first reason of this list it fails (reasons of result.REASONS).
VALIDATION_ORDER: tuple[str, ...] = (
    "missing_required_field",  # primary key, creation timestamp and the table's other required columns
    "unparsable_timestamp",  # any lifecycle timestamp (incl. updated_at) present but unparsable
    "unparsable_number",  # amount, score, contact_count present but not a (whole, for counts) number
    "negative_amount",  # opportunity / term amount < 0
    "amount_out_of_range",  # opportunity / term amount above CRM_MAX_AMOUNT (or too large for a float)
    "unknown_survey_type",  # survey_type not nps, csat, ces
    "score_out_of_range",  # not a whole number within the survey's scale
    "contact_count_below_1",
    "invalid_value",  # closed lists (stage, ...), unparsable booleans and date_of_birth
    "duplicate_id_conflict",  # same primary key, different content: all but one version
)

_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")


@dataclass(frozen=True)
class _TableSpec:
    """How one CRM table is read and validated; column types come from its snapshot schema."""

    primary_key: str
    created_column: str
    source_columns: tuple[str, ...]
    required: tuple[str, ...]
    closed_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # free-text columns compared and stored lower-cased (channels, closed lists are lower-cased anyway)
    channels: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    at_least_one: tuple[str, ...] = ()


_SPECS: Mapping[str, _TableSpec] = MappingProxyType(
    {
        "customers": _TableSpec(
            primary_key="customer_id",
            created_column="created_at",
            source_columns=(
                "customer_id", "created_at", "updated_at", "email", "phone", "first_name", "last_name",
                "date_of_birth", "address_line", "city", "postcode", "region", "country", "acquisition_channel",
                "marketing_consent",
            ),
            required=("customer_id", "created_at"),
            channels=("acquisition_channel",),
        ),
        "leads": _TableSpec(
            primary_key="lead_id",
            created_column="created_at",
            source_columns=(
                "lead_id", "created_at", "updated_at", "source", "email", "phone", "customer_id",
                "first_response_at", "qualified_at", "converted_at", "status",
            ),
            required=("lead_id", "created_at"),
            closed_lists={"status": ("open", "qualified", "converted", "disqualified")},
        ),
        "opportunities": _TableSpec(
            primary_key="opportunity_id",
            created_column="created_at",
            source_columns=(
                "opportunity_id", "lead_id", "customer_id", "created_at", "updated_at", "closed_at", "stage",
                "amount", "opportunity_type",
            ),
            # stage is required: a KPI counts won/lost only from stage + closed_at
            required=("opportunity_id", "created_at", "stage"),
            closed_lists={
                "stage": ("open", "won", "lost"),
                "opportunity_type": ("new_business", "upsell", "cross_sell", "renewal"),
            },
            non_negative=("amount",),
        ),
        "support_tickets": _TableSpec(
            primary_key="ticket_id",
            created_column="created_at",
            source_columns=(
                "ticket_id", "customer_id", "email", "created_at", "updated_at", "first_response_at",
                "resolved_at", "contact_count", "reopened", "channel",
            ),
            required=("ticket_id", "created_at"),
            closed_lists={"channel": ("email", "phone", "chat", "social")},
            at_least_one=("contact_count",),
        ),
        "survey_responses": _TableSpec(
            primary_key="response_id",
            created_column="responded_at",
            source_columns=(
                "response_id", "customer_id", "email", "responded_at", "updated_at", "survey_type", "score",
            ),
            required=("response_id", "responded_at", "survey_type", "score"),
        ),
        "subscription_terms": _TableSpec(
            primary_key="term_id",
            created_column="term_start",
            source_columns=(
                "term_id", "subscription_id", "customer_id", "plan", "amount", "term_start", "term_end",
                "status", "updated_at",
            ),
            # subscription_id decides renewals, customer_id and amount every recurring-revenue KPI
            required=("term_id", "subscription_id", "customer_id", "term_start", "amount"),
            closed_lists={"status": ("active", "renewed", "cancelled", "expired")},
            non_negative=("amount",),
        ),
    }
)

# The columns of each CRM table as the input contract defines them (docs/inputs.md section 2): what an exporter
# (or the sample generator) writes and what extraction reads.
CRM_SOURCE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {table: spec.source_columns for table, spec in _SPECS.items()}
)

def crm_source_name(table: str) -> str:
    """The source name of a CRM table in quarantine paths and metadata (`crm_<table>`)."""
    _check_table(table)
    return f"crm_{table}"


def snapshot_schema(table: str) -> pa.Schema:
    """Columns of `extract_crm_day` clean rows and of `merge_snapshot` (customers: public + profile)."""
    _check_table(table)
    return CUSTOMER_SNAPSHOT_SCHEMA if table == "customers" else CRM_SCHEMAS[table]


def _check_table(table: str) -> None:
    # The only way a table name reaches SQL: it must be one of the fixed names (no injection through it).
    if table not in _SPECS:
        raise ValueError(f"unknown CRM table {table!r}; expected one of {', '.join(CRM_TABLES)}")


# ---------------------------------------------------------------------------------------------------------------
# typed frames


def _pandas_dtype(type_: pa.DataType) -> str:
    if pa.types.is_timestamp(type_):
        return "datetime64[us, UTC]"
    if pa.types.is_date32(type_):
        return "datetime64[s]"  # midnight of the date; converts to Arrow date32
    if pa.types.is_floating(type_):
        return "float64"
    if pa.types.is_integer(type_):
        return "Int64"
    if pa.types.is_boolean(type_):
        return "boolean"
    return "string"


def _empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return pd.DataFrame({f.name: pd.Series([], dtype=_pandas_dtype(f.type)) for f in schema})


def _conform(frame: pd.DataFrame, schema: pa.Schema, what: str) -> pd.DataFrame:
    """Exactly the schema's columns, in order, with the pandas dtypes that convert to it.

    Snapshots come back from Parquet with the dtypes pyarrow chose (dates as objects, ...); conforming them
    here keeps merge and split independent of how the previous partition was stored.
    """
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    out: dict[str, pd.Series] = {}
    for f in schema:
        values = frame[f.name]
        if pa.types.is_timestamp(f.type):
            out[f.name] = parse_utc(values)
        elif pa.types.is_date32(f.type):
            out[f.name] = parse_date(values)
        else:
            out[f.name] = values.astype(_pandas_dtype(f.type))
    return pd.DataFrame(out, index=frame.index)


# ---------------------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class _DayWindow:
    start: pd.Timestamp  # start of D in the reporting timezone, as UTC
    end: pd.Timestamp  # start of D+1, as UTC (exclusive)
    sql_from: str  # D-2 as 'YYYY-MM-DD': a value every timestamp/date/text column compares correctly with
    sql_to: str  # D+3 (exclusive): the window widened by 2 days each side covers every UTC offset


def _day_window(day: dt.date, timezone: str) -> _DayWindow:
    def local_midnight(d: dt.date) -> pd.Timestamp:
        # a DST jump at midnight: the day starts at the first instant that exists
        ts = pd.Timestamp(d.isoformat()).tz_localize(timezone, nonexistent="shift_forward", ambiguous=True)
        return ts.tz_convert("UTC")

    return _DayWindow(
        start=local_midnight(day),
        end=local_midnight(day + dt.timedelta(days=1)),
        sql_from=(day - dt.timedelta(days=2)).isoformat(),
        sql_to=(day + dt.timedelta(days=3)).isoformat(),
    )


def _select_statement(
    spec: _TableSpec, table_name: str, columns: Mapping[str, str], preparer: IdentifierPreparer,
    window: _DayWindow, *, first_load: bool,
) -> tuple[sa.TextClause, dict[str, str]]:
    """SELECT of the table's columns and its parameters; identifiers quoted by the dialect, values only bound."""
    quote = preparer.quote
    select_list = ", ".join(f"{quote(actual)} AS {quote(name)}" for name, actual in columns.items())
    sql = f"SELECT {select_list} FROM {quote(table_name)}"
    params: dict[str, str] = {}
    if not first_load:
        cursors = [spec.created_column] + (["updated_at"] if "updated_at" in columns else [])
        # one parameter pair per column: PostgreSQL infers an untyped parameter's type from its first use, so
        # a shared one would become `date` for term_start and then fail against a text updated_at
        sql += " WHERE " + " OR ".join(
            f"({quote(columns[c])} >= :from_{i} AND {quote(columns[c])} < :to_{i})" for i, c in enumerate(cursors)
        )
        for i in range(len(cursors)):
            params |= {f"from_{i}": window.sql_from, f"to_{i}": window.sql_to}
    # a stable order: row numbers in the quarantine and the kept copy of exact duplicates do not depend on
    # the database's scan order
    sql += f" ORDER BY {quote(columns[spec.primary_key])}"
    return sa.text(sql), params


def _on_day(chunk: pd.DataFrame, spec: _TableSpec, window: _DayWindow, *, first_load: bool) -> pd.Series:
    created = parse_utc(chunk[spec.created_column])
    if first_load:
        # NaT (missing/unparsable) compares False, so those rows are kept and later quarantined
        return ~(created >= window.end)
    taken = (created >= window.start) & (created < window.end)
    updated = parse_utc(chunk["updated_at"])
    return taken | ((updated >= window.start) & (updated < window.end))


class CrmDatabaseError(ConnectionError):
    """The CRM database server cannot be reached (the message shows its URL with the password masked)."""


@contextmanager
def crm_connection(database_url: str) -> Iterator[sa.Connection]:
    """A connection to the CRM database that never creates it.

    SQLite creates a missing database file on connect, which turned a mistyped CRM_DATABASE_URL into an empty
    CRM and days that looked fine with wrong KPIs. So a SQLite URL naming a file that does not exist is an error
    naming the path, and the file is opened with SQLite's `mode=rw` (a URI option), so it is not created even if
    it disappears in between. A server that cannot be reached is a `CrmDatabaseError` showing the URL with its
    password masked; the driver's message is kept with the password scrubbed (a malformed URL can leak part of
    it into the host name) and without the original exception chained.
    """
    url = sa.make_url(database_url)
    shown = mask_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not str(url.database).startswith("file:"):
        path = Path(str(url.database)).resolve()  # a relative path is relative to the working directory
        if not path.is_file():
            raise FileNotFoundError(f"CRM database file {path} does not exist (CRM_DATABASE_URL={shown}); the "
                                    "pipeline never creates the CRM database: check the path")
        if url.get_driver_name() == "pysqlite":
            url = url.set(database=f"file:{urllib.parse.quote(str(path))}").update_query_dict(
                {"mode": "rw", "uri": "true"})
    engine = sa.create_engine(url)
    try:
        try:
            connection = engine.connect()
        except (sa.exc.DBAPIError, OSError) as error:
            detail = str(getattr(error, "orig", None) or error).strip()
            if url.password:
                detail = detail.replace(str(url.password), "***")
            raise CrmDatabaseError(f"cannot connect to the CRM database {shown}: {detail}") from None
        with connection:
            yield connection
    finally:
        engine.dispose()


def _table_columns(conn: sa.Connection, table: str) -> tuple[str, dict[str, str]] | None:
    """(the table's name as the database spells it, {lower-case column: column as spelled}); None when the
    database has no such table (names compare case-insensitively)."""
    inspector = sa.inspect(conn)
    names = {t.lower(): t for t in inspector.get_table_names()}
    if table not in names:
        return None
    return names[table], {c["name"].lower(): c["name"] for c in inspector.get_columns(names[table])}


def _read_rows(table: str, window: _DayWindow, settings: Settings, *,
               first_load: bool) -> tuple[pd.DataFrame, int] | None:
    """The table's rows for day D as delivered by the driver (object columns) and the number of rows in the
    whole table; None when the table is missing."""
    spec = _SPECS[table]
    with crm_connection(settings.database_url) as conn:
        found = _table_columns(conn, table)
        if found is None:
            return None
        table_name, present = found
        # the whole table's size, beside the day's rows: a table that lost every row (truncated, a wrong
        # database, a failed replication) reads like a quiet day otherwise
        quoted_table = conn.dialect.identifier_preparer.quote(table_name)
        table_rows = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted_table}")).scalar_one())
        for needed in (spec.primary_key, spec.created_column):
            if needed not in present:
                raise ValueError(f"CRM table {table_name!r} has no column {needed!r} (docs/inputs.md section 2)")
        # optional columns the database lacks are read as missing values rather than failing the day
        columns = {c: present[c] for c in spec.source_columns if c in present}
        statement, params = _select_statement(
            spec, table_name, columns, conn.dialect.identifier_preparer, window, first_load=first_load
        )
        result = conn.execution_options(stream_results=True).execute(statement, params)
        keys = list(result.keys())
        kept: list[pd.DataFrame] = []
        while rows := result.fetchmany(settings.crm_chunk_size):
            chunk = pd.DataFrame(rows, columns=keys, dtype=object)
            for absent in spec.source_columns:
                if absent not in chunk.columns:
                    chunk[absent] = None
            chunk = chunk[list(spec.source_columns)]
            kept.append(chunk[_on_day(chunk, spec, window, first_load=first_load).to_numpy()])
    if not kept:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in spec.source_columns}), table_rows
    return pd.concat(kept, ignore_index=True), table_rows


# ---------------------------------------------------------------------------------------------------------------
# validation and normalisation


class _FirstReason:
    """Collects each row's first failing reason: checks run in VALIDATION_ORDER and never overwrite."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(pd.NA, index=index, dtype="string")
        self.detail = pd.Series(pd.NA, index=index, dtype="string")

    def flag(self, mask: pd.Series, reason: str, detail: pd.Series | str) -> None:
        take = mask.astype("boolean").fillna(False).astype(bool) & self.reason.isna()
        self.reason = self.reason.mask(take, reason)
        self.detail = self.detail.mask(take, detail)

    @property
    def failed(self) -> pd.Series:
        return self.reason.notna()


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.astype("string").fillna("") + "'"


def _parse_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Nullable booleans from bool/0/1/true/false/yes/no text, and the mask of present but unreadable values."""
    text = clean_text(values).str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out = out.mask(text.isin(_TRUE), True).mask(text.isin(_FALSE), False)
    return out, text.notna() & out.isna()


def _validate_and_type(
    table: str, raw: pd.DataFrame, settings: Settings
) -> tuple[pd.DataFrame, _FirstReason]:
    """Typed values of every output column for every row, and each row's first failing reason."""
    spec = _SPECS[table]
    schema = snapshot_schema(table)
    checks = _FirstReason(raw.index)
    typed: dict[str, pd.Series] = {}

    for col in spec.required:
        checks.flag(is_missing(raw[col]), "missing_required_field", f"{col} is missing")

    timestamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    for col in timestamps:
        typed[col] = parse_utc(raw[col])
        bad = ~is_missing(raw[col]) & typed[col].isna()
        checks.flag(bad, "unparsable_timestamp", f"{col}: unparsable timestamp " + _quoted(raw[col]))

    numbers = [f.name for f in schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)]
    for col in numbers:
        number = parse_number(raw[col])
        # an amount too large for a float (1e400) is a number, out of range below, not an unparsable one
        too_large = overflows(raw[col], number) if col in spec.non_negative else False
        number = number.where(np.isfinite(number) | too_large)
        integral = pa.types.is_integer(schema.field(col).type)
        bad = ~is_missing(raw[col]) & number.isna()
        if integral:
            bad |= number.notna() & (number != np.floor(number))
            number = number.where(~bad)
            typed[col] = number.astype("Int64")
        else:
            typed[col] = number
        what = "a whole number" if integral else "a number"
        checks.flag(bad, "unparsable_number", f"{col}: not {what}: " + _quoted(raw[col]))

    for col in spec.non_negative:
        checks.flag(typed[col] < 0, "negative_amount", f"{col} is negative: " + _quoted(raw[col]))
    for col in spec.non_negative:
        checks.flag(typed[col] > settings.max_amount, "amount_out_of_range",
                    f"{col} is above CRM_MAX_AMOUNT={settings.max_amount:g}: " + _quoted(raw[col]))

    if table == "survey_responses":
        survey_type = clean_text(raw["survey_type"]).str.lower()
        typed["survey_type"] = survey_type
        known = survey_type.isin(list(SURVEY_SCORE_RANGES))
        checks.flag(survey_type.notna() & ~known, "unknown_survey_type",
                    "survey_type " + _quoted(raw["survey_type"]) + " is not one of nps, csat, ces")
        low = survey_type.map({k: v[0] for k, v in SURVEY_SCORE_RANGES.items()}).astype("float64")
        high = survey_type.map({k: v[1] for k, v in SURVEY_SCORE_RANGES.items()}).astype("float64")
        score = typed["score"]
        # NPS/CSAT/CES answers are points on an integer scale: 7.5 is no answer anyone gave
        outside = known & score.notna() & ((score < low) | (score > high) | (score != np.floor(score)))
        checks.flag(outside, "score_out_of_range",
                    "score " + _quoted(raw["score"]) + " outside the " + survey_type.fillna("") + " scale "
                    + low.astype("Int64").astype("string").fillna("") + "-"
                    + high.astype("Int64").astype("string").fillna(""))

    for col in spec.at_least_one:
        checks.flag(typed[col] < 1, "contact_count_below_1", f"{col} is below 1: " + _quoted(raw[col]))

    for col, allowed in spec.closed_lists.items():
        value = clean_text(raw[col]).str.lower()
        typed[col] = value
        checks.flag(value.notna() & ~value.isin(list(allowed)), "invalid_value",
                    f"{col} " + _quoted(raw[col]) + f" is not one of {', '.join(allowed)}")
    for f in schema:
        if pa.types.is_boolean(f.type):
            typed[f.name], bad = _parse_bool(raw[f.name])
            checks.flag(bad, "invalid_value", f"{f.name}: not a boolean: " + _quoted(raw[f.name]))
        elif pa.types.is_date32(f.type):
            typed[f.name] = parse_date(raw[f.name])
            bad = ~is_missing(raw[f.name]) & typed[f.name].isna()
            checks.flag(bad, "invalid_value", f"{f.name}: not a YYYY-MM-DD date: " + _quoted(raw[f.name]))

    # identifiers: normalised, then pseudonymised; customers keep the normalised clear values for identity
    if "email" in spec.source_columns:
        email = normalise_email(raw["email"])
        typed["email_hash"] = pseudonymise(email, settings.pii_key)
        if "email" in schema.names:
            typed["email"] = email
    if "phone" in spec.source_columns:
        phone = normalise_phone(raw["phone"], settings.phone_region)
        typed["phone_hash"] = pseudonymise(phone, settings.pii_key)
        if "phone" in schema.names:
            typed["phone"] = phone

    for col in spec.channels:
        typed[col] = canonical_channel(raw[col])
    for f in schema:
        if f.name not in typed:  # ids and free text: trimmed, case kept
            typed[f.name] = clean_text(raw[f.name])

    frame = pd.DataFrame({f.name: typed[f.name].astype(_pandas_dtype(f.type)) for f in schema}, index=raw.index)
    return frame, checks


def _flag_id_conflicts(table: str, raw: pd.DataFrame, typed: pd.DataFrame, checks: _FirstReason) -> None:
    """Among rows still valid, one version per primary key survives; the others are `duplicate_id_conflict`.

    Which version: the latest `updated_at` (the database holds latest states, so the most recent one is the
    current value; missing updated_at counts as oldest), ties broken by the row's delivered values compared as
    text, column by column, so the choice does not depend on the order the database returned the rows in.
    """
    pk = _SPECS[table].primary_key
    keys = typed[pk].where(~checks.failed)
    contested = keys.notna() & keys.duplicated(keep=False)
    if not contested.any():
        return
    content = raw.loc[contested].astype("string").fillna("")
    content.columns = [f"content_{i}" for i in range(content.shape[1])]
    order = pd.concat([keys[contested].rename("key"), typed.loc[contested, "updated_at"], content], axis=1)
    order = order.sort_values(
        ["updated_at", *content.columns], ascending=[False] + [True] * content.shape[1], na_position="last",
        kind="stable",
    )
    losers = order.index[order["key"].duplicated(keep="first")]
    winner = order.drop_duplicates("key").set_index("key")
    mask = pd.Series(False, index=raw.index)
    mask[losers] = True
    kept_updated = winner["updated_at"].astype("string").fillna("missing")
    detail = (f"{pk} " + _quoted(keys) + " has another version with different content; kept the one updated at "
              + keys.map(kept_updated).astype("string").fillna(""))
    checks.flag(mask, "duplicate_id_conflict", detail)


# ---------------------------------------------------------------------------------------------------------------
# public API


def extract_crm_day(table: str, day: dt.date, settings: Settings, *, first_load: bool) -> IngestResult:
    """The rows of one CRM table for partition `day`, validated, normalised and pseudonymised.

    `first_load`: the first partition, or a backfill's first day with no earlier snapshot: every row created
    on or before the end of `day` (and every row whose creation timestamp is missing or unparsable, which is
    quarantined), since no earlier snapshot holds them. Otherwise the rows whose updated_at or creation
    timestamp is on `day` in `settings.timezone`.

    Clean rows have the columns of `snapshot_schema(table)` (customers: public and profile columns; split
    them with `split_customer_profiles` before publishing), one row per primary key, sorted by it.
    Quarantined rows use `result.QUARANTINE_SCHEMA` with `source_file` = `crm:<table>` and `row_number` = the
    row's 0-based position among the rows extracted for `day` in primary-key order.
    """
    _check_table(table)
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
    spec = _SPECS[table]
    schema = snapshot_schema(table)
    window = _day_window(day, settings.timezone)

    read = _read_rows(table, window, settings, first_load=first_load)
    if read is None:
        logger.warning("CRM table %r does not exist in the database: partition %s of %s is empty",
                       table, day.isoformat(), crm_source_name(table))
        return IngestResult(clean=_empty_frame(schema), quarantine=empty_quarantine(), rows_in=0,
                            rows_duplicate=0, files_read=0, table_rows=0)
    raw, table_rows = read

    rows_in = len(raw)
    rows_on_day = int(_on_day(raw, spec, window, first_load=False).sum()) if first_load else rows_in
    # exact duplicates: every delivered value equal (compared as text, the form the quarantine records)
    duplicate = raw.astype("string").duplicated(keep="first").to_numpy()
    rows = raw.loc[~duplicate]

    typed, checks = _validate_and_type(table, rows, settings)
    _flag_id_conflicts(table, rows, typed, checks)

    failed = checks.failed.to_numpy()
    bad = rows.loc[failed]
    quarantine = (
        quarantine_frame(
            bad,
            checks.reason[failed],
            source_file=pd.Series(f"crm:{table}", index=bad.index),
            row_number=pd.Series(bad.index, index=bad.index),
            record_id=clean_text(bad[spec.primary_key]),
            detail=checks.detail[failed],
        )
        if failed.any()
        else empty_quarantine()
    )
    clean = typed.loc[~failed].sort_values(spec.primary_key, kind="stable").reset_index(drop=True)
    return IngestResult(clean=clean, quarantine=quarantine, rows_in=rows_in,
                        rows_duplicate=int(duplicate.sum()), files_read=1, rows_on_day=rows_on_day,
                        table_rows=table_rows)


def merge_snapshot(table: str, prev: pd.DataFrame | None, day_clean: pd.DataFrame) -> pd.DataFrame:
    """Snapshot of D: the snapshot of D-1 with D's clean rows replacing the rows of the same primary key.

    A row quarantined on D is not in `day_clean`, so its previous good version stays in the snapshot: a bad
    update never deletes a record, and the quarantine shows what was rejected. `prev=None` (first load):
    just D's rows. Returns exactly `snapshot_schema(table)` (customers: public + profile columns), sorted by
    primary key.
    """
    schema = snapshot_schema(table)
    pk = _SPECS[table].primary_key
    day = _conform(day_clean, schema, f"clean rows of {table}")
    if day[pk].isna().any() or day[pk].duplicated().any():
        raise ValueError(f"clean rows of {table} must have one row per non-missing {pk}")
    parts = [day]
    if prev is not None:
        previous = _conform(prev, schema, f"previous snapshot of {table}")
        parts.insert(0, previous.loc[~previous[pk].isin(day[pk])])
    parts = [p for p in parts if not p.empty]
    merged = pd.concat(parts, ignore_index=True) if parts else _empty_frame(schema)
    return merged.sort_values(pk, kind="stable").reset_index(drop=True)


def split_customer_profiles(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(public, profiles) of a customers frame from `extract_crm_day` or `merge_snapshot`.

    public = exactly `CRM_SCHEMAS["customers"]` (hashes only: safe for every downstream asset);
    profiles = exactly `PROFILE_SCHEMA` (clear names, birth date, address, email, phone): restricted, read by
    identity resolution alone (docs/inputs.md section 4).
    """
    public = _conform(customers, CRM_SCHEMAS["customers"], "customers frame")
    profiles = _conform(customers, PROFILE_SCHEMA, "customers frame (profile columns)")
    return public.reset_index(drop=True), profiles.reset_index(drop=True)
