"""Late data: what changed in the inputs of a day after the day was materialised.

Landing files: every ingestion materialisation records the files of the folders it read (D-1, D, D+1) with
their size and modification time (`landing_files`). A file that is new or changed since then matters to D when
it lies in folder D, or when it lies in folder D-1 / D+1 and holds at least one row assigned to D (read and
assigned exactly as ingestion does); a file of folder D+1 that only holds rows of D+1 does not.

CRM rows: every extraction records `rows_on_day`, the rows of the table whose creation or update timestamp
falls on D at that moment. A later count above it means rows for D were written after D was extracted (a
backdated import, replication lag). A row can leave D only by a later update, which belongs to that later
day, so a higher count is always late data; the one blind spot (a late row and a later update of another
row on the same day cancelling out) is documented.
"""

import datetime as dt
import json
from collections.abc import Mapping

import pandas as pd

from crm_pipeline.ingestion.contract import CONTRACTS
from crm_pipeline.ingestion.crm import (
    _SPECS,
    _day_window,
    _DayWindow,
    _select_statement,
    _table_columns,
    crm_connection,
)
from crm_pipeline.ingestion.landing import assigned_batches
from crm_pipeline.ingestion.normalise import local_day, parse_utc
from crm_pipeline.ingestion.readers import UnreadableFile, list_landing_folder
from crm_pipeline.settings import Settings
from crm_pipeline.storage.fs import file_signature

FOLDER_OFFSETS = (-1, 0, 1)


def landing_listing(source: str, day: dt.date, settings: Settings) -> dict[str, str]:
    """{path: size|mtime} of the landing files partition D reads (folders D-1, D, D+1)."""
    out: dict[str, str] = {}
    for offset in FOLDER_OFFSETS:
        folder = list_landing_folder(source, day + dt.timedelta(days=offset), settings)
        out.update({path: file_signature(info) for path, info in folder.files.items()})
    return out


def file_mtime(info_signature: str) -> pd.Timestamp | None:
    """The modification time inside a signature (None when the store reports none)."""
    value = info_signature.split("|")[1]
    if value in ("None", ""):
        return None
    try:
        number = float(value)
        return pd.Timestamp(number, unit="s", tz="UTC")
    except ValueError:
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def late_landing_files(source: str, day: dt.date, recorded: Mapping[str, str], settings: Settings,
                       settled_before: pd.Timestamp) -> list[str]:
    """The files new or changed since partition D was materialised that hold rows of D (or lie in folder D),
    among those last modified before `settled_before` (a burst still arriving is left for a later look)."""
    contract = CONTRACTS[source]
    late = []
    for path, signature in landing_listing(source, day, settings).items():
        if recorded.get(path) == signature:
            continue
        modified = file_mtime(signature)
        if modified is not None and modified >= settled_before:
            continue
        folder_day = dt.date.fromisoformat(path.rsplit("/", 2)[-2].removeprefix("date="))
        if folder_day == day:
            late.append(path)
            continue
        try:
            # the first batch with a row of D decides; an unparsable file is its own folder's partition's concern
            if any(t.num_rows for t in assigned_batches(contract, path, folder_day, day, settings, 0)):
                late.append(path)
        except UnreadableFile:
            continue
    return late


def recorded_listing(metadata_value: object) -> dict[str, str]:
    if isinstance(metadata_value, dict):
        return {str(k): str(v) for k, v in metadata_value.items()}
    if isinstance(metadata_value, str):
        return json.loads(metadata_value)
    return {}


def crm_rows_per_day(table: str, first: dt.date, last: dt.date, settings: Settings) -> dict[str, int]:
    """{day: rows of the CRM table created or updated on that day} for first..last (reporting timezone): the
    rows a daily extraction of the day reads, counted now. Reads three columns of the window, once."""
    spec = _SPECS[table]
    start, end = _day_window(first, settings.timezone), _day_window(last, settings.timezone)
    window = _DayWindow(start=start.start, end=end.end, sql_from=start.sql_from, sql_to=end.sql_to)
    with crm_connection(settings.database_url) as conn:  # never creates a missing SQLite file
        found = _table_columns(conn, table)
        if found is None:
            return {}
        table_name, present = found
        wanted = [c for c in dict.fromkeys([spec.primary_key, spec.created_column, "updated_at"]) if c in present]
        statement, params = _select_statement(spec, table_name, {c: present[c] for c in wanted},
                                              conn.dialect.identifier_preparer, window, first_load=False)
        rows = pd.DataFrame(conn.execute(statement, params).fetchall(), columns=wanted, dtype=object)
    days = []
    for column in (spec.created_column, "updated_at"):
        if column in rows.columns:
            stamp = parse_utc(rows[column])
            inside = ((stamp >= window.start) & (stamp < window.end)).to_numpy()
            days.append(pd.DataFrame({"row": rows.index[inside],
                                      "day": local_day(stamp[inside], settings.timezone).dt.strftime("%Y-%m-%d")}))
    if not days:
        return {}
    counted = pd.concat(days, ignore_index=True).drop_duplicates()  # created and updated on one day: once
    return {str(k): int(v) for k, v in counted["day"].value_counts().sort_index().items()}
