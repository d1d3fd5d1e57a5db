"""The `crm-pipeline` command line: generate a sample world, run a date range, show status, run the demo.

Dagster's own CLI (`dagster dev`, `dagster asset materialize`, ...) keeps working beside it.
"""

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.dataset as pads

from crm_pipeline.metadata import latest_metadata
from crm_pipeline.settings import Settings, mask_url
from crm_pipeline.storage.fs import filesystem, join

log = logging.getLogger("crm_pipeline")

# Dagster's console logger prints every step event; the command line prints its own progress instead
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DEMO_SCALE = "small"
DEMO_DAYS = 14


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from err


def truth_root_for(settings: Settings) -> str:
    """Ground truth lives beside the landing zone, never inside it (the pipeline must not read it)."""
    landing = settings.landing_root.rstrip("/")
    return landing.rsplit("/", 1)[0] + "/ground_truth"


def _ensure_instance() -> dg.DagsterInstance:
    """The configured Dagster instance (DAGSTER_HOME); defaults to data/dagster_home for local use."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str((Path.cwd() / "data" / "dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    config = Path(home) / "dagster.yaml"
    if not config.exists():
        # the default local instance: SQLite storage under DAGSTER_HOME (see docs/operations for PostgreSQL)
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


# ---------------------------------------------------------------------------------------------------------------
# generate

def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from crm_pipeline.generator import generate_world

    if args.out:
        out = Path(args.out).resolve()
        landing, database_url, truth = str(out / "landing"), f"sqlite:///{out / 'crm.sqlite'}", str(out / "ground_truth")
    else:
        landing, database_url, truth = settings.landing_root, settings.database_url, truth_root_for(settings)
    start = args.start or settings.start_date
    t0 = time.perf_counter()
    summary = generate_world(
        landing, database_url, truth, scale=args.scale, start=start, days=args.days, seed=args.seed,
        bad_rate=args.bad_rate, timezone=settings.timezone, reporting_currency=settings.reporting_currency,
        site_hosts=settings.site_hosts, blog_hosts=settings.blog_hosts,
    )
    print(f"Generated a {args.scale} world for {summary.start} .. {summary.end} "
          f"({summary.persons} persons) in {time.perf_counter() - t0:.1f} s")
    print(f"  landing zone : {landing}")
    print(f"  CRM database : {mask_url(database_url)}")
    print(f"  ground truth : {truth}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# run

def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise SystemExit(f"--end {end} is before --start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def run_range(settings: Settings, start: dt.date, end: dt.date, select: str | None = None,
              instance: dg.DagsterInstance | None = None, echo=print) -> list[dict[str, object]]:
    """Materialise every selected asset for each day of start..end, in date order, in-process.

    Days run one after another because the snapshot assets depend on the previous day (one run per day is
    also their backfill policy). Returns one summary row per ingestion source and day.
    """
    from crm_pipeline.definitions import DAILY_JOB_NAME, build_definitions, daily_partitions

    if start < settings.start_date:
        raise SystemExit(f"--start {start} is before the first partition CRM_START_DATE={settings.start_date}")
    instance = instance or _ensure_instance()
    defs = build_definitions(settings)
    partitions = daily_partitions(settings)
    last = partitions.get_last_partition_key()
    if last is None or end > dt.date.fromisoformat(last):
        raise SystemExit(f"--end {end} is after the last complete day {last} in {settings.timezone}")
    # runs of the daily job, named after it in the instance and the UI like the schedule's runs; a selection
    # keeps the inline checks of the selected assets (the freshness checks stay the sensor's) and completes
    # multi-assets that cannot run in part (the identity graph writes its five tables together)
    job = defs.resolve_job_def(DAILY_JOB_NAME)
    if select:
        keys = dg.AssetSelection.from_string(select).required_multi_asset_neighbors().resolve(
            defs.resolve_asset_graph())
        job = job.get_subset(asset_selection=keys, asset_check_selection={
            k for a in defs.assets or [] for k in a.check_keys if k.asset_key in keys})
    rows: list[dict[str, object]] = []
    days = _days(start, end)
    for i, day in enumerate(days, 1):
        t0 = time.perf_counter()
        result = job.execute_in_process(partition_key=day.isoformat(), instance=instance, raise_on_error=False,
                                        tags={"crm_pipeline/source": "cli"},
                                        run_config=QUIET_RUN_CONFIG)
        evaluations = result.get_asset_check_evaluations()
        failed = [e for e in evaluations if not e.passed]
        materialised = result.get_asset_materialization_events()
        status = "ok" if result.success else "FAILED"
        echo(f"[{i}/{len(days)}] {day}  {status}  {len(materialised)} assets, {len(evaluations)} checks "
             f"({len(failed)} not passed)  {time.perf_counter() - t0:.1f} s")
        for e in failed:
            echo(f"    check {e.asset_key.to_user_string()}:{e.check_name} did not pass ({e.severity.value})")
        for event in materialised:
            metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
            if "rows_in" in metadata:  # an extraction: its counts must reconcile
                rows.append({"day": day.isoformat(), "source": metadata["source"], "rows_in": metadata["rows_in"],
                             "clean": metadata["rows_clean"], "quarantined": metadata["rows_quarantined"],
                             "duplicates": metadata["rows_duplicate"]})
        if not result.success:
            for event in result.all_events:
                if event.is_failure:
                    echo(f"    {event.message}")
                # the reason, not only what failed: the innermost error of a step or run failure says it
                error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
                while error is not None and error.cause is not None:
                    error = error.cause
                if error is not None:
                    echo(f"      {error.message.strip()}")
            raise SystemExit(f"run for {day} failed; earlier days are materialised, fix and re-run from {day}")
    return rows


def print_counts(rows: Sequence[dict[str, object]]) -> None:
    """Per source: rows in / clean / quarantined / duplicates over the range; per day: quarantined rows."""
    if not rows:
        return
    frame = pd.DataFrame(rows)
    totals = frame.groupby("source")[["rows_in", "clean", "quarantined", "duplicates"]].sum()
    print(f"\nRows per source, {frame['day'].min()} .. {frame['day'].max()} "
          "(in = clean + quarantined + duplicates):")
    print(totals.to_string())
    per_day = frame.pivot_table(index="day", columns="source", values="quarantined", aggfunc="sum", fill_value=0)
    print("\nQuarantined rows per day and source:")
    print(per_day.to_string())


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    rows = run_range(settings, args.start, args.end, args.select)
    print_counts(rows)
    print(f"\nOutputs: {settings.warehouse_root}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# status

def quarantine_counts(settings: Settings) -> pd.DataFrame:
    """Quarantined rows per source, day and reason, read from the warehouse."""
    root = join(settings.warehouse_root, "quarantine")
    fs, path = filesystem(root, settings.storage_options)
    frames = []
    if fs.exists(path):
        for source_dir in sorted(fs.ls(path, detail=False)):
            source = source_dir.rstrip("/").rsplit("/", 1)[-1]
            dataset = pads.dataset(source_dir, filesystem=fs, format="parquet", partitioning="hive")
            table = dataset.to_table(columns=["date", "reason"])
            if table.num_rows:
                counts = table.to_pandas().astype(str).value_counts().rename("rows").reset_index()
                counts.insert(0, "source", source)
                frames.append(counts)
    if not frames:
        return pd.DataFrame(columns=["source", "date", "reason", "rows"])
    return pd.concat(frames).sort_values(["source", "date", "reason"]).reset_index(drop=True)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from crm_pipeline.definitions import build_definitions, daily_partitions

    instance = _ensure_instance()
    defs = build_definitions(settings)
    partitions = daily_partitions(settings)
    all_keys = partitions.get_partition_keys()
    print(f"Partitions {settings.start_date} .. {all_keys[-1] if all_keys else '-'} ({settings.timezone}); "
          f"instance {instance.root_directory}; warehouse {settings.warehouse_root}\n")
    rows = []
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda spec: spec.key.to_user_string()):
        done = sorted(instance.get_materialized_partitions(spec.key))
        rows.append({"asset": spec.key.to_user_string(), "days": len(done),
                     "first": done[0] if done else "-", "last": done[-1] if done else "-",
                     "missing_between": (all_keys.index(done[-1]) - all_keys.index(done[0]) + 1 - len(done))
                     if done and done[0] in all_keys and done[-1] in all_keys else 0})
    print(pd.DataFrame(rows).to_string(index=False))
    quarantine = quarantine_counts(settings)
    print("\nQuarantined rows by source and reason:")
    if quarantine.empty:
        print("  none")
    else:
        print(quarantine.groupby(["source", "reason"])["rows"].sum().reset_index().to_string(index=False))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# explain

def _read_partition(settings: Settings, asset_path: str, day: str) -> pd.DataFrame:
    fs, path = filesystem(join(settings.warehouse_root, asset_path, f"date={day}", "part.parquet"),
                          settings.storage_options)
    with fs.open(path, "rb") as f:
        return pd.read_parquet(f)


def _identity_days(settings: Settings) -> list[str]:
    fs, path = filesystem(join(settings.warehouse_root, "identity", "identity_map"), settings.storage_options)
    if not fs.exists(path):
        return []
    return sorted(p.rstrip("/").rsplit("date=", 1)[-1] for p in fs.ls(path, detail=False) if "date=" in p)


def explain(settings: Settings, value: str, identifier_type: str | None = None,
            day: str | None = None) -> tuple[str, pd.DataFrame]:
    """(person_id, explanation) for a person id or an identifier (email/phone given in clear are hashed)."""
    from crm_pipeline.identity.graph import IdentityState, explain_person
    from crm_pipeline.ingestion.normalise import normalise_email, normalise_phone, pseudonymise

    days = _identity_days(settings)
    if not days:
        raise SystemExit(f"no identity_map under {settings.warehouse_root}: run the identity stage first")
    day = day or days[-1]
    if day not in days:
        raise SystemExit(f"identity_map has no partition {day} (it has {days[0]} .. {days[-1]})")
    idmap = _read_partition(settings, "identity/identity_map", day)
    links = _read_partition(settings, "identity/identity_link_state", day)
    merges = pd.concat([_read_partition(settings, "identity/identity_merges", d) for d in days if d <= day],
                       ignore_index=True)
    person_id = value
    if identifier_type:
        lookup = pd.Series([value], dtype="string")
        if identifier_type == "email":
            lookup = pseudonymise(normalise_email(lookup), settings.pii_key)
        elif identifier_type == "phone":
            lookup = pseudonymise(normalise_phone(lookup, settings.phone_region), settings.pii_key)
        hit = idmap[(idmap["identifier_type"] == identifier_type) & (idmap["identifier"] == lookup.iloc[0])]
        if hit.empty:
            raise SystemExit(f"{identifier_type} {value!r} is not in identity_map {day}")
        person_id = str(hit["person_id"].iloc[0])
    state = IdentityState(map=idmap, links=links, rejections=idmap.iloc[0:0])
    return person_id, explain_person(person_id, state, merges=merges)


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    person_id, table = explain(settings, args.value, args.type, args.day)
    print(f"person {person_id}: {int((table['row_kind'] == 'identifier').sum())} identifiers, "
          f"{int((table['row_kind'] == 'link').sum())} links")
    shown = table.copy()
    for side in ("a", "b"):  # 64-hex pseudonyms: the first 12 characters identify them on screen
        hashed = shown[f"identifier_type_{side}"].isin(["email", "phone"])
        shown.loc[hashed, f"identifier_{side}"] = shown.loc[hashed, f"identifier_{side}"].str.slice(0, 12) + "…"
    with pd.option_context("display.max_rows", 500, "display.width", 250):
        print(shown.to_string(index=False))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# demo

def print_identity_summary(day: dt.date) -> None:
    """Persons, merges, splits and quality (when a ground truth is configured) of the day's identity map."""
    md = latest_metadata(_ensure_instance(), dg.AssetKey(["identity", "identity_map"]),
                         [day.isoformat()]).get(day.isoformat())
    if md is None:
        return
    print(f"\nIdentity on {day}: {md.get('count_identifiers')} identifiers -> {md.get('persons')} persons "
          f"({md.get('count_merges')} merges, {md.get('count_splits')} splits today, "
          f"{md.get('count_refused_identifiers')} identifiers refused)")
    if "quality_identifiers_precision" in md:
        print("  against the ground truth: identifiers precision {:.4f}, recall {:.4f} (reachable {:.4f}); "
              "duplicate customer records precision {:.4f}, recall {:.4f}, F1 {:.4f}".format(
                  md["quality_identifiers_precision"], md["quality_identifiers_recall"],
                  md["quality_identifiers_recall_reachable"], md["quality_customer_records_precision"],
                  md["quality_customer_records_recall"], md["quality_customer_records_f1"]))


