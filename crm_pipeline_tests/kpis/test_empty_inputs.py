"""Every KPI, daily aggregate and state on empty inputs (docs/outputs.md section 1): a quiet day, or a deployment with no
events source at all, writes the exact empty-population rows, never a crash.

Inputs are zero-row partitions exactly as the IO manager hands them to the assets (typed columns from the
declared Arrow schemas, a `date` column on window inputs), and the expected rows are written out by hand.
"""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from crm_pipeline import checks
from crm_pipeline.attribution.credits import ORDER_ATTRIBUTION_SCHEMA
from crm_pipeline.attribution.journeys import JOURNEY_TOUCHES_SCHEMA, JOURNEYS_SCHEMA, TOUCHES_SCHEMA
from crm_pipeline.identity.graph import IDENTITY_MAP_SCHEMA, IDENTITY_MERGES_SCHEMA
from crm_pipeline.ingestion.contract import CLEAN_SCHEMAS
from crm_pipeline.ingestion.crm import CRM_SCHEMAS
from crm_pipeline.ingestion.landing import FX_LATEST_SCHEMA
from crm_pipeline.kpis import (
    aggregates,
    audiences,
    campaigns,
    clv,
    lifetime,
    loyalty,
    retention,
    scorecard_channels,
    states,
    value,
)
from crm_pipeline.kpis.assets import ALL_KPIS, kpi_key
from crm_pipeline.kpis.framework import KpiDefinition, finalise, headline_target_check, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.metadata import arrow_table
from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import records, stored

START = dt.date(2026, 10, 1)
D = dt.date(2026, 10, 5)  # not the first day: asset_counts' net_change is a number (0), not null
# a timezone with an offset, so that every conversion to local days and hours runs on the empty columns too
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="America/New_York",
                    start_date=START)
NO_CHANGES = PersonRemap.none()
N = None

# the Arrow schema each KPI input is written with
SCHEMAS = {
    ("aggregates", "person_signals"): states.PERSON_SIGNALS_SCHEMA,
    ("aggregates", "person_engagement"): aggregates.PERSON_ENGAGEMENT_SCHEMA,
    ("aggregates", "visits"): aggregates.VISITS_SCHEMA,
    ("aggregates", "messaging"): aggregates.MESSAGING_SCHEMA,
    ("aggregates", "first_orders"): aggregates.FIRST_ORDERS_SCHEMA,
    ("ingest", "crm_customers"): CRM_SCHEMAS["customers"],
    ("identity", "identity_map"): IDENTITY_MAP_SCHEMA,
    ("audience_membership",): audiences.MEMBERSHIP_SCHEMA,
    ("attribution", "journeys"): JOURNEYS_SCHEMA,
    ("attribution", "order_attribution"): ORDER_ATTRIBUTION_SCHEMA,
    ("ingest", "orders"): CLEAN_SCHEMAS["orders"],
    ("ingest", "crm_leads"): CRM_SCHEMAS["leads"],
    ("ingest", "crm_opportunities"): CRM_SCHEMAS["opportunities"],
    ("ingest", "crm_survey_responses"): CRM_SCHEMAS["survey_responses"],
    ("ingest", "crm_support_tickets"): CRM_SCHEMAS["support_tickets"],
    ("clv_predictions",): clv.CLV_PREDICTIONS_SCHEMA,
    ("clv_model",): clv.CLV_MODEL_SCHEMA,
    ("aggregates", "order_book"): states.ORDER_BOOK_SCHEMA,
    ("aggregates", "refund_ledger"): states.REFUND_LEDGER_SCHEMA,
    ("aggregates", "email_sends"): value.EMAIL_SENDS_SCHEMA,
    ("attribution", "journey_touches"): JOURNEY_TOUCHES_SCHEMA,
    ("ingest", "crm_subscription_terms"): CRM_SCHEMAS["subscription_terms"],
    ("aggregates", "customer_status"): retention.CUSTOMER_STATUS_SCHEMA,
    ("aggregates", "engagement_recency"): retention.ENGAGEMENT_RECENCY_SCHEMA,
    ("ingest", "costs"): CLEAN_SCHEMAS["costs"],
    ("aggregates", "campaign_contacts"): campaigns.CAMPAIGN_CONTACTS_SCHEMA,
    ("aggregates", "campaign_starts"): campaigns.CAMPAIGN_STARTS_SCHEMA,
    ("aggregates", "ad_clicks"): campaigns.AD_CLICKS_SCHEMA,
    lifetime.COHORT_RETENTION: next(k for k in lifetime.KPIS if k.name == "cohort_retention").schema,
    ("attribution", "touches"): TOUCHES_SCHEMA,
    ("aggregates", "asset_signups"): scorecard_channels.ASSET_SIGNUPS_SCHEMA,
    ("aggregates", "first_order_credits"): scorecard_channels.FIRST_ORDER_CREDITS_SCHEMA,
}

