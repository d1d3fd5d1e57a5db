"""`generate_world`: the whole synthetic CRM world — landing files, CRM database and ground truth.

Days are simulated in order and each day's files are written before the next day starts, so memory
stays bounded by a couple of days of rows. The same arguments always give the same bytes.
"""

import datetime as dt
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crm_pipeline.settings import mask_url

from .bad_input import BadInput
from .common import NA_TS, Calendar, Frame, as_obj, concat_frames, frame_len, sigmoid, stream
from .crm import (
    CRM_TABLES,
    build_customers,
    build_sales_and_service,
    build_subscriptions,
    prepare_rows,
    write_database,
)
from .population import (
    PLACEHOLDER_EMAILS,
    PLACEHOLDER_PHONE,
    PLACEHOLDER_PHONE_E164,
    TOUCH_CHANNELS,
    Population,
    build_population,
)
from .scales import Scale, resolve_scale
from .simulation import (
    BASE_LOGIT,
    EFFECTS,
    EVENT_COLUMNS,
    LOOKBACK_DAYS,
    MAX_DAILY_PROBABILITY,
    ORDER_COLUMNS,
    PAID_CAMPAIGNS,
    REFUND_COLUMNS,
    Simulator,
)
from .writer import LandingWriter

log = logging.getLogger(__name__)

COST_COLUMNS: tuple[str, ...] = ("date", "cost_type", "objective", "channel", "campaign_id", "amount", "currency")
FX_COLUMNS: tuple[str, ...] = ("date", "currency", "rate_to_reporting")
LANDING_COLUMNS = {
    "events": EVENT_COLUMNS,
    "orders": ORDER_COLUMNS,
    "refunds": REFUND_COLUMNS,
    "costs": COST_COLUMNS,
    "fx_rates": FX_COLUMNS,
}
# exporter clocks relative to the reporting timezone: events are exported one hour ahead (the last hour
# of a day lands in the next day's folder), orders half an hour behind (the first half hour lands in
# the previous day's folder)
EXPORTER_SHIFT_S = {"events": 3600, "orders": -1800, "refunds": 0}
# US dollars per unit, the starting point of each currency's daily random walk
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CHF": 1.12, "SEK": 0.095}
RARE_CURRENCY = "CHF"
CPC = {"ppc": 1.8, "display": 0.0, "retargeting": 0.9, "affiliate": 0.6, "video": 0.0, "paid_social": 0.8}
CPM = {"ppc": 0.0, "display": 6.0, "retargeting": 8.0, "affiliate": 0.0, "video": 15.0, "paid_social": 7.0}


@dataclass
class WorldSummary:
    """What was generated and where (also written to `<truth_root>/manifest.json`)."""

    start: dt.date
    end: dt.date  # inclusive
    days: int
    persons: int
    seed: int
    scale: str
    rows: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        return out


