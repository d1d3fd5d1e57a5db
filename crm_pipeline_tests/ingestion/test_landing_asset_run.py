"""The landing ingestion asset in a real Dagster run: what reaches metadata, checks, the event log and the logs."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline.definitions import build_definitions
from crm_pipeline_tests.ingestion.test_landing import KEY, event, make_settings, write

D = dt.date(2026, 10, 2)
EMAIL, PHONE = "jane.doe@example.com", "+15551234567"


def test_unparsable_and_skipped_files_in_a_real_run(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                    caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the parser's message of an unparsable file quotes its bad row, and it reached the check
    metadata, the compute logs and stderr; a file name with a line break could forge a log line. In a real run,
    the email and phone number of the bad row appear nowhere but in the quarantine (the restricted area): not in
    check or materialisation metadata, not in any file of the Dagster instance (event log, run storage, compute
    logs), not in the captured logs or stderr. Skipped files are reported by a warning check."""
    settings = make_settings(tmp_path, start_date=dt.date(2026, 10, 1))
    write(settings, "events", D, "a.csv", [event("e1", "2026-10-02T10:00:00Z")])
    bad = write(settings, "events", D, "b.csv", f"event_id,occurred_at\ne2,2026-10-02,{EMAIL},{PHONE}\n".encode())
    write(settings, "events", D, "c.jsonl", f'{{"event_id": "e3", "email": "{EMAIL}", "phone": "{PHONE}"\n'.encode())
    write(settings, "events", D, "notes\nERROR forged line.txt", b"")
    monkeypatch.setenv("CRM_PII_KEY", KEY)  # a real key reaches the resources only from the environment
    defs = build_definitions(settings)
    caplog.set_level("DEBUG")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(list(defs.assets or []), partition_key=D.isoformat(), instance=instance,
                                resources=defs.resources,
                                selection=[dg.AssetKey(["ingest", "events"]), dg.AssetKey(["quarantine", "events"])])
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        logs = instance.all_logs(result.run_id)
    out, err = capfd.readouterr()

    assert not checks["no_unparsable_files"].passed
    assert checks["no_unparsable_files"].metadata["unparsable_files"].value == [
        {"path": bad, "error": "b.csv: ArrowInvalid: a CSV row has 4 fields where the header has 2"},
        {"path": bad.replace("b.csv", "c.jsonl"),
         "error": "c.jsonl: JSONDecodeError: invalid JSON at line 1, column 76 (Expecting ',' delimiter)"},
    ]
    assert not checks["no_skipped_files"].passed
    assert checks["no_skipped_files"].severity == dg.AssetCheckSeverity.WARN
    materialisation = result.asset_materializations_for_node("ingest_events")[0]
    skipped = materialisation.metadata["skipped_files"].value
    assert [(Path(s["path"]).name, s["reason"]) for s in skipped] == [
        ("notes\\nERROR forged line.txt", "file name holds control characters")]

    # nothing outside the quarantine holds the row: metadata, every event of the run, every instance file, logs
    shown = [str(e.metadata) + str(e.description) for e in checks.values()]
    shown += [str(m.metadata) for m in result.asset_materializations_for_node("ingest_events")]
    shown += [dg.serialize_value(entry) for entry in logs]
    shown += [out, err, *(r.getMessage() for r in caplog.records)]
    stored = [p.read_bytes() for p in (tmp_path / "dagster").rglob("*") if p.is_file()]
    assert len(logs) > 10 and stored
    for secret in (EMAIL, PHONE):
        assert not [text for text in shown if secret in text]
        assert not [data for data in stored if secret.encode() in data]
    # the forged name stays on one line wherever it is logged
    messages = [entry.user_message for entry in logs] + [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "forged line" in m]
    assert not [m for m in messages if "\nERROR forged line" in m]
    assert "\nERROR forged line" not in out + err

    # the restricted area keeps the parser's full message, row included
    quarantine = pd.read_parquet(tmp_path / "warehouse" / "quarantine" / "events" / f"date={D}" / "part.parquet")
    assert quarantine["reason"].tolist() == ["unparsable_file", "unparsable_file"]
    assert EMAIL in quarantine["detail"].iloc[0] and PHONE in quarantine["detail"].iloc[0]
