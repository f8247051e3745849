"""Benchmark: one feature view's transform against an earlier version of it, side by side on a real
lake (issue 16's "15 minutes for the whole Complete Journey path": which view change pays).

A view's code cannot change under its version, so a faster formulation is a new version and the old
one leaves the code. This script loads the old one from git: ``--against REV:VIEW`` imports the
module that declares ``--view`` as it was at ``REV`` and takes ``VIEW`` from it (both modules import
the rest of ``lakecart`` as it is now).

Each side runs in a fresh process, alternating for ``--rounds`` rounds (order rotated each round),
over the output days ``--days`` up to ``--date``: the lakecart session from the lake's settings
(``LAKECART_LAKE__ROOT=--lake``), the view's silver source read as ``features materialize`` reads it,
``lakecart.jobs.materialize.compute_view`` and ``lakecart.delta.replace_partitions`` into a fresh
Delta table. Left out, as bookkeeping and not the view: the incremental check, the
``feature_materializations`` merge and the count read back. Each side's wall time (JVM start
included, and the seconds after the session started), CPU seconds and peak memory of its process
tree are recorded. Finally the two outputs are compared with DuckDB: rows in one and not the other,
both ways (``EXCEPT ALL`` on every column: exact, so views that add doubles in another order would
differ in the last bits). Results go to ``bench-results/view_versions.jsonl``.

    .venv/pipeline/bin/python benchmarks/view_versions.py \\
        --lake /tmp/cj-lake --view item_promotions_v2 --against 4488d4a:item_promotions_v1 \\
        --date 2017-12-31 --days 85
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
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
SIDES = ("current", "against")
STAGES = ("features", "jobs", "training", "serving")  # setup.py: top-level folders, lakecart.<stage>


def _view_at(revision: str, table: str, current_table: str):
    """``table`` as declared at ``revision`` in the module that declares ``current_table`` now."""
    from lakecart.features import REGISTRY

    module = inspect.getmodule(REGISTRY[current_table].transform)
    package, *rest = module.__name__.split(".")[1:]  # lakecart.features.orders: features/orders.py
    relative = Path(package if package in STAGES else f"lakecart/{package}", *rest).with_suffix(".py")
    source = subprocess.run(
        ["git", "show", f"{revision}:{relative}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="view-at-")) / relative.name
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(module.__name__, path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)  # not put in sys.modules: the current module stays the one imported
    views = {v.table_name: v for v in vars(old).values() if type(v).__name__ == "FeatureView"}
    if table not in views:
        raise SystemExit(f"{relative} at {revision} declares no {table}; it has {sorted(views)}")
    return views[table]


def materialized(view, settings, source_path: str, out: Path, start: date, end: date) -> dict:
    """What ``features materialize`` does for ``view`` over ``[start, end]``, timed: a session
    (JVM start), the source read, ``compute_view`` and ``replace_partitions`` into ``out``."""
    from lakecart import delta
    from lakecart.features.definitions import FEATURE_DATE
    from lakecart.jobs.materialize import compute_view
    from lakecart.spark import get_spark

    started = time.perf_counter()
    spark = get_spark(settings, app_name=f"bench-view-{view.table_name}")
    session = time.perf_counter()
    frame = compute_view(view, spark.read.format("delta").load(source_path), start, end)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    delta.replace_partitions(frame, str(out), FEATURE_DATE, days)
    done = time.perf_counter()
    spark.stop()
    return {"session_seconds": round(session - started, 1), "after_session_seconds": round(done - session, 1)}


def run_side(view_spec: str, out: Path, end: date, days: int) -> dict:
    from lakecart import tables
    from lakecart.config import get_settings
    from lakecart.features import REGISTRY
    from lakecart.jobs.materialize import SILVER_SOURCES

    current, _, against = view_spec.partition("|")
    view = REGISTRY[current] if not against else _view_at(*against.split(":", 1), current)
    settings = get_settings()
    source = tables.table_path(SILVER_SOURCES[view.source].table, settings)
    return materialized(view, settings, source, out, end - timedelta(days=days - 1), end)


def differences(first: Path, second: Path) -> dict:
    """Rows of each output missing from the other (multiset difference on every column)."""
    import duckdb
    from deltalake import DeltaTable

    con = duckdb.connect()
    con.register("a", DeltaTable(str(first)).to_pyarrow_dataset())
    con.register("b", DeltaTable(str(second)).to_pyarrow_dataset())
    count = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "rows_current": count("select count(*) from a"),
        "rows_against": count("select count(*) from b"),
        "only_in_current": count("select count(*) from (select * from a except all select * from b)"),
        "only_in_against": count("select count(*) from (select * from b except all select * from a)"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, help="the lake root, LAKECART_LAKE__ROOT (its silver tables in place)")
    parser.add_argument("--view", required=True, help="the view as the code declares it now (table name)")
    parser.add_argument("--against", required=True, help="REV:VIEW, an earlier version from git")
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="the newest output day")
    parser.add_argument("--days", type=int, default=1, help="output days ending on --date")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds each run may take")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["LAKECART_LAKE__ROOT"] = args.lake
    if args.side:
        spec = args.view if args.side == "current" else f"{args.view}|{args.against}"
        timing = run_side(spec, Path(args.out), args.date, args.days)
        Path(args.out + ".timing.json").write_text(json.dumps(timing))
        return 0

    bench_results.become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="bench-view-versions-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result: dict = {
        "benchmark": "view_versions",
        "view": args.view,
        "against": args.against,
        "lake": args.lake,
        "newest_day": args.date.isoformat(),
        "days": args.days,
        "rounds": args.rounds,
        "commit": commit.stdout.strip(),
        "uncommitted": subprocess.run(
            ["git", "status", "--porcelain", "features", "jobs", "lakecart"], cwd=REPO, capture_output=True, text=True
        ).stdout.split("\n")[:-1],
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "runs": [],
    }
    try:
        for round_ in range(args.rounds):
            for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                out = work / f"{side}-{round_}"
                command = [sys.executable, __file__, *sys.argv[1:], "--side", side, "--out", str(out)]
                run = bench_results.measured(command, args.timeout)
                if run["exit_code"] == 0:
                    run.update(json.loads(Path(f"{out}.timing.json").read_text()))
                run.update(side=side, round=round_)
                result["runs"].append(run)
                print(json.dumps(run), flush=True)
        ok = {s: [r for r in result["runs"] if r["side"] == s and r["exit_code"] == 0] for s in SIDES}
        for side, runs in ok.items():
            if runs:
                result[f"{side}_median_seconds"] = statistics.median(r["seconds"] for r in runs)
        ratios = [
            a["seconds"] / c["seconds"]
            for c, a in zip(ok["current"], ok["against"], strict=False)
            if c["round"] == a["round"]
        ]
        if ratios:
            result["median_ratio_against_over_current"] = round(statistics.median(ratios), 2)
        if ok["current"] and ok["against"]:
            result["comparison"] = differences(work / "current-0", work / "against-0")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    print("appended to", bench_results.append("view_versions", {**bench_results.stamp(), **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
