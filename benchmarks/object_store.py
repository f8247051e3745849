"""Benchmark: ingest and one view's materialisation on local disk vs an S3-compatible server.

The same generated day goes through the s3 tier's steps (tests/s3/steps.py: bronze, silver, validate,
publish, features apply, one view materialised) in a fresh process per run, first with the lake on
local disk, then in a bucket of the project's own S3 server (infra/s3/s3.sh: moto on 127.0.0.1). Each
step's seconds are recorded; the summary goes to bench-results/object_store.jsonl and a table to
bench-results/object_store.md.

    .venv/pipeline/bin/python benchmarks/object_store.py [--events-per-day 150]

What it measures on a local moto server is the s3a/delta-rs code path and request count, not a real
object store's latency or throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events-per-day", type=int, default=150)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # tests.s3.steps: the steps the s3 tier runs
    from lakecart import s3dev, storage
    from lakecart.cluster import free_port
    from lakecart.jobs.generate import generate
    from tests.s3 import steps

    with tempfile.TemporaryDirectory(prefix="object-store-bench-") as tmp:
        work = Path(tmp)
        raw = work / "local-root" / "raw"
        generate(replace(steps.tiny_spec(), events_per_day=args.events_per_day), raw)
        cfg = s3dev.ServerConfig(state_dir=work / "s3", port=free_port(), bucket="bench")
        state = s3dev.up(cfg)
        try:
            env = {k: v for k, v in s3dev.server_env(state).items() if k.startswith("AWS_")}
            os.environ.update(env)  # copy_tree below reads the environment, as every reader does
            bucket_root = f"s3a://{cfg.bucket}/run"
            storage.copy_tree(str(raw), f"{bucket_root}/raw")
            results = {}
            for mode, root, changes in (("local", str(work / "local-root"), {}), ("s3", bucket_root, env)):
                started = time.perf_counter()
                done = steps.launch(root, work / f"{mode}.json", changes)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    print(done.stderr[-4000:], file=sys.stderr)
                    return 1
                results[mode] = {**json.loads((work / f"{mode}.json").read_text()), "process": wall}
        finally:
            s3dev.down(cfg)
    summary = {**bench_results.stamp(), "events_per_day": args.events_per_day, "seconds": results}
    bench_results.append("object_store", summary)
    names = list(results["local"])
    lines = [
        f"# Object-store lake vs local disk ({summary['date']}, {summary['machine']})",
        "",
        f"One generated day ({args.events_per_day} events), the s3 tier's steps in one process each; "
        "seconds. S3: moto on 127.0.0.1 (a local server: code path and request count, not network latency).",
        "",
        "| step | local disk | S3 server | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        a, b = results["local"][name], results["s3"].get(name, float("nan"))
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    out = bench_results.RESULTS / "object_store.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
