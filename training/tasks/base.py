"""What every model task provides to the one generic trainer (``lakecart.training.worker``).

A task knows its training set (a kind in ``training.<kind>``), how to turn rows into model inputs,
how to build and evaluate its model against its baselines, and what it writes back to the lake.
It knows nothing of Horovod or of how many workers run it.

State that must be identical on every worker and must travel with the model (vocabularies,
feature column lists, scaling constants) lives in ``self.state``: it is computed by ``fit_state``
from columns every worker reads in full, saved as ``state.json`` next to the weights, and restored
by ``from_run`` to re-evaluate a published model on new data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.config import Settings
from lakecart.errors import LakecartError
from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE
from lakecart.features.pit import feature_prefix
from lakecart.training import data as training_data

# ``--param`` keys the trainer itself reads, for every task.
TRAINER_PARAMS: dict[str, str] = {
    "validation_fraction": "share of each worker's training rows held out for early stopping (churn: of its "
    "customers, all their dates; demand: of the training observation dates, the newest)",
    "patience": "epochs without a better validation loss before stopping (null: never stop early)",
    "shuffle_rows": "rows each worker shuffles together as it streams its shard (memory; default 100000)",
    "steps_per_epoch": "at most this many steps per epoch (default: one pass over the smallest shard)",
}


class UndeclaredView(LakecartError, RuntimeError):
    """A model's training set joined a feature view that the code no longer declares."""


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    global_batch_size: int
    learning_rate: float
    seed: int = 42
    extra: dict[str, Any] = field(default_factory=dict)  # model-specific knobs, recorded with the run

    def to_json(self) -> dict:
        return {**self.__dict__, "extra": dict(self.extra)}