def print_health_summary(day: dt.date, instance: dg.DagsterInstance | None = None) -> None:
    """The day's check outcomes (and the failed checks), from the pipeline_health materialisation."""
    md = latest_metadata(instance or _ensure_instance(), dg.AssetKey(["pipeline_health"]),
                         [day.isoformat()]).get(day.isoformat())
    if md is None:
        return
    print(f"\nHealth on {day}: checks {md.get('checks_passed')} passed, {md.get('checks_warned')} warned, "
          f"{md.get('checks_failed')} failed, {md.get('checks_not_evaluated')} not evaluated"
          + (f"; failed: {', '.join(md['failed_checks'])}" if md.get("failed_checks") else "")
          + " (the whole table: pipeline_health)")


def demo_days(settings: Settings, now: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    """First and last day of a new sample world: DEMO_DAYS days ending yesterday in the reporting timezone.

    Yesterday is the newest complete partition, the one the freshness checks expect: a world ending there is
    fresh when `dagster dev` opens it. The first day is not before CRM_START_DATE (no partition before it).
    """
    end = (now or dt.datetime.now(dt.UTC)).astimezone(settings.tz).date() - dt.timedelta(days=1)
    start = max(end - dt.timedelta(days=DEMO_DAYS - 1), settings.start_date)
    if start > end:
        raise SystemExit(f"CRM_START_DATE={settings.start_date} is after yesterday {end}: no day to generate")
    return start, end


def checks_not_passed(instance: dg.DagsterInstance, defs: dg.Definitions, day: dt.date
                      ) -> list[tuple[str, str, list[str], str]]:
    """(severity, check, assets, the check's description) for the inline checks whose latest evaluation for
    `day` did not pass, one entry per check name and description (the description says when it is expected)."""
    from dagster._core.event_api import PartitionKeyFilter  # no public API reads check outcomes per partition

    specs = {spec.key: spec for assets_def in defs.assets or [] for spec in assets_def.check_specs}
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(specs), partition_filter=PartitionKeyFilter(key=day.isoformat()))
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for key, record in latest.items():
        event = record.event.dagster_event if record.event is not None else None
        evaluation = event.event_specific_data if event is not None else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            group = (evaluation.severity.value, key.name, specs[key].description or "")
            grouped.setdefault(group, []).append(key.asset_key.to_user_string())
    return [(severity, name, sorted(assets), text) for (severity, name, text), assets in sorted(grouped.items())]


