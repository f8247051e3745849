"""Benchmark: the ANN index (serving/ann.py) against brute force (issue 18).

``--items`` synthetic item vectors of ``--dim`` dimensions drawn from a Gaussian mixture (``--clusters``
centres, each item a centre plus noise; a fixed seed), the way trained embeddings clump by category,
not uniform noise; ``--queries`` query vectors from the same mixture. For each HNSW configuration
(``--m`` x ``--ef-construction``): build time, index bytes (``faiss.serialize_index``) and the
process's RSS growth; for each ``--ef-search``: the time of the whole query batch (top ``--k``),
per-query latency p50/p99 of one-query searches, recall@k against the exact answer, and the
speed-up over brute force. Brute force two ways: FAISS's exact ``IndexFlatIP`` (the reference the
recall is measured against) and the naive numpy matmul + argpartition, in blocks of queries.

Prints a markdown table and appends a JSON line to bench-results/ann_index.jsonl.

    .venv/pipeline/bin/python benchmarks/ann_index.py --items 1000000 --dim 64 --queries 1000
"""

from __future__ import annotations

import argparse
import json
import os
import time

import bench_results  # benchmarks/bench_results.py (the script's own folder is on sys.path)
import numpy as np

from lakecart.serving.ann import AnnIndex, recall_at_k

