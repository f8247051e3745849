"""Deep demand model: units an item (or a category) will sell over each of several horizons.
Plain Keras and TFRS.

Inputs: the entity id, calendar (weekday, day of month of the forecast origin), and lags, rolling
means, prices and popularity from the feature store. Every horizon's output is a non-negative
*daily rate* (softplus); the forecast for horizon h is h times that rate. With ``level`` (an input
of the series' recent mean daily units), the rate is a multiple of ``1 + level``, as DeepAR scales
each series by its mean: a network whose output starts near 1 cannot otherwise reach a category
that sells hundreds a day in the few hundred steps a shop's training set gives it. Two losses, each term
scaled by the in-sample seasonal-naive error of its horizon, per series with ``scale`` (an input the
task fills from the training split: each series then weighs alike, as in the per-series MASE the gate
reads; with one scale per horizon, The Complete Journey's fuel category, hundreds of thousands of
units a day, was the whole loss and the model forecast 0.01x the units sold):

- ``mae``: the absolute error, so training minimises the MASE the model is judged by. Its optimum is
  the median, which for an intermittent series (most days without a sale) is 0: on a shop's long
  tail such a model forecasts a fraction of the units sold;
- ``poisson``: the Poisson negative log-likelihood, whose optimum is the mean: forecasts that add up
  to what sells (M5's winning models used such a count likelihood, Tweedie).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import tensorflow as tf

from lakecart.training.inputs import TowerSpec
from lakecart.training.model import Model
from lakecart.training.towers import Tower

LOSSES = ("mae", "poisson")


class DemandModel(Model):
    def __init__(
        self,
        inputs: TowerSpec,
        horizons: Sequence[int],
        scales: Sequence[float],
        hidden_layers: Sequence[int] = (64, 32),
        label: str = "label",
        loss: Literal["mae", "poisson"] = "mae",
        level: str | None = None,
        scale: str | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown demand loss {loss!r}: one of {', '.join(LOSSES)}")
        self.label = label
        self.loss_name = loss
        self.level = level
        self.scale = scale
        self.horizons = tf.constant([float(h) for h in horizons])
        self.scales = tf.constant([float(s) for s in scales])
        self.body = Tower(replace(inputs, hidden_layers=tuple(hidden_layers), output_dim=None), name="series")
        self.rate = tf.keras.layers.Dense(len(horizons), activation="softplus")
        self.mae = tf.keras.metrics.Mean(name="scaled_mae")

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Forecast units for every horizon, shape (batch, horizons)."""
        rate = self.rate(self.body(features, training=training))
        if self.level is not None:
            rate = rate * (1.0 + tf.reshape(tf.cast(features[self.level], tf.float32), (-1, 1)))
        return rate * self.horizons

    def loss_scale(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """What each error is divided by: with ``scale``, that input (batch, horizons), each row's
        series' own MASE scale, so every series weighs alike as in the per-series MASE the model is
        judged by; otherwise one scale per horizon, under which a shop's largest series (a fuel
        category selling hundreds of thousands of units a day) is the whole loss."""
        if self.scale is None:
            return self.scales
        return tf.cast(features[self.scale], tf.float32)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        actual = tf.cast(features[self.label], tf.float32)
        forecast = self(features, training=training)
        scale = self.loss_scale(features)
        scaled_mae = tf.reduce_mean(tf.abs(actual - forecast) / scale)
        if self.loss_name == "poisson":
            # -log p(actual | forecast) without the term that does not depend on the forecast.
            loss = tf.reduce_mean((forecast - actual * tf.math.log(forecast + 1e-6)) / scale)
        else:
            loss = scaled_mae
        self.mae.update_state(scaled_mae)  # in training too: the epoch's log shows it, never a 0
        return loss
