"""Churn: will a customer make no purchase in the next N days (N: the training set's horizon)?

The deep model (``lakecart.training.churn``) reads the customer's recent items and categories and
the activity, recency, frequency and monetary features as of each observation date, and for a shop
that sends order lines its order rhythm, baskets, discounts and breadth (``customer_orders_v1``,
180 days; empty for a clickstream-only shop, whose inputs are then constant). Its bars, both
fitted on the same training split, are logistic regression on recency/frequency/monetary features
and the BG/NBD "buy till you die" model (``lakecart.training.bgnbd``), whose churn score is its
probability of no purchase within the horizon: ROC-AUC, PR-AUC, Brier score, lift in the top decile
and a reliability plot for all three.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.features import customer_orders_v1, user_activity_v2, user_sequences_v1
from lakecart.features.orders import CUSTOMER_DAYS
from lakecart.features.pit import feature_prefix
from lakecart.training import bgnbd, plots
from lakecart.training import data as training_data
from lakecart.training.evaluate import binary_metrics, reliability
from lakecart.training.inputs import TowerSpec, pad_sequences
from lakecart.training.tasks.base import ModelTask, TrainParams, feature_columns, features_as_of, numeric_matrix

# The roles of the views the churn set joins (``jobs.training_set``); outputs read every view the
# set recorded (``ModelTask.views``).
ACTIVITY = user_activity_v2.table_name
SEQUENCES = user_sequences_v1.table_name
ORDERS = customer_orders_v1.table_name  # a shop with order lines: rhythm, baskets, discounts over 180 days
SEQUENCE_LENGTH = 10
RECENT_ITEMS = f"{feature_prefix(SEQUENCES)}recent_items"
RECENT_CATEGORIES = f"{feature_prefix(SEQUENCES)}recent_categories"
WINDOW_DAYS = 90  # the trailing window of the activity features
NO_EVENT_DAYS = WINDOW_DAYS + 1  # "days since" beyond the 90-day window: no such event on record
RFM = tuple(
    f"{feature_prefix(ACTIVITY)}{name}"
    for name in ("days_since_active", "days_since_purchase", "purchase_days_90d", "spend_per_purchase_90d")
)


def with_recency_filled(frame: pd.DataFrame) -> pd.DataFrame:
    """A missing "days since" means longer ago than the window, not 0 days."""
    frame = frame.copy()
    for prefix, window in ((feature_prefix(ACTIVITY), WINDOW_DAYS), (feature_prefix(ORDERS), CUSTOMER_DAYS)):
        for column in [c for c in frame.columns if c.startswith(f"{prefix}days_since_")]:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(window + 1)
    return frame


def rfm_matrix(frame: pd.DataFrame) -> np.ndarray:
    return numeric_matrix(with_recency_filled(frame), list(RFM)).astype("float64")


def bgnbd_summary(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """BG/NBD's (x, t_x) per row, for T = ``WINDOW_DAYS``: only the trailing 90-day window is observed.

    An approximation: the window's start stands in for each customer's "birth" (BG/NBD's time 0, the
    first purchase, which the model does not count), so x is every purchase day in the window
    (``purchase_days_90d``) and t_x = 90 - ``days_since_purchase`` (0-89) the day of the last one, 1-90
    (0 when x = 0). Purchases before the window are ignored, and every row (customer x observation
    date) is fitted as a customer of its own. A missing count is 0 purchase days; a row with purchase
    days but no recency on record gets the window's first day, t_x = 1 (t_x = 0 with x > 0 would make
    the likelihood unbounded).
    """
    recency, frequency = RFM[1], RFM[2]
    values = frame.reindex(columns=[recency, frequency]).apply(pd.to_numeric, errors="coerce")
    x = values[frequency].fillna(0.0).clip(lower=0.0).to_numpy(dtype="float64")
    days_since = values[recency].fillna(NO_EVENT_DAYS).to_numpy(dtype="float64")
    t_x = np.where(x > 0, np.clip(WINDOW_DAYS - days_since, 1.0, WINDOW_DAYS), 0.0)
    return x, t_x


class ChurnTask(ModelTask):
    name = "churn"
    dataset_kind = "churn"
    shard_key = "user_id"
    primary_metric = "pr_auc"
    defaults = {"epochs": 15, "global_batch_size": 256, "learning_rate": 0.003}
    validate_on_groups = "user_id"
    output_tables = (tables.CHURN_SCORES,)
    params = {
        "embedding_dim": "width of the item and category embeddings (default 16)",
        "hidden_layers": "units of the hidden ReLU layers (default [64, 32])",
    }

    def state_columns(self) -> list[str]:
        return [RECENT_ITEMS, RECENT_CATEGORIES]

    def fit_state(self, full: pd.DataFrame) -> None:
        from lakecart.training.inputs import vocabulary

        self.state = {
            "items": vocabulary(full[RECENT_ITEMS]),
            "categories": vocabulary(full[RECENT_CATEGORIES]),
            "features": feature_columns(
                training_data.numeric_columns(self.table_uri),
                (feature_prefix(ACTIVITY), feature_prefix(ORDERS), f"{feature_prefix(SEQUENCES)}recent_length"),
            ),
        }

    def inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        inputs = {
            "recent_items": pad_sequences(list(frame[RECENT_ITEMS]), SEQUENCE_LENGTH),
            "recent_categories": pad_sequences(list(frame[RECENT_CATEGORIES]), SEQUENCE_LENGTH),
            "numeric": numeric_matrix(with_recency_filled(frame), self.state["features"]),
        }
        if "churned" in frame.columns:
            inputs["label"] = frame["churned"].to_numpy(dtype="float32")
        return inputs

    def build(self, params: TrainParams):
        from lakecart.training.churn import ChurnModel

        spec = TowerSpec(
            sequences={"recent_items": self.state["items"], "recent_categories": self.state["categories"]},
            numeric="numeric",
            numeric_stats=self.numeric_stats("numeric"),
            n_numeric=len(self.state["features"]),
            embedding_dim=int(params.extra.get("embedding_dim", 16)),
        )
        return ChurnModel(spec, hidden_layers=tuple(params.extra.get("hidden_layers", (64, 32))))

    def fit_baselines(self, train: pd.DataFrame) -> dict[str, Callable[[pd.DataFrame], np.ndarray]]:
        """The baselines fitted on ``train``: name -> churn probability of any rows."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        regression = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        regression.fit(rfm_matrix(train), train["churned"].to_numpy())
        horizon = self.horizon_days()
        bg_nbd = bgnbd.fit(*bgnbd_summary(train), WINDOW_DAYS)
        return {
            "logistic_regression_rfm": lambda frame: regression.predict_proba(rfm_matrix(frame))[:, 1],
            "bg_nbd": lambda frame: bgnbd.p_no_purchase(bg_nbd, *bgnbd_summary(frame), WINDOW_DAYS, horizon),
        }

    def horizon_days(self) -> int:
        return int(self.manifest["params"]["horizon_days"])

    def evaluate(self, model, train: pd.DataFrame, test: pd.DataFrame) -> dict:
        y = test["churned"].to_numpy()
        scores = {"deep": self.predict(model, test)[:, 0]}
        scores.update({name: score(test) for name, score in self.fit_baselines(train).items()})
        return {
            "test": binary_metrics(y, scores["deep"]),
            "baselines": {name: binary_metrics(y, p) for name, p in scores.items() if name != "deep"},
            "reliability": {name: reliability(y, p) for name, p in scores.items()},
        }

    def serving_frame(self, as_of: date) -> pd.DataFrame:
        """Every customer with features as of the end of ``as_of``."""
        frame = features_as_of(self.settings, self.views, "user_id", as_of, how="outer")
        for column in self.state_columns():
            if column not in frame.columns:
                frame[column] = None
        return frame

    def outputs(self, model, as_of: date) -> dict[str, pd.DataFrame]:
        frame = self.serving_frame(as_of)
        return self.score_rows(frame, as_of, self.predict(model, frame)[:, 0]) if len(frame) else {}

    def baseline_outputs(self, train: pd.DataFrame, as_of: date) -> dict[str, dict[str, pd.DataFrame]]:
        frame = self.serving_frame(as_of)
        if not len(frame):
            return {}
        return {name: self.score_rows(frame, as_of, score(frame)) for name, score in self.fit_baselines(train).items()}

    def score_rows(self, frame: pd.DataFrame, as_of: date, probability: np.ndarray) -> dict[str, pd.DataFrame]:
        return {
            tables.CHURN_SCORES: pd.DataFrame(
                {
                    "user_id": frame["user_id"].astype(str),
                    "as_of": as_of,
                    "horizon_days": np.int32(self.horizon_days()),
                    "churn_probability": np.asarray(probability).astype("float32"),
                }
            )
        }

    def plot(self, run_dir: Path, metrics: dict, history: dict) -> list[str]:
        return [
            *plots.binary_classifier(run_dir, "churn", "deep", metrics, history, "churn, held-out observation dates"),
            plots.reliability_diagram(run_dir / "reliability.png", metrics["reliability"]),
        ]
