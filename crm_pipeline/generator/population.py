"""The humans of the synthetic world: profiles, identifiers, behaviour rates and the identity mess.

Every person is drawn once, vectorised, before the first day. Identifiers are created here so that the
ground truth knows, for every cookie, device, e-mail, phone and CRM id, which human it belongs to;
shared and placeholder identifiers are created on purpose (docs/inputs.md, docs/identity.md "Guards").
"""

from dataclasses import dataclass

import numpy as np

from .common import NA_TS, SECONDS_PER_DAY, Calendar, as_obj, concat, ids, lower, nulls, stream
from .scales import Scale

# Channels that produce touches (docs/attribution.md), in a fixed order used by every matrix.
TOUCH_CHANNELS: tuple[str, ...] = (
    "email",
    "sms",
    "push",
    "mobile_app",
    "browser_app",
    "social",
    "ppc",
    "display",
    "retargeting",
    "affiliate",
    "video",
    "paid_social",
    "seo",
    "direct",
    "referral",
    "blog",
)
CH = {c: i for i, c in enumerate(TOUCH_CHANNELS)}
PAID_CHANNELS: tuple[str, ...] = ("ppc", "display", "retargeting", "affiliate", "video", "paid_social")
ORGANIC_SESSION_CHANNELS: tuple[str, ...] = ("seo", "direct", "referral", "blog", "social")

DEVICE_TYPES: tuple[str, ...] = ("desktop", "mobile", "tablet", "other")
DESKTOP, MOBILE, TABLET, OTHER = range(4)

COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "CH")
COUNTRY_P = (0.72, 0.12, 0.09, 0.05, 0.02)
COUNTRY_CURRENCY: tuple[str, ...] = ("USD", "GBP", "EUR", "EUR", "CHF")

CATEGORIES: tuple[str, ...] = (
    "Shoes",
    "Outerwear",
    "Accessories",
    "Home & Garden",
    "Electronics",
    "Beauty",
    "Kids",
    "Sports",
)

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Margaret", "Mark", "Sandra", "Paul", "Ashley",
    "Oliver", "Amelia", "Harry", "Isla", "Lukas", "Anna", "Leon", "Emma", "Louis", "Chloé",
    "José", "Zoë", "Noah", "Mia", "Finn", "Lea", "Luca", "Sophie",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen", "King", "Wright",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Dubois", "Durand", "Lefèvre", "Evans", "Hughes",
    "O'Brien", "Murphy", "Kelly", "Rossi", "Meier", "Keller", "Baker", "Green",
)  # fmt: skip
STREETS: tuple[str, ...] = (
    "Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm St", "High Street", "Station Road", "Church Lane",
    "Hauptstraße 1", "Bahnhofstr.", "Rue de la Paix", "Avenue Victor Hugo", "Bahnhofstrasse", "Main St",
)  # fmt: skip
# (city, region, postcode prefix) per country, in COUNTRIES order
CITIES: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (("New York", "NY", "100"), ("Chicago", "IL", "606"), ("San Francisco", "CA", "941"),
     ("Austin", "TX", "787"), ("Seattle", "WA", "981"), ("Boston", "MA", "021")),
    (("London", "England", "SW1A "), ("Manchester", "England", "M1 "), ("Edinburgh", "Scotland", "EH1 ")),
    (("Berlin", "Berlin", "10"), ("München", "Bayern", "80"), ("Hamburg", "Hamburg", "20")),
    (("Paris", "Île-de-France", "750"), ("Lyon", "Auvergne-Rhône-Alpes", "690")),
    (("Zürich", "ZH", "80"), ("Genève", "GE", "12")),
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "web.de", "orange.fr")
PLACEHOLDER_EMAILS: tuple[str, ...] = ("test@test.com", "noemail@example.com")
PLACEHOLDER_PHONE = "0000000000"
PLACEHOLDER_PHONE_E164 = "+10000000000"
DUPLICATE_VARIANTS: tuple[str, ...] = ("name_typo", "swapped_name", "new_email", "moved_address")
# large prime: p -> p * MULT mod PRIME scrambles sequential person numbers into id digits without clashes
_PRIME = 10_000_019


