"""Airflow 3 as a platform team runs it, on this machine: ``up``, ``down``, ``status``.

``up`` starts the four Airflow 3 components from the Airflow environment (``.venv/airflow``):
scheduler (LocalExecutor), api-server (UI and REST API v2), dag-processor and triggerer, each its
own process group whose id is recorded (``<home>/run/<name>.pid`` and ``<home>/run/airflow.json``),
so ``down`` stops exactly what ``up`` started and nothing else. Everything listens on 127.0.0.1
only: the api-server on ``LAKECART_AIRFLOW_PORT`` (default 8080, or a free port when 8080 is taken);
the scheduler and triggerer do not start Airflow's log servers (they bind every interface), because
the api-server reads task logs from the same folder (``<home>/logs``).

Authentication is on: Airflow's simple auth manager, one ``admin`` user whose password is
``LAKECART_AIRFLOW_PASSWORD`` or generated once and kept in ``<home>/passwords.json`` (mode 0600).

``AIRFLOW_HOME`` is ``LAKECART_AIRFLOW_HOME``, else ``<lake root>/airflow`` (the folder the demo uses,
so the UI shows the demo's runs too). The metadata database is SQLite in that folder; with
``LAKECART_AIRFLOW_DB=postgres`` (``up --db postgres``) it is a PostgreSQL server that
``infra/airflow/postgres.sh`` runs on 127.0.0.1 with its data in ``<home>/postgres``.

After the components are up, ``up`` creates the pool ``lakecart_training`` (one slot: one training
run at a time on a machine) and unpauses the DAGs: the training DAG only runs on the pipeline's
asset events while it is unpaused, and a paused backfill DAG's triggered runs would only queue.
"""

from __future__ import annotations

import argparse
import base64
import configparser
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lakecart.cluster import _alive, _start_ticks, _stop, free_port, port_is_free
from lakecart.errors import LakecartError

HOST = "127.0.0.1"
USER = "admin"
DEFAULT_PORT = 8080
STATE_FILE = "airflow.json"
PASSWORDS_FILE = "passwords.json"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
DAG_IDS = ("lakecart_pipeline", "lakecart_training", "lakecart_backfill")
# All three: the backfill DAG has no schedule (unpausing starts nothing), but a paused DAG's triggered
# runs wait in the queue until someone unpauses it.
UNPAUSED = DAG_IDS
# Pools the DAGs use (name -> slots, description); created by `up`.
POOLS = {"lakecart_training": (1, "one training run at a time: each model trains on all the machine's cores")}
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# A cold api-server plus the first parse of the DAGs on a busy two-core machine.
START_TIMEOUT_S = 240.0


class AirflowOpsError(LakecartError, RuntimeError):
    """Airflow could not be started, stopped or asked; the message says why and what to do."""


def _repo_root() -> Path:
    import lakecart

    return Path(lakecart.__file__).resolve().parents[1]


def airflow_bin() -> Path:
    """The Airflow environment's ``bin/``: ``LAKECART_AIRFLOW_BIN``, else ``.venv/airflow/bin`` next to
    this (pipeline) environment."""
    if os.environ.get("LAKECART_AIRFLOW_BIN"):
        return Path(os.environ["LAKECART_AIRFLOW_BIN"])
    return Path(sys.prefix).parent / "airflow" / "bin"


def lake_root() -> Path:
    """The configured lake root, absolute: tasks run in temporary folders."""
    from lakecart.config import get_settings  # pydantic and YAML: only the pipeline side needs them

    return Path(get_settings().lake.root).resolve()


def default_home() -> Path:
    if os.environ.get("LAKECART_AIRFLOW_HOME"):
        return Path(os.environ["LAKECART_AIRFLOW_HOME"]).resolve()
    return lake_root() / "airflow"