def print_checks_not_passed(day: dt.date, settings: Settings, instance: dg.DagsterInstance | None = None) -> None:
    """The last lines of the demo: each warning (and non-blocking error) of the day, with why it may happen."""
    from crm_pipeline.definitions import build_definitions

    problems = checks_not_passed(instance or _ensure_instance(), build_definitions(settings), day)
    if problems:
        print(f"\nChecks that did not pass on {day}, and when each is expected:")
    for severity, name, assets, text in problems:
        shown = ", ".join(assets[:5]) + (f" and {len(assets) - 5} more" if len(assets) > 5 else "")
        print(f"  {severity:<5} {name} on {shown}: {text}")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the sample world if there is none, run its whole date range, say where everything is."""
    truth = truth_root_for(settings)
    manifest_path = Path(truth) / "manifest.json"
    if not manifest_path.exists():
        first, last = demo_days(settings)
        print(f"No sample world under {truth}: generating one ({DEMO_SCALE}, {first} .. {last}) ...")
        cmd_generate(argparse.Namespace(out=None, start=first, scale=DEMO_SCALE, days=(last - first).days + 1,
                                        seed=7, bad_rate=0.01), settings)
    manifest = json.loads(manifest_path.read_text())
    start, end = dt.date.fromisoformat(manifest["start"]), dt.date.fromisoformat(manifest["end"])
    yesterday = (dt.datetime.now(dt.UTC).astimezone(settings.tz) - dt.timedelta(days=1)).date()
    if end < yesterday:
        print(f"note: the sample world ends {end}; the freshness checks warn that later days are missing "
              f"(delete {Path(truth).parent} to generate one ending yesterday)")
    # the sample's first day is the first partition: no KPI counts the days before it as complete
    start = max(start, settings.start_date)
    settings = settings.with_overrides(start_date=start)
    if not settings.ground_truth_root:  # the sample world knows its true persons: score identity against them
        settings = settings.with_overrides(ground_truth_root=truth)
    # sample data: the development key is expected (the note above says so once, not every run again)
    settings = settings.with_overrides(allow_development_pii_key=True)
    print(f"Running the pipeline for {start} .. {end} (CRM_START_DATE={start}: start `dagster dev` with it too) ...")
    rows = run_range(settings, start, end)
    print_counts(rows)
    print_identity_summary(end)
    print_health_summary(end)
    print_checks_not_passed(end, settings)
    print()
    cmd_status(args, settings)
    print(f"\nOutputs (Hive-partitioned Parquet): {settings.warehouse_root}")
    print(f"Quarantine: {join(settings.warehouse_root, 'quarantine')}")
    print(f"Dagster instance: {os.environ['DAGSTER_HOME']}  (browse it with: dagster dev -w workspace.yaml)")
    print_scorecard(settings, end)
    return 0


def scorecard_headlines(settings: Settings, day: dt.date) -> pd.DataFrame:
    """kpi, value, unit of every KPI's headline on `day` (kpi_scorecard), empty when the day has none."""
    try:
        frame = _read_partition(settings, "kpi_scorecard", day.isoformat())
    except FileNotFoundError:
        return pd.DataFrame(columns=["kpi", "value", "unit"])
    return frame[["kpi", "value", "unit"]].sort_values("kpi", ignore_index=True)


