"""The BG/NBD ("buy till you die") model of Fader, Hardie & Lee (2005), "Counting Your Customers the
Easy Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2). Plain numpy/scipy.

While alive, a customer buys at Poisson rate lambda ~ Gamma(r, alpha) (shape r, rate alpha);
right after each purchase they drop out for good with probability p ~ Beta(a, b). A customer is
summarised by x (repeat purchases in (0, T]), t_x (time of the last of them; 0 if x = 0) and T
(time observed). ``fit`` maximises the likelihood of eq. 6 of the paper, ``p_alive`` is their
P(alive at T | x, t_x, T) and ``p_no_purchase`` the probability of no purchase in (T, T + horizon].

Times are in whatever unit x, t_x, T and the horizon share (days in lakecart).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np


@dataclass(frozen=True)
class Params:
    """Gamma(r, alpha) purchase rates while alive, Beta(a, b) dropout probabilities after a purchase."""

    r: float
    alpha: float
    a: float
    b: float


def _arrays(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype="float64") for v in (x, t_x, T)))
    if (x < 0).any() or (t_x < 0).any() or (t_x > T).any():
        raise ValueError("BG/NBD needs x >= 0 and 0 <= t_x <= T")
    return x, t_x, T


def log_likelihood_terms(params: Params, x, t_x, T) -> np.ndarray:
    """Each customer's log-likelihood, eq. 6 of the paper:

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))
    """
    from scipy.special import betaln, gammaln

    r, alpha, a, b = astuple(params)
    x, t_x, T = _arrays(x, t_x, T)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    # b + x - 1 > 0 whenever x >= 1; the x = 0 rows get a placeholder that is masked out below.
    dropped = betaln(a + 1, np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x)
    return common + np.where(repeat, np.logaddexp(alive, dropped), alive)


def log_likelihood(params: Params, x, t_x, T, weights=None) -> float:
    """The sample's log-likelihood (``weights``: how many customers each row stands for)."""
    terms = log_likelihood_terms(params, x, t_x, T)
    return float(np.sum(terms if weights is None else terms * np.asarray(weights, dtype="float64")))


def fit(x, t_x, T, start: Params = Params(1.0, 1.0, 1.0, 1.0)) -> Params:
    """Maximum-likelihood (r, alpha, a, b), optimised over their logarithms (L-BFGS-B).

    Customers with the same (x, t_x, T) are pooled first, so integer-valued day counts fit in
    about the same time for thousands or millions of rows. Repeat purchases need t_x > 0.
    """
    from scipy.optimize import minimize

    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("BG/NBD needs at least one customer to fit")
    if ((x > 0) & (t_x <= 0)).any():
        # Repeat purchases all at time 0: the likelihood grows without bound as alpha -> 0.
        raise ValueError("BG/NBD cannot fit customers with repeat purchases at t_x = 0")
    rows, weights = np.unique(np.stack([x.ravel(), t_x.ravel(), T.ravel()], axis=1), axis=0, return_counts=True)
    x, t_x, T = rows.T
    n = weights.sum()

    def loss(log_params: np.ndarray) -> float:
        value = -log_likelihood(Params(*np.exp(log_params)), x, t_x, T, weights) / n
        return value if np.isfinite(value) else 1e10

    # Bounded log-parameters: a sample with no repeat purchases at all would otherwise drift to 0 or infinity.
    result = minimize(
        loss, np.log(astuple(start)), method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4, options={"maxiter": 2000}
    )
    return Params(*(float(v) for v in np.exp(result.x)))


def p_alive(params: Params, x, t_x, T) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), the paper's
    P(alive) (as written in Fader, Hardie & Lee's note "Computing P(alive) Using the BG/NBD Model").
    Exactly 1 without repeat purchases: dropout only ever follows a purchase."""
    from scipy.special import expit

    r, alpha, a, b = astuple(params)
    x, t_x, T = _arrays(x, t_x, T)
    repeat = x > 0
    log_odds_dead = (
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def p_no_purchase(params: Params, x, t_x, T, horizon: float) -> np.ndarray:
    """P(no purchase in (T, T + horizon] | x, t_x, T) = (1 - P(alive)) + P(alive) ((alpha+T)/(alpha+T+horizon))^(r+x).

    A customer can only drop out right after a purchase, so one who is alive at T makes no purchase
    in the horizon exactly when the next Poisson arrival comes after it: probability exp(-lambda h),
    averaged over the posterior of lambda given alive, Gamma(r + x, alpha + T).
    """
    r, alpha, _, _ = astuple(params)
    x, t_x, T = _arrays(x, t_x, T)
    alive = p_alive(params, x, t_x, T)
    return (1.0 - alive) + alive * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
