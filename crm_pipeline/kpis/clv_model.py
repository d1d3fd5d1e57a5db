"""Predictive customer lifetime value: the BG/NBD model of purchases and the Gamma-Gamma model of spend.

Both are fitted by maximum likelihood the way the `lifetimes` package does it (BetaGeoFitter,
GammaGammaFitter; Fader, Hardie & Lee 2005, Fader & Hardie 2013): the parameters are optimised on the log
scale, the objective is the mean negative log-likelihood (no penalizer), scipy's `minimize` with its default
method for an unbounded problem with a gradient (BFGS), every log-parameter starting at 0.1 and a tolerance of
1e-7; BG/NBD times are scaled so that the longest T is 1 while fitting. The gradient is written out by hand
(lifetimes differentiates automatically), so the optimiser takes the same path.

Robust starts: when the default start does not converge, the fit is retried from the other starts of
`ALTERNATIVE_STARTS` and the converged one with the best likelihood wins; when none converges a `FitError`
says why. A converged fit also says whether the likelihood has a clear maximum there (`Fit.clear_maximum`, from
the Hessian): with a few days of data BFGS may "converge" on a ridge towards a boundary, and lifetimes would
report those parameters without a word. Everything is vectorised over persons (scipy.special), and deterministic: the same summaries give
the same bytes.

Notation (per person, at day grain): x = repeat order days, t = days from the first to the last order day
(recency, t_x), T = days from the first order day to the end of the period (age), m = mean spend of the repeat
order days.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

BGNBD_PARAMETERS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")
DEFAULT_START = 0.1  # lifetimes starts every log-parameter at 0.1
TOLERANCE = 1e-7  # lifetimes' default `tol`
# tried in this order when the default start fails; all on the log scale (0 = a parameter of 1)
ALTERNATIVE_STARTS = (0.0, -1.0, 1.0, -2.0, 2.0)
# a maximum is clear when the Hessian of the mean negative log-likelihood (log-parameters) is positive definite
# with a condition number below this: well-identified fits (CDNOW, a simulated 200k-buyer base) are at 1e2-1e3,
# a ridge towards a boundary (a few days of data: a -> 0, b -> infinity, nobody seen to drop out) at 1e9 and more
MAX_HESSIAN_CONDITION = 1e6


class FitError(ValueError):
    """The data cannot support a fit (no repeat buyers, no convergence, parameters without a meaning)."""


@dataclass(frozen=True)
class Fit:
    """A fitted model: its parameters (natural scale), the mean negative log-likelihood at them, the optimiser's
    iterations and the start (log-parameter) that converged."""

    params: dict[str, float]
    neg_log_likelihood: float
    iterations: int
    start: float
    persons: int
    hessian_condition: float  # of the mean negative log-likelihood at the optimum (inf: not positive definite)

    @property
    def clear_maximum(self) -> bool:
        """Whether the likelihood has a clear maximum there, where implementations agree (docs/kpi_catalog.md): else the
        parameters sit on a ridge the data cannot pin down, and so do the predictions."""
        return self.hessian_condition < MAX_HESSIAN_CONDITION


# ---------------------------------------------------------------------------------------------------------------
# BG/NBD

def bgnbd_log_likelihood(params: dict[str, float], x: np.ndarray, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Each person's BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6, in lifetimes' stable form)."""
    return _bgnbd(np.log([params[k] for k in BGNBD_PARAMETERS]), x, t, T, gradient=False)[0]


