"""Persons as of the newest identity (docs/outputs.md 2.2).

A KPI run of partition D attaches persons with identity_map D, and daily aggregates store the person ids of
their own day. Both are then carried through every identity change logged after them, up to the newest
materialised partition of `identity/identity_merges`, read straight from storage rather than through a
partition mapping: re-running an old day after a later merge counts the merged persons once, so history
follows identity instead of mixing old and new ids.

Merges map the absorbed id to its survivor (chains followed). A split keeps the split id on the part holding
the person's earliest identifier; the ids stored in aggregates carry no identifiers, so they stay with that
part (`explain_person` and the merge log show the split). Absorbed ids never come back (a survivor is always
an earlier id, a split part gets a fresh id), so changes older than a stored row are no-ops on it; the
reader therefore only reads the changes of the KPI's own window and later, which keeps a day's cost
independent of the length of history.
"""

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA, resolve_person_ids
from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs as storage

IDENTITY_MERGES_PATH = ("identity", "identity_merges")


@dataclass(frozen=True)
class PersonRemap:
    """Carries stored person ids through the identity changes in `changes` (IDENTITY_MERGES_SCHEMA rows)."""

    changes: pd.DataFrame
    newest_identity_day: str | None = None  # the newest identity partition the changes were read up to

    def __call__(self, person_ids: pd.Series) -> pd.Series:
        if self.changes.empty:
            return person_ids.astype("string")
        return resolve_person_ids(person_ids.astype("string"), self.changes)

    @property
    def merges(self) -> int:
        return int((self.changes["kind"] == "merge").sum()) if len(self.changes) else 0

    @classmethod
    def none(cls) -> "PersonRemap":
        return cls(IDENTITY_MERGES_SCHEMA.empty_table().to_pandas())

    @classmethod
    def load(cls, settings: Settings, day: dt.date, window_days: int) -> "PersonRemap":
        """The changes logged from the start of the window `day - window_days + 1 .. day` on, up to the newest
        materialised identity partition (later than `day` when an old day is re-run)."""
        first = (day - dt.timedelta(days=window_days - 1)).isoformat()
        tables = storage.read_partitions(settings.warehouse_root, IDENTITY_MERGES_PATH, settings.storage_options,
                                         first=first)
        changes = [t.select(IDENTITY_MERGES_SCHEMA.names).cast(IDENTITY_MERGES_SCHEMA) for t in tables.values()]
        table = pa.concat_tables(changes) if changes else IDENTITY_MERGES_SCHEMA.empty_table()
        return cls(table.to_pandas(), newest_identity_day=max(tables) if tables else None)
