"""Fuzzy matching of CRM customer records that are the same human registered twice (Dagster-free).

One row per accepted pair of customer records comes out of `match_profiles`; the identity graph turns the
pairs into links with their score and rule (docs/identity.md, "Fuzzy links"). It reads the restricted profile
table (`PROFILE_SCHEMA`: clear names, birth date, address, normalised email and E.164 phone) and writes only
ids, numbers and comparison levels (docs/inputs.md section 4).

The model: Fellegi–Sunter, the way Splink does it
---------------------------------------------------

1. **Normalisation** (pandas string ops on the distinct values only): names lower-cased, transliterated
   (ß -> ss, æ -> ae, ...), accents stripped (Unicode NFKD without combining marks), every run of punctuation,
   hyphens and spaces folded away, so "José  Núñez-García" and "jose nunez garcia" give the same keys.
   Addresses are folded the same way with common abbreviations spelled out (st -> street, ...); postcodes are
   upper-cased without blanks; the email local part loses a "+tag". Placeholders (configured emails, local
   parts, phones, birth dates, names) and "hub" contact values shared by more than
   `max_records_per_contact_value` records are treated as *missing*: they carry no information and never
   join two people.

2. **Blocking** (`BLOCKING_RULES`, OR-ed, pairs de-duplicated): same birth date; same postcode and first
   letter of the last name; same email local part; same phone; same (first, last) name in either order; same
   Soundex code of the last name and birth year; same folded address line and first initial; same address
   line and city; same first name and postcode. A block (one key value) holding more than `max_block_size`
   records is skipped for that rule (a common name or an unlisted placeholder would otherwise make the
   comparison count quadratic); the other rules still see those records. With `candidates`, only pairs with
   at least one candidate are generated (cost ~ candidates x block sizes); block sizes are always measured on
   the whole profile table so an incremental call sees the same blocks as a from-scratch one.

3. **Comparisons** (`COMPARISONS`): each pair gets one level per comparison; -1 means "no information"
   (a value missing on either side) and contributes a Bayes factor of 1.

   ====================  =============================================================================
   gamma_name            6 exact first and last | 5 first/last swapped (JW >= high on both)
                         | 4 JW >= high on both parts | 3 JW >= low on both | 2 first name only (exact
                         or JW >= high) | 1 last name only (exact or JW >= high) | 0 else. One part missing
                         on either side: 2 / 1 when the other part is exact, else no information
   gamma_date_of_birth   2 exact | 1 day/month transposed or one of year/month/day different | 0 else
   gamma_email           3 exact address | 2 exact local part | 1 local part JW >= threshold with the same
                         digits (james.king4305 / james.king1234 are two James Kings) | 0 else
   gamma_phone           2 exact | 1 same last 7 digits | 0 else
   gamma_address         3 same postcode, same house numbers and address token-set ratio >= threshold
                         | 2 same postcode
                         | 1 same city | 0 else
   ====================  =============================================================================

   (JW = Jaro–Winkler of the folded strings, thresholds from `name_jaro_winkler_thresholds`.) Similarities
   are computed with `rapidfuzz.process.cpdist` on the distinct value pairs, never in a per-pair loop.

4. **Parameters.**
   - u (probability of a level among non-matching pairs): counted on `u_sample_pairs` random pairs of the
     whole table (fixed `seed`; all pairs when there are fewer), with a floor of `u_minimum_count` pairs so a
     level never seen at random still has a finite weight.
   - Term frequencies: the exact-name level uses the frequency of the (first, last) name, the swapped level
     that of the name in either order, the first-name-only and last-name-only levels the larger frequency of
     the two records' first resp. last names (a typo is rare, the name it misspells is not), the address levels that of the
     (postcode, address), postcode and city; for those levels u is replaced by the value's frequency in the
     whole table (Splink's TF adjustment: Bayes factor m / tf), so "John Smith" weighs less than a rare name.
   - m (probability of a level among matches): priors (`_Comparison.m_prior`) refined by EM on the blocked
     pairs touching a fixed sample of `em_sample_records` records (chosen by a hash of customer_id, so the
     sample, and therefore the model, depends only on the profile table, not on `candidates`). As in Splink,
     u stays fixed during EM; EM starts from the blocked pairs split by majority (a pair with the top level on
     more than half of its comparable comparisons is a match); the M-step is a MAP estimate with `em_prior_strength` pseudo-matches drawn from
     the priors, so a level that the sample never shows among matches keeps a small, non-zero m.
   - lambda (probability that two random records match): `probability_two_random_records_match`, or EM's
     share of matches among the sampled blocked pairs times (blocked pairs / all pairs) touching the sample.

5. **Score**: match_weight = log2(lambda / (1 - lambda)) + sum of log2(m / u) over the comparisons (Splink's
   match weight: the log2 posterior odds); match_probability = 2^w / (1 + 2^w).

6. **Acceptance**: match_probability >= `threshold`, and (with `require_name_agreement`) the names agree at
   least fuzzily (level >= 3), are missing (wholly or one part), or the first name agrees with an exact email
   local part or phone (a changed surname), or neither email nor phone is comparable on the pair (then nothing
   tells a household member from a replaced first name, and the score decides). Why the gate: Fellegi–Sunter assumes the comparisons independent given the class, which
   twins and households break: same surname, birth date and address multiply into overwhelming evidence
   although a different first name says "another human". EM would even learn households as matches. A
   different first name therefore vetoes the merge unless contact details say it is the same person, or there
   are no contact details to ask (FEBRL-style data, where replaced first names are typing errors).

`pairwise_scores` measures a result against ground truth: pairs of records inside the connected components of
the predicted links vs pairs of records of the same true person.
"""

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from rapidfuzz import fuzz, process
from rapidfuzz.distance import JaroWinkler
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)

__all__ = [
    "BLOCKING_RULES",
    "COMPARISONS",
    "MATCH_RULE",
    "MATCH_SCHEMA",
    "MatchingConfig",
    "match_profiles",
    "pairwise_scores",
]

MATCH_RULE = "fuzzy_profile"

# ---------------------------------------------------------------------------------------------------------------
# comparisons (levels, priors)


@dataclass(frozen=True)
class _Comparison:
    """One comparison of the model: its output column, its levels (index = gamma value) and m priors."""

    name: str
    levels: tuple[str, ...]
    # prior m per level (sum 1): what a true duplicate pair looks like before EM has seen the data
    m_prior: tuple[float, ...]

    @property
    def column(self) -> str:
        return f"gamma_{self.name}"


