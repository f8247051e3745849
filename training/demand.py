"""Deep demand model: units an item (or a category) will sell over each of several horizons.
Plain Keras and TFRS.

Inputs: the entity id, calendar (weekday, day of month of the forecast origin), and lags, rolling
means, prices and popularity from the feature store. Every horizon's output is a non-negative
*daily rate* (softplus); the forecast for horizon h is h times that rate. The loss is the mean
absolute error of the forecasts, each scaled by the in-sample seasonal-naive error of its horizon,
so training minimises the MASE the model is judged by (absolute error: the median is optimal,
which suits intermittent sales).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import tensorflow as tf
import tensorflow_recommenders as tfrs

from lakecart.training.inputs import TowerSpec
from lakecart.training.towers import Tower


class DemandModel(tfrs.Model):
    def __init__(
        self,
        inputs: TowerSpec,
        horizons: Sequence[int],
        scales: Sequence[float],
        hidden_layers: Sequence[int] = (64, 32),
        label: str = "label",
    ) -> None:
        super().__init__()
        self.label = label
        self.horizons = tf.constant([float(h) for h in horizons])
        self.scales = tf.constant([float(s) for s in scales])
        self.body = Tower(replace(inputs, hidden_layers=tuple(hidden_layers), output_dim=None), name="series")
        self.rate = tf.keras.layers.Dense(len(horizons), activation="softplus")
        self.mae = tf.keras.metrics.Mean(name="scaled_mae")

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Forecast units for every horizon, shape (batch, horizons)."""
        return self.rate(self.body(features, training=training)) * self.horizons

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        error = tf.abs(tf.cast(features[self.label], tf.float32) - self(features, training=training)) / self.scales
        loss = tf.reduce_mean(error)
        if not training:
            self.mae.update_state(loss)
        return loss
