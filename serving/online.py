"""The online stores: key -> pre-assembled row, per namespace, written whole and atomically.

A namespace (``features:user``, ``recommendations``, ``churn`` ...) holds one version at a time:
``write`` puts every row under a new version id, then flips the namespace's pointer to it in one
transaction, so a reader sees either the old rows or the new ones, never a mix. Each version keeps
its ``meta`` (the offline Delta versions it was read from, created_at, the row count).

- ``LmdbStore`` (the default, embedded, no server): one LMDB environment, keys
  ``d/<namespace>/<version>/<key>``, the pointer ``p/<namespace>``, the meta ``m/<namespace>/<version>``.
  A read is one read transaction (an MVCC snapshot: the pointer and every key of the batch from the
  same version, while a writer carries on); the flip, and the deletion of the version it replaces,
  is one write transaction, which fails (the other write wins) when the pointer moved since the
  write began. The map grows (doubles) when a write fills it.
- ``RedisStore``: a hash per version (``lakecart:<namespace>:v:<version>``), the pointer
  ``lakecart:<namespace>:current``. A read is one round trip: a server-side script reads the pointer
  and ``HMGET``s the batch atomically. The flip is a ``MULTI`` guarded by ``WATCH`` on the pointer (two
  concurrent materialisations: the second fails instead of interleaving). The previous version is
  kept until the next write finishes; the one before it is deleted.

Values are compact JSON (stdlib ``json``; readable from any language, see docs/serving.md).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Protocol

from lakecart.config import Settings
from lakecart.errors import ConfigError, LakecartError

# Rows written per LMDB write transaction / Redis HSET while a version is filled.
WRITE_CHUNK = 5_000
LMDB_INITIAL_MAP_SIZE = 1 << 30  # address space, not disk (the file grows as used); doubles when full


class OnlineStoreError(LakecartError, RuntimeError):
    """The online store is unreachable, or a write lost a race with another materialisation."""


class OnlineStore(Protocol):
    def write(self, namespace: str, rows: Mapping[str, dict], meta: dict) -> str:
        """Atomically replace the whole ``namespace`` with ``rows`` (key -> JSON-able dict) and its
        ``meta``; returns the new version id."""
        ...

    def get(self, namespace: str, keys: Sequence[str]) -> list[dict | None]:
        """The rows of ``keys`` in the live version (None: no such key, or the namespace was never
        written), in one round trip and from one version."""
        ...

    def meta(self, namespace: str) -> dict | None:
        """The live version's meta (with ``version``); None if the namespace was never written."""
        ...

    def namespaces(self) -> list[str]:
        """Every namespace with a live version, sorted."""
        ...

    def close(self) -> None: ...


