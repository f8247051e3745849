"""BG/NBD (Fader, Hardie & Lee 2005): hand-computed probabilities and likelihoods, and parameter
recovery from customers simulated with the model's own story."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lakecart.training import bgnbd
from lakecart.training.bgnbd import Params
from lakecart.training.tasks.churn import bgnbd_summary

HAND = Params(r=1.0, alpha=2.0, a=1.0, b=2.0)
TRUE = Params(r=0.5, alpha=5.0, a=0.8, b=3.0)
T, HORIZON, CUSTOMERS = 90.0, 30.0, 3000


def test_p_alive_is_one_without_repeat_purchases_and_falls_with_recency():
    assert bgnbd.p_alive(HAND, [0, 0], [0, 5], [10, 10]).tolist() == [1.0, 1.0]
    # x = 2, T = 10: 1 / (1 + a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)) = 1 / (1 + 1/3 * (12/(2+t_x))^3)
    #   t_x = 8: 1 / (1 + 1.728/3) = 1 / 1.576 = 125/197
    #   t_x = 3: 1 / (1 + 13.824/3) = 1 / 5.608 = 125/701
    recent, earlier = bgnbd.p_alive(HAND, 2, [8.0, 3.0], 10.0)
    assert recent == pytest.approx(125 / 197, rel=1e-12)
    assert earlier == pytest.approx(125 / 701, rel=1e-12)
    alive = bgnbd.p_alive(HAND, 2, np.arange(11.0), 10.0)
    assert (np.diff(alive) > 0).all()  # the longer since the last purchase (smaller t_x), the less alive


def test_p_no_purchase_by_hand():
    # x = 2, t_x = 8, T = 10, horizon 6: P(alive) = 125/197 (above) and, if alive,
    # ((alpha+T)/(alpha+T+h))^(r+x) = (12/18)^3 = 8/27, so 72/197 + 125/197 * 8/27 = 2944/5319.
    assert bgnbd.p_no_purchase(HAND, 2, 8, 10, 6) == pytest.approx(2944 / 5319, rel=1e-12)
    # No repeat purchase: alive for sure, and E[exp(-6 lambda)] with lambda ~ Gamma(1, 12) is 12/18.
    assert bgnbd.p_no_purchase(HAND, 0, 0, 10, 6) == pytest.approx(2 / 3, rel=1e-12)
    assert bgnbd.p_no_purchase(HAND, 2, 8, 10, 0) == pytest.approx(1.0)


def test_log_likelihood_by_hand_and_by_integration():
    from scipy import integrate, stats

    # Eq. 6 with r = 1, alpha = 2, a = 1, b = 2, where Gamma(r+x) alpha^r / Gamma(r) = x! * 2 = 2 for x = 0 and 1:
    #   x = 0, T = 10: (alpha/(alpha+T))^r = 2/12 = 1/6
    #   x = 1, t_x = 4, T = 10: B(1,3)/B(1,2) * 2/12^2 + B(2,2)/B(1,2) * 2/6^2 = 2/3 * 1/72 + 1/3 * 1/18 = 1/36
    assert bgnbd.log_likelihood_terms(HAND, [0, 1], [0, 4], 10) == pytest.approx(np.log([1 / 6, 1 / 36]), rel=1e-12)
    # Against the model's story, integrated numerically: alive (no dropout at any of the x purchases,
    # no purchase in (t_x, T]) or dropped out at the last purchase.
    params, x, t_x, t = Params(0.7, 4.0, 1.3, 2.5), 3, 40.5, 90.0

    def rate(until: float) -> float:  # E[lambda^x exp(-lambda until)], lambda ~ Gamma(r, alpha)
        density = stats.gamma(params.r, scale=1 / params.alpha).pdf
        return integrate.quad(lambda lam: lam**x * np.exp(-lam * until) * density(lam), 0, np.inf)[0]

    def beta(f) -> float:  # E[f(p)], p ~ Beta(a, b)
        return integrate.quad(lambda p: f(p) * stats.beta(params.a, params.b).pdf(p), 0, 1)[0]

    integrated = beta(lambda p: (1 - p) ** x) * rate(t) + beta(lambda p: p * (1 - p) ** (x - 1)) * rate(t_x)
    assert bgnbd.log_likelihood(params, x, t_x, t) == pytest.approx(math.log(integrated), rel=1e-7)


def simulate(rng: np.random.Generator, params: Params, n: int, t: float, horizon: float):
    """x, t_x in (0, t] and whether there is no purchase in (t, t + horizon], per simulated customer."""
    lam = np.maximum(rng.gamma(params.r, 1 / params.alpha, n), 1e-300)
    dropout = rng.beta(params.a, params.b, n)
    clock, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    alive, active = np.ones(n, bool), np.ones(n, bool)
    while active.any():
        who = np.flatnonzero(active)
        clock[who] += rng.exponential(1 / lam[who])
        bought = who[clock[who] <= t]
        active[who[clock[who] > t]] = False
        x[bought] += 1
        t_x[bought] = clock[bought]
        died = bought[rng.random(bought.size) < dropout[bought]]  # right after the purchase
        alive[died] = False
        active[died] = False
    # Memoryless: an alive customer's next purchase after t is Exp(lambda) away; the dead never buy.
    no_purchase = ~alive | (rng.exponential(1 / lam) > horizon)
    return x, t_x, no_purchase


@pytest.fixture(scope="module")
def simulated():
    x, t_x, no_purchase = simulate(np.random.default_rng(7), TRUE, CUSTOMERS, T, HORIZON)
    return x, t_x, no_purchase, bgnbd.fit(x, t_x, T)


def test_fit_recovers_simulated_parameters(simulated):
    x, t_x, _, fitted = simulated
    # Over 60 seeds the errors of r and r/alpha stayed within 8% (standard deviation about 3%).
    assert fitted.r == pytest.approx(TRUE.r, rel=0.15)
    assert fitted.r / fitted.alpha == pytest.approx(TRUE.r / TRUE.alpha, rel=0.15)
    # The mean dropout probability a/(a+b): within 12% over 60 seeds (standard deviation about 4.5%).
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(TRUE.a / (TRUE.a + TRUE.b), rel=0.25)
    assert bgnbd.log_likelihood(fitted, x, t_x, T) >= bgnbd.log_likelihood(TRUE, x, t_x, T)


def test_no_purchase_probability_ranks_and_matches_the_simulated_future(simulated):
    from sklearn.metrics import roc_auc_score

    x, t_x, no_purchase, fitted = simulated
    score = bgnbd.p_no_purchase(fitted, x, t_x, T, HORIZON)
    assert roc_auc_score(no_purchase, score) > 0.6  # about 0.85 in practice
    # Calibrated in the large: within 0.011 of the observed rate (about 0.76) over 40 seeds.
    assert score.mean() == pytest.approx(no_purchase.mean(), abs=0.03)


def test_fit_survives_a_sample_without_repeat_purchases():
    fitted = bgnbd.fit(np.zeros(5), np.zeros(5), T)
    assert all(np.isfinite([fitted.r, fitted.alpha, fitted.a, fitted.b]))
    assert 0.0 <= float(bgnbd.p_no_purchase(fitted, 0, 0, T, HORIZON)) <= 1.0


def test_churn_rows_become_purchases_since_the_window_start():
    frame = pd.DataFrame(
        {
            "user_activity_v2__days_since_purchase": [3, None, None, 10],
            "user_activity_v2__purchase_days_90d": [2, 0, 4, None],
        }
    )
    x, t_x = bgnbd_summary(frame)
    # 90 - 3 = 87; no purchase: t_x = 0; purchase days without a recency: the window's first day, t_x = 1;
    # missing count: x = 0.
    assert x.tolist() == [2.0, 0.0, 4.0, 0.0]
    assert t_x.tolist() == [87.0, 0.0, 1.0, 0.0]
    bgnbd.fit(x, t_x, T)  # fits: no repeat purchases at t_x = 0
    with pytest.raises(ValueError, match="t_x = 0"):
        bgnbd.fit([2.0, 1.0], [0.0, 3.0], T)
