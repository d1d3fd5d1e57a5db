"""Predictive CLV (docs/kpi_catalog.md "clv_predictive"): every buyer's order history summarised at day grain, BG/NBD and
Gamma-Gamma fitted on it (`clv_model`), one row of predictions per buyer (`clv_predictions`) and the KPI.

A buyer's history comes from two states, so the cost of a day does not grow with the length of history: the
order book (the orders of its last ORDER_BOOK_DAYS days with their refunds) and the order history (one summary row per person of
the order days before; `states.update_order_history`). Both hold persons as of D; the predictions carry them
through every later identity change (docs/outputs.md 2.2), so persons merged later are one buyer.

Summaries as `lifetimes.utils.summary_data_from_transaction_data(freq="D")`, on the orders non-refunded at D,
days in the reporting timezone: x = order days - 1, t = last - first order day, T = D - first order day,
monetary = mean net revenue (refunds not deducted) of the order days after the first (0 when x = 0).
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from crm_pipeline import checks
from crm_pipeline.kpis import clv_model
from crm_pipeline.kpis.clv_model import (
    BGNBD_PARAMETERS,
    GAMMA_GAMMA_PARAMETERS,
    MAX_HESSIAN_CONDITION,
    Fit,
    FitError,
)
from crm_pipeline.kpis.framework import Dimension, KpiDefinition, KpiInput, KpiOutput, quotient
from crm_pipeline.kpis.persons import IDENTITY_MERGES_PATH, PersonRemap
from crm_pipeline.kpis.states import (
    ORDER_BOOK_DAYS,
    ORDER_BOOK_KEY,
    ORDER_HISTORY_KEY,
    combine_order_days,
    day_numbers,
    order_days,
)
from crm_pipeline.metadata import column_schema, partition_day
from crm_pipeline.resources import OWNERS, PipelineSettingsResource

HORIZON_DAYS = 365  # expected purchases and value over the next 365 days
GROUP = "kpis"
CLV_PREDICTIONS_KEY = dg.AssetKey(["clv_predictions"])
CLV_PREDICTIONS_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), nullable=False),
    pa.field("x", pa.int64(), nullable=False),  # repeat order days
    pa.field("t", pa.int64(), nullable=False),  # days from the first to the last order day
    pa.field("T", pa.int64(), nullable=False),  # days from the first order day to D
    pa.field("monetary", pa.float64(), nullable=False),  # mean net revenue of the repeat order days (0: none)
    # null when the models could not be fitted (clv_model.error says why)
    pa.field("expected_purchases_12m", pa.float64()),
    pa.field("p_alive", pa.float64()),
    pa.field("expected_spend", pa.float64()),  # Gamma-Gamma conditional expected spend of an order day
    pa.field("expected_value_12m", pa.float64()),  # expected_purchases_12m x expected_spend
])
CLV_MODEL_KEY = dg.AssetKey(["clv_model"])
CLV_MODEL_PK = ["model", "parameter"]
CLV_MODEL_SCHEMA = pa.schema([
    pa.field("model", pa.string(), nullable=False),  # bg_nbd | gamma_gamma
    pa.field("parameter", pa.string(), nullable=False),  # r, alpha (days), a, b | p, q, v
    pa.field("value", pa.float64()),  # null when the models could not be fitted
    pa.field("count_persons", pa.int64(), nullable=False),  # persons the model was fitted on
    # of the likelihood's Hessian at the fit: below 1e6 the maximum is clear (clv_model.MAX_HESSIAN_CONDITION)
    pa.field("hessian_condition", pa.float64()),
    pa.field("error", pa.string()),  # why the models could not be fitted; null when they were
])
MODELS = {"bg_nbd": BGNBD_PARAMETERS, "gamma_gamma": GAMMA_GAMMA_PARAMETERS}


def buyer_summaries(order_book: pd.DataFrame, order_history: pd.DataFrame, remap: PersonRemap,
                    day: dt.date, horizon_days: int = ORDER_BOOK_DAYS) -> pd.DataFrame:
    """One row per buyer at D (a person with an order non-refunded at D): x, t, T, monetary over all their
    non-refunded orders since CRM_START_DATE, persons as of the newest identity. Sorted by person_id.
    `horizon_days`: the order book's (the history holds its oldest day and everything before)."""
    newest_history_day = np.datetime64(day - dt.timedelta(days=horizon_days - 1), "D").astype(np.int64)
    recent = order_book.loc[day_numbers(order_book["order_day"]) > newest_history_day]  # the history has the rest
    parts = [order_days(recent.assign(person_id=remap(recent["person_id"]).to_numpy()))]
    if len(order_history):
        parts.insert(0, order_history.assign(person_id=remap(order_history["person_id"]).to_numpy()))
    persons = combine_order_days(*parts)
    x = persons["count_order_days"].to_numpy(dtype=np.int64) - 1
    repeat_revenue = (persons["net_revenue"] - persons["first_day_net_revenue"]).to_numpy(dtype=float)
    return pd.DataFrame({
        "person_id": persons["person_id"].astype("string"),
        "x": x,
        "t": (persons["last_order_date"] - persons["first_order_date"]).to_numpy(dtype=np.int64),
        "T": (np.datetime64(day, "D").astype(np.int64) - persons["first_order_date"]).to_numpy(dtype=np.int64),
        "monetary": np.divide(repeat_revenue, x, out=np.zeros(len(x)), where=x > 0),
    })


