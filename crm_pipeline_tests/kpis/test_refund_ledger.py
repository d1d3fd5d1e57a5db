"""The refund ledger: refunds dated in the last 548 days with the person and day of their order, carried
through merges, on hand-built days (D = 2026-10-31, Berlin)."""

import datetime as dt

import pandas as pd

from crm_pipeline.identity.graph import IDENTITY_MERGES_SCHEMA
from crm_pipeline.kpis.states import ORDER_BOOK_DAYS, update_order_book, update_refund_ledger
from crm_pipeline_tests.kpis.test_audiences import FX, IDENTITY, NO_MERGES, D, ago, orders

TZ = "Europe/Berlin"


def refunds(rows: list[tuple]) -> pd.DataFrame:
    """(refund_id, order_id, refunded_at, currency, amount (reporting), amount_original)"""
    frame = pd.DataFrame(rows, columns=["refund_id", "order_id", "refunded_at", "currency", "amount",
                                        "amount_original"])
    frame["refunded_at"] = pd.to_datetime(frame["refunded_at"], utc=True)
    return frame


def day_of(days: int) -> dt.date:
    return D - dt.timedelta(days=days)


def run(days: list[tuple[dt.date, pd.DataFrame, pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Book and ledger after each (day, orders, refunds, merges), as the two states chain day by day."""
    book = ledger = None
    for day, day_orders, day_refunds, merges in days:
        oldest = day - dt.timedelta(days=ORDER_BOOK_DAYS - 1)
        book, _ = update_order_book(book, day_orders, day_refunds, FX, IDENTITY, merges, TZ, "USD", oldest)
        ledger = update_refund_ledger(ledger, day_refunds, book, merges, TZ, oldest)
    return book, ledger


NO_REFUNDS = refunds([])
MERGE_P2_INTO_P1 = pd.DataFrame({"change_date": [D], "kind": ["merge"], "kept_person_id": ["P1"],
                                 "other_person_id": ["P2"], "reason": ["test"]}, columns=IDENTITY_MERGES_SCHEMA.names)


def test_the_ledger_keeps_548_days_of_refunds_of_booked_orders_with_their_person_and_day():
    book, ledger = run([
        (day_of(600), orders([("o0", "C1", ago(600), "USD", 40.0, "hats")]), NO_REFUNDS, NO_MERGES),
        (day_of(560), orders([("o1", "C1", ago(560), "EUR", 100.0, "shoes")]), NO_REFUNDS, NO_MERGES),
        # refunds of o1 in EUR (110 USD at that day's rate) and of o0, an order already out of the book
        (day_of(550), orders([]), refunds([("r1", "o1", ago(550), "EUR", 110.0, 100.0),
                                           ("r0", "o0", ago(550), "USD", 40.0, 40.0)]), NO_MERGES),
        (day_of(100), orders([("o2", "C2", ago(100), "USD", 50.0, "bags")]), NO_REFUNDS, NO_MERGES),
        # 23:30 UTC on D-2 is already D-1 in Berlin
        (day_of(1), orders([]), refunds([("r2", "o2", ago(2, "23:30"), "USD", 20.0, 20.0)]), NO_MERGES),
        (D, orders([]), NO_REFUNDS, MERGE_P2_INTO_P1),
    ])
    # o0 left the book before its refund: r0 is never booked; r1 is dated D-550, older than D-547: dropped
    assert ledger.to_dict("list") == {
        "refund_id": ["r2"], "order_id": ["o2"], "person_id": ["P1"],  # P2 merged into P1 on D
        "refunded_at": [pd.Timestamp(ago(2, "23:30"))], "refund_day": [day_of(1)], "order_day": [day_of(100)],
        "amount": [20.0]}
    assert sorted(book["order_id"]) == ["o2"]  # o1 (D-560) has left the 548-day book too
    assert book.set_index("order_id").loc["o2", "refunded"] == 20.0


def test_the_ledger_of_a_day_in_the_middle_holds_the_refund_in_reporting_currency():
    _, ledger = run([
        (day_of(560), orders([("o1", "C1", ago(560), "EUR", 100.0, "shoes")]), NO_REFUNDS, NO_MERGES),
        (day_of(550), orders([]), refunds([("r1", "o1", ago(550), "EUR", 110.0, 100.0)]), NO_MERGES),
    ])
    assert ledger[["refund_id", "person_id", "refund_day", "order_day", "amount"]].to_dict("records") == [
        {"refund_id": "r1", "person_id": "P1", "refund_day": day_of(550), "order_day": day_of(560), "amount": 110.0}]