def _bgnbd(log_params: np.ndarray, x: np.ndarray, t: np.ndarray, T: np.ndarray,
           gradient: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-person log-likelihood and, optionally, its gradient with respect to the log-parameters (4 x n)."""
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    b_x = b + np.maximum(x, 1) - 1
    a4 = np.log(a) - np.log(b_x) - (r + x) * np.log(t + alpha)
    top = np.maximum(a3, a4)
    # log(exp(a3) + [x > 0] exp(a4)), the larger term factored out (lifetimes' form)
    tail = np.log(np.exp(a3 - top) + np.exp(a4 - top) * repeat) + top
    ll = a1 + a2 + tail
    if not gradient:
        return ll, None
    s3 = np.exp(a3 - tail)  # the two terms' shares of the sum
    s4 = np.exp(a4 - tail) * repeat
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - s3 * np.log(alpha + T) - s4 * np.log(alpha + t)
    d_alpha = r / alpha - s3 * (r + x) / (alpha + T) - s4 * (r + x) / (alpha + t)
    d_a = digamma(a + b) - digamma(a + b + x) + s4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - s4 / b_x
    # d/d(log p) = p d/dp
    return ll, np.vstack([r * d_r, alpha * d_alpha, a * d_a, b * d_b])


def fit_bgnbd(x: np.ndarray, t: np.ndarray, T: np.ndarray) -> Fit:
    """BG/NBD parameters (r, alpha in the units of t and T, a, b) by maximum likelihood, as BetaGeoFitter."""
    x, t, T = (np.asarray(v, dtype=float) for v in (x, t, T))
    if len(x) == 0 or not (x > 0).any():
        raise FitError("no buyer has a repeat order day (x > 0): BG/NBD cannot be fitted")
    if (t > T).any() or (t < 0).any() or ((x == 0) & (t != 0)).any() or (x != np.floor(x)).any():
        raise FitError("inconsistent summaries: need 0 <= t <= T, t = 0 when x = 0, and a whole x")
    scale = 1.0 / T.max()  # lifetimes fits on times scaled to a longest T of 1
    patterns, weights = _patterns(x, t * scale, T * scale)

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = _bgnbd(log_params, *patterns)
        return _mean_negative(ll, grad, weights)

    fit = _minimise(objective, len(BGNBD_PARAMETERS), "BG/NBD")
    params = dict(zip(BGNBD_PARAMETERS, np.exp(fit.x), strict=True))
    params["alpha"] /= scale  # back to the units of t and T
    return Fit({k: float(v) for k, v in params.items()}, float(fit.fun), int(fit.nit), fit.start, len(x),
               fit.condition)


def expected_purchases(params: dict[str, float], horizon: float, x: np.ndarray, t: np.ndarray,
                       T: np.ndarray) -> np.ndarray:
    """Expected repeat purchases in the next `horizon` time units given (x, t, T): Fader, Hardie & Lee 2005,
    eq. 10, as lifetimes' `conditional_expected_number_of_purchases_up_to_time`. The equation's denominator is
    1 / P(alive), taken from `probability_alive` so that it never overflows."""
    r, alpha, a, b = (params[k] for k in BGNBD_PARAMETERS)
    x, t, T = (np.asarray(v, dtype=float) for v in (x, t, T))
    big_a, big_b, big_c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + T + horizon)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ln_hyp = np.log(hyp2f1(big_a, big_b, big_c, z))
        # where 2F1 overflows, Euler's transformation of it (lifetimes does the same)
        ln_alt = np.log(hyp2f1(big_c - big_a, big_c - big_b, big_c, z)) + (big_c - big_a - big_b) * np.log1p(-z)
        ln_hyp = np.where(np.isinf(ln_hyp), ln_alt, ln_hyp)
        first = (a + b + x - 1) / (a - 1)
        second = 1 - np.exp(ln_hyp + (r + x) * np.log((alpha + T) / (alpha + horizon + T)))
    return first * second * probability_alive(params, x, t, T)


def probability_alive(params: dict[str, float], x: np.ndarray, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive | x, t, T) (Fader, Hardie & Lee 2008, note 021): 1 for persons without a repeat order day."""
    r, alpha, a, b = (params[k] for k in BGNBD_PARAMETERS)
    x, t, T = (np.asarray(v, dtype=float) for v in (x, t, T))
    log_odds_dead = (r + x) * np.log((alpha + T) / (alpha + t)) + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x == 0, 1.0, expit(-log_odds_dead))


# ---------------------------------------------------------------------------------------------------------------
# Gamma-Gamma

