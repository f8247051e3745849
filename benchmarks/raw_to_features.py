"""Benchmark: raw logs -> bronze -> silver -> every feature view for the newest day, through the
daily DAG's own commands (issue 19: 10M events in <= 10 minutes on 2 cores, 20M in <= 2.1x that,
validation <= 15% of the total at every size).

For each size: generate the raw logs (timed apart, not counted), then run each of the daily DAG's
steps (``dags/lakecart_common.DAILY_STEPS``, rendered by the Airflow environment, so this runs the
commands Airflow runs) as its own ``lakecart`` process, one after the other on a fresh lake: the
ingest steps over every generated day (``--lookback-days days-1``), the feature steps for the newest
day. Each step's wall time, CPU seconds (its whole process tree) and peak memory; the total; and
the validation steps' share of it (every ``validate`` step: bronze, the staged silver batch, both
feature groups).

    .venv/pipeline/bin/python benchmarks/raw_to_features.py --events 1000000 10000000
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
from datetime import date, timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)
from ingest_throughput import raw_spec  # the same generated shop as the ingest benchmark

from lakecart.jobs.generate import generate

REPO = Path(__file__).resolve().parents[1]
PIPELINE_BIN = Path(sys.executable).parent
AIRFLOW_PYTHON = REPO / ".venv" / "airflow" / "bin" / "python"


def dag_steps(day: date, lookback: int) -> list[tuple[str, str, bool]]:
    """(task id, ``lakecart`` arguments, whether it is a feature step) of each daily step, as the
    DAGs render them: the ingest steps also over ``lookback`` days before ``day``, the feature steps
    (those the backfill DAG runs once over a range) for ``day`` alone."""
    code = (
        "import json, sys; sys.path.insert(0, 'dags'); from lakecart_common import DAILY_STEPS; "
        "from lakecart_backfill import FEATURE_STEPS as F; "
        f"print(json.dumps([(s.task_id, s.command('{day}', '0' if s.task_id in F else '{lookback}'), s.task_id in F) "
        "for s in DAILY_STEPS]))"
    )
    out = subprocess.run([str(AIRFLOW_PYTHON), "-c", code], cwd=REPO, check=True, capture_output=True, text=True)
    return [tuple(step) for step in json.loads(out.stdout.strip().splitlines()[-1])]


def run_size(events: int, days: int, root: Path, timeout_s: int) -> dict:
    spec = raw_spec(events, days)
    t0 = time.perf_counter()
    manifest = generate(spec, root / "raw")
    generate_s = time.perf_counter() - t0
    os.environ["LAKECART_LAKE__ROOT"] = str(root)
    steps, planned = [], dag_steps(spec.start_date + timedelta(days=days - 1), days - 1)
    for task_id, arguments, feature in planned:
        command = [str(PIPELINE_BIN / "lakecart"), *shlex.split(arguments)]
        result = bench_results.measured(command, timeout_s)
        steps.append({"step": task_id, "arguments": arguments, "feature_step": feature, **result})
        print(json.dumps(steps[-1]), flush=True)
        if result["exit_code"] != 0:
            break
    total = sum(s["seconds"] for s in steps)
    validation = sum(s["seconds"] for s in steps if s["step"].startswith("validate_"))
    return {
        "raw_events": manifest["raw_lines"],
        "days": days,
        "generate_s": round(generate_s, 1),
        "steps": steps,
        "succeeded": len(steps) == len(planned) and all(s["exit_code"] == 0 for s in steps),
        "total_s": round(total, 1),
        "total_cpu_s": round(sum(s["cpu_seconds"] for s in steps), 1),
        "peak_rss_gib": max(s["peak_rss_gib"] for s in steps),
        "validation_s": round(validation, 1),
        "validation_share": round(validation / total, 3) if total else None,
        "features_s": round(sum(s["seconds"] for s in steps if s["feature_step"]), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000], help="sizes, run one after another")
    parser.add_argument("--days", type=int, default=10, help="days of raw logs the events spread over")
    parser.add_argument("--driver-memory", default="8g", help="each step's Spark driver memory")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one step may run")
    args = parser.parse_args()
    if not AIRFLOW_PYTHON.exists():
        parser.error(f"{AIRFLOW_PYTHON} is missing: `make envs` builds it (the steps are rendered by the DAGs' code)")

    os.environ["LAKECART_SPARK__DRIVER_MEMORY"] = args.driver_memory
    bench_results.become_subreaper()
    results = []
    for events in args.events:
        root = Path(tempfile.mkdtemp(prefix=f"bench-raw-features-{events}-"))
        try:
            results.append(run_size(events, args.days, root, args.timeout))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps({k: v for k, v in results[-1].items() if k != "steps"}), flush=True)
    summary = {"benchmark": "raw_to_features", "results": results, **bench_results.stamp()}
    if len(results) > 1:
        summary["time_vs_smallest"] = [round(r["total_s"] / results[0]["total_s"], 2) for r in results]
    bench_results.append("raw_to_features", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
