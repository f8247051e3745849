"""The per-worker training program, the same for every model. ``lakecart train <model>`` launches it
on N workers (``horovodrun``; one plain process when N is 1); ``horovod.spark.run`` can call
:func:`train` inside Spark executors. Run it by hand as
``python -m lakecart.training.worker --model churn --dataset-id churn_20260114 --as-of 2026-01-14
--run-root data/models/churn/churn_20260114`` (``lakecart train`` passes exactly these).

``--run-root`` may also be a lake location (``s3a://<bucket>/models/...``): the run is then written
to its local working copy (``lake.local_dir``) and rank 0 copies the finished run, then ``latest``,
to the lake.

Every worker reads its own shard of the Delta training set and takes the same number of steps per
epoch (the smallest shard decides), so no worker waits at the end of an epoch. Rank 0 evaluates on
the held-out split, writes metrics, plots, weights, state and the rows ``lakecart publish`` puts
into the lake.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import storage
from lakecart.config import get_settings
from lakecart.training import distributed
from lakecart.training.inputs import CONSTANT_VARIANCE
from lakecart.training.tasks import TASKS
from lakecart.training.tasks.base import ModelTask, TrainParams

log = logging.getLogger("lakecart.train")


def model_version(task: ModelTask, params: TrainParams, workers: int, data_hash: str) -> str:
    """``<model>-<data date>-<hash>``: the hash covers the parameters, the worker count and the
    training set's content, so a retrained model never overwrites another one's run."""
    identity = {"params": params.to_json(), "workers": workers, "data": data_hash}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{task.name}-{task.dataset_id.rsplit('_', 1)[-1]}-{digest}"


LATEST = "latest"  # in a run root: the version of the newest finished run
OUTPUTS = "outputs"  # in a run: the model's tables and artefacts, <name>.parquet
BASELINES = "baselines"  # in a run: <baseline name>/<name>.parquet, the same for each baseline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(TASKS))
    p.add_argument("--dataset-id", required=True, help="the training set, e.g. churn_20260114")
    p.add_argument(
        "--as-of", type=date.fromisoformat, required=True, help="logical date: outputs use features as of it"
    )
    p.add_argument(
        "--run-root", required=True, help="runs go to <run-root>/<model version>; <run-root>/latest names the newest"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--global-batch-size", type=int, help="examples per step over all workers (fixed: same quality)")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="model-specific (JSON values)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    return p.parse_args(argv)


def validation_fraction(task: type[ModelTask] | ModelTask, extra: dict) -> float:
    """The share of each shard held out for early stopping: ``--param validation_fraction``, else the task's."""
    return float(extra.get("validation_fraction", task.validation_fraction))


def default_batch(task: type[ModelTask], settings) -> int:
    """The global batch without ``--global-batch-size`` before any sizing: the task's, else the settings'."""
    return task.defaults.get("global_batch_size", settings.training.global_batch_size)


def auto_batch(task: type[ModelTask], batch: int, train_rows: int, held_out: float) -> int:
    """``batch`` doubled until an epoch over the rows the model fits (``train_rows`` less the share held
    out for early stopping) takes at most ``task.max_steps_per_epoch`` steps, up to
    ``task.max_auto_batch``; ``batch`` itself for a task without a limit. A function of the set's size,
    so a rebuild of the same set trains the same model version."""
    limit = task.max_steps_per_epoch
    fitted = train_rows * (1.0 - held_out)
    while limit and batch < task.max_auto_batch and fitted / batch > limit:
        batch *= 2
    return batch


