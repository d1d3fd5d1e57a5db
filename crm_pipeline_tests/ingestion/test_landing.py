"""Landing-zone ingestion on hand-built files: assignment, re-deliveries, validation, conversion, counts.

Every test writes a few rows into a temporary landing zone and asserts the exact clean values, the exact
quarantine reasons and records, and that rows in = clean + quarantined + duplicates.
"""

import csv
import datetime as dt
import gzip
import hashlib
import hmac
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS, LANDING_SOURCES, VALIDATION_ORDER
from crm_pipeline.ingestion.landing import (
    FX_LATEST_SCHEMA,
    ingest_landing_day,
    seen_ids_before,
    seen_ids_schema,
    update_fx_latest,
    update_seen_ids,
)
from crm_pipeline.ingestion.result import QUARANTINE_SCHEMA, REASONS, IngestResult
from crm_pipeline.settings import Settings

D = dt.date(2026, 10, 2)
KEY = "test-pii-key"

Row = dict[str, Any]


# ---------------------------------------------------------------------------------------------------------------
# helpers


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                    database_url="sqlite://", pii_key=KEY, **overrides)


def encode(name: str, rows: list[Row]) -> bytes:
    """`rows` in the format its file name says (.csv, .csv.gz, .jsonl, .json.gz, .parquet)."""
    if name.endswith(".parquet"):
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        return sink.getvalue()
    if name.endswith((".csv", ".csv.gz")):
        columns = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])
        data = text.getvalue().encode()
    else:
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return gzip.compress(data, mtime=0) if name.endswith(".gz") else data


def write(settings: Settings, source: str, day: dt.date | str, name: str, rows: list[Row] | bytes) -> str:
    folder = Path(settings.landing_root) / source / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(rows if isinstance(rows, bytes) else encode(name, rows))
    return str(path)


def event(event_id: str, occurred_at: str, event_type: str = "session_start", **extra: Any) -> Row:
    row: Row = {"event_id": event_id, "occurred_at": occurred_at, "event_type": event_type, "anonymous_id": "a1"}
    row.update(extra)
    return row


def reasons(result: IngestResult) -> list[tuple[str, int | None, str]]:
    """(file name, row number, reason) of each quarantine entry, in quarantine order."""
    q = result.quarantine
    rows = [None if pd.isna(r) else int(r) for r in q["row_number"]]
    return [(Path(f).name, r, reason) for f, r, reason in zip(q["source_file"], rows, q["reason"], strict=True)]


def assert_writable(result: IngestResult, source: str) -> None:
    """The asset writes clean rows with the contract schema and quarantine rows with QUARANTINE_SCHEMA."""
    assert list(result.clean.columns) == CLEAN_SCHEMAS[source].names
    table = pa.Table.from_pandas(result.clean, schema=CLEAN_SCHEMAS[source], preserve_index=False)
    assert table.schema.equals(CLEAN_SCHEMAS[source])
    assert list(result.quarantine.columns) == QUARANTINE_SCHEMA.names
    pa.Table.from_pandas(result.quarantine, schema=QUARANTINE_SCHEMA, preserve_index=False)
    assert result.reconciles, dict(result.counts())


def values(frame: pd.DataFrame, columns: list[str]) -> list[list[Any]]:
    """Rows of `frame[columns]` as lists, missing values as None (pd.NA does not compare)."""
    sub = frame[columns].astype(object)
    return sub.where(sub.notna(), None).values.tolist()


