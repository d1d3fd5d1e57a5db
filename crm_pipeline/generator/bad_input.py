"""Deliberately broken input (docs/inputs.md section 3), recorded in the ground truth with the ingestion's reasons.

Each landing source gets a share `bad_rate` of its rows corrupted, cycling through the classes that
apply to it so every class shows up even in a tiny world; exact re-deliveries (not bad, just dropped by
the ingestion) are added on top. The reason strings are the ones the ingestion writes.
"""

from dataclasses import dataclass, field

import numpy as np

from .common import (
    SECONDS_PER_DAY,
    Calendar,
    Frame,
    as_obj,
    concat,
    concat_frames,
    frame_len,
    nulls,
    stream,
    take,
)

MISSING_REQUIRED_FIELD = "missing_required_field"
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
NEGATIVE_AMOUNT = "negative_amount"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
UNKNOWN_CURRENCY = "unknown_currency"
UNKNOWN_SURVEY_TYPE = "unknown_survey_type"
SCORE_OUT_OF_RANGE = "score_out_of_range"
CONTACT_COUNT_BELOW_1 = "contact_count_below_1"
DUPLICATE_ID_CONFLICT = "duplicate_id_conflict"
FOLDER_DAY_MISMATCH = "folder_day_mismatch"
MISSING_FX_RATE = "missing_fx_rate"
NO_IDENTIFIER = "no_identifier"
REASONS: tuple[str, ...] = (
    MISSING_REQUIRED_FIELD, UNPARSABLE_TIMESTAMP, NEGATIVE_AMOUNT, UNKNOWN_EVENT_TYPE, UNKNOWN_CURRENCY,
    UNKNOWN_SURVEY_TYPE, SCORE_OUT_OF_RANGE, CONTACT_COUNT_BELOW_1, DUPLICATE_ID_CONFLICT, FOLDER_DAY_MISMATCH,
    MISSING_FX_RATE, NO_IDENTIFIER,
)  # fmt: skip

SOURCE_CLASSES: dict[str, tuple[str, ...]] = {
    "events": (MISSING_REQUIRED_FIELD, UNPARSABLE_TIMESTAMP, UNKNOWN_EVENT_TYPE, DUPLICATE_ID_CONFLICT, FOLDER_DAY_MISMATCH, NO_IDENTIFIER),
    "orders": (NEGATIVE_AMOUNT, UNKNOWN_CURRENCY, NO_IDENTIFIER, MISSING_REQUIRED_FIELD, UNPARSABLE_TIMESTAMP, DUPLICATE_ID_CONFLICT, FOLDER_DAY_MISMATCH),
    "refunds": (NEGATIVE_AMOUNT, MISSING_REQUIRED_FIELD, UNPARSABLE_TIMESTAMP, UNKNOWN_CURRENCY),
    "costs": (NEGATIVE_AMOUNT, MISSING_REQUIRED_FIELD, UNKNOWN_CURRENCY),
}  # fmt: skip
ID_COLUMN = {"events": "event_id", "orders": "order_id", "refunds": "refund_id"}
IDENTIFIERS = {
    "events": ("anonymous_id", "device_id", "customer_id", "email", "phone"),
    "orders": ("customer_id", "email", "anonymous_id", "device_id"),
}
AMOUNT = {"orders": "gross_revenue", "refunds": "amount", "costs": "amount"}
GARBAGE_TIMESTAMPS = ("2026-13-45T25:61:00", "not a timestamp", "31/02/2026 10:00", "yesterday 10am", "")
UNKNOWN_EVENT_TYPES = ("page_view", "email_opne", "purchase_intent")
# not ISO 4217 at all (a code without a rate would be missing_fx_rate instead)
BAD_CURRENCIES = ("EURO", "US$", "€")


def row_ids(source: str, frame: Frame) -> np.ndarray:
    """The id the truth uses for a row: its id column, or for costs the natural key date|type|objective|channel|campaign."""
    if source in ID_COLUMN:
        return frame[ID_COLUMN[source]]
    if source == "costs":
        parts = [frame[c] for c in ("date", "cost_type", "objective", "channel", "campaign_id")]
        filled = [np.where(p == None, "", p).astype(object) for p in parts]  # noqa: E711
        return concat(filled[0], "|", filled[1], "|", filled[2], "|", filled[3], "|", filled[4])
    raise ValueError(source)


