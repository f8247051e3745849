"""Benchmark: the four models on months of synthetic shop data (issue 5): quality against their
baselines, training throughput per worker, and 1 vs 2 Horovod workers at the same global batch and
epochs.

Everything goes through the ``lakecart`` command line, exactly as the DAGs run it: generate
``--days`` days of raw logs, ingest them, materialise every feature view, build the training sets
(retrieval: the last 28 days, 7 held out; churn: 28-day horizon; demand: 7/14/28 days ahead;
churn and demand observe weekly over 8 weeks, the last 2 held out), then train every model once
with 1 worker and once with 2 (``horovodrun --gloo -np 2``). Early stopping is off for the
comparison so both runs take the same steps.

    .venv/pipeline/bin/python benchmarks/training_models.py            # ~120 days, ~40 min on 2 cores
    .venv/pipeline/bin/python benchmarks/training_models.py --quick    # a smoke run of the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
LAKECART = str(Path(sys.executable).parent / "lakecart")
START = date(2026, 1, 1)
# Per model: flags for both runs (same global batch and epochs; no early stopping).
TRAIN = {
    "retrieval": ["--epochs", "8", "--global-batch-size", "1024", "--learning-rate", "0.1"],
    "ranking": ["--epochs", "6", "--global-batch-size", "1024", "--learning-rate", "0.003"],
    "churn": ["--epochs", "15", "--global-batch-size", "256", "--learning-rate", "0.003"],
    "demand": ["--epochs", "40", "--global-batch-size", "128", "--learning-rate", "0.003"],
    "category_demand": ["--epochs", "60", "--global-batch-size", "16", "--learning-rate", "0.003"],
}


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def lakecart(*args: str, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([LAKECART, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def metrics_of(root: Path, model: str, dataset_id: str) -> dict:
    run_root = root / "models" / model / dataset_id
    return json.loads((run_root / (run_root / "latest").read_text().strip() / "metrics.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/tmp/lakecart-bench-training", help="lake root (reused if the data is there)")
    p.add_argument("--days", type=int, default=119)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--events-per-day", type=int, default=4000)
    p.add_argument("--models", default=",".join(TRAIN), help="comma-separated")
    p.add_argument(
        "--seeds",
        default="",
        help="comma-separated seeds: each model is trained on 1 and on 2 workers per seed (default: one run)",
    )
    p.add_argument("--quick", action="store_true", help="40 days, small data, 2 epochs: checks the script")
    args = p.parse_args()
    if args.quick:
        args.days, args.users, args.items, args.events_per_day = 40, 300, 60, 600
    root = Path(args.root)
    env = {**os.environ, "LAKECART_LAKE__ROOT": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    end = START + timedelta(days=args.days - 1)
    horizon = 7 if args.quick else 28
    timings: dict[str, float] = {}

    if not (root / "lake" / "training" / "manifests").exists():
        step(f"data: {args.days} days x {args.events_per_day} events, {args.users} users, {args.items} items")
        timings["generate"] = lakecart(
            "generate", "--days", str(args.days), "--users", str(args.users), "--items", str(args.items),
            "--events-per-day", str(args.events_per_day), "--out", str(root / "raw"), env=env,
        )  # fmt: skip
        window = ["--date", end.isoformat(), "--lookback-days", str(args.days - 1)]
        for name, command in (
            ("ingest_bronze", ["ingest", "bronze", *window]),
            ("ingest_silver", ["ingest", "silver", *window]),
            # Publishing refuses a staged batch without a passing verdict: the audit step as in the DAG.
            ("validate_silver", ["validate", "staging.silver_events", "--date", end.isoformat()]),
            ("ingest_publish", ["ingest", "publish"]),
            ("ingest_catalog", ["ingest", "catalog"]),
            ("features_apply", ["features", "apply"]),
            ("features_materialize", ["features", "materialize", *window]),
        ):
            step(name)
            timings[name] = lakecart(*command, env=env)
        # Weekly observation dates; the last two (one in --quick) are held out.
        observe = ["--every-days", "7", "--days", "56", "--test-days", "8"] if not args.quick else []
        observe = observe or ["--every-days", "7", "--days", "14", "--test-days", "1"]
        for kind, extra in (
            ("retrieval", ["--days", "28", "--test-days", "7"]),
            ("churn", [*observe, "--horizon-days", str(horizon)]),
            ("demand", [*observe, "--horizons", "7,14,28" if not args.quick else "7"]),
            ("category_demand", [*observe, "--horizons", "7,14,28" if not args.quick else "7"]),
        ):
            step(f"training set {kind}")
            timings[f"dataset_{kind}"] = lakecart("dataset", "build", kind, "--date", end.isoformat(), *extra, env=env)

    from lakecart.training.tasks import TASKS

    results = []
    for model in args.models.split(","):
        dataset_id = f"{TASKS[model].dataset_kind}_{end:%Y%m%d}"
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [None]
        per_seed = []
        for seed in seeds:
            runs = {}
            for processes in (1, 2):
                step(f"train {model} on {processes} worker(s)" + (f", seed {seed}" if seed is not None else ""))
                flags = TRAIN[model] if not args.quick else ["--epochs", "2", "--global-batch-size", "8"]
                flags = [*flags, *(["--seed", str(seed)] if seed is not None else [])]
                seconds = lakecart(
                    "train", model, "--date", end.isoformat(), "--processes", str(processes), *flags,
                    "--param", "patience=null", env=env,
                )  # fmt: skip
                runs[processes] = {**metrics_of(root, model, dataset_id), "wall_seconds": seconds}
            per_seed.append(runs)
        runs = per_seed[0]
        one, two = runs[1], runs[2]
        key = one["primary_metric"]
        result = {
            "model": model,
            "primary_metric": key,
            "one_worker": one["test"],
            "two_workers": two["test"],
            "baselines": one["baselines"],
            "relative_difference_2_vs_1": abs(two["test"][key] - one["test"][key]) / abs(one["test"][key]),
            **(
                {
                    "seeds": seeds,
                    "primary_per_seed": {str(n): [r[n]["test"][key] for r in per_seed] for n in (1, 2)},
                    "relative_difference_of_medians_2_vs_1": abs(
                        median(r[2]["test"][key] for r in per_seed) - median(r[1]["test"][key] for r in per_seed)
                    )
                    / abs(median(r[1]["test"][key] for r in per_seed)),
                }
                if len(seeds) > 1
                else {}
            ),
            "examples_per_second_per_worker": {
                "1": one["examples_per_second_per_worker"],
                "2": two["examples_per_second_per_worker"],
            },
            "wall_seconds": {"1": one["wall_seconds"], "2": two["wall_seconds"]},
            "train_rows": one["train_rows"],
            "test_rows": one["test_rows"],
            **(
                {"improvement_vs_best_baseline": one["improvement_vs_best_baseline"]}
                if model.endswith("demand")
                else {}
            ),
        }
        results.append(result)
        print(json.dumps(result, indent=2, default=float), flush=True)

    record = {
        "benchmark": "training_models",
        "date": date.today().isoformat(),
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}",
        "data": {"days": args.days, "users": args.users, "items": args.items, "events_per_day": args.events_per_day},
        "pipeline_seconds": timings,
        "results": results,
    }
    out = REPO / "bench-results" / "training_models.jsonl"
    with out.open("a") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    step(f"recorded in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
