"""Two-tower retrieval model (TensorFlow Recommenders). A plain Keras library: no Horovod here.

Query tower: user id embedding + the user's point-in-time activity features.
Candidate tower: item id embedding + category embedding.
Loss: in-batch softmax over the candidates of each batch (``tfrs.tasks.Retrieval``), with the
sampling-bias (logQ) correction: in-batch negatives are drawn in proportion to popularity, so without
it the model learns to push popular items down. Inputs may carry ``candidate_probability``, the
chance of an item appearing as a candidate in a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs


class QueryTower(tf.keras.Model):
    def __init__(self, user_ids: Sequence[str], n_user_features: int, dim: int) -> None:
        super().__init__()
        self.user_embedding = tf.keras.Sequential(
            [tf.keras.layers.StringLookup(vocabulary=list(user_ids)), tf.keras.layers.Embedding(len(user_ids) + 1, dim)]
        )
        self.n_user_features = n_user_features
        self.feature_layer = tf.keras.layers.Dense(dim, activation="relu") if n_user_features else None
        self.project = tf.keras.layers.Dense(dim)

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = [self.user_embedding(inputs["user_id"])]
        if self.feature_layer is not None:
            parts.append(self.feature_layer(inputs["user_features"]))
        return self.project(tf.concat(parts, axis=1))


class CandidateTower(tf.keras.Model):
    def __init__(self, item_ids: Sequence[str], categories: Sequence[str], dim: int) -> None:
        super().__init__()
        self.item_embedding = tf.keras.Sequential(
            [tf.keras.layers.StringLookup(vocabulary=list(item_ids)), tf.keras.layers.Embedding(len(item_ids) + 1, dim)]
        )
        self.category_embedding = tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=list(categories)),
                tf.keras.layers.Embedding(len(categories) + 1, 8),
            ]
        )
        self.project = tf.keras.layers.Dense(dim)

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.project(
            tf.concat([self.item_embedding(inputs["item_id"]), self.category_embedding(inputs["category"])], axis=1)
        )


class TwoTowerRetrieval(tfrs.Model):
    def __init__(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        categories: Sequence[str],
        n_user_features: int,
        dim: int = 32,
    ) -> None:
        super().__init__()
        self.query_model = QueryTower(user_ids, n_user_features, dim)
        self.candidate_model = CandidateTower(item_ids, categories, dim)
        # Top-k metrics over the whole catalogue are computed in evaluation, not every step.
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.task(
            self.query_model(features),
            self.candidate_model(features),
            candidate_sampling_probability=features.get("candidate_probability"),
            compute_metrics=not training,
        )


def embed(tower: tf.keras.Model, inputs: dict[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Run a tower over numpy inputs in batches and return a float32 matrix."""
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    return np.concatenate([tower(batch).numpy() for batch in dataset], axis=0).astype("float32")
