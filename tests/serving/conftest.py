"""Online store fixtures: a Redis server started by the project's script (infra/redis/redis.sh) on a
free loopback port for the session, and ``online_store``: the same tests on both stores."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

REDIS_SH = Path(__file__).resolve().parents[2] / "infra" / "redis" / "redis.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """``redis://127.0.0.1:<port>/0`` of a server the script started; stopped after the session."""
    env = {**os.environ, "REDIS_DIR": str(tmp_path_factory.mktemp("redis")), "REDIS_PORT": str(_free_port())}
    up = subprocess.run([str(REDIS_SH), "up"], env=env, capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        if shutil.which("redis-server") is None:
            pytest.skip(f"redis-server is not installed and could not be: {up.stderr.strip()}")
        raise RuntimeError(f"infra/redis/redis.sh up failed: {up.stderr}")
    yield up.stdout.strip()
    subprocess.run([str(REDIS_SH), "down"], env=env, check=True, capture_output=True, timeout=60)


@pytest.fixture(params=["lmdb", "redis"])
def online_store(request, tmp_path):
    """A fresh, empty online store of each kind (Redis: a key prefix of its own on the session's server)."""
    from lakecart.serving.online import LmdbStore, RedisStore

    if request.param == "lmdb":
        store = LmdbStore(tmp_path / "online", map_size=1 << 16)  # small: the tests make it grow
    else:
        store = RedisStore(request.getfixturevalue("redis_url"), prefix=f"test-{uuid.uuid4().hex[:8]}:")
    yield store
    store.close()
