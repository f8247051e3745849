"""Ranking: will a user who viewed an item buy it? A deep & cross network over user-item pairs.

Examples come from the retrieval training set: one per (user, item, day) with a product view; the
label is whether the user bought that item that day. Features are the user's activity windows and
the item's popularity windows as of the first view (point in time, from the feature store), the
ids, category and device. Evaluated by ROC-AUC and PR-AUC on the held-out days against the item's
own conversion rate. As the second stage, it re-ranks the candidates of the *published* retrieval
model (the registry's champion, or the baseline published in its place) into the final top-k list.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.features import item_popularity_v1, user_activity_v1
from lakecart.features.pit import feature_prefix
from lakecart.training import data as training_data
from lakecart.training import plots
from lakecart.training.evaluate import binary_metrics
from lakecart.training.inputs import TowerSpec
from lakecart.training.tasks.base import (
    ModelTask,
    TrainParams,
    feature_columns,
    features_as_of,
    id_array,
    numeric_matrix,
)

USER_VIEW = user_activity_v1.table_name
ITEM_VIEW = item_popularity_v1.table_name
BASELINE = f"{feature_prefix(ITEM_VIEW)}conversion_rate_7d"
BASELINE_NAME = "item_conversion_rate"  # the baseline that scores by BASELINE


def view_purchase_pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """Interactions -> one row per (user, item, day) with a view, features of the first view,
    ``label`` 1 when the same user bought the same item the same day."""
    keys = ["user_id", "item_id", "event_date"]
    bought = rows[rows["event_type"] == "purchase"][keys].drop_duplicates().assign(label=1.0)
    views = rows[rows["event_type"] == "product_view"].sort_values("event_time", kind="stable")
    first = views.drop_duplicates(keys, keep="first")
    pairs = first.merge(bought, on=keys, how="left")
    pairs["label"] = pairs["label"].fillna(0.0).astype("float32")
    return pairs.reset_index(drop=True)


class RankingTask(ModelTask):
    name = "ranking"
    dataset_kind = "retrieval"
    shard_key = "user_id"
    primary_metric = "roc_auc"
    defaults = {"epochs": 8, "global_batch_size": 512, "learning_rate": 0.005}
    output_tables = (tables.RANKED_RECOMMENDATIONS,)
    upstream = ("retrieval",)  # re-ranks the published retrieval model's candidates
    params = {
        "embedding_dim": "width of every id embedding (default 16)",
        "deep_layers": "units of the deep ReLU layers after the cross layer (default [64, 32])",
    }

    def cannot_train(self) -> str | None:
        event_types = self.read_columns(["event_type"])["event_type"]
        if len(event_types) and not (event_types == "product_view").any():
            return (
                f"{self.dataset_id} has no product views: ranking learns which viewed items are bought, so it needs "
                "a clickstream (a shop that sends only orders gets retrieval's order instead)"
            )
        return None

    def examples(self, frame: pd.DataFrame) -> pd.DataFrame:
        return view_purchase_pairs(frame)

    def state_columns(self) -> list[str]:
        return ["user_id", "item_id", "category", "device"]

    def fit_state(self, full: pd.DataFrame) -> None:
        numeric = training_data.numeric_columns(self.table_uri)
        self.state = {
            "users": sorted(full["user_id"].dropna().astype(str).unique()),
            "items": sorted(full["item_id"].dropna().astype(str).unique()),
            "categories": sorted(full["category"].dropna().astype(str).unique()),
            "devices": sorted(full["device"].dropna().astype(str).unique()),
            "features": feature_columns(numeric, (feature_prefix(USER_VIEW), feature_prefix(ITEM_VIEW))),
        }

    def inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        inputs = {
            "user_id": id_array(frame["user_id"]),
            "item_id": id_array(frame["item_id"]),
            "category": id_array(frame["category"]),
            "device": id_array(frame["device"]),
            "numeric": numeric_matrix(frame, self.state["features"]),
        }
        if "label" in frame.columns:
            inputs["label"] = frame["label"].to_numpy(dtype="float32")
        return inputs

    def build(self, params: TrainParams):
        from lakecart.training.ranking import DCNRanking

        s = self.state
        spec = TowerSpec(
            ids={"user_id": s["users"], "item_id": s["items"], "category": s["categories"], "device": s["devices"]},
            numeric="numeric",
            numeric_stats=self.numeric_stats("numeric"),
            n_numeric=len(s["features"]),
            embedding_dim=int(params.extra.get("embedding_dim", 16)),
        )
        return DCNRanking(spec, deep_layers=tuple(params.extra.get("deep_layers", (64, 32))), objective="binary")

    @staticmethod
    def baseline_scores(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The baseline: each pair scored by the item's own conversion rate (0 when unknown)."""
        rate = frame[BASELINE] if BASELINE in frame.columns else pd.Series(0.0, index=frame.index)
        return {BASELINE_NAME: pd.to_numeric(rate, errors="coerce").fillna(0.0).to_numpy()}

    def evaluate(self, model, train: pd.DataFrame, test: pd.DataFrame) -> dict:
        y = test["label"].to_numpy()
        return {
            "test": binary_metrics(y, self.predict(model, test)[:, 0]),
            "baselines": {name: binary_metrics(y, p) for name, p in self.baseline_scores(test).items()},
        }

    def candidates(self, as_of: date) -> pd.DataFrame | None:
        """The candidates of the *published* retrieval model (or baseline), with the features each
        pair has as of the end of ``as_of``; None when retrieval has published nothing yet."""
        from lakecart.training.publish import published_artefact

        path = published_artefact(self.settings, self.upstream[0], "candidates")
        if path is None:
            return None
        frame = pd.read_parquet(path).rename(columns={"rank": "retrieval_rank", "score": "retrieval_score"})
        frame = frame.assign(device="")
        catalogue = training_data.read_pinned(
            self.settings, self.dataset_id, tables.SILVER_ITEMS, ["item_id", "category"]
        )
        frame = frame.merge(catalogue, on="item_id", how="left")
        for view, key in ((USER_VIEW, "user_id"), (ITEM_VIEW, "item_id")):
            rows = features_as_of(self.settings, (view,), key, as_of, how="left", keys=sorted(set(frame[key])))
            frame = frame.merge(rows, on=key, how="left")
        return frame

    def outputs(self, model, as_of: date) -> dict[str, pd.DataFrame]:
        """The published retrieval model's candidates, re-ranked: the final top-k list."""
        frame = self.candidates(as_of)
        return self.ranked_rows(frame, self.predict(model, frame)[:, 0]) if frame is not None else {}

    def baseline_outputs(self, train: pd.DataFrame, as_of: date) -> dict[str, dict[str, pd.DataFrame]]:
        frame = self.candidates(as_of)
        if frame is None:
            return {}
        return {name: self.ranked_rows(frame, scores) for name, scores in self.baseline_scores(frame).items()}

    def ranked_rows(self, frame: pd.DataFrame, scores: np.ndarray) -> dict[str, pd.DataFrame]:
        frame = frame.assign(score=np.asarray(scores).astype("float32"))
        frame = frame.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
        frame["rank"] = frame.groupby("user_id").cumcount().astype("int32") + 1
        top = frame[frame["rank"] <= self.settings.training.top_k]
        columns = ["user_id", "rank", "item_id", "score", "retrieval_rank", "retrieval_score"]
        return {tables.RANKED_RECOMMENDATIONS: top[columns].reset_index(drop=True)}

    def save_artifacts(self, model, run_dir: Path) -> dict[str, str]:
        """The serving artefact: the model with its preprocessing as a SavedModel that takes raw ids
        and raw feature values (``lakecart.serving.rerank``), so serving re-implements no feature."""
        from lakecart.serving.rerank import SCORER, export_scorer

        catalogue = training_data.read_pinned(
            self.settings, self.dataset_id, tables.SILVER_ITEMS, ["item_id", "category"]
        )
        return {SCORER: str(export_scorer(model, self.state["features"], catalogue, run_dir / SCORER))}

    def plot(self, run_dir: Path, metrics: dict, history: dict) -> list[str]:
        return plots.binary_classifier(
            run_dir, "ranking", "DCN", metrics, history, "purchase given a view, held-out days"
        )
