"""Benchmark: point-in-time join, lakecart against Feast's offline stores and DuckDB alone, on
identical data (issue 4: 1M label rows against 20M feature rows on 2 cores, target >= 5x faster than
Feast's file store; issue 19: the same against Feast's fastest store and against the best
formulation in plain DuckDB, the limit of the machine).

The script writes one feature table (Parquet: ``user_id``, ``feature_date``, ``available_at`` and
eight features; each day a random half of the users has a row, some arriving hours late) and one
label table (``label_id``, ``user_id``, ``label_time``). Each side then runs in its own process,
reads the same files, joins every label with the newest feature row known at its time
(``available_at <= label_time``; ties on ``available_at`` go to the newer ``feature_date``) and
still fresh (``label_time - available_at < ttl``, a 2-day time-to-live), and writes ``label_id``
and the eight features to Parquet. The sides (``--sides``, default all):

- ``lakecart``: ``features/pit.py``'s ``point_in_time_join`` on Spark ``local[2]`` (the reference).
- ``lakecart-local``: ``features/pit_local.py``, lakecart's single-node engine, as ``lakecart
  features join labels.parquet --out ...`` runs it (``join_to_parquet``: DuckDB reads the labels'
  file and writes the answer's, in the labels' order); left out while that module does not exist.
- ``feast``: Feast's ``get_historical_features`` with its ``file`` offline store (pandas/Dask, its
  local default).
- ``feast-duckdb``: the same with ``offline_store: {type: duckdb}`` (ibis on DuckDB) and the file
  pattern ``features/*.parquet`` as the FileSource path.
- ``duckdb-asof``: DuckDB alone, an ``ASOF LEFT JOIN`` on user_id and (available_at, feature_date)
  packed into one key, the TTL applied to the row it finds.
- ``duckdb-bucket``: DuckDB alone, lakecart's bucketed plan as SQL: labels in their TTL-wide bucket
  and the one before, a hash join on (user_id, bucket), ``arg_max`` of the newest per label, joined
  back onto the labels.

Feast runs from ``.venv/feast`` (``benchmarks/feast_env.sh``, run first), the others from the
interpreter that runs this script. The sides alternate for ``--rounds`` rounds (default 3), the
order rotated each round. Per side: the median wall time, the median of its per-round ratios to
lakecart's Spark side, CPU seconds (user + system of the whole process tree; this process is the
tree's subreaper so Spark's JVM and workers are counted), and the peak resident memory of the tree
(sampled every 0.25 s). Finally every side's answer is compared label by label with the Spark side's
(``agreement``; with ``duckdb-bucket``'s where the Spark side did not finish). Results are appended
to ``bench-results/pit_join.jsonl``.

    .venv/pipeline/bin/python benchmarks/pit_join.py --labels 1000000 --feature-rows 20000000
    .venv/pipeline/bin/python benchmarks/pit_join.py --sides lakecart,duckdb-bucket --rounds 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
FEAST_ENV = REPO / ".venv" / "feast"
FEAST_VERSION = "0.67.0"
FEATURES = [f"f{n}" for n in range(8)]
TTL = timedelta(days=2)
START = datetime(2026, 1, 1, tzinfo=UTC)


# --- data ----------------------------------------------------------------------------------------


def write_data(folder: Path, labels: int, feature_rows: int, days: int, seed: int = 7) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    per_day = feature_rows // days
    users = per_day * 2  # each day a random half of the users gets a row
    features_dir = folder / "features"
    features_dir.mkdir(parents=True, exist_ok=True)
    for d in range(days):
        ids = np.sort(rng.choice(users, per_day, replace=False)).astype("int64")
        day = START + timedelta(days=d)
        # Known at midnight after the day; 10% of rows arrive 1-30 hours late.
        late_hours = np.where(rng.random(per_day) < 0.1, rng.integers(1, 31, per_day), 0)
        available = np.datetime64(int((day + timedelta(days=1)).timestamp()), "s") + late_hours.astype("timedelta64[h]")
        columns = {
            "user_id": pa.array(ids),
            "feature_date": pa.array(np.full(per_day, np.datetime64(day.date(), "D"))),
            "available_at": pa.array(available.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
            **{f: pa.array(rng.random(per_day)) for f in FEATURES},
        }
        pq.write_table(pa.table(columns), features_dir / f"day={d:03d}.parquet")
    first = int((START + timedelta(days=3)).timestamp())
    last = int((START + timedelta(days=days)).timestamp())
    label_times = rng.integers(first, last, labels).astype("datetime64[s]").astype("datetime64[us]")
    label_table = pa.table(
        {
            "label_id": pa.array(np.arange(labels, dtype="int64")),
            "user_id": pa.array(rng.integers(0, users, labels).astype("int64")),
            "label_time": pa.array(label_times, type=pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(label_table, folder / "labels.parquet")
    return {"labels": labels, "feature_rows": per_day * days, "users": users, "days": days}


# --- the sides (each in its own process) -------------------------------------------------------

OUTPUT = ["label_id", *[f"bench_v1__{f}" for f in FEATURES]]
TTL_MICROS = TTL // timedelta(microseconds=1)
# DuckDB-alone sides order tied candidates by feature_date: its day number shares one integer with
# the time (``DAY_BITS`` low bits), so feature dates must lie within 1970 .. ~4840.
DAY_BITS = 20


def bench_view():
    from lakecart.features.definitions import Entity, Feature, FeatureView

    return FeatureView(
        name="bench",
        version=1,
        entity=Entity("user", ("user_id",), ""),
        features=tuple(Feature(f, "double", "") for f in FEATURES),
        transform=lambda events, start, end: events,
        ttl=TTL,
        owner="bench",
        description="",
    )


def run_lakecart(data: Path, out: Path, quick_jit: bool = True) -> None:
    from lakecart.config import Settings, SparkSettings
    from lakecart.features.pit import point_in_time_join
    from lakecart.spark import get_spark

    spark = get_spark(
        Settings(
            spark=SparkSettings(master="local[2]", driver_memory="12g", shuffle_partitions=16, quick_jit=quick_jit)
        ),
        app_name="bench-pit-join",
    )
    features = spark.read.parquet(str(data / "features"))
    labels = spark.read.parquet(str(data / "labels.parquet"))
    joined = point_in_time_join(labels, "label_time", [(bench_view(), features)])
    joined.select(*OUTPUT).write.mode("overwrite").parquet(str(out))
    spark.stop()


def run_lakecart_local(data: Path, out: Path, memory_limit: str | None) -> None:
    """What ``lakecart features join labels.parquet --out ...`` runs: the labels file in, the answer's
    file out, DuckDB reading and writing both (``pit_local.join_to_parquet``)."""
    from lakecart.features.pit_local import join_to_parquet

    join_to_parquet(
        str(data / "labels.parquet"),
        "label_time",
        [(bench_view(), str(data / "features"))],
        str(out),
        columns=OUTPUT,
        memory_limit=memory_limit,
    )


def run_feast(data: Path, out: Path, store: str) -> None:
    """Feast's ``get_historical_features`` with the ``file`` (pandas/Dask) or ``duckdb`` (ibis)
    offline store. The DuckDB store reads a file pattern; the file store a folder."""
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    repo = out.parent / f"feast-{store}-repo"
    repo.mkdir(parents=True, exist_ok=True)
    store_ = FeatureStore(
        config=RepoConfig(
            project="bench",
            registry=str(repo / "registry.db"),
            provider="local",
            offline_store={"type": store},
            online_store={"type": "sqlite", "path": str(repo / "online.db")},
            entity_key_serialization_version=3,
        )
    )
    path = data / "features" if store == "file" else data / "features" / "*.parquet"
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="bench",
        entities=[user],
        ttl=TTL,
        schema=[Field(name="user_id", dtype=Int64), *[Field(name=f, dtype=Float64) for f in FEATURES]],
        source=FileSource(path=str(path), timestamp_field="available_at"),
    )
    store_.apply([user, view])
    labels = pd.read_parquet(data / "labels.parquet").rename(columns={"label_time": "event_timestamp"})
    job = store_.get_historical_features(entity_df=labels, features=[f"bench:{f}" for f in FEATURES])
    job.to_df()[["label_id", *FEATURES]].rename(columns={f: f"bench_v1__{f}" for f in FEATURES}).to_parquet(out)


def duckdb_connection(out: Path, memory_limit: str | None):
    """Every core, spills next to the output (at most 20 GB: the disk is shared), no ordering kept
    (the answer is a set of rows)."""
    import os

    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    con.execute(f"SET temp_directory = '{out.parent / 'duckdb-tmp'}'")
    con.execute("SET max_temp_directory_size = '20GB'")
    con.execute("SET preserve_insertion_order = false")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def run_duckdb_asof(data: Path, out: Path, memory_limit: str | None) -> None:
    """DuckDB's ASOF LEFT JOIN: per label the feature row of its user with the greatest key <= the
    label's. A plain ``available_at <= label_time`` would break ties on ``available_at`` (a day's row
    arriving exactly 24 h late meets the next day's) arbitrarily, so the key is available_at and the
    feature_date's day number in one HUGEINT, and the label's key sorts after every row known at its
    time. The newest row known is then either fresh or every candidate is stale: the TTL is a CASE."""
    con = duckdb_connection(out, memory_limit)
    top = 2**DAY_BITS
    fresh = f"f.available_at > l.label_time - to_microseconds({TTL_MICROS})"
    con.execute(f"""
        COPY (
            WITH l AS (
                SELECT label_id, user_id, label_time, epoch_us(label_time)::HUGEINT * {top} + {top - 1} AS k
                FROM read_parquet('{data / "labels.parquet"}')),
            f AS (
                SELECT user_id, available_at, {", ".join(FEATURES)},
                       epoch_us(available_at)::HUGEINT * {top} + (feature_date - DATE '1970-01-01') AS k
                FROM read_parquet('{data / "features" / "*.parquet"}'))
            SELECT l.label_id, {", ".join(f"CASE WHEN {fresh} THEN f.{f} END AS bench_v1__{f}" for f in FEATURES)}
            FROM l ASOF LEFT JOIN f ON l.user_id = f.user_id AND f.k <= l.k
        ) TO '{out}' (FORMAT parquet)""")


def run_duckdb_bucket(data: Path, out: Path, memory_limit: str | None) -> None:
    """lakecart's bucketed plan as plain DuckDB SQL: each label goes into its TTL-wide time bucket
    and the one before, a hash join on (user_id, bucket) finds the candidates within the TTL, and
    ``arg_max_null`` keeps the newest per label by one packed integer (age within the TTL, then
    feature_date's day number), no sort, one aggregate per feature (about half the time of one
    ``arg_max`` over a struct of them); a left join puts them back on the labels."""
    con = duckdb_connection(out, memory_limit)
    order = f"((f.a - l.t + {TTL_MICROS}) << {DAY_BITS}) + (f.feature_date - DATE '1970-01-01')"
    con.execute(f"""
        COPY (
            WITH l AS (
                SELECT label_id, user_id, epoch_us(label_time) AS t,
                       unnest([epoch_us(label_time) // {TTL_MICROS}, epoch_us(label_time) // {TTL_MICROS} - 1]) AS b
                FROM read_parquet('{data / "labels.parquet"}')),
            f AS (
                SELECT user_id, epoch_us(available_at) AS a, feature_date, {", ".join(FEATURES)}
                FROM read_parquet('{data / "features" / "*.parquet"}')),
            newest AS (
                SELECT l.label_id, {", ".join(f"arg_max_null(f.{f}, {order}) AS {f}" for f in FEATURES)}
                FROM l JOIN f ON f.user_id = l.user_id AND f.a // {TTL_MICROS} = l.b
                                 AND f.a <= l.t AND f.a > l.t - {TTL_MICROS}
                GROUP BY l.label_id)
            SELECT label_id, {", ".join(f"newest.{f} AS bench_v1__{f}" for f in FEATURES)}
            FROM read_parquet('{data / "labels.parquet"}') LEFT JOIN newest USING (label_id)
        ) TO '{out}' (FORMAT parquet)""")


# --- orchestration ------------------------------------------------------------------------------

SIDES = {
    # side: (what it is, the environment it runs in)
    "lakecart": ("lakecart, features/pit.py on Spark local[2]", "pipeline"),
    "lakecart-local": ("lakecart, features/pit_local.py (single node)", "pipeline"),
    "feast": (f"Feast {FEAST_VERSION}, file offline store", "feast"),
    "feast-duckdb": (f"Feast {FEAST_VERSION}, DuckDB offline store", "feast"),
    "duckdb-asof": ("DuckDB alone, ASOF LEFT JOIN + TTL", "pipeline"),
    "duckdb-bucket": ("DuckDB alone, hash join on (key, TTL bucket), newest per label", "pipeline"),
}


def ensure_feast() -> Path:
    """``.venv/feast`` as benchmarks/feast_env.sh makes it (a no-op when current)."""
    subprocess.run(["bash", str(REPO / "benchmarks" / "feast_env.sh")], check=True)
    return FEAST_ENV / "bin" / "python"


def output_glob(path: Path) -> str:
    """Spark writes a folder of part files; the other sides one file."""
    return str(path / "*.parquet") if path.is_dir() else str(path)


def agreement(reference: Path, other: Path, data: Path) -> dict:
    """Label by label, ``other`` against ``reference`` (lakecart's Spark side), all eight features
    compared exactly. Feast's file store leaves out label rows without a feature row, where lakecart
    keeps them with nulls: those count as agreeing when lakecart's row is null. Each differing row is
    explained from the data where it can be: a tie (two rows of the user known at the same instant,
    lakecart takes the newer feature_date) or a newest row exactly one TTL old (lakecart requires
    ``label time - available_at < ttl``, Feast's stores allow ``<=``)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE VIEW a AS SELECT * FROM read_parquet('{output_glob(reference)}')")
    con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet('{output_glob(other)}')")
    same = " AND ".join(f"a.bench_v1__{f} IS NOT DISTINCT FROM b.bench_v1__{f}" for f in FEATURES)
    con.execute(f"""
        CREATE TEMP TABLE j AS
        SELECT a.label_id, b.label_id IS NULL AS left_out, a.bench_v1__f0 IS NULL AS null_in_reference,
               b.label_id IS NOT NULL AND NOT ({same}) AS differs
        FROM a LEFT JOIN b USING (label_id)""")
    counts = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE NOT null_in_reference),
               count(*) FILTER (WHERE left_out), count(*) FILTER (WHERE left_out AND null_in_reference),
               count(*) FILTER (WHERE differs),
               count(*) FILTER (WHERE NOT left_out AND NOT differs)
        FROM j""").fetchone()
    rows, found, left_out, left_out_null, differing, identical = counts
    other_rows, other_distinct, other_found = con.execute(
        "SELECT count(*), count(DISTINCT label_id), count(*) FILTER (WHERE bench_v1__f0 IS NOT NULL) FROM b"
    ).fetchone()
    # The newest feature row known at each differing label's time, and how many rows share its instant.
    ties, at_ttl = con.execute(f"""
        WITH d AS (
            SELECT l.label_id, l.user_id, l.label_time FROM j JOIN read_parquet('{data / "labels.parquet"}') l
            USING (label_id) WHERE j.differs),
        c AS (
            SELECT d.label_id, d.label_time, f.available_at
            FROM d JOIN read_parquet('{data / "features" / "*.parquet"}') f
              ON f.user_id = d.user_id AND f.available_at <= d.label_time),
        n AS (
            SELECT label_id, any_value(label_time) AS label_time, any_value(top) AS newest,
                   count(*) FILTER (WHERE available_at = top) AS at_newest
            FROM (SELECT *, max(available_at) OVER (PARTITION BY label_id) AS top FROM c) GROUP BY label_id)
        SELECT count(*) FILTER (WHERE at_newest > 1),
               count(*) FILTER (WHERE at_newest = 1 AND label_time - newest = to_microseconds({TTL_MICROS}))
        FROM n""").fetchone()
    return {
        "rows_lakecart": rows,
        "rows": other_rows,
        "distinct_label_ids": other_distinct,
        "labels_with_features_lakecart": found,
        "labels_with_features": other_found,
        "rows_left_out": left_out,
        "rows_left_out_that_lakecart_left_null": left_out_null,
        "identical_rows": identical,
        "differing_rows": differing,
        "differing_rows_that_are_ties_on_available_at": ties or 0,
        "differing_rows_exactly_one_ttl_old": at_ttl or 0,
        "differing_rows_unexplained": differing - (ties or 0) - (at_ttl or 0),
        # Agreeing: identical values, or left out where lakecart has no feature row either.
        "agreement": round((identical + left_out_null) / rows, 6) if rows else None,
        "identical_share_of_shared_rows": round(identical / (rows - left_out), 6) if rows > left_out else None,
    }


def summary(runs: list[dict], reference: list[dict] | None) -> dict:
    """Median wall and CPU seconds over the rounds (each round's kept), the median of the per-round
    ratios to lakecart's Spark side (a slow spell of the shared machine hits both sides of a round),
    the highest peak memory and the worst exit code."""
    import statistics

    ok = [r for r in runs if r["exit_code"] == 0]
    ratios = []
    if reference is not None:
        ratios = [
            round(r["seconds"] / ref["seconds"], 3)
            for r, ref in zip(runs, reference, strict=False)
            if r["exit_code"] == 0 and ref["exit_code"] == 0
        ]
    return {
        "seconds": statistics.median(r["seconds"] for r in ok) if ok else None,
        "seconds_each_round": [r["seconds"] for r in runs],
        "ratio_to_lakecart": statistics.median(ratios) if ratios else None,
        "ratio_to_lakecart_each_round": ratios,
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in ok) if ok else None,
        "cpu_seconds_each_round": [r["cpu_seconds"] for r in runs],
        "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
        "exit_code": max((r["exit_code"] for r in runs), key=abs),
        "timed_out": any(r["timed_out"] for r in runs),
    }


def side_command(side: str, data: Path, out: Path, args, feast_python: Path | None) -> list[str]:
    python = str(feast_python) if SIDES[side][1] == "feast" else sys.executable
    command = [python, str(Path(__file__).resolve()), "--side", side, "--data", str(data), "--out", str(out)]
    return [*command, "--memory-limit", args.memory_limit] if args.memory_limit else command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=100, help="days of feature rows")
    parser.add_argument("--workdir", help="where the data and results go (default: a temporary folder)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds each side may take")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated, from: {', '.join(SIDES)} (default: all; lakecart-local is left out while "
        "lakecart.features.pit_local does not exist)",
    )
    parser.add_argument(
        "--memory-limit", help="DuckDB's memory_limit for lakecart-local and the DuckDB-alone sides (default: DuckDB's)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each side, alternating; times are medians (default: 3)"
    )
    parser.add_argument(
        "--compare-quick-jit",
        type=int,
        metavar="ROUNDS",
        help="also run lakecart's side ROUNDS times each without and with quick JIT (SparkSettings.quick_jit)",
    )
    parser.add_argument("--quick-jit", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        data, out = Path(args.data), Path(args.out)
        if args.side == "lakecart":
            run_lakecart(data, out, args.quick_jit == "on")
        elif args.side == "lakecart-local":
            run_lakecart_local(data, out, args.memory_limit)
        elif args.side in ("feast", "feast-duckdb"):
            run_feast(data, out, "file" if args.side == "feast" else "duckdb")
        elif args.side == "duckdb-asof":
            run_duckdb_asof(data, out, args.memory_limit)
        else:
            run_duckdb_bucket(data, out, args.memory_limit)
        return 0

    import importlib.util
    import os

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(sides) - set(SIDES)
    if unknown:
        parser.error(f"unknown sides: {', '.join(sorted(unknown))}")
    notes = []
    if "lakecart-local" in sides and importlib.util.find_spec("lakecart.features.pit_local") is None:
        sides.remove("lakecart-local")
        notes.append("lakecart-local left out: lakecart.features.pit_local does not exist at this commit")
        print(notes[-1], flush=True)
    bench_results.become_subreaper()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-pit-"))
    data = work / "data"
    t0 = time.perf_counter()
    shape = write_data(data, args.labels, args.feature_rows, args.days)
    print(f"data written in {time.perf_counter() - t0:.0f} s: {shape}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result: dict = {
        "benchmark": "pit_join",
        **shape,
        "rounds": args.rounds,
        "sides": sides,
        "commit": commit.stdout.strip(),
        # The code measured may be ahead of the commit (the lead's work in progress): say so.
        "uncommitted": subprocess.run(
            ["git", "status", "--porcelain", "features", "lakecart"], cwd=REPO, capture_output=True, text=True
        ).stdout.split("\n")[:-1],
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    feast_python = ensure_feast() if any(SIDES[s][1] == "feast" for s in sides) else None
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    # Every round runs every side once, the order rotated by one each round, so that a slow spell of
    # the machine hits all sides alike. A side that ran out of time is not run again.
    for round_ in range(args.rounds):
        for side in sides[round_ % len(sides) :] + sides[: round_ % len(sides)]:
            if any(r["timed_out"] for r in runs[side]):
                continue
            print(f"round {round_ + 1}/{args.rounds}: {side} ({SIDES[side][0]}) ...", flush=True)
            command = side_command(side, data, work / f"{side}.parquet", args, feast_python)
            runs[side].append(bench_results.measured(command, args.timeout))
            print(json.dumps(runs[side][-1]), flush=True)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    reference = runs.get("lakecart")
    for side in sides:
        result[side] = {"what": SIDES[side][0], **summary(runs[side], reference)}
    if feast_python is not None:
        result["feast_version"] = FEAST_VERSION
    # Against the Spark side; where it did not finish (out of time or memory on a large run),
    # against the first DuckDB-alone side that did, which gives the Spark side's answer where both ran.
    finished = [s for s in ("lakecart", "duckdb-bucket", "duckdb-asof") if s in sides and result[s]["exit_code"] == 0]
    if finished:
        result["agreement_reference"] = reference_side = finished[0]
        for side in sides:
            if side != reference_side and result[side]["exit_code"] == 0:
                print(f"agreement of {side} with {reference_side} ...", flush=True)
                result[side]["agreement"] = agreement(
                    work / f"{reference_side}.parquet", work / f"{side}.parquet", data
                )
    if args.compare_quick_jit:
        import statistics

        jit_runs: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.compare_quick_jit):
            for jit in ("off", "on"):
                command = side_command("lakecart", data, work / f"jit-{jit}.parquet", args, None)
                run = bench_results.measured([*command, "--quick-jit", jit], args.timeout)
                print(f"lakecart, quick JIT {jit}: {json.dumps(run)}", flush=True)
                jit_runs[jit].append(run["seconds"])
        result["quick_jit"] = {
            "seconds_off": jit_runs["off"],
            "seconds_on": jit_runs["on"],
            "median_off": statistics.median(jit_runs["off"]),
            "median_on": statistics.median(jit_runs["on"]),
        }
    if notes:
        result["notes"] = notes
    result.update(bench_results.stamp())
    bench_results.append("pit_join", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
