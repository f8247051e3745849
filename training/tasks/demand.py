"""Demand: units an item (``demand``) or a category (``category_demand``) sells over the next
7, 14 and 28 days (the horizons the training set was built with).

The bar, per horizon, on held-out observation dates: the seasonal naive forecast (last week
repeated: 7-day mean x h) and a 28-day moving average (28-day mean x h). ``mase@<h>d`` is the
MASE the forecasting literature reports (M4/M5): each series' mean absolute error scaled by its own
in-sample seasonal-naive error on the training split, averaged over series (a series with no
training variation takes the pooled scale); ``pooled_mase@<h>d`` scales all errors by one pooled
in-sample error, as earlier versions reported.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.features.pit import feature_prefix
from lakecart.training import data as training_data
from lakecart.training import plots
from lakecart.training.evaluate import mase, row_scales, series_mase, series_scales
from lakecart.training.inputs import TowerSpec
from lakecart.training.tasks.base import (
    ModelTask,
    TrainParams,
    feature_columns,
    features_as_of,
    id_array,
    numeric_matrix,
)

LABEL = re.compile(r"^units_next_(\d+)d$")
# A candidate whose held-out forecasts total more than 2x or less than half the units sold is implausible.
VOLUME_TOLERANCE = 2.0
# Known-in-advance promotion inputs: days with a display or mailer planned in the next w days.
UPCOMING = re.compile(r"__(display|mailer)_days_next_\d+d$")


def without_upcoming_promotions(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The same rows with no promotion planned ahead: the counterfactual of the uplift."""
    return frame.assign(**{c: 0 for c in columns})


