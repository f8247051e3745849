"""What a model publishes is what was evaluated: outputs read features with the point-in-time
join's rule (newest row known at the time and younger than the view's TTL), and a forecast at the
evaluated dates reproduces the evaluated MASE."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from deltalake import write_deltalake

from .conftest import END, ITEMS, _manifest, _write, demand_rows
from .test_trainers import train

D = date(2026, 3, 1)


def at(day: date, hours: int = 0) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hours))


def test_features_as_of_takes_the_newest_known_row_within_the_ttl(tmp_path):
    from lakecart.training.data import features_as_of

    rows = pd.DataFrame(
        [
            ("a", D, at(D + timedelta(days=1)), 1.0),
            ("a", D + timedelta(days=1), at(D + timedelta(days=2)), 2.0),
            ("a", D + timedelta(days=2), at(D + timedelta(days=5)), 3.0),  # arrived late: unknown at D+3
            ("b", D, at(D + timedelta(days=1)), 10.0),  # b's newest row: 2 days old at D+3
            ("c", D + timedelta(days=1), at(D + timedelta(days=2)), 20.0),
        ],
        columns=["k", "feature_date", "available_at", "x"],
    )
    write_deltalake(str(tmp_path / "v"), rows, partition_by=["feature_date"])
    got = features_as_of(str(tmp_path / "v"), ["k"], timedelta(days=2), at(D + timedelta(days=3)))
    # At D+3 00:00: a's D+2 row is not known yet (available D+5), its D+1 row is (available D+2,
    # 1 day old < 2); b's only row is 2 days old, not younger than the TTL; c's D+1 row is 1 day old.
    assert got.sort_values("k")[["k", "x"]].values.tolist() == [["a", 2.0], ["c", 20.0]]
    # Asking for keys keeps them all, with nulls where nothing is known.
    some = features_as_of(str(tmp_path / "v"), ["k"], timedelta(days=2), at(D + timedelta(days=3)), keys=["b", "a"])
    assert some["k"].tolist() == ["b", "a"] and some["x"].isna().tolist() == [True, False]


@pytest.fixture()
def demand_lake(tmp_path):
    """A demand set whose ``units_lag_7d`` is 0 on every training row (the window before the data
    began), with the feature rows of every observation date and of END, when the lag is known."""
    from lakecart.config import LakeSettings, Settings

    settings = Settings(lake=LakeSettings(root=str(tmp_path / "lake")))
    frame = demand_rows(np.random.default_rng(3), ITEMS, "item_id", "item_demand_v2", "demand")
    frame["item_demand_v2__units_lag_7d"] = 0
    _write(settings, "training.demand", frame, ["dataset_id"])
    _write(
        settings,
        "training.manifests",
        pd.DataFrame([_manifest(f"demand_{END:%Y%m%d}", ["item_demand_v2", "item_popularity_v2"], horizons=[1, 3])]),
    )
    prefix = "item_demand_v2__"
    view = frame[["item_id", "observation_date", *[c for c in frame.columns if c.startswith(prefix)]]]
    view = view.rename(columns=lambda c: c.removeprefix(prefix)).rename(columns={"observation_date": "feature_date"})
    last = view[view["feature_date"] == view["feature_date"].max()].assign(feature_date=END)
    rate = last["item_id"].map({s: 0.5 + n % 6 for n, s in enumerate(ITEMS)})
    last = last.assign(units_lag_7d=np.round(rate).astype(int))  # a week after the data began: known now
    view = pd.concat([view, last], ignore_index=True)
    view["available_at"] = [at(d + timedelta(days=1)) for d in view["feature_date"]]
    _write(settings, "features.item_demand_v2", view)
    _write(settings, "features.item_popularity_v2", view[["item_id", "feature_date", "available_at"]])
    return settings, frame


def test_published_forecasts_are_the_evaluated_ones_and_plausible(demand_lake, tmp_path):
    from lakecart import tables
    from lakecart.training.evaluate import mase, series_mase
    from lakecart.training.publish import load_trained

    settings, frame = demand_lake
    metrics, run_dir = train(settings, "demand", tmp_path, epochs=10, global_batch_size=32, learning_rate=0.01)
    task, model = load_trained(settings, "demand", run_dir, f"demand_{END:%Y%m%d}")
    test = frame[frame["split"] == "test"]
    # The outputs at each held-out observation date, scored against that date's labels: the MASE
    # the gate saw, from the same features, scaling and horizons.
    forecasts = pd.concat(
        [task.outputs(model, d)[tables.DEMAND_FORECASTS] for d in sorted(set(test["observation_date"]))]
    )
    for h, scale in zip(task.state["horizons"], task.state["scales"], strict=True):
        mine = forecasts[forecasts["horizon_days"] == h].rename(columns={"series_id": "item_id"})
        scored = test.merge(mine.assign(observation_date=mine["forecast_origin"]), on=["item_id", "observation_date"])
        assert len(scored) == len(test)
        actual, forecast = scored[f"units_next_{h}d"].to_numpy(), scored["forecast_units"].to_numpy()
        assert mase(actual, forecast, scale) == pytest.approx(metrics["test"][f"pooled_mase@{h}d"], rel=1e-4)
        own = task.state["series_scales"][str(h)]
        got = series_mase(actual, forecast, scored["item_id"].to_numpy(), own, scale)
        assert got == pytest.approx(metrics["test"][f"mase@{h}d"], rel=1e-4)
    # At END a lag that was 0 on every training row is known: the forecasts must stay in proportion
    # to recent sales (items sell 0.5-5.5 a day, ~90 units a day in all), not blow up or vanish.
    published = pd.read_parquet(run_dir / "outputs" / f"{tables.DEMAND_FORECASTS}.parquet")
    next_day = published[published["horizon_days"] == 1]
    recent = frame[frame["observation_date"] == frame["observation_date"].max()]["item_demand_v2__units_mean_7d"].sum()
    assert recent / 3 < next_day["forecast_units"].sum() < recent * 3, (next_day["forecast_units"].sum(), recent)
    assert (next_day["forecast_units"] > 0.05).mean() > 0.9  # no item forecast to nothing
