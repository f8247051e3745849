"""The models' base (``training/model.py``): the loss an epoch and an evaluation report is the mean
over their batches, which early stopping and the training curves read."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from lakecart.training.churn import ChurnModel  # noqa: E402
from lakecart.training.demand import DemandModel  # noqa: E402
from lakecart.training.model import Model  # noqa: E402
from lakecart.training.ranking import DCNRanking  # noqa: E402
from lakecart.training.retrieval import TwoTowerRetrieval  # noqa: E402


class Squares(Model):
    """Loss: the mean of (x - w)^2 over a batch; w stays 0 (learning rate 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(0.0)

    def compute_loss(self, features, training=False):
        return tf.reduce_mean(tf.square(features["x"] - self.w))


def test_the_reported_loss_is_the_mean_over_the_batches_not_the_last_one():
    model = Squares()
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    # Two batches: losses 1 and 9. TFRS's own steps report the last batch's, 9.
    batches = tf.data.Dataset.from_tensor_slices({"x": np.array([1.0, 1.0, 3.0, 3.0], "float32")}).batch(2)
    assert model.evaluate(batches, verbose=0, return_dict=True) == {"loss": pytest.approx(5.0)}
    history = model.fit(batches, epochs=2, validation_data=batches, verbose=0).history
    # Each epoch starts its mean afresh (not 5 then the mean of four batches by luck: same values).
    assert history == {"loss": [pytest.approx(5.0)] * 2, "val_loss": [pytest.approx(5.0)] * 2}
    model.fit(batches.take(1), epochs=1, verbose=0)
    assert model.evaluate(batches.take(1), verbose=0) == pytest.approx(1.0)  # reset before evaluating
    # The mean is no model weight: it would be saved, and differ between workers.
    assert [v.name for v in model.weights] == ["Variable:0"]


def test_every_model_reports_its_loss_as_a_mean():
    for model_class in (ChurnModel, DemandModel, DCNRanking, TwoTowerRetrieval):
        assert issubclass(model_class, Model), model_class