@dataclass
class BadInput:
    """Corrupts rows day by day and remembers what it did."""

    seed: int
    cal: Calendar
    bad_rate: float
    records: list[Frame] = field(default_factory=list)
    redelivered: list[Frame] = field(default_factory=list)
    _rotation: dict[str, int] = field(default_factory=dict)
    _carry: dict[str, float] = field(default_factory=dict)
    _days_seen: dict[str, int] = field(default_factory=dict)

    def _record(self, source: str, day: np.ndarray, row_id: np.ndarray, reason: np.ndarray | str, into: list[Frame]) -> None:
        k = len(row_id)
        if not k:
            return
        into.append(
            {
                "source": np.full(k, source, dtype=object),
                "day": self.cal.dates(day),
                "row_id": np.asarray(row_id, dtype=object),
                "reason": np.broadcast_to(np.asarray(reason, dtype=object), (k,)).copy(),
            }
        )

    def _count(self, source: str, n: int, rate: float, forced: int) -> int:
        carry = self._carry.get(source, 0.0) + rate * n
        k = int(carry)
        self._carry[source] = carry - k
        return min(n, max(k, forced))

    def inject(self, source: str, frame: Frame, day: int, protected: np.ndarray | None = None) -> Frame:
        """Corrupt some rows of one day of `source` (in place) and append conflicting / re-delivered copies.

        `frame` must carry `_folder` (the day folder it lands in). `protected` rows are left alone (they
        already carry another intended defect).
        """
        n = frame_len(frame)
        if self.bad_rate <= 0 or n == 0:
            return frame
        rng = stream(self.seed, "bad", source, day)
        classes = SOURCE_CLASSES[source]
        seen = self._days_seen.get(source, 0)
        self._days_seen[source] = seen + 1
        eligible = np.ones(n, dtype=bool) if protected is None else ~protected
        cand = np.flatnonzero(eligible)
        k = self._count(source, n, self.bad_rate, 1 if seen < len(classes) else 0)
        k = min(k, len(cand))
        chosen = np.sort(rng.choice(cand, size=k, replace=False)) if k else np.empty(0, dtype=np.int64)
        start = self._rotation.get(source, 0)
        self._rotation[source] = start + k
        reason = as_obj(classes)[(start + np.arange(k)) % len(classes)]
        has_ts = "_ts" in frame and source != "costs"
        folder = frame["_folder"]
        ts_day = self.cal.day_of(frame["_ts"]) if has_ts else folder
        assigned = ts_day.copy()
        ids = row_ids(source, frame)
        extra: list[Frame] = []

        for cls in classes:
            rows = chosen[reason == cls]
            m = len(rows)
            if not m:
                continue
            if cls == MISSING_REQUIRED_FIELD:
                col = {"events": "event_type", "orders": "currency", "refunds": "order_id", "costs": "cost_type"}[source]
                if source == "orders":
                    # half of them lose the amount instead of the currency
                    half = rows[rng.random(m) < 0.5]
                    frame["gross_revenue"][half] = np.nan
                    rows_cur = np.setdiff1d(rows, half)
                    frame["currency"][rows_cur] = None
                else:
                    frame[col][rows] = None
            elif cls == UNPARSABLE_TIMESTAMP:
                frame["_tsraw"][rows] = as_obj(GARBAGE_TIMESTAMPS)[rng.integers(0, len(GARBAGE_TIMESTAMPS), m)]
                assigned[rows] = folder[rows]
            elif cls == NEGATIVE_AMOUNT:
                col = AMOUNT[source]
                frame[col][rows] = -np.abs(np.where(frame[col][rows] > 0, frame[col][rows], 5.0))
            elif cls == UNKNOWN_EVENT_TYPE:
                frame["event_type"][rows] = as_obj(UNKNOWN_EVENT_TYPES)[rng.integers(0, len(UNKNOWN_EVENT_TYPES), m)]
            elif cls == UNKNOWN_CURRENCY:
                frame["currency"][rows] = as_obj(BAD_CURRENCIES)[rng.integers(0, len(BAD_CURRENCIES), m)]
            elif cls == NO_IDENTIFIER:
                for col in IDENTIFIERS[source]:
                    frame[col][rows] = None
            elif cls == FOLDER_DAY_MISMATCH:
                # clearly more than one day off the folder's day, but a valid timestamp
                frame["_ts"][rows] = frame["_ts"][rows] - rng.integers(3, 8, m) * SECONDS_PER_DAY
                assigned[rows] = folder[rows]
            elif cls == DUPLICATE_ID_CONFLICT:
                copy = take(frame, rows)
                if source == "events":
                    copy["event_type"] = np.where(copy["event_type"] == "session_start", "category_view", "session_start").astype(object)
                else:
                    col = AMOUNT[source]
                    copy[col] = copy[col] + 10.0
                copy["_resend"] = np.ones(m, dtype=bool)
                extra.append(copy)
        self._record(source, assigned[chosen], ids[chosen], reason, self.records)

        # exact re-deliveries of clean rows, in another file of the same folder
        clean = np.setdiff1d(cand, chosen)
        kd = min(len(clean), self._count(source + "/dup", n, self.bad_rate / 2, 1 if seen < 2 else 0))
        if kd and source in ID_COLUMN:
            dup = np.sort(rng.choice(clean, size=kd, replace=False))
            copy = take(frame, dup)
            copy["_resend"] = np.ones(kd, dtype=bool)
            extra.append(copy)
            self._record(source, ts_day[dup], ids[dup], "exact_duplicate", self.redelivered)

        frame["_resend"] = np.zeros(n, dtype=bool)
        if extra:
            cols = list(frame)
            frame = concat_frames([frame, *extra], cols, {"_resend": False})
        return frame

    def record_missing_fx(self, frame: Frame, rows: np.ndarray) -> None:
        self._record("orders", self.cal.day_of(frame["_ts"][rows]), frame["order_id"][rows], MISSING_FX_RATE, self.records)

    # ------------------------------------------------------------------------------------------ CRM
    def inject_crm(self, tables: dict[str, Frame]) -> None:
        """Out-of-contract values in CRM rows created inside the window (quarantined on their creation day)."""
        if self.bad_rate <= 0:
            return
        rng = stream(self.seed, "bad", "crm")
        start, end = self.cal.start_ts, self.cal.end_ts
        surveys = tables["survey_responses"]
        inside = np.flatnonzero((surveys["responded_at"] >= start) & (surveys["responded_at"] < end))
        k = min(len(inside), max(2, round(self.bad_rate * len(inside))))
        rows = rng.choice(inside, size=k, replace=False)
        half = k // 2
        bad_type, bad_score = rows[:half], rows[half:]
        surveys["survey_type"][bad_type] = as_obj(("nps_v2", "CSAT-5", "effort"))[rng.integers(0, 3, len(bad_type))]
        limits = {"nps": (-1, 11), "csat": (0, 6), "ces": (0, 8)}
        for stype, (low, high) in limits.items():
            m = bad_score[surveys["survey_type"][bad_score] == stype]
            surveys["score"][m] = np.where(rng.random(len(m)) < 0.5, low, high)
        day = self.cal.day_of(surveys["responded_at"])
        self._record("crm_survey_responses", day[bad_type], surveys["response_id"][bad_type], UNKNOWN_SURVEY_TYPE, self.records)
        self._record("crm_survey_responses", day[bad_score], surveys["response_id"][bad_score], SCORE_OUT_OF_RANGE, self.records)

        tickets = tables["support_tickets"]
        inside = np.flatnonzero((tickets["created_at"] >= start) & (tickets["created_at"] < end) & (tickets["contact_count"] != None))  # noqa: E711
        k = min(len(inside), max(1, round(self.bad_rate * len(inside))))
        rows = rng.choice(inside, size=k, replace=False)
        tickets["contact_count"][rows] = np.where(rng.random(k) < 0.7, 0, -1)
        day = self.cal.day_of(tickets["created_at"])
        self._record("crm_support_tickets", day[rows], tickets["ticket_id"][rows], CONTACT_COUNT_BELOW_1, self.records)

    def tables(self) -> tuple[Frame, Frame]:
        cols = ("source", "day", "row_id", "reason")
        empty = {c: nulls(0) for c in cols}
        bad = concat_frames(self.records, cols, {}) if self.records else empty
        dup = concat_frames(self.redelivered, cols, {}) if self.redelivered else empty
        return bad, {k: v for k, v in dup.items() if k != "reason"}

