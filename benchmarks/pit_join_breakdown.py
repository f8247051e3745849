"""Benchmark: where the time of lakecart's Spark point-in-time join goes (issue 19).

On the files ``benchmarks/pit_join.py`` writes (``--data``: its ``data`` folder; or ``--labels`` and
``--feature-rows`` to write a fresh set), one fresh process per round measures, in order:

- **imports**: Python importing pyspark and lakecart;
- **session**: starting the JVM and the Delta-enabled SparkSession (``lakecart.spark.get_spark``);
- **labels to driver**: reading the label rows and collecting them to the driver as Arrow, which
  the columnar plan does once;
- **join, Spark**: ``point_in_time_join`` (``plan="auto"``: columnar) with the result written to
  Parquet, as the benchmark's lakecart side does; its CPU split into the JVM and the Python workers
  Spark forks (where DuckDB runs inside the tasks);
- **join, DuckDB in the driver**: the same join (``plan="local"``'s engine, ``pit_local``) with
  the labels already in the driver, result written with pyarrow: DuckDB's share of the work;
- **stop**: stopping the session.

"join, Spark" minus "join, DuckDB in the driver" is what Spark adds around DuckDB: scheduling
tasks, shipping labels to the Python workers, and handing the rows back to the JVM to be written.
Rounds run in fresh processes (a JVM warmed by an earlier join would flatter the later steps);
figures are medians, written to ``bench-results/pit_join_breakdown.jsonl``.

    .venv/pipeline/bin/python benchmarks/pit_join_breakdown.py --data /tmp/bench-pit/data --rounds 3
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

STEPS = ("imports", "session", "labels_to_driver", "join_spark", "join_duckdb_in_driver", "stop")


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def one_round(data: Path, out: Path) -> dict:
    """The steps, timed in this (fresh) process."""
    started = time.perf_counter()
    import pit_join
    import psutil
    import pyarrow.parquet as pq

    from lakecart.config import Settings, SparkSettings
    from lakecart.features import pit_columnar, pit_local
    from lakecart.features.definitions import AVAILABLE_AT, Entity, Feature, FeatureView
    from lakecart.features.pit import point_in_time_join
    from lakecart.spark import get_spark

    seconds = {"imports": time.perf_counter() - started}
    me = psutil.Process()
    tick = time.perf_counter()
    spark = get_spark(
        Settings(spark=SparkSettings(master="local[2]", driver_memory="12g", shuffle_partitions=16)),
        app_name="bench-pit-breakdown",
    )
    seconds["session"] = time.perf_counter() - tick
    jvm = [p for p in me.children(recursive=True) if "java" in p.name()][0]

    def python_workers() -> list:
        return [p for p in jvm.children(recursive=True) if "python" in p.name()]

    tick = time.perf_counter()
    labels = spark.read.parquet(str(data / "labels.parquet"))
    table = labels.toArrow()
    seconds["labels_to_driver"] = time.perf_counter() - tick

    jvm_cpu, workers_cpu = cpu_seconds(jvm), sum(cpu_seconds(p) for p in python_workers())
    tick = time.perf_counter()
    features = spark.read.parquet(str(data / "features"))
    view = FeatureView(
        name="bench",
        version=1,
        entity=Entity("user", ("user_id",), ""),
        features=tuple(Feature(f, "double", "") for f in pit_join.FEATURES),
        transform=lambda events, start, end: events,
        ttl=pit_join.TTL,
        owner="bench",
        description="",
    )
    joined = point_in_time_join(labels, "label_time", [(view, features)])
    columns = ["label_id", *[f"bench_v1__{f}" for f in pit_join.FEATURES]]
    joined.select(*columns).write.mode("overwrite").parquet(str(out / "spark.parquet"))
    seconds["join_spark"] = time.perf_counter() - tick
    cpu = {
        "join_spark_jvm": cpu_seconds(jvm) - jvm_cpu,
        # Workers that exited during the join are not counted: a lower bound.
        "join_spark_python_workers": sum(cpu_seconds(p) for p in python_workers()) - workers_cpu,
    }

    driver_cpu = cpu_seconds(me)
    tick = time.perf_counter()
    files = pit_columnar.files_of(features, AVAILABLE_AT)
    schema = pq.read_schema(sorted((data / "features").glob("*.parquet"))[0])
    local = pit_local.join_files(table, "label_time", [(view, files, schema)])
    pq.write_table(local.select(columns), out / "local.parquet")
    seconds["join_duckdb_in_driver"] = time.perf_counter() - tick
    cpu["join_duckdb_in_driver"] = cpu_seconds(me) - driver_cpu

    tick = time.perf_counter()
    spark.stop()
    seconds["stop"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    return {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a data folder written by benchmarks/pit_join.py (else one is written)")
    parser.add_argument("--labels", type=int, default=1_000_000, help="label rows, when writing data")
    parser.add_argument("--feature-rows", type=int, default=20_000_000, help="feature rows, when writing data")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes; figures are medians (default: 3)")
    parser.add_argument("--round", help=argparse.SUPPRESS)  # one round, in this process, results to this file
    args = parser.parse_args()
    if args.round:
        out = Path(args.round)
        Path(out.with_suffix(".json")).write_text(json.dumps(one_round(Path(args.data), out.parent)))
        return 0

    import pit_join

    work = Path(tempfile.mkdtemp(prefix="bench-pit-breakdown-"))
    data = Path(args.data) if args.data else work / "data"
    shape = {"data": str(data)}
    if not args.data:
        shape.update(pit_join.write_data(data, args.labels, args.feature_rows, 100))
    rounds = []
    for n in range(1, args.rounds + 1):
        result = work / f"round{n}"
        command = [sys.executable, __file__, "--data", str(data), "--round", str(result)]
        subprocess.run(command, check=True)
        rounds.append(json.loads(result.with_suffix(".json").read_text()))
        print(f"round {n}/{args.rounds}: {json.dumps(rounds[-1])}", flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    summary = {
        "benchmark": "pit_join_breakdown",
        **shape,
        "rounds": args.rounds,
        "median_seconds": {k: statistics.median(r["seconds"][k] for r in rounds) for k in (*STEPS, "total")},
        "median_cpu_seconds": {
            k: statistics.median(r["cpu_seconds"][k] for r in rounds) for k in rounds[0]["cpu_seconds"]
        },
        "each_round": rounds,
        "load_average_at_end": load,
        **bench_results.stamp(),
    }
    bench_results.append("pit_join_breakdown", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
