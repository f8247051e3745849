"""Deep churn model: will a customer make no purchase in the next N days? Plain Keras and TFRS.

One :class:`~lakecart.training.towers.Tower` reads the customer's recent item and category
sequence (averaged embeddings) and the recency/frequency/monetary and activity-window features;
ReLU layers and a sigmoid give the probability, trained with binary cross-entropy (so the output
is a calibrated probability, checked by the Brier score and the reliability plot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import tensorflow as tf
import tensorflow_recommenders as tfrs

from lakecart.training.inputs import TowerSpec
from lakecart.training.model import Model
from lakecart.training.towers import Tower


class ChurnModel(Model):
    def __init__(
        self, inputs: TowerSpec, hidden_layers: Sequence[int] = (64, 32), dropout: float = 0.1, label: str = "label"
    ) -> None:
        super().__init__()
        self.label = label
        self.body = Tower(replace(inputs, hidden_layers=tuple(hidden_layers), output_dim=None), name="customer")
        self.dropout = tf.keras.layers.Dropout(dropout)
        self.head = tf.keras.layers.Dense(1, activation="sigmoid")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(), metrics=[tf.keras.metrics.AUC(name="auc")]
        )

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.head(self.dropout(self.body(features, training=training), training=training))

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        # Metrics on every step: the epoch's training AUC is over its training batches (never
        # updated, it would log 0.0 for every epoch).
        return self.task(labels=features[self.label], predictions=self(features, training=training))
