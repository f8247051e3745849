"""A local S3-compatible server for development and the ``s3`` test tier: moto's S3 API server on
127.0.0.1, started and stopped like the Spark cluster (``infra/s3/s3.sh up|down|status``).

``up`` creates the lake's bucket and writes ``env`` in its state folder (mode 600): the variables a
shell sources to run the pipeline on it (endpoint, credentials, ``LAKECART_LAKE__ROOT=s3a://<bucket>``).
Credentials are taken from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` when both are set, else
generated; they are never written anywhere else. moto keeps objects in memory: ``down`` drops them.

Settings (environment): ``S3_DEV_PORT`` (9900), ``S3_DEV_BUCKET`` (lake), ``S3_DEV_DIR`` (data/s3:
state, log, env file; git-ignored).
"""

from __future__ import annotations

import argparse
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

from lakecart.cluster import _alive, _start_ticks, _stop, port_is_free
from lakecart.errors import LakecartError

HOST = "127.0.0.1"
STATE_FILE = "server.json"
ENV_FILE = "env"
START_TIMEOUT_S = 60.0


class S3ServerError(LakecartError, RuntimeError):
    """The local S3 server could not be started or reached."""


@dataclass(frozen=True)
class ServerConfig:
    state_dir: Path
    port: int = 9900
    bucket: str = "lake"

    @classmethod
    def from_env(cls) -> ServerConfig:
        port = os.environ.get("S3_DEV_PORT", "9900")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise S3ServerError(f"S3_DEV_PORT={port} is not a port number")
        return cls(
            state_dir=Path(os.environ.get("S3_DEV_DIR", "data/s3")).resolve(),
            port=int(port),
            bucket=os.environ.get("S3_DEV_BUCKET", "lake"),
        )

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"


def _read_state(cfg: ServerConfig) -> dict | None:
    path = cfg.state_dir / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _responds(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an S3 error document is an answer
    except OSError:
        return False


def server_env(state: dict) -> dict[str, str]:
    """The variables that point the pipeline and every reader at the server's bucket."""
    return {
        "AWS_ENDPOINT_URL": state["endpoint"],
        "AWS_ACCESS_KEY_ID": state["access_key"],
        "AWS_SECRET_ACCESS_KEY": state["secret_key"],
        "AWS_REGION": "us-east-1",
        # For delta-rs readers that do not go through lakecart.storage (they read AWS_* themselves).
        "AWS_ALLOW_HTTP": "true",
        "LAKECART_LAKE__ROOT": f"s3a://{state['bucket']}",
    }


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(path)


def _create_bucket(state: dict) -> None:
    import boto3  # moto's own dependency: there whenever the server is

    client = boto3.client(
        "s3",
        endpoint_url=state["endpoint"],
        aws_access_key_id=state["access_key"],
        aws_secret_access_key=state["secret_key"],
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if state["bucket"] not in existing:
        client.create_bucket(Bucket=state["bucket"])


def up(cfg: ServerConfig | None = None, timeout: float = START_TIMEOUT_S) -> dict:
    """Start the server (a no-op when it runs), create the bucket, write the env file; the state."""
    cfg = cfg or ServerConfig.from_env()
    state = _read_state(cfg)
    if state and _alive(state["proc"]):
        return {**state, "already_running": True}
    if not port_is_free(cfg.port):
        raise S3ServerError(f"port {cfg.port} on {HOST} is taken; set S3_DEV_PORT to a free one")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    given = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    access_key, secret_key = given if all(given) else ("dev" + secrets.token_hex(8), secrets.token_hex(20))
    log = cfg.state_dir / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(cfg.port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.state_dir,
            start_new_session=True,  # its own group: ``down`` signals it and nothing else
        )
    record = {"name": "moto-s3", "pid": proc.pid, "start_ticks": _start_ticks(proc.pid), "log": str(log)}
    state = {
        "proc": record,
        "endpoint": cfg.endpoint,
        "bucket": cfg.bucket,
        "access_key": access_key,
        "secret_key": secret_key,
        "state_dir": str(cfg.state_dir),
    }
    deadline = time.monotonic() + timeout
    while not _responds(cfg.endpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop([record])
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-10:])
            raise S3ServerError(f"the S3 server did not start on {cfg.endpoint}; its log ({log}):\n{tail}")
        time.sleep(0.2)
    _create_bucket(state)
    _write_private(cfg.state_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    _write_private(cfg.state_dir / ENV_FILE, "".join(f"export {k}={v}\n" for k, v in server_env(state).items()))
    return state


def down(cfg: ServerConfig | None = None) -> list[str]:
    """Stop the server ``up`` started (its objects go with it); remove its state and env file."""
    cfg = cfg or ServerConfig.from_env()
    state = _read_state(cfg)
    stopped = _stop([state["proc"]]) if state else []
    for name in (STATE_FILE, ENV_FILE):
        (cfg.state_dir / name).unlink(missing_ok=True)
    return stopped


def status(cfg: ServerConfig | None = None) -> dict:
    """Whether the server runs and answers, where, and which bucket (never the credentials)."""
    cfg = cfg or ServerConfig.from_env()
    state = _read_state(cfg)
    running = bool(state) and _alive(state["proc"])
    info = {"running": running, "endpoint": cfg.endpoint, "bucket": cfg.bucket, "state_dir": str(cfg.state_dir)}
    if running:
        info |= {"pid": state["proc"]["pid"], "responds": _responds(state["endpoint"])}
        info["env_file"] = str(cfg.state_dir / ENV_FILE)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3.sh", description="A local S3-compatible server (moto) on 127.0.0.1.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no credentials)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            state = up()
            public = {k: v for k, v in state.items() if k not in ("access_key", "secret_key")}
            if args.json:
                print(json.dumps(public, indent=2))
            else:
                again = " (already running)" if state.get("already_running") else ""
                print(f"S3 server up{again}: {state['endpoint']}, bucket s3a://{state['bucket']}")
                print(f"use it: source {Path(state['state_dir']) / ENV_FILE}")
            return 0
        if args.command == "down":
            stopped = down()
            done = f"stopped {', '.join(stopped)}" if stopped else "S3 server: nothing was running"
            print(json.dumps(stopped) if args.json else done)
            return 0
        info = status()
        if args.json:
            print(json.dumps(info, indent=2))
        elif info["running"]:
            print(f"S3 server running: {info['endpoint']} (pid {info['pid']}), bucket s3a://{info['bucket']}")
        else:
            print(f"S3 server not running ({info['state_dir']})")
        return 0 if info["running"] else 3  # LSB: 3 = not running
    except S3ServerError as exc:
        print(f"s3.sh {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
