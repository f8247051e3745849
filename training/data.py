"""Training input read straight from Delta with delta-rs (no JVM): each worker reads its own shard."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable


def dataset_fragments(table_uri: str, dataset_id: str) -> list:
    """The data files of one training set as the Delta log lists them (never a directory scan),
    as pyarrow fragments on whatever filesystem the table lives on, in a stable order."""
    dataset = DeltaTable(table_uri).to_pyarrow_dataset(file_pruning_predicate=[("dataset_id", "=", dataset_id)])
    return sorted(dataset.get_fragments(), key=lambda fragment: fragment.path)


def read_shard(
    table_uri: str, dataset_id: str, rank: int, size: int, split: str | None = None, shard_key: str | None = None
) -> pd.DataFrame:
    """Worker ``rank`` of ``size`` reads every size-th file; with fewer files than workers it reads
    all files and keeps the rows whose ``shard_key`` hashes to its rank (every size-th row when no
    key is given). Shards are disjoint and cover the data set. Training sets are split into files by
    entity (``DatasetKind.shard_key``), and the fallback keeps that: all rows of one entity (a
    user's views and purchases, from which ranking builds its pairs) stay with one worker."""
    fragments = dataset_fragments(table_uri, dataset_id)
    if not fragments:
        raise FileNotFoundError(f"training set {dataset_id} has no files in {table_uri}")
    by_file = len(fragments) >= size
    mine = fragments[rank::size] if by_file else fragments
    frame = pa.concat_tables([f.to_table() for f in mine]).to_pandas()
    if not by_file and shard_key is not None:
        # A hash that is the same in every process (unlike Python's salted hash()).
        frame = frame[pd.util.hash_pandas_object(frame[shard_key], index=False).to_numpy() % size == rank]
    elif not by_file:
        frame = frame.iloc[rank::size]
    if split is not None:
        frame = frame[frame["split"] == split]
    return frame.reset_index(drop=True)


def numeric_columns(table_uri: str) -> list[str]:
    """Names of the table's numeric (integer or floating) columns, from its schema."""
    schema = DeltaTable(table_uri).to_pyarrow_dataset().schema
    return [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]


def read_delta(table_uri: str, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    return DeltaTable(table_uri).to_pandas(columns=columns, filters=filters)


def manifest(settings, dataset_id: str) -> dict:
    """A training set's manifest (parameters, inputs and their Delta versions) from ``training.manifests``."""
    import json

    from lakecart import tables

    rows = read_delta(
        tables.table_path(tables.TRAINING_MANIFESTS, settings), ["manifest"], filters=[("dataset_id", "=", dataset_id)]
    )
    if rows.empty:
        raise KeyError(f"no manifest for training set {dataset_id!r}")
    return json.loads(rows["manifest"].iloc[0])
