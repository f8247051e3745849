"""Offline metrics and the baselines every model must beat. Plain numpy/scikit-learn."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SCORES_PER_BLOCK = 1 << 24  # scores held at a time (64 MiB of float32) when a matrix is computed by blocks


@dataclass(frozen=True)
class Scores:
    """A queries x catalogue score matrix that is never held whole: ``block(rows)`` computes the rows
    asked for (an array of query positions), ``rows_per_block`` of them at a time. A real catalogue
    times a day of queries does not fit in memory (10,573 x 92,331 on The Complete Journey: 3.6 GiB of
    float32 per model or baseline)."""

    n_items: int
    block: Callable[[np.ndarray], np.ndarray]
    rows_per_block: int | None = None  # default: SCORES_PER_BLOCK scores

    @classmethod
    def of(cls, matrix: np.ndarray) -> Scores:
        """A matrix already in memory, read by the same blocks."""
        return cls(matrix.shape[1], lambda rows: matrix[rows])

    def blocks(self, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows of the block, their scores)`` for ``rows``, in order."""
        step = self.rows_per_block or max(1, SCORES_PER_BLOCK // max(1, self.n_items))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            yield chunk, np.asarray(self.block(chunk))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def true_item_rank(scores: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true item, pessimistic on ties: the number of other candidates
    scored at least as high (a model that scores everything alike ranks the item last, and NaN
    scores rank it last too)."""
    true_scores = scores[np.arange(len(true_index)), true_index]
    at_least = (scores >= true_scores[:, None]).sum(axis=1) - 1
    return np.where(np.isnan(true_scores), scores.shape[1] - 1, at_least)


def true_item_ranks(scores: np.ndarray | Scores, true_index: np.ndarray) -> np.ndarray:
    """:func:`true_item_rank` of every row of ``scores`` (a matrix, or :class:`Scores` computed a
    block of rows at a time)."""
    scores = scores if isinstance(scores, Scores) else Scores.of(scores)
    true_index = np.asarray(true_index)
    blocks = [true_item_rank(block, true_index[rows]) for rows, block in scores.blocks(np.arange(len(true_index)))]
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=int)


def ranking_metrics(scores: np.ndarray | Scores, true_index: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """recall@k and NDCG@k over the full catalogue, one relevant item per held-out interaction (row
    ``i`` of ``scores``: a matrix, or :class:`Scores` computed a block at a time).

    recall@k is then the hit rate (the TFRS "top-k accuracy"); NDCG@k = 1/log2(rank + 2) when the
    item is within the top k, else 0 (the ideal DCG of one relevant item is 1).
    """
    if len(true_index) == 0:
        return {**{f"recall@{k}": 0.0 for k in ks}, **{f"ndcg@{k}": 0.0 for k in ks}}
    rank = true_item_ranks(scores, true_index)
    gain = 1.0 / np.log2(rank + 2.0)
    return {
        **{f"recall@{k}": float(np.mean(rank < k)) for k in ks},
        **{f"ndcg@{k}": float(np.mean(np.where(rank < k, gain, 0.0))) for k in ks},
    }


def recall_at_k(scores: np.ndarray, true_index: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    return {k: v for k, v in ranking_metrics(scores, true_index, ks).items() if k.startswith("recall@")}


def popularity_scores(train_item_index: np.ndarray, n_items: int, n_queries: int) -> np.ndarray:
    """The most-popular baseline: every query gets the items ranked by training interactions."""
    counts = np.bincount(train_item_index, minlength=n_items).astype("float32")
    # A tiny index-based tie-break keeps the ranking deterministic.
    counts -= np.arange(n_items, dtype="float32") * 1e-6
    return np.broadcast_to(counts, (n_queries, n_items))


def cooccurrence_matrix(user_index: np.ndarray, item_index: np.ndarray, n_items: int):
    """Item x item counts of users who interacted with both (training data; the diagonal is 0), as a
    sparse matrix: a real catalogue (92k products) would make a dense one 32 GB."""
    from scipy import sparse

    n_users = int(user_index.max()) + 1 if len(user_index) else 0
    seen = sparse.csr_matrix(
        (np.ones(len(user_index), dtype="float32"), (user_index, item_index)), shape=(n_users, n_items)
    )
    seen.data[:] = 1.0  # an item seen twice by a user counts once
    matrix = (seen.T @ seen).tocsr()
    matrix.setdiag(0.0)
    matrix.eliminate_zeros()
    return matrix


def cooccurrence_scores(history: Sequence[np.ndarray], matrix, fallback: np.ndarray) -> np.ndarray:
    """The item co-occurrence baseline: a query's score for item j sums ``matrix[i, j]`` over the
    items i of its recent history (``history``: index lists, -1 padded); popularity breaks ties and
    serves users without history."""
    n_items = matrix.shape[0]
    scores = np.zeros((len(history), n_items), dtype="float32")
    for row, items in enumerate(history):
        items = np.asarray(items, dtype=int)
        items = items[items >= 0]
        if len(items):
            scores[row] = np.asarray(matrix[items].sum(axis=0)).ravel()
    return scores + fallback / (fallback.max() + 1.0)


def binary_metrics(y_true: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, base rate and lift in the top decile."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    p = np.asarray(p, dtype="float64")
    out = {"base_rate": float(y_true.mean()) if len(y_true) else 0.0, "lift@10%": lift_at(y_true, p, 0.1)}
    if len(np.unique(y_true)) < 2:
        return {**out, "roc_auc": float("nan"), "pr_auc": float("nan"), "brier": float(np.mean((p - y_true) ** 2))}
    return {
        **out,
        "roc_auc": float(roc_auc_score(y_true, p)),
        "pr_auc": float(average_precision_score(y_true, p)),
        "brier": float(brier_score_loss(y_true, p)),
    }


def lift_at(y_true: np.ndarray, p: np.ndarray, share: float) -> float:
    """Positive rate among the ``share`` highest-scored rows over the overall positive rate."""
    if len(y_true) == 0 or y_true.mean() == 0:
        return float("nan")
    top = np.argsort(-p, kind="stable")[: max(1, int(round(len(p) * share)))]
    return float(y_true[top].mean() / y_true.mean())


def reliability(y_true: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Mean predicted vs observed rate per probability bin (the reliability diagram's points)."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(np.asarray(y_true).astype(int), p, n_bins=bins, strategy="quantile")
    return {"predicted": predicted.tolist(), "observed": observed.tolist()}


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    """Mean absolute error scaled by ``scale``, the in-sample MAE of the seasonal naive forecast."""
    if scale <= 0:
        raise ValueError("the MASE scale must be positive (the training data has no variation)")
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(forecast))) / scale)


def series_scales(actual: np.ndarray, naive: np.ndarray, series: np.ndarray) -> dict[str, float]:
    """Per series, the mean absolute error of the seasonal naive forecast on its training rows (the
    in-sample scale of its MASE); series whose error is 0 are left out (they take a default)."""
    errors = pd.DataFrame(
        {"series": np.asarray(series).astype(str), "e": np.abs(np.asarray(actual) - np.asarray(naive))}
    )
    means = errors.groupby("series")["e"].mean()
    return {str(k): float(v) for k, v in means.items() if v > 0}


def row_scales(series: np.ndarray, scales: dict[str, float], default_scale: float) -> np.ndarray:
    """Each row's series' own MASE scale (``series_scales``), ``default_scale`` for a series without one."""
    return pd.Series(np.asarray(series).astype(str)).map(scales).fillna(default_scale).to_numpy("float64")


def series_mase(
    actual: np.ndarray, forecast: np.ndarray, series: np.ndarray, scales: dict[str, float], default_scale: float
) -> float:
    """MASE as the forecasting literature reports it (M4/M5): each series' mean absolute error scaled
    by its own in-sample seasonal-naive error, then averaged over series. ``default_scale`` serves a
    series without a scale of its own."""
    if default_scale <= 0:
        raise ValueError("the default MASE scale must be positive")
    keys = np.asarray(series).astype(str)
    scale = row_scales(keys, scales, default_scale)
    errors = pd.DataFrame({"series": keys, "e": np.abs(np.asarray(actual) - np.asarray(forecast)) / scale})
    return float(errors.groupby("series")["e"].mean().mean())
