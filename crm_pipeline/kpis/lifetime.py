"""Customer lifetime KPIs (docs/kpi_catalog.md): clv (Monetise) and cohort_retention (Retention).

`clv` reads the order book of D (customers at D, `customers.py`), the customer status of D-30 (customers at D-30,
`retention.py`: a KPI cannot read the order book twice, Dagster keys an asset's inputs by upstream asset) and
the refund ledger of D (net of refunds, `value.net_of_refunds`). Its churn c is churn_rate's `customer` metric,
computed by `customer_churn` the way churn_rate computes it.

`cohort_retention` is a matrix that grows with history, so each partition reads its own previous partition
(self-dependency, as the states do): the months closed before the month of D are copied from partition D-1 (on
the first day of a month, D-1 computed the month just closed as of its last day, which is its final value) and
only the month of D is computed, from the order book and refund ledger of D and the first orders state. Without
a usable partition D-1 (the first partition, a gap, a cohort it lacks) every month is rebuilt from the order
book of D, each month's refund status taken back to its last day through the refunds dated after it; that
reaches back as far as the book (548 days).

The states hold persons as of their own day; a run carries them through the identity changes logged since
(`remap`, docs/outputs.md 2.2), so two parts merged later are one customer.
"""

import datetime as dt

import numpy as np
import pandas as pd

from crm_pipeline.identity.graph import PERSON_LOOKUP_COLUMNS
from crm_pipeline.kpis.crm_rows import labels
from crm_pipeline.kpis.customers import (
    ACTIVE_DAYS,
    active_customers,
    non_refunded,
    order_book_input,
    order_days,
    placed_in,
)
from crm_pipeline.kpis.framework import (
    BINDING_COLUMNS,
    Dimension,
    KpiDefinition,
    KpiInput,
    KpiOutput,
    count,
    quotient,
)
from crm_pipeline.kpis.loyalty import (
    CRM_CUSTOMERS,
    FIRST_ORDERS,
    IDENTITY_MAP,
    first_orders_as_of,
    local_days,
    registrations,
)
from crm_pipeline.kpis.persons import PersonRemap
from crm_pipeline.kpis.retention import (
    LOOKBACK_DAYS,
    STATUS_30,
    active_at,
    status_as_of_now,
)
from crm_pipeline.kpis.states import REFUND_TOLERANCE, day_numbers
from crm_pipeline.kpis.value import (
    LEDGER_EXCLUSIONS,
    NET_OF_REFUNDS,
    net_of_refunds,
    refund_ledger_input,
    window_start,
)
from crm_pipeline.settings import Settings

COHORT_RETENTION = ("kpi", "cohort_retention")
CHURN_DAYS = LOOKBACK_DAYS  # churn c: persons active at D-30 and not at D / persons active at D-30


def customer_churn(status_then: pd.DataFrame, book_now: pd.DataFrame, day: dt.date,
                   remap: PersonRemap) -> tuple[float, float]:
    """(persons active at D-30 and not active at D, persons active at D-30): churn_rate `customer` = the first /
    the second x 100. `status_then` is the customer status of D-30, `book_now` the order book of D; the persons
    of both are carried through the identity changes since (`remap`)."""
    start = active_at(status_as_of_now(status_then, remap))
    still = active_customers(book_now, day, remap)
    return float(len(start.difference(still))), float(len(start))


# ---------------------------------------------------------------------------------------------------------------
# clv

CLV_DAYS = 365  # D-364..D
MAX_LIFETIME_YEARS = 10.0  # L = min(1 / annual churn, 10); 10 when annual churn is 0
CLV_METRICS = ("clv", "clv_margin", "aov", "orders_per_customer", "annual_churn")


def expected_lifetime(annual_churn: float) -> float:
    """L = min(1 / annual churn, 10) years, 10 when annual churn is 0."""
    return MAX_LIFETIME_YEARS if annual_churn <= 0 else min(1.0 / annual_churn, MAX_LIFETIME_YEARS)


def _null(metric: str, unit: str) -> dict:
    return {"metric": metric, "numerator": None, "denominator": None, "value": None, "unit": unit}