class DemandTask(ModelTask):
    name = "demand"
    dataset_kind = "demand"
    shard_key = "item_id"
    key = "item_id"
    primary_metric = "mase_mean"
    higher_is_better = False
    defaults = {"epochs": 30, "global_batch_size": 128, "learning_rate": 0.003}
    validate_on_newest = "observation_date"
    # A shop's year of item series (92k rows at the DAG's 56 days, 2.9M at 280) at 128 an update spends
    # its time on per-step overhead: 475 s at 128, 164 s at 512 and a better MASE (BENCHMARKS.md).
    max_steps_per_epoch = 200
    output_tables = (tables.DEMAND_FORECASTS,)
    params = {
        "embedding_dim": "width of the series, weekday and month-part embeddings (default 8)",
        "hidden_layers": "units of the hidden ReLU layers (default [64, 32])",
        "loss": "mae (default: the scaled absolute error, the median) or poisson (the mean; see training/demand.py)",
    }

    @property
    def demand_view(self) -> str:
        """The view of daily units and their means: the first the set joined (``jobs.training_set``)."""
        return self.views[0]

    def mean_column(self, window: int) -> str:
        """The demand view's mean daily units over ``window`` days, as the set names it."""
        return f"{feature_prefix(self.demand_view)}units_mean_{window}d"

    def baseline_forecasts(self, frame: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
        def mean(window: int) -> np.ndarray:
            column = self.mean_column(window)
            values = frame[column] if column in frame.columns else pd.Series(0.0, index=frame.index)
            return pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy() * horizon

        return {"seasonal_naive": mean(7), "moving_average_28d": mean(28)}

    def state_columns(self) -> list[str]:
        return None  # labels and means: small frames

    def fit_state(self, full: pd.DataFrame) -> None:
        horizons = sorted(int(m.group(1)) for c in full.columns if (m := LABEL.match(c)))
        if not horizons:
            raise ValueError(f"training set {self.dataset_id} has no units_next_<h>d labels")
        train = full[full["split"] == "train"]
        scales, series = [], {}
        for h in horizons:
            naive = self.baseline_forecasts(train, h)["seasonal_naive"]
            error = float(np.mean(np.abs(train[f"units_next_{h}d"].to_numpy() - naive))) if len(train) else 0.0
            scales.append(error if error > 0 else 1.0)
            # Each series' own in-sample scale, for the MASE the literature reports (per series, averaged).
            series[str(h)] = series_scales(train[f"units_next_{h}d"].to_numpy(), naive, train[self.key].to_numpy())
        numeric = training_data.numeric_columns(self.table_uri)
        self.state = {
            "keys": sorted(full[self.key].dropna().astype(str).unique()),
            "horizons": horizons,
            "scales": scales,
            "series_scales": series,
            "features": feature_columns(numeric, tuple(feature_prefix(v) for v in self.views)),
            # Each series' scale (``DemandModel``'s ``level``): its mean daily units over 28 days.
            "level": self.mean_column(28),
        }

    def inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        origin = pd.to_datetime(frame["observation_date"])
        inputs = {
            "series": id_array(frame[self.key]),
            "weekday": np.array([f"d{d}" for d in origin.dt.weekday]),
            "month_part": np.array([f"m{min(d // 10, 2)}" for d in origin.dt.day]),
            "numeric": numeric_matrix(frame, self.state["features"]),
        }
        if self.state.get("level"):  # runs trained before the level input have none
            level = frame[self.state["level"]] if self.state["level"] in frame.columns else pd.Series(0.0, frame.index)
            inputs["level"] = pd.to_numeric(level, errors="coerce").fillna(0.0).clip(lower=0).to_numpy("float32")
        labels = [f"units_next_{h}d" for h in self.state["horizons"]]
        if all(c in frame.columns for c in labels):
            inputs["label"] = frame[labels].to_numpy(dtype="float32")
            if self.state.get("series_scales"):
                inputs["scale"] = self.loss_scales(frame)
        return inputs

    def loss_scales(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, horizons): each row's series' in-sample MASE scale per horizon (``series_scales``),
        the pooled one (``scales``) for a series without its own: what the loss divides errors by."""
        keys = frame[self.key].to_numpy()
        own = self.state["series_scales"]
        horizons = zip(self.state["horizons"], self.state["scales"], strict=True)
        return np.stack([row_scales(keys, own.get(str(h), {}), pooled) for h, pooled in horizons], axis=1).astype(
            "float32"
        )

    def build(self, params: TrainParams):
        from lakecart.training.demand import DemandModel

        spec = TowerSpec(
            ids={
                "series": self.state["keys"],
                "weekday": [f"d{d}" for d in range(7)],
                "month_part": ["m0", "m1", "m2"],
            },
            numeric="numeric",
            numeric_stats=self.numeric_stats("numeric"),
            n_numeric=len(self.state["features"]),
            embedding_dim=int(params.extra.get("embedding_dim", 8)),
        )
        return DemandModel(
            spec,
            self.state["horizons"],
            self.state["scales"],
            hidden_layers=tuple(params.extra.get("hidden_layers", (64, 32))),
            loss=str(params.extra.get("loss", "mae")),
            level="level" if self.state.get("level") else None,
            scale="scale" if self.state.get("series_scales") else None,
        )

    def evaluate(self, model, train: pd.DataFrame, test: pd.DataFrame) -> dict:
        forecasts = self.predict(model, test)
        result: dict[str, dict[str, float]] = {
            "test": {},
            "baselines": {"seasonal_naive": {}, "moving_average_28d": {}},
        }
        keys = test[self.key].to_numpy()
        for i, (h, scale) in enumerate(zip(self.state["horizons"], self.state["scales"], strict=True)):
            actual = test[f"units_next_{h}d"].to_numpy(dtype="float64")
            # mase@h: per series, averaged (M4/M5); pooled_mase@h: every error over one scale.
            own = self.state.get("series_scales", {}).get(str(h), {})
            contenders = {"test": forecasts[:, i], **self.baseline_forecasts(test, h)}
            for name, forecast in contenders.items():
                target = result["test"] if name == "test" else result["baselines"][name]
                target[f"mase@{h}d"] = series_mase(actual, forecast, keys, own, scale)
                target[f"pooled_mase@{h}d"] = mase(actual, forecast, scale)
                # Units forecast over units sold, all series together: 1 is right in total.
                target[f"volume_ratio@{h}d"] = float(np.sum(forecast) / max(np.sum(actual), 1e-9))
        for values in (result["test"], *result["baselines"].values()):
            values["mase_mean"] = float(np.mean([v for k, v in values.items() if k.startswith("mase@")]))
        check = self.promotion_check(model, test, forecasts)
        if check:
            result["promotions"] = check
        result["improvement_vs_best_baseline"] = {
            k: 1.0 - result["test"][k] / min(b[k] for b in result["baselines"].values())
            for k in result["test"]
            if k.startswith("mase")
        }
        return result

    def serving_frame(self, as_of: date) -> pd.DataFrame:
        """Every series with features as of the end of ``as_of``, observed on ``as_of``: the rows a
        training set observed that day would hold, less the labels."""
        frame = features_as_of(self.settings, self.views, self.key, as_of, how="left")
        return frame.assign(observation_date=as_of) if not frame.empty else frame

    @classmethod
    def implausible(cls, metrics: dict) -> str | None:
        """A per-series MASE rewards forecasting 0 for series that rarely sell (the median of an
        intermittent series is 0), so a model can win on it while forecasting a fraction of the
        units the shop sells. Held back when its total on held-out rows is off by more than
        ``VOLUME_TOLERANCE`` times on some horizon and further off than the best baseline's."""
        ratios = {k: v for k, v in metrics["test"].items() if k.startswith("volume_ratio@")}
        best = cls.best_baseline(metrics["baselines"])
        for key, ratio in ratios.items():
            off = abs(np.log(max(ratio, 1e-9)))
            if off <= np.log(VOLUME_TOLERANCE):
                continue
            baseline = metrics["baselines"][best[0]].get(key) if best else None
            if baseline is None or abs(np.log(max(baseline, 1e-9))) < off:
                theirs = f", {best[0]} {baseline:.2f}" if baseline is not None else ""
                return f"its held-out forecast totals {ratio:.2f}x the units sold ({key}{theirs})"
        return None

    def upcoming_promotion_columns(self) -> list[str]:
        return [c for c in self.state["features"] if UPCOMING.search(c)]

    def outputs(self, model, as_of: date) -> dict[str, pd.DataFrame]:
        frame = self.serving_frame(as_of)
        if frame.empty:
            return {}
        forecasts = self.predict(model, frame)
        rows = self.forecast_rows(frame, as_of, forecasts)
        promotions = self.upcoming_promotion_columns()
        if promotions:
            # The forecast with and without the promotions planned ahead: their expected effect.
            without = self.predict(model, without_upcoming_promotions(frame, promotions))
            rows[tables.DEMAND_FORECASTS]["uplift_units"] = (forecasts - without).ravel().astype("float32")
        return rows

    def promotion_check(self, model, test: pd.DataFrame, forecasts: np.ndarray) -> dict:
        """On held-out rows with a promotion planned in the horizon: how many, the model's MASE there
        against the moving average's, the uplift the model predicts and the lift the data shows
        (actual units over the 28-day moving average's forecast, promoted vs not promoted rows)."""
        promotions = self.upcoming_promotion_columns()
        if not promotions or test.empty:
            return {}
        promoted = (test[promotions].apply(pd.to_numeric, errors="coerce").fillna(0) > 0).any(axis=1).to_numpy()
        if not promoted.any():
            return {"promoted_rows": 0}
        without = self.predict(model, without_upcoming_promotions(test, promotions))
        h = self.state["horizons"][-1]
        actual = test[f"units_next_{h}d"].to_numpy(dtype="float64")
        average = self.baseline_forecasts(test, h)["moving_average_28d"]

        def lift(mask: np.ndarray) -> float | None:
            base = average[mask]
            return float(actual[mask].sum() / base.sum()) if mask.any() and base.sum() > 0 else None

        scale = self.state["scales"][-1]
        return {
            "horizon_days": h,
            "promoted_rows": int(promoted.sum()),
            "mase_promoted": mase(actual[promoted], forecasts[promoted, -1], scale),
            "mase_promoted_moving_average_28d": mase(actual[promoted], average[promoted], scale),
            "predicted_uplift_share": float(
                (forecasts[promoted, -1] - without[promoted, -1]).sum() / max(without[promoted, -1].sum(), 1e-9)
            ),
            "observed_lift_promoted": lift(promoted),
            "observed_lift_not_promoted": lift(~promoted),
        }

    def baseline_outputs(self, train: pd.DataFrame, as_of: date) -> dict[str, dict[str, pd.DataFrame]]:
        frame = self.serving_frame(as_of)
        if frame.empty:
            return {}
        per_horizon = [self.baseline_forecasts(frame, h) for h in self.state["horizons"]]
        return {
            name: self.forecast_rows(frame, as_of, np.stack([f[name] for f in per_horizon], axis=1))
            for name in per_horizon[0]
        }

    def forecast_rows(self, frame: pd.DataFrame, as_of: date, forecasts: np.ndarray) -> dict[str, pd.DataFrame]:
        """``forecasts`` (series x horizons, units over each horizon from ``as_of``) as table rows."""
        horizons = self.state["horizons"]
        n = len(frame)
        return {
            tables.DEMAND_FORECASTS: pd.DataFrame(
                {
                    "level": self.key.removesuffix("_id"),
                    "series_id": np.repeat(frame[self.key].astype(str).to_numpy(), len(horizons)),
                    "forecast_origin": as_of,
                    "horizon_days": np.tile(np.array(horizons, dtype="int32"), n),
                    "forecast_units": forecasts.ravel().astype("float32"),
                }
            )
        }

    def plot(self, run_dir: Path, metrics: dict, history: dict) -> list[str]:
        series = {"deep": metrics["test"], **metrics["baselines"]}
        return [
            plots.training_curves(run_dir / "training_loss.png", history, f"{self.name}: scaled absolute error"),
            plots.grouped_bars(
                run_dir / f"{self.name}.png", series, "MASE on held-out weeks (lower is better)", "MASE"
            ),
        ]


class CategoryDemandTask(DemandTask):
    name = "category_demand"
    dataset_kind = "category_demand"
    shard_key = "category"
    key = "category"
