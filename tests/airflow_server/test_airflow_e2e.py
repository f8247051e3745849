"""Airflow as a person runs it (slow): ``lakecart airflow up`` on a small generated lake, a JWT from
the REST API with the generated credentials, the daily pipeline triggered for consecutive logical
dates through ``POST /api/v2/dags/{dag_id}/dagRuns``, each run checked in the lake, the training DAG
started by the feature assets, a screenshot of the UI after a real login, then ``down``.

The lake's days end today: once unpaused, the scheduler starts its own run for today's interval (the
DAG's schedule, ``catchup=False``), which then has data too. The training run the assets start is
stopped once seen (a full training run takes many minutes on two cores; tests/e2e covers training).
``LAKECART_AIRFLOW_E2E_DAYS`` sets how many days are triggered (default 3).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakecart import airflow_ops
from lakecart.cluster import free_port
from lakecart.jobs.generate import GeneratorSpec, generate

ROOT = Path(__file__).resolve().parents[2]
DAYS = int(os.environ.get("LAKECART_AIRFLOW_E2E_DAYS", "3"))
PIPELINE = "lakecart_pipeline"
TRAINING = "lakecart_training"
TIMEOUT_S = 60 * 60
SCREENSHOT = ROOT / "bench-results" / "airflow-ui.png"


def api(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    return airflow_ops._api(url, method, body, token, timeout=30)


def lakecart(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "lakecart"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """Airflow up on a lake of DAYS + 1 generated days ending today; down afterwards."""
    root = tmp_path_factory.mktemp("airflow-e2e")
    today = datetime.now(UTC).date()
    first = today - timedelta(days=DAYS)
    spec = GeneratorSpec(users=30, items=20, categories=4, days=DAYS + 1, events_per_day=150, start_date=first)
    generate(spec, root / "raw")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LAKECART_", "AIRFLOW"))},
        "LAKECART_LAKE__ROOT": str(root),
        "LAKECART_AIRFLOW_PORT": str(free_port()),
        "LAKECART_AIRFLOW_BIN": str(airflow_ops.airflow_bin()),
    }
    started = time.perf_counter()
    try:
        up = lakecart("airflow", "up", "--json", env=env)
        assert up.returncode == 0, up.stderr[-3000:]
        state = json.loads(up.stdout)
        state["up_seconds"] = time.perf_counter() - started
        yield root, env, state, [first + timedelta(days=n) for n in range(DAYS)]
    finally:  # also after a failed `up`: it may have started some components
        down = lakecart("airflow", "down", "--json", env=env)
    assert down.returncode == 0, down.stderr
    assert len(json.loads(down.stdout)) == 4  # the four components it started, nothing else
    for proc in state["processes"]:
        assert not airflow_ops._alive(proc), proc


@pytest.mark.slow
def test_airflow_runs_the_daily_pipeline_for_consecutive_days_and_starts_training(airflow):
    root, env, state, days = airflow
    url, home = state["url"], Path(state["home"])
    print(f"airflow up took {state['up_seconds']:.0f} s")

    # Loopback only, our DAGs, no examples, logs where the api-server reads them, login on.
    cfg = (home / "airflow.cfg").read_text()
    for line in ("host = 127.0.0.1", f"dags_folder = {ROOT / 'dags'}", "load_examples = False"):
        assert line in cfg
    passwords = Path(state["passwords_file"])
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/api/v2/dags", timeout=10)
    assert refused.value.code == 401

    token = airflow_ops.get_token(url, json.loads(passwords.read_text())["admin"])
    assert api(f"{url}/api/v2/pools/lakecart_training", token)["slots"] == 1
    for dag_id in (PIPELINE, TRAINING, "lakecart_backfill"):
        assert api(f"{url}/api/v2/dags/{dag_id}", token)["is_paused"] is False

    run_ids = []
    for day in days:
        body = {"logical_date": f"{day.isoformat()}T00:00:00Z", "conf": {"lookback_days": 0}}
        run_ids.append(api(f"{url}/api/v2/dags/{PIPELINE}/dagRuns", token, "POST", body)["dag_run_id"])

    started, training_run, runs = time.monotonic(), None, {}
    while time.monotonic() - started < TIMEOUT_S:
        token = airflow_ops.get_token(url, json.loads(passwords.read_text())["admin"])  # tokens expire
        runs = {r["dag_run_id"]: r for r in api(f"{url}/api/v2/dags/{PIPELINE}/dagRuns?limit=50", token)["dag_runs"]}
        if training_run is None:
            triggered = api(f"{url}/api/v2/dags/{TRAINING}/dagRuns", token)["dag_runs"]
            if triggered:
                training_run = triggered[0]
                # Seen: stop it and pause the DAG (Horovod training would take the two cores for many minutes).
                api(f"{url}/api/v2/dags/{TRAINING}", token, "PATCH", {"is_paused": True})
                path = f"{url}/api/v2/dags/{TRAINING}/dagRuns/{urllib.parse.quote(training_run['dag_run_id'])}"
                api(path, token, "PATCH", {"state": "failed"})
        if all(runs.get(r, {}).get("state") in ("success", "failed") for r in run_ids):
            break
        time.sleep(10)
    states = {runs[r]["logical_date"][:10]: runs[r]["state"] for r in run_ids}
    failures = _failures(root)
    assert set(states.values()) == {"success"}, (states, failures)
    # max_active_runs=1: one day after the other, oldest first.
    starts = [runs[r]["start_date"] for r in run_ids]
    ends = [runs[r]["end_date"] for r in run_ids]
    assert starts == sorted(starts) and all(end <= start for end, start in zip(ends, starts[1:], strict=False))
    durations = [runs[r]["duration"] for r in run_ids]
    print("pipeline runs (s):", dict(zip(states, (round(d) for d in durations), strict=True)))
    assert all(0 < d < 3600 for d in durations)  # a real duration, not "321 days"

    # The training DAG ran on the feature assets, with the data date of the pipeline run behind them.
    assert training_run is not None and training_run["run_type"] == "asset_triggered"

    # Each day reached silver and every feature view.
    silver = DeltaTable(str(root / "lake" / "silver" / "events")).to_pandas(columns=["event_date"])
    assert {str(d) for d in silver["event_date"].unique()} >= {d.isoformat() for d in days}
    computed = {}
    for view in sorted((root / "lake" / "features").iterdir()):
        dates = {str(d)[:10] for d in DeltaTable(str(view)).to_pandas(columns=["feature_date"])["feature_date"]}
        if dates:  # a view of a source the lake does not have (promotions) stays empty
            computed[view.name] = dates
    assert any(name.startswith("user_") for name in computed) and any(name.startswith("item_") for name in computed)
    for name, dates in computed.items():
        assert dates >= {d.isoformat() for d in days}, name

    # `lakecart status` shows the scheduler's runs: each day's silver ingest succeeded, by Airflow.
    shown = lakecart("status", "--json", "--latest", "500", env=env)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert all(r["airflow"] for r in report["runs"] if r["job"] == "ingest silver"), report["runs"]
    silver_days = {
        r["logical_date"] for r in report["runs"] if r["job"] == "ingest silver" and r["status"] == "succeeded"
    }
    assert silver_days >= {d.isoformat() for d in days}, report["runs"]
    events = next(t for t in report["tables"] if t["table"] == "silver.events")
    # `ingest silver` stages a batch; `ingest publish` (no date: it publishes what passed its gate)
    # merges it into silver.events.
    assert events["job"] == "ingest publish" and events["version"] > 0

    # A person logs in to the UI and sees both DAGs and their last runs.
    shot = subprocess.run(
        [
            str(airflow_ops.airflow_bin() / "python"),
            str(ROOT / "infra" / "airflow" / "ui_screenshot.py"),
            "--url",
            url,
            "--passwords-file",
            str(passwords),
            "--out",
            str(SCREENSHOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shot.returncode == 0, shot.stdout + shot.stderr
    assert SCREENSHOT.stat().st_size > 10_000


def _failures(root: Path) -> list[dict]:
    path = root / "lake" / "meta" / "task_failures"
    return DeltaTable(str(path)).to_pandas().to_dict("records") if path.exists() else []
