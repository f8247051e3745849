"""Benchmark: feature materialisation at 10M events (issue 4: all feature views for one day, and a
30-day backfill; time must grow linearly with days, not quadratically).

A synthetic ``silver.events`` table of ``--events`` events over ``--history-days`` days is written
straight to Delta with Spark (realistic mix of event types, skewed users and items, 12% anonymous,
1% late arrivals): ingestion is benchmarked elsewhere. Then, in one Spark session, every registered
feature view is materialised (``--force``: no incremental skipping) for 1, 7, 15 and 30 output days
ending on the last day, one after the other, and once more for 30 days without ``--force`` (every
day skipped: the cost of the incremental check). Linear growth shows as a constant marginal cost
per extra day.

    .venv/pipeline/bin/python benchmarks/materialize_scaling.py --events 10000000
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

START = date(2026, 1, 1)
EVENT_MIX = (  # cumulative shares
    ("page_view", 0.15),
    ("search", 0.23),
    ("product_view", 0.80),
    ("add_to_cart", 0.90),
    ("remove_from_cart", 0.92),
    ("checkout", 0.95),
    ("purchase", 1.0),
)


def synthetic_silver(spark, events: int, days: int, users: int, items: int, categories: int = 40):
    from pyspark.sql import functions as F

    per_day = events // days
    # Every random draw is made once, as a column of its own, and derived columns read it: Spark
    # evaluates a nondeterministic expression anew wherever it appears, so a draw used twice (the
    # event type in a chain of whens, a user in both user_id and anonymous_id) would disagree with
    # itself. Before this, purchases were 0.005% of events instead of 5%.
    draws = spark.range(per_day * days).select("id", *[F.rand(seed=n).alias(f"_r{n}") for n in range(1, 9)])
    r = lambda n: F.col(f"_r{n}")  # noqa: E731 - one independent stream per column
    day = (F.col("id") / per_day).cast("int")
    event_date = F.date_add(F.lit(START), day)
    kind_draw = r(1)
    kind = F.lit(EVENT_MIX[-1][0])
    for name, upper in reversed(EVENT_MIX[:-1]):
        kind = F.when(kind_draw < upper, F.lit(name)).otherwise(kind)
    user = (F.pow(r(2), 2) * users).cast("int")  # skewed: a few heavy shoppers
    item = (F.pow(r(3), 3) * items).cast("int")  # Zipf-like popularity
    has_item = ~kind.isin("page_view", "search")
    return draws.select(
        F.concat(F.lit("e"), F.col("id").cast("string")).alias("event_id"),
        F.when(r(4) < 0.12, F.lit(None)).otherwise(F.concat(F.lit("u"), user.cast("string"))).alias("user_id"),
        F.concat(F.lit("a"), user.cast("string")).alias("anonymous_id"),
        F.concat(F.lit("s"), user.cast("string"), F.lit("-"), day.cast("string")).alias("session_id"),
        F.concat(F.lit("u"), user.cast("string"), F.lit("@"), day.cast("string")).alias("session_key"),
        kind.alias("event_type"),
        F.when(has_item, F.concat(F.lit("i"), item.cast("string"))).alias("item_id"),
        F.when(has_item, F.concat(F.lit("c"), (item % categories).cast("string"))).alias("category"),
        F.when(has_item, 5.0 + (item * 37 % 200) * (1.0 - 0.1 * ((day / 7).cast("int") % 2))).alias("price"),
        F.when(has_item, 1 + (r(5) < 0.2).cast("int")).alias("quantity"),
        F.lit(None).cast("string").alias("search_query"),
        F.when(r(6) < 0.6, F.lit("mobile")).otherwise(F.lit("web")).alias("device"),
        F.lit("web").alias("channel"),
        (F.unix_timestamp(F.to_timestamp(event_date)) + (r(7) * 86399).cast("long"))
        .cast("timestamp")
        .alias("event_time"),
        event_date.alias("event_date"),
        F.when(r(8) < 0.01, F.date_add(event_date, 1)).otherwise(event_date).alias("ingest_date"),
    ).repartition("event_date")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--history-days", type=int, default=120, help="days of silver events (>= 90 + 30)")
    parser.add_argument("--backfills", type=int, nargs="+", default=[1, 7, 15, 30])
    parser.add_argument("--driver-memory", default="10g")
    args = parser.parse_args()

    from lakecart import tables
    from lakecart.config import LakeSettings, Settings, SparkSettings
    from lakecart.jobs import feature_store
    from lakecart.jobs.materialize import run_materialize
    from lakecart.spark import get_spark

    root = Path(tempfile.mkdtemp(prefix="bench-materialize-"))
    settings = Settings(
        lake=LakeSettings(root=str(root)),
        spark=SparkSettings(master="local[2]", driver_memory=args.driver_memory, shuffle_partitions=8),
    )
    spark = get_spark(settings, app_name="bench-materialize")
    t0 = time.perf_counter()
    synthetic_silver(spark, args.events, args.history_days, users=args.events // 100, items=5000).write.format(
        "delta"
    ).partitionBy("event_date").save(tables.table_path(tables.SILVER_EVENTS, settings))
    print(f"silver.events written in {time.perf_counter() - t0:.0f} s", flush=True)
    feature_store.apply(spark, settings)
    last = START + timedelta(days=args.history_days - 1)

    runs = []
    for days in args.backfills:
        t0 = time.perf_counter()
        reports = run_materialize(spark, settings, last - timedelta(days=days - 1), last, force=True)
        seconds = time.perf_counter() - t0
        runs.append(
            {
                "output_days": days,
                "seconds": round(seconds, 1),
                "seconds_per_day": round(seconds / days, 1),
                "rows": sum(r.rows for r in reports.values()),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    t0 = time.perf_counter()
    skipped = run_materialize(spark, settings, last - timedelta(days=max(args.backfills) - 1), last)
    incremental = {
        "output_days": max(args.backfills),
        "seconds": round(time.perf_counter() - t0, 1),
        "days_skipped": sum(len(r.skipped_days) for r in skipped.values()),
        "days_written": sum(len(r.written_days) for r in skipped.values()),
    }
    print(json.dumps({"unchanged_rerun": incremental}), flush=True)
    marginal = [
        round((b["seconds"] - a["seconds"]) / (b["output_days"] - a["output_days"]), 1)
        for a, b in zip(runs, runs[1:], strict=False)
    ]
    summary = {
        "benchmark": "materialize_scaling",
        "events": args.events,
        "history_days": args.history_days,
        "views": len(skipped),
        "runs": runs,
        "marginal_seconds_per_extra_day": marginal,
        "unchanged_rerun": incremental,
        **bench_results.stamp(),
    }
    bench_results.append("materialize_scaling", summary)
    print(json.dumps(summary, indent=2))
    spark.stop()
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