def train_params(task: type[ModelTask], args: argparse.Namespace, train_rows: int | None = None) -> TrainParams:
    """The run's parameters: flags given, else the task's defaults, else the settings. Unknown
    ``--param`` keys and sizes below 1 are errors (a typo must not become a new model version).
    Without ``--global-batch-size``, the default batch grows with the set's ``train_rows`` where the
    task sets a limit of steps per epoch (``auto_batch``)."""
    settings = get_settings()
    s = settings.training
    d = task.defaults
    known = task.known_params()
    extra = {}
    for item in args.param:
        key, _, value = item.partition("=")
        if key not in known:
            listed = "; ".join(f"{name}: {what}" for name, what in sorted(known.items()))
            raise SystemExit(f"unknown --param {key!r} for {task.name}; known: {listed}")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    for flag in ("epochs", "global_batch_size", "learning_rate"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise SystemExit(f"--{flag.replace('_', '-')} must be positive, got {value}")
    given = lambda flag, default: getattr(args, flag) if getattr(args, flag) is not None else default  # noqa: E731
    batch = default_batch(task, settings)
    if args.global_batch_size is None and train_rows is not None:
        batch = auto_batch(task, batch, train_rows, validation_fraction(task, extra))
    return TrainParams(
        epochs=given("epochs", d.get("epochs", s.epochs)),
        global_batch_size=given("global_batch_size", batch),
        learning_rate=given("learning_rate", d.get("learning_rate", s.learning_rate)),
        seed=given("seed", s.seed),
        extra=extra,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    task_cls = TASKS[args.model]
    settings = get_settings()
    from lakecart.training import data as training_data

    manifest = training_data.manifest(settings, args.dataset_id)
    rows = manifest.get("rows", {}).get("train")
    params = train_params(task_cls, args, rows)
    default = default_batch(task_cls, settings)
    if (
        params.global_batch_size != default
        and args.global_batch_size is None
        and os.environ.get("HOROVOD_RANK", "0") == "0"
    ):
        log.info(
            "%s: global batch %d for %d training rows (at the default %d an epoch would take %d steps; "
            "--global-batch-size sets it)",
            task_cls.name,
            params.global_batch_size,
            rows,
            default,
            rows * (1 - validation_fraction(task_cls, params.extra)) // default,
        )
    run_root = settings.lake.work_path(args.run_root)
    train(task_cls(settings, args.dataset_id), params, run_root, args.as_of, args.resume, manifest)
    return 0


def train(
    task: ModelTask,
    params: TrainParams,
    run_root: Path,
    as_of: date,
    resume: bool = False,
    manifest: dict | None = None,
) -> dict | None:
    """Train ``task`` on this worker's shard; on rank 0 evaluate and write the run (in the local
    ``run_root``, then in the lake when ``run_root`` is the working copy of a lake folder elsewhere).
    ``manifest`` is the training set's, when the caller has read it already. Returns rank 0's metrics."""
    import tensorflow as tf

    from lakecart.training import data as training_data

    worker = distributed.init()
    if manifest is None:
        manifest = training_data.manifest(task.settings, task.dataset_id)
    version = model_version(task, params, worker.size, manifest["content_hash"])
    run_dir = run_root / version
    random.seed(params.seed)
    np.random.seed(params.seed)
    tf.random.set_seed(params.seed)

    # Identical on every worker: built from columns every worker reads in full.
    task.fit_state(task.read_columns(task.state_columns()))
    if params.global_batch_size % worker.size:
        raise SystemExit(f"global batch {params.global_batch_size} does not divide over {worker.size} workers")
    local_batch = params.global_batch_size // worker.size
    # A slice of each worker's shard is held out to stop before the model overfits.
    shard = ShardStream(task, worker.rank, worker.size, validation_fraction(task, params.extra), params.seed)
    scan = shard.scan()
    # Normalisation constants of the numeric inputs: averaged over the workers' shards, so identical.
    task.state["numeric_stats"] = {
        name: [distributed.allreduce_mean(stat, f"{name}_{i}") for i, stat in enumerate(moments.stats())]
        for name, moments in sorted(scan.moments.items())
    }
    model = task.build(params)
    if worker.size > 1 and hasattr(model, "share_negatives"):
        # In-batch negatives from the whole global batch, as in a one-process run.
        model.share_negatives(distributed.gather_own_first, worker.size)
    has_validation = distributed.min_across_workers(scan.held_out) > 0
    shard.holds_out = has_validation
    fit_rows = scan.rows - scan.held_out if has_validation else scan.rows
    steps = distributed.min_across_workers(fit_rows // local_batch)
    if steps < 1:  # the same on every worker (a collective minimum): all stop together
        raise SystemExit(
            f"too little data: {fit_rows} training rows on worker {worker.rank} for a batch of {local_batch}; "
            "lower --global-batch-size"
        )
    if params.extra.get("steps_per_epoch") is not None:
        steps = min(steps, int(params.extra["steps_per_epoch"]))
    model.compile(optimizer=distributed.distributed_optimizer(task.optimizer(params)))
    window = int(params.extra.get("shuffle_rows", SHUFFLE_ROWS))
    dataset = shard.training_batches(scan.signature, local_batch, window)
    run_dir.mkdir(parents=True, exist_ok=True)
    initial_epoch = 0
    if resume:
        model.compute_loss(next(iter(dataset)))  # create the variables before loading into them
        initial_epoch = distributed.resume_epoch(model, run_dir)
    log.info(
        "worker %d/%d: %s on %d rows, %d steps of %d per epoch, %d epochs",
        worker.rank,
        worker.size,
        task.name,
        scan.rows,
        steps,
        local_batch,
        params.epochs,
    )
    started = time.perf_counter()
    validation, validation_steps = None, None
    if has_validation:
        # Equal validation steps on every worker too: a model's loss may be a collective (shared negatives).
        validation_steps = distributed.min_across_workers(-(-scan.held_out // local_batch))
        validation = shard.validation_batches(scan.signature, local_batch, scan.held_out, validation_steps)
    patience = params.extra.get("patience", task.patience) if has_validation else None
    history = model.fit(
        dataset,
        epochs=params.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,
        validation_data=validation,
        validation_steps=validation_steps,
        callbacks=distributed.training_callbacks(worker, run_dir, patience=patience),
        verbose=2 if worker.is_chief else 0,
    )
    seconds = time.perf_counter() - started
    trained_epochs = len(history.epoch)
    examples_per_second = steps * local_batch * trained_epochs / seconds if seconds > 0 else 0.0
    curves = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    # The L1 norm of the final weights: equal on every worker when gradients were really averaged.
    weights_l1 = float(sum(np.abs(w).sum() for w in model.get_weights()))
    (run_dir / f"history-rank{worker.rank}.json").write_text(json.dumps({**curves, "weights_l1": weights_l1}))
    if not worker.is_chief:
        return None
    metrics = finish(task, model, params, run_dir, version, as_of, worker.size, curves, scan.rows, examples_per_second)
    (run_root / LATEST).write_text(version)
    lake_root = task.settings.lake.lake_uri(run_root)
    if lake_root is not None and lake_root != str(run_root.resolve()):
        # The run first, then ``latest``: the lake's ``latest`` never names a partly copied run.
        storage.sync_tree(str(run_dir), f"{lake_root}/{version}")
        storage.write_text(f"{lake_root}/{LATEST}", version)
    return metrics


# Rows each worker shuffles together (``--param shuffle_rows``): a larger window mixes more of the
# shard into each batch, at that many rows of model inputs in memory.
SHUFFLE_ROWS = 100_000


class Moments:
    """Count, mean and sum of squared deviations per column, merged one batch at a time (Chan et
    al.), so the mean and variance of a streamed shard need no pass over it in memory."""

    def __init__(self) -> None:
        self.count, self.mean, self.squares = 0, None, None

    def add(self, matrix: np.ndarray) -> None:
        matrix = np.asarray(matrix, dtype="float64")
        if self.mean is None:
            self.mean, self.squares = np.zeros(matrix.shape[1]), np.zeros(matrix.shape[1])
        if not len(matrix):
            return
        mean = matrix.mean(axis=0)
        squares = ((matrix - mean) ** 2).sum(axis=0)
        delta, count = mean - self.mean, self.count + len(matrix)
        self.mean = self.mean + delta * (len(matrix) / count)
        self.squares = self.squares + squares + delta**2 * (self.count * len(matrix) / count)
        self.count = count

    def stats(self) -> tuple[list[float], list[float]]:
        """As :func:`~lakecart.training.inputs.column_stats` of all rows added."""
        if not self.count:
            return [0.0] * len(self.mean), [1.0] * len(self.mean)
        return self.mean.tolist(), np.maximum(self.squares / self.count, CONSTANT_VARIANCE).tolist()


@dataclass
class Scan:
    rows: int  # training examples of the worker's shard
    held_out: int  # of which held out for validation
    moments: dict[str, Moments]  # of each numeric input
    signature: dict[str, tuple[str, tuple[int, ...]]]  # each input's kind ("string"/"float32"/...) and row shape


def newest_values(task: ModelTask, fraction: float) -> frozenset:
    """The values of ``task.validate_on_newest`` (observation dates) whose training rows validate: the
    newest ``fraction`` of the distinct values, at least one, read from the whole training split so
    every worker holds out the same dates. Empty (rows drawn per row) for other tasks, for a set with
    a single training date and when nothing is held out."""
    column = task.validate_on_newest
    if column is None or fraction <= 0:
        return frozenset()
    rows = task.read_columns([column, "split"])
    values = sorted(rows.loc[rows["split"] == "train", column].dropna().unique())
    if len(values) < 2:
        return frozenset()
    return frozenset(values[-max(1, round(fraction * len(values))) :])


class ShardStream:
    """One worker's training examples, streamed from its shard of the Delta training set as model
    inputs: a read batch (or, for tasks that pair rows, a file) at a time, never the whole shard.
    Validation rows are chosen by :meth:`held_out`: whole groups (``validate_on_groups``: customers), a
    panel task's newest training dates (``validate_on_newest``), else
    :func:`~lakecart.training.data.held_out` per row; in every case the same in every pass and every
    run with the same seed."""

    def __init__(self, task: ModelTask, rank: int, size: int, validation_fraction: float, seed: int) -> None:
        self.task, self.rank, self.size = task, rank, size
        self.fraction, self.seed = validation_fraction, seed
        self.holds_out = True  # False: every row trains (no worker has validation rows)
        self.newest = newest_values(task, validation_fraction)

    def held_out(self, number: int, start: int, frame: pd.DataFrame) -> np.ndarray:
        from lakecart.training import data as training_data

        if self.task.validate_on_groups is not None:
            return training_data.held_out_groups(frame[self.task.validate_on_groups], self.fraction, self.seed)
        if self.newest:
            return frame[self.task.validate_on_newest].isin(self.newest).to_numpy()
        return training_data.held_out(number, np.arange(start, start + len(frame)), self.fraction, self.seed)

    def frames(self, part: str):
        """``part``: "all", "fit" or "held_out"; yields ``(frame, held-out mask)``."""
        seen: dict[int, int] = {}
        for number, frame in self.task.stream_shard(self.rank, self.size, split="train"):
            start = seen.get(number, 0)
            seen[number] = start + len(frame)
            mask = self.held_out(number, start, frame)
            if part == "fit" and self.holds_out:
                frame, mask = frame[~mask], mask[~mask]
            elif part == "held_out":
                frame, mask = frame[mask], mask[mask]
            yield frame, mask

    def inputs(self, part: str):
        for frame, _ in self.frames(part):
            if len(frame):
                yield self.task.inputs(frame)

    def scan(self) -> Scan:
        """One pass: counts, the moments of the numeric inputs over all training rows (as the
        normalisation has always used) and the inputs' types."""
        rows, held, moments, signature = 0, 0, {}, {}
        for frame, mask in self.frames("all"):
            rows, held = rows + len(frame), held + int(mask.sum())
            inputs = self.task.inputs(frame)
            if not signature or len(frame):
                signature = {name: _kind(values) for name, values in inputs.items()}
            for name, values in inputs.items():
                if values.ndim == 2 and values.dtype.kind == "f" and name != "label":
                    moments.setdefault(name, Moments()).add(values)
        return Scan(rows, held, moments, signature)

    def training_batches(self, signature: dict, batch: int, window_rows: int):
        """Endless shuffled batches of ``batch`` fit rows, pass after pass; pass ``n`` shuffles with
        ``(seed, rank, n)``, so the same seed gives the same batches."""
        import tensorflow as tf

        from lakecart.training import data as training_data

        def passes():
            for number in itertools.count():
                rng = np.random.default_rng([self.seed, self.rank, number])
                yield from training_data.rebatch(self.inputs("fit"), batch, window_rows, rng)

        spec = _spec(signature, batch)
        return tf.data.Dataset.from_generator(passes, output_signature=spec).prefetch(2)

    def validation_batches(self, signature: dict, batch: int, rows: int, steps: int):
        """The held-out rows in order, in batches of ``batch``: the first ``steps`` of them, the same
        ones every epoch (a dataset of known length is read from its start each time)."""
        import tensorflow as tf

        from lakecart.training import data as training_data

        def batches():
            return training_data.rebatch(self.inputs("held_out"), batch, drop_remainder=False)

        dataset = tf.data.Dataset.from_generator(batches, output_signature=_spec(signature, None))
        return dataset.apply(tf.data.experimental.assert_cardinality(-(-rows // batch))).take(steps).prefetch(2)


def _kind(values: np.ndarray) -> tuple[str, tuple[int, ...]]:
    return ("string" if values.dtype.kind in "USO" else values.dtype.name), tuple(values.shape[1:])


def _spec(signature: dict, batch: int | None) -> dict:
    import tensorflow as tf

    return {name: tf.TensorSpec((batch, *shape), tf.as_dtype(kind)) for name, (kind, shape) in signature.items()}


def write_outputs(task: ModelTask, directory: Path, frames: dict) -> dict[str, int]:
    """``<directory>/<name>.parquet`` per table or artefact; a name the task did not declare is an
    error (``publish`` writes the declared tables, nothing else)."""
    declared = {*task.output_tables, *task.artefacts}
    unknown = sorted(set(frames) - declared)
    if unknown:
        raise ValueError(f"{task.name} wrote {unknown}, which it does not declare (declared: {sorted(declared)})")
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        pd.DataFrame(frame).to_parquet(directory / f"{name}.parquet", index=False)
    return {name: len(frame) for name, frame in frames.items()}


def finish(
    task: ModelTask,
    model,
    params: TrainParams,
    run_dir: Path,
    version: str,
    as_of: date,
    workers: int,
    curves: dict,
    shard_rows: int,
    examples_per_second: float,
) -> dict:
    """Rank 0: evaluate on the held-out split, write weights, state, outputs, metrics and plots."""
    train_rows = task.read_split("train")
    test_rows = task.read_split("test")
    evaluation = task.evaluate(model, train_rows, test_rows)
    model.save_weights(str(run_dir / "weights" / "model"))
    task.save_state(run_dir)
    artifacts = task.save_artifacts(model, run_dir)
    written = write_outputs(task, run_dir / OUTPUTS, task.outputs(model, as_of))
    # Each baseline's rows for the same tables: published instead when no model beats the best one.
    baselines_written = {
        name: write_outputs(task, run_dir / BASELINES / name, frames)
        for name, frames in task.baseline_outputs(train_rows, as_of).items()
    }
    metrics = {
        "model": task.name,
        "model_version": version,
        "dataset_id": task.dataset_id,
        "as_of": as_of.isoformat(),
        "params": {**params.to_json(), "workers": workers},
        "train_rows": int(len(train_rows)),
        "test_rows": int(len(test_rows)),
        "rows_per_worker": int(shard_rows),
        "history": curves,
        **evaluation,
        "outputs": written,
        "baseline_outputs": baselines_written,
        "artifacts": artifacts,
        "examples_per_second_per_worker": examples_per_second,
        "primary_metric": task.primary_metric,
    }
    metrics["plots"] = task.plot(run_dir, metrics, curves)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    log.info("%s %s: %s", task.name, version, json.dumps(metrics["test"], default=float))
    return metrics


if __name__ == "__main__":
    raise SystemExit(main())