def digest(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# schemas, empty days


@pytest.mark.parametrize("source", LANDING_SOURCES)
def test_empty_day_has_contract_schema(tmp_path: Path, source: str) -> None:
    result = ingest_landing_day(source, D, make_settings(tmp_path))
    assert_writable(result, source)
    assert dict(result.counts()) == {"rows_in": 0, "rows_clean": 0, "rows_quarantined": 0, "rows_duplicate": 0,
                                     "files_read": 0, "files_unparsable": 0, "quarantine_rate": 0.0}


def test_no_clean_column_is_named_date() -> None:
    assert all("date" not in schema.names for schema in CLEAN_SCHEMAS.values())


def test_validation_order_uses_the_reason_vocabulary() -> None:
    assert set(VALIDATION_ORDER) <= set(REASONS)


def test_unknown_source_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown landing source"):
        ingest_landing_day("clicks", D, make_settings(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# events


def test_events_clean_values(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.csv", [
        event("e2", "2026-10-02T12:30:00+02:00", " Email_Bounce ", email=" John@Example.COM ",
              phone="(650) 253-0000", properties='{"bounce_type": "HARD"}', device_type=" Mobile "),
        event("e1", "2026-10-02T09:00:00Z", "session_start", referrer="https://www.google.co.uk/search",
              utm_source=" google ", device_type="smart-tv", category=" Shoes "),
        event("e3", "2026-10-02T09:00:00Z", "email_bounce", properties='{"reason": "x"}', channel=" SMS "),
        event("e4", "2026-10-02T09:00:00Z", "social_interaction", properties='{"kind": "share"}'),
        event("e5", "2026-10-02T09:00:00Z", "social_interaction", properties='{"kind": "poke"}'),
    ])
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    clean = result.clean
    assert clean["event_id"].tolist() == ["e1", "e2", "e3", "e4", "e5"]  # sorted by id
    assert clean["occurred_at"].tolist()[:2] == [pd.Timestamp("2026-10-02T09:00:00Z"),
                                                 pd.Timestamp("2026-10-02T10:30:00Z")]
    assert clean["event_type"].tolist() == ["session_start", "email_bounce", "email_bounce", "social_interaction",
                                            "social_interaction"]
    assert clean["channel"].tolist() == ["seo", "email", "sms", "social", "social"]
    assert clean["channel_group"].tolist() == ["owned", "owned", "owned", "earned", "earned"]
    assert clean["device_type"].tolist() == ["other", "mobile", pd.NA, pd.NA, pd.NA]
    assert clean["bounce_type"].tolist() == [pd.NA, "hard", "soft", pd.NA, pd.NA]
    assert clean["interaction_kind"].tolist() == [pd.NA, pd.NA, pd.NA, "share", pd.NA]
    assert clean["utm_source"].iloc[0] == "google" and clean["category"].iloc[0] == "Shoes"  # trimmed, case kept
    # pseudonyms of the normalised values; no raw email or phone anywhere in the clean rows
    assert clean["email_hash"].iloc[1] == digest("john@example.com")
    assert clean["phone_hash"].iloc[1] == digest("+16502530000")
    assert "email" not in clean.columns and "phone" not in clean.columns
    assert not clean.astype("string").apply(lambda col: col.str.contains("@", na=False)).any().any()
    assert set(clean["source_file"]) == {str(tmp_path / "landing/events/date=2026-10-02/a.csv")}


def test_events_bad_input_is_quarantined_with_first_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = [
        event("ok", "2026-10-02T10:00:00Z"),                                   # 0 clean
        event("m1", "2026-10-02T10:00:00Z", event_type="  "),                  # 1 missing_required_field
        {"event_id": "n1", "occurred_at": "2026-10-02T10:00:00Z", "event_type": "login",
         "email": "not-an-email"},                                             # 2 no_identifier
        event("t1", "02/10/2026 10:00"),                                       # 3 unparsable_timestamp
        event("u1", "2026-10-02T10:00:00Z", event_type="page_view"),           # 4 unknown_event_type
        event("f1", "2026-10-05T10:00:00Z"),                                   # 5 folder_day_mismatch
        {"event_id": "", "occurred_at": "soon", "event_type": "nope"},         # 6 all of the above: the first
    ]
    write(settings, "events", D, "a.csv", rows)
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    assert result.clean["event_id"].tolist() == ["ok"]
    assert reasons(result) == [
        ("a.csv", 1, "missing_required_field"),
        ("a.csv", 2, "no_identifier"),
        ("a.csv", 3, "unparsable_timestamp"),
        ("a.csv", 4, "unknown_event_type"),
        ("a.csv", 5, "folder_day_mismatch"),
        ("a.csv", 6, "missing_required_field"),
    ]
    q = result.quarantine
    assert q["record_id"].tolist() == ["m1", "n1", "t1", "u1", "f1", pd.NA]
    assert q["detail"].tolist() == [
        "missing event_type",
        "none of anonymous_id, device_id, customer_id, email, phone",
        "occurred_at='02/10/2026 10:00'",
        "event_type='page_view'",
        "occurred_at is on 2026-10-05 (UTC), more than one day from its folder",
        "missing event_id",
    ]
    # the record is the original row, as delivered (blanks and all; the file's missing columns are null)
    record = json.loads(q["record"].iloc[0])
    delivered = {"event_id": "m1", "occurred_at": "2026-10-02T10:00:00Z", "event_type": "  ", "anonymous_id": "a1",
                 "email": ""}  # the file's columns; an empty CSV field stays empty text
    assert record == {**{c: None for c in record}, **delivered}
    assert record.keys() >= {"email", "phone", "properties", "channel"}
    assert json.loads(q["record"].iloc[1])["email"] == "not-an-email"  # raw PII: quarantine is restricted
    assert (result.rows_in, result.rows_clean, result.rows_quarantined, result.rows_duplicate) == (7, 1, 6, 0)
    assert result.quarantine_by_reason() == {"folder_day_mismatch": 1, "missing_required_field": 2,
                                             "no_identifier": 1, "unknown_event_type": 1,
                                             "unparsable_timestamp": 1}


def test_extra_columns_only_in_quarantine_record(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.jsonl", [
        event("e1", "2026-10-02T10:00:00Z", exporter_note="kept for review"),
        event("e2", "2026-10-02T10:00:00Z", event_type="bogus", exporter_note="why"),
    ])
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    assert "exporter_note" not in result.clean.columns
    assert json.loads(result.quarantine["record"].iloc[0])["exporter_note"] == "why"


def test_exact_redelivery_in_another_file_is_dropped_and_counted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = [event("e1", "2026-10-02T10:00:00Z", referrer="https://t.co/x"), event("e2", "2026-10-02T11:00:00Z")]
    write(settings, "events", D, "a.csv", first)
    # the same two events again, spelled differently (offset, blanks, case of a closed vocabulary), in JSON
    write(settings, "events", D, "b.jsonl", [
        event("e1", "2026-10-02T12:00:00+02:00", " SESSION_START ", referrer="https://t.co/x"),
        event("e2", "2026-10-02T11:00:00Z"),
        event("e3", "2026-10-02T12:00:00Z"),
    ])
    # and once more in the next day's folder (an exporter in another timezone)
    write(settings, "events", D + dt.timedelta(days=1), "a.parquet", [event("e2", "2026-10-02T11:00:00Z")])
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    assert result.clean["event_id"].tolist() == ["e1", "e2", "e3"]
    assert [Path(f).name for f in result.clean["source_file"]] == ["a.csv", "a.csv", "b.jsonl"]  # first kept
    assert (result.rows_in, result.rows_clean, result.rows_quarantined, result.rows_duplicate) == (6, 3, 0, 3)
    assert result.quarantine.empty


def test_duplicate_id_with_different_content_is_quarantined(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.csv", [event("e1", "2026-10-02T10:00:00Z"),
                                           event("bad", "2026-10-02T10:00:00Z", event_type="zzz")])
    write(settings, "events", D, "b.csv", [
        event("e1", "2026-10-02T10:00:00Z", event_type="login"),      # conflict
        event("bad", "2026-10-02T10:00:00Z"),                          # the first one was invalid: this is clean
        event("e1", "2026-10-02T10:00:00Z", event_type="login"),      # exact re-delivery of the conflicting row
    ])
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    assert result.clean["event_id"].tolist() == ["bad", "e1"]
    assert result.clean["event_type"].tolist() == ["session_start", "session_start"]
    assert reasons(result) == [("a.csv", 1, "unknown_event_type"), ("b.csv", 0, "duplicate_id_conflict")]
    a_csv = str(tmp_path / "landing/events/date=2026-10-02/a.csv")
    assert result.quarantine["detail"].iloc[1] == f"same event_id as {a_csv} row 0 with different content"
    assert json.loads(result.quarantine["record"].iloc[1])["event_type"] == "login"
    assert (result.rows_in, result.rows_clean, result.rows_quarantined, result.rows_duplicate) == (5, 2, 2, 1)


