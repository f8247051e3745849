"""The online stores, the same tests on LMDB and Redis (``online_store`` in conftest.py): writes and
batch reads, missing keys, a whole-namespace replace that readers never see half of, meta, and a
write that loses a race with another materialisation."""

from __future__ import annotations

import threading

import pytest

from lakecart.serving import online
from lakecart.serving.online import OnlineStoreError


def test_write_then_read_in_order_with_missing_keys(online_store):
    rows = {"u1": {"a": 1, "b": [1.5, "x"]}, "u2": {"a": None}, "u,3": {"a": 3}}
    version = online_store.write("features:user", rows, {"tables": {"features.x": 4}})
    got = online_store.get("features:user", ["u2", "nope", "u1", "u,3", "u1"])
    assert got == [{"a": None}, None, {"a": 1, "b": [1.5, "x"]}, {"a": 3}, {"a": 1, "b": [1.5, "x"]}]
    assert online_store.get("features:user", []) == []
    assert online_store.get("never-written", ["u1", "u2"]) == [None, None]
    meta = online_store.meta("features:user")
    assert meta["version"] == version and meta["rows"] == 3 and meta["tables"] == {"features.x": 4}
    assert "created_at" in meta
    assert online_store.meta("never-written") is None


def test_replace_drops_keys_of_the_old_version(online_store):
    online_store.write("churn", {"u1": {"p": 0.1}, "u2": {"p": 0.2}}, {"n": 1})
    second = online_store.write("churn", {"u2": {"p": 0.25}, "u3": {"p": 0.3}}, {"n": 2})
    assert online_store.get("churn", ["u1", "u2", "u3"]) == [None, {"p": 0.25}, {"p": 0.3}]
    assert online_store.meta("churn") == {**online_store.meta("churn"), "version": second, "n": 2, "rows": 2}
    online_store.write("popular", {"top": {"items": []}}, {})
    assert online_store.namespaces() == ["churn", "popular"]
    online_store.write("churn", {}, {"n": 3})  # an empty version is a version: every key gone
    assert online_store.get("churn", ["u2"]) == [None]
    assert online_store.meta("churn")["rows"] == 0


def test_namespaces_do_not_share_keys(online_store):
    online_store.write("features:user", {"k": {"v": "user"}}, {})
    online_store.write("features:user2", {"k": {"v": "user2"}}, {})
    online_store.write("features:user", {"k": {"v": "user again"}}, {})  # drops only its own old version
    assert online_store.get("features:user2", ["k"]) == [{"v": "user2"}]
    assert online_store.get("features:user", ["k"]) == [{"v": "user again"}]


def test_readers_never_see_half_a_version(online_store, monkeypatch):
    """Versions 1..8 each write value n under every key, 5 keys per write transaction, while a reader
    reads all 40 keys in a loop: every batch it gets is one version whole (all values equal)."""
    monkeypatch.setattr(online, "WRITE_CHUNK", 5)
    keys = [f"k{i:02d}" for i in range(40)]
    online_store.write("features:user", {k: {"n": 0} for k in keys}, {})
    seen, done = set(), threading.Event()
    mixed = []

    def read() -> None:
        while not done.is_set():
            values = {row["n"] for row in online_store.get("features:user", keys)}
            if len(values) != 1:
                mixed.append(values)
            seen.update(values)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 9):
            online_store.write("features:user", {k: {"n": n} for k in keys}, {"n": n})
    finally:
        done.set()
        reader.join()
    assert mixed == []
    assert online_store.get("features:user", keys) == [{"n": 8}] * 40
    assert seen <= set(range(9)) and len(seen) >= 2  # it did read while versions were replaced


def test_a_write_that_loses_the_race_fails_and_leaves_the_winner(online_store, monkeypatch):
    """A second materialisation flips while the first is still writing its rows: the first is
    discarded with an error (writing it over the winner would serve the older data)."""
    online_store.write("segments", {"u1": {"segment": 0}}, {})
    chunks = online._chunks

    def interleaved(items, size):
        monkeypatch.setattr(online, "_chunks", chunks)  # the inner write runs normally
        online_store.write("segments", {"u1": {"segment": 2}}, {"by": "winner"})
        yield from chunks(items, size)

    monkeypatch.setattr(online, "_chunks", interleaved)
    with pytest.raises(OnlineStoreError, match="finished first"):
        online_store.write("segments", {"u1": {"segment": 1}, "u9": {"segment": 1}}, {"by": "loser"})
    assert online_store.get("segments", ["u1", "u9"]) == [{"segment": 2}, None]
    assert online_store.meta("segments")["by"] == "winner"


_READER = """
import json, sys
from lakecart.serving.online import LmdbStore
store = LmdbStore(sys.argv[1], map_size=1 << 16)
print("open", flush=True)
sys.stdin.readline()
print(json.dumps(store.get("features:item", ["i2999", "i0"])), flush=True)
"""


def test_lmdb_map_grows_and_another_process_reads_it(tmp_path):
    """64 KiB to start; 3,000 rows of ~100 bytes need more: the map doubles until they fit, and a
    process that opened the store before (the HTTP service) adopts the grown map and reads them."""
    import json
    import subprocess
    import sys

    path = tmp_path / "online"
    store = online.LmdbStore(path, map_size=1 << 16)
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        store.write("features:item", {f"i{n}": {"x": "y" * 80, "n": n} for n in range(3000)}, {})
        assert store._env.info()["map_size"] > 1 << 16
        out, _ = reader.communicate("go\n", timeout=60)
    finally:
        reader.kill()
        store.close()
    assert json.loads(out) == [{"x": "y" * 80, "n": 2999}, {"x": "y" * 80, "n": 0}]


def test_open_store_picks_the_configured_kind(settings, redis_url):
    from lakecart.config import ServingSettings

    store = online.open_store(settings)
    assert isinstance(store, online.LmdbStore) and store.path == f"{settings.lake.root}/online"
    store.close()
    redis_settings = settings.model_copy(update={"serving": ServingSettings(online_store="redis", redis_url=redis_url)})
    store = online.open_store(redis_settings)
    assert isinstance(store, online.RedisStore)
    store.close()
    unreachable = settings.model_copy(update={"serving": ServingSettings(redis_url="redis://127.0.0.1:1/0")})
    with pytest.raises(OnlineStoreError, match="redis.sh up"):
        online.open_store(unreachable, kind="redis")


def test_lmdb_stores_on_one_folder_share_it_in_a_process(tmp_path):
    """LMDB refuses a second environment on a folder in one process: the HTTP service's store and a
    materialisation in the same process share one, closed with the last store."""
    first = online.LmdbStore(tmp_path / "online")
    second = online.LmdbStore(tmp_path / "online")
    first.write("churn", {"u1": {"p": 0.5}}, {})
    first.close()
    first.close()  # closing twice does not close the other's environment
    assert second.get("churn", ["u1"]) == [{"p": 0.5}]
    second.close()
    third = online.LmdbStore(tmp_path / "online")  # a fresh environment after the last one closed
    assert third.get("churn", ["u1"]) == [{"p": 0.5}]
    third.close()