def clv(order_book: pd.DataFrame, customer_status_30: pd.DataFrame, refund_ledger: pd.DataFrame,
        remap: PersonRemap, day: dt.date) -> list[dict]:
    """R (net of refunds in D-364..D) x L / A, with L from the 30-day customer churn annualised; AOV, orders per
    customer, the margin version (R - cost of goods) and the annual churn itself."""
    first = window_start(day, CLV_DAYS)
    revenue = net_of_refunds(order_book, refund_ledger, first, day)
    placed = placed_in(order_book, first, day)
    orders = float(placed.sum())
    active = float(len(active_customers(order_book, day, remap)))
    cost = order_book["cost_of_goods"].astype(float).to_numpy()[placed]
    lost, start = customer_churn(customer_status_30, order_book, day, remap)
    rows = [quotient(revenue, orders, "currency", metric="aov"),
            quotient(orders, active, "count", metric="orders_per_customer")]
    if start == 0:  # c is null: so are annual churn, L, clv and clv_margin
        return [_null("clv", "currency"), _null("clv_margin", "currency"), *rows, _null("annual_churn", "ratio")]
    annual = 1.0 - (1.0 - lost / start) ** (365.0 / CHURN_DAYS)
    lifetime = expected_lifetime(annual)
    rows += [quotient(revenue * lifetime, active, "currency", metric="clv"),
             count(annual, "ratio", metric="annual_churn")]
    if (~pd.isna(cost)).any():
        margin = revenue - float(pd.Series(cost).fillna(0.0).sum())
        rows.append(quotient(margin * lifetime, active, "currency", metric="clv_margin"))
    else:  # no order of the window has a cost of goods
        rows.append(_null("clv_margin", "currency"))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# cohort_retention

COHORT_METRICS = ("retention", "revenue", "cumulative_revenue_per_customer")
COHORT_DIMS = ["cohort", "months_since", "metric", "acquisition_channel"]
COHORT_BOOK_COLUMNS = ("order_id", "person_id", "order_day", "net_revenue", "net_revenue_original",
                       "refunded_original", "refunded", "count_refunds", "fully_refunded")