class ModelTask:
    name: ClassVar[str]
    dataset_kind: ClassVar[str]
    shard_key: ClassVar[str]  # the entity its training set is split by (``DatasetKind.shard_key``)
    primary_metric: ClassVar[str]  # the gate compares candidate and champion on this
    higher_is_better: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}  # epochs, global_batch_size, learning_rate
    # The model-specific ``--param`` keys the task reads, with what each does (any other is an error).
    params: ClassVar[dict[str, str]] = {}
    # What the run writes (``outputs`` and every baseline's rows): the gold tables ``lakecart publish``
    # writes, and named artefacts other models read from the *published* run (never tables).
    output_tables: ClassVar[tuple[str, ...]] = ()
    artefacts: ClassVar[tuple[str, ...]] = ()
    upstream: ClassVar[tuple[str, ...]] = ()  # models whose published artefacts ``outputs`` reads
    validation_fraction: ClassVar[float] = 0.1  # of each worker's training rows, for early stopping
    # Panel sets (an entity at many observation dates): early stopping validates on the newest of
    # this column's values among the training rows (that share of them), as the gate scores later
    # dates. Rows drawn at random would be the same customers' other weeks, which rewards memorising
    # them (BENCHMARKS.md, "The validation split is the defect"). None: rows drawn per row.
    validate_on_newest: ClassVar[str | None] = None
    # Or: early stopping validates on every training row of a random ``validation_fraction`` of this
    # column's values (whole customers), none of whose rows trains. For a set whose label windows
    # overlap from one observation date to the next (churn: weekly dates, a 28-day horizon), the
    # newest dates share label weeks with the dates before them for the same customers, and their
    # loss rewards recognising those customers (BENCHMARKS.md, "Churn: whole customers held out").
    validate_on_groups: ClassVar[str | None] = None
    patience: ClassVar[int | None] = 3  # epochs without a better validation loss before stopping
    # With no --global-batch-size, the default batch doubles (up to ``max_auto_batch``) until an epoch
    # over the set's training rows takes at most this many steps (None: the default, whatever the size).
    max_steps_per_epoch: ClassVar[int | None] = None
    max_auto_batch: ClassVar[int] = 2048

    @classmethod
    def known_params(cls) -> dict[str, str]:
        """Every ``--param`` key this task accepts: its own and the trainer's."""
        return {**cls.params, **TRAINER_PARAMS}

    def __init__(self, settings: Settings, dataset_id: str, state: dict | None = None) -> None:
        self.settings = settings
        self.dataset_id = dataset_id
        self.state: dict[str, Any] = dict(state or {})
        self._views: tuple[str, ...] | None = None

    @cached_property
    def manifest(self) -> dict:
        """The training set's manifest, read once per task (several outputs ask for parts of it)."""
        return training_data.manifest(self.settings, self.dataset_id)

    @property
    def views(self) -> tuple[str, ...]:
        """The feature views (table names) the training set was built from, as its manifest recorded
        them, in the order its kind joins them. Outputs read their features from these: the views the
        model learnt from, not whichever the kind joins today (a newer version's columns would reach
        the model under names it never saw, as zeros)."""
        if self._views is None:
            recorded = self.manifest.get("feature_views") or {}
            if not recorded:
                raise UndeclaredView(f"the manifest of {self.dataset_id} records no feature views: build the set again")
            self._views = tuple(name.removeprefix("features.") for name in recorded)
        return self._views

    # --- data ---------------------------------------------------------------------------------
    @property
    def table_uri(self) -> str:
        return tables.training_set(self.dataset_kind).path(self.settings)

    def read_shard(self, rank: int, size: int, split: str | None = None) -> pd.DataFrame:
        return self.examples(
            training_data.read_shard(self.table_uri, self.dataset_id, rank, size, split, self.shard_key)
        )

    def stream_shard(
        self, rank: int, size: int, split: str | None = None, batch_rows: int = training_data.READ_BATCH_ROWS
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """The examples of :meth:`read_shard` as ``(file number, frame)``, a bounded frame at a time.
        A task whose ``examples`` combine rows (ranking's pairs of one user's views and purchases)
        gets one file at a time: a training set keeps each entity's rows in one file."""
        whole_files = type(self).examples is not ModelTask.examples
        for number, frame in training_data.iter_shard(
            self.table_uri, self.dataset_id, rank, size, split, self.shard_key, None if whole_files else batch_rows
        ):
            yield number, self.examples(frame)

    def read_split(self, split: str) -> pd.DataFrame:
        return self.read_shard(0, 1, split)

    def read_columns(self, columns: list[str] | None) -> pd.DataFrame:
        """Whole training set (train and test), only ``columns``."""
        return training_data.read_delta(self.table_uri, columns, filters=[("dataset_id", "=", self.dataset_id)])

    def cannot_train(self) -> str | None:
        """Why this training set cannot teach the model by design (None: it can), e.g. a shop that
        sends no clickstream for a model of clicks. ``lakecart train`` asks once, over the whole set,
        before starting any worker: it then prints the reason and exits ``CANNOT_TRAIN_EXIT`` (a
        skip in the training DAG), where a failed worker would fail the run."""
        return None

    def examples(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Training-set rows -> one row per example (identity unless a task derives pairs)."""
        return frame

    def fit_state(self, full: pd.DataFrame) -> None:
        """Vocabularies and constants from the whole training set (every worker reads it)."""

    def state_columns(self) -> list[str] | None:
        """Columns ``fit_state`` needs (None: all)."""
        return None

    def inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def numeric_stats(self, name: str) -> tuple[list[float], list[float]] | None:
        """Training-data mean and variance of the numeric input ``name`` (set by the trainer)."""
        stats = self.state.get("numeric_stats", {}).get(name)
        return (stats[0], stats[1]) if stats else None

    # --- model --------------------------------------------------------------------------------
    def build(self, params: TrainParams):
        raise NotImplementedError

    def predict(self, model, frame: pd.DataFrame) -> np.ndarray:
        """The model's outputs for ``frame`` (labels ignored), in batches: shape (rows, outputs)."""
        import tensorflow as tf

        inputs = {k: v for k, v in self.inputs(frame).items() if k != "label"}
        batches = tf.data.Dataset.from_tensor_slices(inputs).batch(4096)
        outputs = [model(batch, training=False).numpy() for batch in batches]
        return np.concatenate(outputs) if outputs else np.zeros((0, 1))

    def optimizer(self, params: TrainParams):
        import tensorflow as tf

        return tf.keras.optimizers.legacy.Adam(params.learning_rate)

    # --- evaluation and outputs (rank 0) -------------------------------------------------------
    def evaluate(self, model, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
        """``{"test": {metric: value}, "baselines": {name: {metric: value}}, ...}``."""
        raise NotImplementedError

    def outputs(self, model, as_of: date) -> dict[str, pd.DataFrame]:
        """Rows for the lake, keyed by table name (``output_tables``) or artefact name
        (``artefacts``), without model_version/created_at (publish adds them)."""
        return {}

    def baseline_outputs(self, train: pd.DataFrame, as_of: date) -> dict[str, dict[str, pd.DataFrame]]:
        """Each baseline's rows for the same tables and artefacts as ``outputs``, by the baseline's
        name in ``evaluate``: what is published when no model beats the best baseline."""
        return {}

    @classmethod
    def best_baseline(cls, baselines: dict[str, dict[str, float]]) -> tuple[str, float] | None:
        """The baseline with the best primary metric (NaN never wins), and that value."""
        scored = [(name, m[cls.primary_metric]) for name, m in baselines.items() if not np.isnan(m[cls.primary_metric])]
        if not scored:
            return None
        return (max if cls.higher_is_better else min)(scored, key=lambda pair: pair[1])

    @classmethod
    def beats(cls, value: float, other: float, margin: float = 0.0) -> bool:
        """True when ``value`` is better than ``other`` by more than ``margin`` on the primary metric."""
        return (value - other if cls.higher_is_better else other - value) > margin

    def plot(self, run_dir: Path, metrics: dict, history: dict[str, list[float]]) -> list[str]:
        return []

    def save_artifacts(self, model, run_dir: Path) -> dict[str, str]:
        """Serving artefacts beyond the weights (an index, a SavedModel): name -> path."""
        return {}

    # --- persistence ----------------------------------------------------------------------------
    def save_state(self, run_dir: Path) -> None:
        (run_dir / "state.json").write_text(json.dumps(self.state))

    @classmethod
    def from_run(cls, settings: Settings, run_dir: Path, dataset_id: str | None = None) -> ModelTask:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        state = json.loads((run_dir / "state.json").read_text())
        return cls(settings, dataset_id or metrics["dataset_id"], state)

    @classmethod
    def implausible(cls, metrics: dict) -> str | None:
        """Why the candidate's held-out outputs are implausible though its metric may win (None: they
        are not); the gate then treats it as not beating its baselines."""
        return None

    def compare(self, candidate: dict, champion: dict) -> bool:
        """True when the candidate's primary metric is at least as good as the champion's."""
        a, b = candidate["test"][self.primary_metric], champion["test"][self.primary_metric]
        return a >= b if self.higher_is_better else a <= b


def serving_time(day: date) -> pd.Timestamp:
    """The instant outputs for ``day`` read their features at: the end of ``day`` (midnight UTC), the
    label time of a training row observed on ``day``, so outputs see what such a row saw."""
    return pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)


def features_as_of(
    settings: Settings, views: tuple[str, ...], key: str, day: date, how: str, keys: list | None = None
) -> pd.DataFrame:
    """Each view's newest row known at the end of ``day`` and younger than its TTL, as the
    point-in-time join picks them for the training sets (``training_data.features_as_of``), columns
    named as there (``<view>__<feature>``), merged on ``key`` (``how``: "outer" keeps an entity any
    view has). ``keys``: only those entities."""
    from lakecart.features import REGISTRY
    from lakecart.storage import is_delta

    gone = [name for name in views if name not in REGISTRY]
    if gone:
        raise UndeclaredView(
            f"{', '.join(gone)}: no longer declared in code (a newer version replaced it), so features as "
            "the model learnt them cannot be read: train it again on a training set built now"
        )
    frame = None
    for name in views:
        view = REGISTRY[name]
        if not is_delta(tables.table_path(view.qualified_name, settings)):
            continue  # a view this lake has no table for (no promotions): its columns stay missing
        rows = training_data.features_as_of(
            tables.table_path(view.qualified_name, settings), view.entity.keys, view.ttl, serving_time(day), keys=keys
        )
        rows = rows.drop(columns=[FEATURE_DATE, AVAILABLE_AT])
        rows = rows.rename(columns={c: f"{feature_prefix(view)}{c}" for c in rows.columns if c != key})
        frame = rows if frame is None else frame.merge(rows, on=key, how=how)
    return frame if frame is not None else pd.DataFrame()


def feature_columns(numeric: list[str], prefixes: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    """The numeric feature columns of the given views (``<view>__<feature>``), sorted."""
    return sorted(c for c in numeric if c.startswith(prefixes) and c not in exclude)


def numeric_matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Missing columns or values (no feature row known at label time) become 0; log-scaled."""
    from lakecart.training.inputs import scale_counts

    values = frame.reindex(columns=columns).apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    return scale_counts(values).astype("float32")


def id_array(values: pd.Series) -> np.ndarray:
    return values.fillna("").astype(str).to_numpy()
