"""Benchmark: generate a scale preset into a temporary folder, run the pipeline over a day range, and print wall
time and peak memory per stage (asset group) and rows per second.

    python bench/run.py --scale small --days 3 [--keep DIR]
    python bench/run.py --scale small --days 180 --start 2026-04-01 --measure 10,180   # cost vs history
    python bench/run.py --files [--file-rows 2000000]   # reading landing files: big files, gzip bombs

With --measure only the listed days (1 = the first) are measured stage by stage; the days between run as one
whole-pipeline process each stretch, to build the history quickly.

Each (day, group) runs in its own process so that its peak memory (max RSS) is its own; the figures include
the Python + Dagster baseline of a fresh process, printed separately. Speed targets are checked here, never in
timed tests.
"""

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROUPS = ["ingestion", "identity", "attribution", "aggregates", "audiences", "kpis", "health"]  # asset groups in graph order; later stages add theirs
QUALITY = ("quality_identifiers_precision", "quality_identifiers_recall", "quality_identifiers_f1",
           "quality_identifiers_f1_reachable", "quality_customer_records_precision",
           "quality_customer_records_recall", "quality_customer_records_f1")


def _worker(args: argparse.Namespace) -> None:
    """Run one group for one day in this process and print its timings as JSON."""
    import warnings

    import dagster as dg

    from crm_pipeline.cli import run_range
    from crm_pipeline.settings import Settings

    warnings.filterwarnings("ignore")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = Settings.from_env()
    day = dt.date.fromisoformat(args.day)
    end = dt.date.fromisoformat(args.end) if args.end else day
    t0 = time.perf_counter()
    with dg.instance_for_test() as instance:  # the bench measures compute, not instance bookkeeping
        rows = run_range(settings, day, end, select=None if args.group == "all" else f"group:{args.group}",
                         instance=instance, echo=lambda *_: None)
        wall = time.perf_counter() - t0
        quality: dict[str, float] = {}
        if args.group == "identity":
            records = instance.fetch_materializations(dg.AssetKey(["identity", "identity_map"]), limit=1).records
            metadata = records[0].asset_materialization.metadata if records else {}
            quality = {k: float(metadata[k].value) for k in QUALITY if k in metadata}
            rows = [{"rows_in": metadata["count_identifiers"].value}] if "count_identifiers" in metadata else []
        if args.group == "attribution":
            quality = _attribution_vs_truth(settings, args.day)
            records = instance.fetch_materializations(dg.AssetKey(["attribution", "journeys"]), limit=1).records
            rows = [{"rows_in": records[0].asset_materialization.metadata["orders"].value}] if records else []
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall_s": wall, "peak_mb": peak / 1024, "baseline_mb": baseline / 1024,
                      "rows_in": sum(int(r["rows_in"]) for r in rows), "quality": quality}))


def _attribution_vs_truth(settings, day: str) -> dict[str, float]:
    """Spearman rank correlation of each data-driven model's channel values with the generator's true effects."""
    import pandas as pd

    truth_path = os.path.join(settings.ground_truth_root or "", "channel_effects.parquet")
    values_path = os.path.join(settings.warehouse_root, "attribution", "channel_model_values", f"date={day}",
                               "part.parquet")
    if not (os.path.exists(truth_path) and os.path.exists(values_path)):
        return {}
    truth = pd.read_parquet(truth_path).set_index("channel")["effect"]
    values = pd.read_parquet(values_path)
    out = {}
    for model, group in values.groupby("model"):
        joined = pd.concat([group.set_index("channel")["value"], truth], axis=1, join="inner")
        if len(joined) > 2:
            out[f"spearman_{model}_vs_true_effect"] = float(joined.rank().corr().iloc[0, 1])
    return out


# ---------------------------------------------------------------------------------------------------------------
# reading landing files: one big events file per format, and decompression bombs

FILES_DAY = dt.date(2026, 10, 2)
EVENT_TYPES = ("session_start", "category_view", "cart_add", "email_open", "email_click", "app_open", "ad_click")


def _files_worker(args: argparse.Namespace) -> None:
    """Ingest events for FILES_DAY from CRM_LANDING_ROOT in this process (read + assign + validate + normalise)."""
    from crm_pipeline.ingestion.landing import ingest_landing_day
    from crm_pipeline.settings import Settings

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = Settings.from_env()
    t0 = time.perf_counter()
    result = ingest_landing_day("events", FILES_DAY, settings)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall_s": wall, "peak_mb": peak / 1024, "baseline_mb": baseline / 1024,
                      "rows_in": result.rows_in, "rows_clean": result.rows_clean,
                      "unparsable": [f.error for f in result.unparsable_files]}))