@dataclass(frozen=True)
class AirflowConfig:
    home: Path
    port: int
    db: str = "sqlite"  # or "postgres"
    dags_folder: Path | None = None

    @classmethod
    def from_env(cls, db: str | None = None, port: int | None = None) -> AirflowConfig:
        db = (db or os.environ.get("LAKECART_AIRFLOW_DB") or "sqlite").strip().lower()
        if db not in ("sqlite", "postgres"):
            raise AirflowOpsError(f"LAKECART_AIRFLOW_DB={db!r}: choose sqlite or postgres")
        if port is None:
            text = os.environ.get("LAKECART_AIRFLOW_PORT", "").strip()
            if text:
                try:
                    port = int(text)
                except ValueError:
                    raise AirflowOpsError(f"LAKECART_AIRFLOW_PORT={text!r} is not a port number") from None
            else:
                port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
        dags = Path(os.environ["LAKECART_DAGS_FOLDER"]) if os.environ.get("LAKECART_DAGS_FOLDER") else None
        return cls(home=default_home(), port=port, db=db, dags_folder=dags)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def dags(self) -> Path:
        return (self.dags_folder or _repo_root() / "dags").resolve()


# --- configuration -----------------------------------------------------------------------------------


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def write_airflow_cfg(
    home: Path,
    dags_folder: Path,
    *,
    port: int = DEFAULT_PORT,
    sql_alchemy_conn: str | None = None,
    passwords_file: Path | None = None,
) -> Path:
    """Write ``<home>/airflow.cfg``: our DAGs, no example DAGs, loopback only, logs in ``<home>/logs``,
    the LocalExecutor, the simple auth manager. Secrets (Fernet key, JWT and API secrets) are kept from
    an existing file: the Fernet key encrypts connections in the database, and every component must
    share the JWT secret (per-process random defaults would make the api-server reject the
    scheduler's task tokens)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "airflow.cfg"
    old = configparser.ConfigParser(interpolation=None)
    if path.is_file():
        old.read(path)

    def keep(section: str, key: str, new: str) -> str:
        return old.get(section, key, fallback="") or new

    cfg = configparser.ConfigParser(interpolation=None)
    cfg["core"] = {
        "dags_folder": str(dags_folder),
        "load_examples": "False",
        "executor": "LocalExecutor",
        # Two cores: a few tasks at once; each is a JVM or a Horovod job.
        "parallelism": "4",
        "dagbag_import_timeout": "120",
        "auth_manager": SIMPLE_AUTH_MANAGER,
        "simple_auth_manager_users": f"{USER}:admin",
        "simple_auth_manager_passwords_file": str(passwords_file or home / PASSWORDS_FILE),
        "execution_api_server_url": f"http://{HOST}:{port}/execution/",
        "fernet_key": keep("core", "fernet_key", _fernet_key()),
    }
    cfg["database"] = {"sql_alchemy_conn": sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}"}
    cfg["api"] = {
        "host": HOST,
        "port": str(port),
        "base_url": f"http://{HOST}:{port}",
        "workers": "1",
        "secret_key": keep("api", "secret_key", secrets.token_urlsafe(32)),
    }
    cfg["api_auth"] = {"jwt_secret": keep("api_auth", "jwt_secret", secrets.token_urlsafe(48))}
    cfg["logging"] = {
        # The scheduler, triggerer and api-server share this folder: the UI reads task logs from it.
        "base_log_folder": str(home / "logs"),
        "dag_processor_child_process_log_directory": str(home / "logs" / "dag_processor"),
        "logging_level": "INFO",
    }
    partial = path.with_name("airflow.cfg.partial")
    with partial.open("w") as out:
        out.write("# Written by lakecart (lakecart/airflow_ops.py); `lakecart airflow up` rewrites it.\n")
        cfg.write(out)
    partial.chmod(0o600)  # holds the secrets
    partial.replace(path)
    return path


def ensure_password(home: Path) -> tuple[str, Path]:
    """The admin password: ``LAKECART_AIRFLOW_PASSWORD``, else the one kept in ``<home>/passwords.json``,
    else a new random one written there. The file is the simple auth manager's passwords file (0600)."""
    path = home / PASSWORDS_FILE
    home.mkdir(parents=True, exist_ok=True)
    password = os.environ.get("LAKECART_AIRFLOW_PASSWORD", "")
    if not password and path.is_file():
        password = json.loads(path.read_text() or "{}").get(USER, "")
    password = password or secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({USER: password}, out)
    path.chmod(0o600)  # an existing file keeps its mode under O_CREAT
    return password, path


