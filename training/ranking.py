"""Deep & cross network (DCN-v2) ranking model scoring user-item pairs. Plain Keras and TFRS.

Every input is embedded (or normalised) by one :class:`~lakecart.training.towers.Tower` without
hidden layers; the concatenation ``x0`` goes through cross layers (explicit feature crosses,
``x_{l+1} = x0 * (W x_l + b) + x_l``) and then a deep ReLU stack, as in the TFRS DCN tutorial.
``objective="rating"`` regresses a rating (MSE, RMSE reported); ``"binary"`` predicts a
probability (purchase given a view; binary cross-entropy, ROC-AUC reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import tensorflow as tf
import tensorflow_recommenders as tfrs

from lakecart.training.inputs import TowerSpec
from lakecart.training.model import Model
from lakecart.training.towers import Tower


class DCNRanking(Model):
    def __init__(
        self,
        inputs: TowerSpec,
        cross_layers: int = 1,
        deep_layers: Sequence[int] = (192, 192),
        projection_dim: int | None = None,
        objective: str = "rating",
        label: str = "label",
        weight: str | None = None,
    ) -> None:
        super().__init__()
        if objective not in ("rating", "binary"):
            raise ValueError(f"objective must be 'rating' or 'binary', not {objective!r}")
        self.label = label
        # Optional per-example loss weights, read from this input (None: every example weighs 1).
        self.weight = weight
        self.embed = Tower(replace(inputs, hidden_layers=(), output_dim=None), name="inputs")
        self.cross = [tfrs.layers.dcn.Cross(projection_dim=projection_dim) for _ in range(cross_layers)]
        self.deep = [tf.keras.layers.Dense(units, activation="relu") for units in deep_layers]
        self.head = tf.keras.layers.Dense(1, activation="sigmoid" if objective == "binary" else None)
        if objective == "binary":
            loss, metrics = tf.keras.losses.BinaryCrossentropy(), [tf.keras.metrics.AUC(name="auc")]
        else:
            loss, metrics = tf.keras.losses.MeanSquaredError(), [tf.keras.metrics.RootMeanSquaredError("rmse")]
        self.task = tfrs.tasks.Ranking(loss=loss, metrics=metrics)

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        x0 = self.embed(features, training=training)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        for layer in self.deep:
            x = layer(x)
        return self.head(x)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        # Metrics on every step: the epoch's training AUC is over its training batches (never
        # updated, it would log 0.0 for every epoch).
        predictions = self(features, training=training)
        if self.weight is None:
            return self.task(labels=features[self.label], predictions=predictions)
        # Labels and weights shaped like the (batch, 1) predictions: the metrics broadcast the
        # weights against the labels.
        labels = tf.reshape(features[self.label], tf.shape(predictions))
        weights = tf.reshape(features[self.weight], tf.shape(predictions))
        return self.task(labels=labels, predictions=predictions, sample_weight=weights)
