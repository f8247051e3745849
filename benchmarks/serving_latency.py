"""Benchmark: online feature lookups over HTTP, lakecart's service against Feast's Python feature
server on the same values (issue 18, "Figures"), side by side in one run.

Data: ``--users`` entities (default 10,000) x lakecart's feature service ``--service`` (default
``user``: 53 features over 3 views, two of them lists of item ids), random values from a fixed seed,
every view's event time within the last 12 hours (inside every TTL, so nothing is nulled on either
side). The SAME rows go to:

- Feast 0.67 (``.venv/feast``, made by ``benchmarks/feast_env.sh``): a feature repo generated into a
  temporary folder (FileSource Parquet, one entity, one feature view per view, one FeatureService),
  ``feast apply`` + ``feast materialize`` into its SQLite online store, and a second repo with its Redis
  online store; each served by ``feast serve`` (``POST /get-online-features``, full feature names,
  which are lakecart's ``<view>__<feature>``).
- lakecart: the same rows written into the online store (LMDB, and Redis) under the service's
  namespace through ``lakecart.serving.online``'s ``write``, served by ``lakecart serve``
  (``POST /features/{service}``); also ``GET /recommendations/{user}?k=100`` over synthetic top-100
  lists, and an in-process breakdown of a lookup (store read, TTL rule, JSON answer).

Redis: one ``redis-server`` (Debian's) started here on a free loopback port, persistence off, shared by
both Redis cases. Before measuring, one 100-entity answer of every server is checked value by value
against the generated rows. ``--demo-lake data`` adds recommendations and ``POST /rerank`` of 100
candidates on a copy of that lake (materialised and served ``--as-of``); ``--health`` adds each
server's health route (the floor of its HTTP stack).

Load (loopback only, bounded in requests and time): a raw-socket HTTP/1.1 keep-alive client (its own
overhead is a few microseconds, not httpx's ~0.3 ms). Per server and kind of request: sequential
latency (one client; p50/p99 over ``--requests``, stopped at ``--seconds``) and throughput
(``--concurrency`` connections for ``--seconds``). All servers (each case x each ``--workers`` count)
run at once, idle but for the one measured, in ``--rounds`` interleaved rounds whose order rotates, so
a busy spell on a shared machine falls on all of them; the client shares the cores with the server.

    benchmarks/feast_env.sh
    .venv/pipeline/bin/python benchmarks/serving_latency.py --users 10000 --workers 1 2 --demo-lake data --health

Results: one JSON line in ``bench-results/serving_latency.jsonl`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
FEAST_ENV = REPO / ".venv" / "feast"
LAKECART = Path(os.environ.get("BENCH_LAKECART", REPO / ".venv" / "pipeline" / "bin" / "lakecart"))
SERVICE = "bench_user"  # Feast's FeatureService name (lakecart's is the service benchmarked)


# --- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewSpec:
    table: str  # lakecart's view table name, e.g. user_activity_v2 (Feast's feature view name too)
    ttl_s: int
    features: tuple[tuple[str, str], ...]  # (name, "int" | "float" | "strings")


KINDS = {"bigint": "int", "int": "int", "double": "float", "float": "float", "array<string>": "strings"}


def service_spec(name: str) -> list[ViewSpec]:
    """The views of lakecart's feature service ``name`` (every feature has a kind both sides serve)."""
    from lakecart.serving.services import service

    specs = []
    for view in service(name).views:
        unknown = [f"{f.name} {f.dtype}" for f in view.features if f.dtype not in KINDS]
        if unknown:
            raise SystemExit(f"{view.table_name}: no benchmark value generator for {', '.join(unknown)}")
        features = tuple((f.name, KINDS[f.dtype]) for f in view.features)
        specs.append(ViewSpec(view.table_name, int(view.ttl.total_seconds()), features))
    return specs


