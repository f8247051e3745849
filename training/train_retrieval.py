"""Retrieval trainer: the per-worker program. Run it with ``lakecart train retrieval`` (which
launches it on N workers), or directly as ``python -m lakecart.training.train_retrieval``.

Rank 0 evaluates on the held-out days, writes metrics, plots, weights and the embeddings that
``lakecart publish retrieval`` puts into the lake.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.config import get_settings
from lakecart.training import data as training_data
from lakecart.training import distributed
from lakecart.training.evaluate import popularity_scores, recall_at_k

log = logging.getLogger("lakecart.train.retrieval")
KS = (10, 50, 100)


def model_version(dataset_id: str, params: dict) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"retrieval-{dataset_id.removeprefix('retrieval_')}-{digest}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    s = get_settings().training
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset-id", required=True)
    p.add_argument("--as-of", type=date.fromisoformat, required=True, help="logical date: user features as of its end")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--epochs", type=int, default=s.epochs)
    p.add_argument("--global-batch-size", type=int, default=s.global_batch_size)
    p.add_argument("--learning-rate", type=float, default=s.learning_rate)
    p.add_argument("--embedding-dim", type=int, default=s.embedding_dim)
    p.add_argument("--seed", type=int, default=s.seed)
    return p.parse_args(argv)


def candidate_probability(item_ids: pd.Series) -> np.ndarray:
    """Per row: how often its item occurs among this worker's training rows (the logQ correction)."""
    frequency = item_ids.map(item_ids.value_counts(normalize=True))
    return frequency.to_numpy(dtype="float32")


def to_inputs(frame: pd.DataFrame, feature_columns: list[str]) -> dict[str, np.ndarray]:
    return {
        "user_id": frame["user_id"].astype(str).to_numpy(),
        "item_id": frame["item_id"].astype(str).to_numpy(),
        "category": frame["category"].fillna("").astype(str).to_numpy(),
        "user_features": training_data.user_feature_matrix(frame, feature_columns),
    }


