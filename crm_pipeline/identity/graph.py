"""The identity graph engine (docs/identity.md, docs/outputs.md 2.2), Dagster-free.

Every identifier the pipeline sees (customer_id, email hash, phone hash, device_id, anonymous_id) is a node;
identifiers that appear on the same row are linked (co-occurrence), and so are customer records that fuzzy
matching says are the same human. Connected components of the *accepted* links are persons.

Why each piece is the way it is:

- **Guards.** One shared identifier can glue thousands of people into one "person" and poison every KPI, so
  an identifier is *refused* (none of its links is accepted, it becomes a singleton person) when it is a
  known placeholder (configured clear values, hashed with the pipeline's key so they match the ingestion
  hashes), a *hub* (directly co-occurring with more than `hub_max_customer_ids` distinct customer_ids:
  a family tablet, an office cookie), or breaks a cardinality rule (`max_customer_ids_per_identifier`,
  e.g. an email belongs to one customer_id), or is *shared*: it co-occurred with two to K customer_ids that
  no other evidence puts in one person (a tablet shared by a couple is no reason to merge them, while the
  cookie of a human with two registrations that fuzzy matching links is accepted). Refusals are reported
  with their evidence.
- **Stable ids.** Downstream aggregates store person ids, so an id must not change because unrelated data
  arrived. A person that is new today gets the smallest *natural id* (`p_` + 16 hex of sha256("type:value"))
  among its identifiers with the earliest first_seen_date (`natural_person_id`). When
  persons merge, the older one (earlier first_seen_date, tie: smaller id) survives and the merge is logged.
  By induction every unsplit person's id is "the smallest natural id among its earliest identifiers", so an
  incremental day-by-day run and one from-scratch run over the same dated facts give the same map.
- **Splits.** Evidence can be withdrawn: an identifier becomes a hub or placeholder, a CRM record is
  corrected (CRM links are recomputed from each day's snapshot; landing links are facts and accumulate).
  A previous person then spans several components: the one holding its earliest non-refused identifier
  (by first_seen_date, then type priority customer_id > email > phone > device_id > anonymous_id, then
  value) keeps the id, every other part gets `p_` + sha256("split|day|parent id|type:value of its earliest
  identifier"): deterministic, and never an id that existed (a natural id could have been retired by a merge).
- **Incremental.** Day D reads the state of D-1 plus D's facts; it never re-reads history. The state is
  `IdentityState`: `map` = identity_map of D-1 (one row per identifier, sorted by type and value),
  `links` (LINK_STATE_SCHEMA: every candidate link with rule, score, dates, origin, acceptance, refusal
  reason, and the map row numbers of its two ends) and `rejections` = identity_rejections of D-1. The day's
  cost is linear in the size of the state (components over the whole graph, vectorised with scipy) and
  independent of the number of days; yesterday's links are read by row number (verified), so only the
  identifiers of the day itself are hashed and looked up (binary search in the sorted map).

Everything is vectorised: identifiers are dictionary-encoded once into integer node ids (Arrow), links are
integer pairs, grouping is done by sorting. The only per-value Python is sha256 of the identifiers that
found new persons (like `pseudonymise`, one hash per distinct value).

Downstream stages attach persons with `attach_person_id` (priority customer_id > email_hash > phone_hash >
device_id > anonymous_id, refused identifiers last) and remap stored ids with `resolve_person_ids`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from crm_pipeline.ingestion.normalise import normalise_email, normalise_phone, pseudonymise
from crm_pipeline.metadata import string_array
from crm_pipeline.settings import DEVELOPMENT_PII_KEY

if TYPE_CHECKING:
    from crm_pipeline.settings import Settings

__all__ = [
    "FACT_IDENTIFIERS_SCHEMA",
    "FUZZY_PAIRS_SCHEMA",
    "IDENTIFIER_COLUMNS",
    "IDENTIFIER_PRIORITY",
    "IDENTITY_EXPLANATION_SCHEMA",
    "IDENTITY_LINKS_SCHEMA",
    "IDENTITY_MAP_SCHEMA",
    "IDENTITY_MERGES_SCHEMA",
    "IDENTITY_REJECTIONS_SCHEMA",
    "LINK_STATE_SCHEMA",
    "DayFacts",
    "IdentityConfig",
    "IdentityResult",
    "IdentityState",
    "attach_person_id",
    "explain_person",
    "fact_identifiers",
    "fact_links",
    "fuzzy_links",
    "natural_person_id",
    "pairwise_identifier_scores",
    "resolve_day",
    "resolve_person_ids",
]

# ---------------------------------------------------------------------------------------------------------------
# vocabulary and schemas

# Identifier types in priority order: the one that names a row's person when several are present, and the
# tie-break of "earliest identifier" (a customer_id is the best anchor of a person, a cookie the weakest).
IDENTIFIER_PRIORITY: tuple[str, ...] = ("customer_id", "email", "phone", "device_id", "anonymous_id")
# identifier type -> column of the clean events/orders/CRM tables that holds it
IDENTIFIER_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"customer_id": "customer_id", "email": "email_hash", "phone": "phone_hash", "device_id": "device_id",
     "anonymous_id": "anonymous_id"}
)
# the identifier columns of the clean tables, in attach priority order
IDENTIFIER_COLUMN_NAMES: tuple[str, ...] = tuple(IDENTIFIER_COLUMNS[name] for name in IDENTIFIER_PRIORITY)
# the identity_map columns attach_person_id reads: downstream inputs of the map load only these
PERSON_LOOKUP_COLUMNS: tuple[str, ...] = ("identifier_type", "identifier", "person_id", "is_refused")
# internal type codes are alphabetical, so sorting the encoded keys sorts by (identifier_type, identifier)
_TYPE_NAMES: tuple[str, ...] = tuple(sorted(IDENTIFIER_PRIORITY))
_TYPE_CODE: Mapping[str, int] = MappingProxyType({name: i for i, name in enumerate(_TYPE_NAMES)})
_PRIORITY_OF_CODE = np.array([IDENTIFIER_PRIORITY.index(name) for name in _TYPE_NAMES], dtype=np.int8)
_CUSTOMER = _TYPE_CODE["customer_id"]

LANDING_LINK_SOURCES: tuple[str, ...] = ("events", "orders")
CRM_LINK_SOURCES: tuple[str, ...] = ("customers", "leads", "support_tickets", "survey_responses")
FUZZY_RULE = "fuzzy_profile"

_S = pa.string()
_D = pa.date32()

# One row per identifier seen up to the day (grain: identifier_type + identifier).
IDENTITY_MAP_SCHEMA = pa.schema(
    [
        pa.field("identifier_type", _S, nullable=False),  # customer_id | email | phone | device_id | anonymous_id
        pa.field("identifier", _S, nullable=False),  # the id as written, or the email/phone keyed hash
        pa.field("person_id", _S, nullable=False),
        pa.field("first_seen_date", _D, nullable=False),
        pa.field("last_seen_date", _D, nullable=False),
        pa.field("is_refused", pa.bool_(), nullable=False),  # placeholder/hub/cardinality/shared: a singleton
    ]
)
# One row per accepted link (grain: both identifiers + rule). a/b ordered by (identifier_type, identifier).
IDENTITY_LINKS_SCHEMA = pa.schema(
    [
        pa.field("identifier_type_a", _S, nullable=False),
        pa.field("identifier_a", _S, nullable=False),
        pa.field("identifier_type_b", _S, nullable=False),
        pa.field("identifier_b", _S, nullable=False),
        pa.field("rule", _S, nullable=False),  # co_occurrence:<source> | co_occurrence:crm_<table> | fuzzy_profile
        pa.field("score", pa.float64(), nullable=False),  # 1.0 deterministic, match probability for fuzzy
        pa.field("first_seen_date", _D, nullable=False),
        pa.field("last_seen_date", _D, nullable=False),
    ]
)
# The links state: every candidate link, accepted or not (grain as IDENTITY_LINKS_SCHEMA).
LINK_STATE_SCHEMA = pa.schema(
    [
        *IDENTITY_LINKS_SCHEMA,
        pa.field("link_origin", _S, nullable=False),  # landing (accumulates) | crm | fuzzy (replaced daily)
        pa.field("is_accepted", pa.bool_(), nullable=False),
        pa.field("refusal_reason", _S),  # placeholder | hub | cardinality | shared | below_min_probability
        # row numbers of identifier_a / identifier_b in the identity_map of the same day: tomorrow's run reads
        # yesterday's links by position instead of re-hashing millions of identifiers (verified, see
        # _link_positions)
        pa.field("node_a", pa.int64(), nullable=False),
        pa.field("node_b", pa.int64(), nullable=False),
    ]
)
# One row per identity change of the day (grain: kind + kept + other).
IDENTITY_MERGES_SCHEMA = pa.schema(
    [
        pa.field("change_date", _D, nullable=False),
        pa.field("kind", _S, nullable=False),  # merge | split
        pa.field("kept_person_id", _S, nullable=False),  # merge: the survivor; split: the id that was split
        pa.field("other_person_id", _S, nullable=False),  # merge: the absorbed id; split: the part's id
        pa.field("reason", _S, nullable=False),
    ]
)
# One row per refused identifier as of the day.
IDENTITY_REJECTIONS_SCHEMA = pa.schema(
    [
        pa.field("identifier_type", _S, nullable=False),
        pa.field("identifier", _S, nullable=False),
        pa.field("reason", _S, nullable=False),  # placeholder | hub | cardinality | shared
        pa.field("count_customer_ids", pa.int64(), nullable=False),  # distinct customer_ids it co-occurred with
        pa.field("count_links", pa.int64(), nullable=False),  # distinct identifiers it is linked with
        pa.field("first_rejected_date", _D, nullable=False),
        pa.field("last_seen_date", _D, nullable=False),
    ]
)
# What `fact_identifiers` returns and `DayFacts.identifiers` holds.
FACT_IDENTIFIERS_SCHEMA = pa.schema(
    [
        pa.field("identifier_type", _S, nullable=False),
        pa.field("identifier", _S, nullable=False),
        pa.field("first_seen_date", _D, nullable=False),
        pa.field("last_seen_date", _D, nullable=False),
    ]
)
# What fuzzy CRM profile matching hands over (crm_pipeline.identity.matching).
FUZZY_PAIRS_SCHEMA = pa.schema(
    [
        pa.field("customer_id_a", _S, nullable=False),
        pa.field("customer_id_b", _S, nullable=False),
        pa.field("match_probability", pa.float64(), nullable=False),
        pa.field("rule", _S, nullable=False),
    ]
)
# What `explain_person` returns: the person's identifiers (row_kind=identifier, only the *_a columns) and
# the links touching them (row_kind=link).
IDENTITY_EXPLANATION_SCHEMA = pa.schema(
    [
        pa.field("row_kind", _S, nullable=False),  # identifier | link
        pa.field("identifier_type_a", _S, nullable=False),
        pa.field("identifier_a", _S, nullable=False),
        pa.field("identifier_type_b", _S),
        pa.field("identifier_b", _S),
        pa.field("person_id_b", _S),  # the person the other end belongs to (refused links may cross persons)
        pa.field("rule", _S),
        pa.field("score", pa.float64()),
        pa.field("first_seen_date", _D, nullable=False),
        pa.field("last_seen_date", _D, nullable=False),
        pa.field("is_accepted", pa.bool_()),
        pa.field("refusal_reason", _S),
    ]
)

_REFUSAL_REASONS: tuple[str, ...] = ("placeholder", "hub", "cardinality", "shared")  # precedence order
_BELOW_MIN = "below_min_probability"

DEFAULT_PLACEHOLDER_EMAILS: tuple[str, ...] = (
    "test@test.com", "noemail@example.com", "no-reply@example.com", "noreply@example.com",
    "none@none.com", "email@example.com",
)
DEFAULT_PLACEHOLDER_PHONES: tuple[str, ...] = ("0000000000", "+10000000000", "1111111111", "1234567890")


# ---------------------------------------------------------------------------------------------------------------
# configuration, facts, state


@dataclass(frozen=True)
class IdentityConfig:
    """How identity resolution guards against over-merging and which fuzzy links it trusts.

    Placeholders are clear values (emails, phones as typed); they are normalised and pseudonymised with
    `pii_key` / `phone_region` exactly like ingestion does, so they match the hashes in the data. Only exact
    addresses can be listed (the data holds hashes, so no pattern such as `no-reply@*` can be matched): add the
    company's own no-reply addresses. `max_customer_ids_per_identifier` maps an identifier type to the most
    customer_ids it may co-occur with (e.g. {"email": 1}); `hub_max_customer_ids` applies to every type.
    `hub_max_linked_identifiers` (off by default) also refuses an identifier linked with more distinct
    identifiers of any type, for hubs that never meet a customer_id (a kiosk cookie).
    """

    hub_max_customer_ids: int = 3
    max_customer_ids_per_identifier: Mapping[str, int] = field(default_factory=dict)
    hub_max_linked_identifiers: int | None = None
    # refuse an identifier seen with 2..K customer_ids that no other evidence joins into one person (the
    # pipeline turns this on through CRM_IDENTITY_REFUSE_SHARED; off, only the hub bound K applies)
    refuse_shared_identifiers: bool = False
    placeholder_emails: tuple[str, ...] = DEFAULT_PLACEHOLDER_EMAILS
    placeholder_phones: tuple[str, ...] = DEFAULT_PLACEHOLDER_PHONES
    fuzzy_min_probability: float = 0.9
    pii_key: str = DEVELOPMENT_PII_KEY
    phone_region: str = "US"

    def __post_init__(self) -> None:
        unknown = set(self.max_customer_ids_per_identifier) - set(IDENTIFIER_PRIORITY)
        if unknown:
            raise ValueError(f"max_customer_ids_per_identifier: unknown identifier types {sorted(unknown)}")
        if self.hub_max_customer_ids < 1:
            raise ValueError("hub_max_customer_ids must be >= 1")
        if not 0.0 <= self.fuzzy_min_probability <= 1.0:
            raise ValueError("fuzzy_min_probability must be within 0..1")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> IdentityConfig:
        """The pipeline's key and phone region (so placeholder hashes match ingestion), its hub bound and fuzzy
        threshold, plus overrides."""
        values: dict[str, Any] = {
            "pii_key": settings.pii_key, "phone_region": settings.phone_region,
            "hub_max_customer_ids": settings.hub_max_customer_ids,
            "max_customer_ids_per_identifier": dict(settings.identity_max_customer_ids),
            "placeholder_emails": (*DEFAULT_PLACEHOLDER_EMAILS, *settings.placeholder_emails),
            "placeholder_phones": (*DEFAULT_PLACEHOLDER_PHONES, *settings.placeholder_phones),
            "fuzzy_min_probability": settings.fuzzy_match_threshold,
            "refuse_shared_identifiers": settings.identity_refuse_shared,
        }
        return cls(**{**values, **overrides})

    def placeholder_hashes(self) -> dict[str, frozenset[str]]:
        """identifier type -> keyed hashes of the placeholder values, as they appear in clean data."""
        emails = normalise_email(pd.Series(list(self.placeholder_emails), dtype="string"))
        phones = normalise_phone(pd.Series(list(self.placeholder_phones), dtype="string"), self.phone_region)
        return {
            "email": frozenset(pseudonymise(emails, self.pii_key).dropna().tolist()),
            "phone": frozenset(pseudonymise(phones, self.pii_key).dropna().tolist()),
        }


@dataclass(frozen=True)
class DayFacts:
    """What day D contributes to the identity graph.

    - `landing_links`: links from landing facts (events, orders) of D (`fact_links`); they accumulate.
    - `identifiers`: every identifier seen on D with its dates (`fact_identifiers`), including those on rows
      with one identifier only (no link), so that every identifier gets a person.
    - `crm_links`: links from D's CRM snapshots (customers, leads, support_tickets, survey_responses). They
      *replace* yesterday's CRM links, so a corrected record withdraws its old link. None = no snapshot on D:
      yesterday's CRM links stay (an absent snapshot must not look like every record being deleted).
    - `fuzzy_pairs`: today's fuzzy matches (`FUZZY_PAIRS_SCHEMA`), replacing yesterday's; None keeps them.

    Frames may hold several days (a from-scratch run): each row keeps its own dates.
    """

    day: dt.date
    landing_links: pd.DataFrame
    identifiers: pd.DataFrame
    crm_links: pd.DataFrame | None = None
    fuzzy_pairs: pd.DataFrame | None = None

    @classmethod
    def from_frames(
        cls,
        day: dt.date,
        landing: Mapping[str, pd.DataFrame],
        crm: Mapping[str, pd.DataFrame] | None = None,
        fuzzy_pairs: pd.DataFrame | None = None,
    ) -> DayFacts:
        """Facts of day D from its clean landing frames ({"events": ..., "orders": ...}) and CRM snapshots.

        CRM snapshot rows count as seen on D (the snapshot is the CRM's state on D).
        """
        frames = [(source, frame) for source, frame in sorted(landing.items())]
        crm_frames = sorted(crm.items()) if crm is not None else []
        landing_links = _concat([fact_links(f, s, day) for s, f in frames], IDENTITY_LINKS_SCHEMA)
        crm_links = (_concat([fact_links(f, s, day) for s, f in crm_frames], IDENTITY_LINKS_SCHEMA)
                     if crm is not None else None)
        identifiers = _concat([fact_identifiers(f, day) for _, f in [*frames, *crm_frames]], FACT_IDENTIFIERS_SCHEMA)
        identifiers = _aggregate_identifiers(identifiers)
        return cls(day=day, landing_links=landing_links, identifiers=identifiers, crm_links=crm_links,
                   fuzzy_pairs=fuzzy_pairs)


@dataclass(frozen=True)
class IdentityState:
    """What day D+1 needs from day D: `map` (= identity_map D), `links` (LINK_STATE_SCHEMA: every candidate
    link with dates and acceptance) and `rejections` (= identity_rejections D, for first_rejected_date)."""

    map: pd.DataFrame
    links: pd.DataFrame
    rejections: pd.DataFrame

    @classmethod
    def empty(cls) -> IdentityState:
        return cls(map=_empty(IDENTITY_MAP_SCHEMA), links=_empty(LINK_STATE_SCHEMA),
                   rejections=_empty(IDENTITY_REJECTIONS_SCHEMA))


@dataclass(frozen=True)
class IdentityResult:
    """The outputs of one day: the state for tomorrow and the four published tables, plus counts for metadata."""

    state: IdentityState
    identity_map: pd.DataFrame
    identity_links: pd.DataFrame
    identity_merges: pd.DataFrame
    identity_rejections: pd.DataFrame
    counts: Mapping[str, int]


# ---------------------------------------------------------------------------------------------------------------
# facts from clean tables


def _source_rule(source: str) -> tuple[str, str]:
    """(rule, origin) of the links a source gives; CRM tables may be named with or without `crm_`."""
    if source in LANDING_LINK_SOURCES:
        return f"co_occurrence:{source}", "landing"
    table = source.removeprefix("crm_")
    if table in CRM_LINK_SOURCES:
        return f"co_occurrence:crm_{table}", "crm"
    raise ValueError(f"unknown identity source {source!r}; expected one of "
                     f"{[*LANDING_LINK_SOURCES, *CRM_LINK_SOURCES]}")


_ORIGINS: tuple[str, ...] = ("landing", "crm", "fuzzy")
_LANDING, _CRM, _FUZZY = range(3)


def _link_origin(rules: np.ndarray) -> np.ndarray:
    """Origin code (_ORIGINS) of each rule name: crm_ tables, fuzzy (any non-co-occurrence rule), landing."""
    return np.array([_CRM if r.startswith("co_occurrence:crm_") else _LANDING if r.startswith("co_occurrence:")
                     else _FUZZY for r in rules], dtype=np.int8)


def _present_identifiers(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """identifier type -> the frame's column as text with blanks as missing, for the types the frame has."""
    out: dict[str, pd.Series] = {}
    for name in IDENTIFIER_PRIORITY:
        column = IDENTIFIER_COLUMNS[name]
        if column in frame.columns:
            values = frame[column].astype("string").str.strip()
            out[name] = values.mask(values == "")
    return out


def _row_days(day: dt.date | pd.Series, n: int) -> np.ndarray:
    if isinstance(day, pd.Series):
        if len(day) != n:
            raise ValueError("per-row dates must have one value per row")
        return _days(day)
    return np.full(n, _day_number(day), dtype=np.int32)


def fact_links(frame: pd.DataFrame, source: str, day: dt.date | pd.Series) -> pd.DataFrame:
    """The links one source's rows give (IDENTITY_LINKS_SCHEMA), deduplicated, dated `day` (or per row).

    Each row links its identifiers as a star around its highest-priority identifier (customer_id, email,
    phone, device_id, anonymous_id): enough for components, and since a row's customer_id is always the
    centre, every (identifier, customer_id) co-occurrence is a direct link, which the hub count needs.
    Links are written with a/b ordered by identifier_type (alphabetical), so the same pair always reads the
    same way. `source`: events, orders, or a CRM table (customers, leads, support_tickets, survey_responses).
    """
    rule, _ = _source_rule(source)
    values = _present_identifiers(frame)
    days = _row_days(day, len(frame))
    center_type = np.full(len(frame), -1, dtype=np.int8)
    center = pd.Series(pd.NA, index=frame.index, dtype="string")
    for name, v in values.items():  # in priority order: the first present identifier is the centre
        take = v.notna().to_numpy() & (center_type < 0)
        center_type[take] = _TYPE_CODE[name]
        center = center.mask(take, v)
    parts: list[pd.DataFrame] = []
    for name, v in values.items():
        code = _TYPE_CODE[name]
        take = v.notna().to_numpy() & (center_type >= 0) & (center_type != code)
        if not take.any():
            continue
        ct, cv, ov = center_type[take], center[take].to_numpy(), v[take].to_numpy()
        center_first = ct < code  # alphabetical type order decides which end is a
        parts.append(pd.DataFrame({
            "type_a": np.where(center_first, ct, code), "identifier_a": np.where(center_first, cv, ov),
            "type_b": np.where(center_first, code, ct), "identifier_b": np.where(center_first, ov, cv),
            "day": days[take],
        }))
    if not parts:
        return _empty(IDENTITY_LINKS_SCHEMA)
    links = pd.concat(parts, ignore_index=True)
    grouped = (links.groupby(["type_a", "identifier_a", "type_b", "identifier_b"], sort=True)["day"]
               .agg(["min", "max"]).reset_index())
    names = np.array(_TYPE_NAMES, dtype=object)
    return _frame(
        {
            "identifier_type_a": names[grouped["type_a"].to_numpy()],
            "identifier_a": grouped["identifier_a"].to_numpy(),
            "identifier_type_b": names[grouped["type_b"].to_numpy()],
            "identifier_b": grouped["identifier_b"].to_numpy(),
            "rule": np.full(len(grouped), rule, dtype=object),
            "score": np.ones(len(grouped)),
            "first_seen_date": grouped["min"].to_numpy(np.int32),
            "last_seen_date": grouped["max"].to_numpy(np.int32),
        },
        IDENTITY_LINKS_SCHEMA,
    )


def fact_identifiers(frame: pd.DataFrame, day: dt.date | pd.Series) -> pd.DataFrame:
    """Every identifier on the rows of `frame` with first/last seen dates (FACT_IDENTIFIERS_SCHEMA)."""
    days = _row_days(day, len(frame))
    parts = []
    for name, v in _present_identifiers(frame).items():
        take = v.notna().to_numpy()
        parts.append(pd.DataFrame({"identifier_type": name, "identifier": v[take].to_numpy(), "day": days[take]}))
    if not parts:
        return _empty(FACT_IDENTIFIERS_SCHEMA)
    stacked = pd.concat(parts, ignore_index=True)
    return _aggregate_identifiers(_frame(
        {"identifier_type": stacked["identifier_type"].to_numpy(), "identifier": stacked["identifier"].to_numpy(),
         "first_seen_date": stacked["day"].to_numpy(np.int32), "last_seen_date": stacked["day"].to_numpy(np.int32)},
        FACT_IDENTIFIERS_SCHEMA,
    ))


def _aggregate_identifiers(identifiers: pd.DataFrame) -> pd.DataFrame:
    if identifiers.empty:
        return _empty(FACT_IDENTIFIERS_SCHEMA)
    work = pd.DataFrame({"identifier_type": identifiers["identifier_type"].to_numpy(),
                         "identifier": identifiers["identifier"].to_numpy(),
                         "first": _days(identifiers["first_seen_date"]), "last": _days(identifiers["last_seen_date"])})
    g = work.groupby(["identifier_type", "identifier"], sort=True).agg(first=("first", "min"), last=("last", "max"))
    g = g.reset_index()
    return _frame({"identifier_type": g["identifier_type"].to_numpy(), "identifier": g["identifier"].to_numpy(),
                   "first_seen_date": g["first"].to_numpy(np.int32), "last_seen_date": g["last"].to_numpy(np.int32)},
                  FACT_IDENTIFIERS_SCHEMA)


def fuzzy_links(pairs: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Fuzzy customer pairs as links (IDENTITY_LINKS_SCHEMA): a/b ordered, best probability per pair and rule."""
    if pairs.empty:
        return _empty(IDENTITY_LINKS_SCHEMA)
    a = pairs["customer_id_a"].astype("string").to_numpy(dtype=object)
    b = pairs["customer_id_b"].astype("string").to_numpy(dtype=object)
    swap = b < a
    rule = pairs["rule"].astype("string").fillna(FUZZY_RULE) if "rule" in pairs.columns else FUZZY_RULE
    work = pd.DataFrame({"a": np.where(swap, b, a), "b": np.where(swap, a, b),
                         "rule": np.asarray(rule, dtype=object) if not isinstance(rule, str) else rule,
                         "score": pairs["match_probability"].astype("float64").to_numpy()})
    work = work[work["a"] != work["b"]]
    g = work.groupby(["a", "b", "rule"], sort=True)["score"].max().reset_index()
    d = np.full(len(g), _day_number(day), dtype=np.int32)
    return _frame({"identifier_type_a": "customer_id", "identifier_a": g["a"].to_numpy(),
                   "identifier_type_b": "customer_id", "identifier_b": g["b"].to_numpy(),
                   "rule": g["rule"].to_numpy(), "score": g["score"].to_numpy(),
                   "first_seen_date": d, "last_seen_date": d}, IDENTITY_LINKS_SCHEMA)


# ---------------------------------------------------------------------------------------------------------------
# the day's resolution


def resolve_day(facts: DayFacts, previous: IdentityState | None, config: IdentityConfig) -> IdentityResult:
    """Identity as of day `facts.day`: yesterday's state plus today's facts -> today's map, links, changes.

    Steps: encode identifiers as integer nodes; combine links (landing: yesterday's + today's, accumulated;
    CRM and fuzzy: today's, first_seen carried over); refuse placeholder, hub and cardinality identifiers;
    components of the accepted links; give each component an id (kept, merged or new, see module docstring);
    log the day's merges and splits; report refusals.
    """
    prev = previous if previous is not None else IdentityState.empty()
    today = _day_number(facts.day)
    g = _Graph.build(facts, prev, today)
    refused, reason_code, count_cids, count_links = _guards(g, config)
    accepted = _accepted_links(g, refused, config)
    n_comp, labels = _components(g.n, g.link_a[accepted], g.link_b[accepted])
    ids = _assign_ids(g, refused, labels, n_comp, accepted, reason_code, today)

    identity_map = _map_frame(g, pa.array(ids.comp_id, _S), labels, refused)
    link_state = _link_state_frame(g, accepted, reason_code, config)
    identity_links = link_state.loc[link_state["is_accepted"].to_numpy(dtype=bool),
                                    list(IDENTITY_LINKS_SCHEMA.names)].reset_index(drop=True)
    rejections = _rejections_frame(g, refused, reason_code, count_cids, count_links, today)
    state = IdentityState(map=identity_map, links=link_state, rejections=rejections)
    counts = {
        "count_identifiers": int(g.n),
        "count_persons": n_comp,
        "count_links": len(g.link_a),
        "count_links_accepted": int(accepted.sum()),
        "count_refused_identifiers": int(refused.sum()),
        "count_merges": int((ids.merges["kind"] == "merge").sum()),
        "count_splits": int((ids.merges["kind"] == "split").sum()),
    }
    return IdentityResult(state=state, identity_map=identity_map, identity_links=identity_links,
                          identity_merges=ids.merges, identity_rejections=rejections, counts=counts)


@dataclass
class _Graph:
    """The day's graph as integer arrays: nodes are identifiers, links are (a, b) node pairs + attributes."""

    n: int
    node_type: np.ndarray  # int8 type code (alphabetical)
    node_value: pa.Array  # large_string
    first_seen: np.ndarray  # int32 days since epoch
    last_seen: np.ndarray
    prev_person: np.ndarray  # int32 index into prev_ids, -1 for an identifier new today
    prev_ids: np.ndarray  # previous person ids, sorted (so a smaller index is a smaller id)
    prev_rejected_first: np.ndarray  # int32 first_rejected_date of yesterday's refusal, -1 none
    link_a: np.ndarray  # int64 node
    link_b: np.ndarray
    link_rule: np.ndarray  # int index into rules
    rules: np.ndarray  # rule names (object)
    link_origin: np.ndarray  # int8 code into _ORIGINS
    link_score: np.ndarray
    link_first: np.ndarray
    link_last: np.ndarray
    link_was_accepted: np.ndarray  # accepted in yesterday's state
    withdrawn_a: np.ndarray  # yesterday's accepted CRM/fuzzy links absent today (evidence withdrawn)
    withdrawn_b: np.ndarray
    withdrawn_rule: np.ndarray  # rule names

    @classmethod
    def build(cls, facts: DayFacts, prev: IdentityState, today: int) -> _Graph:
        prev_map, prev_links = _sorted_map(prev.map, prev.links)
        link_frames: list[pd.DataFrame] = [prev_links, facts.landing_links]  # yesterday's first, today's after
        if facts.crm_links is not None:
            link_frames.append(facts.crm_links)
        if facts.fuzzy_pairs is not None:
            link_frames.append(fuzzy_links(facts.fuzzy_pairs, facts.day))
        n_prev_links = len(prev_links)

        # ---- nodes: yesterday's map rows plus the identifiers new today, in (type, value) order
        map_types = _type_codes(prev_map["identifier_type"])
        map_values = _large_str(prev_map["identifier"])
        positions = _link_positions(prev_links, map_types, map_values)
        others: list[tuple[pd.Series, pd.Series]] = [
            (prev.rejections["identifier_type"], prev.rejections["identifier"]),
            (facts.identifiers["identifier_type"], facts.identifiers["identifier"]),
        ]
        first_link_frame = 0 if positions is None else 1  # frames whose endpoints must be looked up by value
        for frame in link_frames[first_link_frame:]:
            others += [(frame["identifier_type_a"], frame["identifier_a"]),
                       (frame["identifier_type_b"], frame["identifier_b"])]
        enc = _encode(map_types, map_values, [_type_codes(t) for t, _ in others], [_large_str(v) for _, v in others])
        n = enc.n
        piece = enc.other_codes
        ends_a = [enc.map_node[positions[0]]] if positions is not None else []
        ends_b = [enc.map_node[positions[1]]] if positions is not None else []
        ends_a += piece[2::2]
        ends_b += piece[3::2]

        # ---- node dates: min first / max last over every occurrence
        first = np.full(n, np.iinfo(np.int32).max, dtype=np.int32)
        last = np.full(n, np.iinfo(np.int32).min, dtype=np.int32)

        def seen(codes: np.ndarray, f: np.ndarray, la: np.ndarray) -> None:
            np.minimum.at(first, codes, f)
            np.maximum.at(last, codes, la)

        seen(enc.map_node, _days(prev_map["first_seen_date"]), _days(prev_map["last_seen_date"]))
        seen(piece[1], _days(facts.identifiers["first_seen_date"]), _days(facts.identifiers["last_seen_date"]))
        link_first = [_days(f["first_seen_date"]) for f in link_frames]
        link_last = [_days(f["last_seen_date"]) for f in link_frames]
        for i in range(len(link_frames)):
            if i == 0 and positions is not None:
                continue  # yesterday's links: their identifiers' dates are already in yesterday's map
            seen(ends_a[i], link_first[i], link_last[i])
            seen(ends_b[i], link_first[i], link_last[i])
        # an identifier only known from yesterday's rejections cannot exist (they are in the map); be safe
        unseen = first == np.iinfo(np.int32).max
        first[unseen] = today
        last[unseen] = today

        prev_codes, prev_ids = pd.factorize(prev_map["person_id"].astype("string"), sort=True)
        prev_person = np.full(n, -1, dtype=np.int32)
        prev_person[enc.map_node] = prev_codes
        prev_rejected_first = np.full(n, -1, dtype=np.int32)
        prev_rejected_first[piece[0]] = _days(prev.rejections["first_rejected_date"])

        # ---- links: one row per (a, b, rule); landing accumulates, CRM/fuzzy are today's when given
        a = np.concatenate(ends_a).astype(np.int64)
        b = np.concatenate(ends_b).astype(np.int64)
        rule_codes, rules = pd.factorize(
            pd.concat([f["rule"].astype("string") for f in link_frames], ignore_index=True), sort=True)
        rules = np.asarray(rules, dtype=object)
        origin_of_rule = _link_origin(rules)
        score = np.concatenate([f["score"].astype("float64").to_numpy() for f in link_frames])
        lf, ll = np.concatenate(link_first), np.concatenate(link_last)
        is_today = np.ones(len(a), dtype=bool)
        is_today[:n_prev_links] = False
        was_acc = np.zeros(len(a), dtype=bool)
        was_acc[:n_prev_links] = prev_links["is_accepted"].astype(bool).to_numpy()
        # canonical orientation: a before b in (type, value) order (node order); no self-links
        a, b = np.minimum(a, b), np.maximum(a, b)
        keep = a != b
        a, b, rule_codes, score, lf, ll, is_today, was_acc = (
            x[keep] for x in (a, b, rule_codes, score, lf, ll, is_today, was_acc))
        # group by (a, b, rule); a stable sort keeps today's rows last, so a group's last row has today's score
        n_rules = max(len(rules), 1)
        order = np.argsort((a * n + b) * n_rules + rule_codes, kind="stable")
        a, b, rule_codes, score, lf, ll, is_today, was_acc = (
            x[order] for x in (a, b, rule_codes, score, lf, ll, is_today, was_acc))
        if len(a):
            new_group = np.ones(len(a), dtype=bool)
            new_group[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (rule_codes[1:] != rule_codes[:-1])
            starts = np.flatnonzero(new_group)
            ends = np.append(starts[1:], len(a)) - 1
            g_first = np.minimum.reduceat(lf, starts)
            g_last = np.maximum.reduceat(ll, starts)
            g_today = np.maximum.reduceat(is_today.astype(np.int8), starts).astype(bool)
            g_was = np.maximum.reduceat(was_acc.astype(np.int8), starts).astype(bool)
            ga, gb, grule, gscore = a[starts], b[starts], rule_codes[starts], score[ends]
        else:
            ga = gb = np.zeros(0, dtype=np.int64)
            grule = np.zeros(0, dtype=np.int64)
            gscore = np.zeros(0)
            g_first = g_last = np.zeros(0, dtype=np.int32)
            g_today = g_was = np.zeros(0, dtype=bool)
        g_origin = origin_of_rule[grule] if len(grule) else np.zeros(0, dtype=np.int8)
        replaced = {_CRM: facts.crm_links is not None, _FUZZY: facts.fuzzy_pairs is not None}
        live = (g_origin == _LANDING) | g_today
        for origin, is_replaced in replaced.items():
            if not is_replaced:
                live |= g_origin == origin
        withdrawn = ~live & g_was
        return cls(
            n=n, node_type=enc.node_type, node_value=enc.node_value, first_seen=first, last_seen=last,
            prev_person=prev_person, prev_ids=np.asarray(prev_ids, dtype=object),
            prev_rejected_first=prev_rejected_first,
            link_a=ga[live], link_b=gb[live], link_rule=grule[live], rules=rules, link_origin=g_origin[live],
            link_score=gscore[live], link_first=g_first[live], link_last=g_last[live],
            link_was_accepted=g_was[live],
            withdrawn_a=ga[withdrawn], withdrawn_b=gb[withdrawn], withdrawn_rule=rules[grule[withdrawn]],
        )


def _sorted_map(idmap: pd.DataFrame, links: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Yesterday's map in (identifier_type, identifier) order, as resolve_day writes it (re-sorted, with the
    links' row positions remapped, if a caller changed the order); duplicates are an error."""
    types = _type_codes(idmap["identifier_type"])
    values = _large_str(idmap["identifier"]).to_numpy(zero_copy_only=False)
    if len(values) < 2:
        return idmap, links
    same = types[1:] == types[:-1]
    ordered = (types[1:] > types[:-1]) | (same & (values[1:] > values[:-1]))
    if ordered.all():
        return idmap, links
    order = np.lexsort((np.argsort(np.argsort(values, kind="stable"), kind="stable"), types))
    values_sorted, types_sorted = values[order], types[order]
    if ((types_sorted[1:] == types_sorted[:-1]) & (values_sorted[1:] == values_sorted[:-1])).any():
        raise ValueError("the previous identity map has duplicate identifiers")
    if {"node_a", "node_b"} <= set(links.columns) and len(links):
        new_pos = np.empty(len(order), dtype=np.int64)
        new_pos[order] = np.arange(len(order))
        links = links.assign(node_a=new_pos[links["node_a"].to_numpy(np.int64)],
                             node_b=new_pos[links["node_b"].to_numpy(np.int64)])
    return idmap.iloc[order].reset_index(drop=True), links


def _link_positions(links: pd.DataFrame, map_types: np.ndarray, map_values: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Yesterday's links as map row positions (node_a/node_b), checked against their identifiers.

    Re-hashing millions of link endpoints every day would dominate the day's cost; the positions written
    with the state make that unnecessary. They are verified (same identifiers) so that a links state that does
    not belong to the map is never trusted: None then, and the endpoints are looked up by value.
    """
    if not {"node_a", "node_b"} <= set(links.columns):
        return None
    if not len(links):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pos_a, pos_b = links["node_a"].to_numpy(np.int64), links["node_b"].to_numpy(np.int64)
    m = len(map_types)
    if min(pos_a.min(), pos_b.min()) < 0 or max(pos_a.max(), pos_b.max()) >= m:
        return None
    for pos, side in ((pos_a, "a"), (pos_b, "b")):
        if not (map_types[pos] == _type_codes(links[f"identifier_type_{side}"])).all():
            return None
        same = pc.equal(map_values.take(pa.array(pos)), _large_str(links[f"identifier_{side}"]))
        if not pc.all(same).as_py():
            return None
    return pos_a, pos_b


def _guards(g: _Graph, config: IdentityConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(refused, reason code into _REFUSAL_REASONS or -1, count_customer_ids, count_links) per node."""
    n = g.n
    # distinct customer_ids each identifier co-occurred with (fuzzy links join customer_ids, not rows)
    co = g.link_origin != _FUZZY
    a_cid = g.node_type[g.link_a] == _CUSTOMER
    b_cid = g.node_type[g.link_b] == _CUSTOMER
    one = co & (a_cid ^ b_cid)
    other = np.where(a_cid, g.link_b, g.link_a)[one]
    cid = np.where(a_cid, g.link_a, g.link_b)[one]
    pairs = _unique_sorted(other * n + cid)
    count_cids = np.bincount(pairs // n, minlength=n) if n else np.zeros(0, dtype=np.int64)
    # distinct identifiers each identifier is linked with, whatever the rule
    undirected = _unique_sorted(g.link_a * n + g.link_b)
    count_links = (np.bincount(undirected // n, minlength=n) + np.bincount(undirected % n, minlength=n)
                   if n else np.zeros(0, dtype=np.int64))

    placeholder = np.zeros(n, dtype=bool)
    for name, hashes in config.placeholder_hashes().items():
        if hashes:
            is_value = pc.is_in(g.node_value, value_set=pa.array(sorted(hashes), pa.large_string()))
            placeholder |= (g.node_type == _TYPE_CODE[name]) & is_value.to_numpy(zero_copy_only=False)
    hub = (g.node_type != _CUSTOMER) & (count_cids > config.hub_max_customer_ids)
    if config.hub_max_linked_identifiers is not None:
        hub |= count_links > config.hub_max_linked_identifiers
    cardinality = np.zeros(n, dtype=bool)
    for name, limit in config.max_customer_ids_per_identifier.items():
        cardinality |= (g.node_type == _TYPE_CODE[name]) & (count_cids > limit)
    reason = np.full(n, -1, dtype=np.int8)
    for code, mask in reversed(list(enumerate((placeholder, hub, cardinality)))):  # first reason wins
        reason[mask] = code
    if config.refuse_shared_identifiers:
        shared = _shared(g, config, reason >= 0, count_cids, other, cid)
        reason[shared] = _REFUSAL_REASONS.index("shared")
    return reason >= 0, reason, count_cids.astype(np.int64), count_links.astype(np.int64)


def _shared(g: _Graph, config: IdentityConfig, refused: np.ndarray, count_cids: np.ndarray,
            ident: np.ndarray, cid: np.ndarray) -> np.ndarray:
    """Identifiers seen with 2..K customer_ids that stay in different persons without such identifiers.

    The persons are the components of every acceptable link except those touching an identifier with several
    customer_ids; an identifier whose customer_ids fall into more than one of them is the only thing joining
    those customers, so it is shared (a family tablet), not evidence. Vectorised: one extra components pass.
    """
    n = g.n
    multi = (g.node_type != _CUSTOMER) & (count_cids >= 2) & ~refused
    if not multi.any():
        return multi
    weak = (g.link_origin == _FUZZY) & (g.link_score < config.fuzzy_min_probability)
    usable = ~weak & ~(refused | multi)[g.link_a] & ~(refused | multi)[g.link_b]
    _, labels = _components(n, g.link_a[usable], g.link_b[usable])
    take = multi[ident]
    distinct = _unique_sorted(ident[take] * n + labels[cid[take]])
    return multi & (np.bincount(distinct // n, minlength=n) > 1)


def _unique_sorted(values: np.ndarray) -> np.ndarray:
    """Distinct int64 values by sorting (numpy's hash-based unique is much slower on millions of keys)."""
    values = np.sort(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _accepted_links(g: _Graph, refused: np.ndarray, config: IdentityConfig) -> np.ndarray:
    weak = (g.link_origin == _FUZZY) & (g.link_score < config.fuzzy_min_probability)
    return ~refused[g.link_a] & ~refused[g.link_b] & ~weak


def _link_refusal(g: _Graph, reason_code: np.ndarray, config: IdentityConfig) -> pa.Array:
    """Why each link is not accepted (null when accepted): the refused end's reason, a's first."""
    names = pa.array([*_REFUSAL_REASONS, _BELOW_MIN, None], _S)
    ra, rb = reason_code[g.link_a], reason_code[g.link_b]
    code = np.where(ra >= 0, ra, rb).astype(np.int64)
    weak = (g.link_origin == _FUZZY) & (g.link_score < config.fuzzy_min_probability) & (code < 0)
    code[weak] = len(_REFUSAL_REASONS)
    code[code < 0] = len(_REFUSAL_REASONS) + 1
    return names.take(pa.array(code))


def _components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    if n == 0:
        return 0, np.zeros(0, dtype=np.int32)
    adjacency = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    n_comp, labels = connected_components(adjacency, directed=False)
    return int(n_comp), labels.astype(np.int64)


@dataclass(frozen=True)
class _Ids:
    comp_id: np.ndarray  # object: person id per component
    merges: pd.DataFrame  # IDENTITY_MERGES_SCHEMA rows of the day


def natural_person_id(identifier_type: str, identifier: str) -> str:
    """The id a person founded by this identifier gets: `p_` + 16 hex of sha256("type:value")."""
    return "p_" + hashlib.sha256(f"{identifier_type}:{identifier}".encode()).hexdigest()[:16]


def _first_per_group(group: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(groups, index of the row with the smallest keys per group); keys in significance order."""
    order = np.lexsort((*reversed(keys), group))
    g = group[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return g[first], order[first]


def _assign_ids(g: _Graph, refused: np.ndarray, labels: np.ndarray, n_comp: int, accepted: np.ndarray,
                reason_code: np.ndarray, today: int) -> _Ids:
    """Ids of the day's components and the day's merges and splits (rules in the module docstring)."""
    n = g.n
    comp_id = np.full(n_comp, None, dtype=object)
    prior = np.flatnonzero(g.prev_person >= 0)
    p_of = g.prev_person[prior]
    # order of "earliest identifier": (first_seen, type priority, value); refused identifiers never anchor
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), _PRIORITY_OF_CODE[g.node_type], g.first_seen))] = np.arange(n)
    home_key = refused.astype(np.int64) * n + rank

    # each previous person stays with the component of its earliest non-refused identifier
    persons, home_node = _first_per_group(p_of, home_key[prior])
    home_node = prior[home_node]
    home_comp = labels[home_node]
    person_first = np.full(len(g.prev_ids), np.iinfo(np.int32).max, dtype=np.int32)
    np.minimum.at(person_first, p_of, g.first_seen[prior])
    # per component the survivor is the oldest person homed there (earlier first_seen, tie: smaller id)
    comps_kept, survivor_row = _first_per_group(home_comp, person_first[persons], persons)
    survivor = persons[survivor_row]
    comp_id[comps_kept] = g.prev_ids[survivor]
    comp_survivor = np.full(n_comp, -1, dtype=np.int64)
    comp_survivor[comps_kept] = survivor
    absorbed = comp_survivor[home_comp] != persons

    # components without a survivor: split-off parts (they hold identifiers of previous persons) or new
    has_prior = np.zeros(n_comp, dtype=bool)
    has_prior[labels[prior]] = True
    split_comps = np.flatnonzero(has_prior & (comp_survivor < 0))
    if len(split_comps):
        in_split = prior[np.isin(labels[prior], split_comps)]
        comps, anchor_row = _first_per_group(labels[in_split], home_key[in_split])
        anchor = in_split[anchor_row]
        comp_id[comps] = _hash_ids(
            "split|" + dt.date.fromordinal(_EPOCH_ORDINAL + today).isoformat() + "|"
            + g.prev_ids[g.prev_person[anchor]].astype(object) + "|",
            g.node_type[anchor], _take_str(g.node_value, anchor))
    new_comps = np.flatnonzero(~has_prior)
    if len(new_comps):
        comp_first = np.full(n_comp, np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(comp_first, labels, g.first_seen)
        nodes = np.flatnonzero(~has_prior[labels] & (g.first_seen == comp_first[labels]))
        natural = _hash_ids(np.full(len(nodes), "", dtype=object), g.node_type[nodes], _take_str(g.node_value, nodes))
        best = pd.Series(natural).groupby(labels[nodes]).min()
        comp_id[best.index.to_numpy()] = best.to_numpy(dtype=object)

    merges = _changes(g, labels, comp_id, persons, home_comp, absorbed, accepted, reason_code, prior, p_of, today)
    return _Ids(comp_id=comp_id, merges=merges)


def _changes(g: _Graph, labels: np.ndarray, comp_id: np.ndarray, persons: np.ndarray, home_comp: np.ndarray,
             absorbed: np.ndarray, accepted: np.ndarray, reason_code: np.ndarray, prior: np.ndarray,
             p_of: np.ndarray, today: int) -> pd.DataFrame:
    """The day's merges and splits with a reason naming the evidence that was added or withdrawn."""
    rows: list[pd.DataFrame] = []
    if absorbed.any():
        # evidence of a merge: links accepted today that were not accepted yesterday, by component
        fresh = accepted & ~g.link_was_accepted
        fresh_rules = pd.DataFrame({"comp": labels[g.link_a[fresh]], "rule": g.rules[g.link_rule[fresh]]})
        merge_comps = home_comp[absorbed]
        fresh_rules = fresh_rules[fresh_rules["comp"].isin(merge_comps)].drop_duplicates()
        reason = fresh_rules.sort_values(["comp", "rule"]).groupby("comp")["rule"].agg(", ".join)
        text = pd.Series(merge_comps).map(reason).fillna("links").to_numpy(dtype=object)
        rows.append(pd.DataFrame({"kind": "merge", "kept_person_id": comp_id[merge_comps],
                                  "other_person_id": g.prev_ids[persons[absorbed]],
                                  "reason": "joined by " + text}))
    # a split: a previous person's identifiers found in a component other than its home
    pc_pairs = pd.DataFrame({"person": p_of, "comp": labels[prior]}).drop_duplicates()
    home_of = pd.Series(home_comp, index=persons)
    moved = pc_pairs[pc_pairs["comp"].to_numpy() != home_of.reindex(pc_pairs["person"]).to_numpy()]
    if len(moved):
        # evidence withdrawn: yesterday's accepted links now refused (reason) or gone (CRM/fuzzy correction)
        names = np.array(_REFUSAL_REASONS, dtype=object)
        lost = g.link_was_accepted & ~accepted
        ra, rb = reason_code[g.link_a[lost]], reason_code[g.link_b[lost]]
        code = np.where(ra >= 0, ra, rb)
        why = np.where(code >= 0, names[np.maximum(code, 0)], _BELOW_MIN).astype(object)
        why = why + " " + g.rules[g.link_rule[lost]]
        ends = [(g.link_a[lost], why), (g.link_b[lost], why),
                (g.withdrawn_a, "withdrawn " + g.withdrawn_rule.astype(object)),
                (g.withdrawn_b, "withdrawn " + g.withdrawn_rule.astype(object))]
        evidence = pd.concat([pd.DataFrame({"person": g.prev_person[node], "why": text}) for node, text in ends],
                             ignore_index=True)
        evidence = evidence[evidence["person"] >= 0].drop_duplicates().sort_values(["person", "why"])
        why_by_person = evidence.groupby("person")["why"].agg(", ".join)
        text = moved["person"].map(why_by_person).fillna("links withdrawn").to_numpy(dtype=object)
        rows.append(pd.DataFrame({"kind": "split", "kept_person_id": g.prev_ids[moved["person"].to_numpy()],
                                  "other_person_id": comp_id[moved["comp"].to_numpy()],
                                  "reason": "evidence withdrawn: " + text}))
    if not rows:
        return _empty(IDENTITY_MERGES_SCHEMA)
    changes = pd.concat(rows, ignore_index=True)
    changes = changes.sort_values(["kind", "kept_person_id", "other_person_id"], kind="stable")
    return _frame({"change_date": np.full(len(changes), today, dtype=np.int32), "kind": changes["kind"].to_numpy(),
                   "kept_person_id": changes["kept_person_id"].to_numpy(),
                   "other_person_id": changes["other_person_id"].to_numpy(), "reason": changes["reason"].to_numpy()},
                  IDENTITY_MERGES_SCHEMA)


def _hash_ids(prefix: np.ndarray, types: np.ndarray, values: list[str]) -> np.ndarray:
    """`p_` + 16 hex of sha256(prefix + "type:value"); one hash per founding identifier (cannot vectorise)."""
    names = np.array(_TYPE_NAMES, dtype=object)[types]
    return np.array(
        ["p_" + hashlib.sha256(f"{p}{t}:{v}".encode()).hexdigest()[:16]
         for p, t, v in zip(prefix, names, values, strict=True)],
        dtype=object,
    )


# ---------------------------------------------------------------------------------------------------------------
# output frames


def _type_names(codes: np.ndarray) -> pa.Array:
    return pa.array(list(_TYPE_NAMES), _S).take(pa.array(codes, pa.int8()))


def _map_frame(g: _Graph, comp_id: pa.Array, labels: np.ndarray, refused: np.ndarray) -> pd.DataFrame:
    # nodes are numbered in (identifier_type, identifier) order: the map needs no sort
    return _frame({"identifier_type": _type_names(g.node_type), "identifier": g.node_value,
                   "person_id": comp_id.take(pa.array(labels)), "first_seen_date": g.first_seen,
                   "last_seen_date": g.last_seen, "is_refused": refused}, IDENTITY_MAP_SCHEMA)


def _link_state_frame(g: _Graph, accepted: np.ndarray, reason_code: np.ndarray,
                      config: IdentityConfig) -> pd.DataFrame:
    # links come out of _Graph.build grouped by (a, b, rule name): already in output order
    a, b = pa.array(g.link_a), pa.array(g.link_b)
    return _frame({"identifier_type_a": _type_names(g.node_type[g.link_a]), "identifier_a": g.node_value.take(a),
                   "identifier_type_b": _type_names(g.node_type[g.link_b]), "identifier_b": g.node_value.take(b),
                   "rule": pa.array(list(g.rules), _S).take(pa.array(g.link_rule)), "score": g.link_score,
                   "first_seen_date": g.link_first, "last_seen_date": g.link_last,
                   "link_origin": pa.array(list(_ORIGINS), _S).take(pa.array(g.link_origin)),
                   "is_accepted": accepted, "refusal_reason": _link_refusal(g, reason_code, config),
                   "node_a": g.link_a, "node_b": g.link_b}, LINK_STATE_SCHEMA)


def _rejections_frame(g: _Graph, refused: np.ndarray, reason_code: np.ndarray, count_cids: np.ndarray,
                      count_links: np.ndarray, today: int) -> pd.DataFrame:
    nodes = np.flatnonzero(refused)
    since = g.prev_rejected_first[nodes]
    return _frame({"identifier_type": _type_names(g.node_type[nodes]),
                   "identifier": g.node_value.take(pa.array(nodes, pa.int64())),
                   "reason": pa.array(list(_REFUSAL_REASONS), _S).take(pa.array(reason_code[nodes])),
                   "count_customer_ids": count_cids[nodes], "count_links": count_links[nodes],
                   "first_rejected_date": np.where(since >= 0, since, today).astype(np.int32),
                   "last_seen_date": g.last_seen[nodes]}, IDENTITY_REJECTIONS_SCHEMA)


# ---------------------------------------------------------------------------------------------------------------
# downstream helpers


def resolve_person_ids(person_ids: pd.Series, merges: pd.DataFrame) -> pd.Series:
    """Each stored person id through every merge in `merges` (IDENTITY_MERGES_SCHEMA rows, any days) to the
    final survivor; ids never absorbed come back unchanged, splits change nothing (the kept id lives on).

    The chain A->B, B->C is followed on the small mapping table by pointer jumping (each pass doubles the
    resolved length) until a fixed point; the rows are then looked up once.
    """
    m = merges.loc[merges["kind"].astype("string") == "merge"]
    if m.empty:
        return person_ids.copy()
    m = m.assign(_day=_days(m["change_date"])).sort_values(["_day", "kept_person_id"], kind="stable")
    m = m.drop_duplicates("other_person_id", keep="last")  # an id is absorbed once; be robust anyway
    mapping = pd.Series(m["kept_person_id"].astype("string").to_numpy(),
                        index=pd.Index(m["other_person_id"].astype("string").to_numpy()))
    for _ in range(len(mapping).bit_length() + 2):
        further = mapping.map(mapping)
        step = further.where(further.notna(), mapping)
        if step.equals(mapping):
            break
        mapping = step
    else:
        raise ValueError("identity_merges contains a cycle of merges")
    looked_up = person_ids.astype("string").map(mapping)
    return looked_up.where(looked_up.notna(), person_ids.astype("string"))


def attach_person_id(frame: pd.DataFrame, identity_map: pd.DataFrame) -> pd.Series:
    """The person of every row of `frame` (events, orders, CRM rows), vectorised; this is how downstream
    stages attach persons.

    A row's person is the person of its highest-priority identifier that is in the map and not refused, in
    the order customer_id > email_hash > phone_hash > device_id > anonymous_id (the customer record is the
    strongest evidence, a cookie the weakest). A row whose identifiers are all refused (a hub cookie alone)
    gets that refused identifier's singleton person, so no row is lost; a row with no identifier in the map
    gets <NA>. Identifiers of one accepted component all map to the same person, so the priority only
    matters for rows that carry refused identifiers.

    The lookups are Arrow hash joins (`index_in`), several times faster than pandas' `map`/`isin` on strings.
    """
    n = len(frame)
    chosen = np.full(n, -1, dtype=np.int64)  # row of identity_map that names the person
    spare = np.full(n, -1, dtype=np.int64)  # a refused identifier's row, when nothing else names one
    types = string_array(identity_map["identifier_type"])
    identifiers = string_array(identity_map["identifier"])
    refused_all = (identity_map["is_refused"].to_numpy(dtype=bool) if "is_refused" in identity_map.columns
                   else np.zeros(len(identity_map), dtype=bool))
    for name in IDENTIFIER_PRIORITY:
        column = IDENTIFIER_COLUMNS[name]
        if column not in frame.columns:
            continue
        rows = np.flatnonzero(pc.equal(types, name).fill_null(False).to_numpy(zero_copy_only=False))
        if not len(rows):
            continue
        position = pc.index_in(string_array(frame[column]), value_set=identifiers.take(pa.array(rows)))
        position = position.fill_null(-1).to_numpy(zero_copy_only=False)
        found = position >= 0
        row = np.where(found, rows[np.maximum(position, 0)], -1)
        is_refused = found & refused_all[np.maximum(row, 0)]
        take = found & ~is_refused & (chosen < 0)
        chosen[take] = row[take]
        fallback = found & is_refused & (spare < 0)
        spare[fallback] = row[fallback]
    final = np.where(chosen >= 0, chosen, spare)
    persons = identity_map["person_id"].to_numpy(dtype=object)
    result = np.where(final >= 0, persons[np.maximum(final, 0)] if len(persons) else None, None)
    return pd.Series(result, index=frame.index, dtype="string")


def explain_person(person_id: str, state: IdentityState, merges: pd.DataFrame | None = None) -> pd.DataFrame:
    """Why these identifiers are one person (IDENTITY_EXPLANATION_SCHEMA): the person's identifiers, then every
    link touching them — accepted links (rule, score, dates) that hold them together, and refused links
    with the refusal reason (placeholder, hub, cardinality, below_min_probability). With `merges`, an
    absorbed id is first resolved to its survivor.
    """
    if merges is not None:
        person_id = str(resolve_person_ids(pd.Series([person_id], dtype="string"), merges).iloc[0])
    idmap = state.map
    mine = idmap.loc[(idmap["person_id"].astype("string") == person_id).to_numpy()]
    key = lambda t, v: t.astype("string") + "\x1f" + v.astype("string")  # noqa: E731
    all_keys = key(idmap["identifier_type"], idmap["identifier"])
    person_of = pd.Series(idmap["person_id"].astype("string").to_numpy(), index=pd.Index(all_keys.to_numpy()))
    my_keys = set(key(mine["identifier_type"], mine["identifier"]).tolist())
    links = state.links
    ka, kb = key(links["identifier_type_a"], links["identifier_a"]), key(links["identifier_type_b"], links["identifier_b"])
    in_a, in_b = ka.isin(my_keys).to_numpy(), kb.isin(my_keys).to_numpy()
    touching = links.loc[in_a | in_b]
    # write each link from the person's side: the *_a columns are the person's identifier
    flip = ~in_a[in_a | in_b]
    cols = ("identifier_type", "identifier")
    side_a = {c: np.where(flip, touching[f"{c}_b"].to_numpy(dtype=object), touching[f"{c}_a"].to_numpy(dtype=object))
              for c in cols}
    side_b = {c: np.where(flip, touching[f"{c}_a"].to_numpy(dtype=object), touching[f"{c}_b"].to_numpy(dtype=object))
              for c in cols}
    other_key = pd.Series(side_b["identifier_type"], dtype="string") + "\x1f" + pd.Series(side_b["identifier"],
                                                                                          dtype="string")
    link_rows = pd.DataFrame({
        "row_kind": "link", "identifier_type_a": side_a["identifier_type"], "identifier_a": side_a["identifier"],
        "identifier_type_b": side_b["identifier_type"], "identifier_b": side_b["identifier"],
        "person_id_b": other_key.map(person_of).to_numpy(dtype=object),
        "rule": touching["rule"].to_numpy(dtype=object), "score": touching["score"].to_numpy(dtype="float64"),
        "first_seen_date": _days(touching["first_seen_date"]), "last_seen_date": _days(touching["last_seen_date"]),
        "is_accepted": touching["is_accepted"].to_numpy(dtype=bool),
        "refusal_reason": touching["refusal_reason"].to_numpy(dtype=object),
    })
    ident_rows = pd.DataFrame({
        "row_kind": "identifier", "identifier_type_a": mine["identifier_type"].to_numpy(dtype=object),
        "identifier_a": mine["identifier"].to_numpy(dtype=object), "identifier_type_b": None, "identifier_b": None,
        "person_id_b": None, "rule": None, "score": np.nan,
        "first_seen_date": _days(mine["first_seen_date"]), "last_seen_date": _days(mine["last_seen_date"]),
        "is_accepted": None, "refusal_reason": None,
    })
    rows = pd.concat([ident_rows, link_rows], ignore_index=True)
    rows["_k"] = (rows["row_kind"] == "link").astype(int)
    rows = rows.sort_values(["_k", "identifier_type_a", "identifier_a", "identifier_type_b", "identifier_b", "rule"],
                            kind="stable", na_position="first")
    return _frame({c: rows[c].to_numpy() for c in IDENTITY_EXPLANATION_SCHEMA.names}, IDENTITY_EXPLANATION_SCHEMA)


def pairwise_identifier_scores(identity_map: pd.DataFrame, truth: pd.DataFrame,
                               links: pd.DataFrame | None = None) -> dict[str, float]:
    """Precision, recall and F1 of "these two identifiers are one person" against the generator's truth.

    `truth`: identifier_type, identifier (in the map's form: email/phone hashed), true_person_id, is_shared,
    is_placeholder. Identifiers the truth marks shared or placeholder are left out (they belong to no single
    person), and so are truth identifiers never seen in the data (reported as `count_identifiers_unseen`).
    Pair counts come from cluster sizes (n*(n-1)/2), never from enumerating pairs.

    With `links` (the links state: every candidate link, accepted or not), also the *reachable* scores: a true
    pair is reachable when some chain of observed links joins the two identifiers without passing through
    an identifier the truth marks shared or placeholder. A cookie that never met another identifier cannot
    be stitched by any method, so `recall_reachable` / `f1_reachable` measure what the engine loses (guards,
    missing fuzzy links) rather than what the data never showed.
    """
    bad = (truth["is_shared"].astype(bool) | truth["is_placeholder"].astype(bool)).to_numpy()
    clean = truth.loc[~bad].drop_duplicates(["identifier_type", "identifier"])

    def key(types: pd.Series, values: pd.Series) -> np.ndarray:
        return (types.astype("string") + "\x1f" + values.astype("string")).to_numpy(dtype=object)

    left = pd.DataFrame({"k": key(clean["identifier_type"], clean["identifier"]),
                         "truth": clean["true_person_id"].astype("string").to_numpy()})
    right = pd.DataFrame({"k": key(identity_map["identifier_type"], identity_map["identifier"]),
                          "pred": identity_map["person_id"].astype("string").to_numpy()})
    joined = left.merge(right, on="k", how="inner")

    def pairs(frame: pd.DataFrame, *cols: str) -> int:
        sizes = frame.groupby(list(cols)).size().to_numpy(dtype=np.int64)
        return int((sizes * (sizes - 1) // 2).sum())

    true_pairs, pred_pairs, both = pairs(joined, "truth"), pairs(joined, "pred"), pairs(joined, "truth", "pred")
    precision = both / pred_pairs if pred_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    out: dict[str, float] = {
        "precision": precision, "recall": recall, "f1": _f1(precision, recall), "count_true_pairs": true_pairs,
        "count_predicted_pairs": pred_pairs, "count_true_positive_pairs": both,
        "count_identifiers_evaluated": len(joined), "count_identifiers_unseen": len(left) - len(joined),
        "count_true_persons": int(joined["truth"].nunique()), "count_predicted_persons": int(joined["pred"].nunique()),
    }
    if links is not None:
        excluded = set(key(truth.loc[bad, "identifier_type"], truth.loc[bad, "identifier"]).tolist())
        ka = key(links["identifier_type_a"], links["identifier_a"])
        kb = key(links["identifier_type_b"], links["identifier_b"])
        usable = ~(pd.Series(ka).isin(excluded).to_numpy() | pd.Series(kb).isin(excluded).to_numpy())
        codes, uniques = pd.factorize(np.concatenate([joined["k"].to_numpy(dtype=object), ka[usable], kb[usable]]))
        n, m = len(uniques), int(usable.sum())
        start = len(joined)
        _, comp = _components(n, codes[start:start + m].astype(np.int64), codes[start + m:].astype(np.int64))
        joined = joined.assign(evidence=comp[codes[:start]])
        reachable = pairs(joined, "truth", "evidence")
        recall_reachable = both / reachable if reachable else 1.0
        out |= {"count_reachable_pairs": reachable, "recall_reachable": recall_reachable,
                "f1_reachable": _f1(precision, recall_reachable)}
    return out


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ---------------------------------------------------------------------------------------------------------------
# small helpers

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _day_number(day: dt.date) -> int:
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
    return day.toordinal() - _EPOCH_ORDINAL


def _days(values: pd.Series | np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (int32) of dates however they arrive (date objects, datetime64, Arrow date32)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int32)
    if isinstance(values, pd.Series) and values.dtype.kind in "iu":
        return values.to_numpy(np.int32)
    arr = pa.array(values, from_pandas=True)
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp(arr.type.unit)) if arr.type.tz else arr
        arr = pc.cast(arr, _D)
    elif not pa.types.is_date32(arr.type):
        arr = pc.cast(arr, _D)
    if arr.null_count:
        raise ValueError("identity dates must not be missing")
    return arr.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def _type_codes(types: pd.Series) -> np.ndarray:
    arr = _large_str(types) if len(types) else pa.array([], pa.large_string())
    codes = pc.index_in(arr, value_set=pa.array(list(_TYPE_NAMES), pa.large_string()))
    if codes.null_count:
        bad = sorted(set(pc.filter(arr, pc.is_null(codes)).to_pylist()))
        raise ValueError(f"unknown identifier types {bad}; expected {list(IDENTIFIER_PRIORITY)}")
    return codes.to_numpy(zero_copy_only=False).astype(np.int8)


def _large_str(values: pd.Series) -> pa.Array:
    arr = pa.array(values, from_pandas=True) if len(values) else pa.array([], pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    if arr.null_count:
        raise ValueError("identifiers must not be missing")
    return arr


@dataclass(frozen=True)
class _Encoded:
    n: int
    node_type: np.ndarray  # int8 per node, nodes in (type, value) order
    node_value: pa.Array  # large_string per node
    map_node: np.ndarray  # node of each previous map row
    other_codes: list[np.ndarray]  # node of each occurrence, per input piece


_DIGITS = pa.array([str(i) for i in range(len(_TYPE_NAMES))], pa.large_string())


def _encode(map_types: np.ndarray, map_values: pa.Array, types: list[np.ndarray], values: list[pa.Array]) -> _Encoded:
    """Integer nodes for yesterday's map rows (sorted, distinct) and today's identifier occurrences.

    Today's occurrences are deduplicated with one Arrow hash pass over "type digit + value"; the distinct ones
    are sorted and located in the sorted map by binary search (no hash table over the whole map). Nodes are
    numbered in (identifier_type, identifier) order, so node order is the output sort order.
    """
    m = len(map_values)
    sizes = np.cumsum([0] + [len(t) for t in types])
    t_all = np.concatenate(types) if types else np.zeros(0, dtype=np.int8)
    v_all = pa.concat_arrays(values) if values else pa.array([], pa.large_string())
    keys = pc.binary_join_element_wise(_DIGITS.take(pa.array(t_all, pa.int8())), v_all,
                                       pa.scalar("", pa.large_string()))
    encoded = keys.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    u_keys = encoded.dictionary
    u_type = pc.cast(pc.utf8_slice_codeunits(u_keys, 0, 1), pa.int8()).to_numpy(zero_copy_only=False)
    u_value = pc.utf8_slice_codeunits(u_keys, 1)
    u_obj = u_value.to_numpy(zero_copy_only=False)
    map_obj = map_values.to_numpy(zero_copy_only=False)
    bounds = np.searchsorted(map_types, np.arange(len(_TYPE_NAMES) + 1))  # map rows of each type

    u_map_row = np.full(len(u_keys), -1, dtype=np.int64)  # the map row of a known identifier
    new_u: list[np.ndarray] = []  # distinct new identifiers, sorted by (type, value)
    new_at: list[np.ndarray] = []  # the map row each is inserted before
    for code in range(len(_TYPE_NAMES)):
        idx = np.flatnonzero(u_type == code)
        if not len(idx):
            continue
        idx = idx[np.argsort(u_obj[idx], kind="stable")]
        lo, hi = bounds[code], bounds[code + 1]
        sorted_slice = map_obj[lo:hi]
        pos = np.searchsorted(sorted_slice, u_obj[idx])
        found = pos < len(sorted_slice)
        found[found] = sorted_slice[pos[found]] == u_obj[idx[found]]
        u_map_row[idx[found]] = lo + pos[found]
        new_u.append(idx[~found])
        new_at.append(lo + pos[~found])
    new_idx = np.concatenate(new_u) if new_u else np.zeros(0, dtype=np.int64)
    insert_at = np.concatenate(new_at) if new_at else np.zeros(0, dtype=np.int64)  # non-decreasing
    k = len(new_idx)
    new_node = insert_at + np.arange(k)
    map_node = np.arange(m) + np.searchsorted(insert_at, np.arange(m), side="right")

    u_node = np.empty(len(u_keys), dtype=np.int64)
    known = u_map_row >= 0
    u_node[known] = map_node[u_map_row[known]]
    u_node[new_idx] = new_node
    n = m + k
    node_type = np.empty(n, dtype=np.int8)
    node_type[map_node] = map_types
    node_type[new_node] = u_type[new_idx]
    source = np.empty(n, dtype=np.int64)  # node -> row of concat(map values, new values)
    source[map_node] = np.arange(m)
    source[new_node] = m + np.arange(k)
    node_value = pa.concat_arrays([map_values, u_value.take(pa.array(new_idx, pa.int64()))]).take(pa.array(source))
    other = u_node[codes]
    return _Encoded(n=n, node_type=node_type, node_value=node_value, map_node=map_node,
                    other_codes=[other[sizes[i]:sizes[i + 1]] for i in range(len(types))])


def _take_str(values: pa.Array, idx: np.ndarray) -> list[str]:
    return values.take(pa.array(idx, pa.int64())).to_pylist()


def _arrow_column(values: Any, type_: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(type_)
    if pa.types.is_date32(type_):
        return pa.array(np.asarray(values, dtype=np.int32), pa.int32()).cast(type_)
    return pa.array(values, type=type_, from_pandas=True)


def _frame(columns: Mapping[str, Any], schema: pa.Schema) -> pd.DataFrame:
    """A pandas frame with exactly `schema`'s columns; dates as Arrow date32, text as pandas strings."""
    n = max((len(v) for v in columns.values() if not isinstance(v, str | float | int) and v is not None), default=0)
    arrays = []
    for f in schema:
        v = columns[f.name]
        if isinstance(v, str) or v is None:
            v = np.full(n, v, dtype=object)
        arrays.append(_arrow_column(v, f.type))
    return _to_pandas(pa.Table.from_arrays(arrays, schema=schema))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={_D: pd.ArrowDtype(_D)}.get)


def _empty(schema: pa.Schema) -> pd.DataFrame:
    return _to_pandas(schema.empty_table())


def _concat(frames: list[pd.DataFrame], schema: pa.Schema) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty(schema)
    return _to_pandas(pa.concat_tables([pa.Table.from_pandas(f[schema.names], schema=schema, preserve_index=False)
                                        for f in frames]))
