"""Dagster resources: the pipeline settings, chosen once in the Definitions builder."""

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipeline.settings import Settings

OWNERS = ["team:crm-data"]


class PipelineSettingsResource(dg.ConfigurableResource):
    """The pipeline's settings (see the README's "Configuration"); secrets arrive through `dg.EnvVar`."""

    landing_root: str
    warehouse_root: str
    database_url: str
    timezone: str = "UTC"
    pii_key: str
    start_date: str
    reporting_currency: str = "USD"
    site_hosts: list[str] = Field(default_factory=lambda: ["example-shop.com"])
    blog_hosts: list[str] = Field(default_factory=lambda: ["blog.example-shop.com"])
    phone_region: str = "US"
    quarantine_warn_rate: float = 0.05
    crm_chunk_size: int = 50_000
    hub_max_customer_ids: int = 3
    identity_refuse_shared: bool = True
    identity_max_customer_ids: dict[str, int] = Field(default_factory=dict)
    placeholder_emails: list[str] = Field(default_factory=list)
    placeholder_phones: list[str] = Field(default_factory=list)
    fuzzy_match_threshold: float = 0.95
    attribution_lookback_days: float = 30.0
    attribution_lookback_by_channel: dict[str, float] = Field(default_factory=dict)
    attribution_stop_at_previous_order: bool = False
    attribution_max_touches: int | None = None
    attribution_path_transform: str = "none"
    attribution_markov_order: int = 1
    attribution_half_life_days: float = 7.0
    attribution_view_through: bool = False
    anomaly_threshold: float = 4.0
    anomaly_window_days: int = 28
    anomaly_min_days: int = 7
    late_data_lookback_days: int = 14
    restate_days: int = 30
    identity_restate_days: int = 30
    late_data_settle_minutes: float = 10.0
    business_hours: str = "mon-fri 09:00-17:00"
    business_holidays: list[str] = Field(default_factory=list)
    business_timezone: str = ""
    sla_first_response_hours: dict[str, float] = Field(
        default_factory=lambda: {"email": 24.0, "chat": 1.0, "phone": 1.0, "social": 4.0})
    ground_truth_root: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, secrets_from_env: bool = False) -> "PipelineSettingsResource":
        """Build from Settings; with `secrets_from_env` the PII key is a `dg.EnvVar` (not shown in the UI)."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            value = getattr(settings, name)
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [v.isoformat() if isinstance(v, dt.date) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            values[name] = value
        if secrets_from_env and not settings.is_development_key:
            values["pii_key"] = dg.EnvVar("CRM_PII_KEY")
        return cls(**values)

    def get(self) -> Settings:
        """The Settings the assets work with (the schedule hour is not needed at run time: default)."""
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            values[name] = tuple(value) if isinstance(value, list) else value
        values["start_date"] = dt.date.fromisoformat(self.start_date)
        values["business_holidays"] = tuple(dt.date.fromisoformat(d) for d in self.business_holidays)
        return Settings(**values)
