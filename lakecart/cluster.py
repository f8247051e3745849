"""A Spark standalone cluster on this machine: one master and N workers, all on 127.0.0.1.

``up`` starts them from the installed pyspark distribution (``SPARK_HOME`` is the pyspark package
folder; pip's pyspark ships ``bin/spark-class``, not ``sbin/start-master.sh``), ``down`` stops
exactly the processes ``up`` started (their ids are in the state folder), ``status`` reads the
master's ``/json/`` endpoint. ``infra/spark/cluster.sh`` is the command line; jobs use the cluster
with ``LAKECART_CONFIG=infra/config/spark-standalone-local.yaml`` (or
``LAKECART_SPARK__MASTER=spark://127.0.0.1:7077``).

Settings are Spark's own ``spark-env.sh`` variable names (``LAKECART_*`` names are settings):
``SPARK_MASTER_PORT`` (7077), ``SPARK_MASTER_WEBUI_PORT`` (8080), ``SPARK_WORKER_WEBUI_PORT``
(8081: worker n gets 8081 + n), ``SPARK_WORKER_INSTANCES`` (2), ``SPARK_WORKER_CORES`` (1),
``SPARK_WORKER_MEMORY`` (2g), ``SPARK_DAEMON_MEMORY`` (512m, the master's and workers' own heap);
``SPARK_CLUSTER_DIR`` is the state folder (default ``.spark-cluster`` in the checkout): PIDs,
logs, the workers' work folders (executor logs).

Executors run this environment's Python and have Delta's jars on their class path
(``SPARK_DIST_CLASSPATH`` of the workers, which the executors they launch inherit).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lakecart.errors import LakecartError

HOST = "127.0.0.1"
STATE_FILE = "cluster.json"
PROFILE = "infra/config/spark-standalone-local.yaml"
# A cold JVM on a busy two-core machine takes a while; a worker registers a few seconds after.
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


class ClusterError(LakecartError, RuntimeError):
    """A cluster command could not do what it was asked; the message says why and what to do."""


def _repo_root() -> Path:
    import lakecart

    root = Path(lakecart.__file__).resolve().parents[1]
    return root if (root / "setup.py").is_file() else Path.cwd()


def spark_home() -> Path:
    """The pyspark package folder: pip's Spark distribution (``bin/spark-class``, ``jars/``)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ClusterError(f"pyspark is not installed in {sys.prefix}; run this with the pipeline environment's Python")
    return Path(spec.origin).parent


def delta_jars() -> list[Path]:
    from lakecart.spark import bundled_jars_dir

    folder = bundled_jars_dir()
    return sorted(folder.glob("*.jar")) if folder.is_dir() else []


