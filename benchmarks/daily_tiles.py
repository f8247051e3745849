"""Benchmark: the next day's materialisation of every feature view at 10M events, from tiles against
from silver (issue 19: target <= 30 s for all views).

A synthetic ``silver.events`` of ``--events`` events over ``--history-days`` days (the generator of
``materialize_scaling.py``) is written without its last ``--rounds`` days. Every view is applied and
materialised for the newest day written: the first run, which summarises every day the windows reach
into tiles. Then, each round, the next day arrives (appended to silver as a new batch) and all views
are materialised for it twice, one after the other in one Spark session:

- ``tiles``: the daily run (summarises the new day into tiles, combines the kept tiles);
- ``silver``: the same day again with ``--force --no-tiles`` (every window from silver, as before tiles).

The silver run goes second, so it gets any cache the first one warmed. Both runs' rows for the day
are hashed per view and must be equal. Reports each round's seconds, their medians and the ratio.

    .venv/pipeline/bin/python benchmarks/daily_tiles.py --events 10000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)
from materialize_scaling import START, synthetic_silver


def view_hashes(spark, settings, views, day) -> dict[str, str]:
    from pyspark.sql import functions as F

    from lakecart import tables
    from lakecart.jobs.training_set import content_hash

    hashes = {}
    for name in views:
        frame = spark.read.format("delta").load(tables.table_path(f"features.{name}", settings))
        # Sums of doubles in another order may differ in their last bits: compare to 9 decimals.
        frame = frame.select(
            *[
                F.round(f.name, 9).alias(f.name) if f.dataType.typeName() == "double" else F.col(f.name)
                for f in frame.schema
            ]
        )
        hashes[name] = content_hash(frame.where(frame.feature_date == day), exclude=())
    return hashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--history-days", type=int, default=120, help="days of silver events (>= 90 + rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="next days measured, each both ways")
    parser.add_argument("--driver-memory", default="10g")
    parser.add_argument(
        "--parallel-views", type=int, default=None, help="views side by side (default: the setting's default)"
    )
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from lakecart import tables
    from lakecart.config import FeatureSettings, LakeSettings, Settings, SparkSettings
    from lakecart.jobs import feature_store
    from lakecart.jobs.materialize import run_materialize
    from lakecart.spark import get_spark

    root = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    settings = Settings(
        lake=LakeSettings(root=str(root)),
        spark=SparkSettings(master="local[2]", driver_memory=args.driver_memory, shuffle_partitions=8),
        features=FeatureSettings(**({} if args.parallel_views is None else {"parallel_views": args.parallel_views})),
    )
    spark = get_spark(settings, app_name="bench-tiles")
    events = tables.table_path(tables.SILVER_EVENTS, settings)
    staged = str(root / "staged-events")  # every day, written once; each round appends one from here
    t0 = time.perf_counter()
    synthetic_silver(spark, args.events, args.history_days, users=args.events // 100, items=5000).write.format(
        "delta"
    ).partitionBy("event_date").save(staged)
    last = START + timedelta(days=args.history_days - 1)
    first_new = last - timedelta(days=args.rounds - 1)
    all_days = spark.read.format("delta").load(staged)
    all_days.where(F.col("event_date") < F.lit(first_new)).write.format("delta").partitionBy("event_date").save(events)
    print(f"silver.events written in {time.perf_counter() - t0:.0f} s", flush=True)
    feature_store.apply(spark, settings)

    t0 = time.perf_counter()
    reports = run_materialize(spark, settings, first_new - timedelta(days=1), first_new - timedelta(days=1))
    first_run = {
        "seconds": round(time.perf_counter() - t0, 1),
        "tiles_written": sum(r.tiles_written for r in reports.values()),
    }
    views = sorted(name for name, r in reports.items() if r.skipped_reason is None)
    print(json.dumps({"first_run": first_run, "views": views}), flush=True)

    rounds = []
    for n in range(args.rounds):
        day = first_new + timedelta(days=n)
        arriving = all_days.where(F.col("event_date") == F.lit(day))
        arriving.write.format("delta").mode("append").partitionBy("event_date").save(events)
        t0 = time.perf_counter()
        tiled = run_materialize(spark, settings, day, day)
        tiled_s = time.perf_counter() - t0
        tiled_hashes = view_hashes(spark, settings, views, day)
        t0 = time.perf_counter()
        from_silver = run_materialize(spark, settings, day, day, force=True, tiles=False)
        silver_s = time.perf_counter() - t0
        silver_hashes = view_hashes(spark, settings, views, day)
        differing = [name for name in views if tiled_hashes[name] != silver_hashes[name]]
        rounds.append(
            {
                "day": str(day),
                "tiles_seconds": round(tiled_s, 1),
                "silver_seconds": round(silver_s, 1),
                "ratio": round(silver_s / tiled_s, 2),
                "tiles_written": {name: r.tiles_written for name, r in tiled.items() if r.tiles_written},
                "rows": sum(r.rows for r in tiled.values()),
                "view_seconds": {name: [tiled[name].seconds, from_silver[name].seconds] for name in views},
                "same_rows": not differing,
                "differing_views": differing,
            }
        )
        print(json.dumps(rounds[-1]), flush=True)
    summary = {
        "benchmark": "daily_tiles",
        "events": args.events,
        "history_days": args.history_days,
        "parallel_views": settings.features.parallel_views,
        "views": views,
        "first_run": first_run,
        "rounds": rounds,
        "median_tiles_seconds": statistics.median(r["tiles_seconds"] for r in rounds),
        "median_silver_seconds": statistics.median(r["silver_seconds"] for r in rounds),
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "all_same_rows": all(r["same_rows"] for r in rounds),
        **bench_results.stamp(),
    }
    bench_results.append("daily_tiles", summary)
    print(json.dumps(summary, indent=2))
    spark.stop()
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
