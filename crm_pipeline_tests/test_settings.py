import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

import pytest

from crm_pipeline.settings import DEVELOPMENT_PII_KEY, Settings


def test_defaults_are_local_folders_under_data(tmp_path):
    s = Settings.from_env({}, base_dir=tmp_path)
    assert s.landing_root == str(tmp_path / "data" / "landing")
    assert s.warehouse_root == str(tmp_path / "data" / "warehouse")
    assert s.database_url == f"sqlite:///{tmp_path / 'data' / 'crm.sqlite'}"
    assert s.timezone == "UTC" and s.reporting_currency == "USD"
    assert s.pii_key == DEVELOPMENT_PII_KEY and s.is_development_key
    assert s.start_date == dt.date(2026, 10, 1)
    assert s.storage_options == {}
    assert s.max_file_bytes == 4 * 2**30


def test_environment_overrides(tmp_path):
    env = {
        "CRM_LANDING_ROOT": "s3://bucket/landing/",
        "CRM_WAREHOUSE_ROOT": "relative/warehouse",
        "CRM_DATABASE_URL": "postgresql+psycopg://crm@db/crm",
        "CRM_TIMEZONE": "Europe/Berlin",
        "CRM_PII_KEY": "secret",
        "CRM_START_DATE": "2025-01-01",
        "CRM_REPORTING_CURRENCY": "eur",
        "CRM_SITE_HOSTS": "Shop.example, www.shop.example",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_SECRET_ACCESS_KEY": "not-copied",
    }
    s = Settings.from_env(env, base_dir=tmp_path)
    assert s.landing_root == "s3://bucket/landing"
    assert Path(s.warehouse_root) == tmp_path / "relative" / "warehouse"
    assert s.database_url == "postgresql+psycopg://crm@db/crm"
    assert s.timezone == "Europe/Berlin" and s.reporting_currency == "EUR"
    assert not s.is_development_key
    assert s.start_date == dt.date(2025, 1, 1)
    assert s.site_hosts == ("shop.example", "www.shop.example")
    # the secret stays in the environment (read by s3fs/botocore), never in settings or run config
    assert s.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"CRM_TIMEZONE": "Mars/Olympus"}, ZoneInfoNotFoundError),
        ({"CRM_SCHEDULE_HOUR": "25"}, ValueError),
        ({"CRM_REPORTING_CURRENCY": "DOLLAR"}, ValueError),
        ({"CRM_START_DATE": "01/10/2026"}, ValueError),
        ({"CRM_MAX_AMOUNT": "0"}, ValueError),
        ({"CRM_MAX_AMOUNT": "inf"}, ValueError),
        ({"CRM_DUPLICATE_ID_HORIZON_DAYS": "0"}, ValueError),
        ({"CRM_MAX_FILE_BYTES": "0"}, ValueError),
    ],
)
def test_invalid_settings_fail_clearly(tmp_path, env, error):
    with pytest.raises(error):
        Settings.from_env(env, base_dir=tmp_path)


def test_the_settings_resource_round_trips_every_run_time_setting(tmp_path, monkeypatch):
    from crm_pipeline.resources import PipelineSettingsResource

    env = {"CRM_TIMEZONE": "Asia/Tokyo", "CRM_PII_KEY": "k", "CRM_SITE_HOSTS": "a.example,b.example",
           "CRM_IDENTITY_MAX_CUSTOMER_IDS": "email=1", "CRM_PLACEHOLDER_PHONES": "555",
           "CRM_IDENTITY_REFUSE_SHARED": "false", "CRM_GROUND_TRUTH_ROOT": "truth",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "CRM_START_DATE": "2026-01-31", "CRM_MAX_AMOUNT": "5e10",
           "CRM_DUPLICATE_ID_HORIZON_DAYS": "730", "CRM_MAX_FILE_BYTES": "1048576",
           "CRM_DATABASE_URL": "postgresql+psycopg://crm:pw@db/crm", "CRM_ALLOW_DEVELOPMENT_PII_KEY": "true"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(env, base_dir=tmp_path)
    assert settings.max_file_bytes == 1 << 20
    resource = PipelineSettingsResource.from_settings(settings)
    # the secrets are references to their variables, resolved when a run initialises the resource
    assert (resource.pii_key, resource.database_url) == ("CRM_PII_KEY", "CRM_DATABASE_URL")
    assert resource.process_config_and_initialize().get() == settings
    assert not settings.identity_refuse_shared and settings.identity_max_customer_ids == {"email": 1}
    assert settings.allow_development_pii_key
    assert settings.max_amount == 5e10 and settings.duplicate_id_horizon_days == 730


def test_the_settings_resource_declares_every_run_time_setting():
    """The resource mirrors Settings field by field (the schedule hour is only needed at definition time)."""
    import dataclasses

    from crm_pipeline.resources import PipelineSettingsResource

    settings_fields = {f.name for f in dataclasses.fields(Settings)} - {"schedule_hour"}
    assert set(PipelineSettingsResource.model_fields) == settings_fields
