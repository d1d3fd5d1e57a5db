"""The order book, audience membership and the audiences KPI on hand-built days, numbers worked out by hand."""

import datetime as dt

import pandas as pd

from crm_pipeline.kpis.assets import kpi_key
from crm_pipeline.kpis.audiences import KPIS, audience_membership
from crm_pipeline.kpis.framework import finalise, standard_checks
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.states import update_order_book, update_person_signals
from crm_pipeline.settings import Settings

D = dt.date(2026, 10, 31)
START = dt.date(2025, 10, 1)
SETTINGS = Settings(landing_root="l", warehouse_root="w", database_url="sqlite://", timezone="Europe/Berlin",
                    start_date=START)
KPI = KPIS[0]
IDS = ["C1", "C2", "C3", "C4", "C5", "C6", "C9"]
IDENTITY = pd.DataFrame({"identifier_type": ["customer_id"] * 7, "identifier": IDS,
                         "person_id": ["P1", "P2", "P3", "P4", "P4", "P6", "P9"], "is_refused": [False] * 7})
NO_CHANGES = PersonRemap.none()
FX = pd.DataFrame({"currency": ["EUR", "GBP"], "rate_date": [D, D], "rate_to_reporting": [1.1, 1.25]})


def ago(days: int, hour: str = "10:00") -> str:
    """A UTC timestamp `days` before D at `hour`."""
    return f"{(D - dt.timedelta(days=days)).isoformat()}T{hour}Z"


def orders(rows: list[tuple]) -> pd.DataFrame:
    """(order_id, customer_id, ordered_at, currency, net_revenue_original, categories)"""
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "currency", "net_revenue_original",
                                        "categories"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["net_revenue"] = frame["net_revenue_original"] * frame["currency"].map({"USD": 1.0, "EUR": 1.1})
    frame["gross_revenue"], frame["discount_amount"], frame["cost_of_goods"] = frame["net_revenue"], 0.0, None
    for column in ("email_hash", "anonymous_id", "device_id"):
        frame[column] = None
    return frame


def refunds(rows: list[tuple]) -> pd.DataFrame:
    """(refund_id, order_id, currency, amount (reporting), amount_original)"""
    return pd.DataFrame(rows, columns=["refund_id", "order_id", "currency", "amount", "amount_original"])


NO_REFUNDS = refunds([])
NO_MERGES = NO_CHANGES.changes


