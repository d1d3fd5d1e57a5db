"""Dagster resources: the pipeline settings, chosen once in the Definitions builder."""

import datetime as dt
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
    ground_truth_root: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, secrets_from_env: bool = False) -> "PipelineSettingsResource":
        """Build from Settings; with `secrets_from_env` the PII key is a `dg.EnvVar` (not shown in the UI)."""
        pii_key: Any = dg.EnvVar("CRM_PII_KEY") if secrets_from_env and not settings.is_development_key else (
            settings.pii_key
        )
        return cls(
            landing_root=settings.landing_root,
            warehouse_root=settings.warehouse_root,
            database_url=settings.database_url,
            timezone=settings.timezone,
            pii_key=pii_key,
            start_date=settings.start_date.isoformat(),
            reporting_currency=settings.reporting_currency,
            site_hosts=list(settings.site_hosts),
            blog_hosts=list(settings.blog_hosts),
            phone_region=settings.phone_region,
            quarantine_warn_rate=settings.quarantine_warn_rate,
            crm_chunk_size=settings.crm_chunk_size,
            hub_max_customer_ids=settings.hub_max_customer_ids,
            identity_refuse_shared=settings.identity_refuse_shared,
            identity_max_customer_ids=dict(settings.identity_max_customer_ids),
            placeholder_emails=list(settings.placeholder_emails),
            placeholder_phones=list(settings.placeholder_phones),
            fuzzy_match_threshold=settings.fuzzy_match_threshold,
            ground_truth_root=settings.ground_truth_root,
            storage_options=dict(settings.storage_options),
        )

    def get(self) -> Settings:
        return Settings(
            landing_root=self.landing_root,
            warehouse_root=self.warehouse_root,
            database_url=self.database_url,
            timezone=self.timezone,
            pii_key=self.pii_key,
            start_date=dt.date.fromisoformat(self.start_date),
            reporting_currency=self.reporting_currency,
            site_hosts=tuple(self.site_hosts),
            blog_hosts=tuple(self.blog_hosts),
            phone_region=self.phone_region,
            quarantine_warn_rate=self.quarantine_warn_rate,
            crm_chunk_size=self.crm_chunk_size,
            hub_max_customer_ids=self.hub_max_customer_ids,
            identity_refuse_shared=self.identity_refuse_shared,
            identity_max_customer_ids=dict(self.identity_max_customer_ids),
            placeholder_emails=tuple(self.placeholder_emails),
            placeholder_phones=tuple(self.placeholder_phones),
            fuzzy_match_threshold=self.fuzzy_match_threshold,
            ground_truth_root=self.ground_truth_root,
            storage_options=dict(self.storage_options),
        )
