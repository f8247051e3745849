"""Real-time re-ranking with the published ranking model.

Training exports the ranking model as a SavedModel, ``<run>/scorer`` (``export_scorer``, called by
``RankingTask.save_artifacts``), whose one signature takes raw strings and raw feature values:

- ``user_id``, ``item_id``, ``device``: ``string[n]``; the item's category is looked up *inside* the
  model (the catalogue the training set was built with), as are the id vocabularies (StringLookup);
- ``features``: ``float32[n, f]``, the model's feature columns (``<view>__<feature>``, in the order of
  the model's own ``feature_names`` variable) exactly as the feature store holds them, NaN when
  missing; the log scaling and the training-time normalisation happen inside the model.

So serving re-implements no feature: ``Ranker.score`` only places the online store's values (by
column name) into that matrix. When the gate published the item-conversion-rate baseline in place of
a model, ``FeatureRanker`` scores by that column, which is what was published.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart.config import Settings
from lakecart.errors import LakecartError

SCORER = "scorer"  # the SavedModel's folder in a ranking run


class NoRankingModel(LakecartError):
    """Nothing usable is published for ranking (no model, or one without a serving export)."""


def export_scorer(model, features: Sequence[str], catalogue: pd.DataFrame, path: Path) -> Path:
    """Save ``model`` (a trained ``DCNRanking``) with its preprocessing as a SavedModel at ``path``.

    ``features``: the model's numeric columns in input order; ``catalogue``: item_id -> category."""
    import tensorflow as tf

    from lakecart.training.inputs import PAD

    module = tf.Module()
    module.model = model
    module.feature_names = tf.Variable(list(features) or [PAD], dtype=tf.string, trainable=False)
    module.n_features = tf.Variable(len(features), trainable=False)
    pairs = catalogue.dropna(subset=["item_id"]).drop_duplicates("item_id")
    module.categories = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(pairs["item_id"].astype(str).tolist() or [PAD]),
            tf.constant(pairs["category"].fillna(PAD).astype(str).tolist() or [PAD]),
        ),
        default_value=PAD,
    )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None], tf.string, name="item_id"),
            tf.TensorSpec([None], tf.string, name="device"),
            tf.TensorSpec([None, len(features)], tf.float32, name="features"),
        ]
    )
    def score(user_id, item_id, device, features):
        # training.inputs.scale_counts: missing -> 0, then sign(x) * log1p(|x|).
        values = tf.where(tf.math.is_nan(features), tf.zeros_like(features), features)
        inputs = {
            "user_id": user_id,
            "item_id": item_id,
            "device": device,
            "category": module.categories.lookup(item_id),
            "numeric": tf.sign(values) * tf.math.log1p(tf.abs(values)),
        }
        return {"score": tf.reshape(module.model(inputs, training=False), [-1])}

    module.score = score
    tf.saved_model.save(module, str(path), signatures={"serving_default": score})
    return path


@dataclass
class Ranker:
    """The published ranking model's SavedModel, loaded once per process."""

    model_version: str
    feature_names: list[str]
    _score: object

    @classmethod
    def load(cls, path: Path, model_version: str) -> Ranker:
        import tensorflow as tf

        if not (Path(path) / "saved_model.pb").exists():
            raise NoRankingModel(_no_export(model_version, path))
        loaded = tf.saved_model.load(str(path))
        names = [v.decode() for v in loaded.feature_names.numpy()][: int(loaded.n_features.numpy())]
        ranker = cls(model_version, names, loaded.score)
        ranker._loaded = loaded  # keeps the tables and variables the function captures alive
        return ranker

    def score(
        self,
        user_id: str,
        item_ids: Sequence[str],
        user_row: Mapping | None,
        item_rows: Sequence[Mapping | None],
        device: str = "",
    ) -> np.ndarray:
        """Scores of ``item_ids`` for ``user_id`` (higher: likelier bought). ``user_row`` and
        ``item_rows`` are the online store's feature rows (None: unknown entity, features missing)."""
        import tensorflow as tf

        matrix = feature_matrix(self.feature_names, user_row, item_rows)
        n = len(item_ids)
        out = self._score(
            tf.constant([user_id] * n),
            tf.constant(list(item_ids)),
            tf.constant([device] * n),
            tf.constant(matrix),
        )
        return out["score"].numpy() if isinstance(out, dict) else out.numpy().reshape(-1)


@dataclass
class FeatureRanker:
    """A published baseline in the ranking model's place: scores are one feature column (0 when missing)."""

    model_version: str
    column: str

    @property
    def feature_names(self) -> list[str]:
        return [self.column]

    def score(self, user_id, item_ids, user_row, item_rows, device: str = "") -> np.ndarray:
        matrix = feature_matrix([self.column], user_row, item_rows)
        return np.nan_to_num(matrix[:, 0], nan=0.0)


def feature_matrix(names: Sequence[str], user_row: Mapping | None, item_rows: Sequence[Mapping | None]) -> np.ndarray:
    """``float32[len(item_rows), len(names)]``: each column from the item's row, else the user's
    (column names are ``<view>__<feature>``, so they never collide); NaN when neither has it."""
    user_row = user_row or {}
    columns = []
    for name in names:
        default = user_row.get(name)
        columns.append([item.get(name, default) if item else default for item in item_rows])
    try:
        return np.array(columns, dtype="float32").reshape(len(names), len(item_rows)).T.copy()  # None -> NaN
    except (TypeError, ValueError):  # a non-numeric value is no number the model was trained on: missing
        return np.array([[_number(v) for v in column] for column in columns], dtype="float32").T.copy()


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def load_published(settings: Settings) -> Ranker | FeatureRanker:
    """What ``gold.model_registry`` has published for ranking: the model's scorer, or the baseline
    column published in its place."""
    from lakecart.training.publish import champion, fetch_run
    from lakecart.training.tasks.ranking import BASELINE, BASELINE_NAME

    current = champion(settings, "ranking")
    if current is None:
        raise NoRankingModel("no ranking model is published: `lakecart train ranking`, then evaluate and publish")
    if current.get("kind") == "baseline":
        baseline = json.loads(current["params"]).get("baseline")
        if baseline != BASELINE_NAME:
            raise NoRankingModel(f"the published ranking baseline {baseline!r} has no serving equivalent")
        return FeatureRanker(current["model_version"], BASELINE)
    # The registry records a lake location: on a bucket lake the scorer is fetched to the local copy.
    uri = f"{current['artifact_path']}/{SCORER}"
    try:
        path = fetch_run(settings, uri)
    except FileNotFoundError:
        raise NoRankingModel(_no_export(current["model_version"], uri)) from None
    return Ranker.load(path, current["model_version"])


def _no_export(model_version: str, where: object) -> str:
    return (
        f"the published ranking model {model_version} has no serving export at {where}: "
        "retrain it (`lakecart train ranking`), evaluate and publish"
    )