def generate_world(
    landing_root: str,
    database_url: str,
    truth_root: str,
    *,
    scale: "str | Scale" = "small",
    start: dt.date,
    days: int | None = None,
    seed: int = 7,
    bad_rate: float = 0.01,
    timezone: str = "UTC",
    reporting_currency: str = "USD",
    site_hosts: tuple[str, ...] = ("example-shop.com",),
    blog_hosts: tuple[str, ...] = ("blog.example-shop.com",),
) -> WorldSummary:
    """Generate landing files, the CRM database and the ground truth of one synthetic world.

    `landing_root` and `truth_root` are local folders (their previous content for this world's
    sources is replaced); `database_url` any SQLAlchemy URL (its six CRM tables are dropped and
    recreated).
    """
    sc = resolve_scale(scale)
    n_days = int(days if days is not None else sc.default_days)
    if n_days < 1:
        raise ValueError("days must be >= 1")
    reporting_currency = reporting_currency.strip().upper()
    if reporting_currency not in USD_PER_UNIT:
        raise ValueError(f"reporting currency must be one of {sorted(USD_PER_UNIT)}")
    landing, truth = Path(landing_root), Path(truth_root)
    for source in LANDING_COLUMNS:
        shutil.rmtree(landing / source, ignore_errors=True)
    landing.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)

    cal = Calendar.build(start, n_days, timezone)
    pop = build_population(sc, cal, seed)
    rare = RARE_CURRENCY if reporting_currency != RARE_CURRENCY else "SEK"
    rare_first_day = min(2, n_days)
    usd_per, fx_frame = _fx_rates(cal, seed, reporting_currency, rare, rare_first_day)
    terms, sub_orders = build_subscriptions(pop, cal, seed, reporting_currency)
    sim = Simulator(pop, cal, seed, tuple(site_hosts), tuple(blog_hosts), sub_orders, rare, rare_first_day, warm_start=sc.warm_start)
    writer = LandingWriter(landing, cal, LANDING_COLUMNS, broken_day=n_days // 2)
    bad = BadInput(seed, cal, bad_rate)

    for day in range(n_days):
        out = sim.simulate_day(day)
        for source, frame in (("events", out.events), ("orders", out.orders), ("refunds", out.refunds)):
            frame["_folder"] = cal.day_of(frame["_ts"] + EXPORTER_SHIFT_S[source]) if frame_len(frame) else np.empty(0, np.int64)
            protected = None
            if source == "orders" and frame_len(frame):
                # orders in the rare currency before its first rate: missing_fx_rate, nothing else
                protected = frame["currency"] == rare
                if day < rare_first_day:
                    bad.record_missing_fx(frame, np.flatnonzero(protected))
            frame = bad.inject(source, frame, day, protected)
            writer.add(source, frame)
        costs = _costs(cal, seed, day, out, usd_per, sc)
        writer.add("costs", bad.inject("costs", costs, day))
        writer.add("fx_rates", {k: v[fx_frame["_folder"] == day] for k, v in fx_frame.items()})
        # a folder is complete once no later day can add rows to it
        for source, shift in EXPORTER_SHIFT_S.items():
            writer.flush(source, day if shift >= 0 else day - 1)
        writer.flush("costs", day)
        writer.flush("fx_rates", day)
        log.info("day %s: %d events, %d orders", cal.date(day), frame_len(out.events), frame_len(out.orders))
    writer.flush_all()

    # the CRM as it stands at the end of the world
    customers, records_truth = build_customers(pop, cal, seed)
    crm = build_sales_and_service(pop, cal, seed, sc.crm_rate_per_10k)
    crm["customers"] = customers
    crm["subscription_terms"] = terms
    bad.inject_crm(crm)
    db_rows = write_database(database_url, {name: prepare_rows(name, crm[name], seed) for name in CRM_TABLES})

    bad_rows, redelivered = bad.tables()
    _write_truth(truth, pop, records_truth, bad_rows, redelivered, writer, cal, n_days)
    rows = {**writer.rows_written, **{f"crm_{k}": v for k, v in db_rows.items()}}
    summary = WorldSummary(
        start=cal.start,
        end=cal.date(n_days - 1),
        days=n_days,
        persons=pop.n,
        seed=seed,
        scale=sc.name,
        rows=dict(sorted(rows.items())),
        # the manifest is a file anyone may read: the URL's password is masked
        paths={"landing_root": str(landing), "database_url": mask_url(database_url), "truth_root": str(truth)},
    )
    manifest = {
        **summary.to_json(),
        "timezone": timezone,
        "reporting_currency": reporting_currency,
        "bad_rate": bad_rate,
        "rare_currency": rare,
        "rare_currency_first_rate": cal.date(rare_first_day).isoformat(),
        "counts": {
            "landing_files": len(writer.files),
            "customer_records": frame_len(records_truth),
            "duplicate_customer_records": int(np.sum(records_truth["is_duplicate"])),
            "bad_rows": frame_len(bad_rows),
            "redelivered_rows": frame_len(redelivered),
        },
    }
    (truth / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return summary


# -------------------------------------------------------------------------------------- fx and costs


def _fx_rates(cal: Calendar, seed: int, reporting: str, rare: str, rare_first_day: int) -> tuple[np.ndarray, Frame]:
    """Daily USD value of each currency (random walk) and the fx_rates rows, with some days missing."""
    rng = stream(seed, "fx")
    currencies = list(USD_PER_UNIT)
    steps = rng.normal(0, 0.003, size=(cal.days, len(currencies)))
    steps[:, currencies.index("USD")] = 0
    usd_per = np.asarray([USD_PER_UNIT[c] for c in currencies]) * np.exp(np.cumsum(steps, axis=0))
    rows: list[Frame] = []
    for ci, cur in enumerate(currencies):
        if cur == reporting or (cur == "SEK" and rare != "SEK"):
            continue
        days = np.arange(cal.days)
        present = rng.random(cal.days) >= 0.1
        present[0] = True
        if cur == rare:
            present &= days >= rare_first_day
        d = days[present]
        rate = np.round(usd_per[d, ci] / usd_per[d, currencies.index(reporting)], 6)
        rows.append({"_folder": d, "currency": np.full(len(d), cur, dtype=object), "rate_to_reporting": rate, "_part": np.full(len(d), "fx_rates", dtype=object)})
    frame = concat_frames(rows, ("_folder", "currency", "rate_to_reporting", "_part"), {})
    order = np.lexsort((frame["currency"].astype(str), frame["_folder"]))
    return usd_per, {k: v[order] for k, v in frame.items()}


def _costs(cal: Calendar, seed: int, day: int, out: object, usd_per: np.ndarray, sc: Scale) -> Frame:
    """Media cost per paid channel and campaign (from the day's ad traffic) plus monthly overheads."""
    rng = stream(seed, "costs", day)
    currencies = list(USD_PER_UNIT)
    rows: list[tuple[str, str, str | None, str | None, float, str]] = []
    billing = {cid: (obj, cur) for camps in PAID_CAMPAIGNS.values() for cid, obj, cur in camps}
    for channel, cid, impressions, clicks in out.ad_stats:
        usd = clicks * CPC[channel] + impressions * CPM[channel] / 1000
        usd *= rng.uniform(0.9, 1.1)
        obj, cur = billing[cid]
        if usd > 0:
            rows.append(("media", obj, channel, cid, usd, cur))
    size = sc.persons / 10_000
    rows.append(("media", "retention", "email", None, out.email_sends * 0.0008 + 5 * size, "USD"))
    if out.sms_sends:
        rows.append(("media", "retention", "sms", None, out.sms_sends * 0.0075, "USD"))
    date = cal.date(day)
    if date.weekday() == 0:
        # a sponsorship outside the taxonomy: channel kept as given, grouped "other"
        rows.append(("media", "brand", "podcast", "pod-weekly", 400 * size, "USD"))
    if date.day == 1:
        rows += [
            ("salaries", "acquisition", None, None, 42_000 * size, "USD"),
            ("salaries", "retention", None, None, 26_000 * size, "USD"),
            ("tools", "retention", None, None, 3_500 * size, "USD"),
            ("tools", "acquisition", None, None, 1_200 * size, "USD"),
            ("agency", "brand", None, None, 8_000 * size, "EUR"),
            ("other", "acquisition", None, None, 900 * size, "GBP"),
        ]
    k = len(rows)
    cur = as_obj([r[5] for r in rows])
    usd_amount = np.asarray([r[4] for r in rows], dtype=float)
    rate = np.asarray([usd_per[day, currencies.index(c)] for c in cur])
    return {
        "_folder": np.full(k, day, dtype=np.int64),
        "_part": np.full(k, "costs", dtype=object),
        "date": cal.dates(np.full(k, day)),
        "cost_type": as_obj([r[0] for r in rows]),
        "objective": as_obj([r[1] for r in rows]),
        "channel": as_obj([r[2] for r in rows]),
        "campaign_id": as_obj([r[3] for r in rows]),
        "amount": np.round(usd_amount / rate, 2),
        "currency": cur,
    }


# -------------------------------------------------------------------------------------------- truth


def _identifiers(pop: Population, records: Frame) -> pa.Table:
    """One row per (identifier type, identifier, true person); shared and placeholder ones flagged."""
    pid = pop.person_id
    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(kind: str, values: np.ndarray, persons: np.ndarray, placeholder: np.ndarray | None = None) -> None:
        keep = values != None  # noqa: E711
        ph = np.zeros(len(values), bool) if placeholder is None else placeholder
        parts.append((kind, values[keep], pid[persons[keep]], ph[keep]))

    rec_person = np.searchsorted(pid, records["true_person_id"])
    add("customer_id", records["customer_id"], rec_person)
    everyone = np.arange(pop.n)
    add("email", pop.email, everyone)
    add("email", pop.dup_email, everyone)
    ph_e = np.isin(pop.record_email.astype(str), list(PLACEHOLDER_EMAILS))
    registered = (pop.created_at != NA_TS)
    add("email", np.where(ph_e & registered, pop.record_email, None), everyone, ph_e)
    add("phone", pop.phone_e164, everyone)
    ph_p = (pop.record_phone == PLACEHOLDER_PHONE) & registered
    add("phone", np.where(ph_p, PLACEHOLDER_PHONE_E164, None), everyone, ph_p)
    add("anonymous_id", pop.cookie_id, pop.cookie_person)
    add("device_id", pop.device_id, pop.device_person)
    kind = np.concatenate([np.full(len(p[1]), p[0], dtype=object) for p in parts])
    ident = np.concatenate([p[1] for p in parts])
    person = np.concatenate([p[2] for p in parts])
    placeholder = np.concatenate([p[3] for p in parts])
    table = pa.table(
        {"identifier_type": pa.array(kind, pa.string()), "identifier": pa.array(ident, pa.string()),
         "true_person_id": pa.array(person, pa.string()), "is_placeholder": pa.array(placeholder, pa.bool_())}
    )  # fmt: skip
    df = table.to_pandas().drop_duplicates(["identifier_type", "identifier", "true_person_id"])
    persons_per = df.groupby(["identifier_type", "identifier"])["true_person_id"].transform("nunique")
    df["is_shared"] = (persons_per > 1) | df["is_placeholder"]
    df = df.sort_values(["identifier_type", "identifier", "true_person_id"]).reset_index(drop=True)
    return pa.Table.from_pandas(df[["identifier_type", "identifier", "true_person_id", "is_shared", "is_placeholder"]], preserve_index=False)


def _write_truth(
    truth: Path,
    pop: Population,
    records: Frame,
    bad_rows: Frame,
    redelivered: Frame,
    writer: LandingWriter,
    cal: Calendar,
    n_days: int,
) -> None:
    def write(name: str, table: pa.Table) -> None:
        pq.write_table(table.replace_schema_metadata(None), truth / name, compression="snappy")

    write("identifiers.parquet", _identifiers(pop, records))
    order = np.argsort(records["customer_id"].astype(str))
    write(
        "customer_records.parquet",
        pa.table(
            {"customer_id": pa.array(records["customer_id"][order], pa.string()),
             "true_person_id": pa.array(records["true_person_id"][order], pa.string()),
             "is_duplicate": pa.array(records["is_duplicate"][order], pa.bool_()),
             "duplicate_variant": pa.array(records["duplicate_variant"][order], pa.string())}
        ),
    )  # fmt: skip
    write(
        "channel_effects.parquet",
        pa.table(
            {"channel": pa.array(list(TOUCH_CHANNELS)), "effect": pa.array([EFFECTS[c] for c in TOUCH_CHANNELS], pa.float64()),
             "base_logit": pa.array([BASE_LOGIT] * len(TOUCH_CHANNELS), pa.float64()),
             "base_rate": pa.array([float(sigmoid(np.asarray(BASE_LOGIT)))] * len(TOUCH_CHANNELS), pa.float64()),
             "max_daily_probability": pa.array([MAX_DAILY_PROBABILITY] * len(TOUCH_CHANNELS), pa.float64()),
             "lookback_days": pa.array([LOOKBACK_DAYS] * len(TOUCH_CHANNELS), pa.int32())}
        ),
    )  # fmt: skip

    def dated(frame: Frame, cols: tuple[str, ...]) -> pa.Table:
        arrays = {}
        for c in cols:
            arrays[c] = pa.array(frame[c], pa.string())
        table = pa.table(arrays)
        if table.num_rows:
            table = table.sort_by([(c, "ascending") for c in cols])
        return table.set_column(1, "day", table.column("day").cast(pa.date32())) if "day" in cols else table

    write("bad_rows.parquet", dated(bad_rows, ("source", "day", "row_id", "reason")))
    write("redelivered_rows.parquet", dated(redelivered, ("source", "day", "row_id")))

    in_window = [f for f in writer.files if cal.start <= f["day"] <= cal.date(n_days - 1)]
    late = []
    for source, part, frac, delay in (("orders", "orders", 0.5, 2), ("events", "app", 0.7, 1)):
        target = cal.date(min(n_days - 1, int(n_days * frac)))
        match = [f for f in in_window if f["source"] == source and f["part"] == part and f["day"] == target and "-" not in str(f["path"]).rsplit("/", 1)[-1]]
        if match:
            f = match[0]
            late.append({"path": f["path"], "source": source, "day": f["day"], "arrival_day": f["day"] + dt.timedelta(days=delay)})
    write(
        "late_files.parquet",
        pa.table(
            {"path": pa.array([x["path"] for x in late], pa.string()), "source": pa.array([x["source"] for x in late], pa.string()),
             "day": pa.array([x["day"] for x in late], pa.date32()), "arrival_day": pa.array([x["arrival_day"] for x in late], pa.date32())}
        ),
    )  # fmt: skip
    b = writer.broken
    write(
        "bad_files.parquet",
        pa.table(
            {"path": pa.array([x["path"] for x in b], pa.string()), "source": pa.array([x["source"] for x in b], pa.string()),
             "day": pa.array([x["day"] for x in b], pa.date32()), "reason": pa.array([x["reason"] for x in b], pa.string()),
             "detail": pa.array([x["detail"] for x in b], pa.string()), "rows": pa.array([x["rows"] for x in b], pa.int64())}
        ),
    )  # fmt: skip
