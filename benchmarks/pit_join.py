"""Benchmark: point-in-time join, lakecart (Spark) vs Feast's offline store, on identical data
(issue 4: 1M label rows against 20M feature rows on 2 cores; target >= 5x faster than Feast, no
out-of-memory; report both times and peak memory).

The script writes one feature table (Parquet: ``user_id``, ``feature_date``, ``available_at`` and
eight features; each day a random half of the users has a row, some arriving hours late) and one
label table (``label_id``, ``user_id``, ``label_time``). Each side then runs in its own process,
reads the same files, joins every label with the newest feature row known at its time within a
2-day time-to-live, and writes the result to Parquet; the parent samples the resident memory of each
process tree. The sides alternate for ``--rounds`` rounds (default 3) and the times reported are
medians. Feast (the file offline store, its local default) is installed into ``.venv/feast`` on
first use. Finally the two results are compared label by label.

    .venv/pipeline/bin/python benchmarks/pit_join.py --labels 1000000 --feature-rows 20000000
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


# --- the two sides (each in its own process) ---------------------------------------------------


def run_lakecart(data: Path, out: Path, quick_jit: bool = True) -> None:
    from lakecart.config import Settings, SparkSettings
    from lakecart.features.definitions import Entity, Feature, FeatureView
    from lakecart.features.pit import point_in_time_join
    from lakecart.spark import get_spark

    view = FeatureView(
        name="bench",
        version=1,
        entity=Entity("user", ("user_id",), ""),
        features=tuple(Feature(f, "double", "") for f in FEATURES),
        transform=lambda events, start, end: events,
        ttl=TTL,
        owner="bench",
        description="",
    )
    spark = get_spark(
        Settings(
            spark=SparkSettings(master="local[2]", driver_memory="12g", shuffle_partitions=16, quick_jit=quick_jit)
        ),
        app_name="bench-pit-join",
    )
    features = spark.read.parquet(str(data / "features"))
    labels = spark.read.parquet(str(data / "labels.parquet"))
    joined = point_in_time_join(labels, "label_time", [(view, features)])
    joined.select("label_id", *[f"bench_v1__{f}" for f in FEATURES]).write.mode("overwrite").parquet(str(out))
    spark.stop()


def run_feast(data: Path, out: Path) -> None:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    repo = out.parent / "feast-repo"
    repo.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(
        config=RepoConfig(
            project="bench",
            registry=str(repo / "registry.db"),
            provider="local",
            offline_store={"type": "file"},
            online_store={"type": "sqlite", "path": str(repo / "online.db")},
            entity_key_serialization_version=3,
        )
    )
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="bench",
        entities=[user],
        ttl=TTL,
        schema=[Field(name="user_id", dtype=Int64), *[Field(name=f, dtype=Float64) for f in FEATURES]],
        source=FileSource(path=str(data / "features"), timestamp_field="available_at"),
    )
    store.apply([user, view])
    labels = pd.read_parquet(data / "labels.parquet").rename(columns={"label_time": "event_timestamp"})
    job = store.get_historical_features(entity_df=labels, features=[f"bench:{f}" for f in FEATURES])
    job.to_df()[["label_id", *FEATURES]].to_parquet(out)


# --- orchestration ------------------------------------------------------------------------------


def ensure_feast() -> Path:
    python = FEAST_ENV / "bin" / "python"
    if not python.exists():
        print(f"installing Feast {FEAST_VERSION} into {FEAST_ENV} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"feast=={FEAST_VERSION}"], check=True)
    return python


def measured(command: list[str], timeout_s: int) -> dict:
    """Run ``command``; wall time, exit code and the peak resident memory of its process tree."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if time.perf_counter() - started > timeout_s:
            process.kill()
            break
        time.sleep(0.25)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": process.wait(),
        "peak_rss_gib": round(peak / 2**30, 2),
        "timed_out": time.perf_counter() - started > timeout_s,
    }


def summary(runs: list[dict]) -> dict:
    """Median seconds over the rounds (each round's time kept), the highest peak memory, and the
    worst exit code."""
    import statistics

    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "seconds_each_round": [r["seconds"] for r in runs],
        "exit_code": max((r["exit_code"] for r in runs), key=abs),
        "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
        "timed_out": any(r["timed_out"] for r in runs),
    }


