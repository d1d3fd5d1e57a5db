"""Day-by-day behaviour: events, the purchase model, orders and refunds.

The purchase model is the causal truth that attribution is scored against: every touch of channel c on
days d-29..d adds EFFECTS[c] to a person's purchase log-odds on day d (plus BASE_LOGIT, capped at
MAX_DAILY_PROBABILITY); the order is placed after the person's last touch of the day, so every touch
that counted lies before the order.
"""

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .common import (
    NA_TS,
    SECONDS_PER_DAY,
    Calendar,
    Frame,
    as_obj,
    concat,
    concat_frames,
    draw_styles,
    frame_len,
    ids,
    join_nonnull,
    nulls,
    sigmoid,
    stream,
    take,
    upper,
)
from .population import (
    CATEGORIES,
    CH,
    DEVICE_TYPES,
    MOBILE,
    PAID_CHANNELS,
    TOUCH_CHANNELS,
    Population,
)

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "occurred_at", "event_type", "channel", "campaign_id", "device_type", "session_id",
    "anonymous_id", "device_id", "customer_id", "email", "phone", "utm_source", "utm_medium",
    "utm_campaign", "referrer", "category", "properties",
)  # fmt: skip
ORDER_COLUMNS: tuple[str, ...] = (
    "order_id", "ordered_at", "customer_id", "email", "anonymous_id", "device_id", "gross_revenue",
    "discount_amount", "cost_of_goods", "currency", "sale_type", "subscription_id", "categories",
    "device_type", "channel",
)  # fmt: skip
REFUND_COLUMNS: tuple[str, ...] = ("refund_id", "order_id", "refunded_at", "amount", "currency")
# internal columns carried beside the contract ones until the files are written
INTERNAL_DEFAULTS: dict[str, object] = {
    "_person": np.int64(-1),
    "_ts": np.int64(NA_TS),
    "_touch": np.int8(-1),
    "_style": np.int8(0),
    "_tsraw": None,
    "_part": "web",
    "_model": False,
}

# log-odds added per touch in the last 30 days (the configured, known truth)
EFFECTS: dict[str, float] = {
    "email": 0.20, "sms": 0.18, "push": 0.08, "mobile_app": 0.04, "browser_app": 0.05, "social": 0.02,
    "ppc": 0.22, "display": 0.03, "retargeting": 0.16, "affiliate": 0.12, "video": 0.01,
    "paid_social": 0.06, "seo": 0.10, "direct": 0.05, "referral": 0.08, "blog": 0.04,
}  # fmt: skip
BASE_LOGIT = -6.0
MAX_DAILY_PROBABILITY = 0.5
LOOKBACK_DAYS = 30
EFFECT_VECTOR = np.asarray([EFFECTS[c] for c in TOUCH_CHANNELS])

# visits by device and hour of day (reporting timezone): desktop at work in the morning, mobile at lunch
# and in the evening, tablet on the couch at night (seed 000)
HOUR_PROFILE = np.asarray(
    [
        [1, .5, .3, .2, .2, .4, 1.5, 3, 6, 8, 8, 7, 5, 6, 7, 7, 6, 5, 3, 2.5, 2, 1.8, 1.5, 1.2],
        [1.5, .8, .4, .3, .3, .6, 1.5, 3, 3.5, 3.5, 4, 5, 9, 8.5, 5, 4, 4, 4.5, 5.5, 6.5, 7, 6.5, 5, 3],
        [.6, .3, .2, .1, .1, .3, 1.5, 2.5, 2, 1.5, 1.3, 1.3, 1.5, 1.5, 1.5, 1.6, 2, 2.5, 4, 6.5, 8, 8.5, 6, 2.5],
        [2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2],
    ]
)  # fmt: skip
HOUR_PROFILE = HOUR_PROFILE / HOUR_PROFILE.sum(axis=1, keepdims=True)

# per person-day rates (times activity and channel affinity)
SESSION_RATE = {"seo": 0.08, "direct": 0.10, "referral": 0.03, "blog": 0.02, "social": 0.02}
IMPRESSION_RATE = {"ppc": 0.3, "display": 1.0, "retargeting": 0.4, "affiliate": 0.04, "video": 0.3, "paid_social": 0.5}
CTR = {"ppc": 0.06, "display": 0.004, "retargeting": 0.012, "affiliate": 0.3, "video": 0.008, "paid_social": 0.012}
UTM_MEDIUMS = {
    "ppc": ("cpc", "ppc", "paid_search"),
    "display": ("display", "banner", "cpm"),
    "retargeting": ("retargeting", "remarketing"),
    "affiliate": ("affiliate", "influencer"),
    "video": ("video",),
    "paid_social": ("paid_social", "paidsocial"),
    "email": ("email",),
    "sms": ("sms",),
}
UTM_SOURCES = {
    "ppc": ("google", "bing"),
    "display": ("gdn", "criteo"),
    "retargeting": ("criteo", "rtbhouse"),
    "affiliate": ("awin", "instagram_creator"),
    "video": ("youtube",),
    "paid_social": ("facebook", "tiktok"),
    "email": ("newsletter",),
    "sms": ("sms_gateway",),
}
# paid campaigns: channel -> ((campaign_id, objective, billing currency), ...)
PAID_CAMPAIGNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ppc": (("ppc-brand", "acquisition", "USD"), ("ppc-generic", "acquisition", "USD")),
    "display": (("dsp-prospecting", "acquisition", "USD"), ("dsp-awareness", "brand", "USD")),
    "retargeting": (("rtg-cart", "retention", "USD"), ("rtg-lapsed", "retention", "USD")),
    "affiliate": (("aff-bloggers", "acquisition", "USD"), ("aff-influencers", "acquisition", "GBP")),
    "video": (("vid-brand", "brand", "USD"),),
    "paid_social": (("psoc-lookalike", "acquisition", "EUR"), ("psoc-loyal", "retention", "EUR")),
}
SEARCH_REFERRERS = (
    "https://www.google.com/", "https://www.google.co.uk/search?q=running+shoes", "https://www.bing.com/search?q=shop",
    "https://duckduckgo.com/", "https://search.yahoo.com/search?p=boots",
)  # fmt: skip
SOCIAL_REFERRERS = (
    "https://www.facebook.com/", "https://l.instagram.com/", "https://t.co/x4Yz", "https://www.linkedin.com/feed/",
    "https://www.pinterest.com/pin/123/",
)  # fmt: skip
REFERRAL_REFERRERS = (
    "https://www.wirecutter-reviews.net/best-boots", "https://forum.runners-world.org/t/1234",
    "https://news.local-paper.com/gift-guide", "https://deals.coupons-daily.io/example",
)  # fmt: skip

