"""The sample world ends yesterday, so its freshness checks pass the day `crm-pipeline demo` generates it."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from crm_pipeline.cli import DEMO_DAYS, demo_days
from crm_pipeline.definitions import build_definitions
from crm_pipeline.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")
# 09:00 in Berlin: after the freshness deadline (schedule hour 02:00 + 4 h), so yesterday (Nov 19) is due
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=BERLIN)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                    database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}", start_date=dt.date(2026, 10, 1),
                    timezone="Europe/Berlin")


def test_the_demo_world_ends_yesterday_in_the_reporting_timezone(settings):
    assert DEMO_DAYS == 14
    assert demo_days(settings, NOW) == (dt.date(2026, 11, 6), dt.date(2026, 11, 19))  # 19 - 13 = 6
    # 00:30 in Berlin on Nov 20 is 23:30 UTC on Nov 19: yesterday is still the reporting timezone's Nov 19
    assert demo_days(settings, dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC))[1] == dt.date(2026, 11, 19)
    # the first day is never before CRM_START_DATE (there is no partition before it)
    late_start = settings.with_overrides(start_date=dt.date(2026, 11, 15))
    assert demo_days(late_start, NOW) == (dt.date(2026, 11, 15), dt.date(2026, 11, 19))
    with pytest.raises(SystemExit, match="is after yesterday"):
        demo_days(settings.with_overrides(start_date=dt.date(2026, 11, 20)), NOW)


def _evaluate_freshness(settings: Settings, materialised_days: list[dt.date]) -> list[dg.AssetCheckEvaluation]:
    """Every asset materialised on `materialised_days`, then every freshness check executed at NOW the way the
    freshness sensor executes them (Dagster's clock frozen with its test utility)."""
    from dagster._core.test_utils import freeze_time

    defs = build_definitions(settings)
    keys = [spec.key for spec in defs.resolve_all_asset_specs()]
    checks = {k for k in defs.resolve_asset_graph().asset_check_keys if k.name == "freshness_check"}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_check_selection=checks,
                                                                   asset_selection=set())
    with dg.instance_for_test() as instance:
        for day in materialised_days:
            for key in keys:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=day.isoformat()))
        with freeze_time(NOW):
            result = job.execute_in_process(instance=instance)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(keys) == len(checks)
    return evaluations


@pytest.mark.slow
def test_a_world_ending_yesterday_is_fresh(settings):
    _, end = demo_days(settings, NOW)
    # the check reads only the newest due partition (Nov 19); the two last days of the world are enough
    evaluations = _evaluate_freshness(settings, [end - dt.timedelta(days=1), end])
    assert all(e.passed for e in evaluations)
    assert all("partition 2026-11-19" in e.description for e in evaluations)


@pytest.mark.slow
def test_a_world_ending_a_week_ago_warns_naming_the_missing_day(settings):
    # the chosen behaviour: freshness follows the clock, so an old world warns (never fails, never blocks)
    # that yesterday is missing; the demo notes it and says how to generate a world ending yesterday
    evaluations = _evaluate_freshness(settings, [dt.date(2026, 11, 12), dt.date(2026, 11, 13)])
    assert not any(e.passed for e in evaluations)
    assert {e.severity for e in evaluations} == {dg.AssetCheckSeverity.WARN}
    assert all("partition 2026-11-19" in e.description for e in evaluations)


def test_the_demo_generates_the_world_ending_yesterday_and_runs_it_from_its_first_day(settings, tmp_path,
                                                                                      monkeypatch, capsys):
    # the generation and the runs are replaced by recorders: what is checked is the wiring of the dates
    import argparse
    import json

    from crm_pipeline import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    generated, ran = [], []

    def fake_generate(args, s):
        generated.append((args.start, args.days))
        truth = tmp_path / "ground_truth"
        truth.mkdir(exist_ok=True)
        last = args.start + dt.timedelta(days=args.days - 1)
        (truth / "manifest.json").write_text(json.dumps({"start": args.start.isoformat(), "end": last.isoformat()}))

    monkeypatch.setattr(cli, "cmd_generate", fake_generate)
    monkeypatch.setattr(cli, "run_range", lambda s, start, end: ran.append((s.start_date, start, end)) or [])
    for name in ("print_identity_summary", "print_health_summary", "print_checks_not_passed", "cmd_status"):
        monkeypatch.setattr(cli, name, lambda *a, **k: None)
    first, last = demo_days(settings)
    assert cli.cmd_demo(argparse.Namespace(), settings) == 0
    assert generated == [(first, DEMO_DAYS)]
    # CRM_START_DATE of the run is the world's first day, so no window reaches into days without data
    assert ran == [(first, first, last)]
    out = capsys.readouterr().out
    assert f"CRM_START_DATE={first}" in out and "note: the sample world ends" not in out
    # a world generated a week ago is run as it is, with a note that its freshness checks will warn
    week_ago = (first - dt.timedelta(days=7), last - dt.timedelta(days=7))
    (tmp_path / "ground_truth" / "manifest.json").write_text(json.dumps(
        {"start": week_ago[0].isoformat(), "end": week_ago[1].isoformat()}))
    assert cli.cmd_demo(argparse.Namespace(), settings) == 0
    assert len(generated) == 1 and ran[-1] == (week_ago[0], week_ago[0], week_ago[1])
    assert f"note: the sample world ends {week_ago[1]}; the freshness checks warn" in capsys.readouterr().out