def compare(ours: Path, feast: Path, data: Path) -> dict:
    """Label by label. Feast's file store leaves out label rows that found no feature row, where
    lakecart keeps them with nulls; the check is that those are exactly the rows lakecart left null,
    and that every other row got the same values."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(ours).set_index("label_id")
    b = pd.read_parquet(feast).set_index("label_id")
    ours_found = a[f"bench_v1__{FEATURES[0]}"].notna()
    shared = b.index.intersection(a.index)
    x = a.loc[shared, f"bench_v1__{FEATURES[0]}"].to_numpy()
    y = b.loc[shared, FEATURES[0]].to_numpy()
    only_ours = a.index.difference(b.index)
    differing = shared[~np.isclose(x, y, equal_nan=True)]
    # Where they differ, is it a tie: two feature rows of the user known at the same instant (a day's
    # row that arrived exactly 24 h late)? lakecart then takes the newer feature_date.
    labels = pd.read_parquet(data / "labels.parquet").set_index("label_id").loc[differing].reset_index()
    features = pd.read_parquet(data / "features", columns=["user_id", "available_at"])
    candidates = labels.merge(features[features["user_id"].isin(labels["user_id"])], on="user_id")
    candidates = candidates[candidates["available_at"] <= candidates["label_time"]]
    newest = candidates.groupby("label_id")["available_at"].transform("max")
    tied = candidates[candidates["available_at"] == newest].groupby("label_id").size().gt(1).sum()
    return {
        "rows_lakecart": len(a),
        "rows_feast": len(b),
        "labels_with_features_lakecart": int(ours_found.sum()),
        "labels_with_features_feast": int(b[FEATURES[0]].notna().sum()),
        "rows_feast_left_out_that_lakecart_left_null": int((~ours_found.loc[only_ours]).sum()),
        "rows_feast_left_out": len(only_ours),
        "identical_share_of_shared_rows": round(float(np.isclose(x, y, equal_nan=True).mean()), 6),
        "differing_rows": len(differing),
        "differing_rows_that_are_ties_on_available_at": int(tied),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=100, help="days of feature rows")
    parser.add_argument("--workdir", help="where the data and results go (default: a temporary folder)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds each side may take")
    parser.add_argument("--skip-feast", action="store_true")
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
    parser.add_argument("--side", choices=["lakecart", "feast"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "lakecart":
        run_lakecart(Path(args.data), Path(args.out), args.quick_jit == "on")
        return 0
    if args.side == "feast":
        run_feast(Path(args.data), Path(args.out))
        return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-pit-"))
    data = work / "data"
    t0 = time.perf_counter()
    shape = write_data(data, args.labels, args.feature_rows, args.days)
    print(f"data written in {time.perf_counter() - t0:.0f} s: {shape}", flush=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    result: dict = {"benchmark": "pit_join", **shape, "rounds": args.rounds}
    lakecart_command = [*me, "--side", "lakecart", "--data", str(data), "--out", str(work / "lakecart.parquet")]
    feast_python = None if args.skip_feast else ensure_feast()
    runs: dict[str, list[dict]] = {"lakecart": [], "feast": []}
    # Rounds alternate the two sides, so that a slow spell of the machine hits both alike.
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}/{args.rounds}: lakecart (Spark local[2]) ...", flush=True)
        runs["lakecart"].append(measured(lakecart_command, args.timeout))
        print(json.dumps(runs["lakecart"][-1]), flush=True)
        if feast_python is not None:
            print(f"round {round_}/{args.rounds}: Feast {FEAST_VERSION} (file offline store) ...", flush=True)
            feast_command = [str(feast_python), me[1], "--side", "feast", "--data", str(data)]
            runs["feast"].append(measured([*feast_command, "--out", str(work / "feast.parquet")], args.timeout))
            print(json.dumps(runs["feast"][-1]), flush=True)
    for side, measured_runs in runs.items():
        if measured_runs:
            result[side] = summary(measured_runs)
    if feast_python is not None:
        result["feast"]["version"] = FEAST_VERSION
        if result["feast"]["exit_code"] == 0 and result["lakecart"]["exit_code"] == 0:
            result["speedup_vs_feast"] = round(result["feast"]["seconds"] / result["lakecart"]["seconds"], 2)
            result["agreement"] = compare(work / "lakecart.parquet", work / "feast.parquet", data)
    if args.compare_quick_jit:
        import statistics

        runs: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.compare_quick_jit):
            for jit in ("off", "on"):
                run = measured(
                    [
                        *me,
                        "--side",
                        "lakecart",
                        "--data",
                        str(data),
                        "--out",
                        str(work / f"jit-{jit}.parquet"),
                        "--quick-jit",
                        jit,
                    ],
                    args.timeout,
                )
                print(f"lakecart, quick JIT {jit}: {json.dumps(run)}", flush=True)
                runs[jit].append(run["seconds"])
        result["quick_jit"] = {
            "seconds_off": runs["off"],
            "seconds_on": runs["on"],
            "median_off": statistics.median(runs["off"]),
            "median_on": statistics.median(runs["on"]),
        }
    result.update(bench_results.stamp())
    bench_results.append("pit_join", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