# which landing file (part) an event type goes to: one file per platform per day
EVENT_PART = {
    **dict.fromkeys(("session_start", "category_view", "cart_add", "login"), "web"),
    **dict.fromkeys(("app_install", "app_uninstall", "app_open", "push_send", "push_open"), "app"),
    **dict.fromkeys(
        ("email_subscribe", "email_unsubscribe", "email_send", "email_delivered", "email_bounce", "email_open",
         "email_click", "email_complaint", "holdout_assigned"), "email"),
    **dict.fromkeys(("sms_optin", "sms_optout", "sms_send", "sms_click", "mail_subscribe", "mail_unsubscribe"), "messaging"),
    **dict.fromkeys(
        ("social_follow", "social_unfollow", "social_interaction", "ad_impression", "ad_click",
         "browser_app_install", "browser_app_uninstall", "browser_app_click"), "social_ads"),
}  # fmt: skip
# rough share of text timestamp styles in landing files (UTC, Z, naive, +02, -05, +01, +05:30)
LANDING_STYLE_WEIGHTS = (0.55, 0.15, 0.08, 0.07, 0.07, 0.06, 0.02)


@dataclass
class DayOutput:
    events: Frame
    orders: Frame
    refunds: Frame
    # (channel, campaign_id, impressions, clicks) of paid media, for the cost lines
    ad_stats: list[tuple[str, str, int, int]]
    email_sends: int
    sms_sends: int


