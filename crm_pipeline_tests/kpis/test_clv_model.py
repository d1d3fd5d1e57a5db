"""The BG/NBD and Gamma-Gamma models: likelihoods and predictions against values worked out by hand, the fits
against the published CDNOW parameters (the sample the `lifetimes` package ships), and fits the data cannot
support."""

import importlib.metadata
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from crm_pipeline.kpis import clv_model
from crm_pipeline.kpis.clv_model import FitError


def lifetimes_dataset(name: str) -> pd.DataFrame:
    """A CSV of the datasets the `lifetimes` package ships (a dev dependency), read without importing the
    package (its import changes the warning filters of the whole session)."""
    path = importlib.metadata.distribution("lifetimes").locate_file(f"lifetimes/datasets/{name}")
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """2357 CDNOW customers (weeks): x = frequency, t = recency, T, and the mean spend of repeat purchases."""
    summary = lifetimes_dataset("cdnow_customers_summary_with_transactions.csv")
    return summary.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary"})


# ---------------------------------------------------------------------------------------------------------------
# by hand

def test_bgnbd_log_likelihood_by_hand():
    ones = {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0}
    ll = clv_model.bgnbd_log_likelihood(ones, np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    # x = 0, T = 1: (alpha / (alpha + T))^r = 1/2
    # x = 1, t = 1, T = 2: B(a, b+x)/B(a, b) Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
    #                      + B(a+1, b+x-1)/B(a, b) Γ(r+x) α^r / (Γ(r) (α+t)^(r+x)) = 1/2 * 1/9 + 1/2 * 1/4 = 13/72
    assert ll == pytest.approx([math.log(1 / 2), math.log(13 / 72)], rel=1e-12)


def test_gamma_gamma_log_likelihood_by_hand():
    ones = {"p": 1.0, "q": 1.0, "v": 1.0}
    ll = clv_model.gamma_gamma_log_likelihood(ones, np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    # m | ν ~ Gamma(px, νx), ν ~ Gamma(q, v). x = 1: f(m) = ∫ ν e^(-νm) e^(-ν) dν = 1 / (1 + m)^2 = 1/4 at m = 1;
    # x = 2: f(m) = ∫ (2ν)^2 m e^(-2νm) e^(-ν) dν = 8m / (2m + 1)^3 = 8/27 at m = 1
    assert ll == pytest.approx([math.log(1 / 4), math.log(8 / 27)], rel=1e-12)


def test_predictions_by_hand():
    params = {"r": 1.0, "alpha": 1.0, "a": 2.0, "b": 1.0}
    x, t, T = np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.0, 2.0])
    got = clv_model.expected_purchases(params, 1.0, x, t, T)
    # x = 0, T = 0: (a+b-1)/(a-1) [1 - (α/(α+h))^r 2F1(r, b; a+b-1; h/(α+h))], 2F1(1, 1; 2; z) = -ln(1-z)/z
    new_buyer = 2 * (1 - 0.5 * 2 * math.log(2))
    # x = 1, t = 1, T = 2: (a+b+x-1)/(a-1) [1 - 2F1(2, 2; 3; z) ((α+T)/(α+T+h))^(r+x)] P(alive), z = h/(α+T+h)
    # = 1/4; Euler: 2F1(2, 2; 3; z) = (1-z)^-1 2F1(1, 1; 3; z), 2F1(1, 1; 3; z) = 2 Σ z^n / ((n+1)(n+2))
    z = 0.25
    f113 = 2 * (-math.log(1 - z) / z + (math.log(1 - z) + z) / z**2)
    alive = 1 / (1 + 2 / 1 * (3 / 2) ** 2)  # 1 / (1 + a/(b+x-1) ((α+T)/(α+t))^(r+x)) = 2/11
    repeat_buyer = 3 * (1 - f113 / (1 - z) * (3 / 4) ** 2) * alive
    assert got == pytest.approx([new_buyer, repeat_buyer], rel=1e-12)
    assert clv_model.probability_alive(params, x, t, T) == pytest.approx([1.0, 2 / 11], rel=1e-12)
    # Gamma-Gamma: own weight px/(px+q-1) = 1/2 of m = 5, the rest on the population mean vp/(q-1) = 3
    spend = clv_model.expected_spend({"p": 1.0, "q": 2.0, "v": 3.0}, np.array([1.0, 0.0]), np.array([5.0, 0.0]))
    assert spend == pytest.approx([4.0, 3.0], rel=1e-12)