ASSETS_SORTED = ("app_active_30d", "app_installs", "browser_app_active_30d", "browser_app_installs",
                 "email_openers_180d", "email_subscribers", "mailing_list", "registered_customers", "sms_list",
                 "social_followers")
BUCKETS_SORTED = ("0", "1", "10+", "2", "3", "4", "5", "6", "7", "8", "9")
# (dimension values..., numerator, denominator, value, unit), sorted by the dimensions with nulls first.
# Count form: 0 and a null denominator; a quotient: 0 / 0 and a null value; a median: null / 0 and a null value.
EXPECTED: dict[str, list[tuple]] = {
    "asset_counts": [(N, N, 0.0, N, 0.0, "count")]
    + [(a, m, 0.0, N, 0.0, "count") for a in ASSETS_SORTED for m in ("net_change", "size")],
    "uar_30d": [(N, 0.0, N, 0.0, "count")],
    "asset_engagement_ratio": [(N, 0.0, 0.0, N, "ratio"), ("1d", 0.0, 0.0, N, "ratio"),
                               ("30d", 0.0, 0.0, N, "ratio")],
    "owned_paid_ratio": [(N, N, 0.0, 0.0, N, "ratio")]
    + [(m, w, 0.0, 0.0, N, "ratio") for m in ("earned_share", "owned_share", "owned_to_paid", "paid_share")
       for w in ("1d", "30d")],
    "engagement_rates": [
        (N, 0.0, 0.0, N, "ratio"),
        ("click_to_open_rate", 0.0, 0.0, N, "ratio"), ("email_click_rate", 0.0, 0.0, N, "ratio"),
        ("email_open_rate", 0.0, 0.0, N, "ratio"), ("push_open_rate", 0.0, 0.0, N, "ratio"),
        ("sms_click_rate", 0.0, 0.0, N, "ratio"), ("social_comments", 0.0, N, 0.0, "count"),
        ("social_interactions", 0.0, N, 0.0, "count"), ("social_likes", 0.0, N, 0.0, "count"),
        ("social_shares", 0.0, N, 0.0, "count"), ("website_visits", 0.0, N, 0.0, "count")],
    # no device type has a visit: only the coverage row
    "device_hour_index": [(N, N, 0.0, 0.0, N, "ratio")],
    # the four fixed audiences every day; category audiences only with members
    "audiences": [(N, N, 0.0, N, 0.0, "count"), (N, "reach", 0.0, N, 0.0, "count")]
    + [(a, m, 0.0, N, 0.0, "count") for a in ("active_app_users", "cart_abandoners", "recent_email_clickers",
                                               "winback_candidates") for m in ("activatable", "size")],
    "influences_per_order": [(N, N, 0.0, 0.0, N, "count"), ("channels", N, 0.0, 0.0, N, "count")]
    + [("order_share", b, 0.0, 0.0, N, "ratio") for b in BUCKETS_SORTED]
    + [("touches", N, 0.0, 0.0, N, "count")],
    # every model has its row every day; no channel has credit
    "attributed_revenue": [(N, N, 0.0, N, 0.0, "currency")]
    + [(m, N, 0.0, N, 0.0, "currency") for m in ("first_touch", "last_non_direct", "last_touch", "linear", "markov",
                                                  "position_based", "shapley", "time_decay")],
    "time_to_conversion": [(N, N, 0.0, N, "days"), ("mean_days", 0.0, 0.0, N, "days"),
                           ("median_days", N, 0.0, N, "days")],
    "time_to_first_value": [(N, 0.0, N, "days")],
    # sales and service: CRM rows as of D; open dimensions (source, channel, type) have no value on an empty day
    "lead_response_time": [(N, N, 0.0, 0.0, N, "hours"), ("mean_hours", N, 0.0, 0.0, N, "hours"),
                           ("median_hours", N, N, 0.0, N, "hours"), ("p90_hours", N, N, 0.0, N, "hours"),
                           ("unanswered_24h_share", N, 0.0, 0.0, N, "ratio")],
    "sales_conversion_rate": [(N, N, 0.0, 0.0, N, "ratio"), ("conversion_rate", N, 0.0, 0.0, N, "ratio"),
                              ("lead_to_opportunity", N, 0.0, 0.0, N, "ratio")],
    "close_rate": [(N, 0.0, 0.0, N, "ratio")],
    "sales_cycle_length": [(N, 0.0, 0.0, N, "days"), ("mean_days", 0.0, 0.0, N, "days"),
                           ("median_days", N, 0.0, N, "days")],
    # velocity multiplies factors that are null without closed deals: all null
    "pipeline_velocity": [(N, N, N, N, "currency_per_day"), ("close_rate_90d", 0.0, 0.0, N, "ratio"),
                          ("cycle_days_mean", 0.0, 0.0, N, "days"), ("open_opportunities", 0.0, N, 0.0, "count"),
                          ("velocity", N, N, N, "currency_per_day"), ("won_amount_mean", 0.0, 0.0, N, "currency")],
    "lead_source_mix": [(N, N, 0.0, N, 0.0, "count"), ("conversions", N, 0.0, N, 0.0, "count"),
                        ("leads", N, 0.0, N, 0.0, "count"), ("qualified", N, 0.0, N, 0.0, "count"),
                        ("won_revenue", N, 0.0, N, 0.0, "currency")],
    "upsell_crosssell_rate": [(N, 0.0, 0.0, N, "percent"), ("cross_sell", 0.0, 0.0, N, "percent"),
                              ("upsell", 0.0, 0.0, N, "percent")],
    "nps": [(0.0, 0.0, N, "score")],
    "csat": [(N, 0.0, 0.0, N, "percent"), ("mean_score", 0.0, 0.0, N, "score"),
             ("pct_satisfied", 0.0, 0.0, N, "percent"), ("seed_mean_pct", 0.0, 0.0, N, "percent")],
    "ces": [(N, 0.0, 0.0, N, "score"), ("mean_score", 0.0, 0.0, N, "score"),
            ("pct_low_effort", 0.0, 0.0, N, "percent"), ("seed_mean_pct", 0.0, 0.0, N, "percent")],
    "first_contact_resolution": [(N, 0.0, 0.0, N, "percent")],
    "response_time": [(N, N, 0.0, 0.0, N, "hours")]
    + [(m, N, *((0.0, 0.0) if m.endswith("mean_hours") else (N, 0.0)), N, "hours")
       for m in ("business_mean_hours", "business_median_hours", "business_p90_hours", "mean_hours",
                 "median_hours", "p90_hours")],
    "resolution_touches": [(N, N, 0.0, 0.0, N, "ratio")] + [(t, N, 0.0, 0.0, N, "ratio") for t in ("1", "2", "3+")],
    "sla_breach_rate": [(N, 0.0, 0.0, N, "ratio")],
    # no buyer: means over 0 buyers, the models are not fitted
    "clv_predictive": [(N, 0.0, 0.0, N, "currency"), ("expected_purchases_12m", 0.0, 0.0, N, "count"),
                       ("expected_value_12m", 0.0, 0.0, N, "currency"), ("p_alive", 0.0, 0.0, N, "ratio")],
    "deliverability": [(N, 0.0, 0.0, N, "ratio")] + [(m, 0.0, 0.0, N, "ratio") for m in (
        "bounce_rate", "complaint_rate", "delivery_rate", "unsubscribe_rate")],
    # retention and loyalty: no active customer, empty cohorts; no open value (channel, category) on a quiet day
    "recency_frequency": [(N, N, 0.0, 0.0, N, "days"), ("frequency", N, 0.0, 0.0, N, "count"),
                          ("mean_days_between_orders", N, 0.0, 0.0, N, "days"),
                          ("recency_days", N, 0.0, 0.0, N, "days")],
    "repeat_purchase_rate": [(N, N, 0.0, 0.0, N, "ratio"), ("60d", N, 0.0, 0.0, N, "ratio"),
                             ("90d", N, 0.0, 0.0, N, "ratio")],
    "activation_rate": [(0.0, 0.0, N, "ratio")],
    "registrant_retention": [(N, N, 0.0, 0.0, N, "ratio")]
    + [(m, w, 0.0, 0.0, N, "count" if m == "avg_engagements" else "ratio")
       for m in ("avg_engagements", "retention_rate") for w in ("180d", "30d", "90d")],
    # no order, no refund, no active customer: every quotient 0 / 0
    "aov_arpu": [(N, N, 0.0, 0.0, N, "currency")]
    + [(m, w, 0.0, 0.0, N, "currency") for m in ("aov", "arpu") for w in ("1d", "30d")],
    "refund_and_discount": [(N, 0.0, 0.0, N, "ratio")] + [(m, 0.0, 0.0, N, "ratio") for m in (
        "discount_to_gross", "discounted_order_share", "refund_rate")],
    # no customer in either window: every window and bucket 0 / 0
    "ltv": [(N, N, N, 0.0, 0.0, N, "currency")]
    + [(w, f, t, 0.0, 0.0, N, "currency") for w in ("12m", "18m") for f, t in (
        (N, N), (N, "0-89"), (N, "365+"), (N, "90-364"), ("1", N), ("2-3", N), ("4-6", N), ("7+", N))],
    # no campaign sent: only the pooled total, 0 / 0
    "revenue_per_recipient": [(N, 0.0, 0.0, N, "currency")],
    # retention: no customer at D-30 and no term ending in D-36..D-7: every share over them is 0 / 0
    "customer_retention_rate": [(N, 0.0, 0.0, N, "percent")] + [(m, 0.0, 0.0, N, "percent") for m in (
        "cohort_retained", "end_over_start", "standard")],
    "churn_rate": [(N, 0.0, 0.0, N, "percent")] + [(m, 0.0, 0.0, N, "percent") for m in (
        "customer", "revenue", "revenue_lost")],
    "winback_conversion_rate": [(0.0, 0.0, N, "ratio")],
    "renewal_rate": [(N, 0.0, 0.0, N, "ratio")],
    "reengagement_rate": [(0.0, 0.0, N, "ratio")],
    # no cost and no new customer: only the total row (channels are open values)
    "cac": [(N, 0.0, 0.0, N, "currency")],
    "crc": [(0.0, 0.0, N, "currency")],
    # no campaign: the pooled rates are 0 / 0, the lift and its interval null
    "incremental_lift": [(N, N, N, N, N, "percent"), (N, "ci_high", N, N, N, "percent"),
                         (N, "ci_low", N, N, N, "percent"), (N, "conversion_rate_holdout", 0.0, 0.0, N, "percent"),
                         (N, "conversion_rate_sent", 0.0, 0.0, N, "percent"), (N, "lift", N, N, N, "percent")],
    "ad_conversion_rate": [(0.0, 0.0, N, "ratio")],
    # no active customer at D-30: churn, lifetime, clv and its margin are null; no order: aov 0 / 0
    "clv": [(N, N, N, N, "currency"), ("annual_churn", N, N, N, "ratio"), ("aov", 0.0, 0.0, N, "currency"),
            ("clv", N, N, N, "currency"), ("clv_margin", N, N, N, "currency"),
            ("orders_per_customer", 0.0, 0.0, N, "count")],
    # no order ever: no cohort; the headline cohort is empty: retention 0 / 0
    "cohort_retention": [(N, N, N, N, 0.0, 0.0, N, "ratio")],
    # no order and no media spend: no channel row; the headline is 0 net revenue (count form)
    "channel_scorecard": [(N, N, N, 0.0, N, 0.0, "currency"), (N, N, "attributed_revenue", 0.0, N, 0.0, "currency")],
}


