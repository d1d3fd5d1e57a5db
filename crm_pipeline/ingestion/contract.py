"""The landing-zone input contract (docs/inputs.md section 1) as data: columns, closed lists, clean schemas.

Everything the readers, the validation and the Dagster assets need to agree on lives here, so that the
documented contract and the code cannot drift apart in two places.
"""

from dataclasses import dataclass

import pyarrow as pa

LANDING_SOURCES: tuple[str, ...] = ("events", "orders", "refunds", "costs", "fx_rates")

# ---------------------------------------------------------------------------------------------------------------
# closed lists

EVENT_TYPES: tuple[str, ...] = (
    # web
    "session_start", "category_view", "cart_add", "login",
    # mobile app
    "app_install", "app_uninstall", "app_open",
    # browser app / extension
    "browser_app_install", "browser_app_uninstall", "browser_app_click",
    # email
    "email_subscribe", "email_unsubscribe", "email_send", "email_delivered", "email_bounce",
    "email_open", "email_click", "email_complaint",
    # sms
    "sms_optin", "sms_optout", "sms_send", "sms_click",
    # push
    "push_send", "push_open",
    # social
    "social_follow", "social_unfollow", "social_interaction",
    # paid media
    "ad_impression", "ad_click",
    # postal mailing list
    "mail_subscribe", "mail_unsubscribe",
    # campaign holdout
    "holdout_assigned",
)
COST_TYPES: tuple[str, ...] = ("media", "salaries", "tools", "agency", "other")
OBJECTIVES: tuple[str, ...] = ("acquisition", "retention", "brand")
SALE_TYPES: tuple[str, ...] = ("standard", "upsell", "cross_sell", "renewal")
DEFAULT_SALE_TYPE = "standard"
DEVICE_TYPES: tuple[str, ...] = ("desktop", "tablet", "mobile", "other")
BOUNCE_TYPES: tuple[str, ...] = ("hard", "soft")
DEFAULT_BOUNCE_TYPE = "soft"
INTERACTION_KINDS: tuple[str, ...] = ("like", "share", "comment")

# Active ISO 4217 codes (list one of the standard, 2025). Left out on purpose: XTS (reserved for testing) and
# XXX ("no currency"), which are codes but never the currency of a sale or a cost. ANG stays beside its
# successor XCG (2025) because exports of the transition period still carry it.
ISO_4217: tuple[str, ...] = (
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD",
    "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF",
    "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL",
    "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF",
    "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF",
    "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU",
    "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD",
    "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
)

# The first failing check names a quarantined row's reason, in exactly this order (documented in the README):
# structure first (is the row usable at all), then values, then the day it belongs to, then reference data.
VALIDATION_ORDER: tuple[str, ...] = (
    "missing_required_field",
    "no_identifier",
    "unparsable_timestamp",
    "unparsable_number",
    "negative_amount",
    "unknown_event_type",
    "unknown_currency",
    "invalid_value",
    "folder_day_mismatch",
    "missing_fx_rate",
    "amount_out_of_range",  # last: an amount is judged in the reporting currency, so it needs the row's rate
)
# After validation, among the rows that passed it; exact re-deliveries are dropped before validation.
CONFLICT_REASON = "duplicate_id_conflict"

# Plausible fx rates (reporting-currency units per unit). Between any two ISO 4217 currencies, metals included,
# rates span about 2.5e-10 (troy ounces of gold per Iranian rial) to 4e9 (rials per ounce); these bounds leave
# a 250-fold margin. A rate outside them is a unit error, and it would turn a normal amount into ~0 or into an overflow.
FX_RATE_RANGE: tuple[float, float] = (1e-12, 1e12)

# Money sources whose ids are remembered across days (`ingest/<order|refund>_ids`): a clean row whose id was
# delivered on an earlier day is a conflict, since counting it again would count its money twice. Events are
# left out (millions of ids a day, and a repeated event moves a count by one, not revenue), costs have no id,
# and an fx rate's id holds its date, so it cannot fall on two days.
SEEN_ID_SOURCES: tuple[str, ...] = ("orders", "refunds")


# Closed vocabularies whose clean value is case-folded: spelling `Email` or `usd` changes nothing, so exact
# re-delivery detection ignores their case too.
CASE_INSENSITIVE: frozenset[str] = frozenset(
    {"event_type", "channel", "device_type", "currency", "sale_type", "cost_type", "objective"}
)

# ---------------------------------------------------------------------------------------------------------------
# per-source landing contract


@dataclass(frozen=True)
class LandingContract:
    """What a landing file of one source holds and which of its columns the validation treats how."""

    source: str
    columns: tuple[str, ...]  # every contract column, in documented order
    required: tuple[str, ...]
    day_column: str  # the timestamp (or `date`) that assigns a row to a partition
    day_is_date: bool  # `date` (a calendar day) rather than a timestamp
    numbers: tuple[str, ...] = ()  # numeric columns: unparsable -> unparsable_number
    amounts: tuple[str, ...] = ()  # numeric columns that must be >= 0
    identifiers: tuple[str, ...] = ()  # at least one must be present (no_identifier)
    id_columns: tuple[str, ...] = ()  # same id + different content -> duplicate_id_conflict (clean names)
    has_currency: bool = False


