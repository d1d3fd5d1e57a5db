"""Vectorised normalisation shared by every source: timestamps, emails, phones, pseudonyms, channels.

All functions take and return pandas Series and never loop in Python over rows; the one exception is the
keyed hash, which runs once per *distinct* value (hashlib has no vectorised API).
"""

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa

# ---------------------------------------------------------------------------------------------------------------
# strings

def clean_text(values: pd.Series) -> pd.Series:
    """Trimmed strings; empty and whitespace-only values become missing."""
    s = values.astype("string").str.strip()
    empty = (s == "").fillna(False).to_numpy(dtype=bool)
    # masking rewrites the whole column; most columns have no blank value, so skip it then
    return s.mask(empty) if empty.any() else s


# ---------------------------------------------------------------------------------------------------------------
# timestamps

def parse_utc(values: pd.Series) -> pd.Series:
    """Any ISO-8601 timestamp with any UTC offset (none = UTC) -> UTC `datetime64[us, UTC]`; unparsable -> NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    # Digits beyond the microsecond are dropped before parsing (the result is in microseconds anyway): pandas
    # parses at the finest resolution any value asks for, and at nanoseconds every year from 2262 on would
    # become NaT, i.e. "unparsable", for the whole column, instead of a valid far-future timestamp.
    text = clean_text(values).str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return parsed.astype("datetime64[us, UTC]")


def parse_date(values: pd.Series) -> pd.Series:
    """YYYY-MM-DD (or a timestamp, whose calendar date is taken as written) -> `datetime64[s]` date; bad -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = values.dt.tz_localize(None) if isinstance(values.dtype, pd.DatetimeTZDtype) else values
        return out.dt.normalize().astype("datetime64[s]")
    text = clean_text(values).str.slice(0, 10)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


# The latest instant whose local time is still in the year 9999 in every timezone (UTC+14 at most)
_LAST_LOCAL_INSTANT = pd.Timestamp("9999-12-31T09:59:59.999999", tz="UTC")


def local_day(ts_utc: pd.Series, timezone: str) -> pd.Series:
    """Calendar day (as `datetime64[s]`, midnight) of UTC timestamps in the reporting timezone.

    An instant whose local time would fall in the year 10000 (`9999-12-31T23:59:59Z`, a common "never", in
    Europe/Paris) has no calendar date and made the conversion raise: instants after 9999-12-31T09:59:59Z count
    as that instant (day 9999-12-31 from UTC-10 eastwards; such a day is millennia from any data's day anyway).
    """
    ts_utc = ts_utc.clip(upper=_LAST_LOCAL_INSTANT)
    return ts_utc.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize().astype("datetime64[s]")


def is_missing(values: pd.Series) -> pd.Series:
    """Missing: null, NaN, or blank text."""
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        return clean_text(values).isna()
    return values.isna()


# ---------------------------------------------------------------------------------------------------------------
# numbers