def empty_inputs(kpi: KpiDefinition) -> dict[str, pd.DataFrame]:
    """The KPI's inputs on a day when every one is empty, each as the KPI asset receives it."""
    out = {}
    for i in kpi.inputs:
        window = i.window_days > 1 or i.offset_days > 0  # as the IO manager hands a window to the asset
        frame = stored(SCHEMAS[tuple(i.key)], window=window)
        out[i.name] = frame[[*i.columns, *(["date"] if window else [])]] if i.columns else frame
    return out


def compute(kpi: KpiDefinition, inputs: dict[str, pd.DataFrame], day: dt.date = D) -> pd.DataFrame:
    """What the KPI asset writes for `day` (the same extra arguments as the factory passes)."""
    extra = {**({"day": day} if kpi.needs_day else {}), **({"settings": SETTINGS} if kpi.needs_settings else {}),
             **({"remap": NO_CHANGES} if kpi.needs_remap else {})}
    return finalise(kpi, kpi.compute(**inputs, **extra))


def test_every_kpi_has_its_empty_day_written_out():
    assert set(EXPECTED) == {k.name for k in ALL_KPIS}
    assert {tuple(i.key) for k in ALL_KPIS for i in k.inputs} <= set(SCHEMAS)


@pytest.mark.parametrize("kpi", ALL_KPIS, ids=lambda k: k.name)
def test_a_kpi_on_empty_inputs_writes_its_empty_population_rows(kpi: KpiDefinition):
    frame = compute(kpi, empty_inputs(kpi))
    assert records(frame) == EXPECTED[kpi.name]
    key = kpi_key(kpi)
    results = [*standard_checks(kpi, key, frame)] + ([headline_target_check(kpi, key, frame)]
                                                    if kpi.warn_below is not None else [])
    assert [r.check_name for r in results if not r.passed] == []
    table = arrow_table(frame, kpi.schema)  # the explicit schema, also for the all-null columns
    assert table.schema == kpi.schema and checks.schema_is_declared(key, table, kpi.schema).passed