@dataclass(frozen=True)
class ClvFit:
    """The two fitted models, or why they could not be fitted."""

    bgnbd: Fit | None = None
    gamma_gamma: Fit | None = None
    error: str | None = None
    spend_excluded: int = 0  # repeat buyers whose mean spend is not positive: left out of the Gamma-Gamma fit

    def metadata(self) -> dict[str, object]:
        out: dict[str, object] = {"fit_error": self.error or "-",
                                  "gamma_gamma_excluded_non_positive_spend": self.spend_excluded}
        for name, fit, parameters in (("bg_nbd", self.bgnbd, BGNBD_PARAMETERS),
                                      ("gamma_gamma", self.gamma_gamma, GAMMA_GAMMA_PARAMETERS)):
            for parameter in parameters:
                value = None if fit is None or self.error else fit.params[parameter]
                out[f"{name}_{parameter}"] = dg.MetadataValue.float(value) if value is not None else "-"
            if fit is not None:
                out[f"{name}_iterations"] = fit.iterations
                out[f"{name}_mean_negative_log_likelihood"] = fit.neg_log_likelihood
                out[f"{name}_hessian_condition"] = dg.MetadataValue.float(fit.hessian_condition)
        return out


def predict_clv(summaries: pd.DataFrame) -> tuple[pd.DataFrame, ClvFit]:
    """(one row of CLV_PREDICTIONS_SCHEMA per buyer, the fit). When the data cannot support a fit (no buyer with
    x > 0, no convergence, a Gamma-Gamma q <= 1, predictions that are not finite) every prediction is null and
    the fit carries the error; nothing raises."""
    x, t, T, m = (summaries[c].to_numpy(dtype=float) for c in ("x", "t", "T", "monetary"))
    out = summaries.assign(**{c: np.nan for c in ("expected_purchases_12m", "p_alive", "expected_spend",
                                                  "expected_value_12m")})
    spend = (x > 0) & (m > 0)
    excluded = int(((x > 0) & ~spend).sum())
    bgnbd = gamma_gamma = None
    try:
        if not len(summaries):
            raise FitError("no buyers at D")
        bgnbd = clv_model.fit_bgnbd(x, t, T)
        gamma_gamma = clv_model.fit_gamma_gamma(x[spend], m[spend])
        purchases = clv_model.expected_purchases(bgnbd.params, HORIZON_DAYS, x, t, T)
        alive = clv_model.probability_alive(bgnbd.params, x, t, T)
        expected_spend = clv_model.expected_spend(gamma_gamma.params, x, m)
        predicted = np.column_stack([purchases, alive, expected_spend, purchases * expected_spend])
        if not np.isfinite(predicted).all():
            raise FitError(f"predictions are not finite for {int((~np.isfinite(predicted)).any(axis=1).sum())} "
                           "buyers")
    except (ValueError, ArithmeticError) as error:  # a FitError, or the optimiser's own refusal: never fail
        return out, ClvFit(bgnbd, gamma_gamma, f"{type(error).__name__}: {error}", excluded)
    out[["expected_purchases_12m", "p_alive", "expected_spend", "expected_value_12m"]] = predicted
    return out, ClvFit(bgnbd, gamma_gamma, None, excluded)