def _events_table(rows: int, day: dt.date):
    """`rows` plausible events of `day` (UTC), all columns text as an exporter writes them; vectorised."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(7)
    ids = np.arange(rows)

    def text(values) -> pa.Array:
        return pc.cast(pa.array(values), pa.string())

    seconds = np.sort(rng.integers(0, 86_400, rows))
    stamps = np.datetime64(day.isoformat(), "s") + seconds.astype("timedelta64[s]")
    with_email = rng.random(rows) < 0.2
    return pa.table({
        "event_id": pc.binary_join_element_wise("ev-", text(ids), ""),
        "occurred_at": pc.strftime(pa.array(stamps, pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ"),
        "event_type": pa.array(np.array(EVENT_TYPES)[rng.integers(0, len(EVENT_TYPES), rows)]),
        "channel": pa.array(np.array(["", "email", "ppc", "seo"])[rng.integers(0, 4, rows)]),
        "device_type": pa.array(np.array(["desktop", "mobile", "tablet"])[rng.integers(0, 3, rows)]),
        "session_id": pc.binary_join_element_wise("s-", text(ids // 5), ""),
        "anonymous_id": pc.binary_join_element_wise("anon-", text(rng.integers(0, rows // 4 + 1, rows)), ""),
        "email": pc.if_else(pa.array(with_email), pc.binary_join_element_wise(
            "user", text(rng.integers(0, rows // 10 + 1, rows)), "@example.com", ""), pa.scalar(None, pa.string())),
        "referrer": pa.array(np.array(["", "https://www.google.com/", "https://news.example.org/a"])[
            rng.integers(0, 3, rows)]),
    })


def _gzip_bomb(path: Path, size: int, line: bytes, header: bytes = b"") -> None:
    """A gzip file of `size` decompressed bytes (`header`, then `line` repeated), written in slices."""
    import gzip

    chunk = line * max(1, (1 << 20) // len(line))
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(header)
        written = len(header)
        while written < size:
            out.write(chunk)
            written += len(chunk)


FILE_CASES: dict[str, str] = {
    # name: what the file holds (all rows of D unless said otherwise)
    "csv": "{rows:,} rows of D, csv",
    "jsonl": "{rows:,} rows of D, jsonl",
    "csv.gz": "{rows:,} rows of D, csv.gz",
    "json.gz": "{rows:,} rows of D, json.gz",
    # partition D also reads folder D+1: a big file there whose rows are all of D+1 is read but none is kept
    "next-day": "{rows:,} rows of D+1 in folder D+1, csv",
    "zeros-csv": "gzip bomb: 1 GiB of zeros, csv.gz",
    "zeros-json": "gzip bomb: 1 GiB of zeros, json.gz",
    "valid-rows": "gzip bomb: 256 MiB of valid rows, limit 64 MiB",
}


def _file_path(root: Path, case: str) -> Path:
    day = FILES_DAY + dt.timedelta(days=1) if case == "next-day" else FILES_DAY
    name = {"next-day": "events.csv", "zeros-csv": "bomb.csv.gz", "zeros-json": "bomb.json.gz",
            "valid-rows": "rows.csv.gz"}.get(case, f"events.{case}")
    return root / "events" / f"date={day.isoformat()}" / name


def _write_file_case(root: Path, case: str, rows: int) -> None:
    """Write one case's landing file (in its own process, so that the measuring processes start small)."""
    from crm_pipeline.generator.writer import encode

    path = _file_path(root, case)
    path.parent.mkdir(parents=True, exist_ok=True)
    if case == "zeros-csv" or case == "zeros-json":
        _gzip_bomb(path, 1 << 30, b"\0" * 4096)
    elif case == "valid-rows":
        _gzip_bomb(path, 256 << 20, b"ev-1,2026-10-02T10:00:00Z,session_start,anon-1\n",
                   header=b"event_id,occurred_at,event_type,anonymous_id\n")
    elif case == "next-day":
        path.write_bytes(encode(_events_table(rows, FILES_DAY + dt.timedelta(days=1)), "csv"))
    else:
        path.write_bytes(encode(_events_table(rows, FILES_DAY), case))