@dataclass
class Simulator:
    """Holds the evolving world (list memberships, rolling touch effects, pending refunds)."""

    pop: Population
    cal: Calendar
    seed: int
    site_hosts: tuple[str, ...]
    blog_hosts: tuple[str, ...]
    subscription_orders: Frame
    rare_currency: str
    rare_first_day: int
    ring: np.ndarray = field(init=False)
    pending_refunds: Frame = field(init=False)
    orders_so_far: np.ndarray = field(init=False)

    warm_start: bool = True

    def __post_init__(self) -> None:
        self.ring = np.zeros((LOOKBACK_DAYS, self.pop.n), dtype=np.float32)
        self.pending_refunds = {}
        self.orders_so_far = np.zeros(self.pop.n, dtype=np.int32)
        if self.warm_start:
            self._warm_start()

    def expected_touch_rates(self) -> np.ndarray:
        """Approximate touches per person, day and channel under the behaviour below (persons x channels)."""
        pop = self.pop
        act, aff = pop.activity[:, None], pop.affinity
        rates = np.zeros((pop.n, len(TOUCH_CHANNELS)))
        for name, rate in SESSION_RATE.items():
            rates[:, CH[name]] += rate * act[:, 0] * aff[:, CH[name]]
        for name in PAID_CHANNELS:
            rates[:, CH[name]] += IMPRESSION_RATE[name] * CTR[name] * 1.8 * act[:, 0] * aff[:, CH[name]]
        rates[:, CH["email"]] += pop.email_sub * 0.85 * 0.85 * 0.25 * np.clip(aff[:, CH["email"]], 0.2, 3) * 0.14 * 1.65
        rates[:, CH["sms"]] += pop.sms_opt * 0.3 * 0.05 * np.clip(aff[:, CH["sms"]], 0.2, 3) * 1.5
        installed = np.bincount(pop.device_person, weights=pop.device_installed, minlength=pop.n)
        rates[:, CH["push"]] += installed * 0.5 * 0.08 * np.clip(aff[:, CH["push"]], 0.2, 3)
        rates[:, CH["mobile_app"]] += installed * 0.3 * act[:, 0] * aff[:, CH["mobile_app"]]
        rates[:, CH["browser_app"]] += pop.browser_app * 0.15 * act[:, 0] * aff[:, CH["browser_app"]]
        rates[:, CH["social"]] += np.where(pop.social_follow, 0.08, 0.005) * act[:, 0] * aff[:, CH["social"]]
        return rates

    def _warm_start(self) -> None:
        """Touches of the 29 days before the window (never exported): purchases do not start from zero."""
        rng = stream(self.seed, "warm_start")
        rates = self.expected_touch_rates()
        for back in range(1, LOOKBACK_DAYS):
            self.ring[(-back) % LOOKBACK_DAYS] = rng.poisson(rates) @ EFFECT_VECTOR

    # ------------------------------------------------------------------------------------ helpers
    def _times(self, rng: np.random.Generator, device: np.ndarray, day: int) -> np.ndarray:
        """Instants of day `day` whose local hour follows the device's hour-of-day profile."""
        n = len(device)
        hour = np.zeros(n, dtype=np.int64)
        for dev in range(len(DEVICE_TYPES)):
            m = device == dev
            if m.any():
                hour[m] = rng.choice(24, size=int(m.sum()), p=HOUR_PROFILE[dev])
        ts = self.cal.day_start(day) + hour * 3600 + rng.integers(0, 3600, n)
        return np.minimum(ts, self.cal.day_end(day) - 1)

    def _clip(self, ts: np.ndarray, day: int) -> np.ndarray:
        return np.minimum(ts, self.cal.day_end(day) - 1)

    def _later(self, rng: np.random.Generator, ts: np.ndarray, day: int, median_s: float) -> np.ndarray:
        """A lognormal delay after ts that stays within the day (a late one lands somewhere before midnight)."""
        delay = rng.lognormal(np.log(median_s), 1.0, len(ts)).astype(np.int64) + 1
        room = self.cal.day_end(day) - 1 - ts
        over = delay > room
        delay[over] = (rng.random(int(over.sum())) * room[over]).astype(np.int64)
        return ts + np.maximum(delay, 0)

    def _raw_email(self, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
        """The e-mail as the source system spells it: mostly lower-case, sometimes upper-case or padded."""
        email = self.pop.email[person]
        u = rng.random(len(person))
        out = email.copy()
        has = email != None  # noqa: E711
        up = has & (u < 0.07)
        out[up] = upper(email[up])
        pad = has & (u > 0.97)
        out[pad] = concat(" ", email[pad], " ")
        return out

    def _random_cookie(self, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
        return self.pop.cookie_start[person] + (rng.random(len(person)) * self.pop.cookie_count[person]).astype(np.int64)

    def _channel_written(self, rng: np.random.Generator, channel: np.ndarray, p_given: float) -> np.ndarray:
        """`channel` as exporters write it: often empty (derivable), sometimes in odd case or padded."""
        n = len(channel)
        names = as_obj(TOUCH_CHANNELS)[channel]
        u = rng.random(n)
        out = np.where(u < p_given, names, None)
        odd = u < p_given * 0.15
        out[odd] = upper(names[odd])
        pad = (u >= p_given * 0.15) & (u < p_given * 0.25)
        out[pad] = concat(" ", names[pad], " ")
        return out

    # ----------------------------------------------------------------------------------- sessions
    def _sessions(
        self,
        rng: np.random.Generator,
        day: int,
        person: np.ndarray,
        channel: np.ndarray,
        ts: np.ndarray | None = None,
        campaign: np.ndarray | None = None,
        cookie_row: np.ndarray | None = None,
        is_reg: np.ndarray | None = None,
    ) -> Frame:
        """Web visits: session_start (the touch) then category views, cart adds and logins."""
        pop = self.pop
        n = len(person)
        if n == 0:
            return {}
        if cookie_row is None:
            cookie_row = self._random_cookie(rng, person)
        device = pop.cookie_device[cookie_row]
        if ts is None:
            ts = self._times(rng, device, day)
        ts = self._clip(ts, day)
        if campaign is None:
            campaign = nulls(n)
        if is_reg is None:
            is_reg = np.zeros(n, dtype=bool)
        anon = pop.cookie_id[cookie_row]
        dev_name = as_obj(DEVICE_TYPES)[device]
        session_id = ids(f"s{self.cal.date(day).strftime('%Y%m%d')}-", np.arange(n), 7)

        utm_source, utm_medium, utm_campaign, referrer = nulls(n), nulls(n), nulls(n), nulls(n)
        for name in TOUCH_CHANNELS:
            m = channel == CH[name]
            k = int(m.sum())
            if not k:
                continue
            if name in UTM_MEDIUMS:
                utm_medium[m] = as_obj(UTM_MEDIUMS[name])[rng.integers(0, len(UTM_MEDIUMS[name]), k)]
                utm_source[m] = as_obj(UTM_SOURCES[name])[rng.integers(0, len(UTM_SOURCES[name]), k)]
                utm_campaign[m] = campaign[m]
            elif name == "seo":
                referrer[m] = as_obj(SEARCH_REFERRERS)[rng.integers(0, len(SEARCH_REFERRERS), k)]
            elif name == "social":
                referrer[m] = as_obj(SOCIAL_REFERRERS)[rng.integers(0, len(SOCIAL_REFERRERS), k)]
            elif name == "referral":
                referrer[m] = as_obj(REFERRAL_REFERRERS)[rng.integers(0, len(REFERRAL_REFERRERS), k)]
            elif name == "blog":
                referrer[m] = concat("https://", as_obj(self.blog_hosts)[rng.integers(0, len(self.blog_hosts), k)], "/posts/autumn-lookbook")
            elif name == "direct":
                own = rng.random(k) < 0.25
                vals = nulls(k)
                vals[own] = concat("https://", as_obj(self.site_hosts)[rng.integers(0, len(self.site_hosts), int(own.sum()))], "/cart")
                referrer[m] = vals
        start: Frame = {
            "_person": person,
            "_ts": ts,
            "_touch": channel.astype(np.int8),
            "event_type": np.full(n, "session_start", dtype=object),
            "channel": self._channel_written(rng, channel, 0.45),
            "campaign_id": np.where(rng.random(n) < 0.5, campaign, None),
            "device_type": dev_name,
            "session_id": session_id,
            "anonymous_id": anon,
            "utm_source": utm_source,
            "utm_medium": utm_medium,
            "utm_campaign": utm_campaign,
            "referrer": referrer,
        }
        # category views: a few per visit, in the person's favourite category most of the time
        n_views = rng.poisson(1.4, n)
        s_idx = np.repeat(np.arange(n), n_views)
        gaps = rng.integers(15, 180, len(s_idx))
        csum = np.cumsum(gaps)
        first = np.concatenate([[0], np.cumsum(n_views)[:-1]])[n_views > 0]
        base = np.repeat(csum[first] - gaps[first], n_views[n_views > 0])
        offs = csum - base
        cat = np.where(rng.random(len(s_idx)) < 0.65, pop.pref_category[person[s_idx]], rng.integers(0, len(CATEGORIES), len(s_idx)))
        views: Frame = {
            "_person": person[s_idx],
            "_ts": self._clip(ts[s_idx] + offs, day),
            "event_type": np.full(len(s_idx), "category_view", dtype=object),
            "device_type": dev_name[s_idx],
            "session_id": session_id[s_idx],
            "anonymous_id": anon[s_idx],
            "category": as_obj(CATEGORIES)[cat],
        }
        cart = np.flatnonzero((n_views > 0) & (rng.random(n) < 0.2))
        carts: Frame = {
            "_person": person[cart],
            "_ts": self._clip(ts[cart] + 200 + rng.integers(0, 600, len(cart)), day),
            "event_type": np.full(len(cart), "cart_add", dtype=object),
            "device_type": dev_name[cart],
            "session_id": session_id[cart],
            "anonymous_id": anon[cart],
            "category": as_obj(CATEGORIES)[np.where(rng.random(len(cart)) < 0.7, pop.pref_category[person[cart]], rng.integers(0, len(CATEGORIES), len(cart)))],
        }
        login_ts = self._clip(np.where(is_reg, pop.created_at[person] + 5, ts + rng.integers(20, 300, n)), day)
        logs = np.flatnonzero(is_reg | (pop.registered_at(person, login_ts) & (rng.random(n) < 0.35)))
        cust = pop.customer_id_at(person[logs], login_ts[logs], rng)
        cust[is_reg[logs]] = pop.customer_id[person[logs][is_reg[logs]]]
        logins: Frame = {
            "_person": person[logs],
            "_ts": login_ts[logs],
            "event_type": np.full(len(logs), "login", dtype=object),
            "device_type": dev_name[logs],
            "session_id": session_id[logs],
            "anonymous_id": anon[logs],
            "customer_id": cust,
        }
        return concat_frames([start, views, carts, logins], [*start, "category", "customer_id"], INTERNAL_DEFAULTS)

    # -------------------------------------------------------------------------------------- a day
    def simulate_day(self, day: int) -> DayOutput:
        rng = stream(self.seed, "day", day)
        pop, cal = self.pop, self.cal
        n = pop.n
        stamp = cal.date(day).strftime("%Y%m%d")
        blocks: list[Frame] = []
        sess_person, sess_channel, sess_ts, sess_campaign, sess_cookie, sess_reg = [], [], [], [], [], []

        def add_sessions(person, channel, ts=None, campaign=None, cookie=None, reg=None) -> None:
            k = len(person)
            if not k:
                return
            cookie = self._random_cookie(rng, person) if cookie is None else cookie
            sess_person.append(person)
            sess_channel.append(np.broadcast_to(np.asarray(channel, dtype=np.int64), (k,)).copy())
            sess_ts.append(self._times(rng, pop.cookie_device[cookie], day) if ts is None else ts)
            sess_campaign.append(nulls(k) if campaign is None else campaign)
            sess_cookie.append(cookie)
            sess_reg.append(np.zeros(k, dtype=bool) if reg is None else reg)

        # registrations of the day: a visit, the account, a login and often an e-mail opt-in
        reg = np.flatnonzero(pop.reg_day == day)
        if len(reg):
            reg_channels = np.asarray([CH[c] for c in ("seo", "direct", "ppc", "social", "referral", "affiliate", "display", "paid_social", "email")])
            weights = np.asarray([0.22, 0.2, 0.2, 0.08, 0.08, 0.06, 0.04, 0.04, 0.08])
            score = np.log(weights * pop.affinity[reg][:, reg_channels] + 1e-9) + rng.gumbel(size=(len(reg), len(reg_channels)))
            channel = reg_channels[score.argmax(axis=1)]
            cookie = self._random_cookie(rng, reg)
            ts = np.minimum(self._times(rng, pop.cookie_device[cookie], day), cal.day_end(day) - 900)
            pop.created_at[reg] = ts + rng.integers(60, 600, len(reg))
            pop.acquisition_channel[reg] = as_obj(TOUCH_CHANNELS)[channel]
            add_sessions(reg, channel, ts=ts, cookie=cookie, reg=np.ones(len(reg), dtype=bool))
            opt = reg[pop.consent[reg] & (pop.email[reg] != None)]  # noqa: E711
            blocks.append(
                {
                    "_person": opt,
                    "_ts": pop.created_at[opt] + 8,
                    "event_type": np.full(len(opt), "email_subscribe", dtype=object),
                    "email": self._raw_email(rng, opt),
                    "customer_id": pop.customer_id[opt],
                }
            )
            pop.email_sub[opt] = True

        act = pop.activity
        # organic visits
        for name, rate in SESSION_RATE.items():
            counts = rng.poisson(rate * act * pop.affinity[:, CH[name]])
            person = np.repeat(np.arange(n), counts)
            add_sessions(person, CH[name])

        # paid media: impressions, clicks, and the visits the clicks bring
        ad_stats: list[tuple[str, str, int, int]] = []
        for name in PAID_CHANNELS:
            counts = rng.poisson(IMPRESSION_RATE[name] * act * pop.affinity[:, CH[name]])
            person = np.repeat(np.arange(n), counts)
            k = len(person)
            campaigns = PAID_CAMPAIGNS[name]
            camp = as_obj([c[0] for c in campaigns])[rng.integers(0, len(campaigns), k)]
            cookie = self._random_cookie(rng, person)
            ts = self._times(rng, pop.cookie_device[cookie], day)
            clicked = rng.random(k) < CTR[name]
            medium = as_obj(UTM_MEDIUMS[name])[rng.integers(0, len(UTM_MEDIUMS[name]), k)]
            # display ads without utm still derive to display (rule 4); the others always carry utm
            keep_utm = (rng.random(k) < 0.8) | (name != "display")
            for cid, *_ in campaigns:
                cm = camp == cid
                ad_stats.append((name, cid, int(cm.sum()), int((cm & clicked).sum())))
            base: Frame = {
                "_person": person,
                "_ts": ts,
                "campaign_id": camp,
                "device_type": as_obj(DEVICE_TYPES)[pop.cookie_device[cookie]],
                "anonymous_id": pop.cookie_id[cookie],
                "utm_source": np.where(keep_utm, as_obj(UTM_SOURCES[name])[rng.integers(0, len(UTM_SOURCES[name]), k)], None),
                "utm_medium": np.where(keep_utm, medium, None),
                "utm_campaign": np.where(keep_utm, camp, None),
                "_part": np.full(k, "social_ads", dtype=object),
            }
            written = self._channel_written(rng, np.full(k, CH[name]), 0.5)
            written[~keep_utm] = "display"
            impressions = dict(base, event_type=np.full(k, "ad_impression", dtype=object), channel=written)
            blocks.append(impressions)
            click = take(dict(base, channel=written), np.flatnonzero(clicked))
            click["_ts"] = self._clip(click["_ts"] + rng.integers(1, 30, len(click["_ts"])), day)
            click["event_type"] = np.full(len(click["_ts"]), "ad_click", dtype=object)
            click["_touch"] = np.full(len(click["_ts"]), CH[name], dtype=np.int8)
            blocks.append(click)
            visit = np.flatnonzero(clicked & (rng.random(k) < 0.8))
            add_sessions(person[visit], CH[name], ts=self._clip(ts[visit] + 40, day), campaign=camp[visit], cookie=cookie[visit])

        email_sends = self._email(rng, day, stamp, blocks, add_sessions)
        sms_sends = self._sms(rng, day, stamp, blocks, add_sessions)
        self._app(rng, day, stamp, blocks)
        self._browser_social_mail(rng, day, blocks, add_sessions)

        if sess_person:
            blocks.append(
                self._sessions(
                    rng, day, np.concatenate(sess_person), np.concatenate(sess_channel), ts=np.concatenate(sess_ts),
                    campaign=np.concatenate(sess_campaign), cookie_row=np.concatenate(sess_cookie), is_reg=np.concatenate(sess_reg),
                )
            )  # fmt: skip
        events = concat_frames(blocks, (*EVENT_COLUMNS, *INTERNAL_DEFAULTS), INTERNAL_DEFAULTS)
        events = self._finish_events(rng, events, day, stamp)

        orders, refunds = self._orders(rng, day, stamp, events)
        return DayOutput(events, orders, refunds, ad_stats, email_sends, sms_sends)

    # ----------------------------------------------------------------------------- e-mail & sms
    def _email(self, rng, day, stamp, blocks, add_sessions) -> int:
        pop, cal = self.pop, self.cal
        d0 = cal.day_start(day)
        sends_total = 0
        n_campaigns = int(rng.choice(3, p=(0.3, 0.55, 0.15)))
        audience_all = np.flatnonzero(pop.email_sub & (pop.email != None))  # noqa: E711
        for k in range(n_campaigns):
            cid = f"em-{stamp}-{k + 1}"
            audience = audience_all[rng.random(len(audience_all)) < 0.85]
            send_ts = d0 + int(rng.integers(6, 10)) * 3600 + rng.integers(0, 1800, len(audience))
            holdout = (rng.random(len(audience)) < 0.1) if k == 0 else np.zeros(len(audience), dtype=bool)
            h = audience[holdout]
            blocks.append(
                {"_person": h, "_ts": send_ts[holdout], "event_type": np.full(len(h), "holdout_assigned", dtype=object),
                 "channel": np.full(len(h), "email", dtype=object), "campaign_id": np.full(len(h), cid, dtype=object),
                 "email": self._raw_email(rng, h), "_part": np.full(len(h), "email", dtype=object)}
            )  # fmt: skip
            p = audience[~holdout]
            ts = send_ts[~holdout]
            m = len(p)
            sends_total += m
            email = self._raw_email(rng, p)
            cust = np.where(rng.random(m) < 0.5, pop.customer_id_at(p, ts, rng), None)
            camp = np.full(m, cid, dtype=object)

            def ev(idx, etype, t, p=p, camp=camp, email=email, cust=cust, **extra):
                out = {"_person": p[idx], "_ts": t, "event_type": np.full(len(idx), etype, dtype=object),
                       "campaign_id": camp[idx], "email": email[idx], "customer_id": cust[idx]}  # fmt: skip
                out.update(extra)
                return out

            allm = np.arange(m)
            blocks.append(ev(allm, "email_send", ts))
            bounced = rng.random(m) < 0.035
            b = np.flatnonzero(bounced)
            hard = rng.random(len(b)) < 0.3
            props = np.where(hard, json.dumps({"bounce_type": "hard"}), json.dumps({"bounce_type": "soft"})).astype(object)
            props[rng.random(len(b)) < 0.05] = None  # missing bounce_type counts as soft
            props[hard] = json.dumps({"bounce_type": "hard"})
            blocks.append(ev(b, "email_bounce", self._clip(ts[b] + rng.integers(5, 300, len(b)), day), properties=props))
            pop.email_sub[p[b[hard]]] = False
            dl = np.flatnonzero(~bounced)
            dts = self._clip(ts[dl] + rng.integers(2, 120, len(dl)), day)
            blocks.append(ev(dl, "email_delivered", dts))
            p_open = 0.25 * np.clip(pop.affinity[p[dl], CH["email"]], 0.2, 3.0)
            opened = rng.random(len(dl)) < p_open
            o = dl[opened]
            ots = self._later(rng, dts[opened], day, 3600)
            odev = as_obj(DEVICE_TYPES)[rng.choice(3, len(o), p=(0.4, 0.55, 0.05))]
            blocks.append(ev(o, "email_open", ots, device_type=odev))
            clicked = rng.random(len(o)) < 0.14
            c = o[clicked]
            cts = self._clip(ots[clicked] + rng.integers(5, 600, len(c)), day)
            blocks.append(ev(c, "email_click", cts, device_type=odev[clicked], _touch=np.full(len(c), CH["email"], dtype=np.int8)))
            visit = rng.random(len(c)) < 0.65
            add_sessions(p[c[visit]], CH["email"], ts=self._clip(cts[visit] + 5, day), campaign=camp[c[visit]])
            comp = dl[rng.random(len(dl)) < 0.001]
            blocks.append(ev(comp, "email_complaint", self._later(rng, ts[comp], day, 7200)))
            unsub = dl[rng.random(len(dl)) < 0.003]
            blocks.append(ev(unsub, "email_unsubscribe", self._later(rng, ts[unsub], day, 7200)))
            pop.email_sub[p[unsub]] = False
        # newsletter sign-ups without registering (on the website)
        cand = np.flatnonzero(~pop.email_sub & (pop.email != None))  # noqa: E711
        new = cand[rng.random(len(cand)) < 0.003 * np.minimum(pop.activity[cand], 3)]
        cookie = self._random_cookie(rng, new)
        blocks.append(
            {"_person": new, "_ts": self._times(rng, pop.cookie_device[cookie], day),
             "event_type": np.full(len(new), "email_subscribe", dtype=object), "email": self._raw_email(rng, new),
             "anonymous_id": pop.cookie_id[cookie], "device_type": as_obj(DEVICE_TYPES)[pop.cookie_device[cookie]]}
        )  # fmt: skip
        pop.email_sub[new] = True
        return sends_total

    def _sms(self, rng, day, stamp, blocks, add_sessions) -> int:
        pop, cal = self.pop, self.cal
        sends = 0

        def ev(person, etype, ts, **extra):
            out = {"_person": person, "_ts": ts, "event_type": np.full(len(person), etype, dtype=object),
                   "phone": pop.phone_raw[person], "_part": np.full(len(person), "messaging", dtype=object)}  # fmt: skip
            out.update(extra)
            return out

        if rng.random() < 0.3:
            cid = f"sms-{stamp}"
            audience = np.flatnonzero(pop.sms_opt)
            ts = cal.day_start(day) + int(rng.integers(11, 14)) * 3600 + rng.integers(0, 1800, len(audience))
            holdout = rng.random(len(audience)) < 0.1
            h = audience[holdout]
            blocks.append(ev(h, "holdout_assigned", ts[holdout], channel=np.full(len(h), "sms", dtype=object), campaign_id=np.full(len(h), cid, dtype=object)))
            p, t = audience[~holdout], ts[~holdout]
            sends = len(p)
            camp = np.full(len(p), cid, dtype=object)
            blocks.append(ev(p, "sms_send", t, campaign_id=camp))
            clicked = rng.random(len(p)) < 0.05 * np.clip(pop.affinity[p, CH["sms"]], 0.2, 3)
            cts = self._later(rng, t[clicked], day, 600)
            blocks.append(ev(p[clicked], "sms_click", cts, campaign_id=camp[clicked], _touch=np.full(int(clicked.sum()), CH["sms"], dtype=np.int8)))
            visit = rng.random(int(clicked.sum())) < 0.5
            add_sessions(p[clicked][visit], CH["sms"], ts=self._clip(cts[visit] + 10, day), campaign=camp[clicked][visit])
            out = np.flatnonzero(rng.random(len(p)) < 0.005)
            blocks.append(ev(p[out], "sms_optout", self._later(rng, t[out], day, 3600)))
            pop.sms_opt[p[out]] = False
        cand = np.flatnonzero(~pop.sms_opt & (pop.phone_raw != None))  # noqa: E711
        new = cand[rng.random(len(cand)) < 0.001]
        cust = np.where(pop.registered_at(new, np.full(len(new), cal.day_start(day))), pop.customer_id[new], None)
        blocks.append(ev(new, "sms_optin", self._times(rng, np.full(len(new), MOBILE), day), customer_id=cust))
        pop.sms_opt[new] = True
        return sends

    # ------------------------------------------------------------------------------- app & push
    def _app(self, rng, day, stamp, blocks) -> None:
        pop, cal = self.pop, self.cal
        rows = np.flatnonzero(pop.device_installed)
        person = pop.device_person[rows]
        dev_name = as_obj(DEVICE_TYPES)[pop.device_type[rows]]
        os_props = np.where(rng.random(len(rows)) < 0.55, '{"os": "ios"}', '{"os": "android"}').astype(object)

        def ev(idx, etype, ts, touch=-1, **extra):
            k = len(idx)
            reg = pop.registered_at(person[idx], ts) & (rng.random(k) < 0.6)
            out = {"_person": person[idx], "_ts": ts, "event_type": np.full(k, etype, dtype=object),
                   "device_id": pop.device_id[rows[idx]], "device_type": dev_name[idx],
                   "customer_id": np.where(reg, pop.customer_id_at(person[idx], ts, rng), None),
                   "properties": os_props[idx], "_touch": np.full(k, touch, dtype=np.int8),
                   "_part": np.full(k, "app", dtype=object)}  # fmt: skip
            out.update(extra)
            return out

        opens = rng.poisson(0.3 * pop.activity[person] * pop.affinity[person, CH["mobile_app"]])
        idx = np.repeat(np.arange(len(rows)), opens)
        blocks.append(ev(idx, "app_open", self._times(rng, pop.device_type[rows[idx]], day), CH["mobile_app"]))
        if rng.random() < 0.5:
            cid = f"push-{stamp}"
            ts = cal.day_start(day) + int(rng.integers(17, 20)) * 3600 + rng.integers(0, 1200, len(rows))
            allr = np.arange(len(rows))
            blocks.append(ev(allr, "push_send", ts, campaign_id=np.full(len(rows), cid, dtype=object)))
            o = np.flatnonzero(rng.random(len(rows)) < 0.08 * np.clip(pop.affinity[person, CH["push"]], 0.2, 3))
            ots = self._later(rng, ts[o], day, 900)
            blocks.append(ev(o, "push_open", ots, CH["push"], campaign_id=np.full(len(o), cid, dtype=object)))
            a = o[rng.random(len(o)) < 0.6]
            blocks.append(ev(a, "app_open", self._clip(ts[a] + 1200, day), CH["mobile_app"]))
        # installs and uninstalls change the installed state for the following days
        cand = np.flatnonzero(~pop.device_installed)
        new = cand[rng.random(len(cand)) < 0.004]
        pop.device_installed[new] = True
        uninst = rows[rng.random(len(rows)) < 0.002]
        pop.device_installed[uninst] = False
        for sel, etype in ((new, "app_install"), (uninst, "app_uninstall")):
            k = len(sel)
            blocks.append(
                {"_person": pop.device_person[sel], "_ts": self._times(rng, pop.device_type[sel], day),
                 "event_type": np.full(k, etype, dtype=object), "device_id": pop.device_id[sel],
                 "device_type": as_obj(DEVICE_TYPES)[pop.device_type[sel]], "_part": np.full(k, "app", dtype=object)}
            )  # fmt: skip

    def _browser_social_mail(self, rng, day, blocks, add_sessions) -> None:
        pop = self.pop
        n = pop.n
        act = pop.activity
        first_cookie = pop.cookie_start

        def web_ev(person, etype, touch=-1, ts=None, **extra):
            k = len(person)
            cookie = first_cookie[person]
            out = {"_person": person, "_ts": self._times(rng, pop.cookie_device[cookie], day) if ts is None else ts,
                   "event_type": np.full(k, etype, dtype=object), "anonymous_id": pop.cookie_id[cookie],
                   "device_type": as_obj(DEVICE_TYPES)[pop.cookie_device[cookie]],
                   "_touch": np.full(k, touch, dtype=np.int8), "_part": np.full(k, "social_ads", dtype=object)}  # fmt: skip
            out.update(extra)
            return out

        # browser extension
        inst = np.flatnonzero(pop.browser_app)
        clicks = rng.poisson(0.15 * act[inst] * pop.affinity[inst, CH["browser_app"]])
        blocks.append(web_ev(np.repeat(inst, clicks), "browser_app_click", CH["browser_app"]))
        new = np.flatnonzero(~pop.browser_app & (rng.random(n) < 0.0005))
        gone = inst[rng.random(len(inst)) < 0.002]
        blocks.append(web_ev(new, "browser_app_install"))
        blocks.append(web_ev(gone, "browser_app_uninstall"))
        pop.browser_app[new] = True
        pop.browser_app[gone] = False

        # social network
        rate = np.where(pop.social_follow, 0.08, 0.005) * act * pop.affinity[:, CH["social"]]
        person = np.repeat(np.arange(n), rng.poisson(rate))
        kind = rng.choice(5, len(person), p=(0.55, 0.15, 0.2, 0.05, 0.05))
        props = as_obj(['{"kind": "like"}', '{"kind": "share"}', '{"kind": "comment"}', '{"kind": "save"}', None])[kind]
        inter = web_ev(person, "social_interaction", CH["social"], properties=props,
                       channel=np.where(rng.random(len(person)) < 0.3, "social", None).astype(object))  # fmt: skip
        blocks.append(inter)
        visit = rng.random(len(person)) < 0.1
        add_sessions(person[visit], CH["social"], ts=self._clip(inter["_ts"][visit] + 30, day))
        follow = np.flatnonzero(~pop.social_follow & (rng.random(n) < 0.001))
        unfollow = np.flatnonzero(pop.social_follow & (rng.random(n) < 0.003))
        blocks.append(web_ev(follow, "social_follow"))
        blocks.append(web_ev(unfollow, "social_unfollow"))
        pop.social_follow[follow] = True
        pop.social_follow[unfollow] = False

        # postal mailing list (registered customers only)
        ts0 = np.full(n, self.cal.day_start(day))
        reg = pop.registered_at(np.arange(n), ts0)
        msub = np.flatnonzero(reg & ~pop.mail_sub & (rng.random(n) < 0.0005))
        munsub = np.flatnonzero(pop.mail_sub & (rng.random(n) < 0.002))
        for sel, etype in ((msub, "mail_subscribe"), (munsub, "mail_unsubscribe")):
            k = len(sel)
            blocks.append(
                {"_person": sel, "_ts": self._times(rng, np.zeros(k, dtype=np.int64), day),
                 "event_type": np.full(k, etype, dtype=object), "customer_id": pop.customer_id[sel],
                 "email": pop.record_email[sel], "_part": np.full(k, "messaging", dtype=object)}
            )  # fmt: skip
        pop.mail_sub[msub] = True
        pop.mail_sub[munsub] = False

    # ------------------------------------------------------------------------------ finishing
    def _finish_events(self, rng, events: Frame, day: int, stamp: str) -> Frame:
        """Sort, assign ids, file parts and timestamp styles."""
        order = np.lexsort((events["_person"], events["_ts"]))
        events = take(events, order)
        k = frame_len(events)
        events["event_id"] = ids(f"ev-{stamp}-", np.arange(k), 7)
        codes, uniques = pd.factorize(events["event_type"])
        events["_part"] = as_obj([EVENT_PART[u] for u in uniques])[codes]  # loop over the few event types
        events["_style"] = draw_styles(rng, k, LANDING_STYLE_WEIGHTS)
        return events

    # --------------------------------------------------------------------------------- orders
    def _orders(self, rng, day: int, stamp: str, events: Frame) -> tuple[Frame, Frame]:
        pop, cal = self.pop, self.cal
        n = pop.n
        touch = events["_touch"] >= 0
        t_person = events["_person"][touch]
        contrib = np.bincount(t_person, weights=EFFECT_VECTOR[events["_touch"][touch]], minlength=n)
        self.ring[day % LOOKBACK_DAYS] = contrib
        logit = BASE_LOGIT + self.ring.sum(axis=0, dtype=np.float64)
        prob = np.minimum(sigmoid(logit), MAX_DAILY_PROBABILITY)
        buyers = np.flatnonzero(rng.random(n) < prob)

        # the person's last touch of the day: the order follows it (same device, cookie/app, channel)
        t_idx = np.flatnonzero(touch)
        srt = t_idx[np.lexsort((events["_ts"][t_idx], events["_person"][t_idx]))]
        sp = events["_person"][srt]
        last_of = np.full(n, -1, dtype=np.int64)
        if len(srt):
            ends = np.flatnonzero(np.append(sp[1:] != sp[:-1], True))
            last_of[sp[ends]] = srt[ends]
        lt = last_of[buyers]
        has = lt >= 0
        m = len(buyers)
        ts = np.empty(m, dtype=np.int64)
        ts[has] = self._clip(events["_ts"][lt[has]] + rng.integers(60, 2700, int(has.sum())), day)
        ts[~has] = self._times(rng, pop.primary_device[buyers[~has]], day)
        ltc = np.where(has, lt, 0)
        anon = np.where(has, events["anonymous_id"][ltc], None)
        device_id = np.where(has, events["device_id"][ltc], None)
        no_web = ~has | ((anon == None) & (device_id == None))  # noqa: E711
        anon[no_web] = pop.cookie_id[pop.cookie_start[buyers[no_web]]]
        dev_type = np.where(has, events["device_type"][ltc], as_obj(DEVICE_TYPES)[pop.primary_device[buyers]])
        channel = np.where(has, as_obj(TOUCH_CHANNELS)[events["_touch"][ltc].clip(0)], None)
        channel[rng.random(m) < 0.3] = None

        gross = np.round(rng.lognormal(4.0, 0.6, m), 2)
        disc = np.where(rng.random(m) < 0.3, np.round(gross * rng.uniform(0.05, 0.3, m), 2), 0.0)
        cogs = np.where(rng.random(m) < 0.85, np.round(gross * rng.uniform(0.35, 0.65, m), 2), np.nan)
        returning = self.orders_so_far[buyers] > 0
        u = rng.random(m)
        sale_type = np.where(returning & (u < 0.1), "upsell", np.where(returning & (u < 0.22), "cross_sell", "standard")).astype(object)
        sale_type[(sale_type == "standard") & (rng.random(m) < 0.1)] = None
        n_cat = rng.integers(1, 4, m)
        c1 = np.where(rng.random(m) < 0.6, pop.pref_category[buyers], rng.integers(0, len(CATEGORIES), m))
        c2 = (c1 + rng.integers(1, len(CATEGORIES), m)) % len(CATEGORIES)
        c3 = (c2 + rng.integers(1, len(CATEGORIES) - 1, m)) % len(CATEGORIES)
        c3 = np.where(c3 == c1, (c3 + 1) % len(CATEGORIES), c3)
        cats = as_obj(CATEGORIES)
        categories = join_nonnull([cats[c1], np.where(n_cat >= 2, cats[c2], None), np.where(n_cat >= 3, cats[c3], None)], "|")
        currency = pop.currency[buyers].copy()
        if day == 0 and m and not (currency == self.rare_currency).any():
            currency[0] = self.rare_currency  # at least one order in the rare currency before its first rate
        email = np.where(pop.email[buyers] != None, self._raw_email(rng, buyers), pop.record_email[buyers])  # noqa: E711
        email[~pop.registered_at(buyers, ts) & (pop.email[buyers] == None)] = None  # noqa: E711
        model_orders: Frame = {
            "_person": buyers,
            "_ts": ts,
            "_model": np.ones(m, dtype=bool),
            "customer_id": pop.customer_id_at(buyers, ts, rng),
            "email": email,
            "anonymous_id": anon,
            "device_id": device_id,
            "gross_revenue": gross,
            "discount_amount": disc,
            "cost_of_goods": cogs,
            "currency": currency,
            "sale_type": sale_type,
            "categories": categories,
            "device_type": dev_type,
            "channel": channel,
        }
        self.orders_so_far[buyers] += 1

        so = self.subscription_orders
        sub_today = take(so, np.flatnonzero(cal.day_of(so["_ts"]) == day)) if frame_len(so) else {}
        orders = concat_frames([model_orders, sub_today], (*ORDER_COLUMNS, *INTERNAL_DEFAULTS), {**INTERNAL_DEFAULTS, "gross_revenue": np.nan, "discount_amount": np.nan, "cost_of_goods": np.nan})
        orders = take(orders, np.lexsort((orders["_person"], orders["_ts"])))
        k = frame_len(orders)
        orders["order_id"] = ids(f"ord-{stamp}-", np.arange(k), 6)
        orders["_style"] = draw_styles(rng, k, LANDING_STYLE_WEIGHTS)
        orders["_part"] = np.full(k, "orders", dtype=object)

        # refunds: decided now, delivered on the day they happen (if within the world)
        net = np.round(orders["gross_revenue"] - np.nan_to_num(orders["discount_amount"]), 2)
        refunded = (rng.random(k) < 0.1) & (orders["currency"] != self.rare_currency) & (net > 0)
        r = np.flatnonzero(refunded)
        full = rng.random(len(r)) < 0.6
        amount = np.where(full, net[r], np.round(net[r] * rng.uniform(0.1, 0.7, len(r)), 2))
        delay = np.where(rng.random(len(r)) < 0.3, rng.integers(600, 6 * 3600, len(r)), rng.integers(1, 15, len(r)) * SECONDS_PER_DAY + rng.integers(-3600, 3600, len(r)))
        new_refunds: Frame = {
            "_person": orders["_person"][r],
            "_ts": orders["_ts"][r] + delay,
            "order_id": orders["order_id"][r],
            "amount": amount,
            "currency": orders["currency"][r],
        }
        pend = concat_frames([self.pending_refunds, new_refunds], list(new_refunds), INTERNAL_DEFAULTS)
        due = cal.day_of(pend["_ts"]) <= day
        refunds = take(pend, np.flatnonzero(due))
        self.pending_refunds = take(pend, np.flatnonzero(~due))
        refunds = take(refunds, np.lexsort((refunds["order_id"], refunds["_ts"])))
        kr = frame_len(refunds)
        refunds["refund_id"] = ids(f"rf-{stamp}-", np.arange(kr), 5)
        refunds["_style"] = draw_styles(rng, kr, LANDING_STYLE_WEIGHTS)
        refunds["_part"] = np.full(kr, "refunds", dtype=object)
        refunds["_tsraw"] = nulls(kr)
        orders["_tsraw"] = nulls(k)
        return orders, refunds
