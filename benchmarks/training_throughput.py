"""Benchmark: retrieval training from streamed shards (issue 19): examples/s per worker and peak
memory per worker at 1 and 2 Horovod workers (Gloo) on a generated 20M-row retrieval training set,
and the in-memory trainer it replaced on a set small enough for it.

The set has the columns of ``training.retrieval`` (the real builder's labels, every joined feature
column, ``user_sequences_v1``'s 10-item lists) and its layout: one ``dataset_id`` partition split
into ``--files`` files, each user's rows in one file. It is written with delta-rs under ``--root``
(with the catalogue and the manifest training reads) and deleted at the end unless ``--keep``.

Each run is ``lakecart.training.worker.train`` under ``horovodrun --gloo -np N`` (the project's
launcher, ``distributed.horovodrun_command``), one epoch capped at ``--steps`` steps, no
validation; rank 0's evaluation and outputs (``finish``) are left out: they are not training. The
trainer's own examples/s (steps x batch / seconds in ``model.fit``; workers step in lockstep, so
equal on each) and each worker's peak resident memory (``ru_maxrss``) are recorded, with rank 0's
peak and seconds when the task's state was built (every worker reads the state columns of the whole
set) and the wall time of the run (start-up, state, the streamed side's counting pass, training). Sides
alternate within a round; the medians of ``--rounds`` rounds are reported.

The in-memory side is ``training/worker.py`` as of ``OLD_WORKER`` (before streaming), loaded from
git into a temporary module: it trains a full epoch (it has no step cap), so it runs on
``--in-memory-rows`` rows with ``--in-memory-steps`` matching its epoch, and the streamed side runs
the same set for the same steps.

    .venv/pipeline/bin/python benchmarks/training_throughput.py                 # 20M rows, 3 rounds
    .venv/pipeline/bin/python benchmarks/training_throughput.py --rows 200000 --rounds 1 --steps 50
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_results import append, stamp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
END = date(2026, 1, 31)
DATASET_ID = f"retrieval_{END:%Y%m%d}"
DAYS, TEST_DAYS = 28, 7
ITEMS, CATEGORIES = 20_000, 200
CHUNK_ROWS = 500_000
# The last commit of training/worker.py before streaming: the in-memory trainer.
OLD_WORKER = "7eb2ef94f494105c45aaccbc95fa7357e4613efd"
BATCH, LEARNING_RATE = 1024, 0.1


def chunks(rows: int, users: np.ndarray, rng: np.random.Generator):
    """Record batches of retrieval training rows for ``users`` (their index numbers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakecart.jobs.training_set import KINDS

    item_names = pa.array([f"i{n:05d}" for n in range(ITEMS)])
    category_names = pa.array([f"c{n:03d}" for n in range(CATEGORIES)])
    numeric = [c for c in KINDS["retrieval"].feature_columns() if not c.endswith(("recent_items", "recent_categories"))]
    start = datetime.combine(END - timedelta(days=DAYS - 1), datetime.min.time(), UTC)
    done = 0
    while done < rows:
        n = min(CHUNK_ROWS, rows - done)
        # Popular items far more often than others, as in a shop (the logQ correction matters).
        items = np.minimum((rng.pareto(1.1, n) * 200).astype("int64"), ITEMS - 1)
        recent = np.minimum((rng.pareto(1.1, n * 10) * 200).astype("int64"), ITEMS - 1)
        seconds = rng.integers(0, DAYS * 86_400, n)
        micros = int(start.timestamp()) * 10**6 + seconds * 10**6
        when = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        day = pc.cast(pc.floor_temporal(when, unit="day"), pa.date32())
        test_start = pa.scalar(END - timedelta(days=TEST_DAYS - 1), pa.date32())
        columns = {
            "event_id": pc.cast(pa.array(np.arange(done, done + n) + int(users[0]) * 10**9), pa.string()),
            "user_id": pc.binary_join_element_wise("u", pc.cast(pa.array(rng.choice(users, n)), pa.string()), ""),
            "item_id": item_names.take(pa.array(items)),
            "category": category_names.take(pa.array(items % CATEGORIES)),
            "event_type": pa.array(rng.choice(["product_view", "cart", "purchase"], n, p=[0.85, 0.1, 0.05])),
            "device": pa.array(rng.choice(["mobile", "desktop", "tablet"], n)),
            "event_time": when,
            "event_date": day,
            "split": pc.if_else(pc.greater_equal(day, test_start), "test", "train"),
            "user_sequences_v1__recent_items": pa.ListArray.from_arrays(
                pa.array(np.arange(0, 10 * n + 1, 10, dtype="int32")), item_names.take(pa.array(recent))
            ),
            "user_sequences_v1__recent_categories": pa.ListArray.from_arrays(
                pa.array(np.arange(0, 10 * n + 1, 10, dtype="int32")),
                category_names.take(pa.array(recent % CATEGORIES)),
            ),
            **{c: pa.array(rng.gamma(1.0, 5.0, n)) for c in numeric},
            "dataset_id": pa.array([DATASET_ID] * n),
        }
        done += n
        yield pa.RecordBatch.from_pydict(columns)


def generate(root: Path, rows: int, files: int, seed: int = 0) -> None:
    """The training set (``files`` files, users split among them by number), catalogue, manifest."""
    import pandas as pd
    import pyarrow as pa
    from deltalake import write_deltalake

    from lakecart import tables
    from lakecart.config import LakeSettings, Settings

    settings = Settings(lake=LakeSettings(root=str(root)))
    rng = np.random.default_rng(seed)
    users = np.arange(max(rows // 50, files))  # 50 interactions per user on average
    path = tables.table_path("training.retrieval", settings)
    for f in range(files):
        mine = users[users % files == f]
        batches = list(chunks(1, mine, rng))  # the schema, from a one-row batch
        reader = pa.RecordBatchReader.from_batches(batches[0].schema, chunks(rows // files, mine, rng))
        # One file per call: the builder's layout (each user in one file), not delta-rs's size split.
        write_deltalake(path, reader, partition_by=["dataset_id"], mode="append", target_file_size=2**40)
    items = [f"i{n:05d}" for n in range(ITEMS)]
    catalogue = pd.DataFrame(
        {
            "item_id": items,
            "category": [f"c{n % CATEGORIES:03d}" for n in range(ITEMS)],
            "brand": [f"b{n % 50}" for n in range(ITEMS)],
            "price": rng.gamma(2.0, 20.0, ITEMS),
        }
    )
    write_deltalake(tables.table_path(tables.SILVER_ITEMS, settings), catalogue, mode="overwrite")
    manifest = {"dataset_id": DATASET_ID, "content_hash": f"bench-{rows}", "input_versions": {}}
    write_deltalake(
        tables.table_path(tables.TRAINING_MANIFESTS, settings),
        pd.DataFrame([{"dataset_id": DATASET_ID, "manifest": json.dumps(manifest)}]),
        mode="overwrite",
    )


def worker(args: argparse.Namespace) -> int:
    """One Horovod worker: train, leave out ``finish``, write ``<out>/rank<r>.json``."""
    from lakecart.config import get_settings
    from lakecart.training import distributed
    from lakecart.training.tasks import TASKS
    from lakecart.training.tasks.base import TrainParams

    if args.side == "in_memory":
        source = subprocess.run(
            ["git", "show", f"{OLD_WORKER}:training/worker.py"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        path = Path(tempfile.mkdtemp()) / "in_memory_worker.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("in_memory_worker", path)
        trainer = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(trainer)
    else:
        from lakecart.training import worker as trainer

    fitted = {}

    def finish(task, model, params, run_dir, version, as_of, workers, curves, shard_rows, examples_per_second):
        fitted.update(rows_per_worker=shard_rows, examples_per_second=examples_per_second, loss=curves["loss"])
        return fitted

    trainer.finish = finish
    started = time.perf_counter()
    extra = {"validation_fraction": 0.0, "patience": None, "steps_per_epoch": args.steps}
    params = TrainParams(epochs=1, global_batch_size=BATCH, learning_rate=LEARNING_RATE, seed=1, extra=extra)
    task = TASKS["retrieval"](get_settings(), DATASET_ID)
    fit_state = task.fit_state

    def timed_fit_state(full):
        # Every worker reads the state columns of the whole set: their share of the peak.
        fit_state(full)
        fitted.update(state_s=time.perf_counter() - started, state_peak_rss_gib=peak_rss_gib())

    task.fit_state = timed_fit_state
    trainer.train(task, params, Path(args.run_root), END)
    rank = distributed.init().rank
    result = {
        **fitted,
        "rank": rank,
        "wall_s": time.perf_counter() - started,
        "peak_rss_gib": peak_rss_gib(),
    }
    (Path(args.out) / f"rank{rank}.json").write_text(json.dumps(result))
    return 0


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_side(root: Path, side: str, workers: int, steps: int) -> dict:
    """One training run of ``side`` on ``workers`` processes; per-worker results merged."""
    from lakecart.training.distributed import horovodrun_command

    out = Path(tempfile.mkdtemp(prefix="bench-train-"))
    argv = ["--worker", "--side", side, "--steps", str(steps), "--out", str(out), "--run-root", str(out / "runs")]
    command = horovodrun_command("benchmarks.training_throughput", argv, workers)
    env = {**os.environ, "LAKECART_LAKE__ROOT": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{side} on {workers} workers failed ({done.returncode})")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(workers)]
    shutil.rmtree(out, ignore_errors=True)
    chief = next(r for r in ranks if r["rank"] == 0)
    return {
        "side": side,
        "workers": workers,
        "steps": steps,
        "examples_per_second_per_worker": round(chief["examples_per_second"], 1),
        "peak_rss_gib_per_worker": [round(r["peak_rss_gib"], 2) for r in sorted(ranks, key=lambda r: r["rank"])],
        "rows_per_worker": chief["rows_per_worker"],
        "state_peak_rss_gib": round(chief["state_peak_rss_gib"], 2),
        "state_s": round(chief["state_s"], 1),
        "worker_wall_s": round(chief["wall_s"], 1),
        "run_wall_s": round(wall, 1),
    }


def summarise(runs: list[dict]) -> list[dict]:
    out = []
    for key in sorted({(r["side"], r["workers"]) for r in runs}):
        mine = [r for r in runs if (r["side"], r["workers"]) == key]
        out.append(
            {
                "side": key[0],
                "workers": key[1],
                "rounds": len(mine),
                "examples_per_second_per_worker": median(r["examples_per_second_per_worker"] for r in mine),
                "peak_rss_gib_per_worker": max(max(r["peak_rss_gib_per_worker"]) for r in mine),
                "state_peak_rss_gib": max(r["state_peak_rss_gib"] for r in mine),
                "state_s": median(r["state_s"] for r in mine),
                "run_wall_s": median(r["run_wall_s"] for r in mine),
                "rows_per_worker": mine[0]["rows_per_worker"],
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/work/bench-train", help="where the generated lake goes (deleted after)")
    p.add_argument("--rows", type=int, default=20_000_000, help="0: only the in-memory comparison")
    p.add_argument("--files", type=int, default=4, help="files of the set (the builder's default shards)")
    p.add_argument("--steps", type=int, default=300, help="steps of the capped epoch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--in-memory-rows", type=int, default=400_000, help="0: no in-memory comparison")
    p.add_argument("--keep", action="store_true", help="keep the generated lake (and reuse one of the same size)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", default="streamed", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--run-root", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    workers = [int(w) for w in args.workers.split(",")]
    root = Path(args.root)
    results = {"stamp": stamp(), "rows": args.rows, "files": args.files, "batch": BATCH, "load": os.getloadavg()}
    try:
        sizes = [("large", args.rows, args.steps, ["streamed"])] if args.rows else []
        if args.in_memory_rows:
            # A full epoch of the in-memory trainer, fit rows of the train split (3/4 of the days).
            steps = args.in_memory_rows * (DAYS - TEST_DAYS) // DAYS // BATCH
            sizes.append(("small", args.in_memory_rows, steps, ["in_memory", "streamed"]))
        for label, rows, steps, sides in sizes:
            marker, wanted = root / "generated.json", {"rows": rows, "files": args.files}
            if not (args.keep and marker.exists() and json.loads(marker.read_text()) == wanted):
                shutil.rmtree(root, ignore_errors=True)
                started = time.perf_counter()
                generate(root, rows, args.files)
                marker.write_text(json.dumps(wanted))
                print(f"{label}: {rows} rows generated in {time.perf_counter() - started:.0f} s", flush=True)
            runs = []
            for round_ in range(args.rounds):
                order = [(s, w) for w in workers for s in sides]
                for side, n in order if round_ % 2 == 0 else order[::-1]:
                    runs.append({**run_side(root, side, n, steps), "round": round_})
                    print(json.dumps(runs[-1]), flush=True)
            results[label] = {"rows": rows, "steps": steps, "runs": runs, "medians": summarise(runs)}
            for line in results[label]["medians"]:
                print(label, json.dumps(line), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    print(append("training_throughput", results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