NAME, DOB, EMAIL, PHONE, ADDRESS = range(5)

# name levels
N_ELSE, N_LAST_ONLY, N_FIRST_ONLY, N_FUZZY_LOW, N_FUZZY_HIGH, N_SWAPPED, N_EXACT = range(7)
# email levels
E_ELSE, E_LOCAL_FUZZY, E_LOCAL_EXACT, E_EXACT = range(4)
# phone levels
P_ELSE, P_SUFFIX, P_EXACT = range(3)
# address levels
A_ELSE, A_CITY, A_POSTCODE, A_POSTCODE_ADDRESS = range(4)

COMPARISONS: tuple[_Comparison, ...] = (
    _Comparison(
        "name",
        ("else", "exact_last_name_only", "exact_first_name_only", "jaro_winkler_low", "jaro_winkler_high",
         "first_last_swapped", "exact"),
        (0.005, 0.01, 0.01, 0.02, 0.06, 0.025, 0.87),
    ),
    _Comparison("date_of_birth", ("else", "transposed_or_one_part_different", "exact"), (0.02, 0.04, 0.94)),
    _Comparison("email", ("else", "local_part_jaro_winkler", "exact_local_part", "exact"), (0.3, 0.03, 0.03, 0.64)),
    _Comparison("phone", ("else", "same_last_digits", "exact"), (0.2, 0.02, 0.78)),
    _Comparison("address", ("else", "same_city", "same_postcode", "same_postcode_and_address"),
                (0.15, 0.05, 0.05, 0.75)),
)

# One row per accepted pair (customer_id_a < customer_id_b). No clear PII: ids, scores and levels only.
MATCH_SCHEMA = pa.schema(
    [
        pa.field("customer_id_a", pa.string(), nullable=False),
        pa.field("customer_id_b", pa.string(), nullable=False),
        pa.field("match_probability", pa.float64(), nullable=False),
        pa.field("match_weight", pa.float64(), nullable=False),
        *(pa.field(c.column, pa.int8(), nullable=False) for c in COMPARISONS),
        pa.field("rule", pa.string(), nullable=False),
    ]
)

BLOCKING_RULES: tuple[str, ...] = (
    "date_of_birth",
    "postcode_and_last_name_initial",
    "email_local_part",
    "phone",
    "full_name_either_order",
    "last_name_soundex_and_birth_year",
    "address_line_and_first_initial",
    "address_line_and_city",
    "first_name_and_postcode",
)


# ---------------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class MatchingConfig:
    """Settings of the fuzzy matcher; every field is named after what it controls (see the module docstring)."""

    # accept a pair at or above this posterior probability
    threshold: float = 0.95
    # a blocking key value shared by more records than this is skipped for that rule
    max_block_size: int = 200
    blocking_rules: tuple[str, ...] = BLOCKING_RULES
    # (high, low) Jaro-Winkler thresholds of the two fuzzy name levels
    name_jaro_winkler_thresholds: tuple[float, float] = (0.92, 0.85)
    email_local_part_jaro_winkler_threshold: float = 0.9
    # rapidfuzz token_set_ratio / 100 of the folded address lines within one postcode
    address_token_set_threshold: float = 0.85
    phone_last_digits: int = 7
    placeholder_emails: tuple[str, ...] = (
        "test@test.com", "noemail@example.com", "no@email.com", "none@none.com", "email@email.com",
    )
    # an email whose local part is one of these is a placeholder whatever its domain (noemail@shop.com)
    placeholder_email_local_parts: tuple[str, ...] = (
        "noemail", "no.email", "no-email", "no_email", "nomail", "none", "test", "noreply", "no-reply",
        "unknown", "na", "n/a", "null", "xxx",
    )
    placeholder_phones: tuple[str, ...] = ("+10000000000", "+11111111111", "+11234567890", "+19999999999")
    placeholder_birth_dates: tuple[dt.date, ...] = (dt.date(1900, 1, 1), dt.date(1901, 1, 1), dt.date(1970, 1, 1))
    # folded name keys that are no name
    placeholder_names: tuple[str, ...] = ("test", "unknown", "na", "none", "null", "xxx", "asdf", "noname")
    # an email, email local part or phone on more records than this is a hub (shared office / family value):
    # treated as missing, so it neither blocks nor counts as evidence (docs/identity.md "Guards")
    max_records_per_contact_value: int = 5
    # veto pairs whose first names disagree (twins, households) unless email or phone agree; see docstring
    require_name_agreement: bool = True
    em_iterations: int = 25
    em_convergence_tolerance: float = 1e-5
    # pseudo-matches from the m priors in EM's M-step (MAP): keeps unseen levels possible, damps small samples
    em_prior_strength: float = 20.0
    # EM runs on the blocked pairs touching this many records (a hash sample of customer_id; all if fewer)
    em_sample_records: int = 5_000
    u_sample_pairs: int = 500_000
    # a level seen fewer times than this among the random pairs is counted this many times (finite weight)
    u_minimum_count: float = 1.0
    # lambda; None = estimated by EM on the blocked pairs
    probability_two_random_records_match: float | None = None
    seed: int = 42
    # rapidfuzz threads (-1 = all cores)
    workers: int = -1

    def __post_init__(self) -> None:
        high, low = self.name_jaro_winkler_thresholds
        if not 0.0 < low <= high <= 1.0:
            raise ValueError("name_jaro_winkler_thresholds must be (high, low) with 0 < low <= high <= 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be within 0..1")
        if self.max_block_size < 2:
            raise ValueError("max_block_size must be at least 2")
        unknown = set(self.blocking_rules) - set(BLOCKING_RULES)
        if unknown:
            raise ValueError(f"unknown blocking rules {sorted(unknown)}; expected some of {BLOCKING_RULES}")
        lam = self.probability_two_random_records_match
        if lam is not None and not 0.0 < lam < 1.0:
            raise ValueError("probability_two_random_records_match must be within (0, 1)")
        if self.em_sample_records < 2 or self.u_sample_pairs < 1 or self.em_prior_strength < 0:
            raise ValueError("em_sample_records >= 2, u_sample_pairs >= 1 and em_prior_strength >= 0 required")


