"""uar_30d on a hand-built world: registrants, engagement windows, merges and timezone boundaries."""

import datetime as dt

import pandas as pd

from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.count import KPIS
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.settings import Settings

KPI = {k.name: k for k in KPIS}["uar_30d"]
D = dt.date(2026, 10, 31)
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="Europe/Berlin")

IDENTITY = pd.DataFrame({
    "identifier_type": ["customer_id"] * 4,
    "identifier": ["C1", "C2", "C3", "C4"],
    "person_id": ["P1", "P2", "P3", "P1"],  # C4 is a second record of P1
    "is_refused": [False] * 4,
})
CUSTOMERS = pd.DataFrame({
    "customer_id": ["C1", "C2", "C3", "C4"],
    "created_at": pd.to_datetime(["2026-10-01T00:00Z", "2026-10-31T22:30Z",  # 23:30 in Berlin: still D
                                  "2026-10-31T23:30Z",  # 00:30 on D+1 in Berlin: not yet a registrant
                                  "2026-09-01T00:00Z"]),
})


def days_before(n: int) -> str:
    return (D - dt.timedelta(days=n)).isoformat()


def test_uar_30d_by_hand():
    engagement = pd.DataFrame([
        ("P1", "email", 2, days_before(0)),
        ("P1", "seo", 1, days_before(29)),   # still in the window
        ("P2", "email", 1, days_before(3)),
        ("P3", "email", 5, days_before(1)),  # P3 registers only after D
        ("P9", "ppc", 1, days_before(2)),    # P9 was merged into P2 later: counts as P2
        ("P2", "display", 1, days_before(30)),  # outside the window
    ], columns=["person_id", "channel", "count_engagements", "date"])
    merges = pd.DataFrame({"change_date": [D], "kind": ["merge"], "kept_person_id": ["P2"],
                           "other_person_id": ["P9"], "reason": ["co_occurrence:events"]})
    frame = finalise(KPI, KPI.compute(person_engagement=engagement, crm_customers=CUSTOMERS, identity_map=IDENTITY,
                                      remap=PersonRemap(merges), day=D, settings=SETTINGS))
    assert all(c.passed for c in standard_checks(KPI, kpi_key(KPI), frame))
    values = dict(zip(frame["channel"].astype(object).where(frame["channel"].notna(), None), frame["value"],
                      strict=True))
    # P1 (two records, counted once) and P2 are active registrants; P3 is not a registrant yet
    assert values == {None: 2.0, "email": 2.0, "ppc": 1.0, "seo": 1.0}
    assert frame["denominator"].isna().all() and (frame["numerator"] == frame["value"]).all()  # count form


def test_uar_30d_on_an_empty_window_is_zero():
    empty = pd.DataFrame(columns=["person_id", "channel", "count_engagements", "date"])
    merges = pd.DataFrame(columns=["change_date", "kind", "kept_person_id", "other_person_id", "reason"])
    frame = finalise(KPI, KPI.compute(person_engagement=empty, crm_customers=CUSTOMERS, identity_map=IDENTITY,
                                      remap=PersonRemap(merges), day=D, settings=SETTINGS))
    assert frame[["numerator", "value"]].values.tolist() == [[0.0, 0.0]]
