"""The CRM database: its six tables (docs/inputs.md section 2), their rows, and the write through SQLAlchemy Core.

The database holds each row's latest state at the end of the world: lifecycle steps that would happen
after the last day are not there yet (NULL), and `updated_at` is the latest step that did happen.
"""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_pipeline.ingestion.crm import CRM_SOURCE_COLUMNS

from .common import (
    NA_TS,
    SECONDS_PER_DAY,
    STYLE_CEST,
    STYLE_EST,
    STYLE_NAIVE,
    STYLE_UTC,
    Calendar,
    Frame,
    as_obj,
    concat,
    draw_styles,
    frame_len,
    ids,
    nulls,
    render_ts,
    stream,
)
from .population import Population

log = logging.getLogger(__name__)

# the CRM input contract: the generator writes exactly the columns extraction reads
CRM_TABLES: Mapping[str, tuple[str, ...]] = CRM_SOURCE_COLUMNS
TIMESTAMP_COLUMNS = frozenset(
    {"created_at", "updated_at", "first_response_at", "qualified_at", "converted_at", "closed_at", "resolved_at",
     "responded_at", "term_start", "term_end"}
)  # fmt: skip
FLOAT_COLUMNS = frozenset({"amount"})
INT_COLUMNS = frozenset({"contact_count", "score"})
BOOL_COLUMNS = frozenset({"marketing_consent", "reopened"})
# CRM timestamps: mostly UTC with an offset, some in a local offset, some naive (= UTC)
CRM_STYLE_WEIGHTS = {STYLE_UTC: 0.8, STYLE_CEST: 0.08, STYLE_EST: 0.05, STYLE_NAIVE: 0.07}
PLANS = (("basic", 9.99), ("plus", 19.99), ("pro", 49.99))
LEAD_SOURCES = ("web_form", "webinar", "referral", "partner", "trade_show", "cold_call")


def metadata() -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """The six tables; ids are primary keys, timestamps ISO-8601 strings (with their UTC offset)."""
    md = sa.MetaData()
    tables = {}
    for name, columns in CRM_TABLES.items():
        cols = []
        for i, col in enumerate(columns):
            if i == 0:
                cols.append(sa.Column(col, sa.String(32), primary_key=True))
            elif col in TIMESTAMP_COLUMNS:
                cols.append(sa.Column(col, sa.String(40)))
            elif col in FLOAT_COLUMNS:
                cols.append(sa.Column(col, sa.Float))
            elif col in INT_COLUMNS:
                cols.append(sa.Column(col, sa.Integer))
            elif col in BOOL_COLUMNS:
                cols.append(sa.Column(col, sa.Boolean))
            else:
                cols.append(sa.Column(col, sa.String(200)))
        tables[name] = sa.Table(name, md, *cols)
    return md, tables


def _styles(rng: np.random.Generator, n: int) -> np.ndarray:
    weights = [0.0] * 7
    for k, w in CRM_STYLE_WEIGHTS.items():
        weights[k] = w
    return draw_styles(rng, n, weights)


def _null_some(rng: np.random.Generator, ts: np.ndarray, share: float) -> np.ndarray:
    out = ts.copy()
    out[rng.random(len(ts)) < share] = NA_TS
    return out


def _cap(ts: np.ndarray, end_ts: int) -> np.ndarray:
    """A lifecycle step after the end of the world has not happened yet."""
    return np.where((ts != NA_TS) & (ts < end_ts), ts, NA_TS)


def _latest(*cols: np.ndarray) -> np.ndarray:
    return np.max(np.stack(cols), axis=0)


def _n_per_day(rate_per_10k: float, persons: int, floor: int) -> int:
    return max(floor, round(rate_per_10k * persons / 10_000))


# ------------------------------------------------------------------------------------------ customers


