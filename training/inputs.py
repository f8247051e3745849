"""Model inputs without TensorFlow: tower specifications and the numpy preparation of features
(imported by the command line, which must start fast)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PAD = ""


@dataclass(frozen=True)
class TowerSpec:
    ids: Mapping[str, Sequence[str]] = field(default_factory=dict)  # input name -> vocabulary
    sequences: Mapping[str, Sequence[str]] = field(default_factory=dict)
    numeric: str | None = None  # input name of the float matrix
    n_numeric: int = 0
    # Per-column mean and variance of the numeric input over the training data (fixed, so every
    # worker and every later evaluation normalises alike); None: used as given.
    numeric_stats: tuple[Sequence[float], Sequence[float]] | None = None
    embedding_dim: int = 32
    hidden_layers: Sequence[int] = ()
    output_dim: int | None = None  # None: concatenated features after the hidden layers, unprojected


# A column whose training variance is at most this is constant: towers ignore it (its value at
# serving time, whatever it is, cannot be scaled by a spread the model never saw).
CONSTANT_VARIANCE = 1e-6


def column_stats(matrix: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and variance per column (a constant column's variance is ``CONSTANT_VARIANCE``)."""
    matrix = np.asarray(matrix, dtype="float64")
    if len(matrix) == 0:
        return [0.0] * matrix.shape[1], [1.0] * matrix.shape[1]
    return matrix.mean(axis=0).tolist(), np.maximum(matrix.var(axis=0), CONSTANT_VARIANCE).tolist()


def scale_counts(values: np.ndarray) -> np.ndarray:
    """Counts and money are heavy-tailed: log1p of the non-negative part; missing -> 0."""
    values = np.nan_to_num(np.asarray(values, dtype="float64"), nan=0.0)
    return np.sign(values) * np.log1p(np.abs(values))


def pad_sequences(values: Sequence, length: int) -> np.ndarray:
    """Lists of strings (None for no history) -> a ``(n, length)`` string array, newest first,
    padded with ``PAD``."""
    out = np.full((len(values), length), PAD, dtype=object)
    for row, items in enumerate(values):
        if not isinstance(items, list | tuple | np.ndarray):  # None or NaN: no history
            continue
        items = [str(v) for v in list(items)[:length]]
        out[row, : len(items)] = items
    return out.astype(str)


def vocabulary(*columns: Sequence) -> list[str]:
    """Sorted distinct non-empty strings of the given columns (lists are flattened): every worker
    that sees the same data builds the same vocabulary."""
    seen: set[str] = set()
    for column in columns:
        for value in column:
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if isinstance(value, list | tuple | np.ndarray):
                seen.update(str(v) for v in value if v is not None)
            else:
                seen.add(str(value))
    seen.discard(PAD)
    return sorted(seen)
