"""``lakecart demo``: synthetic raw logs, then the whole pipeline DAG run by Airflow (SQLite,
in-process ``airflow dags test``), then a summary of what landed in the lake."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from argparse import Namespace
from datetime import date, timedelta
from pathlib import Path

import lakecart
from lakecart.config import get_settings

DAG_ID = "lakecart_pipeline"
START = date(2026, 1, 1)


def _step(message: str) -> None:
    print(f"\n\033[1m==> {message}\033[0m", flush=True)


def dags_folder() -> Path:
    return Path(os.environ.get("LAKECART_DAGS_FOLDER", Path(lakecart.__file__).resolve().parents[1] / "dags"))


def airflow_env(lake_root: Path, airflow_home: Path) -> dict[str, str]:
    """The environment Airflow runs in: its own home on SQLite, our DAGs, our lake."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # Task logs go to the console as the DAG runs: that is the demo's progress output.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "LAKECART_PIPELINE_BIN": str(Path(sys.executable).parent),
        "LAKECART_LAKE__ROOT": str(lake_root),
    }


def airflow_bin() -> Path:
    return Path(os.environ.get("LAKECART_AIRFLOW_BIN", Path(sys.prefix).parent / "airflow" / "bin"))


def run_dag(lake_root: Path, end: date, conf: dict, capture: bool = False) -> tuple[str, str]:
    """Migrate Airflow's SQLite database (idempotent), run one DAG run for ``end`` with
    ``airflow dags test``, and return the run's final state and (if ``capture``) its output."""
    home = lake_root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(lake_root, home)
    airflow = str(airflow_bin() / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [airflow, "dags", "test", DAG_ID, end.isoformat(), "--conf", json.dumps(conf)],
        env=env,
        check=False,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )
    runs = subprocess.run(
        [airflow, "dags", "list-runs", DAG_ID, "-o", "json"], env=env, check=True, capture_output=True, text=True
    )
    # The JSON is the last line that opens a list; Airflow may print warnings before it.
    listing = next((line for line in reversed(runs.stdout.splitlines()) if line.startswith("[")), "[]")
    mine = [r for r in json.loads(listing) if str(r.get("logical_date", "")).startswith(end.isoformat())]
    state = mine[0]["state"] if mine else f"unknown (airflow exit code {done.returncode})"
    return state, done.stdout or ""


def run_demo(args: Namespace) -> int:
    settings = get_settings()
    lake_root = Path(settings.lake.root).resolve()
    if args.fresh and lake_root.exists():
        shutil.rmtree(lake_root)
    end = START + timedelta(days=args.days - 1)
    started = time.perf_counter()

    _step(f"1/3 synthetic raw logs: {args.days} days x ~{args.events_per_day} events -> {lake_root}/raw")
    manifest = lake_root / "raw" / "_manifest.json"
    if manifest.exists():
        print(f"raw logs already there ({manifest}); `lakecart demo --fresh` starts over")
    else:
        from lakecart.jobs.generate import GeneratorSpec, generate

        spec = GeneratorSpec(
            users=args.users, items=args.items, days=args.days, events_per_day=args.events_per_day, start_date=START
        )
        print(json.dumps(generate(spec, lake_root / "raw")["raw_lines"]), "raw lines written")

    _step(
        f"2/3 Airflow runs DAG '{DAG_ID}' for {end} (tasks: bronze, silver, validation, features, "
        "training set, Horovod training on 2 processes, publish)"
    )
    conf = {"lookback_days": args.days - 1, "train_days": args.days, "test_days": 2, "processes": 2, "epochs": 10}
    state, _ = run_dag(lake_root, end, conf)
    if state != "success":
        print(f"\nThe DAG run ended '{state}'; the failing task's log is above.", file=sys.stderr)
        return 1

    _step("3/3 results")
    print_summary(lake_root, end)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    return 0


def print_summary(lake_root: Path, end: date) -> None:
    from deltalake import DeltaTable

    from lakecart import tables
    from lakecart.config import LakeSettings, Settings
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.summary import table_overview

    settings = Settings(lake=LakeSettings(root=str(lake_root)))
    print(f"{'table':34} {'rows':>9} {'version':>8}")
    for row in table_overview(settings):
        print(f"{row['table']:34} {row['rows']:>9} {row['version']:>8}")
    run_dir = Path(settings.lake.models) / "retrieval" / dataset_id_for(end)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(
        f"\nmodel {metrics['model_version']} (trained on {metrics['params']['workers']} Horovod workers, "
        f"{metrics['train_rows']} train / {metrics['test_rows']} held-out interactions)"
    )
    for k, v in metrics["test"].items():
        print(f"  {k:11} two-tower {v:.3f}   most-popular {metrics['baseline_most_popular'][k]:.3f}")
    recs = DeltaTable(tables.table_path(tables.RECOMMENDATIONS, settings)).to_pandas(
        filters=[("model_version", "=", metrics["model_version"])]
    )
    user = sorted(recs["user_id"].unique())[0]
    top = recs[recs["user_id"] == user].sort_values("rank").head(5)
    print(f"\ntop-5 recommendations for {user}: " + ", ".join(f"{r.item_id} ({r.score:.2f})" for r in top.itertuples()))
    print(f"\nlake:       {lake_root}/lake   (Delta tables; read with Spark, delta-rs or DuckDB)")
    print(f"model:      {run_dir}   (metrics.json, retrieval.png, weights/)")
    print(f"data docs:  {lake_root}/reports/gx/<table>/gx/uncommitted/data_docs/local_site/index.html")
    print(f"airflow:    {lake_root}/airflow   (SQLite metadata and task logs)")
