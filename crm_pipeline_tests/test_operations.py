"""What an operator reads: every check says what it asserts (and when it may warn)."""

import datetime as dt

import dagster as dg
import pytest

from crm_pipeline.definitions import build_definitions
from crm_pipeline.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(landing_root=str(tmp_path / "landing"), warehouse_root=str(tmp_path / "warehouse"),
                    database_url=f"sqlite:///{tmp_path / 'crm.sqlite'}", start_date=dt.date(2026, 10, 1))


def all_check_specs(defs: dg.Definitions) -> list[dg.AssetCheckSpec]:
    return [spec for definition in [*(defs.assets or []), *(defs.asset_checks or [])]
            for spec in definition.check_specs]


def test_every_check_of_the_definitions_has_a_description(settings):
    specs = all_check_specs(build_definitions(settings))
    assert len(specs) > 500  # every asset's inline checks and its freshness check
    missing = sorted(f"{s.asset_key.to_user_string()}:{s.name}" for s in specs if not (s.description or "").strip())
    assert missing == []


def test_checks_that_can_warn_say_when_it_is_expected(settings):
    specs = {(s.asset_key.to_user_string(), s.name): s.description for s in all_check_specs(build_definitions(settings))}
    assert "short history" in specs[("kpi/uar_30d", "headline_within_usual_range")]
    assert "not a fault in the data" in specs[("kpi/asset_engagement_ratio", "headline_at_least_target")]
    assert "only a warning for the metrics the catalog declares unbounded" in specs[
        ("kpi/uar_30d", "ratios_within_bounds")]
    # a primary-key check names its columns, and which of them may be null
    assert specs[("attribution/order_attribution", "primary_key_is_unique")] == (
        "(order_id, model, channel, campaign_id) is never repeated (null equals null); only campaign_id may be null")
    assert specs[("kpi_scorecard", "kpi_is_unique")] == "(kpi) is never null and never repeated"
