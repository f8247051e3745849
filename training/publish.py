"""The last two steps of a training run: the gate (``lakecart evaluate``) and the write-back
(``lakecart publish``). Delta writes through delta-rs, no JVM.

Every evaluated model gets a row in ``gold.model_registry`` (training-set manifest id, parameters,
metrics, artefact path; status ``approved`` or ``held_back``, then ``published``). The gate
re-evaluates the *champion* (the model last published for this task) on the candidate's held-out
split and compares the task's primary metric: the candidate is published only when it is at least
as good. Publishing replaces exactly this model version's rows in each output table, so publishing
twice leaves the same tables.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakecart import tables
from lakecart.config import Settings
from lakecart.training.tasks import TASKS
from lakecart.training.tasks.base import ModelTask, TrainParams

log = logging.getLogger(__name__)
EVALUATION = "evaluation.json"


class GateClosed(RuntimeError):
    """The candidate is worse than the champion, or was never evaluated."""


def run_root_for(settings: Settings, model: str, dataset_id: str) -> Path:
    return Path(settings.lake.models) / model / dataset_id


def run_dir_for(settings: Settings, model: str, dataset_id: str) -> Path:
    """The newest finished run of ``model`` on the training set ``dataset_id``."""
    root = run_root_for(settings, model, dataset_id)
    latest = root / "latest"
    if not latest.exists():
        raise FileNotFoundError(f"no finished {model} run on {dataset_id} under {root}: run `lakecart train {model}`")
    return root / latest.read_text().strip()


def replace_version(path: str, frame: pd.DataFrame, version: str) -> None:
    data = pa.Table.from_pandas(frame, preserve_index=False)
    if DeltaTable.is_deltatable(path):
        write_deltalake(path, data, mode="overwrite", predicate=f"model_version = '{version}'", schema_mode="merge")
    else:
        write_deltalake(path, data, mode="append")


def champion(settings: Settings, model: str, exclude: str | None = None) -> dict | None:
    """The registry row of the model last published for ``model`` (newest created_at), if any."""
    path = tables.table_path(tables.MODEL_REGISTRY, settings)
    if not DeltaTable.is_deltatable(path):
        return None
    rows = DeltaTable(path).to_pandas(filters=[("model", "=", model)])
    if "status" in rows.columns:  # registries written before statuses existed held published models only
        rows = rows[rows["status"].isna() | (rows["status"] == "published")]
    rows = rows[rows["model_version"] != exclude] if exclude else rows
    if rows.empty:
        return None
    return rows.sort_values(["created_at", "model_version"]).iloc[-1].to_dict()


def load_trained(settings: Settings, model: str, run_dir: Path, dataset_id: str) -> tuple[ModelTask, object]:
    """Rebuild a trained model from its run directory (state, parameters, weights), bound to the
    training set ``dataset_id`` (so it can be evaluated on another run's data)."""
    import tensorflow as tf

    task = TASKS[model].from_run(settings, run_dir, dataset_id)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    params = {k: v for k, v in metrics["params"].items() if k != "workers"}
    built = task.build(TrainParams(**params))
    sample = task.read_split("test").head(8)
    batch = next(iter(tf.data.Dataset.from_tensor_slices(task.inputs(sample)).batch(8)))
    built.compute_loss(batch)  # creates the variables the weights load into
    built.load_weights(str(run_dir / "weights" / "model")).expect_partial()
    return task, built


def evaluate_candidate(settings: Settings, model: str, dataset_id: str) -> dict:
    """Compare the candidate run for ``dataset_id`` with the champion on the candidate's test split;
    write ``evaluation.json`` into the run directory and return it."""
    run = run_dir_for(settings, model, dataset_id)
    metrics = json.loads((run / "metrics.json").read_text())
    task_cls = TASKS[model]
    current = champion(settings, model, exclude=metrics["model_version"])
    result = {
        "model": model,
        "candidate": metrics["model_version"],
        "primary_metric": task_cls.primary_metric,
        "higher_is_better": task_cls.higher_is_better,
        "candidate_test": metrics["test"],
    }
    if current is None:
        result.update(champion=None, champion_test=None, publish=True, reason="no model published yet")
    else:
        champion_run = Path(current["artifact_path"])
        task, champion_model = load_trained(settings, model, champion_run, dataset_id)
        champion_eval = task.evaluate(champion_model, task.read_split("train"), task.read_split("test"))
        better = task.compare(metrics, champion_eval)
        key = task_cls.primary_metric
        result.update(
            champion=current["model_version"],
            champion_test=champion_eval["test"],
            publish=better,
            reason=(
                f"{key}: candidate {metrics['test'][key]:.4f} vs champion {champion_eval['test'][key]:.4f} "
                f"on the candidate's held-out split ({'higher' if task_cls.higher_is_better else 'lower'} is better)"
            ),
        )
    (run / EVALUATION).write_text(json.dumps(result, indent=2, default=float))
    register(settings, run, "approved" if result["publish"] else "held_back", _logical_time(metrics["as_of"]))
    log.info(
        "gate for %s: %s (%s)", metrics["model_version"], "publish" if result["publish"] else "hold", result["reason"]
    )
    return result


def publish(settings: Settings, model: str, dataset_id: str, logical_date: date, force: bool = False) -> dict:
    """Write the run's outputs and its registry row to the lake; refuses unless the gate passed."""
    run = run_dir_for(settings, model, dataset_id)
    metrics = json.loads((run / "metrics.json").read_text())
    gate_file = run / EVALUATION
    if not force:
        if not gate_file.exists():
            raise GateClosed(
                f"{metrics['model_version']} has not been evaluated: run `lakecart evaluate {model}` first"
            )
        gate = json.loads(gate_file.read_text())
        if gate["candidate"] != metrics["model_version"] or not gate["publish"]:
            raise GateClosed(f"the gate holds {metrics['model_version']} back: {gate['reason']}")
    version = metrics["model_version"]
    created_at = _logical_time(logical_date.isoformat())
    written = {}
    for path in sorted((run / "outputs").glob("*.*.parquet")):
        table = path.name.removesuffix(".parquet")
        frame = pd.read_parquet(path).assign(model_version=version, created_at=created_at)
        if "embedding" in frame.columns:
            frame["embedding"] = [list(map(float, v)) for v in frame["embedding"]]
        replace_version(tables.table_path(table, settings), frame, version)
        written[table] = len(frame)
    register(settings, run, "published", created_at)
    summary = {"model_version": version, "tables": written}
    log.info("published %s", summary)
    return summary


def _logical_time(day: str) -> pd.Timestamp:
    # The run's logical time, not the wall clock: republishing the same run writes the same rows.
    return pd.Timestamp(datetime.combine(date.fromisoformat(day), time(0), tzinfo=UTC))


def register(settings: Settings, run: Path, status: str, created_at: pd.Timestamp) -> None:
    """Record (or update) a trained model in the registry: ``approved`` or ``held_back`` by the
    gate, then ``published``. The champion is the newest ``published`` row."""
    metrics = json.loads((run / "metrics.json").read_text())
    row = {
        "model_version": metrics["model_version"],
        "model": metrics["model"],
        "dataset_id": metrics["dataset_id"],  # the training set's manifest id
        "status": status,
        "params": json.dumps(metrics["params"], sort_keys=True),
        "metrics": json.dumps({"test": metrics["test"], "baselines": metrics.get("baselines", {})}, default=float),
        "primary_metric": metrics["primary_metric"],
        "primary_value": float(metrics["test"][metrics["primary_metric"]]),
        "artifact_path": str(run.resolve()),
        "created_at": created_at,
    }
    replace_version(tables.table_path(tables.MODEL_REGISTRY, settings), pd.DataFrame([row]), row["model_version"])