def book_of(days: list[tuple[dt.date, pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    book = None
    for day, day_orders, day_refunds in days:
        book, _ = update_order_book(book, day_orders, day_refunds, FX, IDENTITY, NO_MERGES, SETTINGS.timezone, "USD",
                                 day - dt.timedelta(days=364))
    return book


def d(days: int) -> dt.date:
    return D - dt.timedelta(days=days)


BOOK_DAYS = [
    (d(400), orders([("o0", "C6", ago(400), "USD", 10.0, "hats")]), NO_REFUNDS),  # leaves the book after a year
    (d(100), orders([("o1", "C1", ago(100), "EUR", 100.0, "shoes|bags"),
                     ("o4", "C2", ago(100), "USD", 0.0, "socks")]), NO_REFUNDS),  # net 0, never refunded
    (d(95), orders([("o2", "C1", ago(95), "USD", 50.0, "shoes"),
                    ("o3", "C2", ago(95), "EUR", 80.0, "bags")]), NO_REFUNDS),
    (d(50), orders([]), refunds([("r1", "o1", "EUR", 110.0, 100.0),  # o1 fully refunded in its own currency
                                 ("r2", "o2", "USD", 20.0, 20.0),  # o2 partially
                                 ("r3", "o3", "GBP", 87.995, 70.396),  # 87.995 USD / 1.1 = 79.995 EUR: enough
                                 ("r9", "zz", "USD", 5.0, 5.0)])),  # an order the book never saw
    (d(10), orders([("o5", "C5", ago(10), "USD", 30.0, "hats")]), NO_REFUNDS),
]


def test_the_order_book_applies_refunds_in_the_order_currency_and_keeps_a_year():
    book = book_of(BOOK_DAYS).set_index("order_id")
    assert sorted(book.index) == ["o1", "o2", "o3", "o4", "o5"]  # o0 is older than D-364
    assert book["fully_refunded"].to_dict() == {"o1": True, "o2": False, "o3": True, "o4": False, "o5": False}
    assert book.loc["o3", "refunded_original"] == 87.995 / 1.1
    # in the reporting currency each refund counts at its own day's rate: r1 110 USD, r2 20, r3 87.995
    assert book["refunded"].to_dict() == {"o1": 110.0, "o2": 20.0, "o3": 87.995, "o4": 0.0, "o5": 0.0}
    assert book["count_refunds"].to_dict() == {"o1": 1, "o2": 1, "o3": 1, "o4": 0, "o5": 0}
    assert book.loc["o5", "person_id"] == "P4" and book.loc["o1", "order_day"] == d(100)


def signal_events(rows: list[tuple]) -> pd.DataFrame:
    """(customer_id, event_type, occurred_at, device_id)"""
    frame = pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at", "device_id"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    for column in ("email_hash", "phone_hash", "anonymous_id", "bounce_type"):
        frame[column] = None
    return frame


SIGNAL_EVENTS = signal_events([
    ("C1", "cart_add", ago(3), None),  # no order after: abandoned
    ("C2", "cart_add", ago(2), None),
    ("C3", "cart_add", ago(8), None),  # before D-6
    ("C4", "cart_add", ago(0), None),  # an order at the same instant does not follow it
    # D-30 is Oct 1, still summer time in Berlin (UTC+2)
    ("C1", "email_click", ago(30, "22:30"), None),  # 00:30 on D-29 in Berlin: inside D-29..D
    ("C2", "email_click", ago(30, "21:30"), None),  # 23:30 on D-30 in Berlin: outside
    ("C3", "app_install", ago(5), "dev"), ("C3", "app_open", ago(1), "dev"),
])
SIGNAL_ORDERS = orders([("x2", "C2", ago(1), "USD", 5.0, "hats"), ("x4", "C4", ago(0), "USD", 5.0, "hats")])
CATEGORY_VIEWS = pd.DataFrame([
    ("P2", "shoes", 2, d(29).isoformat()), ("P2", "shoes", 1, d(0).isoformat()),  # 3 in the window
    ("P3", "bags", 3, d(30).isoformat()),  # outside the window
    ("P3", "shoes", 2, d(0).isoformat()),
], columns=["person_id", "category", "count_views", "date"])
CUSTOMERS = pd.DataFrame({"customer_id": IDS,
                          "created_at": pd.to_datetime([ago(200)] * 7, utc=True),
                          "marketing_consent": pd.array([True, False, None, False, True, True, True],
                                                        dtype="boolean")})


def membership(previous: pd.DataFrame | None = None, remap: PersonRemap = NO_CHANGES) -> pd.DataFrame:
    signals = update_person_signals(None, SIGNAL_EVENTS, SIGNAL_ORDERS, IDENTITY, NO_MERGES)
    book = book_of(BOOK_DAYS)
    return audience_membership(signals, book, CATEGORY_VIEWS, CUSTOMERS, IDENTITY, previous, remap, D, SETTINGS)


def test_audience_membership_by_hand():
    m = membership()
    assert sorted(map(tuple, m[["audience", "person_id"]].to_numpy().tolist())) == sorted([
        ("cart_abandoners", "P1"), ("cart_abandoners", "P4"),
        ("recent_email_clickers", "P1"),
        ("active_app_users", "P3"),
        ("category_enthusiasts:shoes", "P2"),
        ("past_purchasers:shoes", "P1"),  # o1 (shoes|bags) is fully refunded, o2 (shoes) is not
        ("past_purchasers:socks", "P2"),  # the net-0 order o4 was never refunded
        ("past_purchasers:hats", "P4"),
        ("winback_candidates", "P1"),  # latest non-refunded order D-95
        ("winback_candidates", "P2"),  # o4 on D-100 (o3 is refunded)
    ])
    # activatable: P1 consents, P2 does not, P3's consent is unknown, P4 has one consenting record of two
    assert m.groupby("person_id")["activatable"].first().to_dict() == {"P1": True, "P2": False, "P3": False,
                                                                       "P4": True}
    assert (m["since"] == D).all()  # no earlier membership


def test_since_carries_the_continuous_membership_through_merges():
    previous = pd.DataFrame([("P1", "cart_abandoners", d(2)), ("P9", "winback_candidates", d(5)),
                             ("P1", "winback_candidates", d(1)), ("P3", "cart_abandoners", d(1))],
                            columns=["person_id", "audience", "since"])
    merge = pd.DataFrame({"change_date": [D], "kind": ["merge"], "kept_person_id": ["P1"],
                          "other_person_id": ["P9"], "reason": ["x"]})
    m = membership(previous, PersonRemap(merge)).set_index(["person_id", "audience"])["since"]
    assert m[("P1", "cart_abandoners")] == d(2)
    assert m[("P1", "winback_candidates")] == d(5)  # P9 was a member since D-5 and is P1 now
    assert m[("P1", "recent_email_clickers")] == D
    assert ("P3", "cart_abandoners") not in m.index  # P3 left: a later return starts a new membership


def test_audiences_kpi_by_hand():
    frame = finalise(KPI, KPI.compute(audience_membership=membership(), remap=NO_CHANGES))
    assert all(c.passed for c in standard_checks(KPI, kpi_key(KPI), frame))
    t = {(a, m): v for a, m, v in zip(frame["audience"].astype(object).where(frame["audience"].notna(), None),
                                      frame["metric"].astype(object).where(frame["metric"].notna(), None),
                                      frame["value"], strict=True)}
    assert t == {
        (None, None): 4.0, (None, "reach"): 4.0,  # P1..P4
        ("cart_abandoners", "size"): 2.0, ("cart_abandoners", "activatable"): 2.0,
        ("recent_email_clickers", "size"): 1.0, ("recent_email_clickers", "activatable"): 1.0,
        ("active_app_users", "size"): 1.0, ("active_app_users", "activatable"): 0.0,
        ("winback_candidates", "size"): 2.0, ("winback_candidates", "activatable"): 1.0,
        ("category_enthusiasts:shoes", "size"): 1.0, ("category_enthusiasts:shoes", "activatable"): 0.0,
        ("past_purchasers:hats", "size"): 1.0, ("past_purchasers:hats", "activatable"): 1.0,
        ("past_purchasers:shoes", "size"): 1.0, ("past_purchasers:shoes", "activatable"): 1.0,
        ("past_purchasers:socks", "size"): 1.0, ("past_purchasers:socks", "activatable"): 0.0,
    }


def test_an_empty_day_writes_the_fixed_audiences_with_zeros():
    empty = pd.DataFrame({"person_id": pd.Series([], dtype="string"), "audience": pd.Series([], dtype="string"),
                          "since": pd.Series([], dtype="object"), "activatable": pd.Series([], dtype=bool)})
    frame = finalise(KPI, KPI.compute(audience_membership=empty, remap=NO_CHANGES))
    assert len(frame) == 2 + 8 and (frame["value"] == 0).all()