def model_table(fit: ClvFit) -> pd.DataFrame:
    """One row per model and parameter (CLV_MODEL_SCHEMA): values null and the error on every row when the
    models could not be fitted."""
    rows = []
    for name, parameters in MODELS.items():
        model = fit.bgnbd if name == "bg_nbd" else fit.gamma_gamma
        for parameter in parameters:
            fitted = model is not None and not fit.error
            rows.append({"model": name, "parameter": parameter, "value": model.params[parameter] if fitted else None,
                         "count_persons": model.persons if model is not None else 0,
                         "hessian_condition": model.hessian_condition if fitted else None, "error": fit.error})
    return pd.DataFrame(rows, columns=CLV_MODEL_SCHEMA.names).sort_values(CLV_MODEL_PK, ignore_index=True)


def clv_assets(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    kinds = {"python", "scipy", "parquet"}

    @dg.multi_asset(
        name="clv", partitions_def=partitions,
        outs={
            "clv_predictions": dg.AssetOut(
                key=CLV_PREDICTIONS_KEY, group_name=GROUP, owners=OWNERS, kinds=kinds,
                description="One row per buyer at the end of day D (a person with an order non-refunded at D): "
                            "the order-day summary x (repeat order days), t (first to last order day), T (first "
                            "order day to D) and monetary (mean net revenue of the repeat order days), and the "
                            f"predictions of the models in clv_model: expected purchases in the next {HORIZON_DAYS} "
                            "days (BG/NBD), P(alive), the Gamma-Gamma expected spend of an order day and their "
                            "product, the expected value. Null predictions: the models could not be fitted "
                            "(clv_model.error). Person ids only; persons follow the newest identity partition.",
                metadata={"dagster/column_schema": column_schema(CLV_PREDICTIONS_SCHEMA),
                          "primary_key": ["person_id"]}),
            "clv_model": dg.AssetOut(
                key=CLV_MODEL_KEY, group_name=GROUP, owners=OWNERS, kinds=kinds,
                description="One row per model (bg_nbd, gamma_gamma) and parameter: the BG/NBD (r, alpha in days, "
                            "a, b) and Gamma-Gamma (p, q, v) parameters fitted by maximum likelihood for day D on "
                            "every buyer (Gamma-Gamma: those with a repeat order day and a positive mean spend), as "
                            "the lifetimes package fits them, with the persons fitted on; null values and the "
                            "error when the data cannot support a fit.",
                metadata={"dagster/column_schema": column_schema(CLV_MODEL_SCHEMA), "primary_key": CLV_MODEL_PK}),
        },
        ins={"order_book": dg.AssetIn(key=ORDER_BOOK_KEY, metadata={
                 "columns": ["person_id", "order_day", "net_revenue", "fully_refunded"]}),
             "order_history": dg.AssetIn(key=ORDER_HISTORY_KEY)},
        # persons follow identity changes read straight from identity_merges (docs/outputs.md 2.2): lineage only
        deps=[dg.AssetDep(dg.AssetKey(list(IDENTITY_MERGES_PATH)))],
        check_specs=[
            checks.schema_spec(CLV_PREDICTIONS_KEY, partitions),
            checks.schema_spec(CLV_MODEL_KEY, partitions),
            dg.AssetCheckSpec("person_id_is_unique", asset=CLV_PREDICTIONS_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(["person_id"])),
            dg.AssetCheckSpec(checks.primary_key_check_name(CLV_MODEL_PK), asset=CLV_MODEL_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(CLV_MODEL_PK)),
            dg.AssetCheckSpec("models_are_fitted", asset=CLV_MODEL_KEY, partitions_def=partitions,
                              description="warns when the data cannot support a fit (the predictions are then "
                                          "null, and so are the values of kpi/clv_predictive)"),
            dg.AssetCheckSpec("likelihood_has_a_clear_maximum", asset=CLV_MODEL_KEY, partitions_def=partitions,
                              description="warns when a fit converged on a ridge the data cannot pin down (the "
                                          "Hessian's condition number is 1e6 or more, e.g. with a few days of "
                                          "data): its parameters and predictions are not to be trusted")],
    )
    def clv(context: dg.AssetExecutionContext, settings: PipelineSettingsResource, order_book: pd.DataFrame,
            order_history: pd.DataFrame):
        day = partition_day(context)
        remap = PersonRemap.load(settings.get(), day, 1)  # both states hold persons as of D
        summaries = buyer_summaries(order_book, order_history, remap, day)
        predictions, fit = predict_clv(summaries)
        if fit.error:
            context.log.warning(f"clv: the models could not be fitted for {day}, predictions are null: {fit.error}")
        model = model_table(fit)
        yield from checks.written(CLV_PREDICTIONS_KEY, predictions, CLV_PREDICTIONS_SCHEMA,
                                  output_name="clv_predictions", metadata={
                                      "buyers": len(predictions), "repeat_buyers": int((predictions["x"] > 0).sum()),
                                      "identity_changes_through": remap.newest_identity_day or "-",
                                      "fit_error": fit.error or "-"})
        yield from checks.written(CLV_MODEL_KEY, model, CLV_MODEL_SCHEMA, output_name="clv_model",
                                  metadata=fit.metadata())
        yield checks.primary_key_is_unique(CLV_PREDICTIONS_KEY, predictions, ["person_id"])
        yield checks.primary_key_is_unique(CLV_MODEL_KEY, model, CLV_MODEL_PK)
        yield checks.models_are_fitted(CLV_MODEL_KEY, model)
        yield checks.likelihood_has_a_clear_maximum(CLV_MODEL_KEY, model, clv_model.MAX_HESSIAN_CONDITION)

    return clv


# ---------------------------------------------------------------------------------------------------------------
# the KPI

METRICS = (("expected_value_12m", "currency"), ("expected_purchases_12m", "count"), ("p_alive", "ratio"))


def clv_predictive(clv_predictions: pd.DataFrame, clv_model: pd.DataFrame) -> KpiOutput:
    """Means over the buyers at D of their predictions; null values (numerator null, denominator = buyers) when
    the models could not be fitted. The fitted parameters and any error go to the metadata."""
    buyers = float(len(clv_predictions))
    errors = clv_model["error"].dropna()
    fitted = errors.empty and len(clv_model) > 0 and bool(clv_model["value"].notna().all())
    rows = [quotient(float(clv_predictions[metric].astype(float).sum()) if fitted or not buyers else None, buyers,
                     unit, metric=metric) for metric, unit in METRICS]
    params = {f"{row.model}_{row.parameter}": dg.MetadataValue.float(float(row.value)) if pd.notna(row.value)
              else "-" for row in clv_model.itertuples()}
    condition = clv_model["hessian_condition"].astype(float)
    return KpiOutput(rows, {**params, "fit_error": str(errors.iloc[0]) if len(errors) else "-",
                            "clear_maximum": bool(fitted and (condition < MAX_HESSIAN_CONDITION).all())})


KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        name="clv_predictive", family="Monetise", seed="001",
        description="One row per metric (expected_value_12m, expected_purchases_12m, p_alive): the mean over every "
                    "buyer at the end of D of the BG/NBD + Gamma-Gamma predictions in clv_predictions (expected "
                    f"value and purchases over the next {HORIZON_DAYS} days, probability of being alive).",
        formula="BG/NBD and Gamma-Gamma fitted by maximum likelihood as lifetimes does (penalizer 0, default start "
                "and tolerance) on day-grain summaries (x = order days - 1, t = last - first order day, T = D - "
                "first order day, monetary = mean net revenue of the repeat order days); Gamma-Gamma on persons "
                "with x > 0 and monetary > 0. Per person: expected purchases in the next 365 d, P(alive), expected "
                "value = expected purchases x Gamma-Gamma conditional expected spend. value = sum over buyers / "
                "buyers",
        window="all (every order since CRM_START_DATE)",
        population="every buyer at D (a person with an order non-refunded at D) and their orders non-refunded "
                   "at D", unit="currency, count, ratio",
        dimensions=(Dimension("metric", tuple(m for m, _ in METRICS)),), headline={"metric": "expected_value_12m"},
        inputs=(KpiInput("clv_predictions", tuple(CLV_PREDICTIONS_KEY.path)),
                KpiInput("clv_model", tuple(CLV_MODEL_KEY.path))),
        lineage={"numerator": ("clv_predictions.expected_value_12m", "clv_predictions.expected_purchases_12m",
                               "clv_predictions.p_alive", "clv_model.value"),
                 "denominator": ("clv_predictions.person_id",)},
        compute=clv_predictive, window_days=366,  # "ever" rules are complete from CRM_START_DATE + 365 d
        exclusions=f"orders fully refunded at D; a refund dated {ORDER_BOOK_DAYS} or more days after its order's "
                   "day is not applied (the order book no longer holds the order); when the models cannot be fitted (no "
                   "buyer with x > 0, no convergence, Gamma-Gamma q <= 1) every value is null and the error is "
                   "in the metadata"),
)
