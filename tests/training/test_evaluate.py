import numpy as np
import pytest

from lakecart.training.evaluate import (
    Scores,
    binary_metrics,
    cooccurrence_matrix,
    cooccurrence_scores,
    lift_at,
    mase,
    popularity_scores,
    ranking_metrics,
    recall_at_k,
    top_k_indices,
)


def test_recall_at_k_by_hand():
    scores = np.array(
        [
            [0.9, 0.1, 0.5, 0.3],  # true item 2 ranks 2nd
            [0.1, 0.2, 0.3, 0.4],  # true item 0 ranks 4th
        ]
    )
    assert recall_at_k(scores, np.array([2, 0]), [1, 2, 4]) == {"recall@1": 0.0, "recall@2": 0.5, "recall@4": 1.0}


def test_ndcg_by_hand():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.1, 0.2, 0.3, 0.4]])
    metrics = ranking_metrics(scores, np.array([2, 0]), [2, 4])
    # Row 1: rank 2 -> gain 1/log2(3); row 2: rank 4 -> 1/log2(5), counted at k=4 only.
    assert metrics["ndcg@2"] == pytest.approx((1 / np.log2(3) + 0) / 2)
    assert metrics["ndcg@4"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / 2)


def test_scores_computed_a_block_at_a_time_rank_as_the_whole_matrix():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.1, 0.2, 0.3, 0.4], [0.4, 0.4, 0.4, 0.0]])
    asked = []

    def block(rows):
        asked.append(rows.tolist())
        return scores[rows]

    blocked = ranking_metrics(Scores(4, block, rows_per_block=2), np.array([2, 0, 1]), [1, 2, 4])
    assert asked == [[0, 1], [2]]  # never more than two rows at once
    # Ranks 1, 3 and (ties count against the item) 2: recall@1 0, @2 1/3, @4 1.
    assert blocked == ranking_metrics(scores, np.array([2, 0, 1]), [1, 2, 4])
    assert blocked["recall@2"] == pytest.approx(1 / 3) and blocked["recall@4"] == 1.0


def test_top_k_is_best_first():
    scores = np.array([[0.1, 0.7, 0.3, 0.9]])
    assert top_k_indices(scores, 3).tolist() == [[3, 1, 2]]


def test_popularity_ranks_by_training_counts():
    scores = popularity_scores(np.array([2, 2, 2, 0, 0, 1]), n_items=4, n_queries=2)
    assert top_k_indices(scores, 4).tolist() == [[2, 0, 1, 3]] * 2


def test_cooccurrence_counts_users_who_had_both():
    # user 0: items 0, 1; user 1: items 0, 1, 2; user 2: item 2 twice (counted once)
    matrix = cooccurrence_matrix(np.array([0, 0, 1, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 2, 2]), 3)
    assert matrix.toarray().tolist() == [[0, 2, 1], [2, 0, 1], [1, 1, 0]]
    assert matrix.nnz == 6  # sparse: a 92k-product catalogue would make a dense matrix 32 GB
    # A user whose history is item 2 scores items 0 and 1 equally; popularity breaks the tie.
    scores = cooccurrence_scores([np.array([2]), np.array([], dtype=int)], matrix, np.array([1.0, 3.0, 2.0]))
    assert top_k_indices(scores, 2).tolist() == [[1, 0], [1, 2]]


def test_binary_metrics_by_hand():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1])
    m = binary_metrics(y, p)
    # Positive/negative pairs ordered correctly: (0.9>0.8), (0.9>0.1), (0.7<0.8), (0.7>0.1) -> 3/4.
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx((0.01 + 0.64 + 0.09 + 0.01) / 4)
    # Average precision: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2.
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)


def test_lift_in_the_top_decile():
    y = np.array([1] + [0] * 9 + [1] * 0)
    p = np.linspace(1, 0, 10)
    assert lift_at(y, p, 0.1) == pytest.approx(1.0 / 0.1)


def test_mase_scales_mean_absolute_error():
    assert mase(np.array([2.0, 4.0]), np.array([1.0, 7.0]), scale=2.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mase(np.array([1.0]), np.array([1.0]), scale=0.0)


def test_ties_and_nan_count_against_the_model():
    flat = np.zeros((2, 5))
    assert recall_at_k(flat, np.array([0, 3]), [4])["recall@4"] == 0.0
    assert recall_at_k(np.full((1, 5), np.nan), np.array([2]), [4])["recall@4"] == 0.0


def test_mase_per_series_averages_each_series_own_scaled_error():
    from lakecart.training.evaluate import series_mase

    # Series a: errors 1 and 3, its scale 2 -> MASE 1.0; series b: error 4, scale 1 -> 4.0.
    # The literature's mean over series: 2.5 (pooling the errors with one scale would say otherwise).
    actual = np.array([10.0, 10.0, 5.0])
    forecast = np.array([9.0, 13.0, 1.0])
    series = np.array(["a", "a", "b"])
    assert series_mase(actual, forecast, series, {"a": 2.0, "b": 1.0}, default_scale=9.0) == pytest.approx(2.5)
    # A series without a scale of its own (no training history, or no variation) takes the default.
    assert series_mase(actual, forecast, series, {"a": 2.0}, default_scale=4.0) == pytest.approx((1.0 + 1.0) / 2)
