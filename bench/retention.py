"""Benchmark: the retention KPIs and their two states on a medium-sized shop.

    python bench/retention.py                    # 300k persons, 1M orders in the order book, 100k terms
    python bench/retention.py --scale 3          # three times that

The KPIs read the customer status of D-30 (one row per person with an order in its year), the order book of D
(its last 548 days of orders), the first orders of D, the subscription terms snapshot of D and, for
reengagement_rate, the engagement recency of D-30 with 30 days of the person engagement aggregate. Their sizes
here: 300k persons, 1M orders over 548 days, 100k terms of 50k subscriptions, 600k person-days of engagement.
Prints wall time per state update and per KPI (compute and finalise, as the assets run them) and the process's
peak memory. Speed targets are checked here, never in timed tests.
"""

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_pipeline.kpis import retention
from crm_pipeline.kpis.framework import finalise
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings

D = dt.date(2027, 6, 30)
X = D - dt.timedelta(days=30)
BOOK_DAYS = 548


def _ids(values: np.ndarray) -> pd.Series:
    return pd.Series(values.astype(str), dtype="string")


def inputs(scale: float, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    persons, orders, terms = int(300_000 * scale), int(1_000_000 * scale), int(100_000 * scale)

    def book(day: dt.date) -> pd.DataFrame:
        days = np.datetime64(day) - rng.integers(0, BOOK_DAYS, orders).astype("timedelta64[D]")
        return pd.DataFrame({"person_id": _ids(rng.integers(0, persons, orders)),
                             "order_day": pd.Series(days).dt.date, "fully_refunded": rng.random(orders) < 0.05,
                             "net_revenue": rng.random(orders) * 100})

    starts = pd.Timestamp("2026-06-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 400, terms), unit="D")
    engaged = pd.Series(np.datetime64(X) - rng.integers(0, 400, persons).astype("timedelta64[D]")).dt.date
    return {
        "book_x": book(X), "order_book": book(D),
        "first_orders": pd.DataFrame({
            "person_id": _ids(np.arange(persons)), "first_order_id": "o",
            "first_ordered_at": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 540, persons), unit="D")}),
        "crm_subscription_terms": pd.DataFrame({
            "term_id": _ids(np.arange(terms)), "subscription_id": _ids(rng.integers(0, terms // 2, terms)),
            "plan": rng.choice(["basic", "pro", "team"], terms), "amount": rng.random(terms) * 50,
            "term_start": starts, "term_end": starts + pd.Timedelta(days=30)}),
        "engagement_recency_30": pd.DataFrame({"person_id": _ids(np.arange(persons)), "last_engaged_date": engaged}),
        "person_engagement": pd.DataFrame({"person_id": _ids(rng.integers(0, persons, 2 * persons)),
                                           "date": (D - dt.timedelta(days=10)).isoformat()}),
        "crm_customers": pd.DataFrame({"customer_id": np.arange(persons).astype(str),
                                       "created_at": pd.Timestamp("2026-01-01", tz="UTC")}),
        "identity_map": pd.DataFrame({"identifier_type": "customer_id", "identifier": np.arange(persons).astype(str),
                                      "person_id": np.arange(persons).astype(str), "is_refused": False}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    data = inputs(args.scale)
    settings = Settings(landing_root="-", warehouse_root="-", database_url="sqlite://", start_date=dt.date(2026, 1, 1))
    remap = PersonRemap.none()

    started = time.perf_counter()
    data["customer_status_30"] = retention.customer_status(data.pop("book_x"), X)
    print(f"customer_status (state of D-30): {time.perf_counter() - started:.2f} s, "
          f"{len(data['customer_status_30']):,} persons")
    started = time.perf_counter()
    retention.update_engagement_recency(data["engagement_recency_30"], data["person_engagement"],
                                        remap.changes, D)
    print(f"engagement_recency (one day's update): {time.perf_counter() - started:.2f} s")
    total = 0.0
    for kpi in retention.KPIS:
        kwargs = {i.name: data[i.name] for i in kpi.inputs}
        extra = {**({"day": D} if kpi.needs_day else {}), **({"settings": settings} if kpi.needs_settings else {}),
                 **({"remap": remap} if kpi.needs_remap else {})}
        started = time.perf_counter()
        finalise(kpi, kpi.compute(**kwargs, **extra))
        elapsed = time.perf_counter() - started
        total += elapsed
        print(f"{kpi.name}: {elapsed:.2f} s")
    print(f"all {len(retention.KPIS)} KPIs: {total:.2f} s; peak memory "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