def files_benchmark(folder: Path, rows: int) -> None:
    """Read + ingest of one big events file per format and of decompression bombs, each in a fresh process (its
    peak memory is its own: the files are written by other processes)."""
    print(f"\n{'landing file':<48}{'file MB':>9}{'wall s':>9}{'peak MB':>10}{'base MB':>10}{'rows in':>12}  unparsable")
    for case, label in FILE_CASES.items():
        root = folder / "files" / case
        subprocess.run([sys.executable, __file__, "--worker-write-file", case, "--file-rows", str(rows),
                        "--keep", str(root)], check=True)
        env = {**os.environ, "CRM_LANDING_ROOT": str(root), "CRM_WAREHOUSE_ROOT": str(folder / "files-warehouse")}
        if case == "valid-rows":
            env["CRM_MAX_FILE_BYTES"] = str(64 << 20)
        out = subprocess.run([sys.executable, __file__, "--worker-files"], env=env, check=True, capture_output=True,
                             text=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        errors = "; ".join(figures["unparsable"]) or "-"
        path = _file_path(root, case)
        print(f"{label.format(rows=rows):<48}{path.stat().st_size / 2**20:>9.1f}{figures['wall_s']:>9.1f}"
              f"{figures['peak_mb']:>10.0f}{figures['baseline_mb']:>10.0f}{figures['rows_in']:>12,}  {errors[:200]}")
        path.unlink()  # generated data is never kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--days", type=int, default=3, help="days to run (the world is generated with these days)")
    parser.add_argument("--start", default="2026-10-01")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", default=None, help="use (and keep) this folder instead of a temporary one")
    parser.add_argument("--worker-day", dest="day", help=argparse.SUPPRESS)
    parser.add_argument("--worker-group", dest="group", help=argparse.SUPPRESS)
    parser.add_argument("--worker-end", dest="end", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default=None,
                        help="comma-separated day numbers (1 = the first day) to measure; the others run unmeasured")
    parser.add_argument("--files", action="store_true",
                        help="only measure reading landing files: one big events file per format, and gzip bombs")
    parser.add_argument("--file-rows", type=int, default=2_000_000, help="rows of the big events file (--files)")
    parser.add_argument("--worker-files", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-write-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.day:
        _worker(args)
        return 0
    if args.worker_files:
        _files_worker(args)
        return 0
    if args.worker_write_file:
        _write_file_case(Path(args.keep), args.worker_write_file, args.file_rows)
        return 0
    if args.files:
        folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="crm-bench-files-"))
        files_benchmark(folder, args.file_rows)
        return 0

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="crm-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CRM_LANDING_ROOT": str(folder / "landing"), "CRM_WAREHOUSE_ROOT": str(folder / "warehouse"),
           "CRM_DATABASE_URL": f"sqlite:///{folder / 'crm.sqlite'}", "CRM_START_DATE": args.start,
           "CRM_GROUND_TRUTH_ROOT": str(folder / "ground_truth")}
    start = dt.date.fromisoformat(args.start)
    print(f"benchmark: scale={args.scale} days={args.days} folder={folder}")

    if not (folder / "ground_truth" / "manifest.json").exists():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crm_pipeline.cli", "generate", "--scale", args.scale,
                        "--days", str(args.days), "--start", args.start, "--seed", str(args.seed)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        gen_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"generate: {time.perf_counter() - t0:.1f} s, peak {gen_peak:.0f} MB")

    print(f"\n{'day':<12}{'group':<14}{'wall s':>9}{'peak MB':>10}{'base MB':>10}{'rows in':>12}{'rows/s':>12}")
    totals: dict[str, list[float]] = {}
    measured = {int(n) - 1 for n in args.measure.split(",")} if args.measure else set(range(args.days))
    pending: list[str] = []  # unmeasured days, run as one process before the next measured day

    def catch_up() -> None:
        if pending:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--worker-day", pending[0], "--worker-end", pending[-1],
                            "--worker-group", "all"], env=env, check=True, capture_output=True, text=True)
            print(f"{pending[0]}..{pending[-1]}: {len(pending)} days unmeasured, {time.perf_counter() - t0:.0f} s")
            pending.clear()

    for i in range(args.days):
        day = (start + dt.timedelta(days=i)).isoformat()
        if i not in measured:
            pending.append(day)
            continue
        catch_up()
        for group in GROUPS:
            out = subprocess.run([sys.executable, __file__, "--worker-day", day, "--worker-group", group],
                                 env=env, check=True, capture_output=True, text=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            rate = figures["rows_in"] / figures["wall_s"] if figures["wall_s"] else 0.0
            totals.setdefault(group, []).append(figures["wall_s"])
            print(f"{day:<12}{group:<14}{figures['wall_s']:>9.1f}{figures['peak_mb']:>10.0f}"
                  f"{figures['baseline_mb']:>10.0f}{figures['rows_in']:>12,}{rate:>12,.0f}")
            if figures["quality"]:
                print("    " + "  ".join(f"{k.removeprefix('quality_')}={v:.4f}" for k, v in figures["quality"].items()))
    catch_up()
    print()
    for group, walls in totals.items():
        print(f"{group}: mean {sum(walls) / len(walls):.1f} s/day, max {max(walls):.1f} s/day")
    return 0


if __name__ == "__main__":
    sys.exit(main())
