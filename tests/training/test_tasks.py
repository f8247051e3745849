"""Task-level transforms with hand-computed expectations (no training)."""

import json
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from lakecart.training.tasks.churn import NO_EVENT_DAYS, with_recency_filled
from lakecart.training.tasks.demand import DemandTask
from lakecart.training.tasks.ranking import view_purchase_pairs


def at(hour: int) -> datetime:
    return datetime(2026, 1, 5, hour, tzinfo=UTC)


def test_ranking_examples_are_first_views_labelled_by_a_same_day_purchase():
    day = date(2026, 1, 5)
    rows = pd.DataFrame(
        [
            ("u1", "i1", "product_view", at(11), day, 2.0),
            ("u1", "i1", "product_view", at(10), day, 1.0),  # the first view: its features are kept
            ("u1", "i1", "purchase", at(12), day, 9.0),
            ("u1", "i2", "product_view", at(10), day, 1.0),
            ("u2", "i1", "purchase", at(9), day, 5.0),  # bought without a view: no example
            ("u1", "i2", "purchase", at(9), date(2026, 1, 6), 5.0),  # the next day: not this view's label
        ],
        columns=["user_id", "item_id", "event_type", "event_time", "event_date", "user_activity_v1__views_7d"],
    )
    pairs = view_purchase_pairs(rows).sort_values("item_id")
    assert pairs[["user_id", "item_id", "label"]].values.tolist() == [["u1", "i1", 1.0], ["u1", "i2", 0.0]]
    assert pairs["user_activity_v1__views_7d"].tolist() == [1.0, 1.0]


def test_missing_recency_means_longer_ago_than_the_window():
    frame = pd.DataFrame({"user_activity_v2__days_since_purchase": [3, None], "user_activity_v2__views_7d": [1, None]})
    filled = with_recency_filled(frame)
    assert filled["user_activity_v2__days_since_purchase"].tolist() == [3, NO_EVENT_DAYS]
    assert filled["user_activity_v2__views_7d"].isna().tolist() == [False, True]  # only "days since" columns


def write_manifest(settings, dataset_id: str, views: list[str]) -> None:
    """A training.manifests row recording that ``dataset_id`` joined ``views`` (table names)."""
    from deltalake import write_deltalake

    from lakecart import tables

    manifest = json.dumps({"feature_views": {f"features.{v}": {} for v in views}})
    row = pd.DataFrame({"dataset_id": [dataset_id], "manifest": [manifest]})
    write_deltalake(tables.table_path(tables.TRAINING_MANIFESTS, settings), row, mode="append")


def test_demand_baselines_repeat_last_week_and_the_28_day_mean(tmp_path):
    from lakecart.config import LakeSettings, Settings

    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    write_manifest(settings, "demand_20260301", ["item_demand_v2", "item_popularity_v2"])
    frame = pd.DataFrame({"item_demand_v2__units_mean_7d": [2.0, None], "item_demand_v2__units_mean_28d": [1.0, 0.5]})
    forecasts = DemandTask(settings, "demand_20260301").baseline_forecasts(frame, 14)
    assert forecasts["seasonal_naive"].tolist() == [28.0, 0.0]
    assert np.allclose(forecasts["moving_average_28d"], [14.0, 7.0])


def test_a_model_reads_its_features_from_the_views_its_set_recorded(tmp_path):
    from lakecart.config import LakeSettings, Settings
    from lakecart.training.tasks.base import UndeclaredView

    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    # A set built before the kind joined promotions reads no promotions, whatever the kind joins now.
    write_manifest(settings, "demand_20260301", ["item_demand_v2", "item_popularity_v2"])
    assert DemandTask(settings, "demand_20260301").views == ("item_demand_v2", "item_popularity_v2")
    # A model that learnt from item_demand_v1 would see v2's columns under names it never saw, as
    # zeros (its baselines too): it says so, rather than forecast from nothing.
    write_manifest(settings, "demand_20260302", ["item_demand_v1", "item_popularity_v2", "item_promotions_v1"])
    with pytest.raises(UndeclaredView, match="item_demand_v1, item_promotions_v1: no longer declared.*train it again"):
        DemandTask(settings, "demand_20260302").serving_frame(date(2026, 3, 2))


