"""Benchmark: what the JVM class-data archive saves on every local Spark start.

Every `lakecart ...` call and every Airflow task starts its own local Spark session, so its start-up
cost is paid dozens of times per pipeline run. The install step records a class-data archive of the
classes a session loads (`python -m lakecart.spark`); `get_spark` maps it for local masters and, by
default, starts local JVMs with quick JIT settings (C1 only, parallel GC; `SparkSettings.quick_jit`).
This script starts fresh processes in turn with neither, with the archive only, and with both (the
default), and times in each: the session start, the first job (`range(10).count()`), and a first
Delta read of a small table, then reports medians side by side.

    .venv/pipeline/bin/python benchmarks/spark_startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

# off: neither; archive: the class-data archive only; default: the archive and quick JIT.
VARIANTS = ("off", "archive", "default")


def child(archive: str, table: str) -> None:
    started = time.perf_counter()
    from lakecart.config import Settings, SparkSettings
    from lakecart.spark import get_spark

    conf = {"spark.driver.extraJavaOptions": "-Duser.timezone=UTC"} if archive == "off" else {}
    settings = SparkSettings(conf=conf, quick_jit=archive == "default")
    spark = get_spark(Settings(spark=settings), app_name="bench-startup")
    session = time.perf_counter()
    spark.range(10).count()
    first_job = time.perf_counter()
    spark.read.format("delta").load(table).groupBy("k").count().collect()
    delta_read = time.perf_counter()
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    print(
        json.dumps(
            {
                "session_s": round(session - started, 2),
                "first_job_s": round(first_job - session, 2),
                "delta_read_s": round(delta_read - first_job, 2),
                "archive_mapped": "SharedArchiveFile" in options,
            }
        ),
        flush=True,
    )
    spark.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="processes per variant, alternating")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.table)
        return 0

    from lakecart.spark import class_archive_path

    if not class_archive_path().is_file():
        print(f"no class-data archive at {class_archive_path()}: run `python -m lakecart.spark` first")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        table = str(Path(tmp) / "t")
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import deltalake, pyarrow as pa; deltalake.write_deltalake({table!r}, "
                "pa.table({'k': list(range(100)) * 10}))",
            ],
            check=True,
        )
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for round_ in range(args.rounds):
            for variant in VARIANTS:
                t0 = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", variant, "--table", table],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result["process_s"] = round(time.perf_counter() - t0, 2)
                runs[variant].append(result)
                print(f"round {round_ + 1} {variant}: {result}", flush=True)
    keys = ["session_s", "first_job_s", "delta_read_s", "process_s"]
    medians = {v: {k: statistics.median(r[k] for r in runs[v]) for k in keys} for v in runs}
    summary = {
        "benchmark": "spark_startup",
        "rounds": args.rounds,
        **{f"median_{v}": medians[v] for v in VARIANTS},
        "saved_per_process_s_archive": round(medians["off"]["process_s"] - medians["archive"]["process_s"], 2),
        "saved_per_process_s_default": round(medians["off"]["process_s"] - medians["default"]["process_s"], 2),
        "archive_mapped_in_every_archive_run": all(r["archive_mapped"] for v in VARIANTS[1:] for r in runs[v]),
        **bench_results.stamp(),
    }
    bench_results.append("spark_startup", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
