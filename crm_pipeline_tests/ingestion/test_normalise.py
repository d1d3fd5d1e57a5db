"""The shared normalisation functions: channels, emails, phones, pseudonyms, timestamps (exact values)."""

import hashlib
import hmac

import pandas as pd
import pytest

from crm_pipeline.ingestion.normalise import (
    canonical_channel,
    channel_group,
    derive_channel,
    local_day,
    normalise_email,
    normalise_phone,
    parse_date,
    parse_number,
    parse_utc,
    pseudonymise,
    referrer_host,
)

SITE = ("example-shop.com",)
BLOG = ("blog.example-shop.com",)

# (given channel, event_type, utm_medium, referrer) -> derived channel; one row per rule of docs/inputs.md section 1
CHANNEL_TABLE = [
    # a given channel wins, trimmed and lower-cased, even outside the taxonomy
    (" Email ", "session_start", "cpc", "https://www.google.com/", "email"),
    ("TV", "session_start", None, None, "tv"),
    # 1. event type prefix (before utm_medium and referrer)
    (None, "email_open", "cpc", "https://www.google.com/", "email"),
    (None, "sms_click", None, None, "sms"),
    (None, "push_open", None, None, "push"),
    (None, "app_open", None, None, "mobile_app"),
    (None, "browser_app_click", None, None, "browser_app"),
    (None, "social_interaction", None, None, "social"),
    (None, "mail_subscribe", None, None, "mailing"),
    # 2. utm_medium (before the referrer)
    (None, "session_start", "CPC", "https://www.google.com/", "ppc"),
    (None, "session_start", "paid_search", None, "ppc"),
    (None, "session_start", "banner", None, "display"),
    (None, "session_start", "cpm", None, "display"),
    (None, "session_start", "remarketing", None, "retargeting"),
    (None, "session_start", "influencer", None, "affiliate"),
    (None, "session_start", "video", None, "video"),
    (None, "session_start", "paidsocial", None, "paid_social"),
    (None, "session_start", " email ", None, "email"),
    (None, "session_start", "referral", None, "referral"),
    # an unknown medium falls through to the referrer
    (None, "session_start", "newsletter-x", "https://www.bing.com/search", "seo"),
    # 3. referrer host
    (None, "session_start", None, "https://example-shop.com/cart", "direct"),
    (None, "session_start", None, "https://www.example-shop.com/", "direct"),
    (None, "session_start", None, "https://blog.example-shop.com/post/1", "blog"),
    (None, "session_start", None, "https://www.google.co.uk/search?q=x", "seo"),  # label match `google.`
    (None, "session_start", None, "duckduckgo.com", "seo"),
    (None, "session_start", None, "https://notgoogle.com/", "referral"),  # `google.` must start a label
    (None, "session_start", None, "https://t.co/abc", "social"),  # full host `t.co`
    (None, "session_start", None, "https://m.t.co/abc", "social"),  # ... or a sub-domain of it
    (None, "session_start", None, "https://t.com/abc", "referral"),  # but not a host that merely starts so
    (None, "session_start", None, "https://art.co/abc", "referral"),  # nor one that ends so without a dot
    (None, "session_start", None, "https://x.com/post", "social"),
    (None, "session_start", None, "https://www.facebook.com/", "social"),
    (None, "session_start", None, "https://news.example.org/a", "referral"),
    # 4. otherwise
    (None, "ad_click", None, None, "display"),
    (None, "ad_impression", None, None, "display"),
    (None, "session_start", None, None, "direct"),
    (None, "holdout_assigned", None, None, "direct"),
]


def test_derive_channel_table() -> None:
    frame = pd.DataFrame(CHANNEL_TABLE, columns=["channel", "event_type", "utm_medium", "referrer", "expected"])
    got = derive_channel(frame["channel"], frame["event_type"], frame["utm_medium"], frame["referrer"],
                         site_hosts=SITE, blog_hosts=BLOG)
    mismatches = [
        (tuple(row[:4]), row[4], got.iloc[i]) for i, row in enumerate(CHANNEL_TABLE) if got.iloc[i] != row[4]
    ]
    assert not mismatches, f"(inputs, expected, got): {mismatches}"
    assert str(got.dtype) == "string"


def test_derive_channel_all_given_skips_rules() -> None:
    got = derive_channel(pd.Series(["SMS", "ppc"]), pd.Series(["email_open", "login"]))
    assert got.tolist() == ["sms", "ppc"]


def test_canonical_channel_and_group() -> None:
    channels = canonical_channel(pd.Series([" Email", "PPC ", "referral", "tv", None, "  "]))
    assert channels.tolist() == ["email", "ppc", "referral", "tv", pd.NA, pd.NA]
    assert channel_group(channels).tolist() == ["owned", "paid", "earned", "other", pd.NA, pd.NA]


def test_referrer_host() -> None:
    got = referrer_host(pd.Series(["https://user@WWW.Google.com:443/x?y#z", "t.co/abc", "", None]))
    assert got.tolist() == ["www.google.com", "t.co", pd.NA, pd.NA]


def test_normalise_email() -> None:
    got = normalise_email(pd.Series([" John.Doe@Example.COM ", "no-at-sign", "a@b", "two@@x.com", None]))
    assert got.tolist() == ["john.doe@example.com", pd.NA, pd.NA, pd.NA, pd.NA]


