"""The last two steps of a training run: the gate (``lakecart evaluate``) and the write-back
(``lakecart publish``). Delta writes through delta-rs, no JVM; each commit's ``userMetadata``
records the code version, the job and the model.

Every evaluated model gets a row in ``gold.model_registry`` (training-set manifest id, parameters,
metrics, artefact path, the code version, the gate's reason; status ``approved`` or
``held_back``, then ``published``). The gate compares the task's primary metric on the
candidate's held-out split, where the champion (the model last published for this task) is
re-scored and every baseline was scored:

- the candidate is published when it beats the best baseline by more than the margin and is at
  least as good as the champion;
- otherwise, when the champion beats the best baseline, the champion stays (exit 99: hold back);
- otherwise no model qualifies, and the best baseline's rows are published into the same tables,
  ``model_version`` ``<model>-<date>-baseline-<name>``, registry ``kind`` ``baseline``: consumers
  always get the best available answer.

Publishing replaces exactly this version's rows in each declared output table, so publishing twice
leaves the same tables.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from lakecart import lineage, tables
from lakecart.config import Settings
from lakecart.errors import LakecartError
from lakecart.storage import is_delta, open_delta, read_text, storage_options, sync_tree
from lakecart.training.tasks import TASKS
from lakecart.training.tasks.base import ModelTask, TrainParams
from lakecart.training.worker import BASELINES, LATEST, OUTPUTS

log = logging.getLogger(__name__)
EVALUATION = "evaluation.json"
# How much better than the best baseline a model must be on the primary metric (0: any better).
GATE_MARGIN = 0.0
# The gate's decisions: what ``lakecart publish`` then writes.
CANDIDATE, CHAMPION, BASELINE = "candidate", "champion", "baseline"


class NothingPublished(LakecartError, RuntimeError):
    """The run (or the baseline the gate chose) has no rows for any table its model declares."""


class GateClosed(LakecartError, RuntimeError):
    """The gate kept the champion, or the run was never evaluated."""


def run_root_for(settings: Settings, model: str, dataset_id: str) -> Path:
    """The local folder of ``model``'s runs on ``dataset_id``: ``<models>/<model>/<dataset_id>``, or
    its working copy under ``lake.local_dir`` when the lake is a bucket (the worker copies each
    finished run there, :func:`run_dir_for` fetches it back)."""
    return settings.lake.work_path(f"{settings.lake.models}/{model}/{dataset_id}")


def run_dir_for(settings: Settings, model: str, dataset_id: str) -> Path:
    """The newest finished run of ``model`` on the training set ``dataset_id``, as named by the lake's
    ``latest``: a local folder, fetched from the bucket first when the lake is one."""
    lake_root = f"{settings.lake.models}/{model}/{dataset_id}"
    version = read_text(f"{lake_root}/{LATEST}")
    if version is None:
        raise FileNotFoundError(
            f"no finished {model} run on {dataset_id} under {lake_root}: run `lakecart train {model}`"
        )
    return fetch_run(settings, f"{lake_root}/{version.strip()}")


def fetch_run(settings: Settings, uri: str) -> Path:
    """The local copy of the run folder (or file) at the lake location ``uri``, updated from the lake
    when the lake is a bucket (only files that changed travel); ``uri`` itself on a local lake."""
    local = settings.lake.work_path(uri)
    sync_tree(uri, str(local))
    return local


def store_run(settings: Settings, run: Path) -> None:
    """Copy what changed in the local run folder ``run`` to its place in the lake (nothing to do when
    the lake is the local folder)."""
    lake = settings.lake.lake_uri(run)
    if lake is not None:
        sync_tree(str(run), lake)


def _lake_uri(settings: Settings, local: Path) -> str:
    # What the registry records: the lake location (absolute on local disk), wherever it ran.
    return settings.lake.lake_uri(local) or str(local.resolve())


def baseline_version(model: str, dataset_id: str, baseline: str) -> str:
    """The ``model_version`` a baseline's published rows carry: ``<model>-<date>-baseline-<name>``."""
    return f"{model}-{dataset_id.rsplit('_', 1)[-1]}-baseline-{baseline}"


