"""DemandModel's losses: the absolute error learns the median, the Poisson likelihood the mean."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from lakecart.training.demand import DemandModel  # noqa: E402
from lakecart.training.inputs import TowerSpec  # noqa: E402


def fitted_forecast(loss: str) -> float:
    """One series that sells 5 units on 1 day in 5 and nothing otherwise (mean 1, median 0): the
    1-day forecast a model with no other input learns."""
    tf.keras.utils.set_random_seed(0)
    model = DemandModel(TowerSpec(ids={"series": ["s"]}, embedding_dim=4), [1], [1.0], hidden_layers=(4,), loss=loss)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    units = np.tile([5.0, 0.0, 0.0, 0.0, 0.0], 40).astype("float32")[:, None]
    rows = {"series": np.array(["s"] * len(units)), "label": units}
    model.fit(tf.data.Dataset.from_tensor_slices(rows).batch(50), epochs=60, verbose=0)
    return float(model({"series": np.array(["s"])})[0, 0])


def test_the_absolute_error_forecasts_the_median_and_poisson_the_mean():
    assert fitted_forecast("mae") < 0.3  # the median, 0: a fifth of what sells
    assert fitted_forecast("poisson") == pytest.approx(1.0, abs=0.15)  # the mean: what sells


def test_an_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown demand loss 'tweedie': one of mae, poisson"):
        DemandModel(TowerSpec(ids={"series": ["s"]}), [1], [1.0], loss="tweedie")


def scaled_forecasts(level: str | None) -> np.ndarray:
    """Series "a" sells 300 a day and "b" 3, every day; 200 steps at the task's default learning rate."""
    tf.keras.utils.set_random_seed(0)
    spec = TowerSpec(ids={"series": ["a", "b"]}, embedding_dim=4)
    model = DemandModel(spec, [1], [1.0], hidden_layers=(4,), level=level)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.003))
    series = np.array(["a", "b"] * 40)
    rows = {"series": series, "mean": np.where(series == "a", 300.0, 3.0).astype("float32")}
    rows["label"] = rows["mean"][:, None]
    model.fit(tf.data.Dataset.from_tensor_slices(rows).batch(8), epochs=20, verbose=0)
    return model({"series": np.array(["a", "b"]), "mean": np.array([300.0, 3.0], dtype="float32")})[:, 0].numpy()


def test_a_series_scaled_by_its_level_reaches_its_magnitude():
    # Scaled by 1 + its recent mean, a series that sells hundreds a day is forecast in hundreds...
    a, b = scaled_forecasts("mean")
    assert a == pytest.approx(300, rel=0.15) and b == pytest.approx(3, rel=0.15)
    # ...where the unscaled rate, starting near 1, is still far from it after as many steps.
    assert scaled_forecasts(None)[0] < 30


def test_each_error_is_divided_by_its_own_series_scale_and_the_epoch_logs_it():
    # Two rows of a 1-day horizon whose series' MASE scales are 1 and 1000: the same error of 10
    # units counts 10 and 0.01, so a shop's largest series cannot be the whole loss.
    tf.keras.utils.set_random_seed(0)
    model = DemandModel(TowerSpec(ids={"series": ["a", "b"]}, embedding_dim=4), [1], [5.0], scale="scale")
    rows = {"series": np.array(["a", "b"]), "scale": np.array([[1.0], [1000.0]], dtype="float32")}
    forecast = model(rows).numpy()[:, 0]
    rows["label"] = (forecast + 10.0).astype("float32")[:, None]
    assert float(model.compute_loss(rows)) == pytest.approx((10 / 1 + 10 / 1000) / 2, rel=1e-4)
    # Without the input: one scale for every row (5.0, the horizon's pooled scale).
    pooled = DemandModel(TowerSpec(ids={"series": ["a", "b"]}, embedding_dim=4), [1], [5.0])
    rows["label"] = (pooled(rows).numpy() + 10.0).astype("float32")
    assert float(pooled.compute_loss(rows)) == pytest.approx(10 / 5, rel=1e-4)
    # The scaled error is a training metric too: the epoch's log shows it, never 0.
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    history = model.fit(tf.data.Dataset.from_tensor_slices(rows).batch(2), epochs=1, verbose=0).history
    assert history["scaled_mae"][0] > 1.0