def build_customers(pop: Population, cal: Calendar, seed: int) -> tuple[Frame, Frame]:
    """Customer records (one per registration, duplicates included) and the record -> person truth."""
    rng = stream(seed, "crm", "customers")
    end = cal.end_ts
    prim = np.flatnonzero((pop.created_at != NA_TS) & (pop.created_at < end))
    dup = np.flatnonzero((pop.dup_customer_id != None) & (pop.dup_created_at < end))  # noqa: E711
    person = np.concatenate([prim, dup])
    is_dup = np.concatenate([np.zeros(len(prim), bool), np.ones(len(dup), bool)])
    created = np.concatenate([pop.created_at[prim], pop.dup_created_at[dup]])
    n = len(person)
    first, last = pop.first_name[person].copy(), pop.last_name[person].copy()
    email = pop.record_email[person].copy()
    phone = pop.record_phone[person].copy()
    address, city, postcode, region = (a[person].copy() for a in (pop.address_line, pop.city, pop.postcode, pop.region))
    variant = np.where(is_dup, pop.dup_variant[person], None)
    # the duplicate's differences: a typo, first/last swapped, a new e-mail, or a new address
    typo = variant == "name_typo"
    uniq, inverse = np.unique(first[typo].astype(str), return_inverse=True)
    first[typo] = np.asarray([_typo(u) for u in uniq], dtype=object)[inverse]  # loop over distinct names only
    swap = variant == "swapped_name"
    first[swap], last[swap] = last[swap], first[swap]
    new_email = (variant == "new_email") & (pop.dup_email[person] != None)  # noqa: E711
    email[new_email] = pop.dup_email[person][new_email]
    moved = variant == "moved_address"
    k = int(moved.sum())
    address[moved] = as_obj([f"{s} Park Road" for s in ("12", "48", "7", "230")])[rng.integers(0, 4, k)]
    postcode[moved] = as_obj(["94110", "10001", "60601", "SW1A 2AA"])[rng.integers(0, 4, k)]
    city[moved] = as_obj(["San Francisco", "New York", "Chicago", "London"])[rng.integers(0, 4, k)]
    # some duplicates leave the phone out or type it again
    phone[is_dup & (rng.random(n) < 0.4)] = None
    update = np.where(
        rng.random(n) < 0.25,
        np.minimum(created + rng.integers(1, 20, n) * SECONDS_PER_DAY + rng.integers(0, 3600, n), end - 1),
        created,
    )
    update = np.maximum(update, created)
    update = _null_some(rng, update, 0.03)
    consent = pop.consent[person] & ~(is_dup & (rng.random(n) < 0.5))
    customer_id = np.where(is_dup, pop.dup_customer_id[person], pop.customer_id[person])
    acq = pop.acquisition_channel[person].copy()
    acq[is_dup] = None
    rows: Frame = {
        "customer_id": customer_id,
        "created_at": created,
        "updated_at": update,
        "email": email,
        "phone": phone,
        "first_name": first,
        "last_name": last,
        "date_of_birth": pop.date_of_birth[person],
        "address_line": address,
        "city": city,
        "postcode": postcode,
        "region": region,
        "country": as_obj(("US", "GB", "DE", "FR", "CH"))[pop.country[person]],
        "acquisition_channel": acq,
        "marketing_consent": consent,
        "_person": person,
    }
    truth: Frame = {
        "customer_id": customer_id,
        "true_person_id": pop.person_id[person],
        "is_duplicate": is_dup,
        "duplicate_variant": variant,
    }
    return rows, truth


def _typo(name: str) -> str:
    """A plausible typo: two neighbouring letters swapped (Jonh), or a letter doubled for short names."""
    if len(name) >= 4:
        return name[:1] + name[2] + name[1] + name[3:]
    return name + name[-1]


# -------------------------------------------------------------------------------------- subscriptions


