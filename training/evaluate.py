"""Offline retrieval metrics over the full catalogue, and the baselines every model must beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(scores: np.ndarray, true_index: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Share of held-out interactions whose item is among the k best-scored candidates.

    With one relevant item per interaction this is also the hit rate (the TFRS "top-k accuracy").
    """
    if len(true_index) == 0:
        return {f"recall@{k}": 0.0 for k in ks}
    # Rank of the true item = number of candidates scored strictly higher.
    true_scores = scores[np.arange(len(true_index)), true_index]
    rank = (scores > true_scores[:, None]).sum(axis=1)
    return {f"recall@{k}": float(np.mean(rank < k)) for k in ks}


def popularity_scores(train_item_index: np.ndarray, n_items: int, n_queries: int) -> np.ndarray:
    """The most-popular baseline: every query gets the items ranked by training interactions."""
    counts = np.bincount(train_item_index, minlength=n_items).astype("float32")
    # A tiny index-based tie-break keeps the ranking deterministic.
    counts -= np.arange(n_items, dtype="float32") * 1e-6
    return np.broadcast_to(counts, (n_queries, n_items))
