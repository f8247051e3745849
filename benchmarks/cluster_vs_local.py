"""Benchmark: the same pipeline steps on a local Spark standalone cluster and in local mode.

Starts a two-worker cluster (lakecart/cluster.py: master and workers on 127.0.0.1, 1 core and 2 GB
each, on free ports) and runs the cluster tier's steps (tests/cluster/pipeline.py: ingest bronze,
silver, the silver gate, publish, catalogue, features apply and materialize of the retrieval views,
the retrieval training set) over the same generated raw logs, locally (``local[2]``) and on the
cluster (``LAKECART_CONFIG=infra/config/spark-standalone-local.yaml``), in alternating order for
``--rounds`` rounds; each run is one process (one Spark session: its start is the ``session`` row)
on a fresh lake. Prints each step's median seconds side by side and appends the summary to
``bench-results/cluster_vs_local.jsonl``. The cluster is stopped at the end, also on failure.

    .venv/pipeline/bin/python benchmarks/cluster_vs_local.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "infra" / "config" / "spark-standalone-local.yaml"


def run_steps(raw: Path, work: Path, name: str, steps: list[str], env_changes: dict[str, str]) -> dict[str, float]:
    """One run of ``steps`` in a fresh process on a fresh lake over ``raw``; seconds per step, and
    ``process``: the whole process (interpreter, imports, JVM, session, steps, stop)."""
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copytree(raw, root / "raw")
    from tests.cluster.pipeline import launch  # on sys.path since main() started

    timings = work / f"{name}.json"
    started = time.perf_counter()
    done = launch(root, timings, steps, env_changes)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(timings.read_text())
    result["process"] = elapsed
    shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--events-per-day", type=int, default=200)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from dataclasses import replace

    from lakecart import cluster
    from lakecart.jobs.generate import generate
    from tests.cluster import pipeline

    steps = [*pipeline.INGEST, *pipeline.FEATURES, *pipeline.DATASET]
    spec = replace(pipeline.tiny_spec(), users=args.users, events_per_day=args.events_per_day)
    runs: dict[str, list[dict[str, float]]] = {"local": [], "cluster": []}
    with tempfile.TemporaryDirectory(prefix="cluster-vs-local-") as tmp:
        work = Path(tmp)
        manifest = generate(spec, work / "raw")
        cfg = cluster.ClusterConfig.on_free_ports(work / "spark-cluster")
        started = time.perf_counter()
        cluster.up(cfg)
        up_s = time.perf_counter() - started
        envs = {
            "local": {"LAKECART_SPARK__MASTER": "local[2]"},
            "cluster": {"LAKECART_CONFIG": str(PROFILE), "LAKECART_SPARK__MASTER": cfg.master_url},
        }
        try:
            for n in range(args.rounds):
                for mode in ("local", "cluster") if n % 2 == 0 else ("cluster", "local"):
                    result = run_steps(work / "raw", work, f"{mode}-{n}", steps, envs[mode])
                    runs[mode].append(result)
                    print(f"round {n + 1} {mode}: {result['process']:.1f} s", file=sys.stderr, flush=True)
        finally:
            cluster.down(cfg)

    rows = ["session", *steps, "process"]
    medians = {mode: {row: statistics.median(r[row] for r in runs[mode]) for row in rows} for mode in runs}
    print(
        f"\n{spec.days} days x ~{spec.events_per_day} events ({manifest['raw_lines']} raw lines), {spec.users} users; "
        f"median of {args.rounds} alternating rounds; cluster: 2 workers x 1 core, 1 executor each "
        f"(cluster up: {up_s:.1f} s); local: local[2]; {os.cpu_count()} cores\n"
    )
    width = max(len(r) for r in [*rows, "whole run (process)"])
    print(f"{'step':<{width}}  {'local s':>8}  {'cluster s':>9}  {'cluster/local':>13}")
    for row in rows:
        local, on_cluster = medians["local"][row], medians["cluster"][row]
        label = "whole run (process)" if row == "process" else row
        print(f"{label:<{width}}  {local:>8.1f}  {on_cluster:>9.1f}  {on_cluster / local:>12.2f}x")
    summary = {
        "benchmark": "cluster_vs_local",
        **bench_results.stamp(),
        "rounds": args.rounds,
        "raw_lines": manifest["raw_lines"],
        "cluster_up_s": round(up_s, 1),
        "median_s": {mode: {row: round(v, 2) for row, v in m.items()} for mode, m in medians.items()},
    }
    print(f"\nappended to {bench_results.append('cluster_vs_local', summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
