"""Real-data protocols and the strong baselines the deep churn and demand models must beat.
Plain pandas/numpy (LightGBM and scikit-learn imported where used: they are heavy).

Order lines are one row per item in an order, with the columns ``user_id``, ``item_id``,
``order_id``, ``order_time`` (timestamp), ``quantity``, ``revenue`` and ``discount`` (money off,
non-negative), optionally ``coupon_discount`` and ``category``. Dates are days: an order belongs
to the day of its ``order_time``, and "as of cut" means every order on or before that day.

Churn: a customer is *active* at a cut when they ordered in the ``active_days`` up to it; the
label is 1 when they place no order in the ``horizon_days`` after it. Training examples repeat the
construction at earlier cuts, and :func:`check_cuts` refuses a cut whose label window reaches past
the held-out observation date.

Demand: a ``(series, day)`` matrix of units. A forecast at origin ``t`` (history up to and
including day ``t``) for horizon ``h`` is the units summed over days ``t+1 .. t+h``; its error is
scaled by ``h`` times the in-sample mean absolute lag-7 difference of the daily history (MASE).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from lakecart.errors import UsageError

DAY = pd.Timedelta(days=1)


# --- protocol ------------------------------------------------------------------------------


def _day(value) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def check_cuts(train_cuts: Sequence, horizon_days: int, holdout_cut) -> None:
    """Raise when a training cut's label window (``cut+1 .. cut+horizon``) ends after the
    held-out observation date: its labels would have been seen by a model scored at ``holdout_cut``."""
    holdout = _day(holdout_cut)
    leaking = [_day(c) for c in train_cuts if _day(c) + horizon_days * DAY > holdout]
    if leaking:
        raise UsageError(
            f"training cut {leaking[-1].date()} has a {horizon_days}-day label window ending "
            f"{(leaking[-1] + horizon_days * DAY).date()}, after the held-out observation date {holdout.date()}"
        )


def weekly_cuts(holdout_cut, horizon_days: int, count: int, step_days: int = 7) -> list[pd.Timestamp]:
    """``count`` cuts ``step_days`` apart, oldest first, the newest being the last whose label
    window ends on or before ``holdout_cut``."""
    last = _day(holdout_cut) - horizon_days * DAY
    cuts = [last - k * step_days * DAY for k in range(count)][::-1]
    check_cuts(cuts, horizon_days, holdout_cut)
    return cuts


def as_of(lines: pd.DataFrame, cut) -> pd.DataFrame:
    """The order lines on or before the day ``cut`` (nothing after it)."""
    return lines[lines["order_time"] < _day(cut) + DAY]


# --- churn -----------------------------------------------------------------------------------


RFM_COLUMNS = ("recency_days", "baskets_90d", "spend_90d")


def churn_labels(lines: pd.DataFrame, cut, horizon_days: int, active_days: int = 90) -> pd.DataFrame:
    """``user_id``, ``label``: the customers active at ``cut`` and whether they ordered nothing in
    the ``horizon_days`` after it."""
    cut = _day(cut)
    t = lines["order_time"]
    active = lines.loc[(t >= cut - (active_days - 1) * DAY) & (t < cut + DAY), "user_id"].unique()
    future = set(lines.loc[(t >= cut + DAY) & (t < cut + (horizon_days + 1) * DAY), "user_id"].unique())
    users = np.sort(active)
    labels = np.array([0 if u in future else 1 for u in users], dtype="int32")
    return pd.DataFrame({"user_id": users, "label": labels})


def _slope(matrix: np.ndarray) -> np.ndarray:
    """Least-squares slope per row over equally spaced points."""
    x = np.arange(matrix.shape[1], dtype="float64")
    x -= x.mean()
    return (matrix - matrix.mean(axis=1, keepdims=True)) @ x / (x @ x)


def churn_features(
    lines: pd.DataFrame, cut, users: Sequence | None = None, categories: Sequence[str] = ()
) -> pd.DataFrame:
    """Order-based features of each customer as of ``cut`` (only orders on or before it), one row per
    user (``users``: these, in this order; default every customer with an order), indexed by user_id.

    Days count from the cut day: an order on the cut day has recency 0. Gaps are between distinct
    order days. ``share_<category>``: that category's share of the customer's 180-day spend.
    """
    cut = _day(cut)
    lines = as_of(lines, cut)
    day = lines["order_time"].dt.normalize()
    age = ((cut - day) / DAY).astype("int64")
    coupon = lines["coupon_discount"] if "coupon_discount" in lines else pd.Series(0.0, index=lines.index)
    orders = (
        lines.assign(age=age, coupon=coupon > 0)
        .groupby("order_id", sort=False)
        .agg(
            user_id=("user_id", "first"),
            age=("age", "min"),
            revenue=("revenue", "sum"),
            units=("quantity", "sum"),
            discount=("discount", "sum"),
            coupon=("coupon", "max"),
        )
    )
    users = np.sort(orders["user_id"].unique()) if users is None else np.asarray(users)
    g = orders.groupby("user_id")
    out = pd.DataFrame(index=pd.Index(users, name="user_id"))
    out["recency_days"] = g["age"].min()
    out["tenure_days"] = g["age"].max()
    for window in (30, 90, 180):
        recent = orders[orders["age"] < window].groupby("user_id")
        out[f"baskets_{window}d"] = recent.size()
        out[f"spend_{window}d"] = recent["revenue"].sum()
    out["baskets_total"] = g.size()
    out["spend_total"] = g["revenue"].sum()
    recent = orders[orders["age"] < 180]
    rg = recent.groupby("user_id")
    out["basket_value_mean_180d"] = rg["revenue"].mean()
    out["basket_units_mean_180d"] = rg["units"].mean()
    out["discount_share_180d"] = rg["discount"].sum() / (rg["revenue"].sum() + rg["discount"].sum()).replace(0, np.nan)
    out["coupon_basket_share_180d"] = rg["coupon"].mean()
    # Inter-purchase times between distinct order days (newest first: the first gap is the last one).
    days = orders[["user_id", "age"]].drop_duplicates().sort_values(["user_id", "age"])
    days["gap"] = days.groupby("user_id")["age"].diff()  # age(older) - age(newer): days between orders
    gaps = days.dropna(subset=["gap"]).groupby("user_id")["gap"]
    out["order_days_total"] = days.groupby("user_id").size()
    out["gap_mean"] = gaps.mean()
    out["gap_std"] = gaps.std(ddof=0)
    out["gap_last"] = gaps.first()
    out["gap_last_over_mean"] = out["gap_last"] / out["gap_mean"]
    out["recency_over_gap_mean"] = out["recency_days"] / out["gap_mean"]
    out["baskets_30d_over_90d"] = out["baskets_30d"].fillna(0) / (out["baskets_90d"] / 3).replace(0, np.nan)
    # Weekly spend over the last 12 weeks: slope relative to the mean.
    week = (recent["age"] // 7).clip(upper=11)
    weekly = (
        recent[recent["age"] < 84]
        .assign(week=11 - week)
        .pivot_table(index="user_id", columns="week", values="revenue", aggfunc="sum", fill_value=0.0)
        .reindex(columns=range(12), fill_value=0.0)
    )
    out["spend_trend_12w"] = pd.Series(_slope(weekly.to_numpy()), index=weekly.index) / weekly.mean(axis=1).replace(
        0, np.nan
    )
    # Repeat rate: share of the distinct items bought in 180 days that were bought in two orders or more.
    window = lines[age < 180]
    per_item = window.groupby(["user_id", "item_id"])["order_id"].nunique()
    out["repeat_item_share_180d"] = (per_item >= 2).groupby(level="user_id").mean()
    if categories:
        spend = window[window["category"].isin(categories)].pivot_table(
            index="user_id", columns="category", values="revenue", aggfunc="sum", fill_value=0.0
        )
        total = window.groupby("user_id")["revenue"].sum().replace(0, np.nan)
        for name in categories:
            column = spend[name] if name in spend else pd.Series(0.0, index=total.index)
            out[f"share_{name}"] = column / total
    counts = [c for c in out if c.startswith(("baskets_", "spend_"))]
    out[counts] = out[counts].fillna(0.0)
    return out


def top_categories(lines: pd.DataFrame, cut, k: int = 10) -> list[str]:
    """The ``k`` categories with the most revenue as of ``cut`` (ties by name)."""
    revenue = as_of(lines, cut).groupby("category")["revenue"].sum()
    return sorted(revenue.sort_index().sort_values(ascending=False, kind="stable").index[:k])


def churn_examples(
    lines: pd.DataFrame, cuts: Sequence, horizon_days: int, active_days: int = 90, categories: Sequence[str] = ()
) -> pd.DataFrame:
    """Features and labels at each cut, stacked (``cut`` column): the training rows of the protocol."""
    frames = []
    for cut in cuts:
        labels = churn_labels(lines, cut, horizon_days, active_days)
        features = churn_features(lines, cut, labels["user_id"], categories)
        frames.append(features.reset_index().assign(label=labels["label"].to_numpy(), cut=_day(cut)))
    return pd.concat(frames, ignore_index=True)


def bgnbd_churn(lines: pd.DataFrame, cut, users: Sequence, horizon_days: int) -> np.ndarray:
    """BG/NBD P(no order in ``horizon_days``) per user, fitted on every customer's order days up to ``cut``
    (x: repeat order days, t_x: last minus first order day, T: cut minus first order day, in days)."""
    from lakecart.training import bgnbd

    cut = _day(cut)
    day = as_of(lines, cut)[["user_id", "order_time"]].assign(day=lambda f: f["order_time"].dt.normalize())
    g = day.drop_duplicates(["user_id", "day"]).groupby("user_id")["day"]
    first, last, n = g.min(), g.max(), g.size()
    x, t_x, T = (n - 1).to_numpy(), ((last - first) / DAY).to_numpy(), ((cut - first) / DAY).to_numpy()
    params = bgnbd.fit(x, t_x, T)
    p = pd.Series(bgnbd.p_no_purchase(params, x, t_x, T, horizon_days), index=n.index)
    return p.reindex(users).fillna(float(p.mean())).to_numpy()


def rfm_logistic(train: pd.DataFrame, test: pd.DataFrame, label: str = "label") -> np.ndarray:
    """Logistic regression on log1p recency, frequency and monetary value, standardised."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def rfm(frame: pd.DataFrame) -> np.ndarray:
        return np.log1p(frame[list(RFM_COLUMNS)].fillna(0.0).clip(lower=0).to_numpy())

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(rfm(train), train[label].to_numpy())
    return model.predict_proba(rfm(test))[:, 1]