def test_asset_counts_on_the_first_day_has_null_net_changes():
    kpi = next(k for k in ALL_KPIS if k.name == "asset_counts")
    frame = compute(kpi, empty_inputs(kpi), day=START)
    changes = frame.loc[frame["metric"] == "net_change"]
    assert len(changes) == 10 and changes[["numerator", "denominator", "value"]].isna().all().all()
    assert records(frame.loc[frame["asset"] == "registered_customers"]) == [
        ("registered_customers", "net_change", N, N, N, "count"),
        ("registered_customers", "size", 0.0, N, 0.0, "count")]


# ---------------------------------------------------------------------------------------------------------------
# the daily aggregates and the states on a day without events or orders

EVENTS = stored(CLEAN_SCHEMAS["events"])
ORDERS = stored(CLEAN_SCHEMAS["orders"])
REFUNDS = stored(CLEAN_SCHEMAS["refunds"])
FX_LATEST = stored(FX_LATEST_SCHEMA)
IDENTITY_MAP = stored(IDENTITY_MAP_SCHEMA)
MERGES = stored(IDENTITY_MERGES_SCHEMA)
OLDEST = D - dt.timedelta(days=states.ORDER_BOOK_DAYS - 1)


def _membership(previous: pd.DataFrame | None, person_signals: pd.DataFrame, order_book: pd.DataFrame):
    return audiences.audience_membership(
        person_signals, order_book, stored(aggregates.CATEGORY_VIEWS_SCHEMA, window=True),
        stored(CRM_SCHEMAS["customers"]), IDENTITY_MAP, previous, NO_CHANGES, D, SETTINGS)


