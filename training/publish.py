"""Write a trained model's results back to the lake (delta-rs, no JVM): embeddings, top-k
recommendations and a row in the model registry. Each write replaces exactly this model
version's rows, so publishing twice leaves the same tables."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakecart import tables
from lakecart.config import Settings
from lakecart.training.evaluate import top_k_indices

log = logging.getLogger(__name__)


def replace_version(path: str, frame: pd.DataFrame, version: str) -> None:
    data = pa.Table.from_pandas(frame, preserve_index=False)
    if DeltaTable.is_deltatable(path):
        write_deltalake(path, data, mode="overwrite", predicate=f"model_version = '{version}'")
    else:
        write_deltalake(path, data, mode="append")


def embeddings_frame(
    ids: pd.Series, vectors: np.ndarray, id_col: str, version: str, created_at: datetime
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            id_col: ids.to_numpy(),
            "model_version": version,
            "embedding": [v.astype("float32").tolist() for v in vectors],
            "created_at": pd.Timestamp(created_at),
        }
    )


def recommendations_frame(
    users: pd.Series,
    user_vectors: np.ndarray,
    items: pd.Series,
    item_vectors: np.ndarray,
    k: int,
    version: str,
    created_at: datetime,
) -> pd.DataFrame:
    scores = user_vectors @ item_vectors.T
    best = top_k_indices(scores, k)
    n_users, k = best.shape
    return pd.DataFrame(
        {
            "user_id": np.repeat(users.to_numpy(), k),
            "rank": np.tile(np.arange(1, k + 1), n_users).astype("int32"),
            "item_id": items.to_numpy()[best.ravel()],
            "score": np.take_along_axis(scores, best, axis=1).ravel().astype("float32"),
            "model_version": version,
            "created_at": pd.Timestamp(created_at),
        }
    )


def publish_retrieval(settings: Settings, run_dir: str | Path, logical_date: date, top_k: int) -> dict:
    run = Path(run_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    version = metrics["model_version"]
    # The run's logical time, not the wall clock: republishing the same run writes the same rows.
    created_at = datetime.combine(logical_date, time(0), tzinfo=UTC)
    users = pd.read_parquet(run / "user_embeddings.parquet")
    items = pd.read_parquet(run / "item_embeddings.parquet")
    user_vectors = np.stack(users["embedding"].to_numpy())
    item_vectors = np.stack(items["embedding"].to_numpy())

    replace_version(
        tables.table_path(tables.USER_EMBEDDINGS, settings),
        embeddings_frame(users["user_id"], user_vectors, "user_id", version, created_at),
        version,
    )
    replace_version(
        tables.table_path(tables.ITEM_EMBEDDINGS, settings),
        embeddings_frame(items["item_id"], item_vectors, "item_id", version, created_at),
        version,
    )
    recs = recommendations_frame(
        users["user_id"], user_vectors, items["item_id"], item_vectors, top_k, version, created_at
    )
    replace_version(tables.table_path(tables.RECOMMENDATIONS, settings), recs, version)
    registry_row = pd.DataFrame(
        [
            {
                "model_version": version,
                "model": metrics["model"],
                "dataset_id": metrics["dataset_id"],
                "params": json.dumps(metrics["params"], sort_keys=True),
                "metrics": json.dumps(
                    {"test": metrics["test"], "baseline_most_popular": metrics["baseline_most_popular"]}
                ),
                "artifact_path": str(run),
                "created_at": pd.Timestamp(created_at),
            }
        ]
    )
    replace_version(tables.table_path(tables.MODEL_REGISTRY, settings), registry_row, version)
    summary = {"model_version": version, "users": len(users), "items": len(items), "recommendations": len(recs)}
    log.info("published %s", summary)
    return summary