# ---------------------------------------------------------------------------------------------------------------
# normalisation (vectorised over the distinct values)

_TRANSLITERATE = str.maketrans(
    {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
_ADDRESS_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "st": "street", "str": "strasse", "rd": "road", "ave": "avenue", "av": "avenue", "ln": "lane",
        "dr": "drive", "blvd": "boulevard", "sq": "square", "pl": "place", "ct": "court", "hwy": "highway",
    }
)


def _on_distinct(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """`fn` applied to the distinct non-null values only (names repeat a lot), mapped back; None = missing."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    mapped = fn(pd.Series(np.asarray(uniques, dtype=object), dtype=object)).astype(object)
    out = np.asarray(mapped.where(mapped.notna(), None).to_numpy(dtype=object), dtype=object)
    result = np.full(len(values), None, dtype=object)
    ok = codes >= 0
    result[ok] = out[codes[ok]]
    return result


def _fold(values: pd.Series) -> pd.Series:
    """Lower case, transliterated, accents stripped, punctuation/hyphens/blanks folded to single spaces."""
    s = values.astype(object).str.strip().str.lower().str.translate(_TRANSLITERATE)
    s = s.str.normalize("NFKD").str.replace(r"[\u0300-\u036f]", "", regex=True)
    s = s.str.replace(r"[\W_]+", " ", regex=True).str.strip()
    return s.where(s.str.len() > 0)


def _name_key(values: pd.Series) -> pd.Series:
    folded = _fold(values)
    return folded.str.replace(" ", "", regex=False)


def _address_key(values: pd.Series) -> pd.Series:
    folded = _fold(values)
    # "Bahnhofstr." -> "bahnhofstrasse"; then standalone abbreviations
    folded = folded.str.replace(r"(\w)str\b", r"\1strasse", regex=True)
    pattern = r"\b(" + "|".join(_ADDRESS_WORDS) + r")\b"
    return folded.str.replace(pattern, lambda m: _ADDRESS_WORDS[m.group(1)], regex=True)


def _postcode_key(values: pd.Series) -> pd.Series:
    s = values.astype(object).str.upper().str.replace(r"[^0-9A-Z]", "", regex=True)
    return s.where(s.str.len() > 0)


_SOUNDEX = str.maketrans(
    {**dict.fromkeys("bfpv", "1"), **dict.fromkeys("cgjkqsxz", "2"), **dict.fromkeys("dt", "3"), "l": "4",
     **dict.fromkeys("mn", "5"), "r": "6", **dict.fromkeys("aeiouy", "0"), "h": "", "w": ""}
)


def _soundex(keys: pd.Series) -> pd.Series:
    """American Soundex of folded name keys (letter + 3 digits), vectorised with translate/regex.

    The first letter keeps a position ('9') so that h/w, removed elsewhere, cannot shift the code; runs of one
    digit collapse (vowels, coded 0, separate runs and are dropped afterwards). Non-Latin keys keep their
    non-coded characters, which only makes the key stricter.
    """
    first = keys.str[0]
    coded = first.str.translate(_SOUNDEX).replace("", "9") + keys.str[1:].str.translate(_SOUNDEX)
    collapsed = coded.str.replace(r"(\d)\1+", r"\1", regex=True)
    tail = collapsed.str[1:].str.replace("0", "", regex=False).str.pad(3, side="right", fillchar="0").str[:3]
    return first + tail


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = missing) sorted by value, so they do not depend on row order, and the vocabulary."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=True, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _int_codes(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Dense codes 0..k-1 of the valid int64 values in sorted order; -1 where not valid."""
    out = np.full(len(values), -1, dtype=np.int64)
    if valid.any():
        _, out[valid] = np.unique(values[valid], return_inverse=True)
    return out


def _null_hubs(codes: np.ndarray, max_records: int) -> np.ndarray:
    """Codes of values on more than `max_records` records set to missing (hub / unlisted placeholder)."""
    if not (codes >= 0).any():
        return codes
    counts = np.bincount(codes[codes >= 0], minlength=int(codes.max()) + 1)
    out = codes.copy()
    ok = out >= 0
    out[ok & (counts[np.where(ok, out, 0)] > max_records)] = -1
    return out


def _term_frequency(codes: np.ndarray, size: int) -> np.ndarray:
    """Share of the non-missing records holding each code (Splink's term frequency)."""
    present = codes[codes >= 0]
    counts = np.bincount(present, minlength=size).astype(np.float64)
    return counts / max(len(present), 1)


@dataclass(frozen=True)
class _Features:
    """Normalised profile features as integer codes (-1 = missing) in customer_id order, plus vocabularies."""

    customer_id: np.ndarray
    first: np.ndarray  # codes into name_vocab (shared by first and last names: swaps compare directly)
    last: np.ndarray
    name_vocab: np.ndarray
    full_name: np.ndarray  # code of the (first, last) pair, for term frequencies
    name_either_order: np.ndarray  # code of the unordered {first, last} pair
    dob: np.ndarray  # code of the date (ordered like the dates)
    dob_year: np.ndarray
    dob_month: np.ndarray
    dob_day: np.ndarray
    email: np.ndarray
    local: np.ndarray
    local_vocab: np.ndarray
    local_digits: np.ndarray  # code of the digits in the local part ("" included)
    phone: np.ndarray
    phone_suffix: np.ndarray
    postcode: np.ndarray
    city: np.ndarray
    address: np.ndarray
    address_vocab: np.ndarray
    address_numbers: np.ndarray  # code of the numbers in the address line ("" included)
    postcode_address: np.ndarray
    soundex: np.ndarray  # of the last name
    initial: np.ndarray  # first letter of the last name
    first_initial: np.ndarray  # first letter of the first name
    tf: Mapping[str, np.ndarray]

    @property
    def size(self) -> int:
        return len(self.customer_id)


def _features(profiles: pd.DataFrame, config: MatchingConfig) -> _Features:
    """Normalise the profile table (sorted by customer_id) into codes; placeholders and hubs become missing."""
    ids = profiles["customer_id"].astype(object).to_numpy()
    n = len(ids)
    placeholder_names = set(config.placeholder_names)

    def clean_name(col: str) -> np.ndarray:
        keys = _on_distinct(profiles[col], _name_key)
        return np.where(np.isin(keys, list(placeholder_names)), None, keys) if n else keys

    first_key, last_key = clean_name("first_name"), clean_name("last_name")
    name_codes, name_vocab = _codes(np.concatenate([first_key, last_key]))
    first, last = name_codes[:n], name_codes[n:]
    both = (first >= 0) & (last >= 0)
    full_name = _int_codes(first * (len(name_vocab) + 1) + last, both)
    either_order = _int_codes(np.minimum(first, last) * (len(name_vocab) + 1) + np.maximum(first, last), both)

    # date of birth: placeholders and impossible years are missing
    dob = pd.to_datetime(profiles["date_of_birth"].astype(object), errors="coerce")
    placeholder_dates = pd.to_datetime(pd.Series(list(config.placeholder_birth_dates), dtype=object))
    bad = dob.isna() | dob.dt.normalize().isin(placeholder_dates) | (dob.dt.year < 1900)
    days = dob.to_numpy(dtype="datetime64[D]", na_value=np.datetime64("NaT")).view("int64")
    dob_codes = _int_codes(days, ~np.asarray(bad))  # dense codes: days before 1970 are negative numbers
    dob_year = np.where(bad, 0, dob.dt.year.fillna(0).to_numpy()).astype(np.int32)
    dob_month = np.where(bad, 0, dob.dt.month.fillna(0).to_numpy()).astype(np.int32)
    dob_day = np.where(bad, 0, dob.dt.day.fillna(0).to_numpy()).astype(np.int32)

    # email: placeholders (listed addresses or local parts) and hubs are missing
    email = _on_distinct(profiles["email"], lambda s: s.str.strip().str.lower().where(s.str.contains("@")))
    local = _on_distinct(
        pd.Series(email, dtype=object), lambda s: s.str.split("@").str[0].str.replace(r"\+.*$", "", regex=True)
    )
    is_placeholder = np.isin(email, list(config.placeholder_emails)) | np.isin(
        local, list(config.placeholder_email_local_parts)
    )
    email = np.where(is_placeholder, None, email)
    local = np.where(is_placeholder | (local == ""), None, local)
    email_codes = _null_hubs(_codes(email)[0], config.max_records_per_contact_value)
    local_codes, local_vocab = _codes(local)
    local_codes = _null_hubs(np.where(email_codes >= 0, local_codes, -1), config.max_records_per_contact_value)
    local_digits, _ = _codes(_on_distinct(pd.Series(local, dtype=object), lambda s: s.str.replace(r"\D", "", regex=True)))

    # phone (E.164): listed placeholders, a run of one digit (+1 555 000 0000) and hubs are missing
    phone = _on_distinct(profiles["phone"], lambda s: s.str.replace(r"[^\d+]", "", regex=True))
    digits = _on_distinct(pd.Series(phone, dtype=object), lambda s: s.str.replace("+", "", regex=False))
    fake = _on_distinct(
        pd.Series(digits, dtype=object),
        lambda s: s.str.fullmatch(r".*(\d)\1{6}|.*1234567") | (s.str.len() < config.phone_last_digits),
    )
    phone = np.where(np.isin(phone, list(config.placeholder_phones)) | (fake == True), None, phone)  # noqa: E712
    phone_codes = _null_hubs(_codes(phone)[0], config.max_records_per_contact_value)
    suffix = _on_distinct(pd.Series(phone, dtype=object), lambda s: s.str[-config.phone_last_digits :])
    suffix_codes = np.where(phone_codes >= 0, _codes(suffix)[0], -1)

    postcode_codes, _ = _codes(_on_distinct(profiles["postcode"], _postcode_key))
    city_codes, _ = _codes(_on_distinct(profiles["city"], _fold))
    address_key = _on_distinct(profiles["address_line"], _address_key)
    address_codes, address_vocab = _codes(address_key)
    numbers, _ = _codes(
        _on_distinct(pd.Series(address_key, dtype=object), lambda s: s.str.findall(r"\d+").str.join(" "))
    )
    pc_addr_codes = _int_codes(
        postcode_codes * (len(address_vocab) + 1) + address_codes, (postcode_codes >= 0) & (address_codes >= 0)
    )

    soundex_codes, _ = _codes(_on_distinct(pd.Series(last_key, dtype=object), _soundex))
    initial_codes, _ = _codes(_on_distinct(pd.Series(last_key, dtype=object), lambda s: s.str[0]))
    first_initial_codes, _ = _codes(_on_distinct(pd.Series(first_key, dtype=object), lambda s: s.str[0]))

    def tf(codes: np.ndarray) -> np.ndarray:
        # at least one slot: lookups use max(code, 0) and only read it where the value is present
        return _term_frequency(codes, max(int(codes.max()) + 1 if len(codes) else 0, 1))

    return _Features(
        customer_id=ids,
        first=first,
        last=last,
        name_vocab=name_vocab,
        full_name=full_name,
        name_either_order=either_order,
        dob=dob_codes,
        dob_year=dob_year,
        dob_month=dob_month,
        dob_day=dob_day,
        email=email_codes,
        local=local_codes,
        local_vocab=local_vocab,
        local_digits=local_digits,
        phone=phone_codes,
        phone_suffix=suffix_codes,
        postcode=postcode_codes,
        city=city_codes,
        address=address_codes,
        address_vocab=address_vocab,
        address_numbers=numbers,
        postcode_address=pc_addr_codes,
        soundex=soundex_codes,
        initial=initial_codes,
        first_initial=first_initial_codes,
        tf=MappingProxyType(
            {
                "first": tf(first),
                "last": tf(last),
                "full_name": tf(full_name),
                "name_either_order": tf(either_order),
                "postcode": tf(postcode_codes),
                "city": tf(city_codes),
                "postcode_address": tf(pc_addr_codes),
            }
        ),
    )


# ---------------------------------------------------------------------------------------------------------------
# blocking


def _combine(*codes: np.ndarray) -> np.ndarray:
    """One int64 key from several codes; -1 when any part is missing."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    missing = np.zeros(len(codes[0]), dtype=bool)
    for c in codes:
        missing |= c < 0
        key = key * (int(c.max()) + 2 if len(c) else 1) + np.maximum(c, 0)
    return np.where(missing, -1, key)


def _blocking_key(rule: str, f: _Features) -> np.ndarray:
    if rule == "date_of_birth":
        return f.dob
    if rule == "postcode_and_last_name_initial":
        return _combine(f.postcode, f.initial)
    if rule == "email_local_part":
        return f.local
    if rule == "phone":
        return f.phone
    if rule == "full_name_either_order":
        return _combine(np.minimum(f.first, f.last), np.maximum(f.first, f.last))
    if rule == "last_name_soundex_and_birth_year":
        return _combine(f.soundex, np.where(f.dob >= 0, f.dob_year, -1))
    if rule == "address_line_and_first_initial":
        return _combine(f.address, f.first_initial)
    if rule == "address_line_and_city":
        return _combine(f.address, f.city)
    if rule == "first_name_and_postcode":
        return _combine(f.first, f.postcode)
    raise ValueError(f"unknown blocking rule {rule!r}")


def _block_pairs(key: np.ndarray, max_block_size: int, focus: np.ndarray | None) -> np.ndarray:
    """Pair codes i * n + j (i < j) of records sharing a key, vectorised.

    Blocks of one record or of more than `max_block_size` records are dropped (sizes over the whole table);
    with `focus` (a boolean mask) only pairs with at least one focus record are generated.
    """
    n = len(key)
    idx = np.flatnonzero(key >= 0)
    idx = idx[np.argsort(key[idx], kind="stable")]
    k = key[idx]
    if len(k) < 2:
        return np.empty(0, dtype=np.int64)
    change = np.r_[True, k[1:] != k[:-1]]
    starts = np.flatnonzero(change)
    sizes = np.diff(np.r_[starts, len(k)])
    size = np.repeat(sizes, sizes)
    keep = (size >= 2) & (size <= max_block_size)
    skipped = int((sizes > max_block_size).sum())
    if skipped:
        logger.info("blocking: %d blocks larger than %d records skipped", skipped, max_block_size)
    idx, size = idx[keep], size[keep]
    if not len(idx):
        return np.empty(0, dtype=np.int64)
    pos = np.arange(len(idx))
    # block start of every kept position: blocks stay contiguous after filtering whole blocks
    change = np.r_[True, key[idx][1:] != key[idx][:-1]]
    start = np.maximum.accumulate(np.where(change, pos, 0))
    if focus is None:
        after = start + size - pos - 1
        left = np.repeat(pos, after)
        right = left + (np.arange(after.sum()) - np.repeat(np.cumsum(after) - after, after) + 1)
    else:
        sel = pos[focus[idx]]
        others = size[sel] - 1
        left = np.repeat(sel, others)
        offset = np.arange(others.sum()) - np.repeat(np.cumsum(others) - others, others)
        right = np.repeat(start[sel], others) + offset
        right = right + (right >= left)  # skip the record itself
    a, b = idx[left], idx[right]
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def _blocked_pairs(f: _Features, config: MatchingConfig, focus: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """De-duplicated (i, j) record pairs, i < j, found by any blocking rule, sorted."""
    parts = []
    for rule in config.blocking_rules:
        codes = _block_pairs(_blocking_key(rule, f), config.max_block_size, focus)
        logger.debug("blocking rule %s: %d pairs", rule, len(codes))
        parts.append(codes)
    codes = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
    codes = codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes  # sort-based unique: fast
    return codes // max(f.size, 1), codes % max(f.size, 1)


# ---------------------------------------------------------------------------------------------------------------
# comparisons


def _similarity(
    a: np.ndarray, b: np.ndarray, vocab: np.ndarray, scorer: Callable[..., float], workers: int
) -> np.ndarray:
    """scorer(vocab[a], vocab[b]) element-wise, computed once per distinct code pair; NaN where missing."""
    out = np.full(len(a), np.nan, dtype=np.float64)
    ok = (a >= 0) & (b >= 0)
    if not ok.any():
        return out
    pair = a[ok] * (len(vocab) + 1) + b[ok]
    inverse, uniq = pd.factorize(pair)  # hash-based: much faster than a sort on millions of pairs
    qa, qb = vocab[uniq // (len(vocab) + 1)], vocab[uniq % (len(vocab) + 1)]
    scores = process.cpdist(list(qa), list(qb), scorer=scorer, workers=workers, dtype=np.float64)
    out[ok] = np.asarray(scores, dtype=np.float64).reshape(-1)[inverse]
    return out


_COMPARE_CHUNK_PAIRS = 1_000_000  # bounds the float temporaries of one comparison pass (~100 MB)


def _compare(f: _Features, i: np.ndarray, j: np.ndarray, config: MatchingConfig) -> np.ndarray:
    """Comparison levels (n_pairs x len(COMPARISONS), int8, -1 = no information) of record pairs (i, j)."""
    if len(i) <= _COMPARE_CHUNK_PAIRS:
        return _compare_chunk(f, i, j, config)
    return np.concatenate(
        [
            _compare_chunk(f, i[s : s + _COMPARE_CHUNK_PAIRS], j[s : s + _COMPARE_CHUNK_PAIRS], config)
            for s in range(0, len(i), _COMPARE_CHUNK_PAIRS)
        ]
    )


def _compare_chunk(f: _Features, i: np.ndarray, j: np.ndarray, config: MatchingConfig) -> np.ndarray:
    n = len(i)
    gamma = np.full((n, len(COMPARISONS)), -1, dtype=np.int8)
    if not n:
        return gamma
    jw = JaroWinkler.normalized_similarity
    high, low = config.name_jaro_winkler_thresholds

    # names
    fa, la, fb, lb = f.first[i], f.last[i], f.first[j], f.last[j]
    names_ok = (fa >= 0) & (la >= 0) & (fb >= 0) & (lb >= 0)
    jw_first = _similarity(fa, fb, f.name_vocab, jw, config.workers)
    jw_last = _similarity(la, lb, f.name_vocab, jw, config.workers)
    both = np.fmin(jw_first, jw_last)
    swapped = np.fmin(
        _similarity(fa, lb, f.name_vocab, jw, config.workers), _similarity(la, fb, f.name_vocab, jw, config.workers)
    )
    level = np.select(
        [
            (fa == fb) & (la == lb),
            swapped >= high,
            both >= high,
            both >= low,
            (fa == fb) | (jw_first >= high),
            (la == lb) | (jw_last >= high),
        ],
        [N_EXACT, N_SWAPPED, N_FUZZY_HIGH, N_FUZZY_LOW, N_FIRST_ONLY, N_LAST_ONLY],
        N_ELSE,
    )
    # one part missing on either side: the other part still speaks when it agrees exactly (FEBRL leaves given
    # names out); a missing part is no disagreement, so these pairs pass the name gate (`_name_gate`)
    only_last = ~names_ok & (la >= 0) & (lb >= 0) & (la == lb)
    only_first = ~names_ok & (fa >= 0) & (fb >= 0) & (fa == fb)
    level = np.where(names_ok, level, np.select([only_last, only_first], [N_LAST_ONLY, N_FIRST_ONLY], -1))
    gamma[:, NAME] = level

    # date of birth
    da, db = f.dob[i], f.dob[j]
    ya, ma, dya = f.dob_year[i], f.dob_month[i], f.dob_day[i]
    yb, mb, dyb = f.dob_year[j], f.dob_month[j], f.dob_day[j]
    same_parts = (ya == yb).astype(np.int8) + (ma == mb) + (dya == dyb)
    transposed = (ya == yb) & (ma == dyb) & (dya == mb)
    level = np.select([da == db, transposed | (same_parts == 2)], [2, 1], 0)
    gamma[:, DOB] = np.where((da >= 0) & (db >= 0), level, -1)

    # email
    ea, eb, loa, lob = f.email[i], f.email[j], f.local[i], f.local[j]
    jw_local = _similarity(loa, lob, f.local_vocab, jw, config.workers)
    # "james.king4305" vs "james.king1234" are two James Kings: a fuzzy local part must keep its number
    same_digits = f.local_digits[i] == f.local_digits[j]
    level = np.select(
        [
            ea == eb,
            (loa >= 0) & (loa == lob),
            (jw_local >= config.email_local_part_jaro_winkler_threshold) & same_digits,
        ],
        [E_EXACT, E_LOCAL_EXACT, E_LOCAL_FUZZY],
        E_ELSE,
    )
    gamma[:, EMAIL] = np.where((ea >= 0) & (eb >= 0), level, -1)

    # phone
    pa_, pb_ = f.phone[i], f.phone[j]
    level = np.select([pa_ == pb_, f.phone_suffix[i] == f.phone_suffix[j]], [P_EXACT, P_SUFFIX], P_ELSE)
    gamma[:, PHONE] = np.where((pa_ >= 0) & (pb_ >= 0), level, -1)

    # address: the line is compared only within one postcode (elsewhere it cannot reach the top level)
    pca, pcb, ca, cb = f.postcode[i], f.postcode[j], f.city[i], f.city[j]
    same_pc = (pca >= 0) & (pca == pcb)
    addr_sim = np.full(n, np.nan)
    if same_pc.any():
        addr_sim[same_pc] = (
            _similarity(f.address[i][same_pc], f.address[j][same_pc], f.address_vocab, fuzz.token_set_ratio,
                        config.workers) / 100.0
        )
    # "203 Avenue Victor Hugo" and "187 Avenue Victor Hugo" share every word but are two homes
    same_numbers = f.address_numbers[i] == f.address_numbers[j]
    level = np.select(
        [
            same_pc & same_numbers & (addr_sim >= config.address_token_set_threshold),
            same_pc,
            (ca >= 0) & (ca == cb),
        ],
        [A_POSTCODE_ADDRESS, A_POSTCODE, A_CITY],
        A_ELSE,
    )
    comparable = ((pca >= 0) & (pcb >= 0)) | ((ca >= 0) & (cb >= 0))
    gamma[:, ADDRESS] = np.where(comparable, level, -1)
    return gamma


# ---------------------------------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class _Model:
    """Estimated parameters: m and u per comparison level and lambda."""

    m: tuple[np.ndarray, ...]
    u: tuple[np.ndarray, ...]
    probability_two_random_records_match: float
    em_iterations_run: int

    def summary(self) -> dict[str, Any]:
        """Plain numbers for asset metadata."""
        return {
            "probability_two_random_records_match": self.probability_two_random_records_match,
            "em_iterations_run": self.em_iterations_run,
            **{
                f"{c.column}.{label}": {"m": round(float(m[k]), 6), "u": float(u[k])}
                for c, m, u in zip(COMPARISONS, self.m, self.u, strict=True)
                for k, label in enumerate(c.levels)
            },
        }


def _level_counts(gamma: np.ndarray, weights: np.ndarray | None = None) -> list[np.ndarray]:
    out = []
    for k, comp in enumerate(COMPARISONS):
        g = gamma[:, k]
        ok = g >= 0
        w = None if weights is None else weights[ok]
        out.append(np.bincount(g[ok], weights=w, minlength=len(comp.levels)).astype(np.float64))
    return out


def _estimate_u(f: _Features, config: MatchingConfig) -> tuple[np.ndarray, ...]:
    """u per level from random record pairs (all pairs when there are fewer than `u_sample_pairs`)."""
    n = f.size
    total = n * (n - 1) // 2
    if total <= config.u_sample_pairs:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(config.seed)
        i = rng.integers(0, n, config.u_sample_pairs)
        j = rng.integers(0, n - 1, config.u_sample_pairs)
        j = j + (j >= i)
        i, j = np.minimum(i, j), np.maximum(i, j)
    counts = _level_counts(_compare(f, i, j, config))
    u = []
    for c, comp in zip(counts, COMPARISONS, strict=True):
        if c.sum() == 0:  # nothing comparable at random: fall back to "levels equally unknown"
            c = np.ones(len(comp.levels))
        c = np.maximum(c, config.u_minimum_count)
        u.append(c / c.sum())
    return tuple(u)


def _log2_ratio_table(m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """log2(m/u) per level, with a leading 0 for 'no information' (index gamma + 1)."""
    return np.r_[0.0, np.log2(m) - np.log2(u)]


def _run_em(
    gamma: np.ndarray, config: MatchingConfig
) -> tuple[tuple[np.ndarray, ...], float, int]:
    """m and the share of matches among the given blocked pairs, by EM (MAP M-step for m).

    The non-matching pairs *within the blocks* get their own level distribution (a nuisance parameter): they
    agree on their blocking key by construction (same birth date, same surname sound, ...), so the u of random
    pairs would make every blocked non-match look like a match and EM would drift to "same family". Scoring
    uses the m found here with the random-pair u (module docstring, step 4).
    """
    priors = [np.asarray(c.m_prior, dtype=np.float64) for c in COMPARISONS]
    m = [p.copy() for p in priors]
    iterations = 0
    if not len(gamma):
        return tuple(m), 0.01, iterations
    # EM only depends on the level pattern of a pair: run it on the (few thousand) distinct patterns
    sizes = [len(c.levels) + 1 for c in COMPARISONS]  # + "no information"
    strides = np.cumprod([1, *sizes[:-1]])
    pattern_code = (gamma.astype(np.int64) + 1) @ strides
    multiplicity = np.bincount(pattern_code, minlength=int(np.prod(sizes))).astype(np.float64)
    seen = np.flatnonzero(multiplicity)
    multiplicity = multiplicity[seen]
    patterns = np.stack([(seen // st) % sz - 1 for st, sz in zip(strides, sizes, strict=True)], axis=1)
    # start: pairs with the top level on more than half of their comparable comparisons are the matches, the
    # others the non-matches; m (with its prior), u_blocked and the share follow from that split. (A start
    # from "every blocked pair a non-match" fails when blocking is tight and most blocked pairs are matches:
    # that start already describes the matches as non-matches and EM stays there. A start from the random-pair
    # u fails the other way: pairs agreeing on their blocking key alone, a birth date, look like matches and
    # EM learns "same birth date" as the match class.)
    top = np.array([len(c.levels) - 1 for c in COMPARISONS])
    comparable = (patterns >= 0).sum(axis=1)
    w0 = ((patterns == top).sum(axis=1) * 2 > comparable).astype(np.float64)
    m = [
        np.maximum((c + config.em_prior_strength * priors[k]) / (c.sum() + config.em_prior_strength), 1e-9)
        for k, c in enumerate(_level_counts(patterns, w0 * multiplicity))
    ]
    u_blocked = [np.maximum(c, 1e-3) / np.maximum(c, 1e-3).sum() for c in _level_counts(patterns, (1 - w0) * multiplicity)]
    share = float(np.clip((w0 * multiplicity).sum() / multiplicity.sum(), 0.001, 0.999))
    idx = patterns.astype(np.int64) + 1
    for iterations in range(1, config.em_iterations + 1):  # noqa: B007 - the count is reported
        log2_bf = sum(_log2_ratio_table(m[k], u_blocked[k])[idx[:, k]] for k in range(len(COMPARISONS)))
        prior = math.log2(share / (1 - share))
        w = 1.0 / (1.0 + np.exp2(-np.clip(prior + log2_bf, -60, 60)))
        counts = _level_counts(patterns, w * multiplicity)
        counts_non = _level_counts(patterns, (1.0 - w) * multiplicity)
        new_m = [
            np.maximum((c + config.em_prior_strength * priors[k]) / (c.sum() + config.em_prior_strength), 1e-9)
            for k, c in enumerate(counts)
        ]
        u_blocked = [np.maximum(c, 1e-3) / np.maximum(c, 1e-3).sum() for c in counts_non]
        new_share = float(np.clip((w * multiplicity).sum() / multiplicity.sum(), 1e-9, 1 - 1e-9))
        change = max(float(np.max(np.abs(a - b))) for a, b in zip(new_m, m, strict=True))
        change = max(change, abs(new_share - share))
        m, share = new_m, new_share
        if change < config.em_convergence_tolerance:
            break
    return tuple(m), share, iterations


def _em_sample(f: _Features, size: int) -> np.ndarray:
    """The records EM learns from: a fixed hash sample of customer_id (depends on the table, not the call)."""
    if f.size <= size:
        return np.ones(f.size, dtype=bool)
    h = pd.util.hash_array(f.customer_id.astype(object))
    chosen = np.argsort(h, kind="stable")[:size]
    mask = np.zeros(f.size, dtype=bool)
    mask[chosen] = True
    return mask


# ---------------------------------------------------------------------------------------------------------------
# scoring


def _log2_bayes_factors(
    f: _Features, i: np.ndarray, j: np.ndarray, gamma: np.ndarray, model: _Model
) -> np.ndarray:
    """Sum of log2(m/u) per pair; u replaced by the value's term frequency on TF-adjusted levels."""
    idx = gamma.astype(np.int64) + 1
    total = np.zeros(len(i))
    for k in range(len(COMPARISONS)):
        total += _log2_ratio_table(model.m[k], model.u[k])[idx[:, k]]

    def tf_adjust(k: int, level: int, tf: str, codes: np.ndarray, both_sides: bool = False) -> None:
        """u of `level` replaced by the frequency of the value (`codes`) on the pairs at that level; with
        `both_sides` the larger frequency of the two records' values (fuzzy agreement: two spellings)."""
        hit = np.flatnonzero(gamma[:, k] == level)
        if not len(hit):
            return
        freq = f.tf[tf]
        u_tf = freq[np.maximum(codes[i[hit]], 0)]
        if both_sides:
            u_tf = np.maximum(u_tf, freq[np.maximum(codes[j[hit]], 0)])
        total[hit] += math.log2(model.u[k][level]) - np.log2(np.maximum(u_tf, 1e-12))

    tf_adjust(NAME, N_EXACT, "full_name", f.full_name)
    # a swapped name is as common as the name in either order ("Nguyen Lachlan" is a Lachlan Nguyen)
    tf_adjust(NAME, N_SWAPPED, "name_either_order", f.name_either_order)
    # one part agreeing may agree fuzzily ("mattehws" / "matthews"): the typo is rare, the name is not, so the
    # larger of the two frequencies counts
    tf_adjust(NAME, N_FIRST_ONLY, "first", f.first, both_sides=True)
    tf_adjust(NAME, N_LAST_ONLY, "last", f.last, both_sides=True)
    # fuzzy-equal addresses have two frequencies: the larger one is the cautious choice
    tf_adjust(ADDRESS, A_POSTCODE_ADDRESS, "postcode_address", f.postcode_address, both_sides=True)
    tf_adjust(ADDRESS, A_POSTCODE, "postcode", f.postcode)
    tf_adjust(ADDRESS, A_CITY, "city", f.city)
    return total


def _name_gate(gamma: np.ndarray, name_part_missing: np.ndarray) -> np.ndarray:
    """Pairs whose names do not veto a merge (see the module docstring, "Acceptance").

    `name_part_missing`: a first or last name missing on either side of the pair (a missing part is no
    disagreement).
    """
    name = gamma[:, NAME]
    contact = (gamma[:, EMAIL] >= E_LOCAL_EXACT) | (gamma[:, PHONE] == P_EXACT)
    # no email and no phone comparable on the pair: nothing tells a household member from a typo, the score decides
    no_contact = (gamma[:, EMAIL] == -1) & (gamma[:, PHONE] == -1)
    return (name == -1) | (name >= N_FUZZY_LOW) | ((name == N_FIRST_ONLY) & contact) | no_contact | name_part_missing


def _empty_result() -> pd.DataFrame:
    return _conform_result(pd.DataFrame({name: [] for name in MATCH_SCHEMA.names}))


def _conform_result(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for fld in MATCH_SCHEMA:
        if pa.types.is_string(fld.type):
            out[fld.name] = frame[fld.name].astype("string")
        elif pa.types.is_int8(fld.type):
            out[fld.name] = frame[fld.name].astype(np.int8)
        else:
            out[fld.name] = frame[fld.name].astype(np.float64)
    return pd.DataFrame(out).reset_index(drop=True)


def match_profiles(
    profiles: pd.DataFrame,
    candidates: pd.Series | None = None,
    config: MatchingConfig = MatchingConfig(),
) -> pd.DataFrame:
    """Pairs of customer records that are the same human: one row per accepted pair, columns `MATCH_SCHEMA`.

    `profiles` holds every known profile (one row per customer_id, `PROFILE_SCHEMA` columns); `candidates` the
    customer_ids new or changed today: only pairs with at least one of them are scored (None = all pairs).
    The model (m, u, term frequencies, lambda) is estimated from the whole table in a way that does not depend
    on `candidates`, so an incremental call returns exactly the from-scratch pairs that touch a candidate.
    Rows are sorted by (customer_id_a, customer_id_b); `attrs["match_model"]` holds the parameters.
    """
    if profiles["customer_id"].isna().any():
        raise ValueError("profiles have a missing customer_id")
    if profiles["customer_id"].duplicated().any():
        raise ValueError("profiles must hold one row per customer_id")
    table = profiles.assign(customer_id=profiles["customer_id"].astype(str))
    table = table.sort_values("customer_id", kind="stable").reset_index(drop=True)
    if len(table) < 2:
        return _empty_result()
    f = _features(table, config)

    u = _estimate_u(f, config)
    sample = _em_sample(f, config.em_sample_records)
    if candidates is None:
        focus = None
    else:
        wanted = pd.Index(pd.Series(candidates, dtype=object).dropna().astype(str).unique())
        focus = np.asarray(pd.Index(f.customer_id).isin(wanted))
        if not focus.any():
            return _empty_result()
    # one pass of blocking and comparing serves EM (pairs touching the sample) and scoring (touching focus)
    i, j = _blocked_pairs(f, config, None if focus is None or sample.all() else focus | sample)
    gamma = _compare(f, i, j, config)

    in_sample = sample[i] | sample[j]
    m, share, iterations = _run_em(gamma[in_sample], config)
    lam = config.probability_two_random_records_match
    if lam is None:
        n, s = f.size, int(sample.sum())
        pairs_touching_sample = n * (n - 1) / 2 - (n - s) * (n - s - 1) / 2
        lam = float(np.clip(share * in_sample.sum() / pairs_touching_sample, 1e-12, 1 - 1e-9))
    model = _Model(m=m, u=u, probability_two_random_records_match=lam, em_iterations_run=iterations)

    if focus is not None:
        keep = focus[i] | focus[j]
        i, j, gamma = i[keep], j[keep], gamma[keep]
    weight = math.log2(lam / (1 - lam)) + _log2_bayes_factors(f, i, j, gamma, model)
    probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))
    accept = probability >= config.threshold
    if config.require_name_agreement:
        part_missing = (np.minimum(f.first[i], f.first[j]) < 0) | (np.minimum(f.last[i], f.last[j]) < 0)
        accept &= _name_gate(gamma, part_missing)
    logger.info(
        "fuzzy matching: %d profiles, %d compared pairs, %d accepted (lambda=%.3g, EM iterations=%d)",
        f.size, len(i), int(accept.sum()), lam, iterations,
    )
    result = pd.DataFrame(
        {
            "customer_id_a": f.customer_id[i[accept]],
            "customer_id_b": f.customer_id[j[accept]],
            "match_probability": probability[accept],
            "match_weight": weight[accept],
            **{c.column: gamma[accept, k] for k, c in enumerate(COMPARISONS)},
            "rule": MATCH_RULE,
        }
    )
    # (i, j) come sorted from np.unique over i * n + j on a table sorted by customer_id: already in order
    out = _conform_result(result) if len(result) else _empty_result()
    out.attrs["match_model"] = model.summary()
    return out


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def pairwise_scores(predicted_pairs: pd.DataFrame, truth_labels: pd.DataFrame) -> dict[str, float]:
    """Pairwise precision, recall and F1 of predicted clusters against the true persons.

    `predicted_pairs` has customer_id_a, customer_id_b (links; clusters are their connected components, so a
    chain a-b, b-c predicts the pair a-c too); `truth_labels` has customer_id, true_person_id for the records
    evaluated (links to other ids are ignored). A pair of records counts as a true positive when both are in one
    predicted cluster and belong to one true person. Returns precision, recall, f1 and the counts tp, fp, fn.
    """
    labels = truth_labels.drop_duplicates("customer_id")
    ids = pd.Index(labels["customer_id"].astype(str))
    n = len(ids)
    a = ids.get_indexer(predicted_pairs["customer_id_a"].astype(str))
    b = ids.get_indexer(predicted_pairs["customer_id_b"].astype(str))
    ok = (a >= 0) & (b >= 0)
    graph = coo_matrix((np.ones(int(ok.sum())), (a[ok], b[ok])), shape=(n, n))
    _, cluster = connected_components(graph, directed=False)
    person = pd.factorize(labels["true_person_id"].astype(str))[0]

    def pairs(sizes: pd.Series | np.ndarray) -> int:
        s = np.asarray(sizes, dtype=np.int64)
        return int((s * (s - 1) // 2).sum())

    frame = pd.DataFrame({"cluster": cluster, "person": person})
    tp = pairs(frame.groupby(["cluster", "person"]).size())
    predicted = pairs(np.bincount(cluster))
    true = pairs(np.bincount(person)) if n else 0
    fp, fn = predicted - tp, true - tp
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}