SEED = 18


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mixture(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    """``n`` points, each a random centre plus Gaussian noise of ``spread`` per dimension."""
    out = np.empty((n, centres.shape[1]), dtype="float32")
    for start in range(0, n, 100_000):  # blocks: no float64 temporaries of the whole set
        stop = min(n, start + 100_000)
        picks = rng.integers(0, len(centres), stop - start)
        out[start:stop] = centres[picks] + spread * rng.standard_normal((stop - start, centres.shape[1]), "float32")
    return out


def numpy_top_k(items: np.ndarray, queries: np.ndarray, k: int, block: int = 50) -> np.ndarray:
    """The naive brute force: a block of queries x all items, then argpartition and a sort of k."""
    found = []
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ items.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        found.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(found)


def single_query_ms(search, queries: np.ndarray, k: int, n: int) -> tuple[float, float]:
    """p50 and p99 (ms) of ``n`` one-query searches ``search(query, k)``."""
    times = []
    for query in queries[:n]:
        started = time.perf_counter()
        search(query[None, :], k)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.5, help="noise per dimension around a centre (unit centres)")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--m", default="48", help="HNSW links per node, comma-separated")
    parser.add_argument("--ef-construction", default="40", help="comma-separated")
    parser.add_argument("--ef-search", default="100,128,192,256,384", help="comma-separated")
    parser.add_argument("--single", type=int, default=100, help="one-query searches timed per method")
    parser.add_argument("--skip-numpy", action="store_true")
    args = parser.parse_args()
    import faiss

    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((args.clusters, args.dim)).astype("float32")
    started = time.perf_counter()
    items = mixture(rng, args.items, centres, args.spread)
    queries = mixture(rng, args.queries, centres, args.spread)
    ids = np.char.add("i", np.arange(args.items).astype(str))
    seconds = time.perf_counter() - started
    print(f"data: {args.items:,} x {args.dim} ({items.nbytes / 2**20:.0f} MiB) in {seconds:.1f} s", flush=True)

    # HNSW first: the process's RSS growth is then the index's own (later builds reuse freed memory).
    hnsw_rows: list[tuple[dict, np.ndarray]] = []
    for m in map(int, args.m.split(",")):
        for ef_construction in map(int, args.ef_construction.split(",")):
            before = rss_bytes()
            started = time.perf_counter()
            hnsw = AnnIndex.build(ids, items, kind="hnsw", m=m, ef_construction=ef_construction)
            build = time.perf_counter() - started
            grown = rss_bytes() - before
            size = len(faiss.serialize_index(hnsw.index))
            print(f"HNSW M={m} efConstruction={ef_construction}: built in {build:.1f} s", flush=True)
            for ef_search in map(int, args.ef_search.split(",")):
                hnsw.set_ef_search(ef_search)
                started = time.perf_counter()
                found, _ = hnsw.search_positions(queries, args.k)
                batch = time.perf_counter() - started
                p50, p99 = single_query_ms(hnsw.search_positions, queries, args.k, args.single)
                row = dict(
                    method=f"HNSW M={m} efConstruction={ef_construction} efSearch={ef_search}",
                    build_s=build,
                    index_mib=size / 2**20,
                    rss_mib=grown / 2**20,
                    batch_s=batch,
                    p50_ms=p50,
                    p99_ms=p99,
                )
                hnsw_rows.append((row, found))
                print(row, flush=True)
            del hnsw

    before = rss_bytes()
    started = time.perf_counter()
    flat = AnnIndex.build(ids, items, kind="flat")
    flat_build = time.perf_counter() - started
    flat_rss = rss_bytes() - before
    started = time.perf_counter()
    exact, _ = flat.search_positions(queries, args.k)
    flat_batch = time.perf_counter() - started
    flat_p50, flat_p99 = single_query_ms(flat.search_positions, queries, args.k, args.single)
    rows = [
        dict(
            method="FAISS IndexFlatIP (exact)",
            build_s=flat_build,
            index_mib=len(faiss.serialize_index(flat.index)) / 2**20,
            rss_mib=flat_rss / 2**20,
            batch_s=flat_batch,
            p50_ms=flat_p50,
            p99_ms=flat_p99,
            recall=1.0,
        )
    ]
    print(rows[-1], flush=True)
    del flat
    if not args.skip_numpy:
        started = time.perf_counter()
        naive = numpy_top_k(items, queries, args.k)
        naive_batch = time.perf_counter() - started
        p50, p99 = single_query_ms(lambda q, k: numpy_top_k(items, q, k), queries, args.k, args.single)
        rows.append(
            dict(
                method="numpy matmul + argpartition",
                build_s=0.0,
                index_mib=items.nbytes / 2**20,
                rss_mib=0.0,
                batch_s=naive_batch,
                p50_ms=p50,
                p99_ms=p99,
                recall=recall_at_k(naive, exact),
            )
        )
        print(rows[-1], flush=True)
    rows += [{**row, "recall": recall_at_k(found, exact)} for row, found in hnsw_rows]

    naive_batch = next((r["batch_s"] for r in rows if r["method"].startswith("numpy")), float("nan"))
    for row in rows:
        row["speedup_vs_flat"] = flat_batch / row["batch_s"]
        row["speedup_vs_numpy"] = naive_batch / row["batch_s"]
        row["queries_per_s"] = args.queries / row["batch_s"]
    summary = {
        **bench_results.stamp(),
        "args": vars(args),
        "faiss": faiss.__version__,
        "omp_threads": faiss.omp_get_max_threads(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    bench_results.append("ann_index", summary)
    print(f"\n{summary['machine']}, {summary['date']}, faiss {summary['faiss']} ({summary['omp_threads']} threads)")
    print(
        f"{args.items:,} items x {args.dim} dims ({args.clusters} clusters, spread {args.spread}), "
        f"{args.queries:,} queries, top {args.k}; load average at the end {summary['load_average']}\n"
    )
    print(
        f"| method | build s | index MiB | RSS growth MiB | {args.queries:,} queries s | queries/s "
        f"| 1-query p50 ms | 1-query p99 ms | recall@{args.k} | speed-up vs FAISS flat | vs numpy |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['build_s']:.1f} | {r['index_mib']:.0f} | {r['rss_mib']:.0f} | {r['batch_s']:.2f} "
            f"| {r['queries_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall']:.4f} "
            f"| {r['speedup_vs_flat']:.1f}x | {r['speedup_vs_numpy']:.1f}x |"
        )
    print(json.dumps({"rows": len(rows)}))


if __name__ == "__main__":
    main()