@pytest.mark.parametrize(
    ("region", "raw", "expected"),
    [
        ("US", "(650) 253-0000", "+16502530000"),
        ("US", "1 650 253 0000", "+16502530000"),  # US trunk prefix 1 = country code
        ("US", "+1 650-253-0000", "+16502530000"),
        ("US", "+44 20 7946 0018", "+442079460018"),
        ("US", "0044 20 7946 0018", "+442079460018"),
        ("GB", "(020) 7946 0018", "+442079460018"),  # trunk prefix 0 removed
        ("GB", "44 20 7946 0018", "+442079460018"),  # national digits that already carry the code
        ("DE", "0491 12345678", "+4949112345678"),  # trunk prefix: never read as carrying the code
        ("US", "12345", None),  # too short
        ("US", "phone", None),
        ("US", "  ", None),
    ],
)
def test_normalise_phone(region: str, raw: str, expected: str | None) -> None:
    got = normalise_phone(pd.Series([raw]), region).iloc[0]
    assert (got if got is not pd.NA else None) == expected


def test_normalise_phone_keeps_index_and_missing() -> None:
    got = normalise_phone(pd.Series([None, "(650) 253-0000"], index=[7, 3]))
    assert got.index.tolist() == [7, 3]
    assert got.tolist() == [pd.NA, "+16502530000"]


def test_pseudonymise_is_keyed_and_stable() -> None:
    values = pd.Series(["john@example.com", None, "john@example.com", "ann@example.com"], index=[5, 6, 7, 8])
    got = pseudonymise(values, "k1")
    expected = hmac.new(b"k1", b"john@example.com", hashlib.sha256).hexdigest()
    assert got.tolist() == [expected, pd.NA, expected, hmac.new(b"k1", b"ann@example.com", hashlib.sha256).hexdigest()]
    assert got.index.tolist() == [5, 6, 7, 8]
    assert str(got.dtype) == "string"
    # stable across calls and inputs, different under another key
    assert pseudonymise(pd.Series(["john@example.com"]), "k1").iloc[0] == expected
    assert pseudonymise(pd.Series(["john@example.com"]), "k2").iloc[0] != expected


def test_parse_utc_offsets() -> None:
    got = parse_utc(pd.Series(["2026-10-01T12:00:00+02:00", "2026-10-01 10:00:00Z", "2026-10-01T10:00:00",
                               "2026-10-01T10:00:00.250-05:00", "yesterday", None]))
    assert got.dtype == "datetime64[us, UTC]"
    assert got.tolist()[:4] == [
        pd.Timestamp("2026-10-01T10:00:00Z"), pd.Timestamp("2026-10-01T10:00:00Z"),
        pd.Timestamp("2026-10-01T10:00:00Z"), pd.Timestamp("2026-10-01T15:00:00.250Z"),
    ]
    assert got.iloc[4:].isna().all()


def test_parse_utc_holds_years_from_2262_beside_nanosecond_values() -> None:
    """Regression: one value with nanosecond digits made pandas parse the whole column at nanoseconds, where a
    year from 2262 on does not fit, so valid far-future timestamps became NaT ("unparsable")."""
    got = parse_utc(pd.Series(["2026-10-01T10:00:00.123456789Z", "2300-01-01T00:00:00+01:00",
                               "9999-12-30T23:59:59.9999999Z", "2300-13-01T00:00:00Z"], dtype="string"))
    assert got.dtype == "datetime64[us, UTC]"
    assert got.tolist()[:3] == [pd.Timestamp("2026-10-01T10:00:00.123456Z"), pd.Timestamp("2299-12-31T23:00:00Z"),
                                pd.Timestamp("9999-12-30T23:59:59.999999Z")]
    assert pd.isna(got.iloc[3])  # month 13 stays unparsable
    assert local_day(got.iloc[1:3], "Europe/Paris").dt.strftime("%Y-%m-%d").tolist() == ["2300-01-01", "9999-12-31"]


@pytest.mark.parametrize("timezone", ["Europe/Paris", "Asia/Tokyo", "Pacific/Kiritimati", "America/New_York"])
def test_local_day_of_the_last_instants_of_9999(timezone: str) -> None:
    """Regression: `9999-12-31T23:59:59Z` (a common "never") is in the year 10000 east of UTC, and the local
    day raised OverflowError (the whole day's ingestion with it). Its day is the last one there is."""
    got = parse_utc(pd.Series(["9999-12-31T23:59:59Z", "9999-12-31T09:00:00Z", None]))
    days = local_day(got, timezone)
    assert days.dt.strftime("%Y-%m-%d").tolist()[:2] == ["9999-12-31", "9999-12-31"]
    assert pd.isna(days.iloc[2])


def test_local_day_and_parse_date() -> None:
    ts = parse_utc(pd.Series(["2026-10-02T03:59:59Z", "2026-10-02T04:00:00Z"]))
    assert local_day(ts, "America/New_York").dt.strftime("%Y-%m-%d").tolist() == ["2026-10-01", "2026-10-02"]
    days = parse_date(pd.Series(["2026-10-01", "2026-10-01T23:00:00-05:00", "10/01/2026"]))
    assert days.dt.strftime("%Y-%m-%d").tolist()[:2] == ["2026-10-01", "2026-10-01"]
    assert pd.isna(days.iloc[2])


def test_parse_number() -> None:
    got = parse_number(pd.Series([" 12.50 ", "1e3", "abc", None]))
    assert got.tolist()[:2] == [12.5, 1000.0]
    assert got.iloc[2:].isna().all()