def gamma_gamma_log_likelihood(params: dict[str, float], x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Each repeat buyer's Gamma-Gamma log-likelihood of their mean spend (Fader & Hardie, note 025, eq. 1a)."""
    return _gamma_gamma(np.log([params[k] for k in GAMMA_GAMMA_PARAMETERS]), x, m, gradient=False)[0]


def _gamma_gamma(log_params: np.ndarray, x: np.ndarray, m: np.ndarray,
                 gradient: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    p, q, v = np.exp(log_params)
    px = p * x
    log_xm_v = np.log(x * m + v)
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x)
          - (px + q) * log_xm_v)
    if not gradient:
        return ll, None
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_xm_v)
    d_q = digamma(px + q) - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (px + q) / (x * m + v)
    return ll, np.vstack([p * d_p, q * d_q, v * d_v])


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> Fit:
    """Gamma-Gamma parameters (p, q, v) by maximum likelihood on repeat buyers (x > 0) with a positive mean
    spend, as GammaGammaFitter. A fit with q <= 1 is refused: the population mean spend p v / (q - 1) is then
    undefined and every expected value would be meaningless."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    if len(x) == 0:
        raise FitError("no repeat buyer with a positive mean spend: Gamma-Gamma cannot be fitted")
    if not ((x > 0) & (m > 0) & np.isfinite(m)).all():
        raise FitError("Gamma-Gamma needs x > 0 and a positive, finite mean spend for every person it fits")
    patterns, weights = _patterns(x, m)

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = _gamma_gamma(log_params, *patterns)
        return _mean_negative(ll, grad, weights)

    fit = _minimise(objective, len(GAMMA_GAMMA_PARAMETERS), "Gamma-Gamma")
    params = {k: float(v) for k, v in zip(GAMMA_GAMMA_PARAMETERS, np.exp(fit.x), strict=True)}
    if params["q"] <= 1:
        raise FitError(f"Gamma-Gamma fitted q = {params['q']:.4g} <= 1: the mean spend p v / (q - 1) is undefined")
    return Fit(params, float(fit.fun), int(fit.nit), fit.start, len(x), fit.condition)


def expected_spend(params: dict[str, float], x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The conditional expected mean spend of a person's future order days (note 025, eq. 5): a weighted mean
    of their own mean spend and the population mean; the population mean for persons without repeat days."""
    p, q, v = (params[k] for k in GAMMA_GAMMA_PARAMETERS)
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    own = p * x / (p * x + q - 1)
    return (1 - own) * (v * p / (q - 1)) + own * m


# ---------------------------------------------------------------------------------------------------------------
# fitting

def _patterns(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The distinct rows of the columns and how many persons share each: persons with the same summary
    contribute the same likelihood, so the objective is evaluated once per pattern (lifetimes' `weights`)."""
    rows = np.column_stack(columns)
    rows = rows[np.lexsort(rows.T[::-1])]  # sorted by the first column, then the next (np.unique(axis=0) is slower)
    starts = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]).any(axis=1)])
    counts = np.diff(np.r_[starts, len(rows)])
    return tuple(rows[starts].T), counts.astype(float)


def _mean_negative(ll: np.ndarray, grad: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    total = weights.sum()
    return -float(weights @ ll) / total, -(grad @ weights) / total


@dataclass(frozen=True)
class _Result:
    x: np.ndarray
    fun: float
    nit: int
    start: float
    condition: float = np.inf


def _hessian_condition(objective: Callable[[np.ndarray], tuple[float, np.ndarray]], at: np.ndarray,
                       step: float = 1e-4) -> float:
    """The condition number of the Hessian at `at` (central differences of the exact gradient); inf when it is
    not positive definite."""
    columns = []
    for i in range(len(at)):
        shift = np.zeros(len(at))
        shift[i] = step
        columns.append((objective(at + shift)[1] - objective(at - shift)[1]) / (2 * step))
    hessian = np.column_stack(columns)
    with np.errstate(all="ignore"):
        eigenvalues = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    if not np.isfinite(eigenvalues).all() or eigenvalues.min() <= 0:
        return float("inf")
    return float(eigenvalues.max() / eigenvalues.min())


def _minimise(objective: Callable[[np.ndarray], tuple[float, np.ndarray]], size: int, model: str) -> _Result:
    """BFGS from the default start; when it does not converge to a finite optimum, from every alternative
    start, keeping the best converged one."""
    failures = []
    found: list[_Result] = []
    for i, start in enumerate((DEFAULT_START, *ALTERNATIVE_STARTS)):
        with np.errstate(all="ignore"):  # the line search may step where the likelihood is not finite
            out = minimize(objective, x0=np.full(size, start), jac=True, method=None, tol=TOLERANCE,
                           options={"disp": False})
        if out.success and np.isfinite(out.fun) and np.isfinite(out.x).all() and np.isfinite(np.exp(out.x)).all():
            found.append(_Result(out.x, float(out.fun), int(out.nit), start))
            if i == 0:
                break  # the default start converged: lifetimes' answer
        else:
            failures.append(f"start {start}: {out.message}")
    if not found:
        raise FitError(f"{model} did not converge from any start ({'; '.join(failures)})")
    best = min(found, key=lambda r: r.fun)
    with np.errstate(all="ignore"):
        return dataclasses.replace(best, condition=_hessian_condition(objective, best.x))