def build_subscriptions(pop: Population, cal: Calendar, seed: int, reporting_currency: str) -> tuple[Frame, Frame]:
    """Subscription terms (renewing or churning) and the orders their starts produce in the window."""
    rng = stream(seed, "crm", "subscriptions")
    start, end = cal.start_ts, cal.end_ts
    registered = np.flatnonzero((pop.created_at != NA_TS) | (pop.reg_day < cal.days))
    subs = registered[rng.random(len(registered)) < 0.08]
    ns = len(subs)
    plan = rng.choice(3, ns, p=(0.5, 0.35, 0.15))
    annual = rng.random(ns) < 0.15
    period = np.where(annual, 365, 30) * SECONDS_PER_DAY
    amount = np.round(as_obj([p[1] for p in PLANS])[plan].astype(float) * np.where(annual, 10, 1), 2)
    # existing subscriptions started some time ago; new ones start in the window after registration
    # in-window registrants get their exact registration instant only on their day: start after it
    reg_ts = np.where(pop.created_at[subs] != NA_TS, pop.created_at[subs], cal.midnights[np.clip(pop.reg_day[subs] + 1, 0, cal.days) + cal.PAD])
    existing = (pop.reg_day[subs] < 0) & (rng.random(ns) < 0.75)
    first_start = np.where(
        existing,
        np.maximum(start - (rng.random(ns) * 2 * period).astype(np.int64), reg_ts + SECONDS_PER_DAY),
        reg_ts + 3600 + (rng.random(ns) * np.maximum(end - reg_ts - 3600, 1)).astype(np.int64),
    )
    keep = first_start < end
    subs, plan, annual, period, amount, first_start, existing = (
        a[keep] for a in (subs, plan, annual, period, amount, first_start, existing)
    )
    ns = len(subs)
    sub_id = ids("sub_", np.arange(ns), 6)
    terms: list[Frame] = []
    cur = first_start.copy()
    alive = np.ones(ns, dtype=bool)
    gen = 0
    while alive.any():
        idx = np.flatnonzero(alive)
        t_start = cur[idx]
        t_end = t_start + period[idx]
        finished = t_end < end
        renew = finished & (rng.random(len(idx)) < 0.85)
        churn = finished & ~renew
        cancel_ts = t_start + (rng.random(len(idx)) * (t_end - t_start)).astype(np.int64)
        cancelled = churn & (rng.random(len(idx)) < 0.6)
        status = np.where(renew, "renewed", np.where(cancelled, "cancelled", np.where(churn, "expired", "active"))).astype(object)
        updated = np.where(renew, t_end, np.where(cancelled, cancel_ts, np.where(churn, t_end, t_start)))
        terms.append(
            {"_sub": idx, "_gen": np.full(len(idx), gen), "term_start": t_start, "term_end": t_end,
             "status": status, "updated_at": updated}
        )  # fmt: skip
        cur[idx] = t_end
        alive[idx[~renew]] = False
        gen += 1
    allt = {k: np.concatenate([t[k] for t in terms]) for k in terms[0]} if terms else {}
    order = np.lexsort((allt["_gen"], allt["_sub"]))
    allt = {k: v[order] for k, v in allt.items()}
    s = allt["_sub"]
    person = subs[s]
    nt = len(s)
    term_rows: Frame = {
        "term_id": ids("term_", np.arange(nt), 7),
        "subscription_id": sub_id[s],
        "customer_id": pop.customer_id[person],
        "plan": as_obj([p[0] for p in PLANS])[plan[s]],
        "amount": amount[s],
        "term_start": allt["term_start"],
        "term_end": allt["term_end"],
        "status": allt["status"],
        "updated_at": _null_some(rng, allt["updated_at"], 0.03),
        "_person": person,
    }
    # orders: every term that starts inside the window is paid (renewal, or the first payment)
    paid = np.flatnonzero((allt["term_start"] >= start) & (allt["term_start"] < end))
    renewal = allt["_gen"][paid] > 0
    k = len(paid)
    orders: Frame = {
        "_person": person[paid],
        "_ts": allt["term_start"][paid],
        "customer_id": pop.customer_id[person[paid]],
        "email": pop.record_email[person[paid]],
        "gross_revenue": amount[s[paid]],
        "discount_amount": np.zeros(k),
        "currency": np.full(k, reporting_currency, dtype=object),
        "sale_type": np.where(renewal, "renewal", "standard").astype(object),
        "subscription_id": np.where(renewal, sub_id[s[paid]], None),
        "categories": np.full(k, "Subscription", dtype=object),
    }
    return term_rows, orders


# ------------------------------------------------------------------------------------ sales & service


