"""``lakecart demo``: synthetic raw logs, then both DAGs run by Airflow (SQLite, in-process
``airflow dags test``): the pipeline up to validated features, then the training DAG that a
scheduler would start from the pipeline's asset events; then a summary of what landed in the lake."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from argparse import Namespace
from datetime import date, timedelta
from pathlib import Path

import lakecart
from lakecart.airflow_ops import STATE_FILE, write_airflow_cfg
from lakecart.config import get_settings

DAG_ID = "lakecart_pipeline"
TRAINING_DAG_ID = "lakecart_training"
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
        # INFO: the task state lines the demo's progress reads (the console shows one line per task).
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "LAKECART_PIPELINE_BIN": str(Path(sys.executable).parent),
        "LAKECART_LAKE__ROOT": str(lake_root),
    }


def airflow_bin() -> Path:
    return Path(os.environ.get("LAKECART_AIRFLOW_BIN", Path(sys.prefix).parent / "airflow" / "bin"))


def run_dag(lake_root: Path, end: date, conf: dict, capture: bool = False, dag_id: str = DAG_ID) -> tuple[str, str]:
    """Migrate Airflow's SQLite database (idempotent), run one DAG run for ``end`` with
    ``airflow dags test``, and return the run's final state and (if ``capture``) its output. Without
    ``capture`` the console gets one line per task (its state and seconds; a failed task's last lines
    too) and the whole output goes to ``<airflow home>/<dag id>.log``."""
    home = lake_root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(lake_root, home)
    # An airflow.cfg a person can read and `lakecart airflow up` reuses: our DAGs, no examples,
    # 127.0.0.1, logs in <home>/logs (Airflow would otherwise write its defaults: 0.0.0.0, example
    # DAGs, a dags folder that does not exist). A running `lakecart airflow up` keeps its own.
    if not (home / "run" / STATE_FILE).exists():
        write_airflow_cfg(home, dags_folder())
    airflow = str(airflow_bin() / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    command = [airflow, "dags", "test", dag_id, end.isoformat(), "--conf", json.dumps(conf)]
    with subprocess.Popen(
        command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1
    ) as process:
        assert process.stdout is not None
        if capture:
            output = process.stdout.read()
        else:
            log_file = home / f"{dag_id}.log"
            with log_file.open("w") as log:
                progress = TaskProgress()
                for line in process.stdout:
                    log.write(line)
                    for shown in progress.feed(line):
                        print(shown, flush=True)
            print(f"(the whole Airflow output: {log_file})")
            output = ""
    runs = subprocess.run(
        [airflow, "dags", "list-runs", dag_id, "-o", "json"], env=env, check=True, capture_output=True, text=True
    )
    # The JSON is the last line that opens a list; Airflow may print warnings before it.
    listing = next((line for line in reversed(runs.stdout.splitlines()) if line.startswith("[")), "[]")
    mine = [r for r in json.loads(listing) if str(r.get("logical_date", "")).startswith(end.isoformat())]
    state = mine[0]["state"] if mine else f"unknown (airflow exit code {process.returncode})"
    return state, output


class TaskProgress:
    """Turns ``airflow dags test`` output into one line per finished task; a task that did not
    succeed also shows the last lines it printed (its error)."""

    STARTED = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    STATE = re.compile(r"Task instance state updated .* new_state=(\w+)")
    TAIL = 25

    def __init__(self) -> None:
        self.task: str | None = None
        self.started = 0.0
        self.lines: list[str] = []

    def feed(self, line: str) -> list[str]:
        if started := self.STARTED.search(line):
            self.task, self.started, self.lines = started.group(1), time.perf_counter(), []
            return []
        if self.task is None:
            return []
        self.lines = [*self.lines[-self.TAIL + 1 :], line.rstrip()]
        state = self.STATE.search(line)
        if state is None:
            return []
        seconds = time.perf_counter() - self.started
        shown = [f"  {self.task:<32} {state.group(1):<10} {seconds:5.0f} s"]
        if state.group(1) not in ("success", "skipped"):
            shown += [f"    | {text}" for text in self.lines]
        self.task = None
        return shown


DEMO_TRAIN_ARGS = {
    "retrieval": "--epochs 5",
    "ranking": "--epochs 3",
    "churn": "--epochs 10 --global-batch-size 128",
    "demand": "--epochs 20 --global-batch-size 64",
    # a dozen categories x a few observation dates: a handful of rows per worker
    "category_demand": "--epochs 20 --global-batch-size 4",
}
# A few days of a few dozen users (the end-to-end test): batches small enough for every set.
SMALL_TRAIN_ARGS = {
    "retrieval": "--epochs 2 --global-batch-size 128",
    "ranking": "--epochs 2 --global-batch-size 128",
    "churn": "--epochs 2 --global-batch-size 8",
    "demand": "--epochs 2 --global-batch-size 8",
    "category_demand": "--epochs 2 --global-batch-size 2",
}


def training_conf(days: int, test_days: int = 2) -> dict:
    """Training-DAG parameters that fit ``days`` of data. The demo has two weeks, so churn and
    demand use short horizons (3 days; 1/2/3 days ahead): the production defaults (28 days;
    7/14/28 days ahead) need months of history (benchmarks/training_models.py trains them on ~120 days).
    Training observations must end their label window by the first held-out observation, so the
    longest horizon plus the held-out days must leave a few training observations."""
    horizons = [1] if days < 10 else [1, 2, 3]
    churn_horizon = 1 if days < 10 else 3
    observation_days = max(days - max(horizons) - 1, test_days + max(horizons, default=1) + 1)
    return {
        "train_days": days,
        "test_days": test_days,
        "observation_days": observation_days,
        "every_days": 1,
        "churn_horizon_days": churn_horizon,
        "demand_horizons": ",".join(map(str, horizons)),
        "processes": 2,
        "train_args": SMALL_TRAIN_ARGS if days < 10 else DEMO_TRAIN_ARGS,
    }


def run_demo(args: Namespace) -> int:
    settings = get_settings()
    lake_root = Path(settings.lake.root).resolve()
    if args.fresh and lake_root.exists():
        shutil.rmtree(lake_root)
    end = START + timedelta(days=args.days - 1)
    started = time.perf_counter()

    _step(f"1/5 synthetic raw logs: {args.days} days x ~{args.events_per_day} events -> {lake_root}/raw")
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
        f"2/5 Airflow runs DAG '{DAG_ID}' for {end} (bronze, silver, validation, feature definitions, "
        "features, feature validation)"
    )
    state, _ = run_dag(lake_root, end, {"lookback_days": args.days - 1})
    if state != "success":
        print(f"\nThe DAG run ended '{state}'; the failing task's log is above.", file=sys.stderr)
        return 1

    _step(
        f"3/5 Airflow runs DAG '{TRAINING_DAG_ID}' for {end} (a scheduler starts it from the feature assets; "
        "here `dags test` does): training sets, retrieval, ranking, churn and demand models on 2 Horovod "
        "processes each, the publish gate, publish"
    )
    state, _ = run_dag(lake_root, end, training_conf(args.days), dag_id=TRAINING_DAG_ID)
    if state != "success":
        print(f"\nThe DAG run ended '{state}'; the failing task's log is above.", file=sys.stderr)
        return 1

    _step("4/5 results")
    print_summary(lake_root, end)

    _step("5/5 serving: `lakecart serve` answers from the online store the training DAG filled")
    serve_sample(lake_root, end)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    return 0


def serve_sample(lake_root: Path, end: date, timeout_s: float = 180) -> dict[str, object]:
    """Start ``lakecart serve`` on a free loopback port as of the morning after ``end`` (the demo's
    data is dated), send the requests a product page would, print each with its answer, stop it."""
    import httpx
    from deltalake import DeltaTable

    from lakecart import tables
    from lakecart.cluster import free_port
    from lakecart.config import LakeSettings, Settings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    settings = Settings(lake=LakeSettings(root=str(lake_root)))
    users = DeltaTable(tables.table_path(tables.RECOMMENDATIONS, settings)).to_pandas(columns=["user_id"])
    user = sorted(users["user_id"].unique())[0]
    port, as_of = free_port(), f"{end + timedelta(days=1)}T00:00:00+00:00"
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "lakecart"), "serve", "--port", str(port), "--as-of", as_of]
    env = {**os.environ, "LAKECART_LAKE__ROOT": str(lake_root)}
    answers: dict[str, object] = {}
    with (
        (lake_root / "serve.log").open("w") as log,
        subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT) as server,
    ):
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"lakecart serve did not start; see {lake_root / 'serve.log'}", file=sys.stderr)
                    return answers
                time.sleep(0.5)
            print(f"lakecart {' '.join(command[1:])}  ->  {url} (API docs: {url}/docs)")
            recommended = httpx.get(f"{url}/recommendations/{user}", params={"k": 5}, timeout=30)
            answers["recommendations"] = _show(f"curl '{url}/recommendations/{user}?k=5'", recommended)
            items = [r["item_id"] for r in recommended.json().get("items", [])] if recommended.is_success else []
            body = {"user_id": user, "item_ids": items or ["unknown-item"]}
            answers["rerank"] = _show(
                f"curl -X POST {url}/rerank -H 'content-type: application/json' -d '{json.dumps(body)}'",
                httpx.post(f"{url}/rerank", json=body, timeout=30),
            )
            answers["features"] = _show(
                f"curl '{url}/features/user?ids={user}'", httpx.get(f"{url}/features/user", params={"ids": user})
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return answers


def _show(request: str, answer, limit: int = 480) -> object:
    """Print a request and its (JSON) answer, cut at ``limit`` characters; return the answer's body."""
    body = answer.json() if "json" in answer.headers.get("content-type", "") else answer.text
    text = body if isinstance(body, str) else json.dumps(body)
    cut = f" ... ({len(text) - limit} more characters)" if len(text) > limit else ""
    print(f"\n$ {request}\nHTTP {answer.status_code} {text[:limit]}{cut}")
    return body


