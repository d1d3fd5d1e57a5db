"""Benchmark of predictive CLV on a synthetic buyer base: the order history update, the buyers' summaries and
the BG/NBD + Gamma-Gamma fit with the predictions, each in a fresh process so that its peak memory is its own.

    python bench/clv.py [--buyers 200000] [--days 730] [--purchases-per-year N] [--keep DIR]

The buyers are simulated from the models themselves (CDNOW's parameters, times in days: r 0.243, alpha 30.9,
a 0.793, b 2.426; spend p 6.25, q 3.74, v 15.44), first orders spread over `--days` days, 3% of the orders
refunded; the order book (the last 365 days) and the order history (the days before) are written as the
pipeline writes them. The fitted parameters are printed beside the simulated ones. Columns: the process's peak
and baseline (after imports and reading the inputs) resident memory, and the step's own peak allocations
(tracemalloc, numpy's included), which the resident peak hides when it stays below the import baseline.
"""

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TRUE_BGNBD = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
TRUE_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
START = dt.date(2024, 1, 1)


def _bgnbd(purchases_per_year: float | None) -> dict[str, float]:
    """The simulated BG/NBD parameters: CDNOW's, or alpha set so that the mean rate is `purchases_per_year`."""
    if purchases_per_year is None:
        return TRUE_BGNBD
    return {**TRUE_BGNBD, "alpha": TRUE_BGNBD["r"] * 365 / purchases_per_year}