def component_env(cfg: AirflowConfig) -> dict[str, str]:
    """What every Airflow process (and so every task) sees: its home, and the pipeline environment."""
    # Not Airflow's own settings (airflow.cfg has them), nor ours for `up` (the password stays out of tasks).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "LAKECART_AIRFLOW_"))}
    env.update(
        AIRFLOW_HOME=str(cfg.home),
        # Tasks run `lakecart` from the pipeline environment (the DAGs put this first on PATH).
        LAKECART_PIPELINE_BIN=os.environ.get("LAKECART_PIPELINE_BIN") or str(Path(sys.executable).parent),
        PYTHONUNBUFFERED="1",
    )
    # The same lake as the one who ran `up`, made absolute (a relative root would land in each
    # task's temporary folder). LAKECART_CONFIG and other LAKECART_* settings pass through.
    env["LAKECART_LAKE__ROOT"] = str(lake_root())
    return env


# --- PostgreSQL --------------------------------------------------------------------------------------


def _postgres(action: str, cfg: AirflowConfig) -> str:
    script = _repo_root() / "infra" / "airflow" / "postgres.sh"
    env = {**os.environ, "PGHOME": str(cfg.home / "postgres")}  # LAKECART_AIRFLOW_PG_PORT passes through
    done = subprocess.run(["bash", str(script), action], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AirflowOpsError(f"postgres.sh {action} failed: {(done.stderr or done.stdout).strip()[-800:]}")
    sys.stderr.write(done.stderr)
    return done.stdout.strip()


# --- processes ---------------------------------------------------------------------------------------


def _read_state(cfg_home: Path) -> dict | None:
    path = cfg_home / "run" / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_state(cfg: AirflowConfig, state: dict) -> None:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.run_dir / STATE_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(path)
    for proc in state["processes"]:
        (cfg.run_dir / f"{proc['name']}.pid").write_text(f"{proc['pid']}\n")


def _spawn(name: str, args: list[str], cfg: AirflowConfig, env: dict[str, str]) -> dict:
    log = cfg.home / "logs" / "components" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # Its own session and process group: `down` signals the group (the component and the task
        # processes it forked), nothing else.
        proc = subprocess.Popen(
            [str(airflow_bin() / "airflow"), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cfg.home,
            start_new_session=True,
        )
    return {"name": name, "pid": proc.pid, "start_ticks": _start_ticks(proc.pid), "log": str(log)}


def _log_tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _api(
    url: str, method: str = "GET", body: dict | None = None, token: str | None = None, timeout: float = 10.0
) -> dict:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else {}


def get_token(url: str, password: str, user: str = USER) -> str:
    """A JWT from the api-server (``POST /auth/token``), for ``Authorization: Bearer``."""
    return _api(f"{url}/auth/token", "POST", {"username": user, "password": password})["access_token"]


def _wait(what: str, check, procs: list[dict], timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if not _alive(proc):
                raise AirflowOpsError(
                    f"{proc['name']} exited while waiting for {what}; {proc['log']} ends:\n{_log_tail(proc['log'])}"
                )
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AirflowOpsError(f"timed out after {timeout:.0f} s waiting for {what}; logs: {procs[0]['log']}")
        time.sleep(1.0)


def _migrate(cfg: AirflowConfig, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(airflow_bin() / "airflow"), "db", "migrate"], env=env, cwd=cfg.home, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AirflowOpsError(f"`airflow db migrate` failed: {(done.stderr or done.stdout).strip()[-800:]}")


def up(cfg: AirflowConfig | None = None, timeout: float = START_TIMEOUT_S) -> dict:
    """Start Airflow; return the state (URL, user, password file, processes). An Airflow this home
    already runs is left as it is; a port in use is refused before anything starts."""
    cfg = cfg or AirflowConfig.from_env()
    if not (airflow_bin() / "airflow").is_file():
        raise AirflowOpsError(f"no Airflow at {airflow_bin()}; create it with `make envs` or set LAKECART_AIRFLOW_BIN")
    state = _read_state(cfg.home)
    if state is not None:
        if all(_alive(p) for p in state["processes"]):
            return {**state, "already_running": True}
        down(cfg.home)  # a partial Airflow (a component died): start over cleanly
    if not port_is_free(cfg.port):
        raise AirflowOpsError(
            f"port {cfg.port} on {HOST} is in use; set LAKECART_AIRFLOW_PORT to a free one (or unset it to pick one)"
        )
    cfg.home.mkdir(parents=True, exist_ok=True)
    password, passwords_file = ensure_password(cfg.home)
    env = component_env(cfg)
    state = {
        "url": cfg.url,
        "user": USER,
        "passwords_file": str(passwords_file),
        "password_from_env": bool(os.environ.get("LAKECART_AIRFLOW_PASSWORD")),
        "home": str(cfg.home),
        "dags_folder": str(cfg.dags),
        "db": cfg.db,
        "airflow_bin": str(airflow_bin()),
        "processes": [],
    }
    if cfg.db == "postgres":
        state["postgres"] = str(cfg.home / "postgres")
    _write_state(cfg, state)  # recorded at once: `down` stops a half-started Airflow (and PostgreSQL) too
    try:
        conn = _postgres("start", cfg) if cfg.db == "postgres" else None  # its SQLAlchemy URL
        write_airflow_cfg(cfg.home, cfg.dags, port=cfg.port, sql_alchemy_conn=conn, passwords_file=passwords_file)
        _migrate(cfg, env)
        args = {
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
            "api-server": ["api-server", "--host", HOST, "--port", str(cfg.port)],
        }
        for name in COMPONENTS:
            state["processes"].append(_spawn(name, args[name], cfg, env))
            _write_state(cfg, state)
        procs = state["processes"]
        api = procs[-1]
        _wait("the api-server", lambda: _api(f"{cfg.url}/api/v2/monitor/health"), [api, *procs[:-1]], timeout)
        token = get_token(cfg.url, password)
        for name, (slots, description) in POOLS.items():
            body = {"name": name, "slots": slots, "description": description, "include_deferred": False}
            try:
                _api(f"{cfg.url}/api/v2/pools", "POST", body, token)
            except urllib.error.HTTPError as exc:
                if exc.code != 409:  # already there: set its size
                    raise
                _api(f"{cfg.url}/api/v2/pools/{name}", "PATCH", body, token)
        for dag_id in UNPAUSED:
            _wait(
                f"the dag-processor to parse {dag_id}",
                lambda d=dag_id: _api(f"{cfg.url}/api/v2/dags/{d}", token=token),
                procs,
                timeout,
            )
            _api(f"{cfg.url}/api/v2/dags/{dag_id}", "PATCH", {"is_paused": False}, token)
    except urllib.error.HTTPError as exc:
        down(cfg.home)
        raise AirflowOpsError(f"the api-server answered {exc.code} to {exc.url}: {exc.read()[:300]!r}") from None
    except BaseException:
        down(cfg.home)
        raise
    return state


def down(home: Path | None = None) -> list[str]:
    """Stop the processes ``up`` recorded (and the task processes they forked), and the PostgreSQL
    server if ``up`` started one; return what was stopped."""
    home = home or default_home()
    state = _read_state(home)
    if state is None:
        return []
    # The api-server first (no new requests), the scheduler last (it marks its tasks' ends).
    procs = sorted(state["processes"], key=lambda p: COMPONENTS.index(p["name"]), reverse=True)
    stopped = _stop(procs, timeout=30.0)
    if state.get("postgres"):
        cfg = AirflowConfig(home=home, port=0, db="postgres")
        _postgres("stop", cfg)
        stopped.append(f"postgres ({state['postgres']})")
    run_dir = home / "run"
    for proc in state["processes"]:
        (run_dir / f"{proc['name']}.pid").unlink(missing_ok=True)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped


def status(home: Path | None = None) -> dict:
    """What runs: each recorded component alive or not, and the api-server's health view."""
    home = home or default_home()
    state = _read_state(home)
    if state is None:
        return {"running": False, "reason": f"no Airflow started from {home} (`lakecart airflow up` starts one)"}
    processes = {p["name"]: _alive(p) for p in state["processes"]}
    try:
        health = _api(f"{state['url']}/api/v2/monitor/health", timeout=5)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        health = {"error": str(exc)}
    running = bool(processes) and all(processes.values()) and "error" not in health
    return {**state, "running": running, "alive": processes, "health": health}


def login_help(state: dict) -> str:
    source = (
        "LAKECART_AIRFLOW_PASSWORD"
        if state.get("password_from_env")
        else f"the file {state['passwords_file']} (JSON, mode 0600)"
    )
    return (
        f"Airflow UI: {state['url']}  (127.0.0.1 only; from another machine: ssh -L {state['url'].rsplit(':', 1)[1]}"
        f":127.0.0.1:{state['url'].rsplit(':', 1)[1]} <this host>)\n"
        f"log in as '{state['user']}' with the password in {source}:\n"
        f"  python -c \"import json; print(json.load(open('{state['passwords_file']}'))['{state['user']}'])\"\n"
        f"REST API: POST {state['url']}/auth/token with that user and password, then "
        f"'Authorization: Bearer <access_token>' on {state['url']}/api/v2/...\n"
        f"AIRFLOW_HOME={state['home']} (metadata: {state['db']}; logs: {state['home']}/logs)"
    )


def _render_status(info: dict) -> str:
    if "processes" not in info:
        return f"Airflow: not running ({info['reason']})"
    lines = [f"Airflow at {info['url']}: {'running' if info['running'] else 'NOT healthy'} (metadata: {info['db']})"]
    for proc in info["processes"]:
        lines.append(f"  {proc['name']:<14} pid {proc['pid']:<8} {'alive' if info['alive'][proc['name']] else 'gone'}")
    health = info["health"]
    if "error" in health:
        lines.append(f"  api-server does not answer: {health['error']}")
    else:
        parts = [f"{name} {v.get('status')}" for name, v in health.items() if isinstance(v, dict)]
        lines.append("  health: " + ", ".join(parts))
    lines.append(f"logs: {info['home']}/logs (components/ holds each component's output)")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "airflow.sh") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Airflow 3 on 127.0.0.1 (scheduler, api-server, ...).")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--db", choices=["sqlite", "postgres"], help="metadata database (LAKECART_AIRFLOW_DB)")
    parser.add_argument("--port", type=int, help="api-server port (LAKECART_AIRFLOW_PORT; default 8080 or a free one)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        return run(args.action, db=args.db, port=args.port, as_json=args.json)
    except AirflowOpsError as exc:
        print(f"{prog} {args.action}: error: {exc}", file=sys.stderr)
        return 1


def run(action: str, db: str | None = None, port: int | None = None, as_json: bool = False, emit=print) -> int:
    """The three actions with their console output (the CLI and infra/airflow/airflow.sh share it);
    ``emit`` writes a result (the CLI's keeps stdout for it under ``--json``)."""
    if action == "up":
        state = up(AirflowConfig.from_env(db=db, port=port))
        if as_json:
            emit(json.dumps(state, indent=2))
        else:
            again = " (already running)" if state.get("already_running") else ""
            emit(f"Airflow up{again}: scheduler, dag-processor, triggerer, api-server (pids in {state['home']}/run)")
            emit(f"DAGs unpaused: {', '.join(UNPAUSED)}; pool lakecart_training (1 slot)")
            emit(login_help(state))
        return 0
    if action == "down":
        stopped = down()
        text = f"stopped {', '.join(stopped)}" if stopped else "Airflow: nothing was running"
        emit(json.dumps(stopped) if as_json else text)
        return 0
    info = status()
    emit(json.dumps(info, indent=2) if as_json else _render_status(info))
    return 0 if info["running"] else 3  # LSB: 3 = not running


if __name__ == "__main__":
    sys.exit(main())
