"""Extraction of CRM tables into daily snapshots, on real SQLite files and on PostgreSQL.

Every test builds a tiny CRM database by hand; the expected values were worked out from docs/inputs.md section 2
(day window, first load, latest state) and section 3 (quarantine reasons). Tests taking `database_url` run
once on a SQLite file and once on a fresh PostgreSQL database (skipped when no server is reachable).
"""

import datetime as dt
import hashlib
import hmac
import re
import socket
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from crm_pipeline.ingestion.crm import (
    CRM_SCHEMAS,
    CRM_SOURCE_COLUMNS,
    CRM_TABLES,
    CUSTOMER_SNAPSHOT_SCHEMA,
    PROFILE_SCHEMA,
    VALIDATION_ORDER,
    crm_source_name,
    extract_crm_day,
    merge_snapshot,
    snapshot_schema,
    split_customer_profiles,
)
from crm_pipeline.ingestion.result import QUARANTINE_SCHEMA, REASONS, IngestResult
from crm_pipeline.settings import Settings

DAY = dt.date(2026, 10, 1)

SOURCE_COLUMNS = CRM_SOURCE_COLUMNS  # the CRM tables' columns of the input contract
PRIMARY_KEYS = {
    "customers": "customer_id", "leads": "lead_id", "opportunities": "opportunity_id",
    "support_tickets": "ticket_id", "survey_responses": "response_id", "subscription_terms": "term_id",
}


# ---------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on an SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'crm.sqlite'}"


def make_settings(tmp_path: Path, url: str, **overrides: Any) -> Settings:
    return Settings(landing_root=str(tmp_path), warehouse_root=str(tmp_path), database_url=url, **overrides)


def create_table(
    url: str, table: str, rows: Iterable[Mapping[str, Any]], *, types: Mapping[str, Any] | None = None,
    columns: Iterable[str] | None = None,
) -> None:
    """Create `table` (every column TEXT unless `types` says otherwise, no primary key constraint) with `rows`.

    TEXT timestamps are what SQLite holds and what a loosely typed export looks like; `types` gives
    PostgreSQL-native columns (timestamptz, numeric, boolean, date).
    """
    names = tuple(columns or SOURCE_COLUMNS[table])
    metadata = sa.MetaData()
    target = sa.Table(table, metadata, *(sa.Column(c, (types or {}).get(c, sa.Text())) for c in names))
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
        values = [{c: row.get(c) for c in names} for row in rows]
        if values:
            with engine.begin() as conn:
                conn.execute(target.insert(), values)
    finally:
        engine.dispose()


def execute(url: str, statement: str, **params: Any) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def ids(result: IngestResult, table: str) -> list[str]:
    return result.clean[PRIMARY_KEYS[table]].tolist()


def reasons(result: IngestResult) -> dict[str, str]:
    """record_id -> reason of the quarantined rows (rows without an id under '<missing>')."""
    q = result.quarantine
    return dict(zip(q["record_id"].fillna("<missing>"), q["reason"], strict=True))


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


def keyed_hash(value: str, key: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def assert_reconciles(result: IngestResult) -> None:
    assert result.rows_in == result.rows_clean + result.rows_quarantined + result.rows_duplicate, result.counts()


# ---------------------------------------------------------------------------------------------------------------
# schemas


def test_schemas_have_no_raw_identifiers_and_no_date_column() -> None:
    assert set(CRM_SCHEMAS) == set(CRM_TABLES)
    for table, schema in CRM_SCHEMAS.items():
        assert "email" not in schema.names and "phone" not in schema.names, table
        assert "date" not in schema.names, table
        assert schema.names[0] == PRIMARY_KEYS[table], table
    assert "date" not in CUSTOMER_SNAPSHOT_SCHEMA.names and "date" not in PROFILE_SCHEMA.names
    assert CRM_SCHEMAS["customers"].names == [
        "customer_id", "created_at", "updated_at", "email_hash", "phone_hash", "region", "country",
        "acquisition_channel", "marketing_consent",
    ]
    assert PROFILE_SCHEMA.names == [
        "customer_id", "first_name", "last_name", "date_of_birth", "address_line", "city", "postcode", "email",
        "phone", "region", "country",
    ]
    assert CRM_SCHEMAS["support_tickets"].field("contact_count").type == pa.int64()
    assert CRM_SCHEMAS["support_tickets"].field("reopened").type == pa.bool_()
    assert CRM_SCHEMAS["subscription_terms"].field("term_end").type == pa.timestamp("us", tz="UTC")
    assert PROFILE_SCHEMA.field("date_of_birth").type == pa.date32()


def test_validation_order_uses_the_reason_vocabulary() -> None:
    assert set(VALIDATION_ORDER) <= set(REASONS)
    # the fixed order the brief and the module docstring document
    assert VALIDATION_ORDER == (
        "missing_required_field", "unparsable_timestamp", "unparsable_number", "negative_amount",
        "amount_out_of_range", "unknown_survey_type", "score_out_of_range", "contact_count_below_1",
        "invalid_value", "duplicate_id_conflict",
    )
    assert crm_source_name("leads") == "crm_leads"


# ---------------------------------------------------------------------------------------------------------------
# day window


def test_day_window_takes_rows_updated_or_created_on_the_day(database_url: str, tmp_path: Path) -> None:
    create_table(database_url, "customers", [
        {"customer_id": "c01", "created_at": "2026-09-20T10:00:00Z", "updated_at": "2026-10-01T09:00:00Z"},
        # updated_at missing, created on D: the creation timestamp alone picks it up
        {"customer_id": "c02", "created_at": "2026-10-01T08:00:00Z", "updated_at": None},
        {"customer_id": "c03", "created_at": "2026-10-02T00:00:00Z", "updated_at": "2026-10-02T00:00:00Z"},  # D+1
        {"customer_id": "c04", "created_at": "2026-09-20T10:00:00Z", "updated_at": "2026-09-30T23:59:59Z"},
        # created the day before and last updated the day after D: not touched on D
        {"customer_id": "c05", "created_at": "2026-09-30T23:00:00Z", "updated_at": "2026-10-02T05:00:00Z"},
        {"customer_id": "c06", "created_at": "2026-10-01T23:59:59.999999Z", "updated_at": None},
        # created on D and updated later: extracted on D with its current values
        {"customer_id": "c07", "created_at": "2026-10-01T00:00:00Z", "updated_at": "2026-10-05T00:00:00Z",
         "region": "North"},
    ])
    result = extract_crm_day("customers", DAY, make_settings(tmp_path, database_url), first_load=False)

    assert ids(result, "customers") == ["c01", "c02", "c06", "c07"]
    assert result.clean["created_at"].tolist() == [
        utc("2026-09-20T10:00:00Z"), utc("2026-10-01T08:00:00Z"), utc("2026-10-01T23:59:59.999999Z"),
        utc("2026-10-01T00:00:00Z"),
    ]
    assert result.clean["updated_at"].isna().tolist() == [False, True, True, False]
    assert result.clean["region"].tolist()[3] == "North"
    assert (result.rows_in, result.rows_quarantined, result.rows_duplicate, result.files_read) == (4, 0, 0, 1)


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [
        # l1 03:59:59Z, l2 04:00Z, l3 22:30Z, l4 Oct 2 03:59:59Z, l5 Oct 2 04:00Z, l6 Oct 2 03:59:59Z, l7 04:00Z
        ("UTC", ["l1", "l2", "l3", "l7"]),
        # EDT = UTC-4: day 2026-10-01 is 04:00Z .. Oct 2 04:00Z
        ("America/New_York", ["l2", "l3", "l4", "l6", "l7"]),
    ],
)
def test_timestamps_with_offsets_at_midnight_boundaries(
    database_url: str, tmp_path: Path, timezone: str, expected: list[str]
) -> None:
    create_table(database_url, "leads", [
        {"lead_id": "l1", "created_at": "2026-10-01T03:59:59Z"},
        {"lead_id": "l2", "created_at": "2026-10-01T04:00:00"},  # naive = UTC
        {"lead_id": "l3", "created_at": "2026-10-02T00:30:00+02:00"},
        {"lead_id": "l4", "created_at": "2026-10-01T23:59:59-04:00"},
        {"lead_id": "l5", "created_at": "2026-10-02T00:00:00-04:00"},
        {"lead_id": "l6", "created_at": "2026-10-02T09:59:59+06:00"},
        {"lead_id": "l7", "created_at": "2026-09-30T20:00:00-08:00"},
    ])
    settings = make_settings(tmp_path, database_url, timezone=timezone)
    result = extract_crm_day("leads", DAY, settings, first_load=False)

    assert ids(result, "leads") == expected
    created = dict(zip(result.clean["lead_id"], result.clean["created_at"], strict=True))
    assert created["l3"] == pd.Timestamp("2026-10-01T22:30:00", tz="UTC")
    assert created["l7"] == pd.Timestamp("2026-10-01T04:00:00", tz="UTC")
    assert str(result.clean["created_at"].dtype) == "datetime64[us, UTC]"
    assert result.rows_in == len(expected) and result.quarantine.empty