def latest_user_features(settings, as_of: date, users: np.ndarray, feature_columns: list[str]) -> np.ndarray:
    """Each user's features as known at the end of ``as_of`` (the row for feature_date = as_of)."""
    path = tables.table_path("features.user_activity_v1", settings)
    names = [c.removeprefix(training_data.USER_FEATURE_PREFIX) for c in feature_columns]
    frame = training_data.read_delta(path, ["user_id", *names], filters=[("feature_date", "=", as_of)])
    frame = frame.rename(columns={n: f"{training_data.USER_FEATURE_PREFIX}{n}" for n in names})
    aligned = frame.set_index("user_id").reindex(users)
    return training_data.user_feature_matrix(aligned, feature_columns)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    import tensorflow as tf

    from lakecart.training.retrieval import TwoTowerRetrieval, embed

    worker = distributed.init()
    random.seed(args.seed)
    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    settings = get_settings()
    table_uri = tables.table_path(tables.TRAINING_RETRIEVAL, settings)

    items = training_data.read_delta(tables.table_path(tables.SILVER_ITEMS, settings), ["item_id", "category"])
    items = items.sort_values("item_id").reset_index(drop=True)
    train = training_data.read_shard(table_uri, args.dataset_id, worker.rank, worker.size, split="train")
    # Vocabularies must be identical on every worker: build them from data all workers read.
    users = np.array(
        sorted(
            training_data.read_delta(table_uri, ["user_id"], [("dataset_id", "=", args.dataset_id)])["user_id"].unique()
        )
    )
    feature_columns = training_data.user_feature_columns(train)

    if args.global_batch_size % worker.size:
        raise SystemExit(f"global batch {args.global_batch_size} does not divide over {worker.size} workers")
    local_batch = args.global_batch_size // worker.size
    steps = distributed.min_across_workers(len(train) // local_batch)
    if steps < 1:
        raise SystemExit(f"too little data: {len(train)} rows on worker {worker.rank} for a batch of {local_batch}")

    model = TwoTowerRetrieval(
        users,
        items["item_id"].tolist(),
        sorted(items["category"].dropna().unique()),
        len(feature_columns),
        args.embedding_dim,
    )
    # The global batch is fixed, so the learning rate is not scaled with the number of workers.
    model.compile(optimizer=distributed.distributed_optimizer(tf.keras.optimizers.legacy.Adagrad(args.learning_rate)))
    train_inputs = {
        **to_inputs(train, feature_columns),
        "candidate_probability": candidate_probability(train["item_id"]),
    }
    dataset = (
        tf.data.Dataset.from_tensor_slices(train_inputs)
        .shuffle(len(train), seed=args.seed + worker.rank, reshuffle_each_iteration=True)
        .batch(local_batch, drop_remainder=True)
        .repeat()
    )
    started = time.perf_counter()
    history = model.fit(
        dataset,
        epochs=args.epochs,
        steps_per_epoch=steps,
        callbacks=distributed.training_callbacks(),
        verbose=2 if worker.is_chief else 0,
    )
    seconds = time.perf_counter() - started
    examples_per_second_per_worker = steps * local_batch * args.epochs / seconds
    losses = [float(v) for v in history.history["loss"]]
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"loss-rank{worker.rank}.json").write_text(json.dumps(losses))
    if not worker.is_chief:
        return 0

    # --- rank 0: evaluate on the held-out days, write artefacts -----------------------------
    test = training_data.read_split(table_uri, args.dataset_id, "test")
    all_train = training_data.read_split(table_uri, args.dataset_id, "train")
    item_index = pd.Series(np.arange(len(items)), index=items["item_id"])
    test = test[test["item_id"].isin(item_index.index)]
    candidate_inputs = {
        "item_id": items["item_id"].astype(str).to_numpy(),
        "category": items["category"].fillna("").astype(str).to_numpy(),
    }
    item_vectors = embed(model.candidate_model, candidate_inputs)
    query_vectors = embed(
        model.query_model,
        {k: v for k, v in to_inputs(test, feature_columns).items() if k in ("user_id", "user_features")},
    )
    true_index = item_index.loc[test["item_id"]].to_numpy()
    model_metrics = recall_at_k(query_vectors @ item_vectors.T, true_index, KS)
    train_index = item_index.reindex(all_train["item_id"]).dropna().astype(int).to_numpy()
    baseline = recall_at_k(popularity_scores(train_index, len(items), len(test)), true_index, KS)

    params = {
        "epochs": args.epochs,
        "global_batch_size": args.global_batch_size,
        "learning_rate": args.learning_rate,
        "embedding_dim": args.embedding_dim,
        "seed": args.seed,
        "workers": worker.size,
    }
    version = model_version(args.dataset_id, params)
    user_vectors = embed(
        model.query_model,
        {"user_id": users, "user_features": latest_user_features(settings, args.as_of, users, feature_columns)},
    )
    pd.DataFrame({"user_id": users, "embedding": list(user_vectors)}).to_parquet(run_dir / "user_embeddings.parquet")
    pd.DataFrame({"item_id": items["item_id"], "embedding": list(item_vectors)}).to_parquet(
        run_dir / "item_embeddings.parquet"
    )
    model.save_weights(str(run_dir / "weights" / "model"))
    metrics = {
        "model": "retrieval",
        "model_version": version,
        "dataset_id": args.dataset_id,
        "as_of": args.as_of.isoformat(),
        "params": params,
        "train_rows": int(len(all_train)),
        "test_rows": int(len(test)),
        "loss_per_epoch": losses,
        "test": model_metrics,
        "baseline_most_popular": baseline,
        "examples_per_second_per_worker": examples_per_second_per_worker,
        "train_seconds": seconds,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _plot(run_dir, losses, model_metrics, baseline)
    log.info("retrieval %s: %s (most popular: %s)", version, model_metrics, baseline)
    return 0


def _plot(run_dir: Path, losses: list[float], metrics: dict, baseline: dict) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(range(1, len(losses) + 1), losses, marker="o")
    left.set(title="training loss", xlabel="epoch", ylabel="loss")
    ks = [int(k.split("@")[1]) for k in metrics]
    right.plot(ks, list(metrics.values()), marker="o", label="two-tower")
    right.plot(ks, list(baseline.values()), marker="s", label="most popular")
    right.set(title="held-out recall@k", xlabel="k", ylabel="recall", ylim=(0, 1))
    right.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "retrieval.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
