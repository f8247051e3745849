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
import json
import logging
import random
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import storage
from lakecart.config import get_settings
from lakecart.training import distributed
from lakecart.training.inputs import column_stats
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


def train_params(task: type[ModelTask], args: argparse.Namespace) -> TrainParams:
    """The run's parameters: flags given, else the task's defaults, else the settings. Unknown
    ``--param`` keys and sizes below 1 are errors (a typo must not become a new model version)."""
    s = get_settings().training
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
    return TrainParams(
        epochs=given("epochs", d.get("epochs", s.epochs)),
        global_batch_size=given("global_batch_size", d.get("global_batch_size", s.global_batch_size)),
        learning_rate=given("learning_rate", d.get("learning_rate", s.learning_rate)),
        seed=given("seed", s.seed),
        extra=extra,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    task_cls = TASKS[args.model]
    params = train_params(task_cls, args)
    settings = get_settings()
    run_root = settings.lake.work_path(args.run_root)
    train(task_cls(settings, args.dataset_id), params, run_root, args.as_of, args.resume)
    return 0


def train(task: ModelTask, params: TrainParams, run_root: Path, as_of: date, resume: bool = False) -> dict | None:
    """Train ``task`` on this worker's shard; on rank 0 evaluate and write the run (in the local
    ``run_root``, then in the lake when ``run_root`` is the working copy of a lake folder elsewhere).
    Returns rank 0's metrics."""
    import tensorflow as tf

    from lakecart.training import data as training_data

    worker = distributed.init()
    version = model_version(
        task, params, worker.size, training_data.manifest(task.settings, task.dataset_id)["content_hash"]
    )
    run_dir = run_root / version
    random.seed(params.seed)
    np.random.seed(params.seed)
    tf.random.set_seed(params.seed)

    # Identical on every worker: built from columns every worker reads in full.
    task.fit_state(task.read_columns(task.state_columns()))
    train_rows = task.read_shard(worker.rank, worker.size, split="train")
    if params.global_batch_size % worker.size:
        raise SystemExit(f"global batch {params.global_batch_size} does not divide over {worker.size} workers")
    local_batch = params.global_batch_size // worker.size
    # Normalisation constants of the numeric inputs: averaged over the workers' shards, so identical.
    sample = task.inputs(train_rows)
    task.state["numeric_stats"] = {
        name: [distributed.allreduce_mean(stat, f"{name}_{i}") for i, stat in enumerate(column_stats(values))]
        for name, values in sorted(sample.items())
        if values.ndim == 2 and values.dtype.kind == "f" and name != "label"
    }
    model = task.build(params)
    if worker.size > 1 and hasattr(model, "share_negatives"):
        # In-batch negatives from the whole global batch, as in a one-process run.
        model.share_negatives(distributed.gather_own_first, worker.size)
    # A slice of each worker's shard is held out to stop before the model overfits.
    validation_fraction = float(params.extra.get("validation_fraction", task.validation_fraction))
    held_out = train_rows.sample(frac=validation_fraction, random_state=params.seed).index
    fit_rows, validation_rows = train_rows.drop(held_out), train_rows.loc[held_out]
    has_validation = distributed.min_across_workers(len(validation_rows)) > 0
    if not has_validation:
        fit_rows = train_rows
    steps = distributed.min_across_workers(len(fit_rows) // local_batch)
    if steps < 1:  # the same on every worker (a collective minimum): all stop together
        raise SystemExit(
            f"too little data: {len(fit_rows)} training rows on worker {worker.rank} for a batch of {local_batch}; "
            "lower --global-batch-size"
        )
    inputs = task.inputs(fit_rows)
    model.compile(optimizer=distributed.distributed_optimizer(task.optimizer(params)))
    dataset = (
        tf.data.Dataset.from_tensor_slices(inputs)
        .shuffle(len(fit_rows), seed=params.seed + worker.rank, reshuffle_each_iteration=True)
        .batch(local_batch, drop_remainder=True)
        .repeat()
    )
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
        len(train_rows),
        steps,
        local_batch,
        params.epochs,
    )
    started = time.perf_counter()
    validation = (
        tf.data.Dataset.from_tensor_slices(task.inputs(validation_rows)).batch(local_batch) if has_validation else None
    )
    # Equal validation steps on every worker too: a model's loss may be a collective (shared negatives).
    validation_steps = (
        distributed.min_across_workers(-(-len(validation_rows) // local_batch)) if has_validation else None
    )
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
    metrics = finish(
        task, model, params, run_dir, version, as_of, worker.size, curves, len(train_rows), examples_per_second
    )
    (run_root / LATEST).write_text(version)
    lake_root = task.settings.lake.lake_uri(run_root)
    if lake_root is not None and lake_root != str(run_root.resolve()):
        # The run first, then ``latest``: the lake's ``latest`` never names a partly copied run.
        storage.sync_tree(str(run_dir), f"{lake_root}/{version}")
        storage.write_text(f"{lake_root}/{LATEST}", version)
    return metrics


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