def test_first_load_takes_every_row_created_up_to_the_day(database_url: str, tmp_path: Path) -> None:
    create_table(database_url, "customers", [
        {"customer_id": "c1", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-06-01T00:00:00Z"},
        {"customer_id": "c2", "created_at": "2026-09-30T12:00:00+02:00"},
        {"customer_id": "c3", "created_at": "2026-10-01T23:59:59Z", "updated_at": "2026-10-03T00:00:00Z"},
        {"customer_id": "c4", "created_at": "2026-10-02T00:00:00Z"},  # after D: a later partition takes it
        # no usable creation timestamp: extracted and quarantined so it does not vanish
        {"customer_id": "c5", "created_at": None, "updated_at": "2026-01-01T00:00:00Z"},
        {"customer_id": "c6", "created_at": "not a time"},
    ])
    result = extract_crm_day("customers", DAY, make_settings(tmp_path, database_url), first_load=True)

    assert ids(result, "customers") == ["c1", "c2", "c3"]
    assert reasons(result) == {"c5": "missing_required_field", "c6": "unparsable_timestamp"}
    assert result.quarantine["detail"].tolist() == [
        "created_at is missing", "created_at: unparsable timestamp 'not a time'",
    ]
    assert result.quarantine["source_file"].tolist() == ["crm:customers", "crm:customers"]
    assert result.quarantine["row_number"].tolist() == [3, 4]
    assert (result.rows_in, result.rows_clean, result.rows_quarantined) == (5, 3, 2)
    assert_reconciles(result)


def test_chunked_streaming_gives_the_same_result(database_url: str, tmp_path: Path) -> None:
    rows = [
        {"opportunity_id": f"o{i}", "created_at": f"2026-10-01T{i:02d}:00:00Z", "stage": "open", "amount": str(i)}
        for i in range(7)
    ]
    rows.append({"opportunity_id": "o2", "created_at": "2026-10-01T02:00:00Z", "stage": "open", "amount": "2"})
    rows.append({"opportunity_id": "o9", "created_at": "2026-10-01T09:00:00Z", "stage": "nope"})
    rows.append({"opportunity_id": "o8", "created_at": "2026-10-02T09:00:00Z", "stage": "open"})  # D+1
    create_table(database_url, "opportunities", rows)

    whole = extract_crm_day("opportunities", DAY, make_settings(tmp_path, database_url), first_load=False)
    chunked = extract_crm_day(
        "opportunities", DAY, make_settings(tmp_path, database_url, crm_chunk_size=2), first_load=False
    )

    assert ids(whole, "opportunities") == [f"o{i}" for i in range(7)]
    assert (whole.rows_in, whole.rows_duplicate, whole.rows_quarantined) == (9, 1, 1)
    pd.testing.assert_frame_equal(chunked.clean, whole.clean)
    pd.testing.assert_frame_equal(chunked.quarantine, whole.quarantine)
    assert chunked.counts() == whole.counts()


# ---------------------------------------------------------------------------------------------------------------
# validation: one table per case, each defect commented


def _on_day(**row: Any) -> dict[str, Any]:
    return row


VALIDATION_CASES: list[tuple[str, list[dict[str, Any]], list[str], dict[str, str]]] = [
    (
        "leads",
        [
            _on_day(lead_id="ok", created_at="2026-10-01T10:00:00Z", status=" Qualified ", source=" Webinar "),
            _on_day(lead_id=None, created_at="2026-10-01T10:00:00Z"),  # no primary key
            # creation missing, picked up through updated_at on D
            _on_day(lead_id="no_created", updated_at="2026-10-01T10:00:00Z"),
            _on_day(lead_id="bad_ts", created_at="2026-10-01T10:00:00Z", first_response_at="soon"),
            _on_day(lead_id="bad_status", created_at="2026-10-01T10:00:00Z", status="pending"),
            # two defects: the earlier reason in VALIDATION_ORDER wins
            _on_day(lead_id="ts_and_status", created_at="2026-10-01T10:00:00Z", converted_at="x", status="?"),
        ],
        ["ok"],
        {"<missing>": "missing_required_field", "no_created": "missing_required_field",
         "bad_ts": "unparsable_timestamp", "bad_status": "invalid_value", "ts_and_status": "unparsable_timestamp"},
    ),
    (
        "opportunities",
        [
            _on_day(opportunity_id="ok", created_at="2026-10-01T10:00:00Z", stage=" Won ", amount="12.5",
                    opportunity_type="Upsell", closed_at="2026-10-01T11:00:00Z"),
            _on_day(opportunity_id="no_stage", created_at="2026-10-01T10:00:00Z"),
            _on_day(opportunity_id="nan_amount", created_at="2026-10-01T10:00:00Z", stage="open", amount="abc"),
            _on_day(opportunity_id="neg", created_at="2026-10-01T10:00:00Z", stage="open", amount="-5"),
            _on_day(opportunity_id="bad_stage", created_at="2026-10-01T10:00:00Z", stage="closed"),
            _on_day(opportunity_id="bad_type", created_at="2026-10-01T10:00:00Z", stage="open",
                    opportunity_type="resale"),
            # negative amount comes before invalid_value
            _on_day(opportunity_id="neg_and_stage", created_at="2026-10-01T10:00:00Z", stage="bogus", amount="-1"),
            # unparsable timestamp comes before unparsable number
            _on_day(opportunity_id="ts_and_num", created_at="2026-10-01T10:00:00Z", stage="open", closed_at="x",
                    amount="abc"),
        ],
        ["ok"],
        {"no_stage": "missing_required_field", "nan_amount": "unparsable_number", "neg": "negative_amount",
         "bad_stage": "invalid_value", "bad_type": "invalid_value", "neg_and_stage": "negative_amount",
         "ts_and_num": "unparsable_timestamp"},
    ),
    (
        "support_tickets",
        [
            _on_day(ticket_id="ok", created_at="2026-10-01T10:00:00Z", contact_count="3", reopened="yes",
                    channel=" Chat "),
            _on_day(ticket_id="open_ok", created_at="2026-10-01T10:00:00Z"),  # nothing but the required fields
            _on_day(ticket_id="zero", created_at="2026-10-01T10:00:00Z", contact_count="0"),
            _on_day(ticket_id="fraction", created_at="2026-10-01T10:00:00Z", contact_count="1.5"),
            _on_day(ticket_id="fax", created_at="2026-10-01T10:00:00Z", channel="fax"),
            _on_day(ticket_id="perhaps", created_at="2026-10-01T10:00:00Z", reopened="perhaps"),
            # contact_count_below_1 comes before invalid_value
            _on_day(ticket_id="zero_fax", created_at="2026-10-01T10:00:00Z", contact_count="0", channel="fax"),
        ],
        ["ok", "open_ok"],
        {"zero": "contact_count_below_1", "fraction": "unparsable_number", "fax": "invalid_value",
         "perhaps": "invalid_value", "zero_fax": "contact_count_below_1"},
    ),
    (
        "survey_responses",
        [
            _on_day(response_id="ok_nps", responded_at="2026-10-01T10:00:00Z", survey_type=" NPS ", score="10"),
            _on_day(response_id="ok_ces", responded_at="2026-10-01T10:00:00Z", survey_type="ces", score="7"),
            _on_day(response_id="no_score", responded_at="2026-10-01T10:00:00Z", survey_type="nps"),
            _on_day(response_id="no_type", responded_at="2026-10-01T10:00:00Z", score="3"),
            _on_day(response_id="ten", responded_at="2026-10-01T10:00:00Z", survey_type="nps", score="ten"),
            _on_day(response_id="csi", responded_at="2026-10-01T10:00:00Z", survey_type="csi", score="3"),
            _on_day(response_id="nps11", responded_at="2026-10-01T10:00:00Z", survey_type="nps", score="11"),
            _on_day(response_id="csat0", responded_at="2026-10-01T10:00:00Z", survey_type="csat", score="0"),
            _on_day(response_id="half", responded_at="2026-10-01T10:00:00Z", survey_type="nps", score="7.5"),
            # unknown survey type comes before the range check it makes impossible
            _on_day(response_id="csi99", responded_at="2026-10-01T10:00:00Z", survey_type="csi", score="99"),
        ],
        ["ok_ces", "ok_nps"],
        {"no_score": "missing_required_field", "no_type": "missing_required_field", "ten": "unparsable_number",
         "csi": "unknown_survey_type", "nps11": "score_out_of_range", "csat0": "score_out_of_range",
         "half": "score_out_of_range", "csi99": "unknown_survey_type"},
    ),
    (
        "subscription_terms",
        [
            _on_day(term_id="ok", subscription_id="s1", customer_id="c1", plan=" Pro ", amount="30",
                    term_start="2026-10-01", term_end="2026-10-31T00:00:00Z", status="Active"),
            _on_day(term_id="no_sub", customer_id="c1", amount="30", term_start="2026-10-01"),
            _on_day(term_id="neg", subscription_id="s1", customer_id="c1", amount="-10", term_start="2026-10-01"),
            _on_day(term_id="paused", subscription_id="s1", customer_id="c1", amount="30",
                    term_start="2026-10-01", status="paused"),
            _on_day(term_id="never", subscription_id="s1", customer_id="c1", amount="30",
                    term_start="2026-10-01", term_end="never"),
        ],
        ["ok"],
        {"no_sub": "missing_required_field", "neg": "negative_amount", "paused": "invalid_value",
         "never": "unparsable_timestamp"},
    ),
    (
        "customers",
        [
            _on_day(customer_id="ok", created_at="2026-10-01T10:00:00Z", date_of_birth="1980-12-31",
                    marketing_consent="0"),
            _on_day(customer_id="dob", created_at="2026-10-01T10:00:00Z", date_of_birth="31/12/1980"),
            _on_day(customer_id="consent", created_at="2026-10-01T10:00:00Z", marketing_consent="maybe"),
            _on_day(customer_id="updated", created_at="2026-10-01T10:00:00Z", updated_at="yesterday"),
        ],
        ["ok"],
        {"dob": "invalid_value", "consent": "invalid_value", "updated": "unparsable_timestamp"},
    ),
]


@pytest.mark.parametrize(
    ("table", "rows", "clean_ids", "expected"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES]
)
def test_each_defect_is_quarantined_with_its_first_reason(
    sqlite_url: str, tmp_path: Path, table: str, rows: list[dict[str, Any]], clean_ids: list[str],
    expected: dict[str, str],
) -> None:
    create_table(sqlite_url, table, rows)
    result = extract_crm_day(table, DAY, make_settings(tmp_path, sqlite_url), first_load=False)

    assert ids(result, table) == clean_ids
    assert reasons(result) == expected
    assert result.rows_in == len(rows)
    assert_reconciles(result)
    assert pa.Table.from_pandas(result.quarantine, schema=QUARANTINE_SCHEMA, preserve_index=False).num_rows == len(
        expected
    )
    pa.Table.from_pandas(result.clean, schema=snapshot_schema(table), preserve_index=False)


def test_amounts_above_the_bound_are_quarantined(database_url: str, tmp_path: Path) -> None:
    """Opportunity and term amounts are in the reporting currency: above CRM_MAX_AMOUNT they are a unit error
    (and a 1e300 deal once went on into the revenue KPIs)."""
    opportunity = {"created_at": "2026-10-01T10:00:00Z", "stage": "open"}
    create_table(database_url, "opportunities", [
        {**opportunity, "opportunity_id": "huge", "amount": "1e300"},
        {**opportunity, "opportunity_id": "overflow", "amount": "1e400"},  # a number, too large for a float
        {**opportunity, "opportunity_id": "word", "amount": "Infinity"},  # no number at all
        {**opportunity, "opportunity_id": "at_bound", "amount": "1000000000"},
        {**opportunity, "opportunity_id": "negative", "amount": "-1e300"},
    ])
    term = {"subscription_id": "s1", "customer_id": "c1", "term_start": "2026-10-01"}
    create_table(database_url, "subscription_terms", [{**term, "term_id": "t1", "amount": "2e9"},
                                                      {**term, "term_id": "t2", "amount": "20"}])
    settings = make_settings(tmp_path, database_url)
    opportunities = extract_crm_day("opportunities", DAY, settings, first_load=False)
    terms = extract_crm_day("subscription_terms", DAY, settings, first_load=False)

    assert ids(opportunities, "opportunities") == ["at_bound"]
    assert reasons(opportunities) == {"huge": "amount_out_of_range", "overflow": "amount_out_of_range",
                                      "word": "unparsable_number", "negative": "negative_amount"}
    details = dict(zip(opportunities.quarantine["record_id"], opportunities.quarantine["detail"], strict=True))
    assert details["huge"] == "amount is above CRM_MAX_AMOUNT=1e+09: '1e300'"
    assert ids(terms, "subscription_terms") == ["t2"] and reasons(terms) == {"t1": "amount_out_of_range"}
    assert_reconciles(opportunities)
    assert_reconciles(terms)
    # the bound is the setting
    wider = extract_crm_day("subscription_terms", DAY, make_settings(tmp_path, database_url, max_amount=5e9),
                            first_load=False)
    assert ids(wider, "subscription_terms") == ["t1", "t2"]


def test_an_amount_too_large_for_a_float_in_a_postgres_numeric_column(postgres_url: str, tmp_path: Path) -> None:
    create_table(postgres_url, "opportunities", [
        {"opportunity_id": "o1", "created_at": "2026-10-01T10:00:00Z", "stage": "won", "amount": "1e400"},
        {"opportunity_id": "o2", "created_at": "2026-10-01T10:00:00Z", "stage": "won", "amount": "12.5"},
    ], types={"amount": sa.Numeric()})
    result = extract_crm_day("opportunities", DAY, make_settings(tmp_path, postgres_url), first_load=False)
    assert ids(result, "opportunities") == ["o2"] and result.clean["amount"].tolist() == [12.5]
    assert reasons(result) == {"o1": "amount_out_of_range"}


def test_clean_values_are_typed_and_normalised(sqlite_url: str, tmp_path: Path) -> None:
    create_table(sqlite_url, "support_tickets", [
        {"ticket_id": " t1 ", "customer_id": "c1", "created_at": "2026-10-01T10:00:00+02:00",
         "resolved_at": "2026-10-01T12:30:00+02:00", "contact_count": "3", "reopened": "TRUE", "channel": " Chat "},
    ])
    create_table(sqlite_url, "subscription_terms", [
        {"term_id": "x1", "subscription_id": "s1", "customer_id": "c1", "plan": " Pro Plus ", "amount": "29.9",
         "term_start": "2026-10-01", "status": " Active "},
    ])
    settings = make_settings(tmp_path, sqlite_url)
    tickets = extract_crm_day("support_tickets", DAY, settings, first_load=False).clean
    terms = extract_crm_day("subscription_terms", DAY, settings, first_load=False).clean

    row = tickets.iloc[0]
    assert (row["ticket_id"], row["channel"], row["contact_count"], row["reopened"]) == ("t1", "chat", 3, True)
    assert row["created_at"] == pd.Timestamp("2026-10-01T08:00:00", tz="UTC")
    assert row["resolved_at"] == pd.Timestamp("2026-10-01T10:30:00", tz="UTC")
    assert str(tickets["contact_count"].dtype) == "Int64"
    term = terms.iloc[0]
    assert (term["plan"], term["amount"], term["status"]) == ("Pro Plus", 29.9, "active")
    assert term["term_start"] == pd.Timestamp("2026-10-01T00:00:00", tz="UTC")


def test_quarantine_keeps_the_original_row(sqlite_url: str, tmp_path: Path) -> None:
    create_table(sqlite_url, "survey_responses", [
        {"response_id": "r1", "customer_id": "c1", "responded_at": "2026-10-01T10:00:00Z", "survey_type": "nps",
         "score": "11"},
    ])
    result = extract_crm_day("survey_responses", DAY, make_settings(tmp_path, sqlite_url), first_load=False)

    q = result.quarantine.iloc[0]
    assert (q["record_id"], q["reason"], q["row_number"]) == ("r1", "score_out_of_range", 0)
    assert q["detail"] == "score '11' outside the nps scale 0-10"
    assert q["record"] == (
        '{"response_id": "r1", "customer_id": "c1", "email": null, "responded_at": "2026-10-01T10:00:00Z", '
        '"updated_at": null, "survey_type": "nps", "score": "11"}'
    )


def test_duplicates_exact_are_dropped_and_conflicting_are_quarantined(database_url: str, tmp_path: Path) -> None:
    base = {"created_at": "2026-10-01T08:00:00Z", "stage": "open"}
    create_table(database_url, "opportunities", [
        {"opportunity_id": "o1", **base, "amount": "10", "updated_at": "2026-10-01T09:00:00Z"},
        {"opportunity_id": "o1", **base, "amount": "10", "updated_at": "2026-10-01T09:00:00Z"},  # exact copy
        # same id, different content: the latest updated_at is the current state
        {"opportunity_id": "o2", **base, "amount": "20", "updated_at": "2026-10-01T09:00:00Z"},
        {"opportunity_id": "o2", **base, "amount": "25", "updated_at": "2026-10-01T11:00:00Z"},
        # same updated_at: ties broken by content (amount '30' < '31' as text), independent of row order
        {"opportunity_id": "o3", **base, "amount": "31", "updated_at": "2026-10-01T09:00:00Z"},
        {"opportunity_id": "o3", **base, "amount": "30", "updated_at": "2026-10-01T09:00:00Z"},
        # one version invalid: it is quarantined for its own reason, the valid one is no conflict
        {"opportunity_id": "o4", **base, "amount": "-1", "updated_at": "2026-10-01T09:00:00Z"},
        {"opportunity_id": "o4", **base, "amount": "40", "updated_at": "2026-10-01T08:00:00Z"},
    ])
    result = extract_crm_day("opportunities", DAY, make_settings(tmp_path, database_url), first_load=False)

    assert ids(result, "opportunities") == ["o1", "o2", "o3", "o4"]
    assert result.clean["amount"].tolist() == [10.0, 25.0, 30.0, 40.0]
    assert sorted(zip(result.quarantine["record_id"], result.quarantine["reason"], strict=True)) == [
        ("o2", "duplicate_id_conflict"), ("o3", "duplicate_id_conflict"), ("o4", "negative_amount"),
    ]
    conflict = result.quarantine.set_index("record_id").loc["o2"]
    assert '"amount": "20"' in conflict["record"]
    assert conflict["detail"] == (
        "opportunity_id 'o2' has another version with different content; kept the one updated at "
        "2026-10-01 11:00:00+00:00"
    )
    assert (result.rows_in, result.rows_clean, result.rows_quarantined, result.rows_duplicate) == (8, 4, 3, 1)
    assert_reconciles(result)


# ---------------------------------------------------------------------------------------------------------------
# snapshots


def test_snapshot_replaces_updated_rows_and_keeps_rows_whose_update_was_quarantined(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, database_url)
    create_table(database_url, "opportunities", [
        {"opportunity_id": "o1", "created_at": "2026-09-30T10:00:00Z", "stage": "open", "amount": "100"},
        {"opportunity_id": "o2", "created_at": "2026-09-30T11:00:00Z", "stage": "open", "amount": "50"},
        {"opportunity_id": "o3", "created_at": "2026-09-29T11:00:00Z", "stage": "lost", "amount": "70",
         "closed_at": "2026-09-30T00:00:00Z"},
    ])
    day_before = extract_crm_day("opportunities", DAY - dt.timedelta(days=1), settings, first_load=True)
    snapshot_before = merge_snapshot("opportunities", None, day_before.clean)
    # the previous partition as the IO manager would store and read it back
    path = tmp_path / "snapshot.parquet"
    pq.write_table(pa.Table.from_pandas(snapshot_before, schema=CRM_SCHEMAS["opportunities"],
                                        preserve_index=False), path)
    stored = pq.read_table(path).to_pandas()

    # on D: o1 is won, o2 gets an invalid stage (quarantined), o4 is new
    execute(database_url, "UPDATE opportunities SET stage = 'won', closed_at = :c, updated_at = :u "
                          "WHERE opportunity_id = 'o1'", c="2026-10-01T15:00:00Z", u="2026-10-01T15:00:00Z")
    execute(database_url, "UPDATE opportunities SET stage = 'bogus', amount = '55', updated_at = :u "
                          "WHERE opportunity_id = 'o2'", u="2026-10-01T16:00:00Z")
    execute(database_url, "INSERT INTO opportunities (opportunity_id, created_at, stage, amount) "
                          "VALUES ('o4', :c, 'open', '5')", c="2026-10-01T17:00:00+02:00")
    today = extract_crm_day("opportunities", DAY, settings, first_load=False)
    snapshot = merge_snapshot("opportunities", stored, today.clean)

    assert reasons(today) == {"o2": "invalid_value"}
    assert snapshot.columns.tolist() == CRM_SCHEMAS["opportunities"].names
    assert snapshot["opportunity_id"].tolist() == ["o1", "o2", "o3", "o4"]
    assert snapshot["stage"].tolist() == ["won", "open", "lost", "open"]
    assert snapshot["amount"].tolist() == [100.0, 50.0, 70.0, 5.0]
    assert snapshot["closed_at"].tolist()[0] == pd.Timestamp("2026-10-01T15:00:00", tz="UTC")
    assert snapshot["created_at"].tolist()[3] == pd.Timestamp("2026-10-01T15:00:00", tz="UTC")
    pa.Table.from_pandas(snapshot, schema=CRM_SCHEMAS["opportunities"], preserve_index=False)


def test_merge_snapshot_of_customers_conforms_a_stored_snapshot(sqlite_url: str, tmp_path: Path) -> None:
    create_table(sqlite_url, "customers", [
        {"customer_id": "c1", "created_at": "2026-09-30T10:00:00Z", "date_of_birth": "1980-12-31", "city": "Paris"},
    ])
    settings = make_settings(tmp_path, sqlite_url)
    first = merge_snapshot("customers", None,
                           extract_crm_day("customers", DAY - dt.timedelta(days=1), settings, first_load=True).clean)
    stored = pa.Table.from_pandas(first, schema=CUSTOMER_SNAPSHOT_SCHEMA, preserve_index=False).to_pandas()
    execute(sqlite_url, "INSERT INTO customers (customer_id, created_at, city) VALUES ('c0', :c, ' Lyon ')",
            c="2026-10-01T01:00:00Z")
    merged = merge_snapshot("customers", stored,
                            extract_crm_day("customers", DAY, settings, first_load=False).clean)

    assert merged.columns.tolist() == CUSTOMER_SNAPSHOT_SCHEMA.names
    assert merged["customer_id"].tolist() == ["c0", "c1"]
    assert merged["city"].tolist() == ["Lyon", "Paris"]
    assert merged["date_of_birth"].tolist()[1] == pd.Timestamp("1980-12-31")
    with pytest.raises(ValueError, match="lacks columns"):
        merge_snapshot("customers", stored.drop(columns=["first_name"]), merged)


def test_a_far_future_term_end_is_a_valid_timestamp(database_url: str, tmp_path: Path) -> None:
    """Regression: beside a timestamp with nanosecond digits, a term_end in the year 2300 (a term "until further
    notice") was quarantined as `unparsable_timestamp`. It is a valid timestamp, kept through the snapshot."""
    create_table(database_url, "subscription_terms", [
        {"term_id": "t1", "subscription_id": "s1", "customer_id": "c1", "amount": "10",
         "term_start": "2026-10-01T08:00:00Z", "term_end": "2300-01-01T00:00:00Z"},
        {"term_id": "t2", "subscription_id": "s2", "customer_id": "c2", "amount": "20",
         "term_start": "2026-10-01T09:00:00Z", "term_end": "2026-10-31T00:00:00.123456789Z"},
    ])
    settings = make_settings(tmp_path, database_url)
    result = extract_crm_day("subscription_terms", DAY, settings, first_load=False)
    assert reasons(result) == {} and ids(result, "subscription_terms") == ["t1", "t2"]
    snapshot = merge_snapshot("subscription_terms", None, result.clean)
    stored = pa.Table.from_pandas(snapshot, schema=CRM_SCHEMAS["subscription_terms"], preserve_index=False)
    again = merge_snapshot("subscription_terms", stored.to_pandas(), result.clean.iloc[:0])
    assert again["term_end"].tolist() == [pd.Timestamp("2300-01-01T00:00:00Z"),
                                          pd.Timestamp("2026-10-31T00:00:00.123456Z")]


def test_merge_snapshot_without_previous_is_the_day() -> None:
    empty = merge_snapshot("leads", None, pd.DataFrame(columns=CRM_SCHEMAS["leads"].names))
    assert empty.columns.tolist() == CRM_SCHEMAS["leads"].names and empty.empty
    assert str(empty["created_at"].dtype) == "datetime64[us, UTC]"


# ---------------------------------------------------------------------------------------------------------------
# privacy


def test_emails_and_phones_are_pseudonymised_and_profiles_keep_clear_values(
    database_url: str, tmp_path: Path
) -> None:
    key = "test-key-for-pseudonyms"
    settings = make_settings(tmp_path, database_url, pii_key=key)
    create_table(database_url, "customers", [
        {"customer_id": "c1", "created_at": "2026-10-01T10:00:00Z", "email": " Ann.Lee@Example.COM ",
         "phone": "(650) 253-0000", "first_name": " Ann ", "last_name": "Lee", "date_of_birth": "1980-12-31",
         "address_line": "1 Main St ", "city": "Springfield", "postcode": " 12345", "region": "West",
         "country": "US", "acquisition_channel": " Email ", "marketing_consent": "1"},
        {"customer_id": "c2", "created_at": "2026-10-01T11:00:00Z", "email": "not-an-email", "phone": "12"},
    ])
    create_table(database_url, "leads", [
        {"lead_id": "l1", "created_at": "2026-10-01T09:00:00Z", "email": "ann.lee@example.com",
         "phone": "+1 650 253 0000"},
    ])
    customers = extract_crm_day("customers", DAY, settings, first_load=False).clean
    leads = extract_crm_day("leads", DAY, settings, first_load=False).clean
    public, profiles = split_customer_profiles(customers)

    email_hash = keyed_hash("ann.lee@example.com", key)
    phone_hash = keyed_hash("+16502530000", key)
    assert public.columns.tolist() == CRM_SCHEMAS["customers"].names
    assert public["email_hash"].iloc[0] == email_hash and pd.isna(public["email_hash"].iloc[1])
    assert public["phone_hash"].iloc[0] == phone_hash and pd.isna(public["phone_hash"].iloc[1])
    assert (leads["email_hash"].iloc[0], leads["phone_hash"].iloc[0]) == (email_hash, phone_hash)
    assert (public["acquisition_channel"].iloc[0], bool(public["marketing_consent"].iloc[0])) == ("email", True)

    # hashes are 64 hex digits; every other published value is free of the raw identifiers and profile data
    for frame in (public, leads):
        hashes = frame[["email_hash", "phone_hash"]].stack()
        assert hashes.str.fullmatch(r"[0-9a-f]{64}").all()
        others = frame.drop(columns=["email_hash", "phone_hash"]).astype("string").fillna("")
        text = " ".join(others.to_numpy().ravel().tolist()).lower()
        for raw in ("ann.lee", "example.com", "650", "253", "ann", "main st", "12345", "1980"):
            assert raw not in text, raw

    assert profiles.columns.tolist() == PROFILE_SCHEMA.names
    p = profiles.iloc[0]
    assert (p["email"], p["phone"], p["first_name"], p["address_line"], p["postcode"]) == (
        "ann.lee@example.com", "+16502530000", "Ann", "1 Main St", "12345"
    )
    assert p["date_of_birth"] == pd.Timestamp("1980-12-31")
    assert pd.isna(profiles["email"].iloc[1]) and pd.isna(profiles["phone"].iloc[1])
    pa.Table.from_pandas(profiles, schema=PROFILE_SCHEMA, preserve_index=False)
    pa.Table.from_pandas(public, schema=CRM_SCHEMAS["customers"], preserve_index=False)


# ---------------------------------------------------------------------------------------------------------------
# SQL safety and robustness


def test_table_names_come_from_the_fixed_list_and_values_are_bound(database_url: str, tmp_path: Path) -> None:
    hostile = "x'); DROP TABLE customers; --"
    create_table(database_url, "customers", [{"customer_id": hostile, "created_at": "2026-10-01T10:00:00Z"}])
    settings = make_settings(tmp_path, database_url)

    with pytest.raises(ValueError, match="unknown CRM table"):
        extract_crm_day("customers; DROP TABLE customers", DAY, settings, first_load=False)
    with pytest.raises(TypeError):
        extract_crm_day("customers", "2026-10-01'; --", settings, first_load=False)  # type: ignore[arg-type]
    result = extract_crm_day("customers", DAY, settings, first_load=False)

    assert ids(result, "customers") == [hostile]
    assert extract_crm_day("customers", DAY, settings, first_load=True).rows_in == 1  # the table survived


def test_missing_table_is_an_empty_result(database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_table(database_url, "leads", [])
    result = extract_crm_day("survey_responses", DAY, make_settings(tmp_path, database_url), first_load=False)

    assert result.clean.columns.tolist() == CRM_SCHEMAS["survey_responses"].names and result.clean.empty
    assert result.counts()["rows_in"] == 0 and result.files_read == 0 and result.quarantine.empty
    assert "does not exist" in caplog.text
    empty_leads = extract_crm_day("leads", DAY, make_settings(tmp_path, database_url), first_load=True)
    assert (empty_leads.rows_in, empty_leads.files_read) == (0, 1)


def test_the_whole_table_is_counted_beside_the_rows_of_the_day(database_url: str, tmp_path: Path) -> None:
    """`table_rows` tells a quiet day (no row of D, a full table) from a table that lost its rows."""
    create_table(database_url, "leads", [
        {"lead_id": "L1", "created_at": "2026-09-20T10:00:00Z"},
        {"lead_id": "L2", "created_at": "2026-09-28T10:00:00Z", "updated_at": "2026-09-29T10:00:00Z"},
        {"lead_id": "L3", "created_at": "2026-10-01T10:00:00Z"},
    ])
    settings = make_settings(tmp_path, database_url)
    day = extract_crm_day("leads", DAY, settings, first_load=False)
    quiet = extract_crm_day("leads", DAY + dt.timedelta(days=1), settings, first_load=False)
    assert (day.rows_in, day.table_rows, day.counts()["table_rows"]) == (1, 3, 3)
    assert (quiet.rows_in, quiet.table_rows) == (0, 3)
    execute(database_url, "DELETE FROM leads")
    assert extract_crm_day("leads", DAY, settings, first_load=False).table_rows == 0
    missing = extract_crm_day("survey_responses", DAY, settings, first_load=False)
    assert (missing.table_rows, missing.files_read) == (0, 0)


def test_a_missing_sqlite_database_is_an_error_naming_the_path_and_is_never_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite creates a missing file on connect: a mistyped CRM_DATABASE_URL became an empty CRM, silently."""
    from crm_pipeline.ingestion.late import crm_rows_per_day

    folder = tmp_path / "crm data #1"  # a blank and a '#' must survive the SQLite URI the file is opened with
    folder.mkdir()
    missing = folder / "crm.sqlite"
    settings = make_settings(tmp_path, f"sqlite:///{missing}")
    message = f"CRM database file {missing} does not exist"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        extract_crm_day("leads", DAY, settings, first_load=True)
    with pytest.raises(FileNotFoundError, match=re.escape(message)):  # the restatement sensor's counts
        crm_rows_per_day("leads", DAY, DAY, settings)
    assert list(folder.iterdir()) == []
    in_missing_folder = tmp_path / "no" / "such" / "crm.sqlite"
    with pytest.raises(FileNotFoundError, match=re.escape(str(in_missing_folder))):
        extract_crm_day("leads", DAY, make_settings(tmp_path, f"sqlite:///{in_missing_folder}"), first_load=False)
    assert not (tmp_path / "no").exists()
    monkeypatch.chdir(folder)  # a relative path is relative to the working directory, as for SQLite itself
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        extract_crm_day("leads", DAY, make_settings(tmp_path, "sqlite:///crm.sqlite"), first_load=False)
    assert list(folder.iterdir()) == []
    # the same file once it exists is read through that URI, path characters and all
    create_table(f"sqlite:///{missing}", "leads", [{"lead_id": "L1", "created_at": "2026-10-01T10:00:00Z"}])
    assert ids(extract_crm_day("leads", DAY, settings, first_load=False), "leads") == ["L1"]
    assert crm_rows_per_day("leads", DAY, DAY, settings) == {"2026-10-01": 1}


def test_an_unreachable_database_server_is_a_clear_error_without_its_password(tmp_path: Path) -> None:
    from crm_pipeline.ingestion.crm import CrmDatabaseError
    from crm_pipeline.ingestion.late import crm_rows_per_day

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "S3cret-Passw0rd"
    settings = make_settings(tmp_path, f"postgresql+psycopg://crm:{password}@127.0.0.1:{port}/crm")
    for read in (lambda: extract_crm_day("leads", DAY, settings, first_load=False),
                 lambda: crm_rows_per_day("leads", DAY, DAY, settings)):
        with pytest.raises(CrmDatabaseError) as caught:
            read()
        shown = "".join(traceback.format_exception(caught.value))  # what a run's log and the UI show
        assert f"cannot connect to the CRM database postgresql+psycopg://crm:***@127.0.0.1:{port}/crm: " in shown
        assert "refused" in shown.lower()  # the driver's reason is kept
        assert password not in shown


def test_optional_columns_missing_from_the_database_read_as_missing(sqlite_url: str, tmp_path: Path) -> None:
    create_table(sqlite_url, "leads", [{"lead_id": "l1", "created_at": "2026-10-01T10:00:00Z"}],
                 columns=("lead_id", "created_at", "status"))
    result = extract_crm_day("leads", DAY, make_settings(tmp_path, sqlite_url), first_load=False)

    assert ids(result, "leads") == ["l1"]
    assert result.clean["updated_at"].isna().all() and result.clean["email_hash"].isna().all()


@pytest.mark.postgres
def test_postgres_native_column_types(postgres_url: str, tmp_path: Path) -> None:
    """timestamptz, date, numeric, integer and boolean columns give the same clean values as text ones."""
    types = {
        "created_at": sa.DateTime(timezone=True), "updated_at": sa.DateTime(timezone=True),
        "first_response_at": sa.DateTime(timezone=True), "resolved_at": sa.DateTime(timezone=False),
        "contact_count": sa.Integer(), "reopened": sa.Boolean(), "ticket_id": sa.Integer(),
    }
    create_table(postgres_url, "support_tickets", [
        # 00:30 in New York on D, which is Oct 1 04:30Z
        {"ticket_id": 1, "created_at": dt.datetime(2026, 10, 1, 4, 30, tzinfo=dt.UTC), "contact_count": 2,
         "reopened": False, "channel": "email", "resolved_at": dt.datetime(2026, 10, 1, 6, 0)},  # naive = UTC
        # 23:59 on D-1 in New York
        {"ticket_id": 2, "created_at": dt.datetime(2026, 10, 1, 3, 59, tzinfo=dt.UTC), "contact_count": 1},
        # created earlier, updated on D
        {"ticket_id": 3, "created_at": dt.datetime(2026, 9, 1, tzinfo=dt.UTC), "contact_count": 0,
         "updated_at": dt.datetime(2026, 10, 2, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
    ], types=types)
    create_table(postgres_url, "subscription_terms", [
        {"term_id": "t1", "subscription_id": "s1", "customer_id": "c1", "amount": 19.99,
         "term_start": dt.date(2026, 10, 1)},
    ], types={"term_start": sa.Date(), "amount": sa.Numeric(10, 2)})
    create_table(postgres_url, "customers", [
        {"customer_id": "c1", "created_at": dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC),
         "date_of_birth": dt.date(1990, 5, 17), "marketing_consent": True},
    ], types={"created_at": sa.DateTime(timezone=True), "date_of_birth": sa.Date(), "marketing_consent": sa.Boolean()})
    settings = make_settings(tmp_path, postgres_url, timezone="America/New_York")

    tickets = extract_crm_day("support_tickets", DAY, settings, first_load=False)
    # a date column is midnight UTC of that date (parse_utc), so these are read with the UTC day
    utc_settings = make_settings(tmp_path, postgres_url)
    terms = extract_crm_day("subscription_terms", DAY, utc_settings, first_load=False)
    customers = extract_crm_day("customers", DAY, utc_settings, first_load=False)

    assert ids(tickets, "support_tickets") == ["1"]
    assert reasons(tickets) == {"3": "contact_count_below_1"}
    row = tickets.clean.iloc[0]
    assert (row["contact_count"], bool(row["reopened"]), row["channel"]) == (2, False, "email")
    assert row["created_at"] == pd.Timestamp("2026-10-01T04:30:00", tz="UTC")
    assert row["resolved_at"] == pd.Timestamp("2026-10-01T06:00:00", tz="UTC")
    assert (terms.clean["amount"].tolist(), terms.clean["term_start"].tolist()) == (
        [19.99], [pd.Timestamp("2026-10-01T00:00:00", tz="UTC")]
    )
    assert customers.clean["date_of_birth"].tolist() == [pd.Timestamp("1990-05-17")]
    assert customers.clean["marketing_consent"].tolist() == [True]


def test_rows_on_day_recorded_at_extraction_and_counted_later(database_url: str, tmp_path: Path) -> None:
    """What the restatement sensor compares: rows created or updated on D at extraction, and again later."""
    import datetime as dt

    from crm_pipeline.ingestion.late import crm_rows_per_day

    rows = [
        {"lead_id": "L1", "created_at": "2026-10-01T09:00:00Z", "updated_at": "2026-10-01T09:00:00Z"},
        {"lead_id": "L2", "created_at": "2026-09-30T09:00:00Z", "updated_at": "2026-10-02T08:00:00+02:00"},
        {"lead_id": "L3", "created_at": "2026-10-02T23:30:00+00:00", "updated_at": "2026-10-02T23:30:00Z"},
    ]
    create_table(database_url, "leads", [{"source": "web", **r} for r in rows])
    settings = make_settings(tmp_path, database_url, timezone="Europe/Berlin")
    first = extract_crm_day("leads", dt.date(2026, 10, 1), settings, first_load=True)
    assert (first.rows_in, first.rows_on_day) == (2, 1)  # first load: L1 and L2 exist; only L1 is of the day
    second = extract_crm_day("leads", dt.date(2026, 10, 2), settings, first_load=False)
    assert second.rows_on_day == second.rows_in == 1  # L2 updated 08:00 Berlin; L3 is 01:30 on Oct 3 there
    counted = crm_rows_per_day("leads", dt.date(2026, 10, 1), dt.date(2026, 10, 3), settings)
    assert counted == {"2026-10-01": 1, "2026-10-02": 1, "2026-10-03": 1}
    # a backdated row written after the extraction of Oct 2: the count of that day rises above rows_on_day
    execute(database_url, "INSERT INTO leads (lead_id, source, created_at, updated_at) VALUES "
                          "('L4', 'web', '2026-10-02T10:00:00Z', '2026-10-02T10:00:00Z')")
    assert crm_rows_per_day("leads", dt.date(2026, 10, 2), dt.date(2026, 10, 2), settings) == {"2026-10-02": 2}