def test_assignment_across_folders_in_new_york(tmp_path: Path) -> None:
    """Partition D = 2026-10-02 in America/New_York (UTC-4): 04:00Z is local midnight."""
    settings = make_settings(tmp_path, timezone="America/New_York")
    write(settings, "events", "2026-10-01", "a.csv", [
        event("prev-in", "2026-10-02T04:00:00Z"),       # local 10-02 00:00 -> D
        event("prev-out", "2026-10-02T03:59:59Z"),      # local 10-01 23:59:59 -> 10-01
        event("prev-bad", "not a time"),                # unparsable -> its folder day 10-01
    ])
    write(settings, "events", "2026-10-02", "a.csv", [
        event("cur-prev", "2026-10-02T03:00:00Z"),      # local 10-01 23:00 -> 10-01
        event("cur-in", "2026-10-03T03:59:59Z"),        # local 10-02 23:59:59 -> D
        event("cur-next", "2026-10-03T04:00:00Z"),      # local 10-03 00:00 -> 10-03
        event("cur-far", "2026-09-20T10:00:00Z"),       # 12 days off -> quarantined in its folder day D
        event("cur-offset", "2026-10-02T23:30:00-05:00"),  # 04:30Z on 10-03 = local 10-03 00:30 -> 10-03
    ])
    write(settings, "events", "2026-10-03", "a.csv", [
        event("next-in", "2026-10-02T23:59:00-04:00"),  # local 10-02 -> D
        event("next-far", "2026-10-08T10:00:00Z"),      # quarantined in 10-03, not D
    ])
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    assert result.clean["event_id"].tolist() == ["cur-in", "next-in", "prev-in"]
    assert reasons(result) == [("a.csv", 3, "folder_day_mismatch")]
    assert result.quarantine["detail"].iloc[0] == (
        "occurred_at is on 2026-09-20 (America/New_York), more than one day from its folder")
    assert result.files_read == 3
    # every row lands in exactly one partition
    per_day = {
        day: ingest_landing_day("events", day, settings)
        for day in (dt.date(2026, 9, 30), dt.date(2026, 10, 1), D, dt.date(2026, 10, 3), dt.date(2026, 10, 4))
    }
    assert {str(d): r.rows_in for d, r in per_day.items()} == {
        "2026-09-30": 0, "2026-10-01": 3, "2026-10-02": 4, "2026-10-03": 3, "2026-10-04": 0}
    assert sorted(per_day[dt.date(2026, 10, 1)].clean["event_id"]) == ["cur-prev", "prev-out"]
    assert reasons(per_day[dt.date(2026, 10, 1)]) == [("a.csv", 2, "unparsable_timestamp")]
    assert sorted(per_day[dt.date(2026, 10, 3)].clean["event_id"]) == ["cur-next", "cur-offset"]
    assert reasons(per_day[dt.date(2026, 10, 3)]) == [("a.csv", 1, "folder_day_mismatch")]


def test_a_far_future_timestamp_is_a_folder_day_mismatch(tmp_path: Path) -> None:
    """Regression: beside an exporter's nanosecond timestamps, a row in the year 2300 was quarantined as
    `unparsable_timestamp`; it parses, and is far from its folder's day."""
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.jsonl", [event("e1", "2026-10-02T10:00:00.123456789Z"),
                                             event("e2", "2300-01-01T00:00:00Z")])
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["e1"]
    assert result.clean["occurred_at"].tolist() == [pd.Timestamp("2026-10-02T10:00:00.123456Z")]
    assert reasons(result) == [("a.jsonl", 1, "folder_day_mismatch")]
    assert result.quarantine["detail"].tolist() == ["occurred_at is on 2300-01-01 (UTC), more than one day from its folder"]


def test_the_end_of_time_east_of_utc_is_a_folder_day_mismatch(tmp_path: Path) -> None:
    """Regression: a row at 9999-12-31T23:59:59Z crashed the whole day in Europe/Paris (OverflowError: its
    local time is in the year 10000). It is quarantined like any timestamp far from its folder's day."""
    settings = make_settings(tmp_path, timezone="Europe/Paris")
    write(settings, "events", D, "a.csv", [event("e1", "2026-10-02T10:00:00Z"), event("e2", "9999-12-31T23:59:59Z")])
    result = ingest_landing_day("events", D, settings)
    assert result.clean["event_id"].tolist() == ["e1"]
    assert reasons(result) == [("a.csv", 1, "folder_day_mismatch")]
    assert result.quarantine["detail"].tolist() == [
        "occurred_at is on 9999-12-31 (Europe/Paris), more than one day from its folder"]