def simulate(buyers: int, days: int, purchases_per_year: float | None = None, seed: int = 7):
    """(order days: person, day number, revenue, refunded) of `buyers` BG/NBD + Gamma-Gamma buyers; vectorised
    over persons, one pass per purchase number. `purchases_per_year` rescales alpha to that mean rate."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    r, alpha, a, b = _bgnbd(purchases_per_year).values()
    p, q, v = TRUE_GAMMA_GAMMA.values()
    rate = rng.gamma(r, 1 / alpha, buyers)  # purchases per day while alive
    drop = rng.beta(a, b, buyers)  # P(inactive) after each repeat purchase
    spend_rate = rng.gamma(q, 1 / v, buyers)
    first = rng.integers(0, days, buyers)
    person, when = [np.arange(buyers)], [first.astype(float)]
    active, clock = np.arange(buyers), first.astype(float)
    while len(active):
        clock[active] += rng.exponential(1 / rate[active])
        active = active[clock[active] < days]
        person.append(active)
        when.append(clock[active].copy())
        active = active[rng.random(len(active)) >= drop[active]]
    person, day = np.concatenate(person), np.floor(np.concatenate(when)).astype(np.int64)
    revenue = rng.gamma(p, 1 / spend_rate[person])
    orders = pd.DataFrame({"person": person, "day": day, "revenue": np.round(revenue, 2)})
    orders["refunded"] = rng.random(len(orders)) < 0.03
    return orders


def prepare(folder: Path, buyers: int, days: int, purchases_per_year: float | None) -> None:
    """Write the order book of the last day D (the orders of its 365 days) and the order history of D-1 (what
    D's update starts from) and of D (what D's summaries read), as the pipeline writes its states."""
    import numpy as np
    import pandas as pd

    from crm_pipeline.kpis.states import (
        ORDER_BOOK_DAYS,
        ORDER_BOOK_SCHEMA,
        ORDER_HISTORY_SCHEMA,
        combine_order_days,
        order_days,
    )
    from crm_pipeline.metadata import arrow_table

    orders = simulate(buyers, days, purchases_per_year)
    last = days - 1
    dates = np.datetime64(START, "D") + orders["day"].to_numpy()
    book = pd.DataFrame({
        "order_id": [f"o{i}" for i in range(len(orders))], "person_id": [f"p_{i:016x}" for i in orders["person"]],
        "ordered_at": pd.to_datetime(dates).tz_localize("UTC") + pd.Timedelta(hours=12),
        "order_day": pd.Series(dates).dt.date, "currency": "USD", "net_revenue": orders["revenue"],
        "net_revenue_original": orders["revenue"], "refunded_original": 0.0, "count_refunds": 0,
        "fully_refunded": orders["refunded"], "categories": "x"})
    book.loc[book["fully_refunded"], ["refunded_original", "count_refunds"]] = [1e9, 1]
    newest_history_day = last - (ORDER_BOOK_DAYS - 1)  # the book's oldest day: the history takes it in today
    for name, newest in (("history_before", newest_history_day - 1), ("history", newest_history_day)):
        history = combine_order_days(order_days(book.loc[(orders["day"] <= newest).to_numpy()]))
        for column in ("first_order_date", "last_order_date"):
            history[column] = pd.Series(history[column].to_numpy().astype("datetime64[D]")).dt.date.to_numpy()
        arrow_table(history, ORDER_HISTORY_SCHEMA).to_pandas().to_parquet(folder / f"{name}.parquet")
    arrow_table(book.loc[(orders["day"] >= newest_history_day).to_numpy()], ORDER_BOOK_SCHEMA).to_pandas().to_parquet(
        folder / "book.parquet")
    (folder / "day.txt").write_text((START + dt.timedelta(days=last)).isoformat())


def _worker(folder: Path, step: str, trace: bool) -> None:
    """Run one step on the prepared states in this process and print its figures as JSON."""
    import pandas as pd

    from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
    from crm_pipeline.kpis.clv import buyer_summaries, predict_clv
    from crm_pipeline.kpis.persons import PersonRemap
    from crm_pipeline.kpis.states import update_order_history

    day = dt.date.fromisoformat((folder / "day.txt").read_text())
    if step == "fit":  # from the summaries the previous step wrote, so that the inputs are the fit's own
        inputs = {"summaries": pd.read_parquet(folder / "summaries.parquet")}
    else:
        inputs = {"book": pd.read_parquet(folder / "book.parquet"), "history": pd.read_parquet(
            folder / ("history_before.parquet" if step == "state" else "history.parquet"))}
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    if step == "state":
        _, taken_in = update_order_history(inputs["history"], inputs["book"],
                                           IDENTITY_MERGES_SCHEMA.empty_table().to_pandas(), day)
    elif step == "summaries":
        summaries = buyer_summaries(inputs["book"], inputs["history"], PersonRemap.none(), day)
    else:
        _, fit = predict_clv(inputs["summaries"])
    out: dict[str, object] = {"wall_s": time.perf_counter() - t0,
                              "traced_mb": tracemalloc.get_traced_memory()[1] / 2**20 if trace else None,
                              "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "baseline_mb": baseline / 1024}
    if step == "state":
        out |= {"book_orders": len(inputs["book"]), "history_persons": len(inputs["history"]),
                "order_days_taken_in": len(taken_in)}
    elif step == "summaries":
        out |= {"buyers": len(summaries), "repeat_buyers": int((summaries["x"] > 0).sum())}
        if not trace:
            summaries.to_parquet(folder / "summaries.parquet")
    else:
        out |= {"error": fit.error, "iterations": [f.iterations for f in (fit.bgnbd, fit.gamma_gamma) if f],
                **{name: {k: round(v, 4) for k, v in f.params.items()} for name, f in (
                    ("bg_nbd", fit.bgnbd), ("gamma_gamma", fit.gamma_gamma)) if f}}
    print(json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=730, help="days of history (first orders spread over them)")
    parser.add_argument("--purchases-per-year", type=float, default=None,
                        help="mean purchase rate of a live buyer (default CDNOW's, about 2.9)")
    parser.add_argument("--keep", default=None, help="use (and keep) this folder instead of a temporary one")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(Path(args.worker[0]), args.worker[1], args.worker[2] == "trace")
        return 0
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="crm-bench-clv-"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prepare(folder, args.buyers, args.days, args.purchases_per_year)
    print(f"simulated {args.buyers:,} buyers over {args.days} days in {time.perf_counter() - t0:.1f} s ({folder})")
    print(f"\n{'step':<12}{'wall s':>9}{'peak MB':>10}{'base MB':>10}{'step MB':>10}  details")
    for step, what in (("state", "order_history update (takes in the book's oldest day)"),
                       ("summaries", "buyers' x, t, T, monetary from the book and the history"),
                       ("fit", "BG/NBD + Gamma-Gamma fit and the predictions of every buyer")):
        figures = {}
        for mode in ("time", "trace"):  # tracing allocations slows pandas down: time and memory in two runs
            out = subprocess.run([sys.executable, __file__, "--worker", str(folder), step, mode], check=True,
                                 capture_output=True, text=True)
            figures[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        timed, traced = figures["time"], figures["trace"]
        details = {k: v for k, v in timed.items() if k not in ("wall_s", "peak_mb", "baseline_mb", "traced_mb")}
        print(f"{step:<12}{timed['wall_s']:>9.2f}{timed['peak_mb']:>10.0f}{timed['baseline_mb']:>10.0f}"
              f"{traced['traced_mb']:>10.0f}  {what}: {json.dumps(details)}")
    print(f"\nsimulated with BG/NBD {_bgnbd(args.purchases_per_year)}, Gamma-Gamma {TRUE_GAMMA_GAMMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
