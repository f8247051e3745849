"""`lakecart airflow up --db postgres` (slow): the metadata database on the PostgreSQL server that
infra/airflow/postgres.sh runs on 127.0.0.1, the LocalExecutor, a healthy Airflow; `down` stops
Airflow and the server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from lakecart import airflow_ops
from lakecart.cluster import free_port


def lakecart(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "lakecart"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_up_on_postgres_and_down(tmp_path):
    # As root the server runs as the postgres user, who cannot enter pytest's private tmp folders.
    home = Path(tempfile.mkdtemp(prefix="lakecart-airflow-pg-"))
    home.chmod(0o755)
    pg_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LAKECART_", "AIRFLOW"))},
        "LAKECART_LAKE__ROOT": str(tmp_path),
        "LAKECART_AIRFLOW_PORT": str(free_port()),
        "LAKECART_AIRFLOW_PG_PORT": str(pg_port),
        "LAKECART_AIRFLOW_DB": "postgres",
        "LAKECART_AIRFLOW_HOME": str(home),
    }
    try:
        up = lakecart("airflow", "up", "--json", env=env)
        assert up.returncode == 0, up.stderr[-3000:]
        state = json.loads(up.stdout)
        cfg = (home / "airflow.cfg").read_text()
        assert f"@127.0.0.1:{pg_port}/airflow" in cfg and "executor = LocalExecutor" in cfg
        with urllib.request.urlopen(f"{state['url']}/api/v2/monitor/health", timeout=10) as response:
            health = json.loads(response.read())
        assert {name: part["status"] for name, part in health.items() if isinstance(part, dict)} == {
            "metadatabase": "healthy",
            "scheduler": "healthy",
            "triggerer": "healthy",
            "dag_processor": "healthy",
        }
    finally:
        down = lakecart("airflow", "down", "--json", env=env)
    try:
        check_stopped(down, state, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def check_stopped(down: subprocess.CompletedProcess, state: dict, home: Path) -> None:
    stopped = json.loads(down.stdout)
    assert len(stopped) == 5 and stopped[-1].startswith("postgres"), stopped
    assert all(not airflow_ops._alive(p) for p in state["processes"])
    status = subprocess.run(
        ["bash", str(Path(airflow_ops.__file__).parents[1] / "infra" / "airflow" / "postgres.sh"), "status"],
        env={**os.environ, "PGHOME": str(home / "postgres")},
        capture_output=True,
        text=True,
    )
    assert status.returncode == 3, status.stdout  # not running