def test_unparsable_file_is_one_entry_in_its_own_partition(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "a.csv", [event("e1", "2026-10-02T10:00:00Z")])
    good = encode("b.csv.gz", [event("e2", "2026-10-02T10:00:00Z")] * 50)
    broken = write(settings, "events", D, "b.csv.gz", good[: len(good) // 2])  # truncated gzip
    result = ingest_landing_day("events", D, settings)
    assert_writable(result, "events")
    assert result.clean["event_id"].tolist() == ["e1"]
    assert [f.path for f in result.unparsable_files] == [broken]
    q = result.quarantine
    assert q["reason"].tolist() == ["unparsable_file"]
    assert q["source_file"].tolist() == [broken]
    assert pd.isna(q["row_number"].iloc[0]) and pd.isna(q["record"].iloc[0])
    assert q["detail"].iloc[0].startswith("EOFError")
    assert (result.rows_in, result.rows_quarantined, result.files_read) == (1, 0, 1)
    assert result.counts()["files_unparsable"] == 1
    # the neighbouring partitions read the folder too but do not report the file again
    for day in (D - dt.timedelta(days=1), D + dt.timedelta(days=1)):
        neighbour = ingest_landing_day("events", day, settings)
        assert neighbour.unparsable_files == [] and neighbour.quarantine.empty


def test_same_input_same_output(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "events", D, "b.csv", [event(f"e{i}", "2026-10-02T10:00:00Z", email=f"U{i}@x.com")
                                           for i in range(20, 0, -1)])
    write(settings, "events", D, "a.jsonl", [event("e5", "2026-10-02T10:00:00Z", event_type="login"),
                                             event("z", "bad")])
    first, second = ingest_landing_day("events", D, settings), ingest_landing_day("events", D, settings)
    pd.testing.assert_frame_equal(first.clean, second.clean)
    pd.testing.assert_frame_equal(first.quarantine, second.quarantine)
    assert first.clean["event_id"].is_monotonic_increasing


# ---------------------------------------------------------------------------------------------------------------
# orders, refunds, costs: validation and currency


def order(order_id: str, gross: Any = "100", currency: str = "USD", **extra: Any) -> Row:
    row: Row = {"order_id": order_id, "ordered_at": "2026-10-02T10:00:00Z", "customer_id": "c1",
                "gross_revenue": gross, "currency": currency}
    row.update(extra)
    return row


FX_STATE = pd.DataFrame({
    "currency": ["EUR", "GBP", "JPY"],
    "rate_date": [dt.date(2026, 9, 28), dt.date(2026, 10, 2), dt.date(2026, 10, 3)],  # JPY only after D
    "rate_to_reporting": [1.25, 0.5, 0.0078125],
})


def test_orders_validation_and_conversion(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "orders", D, "a.csv", [
        order("o1", "100", "EUR", discount_amount="10", cost_of_goods="40", sale_type=" Upsell ",
              email=" Ann@Example.com ", channel=" PPC ", device_type="Desktop"),
        order("o2", "abc"),                                          # unparsable_number
        order("o3", "-5"),                                           # negative_amount
        order("o4", "10", discount_amount="15"),                     # negative_amount: net < 0
        order("o5", "10", "XYZ"),                                    # unknown_currency
        order("o6", "10", sale_type="gift"),                         # invalid_value
        order("o7", "10", "CHF"),                                    # missing_fx_rate (no rate at all)
        order("o8", "10", "JPY"),                                    # missing_fx_rate (only a later rate)
        order("o9", "10", customer_id=""),                           # no_identifier
        order("o10", "", discount_amount="x"),                       # missing_required_field before the number
        order("o11", "8", "usd", subscription_id="s1", categories="a|b", sale_type="renewal"),
        order("o12", "inf"),                                         # unparsable_number
    ])
    result = ingest_landing_day("orders", D, settings, fx_latest=FX_STATE)
    assert_writable(result, "orders")
    assert reasons(result) == [
        ("a.csv", 1, "unparsable_number"), ("a.csv", 2, "negative_amount"), ("a.csv", 3, "negative_amount"),
        ("a.csv", 4, "unknown_currency"), ("a.csv", 5, "invalid_value"), ("a.csv", 6, "missing_fx_rate"),
        ("a.csv", 7, "missing_fx_rate"), ("a.csv", 8, "no_identifier"), ("a.csv", 9, "missing_required_field"),
        ("a.csv", 11, "unparsable_number"),
    ]
    assert result.quarantine["detail"].tolist() == [
        "gross_revenue='abc'", "gross_revenue='-5' < 0", "discount_amount > gross_revenue", "currency='XYZ'",
        "sale_type='gift'", "no CHF rate on or before 2026-10-02 (reporting currency USD)",
        "no JPY rate on or before 2026-10-02 (reporting currency USD)",
        "none of customer_id, email, anonymous_id, device_id", "missing gross_revenue", "gross_revenue='inf'",
    ]
    clean = result.clean
    assert clean["order_id"].tolist() == ["o1", "o11"]
    o1 = clean.iloc[0]
    assert (o1["currency"], o1["fx_rate"]) == ("EUR", 1.25)
    assert (o1["gross_revenue_original"], o1["discount_amount_original"], o1["net_revenue_original"],
            o1["cost_of_goods_original"]) == (100.0, 10.0, 90.0, 40.0)
    assert (o1["gross_revenue"], o1["discount_amount"], o1["net_revenue"], o1["cost_of_goods"]) == (
        125.0, 12.5, 112.5, 50.0)
    assert (o1["sale_type"], o1["channel"], o1["channel_group"], o1["device_type"]) == (
        "upsell", "ppc", "paid", "desktop")
    assert o1["email_hash"] == digest("ann@example.com")
    o11 = clean.iloc[1]
    assert (o11["currency"], o11["fx_rate"], o11["net_revenue"], o11["discount_amount"]) == ("USD", 1.0, 8.0, 0.0)
    assert pd.isna(o11["cost_of_goods"]) and pd.isna(o11["channel"]) and pd.isna(o11["channel_group"])
    assert (o11["sale_type"], o11["subscription_id"], o11["categories"]) == ("renewal", "s1", "a|b")


def test_orders_default_sale_type_and_reporting_currency_needs_no_rate(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, reporting_currency="EUR")
    write(settings, "orders", D, "a.jsonl", [order("o1", 20.5, "EUR", anonymous_id="x", customer_id=None)])
    result = ingest_landing_day("orders", D, settings, fx_latest=None)
    assert_writable(result, "orders")
    assert values(result.clean, ["sale_type", "fx_rate", "gross_revenue", "customer_id", "anonymous_id"]) == [
        ["standard", 1.0, 20.5, None, "x"]]


def test_refunds_conversion(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write(settings, "refunds", D, "a.parquet", [
        {"refund_id": "r2", "order_id": "o1", "refunded_at": "2026-10-02T10:00:00Z", "amount": 8.0, "currency": "GBP"},
        {"refund_id": "r1", "order_id": "o1", "refunded_at": "2026-10-02T10:00:00Z", "amount": 8.0, "currency": "EUR"},
        {"refund_id": "r3", "order_id": None, "refunded_at": "2026-10-02T10:00:00Z", "amount": 1.0, "currency": "EUR"},
        {"refund_id": "r4", "order_id": "o2", "refunded_at": "2026-10-02T10:00:00Z", "amount": -1.0,
         "currency": "EUR"},
    ])
    result = ingest_landing_day("refunds", D, settings, fx_latest=FX_STATE)
    assert_writable(result, "refunds")
    assert values(result.clean, ["refund_id", "currency", "fx_rate", "amount", "amount_original"]) == [
        ["r1", "EUR", 1.25, 10.0, 8.0], ["r2", "GBP", 0.5, 4.0, 8.0]]
    assert reasons(result) == [("a.parquet", 2, "missing_required_field"), ("a.parquet", 3, "negative_amount")]


def test_costs_validation(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    base = {"date": "2026-10-02", "cost_type": "media", "objective": "acquisition", "amount": "100",
            "currency": "EUR"}
    write(settings, "costs", D, "a.csv", [
        {**base, "channel": " PPC", "campaign_id": "c1"},
        {**base, "cost_type": "Salaries", "amount": "50", "currency": "USD"},  # no channel: stays null
        {**base, "cost_type": "snacks"},                                      # invalid_value
        {**base, "objective": "fun"},                                         # invalid_value
        {**base, "date": "2026-10-09"},                                       # folder_day_mismatch
        {**base, "date": "2026-13-01"},                                       # unparsable_timestamp
        {**base, "amount": "-1"},                                             # negative_amount
        {**base, "channel": " PPC", "campaign_id": "c1"},                     # exact duplicate
    ])
    write(settings, "costs", D + dt.timedelta(days=1), "a.csv", [{**base, "date": "2026-10-02", "amount": "7"}])
    result = ingest_landing_day("costs", D, settings, fx_latest=FX_STATE)
    assert_writable(result, "costs")
    clean = result.clean
    assert values(clean, ["cost_type", "objective", "channel", "channel_group", "currency", "fx_rate", "amount",
                          "amount_original"]) == [
        ["media", "acquisition", "ppc", "paid", "EUR", 1.25, 125.0, 100.0],
        ["media", "acquisition", None, None, "EUR", 1.25, 8.75, 7.0],  # sorted by natural key, nulls last
        ["salaries", "acquisition", None, None, "USD", 1.0, 50.0, 50.0],
    ]
    assert clean["cost_date"].tolist() == [pd.Timestamp("2026-10-02")] * 3
    assert reasons(result) == [("a.csv", 2, "invalid_value"), ("a.csv", 3, "invalid_value"),
                               ("a.csv", 4, "folder_day_mismatch"), ("a.csv", 5, "unparsable_timestamp"),
                               ("a.csv", 6, "negative_amount")]
    assert result.quarantine["detail"].tolist()[:2] == ["cost_type='snacks'", "objective='fun'"]
    assert (result.rows_in, result.rows_clean, result.rows_quarantined, result.rows_duplicate) == (9, 3, 5, 1)


# ---------------------------------------------------------------------------------------------------------------
# fx rates and their running state


def test_fx_rates_and_latest_state(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    day1, day2 = dt.date(2026, 10, 1), D
    write(settings, "fx_rates", day1, "a.csv", [
        {"date": "2026-10-01", "currency": "eur", "rate_to_reporting": "1.25"},
        {"date": "2026-10-01", "currency": "GBP", "rate_to_reporting": "0.5"},
        {"date": "2026-10-01", "currency": "AAA", "rate_to_reporting": "1"},      # unknown_currency
        {"date": "2026-10-01", "currency": "CHF", "rate_to_reporting": "0"},      # invalid_value
        {"date": "2026-10-01", "currency": "EUR", "rate_to_reporting": "1.5"},    # duplicate_id_conflict
    ])
    write(settings, "fx_rates", day2, "a.csv", [{"date": "2026-10-02", "currency": "EUR", "rate_to_reporting": "2"}])
    first = ingest_landing_day("fx_rates", day1, settings)
    assert_writable(first, "fx_rates")
    assert values(first.clean, ["currency", "rate_to_reporting"]) == [["EUR", 1.25], ["GBP", 0.5]]
    assert first.clean["rate_date"].tolist() == [pd.Timestamp("2026-10-01")] * 2
    assert reasons(first) == [("a.csv", 2, "unknown_currency"), ("a.csv", 3, "invalid_value"),
                              ("a.csv", 4, "duplicate_id_conflict")]
    assert first.quarantine["record_id"].tolist() == ["2026-10-01|AAA", "2026-10-01|CHF", "2026-10-01|EUR"]

    state1 = update_fx_latest(None, first.clean)
    second = ingest_landing_day("fx_rates", day2, settings)
    state2 = update_fx_latest(state1, second.clean)
    assert state2["currency"].tolist() == ["EUR", "GBP"]
    assert state2["rate_to_reporting"].tolist() == [2.0, 0.5]
    assert state2["rate_date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-10-02", "2026-10-01"]
    assert pa.Table.from_pandas(state2, schema=FX_LATEST_SCHEMA, preserve_index=False).num_rows == 2
    # an older day's rates never replace a newer state
    assert update_fx_latest(state2, first.clean)["rate_to_reporting"].tolist() == [2.0, 0.5]
    assert update_fx_latest(None, first.clean.iloc[0:0]).empty

    # orders of D convert with D's rate (EUR) and the latest earlier one (GBP, from 10-01)
    write(settings, "orders", day2, "a.csv", [order("o1", "10", "EUR"), order("o2", "10", "GBP")])
    orders = ingest_landing_day("orders", day2, settings, fx_latest=state2)
    assert orders.clean["gross_revenue"].tolist() == [20.0, 5.0]
    # the same orders against the state of the day before: EUR falls back to 1.25
    assert ingest_landing_day("orders", day2, settings, fx_latest=state1).clean["gross_revenue"].tolist() == [
        12.5, 5.0]


# ---------------------------------------------------------------------------------------------------------------
# implausible amounts and fx rates (amount_out_of_range)

FX_EUR_2 = pd.DataFrame({"currency": ["EUR", "GBP"], "rate_date": [dt.date(2026, 10, 1)] * 2,
                         "rate_to_reporting": [2.0, 0.5]})


def test_amounts_above_the_bound_after_conversion_are_quarantined(tmp_path: Path) -> None:
    """1e308 EUR is finite, but 2e308 USD is not: it once reached the clean rows (and revenue) as inf."""
    settings = make_settings(tmp_path)
    write(settings, "orders", D, "a.csv", [
        order("o1", "1e308", "EUR"),                                  # 0 inf after conversion
        order("o2", "600000000", "EUR"),                              # 1 1.2e9 USD > 1e9
        order("o3", "500000000", "EUR"),                              # 2 exactly 1e9 USD: clean
        order("o4", "10", cost_of_goods="1e400"),                     # 3 too large for a float: a number, too big
        order("o5", "inf"),                                           # 4 a word, not a number
        order("o6", "2e9", discount_amount="1.5e9"),                  # 5 net 5e8, but gross 2e9 USD
        order("o7", "-1e400"),                                        # 6 negative first
        order("o8", "1e308", "CHF"),                                  # 7 no rate: nothing to judge it by
    ])
    result = ingest_landing_day("orders", D, settings, fx_latest=FX_EUR_2)
    assert_writable(result, "orders")
    assert result.clean["order_id"].tolist() == ["o3"]
    assert result.clean["gross_revenue"].tolist() == [1e9]
    assert reasons(result) == [
        ("a.csv", 0, "amount_out_of_range"), ("a.csv", 1, "amount_out_of_range"),
        ("a.csv", 3, "amount_out_of_range"), ("a.csv", 4, "unparsable_number"),
        ("a.csv", 5, "amount_out_of_range"), ("a.csv", 6, "negative_amount"), ("a.csv", 7, "missing_fx_rate"),
    ]
    assert result.quarantine["detail"].tolist() == [
        "gross_revenue='1e308' is inf USD, above CRM_MAX_AMOUNT=1e+09",
        "gross_revenue='600000000' is 1200000000.0 USD, above CRM_MAX_AMOUNT=1e+09",
        "cost_of_goods='1e400' is inf USD, above CRM_MAX_AMOUNT=1e+09",
        "gross_revenue='inf'",
        "gross_revenue='2e9' is 2000000000.0 USD, above CRM_MAX_AMOUNT=1e+09",
        "gross_revenue='-1e400' < 0",
        "no CHF rate on or before 2026-10-02 (reporting currency USD)",
    ]
    assert (result.rows_in, result.rows_clean, result.rows_quarantined) == (8, 1, 7)

    # the bound is the setting CRM_MAX_AMOUNT
    wider = ingest_landing_day("orders", D, make_settings(tmp_path, max_amount=2e9), fx_latest=FX_EUR_2)
    assert wider.clean["order_id"].tolist() == ["o2", "o3", "o6"]
    assert wider.quarantine_by_reason() == {"amount_out_of_range": 2, "missing_fx_rate": 1, "negative_amount": 1,
                                            "unparsable_number": 1}


def test_refund_and_cost_amounts_above_the_bound_are_quarantined(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    refund = {"order_id": "o1", "refunded_at": "2026-10-02T10:00:00Z", "currency": "GBP"}
    write(settings, "refunds", D, "a.csv", [{**refund, "refund_id": "r1", "amount": "1e308"},   # 5e307 USD
                                            {**refund, "refund_id": "r2", "amount": "4"}])
    cost = {"date": "2026-10-02", "cost_type": "media", "objective": "brand", "currency": "EUR"}
    write(settings, "costs", D, "a.csv", [{**cost, "amount": "3e9"}, {**cost, "amount": "3"}])
    refunds = ingest_landing_day("refunds", D, settings, fx_latest=FX_EUR_2)
    costs = ingest_landing_day("costs", D, settings, fx_latest=FX_EUR_2)
    assert_writable(refunds, "refunds")
    assert_writable(costs, "costs")
    assert values(refunds.clean, ["refund_id", "amount"]) == [["r2", 2.0]]
    assert refunds.quarantine["detail"].tolist() == ["amount='1e308' is 5e+307 USD, above CRM_MAX_AMOUNT=1e+09"]
    assert values(costs.clean, ["amount", "amount_original"]) == [[6.0, 3.0]]
    assert reasons(costs) == [("a.csv", 0, "amount_out_of_range")]


def test_fx_rates_outside_the_plausible_range_are_quarantined(tmp_path: Path) -> None:
    """A rate of 1e-300 would turn every EUR amount into ~0, one of 2e12 a normal amount into an absurd one."""
    settings = make_settings(tmp_path)
    write(settings, "fx_rates", D, "a.csv", [
        {"date": "2026-10-02", "currency": currency, "rate_to_reporting": rate}
        for currency, rate in [("EUR", "1e-300"), ("GBP", "2e12"), ("CHF", "1e400"), ("JPY", "0.0065"),
                               ("XAU", "4000"), ("SEK", "1e-12"), ("NOK", "0")]
    ])
    result = ingest_landing_day("fx_rates", D, settings)
    assert_writable(result, "fx_rates")
    assert values(result.clean, ["currency", "rate_to_reporting"]) == [["JPY", 0.0065], ["SEK", 1e-12],
                                                                        ["XAU", 4000.0]]
    assert reasons(result) == [("a.csv", 0, "amount_out_of_range"), ("a.csv", 1, "amount_out_of_range"),
                               ("a.csv", 2, "amount_out_of_range"), ("a.csv", 6, "invalid_value")]
    assert result.quarantine["detail"].tolist()[:3] == [
        "rate_to_reporting='1e-300' outside 1e-12..1e+12", "rate_to_reporting='2e12' outside 1e-12..1e+12",
        "rate_to_reporting='1e400' outside 1e-12..1e+12"]
    # a EUR order then has no rate at all, instead of a revenue of 1e-298
    write(settings, "orders", D, "a.csv", [order("o1", "100", "EUR")])
    orders = ingest_landing_day("orders", D, settings, fx_latest=update_fx_latest(None, result.clean))
    assert orders.clean.empty and reasons(orders) == [("a.csv", 0, "missing_fx_rate")]


# ---------------------------------------------------------------------------------------------------------------
# ids delivered again on a later day (orders, refunds)

DAY1, DAY2, DAY4 = dt.date(2026, 10, 1), dt.date(2026, 10, 2), dt.date(2026, 10, 4)


def ingest_days(settings: Settings, source: str, days: list[dt.date], fx: pd.DataFrame | None = None,
                state: pd.DataFrame | None = None) -> tuple[dict[dt.date, IngestResult], pd.DataFrame | None]:
    """Each day against the ids state of the day before, as the daily runs chain it."""
    results = {}
    for day in days:
        results[day] = ingest_landing_day(source, day, settings, fx_latest=fx, seen_ids=state)
        state = update_seen_ids(state, source, results[day].clean, day, settings.duplicate_id_horizon_days)
    return results, state


def at(day: dt.date, hour: int = 10) -> str:
    return f"{day}T{hour:02d}:00:00Z"


def test_an_order_delivered_again_on_a_later_day_is_counted_once(tmp_path: Path) -> None:
    """o1 arrives on 10-01, then again on 10-04 with ordered_at on 10-04 and another amount: once both were
    clean, in two partitions, and revenue counted it twice. o2 only moved its timestamp to the next day."""
    settings = make_settings(tmp_path)
    write(settings, "orders", DAY1, "a.csv", [order("o1", "100", ordered_at=at(DAY1)),
                                              order("o2", "50", ordered_at=at(DAY1))])
    write(settings, "orders", DAY2, "a.csv", [order("o2", "50", ordered_at=at(DAY2))])
    write(settings, "orders", DAY4, "a.csv", [order("o1", "120", ordered_at=at(DAY4)),
                                              order("o3", "10", ordered_at=at(DAY4))])
    days = [DAY1, DAY2, dt.date(2026, 10, 3), DAY4]
    results, state = ingest_days(settings, "orders", days)

    assert {str(d): r.clean["order_id"].tolist() for d, r in results.items()} == {
        "2026-10-01": ["o1", "o2"], "2026-10-02": [], "2026-10-03": [], "2026-10-04": ["o3"]}
    assert sum(r.clean["net_revenue"].sum() for r in results.values()) == 160.0  # 100 + 50 + 10: o1 once
    for day, order_id in ((DAY2, "o2"), (DAY4, "o1")):
        result = results[day]
        assert_writable(result, "orders")
        assert reasons(result) == [("a.csv", 0, "duplicate_id_conflict")]
        assert result.quarantine["record_id"].tolist() == [order_id]
        assert result.quarantine["detail"].tolist() == [
            "order_id first delivered on 2026-10-01 (its ordered_at on that day): the first delivery is kept"]
    assert json.loads(results[DAY4].quarantine["record"].iloc[0])["gross_revenue"] == "120"
    assert (results[DAY4].rows_in, results[DAY4].rows_clean, results[DAY4].rows_quarantined) == (2, 1, 1)
    assert values(state, ["order_id"]) == [["o1"], ["o2"], ["o3"]]
    assert state["first_seen_date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-10-01", "2026-10-01", "2026-10-04"]
    assert pa.Table.from_pandas(state, schema=seen_ids_schema("orders"), preserve_index=False).num_rows == 3

    # re-running 10-01 after 10-04 exists: the state of the day before is the reference, so o1 stays clean
    again = ingest_landing_day("orders", DAY1, settings, seen_ids=None)
    pd.testing.assert_frame_equal(again.clean, results[DAY1].clean)
    # ... and a later state passed by mistake never makes a day conflict with its own rows
    pd.testing.assert_frame_equal(ingest_landing_day("orders", DAY1, settings, seen_ids=state).clean,
                                  results[DAY1].clean)
    # re-running 10-04 against the state of 10-03 gives the same rows
    _, state3 = ingest_days(settings, "orders", days[:3])
    rerun = ingest_landing_day("orders", DAY4, settings, seen_ids=state3)
    pd.testing.assert_frame_equal(rerun.clean, results[DAY4].clean)
    pd.testing.assert_frame_equal(rerun.quarantine, results[DAY4].quarantine)


def test_a_refund_delivered_again_on_a_later_day_is_a_conflict(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    refund = {"refund_id": "r1", "order_id": "o1", "amount": "5", "currency": "USD"}
    write(settings, "refunds", DAY1, "a.csv", [{**refund, "refunded_at": at(DAY1)}])
    write(settings, "refunds", DAY2, "a.jsonl", [{**refund, "refunded_at": at(DAY2)},
                                                 {**refund, "refund_id": "r2", "refunded_at": at(DAY2)}])
    results, state = ingest_days(settings, "refunds", [DAY1, DAY2])
    assert results[DAY2].clean["refund_id"].tolist() == ["r2"]
    assert reasons(results[DAY2]) == [("a.jsonl", 0, "duplicate_id_conflict")]
    assert results[DAY2].quarantine["detail"].tolist() == [
        "refund_id first delivered on 2026-10-01 (its refunded_at on that day): the first delivery is kept"]
    assert values(state, ["refund_id"]) == [["r1"], ["r2"]]


def test_a_day_with_two_versions_and_an_earlier_one(tmp_path: Path) -> None:
    """Within the day the first version is compared with the earlier days; the day's later versions conflict
    with it, as before. Rows that were quarantined never enter the state: the first *clean* delivery wins."""
    settings = make_settings(tmp_path)
    write(settings, "orders", DAY1, "a.csv", [order("o1", "100", ordered_at=at(DAY1)),
                                              order("o9", "-1", ordered_at=at(DAY1))])  # quarantined
    write(settings, "orders", DAY2, "a.csv", [order("o1", "90", ordered_at=at(DAY2)),
                                              order("o1", "80", ordered_at=at(DAY2, 11)),
                                              order("o9", "9", ordered_at=at(DAY2))])
    results, state = ingest_days(settings, "orders", [DAY1, DAY2])
    second = results[DAY2]
    assert second.clean["order_id"].tolist() == ["o9"]
    assert reasons(second) == [("a.csv", 0, "duplicate_id_conflict"), ("a.csv", 1, "duplicate_id_conflict")]
    assert second.quarantine["detail"].tolist()[0].startswith("order_id first delivered on 2026-10-01")
    assert second.quarantine["detail"].tolist()[1].startswith("same order_id as ")
    assert second.reconciles
    assert state["first_seen_date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-10-01", "2026-10-02"]


def test_ids_are_remembered_for_the_horizon() -> None:
    state = pd.DataFrame({"order_id": ["a", "b"], "first_seen_date": [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]})
    day_clean = pd.DataFrame({"order_id": ["c", "a", "0"]})  # "a" again: its earlier day is kept
    # horizon 3 days: on 10-03 ids first seen on 10-01..10-03 are kept, on 10-04 those of 10-02..10-04;
    # a day appends its new ids in id order, so the state is ordered by first_seen_date, then id
    kept = update_seen_ids(state, "orders", day_clean, dt.date(2026, 10, 3), 3)
    assert values(kept, ["order_id"]) == [["a"], ["b"], ["0"], ["c"]]
    assert kept["first_seen_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2026-10-01", "2026-10-02", "2026-10-03", "2026-10-03"]
    later = update_seen_ids(kept, "orders", day_clean.iloc[0:0], dt.date(2026, 10, 4), 3)
    assert values(later, ["order_id"]) == [["b"], ["0"], ["c"]]
    assert list(later.dtypes.astype(str)) == ["string", "datetime64[s]"]


def test_a_re_delivery_after_the_horizon_is_clean(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, duplicate_id_horizon_days=3)
    write(settings, "orders", DAY1, "a.csv", [order("o1", "100", ordered_at=at(DAY1))])
    write(settings, "orders", DAY4, "a.csv", [order("o1", "100", ordered_at=at(DAY4))])
    write(settings, "orders", "2026-10-05", "a.csv", [order("o1", "100", ordered_at=at(dt.date(2026, 10, 5)))])
    days = [DAY1 + dt.timedelta(days=i) for i in range(5)]
    results, _ = ingest_days(settings, "orders", days)
    # 10-04 is 3 days after 10-01: the state of 10-03 still holds o1; the state of 10-04 no longer does
    assert reasons(results[DAY4]) == [("a.csv", 0, "duplicate_id_conflict")]
    assert results[dt.date(2026, 10, 5)].clean["order_id"].tolist() == ["o1"]


def test_events_costs_and_fx_keep_no_ids_across_days(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="events keeps no ids across days"):
        ingest_landing_day("events", D, make_settings(tmp_path), seen_ids=pd.DataFrame({"event_id": ["e1"]}))


def test_a_late_start_folds_the_ids_state_from_the_landing_zone(tmp_path: Path) -> None:
    """The first day of a backfill has no state of the day before: it is folded from the landing files, with
    the fx rates each day had, and equals what the daily runs chained."""
    settings = make_settings(tmp_path, start_date=DAY1)
    write(settings, "fx_rates", DAY1, "a.csv", [{"date": str(DAY1), "currency": "EUR", "rate_to_reporting": "1.25"}])
    write(settings, "orders", DAY1, "a.csv", [order("o1", "100", "EUR", ordered_at=at(DAY1)),
                                              order("o2", "5", "GBP", ordered_at=at(DAY1))])  # no GBP rate yet
    write(settings, "fx_rates", DAY2, "a.csv", [{"date": str(DAY2), "currency": "GBP", "rate_to_reporting": "0.5"}])
    write(settings, "orders", DAY2, "a.csv", [order("o1", "90", "EUR", ordered_at=at(DAY2)),   # conflict
                                              order("o2", "5", "GBP", ordered_at=at(DAY2))])   # now clean
    # the folder of 10-04 holds a row of 10-03 (an exporter a day ahead)
    write(settings, "orders", DAY4, "a.csv", [order("o3", "7", ordered_at=at(dt.date(2026, 10, 3), 23))])
    fx1 = update_fx_latest(None, ingest_landing_day("fx_rates", DAY1, settings).clean)
    fx2 = update_fx_latest(fx1, ingest_landing_day("fx_rates", DAY2, settings).clean)
    _, state = ingest_days(settings, "orders", [DAY1], fx=fx1)
    _, state = ingest_days(settings, "orders", [DAY2, dt.date(2026, 10, 3)], fx=fx2, state=state)

    folded = seen_ids_before("orders", DAY4, settings)
    pd.testing.assert_frame_equal(folded, state)
    assert values(folded, ["order_id"]) == [["o1"], ["o2"], ["o3"]]
    assert folded["first_seen_date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-10-01", "2026-10-02", "2026-10-03"]
    # the first partition has nothing before it
    assert seen_ids_before("orders", DAY1, settings).empty
    # the fold starts at the horizon: with 2 days, the state of 10-03 holds the ids first seen on 10-02..10-03,
    # and o1 of 10-02 counts as first seen there (its first delivery, on 10-01, is before the horizon)
    short = seen_ids_before("orders", DAY4, settings.with_overrides(duplicate_id_horizon_days=2))
    assert values(short, ["order_id"]) == [["o1"], ["o2"], ["o3"]]
    assert short["first_seen_date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-10-02", "2026-10-02", "2026-10-03"]
