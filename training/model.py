"""The base of every lakecart model: a TFRS model whose reported loss is a mean over batches.

``tfrs.Model``'s training and evaluation steps return the *batch's* loss tensor, and Keras reports
what the last step returned: an epoch's ``loss``, its ``val_loss`` and ``evaluate``'s loss were those
of one batch (two batches of losses 1 and 9 report 9). Early stopping then chose epochs by the
validation set's last batch, and the training curves plotted one batch per epoch. Here the loss is a
``Mean`` metric, which Keras resets at the start of each epoch and of each evaluation, so it is the
mean over the epoch's (or the evaluation's) batches; Horovod's metric callback then averages it over
workers. The regularisation losses are added in as TFRS does and not reported apart (no model here
has any: TFRS printed ``regularization_loss: 0.0000e+00`` twice per epoch). Plain TFRS and Keras: no
Horovod here.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs


class Model(tfrs.Model):
    """Subclasses define ``compute_loss(features, training)`` as for ``tfrs.Model``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Set past Keras' attribute tracking: a tracked metric's variables would be model weights
        # (saved, broadcast, and different on every worker, which holds its own batches' mean).
        object.__setattr__(self, "_loss_mean", tf.keras.metrics.Mean(name="loss"))

    @property
    def metrics(self) -> list:
        """What each step reports and Keras resets at every epoch and evaluation."""
        return [*super().metrics, self._loss_mean]

    def _total_loss(self, inputs, training: bool) -> tf.Tensor:
        loss = self.compute_loss(inputs, training=training)
        return loss + tf.add_n(self.losses) if self.losses else loss

    def _results(self, loss: tf.Tensor) -> dict[str, tf.Tensor]:
        self._loss_mean.update_state(loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self._total_loss(inputs, training=True)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._results(loss)

    def test_step(self, inputs):
        return self._results(self._total_loss(inputs, training=False))