def test_the_gradients_are_those_of_the_likelihoods(cdnow):
    x, t, T = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    for point in ([0.1, 0.1, 0.1, 0.1], [-1.4, 1.5, -0.2, 0.9]):
        error = check_grad(lambda p: clv_model._bgnbd(p, x, t, T)[0].mean(),
                           lambda p: clv_model._bgnbd(p, x, t, T)[1].mean(axis=1), np.array(point))
        assert error < 1e-5
    repeat = cdnow.loc[cdnow["frequency"] > 0]
    x, m = repeat["frequency"].to_numpy(dtype=float), repeat["monetary"].to_numpy(dtype=float)
    for point in ([0.1, 0.1, 0.1], [1.8, 1.3, 2.7]):
        error = check_grad(lambda p: clv_model._gamma_gamma(p, x, m)[0].mean(),
                           lambda p: clv_model._gamma_gamma(p, x, m)[1].mean(axis=1), np.array(point))
        assert error < 1e-5


# ---------------------------------------------------------------------------------------------------------------
# CDNOW: Fader, Hardie & Lee (2005) and Fader & Hardie (note 025)

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
# what lifetimes 0.11.3 fits on the same files (BetaGeoFitter(), GammaGammaFitter(), defaults)
LIFETIMES_BGNBD = {"r": 0.24259292827982182, "alpha": 4.413532265271819, "a": 0.7928859664406882,
                   "b": 2.42575238262586}
LIFETIMES_GAMMA_GAMMA = {"p": 6.248802496075312, "q": 3.744588460923114, "v": 15.44774806492914}


def test_bgnbd_fits_the_published_cdnow_parameters(cdnow):
    fit = clv_model.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert fit.persons == 2357 and fit.start == clv_model.DEFAULT_START
    assert fit.params == pytest.approx(PUBLISHED_BGNBD, rel=0.01)
    assert fit.params == pytest.approx(LIFETIMES_BGNBD, rel=1e-6)
    # the customer of the paper's example (x = 2, t = 30.43, T = 38.86): 1.226 purchases in the next 39 weeks
    assert clv_model.expected_purchases(fit.params, 39, [2], [30.43], [38.86]) == pytest.approx(1.226, abs=5e-4)


def test_gamma_gamma_fits_the_published_cdnow_parameters(cdnow):
    repeat = cdnow.loc[cdnow["frequency"] > 0]
    fit = clv_model.fit_gamma_gamma(repeat["frequency"], repeat["monetary"])
    assert fit.persons == 946
    assert fit.params == pytest.approx(PUBLISHED_GAMMA_GAMMA, rel=0.01)
    assert fit.params == pytest.approx(LIFETIMES_GAMMA_GAMMA, rel=1e-6)
    # Hardie's spreadsheet (note 025): the expected spend of the first ten customers at the fitted parameters
    first = cdnow.head(10)
    spend = clv_model.expected_spend(fit.params, first["frequency"], first["monetary"])
    assert spend == pytest.approx([24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17], abs=0.01)


def test_a_fit_is_deterministic(cdnow):
    one = clv_model.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    shuffled = cdnow.sample(frac=1.0, random_state=3)
    two = clv_model.fit_bgnbd(shuffled["frequency"], shuffled["recency"], shuffled["T"])
    assert one == two  # the same persons in another order: bit for bit the same fit


def test_when_the_default_start_fails_the_best_converged_start_wins(cdnow, monkeypatch):
    real = clv_model.minimize
    starts = []

    def default_start_fails(fun, x0, **kwargs):
        starts.append(float(x0[0]))
        out = real(fun, x0, **kwargs)
        if x0[0] == clv_model.DEFAULT_START:
            out.success, out.message = False, "made to fail"
        return out

    monkeypatch.setattr(clv_model, "minimize", default_start_fails)
    fit = clv_model.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert starts == [clv_model.DEFAULT_START, *clv_model.ALTERNATIVE_STARTS]  # every other start was tried
    assert fit.start != clv_model.DEFAULT_START
    assert fit.params == pytest.approx(LIFETIMES_BGNBD, rel=1e-4)  # the same maximum from elsewhere