def new_version() -> str:
    """A version id that sorts by creation time: ``20261201T195500123456-1a2b``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(2)}"


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _check_namespace(namespace: str) -> None:
    if not namespace or "/" in namespace or any(c.isspace() for c in namespace):
        raise ValueError(f"a namespace is a non-empty name without '/' or spaces, got {namespace!r}")


def _full_meta(meta: dict, version: str, rows: int) -> dict:
    return {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), **meta, "version": version, "rows": rows}


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(islice(items, size)):
        yield chunk


# LMDB allows one environment per folder and process: stores opened on the same folder share it
# (folder -> [environment, its resize lock, open stores]).
_ENVIRONMENTS: dict[str, list] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


class LmdbStore:
    """The embedded store (module docstring). Safe to share between threads; several processes may
    open the same folder (one writer at a time, any number of readers), and so may several stores in
    one process (they share the environment; ``map_size`` is the first one's)."""

    def __init__(self, path: str | os.PathLike, map_size: int = LMDB_INITIAL_MAP_SIZE) -> None:
        import lmdb

        self._lmdb = lmdb
        self.path = str(path)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self._folder = str(Path(self.path).resolve())
        with _ENVIRONMENTS_LOCK:
            shared = _ENVIRONMENTS.get(self._folder)
            if shared is None:
                # readahead off: lookups are random, reading ahead only evicts useful pages.
                env = lmdb.open(self.path, map_size=map_size, max_dbs=0, readahead=False, max_readers=1024)
                # Growing the map needs every transaction of this process closed: reads take the lock
                # too (uncontended, well under a microsecond).
                shared = _ENVIRONMENTS[self._folder] = [env, threading.Lock(), 0]
            shared[2] += 1
        self._env, self._resize = shared[0], shared[1]
        self._closed = False

    # --- reads --------------------------------------------------------------------------------
    def _read(self, fn):
        with self._resize:
            try:
                with self._env.begin(buffers=True) as txn:
                    return fn(txn)
            except self._lmdb.MapResizedError:  # another process grew the map: adopt its size
                self._env.set_mapsize(0)
                with self._env.begin(buffers=True) as txn:
                    return fn(txn)

    def get(self, namespace: str, keys: Sequence[str]) -> list[dict | None]:
        def read(txn) -> list[dict | None]:
            version = txn.get(b"p/" + namespace.encode())
            if version is None:
                return [None] * len(keys)
            prefix = b"d/" + namespace.encode() + b"/" + bytes(version) + b"/"
            out = []
            for key in keys:
                value = txn.get(prefix + key.encode())
                out.append(None if value is None else json.loads(bytes(value)))
            return out

        return self._read(read)

    def meta(self, namespace: str) -> dict | None:
        def read(txn) -> dict | None:
            version = txn.get(b"p/" + namespace.encode())
            if version is None:
                return None
            return json.loads(bytes(txn.get(b"m/" + namespace.encode() + b"/" + bytes(version))))

        return self._read(read)

    def namespaces(self) -> list[str]:
        def read(txn) -> list[str]:
            cursor = txn.cursor()
            names = []
            if cursor.set_range(b"p/"):
                for key in cursor.iternext(keys=True, values=False):
                    key = bytes(key)
                    if not key.startswith(b"p/"):
                        break
                    names.append(key[2:].decode())
            return names

        return self._read(read)

    # --- writes -------------------------------------------------------------------------------
    def _write_txn(self, fn) -> None:
        """Run ``fn(txn)`` in one write transaction; when the map is full, double it and run it again."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    fn(txn)
                return
            except self._lmdb.MapFullError:
                with self._resize:  # no read transaction of this process may be open meanwhile
                    self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def write(self, namespace: str, rows: Mapping[str, dict], meta: dict) -> str:
        _check_namespace(namespace)
        ns = namespace.encode()
        version = new_version()
        prefix = b"d/" + ns + b"/" + version.encode() + b"/"
        previous = self._read(lambda txn: self._live(txn, ns))
        for chunk in _chunks(iter(rows.items()), WRITE_CHUNK):
            items = [(prefix + str(k).encode(), _dumps(v)) for k, v in chunk]
            self._write_txn(lambda txn, items=items: txn.cursor().putmulti(items, overwrite=True))
        full = _full_meta(meta, version, len(rows))
        lost = []

        def flip(txn) -> None:
            if self._live(txn, ns) != previous:  # another materialisation flipped first: it wins
                lost.append(True)
                self._drop_prefix(txn, prefix)
                return
            txn.put(b"m/" + ns + b"/" + version.encode(), _dumps(full))
            txn.put(b"p/" + ns, version.encode())
            # Readers hold snapshots: the replaced version (and any interrupted write's leftovers)
            # can go in the same transaction.
            self._drop_versions(txn, ns, keep=version.encode())

        self._write_txn(flip)
        if lost:
            raise OnlineStoreError(
                f"another materialisation of {namespace} finished first; this one was discarded: run it again"
            )
        return version

    @staticmethod
    def _live(txn, ns: bytes) -> bytes | None:
        version = txn.get(b"p/" + ns)
        return None if version is None else bytes(version)

    @staticmethod
    def _drop_prefix(txn, start: bytes) -> None:
        cursor = txn.cursor()
        found = cursor.set_range(start)
        while found and bytes(cursor.key()).startswith(start):
            found = cursor.delete()  # moves to the next key

    @staticmethod
    def _drop_versions(txn, ns: bytes, keep: bytes | None) -> None:
        """Delete the rows and meta of every version of ``ns`` but ``keep``."""
        for kind in (b"d/", b"m/"):
            start = kind + ns + b"/"
            kept = None if keep is None else start + keep
            cursor = txn.cursor()
            found = cursor.set_range(start)
            while found:
                key = bytes(cursor.key())
                if not key.startswith(start):
                    break
                if kept is not None and (key == kept or key.startswith(kept + b"/")):
                    found = cursor.set_range(kept + b"0")  # past every key of the kept version ('/' < '0')
                    continue
                found = cursor.delete()  # moves to the next key

    def close(self) -> None:
        with _ENVIRONMENTS_LOCK:
            if self._closed:
                return
            self._closed = True
            shared = _ENVIRONMENTS[self._folder]
            shared[2] -= 1
            if shared[2] == 0:
                del _ENVIRONMENTS[self._folder]
                self._env.close()


# Reads the pointer and HMGETs the batch from the version it names, atomically, in one round trip.
_REDIS_GET = """
local version = redis.call('GET', KEYS[1])
if not version then return false end
return redis.call('HMGET', KEYS[2] .. version, unpack(ARGV))
"""
_REDIS_META = """
local version = redis.call('GET', KEYS[1])
if not version then return false end
return redis.call('GET', KEYS[2] .. version)
"""


class RedisStore:
    """The Redis store (module docstring). Keys start with ``prefix`` (default ``lakecart:``)."""

    def __init__(self, url: str, prefix: str = "lakecart:") -> None:
        import redis

        self._redis_module = redis
        self.url, self.prefix = url, prefix
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5)
        try:
            self._client.ping()
        except redis.exceptions.ConnectionError as exc:
            raise OnlineStoreError(
                f"no Redis server at {url} ({exc}): start one with `infra/redis/redis.sh up` and set "
                "LAKECART_SERVING__REDIS_URL, or use the embedded store (LAKECART_SERVING__ONLINE_STORE=lmdb)"
            ) from None
        self._get = self._client.register_script(_REDIS_GET)
        self._meta = self._client.register_script(_REDIS_META)

    def _key(self, namespace: str, part: str) -> str:
        return f"{self.prefix}{namespace}:{part}"

    def get(self, namespace: str, keys: Sequence[str]) -> list[dict | None]:
        if not keys:
            return []
        values = self._get(keys=[self._key(namespace, "current"), self._key(namespace, "v:")], args=list(keys))
        if not values:
            return [None] * len(keys)
        return [None if v is None else json.loads(v) for v in values]

    def meta(self, namespace: str) -> dict | None:
        value = self._meta(keys=[self._key(namespace, "current"), self._key(namespace, "meta:")])
        return json.loads(value) if value else None

    def namespaces(self) -> list[str]:
        return sorted(n.decode() for n in self._client.smembers(f"{self.prefix}namespaces"))

    def write(self, namespace: str, rows: Mapping[str, dict], meta: dict) -> str:
        _check_namespace(namespace)
        redis = self._redis_module
        current, versions = self._key(namespace, "current"), self._key(namespace, "versions")
        version = new_version()
        data = self._key(namespace, f"v:{version}")
        with self._client.pipeline(transaction=True) as pipe:
            pipe.watch(current)  # a concurrent write that flips first makes our MULTI fail
            previous = pipe.get(current)
            previous = previous.decode() if previous else None
            pipe.sadd(versions, version)  # registered before any row, so an interrupted write is cleaned up
            for chunk in _chunks(iter(rows.items()), WRITE_CHUNK):
                self._client.hset(data, mapping={str(k): _dumps(v) for k, v in chunk})
            pipe.multi()
            pipe.set(self._key(namespace, f"meta:{version}"), _dumps(_full_meta(meta, version, len(rows))))
            pipe.set(current, version)
            pipe.sadd(f"{self.prefix}namespaces", namespace)
            try:
                pipe.execute()
            except redis.exceptions.WatchError:
                self._client.delete(data)
                self._client.srem(versions, version)
                raise OnlineStoreError(
                    f"another materialisation of {namespace} finished first; this one was discarded: run it again"
                ) from None
        # Keep the live and the previous version (a reader holding the old pointer still finds its
        # rows); delete the ones before it, interrupted writes' leftovers included. Ids sort by
        # creation time: a write that began after this one flipped has a newer id and is left alone.
        if previous is None:
            return version
        for old in [v.decode() for v in self._client.smembers(versions) if v.decode() < previous]:
            self._client.delete(self._key(namespace, f"v:{old}"), self._key(namespace, f"meta:{old}"))
            self._client.srem(versions, old)
        return version

    def close(self) -> None:
        self._client.close()


def lmdb_path(settings: Settings) -> str:
    """``serving.lmdb_path``, else ``<lake root>/online`` (a local lake root)."""
    if settings.serving.lmdb_path:
        return settings.serving.lmdb_path
    root = settings.lake.root.removeprefix("file://")
    if "://" in root:
        raise ConfigError(
            f"the embedded online store needs a local folder and the lake root is {settings.lake.root}: "
            "set LAKECART_SERVING__LMDB_PATH"
        )
    return str(Path(root) / "online")


def open_store(settings: Settings, kind: str | None = None) -> OnlineStore:
    """The configured online store (``serving.online_store``; ``kind`` overrides it)."""
    kind = kind or settings.serving.online_store
    if kind == "lmdb":
        return LmdbStore(lmdb_path(settings))
    if kind == "redis":
        return RedisStore(settings.serving.redis_url)
    raise ConfigError(f"unknown online store {kind!r}: lmdb or redis")