def month_number(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of numpy days (datetime64[D]): a cohort or a calendar month as an integer."""
    return np.asarray(days).astype("datetime64[M]").astype(np.int64)


def month_label(months: np.ndarray | int) -> np.ndarray:
    """`YYYY-MM` of month numbers."""
    return np.datetime_as_string(np.asarray(months, dtype=np.int64).astype("datetime64[M]"), unit="M")


def cohort_month_numbers(labels_: pd.Series) -> np.ndarray:
    """Month numbers of `YYYY-MM` cohort labels."""
    return labels_.astype(str).to_numpy().astype("datetime64[M]").astype(np.int64)


def headline_cohort(day: dt.date) -> int:
    """c*: the latest cohort whose month 1 ends on or before the end of D (the month of D minus 1 when D is the
    last day of its month, else minus 2), as a month number."""
    month = int(month_number(np.datetime64(day, "D")))
    last_day = (day + dt.timedelta(days=1)).day == 1
    return month - (1 if last_day else 2)


def cohort_members(first_orders: pd.DataFrame, crm_customers: pd.DataFrame, identity_map: pd.DataFrame,
                   remap: PersonRemap, day: dt.date, timezone: str) -> pd.DataFrame:
    """One row per buyer at D (persons as of the newest identity), indexed by person_id: `cohort` (the month
    number of their first order, refunded later or not) and `acquisition_channel` (of their earliest customer
    record, as recency_frequency; `(none)` without one)."""
    first = first_orders_as_of(first_orders, remap)
    registered = registrations(crm_customers, identity_map, remap, day, timezone)
    cohort = month_number(local_days(first["first_ordered_at"], timezone))
    channel = labels(pd.Series(first.index, index=first.index).map(registered["acquisition_channel"]))
    return pd.DataFrame({"cohort": cohort, "acquisition_channel": channel.to_numpy(dtype=object)},
                        index=first.index)


def non_refunded_at(book: pd.DataFrame, ledger: pd.DataFrame, as_of: dt.date, day: dt.date) -> np.ndarray:
    """True for the book's orders not fully refunded at the end of `as_of` (<= D, the book's day). At D: the
    book's flag. Earlier: the refunds dated after `as_of` (all in the ledger of D) are taken back, in the order
    currency in proportion to their reporting amounts (exact when the refund and the order share a currency)."""
    if as_of >= day:
        return non_refunded(book)
    kept = np.ones(len(book), dtype=bool)
    counted = book["count_refunds"].astype(float).fillna(0.0).to_numpy()
    has = counted > 0  # an order without refunds at D had none at `as_of` either
    if not has.any():
        return kept
    orders = book.loc[has]
    later = day_numbers(ledger["refund_day"]) > np.datetime64(as_of, "D").astype(np.int64)
    order_ids = ledger["order_id"].astype("string").to_numpy()[later]
    amounts = pd.Series(ledger["amount"].astype(float).to_numpy()[later], index=order_ids).groupby(level=0)
    ids = orders["order_id"].astype("string")
    after = ids.map(amounts.sum()).fillna(0.0).to_numpy(dtype=float)
    after_count = ids.map(amounts.size()).fillna(0).to_numpy(dtype=float)
    refunded = orders["refunded"].astype(float).fillna(0.0).to_numpy()
    share = np.divide(refunded - after, refunded, out=np.zeros(len(orders)), where=refunded > 0)
    by_then = orders["refunded_original"].astype(float).fillna(0.0).to_numpy() * share
    fully = (counted[has] - after_count > 0) & (
        by_then >= orders["net_revenue_original"].astype(float).to_numpy() - REFUND_TOLERANCE)
    kept[has] = ~fully
    return kept


def month_cells(members: pd.DataFrame, cohorts: np.ndarray, book: pd.DataFrame, book_persons: np.ndarray,
                kept: np.ndarray, ledger: pd.DataFrame, ledger_persons: np.ndarray, month: int,
                as_of: dt.date, order_day: np.ndarray | None = None,
                refund_day: np.ndarray | None = None) -> pd.DataFrame:
    """The cells of calendar month `month` (a month number), as of the end of `as_of` (its last day, or D), for
    every cohort in `cohorts` (<= month) and every (cohort, acquisition_channel) of the members: cohort size,
    members with an order in the month non-refunded at `as_of` (`kept`), and revenue net of refunds (net revenue
    of the members' orders in the month - refunds of their orders dated in it). acquisition_channel null: all.
    `order_day` / `refund_day`: the book's order days and the ledger's refund day numbers, when already known."""
    first = month_label(month).astype("datetime64[D]")
    last = np.datetime64(as_of, "D")
    order_day = order_days(book) if order_day is None else order_day
    in_month = (order_day >= first) & (order_day <= last)
    orders = pd.DataFrame({"person_id": book_persons[in_month], "revenue": book["net_revenue"].astype(float)
                           .fillna(0.0).to_numpy()[in_month], "kept": kept[in_month]})
    refund_day = day_numbers(ledger["refund_day"]) if refund_day is None else refund_day
    dated = (refund_day >= first.astype(np.int64)) & (refund_day <= last.astype(np.int64))
    refunds = pd.DataFrame({"person_id": ledger_persons[dated], "revenue": -ledger["amount"].astype(float)
                            .to_numpy()[dated], "kept": False})
    money = pd.concat([orders, refunds], ignore_index=True)
    money = money.join(members, on="person_id", how="inner")
    money = money.loc[(money["cohort"] <= month).to_numpy()]
    retained = money.loc[money["kept"].to_numpy(dtype=bool)].drop_duplicates("person_id")
    chosen = members.loc[(members["cohort"] <= month).to_numpy()]
    out = []
    for keys in (["cohort"], ["cohort", "acquisition_channel"]):
        size = chosen.groupby(keys).size().rename("size")
        kept_n = retained.groupby(keys).size().rename("retained")
        revenue = money.groupby(keys)["revenue"].sum().rename("revenue")
        # every cohort of the range, empty ones too; per channel, the channels of each cohort's members
        grid = pd.Index(cohorts[cohorts <= month], name="cohort") if keys == ["cohort"] else size.index
        cells = pd.concat([size.reindex(grid), kept_n.reindex(grid), revenue.reindex(grid)], axis=1).fillna(0.0)
        cells = cells.reset_index()
        if "acquisition_channel" not in cells.columns:
            cells["acquisition_channel"] = None
        out.append(cells)
    cells = pd.concat(out, ignore_index=True)
    cells["months_since"] = month - cells["cohort"].astype(np.int64)
    return cells[["cohort", "months_since", "acquisition_channel", "size", "retained", "revenue"]]


def cell_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """The three metric rows of each cell (cumulative: its `cumulative` revenue over months 0..m)."""
    size = cells["size"].to_numpy(dtype=float)
    dims = pd.DataFrame({"cohort": month_label(cells["cohort"].to_numpy(dtype=np.int64)),
                         "months_since": cells["months_since"].astype(np.int64).astype(str).to_numpy(),
                         "acquisition_channel": cells["acquisition_channel"].to_numpy(dtype=object)})

    def quotients(numerator: np.ndarray, unit: str, metric: str) -> pd.DataFrame:
        value = np.divide(numerator, size, out=np.full(len(size), np.nan), where=size != 0)
        return dims.assign(metric=metric, numerator=numerator, denominator=size, value=value, unit=unit)

    revenue = cells["revenue"].to_numpy(dtype=float)
    return pd.concat([
        quotients(cells["retained"].to_numpy(dtype=float), "ratio", "retention"),
        dims.assign(metric="revenue", numerator=revenue, denominator=np.nan, value=revenue, unit="currency"),
        quotients(cells["cumulative"].to_numpy(dtype=float), "currency", "cumulative_revenue_per_customer"),
    ], ignore_index=True)


def _carried(previous: pd.DataFrame, month: int) -> pd.DataFrame:
    """The rows of the previous partition whose month c+m is closed at D (before the month of D)."""
    rows = previous.loc[previous["cohort"].notna().to_numpy()].drop(columns=["date"], errors="ignore")
    closed = cohort_month_numbers(rows["cohort"]) + rows["months_since"].astype(np.int64).to_numpy() < month
    return rows.loc[closed].reset_index(drop=True)


def cohort_retention(order_book: pd.DataFrame, refund_ledger: pd.DataFrame, first_orders: pd.DataFrame,
                     crm_customers: pd.DataFrame, identity_map: pd.DataFrame, previous: pd.DataFrame,
                     remap: PersonRemap, day: dt.date, settings: Settings) -> KpiOutput:
    """The cohort matrix as of D: the closed months carried over from partition D-1, the month of D computed
    from the order book and refund ledger of D. Without a usable partition D-1 (the first day, a gap, a cohort
    the previous matrix lacks) every month is rebuilt from the book, which reaches back 548 days."""
    month = int(month_number(np.datetime64(day, "D")))
    members = cohort_members(first_orders, crm_customers, identity_map, remap, day, settings.timezone)
    book_persons = remap(order_book["person_id"]).to_numpy(dtype=object, na_value=None)
    ledger_persons = remap(refund_ledger["person_id"]).to_numpy(dtype=object, na_value=None)
    # the IO manager hands a missing partition D-1 as an empty frame (possibly without columns)
    carried = (_carried(previous, month) if len(previous)
               else pd.DataFrame(columns=[*COHORT_DIMS, *BINDING_COLUMNS]))
    starts = [*members["cohort"].tolist(), *(cohort_month_numbers(carried["cohort"]).tolist() if len(carried)
                                               else [])]
    cohorts = np.arange(min(starts), month + 1, dtype=np.int64) if starts else np.array([], dtype=np.int64)
    closed = {(c, m) for c in cohorts for m in range(month - c)}
    have = (set(zip(cohort_month_numbers(carried["cohort"]).tolist(), carried["months_since"].astype(int).tolist(),
                    strict=True)) if len(carried) else set())
    rebuilt = not len(previous) or not closed <= have
    if rebuilt:  # every month from the first cohort's, each as of its last day (D for the month of D)
        frames = []
        order_day, refund_day = order_days(order_book), day_numbers(refund_ledger["refund_day"])
        for m in (cohorts.tolist() if len(cohorts) else []):
            as_of = min(pd.Period(month_label(m).item(), "M").end_time.date(), day)
            kept = non_refunded_at(order_book, refund_ledger, as_of, day)
            frames.append(month_cells(members, cohorts, order_book, book_persons, kept, refund_ledger,
                                      ledger_persons, m, as_of, order_day, refund_day))
        cells = pd.concat(frames, ignore_index=True) if frames else month_cells(
            members, cohorts, order_book, book_persons, non_refunded(order_book), refund_ledger, ledger_persons,
            month, day)
        cells = cells.sort_values(["cohort", "acquisition_channel", "months_since"], na_position="first",
                                  kind="stable", ignore_index=True)
        channel = cells["acquisition_channel"].astype("string").fillna("\x00all")
        cells["cumulative"] = cells.groupby([cells["cohort"], channel], sort=False)["revenue"].cumsum()
        rows = cell_rows(cells)
    else:
        cells = month_cells(members, cohorts, order_book, book_persons, non_refunded(order_book), refund_ledger,
                            ledger_persons, month, day)
        # cumulative revenue: that of month m-1 (carried, closed) + this month's revenue
        before = carried.loc[(carried["metric"] == "cumulative_revenue_per_customer").to_numpy()]
        key = pd.MultiIndex.from_arrays([cohort_month_numbers(before["cohort"]),
                                         before["months_since"].astype(np.int64).to_numpy() + 1,
                                         before["acquisition_channel"].astype("string").fillna("\x00all")])
        earlier = pd.Series(before["numerator"].astype(float).to_numpy(), index=key)
        wanted = pd.MultiIndex.from_arrays([cells["cohort"].astype(np.int64), cells["months_since"].astype(np.int64),
                                            cells["acquisition_channel"].astype("string").fillna("\x00all")])
        cells["cumulative"] = cells["revenue"].to_numpy() + earlier.reindex(wanted).fillna(0.0).to_numpy()
        rows = pd.concat([carried[[*COHORT_DIMS, *BINDING_COLUMNS]], cell_rows(cells)], ignore_index=True)
    rows = rows[[*COHORT_DIMS, *BINDING_COLUMNS]]
    star = month_label(headline_cohort(day)).item()
    head = rows.loc[((rows["cohort"] == star) & (rows["months_since"] == "1") & (rows["metric"] == "retention")
                     & rows["acquisition_channel"].isna()).to_numpy()]
    total = (head.assign(cohort=None, months_since=None, metric=None) if len(head)
             else pd.DataFrame([quotient(0.0, 0.0, "ratio")]))  # c* precedes every cohort: an empty cohort
    return KpiOutput(pd.concat([total, rows], ignore_index=True), metadata={
        "cohorts": len(cohorts), "headline_cohort": star, "carried_rows": 0 if rebuilt else len(carried),
        "rebuilt_from_order_book": rebuilt})


# ---------------------------------------------------------------------------------------------------------------
# declarations

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="clv", family="Monetise", seed="001",
        description="One row per metric (clv, clv_margin, aov, orders_per_customer, annual_churn) for D-364..D: "
                    "revenue net of refunds per active customer at D over the expected customer lifetime, from the "
                    "30-day customer churn annualised.",
        formula=f"R = {NET_OF_REFUNDS} (D-364..D); O = orders placed in the window (refunded or not); A = active "
                "customers at D; c = churn_rate customer / 100 = persons active at D-30 and not at D / persons "
                "active at D-30; annual churn = 1 - (1 - c)^(365/30); L = min(1 / annual churn, 10) (10 when "
                "annual churn is 0); clv = R x L / A; clv_margin = (R - cost_of_goods of the orders in the window, "
                "missing = 0) x L / A, null when no order in the window has cost_of_goods; aov = R / O; "
                "orders_per_customer = O / A; annual_churn: numerator = value, denominator null; clv, clv_margin "
                "and annual_churn are null when c is null (no active customer at D-30)",
        window="365d (D-364..D; churn: active customers at D-30 and at D, D-394..D)",
        population="orders placed in D-364..D; refunds dated in it; active customers at D and at D-30",
        unit="currency, count, ratio", exclusions=LEDGER_EXCLUSIONS,
        dimensions=(Dimension("metric", CLV_METRICS),),
        headline={"metric": "clv"},
        inputs=(order_book_input(columns=("person_id", "order_day", "net_revenue", "fully_refunded",
                                          "cost_of_goods")),
                STATUS_30,
                refund_ledger_input(columns=("refund_day", "amount"))),
        lineage={"numerator": ("order_book.net_revenue", "order_book.order_day", "order_book.cost_of_goods",
                               "refund_ledger.amount", "refund_ledger.refund_day", "customer_status_30.person_id",
                               "customer_status_30.last_order_date", "order_book.person_id"),
                 "denominator": ("order_book.person_id", "order_book.order_day", "order_book.fully_refunded")},
        compute=clv, window_days=ACTIVE_DAYS + CHURN_DAYS,
        remap_days=CHURN_DAYS + 1),  # the status of D-30 holds persons as of D-30
 KpiDefinition(
        name="cohort_retention", family="Retention", seed="002",
        description="One row per cohort (month of the first order, YYYY-MM) x months_since x metric (retention, "
                    "revenue, cumulative_revenue_per_customer), in all and per acquisition_channel of the cohort's "
                    "members: the monthly cohort matrix as of the end of D, every cohort from the first month with "
                    "an order to the month of D, every month up to the month of D (partial).",
        formula="retention = members with an order in month c+m non-refunded at the end of that month (at D for "
                "the month of D) / cohort size; revenue (numerator = value) = net revenue of the members' orders "
                "in month c+m - refunds of their orders dated in month c+m; cumulative_revenue_per_customer = sum "
                "of revenue over months 0..m / cohort size; headline = retention, months_since 1, of cohort c* "
                "(the month of D minus 1 when D is the last day of its month, else minus 2), 0 / 0 when c* is "
                "empty",
        window="months (closed months carried over from partition D-1; first orders ever: complete from "
               "CRM_START_DATE + 365 d)",
        population="persons whose first order (earliest ordered_at, ties: lowest order_id; refunded later or not) "
                   "is in month c; acquisition_channel of the person's earliest customer record ((none) without "
                   "one)",
        unit="ratio, currency",
        exclusions=LEDGER_EXCLUSIONS + "; once a month is closed its cells are fixed (later refunds, identity "
                   "changes and channel changes do not restate it)",
        dimensions=(Dimension("cohort"), Dimension("months_since"), Dimension("metric", COHORT_METRICS),
                    Dimension("acquisition_channel")),
        headline={"metric": "retention", "months_since": "1"},
        inputs=(order_book_input(columns=COHORT_BOOK_COLUMNS),
                refund_ledger_input(columns=("order_id", "person_id", "refund_day", "amount")),
                KpiInput("first_orders", FIRST_ORDERS, columns=("person_id", "first_order_id", "first_ordered_at")),
                KpiInput("crm_customers", CRM_CUSTOMERS, columns=("customer_id", "created_at", "acquisition_channel")),
                KpiInput("identity_map", IDENTITY_MAP, columns=PERSON_LOOKUP_COLUMNS),
                KpiInput("previous", COHORT_RETENTION, offset_days=1)),
        lineage={"cohort": ("first_orders.first_ordered_at", "previous.cohort"),
                 "months_since": ("order_book.order_day", "previous.months_since"),
                 "acquisition_channel": ("crm_customers.acquisition_channel", "crm_customers.created_at"),
                 "numerator": ("order_book.net_revenue", "order_book.order_day", "order_book.fully_refunded",
                               "refund_ledger.amount", "refund_ledger.refund_day", "previous.numerator"),
                 "denominator": ("first_orders.person_id", "first_orders.first_ordered_at", "previous.denominator")},
        compute=cohort_retention, window_days=366, remap_days=1),  # the states and the identity map are as of D
)