def replace_version(path: str, frame: pd.DataFrame, version: str, metadata: str) -> None:
    """Replace ``version``'s rows of the Delta table at ``path``; ``metadata``: the commit's userMetadata."""
    data = pa.Table.from_pandas(frame, preserve_index=False)
    commit = CommitProperties(custom_metadata={"userMetadata": metadata})
    options = storage_options(path)
    if is_delta(path):
        write_deltalake(
            path,
            data,
            mode="overwrite",
            predicate=f"model_version = '{version}'",
            schema_mode="merge",
            commit_properties=commit,
            storage_options=options,
        )
    else:
        write_deltalake(path, data, mode="append", commit_properties=commit, storage_options=options)


def champion(settings: Settings, model: str, exclude: str | None = None) -> dict | None:
    """The registry row of what was last published for ``model`` (newest created_at, then newest
    registration): a model, or a baseline published in its place (``kind``); None when nothing was."""
    path = tables.table_path(tables.MODEL_REGISTRY, settings)
    if not is_delta(path):
        return None
    rows = open_delta(path).to_pandas(filters=[("model", "=", model), ("status", "=", "published")])
    rows = rows[rows["model_version"] != exclude] if exclude else rows
    if rows.empty:
        return None
    # Two publishes for one logical date (a re-run, `--force`): the later registration wins. Rows
    # registered before `registered_at` existed have none and sort first.
    if "registered_at" not in rows.columns:
        rows = rows.assign(registered_at=pd.NaT)
    order = rows.sort_values(["created_at", "registered_at", "model_version"], na_position="first")
    return order.iloc[-1].to_dict()


def published_artefact(settings: Settings, model: str, name: str) -> Path | None:
    """``<name>.parquet`` of what is published for ``model`` (``ModelTask.artefacts``), e.g. the
    retrieval candidates ranking re-ranks; None when nothing is published."""
    current = champion(settings, model)
    if current is None:
        return None
    uri = f"{current['outputs_path']}/{name}.parquet"
    try:
        return fetch_run(settings, uri)
    except FileNotFoundError:
        raise FileNotFoundError(f"the published {model} ({current['model_version']}) has no artefact {uri}") from None


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


