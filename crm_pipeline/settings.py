"""The pipeline's settings: one place, read from the environment.

Nothing here runs at import time; `Settings.from_env()` is called by the Definitions builder and by the
command line. Every variable is documented in the README ("Configuration").
"""

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from crm_pipeline.business_hours import BusinessSchedule

# A development-only key: outputs pseudonymised with it are NOT protected. Production sets CRM_PII_KEY.
DEVELOPMENT_PII_KEY = "crm-pipeline-DEVELOPMENT-ONLY-pii-key-do-not-use-in-production"

DEFAULT_START_DATE = dt.date(2026, 10, 1)
# 4 GiB: above a single-file export of a day of ~15M events, far below what a decompression bomb expands to
DEFAULT_MAX_FILE_BYTES = 4 << 30


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`, for messages and printouts (SQLAlchemy's own masking).

    An unparsable URL is not echoed at all: where its password starts cannot be known."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"


def url_has_password(url: str) -> bool:
    try:
        return sa.make_url(url).password is not None
    except sa.exc.ArgumentError:
        return True  # unknown: treat it as a secret


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


def _parse_pairs(value: str, variable: str) -> dict[str, float]:
    """`email=1,phone=2.5` -> {"email": 1.0, "phone": 2.5}."""
    pairs: dict[str, float] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, number = item.partition("=")
        try:
            pairs[name.strip().lower()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"{variable}: expected name=number items, got {item!r}")
    return pairs


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _local_or_url(value: str, base: Path) -> str:
    """Absolute local path, or the URL unchanged (s3://..., memory://...)."""
    if "://" in value:
        return value.rstrip("/")
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def _database_url(value: str | None, base: Path) -> str:
    if not value:
        return f"sqlite:///{(base / 'data' / 'crm.sqlite').resolve()}"
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to know about its environment."""

    landing_root: str
    warehouse_root: str
    database_url: str
    timezone: str = "UTC"
    pii_key: str = DEVELOPMENT_PII_KEY
    start_date: dt.date = DEFAULT_START_DATE
    reporting_currency: str = "USD"
    # referrer hosts of the company's own site (-> channel direct) and blog (-> channel blog)
    site_hosts: tuple[str, ...] = ("example-shop.com",)
    blog_hosts: tuple[str, ...] = ("blog.example-shop.com",)
    # region whose national phone numbers lack a country code (ISO 3166 alpha-2)
    phone_region: str = "US"
    # hour of day (reporting timezone) at which the daily schedule materialises yesterday
    schedule_hour: int = 2
    # quarantine share of a source's rows above which the ingestion check warns
    quarantine_warn_rate: float = 0.05
    # the largest plausible amount of one row (order, refund, cost line, CRM deal or term) in the reporting
    # currency: far above any real single sale or cost line, far below where sums of a day lose their cents
    max_amount: float = 1e9
    # how many days an order_id / refund_id is remembered after its first delivery, so that a different
    # version delivered on a later day is quarantined instead of counted twice (> the 365-day windows)
    duplicate_id_horizon_days: int = 400
    # rows per chunk when streaming CRM tables
    crm_chunk_size: int = 50_000
    # the most bytes one landing file may hold once decompressed (Parquet: once decoded); a file over it is
    # quarantined as unparsable without being read to its end (decompression bombs, absurd files)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    # identity: an identifier co-occurring with more customer_ids than this is a hub and links nothing
    hub_max_customer_ids: int = 3
    # identity: refuse identifiers seen with 2..K customer_ids that no other evidence puts in one person
    identity_refuse_shared: bool = True
    # identity: cardinality rules, identifier type -> most customer_ids it may belong to (e.g. email -> 1)
    identity_max_customer_ids: Mapping[str, int] = field(default_factory=dict)
    # identity: extra placeholder values (clear, as typed) that never link persons, beside the built-in ones
    placeholder_emails: tuple[str, ...] = ()
    placeholder_phones: tuple[str, ...] = ()
    # identity: fuzzy CRM record pairs at or above this match probability are linked
    fuzzy_match_threshold: float = 0.95
    # attribution (docs/outputs.md 2.7 defaults): lookback, per-channel lookbacks, stop at the previous order, the
    # longest journey kept (last N touches), path transform, Markov order, time-decay half-life, view-through
    attribution_lookback_days: float = 30.0
    attribution_lookback_by_channel: Mapping[str, float] = field(default_factory=dict)
    attribution_stop_at_previous_order: bool = False
    attribution_max_touches: int | None = None
    attribution_path_transform: str = "none"
    attribution_markov_order: int = 1
    attribution_half_life_days: float = 7.0
    attribution_view_through: bool = False
    # KPI anomaly warnings: a headline more than this many robust standard deviations (1.4826 x MAD) from the
    # median of its trailing window of days warns; fewer days of history than the minimum never warn
    anomaly_threshold: float = 4.0
    anomaly_window_days: int = 28
    anomaly_min_days: int = 7
    # late data and restatement (the restatement sensor): how far back inputs are watched, how many days from a
    # late day on are re-materialised, how many days before an identity change are restated (0: off), and how
    # long landing files must be quiet before they count (a burst of files gives one request)
    late_data_lookback_days: int = 14
    restate_days: int = 30
    identity_restate_days: int = 30
    late_data_settle_minutes: float = 10.0
    # service KPIs: the weekly business-hours schedule (one window per weekday), its holidays and timezone
    # (empty: the reporting timezone), and the first-response target in calendar hours per ticket channel
    business_hours: str = "mon-fri 09:00-17:00"
    business_holidays: tuple[dt.date, ...] = ()
    business_timezone: str = ""
    sla_first_response_hours: Mapping[str, float] = field(
        default_factory=lambda: {"email": 24.0, "chat": 1.0, "phone": 1.0, "social": 4.0})
    # subscription terms count for renewal_rate and churn_rate `revenue` once ended this many days before D
    renewal_grace_days: int = 7
    # a generated world's ground truth: when set, identity records its precision/recall/F1 against it
    ground_truth_root: str | None = None
    # extra fsspec storage options for s3:// roots (the endpoint of an S3-compatible server)
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    # let runs launched by the schedule, a sensor or a backfill pseudonymise with the public development key
    # (demos and tests); without it they are refused, since their outputs would not be protected
    allow_development_pii_key: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base_dir: Path | None = None) -> "Settings":
        env = os.environ if env is None else env
        base = Path.cwd() if base_dir is None else base_dir
        get = env.get
        # Credentials stay in the environment, where s3fs/botocore read AWS_ACCESS_KEY_ID and
        # AWS_SECRET_ACCESS_KEY themselves, so they never appear in run config or the UI.
        storage: dict[str, Any] = {}
        if get("AWS_ENDPOINT_URL"):
            storage["endpoint_url"] = get("AWS_ENDPOINT_URL")
        settings = cls(
            landing_root=_local_or_url(get("CRM_LANDING_ROOT") or "data/landing", base),
            warehouse_root=_local_or_url(get("CRM_WAREHOUSE_ROOT") or "data/warehouse", base),
            database_url=_database_url(get("CRM_DATABASE_URL"), base),
            timezone=get("CRM_TIMEZONE") or "UTC",
            pii_key=get("CRM_PII_KEY") or DEVELOPMENT_PII_KEY,
            start_date=dt.date.fromisoformat(get("CRM_START_DATE") or DEFAULT_START_DATE.isoformat()),
            reporting_currency=(get("CRM_REPORTING_CURRENCY") or "USD").strip().upper(),
            site_hosts=_split_list(get("CRM_SITE_HOSTS") or "example-shop.com"),
            blog_hosts=_split_list(get("CRM_BLOG_HOSTS") or "blog.example-shop.com"),
            phone_region=(get("CRM_PHONE_REGION") or "US").strip().upper(),
            schedule_hour=int(get("CRM_SCHEDULE_HOUR") or 2),
            quarantine_warn_rate=float(get("CRM_QUARANTINE_WARN_RATE") or 0.05),
            max_amount=float(get("CRM_MAX_AMOUNT") or 1e9),
            duplicate_id_horizon_days=int(get("CRM_DUPLICATE_ID_HORIZON_DAYS") or 400),
            crm_chunk_size=int(get("CRM_CHUNK_SIZE") or 50_000),
            max_file_bytes=int(get("CRM_MAX_FILE_BYTES") or DEFAULT_MAX_FILE_BYTES),
            hub_max_customer_ids=int(get("CRM_HUB_MAX_CUSTOMER_IDS") or 3),
            identity_refuse_shared=_flag(get("CRM_IDENTITY_REFUSE_SHARED"), True),
            identity_max_customer_ids={k: int(v) for k, v in _parse_pairs(
                get("CRM_IDENTITY_MAX_CUSTOMER_IDS") or "", "CRM_IDENTITY_MAX_CUSTOMER_IDS").items()},
            placeholder_emails=_split_list(get("CRM_PLACEHOLDER_EMAILS") or ""),
            placeholder_phones=tuple(v.strip() for v in (get("CRM_PLACEHOLDER_PHONES") or "").split(",") if v.strip()),
            fuzzy_match_threshold=float(get("CRM_FUZZY_MATCH_THRESHOLD") or 0.95),
            attribution_lookback_days=float(get("CRM_ATTRIBUTION_LOOKBACK_DAYS") or 30),
            attribution_lookback_by_channel={
                k: float(v) for k, v in _parse_pairs(get("CRM_ATTRIBUTION_LOOKBACK_BY_CHANNEL") or "",
                                                     "CRM_ATTRIBUTION_LOOKBACK_BY_CHANNEL").items()},
            attribution_stop_at_previous_order=_flag(get("CRM_ATTRIBUTION_STOP_AT_PREVIOUS_ORDER"), False),
            attribution_max_touches=int(get("CRM_ATTRIBUTION_MAX_TOUCHES")) if get("CRM_ATTRIBUTION_MAX_TOUCHES")
            else None,
            attribution_path_transform=(get("CRM_ATTRIBUTION_PATH_TRANSFORM") or "none").strip().lower(),
            attribution_markov_order=int(get("CRM_ATTRIBUTION_MARKOV_ORDER") or 1),
            attribution_half_life_days=float(get("CRM_ATTRIBUTION_HALF_LIFE_DAYS") or 7),
            attribution_view_through=_flag(get("CRM_ATTRIBUTION_VIEW_THROUGH"), False),
            anomaly_threshold=float(get("CRM_ANOMALY_THRESHOLD") or 4.0),
            anomaly_window_days=int(get("CRM_ANOMALY_WINDOW_DAYS") or 28),
            anomaly_min_days=int(get("CRM_ANOMALY_MIN_DAYS") or 7),
            late_data_lookback_days=int(get("CRM_LATE_DATA_LOOKBACK_DAYS") or 14),
            restate_days=int(get("CRM_RESTATE_DAYS") or 30),
            identity_restate_days=int(get("CRM_IDENTITY_RESTATE_DAYS") or 30),
            late_data_settle_minutes=float(get("CRM_LATE_DATA_SETTLE_MINUTES") or 10),
            business_hours=get("CRM_BUSINESS_HOURS") or "mon-fri 09:00-17:00",
            business_holidays=tuple(sorted({dt.date.fromisoformat(v) for v in _split_list(
                get("CRM_BUSINESS_HOLIDAYS") or "")})),
            business_timezone=(get("CRM_BUSINESS_TIMEZONE") or "").strip(),
            sla_first_response_hours=_parse_pairs(get("CRM_SLA_FIRST_RESPONSE_HOURS")
                                                  or "email=24,chat=1,phone=1,social=4",
                                                  "CRM_SLA_FIRST_RESPONSE_HOURS"),
            renewal_grace_days=int(get("CRM_RENEWAL_GRACE_DAYS") or 7),
            ground_truth_root=_local_or_url(get("CRM_GROUND_TRUTH_ROOT"), base) if get("CRM_GROUND_TRUTH_ROOT") else None,
            storage_options=storage,
            allow_development_pii_key=_flag(get("CRM_ALLOW_DEVELOPMENT_PII_KEY"), False),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError for an unknown zone
        try:
            sa.make_url(self.database_url)
        except sa.exc.ArgumentError:
            # the value is not repeated: it may hold a password
            raise ValueError("CRM_DATABASE_URL is not a valid SQLAlchemy URL (e.g. sqlite:///path/crm.sqlite or "
                             "postgresql+psycopg://user@host/db)") from None
        if not 0 <= self.schedule_hour <= 23:
            raise ValueError(f"CRM_SCHEDULE_HOUR must be 0..23, got {self.schedule_hour}")
        if self.renewal_grace_days < 0:
            raise ValueError(f"CRM_RENEWAL_GRACE_DAYS must be >= 0, got {self.renewal_grace_days}")
        if len(self.reporting_currency) != 3:
            raise ValueError(f"CRM_REPORTING_CURRENCY must be an ISO 4217 code, got {self.reporting_currency!r}")
        if self.crm_chunk_size < 1:
            raise ValueError("CRM_CHUNK_SIZE must be positive")
        if not 0 < self.max_amount < float("inf"):
            raise ValueError(f"CRM_MAX_AMOUNT must be a positive finite number, got {self.max_amount}")
        if self.duplicate_id_horizon_days < 1:
            raise ValueError("CRM_DUPLICATE_ID_HORIZON_DAYS must be at least 1")
        if self.max_file_bytes < 1:
            raise ValueError("CRM_MAX_FILE_BYTES must be positive")
        if self.hub_max_customer_ids < 1:
            raise ValueError("CRM_HUB_MAX_CUSTOMER_IDS must be at least 1")
        if not 0 < self.fuzzy_match_threshold < 1:
            raise ValueError("CRM_FUZZY_MATCH_THRESHOLD must be between 0 and 1")
        if self.attribution_path_transform not in ("none", "unique", "first", "frequency", "remove_direct"):
            raise ValueError("CRM_ATTRIBUTION_PATH_TRANSFORM must be none, unique, first, frequency or remove_direct")
        if self.attribution_markov_order < 1 or self.attribution_half_life_days <= 0:
            raise ValueError("CRM_ATTRIBUTION_MARKOV_ORDER must be >= 1 and CRM_ATTRIBUTION_HALF_LIFE_DAYS > 0")
        if self.anomaly_threshold <= 0 or not 1 <= self.anomaly_min_days <= self.anomaly_window_days:
            raise ValueError("CRM_ANOMALY_THRESHOLD must be positive and 1 <= CRM_ANOMALY_MIN_DAYS <= "
                             "CRM_ANOMALY_WINDOW_DAYS")
        if self.late_data_lookback_days < 1 or self.restate_days < 1 or self.identity_restate_days < 0 \
                or self.late_data_settle_minutes < 0:
            raise ValueError("CRM_LATE_DATA_LOOKBACK_DAYS and CRM_RESTATE_DAYS must be >= 1, "
                             "CRM_IDENTITY_RESTATE_DAYS and CRM_LATE_DATA_SETTLE_MINUTES >= 0")
        if self.attribution_lookback_days <= 0 or any(v <= 0 for v in self.attribution_lookback_by_channel.values()):
            raise ValueError("attribution lookbacks must be positive")
        _ = self.business_schedule  # parses CRM_BUSINESS_HOURS and the timezone: a mistake fails at start-up
        if any(v <= 0 for v in self.sla_first_response_hours.values()):
            raise ValueError("CRM_SLA_FIRST_RESPONSE_HOURS: targets must be positive hours")

    @property
    def is_development_key(self) -> bool:
        return self.pii_key == DEVELOPMENT_PII_KEY

    def automated_run_refusal(self) -> str | None:
        """Why runs launched by the schedule, a sensor or a backfill are refused, or None when they may run.

        Those runs are production by nature; pseudonyms made with the public development key protect nothing,
        so they need a real CRM_PII_KEY, or CRM_ALLOW_DEVELOPMENT_PII_KEY=true for a demo."""
        if self.is_development_key and not self.allow_development_pii_key:
            return ("CRM_PII_KEY is not set: scheduled, sensor and backfill runs refuse to pseudonymise with the "
                    "public development key. Set CRM_PII_KEY to the production secret, or "
                    "CRM_ALLOW_DEVELOPMENT_PII_KEY=true for demo data.")
        return None

    @property
    def business_schedule(self) -> BusinessSchedule:
        timezone = self.business_timezone or self.timezone
        ZoneInfo(timezone)
        return BusinessSchedule.parse(self.business_hours, self.business_holidays, timezone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_overrides(self, **changes: Any) -> "Settings":
        return replace(self, **changes)