def generate(users: int, specs: Sequence[ViewSpec], now: datetime, seed: int = 18) -> dict[str, dict]:
    """``{view table: {"user_id": [...], "event_timestamp": [...], feature: [...]}}``, column lists;
    every event time between 1 minute and 12 hours before ``now`` (inside every TTL)."""
    rng = random.Random(seed)
    ids = [f"u{n:06d}" for n in range(users)]
    data = {}
    for spec in specs:
        cols: dict[str, list] = {"user_id": ids}
        cols["event_timestamp"] = [now - timedelta(seconds=rng.randint(60, 12 * 3600)) for _ in ids]
        cols["event_timestamp"] = [t.replace(microsecond=0) for t in cols["event_timestamp"]]
        for name, kind in spec.features:
            if kind == "int":
                cols[name] = [rng.randint(0, 500) for _ in ids]
            elif kind == "float":
                cols[name] = [round(rng.uniform(0, 1000), 6) for _ in ids]
            else:  # recent items / categories: 10 ids each
                cols[name] = [[f"i{rng.randint(0, 99_999)}" for _ in range(10)] for _ in ids]
        data[spec.table] = cols
    return data


def write_parquet(folder: Path, data: dict[str, dict], specs: Sequence[ViewSpec]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        cols = data[spec.table]
        arrays = {"user_id": pa.array(cols["user_id"], pa.string())}
        arrays["event_timestamp"] = pa.array(cols["event_timestamp"], pa.timestamp("us", tz="UTC"))
        types = {"int": pa.int64(), "float": pa.float64(), "strings": pa.list_(pa.string())}
        for name, kind in spec.features:
            arrays[name] = pa.array(cols[name], types[kind])
        pq.write_table(pa.table(arrays), folder / f"{spec.table}.parquet")


# --- Feast ---------------------------------------------------------------------------------------

FEAST_DEFS = '''"""Generated by benchmarks/serving_latency.py: the benchmark's views as Feast objects."""
import json
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float64, Int64, String

SPEC = json.loads({spec!r})
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
views = []
for table, ttl_s, features in SPEC:
    source = FileSource(name=table + "_source", path="{data}/" + table + ".parquet", timestamp_field="event_timestamp")
    types = {{"int": Int64, "float": Float64, "strings": Array(String)}}
    schema = [Field(name=name, dtype=types[kind]) for name, kind in features]
    views.append(FeatureView(name=table, entities=[user], ttl=timedelta(seconds=ttl_s), schema=schema,
                             source=source, online=True))
    globals()[table] = views[-1]
bench_user = FeatureService(name="{service}", features=views)
'''


def feast_repo(folder: Path, data_dir: Path, specs: Sequence[ViewSpec], online: str) -> Path:
    """A Feast repository in ``folder`` (its own registry), ``online``: its online_store YAML block."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = json.dumps([[s.table, s.ttl_s, [list(f) for f in s.features]] for s in specs])
    (folder / "bench_repo.py").write_text(FEAST_DEFS.format(spec=spec, data=data_dir, service=SERVICE))
    (folder / "feature_store.yaml").write_text(
        f"project: lakecart_bench\nregistry: {folder}/registry.db\nprovider: local\n{online}\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    return folder


def feast_load(repo: Path, start: datetime, end: datetime) -> dict:
    feast = str(FEAST_ENV / "bin" / "feast")
    t0 = time.perf_counter()
    run([feast, "-c", str(repo), "apply"], timeout=600)
    t1 = time.perf_counter()
    run([feast, "-c", str(repo), "materialize", _iso(start), _iso(end)], timeout=1800)
    return {"apply_s": round(t1 - t0, 1), "materialize_s": round(time.perf_counter() - t1, 1)}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --- lakecart --------------------------------------------------------------------------------------


def lakecart_rows(data: dict[str, dict], specs: Sequence[ViewSpec]) -> dict[str, dict]:
    """One pre-assembled row per entity as ``serving.lookup`` reads them: ``<view table>__<feature>``
    values and ``feature_time__<view table>`` in microseconds since the epoch."""
    from lakecart.serving.lookup import to_micros

    ids = data[specs[0].table]["user_id"]
    rows: dict[str, dict] = {uid: {} for uid in ids}
    for spec in specs:
        cols = data[spec.table]
        for n, uid in enumerate(ids):
            row = rows[uid]
            for name, _ in spec.features:
                row[f"{spec.table}__{name}"] = cols[name][n]
            row[f"feature_time__{spec.table}"] = to_micros(cols["event_timestamp"][n])
    return rows


def lakecart_load(store: str, location: str, namespace: str, rows: dict[str, dict]) -> dict:
    """Write ``rows`` as the live version of ``namespace`` (``LmdbStore`` / ``RedisStore``)."""
    from lakecart.serving import online

    target = online.LmdbStore(location) if store == "lmdb" else online.RedisStore(location)
    t0 = time.perf_counter()
    target.write(namespace, rows, {"source": "benchmarks/serving_latency.py"})
    elapsed = time.perf_counter() - t0
    target.close()
    return {"store": store, "write_s": round(elapsed, 2)}


# --- processes -----------------------------------------------------------------------------------


def run(command: list[str], timeout: int, env: dict | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode:
        raise SystemExit(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    command: list[str]
    health: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    def start(self, log: Path, timeout_s: float = 120) -> None:
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            self.command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.process.returncode}); its log:\n{log.read_text()[-3000:]}")
            try:
                status, _ = Client(self.port).request(http_get(self.health))
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"{self.name} not healthy after {timeout_s} s; its log:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its workers
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def redis_server(folder: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=(folder / "redis.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"redis-server did not answer on port {port}")


# --- load generator -------------------------------------------------------------------------------


def http_post(path: str, body: dict) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def http_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


class Client:
    """One keep-alive HTTP/1.1 connection on loopback: send a prepared request, read one response."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = self._connect()
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
        status = int(head[9:12])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head.split("\r\n")[1:])}
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                while (eol := self.buf.find(b"\r\n")) < 0:
                    self._fill()
                size = int(self.buf[:eol], 16)
                while len(self.buf) < eol + 2 + size + 2:
                    self._fill()
                parts.append(self.buf[eol + 2 : eol + 2 + size])
                self.buf = self.buf[eol + 2 + size + 2 :]
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":  # the server will not keep this one open
            self.close()
            self.sock, self.buf = self._connect(), b""
        return status, body

    def close(self) -> None:
        self.sock.close()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def sequential(port: int, requests: Sequence[bytes], start: int, count: int, seconds: float) -> list[float]:
    """One client, one request at a time: the latencies of at most ``count`` requests (``requests``
    from ``start`` on, cycling), stopping after ``seconds``."""
    client = Client(port)
    latencies = []
    deadline = time.perf_counter() + seconds
    try:
        for i in range(start, start + count):
            t0 = time.perf_counter()
            response = client.request(requests[i % len(requests)])
            latencies.append(time.perf_counter() - t0)
            expect_ok(response)
            if t0 > deadline:
                break
    finally:
        client.close()
    return latencies