def evaluate_candidate(settings: Settings, model: str, dataset_id: str, margin: float = GATE_MARGIN) -> dict:
    """The gate for the candidate run on ``dataset_id`` (see the module docstring); writes
    ``evaluation.json`` into the run directory, records the candidate, and returns the decision:
    ``publish`` is True when ``lakecart publish`` has something to write (candidate or baseline)."""
    run = run_dir_for(settings, model, dataset_id)
    metrics = json.loads((run / "metrics.json").read_text())
    task_cls = TASKS[model]
    key = task_cls.primary_metric
    value = metrics["test"][key]
    best = task_cls.best_baseline(metrics["baselines"])
    # A baseline stands in for a model only when the run could write its rows (ranking's need the
    # published retrieval candidates).
    has_rows = best is not None and best[0] in metrics.get("baseline_outputs", {})
    current = champion(settings, model, exclude=metrics["model_version"])
    result = {
        "model": model,
        "candidate": metrics["model_version"],
        "primary_metric": key,
        "higher_is_better": task_cls.higher_is_better,
        "margin": margin,
        "candidate_test": metrics["test"],
        "baseline": best[0] if best else None,
        "baseline_test": metrics["baselines"][best[0]] if best else None,
        "champion": None,
        "champion_test": None,
    }
    champion_value, beats_champion, champion_implausible = None, True, None
    if current is not None and current.get("kind") != BASELINE:  # a published baseline is re-made from data
        task, champion_model = load_trained(settings, model, fetch_run(settings, current["artifact_path"]), dataset_id)
        champion_eval = task.evaluate(champion_model, task.read_split("train"), task.read_split("test"))
        champion_value, beats_champion = champion_eval["test"][key], task.compare(metrics, champion_eval)
        champion_implausible = task_cls.implausible(champion_eval)
        result.update(champion=current["model_version"], champion_test=champion_eval["test"])
    implausible = task_cls.implausible(metrics)
    beats_baseline = (best is None or task_cls.beats(value, best[1], margin)) and implausible is None
    champion_qualifies = (
        champion_value is not None
        and champion_implausible is None
        and (best is None or task_cls.beats(champion_value, best[1], margin))
    )
    versus = f"the best baseline {best[0]} {best[1]:.4f} (margin {margin})" if best else "no baseline"
    candidate = f"{key}: candidate {metrics['model_version']} {value:.4f}"
    if implausible:
        candidate += f" (held back: {implausible})"
    held = f"{result['champion']} {champion_value:.4f}" if champion_value is not None else None
    direction = "higher" if task_cls.higher_is_better else "lower"
    if beats_baseline and beats_champion:
        decision = CANDIDATE
        reason = f"{candidate} beats {versus}" + (f" and is at least as good as the champion {held}" if held else "")
    elif champion_qualifies or not has_rows:
        decision = CHAMPION
        why = f"does not beat {versus}" if not beats_baseline else f"is worse than the champion {held}"
        if champion_qualifies:
            reason = f"{candidate} {why}; the champion {held} stays"
        else:
            reason = f"{candidate} {why}, whose rows this run could not make; what was published stays"
    else:
        decision = BASELINE
        also = f", nor does the champion {held}" if held else ""
        reason = (
            f"{candidate} does not beat {versus}{also}: publishing {best[0]}'s rows as "
            f"{baseline_version(model, dataset_id, best[0])}"
        )
    reason += f" (on the candidate's held-out split; {direction} is better)"
    result.update(decision=decision, publish=decision != CHAMPION, reason=reason)
    (run / EVALUATION).write_text(json.dumps(result, indent=2, default=float))
    store_run(settings, run)
    status = "approved" if decision == CANDIDATE else "held_back"
    register(settings, run, status, _logical_time(metrics["as_of"]), reason, job="evaluate")
    log.info("gate for %s: %s (%s)", metrics["model_version"], decision, reason)
    return result


def publish(settings: Settings, model: str, dataset_id: str, logical_date: date, force: bool = False) -> dict:
    """Write what the gate decided to the lake: the candidate's rows, or the best baseline's when no
    model qualified. Refuses when the gate kept the champion or has not run (``force``: publish the
    candidate anyway, a deliberate rollback)."""
    run = run_dir_for(settings, model, dataset_id)
    metrics = json.loads((run / "metrics.json").read_text())
    gate_file = run / EVALUATION
    gate = json.loads(gate_file.read_text()) if gate_file.exists() else None
    if force:
        decision, reason = CANDIDATE, "published with --force"
    elif gate is None or gate["candidate"] != metrics["model_version"]:
        raise GateClosed(f"{metrics['model_version']} has not been evaluated: run `lakecart evaluate {model}` first")
    elif not gate["publish"]:
        raise GateClosed(f"the gate holds {metrics['model_version']} back: {gate['reason']}")
    else:
        decision, reason = gate["decision"], gate["reason"]
    created_at = _logical_time(logical_date.isoformat())
    if decision == BASELINE:
        version, source = baseline_version(model, dataset_id, gate["baseline"]), run / BASELINES / gate["baseline"]
    else:
        version, source = metrics["model_version"], run / OUTPUTS
    written = {}
    metadata = lineage.commit_metadata(job="publish", model=model, model_version=version)
    for table in TASKS[model].output_tables:  # declared tables only: artefacts stay in the run
        path = source / f"{table}.parquet"
        if not path.exists():
            continue  # a baseline has no embeddings, say; a model whose upstream published nothing
        frame = pd.read_parquet(path).assign(model_version=version, created_at=created_at)
        if "embedding" in frame.columns:
            frame["embedding"] = [list(map(float, v)) for v in frame["embedding"]]
        replace_version(tables.table_path(table, settings), frame, version, metadata)
        written[table] = len(frame)
    if not written:
        raise NothingPublished(
            f"{version} has no rows for any of its tables ({', '.join(TASKS[model].output_tables)}) in {source}: "
            "nothing was published and the registry is unchanged (did `lakecart train` score anyone for this date?)"
        )
    built = {}
    if tables.ITEM_EMBEDDINGS in written:  # a retrieval model: the ANN index serving searches, next to its outputs
        from lakecart.serving.ann import publish_index

        built["ann_index"] = publish_index(settings, version, _lake_uri(settings, source))
    if decision == BASELINE:
        register_baseline(settings, run, gate["baseline"], version, created_at, reason)
    else:
        register(settings, run, "published", created_at, reason, job="publish")
    summary = {"model_version": version, "decision": decision, "tables": written, **built}
    log.info("published %s", summary)
    return summary