def _scramble(x: np.ndarray, mult: int) -> np.ndarray:
    return (x.astype(np.int64) * mult + 12_345) % _PRIME


@dataclass
class Population:
    """Per-person arrays (index = person number) plus cookie and device tables."""

    n: int
    person_id: np.ndarray
    country: np.ndarray
    currency: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray
    date_of_birth: np.ndarray
    address_line: np.ndarray
    city: np.ndarray
    postcode: np.ndarray
    region: np.ndarray
    email: np.ndarray  # canonical lower-case real e-mail or None
    phone_raw: np.ndarray  # as the person types it, or None
    phone_e164: np.ndarray
    record_email: np.ndarray  # e-mail on the primary CRM record (may be a placeholder)
    record_phone: np.ndarray  # raw phone on the primary CRM record (may be the placeholder)
    customer_id: np.ndarray  # primary CRM id or None (never registers)
    created_at: np.ndarray  # registration instant (epoch s) or NA_TS; in-window ones are set day by day
    reg_day: np.ndarray  # day index of an in-window registration, -1 before the window, big if never
    consent: np.ndarray
    acquisition_channel: np.ndarray
    dup_customer_id: np.ndarray  # a second CRM record of the same human, or None
    dup_created_at: np.ndarray
    dup_variant: np.ndarray
    dup_email: np.ndarray  # e-mail of the duplicate record when it differs (new_email), else None
    activity: np.ndarray
    affinity: np.ndarray  # persons x TOUCH_CHANNELS rate multipliers
    primary_device: np.ndarray
    pref_category: np.ndarray
    # cookies: rows of (person, anonymous_id, device type); a person's rows are contiguous
    cookie_person: np.ndarray
    cookie_id: np.ndarray
    cookie_device: np.ndarray
    cookie_start: np.ndarray  # first cookie row of each person
    cookie_count: np.ndarray
    # app installations: rows of (person, device_id, device type, installed now?)
    device_person: np.ndarray
    device_id: np.ndarray
    device_type: np.ndarray
    device_installed: np.ndarray
    shared_device_rows: np.ndarray  # device rows of family tablets (one device_id, several persons)
    shared_cookie_rows: np.ndarray
    # list memberships (generator state, changed by events)
    email_sub: np.ndarray
    sms_opt: np.ndarray
    browser_app: np.ndarray
    social_follow: np.ndarray
    mail_sub: np.ndarray

    def registered_at(self, person: np.ndarray, ts: np.ndarray) -> np.ndarray:
        created = self.created_at[person]
        return (created != NA_TS) & (created <= ts)

    def customer_id_at(self, person: np.ndarray, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """CRM id a person uses at ts: None before registering; the duplicate account now and then."""
        out = np.where(self.registered_at(person, ts), self.customer_id[person], None)
        dup_ts = self.dup_created_at[person]
        use_dup = (dup_ts != NA_TS) & (dup_ts <= ts) & (rng.random(len(person)) < 0.3)
        out[use_dup] = self.dup_customer_id[person][use_dup]
        return out


def _phone_numbers(rng: np.random.Generator, country: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw phone strings in the formats people type, and their E.164 form."""
    n = len(country)
    e164 = nulls(n)
    raw = nulls(n)
    us = country == 0
    k = int(us.sum())
    area = np.asarray([212, 415, 312, 617, 206, 305, 512, 303, 404, 702])[rng.integers(0, 10, k)]
    exch = rng.integers(200, 999, k)
    line = rng.integers(0, 10_000, k)
    a, e, ln = area.astype(str).astype(object), exch.astype(str).astype(object), np.char.zfill(line.astype(str), 4).astype(object)
    e164[us] = concat("+1", a, e, ln)
    fmt = rng.integers(0, 4, k)
    us_raw = np.select(
        [fmt == 0, fmt == 1, fmt == 2],
        [concat("(", a, ") ", e, "-", ln), concat(a, "-", e, "-", ln), concat("+1 ", a, " ", e, " ", ln)],
        concat(a, e, ln),
    )
    raw[us] = us_raw
    # other countries: always written with their country code, grouped with spaces
    for code, cc, nat_len in ((1, "44", 10), (2, "49", 10), (3, "33", 9), (4, "41", 9)):
        m = country == code
        km = int(m.sum())
        if not km:
            continue
        digits = np.char.zfill(rng.integers(10 ** (nat_len - 1), 10**nat_len - 1, km, dtype=np.int64).astype(str), nat_len)
        digits = digits.astype(object)
        e164[m] = concat("+" + cc, digits)
        raw[m] = concat("+" + cc + " ", digits)
    return raw, e164


def build_population(scale: Scale, cal: Calendar, seed: int) -> Population:
    """Draw every person of the world (vectorised)."""
    rng = stream(seed, "population")
    n = scale.persons
    p = np.arange(n)
    person_id = ids("P", p, 7)

    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P).astype(np.int8)
    currency = as_obj(COUNTRY_CURRENCY)[country]
    first_i = rng.integers(0, len(FIRST_NAMES), n)
    last_i = rng.integers(0, len(LAST_NAMES), n)
    # a visible block of "John Smith"s with different birth dates (common-name trap for fuzzy matching)
    commons = rng.choice(n, size=max(3, n // 200), replace=False)
    first_i[commons] = FIRST_NAMES.index("John")
    last_i[commons] = LAST_NAMES.index("Smith")
    first_name = as_obj(FIRST_NAMES)[first_i]
    last_name = as_obj(LAST_NAMES)[last_i]
    dob_days = rng.integers(np.datetime64("1950-01-01").astype(int), np.datetime64("2006-01-01").astype(int), n)
    date_of_birth = np.datetime_as_string(dob_days.astype("datetime64[D]"), unit="D").astype(object)

    city, region, postcode = nulls(n), nulls(n), nulls(n)
    for code, options in enumerate(CITIES):
        m = np.flatnonzero(country == code)
        pick = rng.integers(0, len(options), len(m))
        city[m] = as_obj([o[0] for o in options])[pick]
        region[m] = as_obj([o[1] for o in options])[pick]
        prefix = as_obj([o[2] for o in options])[pick]
        postcode[m] = concat(prefix, rng.integers(10, 99, len(m)))
    address_line = concat(rng.integers(1, 300, n), " ", as_obj(STREETS)[rng.integers(0, len(STREETS), n)])

    # registration: before the window, during it, or never
    reg_kind = rng.choice(3, size=n, p=(0.45, 0.14, 0.41))
    reg_day = np.full(n, 10**6, dtype=np.int64)
    reg_day[reg_kind == 0] = -1
    in_window = reg_kind == 1
    reg_day[in_window] = rng.integers(0, cal.days, int(in_window.sum()))
    created_at = np.full(n, NA_TS, dtype=np.int64)
    pre = reg_kind == 0
    created_at[pre] = cal.start_ts - rng.integers(3600, 730 * SECONDS_PER_DAY, int(pre.sum()))
    registers = reg_kind < 2
    customer_id = np.where(registers, ids("C", _scramble(p, 7_919), 8), None)
    consent = registers & (rng.random(n) < 0.7)
    acquisition_channel = nulls(n)
    acq_options = ("seo", "direct", "ppc", "email", "social", "referral", "affiliate", "display", "paid_social")
    acquisition_channel[pre] = as_obj(acq_options)[
        rng.choice(len(acq_options), int(pre.sum()), p=(0.22, 0.2, 0.2, 0.08, 0.08, 0.08, 0.06, 0.04, 0.04))
    ]

    # e-mail and phone
    has_email = np.where(registers, rng.random(n) < 0.96, rng.random(n) < 0.55)
    first_ascii, last_ascii = _ascii(FIRST_NAMES)[first_i], _ascii(LAST_NAMES)[last_i]
    local = lower(concat(first_ascii, ".", last_ascii, _scramble(p, 104_729) % 100_000))
    email = np.where(has_email, concat(local, "@", as_obj(EMAIL_DOMAINS)[rng.integers(0, len(EMAIL_DOMAINS), n)]), None)
    has_phone = rng.random(n) < 0.55
    phone_raw_all, phone_e164_all = _phone_numbers(rng, country)
    phone_raw = np.where(has_phone, phone_raw_all, None)
    phone_e164 = np.where(has_phone, phone_e164_all, None)

    # placeholder values typed into CRM records of unrelated people: the person then has no real one
    record_email = email.copy()
    record_phone = phone_raw.copy()
    reg_idx = np.flatnonzero(registers)
    ph_email = rng.choice(reg_idx, size=max(4, len(reg_idx) // 70), replace=False)
    record_email[ph_email] = as_obj(PLACEHOLDER_EMAILS)[rng.integers(0, 2, len(ph_email))]
    email[ph_email] = None
    ph_phone = rng.choice(reg_idx, size=max(3, len(reg_idx) // 100), replace=False)
    record_phone[ph_phone] = PLACEHOLDER_PHONE
    phone_raw[ph_phone] = None
    phone_e164[ph_phone] = None

    # duplicate CRM registrations of the same human
    n_dup = max(6, len(reg_idx) // 25)
    dup = rng.choice(reg_idx, size=n_dup, replace=False)
    dup_customer_id = nulls(n)
    dup_customer_id[dup] = ids("C", _scramble(n + np.arange(n_dup), 7_919), 8)
    dup_variant = nulls(n)
    dup_variant[dup] = as_obj(DUPLICATE_VARIANTS)[np.arange(n_dup) % len(DUPLICATE_VARIANTS)]
    dup_created_at = np.full(n, NA_TS, dtype=np.int64)
    # pre-window originals: the second record anywhere between the first and the end of the world;
    # in-window originals: on a later day of the window (none when registering on the last day)
    orig_start = np.where(reg_day[dup] < 0, created_at[dup], cal.midnights[np.clip(reg_day[dup], 0, cal.days) + cal.PAD])
    span = np.maximum(cal.end_ts - orig_start - 2 * SECONDS_PER_DAY, 0)
    offset = SECONDS_PER_DAY + (rng.random(n_dup) * span).astype(np.int64)
    cand = orig_start + offset
    ok = cand < cal.end_ts - 60
    dup_created_at[dup[ok]] = cand[ok]
    dup_customer_id[dup[~ok]] = None
    dup_variant[dup[~ok]] = None
    dup_email = nulls(n)
    new_email = dup[ok & (dup_variant[dup] == "new_email") & (email[dup] != None)]  # noqa: E711
    dup_email[new_email] = concat(
        lower(first_ascii[new_email]), "_", _scramble(new_email, 31_337) % 10_000, "@fastmail.com"
    )

    # behaviour
    activity = np.minimum(rng.lognormal(-0.18, 0.6, n), 4.0) * scale.activity
    affinity = np.minimum(rng.gamma(0.7, 1 / 0.7, size=(n, len(TOUCH_CHANNELS))), 5.0).astype(np.float32)
    primary_device = rng.choice(4, size=n, p=(0.45, 0.45, 0.08, 0.02)).astype(np.int8)
    pref_category = rng.integers(0, len(CATEGORIES), n).astype(np.int8)

    # cookies: 1-4 per person, the first on the primary device
    cookie_count = 1 + rng.binomial(3, 0.3, n)
    cookie_person = np.repeat(p, cookie_count)
    cookie_start = np.concatenate([[0], np.cumsum(cookie_count)[:-1]])
    first_row = np.zeros(len(cookie_person), dtype=bool)
    first_row[cookie_start] = True
    cookie_device = np.where(first_row, primary_device[cookie_person], rng.choice(4, len(cookie_person), p=(0.4, 0.45, 0.13, 0.02)))
    cookie_id = concat("ck_", _scramble(np.arange(len(cookie_person)), 48_271), "_", rng.integers(100, 999, len(cookie_person)))

    # app installations: a third of persons have the app on 1-2 devices
    n_dev = np.where(rng.random(n) < 0.33, 1 + (rng.random(n) < 0.15), 0)
    device_person = np.repeat(p, n_dev)
    device_type = np.where(rng.random(len(device_person)) < 0.85, MOBILE, TABLET).astype(np.int8)
    device_id = concat("dv_", _scramble(np.arange(len(device_person)), 69_621), "_", rng.integers(1000, 9999, len(device_person)))
    device_installed = rng.random(len(device_person)) < 0.8

    # shared identifiers: family tablets (a device_id used by 4-6 registered customers) and office
    # cookies (one anonymous_id on the desk of 5-8 registered customers)
    reg_pre = np.flatnonzero(reg_kind == 0)
    fam_persons, fam_devices, off_persons, off_cookies = [], [], [], []
    for k in range(max(1, n // 3000)):
        members = rng.choice(reg_pre, size=int(rng.integers(4, 7)), replace=False)
        fam_persons.append(members)
        fam_devices.append(np.full(len(members), f"dv_family_tablet_{k:04d}", dtype=object))
    for k in range(max(1, n // 5000)):
        members = rng.choice(reg_pre, size=int(rng.integers(5, 9)), replace=False)
        off_persons.append(members)
        off_cookies.append(np.full(len(members), f"ck_office_{k:04d}", dtype=object))
    fam_p = np.concatenate(fam_persons)
    shared_device_rows = np.arange(len(device_person), len(device_person) + len(fam_p))
    device_person = np.concatenate([device_person, fam_p])
    device_id = np.concatenate([device_id, np.concatenate(fam_devices)])
    device_type = np.concatenate([device_type, np.full(len(fam_p), TABLET, dtype=np.int8)])
    device_installed = np.concatenate([device_installed, np.ones(len(fam_p), dtype=bool)])
    # office cookies are inserted into each member's contiguous cookie rows
    off_p = np.concatenate(off_persons)
    cookie_person = np.concatenate([cookie_person, off_p])
    cookie_id = np.concatenate([cookie_id, np.concatenate(off_cookies)])
    cookie_device = np.concatenate([cookie_device, np.full(len(off_p), DESKTOP)]).astype(np.int8)
    is_shared_cookie = np.concatenate([np.zeros(len(cookie_person) - len(off_p), bool), np.ones(len(off_p), bool)])
    order = np.lexsort((is_shared_cookie, cookie_person))
    cookie_person, cookie_id, cookie_device = cookie_person[order], cookie_id[order], cookie_device[order]
    shared_cookie_rows = np.flatnonzero(is_shared_cookie[order])
    cookie_count = np.bincount(cookie_person, minlength=n)
    cookie_start = np.concatenate([[0], np.cumsum(cookie_count)[:-1]])

    email_sub = (email != None) & np.where(consent, rng.random(n) < 0.8, rng.random(n) < 0.25)  # noqa: E711
    sms_opt = (phone_raw != None) & (rng.random(n) < 0.25)  # noqa: E711
    browser_app = rng.random(n) < 0.08
    social_follow = rng.random(n) < 0.2
    mail_sub = registers & (rng.random(n) < 0.1)

    return Population(
        n=n,
        person_id=person_id,
        country=country,
        currency=currency,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=date_of_birth,
        address_line=address_line,
        city=city,
        postcode=postcode,
        region=region,
        email=email,
        phone_raw=phone_raw,
        phone_e164=phone_e164,
        record_email=record_email,
        record_phone=record_phone,
        customer_id=customer_id,
        created_at=created_at,
        reg_day=reg_day,
        consent=consent,
        acquisition_channel=acquisition_channel,
        dup_customer_id=dup_customer_id,
        dup_created_at=dup_created_at,
        dup_variant=dup_variant,
        dup_email=dup_email,
        activity=activity,
        affinity=affinity,
        primary_device=primary_device,
        pref_category=pref_category,
        cookie_person=cookie_person,
        cookie_id=cookie_id,
        cookie_device=cookie_device,
        cookie_start=cookie_start,
        cookie_count=cookie_count,
        device_person=device_person,
        device_id=device_id,
        device_type=device_type,
        device_installed=device_installed,
        shared_device_rows=shared_device_rows,
        shared_cookie_rows=shared_cookie_rows,
        email_sub=email_sub,
        sms_opt=sms_opt,
        browser_app=browser_app,
        social_follow=social_follow,
        mail_sub=mail_sub,
    )


_ASCII = str.maketrans({"é": "e", "ë": "e", "è": "e", "ü": "u", "ö": "o", "ä": "a", "ß": "ss", "'": "", " ": ""})


def _ascii(vocabulary: tuple[str, ...]) -> np.ndarray:
    """Names of a vocabulary without accents or apostrophes, for e-mail local parts."""
    return np.asarray([name.translate(_ASCII) for name in vocabulary], dtype=object)