def write_retrieval_set(settings, dataset_id: str, event_types: list[str]) -> None:
    """A training.retrieval set of one user's rows, one per event type."""
    from deltalake import write_deltalake

    from lakecart import tables

    rows = pd.DataFrame(
        {"dataset_id": dataset_id, "user_id": "u1", "item_id": "i1", "event_type": event_types, "split": "train"}
    )
    write_deltalake(tables.training_set("retrieval").path(settings), rows, mode="append", partition_by=["dataset_id"])


def test_ranking_cannot_train_on_a_set_without_product_views_and_says_why(tmp_path):
    from lakecart.config import LakeSettings, Settings
    from lakecart.training.tasks import TASKS

    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    write_retrieval_set(settings, "retrieval_20260301", ["purchase", "purchase"])  # an orders-only shop
    write_retrieval_set(settings, "retrieval_20260302", ["purchase", "product_view"])
    reason = TASKS["ranking"](settings, "retrieval_20260301").cannot_train()
    assert "retrieval_20260301 has no product views: ranking learns which viewed items are bought" in reason
    assert TASKS["ranking"](settings, "retrieval_20260302").cannot_train() is None  # one view is enough
    # The other models learn from what an order export has: nothing to ask.
    assert all(TASKS[m](settings, "x").cannot_train() is None for m in TASKS if m != "ranking")


def test_a_demand_model_forecasting_a_fraction_of_the_units_is_implausible():
    # On The Complete Journey the item model won on per-series MASE by forecasting ~0 for items that
    # rarely sell: its held-out forecasts totalled 1% of the units sold. The gate must not take it.
    def metrics(model_ratio, baseline_ratio):
        return {
            "test": {"mase@7d": 0.4, "mase_mean": 0.4, "volume_ratio@7d": model_ratio},
            "baselines": {
                "moving_average_28d": {"mase@7d": 0.5, "mase_mean": 0.5, "volume_ratio@7d": baseline_ratio},
                "seasonal_naive": {"mase@7d": 0.6, "mase_mean": 0.6, "volume_ratio@7d": 1.5},
            },
        }

    assert "0.01x the units sold" in DemandTask.implausible(metrics(0.01, 1.02))
    assert DemandTask.implausible(metrics(0.8, 1.02)) is None  # within 2x: plausible
    assert DemandTask.implausible(metrics(0.4, 0.3)) is None  # off, but closer than the best baseline


def test_the_loss_divides_by_each_series_in_sample_scale_or_the_pooled_one(settings):
    task = DemandTask(
        settings,
        "demand_20260301",
        state={"horizons": [7, 14], "scales": [4.0, 9.0], "series_scales": {"7": {"a": 2.0}, "14": {"a": 3.0}}},
    )
    frame = pd.DataFrame({"item_id": ["a", "b", "a"]})
    assert task.loss_scales(frame).tolist() == [[2.0, 3.0], [4.0, 9.0], [2.0, 3.0]]


def test_retrieval_baselines_are_scored_a_block_of_queries_at_a_time(settings):
    """A real catalogue times the held-out interactions does not fit: on The Complete Journey
    (10,573 held-out rows x 92,331 products) the dense score matrices took the retrieval step's
    peak to 13.4 GiB. Scores are computed, ranked and dropped a block of queries at a time."""
    import tracemalloc

    from lakecart.training.evaluate import ranking_metrics
    from lakecart.training.tasks.retrieval import RECENT_ITEMS, RetrievalTask

    n_items, n_queries = 40_000, 3_000  # a dense float32 matrix of these: 458 MiB per baseline
    items = [f"i{j}" for j in range(n_items)]
    task = RetrievalTask(settings, "retrieval_20260301", state={"items": items})
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "user_id": rng.integers(0, 500, 5000).astype(str),
            "item_id": [items[j] for j in rng.integers(0, n_items, 5000)],
        }
    )
    queries = pd.DataFrame({RECENT_ITEMS: [[items[j] for j in rng.integers(0, n_items, 3)] for _ in range(n_queries)]})
    true_index = rng.integers(0, n_items, n_queries)
    tracemalloc.start()
    try:
        metrics = {
            name: ranking_metrics(scores, true_index, (10, 100))
            for name, scores in task.baseline_scores(train, queries).items()
        }
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(metrics) == ["co_occurrence", "most_popular"]
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