def _logical_time(day: str) -> pd.Timestamp:
    # The run's logical time, not the wall clock: republishing the same run writes the same rows.
    return pd.Timestamp(datetime.combine(date.fromisoformat(day), time(0), tzinfo=UTC))


def register(settings: Settings, run: Path, status: str, created_at: pd.Timestamp, reason: str, job: str) -> None:
    """Record (or update) a trained model in the registry: ``approved`` or ``held_back`` by the
    gate, then ``published``. The champion is the newest ``published`` row."""
    metrics = json.loads((run / "metrics.json").read_text())
    _register(
        settings,
        {
            "model_version": metrics["model_version"],
            "model": metrics["model"],
            "kind": "model",
            "dataset_id": metrics["dataset_id"],  # the training set's manifest id
            "status": status,
            "reason": reason,
            "params": json.dumps(metrics["params"], sort_keys=True),
            "metrics": json.dumps({"test": metrics["test"], "baselines": metrics["baselines"]}, default=float),
            "primary_metric": metrics["primary_metric"],
            "primary_value": float(metrics["test"][metrics["primary_metric"]]),
            "artifact_path": _lake_uri(settings, run),
            "outputs_path": _lake_uri(settings, run / OUTPUTS),
            "created_at": created_at,
        },
        job,
    )


def register_baseline(
    settings: Settings, run: Path, baseline: str, version: str, created_at: pd.Timestamp, reason: str
) -> None:
    """The registry row of a baseline published in a model's place (``kind`` baseline)."""
    metrics = json.loads((run / "metrics.json").read_text())
    _register(
        settings,
        {
            "model_version": version,
            "model": metrics["model"],
            "kind": BASELINE,
            "dataset_id": metrics["dataset_id"],
            "status": "published",
            "reason": reason,
            "params": json.dumps({"baseline": baseline}),
            "metrics": json.dumps({"test": metrics["baselines"][baseline]}, default=float),
            "primary_metric": metrics["primary_metric"],
            "primary_value": float(metrics["baselines"][baseline][metrics["primary_metric"]]),
            "artifact_path": _lake_uri(settings, run / BASELINES / baseline),
            "outputs_path": _lake_uri(settings, run / BASELINES / baseline),
            "created_at": created_at,
        },
        "publish",
    )


def _register(settings: Settings, row: dict, job: str) -> None:
    row = {
        **row,
        "code_version": json.dumps(lineage.code_version(), sort_keys=True),
        # The wall clock of the registration: orders publishes of one logical date (``champion``).
        "registered_at": pd.Timestamp.now(tz="UTC"),
    }
    metadata = lineage.commit_metadata(job=job, model=row["model"], model_version=row["model_version"])
    path = tables.table_path(tables.MODEL_REGISTRY, settings)
    replace_version(path, pd.DataFrame([row]), row["model_version"], metadata)