def lightgbm_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray | None = None,
    y_valid: np.ndarray | None = None,
    seed: int = 0,
    rounds: int = 2000,
    **params,
):
    """A binary LightGBM; with a validation set it stops when the validation log-loss has not
    improved for 50 rounds (``model.best_iteration_``: refit another with that many ``rounds``)."""
    import lightgbm as lgb

    settings = {
        "n_estimators": rounds,
        "learning_rate": 0.03,
        "num_leaves": 31,
        "min_child_samples": 50,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "random_state": seed,
        "n_jobs": 1,  # one thread: OpenMP teams stall badly on a shared, oversubscribed machine
        "verbose": -1,
        **params,
    }
    model = lgb.LGBMClassifier(**settings)
    if x_valid is None:
        return model.fit(x_train, y_train)
    return model.fit(
        x_train,
        y_train,
        eval_set=[(x_valid, y_valid)],
        eval_metric="binary_logloss",
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )


# --- demand ----------------------------------------------------------------------------------


def daily_matrix(
    frame: pd.DataFrame, key: str, value: str, start, end, series: Sequence | None = None, how: str = "sum"
) -> pd.DataFrame:
    """``series x day`` matrix of ``value`` aggregated per ``key`` and day (``order_time``), days
    ``start .. end`` inclusive; missing days are 0 for sums, NaN otherwise."""
    days = pd.date_range(_day(start), _day(end), freq="D")
    frame = frame.assign(day=frame["order_time"].dt.normalize())
    wide = frame.pivot_table(index=key, columns="day", values=value, aggfunc=how)
    wide = wide.reindex(index=series if series is not None else wide.index, columns=days)
    return wide.fillna(0.0) if how == "sum" else wide