def gate_outcome(evaluation: Path) -> str:
    """What the gate decided for a run, and why (``evaluation.json``)."""
    if not evaluation.exists():
        return "not evaluated"
    gate = json.loads(evaluation.read_text())
    outcome = {
        "candidate": "published",
        "champion": f"held back; {gate.get('champion') or 'what was published before'} stays",
        "baseline": f"held back; baseline {gate.get('baseline')} published instead",
    }[gate["decision"]]
    return f"{outcome}: {gate['reason']}"


def print_summary(lake_root: Path, end: date) -> None:
    from deltalake import DeltaTable

    from lakecart import tables
    from lakecart.config import LakeSettings, Settings
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.summary import table_overview

    settings = Settings(lake=LakeSettings(root=str(lake_root)))
    print(f"{'table':34} {'rows':>9} {'version':>8}")
    for row in table_overview(settings):
        if row.get("error"):  # a table a killed run left half-created: say so, list the others
            print(f"{row['table']:34} {'-':>9} {'-':>8}  {row['error']}")
        else:
            print(f"{row['table']:34} {row['rows']:>9} {row['version']:>8}")
    from lakecart.training.publish import EVALUATION, champion, run_dir_for
    from lakecart.training.tasks import TASKS

    print()
    for model, task in TASKS.items():
        try:
            run_dir = run_dir_for(settings, model, dataset_id_for(end, task.dataset_kind))
        except FileNotFoundError:
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        key = task.primary_metric
        baselines = ", ".join(f"{name} {values[key]:.3f}" for name, values in metrics["baselines"].items())
        print(
            f"{model:16} {key} {metrics['test'][key]:.3f} (baselines: {baselines}); "
            f"{metrics['params']['workers']} workers, {metrics['examples_per_second_per_worker']:.0f} examples/s "
            f"per worker"
        )
        print(f"{'':16} {gate_outcome(run_dir / EVALUATION)}")
    ranking = champion(settings, "ranking")
    if ranking is None:
        print("\nno ranking published: no final top-5 lists")
        return
    recs = DeltaTable(tables.table_path(tables.RANKED_RECOMMENDATIONS, settings)).to_pandas(
        filters=[("model_version", "=", ranking["model_version"])]
    )
    user = sorted(recs["user_id"].unique())[0]
    top = recs[recs["user_id"] == user].sort_values("rank").head(5)
    print(
        f"\nfinal top-5 for {user} ({ranking['model_version']}, re-ranking the published retrieval's candidates): "
        + ", ".join(f"{r.item_id} (score {r.score:.2f})" for r in top.itertuples())
    )
    print(f"\nlake:       {lake_root}/lake   (Delta tables; read with Spark, delta-rs or DuckDB)")
    print(f"models:     {settings.lake.models}/<model>/<training set>   (metrics.json, *.png, tensorboard/, weights/)")
    print(f"data docs:  {lake_root}/reports/data_docs/index.html   (every validated table; offline)")
    print(f"airflow:    {lake_root}/airflow   (SQLite metadata and task logs)")