def print_scorecard(settings: Settings, day: dt.date) -> None:
    """The day's scorecard headlines as a compact table, then where the day's dashboard is."""
    from crm_pipeline.reporting.assets import page_url

    headlines = scorecard_headlines(settings, day)
    if headlines.empty:
        print(f"\nNo kpi_scorecard for {day}")
        return
    shown = headlines.assign(value=[
        "null" if pd.isna(v) else f"{v:,.4f}".rstrip("0").rstrip(".") for v in headlines["value"]],
        unit=headlines["unit"].fillna("-"))
    print(f"\nScorecard headlines on {day}:")
    with pd.option_context("display.max_rows", 500, "display.width", 200):
        print(shown.to_string(index=False))
    url = page_url(settings, day.isoformat())
    fs, path = filesystem(url, settings.storage_options)
    print(f"\nDashboard: {url}" if fs.exists(path) else f"\nNo dashboard for {day} (expected at {url})")


# ---------------------------------------------------------------------------------------------------------------

def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from crm_pipeline import checks_catalog
    from crm_pipeline.kpis import catalog

    print(f"wrote {catalog.write()}")
    print(f"wrote {checks_catalog.write()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a synthetic CRM world (landing zone, CRM database, ground truth)")
    gen.add_argument("--scale", choices=["tiny", "small", "medium", "large"], default="small")
    gen.add_argument("--days", type=int, default=None, help="number of days (default: the scale's)")
    gen.add_argument("--start", type=_parse_day, default=None, help="first day (default: CRM_START_DATE)")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--bad-rate", type=float, default=0.01, help="share of rows that break the contract")
    gen.add_argument("--out", default=None, help="write landing/, crm.sqlite and ground_truth/ under this folder")
    gen.set_defaults(func=cmd_generate)

    run = sub.add_parser("run", help="materialise a date range in-process against the configured instance")
    run.add_argument("--start", type=_parse_day, required=True)
    run.add_argument("--end", type=_parse_day, required=True)
    run.add_argument("--select", default=None,
                     help="Dagster asset selection, e.g. 'group:ingestion' or 'key:ingest/orders+'")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="which days are materialised, and quarantine counts")
    status.set_defaults(func=cmd_status)

    expl = sub.add_parser("explain", help="why a person's identifiers are together: its links, rules and scores")
    expl.add_argument("value", help="a person_id, or an identifier with --type")
    expl.add_argument("--type", choices=["customer_id", "email", "phone", "device_id", "anonymous_id"],
                      default=None, help="VALUE is an identifier of this type (emails and phones in clear)")
    expl.add_argument("--day", default=None, help="identity as of this day (default: the newest)")
    expl.set_defaults(func=cmd_explain)

    catalog = sub.add_parser("catalog", help="regenerate docs/kpi_catalog.md and docs/checks.md from the code")
    catalog.set_defaults(func=cmd_catalog)

    demo = sub.add_parser("demo", help="generate sample data if none, run it end to end, show where outputs are")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", message=".*superseded.*")
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if settings.is_development_key:
        print("note: CRM_PII_KEY is not set; pseudonyms use the development key (not for production data)",
              file=sys.stderr)
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
