"""DCNRanking's optional per-example loss weights (used by the next-basket benchmark)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from lakecart.training.inputs import TowerSpec  # noqa: E402
from lakecart.training.ranking import DCNRanking  # noqa: E402


def _model(weight: str | None) -> DCNRanking:
    tf.keras.utils.set_random_seed(0)
    return DCNRanking(TowerSpec(numeric="x", n_numeric=2), deep_layers=(4,), objective="binary", weight=weight)


def test_a_zero_weight_removes_an_example_from_the_loss():
    x = np.array([[0.5, -1.0], [2.0, 3.0]], dtype="float32")
    label = np.array([1.0, 0.0], dtype="float32")
    weighted = _model("w")
    both = weighted.compute_loss({"x": x, "label": label, "w": np.array([1.0, 0.0], dtype="float32")})
    plain = _model(None)  # same seed: same initial weights
    first = plain.compute_loss({"x": x[:1], "label": label[:1]})
    # The mean over the batch of 2 counts the zero-weight example as 0: half the first one's loss.
    assert float(both) == pytest.approx(float(first) / 2, rel=1e-5)
    # Weights of 1 change nothing.
    ones = weighted.compute_loss({"x": x, "label": label, "w": np.ones(2, dtype="float32")})
    assert float(ones) == pytest.approx(float(plain.compute_loss({"x": x, "label": label})), rel=1e-5)
