"""Real-data protocol helpers and baselines (``lakecart.training.baselines``) on tiny hand-made
order lines and series; every expected value is worked out in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakecart.errors import LakecartError
from lakecart.training import baselines as bl


def line(user: str, order: str, when: str, item: str = "i1", quantity=1.0, revenue=10.0, discount=0.0, coupon=0.0):
    return {
        "user_id": user,
        "item_id": item,
        "order_id": order,
        "order_time": pd.Timestamp(when),
        "quantity": quantity,
        "revenue": revenue,
        "discount": discount,
        "coupon_discount": coupon,
        "category": "dairy" if item in ("i1", "i2") else "meat",
    }


@pytest.fixture()
def lines() -> pd.DataFrame:
    # Cut 2017-03-31. Customer a: orders on 03-01 (two lines), 03-11, 03-31 (evening; on the cut day);
    # b: 01-30 and 03-21; c: only after the cut (04-05); a also orders on 04-10 (after the cut).
    return pd.DataFrame(
        [
            line("a", "o1", "2017-03-01 09:00", "i1", 2, 10.0, discount=2.0),
            line("a", "o1", "2017-03-01 09:00", "i3", 1, 30.0),
            line("a", "o2", "2017-03-11 10:00", "i1", 1, 5.0, coupon=1.0),
            line("a", "o3", "2017-03-31 23:30", "i2", 4, 20.0),
            line("b", "o4", "2017-01-30 12:00", "i2", 1, 8.0),
            line("b", "o5", "2017-03-21 12:00", "i2", 3, 12.0, discount=4.0),
            line("c", "o6", "2017-04-05 12:00", "i1", 1, 99.0),
            line("a", "o7", "2017-04-10 12:00", "i1", 1, 7.0),
        ]
    )


CUT = "2017-03-31"


def test_check_cuts_refuses_a_label_window_past_the_holdout():
    # 2017-11-02 + 28 days = 11-30: ends exactly on the held-out date, allowed; 11-03 + 28 = 12-01 leaks.
    bl.check_cuts(["2017-10-05", "2017-11-02"], 28, "2017-11-30")
    with pytest.raises(LakecartError, match="2017-11-03 has a 28-day label window ending 2017-12-01"):
        bl.check_cuts(["2017-10-05", "2017-11-03"], 28, "2017-11-30")


def test_weekly_cuts_end_where_the_last_label_window_meets_the_holdout():
    # Holdout 11-30, horizon 28: newest cut 11-02, then 10-26, 10-19 (oldest first).
    assert bl.weekly_cuts("2017-11-30", 28, 3) == [pd.Timestamp(d) for d in ("2017-10-19", "2017-10-26", "2017-11-02")]


def test_churn_labels_use_the_active_window_and_the_horizon(lines):
    # Active in the 30 days up to 03-31 (03-02 .. 03-31): a (03-11, 03-31) and b (03-21); c is not yet a
    # customer. Horizon 7 days (04-01 .. 04-07): nobody of a, b orders (a's next is 04-10) -> both churn.
    labels = bl.churn_labels(lines, CUT, horizon_days=7, active_days=30)
    assert labels.to_dict("list") == {"user_id": ["a", "b"], "label": [1, 1]}
    # Horizon 10 days (to 04-10): a orders on 04-10 -> 0.
    assert bl.churn_labels(lines, CUT, 10, 30)["label"].tolist() == [0, 1]
    # An active window of 20 days (03-12 .. 03-31) still holds a (03-31) and b (03-21).
    assert bl.churn_labels(lines, CUT, 7, 20)["user_id"].tolist() == ["a", "b"]


def test_churn_features_by_hand_and_nothing_after_the_cut(lines):
    f = bl.churn_features(lines, CUT, ["a", "b", "c"], categories=["dairy", "meat"])
    a, b = f.loc["a"], f.loc["b"]
    # a: order days 03-01 (age 30), 03-11 (age 20), 03-31 (age 0; 23:30 on the cut day counts).
    assert (a["recency_days"], a["tenure_days"]) == (0, 30)
    # 30-day window = ages 0..29: o2 and o3; 90 days: all three. Spend: o1 40, o2 5, o3 20.
    assert (a["baskets_30d"], a["baskets_90d"], a["spend_30d"], a["spend_90d"]) == (2, 3, 25.0, 65.0)
    # Gaps between order days: 20 - 0 = 20 (the last), 30 - 20 = 10 -> mean 15, std 5, last/mean 4/3.
    assert (a["gap_mean"], a["gap_std"], a["gap_last"]) == (15.0, 5.0, 20.0)
    assert a["gap_last_over_mean"] == pytest.approx(4 / 3) and a["recency_over_gap_mean"] == 0.0
    # Baskets: values 40, 5, 20 (mean 65/3); units 3, 1, 4 (mean 8/3).
    assert a["basket_value_mean_180d"] == pytest.approx(65 / 3) and a["basket_units_mean_180d"] == pytest.approx(8 / 3)
    # Discount 2 of (65 paid + 2 off); one basket of three used a coupon.
    assert a["discount_share_180d"] == pytest.approx(2 / 67) and a["coupon_basket_share_180d"] == pytest.approx(1 / 3)
    # Items: i1 in o1 and o2 (repeat), i3 once, i2 once (o7, a second i1 order, is after the cut) -> 1/3.
    assert a["repeat_item_share_180d"] == pytest.approx(1 / 3)
    # Spend shares: dairy 10 + 5 + 20 = 35 of 65, meat 30 of 65.
    assert a["share_dairy"] == pytest.approx(35 / 65) and a["share_meat"] == pytest.approx(30 / 65)
    # 30 days / (3 baskets in 90 days / 3): 2 / 1.
    assert a["baskets_30d_over_90d"] == 2.0
    # b: days 01-30 (age 60) and 03-21 (age 10): one gap of 50; recency 10 -> 10 / 50.
    assert (b["recency_days"], b["gap_mean"], b["baskets_90d"], b["spend_90d"]) == (10, 50.0, 2, 20.0)
    assert b["recency_over_gap_mean"] == pytest.approx(0.2) and b["repeat_item_share_180d"] == 1.0
    # c's only order (04-05) is after the cut: no history, counts 0, the rest missing.
    assert f.loc["c", "baskets_total"] == 0 and np.isnan(f.loc["c", "recency_days"])
    # Nothing after the cut: dropping every later line changes no feature.
    before = lines[lines["order_time"] < pd.Timestamp("2017-04-01")]
    pd.testing.assert_frame_equal(f, bl.churn_features(before, CUT, ["a", "b", "c"], ["dairy", "meat"]))


def test_rfm_logistic_ranks_the_long_absent_customer_highest():
    # Churners: long since the last order, few baskets. The model must score them above the rest.
    rng = np.random.default_rng(0)
    recency = rng.integers(0, 60, 200).astype(float)
    frame = pd.DataFrame(
        {
            "recency_days": recency,
            "baskets_90d": 30 - recency / 2,
            "spend_90d": 10.0,
            "label": (recency > 30).astype(int),
        }
    )
    p = bl.rfm_logistic(frame, frame)
    assert p[recency > 40].min() > p[recency < 20].max()


def test_bgnbd_churn_is_higher_for_a_lapsed_regular(lines):
    # a ordered on the cut day, b last 10 days before it after a 50-day gap: neither certain, and with
    # every customer's repeat rate a is the likelier to order again in 7 days.
    p = bl.bgnbd_churn(lines, CUT, ["a", "b"], 7)
    assert ((0 < p) & (p < 1)).all() and p[0] < p[1]


def test_lightgbm_classifier_learns_a_separable_case_and_stops_early():
    # y = [x0 > 0] with 10% of the labels flipped: the validation log-loss stops improving long
    # before 1000 fast rounds (past that the trees fit the flipped labels), and the rule is found.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3))
    clean = (x[:, 0] > 0).astype(int)
    y = np.where(rng.random(600) < 0.1, 1 - clean, clean)
    model = bl.lightgbm_classifier(
        x[:400], y[:400], x[400:], y[400:], seed=0, rounds=1000, learning_rate=0.3, min_child_samples=5
    )
    p = model.predict_proba(x[400:])[:, 1]
    assert ((p > 0.5) == clean[400:]).mean() > 0.95
    assert model.best_iteration_ < 1000


def test_seasonal_naive_and_moving_average_by_hand():
    # 14 days: week one 1..7, week two 0,0,0,0,0,0,7. Seasonal naive repeats the last week
    # (0,0,0,0,0,0,7): 3 days -> 0, 7 -> 7, 10 -> 7 + 0 + 0 + 0 = 7, 14 -> 14.
    history = np.array([[1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 7]], dtype=float)
    assert bl.seasonal_naive(history, [3, 7, 10, 14]).tolist() == [[0.0, 7.0, 7.0, 14.0]]
    # Mean of the last 7 days: 1 per day -> 7 over 7 days; of the last 14: 35/14 = 2.5 -> 17.5.
    assert bl.moving_average(history, [7], window=7).tolist() == [[7.0]]
    assert bl.moving_average(history, [7], window=14).tolist() == [[17.5]]
    # Lag-7 differences: |0-1|, |0-2|, ..., |0-6|, |7-7| = 1+2+3+4+5+6+0 = 21 over 7 -> 3.
    assert bl.mase_scale(history).tolist() == [3.0]
    # Actual 14 over 7 days vs forecast 7: 7 / (7 * 3) = 1/3.
    assert bl.mase_per_series(np.array([[14.0]]), np.array([[7.0]]), np.array([3.0]), [7]).tolist() == [[1 / 3]]


def test_demand_examples_refuse_an_origin_whose_horizon_reaches_the_holdout():
    units = np.ones((2, 60))
    promo, price = np.zeros((2, 60, 1)), np.ones((2, 60))
    weekdays = np.arange(60) % 7
    x, y, scale = bl.demand_examples(units, promo, price, [30, 32], [7], weekdays, holdout_origin=39)
    # Constant series: no lag-7 variation, so the scale falls back to the mean level 1; 7 units ahead.
    assert x.shape[0] == 4 and y.ravel().tolist() == [7.0] * 4 and scale.tolist() == [1.0] * 4
    with pytest.raises(LakecartError, match="training origin 33 forecasts up to day 40"):
        bl.demand_examples(units, promo, price, [30, 33], [7], weekdays, holdout_origin=39)


def test_demand_features_see_future_promotions_but_no_future_sales():
    days = 70
    units = np.tile((np.arange(days) % 7 == 0).astype(float) * 7, (1, 1))  # 7 units every Monday-ish
    promo = np.zeros((1, days, 1))
    promo[0, 50:57, 0] = 3.0  # promoted at 3 stores for the 7 days after origin 49
    price = np.full((1, days), 2.0)
    x, scale, names = bl.demand_features(units, promo, price, 49, [7], weekday=0)
    later = units.copy()
    later[:, 50:] = 1000.0
    x_later, _, _ = bl.demand_features(later, promo, price, 49, [7], weekday=0)
    np.testing.assert_array_equal(x, x_later)
    # Future promotion: log1p(mean of 3 over 7 days) = log(4); the 28 days before had none.
    assert x[0, names.index("promo0_next_7d")] == pytest.approx(np.log(4.0))
    assert x[0, names.index("promo0_next_7d_vs_28d")] == pytest.approx(np.log(4.0))
    # Lag-7 differences of a weekly pattern are all 0: scale = the mean level instead, days 0..49
    # hold 8 spikes (days 0, 7, ..., 49) of 7 units: 56 / 50.
    assert scale.tolist() == [pytest.approx(56 / 50)]


def test_lightgbm_demand_learns_the_promotion_lift():
    # Sales rate 1 a day, 3 when the horizon is promoted: the l1 model must follow the promotion.
    rng = np.random.default_rng(2)
    promoted = rng.random(600) < 0.5
    x = np.stack([promoted.astype(float), rng.normal(size=600)], axis=1)
    y = np.where(promoted, 21.0, 7.0)[:, None]  # units over 7 days
    models = bl.lightgbm_demand(x, y, [7], seed=0, rounds=200, min_child_samples=5)
    forecast = bl.predict_demand(models, np.array([[1.0, 0.0], [0.0, 0.0]]), [7])
    np.testing.assert_allclose(forecast.ravel(), [21.0, 7.0], atol=0.5)


def test_week_of_days_maps_days_to_the_week_that_started_last():
    lines = pd.DataFrame(
        {"week": [1, 2, 2, 3], "order_time": pd.to_datetime(["2017-01-01", "2017-01-03", "2017-01-02", "2017-01-09"])}
    )
    starts = bl.week_starts(lines)
    days = pd.date_range("2017-01-01", "2017-01-10")
    # Week 1 is 01-01 alone, week 2 starts 01-02 (its earliest order), week 3 on 01-09.
    assert bl.week_of_days(starts, days).tolist() == [1, 2, 2, 2, 2, 2, 2, 2, 3, 3]