def build_sales_and_service(pop: Population, cal: Calendar, seed: int, rate_per_10k: float) -> dict[str, Frame]:
    """Leads, opportunities, tickets and survey responses from 30 days before the window to its end."""
    rng = stream(seed, "crm", "sales")
    end = cal.end_ts
    hist0 = cal.day_start(-30)
    span_days = cal.days + 30
    H = 3600
    with_email = np.flatnonzero(pop.email != None)  # noqa: E711

    # leads
    nl = _n_per_day(3 * rate_per_10k, pop.n, 2) * span_days
    lp = rng.choice(with_email, nl)
    created = hist0 + (rng.random(nl) * (end - hist0)).astype(np.int64)
    created = np.sort(created)
    source = as_obj(LEAD_SOURCES)[rng.choice(len(LEAD_SOURCES), nl, p=(0.35, 0.15, 0.2, 0.12, 0.08, 0.1))]
    responded = rng.random(nl) < 0.9
    first_resp = np.where(responded, created + (rng.lognormal(np.log(5 * H), 1.0, nl)).astype(np.int64), NA_TS)
    first_resp = _cap(first_resp, end)
    qualified = (first_resp != NA_TS) & (rng.random(nl) < 0.5)
    qual_at = _cap(np.where(qualified, first_resp + rng.integers(1, 10, nl) * SECONDS_PER_DAY + rng.integers(0, 8 * H, nl), NA_TS), end)
    converted = (qual_at != NA_TS) & (rng.random(nl) < 0.45)
    conv_at = _cap(np.where(converted, qual_at + rng.integers(2, 25, nl) * SECONDS_PER_DAY, NA_TS), end)
    disq = (first_resp != NA_TS) & (qual_at == NA_TS) & (rng.random(nl) < 0.4)
    status = np.where(conv_at != NA_TS, "converted", np.where(qual_at != NA_TS, "qualified", np.where(disq, "disqualified", "open"))).astype(object)
    lead_cust = np.where((conv_at != NA_TS) | (rng.random(nl) < 0.2), pop.customer_id[lp], None)
    leads: Frame = {
        "lead_id": ids("lead_", np.arange(nl), 6),
        "created_at": created,
        "updated_at": _null_some(rng, _latest(created, first_resp, qual_at, conv_at), 0.03),
        "source": np.where(rng.random(nl) < 0.05, concat_pad(source), source),
        "email": pop.email[lp],
        "phone": pop.phone_raw[lp],
        "customer_id": lead_cust,
        "first_response_at": first_resp,
        "qualified_at": qual_at,
        "converted_at": conv_at,
        "status": status,
        "_person": lp,
    }

    # opportunities: from qualified leads, plus expansion deals with existing customers (no lead)
    ql = np.flatnonzero(qual_at != NA_TS)
    ql = ql[rng.random(len(ql)) < 0.85]
    no = len(ql)
    reg = np.flatnonzero(pop.customer_id != None)  # noqa: E711
    ne = max(2, no // 4)
    ep = rng.choice(reg, ne)
    o_created = np.concatenate(
        [qual_at[ql] + rng.integers(H, 48 * H, no), _after_registration(pop, ep, hist0 + (rng.random(ne) * (end - hist0)).astype(np.int64))]
    )
    o_person = np.concatenate([lp[ql], ep])
    o_lead = np.concatenate([leads["lead_id"][ql], nulls(ne)])
    o_type = np.concatenate([np.full(no, "new_business", dtype=object), as_obj(("upsell", "cross_sell", "renewal"))[rng.integers(0, 3, ne)]])
    m = no + ne
    outcome = rng.choice(3, m, p=(0.4, 0.4, 0.2))  # won, lost, still open
    closed = _cap(np.where(outcome < 2, o_created + rng.integers(3, 45, m) * SECONDS_PER_DAY + rng.integers(0, 8 * H, m), NA_TS), end)
    stage = np.where(closed == NA_TS, "open", np.where(outcome == 0, "won", "lost")).astype(object)
    o_created_ok = o_created < end
    opps: Frame = {
        "opportunity_id": ids("opp_", np.arange(m), 6),
        "lead_id": o_lead,
        "customer_id": np.where(rng.random(m) < 0.8, pop.customer_id[o_person], None),
        "created_at": o_created,
        "updated_at": _null_some(rng, _latest(o_created, closed), 0.03),
        "closed_at": closed,
        "stage": stage,
        "amount": np.round(rng.lognormal(np.log(4000), 0.8, m), 2),
        "opportunity_type": o_type,
        "_person": o_person,
    }
    opps = {k: v[o_created_ok] for k, v in opps.items()}

    # support tickets
    nt = _n_per_day(8 * rate_per_10k, pop.n, 3) * span_days
    tp = rng.choice(reg, nt)
    t_created = _after_registration(pop, tp, hist0 + (rng.random(nt) * (end - hist0)).astype(np.int64))
    channel = as_obj(("email", "phone", "chat", "social"))[rng.choice(4, nt, p=(0.45, 0.2, 0.28, 0.07))]
    median = np.select([channel == "chat", channel == "phone", channel == "social"], [0.2 * H, 0.5 * H, 2 * H], 6 * H)
    t_resp = _cap(np.where(rng.random(nt) < 0.95, t_created + rng.lognormal(np.log(median), 1.0).astype(np.int64) + 30, NA_TS), end)
    contacts = 1 + rng.geometric(0.55, nt) - 1
    resolved = _cap(np.where(t_resp != NA_TS, t_resp + (contacts * rng.lognormal(np.log(6 * H), 1.0, nt)).astype(np.int64), NA_TS), end)
    reopened = (resolved != NA_TS) & (rng.random(nt) < 0.08)
    re_resolved = _cap(np.where(reopened, resolved + rng.integers(1, 6, nt) * SECONDS_PER_DAY, NA_TS), end)
    resolved_final = np.where(reopened, re_resolved, resolved)  # still open again when the re-resolution is later
    contacts = np.where(reopened, contacts + 1, contacts)
    reopen_ts = np.where(reopened, resolved + rng.integers(H, 20 * H, nt), NA_TS)
    tickets: Frame = {
        "ticket_id": ids("tkt_", np.arange(nt), 7),
        "customer_id": np.where(rng.random(nt) < 0.9, pop.customer_id[tp], None),
        "email": np.where(rng.random(nt) < 0.7, pop.record_email[tp], None),
        "created_at": t_created,
        "updated_at": _null_some(rng, _latest(t_created, t_resp, resolved_final, _cap(reopen_ts, end)), 0.03),
        "first_response_at": t_resp,
        "resolved_at": resolved_final,
        "contact_count": np.where(rng.random(nt) < 0.02, -999, contacts).astype(np.int64),
        "reopened": reopened,
        "channel": channel,
        "_person": tp,
    }

    # survey responses
    ns = _n_per_day(12 * rate_per_10k, pop.n, 4) * span_days
    sp = rng.choice(reg, ns)
    stype_i = rng.choice(3, ns, p=(0.4, 0.4, 0.2))
    score = np.select(
        [stype_i == 0, stype_i == 1],
        [rng.choice(11, ns, p=_norm([2, 1, 1, 2, 2, 4, 6, 10, 18, 22, 32])), rng.choice(5, ns, p=_norm([6, 8, 16, 35, 35])) + 1],
        rng.choice(7, ns, p=_norm([4, 6, 10, 15, 25, 22, 18])) + 1,
    )
    responded = _after_registration(pop, sp, hist0 + (rng.random(ns) * (end - hist0)).astype(np.int64))
    surveys: Frame = {
        "response_id": ids("rsp_", np.arange(ns), 7),
        "customer_id": np.where(rng.random(ns) < 0.85, pop.customer_id[sp], None),
        "email": np.where(rng.random(ns) < 0.6, pop.record_email[sp], None),
        "responded_at": responded,
        "updated_at": _null_some(rng, responded, 0.05),
        "survey_type": as_obj(("nps", "csat", "ces"))[stype_i],
        "score": score.astype(np.int64),
        "_person": sp,
    }
    # a missing contact_count (NULL) is legal; -999 marks it for writing as NULL
    tickets["contact_count"] = tickets["contact_count"].astype(object)
    tickets["contact_count"][tickets["contact_count"] == -999] = None
    tickets = {k: v[tickets["created_at"] < end] for k, v in tickets.items()}
    surveys = {k: v[surveys["responded_at"] < end] for k, v in surveys.items()}
    return {"leads": leads, "opportunities": opps, "support_tickets": tickets, "survey_responses": surveys}


def _after_registration(pop: Population, person: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """A customer's ticket, survey or deal comes after their registration (possibly after the end)."""
    created = pop.created_at[person]
    return np.where(created != NA_TS, np.maximum(ts, created + 3600), ts)


def concat_pad(values: np.ndarray) -> np.ndarray:
    """Free text with stray whitespace (the ingestion trims it)."""
    return concat(" ", values, " ")


def _norm(w: list[float]) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    return a / a.sum()


# ---------------------------------------------------------------------------------------------- write


def prepare_rows(name: str, frame: Frame, seed: int) -> pd.DataFrame:
    """The table's columns in contract order, timestamps rendered as ISO strings, sorted by id."""
    rng = stream(seed, "crm", "styles", name)
    out = {}
    n = frame_len(frame)
    for col in CRM_TABLES[name]:
        values = frame[col]
        if col in TIMESTAMP_COLUMNS and values.dtype.kind in "iu":
            values = render_ts(values, _styles(rng, n))
        elif col in FLOAT_COLUMNS:
            values = np.asarray(values, dtype=object)
        out[col] = values
    df = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in out.items()})
    return df.sort_values(CRM_TABLES[name][0], kind="stable").reset_index(drop=True)


def write_database(database_url: str, tables: dict[str, pd.DataFrame], chunk_size: int = 20_000) -> dict[str, int]:
    """Drop and recreate the six tables and insert the rows in chunks (executemany)."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    md, sa_tables = metadata()
    counts = {}
    try:
        md.drop_all(engine)
        md.create_all(engine)
        with engine.begin() as conn:
            for name, df in tables.items():
                records = df.astype(object).where(df.notna(), None).to_dict("records")
                for i in range(0, len(records), chunk_size):
                    conn.execute(sa_tables[name].insert(), records[i : i + chunk_size])
                counts[name] = len(records)
                log.info("crm table %s: %d rows", name, len(records))
    finally:
        engine.dispose()
    return counts