# ---------------------------------------------------------------------------------------------------------------
# data that cannot support a fit: a FitError that says why, never another exception

@pytest.mark.parametrize(("x", "t", "T", "why"), [
    ([0, 0, 0], [0, 0, 0], [5, 3, 0], "no buyer has a repeat order day"),  # nobody came back
    ([], [], [], "no buyer has a repeat order day"),
    ([1, 0], [12, 0], [10, 4], "inconsistent summaries"),  # t > T
])
def test_bgnbd_refuses_data_without_a_maximum(x, t, T, why):
    with pytest.raises(FitError, match=why):
        clv_model.fit_bgnbd(x, t, T)


@pytest.mark.parametrize(("x", "t", "T"), [
    ([2], [10], [30]),  # one buyer
    ([1] * 50, [5] * 50, [10] * 50),  # identical histories
])
def test_bgnbd_never_presents_a_ridge_as_a_maximum(x, t, T):
    """The likelihood has no maximum here: depending on the optimiser's release, BFGS either fails from every
    start (FitError) or stops far out on the ridge; then the fit says it has no clear maximum."""
    try:
        fit = clv_model.fit_bgnbd(x, t, T)
    except FitError as error:
        assert "did not converge" in str(error)
    else:
        assert not fit.clear_maximum and fit.hessian_condition >= clv_model.MAX_HESSIAN_CONDITION


@pytest.mark.parametrize(("x", "m", "why"), [
    ([], [], "no repeat buyer"),
    ([2], [10.0], "did not converge"),  # one repeat buyer
    ([1] * 50, [10.0] * 50, "did not converge"),  # everyone spends the same
    ([1] * 6, [1.0, 10.0, 100.0, 1e3, 1e4, 1e5], "q = 0.18.* <= 1"),  # spend so spread that its mean is infinite
    ([1, 2], [10.0, 0.0], "positive"),  # a mean spend of 0 has no likelihood
])
def test_gamma_gamma_refuses_data_without_a_meaningful_maximum(x, m, why):
    with pytest.raises(FitError, match=why):
        clv_model.fit_gamma_gamma(x, m)


# (x, t, T, buyers): the buyers of the sixth day of a small generated world; nobody can be seen to drop out yet
SIX_DAYS = [(0, 0, 0, 118), (0, 0, 1, 128), (0, 0, 2, 104), (0, 0, 3, 110), (0, 0, 4, 104), (0, 0, 5, 109),
            (1, 1, 1, 5), (1, 1, 2, 5), (1, 1, 4, 5), (1, 1, 5, 3), (1, 2, 2, 3), (1, 2, 3, 5), (1, 2, 4, 4),
            (1, 2, 5, 3), (1, 3, 3, 2), (1, 3, 4, 9), (1, 3, 5, 4), (1, 4, 4, 6), (1, 4, 5, 8), (1, 5, 5, 4),
            (2, 2, 2, 1), (2, 2, 3, 4), (2, 2, 4, 3), (2, 2, 5, 2), (2, 3, 3, 8), (2, 3, 4, 1), (2, 3, 5, 3),
            (2, 4, 4, 8), (2, 4, 5, 4), (2, 5, 5, 7), (3, 3, 4, 1), (3, 3, 5, 3), (3, 4, 4, 4), (3, 4, 5, 3),
            (3, 5, 5, 3), (4, 4, 4, 3), (5, 5, 5, 1)]


def test_a_fit_says_whether_its_likelihood_has_a_clear_maximum(cdnow):
    fit = clv_model.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert fit.clear_maximum and 10 < fit.hessian_condition < 1e3
    repeat = cdnow.loc[cdnow["frequency"] > 0]
    assert clv_model.fit_gamma_gamma(repeat["frequency"], repeat["monetary"]).clear_maximum
    # six days of data: BFGS converges (from another start) on a ridge towards a -> 0, b -> infinity
    x, t, T, n = (np.array(c) for c in zip(*SIX_DAYS, strict=True))
    ridge = clv_model.fit_bgnbd(np.repeat(x, n), np.repeat(t, n), np.repeat(T, n))
    assert ridge.persons == 798 and ridge.params["a"] < 1e-4 and ridge.params["b"] > 1e3
    assert not ridge.clear_maximum and ridge.hessian_condition > 1e8
