"""The synthetic world: deterministic, complete, messy on purpose, and causally faithful."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
import sqlalchemy as sa
from scipy.optimize import minimize

from crm_pipeline.generator import REASONS, SCALES, Scale, generate_world
from crm_pipeline.generator.crm import CRM_TABLES
from crm_pipeline.generator.world import LANDING_COLUMNS

START = dt.date(2026, 10, 1)


def _generate(root: Path, seed: int = 7, scale: "str | Scale" = "tiny", days: int | None = None):
    return generate_world(
        str(root / "landing"), f"sqlite:///{root / 'crm.sqlite'}", str(root / "truth"),
        scale=scale, start=START, seed=seed, days=days,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_a")
    return root, _generate(root)


@pytest.fixture(scope="module")
def tiny_again(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_b")
    return root, _generate(root)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _db_rows(root: Path) -> dict[str, list[tuple]]:
    engine = sa.create_engine(f"sqlite:///{root / 'crm.sqlite'}")
    with engine.connect() as conn:
        out = {t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1"))] for t in CRM_TABLES}
    engine.dispose()
    return out


def _read_file(path: Path) -> pd.DataFrame:
    name = path.name
    if name.endswith(".parquet"):
        df = pd.read_parquet(path)
        for col in df.columns:
            if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                df[col] = df[col].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        return df.astype(object).where(df.notna(), None)
    if name.endswith((".csv", ".csv.gz")):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return df.astype(object).where(df != "", None)
    df = pd.read_json(path, lines=True, dtype=False)
    return df.astype(object).where(df.notna(), None)


def _read_source(landing: Path, truth: Path, source: str) -> pd.DataFrame:
    broken = set(pd.read_parquet(truth / "bad_files.parquet")["path"])
    frames = []
    for path in sorted((landing / source).rglob("*.*")):
        rel = path.relative_to(landing).as_posix()
        if rel in broken:
            continue
        df = _read_file(path)
        df["_folder"] = path.parent.name.removeprefix("date=")
        df["_file"] = rel
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------- tests


def test_same_seed_gives_identical_bytes_and_rows(tiny, tiny_again, tmp_path):
    (a, _), (b, _) = tiny, tiny_again
    assert _hashes(a / "landing") == _hashes(b / "landing")
    truth_a, truth_b = _hashes(a / "truth"), _hashes(b / "truth")
    # the manifest names the folders it was written to; everything else is byte-identical
    assert {k: v for k, v in truth_a.items() if k != "manifest.json"} == {k: v for k, v in truth_b.items() if k != "manifest.json"}
    manifest_a, manifest_b = (json.loads((r / "truth" / "manifest.json").read_text()) for r in (a, b))
    assert {k: v for k, v in manifest_a.items() if k != "paths"} == {k: v for k, v in manifest_b.items() if k != "paths"}
    assert _db_rows(a) == _db_rows(b)
    other = _generate(tmp_path, seed=8)
    assert other.persons == 300
    ha, hc = _hashes(a / "landing"), _hashes(tmp_path / "landing")
    assert sum(ha.get(k) != v for k, v in hc.items()) > 0.9 * len(hc)
    assert _db_rows(a)["customers"] != _db_rows(tmp_path)["customers"]


def test_tiny_world_size_and_dates(tiny):
    root, summary = tiny
    assert SCALES["tiny"].persons == 300 and SCALES["tiny"].default_days == 10
    assert (summary.start, summary.end, summary.days, summary.persons) == (START, dt.date(2026, 10, 10), 10, 300)
    assert 5_000 <= summary.rows["events"] <= 40_000
    assert 20 <= summary.rows["orders"] <= 300
    assert summary.rows["refunds"] >= 1 and summary.rows["fx_rates"] >= 20 and summary.rows["costs"] >= 10
    assert set(summary.rows) >= {f"crm_{t}" for t in CRM_TABLES}
    manifest = json.loads((root / "truth" / "manifest.json").read_text())
    assert (manifest["start"], manifest["end"], manifest["seed"], manifest["scale"]) == ("2026-10-01", "2026-10-10", 7, "tiny")
    assert manifest["rows"] == summary.rows
    for source in LANDING_COLUMNS:
        folders = sorted(p.name for p in (root / "landing" / source).iterdir())
        # exporter clocks put a few rows of the first / last day into the neighbouring folder
        assert folders[0] >= "date=2026-09-30" and folders[-1] <= "date=2026-10-11", source
        if source != "refunds":  # a tiny world has only a handful of refunds
            assert "date=2026-10-05" in folders
    assert len(_read_source(root / "landing", root / "truth", "orders")) == summary.rows["orders"]


def test_landing_files_have_the_contract_columns_and_mixed_formats(tiny):
    root, _ = tiny
    exts = set()
    for source, cols in LANDING_COLUMNS.items():
        df = _read_source(root / "landing", root / "truth", source)
        assert list(df.columns[: len(cols)]) == list(cols), source
        exts |= {f.split(".", 1)[1] for f in df["_file"]}
    assert exts == {"parquet", "csv", "jsonl", "json.gz", "csv.gz"}
    events = _read_source(root / "landing", root / "truth", "events")
    in_window = events[events["_folder"].between("2026-10-01", "2026-10-10")]
    assert in_window.groupby("_folder")["_file"].nunique().min() >= 5  # one file per platform, at least
    ts = pd.to_datetime(events["occurred_at"], utc=True, format="ISO8601", errors="coerce")
    assert ts.notna().mean() > 0.99
    assert {"+00:00", "Z", "-05:00"} <= {s[-6:] if s[-6] in "+-" else ("Z" if s.endswith("Z") else "") for s in events["occurred_at"].dropna() if len(s) >= 19}


def test_every_bad_input_class_is_present_and_recorded(tiny):
    root, _ = tiny
    truth = root / "truth"
    bad = pd.read_parquet(truth / "bad_rows.parquet")
    assert set(bad["reason"]) == set(REASONS)
    assert list(bad.columns) == ["source", "day", "row_id", "reason"]
    events = _read_source(root / "landing", truth, "events")
    ids = events["event_id"].value_counts()
    conflicts = bad.loc[(bad["source"] == "events") & (bad["reason"] == "duplicate_id_conflict"), "row_id"]
    assert (ids[conflicts] == 2).all()
    assert set(events.loc[events["event_id"].isin(bad.loc[bad["reason"] == "unknown_event_type", "row_id"]), "event_type"]) <= {"page_view", "email_opne", "purchase_intent"}
    redelivered = pd.read_parquet(truth / "redelivered_rows.parquet")
    ev_dups = redelivered.loc[redelivered["source"] == "events", "row_id"]
    assert len(ev_dups) >= 1 and (ids[ev_dups] == 2).all()
    orders = _read_source(root / "landing", truth, "orders")
    fx_bad = orders[orders["order_id"].isin(bad.loc[bad["reason"] == "missing_fx_rate", "row_id"])]
    assert len(fx_bad) >= 1 and set(fx_bad["currency"]) == {"CHF"}
    fx = _read_source(root / "landing", truth, "fx_rates")
    first_chf = fx.loc[fx["currency"] == "CHF", "_folder"].min()
    assert (fx_bad["ordered_at"].str[:10] < first_chf).all()
    broken = pd.read_parquet(truth / "bad_files.parquet")
    assert len(broken) == 1
    with pytest.raises(Exception):  # noqa: B017 - any parse error will do: the file is cut off
        pd.read_json(root / "landing" / broken["path"][0], lines=True)
    late = pd.read_parquet(truth / "late_files.parquet")
    assert len(late) == 2 and all((root / "landing" / p).is_file() for p in late["path"])
    assert (late["arrival_day"] > late["day"]).all()


def test_database_has_the_six_contract_tables(tiny):
    root, _ = tiny
    engine = sa.create_engine(f"sqlite:///{root / 'crm.sqlite'}")
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) == set(CRM_TABLES)
    for table, cols in CRM_TABLES.items():
        assert [c["name"] for c in insp.get_columns(table)] == list(cols)
        assert insp.get_pk_constraint(table)["constrained_columns"] == [cols[0]]
    with engine.connect() as conn:
        created = [r[0] for r in conn.execute(sa.text("SELECT created_at FROM customers"))]
        leads = pd.read_sql("SELECT * FROM leads", conn)
        terms = pd.read_sql("SELECT * FROM subscription_terms", conn)
        tickets = pd.read_sql("SELECT * FROM support_tickets", conn)
    engine.dispose()
    assert any(c.endswith("+00:00") for c in created) and any(len(c) == 19 for c in created)
    assert any(c.endswith(("+02:00", "-05:00")) for c in created)
    assert leads["updated_at"].isna().any()
    later = leads.dropna(subset=["qualified_at", "updated_at"])
    assert (pd.to_datetime(later["updated_at"], utc=True, format="ISO8601") >= pd.to_datetime(later["qualified_at"], utc=True, format="ISO8601")).all()
    assert set(terms["status"]) >= {"renewed", "active"}
    assert (tickets["contact_count"].dropna() < 1).sum() >= 1  # the contact_count_below_1 rows


def test_truth_covers_every_identifier_in_landing_and_crm(tiny):
    root, _ = tiny
    truth = root / "truth"
    ident = pd.read_parquet(truth / "identifiers.parquet")
    known = set(zip(ident["identifier_type"], ident["identifier"], strict=True))
    seen: set[tuple[str, str]] = set()

    def add(kind: str, values: pd.Series) -> None:
        seen.update((kind, v) for v in values.dropna())

    for source in ("events", "orders"):
        df = _read_source(root / "landing", truth, source)
        for kind in ("customer_id", "anonymous_id", "device_id"):
            add(kind, df[kind])
        add("email", df["email"].dropna().str.strip().str.lower())
        if "phone" in df:
            add("phone", df["phone"].dropna().map(lambda p: phonenumbers.format_number(phonenumbers.parse(p, "US"), phonenumbers.PhoneNumberFormat.E164)))
    engine = sa.create_engine(f"sqlite:///{root / 'crm.sqlite'}")
    with engine.connect() as conn:
        for table in ("customers", "leads", "support_tickets", "survey_responses", "subscription_terms", "opportunities"):
            df = pd.read_sql(f"SELECT * FROM {table}", conn)
            add("customer_id", df["customer_id"])
            if "email" in df:
                add("email", df["email"].dropna().str.strip().str.lower())
            if "phone" in df:
                add("phone", df["phone"].dropna().map(lambda p: phonenumbers.format_number(phonenumbers.parse(p, "US"), phonenumbers.PhoneNumberFormat.E164)))
    engine.dispose()
    assert seen - known == set()
    assert {k for k, _ in seen} == {"customer_id", "email", "phone", "anonymous_id", "device_id"}


def test_identity_mess_is_in_the_truth(tiny):
    root, _ = tiny
    truth = root / "truth"
    records = pd.read_parquet(truth / "customer_records.parquet")
    dups = records[records["is_duplicate"]]
    assert len(dups) >= 4 and set(dups["duplicate_variant"]) == {"name_typo", "swapped_name", "new_email", "moved_address"}
    engine = sa.create_engine(f"sqlite:///{root / 'crm.sqlite'}")
    customers = pd.read_sql("SELECT * FROM customers", engine)
    engine.dispose()
    merged = customers.merge(records, on="customer_id")
    # a duplicate keeps the birth date of the same human's first record
    dob = merged.groupby("true_person_id")["date_of_birth"].nunique()
    assert (dob[dups["true_person_id"].unique()] == 1).all()
    # same name, different humans
    same_name = merged.groupby(["first_name", "last_name"])["true_person_id"].nunique()
    assert same_name.max() >= 2
    ident = pd.read_parquet(truth / "identifiers.parquet")
    shared = ident[ident["is_shared"]]
    assert {"test@test.com", "noemail@example.com", "+10000000000"} & set(shared["identifier"])
    events = _read_source(root / "landing", truth, "events")
    per_device = events.dropna(subset=["device_id", "customer_id"]).groupby("device_id")["customer_id"].nunique()
    assert per_device.max() >= 4
    assert set(per_device[per_device >= 4].index) <= set(shared["identifier"])
    placeholder_records = customers[customers["email"].isin(["test@test.com", "noemail@example.com"])]
    assert placeholder_records["customer_id"].nunique() >= 2


# ---------------------------------------------------------------------------------- causal model

_MEDIUM = {"cpc": "ppc", "ppc": "ppc", "paid_search": "ppc", "display": "display", "banner": "display", "cpm": "display",
           "retargeting": "retargeting", "remarketing": "retargeting", "affiliate": "affiliate", "influencer": "affiliate",
           "video": "video", "paid_social": "paid_social", "paidsocial": "paid_social", "email": "email", "sms": "sms",
           "push": "push", "social": "social", "referral": "referral"}  # fmt: skip
_PREFIX = (("email_", "email"), ("sms_", "sms"), ("push_", "push"), ("app_", "mobile_app"), ("browser_app_", "browser_app"),
           ("social_", "social"), ("mail_", "mailing"))  # fmt: skip
TOUCH_TYPES = ("ad_click", "email_click", "sms_click", "push_open", "social_interaction", "session_start", "browser_app_click", "app_open")


def _derive_channel(ev: pd.DataFrame) -> pd.Series:
    """docs/inputs.md channel derivation (defaults), written independently of the generator."""
    given = ev["channel"].fillna("").str.strip().str.lower()
    out = given.where(given != "", None)
    for prefix, ch in _PREFIX:
        out = out.where(out.notna() | ~ev["event_type"].str.startswith(prefix), ch)
    out = out.fillna(ev["utm_medium"].fillna("").str.strip().str.lower().map(_MEDIUM))
    host = ev["referrer"].fillna("").str.extract(r"^(?:https?://)?([^/]+)")[0].fillna("").str.lower()
    ref = pd.Series(None, index=ev.index, dtype=object)
    ref[host != ""] = "referral"
    ref[host.str.contains(r"(?:^|\.)(?:google|bing|duckduckgo|yahoo|baidu|yandex)\.")] = "seo"
    ref[host.str.contains(r"(?:^|\.)(?:facebook|instagram|twitter|linkedin|tiktok|pinterest|youtube)\.|(?:^|\.)(?:t\.co|x\.com)$")] = "social"
    ref[host.str.endswith("blog.example-shop.com")] = "blog"
    ref[(host == "example-shop.com") | host.str.endswith(".example-shop.com") & ~host.str.endswith("blog.example-shop.com")] = "direct"
    out = out.fillna(ref)
    out = out.fillna(pd.Series(np.where(ev["event_type"].isin(["ad_impression", "ad_click"]), "display", "direct"), index=ev.index))
    return out


def _persons(df: pd.DataFrame, ident: pd.DataFrame, kinds: tuple[str, ...]) -> pd.Series:
    """True person of each row from its first non-shared identifier (via the truth)."""
    solo = ident[~ident["is_shared"]]
    out = pd.Series(None, index=df.index, dtype=object)
    for kind in kinds:
        lookup = solo[solo["identifier_type"] == kind].set_index("identifier")["true_person_id"]
        vals = df[kind].dropna()
        if kind == "email":
            vals = vals.str.strip().str.lower()
        out = out.fillna(vals.map(lookup))
    return out


def test_purchases_follow_the_configured_channel_effects(tmp_path):
    """Fit logit P(order on a person-day) = a + b * sum_c effect_c * touches_c(days d-29..d) on the landing data."""
    scale = Scale("effects_test", persons=6000, default_days=14, warm_start=False)
    _generate(tmp_path, seed=11, scale=scale)
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    ident = pd.read_parquet(truth / "identifiers.parquet")
    effects = pd.read_parquet(truth / "channel_effects.parquet").set_index("channel")
    bad = set(pd.read_parquet(truth / "bad_rows.parquet")["row_id"])

    ev = _read_source(landing, truth, "events").drop_duplicates("event_id")
    ev = ev[~ev["event_id"].isin(bad) & ev["event_type"].isin(TOUCH_TYPES)].copy()
    ev["channel_d"] = _derive_channel(ev)
    ev["person"] = _persons(ev, ident, ("customer_id", "device_id", "anonymous_id", "email"))
    ev["day"] = (pd.to_datetime(ev["occurred_at"], utc=True, format="ISO8601").dt.tz_localize(None) - pd.Timestamp(START)).dt.days
    ev = ev.dropna(subset=["person"])
    ev["x"] = ev["channel_d"].map(effects["effect"]).fillna(0.0)
    daily = ev.groupby(["person", "day"])["x"].sum().unstack(fill_value=0.0)

    orders = _read_source(landing, truth, "orders").drop_duplicates("order_id")
    orders = orders[~orders["order_id"].isin(bad) & orders["subscription_id"].isna()].copy()
    orders["person"] = _persons(orders, ident, ("customer_id", "device_id", "anonymous_id", "email"))
    orders["day"] = (pd.to_datetime(orders["ordered_at"], utc=True, format="ISO8601").dt.tz_localize(None) - pd.Timestamp(START)).dt.days
    bought = orders.dropna(subset=["person"]).groupby(["person", "day"]).size()

    persons = pd.Index(ident.loc[ident["identifier_type"] == "anonymous_id", "true_person_id"].unique())
    days = range(14)
    x = daily.reindex(index=persons, columns=days, fill_value=0.0).cumsum(axis=1).to_numpy().ravel()
    y = np.zeros((len(persons), 14))
    b_idx = bought.index.to_frame(index=False)
    pi = persons.get_indexer(b_idx["person"])
    ok = (pi >= 0) & b_idx["day"].between(0, 13).to_numpy()
    y[pi[ok], b_idx["day"].to_numpy()[ok]] = 1
    y = y.ravel()
    assert y.sum() > 300

    def nll(theta: np.ndarray, feature: np.ndarray) -> float:
        z = theta[0] + theta[1] * feature
        return float(np.sum(np.logaddexp(0, z) - y * z))

    fit = minimize(nll, x0=np.array([-5.0, 0.5]), args=(x,), method="Nelder-Mead")
    a, b = fit.x
    assert 0.75 < b < 1.25, fit.x
    assert abs(a - effects["base_logit"].iloc[0]) < 0.4, fit.x
    # the configured effects explain purchases better than the same effects given to the wrong channels
    shuffled = dict(zip(effects.index, effects["effect"].to_numpy()[::-1], strict=True))
    x_wrong = ev.assign(x=ev["channel_d"].map(shuffled).fillna(0.0)).groupby(["person", "day"])["x"].sum().unstack(fill_value=0.0)
    x_wrong = x_wrong.reindex(index=persons, columns=days, fill_value=0.0).cumsum(axis=1).to_numpy().ravel()
    wrong = minimize(nll, x0=np.array([-5.0, 0.5]), args=(x_wrong,), method="Nelder-Mead")
    assert fit.fun < wrong.fun - 5
