"""Benchmark: raw -> bronze -> silver throughput on this machine, and what the validation gates add
on top (issue 3: ingest throughput at 1M/10M/20M events; validation overhead <= 15%).

For each size: generate the raw logs (timed apart), then in one Spark session time bronze, silver
staging (parse, quarantine, de-duplicate, sessionise) and publishing (the ingest), and the Great
Expectations suites over the landed bronze rows and the staged silver batch, drift profile included
(the gates). Sizes run one after another in one process.

    .venv/pipeline/bin/python benchmarks/ingest_throughput.py --events 1000000 10000000 20000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

from lakecart import tables
from lakecart.config import LakeSettings, Settings, SparkSettings
from lakecart.jobs import ingest
from lakecart.jobs.generate import GeneratorSpec, generate
from lakecart.jobs.validate import run_validate
from lakecart.spark import get_spark


def raw_spec(events: int, days: int) -> GeneratorSpec:
    """The generated shop of ``events`` events over ``days`` days that the ingest benchmarks use."""
    return GeneratorSpec(
        users=max(1000, events // 100),
        items=max(500, events // 2000),
        categories=40,
        days=days,
        events_per_day=events // days,
        start_date=date(2026, 1, 1),
        defects={"malformed_json": 10, "duplicate_event": 10, "negative_price": 10},
    )


def run_size(events: int, days: int, root: Path, spark, settings: Settings) -> dict:
    spec = raw_spec(events, days)
    t0 = time.perf_counter()
    manifest = generate(spec, root / "raw")
    t_generate = time.perf_counter() - t0
    all_days = [spec.start_date + timedelta(days=n) for n in range(days)]

    t0 = time.perf_counter()
    ingest.run_bronze(spark, settings, all_days)
    t_bronze = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_validate(spark, settings, tables.BRONZE_EVENTS, spec.end_date, days - 1)
    t_validate_bronze = time.perf_counter() - t0
    t0 = time.perf_counter()
    reports = ingest.run_silver(spark, settings, all_days)
    t_silver = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, spec.end_date)
    t_validate_silver = time.perf_counter() - t0
    t_validate = t_validate_bronze + t_validate_silver
    t0 = time.perf_counter()
    ingest.run_publish(spark, settings)
    t_publish = time.perf_counter() - t0

    raw = manifest["raw_lines"]
    ingest_seconds = t_bronze + t_silver + t_publish
    return {
        "raw_events": raw,
        "generate_s": round(t_generate, 1),
        "bronze_s": round(t_bronze, 1),
        "silver_stage_s": round(t_silver, 1),
        "publish_s": round(t_publish, 1),
        "ingest_events_per_s": round(raw / ingest_seconds),
        "validate_bronze_s": round(t_validate_bronze, 1),
        "validate_silver_s": round(t_validate_silver, 1),
        "validation_share_of_ingest": round(t_validate / ingest_seconds, 3),
        "reconciles": all(r.reconciles for r in reports),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--driver-memory", default="10g")
    args = parser.parse_args()

    spark = get_spark(
        Settings(spark=SparkSettings(master="local[2]", driver_memory=args.driver_memory, shuffle_partitions=8)),
        app_name="bench-ingest",
    )
    results = []
    for events in args.events:
        root = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{events}-"))
        settings = Settings(lake=LakeSettings(root=str(root)))
        result = run_size(events, args.days, root, spark, settings)
        print(json.dumps(result), flush=True)
        results.append(result)
        shutil.rmtree(root, ignore_errors=True)
    summary = {
        "benchmark": "ingest_throughput",
        "results": results,
        **bench_results.stamp(),
    }
    if len(results) > 1:
        base = results[0]
        summary["time_growth_vs_smallest"] = [
            round(r["raw_events"] / r["ingest_events_per_s"] / (base["raw_events"] / base["ingest_events_per_s"]), 2)
            for r in results
        ]
    bench_results.append("ingest_throughput", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
