"""Service, satisfaction and messaging-health KPIs (docs/kpi_catalog.md "Service and satisfaction", "Email and messaging
health"), one pure function each.

Surveys and tickets are CRM rows as of D (docs/outputs.md 2.5): a response counts through responded_at, a ticket
through created_at, first_response_at and resolved_at at or before the end of D; channel, contact_count and
reopened come from the snapshot of D. Deliverability counts email events of D-6..D from the daily messaging
aggregate.
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.kpis.crm_rows import breakdown, by_end_of, in_days, labels, open_values, window
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, quotient
from crm_pipeline.kpis.sales import HOURS, _elapsed, _mean, _percentile, _share
from crm_pipeline.settings import Settings

SURVEYS = ("ingest", "crm_survey_responses")
TICKETS = ("ingest", "crm_support_tickets")
MESSAGING = ("aggregates", "messaging")
SURVEY_COLUMNS = ("response_id", "responded_at", "survey_type", "score")
TICKET_COLUMNS = ("ticket_id", "created_at", "first_response_at", "resolved_at", "contact_count", "reopened",
                  "channel")
CHANNEL = Dimension("channel")


def _scores(responses: pd.DataFrame, survey_type: str, day: dt.date, settings: Settings) -> np.ndarray:
    """The scores of the responses of one survey type with responded_at in D-29..D."""
    chosen = (responses["survey_type"] == survey_type).fillna(False).to_numpy(dtype=bool) & \
        in_days(responses["responded_at"], *window(day, 30), settings.timezone)
    return responses.loc[chosen, "score"].to_numpy(dtype=float)


def _seed_mean_pct(scores: np.ndarray, scale_max: int) -> dict:
    """Seed 001's formula rescaled to the scale maximum: sum of scores / (max x responses) x 100."""
    return quotient(float(scores.sum()), float(scale_max * len(scores)), "percent", metric="seed_mean_pct")