def _int_env(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ClusterError(f"{name}={text!r} is not a port or count; set a whole number or unset it") from None
    if value < 0:
        raise ClusterError(f"{name}={text!r} must not be negative")
    return value


@dataclass(frozen=True)
class ClusterConfig:
    master_port: int = 7077
    master_webui_port: int = 8080
    worker_webui_port: int = 8081  # worker n (0-based) serves its UI on this + n
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "2g"
    daemon_memory: str = "512m"
    state_dir: Path = field(default_factory=lambda: _repo_root() / ".spark-cluster")

    @classmethod
    def from_env(cls) -> ClusterConfig:
        d = cls()
        return cls(
            master_port=_int_env("SPARK_MASTER_PORT", d.master_port),
            master_webui_port=_int_env("SPARK_MASTER_WEBUI_PORT", d.master_webui_port),
            worker_webui_port=_int_env("SPARK_WORKER_WEBUI_PORT", d.worker_webui_port),
            workers=_int_env("SPARK_WORKER_INSTANCES", d.workers),
            worker_cores=_int_env("SPARK_WORKER_CORES", d.worker_cores),
            worker_memory=os.environ.get("SPARK_WORKER_MEMORY") or d.worker_memory,
            daemon_memory=os.environ.get("SPARK_DAEMON_MEMORY") or d.daemon_memory,
            state_dir=Path(os.environ["SPARK_CLUSTER_DIR"]) if os.environ.get("SPARK_CLUSTER_DIR") else d.state_dir,
        )

    @classmethod
    def on_free_ports(cls, state_dir: Path, **changes) -> ClusterConfig:
        """A cluster on loopback ports free now, with its own state folder: one that never meets a
        cluster someone else started (tests, benchmarks)."""
        workers = changes.get("workers", cls.workers)
        for _ in range(50):
            master, master_ui, worker_ui = free_port(), free_port(), free_port()
            wanted = {master, master_ui, *range(worker_ui, worker_ui + workers)}
            if len(wanted) == 2 + workers and all(port_is_free(worker_ui + n) for n in range(1, workers)):
                return cls(
                    master_port=master,
                    master_webui_port=master_ui,
                    worker_webui_port=worker_ui,
                    state_dir=Path(state_dir),
                    **changes,
                )
        raise ClusterError("found no free loopback ports for a cluster")

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_webui(self) -> str:
        return f"http://{HOST}:{self.master_webui_port}"

    def ports(self) -> dict[str, int]:
        ports = {"master (SPARK_MASTER_PORT)": self.master_port}
        ports["master web UI (SPARK_MASTER_WEBUI_PORT)"] = self.master_webui_port
        for n in range(self.workers):
            ports[f"worker {n + 1} web UI (SPARK_WORKER_WEBUI_PORT + {n})"] = self.worker_webui_port + n
        return ports


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now (loopback only: nothing is opened elsewhere).
    SO_REUSEADDR as Spark's own servers set it: a closed connection lingering in TIME_WAIT does not
    count as taken, a listening socket (on this address or on all of them) does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = HOST) -> int:
    """A port the kernel has free on loopback now (tests use it to keep clear of a running cluster)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- processes -------------------------------------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when it is gone: with the id it
    names one process, so ``down`` never signals an unrelated process that reused a recorded id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(proc: dict) -> bool:
    ticks = _start_ticks(proc["pid"])
    if ticks is None or ticks != proc["start_ticks"]:
        return False
    state = Path(f"/proc/{proc['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _read_state(cfg: ClusterConfig) -> dict | None:
    path = cfg.state_dir / STATE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _write_state(cfg: ClusterConfig, state: dict) -> None:
    path = cfg.state_dir / STATE_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(path)


def _daemon_env(cfg: ClusterConfig, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_") and not k.startswith("PYSPARK_")}
    conf_dir = cfg.state_dir / "conf"  # empty: no spark-env.sh or defaults from elsewhere
    conf_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        SPARK_HOME=str(home),
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_LOCAL_IP=HOST,
        SPARK_DAEMON_MEMORY=cfg.daemon_memory,
        # Executors (launched by the workers with the workers' environment) run this Python and find
        # Delta on their class path; a driver still ships the jars with spark.jars (lakecart/spark.py).
        PYSPARK_PYTHON=sys.executable,
        SPARK_DIST_CLASSPATH=os.pathsep.join(str(j) for j in delta_jars()),
        # Jobs and executors run in UTC, like local sessions (lakecart/spark.py).
        TZ="UTC",
    )
    return env


def _spawn(name: str, args: list[str], cfg: ClusterConfig, env: dict[str, str], home: Path) -> dict:
    log = cfg.state_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # Its own session and process group: ``down`` signals the group (the daemon and whatever it
        # launched: executors, their Python workers), nothing else.
        proc = subprocess.Popen(
            [str(home / "bin" / "spark-class"), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cfg.state_dir,
            start_new_session=True,
        )
    ticks = _start_ticks(proc.pid)
    return {"name": name, "pid": proc.pid, "start_ticks": ticks, "log": str(log)}


def _master_json(cfg_or_url: ClusterConfig | str, timeout: float = 2.0) -> dict:
    base = cfg_or_url.master_webui if isinstance(cfg_or_url, ClusterConfig) else cfg_or_url
    with urllib.request.urlopen(f"{base}/json/", timeout=timeout) as response:
        return json.loads(response.read())


def _log_tail(proc: dict, lines: int = 15) -> str:
    try:
        text = Path(proc["log"]).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _wait_for(what: str, check, procs: list[dict], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if not _alive(proc):
                tail = _log_tail(proc)
                raise ClusterError(f"{proc['name']} exited while waiting for {what}; {proc['log']} ends:\n{tail}")
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            names = ", ".join(p["log"] for p in procs)
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}; see {names}")
        time.sleep(0.5)


def _reap(pids: list[int]) -> None:
    """Collect the exit status of those of ``pids`` that are this process's children (``up`` and
    ``down`` in one process, as in the tests), so that they do not linger as zombies."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _stop(procs: list[dict], timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """SIGTERM to each recorded process group still alive, SIGKILL to what is left after ``timeout``."""
    stopped = []
    live = [p for p in procs if _alive(p)]
    for proc in live:
        try:
            os.killpg(proc["pid"], signal.SIGTERM)  # the group leader is the recorded process itself
        except ProcessLookupError:
            continue
        stopped.append(f"{proc['name']} (pid {proc['pid']})")
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        live = [p for p in live if _alive(p)]
        time.sleep(0.2)
    for proc in live:
        try:
            os.killpg(proc["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Executors and Python workers a daemon launched are in its group; let the group empty too.
    deadline = time.monotonic() + 5
    groups = [p["pid"] for p in procs]
    while time.monotonic() < deadline:
        _reap(groups)
        remaining = []
        for pgid in groups:
            try:
                os.killpg(pgid, 0)
                remaining.append(pgid)
            except (ProcessLookupError, PermissionError):
                pass
        if not remaining:
            break
        time.sleep(0.2)
    else:
        for pgid in remaining:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return stopped


# --- the three commands ----------------------------------------------------------------------------


def up(cfg: ClusterConfig | None = None, timeout: float = START_TIMEOUT_S) -> dict:
    """Start the master and the workers; return the state (master URL, processes, logs). A cluster
    this state folder already runs is left as it is; a port in use is refused before anything starts."""
    cfg = cfg or ClusterConfig.from_env()
    if cfg.workers < 1:
        raise ClusterError("SPARK_WORKER_INSTANCES must be at least 1")
    state = _read_state(cfg)
    if state is not None:
        procs = [state["master"], *state["workers"]]
        if all(_alive(p) for p in procs):
            return {**state, "already_running": True}
        _stop(procs)  # a partial cluster (a worker died, the machine slept): start over cleanly
        (cfg.state_dir / STATE_FILE).unlink(missing_ok=True)
    if len(set(cfg.ports().values())) < len(cfg.ports()):
        raise ClusterError(f"ports overlap: {cfg.ports()}; give each its own port")
    taken = {name: port for name, port in cfg.ports().items() if not port_is_free(port)}
    if taken:
        listing = ", ".join(f"{name} {port}" for name, port in taken.items())
        raise ClusterError(
            f"port in use on {HOST}: {listing}; stop what listens there (`infra/spark/cluster.sh status` "
            "if it is a cluster of another checkout) or choose other ports with those variables"
        )
    home = spark_home()
    if not (home / "bin" / "spark-class").is_file():
        raise ClusterError(f"{home}/bin/spark-class is missing; reinstall pyspark in {sys.prefix}")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    env = _daemon_env(cfg, home)
    master = _spawn(
        "master",
        [
            "org.apache.spark.deploy.master.Master",
            "--host",
            HOST,
            "--port",
            str(cfg.master_port),
            "--webui-port",
            str(cfg.master_webui_port),
        ],
        cfg,
        env,
        home,
    )
    state = {
        "master_url": cfg.master_url,
        "master_webui": cfg.master_webui,
        "spark_home": str(home),
        "python": sys.executable,
        "state_dir": str(cfg.state_dir),
        "master": master,
        "workers": [],
        "config": {k: str(v) for k, v in asdict(cfg).items()},
    }
    _write_state(cfg, state)  # recorded at once: `down` stops a half-started cluster too
    try:
        _wait_for("the master", lambda: _master_json(cfg).get("url") == cfg.master_url, [master], timeout)
        for n in range(cfg.workers):
            work = cfg.state_dir / f"work-{n + 1}"  # executors' folders and logs (not SPARK_HOME/work)
            work.mkdir(exist_ok=True)
            worker = _spawn(
                f"worker-{n + 1}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    HOST,
                    "--webui-port",
                    str(cfg.worker_webui_port + n),
                    "-c",
                    str(cfg.worker_cores),
                    "-m",
                    cfg.worker_memory,
                    "--work-dir",
                    str(work),
                    cfg.master_url,
                ],
                cfg,
                env,
                home,
            )
            state["workers"].append(worker)
            _write_state(cfg, state)
        alive = lambda: sum(w.get("state") == "ALIVE" for w in _master_json(cfg).get("workers", [])) >= cfg.workers  # noqa: E731
        _wait_for(f"{cfg.workers} workers to register", alive, [master, *state["workers"]], timeout)
    except BaseException:
        _stop([master, *state["workers"]])
        (cfg.state_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return state


def down(cfg: ClusterConfig | None = None) -> list[str]:
    """Stop the processes ``up`` recorded (and what they launched); return what was stopped."""
    cfg = cfg or ClusterConfig.from_env()
    state = _read_state(cfg)
    if state is None:
        return []
    # Workers first: the master would otherwise log each one as lost.
    stopped = _stop(list(state["workers"])) + _stop([state["master"]])
    (cfg.state_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped


def status(cfg: ClusterConfig | None = None) -> dict:
    """What runs: ``running`` False when this state folder has no live master; otherwise the
    master's view (``/json/``): its URL and state, each worker with its state, cores and memory,
    and the running applications."""
    cfg = cfg or ClusterConfig.from_env()
    state = _read_state(cfg)
    if state is None:
        return {"running": False, "reason": f"no cluster started from {cfg.state_dir} (`up` starts one)"}
    processes = {p["name"]: _alive(p) for p in [state["master"], *state["workers"]]}
    if not processes["master"]:
        return {"running": False, "reason": "the recorded master is not running (`down` clears the state)", **state}
    try:
        view = _master_json(state["master_webui"])
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return {"running": False, "reason": f"the master does not answer on {state['master_webui']}: {exc}"}
    workers = [
        {
            "id": w["id"],
            "address": f"{w['host']}:{w['port']}",
            "webui": w.get("webuiaddress"),
            "state": w["state"],
            "cores": w["cores"],
            "cores_used": w["coresused"],
            "memory_mb": w["memory"],
            "memory_used_mb": w["memoryused"],
        }
        for w in sorted(view.get("workers", []), key=lambda w: w.get("webuiaddress", ""))
    ]
    apps = [
        {"id": a["id"], "name": a["name"], "state": a["state"], "cores": a.get("cores")}
        for a in view.get("activeapps", [])
    ]
    return {
        "running": True,
        "master_url": view.get("url"),
        "master_state": view.get("status"),
        "master_webui": state["master_webui"],
        "workers": workers,
        "alive_workers": sum(w["state"] == "ALIVE" for w in workers),
        "active_apps": apps,
        "completed_apps": [a["name"] for a in view.get("completedapps", [])],
        "processes": processes,
        "logs": str(cfg.state_dir / "logs"),
    }


def _render_status(info: dict) -> str:
    if not info["running"]:
        return f"Spark cluster: not running ({info['reason']})"
    lines = [
        f"Spark cluster: master {info['master_url']} {info['master_state']}, web UI {info['master_webui']}",
        f"workers: {info['alive_workers']} alive of {len(info['workers'])} registered",
    ]
    for w in info["workers"]:
        lines.append(
            f"  {w['id']} {w['state']} cores {w['cores_used']}/{w['cores']} "
            f"memory {w['memory_used_mb']}/{w['memory_mb']} MB, UI {w['webui']}"
        )
    lines.append(f"applications running: {len(info['active_apps'])}")
    for a in info["active_apps"]:
        lines.append(f"  {a['id']} {a['name']} {a['state']} cores {a['cores']}")
    lines.append(f"logs: {info['logs']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cluster.sh", description="A local Spark standalone cluster (master + workers on 127.0.0.1)."
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            state = up()
            if args.json:
                print(json.dumps(state, indent=2))
            else:
                again = " (already running)" if state.get("already_running") else ""
                print(f"Spark cluster up{again}: {state['master_url']}, web UI {state['master_webui']}")
                print(f"{len(state['workers'])} workers; logs in {state['state_dir']}/logs")
                print(f"jobs: LAKECART_SPARK__MASTER={state['master_url']} or LAKECART_CONFIG={PROFILE}")
            return 0
        if args.command == "down":
            stopped = down()
            if args.json:
                print(json.dumps(stopped))
            else:
                print(f"stopped {', '.join(stopped)}" if stopped else "Spark cluster: nothing was running")
            return 0
        info = status()
        print(json.dumps(info, indent=2) if args.json else _render_status(info))
        return 0 if info["running"] else 3  # LSB: 3 = not running
    except ClusterError as exc:
        print(f"cluster.sh {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
