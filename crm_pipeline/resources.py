"""Dagster resources: the pipeline settings, chosen once in the Definitions builder.

Secrets and Dagster's storage: Dagster writes every resource's configuration into the snapshot of each run it
records in its instance (the run history, shown in the UI). So a secret is never a plain configuration value:

- a setting read from its environment variable (`CRM_DATABASE_URL`, `CRM_PII_KEY`) is passed as `dg.EnvVar`:
  Dagster stores the variable's name and reads the value in the process that executes the run;
- a value that is no secret may stay plain: the embedded SQLite path, a database URL without a password, the
  public development key;
- a secret given any other way (a `Settings` built in code with a password-bearing URL or a real PII key,
  credentials in storage options) is refused with an error saying how to pass it instead. S3 credentials stay
  in the environment, where s3fs/botocore read `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` themselves.
"""

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipeline.settings import DEFAULT_MAX_FILE_BYTES, DEVELOPMENT_PII_KEY, Settings, url_has_password

OWNERS = ["team:crm-data"]

# The settings that may be secrets, and the environment variable each one must come from.
SECRET_SETTINGS: Mapping[str, str] = {"database_url": "CRM_DATABASE_URL", "pii_key": "CRM_PII_KEY"}

# Storage-option names that carry credentials (s3fs, with botocore's names in client_kwargs; Azure; GCS tokens).
CREDENTIAL_OPTIONS = frozenset({
    "key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "account_key", "sas_token", "connection_string", "client_secret",
})

# Tags Dagster puts on the runs it launches by itself (dagster/_core/storage/tags.py): a schedule tick, a sensor,
# a backfill (the UI's and the restatement sensor's), declarative automation.
AUTOMATED_RUN_TAGS: tuple[str, ...] = (
    "dagster/schedule_name", "dagster/sensor_name", "dagster/backfill", "dagster/from_automation_condition",
    "dagster/auto_materialize",
)


class DevelopmentKeyRefusedError(RuntimeError):
    """An automated run would pseudonymise with the public development key."""


def _is_secret(name: str, value: str) -> bool:
    return url_has_password(value) if name == "database_url" else value != DEVELOPMENT_PII_KEY


def _option_names(options: Mapping[str, Any]) -> Iterator[str]:
    for name, value in options.items():
        yield str(name)
        if isinstance(value, Mapping):  # client_kwargs, config_kwargs, ...
            yield from _option_names(value)


def check_no_credentials(storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """The storage options, refused when they hold credentials: they would be stored with every run."""
    found = sorted({n for n in _option_names(storage_options) if n.lower() in CREDENTIAL_OPTIONS})
    if found:
        raise ValueError(
            f"storage options must not hold credentials ({', '.join(found)}): Dagster would store them with every "
            "run. Set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the store's own variables) in the environment.")
    return dict(storage_options)


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
    max_amount: float = 1e9
    duplicate_id_horizon_days: int = 400
    crm_chunk_size: int = 50_000
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
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
    renewal_grace_days: int = 7
    ground_truth_root: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    allow_development_pii_key: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> "PipelineSettingsResource":
        """Build from Settings, secrets as `dg.EnvVar` (see the module's docstring for the rule).

        `env` is the environment the settings were read from (default: this process's)."""
        env = os.environ if env is None else env
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
        for name, variable in SECRET_SETTINGS.items():
            if env.get(variable) and env[variable] == values[name]:
                values[name] = dg.EnvVar(variable)
            elif _is_secret(name, values[name]):
                what = "a database URL with a password" if name == "database_url" else "a PII key"
                raise ValueError(
                    f"{what} must come from the environment variable {variable}, not from settings built in code: "
                    "Dagster stores resource configuration with every run, so only the variable's name may be "
                    "stored there")
        values["storage_options"] = check_no_credentials(values["storage_options"])
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

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Before any step of a run: refuse a run Dagster launched by itself when it would pseudonymise with the
        public development key (unless allowed); a manual run goes on with a warning in its log, unless the key
        was allowed explicitly (CRM_ALLOW_DEVELOPMENT_PII_KEY: the user knows, a demo on sample data)."""
        settings = self.get()
        if not settings.is_development_key:
            return
        tags = context.run.tags if context.run is not None else {}
        launched_by = [f"{tag}={tags[tag]}" for tag in AUTOMATED_RUN_TAGS if tag in tags]
        refusal = settings.automated_run_refusal()
        if launched_by and refusal:
            raise DevelopmentKeyRefusedError(f"Run refused (launched by {', '.join(launched_by)}): {refusal}")
        if context.log is not None and not settings.allow_development_pii_key:
            context.log.warning("CRM_PII_KEY is not set: this run pseudonymises emails and phones with the public "
                                "development key; its outputs are not protected (not for production data)")