def nps(crm_survey_responses: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """NPS responses of D-29..D: (promoters (9-10) - detractors (0-6)) / responses x 100."""
    scores = _scores(crm_survey_responses, "nps", day, settings)
    net = float((scores >= 9).sum() - (scores <= 6).sum())
    return [quotient(net, float(len(scores)), "score", scale=100.0)]


def csat(crm_survey_responses: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """CSAT responses (1-5) of D-29..D: the share satisfied (4-5), the mean score and seed 001's formula."""
    scores = _scores(crm_survey_responses, "csat", day, settings)
    n = float(len(scores))
    return [quotient(float((scores >= 4).sum()), n, "percent", metric="pct_satisfied"),
            quotient(float(scores.sum()), n, "score", metric="mean_score"), _seed_mean_pct(scores, 5)]


def ces(crm_survey_responses: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """CES responses (1-7, 7 = least effort) of D-29..D: the mean score, the share of low effort (5-7) and seed
    001's formula."""
    scores = _scores(crm_survey_responses, "ces", day, settings)
    n = float(len(scores))
    return [quotient(float(scores.sum()), n, "score", metric="mean_score"),
            quotient(float((scores >= 5).sum()), n, "percent", metric="pct_low_effort"), _seed_mean_pct(scores, 7)]


def _tickets(crm_support_tickets: pd.DataFrame, day: dt.date, settings: Settings) -> pd.DataFrame:
    return crm_support_tickets.loc[by_end_of(crm_support_tickets["created_at"], day, settings.timezone)]


def _resolved(crm_support_tickets: pd.DataFrame, day: dt.date, settings: Settings) -> pd.DataFrame:
    """Tickets resolved (their latest resolution) in D-29..D with a known contact_count."""
    tickets = _tickets(crm_support_tickets, day, settings)
    resolved = in_days(tickets["resolved_at"], *window(day, 30), settings.timezone)
    return tickets.loc[resolved & tickets["contact_count"].notna().to_numpy(dtype=bool)]


def first_contact_resolution(crm_support_tickets: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Tickets resolved in D-29..D: those resolved in one contact and never reopened, x 100; per channel."""
    resolved = _resolved(crm_support_tickets, day, settings)
    reopened = resolved["reopened"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    first_contact = (resolved["contact_count"].astype(float) == 1).to_numpy(dtype=bool) & ~reopened
    channels = labels(resolved["channel"])
    return breakdown("channel", open_values(channels), channels, _share(first_contact, "percent"))


RESPONSE_METRICS = ("mean_hours", "median_hours", "p90_hours", "business_mean_hours", "business_median_hours",
                    "business_p90_hours")


def response_time(crm_support_tickets: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Tickets first answered in D-29..D: hours from creation to first response, in calendar and business
    hours; per metric and channel."""
    tickets = _tickets(crm_support_tickets, day, settings)
    answered = tickets.loc[in_days(tickets["first_response_at"], *window(day, 30), settings.timezone)]
    calendar = _elapsed(answered["created_at"], answered["first_response_at"], HOURS)
    business = settings.business_schedule.hours_between(answered["created_at"], answered["first_response_at"])
    channels = labels(answered["channel"])
    values = open_values(channels)
    rows: list[dict] = []
    for prefix, hours in (("", calendar), ("business_", business)):
        for metric, measure in ((f"{prefix}mean_hours", _mean(hours, "hours")),
                                (f"{prefix}median_hours", _percentile(hours, 50, "hours")),
                                (f"{prefix}p90_hours", _percentile(hours, 90, "hours"))):
            rows += breakdown("channel", values, channels, measure, metric=metric)
    return rows


TOUCHES = ("1", "2", "3+")


def resolution_touches(crm_support_tickets: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Tickets resolved in D-29..D: the share resolved in 1, 2 and 3 or more contacts; per channel."""
    resolved = _resolved(crm_support_tickets, day, settings)
    contacts = resolved["contact_count"].astype(float).to_numpy()
    buckets = {"1": contacts == 1, "2": contacts == 2, "3+": contacts >= 3}
    channels = labels(resolved["channel"])
    values = open_values(channels)
    rows: list[dict] = []
    for touches, flags in buckets.items():
        rows += breakdown("channel", values, channels, _share(flags), touches=touches)
    return rows


def sla_breach_rate(crm_support_tickets: pd.DataFrame, day: dt.date, settings: Settings) -> list[dict]:
    """Tickets answered in D-29..D, plus tickets overdue at D whose due falls in D-29..D: those answered after
    their due, or overdue, / the population; per channel. due = created_at + the channel's target."""
    tz = settings.timezone
    first, last = window(day, 30)
    tickets = _tickets(crm_support_tickets, day, settings)
    targets = dict(settings.sla_first_response_hours)
    tickets = tickets.loc[tickets["channel"].isin(list(targets)).to_numpy(dtype=bool)]  # no target: no due time
    target_hours = tickets["channel"].map(targets).astype(float)
    due = pd.to_datetime(tickets["created_at"], utc=True) + pd.to_timedelta(target_hours, unit="h")
    responded = pd.to_datetime(tickets["first_response_at"], utc=True)
    answered = in_days(responded, first, last, tz)
    overdue = ~by_end_of(responded, day, tz) & by_end_of(due, day, tz) & in_days(due, first, last, tz)
    population = answered | overdue
    breached = ((responded > due).fillna(False).to_numpy(dtype=bool) & answered) | overdue
    channels = labels(tickets.loc[population, "channel"])
    return breakdown("channel", open_values(channels), channels, _share(breached[population]))


DELIVERABILITY_EVENTS = ("email_send", "email_delivered", "email_bounce", "email_complaint", "email_unsubscribe")


def deliverability(messaging: pd.DataFrame) -> list[dict]:
    """Email events of D-6..D (the window input holds exactly those days), counted as events: deliveries and
    bounces per send, complaints and unsubscribes per delivery."""
    counted = messaging.loc[messaging["person_id"].isna().to_numpy()].groupby("event_type")["count_events"].sum()
    n = {name: float(counted.get(name, 0)) for name in DELIVERABILITY_EVENTS}
    return [quotient(n["email_delivered"], n["email_send"], "ratio", metric="delivery_rate"),
            quotient(n["email_bounce"], n["email_send"], "ratio", metric="bounce_rate"),
            quotient(n["email_complaint"], n["email_delivered"], "ratio", metric="complaint_rate"),
            quotient(n["email_unsubscribe"], n["email_delivered"], "ratio", metric="unsubscribe_rate")]


SURVEY_POPULATION = "survey responses of the type with responded_at in D-29..D, each counted once"
TICKETS_AS_OF_D = ("CRM rows as of D (docs/outputs.md 2.5): a ticket counts through created_at, first_response_at and "
                   "resolved_at at or before the end of D; channel, contact_count and reopened from the snapshot of D")
RESOLVED = "tickets with resolved_at (the latest resolution) in D-29..D"
SURVEY_INPUTS = (KpiInput("crm_survey_responses", SURVEYS, columns=SURVEY_COLUMNS),)
TICKET_INPUTS = (KpiInput("crm_support_tickets", TICKETS, columns=TICKET_COLUMNS),)
SURVEY_LINEAGE = {"numerator": ("crm_survey_responses.score", "crm_survey_responses.survey_type",
                                "crm_survey_responses.responded_at"),
                  "denominator": ("crm_survey_responses.response_id", "crm_survey_responses.survey_type",
                                  "crm_survey_responses.responded_at")}
SEED_MEAN_PCT = "seed_mean_pct = sum of scores / ({max} x responses) x 100 (seed 001's formula at the scale maximum)"

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="nps", family="Service", seed="001",
        description="One row per day (no dimensions): the Net Promoter Score of the NPS responses of D-29..D.",
        formula="(promoters (9-10) - detractors (0-6)) / responses x 100; numerator = promoters - detractors, "
                "denominator = responses", window="30d (responded in D-29..D)", population=SURVEY_POPULATION,
        unit="score (-100..100)", dimensions=(), headline={}, inputs=SURVEY_INPUTS, lineage=SURVEY_LINEAGE,
        compute=nps, window_days=30, scale={"score": 100.0}),
    KpiDefinition(
        name="csat", family="Service", seed="001",
        description="One row per metric for the CSAT responses (1-5) of D-29..D: the share satisfied, the mean "
                    "score, and seed 001's mean as a percentage.",
        formula="pct_satisfied = responses scoring 4-5 / responses x 100; mean_score = sum of scores / responses; "
                + SEED_MEAN_PCT.format(max=5),
        window="30d (responded in D-29..D)", population=SURVEY_POPULATION, unit="percent, score",
        dimensions=(Dimension("metric", ("pct_satisfied", "mean_score", "seed_mean_pct")),),
        headline={"metric": "pct_satisfied"}, inputs=SURVEY_INPUTS, lineage=SURVEY_LINEAGE, compute=csat,
        window_days=30),
    KpiDefinition(
        name="ces", family="Service", seed="001",
        description="One row per metric for the Customer Effort Score responses (1-7, 7 = least effort) of "
                    "D-29..D: the mean score, the share of low effort, and seed 001's mean as a percentage.",
        formula="mean_score = sum of scores / responses; pct_low_effort = responses scoring 5-7 / responses x 100; "
                + SEED_MEAN_PCT.format(max=7),
        window="30d (responded in D-29..D)", population=SURVEY_POPULATION, unit="score, percent",
        dimensions=(Dimension("metric", ("mean_score", "pct_low_effort", "seed_mean_pct")),),
        headline={"metric": "mean_score"}, inputs=SURVEY_INPUTS, lineage=SURVEY_LINEAGE, compute=ces,
        window_days=30),
    KpiDefinition(
        name="first_contact_resolution", family="Service", seed="001",
        description="One row per ticket channel and one for all channels, for the tickets resolved in D-29..D: the "
                    "percentage resolved in one contact and never reopened.",
        formula="resolved tickets with contact_count = 1 and not reopened / resolved tickets x 100",
        window="30d (resolved in D-29..D)", population=RESOLVED,
        exclusions=TICKETS_AS_OF_D + "; tickets with a null contact_count; a reopened ticket is never FCR",
        unit="percent", dimensions=(CHANNEL,), headline={}, inputs=TICKET_INPUTS,
        lineage={"channel": ("crm_support_tickets.channel",),
                 "numerator": ("crm_support_tickets.contact_count", "crm_support_tickets.reopened",
                               "crm_support_tickets.resolved_at"),
                 "denominator": ("crm_support_tickets.ticket_id", "crm_support_tickets.resolved_at")},
        compute=first_contact_resolution, window_days=30),
    KpiDefinition(
        name="response_time", family="Service", seed="001",
        description="One row per metric and per metric x ticket channel, for the tickets first answered in "
                    "D-29..D: hours from creation to the first response, in calendar hours and in business hours.",
        formula="mean (sum / tickets), median and p90 of (first_response_at - created_at) / 3600 s; business hours: "
                "the overlap of that interval with the weekly schedule CRM_BUSINESS_HOURS (default Mon-Fri "
                "09:00-17:00) in CRM_BUSINESS_TIMEZONE (default the reporting timezone), less CRM_BUSINESS_HOLIDAYS",
        window="30d (first answered in D-29..D)", population="tickets with first_response_at in D-29..D",
        exclusions=TICKETS_AS_OF_D, unit="hours",
        dimensions=(Dimension("metric", RESPONSE_METRICS), CHANNEL), headline={"metric": "mean_hours"},
        inputs=TICKET_INPUTS,
        lineage={"channel": ("crm_support_tickets.channel",),
                 "numerator": ("crm_support_tickets.created_at", "crm_support_tickets.first_response_at"),
                 "denominator": ("crm_support_tickets.ticket_id", "crm_support_tickets.first_response_at")},
        compute=response_time, window_days=30),
    KpiDefinition(
        name="resolution_touches", family="Service", seed="001",
        description="One row per contact bucket (1, 2, 3+) and per bucket x ticket channel, for the tickets "
                    "resolved in D-29..D: the share resolved in that many contacts.",
        formula="resolved tickets with that contact_count (3+: >= 3) / resolved tickets",
        window="30d (resolved in D-29..D)", population=RESOLVED,
        exclusions=TICKETS_AS_OF_D + "; tickets with a null contact_count", unit="ratio",
        dimensions=(Dimension("touches", TOUCHES), CHANNEL), headline={"touches": "1"}, inputs=TICKET_INPUTS,
        lineage={"touches": ("crm_support_tickets.contact_count",), "channel": ("crm_support_tickets.channel",),
                 "numerator": ("crm_support_tickets.contact_count", "crm_support_tickets.resolved_at"),
                 "denominator": ("crm_support_tickets.ticket_id", "crm_support_tickets.resolved_at")},
        compute=resolution_touches, window_days=30),
    KpiDefinition(
        name="sla_breach_rate", family="Service", seed="001",
        description="One row per ticket channel and one for all channels: the share of tickets that missed their first-"
                    "response target, over the tickets answered in D-29..D and those overdue at D whose due time "
                    "falls in D-29..D.",
        formula="breached / population; due = created_at + the channel's target (CRM_SLA_FIRST_RESPONSE_HOURS, "
                "default email 24 h, chat 1 h, phone 1 h, social 4 h); breached = first_response_at > due, or "
                "overdue (no first_response_at <= end of D and due before the end of D)",
        window="30d (D-29..D)", population="tickets with first_response_at in D-29..D, plus tickets overdue at D "
        "whose due falls in D-29..D", exclusions=TICKETS_AS_OF_D + "; tickets whose channel has no target (a "
        "missing channel)", unit="ratio", dimensions=(CHANNEL,), headline={}, inputs=TICKET_INPUTS,
        lineage={"channel": ("crm_support_tickets.channel",),
                 "numerator": ("crm_support_tickets.created_at", "crm_support_tickets.first_response_at",
                               "crm_support_tickets.channel"),
                 "denominator": ("crm_support_tickets.ticket_id", "crm_support_tickets.first_response_at")},
        compute=sla_breach_rate, window_days=30),
    KpiDefinition(
        name="deliverability", family="Messaging", seed="002",
        description="One row per metric for the email events of D-6..D, each dated by its own occurred_at and "
                    "counted as events: delivery, bounce, complaint and unsubscribe rates.",
        formula="delivery_rate = email_delivered / email_send; bounce_rate = email_bounce / email_send; "
                "complaint_rate = email_complaint / email_delivered; unsubscribe_rate = email_unsubscribe / "
                "email_delivered",
        window="7d (D-6..D)", population="email events of D-6..D", unit="ratio",
        dimensions=(Dimension("metric", ("delivery_rate", "bounce_rate", "complaint_rate", "unsubscribe_rate")),),
        headline={"metric": "delivery_rate"},
        inputs=(KpiInput("messaging", MESSAGING, window_days=7),),
        lineage={"numerator": ("messaging.event_type", "messaging.count_events"),
                 "denominator": ("messaging.event_type", "messaging.count_events")},
        unbounded_metrics=("delivery_rate", "bounce_rate", "complaint_rate", "unsubscribe_rate"),
        compute=deliverability, window_days=7),
)