def seasonal_naive(history: np.ndarray, horizons: Sequence[int], season: int = 7) -> np.ndarray:
    """The last ``season`` days repeated: horizon h's forecast is the sum of the first h repeated days."""
    last = history[:, -season:]
    return np.stack([np.tile(last, (1, -(-h // season)))[:, :h].sum(axis=1) for h in horizons], axis=1)


def moving_average(history: np.ndarray, horizons: Sequence[int], window: int = 28) -> np.ndarray:
    """Mean of the last ``window`` days times the horizon."""
    rate = history[:, -window:].mean(axis=1)
    return np.stack([rate * h for h in horizons], axis=1)


def mase_scale(history: np.ndarray, lag: int = 7) -> np.ndarray:
    """In-sample mean absolute lag-``lag`` difference of each series (the seasonal-naive daily error)."""
    return np.abs(history[:, lag:] - history[:, :-lag]).mean(axis=1)


def horizon_sums(units: np.ndarray, origin: int, horizons: Sequence[int]) -> np.ndarray:
    """Units over days ``origin+1 .. origin+h`` (column indices of ``units``) per horizon."""
    return np.stack([units[:, origin + 1 : origin + 1 + h].sum(axis=1) for h in horizons], axis=1)


def mase_per_series(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
    """``|actual_h - forecast_h| / (h * scale)``, shape (series, horizons)."""
    return np.abs(actual - forecast) / (np.asarray(horizons, dtype="float64")[None, :] * scale[:, None])


DEMAND_WINDOWS = (7, 14, 28, 56, 112)


def demand_features(
    units: np.ndarray,
    promo: np.ndarray,
    price: np.ndarray,
    origin: int,
    horizons: Sequence[int],
    weekday: int,
    min_history: int = 28,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scale-free features of every series at ``origin`` (a column of ``units``; history = columns up
    to and including it) and the scale they are divided by.

    ``units``: (series, days); ``promo``: (series, days, k) counts of promotions known in advance
    (read for the horizon days too); ``price``: (series, days) unit price, NaN where nothing sold.
    Returns (features, scale, names); the scale is the series' MASE scale over its history, or its
    mean daily units where that is 0, or 1.
    """
    history = units[:, : origin + 1]
    if history.shape[1] < max(min_history, 8):
        raise UsageError(f"origin {origin} leaves less than {max(min_history, 8)} days of history")
    scale = mase_scale(history)
    level = history.mean(axis=1)
    scale = np.where(scale > 0, scale, np.where(level > 0, level, 1.0))
    columns, names = [], []
    for lag in range(7):
        columns.append(history[:, -1 - lag] / scale)
        names.append(f"lag_{lag + 1}d")
    for window in DEMAND_WINDOWS:
        columns.append(history[:, -window:].mean(axis=1) / scale)
        names.append(f"mean_{window}d")
    columns.append(history[:, -28:].std(axis=1) / scale)
    names.append("std_28d")
    columns.append(np.mean(history[:, -28:] == 0, axis=1))
    names.append("zero_share_28d")
    past_promo = np.log1p(promo[:, origin - 27 : origin + 1].mean(axis=1))
    for h in horizons:
        future = np.log1p(promo[:, origin + 1 : origin + 1 + h].mean(axis=1))
        for k in range(promo.shape[2]):
            columns += [future[:, k], future[:, k] - past_promo[:, k]]
            names += [f"promo{k}_next_{h}d", f"promo{k}_next_{h}d_vs_28d"]
    for k in range(promo.shape[2]):
        columns.append(past_promo[:, k])
        names.append(f"promo{k}_28d")
    positive = np.where(price > 0, price, np.nan)  # no sale (NaN) or a free line: no price that day
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: no sale in them
        p7 = np.nanmedian(positive[:, origin - 6 : origin + 1], axis=1)
        p28 = np.nanmedian(positive[:, origin - 27 : origin + 1], axis=1)
        ratio = np.log(p7 / p28)
    columns += [np.where(np.isfinite(ratio), ratio, 0.0), np.where(np.isfinite(p28), np.log1p(p28), 0.0)]
    names += ["price_7d_vs_28d", "log_price_28d"]
    angle = 2 * np.pi * weekday / 7
    columns += [np.full(len(units), np.sin(angle)), np.full(len(units), np.cos(angle))]
    names += ["weekday_sin", "weekday_cos"]
    return np.stack(columns, axis=1).astype("float32"), scale, names


def demand_examples(
    units: np.ndarray,
    promo: np.ndarray,
    price: np.ndarray,
    origins: Sequence[int],
    horizons: Sequence[int],
    weekdays: Sequence[int],
    holdout_origin: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked (features, targets / scale, scale) over ``origins``; with ``holdout_origin``, raises
    when an origin's longest horizon reaches past it (its target would be held-out data)."""
    if holdout_origin is not None:
        leaking = [o for o in origins if o + max(horizons) > holdout_origin]
        if leaking:
            raise UsageError(
                f"training origin {leaking[-1]} forecasts up to day {leaking[-1] + max(horizons)}, "
                f"past the held-out origin {holdout_origin}"
            )
    xs, ys, ss = [], [], []
    for origin in origins:
        x, scale, _ = demand_features(units, promo, price, origin, horizons, weekdays[origin])
        xs.append(x)
        ys.append(horizon_sums(units, origin, horizons) / scale[:, None])
        ss.append(scale)
    return np.concatenate(xs), np.concatenate(ys).astype("float32"), np.concatenate(ss)


def lightgbm_demand(
    x_train: np.ndarray,
    y_train: np.ndarray,
    horizons: Sequence[int],
    x_valid: np.ndarray | None = None,
    y_valid: np.ndarray | None = None,
    seed: int = 0,
    rounds: int | Sequence[int] = 2000,
    objective: str = "l1",
    **params,
) -> list:
    """One global LightGBM per horizon over every series, fitted to the *daily rate over the scale*
    (target / h): with the l1 objective it minimises the MASE. Forecast = prediction * h * scale.
    With a validation set, each stops after 50 rounds without improvement (``best_iteration_``)."""
    import lightgbm as lgb

    rounds = [rounds] * len(horizons) if isinstance(rounds, int) else list(rounds)
    models = []
    for j, h in enumerate(horizons):
        settings = {
            "objective": objective,
            "n_estimators": rounds[j],
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 50,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "random_state": seed,
            "n_jobs": 1,  # one thread: OpenMP teams stall badly on a shared, oversubscribed machine
            "verbose": -1,
            **params,
        }
        model = lgb.LGBMRegressor(**settings)
        if x_valid is None:
            model.fit(x_train, y_train[:, j] / h)
        else:
            model.fit(
                x_train,
                y_train[:, j] / h,
                eval_set=[(x_valid, y_valid[:, j] / h)],
                callbacks=[lgb.early_stopping(50, verbose=False)],
            )
        models.append(model)
    return models


def predict_demand(models: Sequence, x: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
    """Scaled forecasts (series, horizons) of :func:`lightgbm_demand`'s models (times the scale: units)."""
    return np.stack([np.maximum(m.predict(x), 0.0) * h for m, h in zip(models, horizons, strict=True)], axis=1)


def day_index(days: pd.DatetimeIndex, when: date | str | pd.Timestamp) -> int:
    """Column index of a day in a daily matrix."""
    found = days.get_indexer([_day(when)])[0]
    if found < 0:
        raise UsageError(f"{_day(when).date()} is outside the data ({days[0].date()} .. {days[-1].date()})")
    return int(found)


def week_starts(lines: pd.DataFrame, week: str = "week") -> pd.Series:
    """First day of each numbered week: the day of its earliest order (week numbers do not say)."""
    return lines.groupby(week)["order_time"].min().dt.normalize().sort_index()


def week_of_days(starts: pd.Series, days: pd.DatetimeIndex) -> np.ndarray:
    """The week number of each day: the last week starting on or before it."""
    position = np.searchsorted(starts.to_numpy(), days.to_numpy(), side="right") - 1
    return starts.index.to_numpy()[np.clip(position, 0, len(starts) - 1)]