UTM_COLUMNS = ("utm_source", "utm_medium", "utm_campaign")

CONTRACTS: dict[str, LandingContract] = {
    "events": LandingContract(
        source="events",
        columns=("event_id", "occurred_at", "event_type", "channel", "campaign_id", "device_type", "session_id",
                 "anonymous_id", "device_id", "customer_id", "email", "phone", *UTM_COLUMNS, "referrer",
                 "category", "properties"),
        required=("event_id", "occurred_at", "event_type"),
        day_column="occurred_at",
        day_is_date=False,
        identifiers=("anonymous_id", "device_id", "customer_id", "email", "phone"),
        id_columns=("event_id",),
    ),
    "orders": LandingContract(
        source="orders",
        columns=("order_id", "ordered_at", "customer_id", "email", "anonymous_id", "device_id", "gross_revenue",
                 "discount_amount", "cost_of_goods", "currency", "sale_type", "subscription_id", "categories",
                 "device_type", "channel"),
        required=("order_id", "ordered_at", "gross_revenue", "currency"),
        day_column="ordered_at",
        day_is_date=False,
        numbers=("gross_revenue", "discount_amount", "cost_of_goods"),
        amounts=("gross_revenue", "discount_amount", "cost_of_goods"),
        identifiers=("customer_id", "email", "anonymous_id", "device_id"),
        id_columns=("order_id",),
        has_currency=True,
    ),
    "refunds": LandingContract(
        source="refunds",
        columns=("refund_id", "order_id", "refunded_at", "amount", "currency"),
        required=("refund_id", "order_id", "refunded_at", "amount", "currency"),
        day_column="refunded_at",
        day_is_date=False,
        numbers=("amount",),
        amounts=("amount",),
        id_columns=("refund_id",),
        has_currency=True,
    ),
    "costs": LandingContract(
        source="costs",
        columns=("date", "cost_type", "objective", "channel", "campaign_id", "amount", "currency"),
        required=("date", "cost_type", "objective", "amount", "currency"),
        day_column="date",
        day_is_date=True,
        numbers=("amount",),
        amounts=("amount",),
        has_currency=True,
    ),
    "fx_rates": LandingContract(
        source="fx_rates",
        columns=("date", "currency", "rate_to_reporting"),
        required=("date", "currency", "rate_to_reporting"),
        day_column="date",
        day_is_date=True,
        numbers=("rate_to_reporting",),
        id_columns=("rate_date", "currency"),
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# clean schemas (binding for downstream code). No column is named `date`: that is the Hive partition column.

_TS = pa.timestamp("us", tz="UTC")
_S = pa.string()
_F = pa.float64()
_D = pa.date32()


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, typ) for name, typ in fields])


CLEAN_SCHEMAS: dict[str, pa.Schema] = {
    "events": _schema(
        ("event_id", _S), ("occurred_at", _TS), ("event_type", _S), ("channel", _S), ("channel_group", _S),
        ("campaign_id", _S), ("device_type", _S), ("session_id", _S), ("anonymous_id", _S), ("device_id", _S),
        ("customer_id", _S), ("email_hash", _S), ("phone_hash", _S), ("utm_source", _S), ("utm_medium", _S),
        ("utm_campaign", _S), ("referrer", _S), ("category", _S), ("properties", _S), ("bounce_type", _S),
        ("interaction_kind", _S), ("source_file", _S),
    ),
    "orders": _schema(
        ("order_id", _S), ("ordered_at", _TS), ("customer_id", _S), ("email_hash", _S), ("anonymous_id", _S),
        ("device_id", _S), ("currency", _S), ("fx_rate", _F), ("gross_revenue", _F), ("discount_amount", _F),
        ("net_revenue", _F), ("cost_of_goods", _F), ("gross_revenue_original", _F),
        ("discount_amount_original", _F), ("net_revenue_original", _F), ("cost_of_goods_original", _F),
        ("sale_type", _S), ("subscription_id", _S), ("categories", _S), ("device_type", _S), ("channel", _S),
        ("channel_group", _S), ("source_file", _S),
    ),
    "refunds": _schema(
        ("refund_id", _S), ("order_id", _S), ("refunded_at", _TS), ("currency", _S), ("fx_rate", _F),
        ("amount", _F), ("amount_original", _F), ("source_file", _S),
    ),
    "costs": _schema(
        ("cost_date", _D), ("cost_type", _S), ("objective", _S), ("channel", _S), ("channel_group", _S),
        ("campaign_id", _S), ("currency", _S), ("fx_rate", _F), ("amount", _F), ("amount_original", _F),
        ("source_file", _S),
    ),
    "fx_rates": _schema(("rate_date", _D), ("currency", _S), ("rate_to_reporting", _F), ("source_file", _S)),
}

# Deterministic row order of each clean table: its id, or its whole natural key where it has none.
CLEAN_SORT_KEYS: dict[str, tuple[str, ...]] = {
    "events": ("event_id",),
    "orders": ("order_id",),
    "refunds": ("refund_id",),
    "costs": ("cost_date", "cost_type", "objective", "channel", "campaign_id", "currency", "amount_original"),
    "fx_rates": ("rate_date", "currency"),
}
