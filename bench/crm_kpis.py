"""Benchmark: the sales pipeline, service and deliverability KPIs on CRM snapshots of a chosen size.

    python bench/crm_kpis.py                     # a medium-sized CRM: 200k persons, two years of rows
    python bench/crm_kpis.py --scale 5           # five times that

These KPIs read the CRM snapshots of D (and, for deliverability, seven days of the messaging aggregate), whose
size grows with the CRM's history, not with the day's events. The snapshot sizes are those of the generator's
`medium` world (200k persons) over two years of CRM history: 3 leads, 8 tickets and 12 survey responses per 10k
persons a day, about a third of qualified leads becoming opportunities. Prints wall time per KPI (compute and
finalise, as the KPI asset runs them) and the process's peak memory. Speed targets are checked here, never in
timed tests.
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

from crm_pipeline.kpis.framework import finalise
from crm_pipeline.kpis.sales import KPIS as SALES_KPIS
from crm_pipeline.kpis.service import KPIS as SERVICE_KPIS
from crm_pipeline.settings import Settings

D = dt.date(2026, 11, 30)
HISTORY_DAYS = 730


def _stamps(rng: np.random.Generator, n: int, end: pd.Timestamp, days: int) -> pd.Series:
    return pd.Series(end - pd.to_timedelta(rng.random(n) * days * 86400, unit="s"))


def snapshots(scale: float, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(D + dt.timedelta(days=1), tz="UTC")
    per_day = {"leads": 60, "tickets": 160, "surveys": 240}
    n = {k: int(v * scale * HISTORY_DAYS) for k, v in per_day.items()}
    created = _stamps(rng, n["leads"], end, HISTORY_DAYS)
    hours = pd.to_timedelta(rng.lognormal(np.log(5), 1.0, n["leads"]), unit="h")
    leads = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(n["leads"])], "created_at": created,
        "source": pd.Series(rng.choice(["web_form", "referral", "partner", "webinar", None], n["leads"]),
                            dtype="string"),
        "first_response_at": (created + hours).where(rng.random(n["leads"]) < 0.9),
        "qualified_at": (created + 4 * hours).where(rng.random(n["leads"]) < 0.45),
        "converted_at": (created + 20 * hours).where(rng.random(n["leads"]) < 0.2)})
    n_opp = n["leads"] // 3
    opp_created = _stamps(rng, n_opp, end, HISTORY_DAYS)
    closed = opp_created + pd.to_timedelta(rng.integers(3, 45, n_opp), unit="D")
    opportunities = pd.DataFrame({
        "opportunity_id": [f"O{i}" for i in range(n_opp)],
        "lead_id": pd.Series(rng.choice(leads["lead_id"].to_numpy(), n_opp), dtype="string"),
        "created_at": opp_created, "closed_at": closed.where(rng.random(n_opp) < 0.8),
        "stage": pd.Series(rng.choice(["won", "lost", "open"], n_opp), dtype="string"),
        "amount": rng.lognormal(np.log(4000), 0.8, n_opp),
        "opportunity_type": pd.Series(rng.choice(["new_business", "upsell", "cross_sell", "renewal"], n_opp),
                                      dtype="string")})
    t_created = _stamps(rng, n["tickets"], end, HISTORY_DAYS)
    t_resp = t_created + pd.to_timedelta(rng.lognormal(np.log(3), 1.2, n["tickets"]), unit="h")
    tickets = pd.DataFrame({
        "ticket_id": [f"T{i}" for i in range(n["tickets"])], "created_at": t_created,
        "first_response_at": t_resp.where(rng.random(n["tickets"]) < 0.95),
        "resolved_at": (t_resp + pd.to_timedelta(rng.lognormal(np.log(6), 1.0, n["tickets"]), unit="h")),
        "contact_count": pd.array(rng.geometric(0.55, n["tickets"]), dtype="Int64"),
        "reopened": pd.array(rng.random(n["tickets"]) < 0.08, dtype="boolean"),
        "channel": pd.Series(rng.choice(["email", "phone", "chat", "social"], n["tickets"]), dtype="string")})
    kind = rng.choice(["nps", "csat", "ces"], n["surveys"])
    surveys = pd.DataFrame({
        "response_id": [f"R{i}" for i in range(n["surveys"])],
        "responded_at": _stamps(rng, n["surveys"], end, HISTORY_DAYS),
        "survey_type": pd.Series(kind, dtype="string"),
        "score": np.where(kind == "nps", rng.integers(0, 11, n["surveys"]),
                          np.where(kind == "csat", rng.integers(1, 6, n["surveys"]),
                                   rng.integers(1, 8, n["surveys"]))).astype(float)})
    orders = pd.DataFrame({"order_id": [f"X{i}" for i in range(int(15_000 * scale * 30))],
                           "sale_type": pd.Series(rng.choice(["standard", "upsell", "cross_sell", "renewal"],
                                                             int(15_000 * scale * 30)), dtype="string")})
    days = [(D - dt.timedelta(days=i)).isoformat() for i in range(7)]
    messaging = pd.DataFrame({
        "event_type": pd.Series(["email_send", "email_delivered", "email_bounce", "email_complaint",
                                 "email_unsubscribe"] * 7, dtype="string"),
        "interaction_kind": None, "person_id": None, "campaign_id": None,
        "count_events": np.tile(np.array([40_000, 38_500, 1_200, 40, 300]) * scale, 7).astype("int64"),
        "date": np.repeat(days, 5)})
    return {"crm_leads": leads, "crm_opportunities": opportunities, "crm_support_tickets": tickets,
            "crm_survey_responses": surveys, "orders": orders, "messaging": messaging}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = the medium world (200k persons)")
    args = parser.parse_args()
    settings = Settings(landing_root="-", warehouse_root="-", database_url="sqlite://",
                        start_date=dt.date(2024, 1, 1))
    t0 = time.perf_counter()
    inputs = snapshots(args.scale)
    print(f"snapshots built in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k} {len(v):,}" for k, v in inputs.items()))
    total = 0.0
    for kpi in (*SALES_KPIS, *SERVICE_KPIS):
        extra = {**({"day": D} if kpi.needs_day else {}), **({"settings": settings} if kpi.needs_settings else {})}
        t0 = time.perf_counter()
        frame = finalise(kpi, kpi.compute(**{i.name: inputs[i.name] for i in kpi.inputs}, **extra))
        elapsed = time.perf_counter() - t0
        total += elapsed
        print(f"  {kpi.name:<26} {elapsed:6.2f} s  {len(frame):4d} rows")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"all {len(SALES_KPIS) + len(SERVICE_KPIS)} KPIs: {total:.1f} s; peak memory of the process {peak:.0f} MB")


if __name__ == "__main__":
    main()