# name: (build on an empty day with no previous state, schema, primary key)
BUILDERS = {
    "visits": (lambda: aggregates.daily_visits(EVENTS, SETTINGS.timezone), aggregates.VISITS_SCHEMA,
               aggregates.VISITS_PK),
    "person_engagement": (lambda: aggregates.daily_person_engagement(EVENTS, IDENTITY_MAP),
                          aggregates.PERSON_ENGAGEMENT_SCHEMA, aggregates.PERSON_ENGAGEMENT_PK),
    "category_views": (lambda: aggregates.daily_category_views(EVENTS, IDENTITY_MAP),
                       aggregates.CATEGORY_VIEWS_SCHEMA, aggregates.CATEGORY_VIEWS_PK),
    "messaging": (lambda: aggregates.daily_messaging(EVENTS, IDENTITY_MAP), aggregates.MESSAGING_SCHEMA,
                  aggregates.MESSAGING_PK),
    "first_orders": (lambda: aggregates.update_first_orders(None, ORDERS, IDENTITY_MAP, MERGES),
                     aggregates.FIRST_ORDERS_SCHEMA, ["person_id"]),
    "person_signals": (lambda: states.update_person_signals(None, EVENTS, ORDERS, IDENTITY_MAP, MERGES),
                       states.PERSON_SIGNALS_SCHEMA, states.PERSON_SIGNALS_PK),
    "order_book": (lambda: states.update_order_book(None, ORDERS, REFUNDS, FX_LATEST, IDENTITY_MAP, MERGES,
                                                    SETTINGS.timezone, "USD", OLDEST)[0],
                   states.ORDER_BOOK_SCHEMA, ["order_id"]),
    "refund_ledger": (lambda: states.update_refund_ledger(None, REFUNDS, stored(states.ORDER_BOOK_SCHEMA), MERGES,
                                                          SETTINGS.timezone, OLDEST),
                      states.REFUND_LEDGER_SCHEMA, ["refund_id"]),
    "email_sends": (lambda: value.daily_email_sends(EVENTS, IDENTITY_MAP), value.EMAIL_SENDS_SCHEMA,
                    value.EMAIL_SENDS_PK),
    "audience_membership": (lambda: _membership(None, stored(states.PERSON_SIGNALS_SCHEMA),
                                                stored(states.ORDER_BOOK_SCHEMA)),
                            audiences.MEMBERSHIP_SCHEMA, audiences.MEMBERSHIP_PK),
    "customer_rfm": (lambda: loyalty.customer_rfm(loyalty.customer_summaries(stored(states.ORDER_BOOK_SCHEMA),
                                                                              NO_CHANGES, D)),
                     loyalty.CUSTOMER_RFM_SCHEMA, ["person_id"]),
    "customer_status": (lambda: retention.customer_status(stored(states.ORDER_BOOK_SCHEMA), D),
                        retention.CUSTOMER_STATUS_SCHEMA, ["person_id"]),
    "engagement_recency": (lambda: retention.update_engagement_recency(
        None, stored(aggregates.PERSON_ENGAGEMENT_SCHEMA), MERGES, D), retention.ENGAGEMENT_RECENCY_SCHEMA,
        ["person_id"]),
    "campaign_contacts": (lambda: campaigns.daily_campaign_contacts(EVENTS, IDENTITY_MAP),
                          campaigns.CAMPAIGN_CONTACTS_SCHEMA, campaigns.CAMPAIGN_CONTACTS_PK),
    "campaign_starts": (lambda: campaigns.update_campaign_starts(
        None, stored(campaigns.CAMPAIGN_CONTACTS_SCHEMA)), campaigns.CAMPAIGN_STARTS_SCHEMA, ["campaign_id"]),
    "ad_clicks": (lambda: campaigns.daily_ad_clicks(EVENTS, IDENTITY_MAP), campaigns.AD_CLICKS_SCHEMA,
                  ["person_id"]),
    "asset_signups": (lambda: scorecard_channels.daily_asset_signups(EVENTS, IDENTITY_MAP),
                      scorecard_channels.ASSET_SIGNUPS_SCHEMA, scorecard_channels.ASSET_SIGNUPS_PK),
    "first_order_credits": (lambda: scorecard_channels.update_first_order_credits(
        None, stored(ORDER_ATTRIBUTION_SCHEMA), stored(aggregates.FIRST_ORDERS_SCHEMA), D),
        scorecard_channels.FIRST_ORDER_CREDITS_SCHEMA, scorecard_channels.FIRST_ORDER_CREDITS_PK),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_an_aggregate_or_state_of_an_empty_day_is_an_empty_table_with_its_schema(name: str):
    build, schema, pk = BUILDERS[name]
    frame = build()
    table = arrow_table(frame, schema)
    assert table.num_rows == 0 and table.schema == schema
    key = dg.AssetKey(name)
    assert checks.schema_is_declared(key, table, schema).passed
    assert checks.primary_key_is_unique(key, frame, pk).passed


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_states_carry_yesterday_unchanged_through_an_empty_day():
    first = stored(aggregates.FIRST_ORDERS_SCHEMA, [
        {"person_id": "P1", "first_order_id": "o1", "first_ordered_at": _ts("2026-10-02T10:00")}])
    carried = aggregates.update_first_orders(first, ORDERS, IDENTITY_MAP, MERGES)
    assert records(carried) == [("P1", "o1", _ts("2026-10-02T10:00"))]

    signals = stored(states.PERSON_SIGNALS_SCHEMA, [
        {"person_id": "P1", "signal": "app_install", "device_id": "d1", "latest_at": _ts("2026-10-03T09:00")},
        {"person_id": "P1", "signal": "order", "device_id": None, "latest_at": _ts("2026-10-02T10:00")}])
    carried = states.update_person_signals(signals, EVENTS, ORDERS, IDENTITY_MAP, MERGES)
    assert records(carried) == [("P1", "app_install", "d1", _ts("2026-10-03T09:00")),
                                ("P1", "order", None, _ts("2026-10-02T10:00"))]


def test_the_order_book_of_an_empty_day_keeps_its_year_and_its_refunds():
    def order(order_id: str, day: dt.date, refunded: float) -> dict:
        return {"order_id": order_id, "person_id": "P1", "ordered_at": _ts(f"{day}T15:00"), "order_day": day,
                "currency": "USD", "net_revenue": 40.0, "net_revenue_original": 40.0, "refunded_original": refunded,
                "count_refunds": int(refunded > 0), "fully_refunded": refunded >= 40.0, "categories": "shoes"}

    previous = stored(states.ORDER_BOOK_SCHEMA, [order("o-old", OLDEST - dt.timedelta(days=1), 0.0),
                                                 order("o1", D - dt.timedelta(days=1), 40.0)])
    book, applied = states.update_order_book(previous, ORDERS, REFUNDS, FX_LATEST, IDENTITY_MAP, MERGES,
                                             SETTINGS.timezone, "USD", OLDEST)
    # the order older than a year leaves the book; o1 keeps its full refund; nothing was applied today
    assert records(book[["order_id", "refunded_original", "count_refunds", "fully_refunded"]]) == [
        ("o1", 40.0, 1, True)]
    assert applied.empty
    assert checks.refunds_reconcile(dg.AssetKey("order_book"), previous, book, applied).passed


def test_audience_membership_of_an_empty_day_after_a_day_with_members_is_empty():
    previous = stored(audiences.MEMBERSHIP_SCHEMA, [
        {"person_id": "P1", "audience": "cart_abandoners", "since": START, "activatable": True}])
    frame = _membership(previous, stored(states.PERSON_SIGNALS_SCHEMA), stored(states.ORDER_BOOK_SCHEMA))
    assert frame.empty and arrow_table(frame, audiences.MEMBERSHIP_SCHEMA).schema == audiences.MEMBERSHIP_SCHEMA


def test_uar_30d_of_a_deployment_without_events_counts_no_registrant_as_active():
    """Registrants exist (CRM) but no engagement was ever seen (no events source): 0, not a crash."""
    kpi = next(k for k in ALL_KPIS if k.name == "uar_30d")
    inputs = empty_inputs(kpi)
    inputs["crm_customers"] = stored(CRM_SCHEMAS["customers"], [
        {"customer_id": "C1", "created_at": _ts("2026-10-01T08:00")}])[["customer_id", "created_at"]]
    inputs["identity_map"] = stored(IDENTITY_MAP_SCHEMA, [
        {"identifier_type": "customer_id", "identifier": "C1", "person_id": "P1", "is_refused": False}])[
        ["identifier_type", "identifier", "person_id", "is_refused"]]
    assert records(compute(kpi, inputs)) == [(N, 0.0, N, 0.0, "count")]
