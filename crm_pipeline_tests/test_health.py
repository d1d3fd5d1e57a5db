"""pipeline_health rows by hand; the e2e tests read it from a real run."""

import datetime as dt

import pandas as pd

from crm_pipeline.health import health_rows
from crm_pipeline.settings import Settings

SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://")


def test_health_rows_by_hand():
    identity_map = pd.DataFrame({
        "person_id": ["P1", "P1", "P2", "P3", "P3"],
        "last_seen_date": [dt.date(2026, 10, 31), dt.date(2026, 10, 30), dt.date(2026, 10, 31),
                           dt.date(2026, 10, 31), dt.date(2026, 10, 1)],
    })
    merges = pd.DataFrame({"kind": ["merge", "merge", "split"]})
    journeys = pd.DataFrame({"count_touches": [0, 2, 1, 0], "net_revenue": [10.0, 30.0, 60.0, 0.0]})
    scorecard = pd.DataFrame({"kpi": ["a", "b", "c"], "value": [20.0, 10.5, None]})
    history = pd.DataFrame({"kpi": ["a"] * 7 + ["b"] * 7, "value": [10, 11, 9, 10, 12, 10, 8] * 2})
    ingestion = {"events": {"rows_in": 10.0, "rows_clean": 7.0, "rows_quarantined": 2.0, "rows_duplicate": 1.0,
                            "quarantine_rate": 0.2}}
    frame = health_rows(ingestion, identity_map, merges, journeys, {"passed": 5, "warned": 1, "failed": 0,
                                                                    "not_evaluated": 0},
                        scorecard, history, "2026-10-31", SETTINGS)
    t = frame.set_index(["area", "subject", "measure"])["value"]
    assert t[("ingestion", "events", "rows_quarantined")] == 2.0
    # seen on D: P1's first identifier, P2's, P3's first: P1 and P3 hold two identifiers -> 2 of 3
    assert t[("identity", "all", "identifiers_seen")] == 3.0 and t[("identity", "all", "match_rate")] == 2 / 3
    assert (t[("identity", "all", "merges")], t[("identity", "all", "splits")]) == (2.0, 1.0)
    assert t[("attribution", "orders", "orders_with_touch_share")] == 0.5
    assert t[("attribution", "orders", "revenue_with_touch_share")] == 0.9
    assert t[("checks", "all", "warned")] == 1.0
    # a: z = (20 - 10) / 1.4826 > 4; b: 0.34; c has no value
    assert t[("kpi_anomalies", "all", "kpis_beyond_threshold")] == 1.0
    assert round(t[("kpi_anomalies", "a", "robust_z")], 3) == 6.745 and ("kpi_anomalies", "b", "robust_z") not in t
    assert not frame.duplicated(["area", "subject", "measure"]).any()