def parse_number(values: pd.Series) -> pd.Series:
    """Float64; unparsable -> NaN (the caller decides whether that is a contract breach)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64")
    return pd.to_numeric(clean_text(values), errors="coerce").astype("float64")


def overflows(values: pd.Series, numbers: pd.Series) -> np.ndarray:
    """Where `numbers` (`parse_number(values)`) is infinite although `values` spells a number in digits (`1e400`):
    a number too large for a float, as opposed to the words `inf` / `infinity`, which are no number at all."""
    infinite = np.isinf(numbers.to_numpy(dtype="float64"))
    if not infinite.any():
        return infinite
    words = clean_text(values.astype("string")).str.contains("inf", case=False, regex=False)
    return infinite & ~words.fillna(False).to_numpy(dtype=bool)


# ---------------------------------------------------------------------------------------------------------------
# emails and phones

def normalise_email(values: pd.Series) -> pd.Series:
    """Lower-cased, trimmed; a value without a single '@' between two non-empty parts is not an email -> missing."""
    s = clean_text(values).str.lower()
    valid = s.str.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", na=False)
    return s.where(valid)


def _trunk_prefix(region: str) -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix if metadata is not None else None) or ""


def normalise_phone(values: pd.Series, default_region: str = "US") -> pd.Series:
    """E.164 (`+<country code><number>`), vectorised; not a plausible number -> missing.

    International forms (`+44 20 ...`, `0044 20 ...`) keep their country code; national forms get the
    default region's code after its trunk prefix is removed (`(020) 7946 0018` in GB -> `+442079460018`).
    The country calling code and trunk prefix come from the phonenumbers metadata (the field's standard),
    the string work is vectorised. Plausible: 8 to 15 digits in all (a placeholder such as 0000000000 stays
    a value: identity's blocklist reports it).
    A number written with the trunk prefix is national for sure, so it is never read as already carrying
    the country code (DE `0491 12345678` is `+4949112345678`, not `+49112345678`).
    Only present values are processed: phone columns are mostly empty in event data.
    """
    s = clean_text(values)
    present = s.notna().to_numpy()
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    if present.any():
        out[present] = _e164(s[present], default_region).to_numpy()
    return out


def _e164(s: pd.Series, default_region: str) -> pd.Series:
    raw = s.fillna("")
    international = raw.str.match(r"^\s*(\+|00[1-9])")
    digits = raw.str.replace(r"\D", "", regex=True)
    intl_digits = digits.where(~raw.str.match(r"^\s*00[1-9]"), digits.str.slice(2))
    country = str(phonenumbers.country_code_for_region(default_region) or "")
    trunk = _trunk_prefix(default_region)
    national = digits
    had_trunk = national.str.startswith(trunk) if trunk else pd.Series(False, index=s.index)
    if trunk:
        national = national.where(~had_trunk, national.str.slice(len(trunk)))
    # a number without trunk prefix that already starts with the country code and is long enough
    # (e.g. 44 20 7946 0018 in GB)
    has_cc = national.str.startswith(country) & (national.str.len() >= 11) & ~had_trunk if country else False
    national_e164 = np.where(has_cc, national, country + national)
    e164_digits = pd.Series(np.where(international, intl_digits, national_e164), index=s.index, dtype="string")
    ok = e164_digits.str.len().between(8, 15) & s.notna()
    return ("+" + e164_digits).where(ok).astype("string")


def pseudonymise(values: pd.Series, key: str) -> pd.Series:
    """Keyed hash (HMAC-SHA256, hex) of normalised values; missing stays missing.

    Hashing runs once per distinct value; the key comes from the environment (CRM_PII_KEY), so the same
    email gets the same pseudonym across sources and days and cannot be reversed without the key.
    """
    s = values.astype("string")
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    key_bytes = key.encode()
    hashed = pa.array([hmac.new(key_bytes, str(u).encode(), hashlib.sha256).hexdigest() for u in uniques],
                      type=pa.string())
    # expand the distinct hashes to rows in Arrow (no per-row Python objects)
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    out = pa.DictionaryArray.from_arrays(indices, hashed).cast(pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(out), index=values.index, dtype="string")


# ---------------------------------------------------------------------------------------------------------------
# channels

CHANNEL_GROUPS: Mapping[str, str] = {
    **{c: "owned" for c in ("email", "sms", "push", "mobile_app", "browser_app", "seo", "direct", "blog", "mailing")},
    **{c: "paid" for c in ("ppc", "display", "retargeting", "affiliate", "video", "paid_social")},
    **{c: "earned" for c in ("social", "referral")},
}

EVENT_TYPE_PREFIX_CHANNEL: tuple[tuple[str, str], ...] = (
    # browser_app_ before app_ is irrelevant for startswith, but keep the longest prefixes first anyway
    ("browser_app_", "browser_app"),
    ("email_", "email"),
    ("sms_", "sms"),
    ("push_", "push"),
    ("app_", "mobile_app"),
    ("social_", "social"),
    ("mail_", "mailing"),
)

UTM_MEDIUM_CHANNEL: Mapping[str, str] = {
    "cpc": "ppc", "ppc": "ppc", "paid_search": "ppc",
    "display": "display", "banner": "display", "cpm": "display",
    "retargeting": "retargeting", "remarketing": "retargeting",
    "affiliate": "affiliate", "influencer": "affiliate",
    "video": "video",
    "paid_social": "paid_social", "paidsocial": "paid_social",
    "email": "email", "sms": "sms", "push": "push", "social": "social", "referral": "referral",
}

SEARCH_ENGINES: tuple[str, ...] = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.")
SOCIAL_NETWORKS: tuple[str, ...] = (
    "facebook.", "instagram.", "t.co", "twitter.", "x.com", "linkedin.", "tiktok.", "pinterest.", "youtube."
)


def canonical_channel(values: pd.Series) -> pd.Series:
    """A given channel, trimmed and lower-cased (kept even when outside the taxonomy: its group is `other`)."""
    return clean_text(values).str.lower()


def channel_group(channels: pd.Series, groups: Mapping[str, str] = CHANNEL_GROUPS) -> pd.Series:
    out = channels.map(dict(groups)).astype("string")
    return out.mask(channels.notna() & out.isna(), "other")


def referrer_host(referrer: pd.Series) -> pd.Series:
    """Lower-cased host of a referring URL or bare host (`https://www.google.com/x` -> `www.google.com`)."""
    s = clean_text(referrer).str.lower()
    host = s.str.replace(r"^[a-z][a-z0-9+.\-]*://", "", regex=True)
    host = host.str.replace(r"[/?#].*$", "", regex=True).str.replace(r"^[^@]*@", "", regex=True)
    host = host.str.replace(r":\d+$", "", regex=True).str.rstrip(".")
    return host.mask(host == "")


def _host_pattern(patterns: Iterable[str]) -> str:
    """One regex for host patterns: `google.` matches a label (www.google.co.uk), `t.co` the host or a sub-domain."""
    parts = []
    for p in patterns:
        p = p.strip().lower()
        if not p:
            continue
        if p.endswith("."):
            parts.append(r"(?:^|\.)" + re.escape(p))
        else:
            parts.append(r"(?:^|\.)" + re.escape(p) + r"$")
    return "|".join(parts) if parts else r"(?!x)x"


def derive_channel(
    channel: pd.Series,
    event_type: pd.Series | None = None,
    utm_medium: pd.Series | None = None,
    referrer: pd.Series | None = None,
    *,
    site_hosts: Iterable[str] = (),
    blog_hosts: Iterable[str] = (),
) -> pd.Series:
    """The channel of each row: the given one when present, else the first derivation rule that applies.

    Rules (docs/inputs.md section 1): event type prefix; utm_medium; referrer host (own site -> direct, blog ->
    blog, search engine -> seo, social network -> social, other host -> referral); ad events -> display;
    anything else -> direct. Rows without an event type (orders) end at `direct` only if nothing applies.
    The rules run only on the rows without a given channel.
    """
    out = canonical_channel(channel)
    need = out.isna().to_numpy()
    if not need.any():
        return out.astype("string")

    def subset(values: pd.Series | None) -> pd.Series | None:
        return None if values is None else values[need]

    derived = _derive_missing(out[need], subset(event_type), subset(utm_medium), subset(referrer),
                              site_hosts=site_hosts, blog_hosts=blog_hosts)
    out = out.copy()
    out[need] = derived.to_numpy()
    return out.astype("string")


def _derive_missing(
    out: pd.Series,
    event_type: pd.Series | None,
    utm_medium: pd.Series | None,
    referrer: pd.Series | None,
    *,
    site_hosts: Iterable[str],
    blog_hosts: Iterable[str],
) -> pd.Series:
    """The derivation rules of `derive_channel` for rows whose channel (`out`) is missing."""
    index = out.index
    empty = pd.Series(pd.NA, index=index, dtype="string")

    def fill(mask: pd.Series, value: pd.Series | str) -> None:
        nonlocal out
        out = out.mask(out.isna() & mask.fillna(False).astype(bool), value)

    et = clean_text(event_type).str.lower() if event_type is not None else empty
    for prefix, name in EVENT_TYPE_PREFIX_CHANNEL:
        fill(et.str.startswith(prefix), name)

    if utm_medium is not None:
        medium = clean_text(utm_medium).str.lower().map(dict(UTM_MEDIUM_CHANNEL)).astype("string")
        fill(medium.notna(), medium)

    if referrer is not None:
        host = referrer_host(referrer)
        blog = host.str.contains(_host_pattern(blog_hosts), regex=True, na=False)
        site = host.str.contains(_host_pattern(site_hosts), regex=True, na=False) & ~blog
        fill(site, "direct")
        fill(blog, "blog")
        fill(host.str.contains(_host_pattern(SEARCH_ENGINES), regex=True, na=False), "seo")
        fill(host.str.contains(_host_pattern(SOCIAL_NETWORKS), regex=True, na=False), "social")
        fill(host.notna(), "referral")

    fill(et.isin(["ad_impression", "ad_click"]), "display")
    fill(pd.Series(True, index=index), "direct")
    return out.astype("string")
