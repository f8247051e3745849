import numpy as np

from lakecart.training.evaluate import popularity_scores, recall_at_k, top_k_indices


def test_recall_at_k_by_hand():
    scores = np.array(
        [
            [0.9, 0.1, 0.5, 0.3],  # true item 2 ranks 2nd
            [0.1, 0.2, 0.3, 0.4],  # true item 0 ranks 4th
        ]
    )
    assert recall_at_k(scores, np.array([2, 0]), [1, 2, 4]) == {"recall@1": 0.0, "recall@2": 0.5, "recall@4": 1.0}


def test_top_k_is_best_first():
    scores = np.array([[0.1, 0.7, 0.3, 0.9]])
    assert top_k_indices(scores, 3).tolist() == [[3, 1, 2]]


def test_popularity_ranks_by_training_counts():
    scores = popularity_scores(np.array([2, 2, 2, 0, 0, 1]), n_items=4, n_queries=2)
    assert top_k_indices(scores, 4).tolist() == [[2, 0, 1, 3]] * 2