def concurrent(
    port: int, requests: Sequence[bytes], connections: int, seconds: float
) -> tuple[int, float, list[float]]:
    """``connections`` clients, each sending its next request as soon as the last is answered, for
    ``seconds``: (requests answered, elapsed seconds, their latencies)."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        client = Client(port)
        i = n
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                status, body = client.request(requests[i % len(requests)])
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                    return
                latencies[n].append(time.perf_counter() - t0)
                i += connections
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"errors under load: {errors[:3]}")
    flat = [x for part in latencies for x in part]
    return len(flat), elapsed, flat


def expect_ok(response: tuple[int, bytes]) -> None:
    status, body = response
    if status != 200:
        raise SystemExit(f"HTTP {status}: {body[:500]!r}")


# --- the two APIs ----------------------------------------------------------------------------------


def feast_request(ids: Sequence[str]) -> bytes:
    body = {"feature_service": SERVICE, "entities": {"user_id": list(ids)}, "full_feature_names": True}
    return http_post("/get-online-features", body)


def feast_values(body: bytes, ids: Sequence[str]) -> list[dict]:
    """Feast's answer as one ``{<view>__<feature>: value}`` per entity (its full feature names, the
    same as lakecart's), in request order."""
    answer = json.loads(body)
    names = answer["metadata"]["feature_names"]
    columns = {name: result["values"] for name, result in zip(names, answer["results"], strict=True)}
    return [{name: columns[name][i] for name in names if name != "user_id"} for i in range(len(ids))]


def lakecart_request(service: str, ids: Sequence[str]) -> bytes:
    return http_post(f"/features/{service}", {"ids": list(ids)})


def lakecart_values(body: bytes, ids: Sequence[str]) -> list[dict]:
    """lakecart's answer: ``rows``, one ``{<view>__<feature>: value}`` per entity in request order."""
    return json.loads(body)["rows"]


