"""Training smoke tier: every model trains through the one generic trainer (one worker, in this
process) on the tiny lake, must find its planted signal, and writes the run's artefacts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from lakecart import tables

from .conftest import END


def train(settings, model: str, tmp_path, root=None, **overrides):
    """Train in this process with one worker; runs go to ``root`` (default: ``tmp_path/model``)."""
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.training.tasks import TASKS
    from lakecart.training.tasks.base import TrainParams
    from lakecart.training.worker import train as run

    task_cls = TASKS[model]
    params = TrainParams(**{**task_cls.defaults, "seed": 1, **overrides})
    task = task_cls(settings, dataset_id_for(END, task_cls.dataset_kind))
    root = root or tmp_path / model
    metrics = run(task, params, root, END)
    return metrics, root / metrics["model_version"]


def outputs(run_dir, table: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "outputs" / f"{table}.parquet")


def _order_history(settings) -> pd.DataFrame:
    """Order lines from before the training window: each user bought from the category after their
    own 100 days before the end (within the year cross-category looks back over) and from the one
    after that 400 days before (outside it)."""
    from datetime import timedelta

    from deltalake import write_deltalake

    from .conftest import ITEMS, USERS, category

    rows = []
    for k, user in enumerate(USERS):
        for step, days in ((1, 100), (2, 400)):
            item = next(i for i in ITEMS if category(i) == f"c{(k + step) % 5}")
            rows.append((f"o{k}-{step}", user, item, END - timedelta(days=days)))
    lines = pd.DataFrame(rows, columns=["order_id", "user_id", "item_id", "order_date"])
    write_deltalake(tables.table_path(tables.SILVER_ORDER_LINES, settings), lines, partition_by=["order_date"])
    return lines


def test_retrieval_learns_each_users_category_and_saves_an_index(tiny_lake, tmp_path):
    history = _order_history(tiny_lake)
    metrics, run_dir = train(tiny_lake, "retrieval", tmp_path, epochs=15, global_batch_size=64)
    popular = metrics["baselines"]["most_popular"]
    # 90% of a user's interactions are in one category of 6 items: a working model puts the item in
    # its top 10 of 30 far more often than the popularity order (about a third of the time).
    assert metrics["test"]["recall@10"] > 0.6
    assert metrics["test"]["ndcg@10"] > popular["ndcg@10"] + 0.1
    assert set(metrics["baselines"]) == {"most_popular", "co_occurrence"}
    assert {"recall@50", "ndcg@100"} <= set(metrics["test"])
    # The serving index answers queries on its own (a SavedModel: no lakecart code needed to load it).
    import tensorflow as tf

    from lakecart.training.tasks import TASKS

    task = TASKS["retrieval"].from_run(tiny_lake, run_dir)
    queries = {k: tf.constant(v) for k, v in task.query_inputs(task.read_split("test").head(3)).items()}
    scores, items = tf.saved_model.load(str(run_dir / "index"))(queries)
    assert items.shape == (3, 30) and set(items.numpy().ravel().astype(str)) <= set(task.state["items"])
    assert (np.diff(scores.numpy(), axis=1) <= 1e-6).all()  # best first
    assert (run_dir / "retrieval.png").stat().st_size > 0 and (run_dir / "tensorboard").is_dir()

    recs = outputs(run_dir, tables.RECOMMENDATIONS)
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == list(range(1, 11))).all()
    # Cross-category: never a category the user bought from in the training window.
    cross = outputs(run_dir, tables.CROSS_CATEGORY_RECOMMENDATIONS)
    training = DeltaTable(tables.table_path("training.retrieval", tiny_lake)).to_pandas()
    bought = training[training["event_type"] == "purchase"].groupby("user_id")["category"].agg(set)
    assert len(cross) > 0
    assert not any(row.category in bought.get(row.user_id, set()) for row in cross.itertuples())
    # ... nor one they bought from in the year before it (order lines 100 days back), while a purchase
    # 400 days back no longer counts.
    from .conftest import category

    history["category"] = history["item_id"].map(category)
    recent = history[history["order_date"] > END - pd.Timedelta(days=365)]
    old = set(zip(recent["user_id"], recent["category"], strict=True))
    eligible = {(u, c) for u, c in old if c not in bought.get(u, set())}  # new to the training window
    assert eligible  # the check below can fail: these categories were recommendable before
    assert not any((row.user_id, row.category) in old for row in cross.itertuples())
    older = history[history["order_date"] <= END - pd.Timedelta(days=365)]
    assert set(zip(older["user_id"], older["category"], strict=True)) & set(
        zip(cross["user_id"], cross["category"], strict=True)
    )
    embeddings = outputs(run_dir, tables.USER_EMBEDDINGS)
    assert len(embeddings["embedding"].iloc[0]) == 32 and embeddings["user_id"].is_unique


def test_ranking_learns_who_buys_what_beyond_item_conversion(tiny_lake, tmp_path):
    metrics, run_dir = train(tiny_lake, "ranking", tmp_path, epochs=10, global_batch_size=64)
    baseline = metrics["baselines"]["item_conversion_rate"]
    # Even users buy even items: the item's rate alone cannot see the user half of that rule.
    assert metrics["test"]["roc_auc"] > baseline["roc_auc"] + 0.05
    assert metrics["test"]["roc_auc"] > 0.8
    assert (run_dir / "ranking.png").exists()


def test_churn_beats_chance_is_calibrated_and_scores_every_customer(tiny_lake, tmp_path):
    metrics, run_dir = train(tiny_lake, "churn", tmp_path, epochs=25, global_batch_size=32, learning_rate=0.01)
    assert metrics["test"]["roc_auc"] > 0.85
    assert metrics["test"]["brier"] < 0.15
    assert set(metrics["reliability"]) == {"deep", "logistic_regression_rfm", "bg_nbd"}
    assert set(metrics["baselines"]) == {"logistic_regression_rfm", "bg_nbd"}
    assert (run_dir / "reliability.png").exists()
    scores = outputs(run_dir, tables.CHURN_SCORES)
    assert list(scores.columns) == ["user_id", "as_of", "horizon_days", "churn_probability"]
    assert scores["churn_probability"].between(0, 1).all() and set(scores["horizon_days"]) == {2}


def test_demand_beats_seasonal_naive_and_forecasts_every_horizon(tiny_lake, tmp_path):
    metrics, run_dir = train(tiny_lake, "demand", tmp_path, epochs=60, global_batch_size=32, learning_rate=0.01)
    naive = metrics["baselines"]["seasonal_naive"]
    # The 7-day mean is a noisy estimate of a steady rate: pooling over items must do better.
    assert metrics["test"]["mase@3d"] < naive["mase@3d"]
    assert set(metrics["improvement_vs_best_baseline"]) == {"mase@1d", "mase@3d", "mase_mean"}
    forecasts = outputs(run_dir, tables.DEMAND_FORECASTS)
    assert set(forecasts["horizon_days"]) == {1, 3} and (forecasts["forecast_units"] >= 0).all()
    assert set(forecasts["level"]) == {"item"} and forecasts["series_id"].nunique() == 30
    # Planned displays triple sales: the forecast with them exceeds the one without (the uplift),
    # and an item with nothing planned has none; on held-out rows the data shows the lift too.
    promoted = set(feature_rows_of(tiny_lake, "item_promotions_v2").query("display_days_next_7d > 0")["item_id"])
    uplift = forecasts.assign(promoted=forecasts["series_id"].isin(promoted)).groupby("promoted")["uplift_units"]
    assert uplift.min()[False] == 0 and uplift.max()[False] == 0
    assert uplift.mean()[True] > 0.5
    check = metrics["promotions"]
    assert check["promoted_rows"] > 0 and check["observed_lift_promoted"] > 2 * check["observed_lift_not_promoted"]
    assert check["predicted_uplift_share"] > 0.5


def feature_rows_of(settings, view: str) -> pd.DataFrame:
    return DeltaTable(tables.table_path(f"features.{view}", settings)).to_pandas()


def test_category_demand_trains_on_a_handful_of_series(tiny_lake, tmp_path):
    metrics, run_dir = train(tiny_lake, "category_demand", tmp_path, epochs=2, global_batch_size=4)
    assert set(outputs(run_dir, tables.DEMAND_FORECASTS)["level"]) == {"category"}
    assert json.loads((run_dir / "metrics.json").read_text())["model_version"] == metrics["model_version"]


def test_resume_continues_from_the_last_checkpoint(tiny_lake, tmp_path):
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.training.tasks import TASKS
    from lakecart.training.tasks.base import TrainParams
    from lakecart.training.worker import train as run

    params = TrainParams(epochs=3, global_batch_size=32, learning_rate=0.01)
    task = TASKS["churn"](tiny_lake, dataset_id_for(END, "churn"))
    first = run(task, params, tmp_path, END)
    run_dir = tmp_path / first["model_version"]
    assert (run_dir / "checkpoints" / "epochs_done").read_text() == "3"
    resumed = run(
        TASKS["churn"](tiny_lake, task.dataset_id),
        TrainParams(**{**params.__dict__, "epochs": 3}),
        tmp_path,
        END,
        resume=True,
    )
    # All three epochs were done: nothing left to train, and the weights are the checkpoint's.
    assert resumed["history"] == {} or all(len(v) == 0 for v in resumed["history"].values())
    assert resumed["test"]["roc_auc"] == pytest.approx(first["test"]["roc_auc"])
    assert np.isfinite(resumed["test"]["brier"])
