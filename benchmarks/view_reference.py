"""Benchmark: one feature view on Spark against the same aggregation in plain DuckDB, the limit of
the machine (issue 19, "Raw to features at 10M events": the Spark path within 3x of the reference).

The view is ``user_activity_v2`` (``features/user.py``): per user and output day, views, carts,
purchases and spend over 1/7/28/90 days, recency, days since the last purchase, purchase days,
conversion rates, distinct categories bought and items viewed, and a price index against the
category's average price that day, with ``available_at`` from each partial's ``known_date``.

A synthetic ``silver.events`` Delta table (``benchmarks/materialize_scaling.py``'s
``synthetic_silver``: ``--events`` events over 120 days, users = events / 100, 5,000 items) is
written once (in its own process). Then each side runs in a fresh process, for the newest day and
for the 30 days ending on it, alternating for ``--rounds`` rounds (order rotated each round):

- ``spark``: what ``lakecart features materialize`` does for the view: the silver table read with
  Spark, ``lakecart.jobs.materialize.compute_view`` and ``lakecart.delta.replace_partitions`` into
  a fresh Delta table (``replaceWhere`` on the output days), Spark ``local[2]``, JVM start
  included. The side also reports the seconds after ``get_spark`` returned (without JVM start).
  Left out, as they are bookkeeping and not the view: the incremental check, the
  ``feature_materializations`` merge and the row count read back.
- ``duckdb``: the same aggregation as DuckDB SQL over the same files (the Delta table's current
  files through ``deltalake``'s ``to_pyarrow_dataset()``), written to one Parquet file. Daily
  partials as Spark builds them; windowed sums, recency and ``available_at`` by fanning each
  partial out to the output days it reaches (Spark's plan); distinct counts without fanning sets:
  each (user, item) view day covers the output days until the item's next view day (at most 90),
  so an item counts in a ``w``-day window when its covering day is less than ``w`` days old.

Each side's wall time (until its process exits), CPU seconds and peak resident memory of its
process tree (``pit_join.measured``'s pattern) are recorded; per range, the median wall of each side
and the median of the per-round ratios spark / duckdb. Finally the two answers are compared row by
row for every output day: keys, ``available_at`` and every feature (doubles within 1e-9 relative:
the sums are added in a different order). Results go to ``bench-results/view_reference.jsonl``.

    .venv/pipeline/bin/python benchmarks/view_reference.py --events 10000000 --workdir /work/bench-view
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
HISTORY_DAYS = 120
ITEMS = 5000
RANGES = (1, 30)  # output days ending on the newest day
SIDES = ("spark", "duckdb")
FLOAT_TOLERANCE = 1e-9  # relative
# features/user.py's METRICS and WINDOWS_V2 (read without importing Spark into the DuckDB side).
METRICS = ("views", "carts", "purchases", "spend")
WINDOWS = (1, 7, 28, 90)


def spark_settings(root: Path):
    """The session ``materialize_scaling.py`` measured the 10M-event materialisation with."""
    from lakecart.config import LakeSettings, Settings, SparkSettings

    return Settings(
        lake=LakeSettings(root=str(root)),
        spark=SparkSettings(master="local[2]", driver_memory="10g", shuffle_partitions=8),
    )


def output_range(days: int) -> tuple[date, date]:
    from materialize_scaling import START

    last = START + timedelta(days=HISTORY_DAYS - 1)
    return last - timedelta(days=days - 1), last


# --- the data (its own process) ------------------------------------------------------------------


def generate(silver: Path, events: int) -> None:
    from materialize_scaling import synthetic_silver

    from lakecart.spark import get_spark

    spark = get_spark(spark_settings(silver.parent), app_name="bench-view-data")
    synthetic_silver(spark, events, HISTORY_DAYS, users=events // 100, items=ITEMS).write.format("delta").partitionBy(
        "event_date"
    ).save(str(silver))
    spark.stop()


# --- the sides (each in its own process) ---------------------------------------------------------


def run_spark(silver: Path, out: Path, days: int) -> dict:
    from view_versions import materialized

    from lakecart.features.user import user_activity_v2

    return materialized(user_activity_v2, spark_settings(out.parent), str(silver), out, *output_range(days))


def duckdb_query(start: date, end: date) -> str:
    """``user_activity_v2`` for output days ``[start, end]`` over the view ``silver`` (columns and
    types as ``select_features`` declares them)."""
    first = start - timedelta(days=89)
    sums = ", ".join(f"sum(CASE WHEN age < {w} THEN {m} ELSE 0 END) AS {m}_{w}d" for m in METRICS for w in WINDOWS)
    windowed = [(f"{m}_{w}d", "DOUBLE" if m == "spend" else "BIGINT") for m in METRICS for w in WINDOWS]
    typed = ", ".join(f"w.{name}::{dtype} AS {name}" for name, dtype in windowed)
    return f"""
    WITH ev AS (
        SELECT user_id, event_type, item_id, category, price, quantity, event_date, ingest_date
        FROM silver WHERE event_date BETWEEN DATE '{first}' AND DATE '{end}'),
    category_price AS (
        SELECT category, event_date, avg(price) AS category_price
        FROM ev WHERE price IS NOT NULL AND category IS NOT NULL GROUP BY ALL),
    partials AS (
        SELECT user_id, event_date AS day,
               sum(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS views,
               sum(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts,
               sum(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
               sum(CASE WHEN event_type = 'purchase' THEN price * quantity ELSE 0.0 END) AS spend,
               max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchase_days,
               sum(CASE WHEN event_type = 'purchase' THEN price / category_price END) AS price_index_sum,
               count(*) FILTER (WHERE event_type = 'purchase' AND category_price > 0) AS price_index_count,
               max(ingest_date) AS known_date
        FROM ev LEFT JOIN category_price USING (category, event_date)
        WHERE user_id IS NOT NULL GROUP BY ALL),
    fanned AS (
        SELECT p.*, day + age::INTEGER AS feature_date, age
        FROM partials p, unnest(range(greatest(DATE '{start}' - day, 0), least(DATE '{end}' - day, 89) + 1)) t(age)),
    windows AS (
        SELECT user_id, feature_date,
               {sums},
               min(age) AS days_since_active,
               min(age) FILTER (WHERE purchases > 0) AS days_since_purchase,
               sum(purchase_days) AS purchase_days_90d,
               sum(price_index_sum) AS price_index_sum,
               sum(price_index_count) AS price_index_count,
               greatest(feature_date + 1, max(known_date) + 1) AS available_at
        FROM fanned GROUP BY user_id, feature_date),
    -- An element of a per-day set counts for output day d in a w-day window when its newest day at
    -- or before d is less than w days old: each of its days covers the output days until its next.
    item_days AS (
        SELECT DISTINCT user_id, item_id, event_date AS day
        FROM ev WHERE user_id IS NOT NULL AND event_type = 'product_view' AND item_id IS NOT NULL),
    items_viewed AS (
        SELECT user_id, day + age::INTEGER AS feature_date,
               count(*) FILTER (WHERE age < 7) AS d7, count(*) FILTER (WHERE age < 28) AS d28, count(*) AS d90
        FROM (SELECT *, lead(day) OVER (PARTITION BY user_id, item_id ORDER BY day) AS next_day FROM item_days),
             unnest(range(greatest(DATE '{start}' - day, 0),
                          least(coalesce(next_day - day, 90), 90, DATE '{end}' - day + 1))) t(age)
        GROUP BY ALL),
    category_days AS (
        SELECT DISTINCT user_id, category, event_date AS day
        FROM ev WHERE user_id IS NOT NULL AND event_type = 'purchase' AND category IS NOT NULL),
    categories_bought AS (
        SELECT user_id, day + age::INTEGER AS feature_date, count(*) AS d90
        FROM (SELECT *, lead(day) OVER (PARTITION BY user_id, category ORDER BY day) AS next_day
              FROM category_days),
             unnest(range(greatest(DATE '{start}' - day, 0),
                          least(coalesce(next_day - day, 90), 90, DATE '{end}' - day + 1))) t(age)
        GROUP BY ALL)
    SELECT w.user_id, w.feature_date, w.available_at::TIMESTAMPTZ AS available_at,
           {typed},
           w.days_since_active::INTEGER AS days_since_active,
           w.days_since_purchase::INTEGER AS days_since_purchase,
           w.purchase_days_90d::BIGINT AS purchase_days_90d,
           coalesce(CASE WHEN w.purchases_90d > 0 THEN w.spend_90d / w.purchases_90d END, 0.0)
               AS spend_per_purchase_90d,
           coalesce(CASE WHEN w.views_28d > 0 THEN w.carts_28d / w.views_28d END, 0.0) AS cart_rate_28d,
           coalesce(CASE WHEN w.carts_28d > 0 THEN w.purchases_28d / w.carts_28d END, 0.0)
               AS cart_to_purchase_rate_28d,
           coalesce(c.d90, 0)::INTEGER AS categories_purchased_90d,
           coalesce(i.d7, 0)::INTEGER AS distinct_items_viewed_7d,
           coalesce(i.d28, 0)::INTEGER AS distinct_items_viewed_28d,
           coalesce(i.d90, 0)::INTEGER AS distinct_items_viewed_90d,
           CASE WHEN w.price_index_count > 0 THEN w.price_index_sum / w.price_index_count END AS price_index_90d
    FROM windows w
    LEFT JOIN items_viewed i USING (user_id, feature_date)
    LEFT JOIN categories_bought c USING (user_id, feature_date)"""


def run_duckdb(silver: Path, out: Path, days: int) -> dict:
    import duckdb
    from deltalake import DeltaTable

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    con.execute(f"SET temp_directory = '{out.parent / 'duckdb-tmp'}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    con.register("silver", DeltaTable(str(silver)).to_pyarrow_dataset())
    start, end = output_range(days)
    con.execute(f"COPY ({duckdb_query(start, end)}) TO '{out}' (FORMAT parquet)")
    return {"after_session_seconds": round(time.perf_counter() - started, 1)}


# --- measuring and comparing ---------------------------------------------------------------------


def agreement(spark_out: Path, duckdb_out: Path) -> dict:
    """Row by row on (user_id, feature_date): rows on one side only, and per column the rows whose
    values differ (both null agrees; doubles within ``FLOAT_TOLERANCE`` relative)."""
    import duckdb
    import pyarrow as pa
    from deltalake import DeltaTable

    from lakecart.features.user import user_activity_v2

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("a", pa.table(DeltaTable(str(spark_out)).to_pyarrow_table()))
    con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet('{duckdb_out}')")
    types = {f.name: f.dtype for f in user_activity_v2.features}
    columns = ["available_at", *types]

    def same(c: str) -> str:
        if types.get(c) == "double":
            return (
                f"(a.{c} IS NULL AND b.{c} IS NULL) OR "
                f"abs(a.{c} - b.{c}) <= {FLOAT_TOLERANCE} * greatest(1.0, abs(a.{c}))"
            )
        return f"a.{c} IS NOT DISTINCT FROM b.{c}"

    con.execute(f"""
        CREATE TEMP TABLE j AS
        SELECT a.user_id IS NULL AS only_duckdb, b.user_id IS NULL AS only_spark,
               {", ".join(f"coalesce({same(c)}, false) AS eq_{c}" for c in columns)}
        FROM a FULL OUTER JOIN b USING (user_id, feature_date)""")
    every = " AND ".join(f"eq_{c}" for c in columns)
    shared = "NOT only_spark AND NOT only_duckdb"
    differing = ", ".join(f"count(*) FILTER (WHERE {shared} AND NOT eq_{c})" for c in columns)
    rows_spark, rows_duckdb = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("a", "b"))
    only_spark, only_duckdb, identical, *per_column = con.execute(
        f"""SELECT count(*) FILTER (WHERE only_spark), count(*) FILTER (WHERE only_duckdb),
                   count(*) FILTER (WHERE {shared} AND {every}), {differing}
            FROM j"""
    ).fetchone()
    return {
        "rows_spark": rows_spark,
        "rows_duckdb": rows_duckdb,
        "rows_only_spark": only_spark,
        "rows_only_duckdb": only_duckdb,
        "identical_rows": identical,
        "differing_by_column": {c: n for c, n in zip(columns, per_column, strict=True) if n},
        "agreement": round(identical / max(rows_spark, rows_duckdb), 6) if rows_spark else None,
    }


def side_command(side: str, silver: Path, out: Path, days: int) -> list[str]:
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--side", side, "--silver", str(silver), "--out", str(out), "--days", str(days)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side and range, alternating")
    parser.add_argument(
        "--ranges", default=",".join(map(str, RANGES)), help="output ranges in days ending on the newest day"
    )
    parser.add_argument("--workdir", help="where the data and outputs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (default: deleted at the end)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds each run may take")
    parser.add_argument("--side", choices=[*SIDES, "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--silver", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        silver, out = Path(args.silver), Path(args.out) if args.out else None
        if args.side == "generate":
            generate(silver, args.events)
            return 0
        timing = (run_spark if args.side == "spark" else run_duckdb)(silver, out, args.days)
        out.with_name(out.name + ".timing.json").write_text(json.dumps(timing))
        return 0

    ranges = [int(r) for r in args.ranges.split(",")]
    bench_results.become_subreaper()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-view-"))
    work.mkdir(parents=True, exist_ok=True)
    silver = work / "silver_events"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result: dict = {
        "benchmark": "view_reference",
        "view": "user_activity_v2",
        "events": args.events,
        "history_days": HISTORY_DAYS,
        "rounds": args.rounds,
        "commit": commit.stdout.strip(),
        "uncommitted": subprocess.run(
            ["git", "status", "--porcelain", "features", "jobs", "lakecart", "benchmarks/view_reference.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.split("\n")[:-1],
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    if not silver.exists():
        t0 = time.perf_counter()
        generate_command = [
            sys.executable,
            __file__,
            "--side",
            "generate",
            "--silver",
            str(silver),
            "--events",
            str(args.events),
        ]
        run = bench_results.measured(generate_command, args.timeout)
        if run["exit_code"] != 0:
            raise SystemExit(f"generating silver.events failed: {run}")
        result["generate_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"silver.events written in {result['generate_seconds']} s", flush=True)

    runs: dict[tuple[str, int], list[dict]] = {(s, d): [] for s in SIDES for d in ranges}
    outputs = {(s, d): work / (f"{s}-{d}d" + (".parquet" if s == "duckdb" else "")) for s in SIDES for d in ranges}
    # Every round runs each side once per range, the side order flipped each round, so a slow spell
    # of the shared machine hits both sides alike.
    for round_ in range(args.rounds):
        for days in ranges:
            for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                out = outputs[side, days]
                shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
                print(f"round {round_ + 1}/{args.rounds}: {side}, {days} day(s) ...", flush=True)
                run = bench_results.measured(side_command(side, silver, out, days), args.timeout)
                timing = out.with_name(out.name + ".timing.json")
                if run["exit_code"] == 0 and timing.exists():
                    run.update(json.loads(timing.read_text()))
                runs[side, days].append(run)
                print(json.dumps(run), flush=True)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]

    for days in ranges:
        start, end = output_range(days)
        entry: dict = {"output_days": days, "start": start.isoformat(), "end": end.isoformat()}
        for side in SIDES:
            ok = [r for r in runs[side, days] if r["exit_code"] == 0]
            entry[side] = {
                "seconds": statistics.median(r["seconds"] for r in ok) if ok else None,
                "seconds_each_round": [r["seconds"] for r in runs[side, days]],
                "after_session_seconds": statistics.median(r["after_session_seconds"] for r in ok) if ok else None,
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in ok) if ok else None,
                "peak_rss_gib": max(r["peak_rss_gib"] for r in runs[side, days]),
                "exit_code": max((r["exit_code"] for r in runs[side, days]), key=abs),
                "runs": runs[side, days],
            }
        ratios = [
            round(s["seconds"] / d["seconds"], 2)
            for s, d in zip(runs["spark", days], runs["duckdb", days], strict=True)
            if s["exit_code"] == 0 and d["exit_code"] == 0
        ]
        entry["ratio_spark_to_duckdb_each_round"] = ratios
        entry["ratio_spark_to_duckdb"] = statistics.median(ratios) if ratios else None
        if entry["spark"]["exit_code"] == 0 and entry["duckdb"]["exit_code"] == 0:
            print(f"agreement, {days} day(s) ...", flush=True)
            entry["agreement"] = agreement(outputs["spark", days], outputs["duckdb", days])
        result[f"{days}d"] = entry
    result.update(bench_results.stamp())
    bench_results.append("view_reference", result)
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