def check_values(
    name: str, got: list[dict], ids: Sequence[str], data: dict[str, dict], specs: Sequence[ViewSpec]
) -> None:
    """Every feature of every requested entity equals the generated value."""
    index = {uid: n for n, uid in enumerate(data[specs[0].table]["user_id"])}
    bad = []
    for uid, row in zip(ids, got, strict=True):
        for spec in specs:
            for feature, kind in spec.features:
                want = data[spec.table][feature][index[uid]]
                have = row.get(f"{spec.table}__{feature}")
                if kind == "float":
                    same = have is not None and abs(float(have) - want) <= 1e-9
                else:
                    same = have == want
                if not same:
                    bad.append((uid, feature, want, have))
    if bad:
        raise SystemExit(f"{name}: {len(bad)} values differ from the generated rows, e.g. {bad[:3]}")
    print(f"  {name}: {len(ids)} entities x {sum(len(s.features) for s in specs)} features equal the generated values")


# --- where lakecart's time goes --------------------------------------------------------------------


def breakdown(kind: str, location: str, service: str, all_ids: list[str], batches: Sequence[int]) -> dict:
    """In this process, no HTTP: median ms of the store read alone, of ``feature_vectors`` (the read
    plus the TTL rule) and of rendering the answer as the service does (``serving.app._Json``). The
    rest of an HTTP request's time is uvicorn, FastAPI and the loopback round trip."""
    from lakecart.serving import app, lookup, online
    from lakecart.serving.services import service as declared

    svc = declared(service)
    store = online.LmdbStore(location) if kind == "lmdb" else online.RedisStore(location)
    rng = random.Random(2)
    out = {}
    try:
        for batch in batches:
            batches_ids = [rng.sample(all_ids, batch) for _ in range(300)]

            def timed(fn: Callable[[list[str]], object], ids_list=batches_ids) -> float:
                times = []
                for ids in ids_list:
                    t0 = time.perf_counter()
                    fn(ids)
                    times.append(time.perf_counter() - t0)
                return round(statistics.median(times[20:]) * 1e3, 3)

            def render(ids: list[str]) -> None:
                rows = lookup.feature_vectors(store, svc, ids)
                app._Json({"service": svc.name, "ids": ids, "rows": rows, "found": len(rows)})

            out[str(batch)] = {
                "store_get_ms": timed(lambda ids: store.get(svc.namespace, ids)),
                "feature_vectors_ms": timed(lambda ids: lookup.feature_vectors(store, svc, ids)),
                "feature_vectors_and_json_ms": timed(render),
            }
    finally:
        store.close()
    return out


def recommendation_rows(all_ids: list[str], k: int = 100, seed: int = 3) -> dict[str, dict]:
    """The published top-``k`` per user as the ``recommendations`` namespace holds it."""
    rng = random.Random(seed)
    return {
        uid: {
            "items": [{"item_id": f"i{rng.randint(0, 99_999)}", "score": round(1 - r / k, 4)} for r in range(k)],
            "model_version": "bench",
        }
        for uid in all_ids
    }


# --- orchestration ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    command: Callable[[int, int], list[str]]  # (port, workers) -> the server's command line
    health: str
    request: Callable[[Sequence[str]], bytes]
    values: Callable[[bytes, Sequence[str]], list[dict]]
    env: dict[str, str] = field(default_factory=dict)


def start_servers(cases: Sequence[Case], workers: Sequence[int], logs: Path) -> list[tuple[Case, int, Server]]:
    started = []
    try:
        for w in workers:
            for case in cases:
                port = free_port()
                server = Server(f"{case.name} w{w}", case.command(port, w), case.health, env=case.env, port=port)
                server.start(logs / f"{case.name}-w{w}.log")
                started.append((case, w, server))
    except BaseException:
        for _, _, server in started:
            server.stop()
        raise
    return started


