"""Customer segments: k chosen by silhouette, hand-checkable profiles, gold tables replaced on rerun."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from lakecart import tables
from lakecart.training.segments import NO_PURCHASE_DAYS, NoCustomers, fit_segments, profile, rfm_matrix, run_segments

A = "user_activity_v2__"


def test_three_separated_groups_give_three_segments_the_largest_first():
    matrix = np.array([[0, 0], [0.1, 0], [0, 0.1], [10, 10], [10.1, 10], [20, 0], [20.1, 0]], dtype=float)
    model = fit_segments(matrix, k_range=(2, 3, 4), seed=1)
    assert model.k == 3
    assert model.labels.tolist() == [0, 0, 0, 1, 1, 2, 2] or model.labels.tolist() == [0, 0, 0, 2, 2, 1, 1]
    assert model.scores[3]["silhouette"] > model.scores[2]["silhouette"]
    assert model.scores[3]["silhouette"] > 0.9 and model.distances.max() < 0.1


def test_too_few_customers_is_a_clear_error():
    with pytest.raises(NoCustomers, match="too few"):
        fit_segments(np.zeros((2, 3)), k_range=(2, 3))


def test_rfm_inputs_fill_missing_recency_beyond_the_window_and_log_scale_money():
    frame = pd.DataFrame(
        {f"{A}days_since_purchase": [3.0, None], f"{A}purchase_days_90d": [3.0, None], f"{A}spend_90d": [np.e - 1, 0.0]}
    )
    matrix = rfm_matrix(frame)
    assert matrix[:, 0].tolist() == [3.0, NO_PURCHASE_DAYS]
    assert matrix[:, 1] == pytest.approx([np.log(4), 0.0])
    assert matrix[:, 2] == pytest.approx([1.0, 0.0])


def test_profiles_say_size_churn_risk_categories_and_common_attributes():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            f"{A}days_since_purchase": [1.0, 3.0, 60.0],
            f"{A}purchase_days_90d": [10.0, 20.0, 1.0],
            f"{A}spend_90d": [100.0, 300.0, 5.0],
            "attr__income": ["50-74K", "50-74K", "under 15K"],
        }
    )
    churn = pd.Series({"a": 0.1, "b": 0.3, "c": 0.9})
    affinity = pd.DataFrame(
        {
            "user_id": ["a", "b", "b", "c", "c"],
            "category": ["milk", "milk", "bread", "beer", "milk"],
            "weight": [2, 1, 2, 5, 1],
        }
    )
    out = profile(frame, np.array([0, 0, 1]), churn, affinity).set_index("segment")
    assert out.loc[0, "customers"] == 2 and out.loc[0, "share"] == pytest.approx(0.6667, abs=1e-4)
    assert out.loc[0, "median_days_since_purchase"] == 2.0 and out.loc[0, "mean_spend_90d"] == 200.0
    assert out.loc[0, "mean_churn_probability"] == pytest.approx(0.2)
    assert out.loc[0, "top_categories"] == ["milk", "bread"]  # milk 3, bread 2
    assert out.loc[1, "top_categories"] == ["beer", "milk"] and '"income": "under 15K"' in out.loc[1, "attributes"]


def test_profiles_name_the_categories_a_segment_buys_more_than_everyone():
    """Milk is every segment's most bought category; what tells segments apart is the index: a
    category's share of the segment's purchases over its share of everyone's."""
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            f"{A}days_since_purchase": [1.0, 3.0, 60.0],
            f"{A}purchase_days_90d": [10.0, 20.0, 1.0],
            f"{A}spend_90d": [100.0, 300.0, 5.0],
        }
    )
    affinity = pd.DataFrame(
        {
            "user_id": ["a", "b", "b", "c", "c"],
            "category": ["milk", "milk", "bread", "beer", "milk"],
            "weight": [2, 1, 2, 5, 1],
        }
    )
    out = profile(frame, np.array([0, 0, 1]), None, affinity).set_index("segment")
    # everyone: milk 4, bread 2, beer 5 of 11. Segment 0: milk 3, bread 2 of 5 -> bread (2/5)/(2/11) = 2.2,
    # milk (3/5)/(4/11) = 1.65. Segment 1: beer 5, milk 1 of 6 -> beer (5/6)/(5/11) = 1.83; milk 0.46 (below 1).
    assert json.loads(out.loc[0, "distinctive_categories"]) == {"bread": 2.2, "milk": 1.65}
    assert json.loads(out.loc[1, "distinctive_categories"]) == {"beer": 1.83}


def test_a_segment_that_bought_nothing_lately_has_no_top_categories():
    """The affinity view lists a customer's categories with zero purchases in its window too (they
    were only viewed): zeros are not a segment's favourites, in any order."""
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b"],
            f"{A}days_since_purchase": [1.0, 60.0],
            f"{A}purchase_days_90d": [10.0, 1.0],
            f"{A}spend_90d": [100.0, 5.0],
        }
    )
    affinity = pd.DataFrame({"user_id": ["a", "b", "b"], "category": ["milk", "beer", "bread"], "weight": [2, 0, 0]})
    out = profile(frame, np.array([0, 1]), None, affinity).set_index("segment")
    assert out.loc[0, "top_categories"] == ["milk"]
    assert out.loc[1, "top_categories"] == [] and json.loads(out.loc[1, "distinctive_categories"]) == {}


def _activity(root, day: date, users: int) -> None:
    rng = np.random.default_rng(3)
    heavy = np.arange(users) % 2 == 0  # two kinds of customer: frequent big spenders, rare small ones
    frame = pd.DataFrame(
        {
            "user_id": [f"{n:05d}" for n in range(users)],
            "feature_date": day,
            "available_at": pd.Timestamp(day + timedelta(days=1), tz="UTC"),
            "days_since_purchase": np.where(heavy, 1, 60) + rng.integers(0, 3, users),
            "purchase_days_90d": np.where(heavy, 30, 1) + rng.integers(0, 3, users),
            "spend_90d": np.where(heavy, 900.0, 10.0) * rng.uniform(0.9, 1.1, users),
            "spend_per_purchase_90d": np.where(heavy, 30.0, 10.0),
            "categories_purchased_90d": np.where(heavy, 12, 1),
        }
    )
    write_deltalake(str(root), frame, mode="overwrite")


def test_run_segments_writes_both_gold_tables_and_a_rerun_replaces_them(tmp_path):
    from lakecart.config import LakeSettings, Settings

    settings = Settings(lake=LakeSettings(root=str(tmp_path / "lake")))
    day = date(2026, 3, 1)
    _activity(tables.table_path("features.user_activity_v2", settings), day, 40)
    summary = run_segments(settings, day, k_range=(2, 3, 4))
    assert summary["k"] == 2 and summary["customers"] == 40 and summary["silhouette"] > 0.8
    segments = DeltaTable(tables.table_path(tables.USER_SEGMENTS, settings)).to_pandas()
    assert len(segments) == 40 and set(segments["model_version"]) == {"segments-20260301"}
    by_user = segments.set_index("user_id")["segment"]
    assert by_user["00000"] == by_user["00002"] != by_user["00001"]  # leading zeros kept, kinds apart
    profiles = DeltaTable(tables.table_path(tables.SEGMENT_PROFILES, settings)).to_pandas()
    assert sorted(profiles["customers"]) == [20, 20]
    run_segments(settings, day, k_range=(2, 3, 4))
    assert len(DeltaTable(tables.table_path(tables.USER_SEGMENTS, settings)).to_pandas()) == 40
