"""Benchmark: the defect-planted run (issue 3). Plant every defect kind in a known amount, ingest, and
compare planted with what ingestion reports per kind: quarantine reasons, duplicates dropped, late
events filed under their own date, extra fields kept. Every row must match.

    .venv/pipeline/bin/python benchmarks/defect_reconciliation.py --events 200000 --per-kind 25
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)
from pyspark.sql import functions as F

from lakecart import tables
from lakecart.config import LakeSettings, Settings, SparkSettings
from lakecart.jobs import ingest
from lakecart.jobs.generate import DEFECT_REASONS, GeneratorSpec, generate
from lakecart.spark import get_spark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-kind", type=int, default=25, help="defects of each kind planted per day")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-defects-"))
    settings = Settings(lake=LakeSettings(root=str(root)), spark=SparkSettings(shuffle_partitions=8))
    spec = GeneratorSpec(
        users=2000,
        items=1000,
        categories=20,
        days=args.days,
        events_per_day=args.events // args.days,
        defects={kind: args.per_kind for kind in DEFECT_REASONS},
    )
    manifest = generate(spec, root / "raw")
    planted = manifest["planted_defects"]
    spark = get_spark(settings, app_name="bench-defects")
    days = [spec.start_date + timedelta(days=n) for n in range(args.days)]
    started = time.perf_counter()
    ingest.run_bronze(spark, settings, days)
    reports = ingest.run_silver(spark, settings, days)
    # Counted in the staged batch: with this many planted defects the silver gate fails the batch on
    # purpose (its quarantined share), so publishing would refuse it.
    seconds = time.perf_counter() - started

    read = lambda name: spark.read.format("delta").load(tables.table_path(name, settings))  # noqa: E731
    reasons = Counter(
        {
            r["reject_reason"]: r["count"]
            for r in read(tables.QUARANTINE_EVENTS).groupBy("reject_reason").count().collect()
        }
    )
    silver = read(tables.STAGING_SILVER_EVENTS)
    found = {kind: reasons.get(reason, 0) for kind, reason in DEFECT_REASONS.items() if reason}
    found["duplicate_event"] = sum(r.duplicates_dropped for r in reports)
    found["late_event"] = silver.where(F.col("event_date") < F.col("ingest_date")).count()
    found["extra_field"] = silver.where(F.col("extra").isNotNull()).count()
    rows = [
        {"defect": kind, "planted": planted[kind], "found": found[kind], "as": DEFECT_REASONS[kind] or how}
        for kind, how in (
            *((k, "") for k, v in DEFECT_REASONS.items() if v),
            ("duplicate_event", "dropped as duplicate"),
            ("late_event", "filed under its event date"),
            ("extra_field", "kept in silver.events.extra"),
        )
    ]
    raw = sum(r.raw_records for r in reports)
    summary = {
        "benchmark": "defect_reconciliation",
        "raw_records": raw,
        "silver": silver.count(),
        "quarantined": sum(reasons.values()),
        "duplicates_dropped": found["duplicate_event"],
        "reconciles": all(r.reconciles for r in reports) and raw == manifest["raw_lines"],
        "all_match": all(r["planted"] == r["found"] for r in rows),
        "ingest_s": round(seconds, 1),
        "rows": rows,
        **bench_results.stamp(),
    }
    print(f"{'defect':20} {'planted':>8} {'found':>8}  as")
    for r in rows:
        print(f"{r['defect']:20} {r['planted']:>8} {r['found']:>8}  {r['as']}")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    bench_results.append("defect_reconciliation", summary)
    shutil.rmtree(root, ignore_errors=True)
    return 0 if summary["all_match"] and summary["reconciles"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