def measure(servers, args: argparse.Namespace, all_ids: list[str], data, specs) -> list[dict]:
    """Check one answer of every server against the data, then per kind of request ``--rounds``
    rounds, each server in turn (the order rotates), so that a busy spell on a shared machine falls
    on all of them: a warm-up, sequential requests, then the concurrent run. Latencies are pooled
    over the rounds; throughput is all requests over all the rounds' time."""
    rng = random.Random(1)
    sample = rng.sample(all_ids, 100)
    for case, _, server in servers:
        response = Client(server.port).request(case.request(sample))
        expect_ok(response)
        check_values(server.name, case.values(response[1], sample), sample, data, specs)
    if not servers:
        return []
    kinds = [str(b) for b in args.batch] + (["recommendations"] if args.recommendations else [])
    kinds += ["health"] if args.health else []
    results = [{"case": case.name, "workers": w} for case, w, _ in servers]
    for kind in kinds:
        if kind == "recommendations":
            requests = {
                id(case): [http_get(f"/recommendations/{uid}?k=100") for uid in rng.sample(all_ids, 500)]
                for case, _, _ in servers
            }
            todo = [n for n, (case, _, _) in enumerate(servers) if case.name.startswith("lakecart")]
        elif kind == "health":  # the floor: the server's own health route, no lookup at all
            requests = {id(case): [http_get(case.health)] for case, _, _ in servers}
            todo = list(range(len(servers)))
        else:
            batches = [rng.sample(all_ids, int(kind)) for _ in range(500)]
            requests = {id(case): [case.request(ids) for ids in batches] for case, _, _ in servers}
            todo = list(range(len(servers)))
        seq: dict[int, list[float]] = {n: [] for n in todo}
        con: dict[int, list] = {n: [0, 0.0, []] for n in todo}
        loads = []
        for r in range(args.rounds):
            for n in todo[r % len(todo) :] + todo[: r % len(todo)]:
                case, _, server = servers[n]
                reqs = requests[id(case)]
                sequential(server.port, reqs, 0, args.warmup, args.seconds)
                per_round = -(-args.requests // args.rounds)
                seq[n] += sequential(server.port, reqs, r * per_round, per_round, args.seconds / args.rounds)
                count, elapsed, latencies = concurrent(server.port, reqs, args.concurrency, args.seconds / args.rounds)
                con[n][0] += count
                con[n][1] += elapsed
                con[n][2] += latencies
            loads.append(os.getloadavg()[0])
        for n in todo:
            results[n][kind] = {
                "sequential": {
                    "n": len(seq[n]),
                    "p50_ms": round(statistics.median(seq[n]) * 1e3, 3),
                    "p99_ms": round(percentile(seq[n], 0.99) * 1e3, 3),
                },
                "concurrent": {
                    "connections": args.concurrency,
                    "requests": con[n][0],
                    "rps": round(con[n][0] / con[n][1], 1),
                    "p99_ms": round(percentile(con[n][2], 0.99) * 1e3, 3),
                },
            }
            print(f"  {servers[n][2].name} {kind}: {results[n][kind]}", flush=True)
        print(f"  {kind}: load average after each round {[round(x, 1) for x in loads]}", flush=True)
        for n in todo:
            results[n][kind]["load_average"] = loads
    return results


def demo_lake(source: Path, as_of: str, work: Path, args: argparse.Namespace) -> dict:
    """``GET /recommendations/{user}?k=100`` and ``POST /rerank`` of 100 candidates on a copy of a
    demo lake (``<source>/lake``): ``lakecart online materialize --as-of``, then ``lakecart serve
    --as-of`` (one worker, as ``--as-of`` requires) with what its registry publishes. A user's
    candidates: their published recommendations, then the most popular items, 100 in all."""
    from deltalake import DeltaTable

    from lakecart import tables
    from lakecart.config import Settings

    root = work / "demo"
    shutil.copytree(source / "lake", root / "lake")
    env = {"LAKECART_LAKE__ROOT": str(root), "LAKECART_SERVING__ONLINE_STORE": "lmdb"}
    env["LAKECART_SERVING__LMDB_PATH"] = str(root / "online")
    t0 = time.perf_counter()
    run([str(LAKECART), "online", "materialize", "--as-of", as_of], timeout=900, env={**os.environ, **env})
    out: dict = {"lake": str(source), "as_of": as_of, "materialize_s": round(time.perf_counter() - t0, 1)}
    users_table = tables.table_path(tables.SILVER_USERS, Settings(lake={"root": str(root)}))
    users = sorted(set(DeltaTable(users_table).to_pandas(columns=["user_id"])["user_id"]))
    port = free_port()
    command = [str(LAKECART), "serve", "--host", "127.0.0.1", "--port", str(port), "--as-of", as_of]
    server = Server("lakecart-lmdb demo lake", command, "/healthz", env=env, port=port)
    server.start(work / "logs" / "demo-lake.log")
    try:
        client = Client(port)
        rng = random.Random(4)
        picked = rng.sample(users, min(200, len(users)))
        status, body = client.request(http_get("/recommendations/nobody-knows-me?k=100"))
        expect_ok((status, body))
        popular = [item["item_id"] for item in json.loads(body)["items"]]
        recommendations, reranks, fallback, published = [], [], 0, []
        for uid in picked:
            status, body = client.request(http_get(f"/recommendations/{uid}?k=100"))
            expect_ok((status, body))
            answer = json.loads(body)
            fallback += answer["fallback"] is not None
            items = [item["item_id"] for item in answer["items"]]
            published.append(len(items))
            items += [item for item in popular if item not in items][: 100 - len(items)]
            recommendations.append(http_get(f"/recommendations/{uid}?k=100"))
            reranks.append(http_post("/rerank", {"user_id": uid, "item_ids": items}))
        status, body = client.request(reranks[0])
        expect_ok((status, body))
        answer = json.loads(body)
        client.close()
        out.update(
            users=len(users),
            candidates=len(answer["items"]),
            ranking_model=answer["model_version"],
            recommendations_fallback_share=round(fallback / len(picked), 2),
            recommendations_per_answer=statistics.median(published),
        )
        print(f"  demo lake: {out}", flush=True)
        for kind, requests in (("recommendations", recommendations), ("rerank", reranks)):
            seq = sequential(port, requests, 0, args.warmup, args.seconds)
            seq = sequential(port, requests, 0, args.requests, args.seconds)
            count, elapsed, latencies = concurrent(port, requests, args.concurrency, args.seconds)
            out[kind] = {
                "sequential": {
                    "n": len(seq),
                    "p50_ms": round(statistics.median(seq) * 1e3, 3),
                    "p99_ms": round(percentile(seq, 0.99) * 1e3, 3),
                },
                "concurrent": {
                    "connections": args.concurrency,
                    "requests": count,
                    "rps": round(count / elapsed, 1),
                    "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
                },
                "load_average": os.getloadavg()[0],
            }
            print(f"  demo lake {kind}: {out[kind]}", flush=True)
    finally:
        server.stop()
    return out


def table(results: list[dict], kinds: Sequence[str]) -> str:
    lines = [
        "| server | workers | request | p50 ms | p99 ms | throughput req/s (entities/s) | p99 ms under load |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        for r in results:
            if kind not in r:
                continue
            seq, con = r[kind]["sequential"], r[kind]["concurrent"]
            what = {"recommendations": "recommendations, k=100", "health": "health route"}.get(kind, f"{kind} ids")
            entities = int(kind) if kind.isdigit() else 1
            lines.append(
                f"| {r['case']} | {r['workers']} | {what} | {seq['p50_ms']:.2f} | {seq['p99_ms']:.2f} | "
                f"{con['rps']:,.0f} ({con['rps'] * entities:,.0f}) | {con['p99_ms']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--service", default="user", help="the lakecart feature service benchmarked")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per server and batch size")
    parser.add_argument("--warmup", type=int, default=50, help="requests before each round's measurement")
    parser.add_argument(
        "--seconds",
        type=float,
        default=12.0,
        help="time bound of the sequential and of the load run, per server and batch",
    )
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (the time bounds are split)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="server worker processes (each count)")
    parser.add_argument(
        "--cases", nargs="*", default=["feast-sqlite", "feast-redis", "lakecart-lmdb", "lakecart-redis"]
    )
    parser.add_argument("--no-recommendations", dest="recommendations", action="store_false")
    parser.add_argument("--health", action="store_true", help="also measure each server's health route (the floor)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, repos, logs)")
    parser.add_argument(
        "--demo-lake",
        type=Path,
        help="also measure recommendations and /rerank on a copy of this lake root's lake (e.g. data)",
    )
    parser.add_argument("--as-of", default="2026-01-15", help="the demo lake's materialisation and serving instant")
    args = parser.parse_args()

    feast = str(FEAST_ENV / "bin" / "feast")
    if any(c.startswith("feast") for c in args.cases) and not Path(feast).exists():
        raise SystemExit("Feast's environment is missing: run benchmarks/feast_env.sh first")
    service = args.service
    specs = service_spec(service)
    n_features = sum(len(s.features) for s in specs)
    print(f"service {service}: {n_features} features over {len(specs)} views; {args.users:,} users", flush=True)
    now = datetime.now(UTC)
    data = generate(args.users, specs, now)
    all_ids = data[specs[0].table]["user_id"]
    summary: dict = {
        **bench_results.stamp(),
        "started": now.isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "service": service,
        "features": n_features,
        "views": [s.table for s in specs],
        "load_average_at_start": os.getloadavg(),
        "load": {},
        "breakdown": {},
        "results": [],
    }
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    logs = work / "logs"
    logs.mkdir()
    redis_proc = None
    try:
        redis_proc, redis_port = redis_server(work / "redis")
        cases: list[Case] = []
        if any(c.startswith("feast") for c in args.cases):
            write_parquet(work / "parquet", data, specs)
        onlines = {
            "feast-sqlite": f"online_store:\n  type: sqlite\n  path: {work}/feast-sqlite/online.db",
            "feast-redis": f'online_store:\n  type: redis\n  connection_string: "127.0.0.1:{redis_port}"',
        }
        for name in [c for c in args.cases if c.startswith("feast")]:
            repo = feast_repo(work / name, work / "parquet", specs, onlines[name])
            summary["load"][name] = feast_load(repo, now - timedelta(days=1), now + timedelta(minutes=1))
            print(f"  {name}: {summary['load'][name]}", flush=True)

            def feast_serve(port: int, workers: int, repo: Path = repo) -> list[str]:
                # Its fastest settings: no access log, workers never recycled, registry not re-read.
                return [feast, "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers),
                        "--no-access-log", "--max-requests", "0", "-r", "3600"]  # fmt: skip

            cases.append(Case(name, feast_serve, "/health", feast_request, feast_values))
        lakecart_names = [c for c in args.cases if c.startswith("lakecart")]
        if lakecart_names:
            rows = lakecart_rows(data, specs)
            recommendations = recommendation_rows(all_ids)
        for name in lakecart_names:
            kind = name.split("-", 1)[1]
            env = {
                "LAKECART_LAKE__ROOT": str(work / "lake"),
                "LAKECART_SERVING__ONLINE_STORE": kind,
                "LAKECART_SERVING__LMDB_PATH": str(work / "lmdb"),
                "LAKECART_SERVING__REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
            }
            location = env["LAKECART_SERVING__LMDB_PATH" if kind == "lmdb" else "LAKECART_SERVING__REDIS_URL"]
            summary["load"][name] = lakecart_load(kind, location, f"features:{service}", rows)
            lakecart_load(kind, location, "recommendations", recommendations)
            print(f"  {name}: {summary['load'][name]}", flush=True)
            summary["breakdown"][name] = breakdown(kind, location, service, all_ids, args.batch)
            print(f"  {name} in-process: {summary['breakdown'][name]}", flush=True)

            def lakecart_serve(port: int, workers: int) -> list[str]:
                return [str(LAKECART), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]

            cases.append(
                Case(name, lakecart_serve, "/healthz", lambda ids: lakecart_request(service, ids), lakecart_values, env)
            )
        if args.demo_lake:
            summary["demo_lake"] = demo_lake(args.demo_lake, args.as_of, work, args)
        servers = start_servers(cases, args.workers, logs)
        try:
            summary["results"] = measure(servers, args, all_ids, data, specs)
        finally:
            for _, _, server in servers:
                server.stop()
    finally:
        if redis_proc is not None:
            os.killpg(redis_proc.pid, signal.SIGTERM)
            redis_proc.wait(20)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    path = bench_results.append("serving_latency", summary)
    print(table(summary["results"], [*map(str, args.batch), "recommendations", "health"]))
    print(f"results: {path}" + (f"; data, repos and logs: {work}" if args.keep else ""))


if __name__ == "__main__":
    sys.exit(main())
