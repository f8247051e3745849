"""Training input read straight from Delta with delta-rs (no JVM): each worker reads its own shard;
and the one "features as of a time" read that serving outputs and ``lakecart features get`` share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakecart.errors import UnknownTrainingSet
from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE
from lakecart.storage import is_delta, open_delta


def dataset_fragments(table_uri: str, dataset_id: str) -> list:
    """The data files of one training set as the Delta log lists them (never a directory scan),
    as pyarrow fragments on whatever filesystem the table lives on, in a stable order."""
    dataset = open_delta(table_uri).to_pyarrow_dataset(file_pruning_predicate=[("dataset_id", "=", dataset_id)])
    return sorted(dataset.get_fragments(), key=lambda fragment: fragment.path)


# Rows per Arrow record batch a worker reads: its memory for raw rows, whatever the shard's size.
READ_BATCH_ROWS = 32_768


def iter_shard(
    table_uri: str,
    dataset_id: str,
    rank: int,
    size: int,
    split: str | None = None,
    shard_key: str | None = None,
    batch_rows: int | None = READ_BATCH_ROWS,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Worker ``rank`` of ``size``'s rows as ``(file number, frame)``, at most ``batch_rows`` rows a
    frame (None: one frame per file), read as Arrow record batches: the shard is never held whole.
    Worker ``rank`` reads every size-th file; with fewer files than workers it reads all files and
    keeps the rows whose ``shard_key`` hashes to its rank (every size-th row when no key is given).
    Shards are disjoint and cover the data set. Training sets are split into files by entity
    (``DatasetKind.shard_key``), and the fallback keeps that: all rows of one entity (a user's views
    and purchases, from which ranking builds its pairs) stay with one worker. A worker without rows
    gets one empty frame (the columns are still known)."""
    fragments = dataset_fragments(table_uri, dataset_id)
    if not fragments:
        raise FileNotFoundError(f"training set {dataset_id} has no files in {table_uri}")
    by_file = len(fragments) >= size
    numbers = range(rank, len(fragments), size) if by_file else range(len(fragments))
    read = 0  # rows read before any filter: the keyless fallback strides over them
    empty = None
    for number in numbers:
        fragment = fragments[number]
        # A Parquet reader, not the dataset scanner: the scanner reads row groups far ahead (1.9 GB
        # held for 32k-row batches of a 5M-row file, against 0.1 GB here: one row group at a time).
        parquet = pq.ParquetFile(fragment.filesystem.open_input_file(fragment.path), pre_buffer=False)
        batches = [parquet.read()] if batch_rows is None else parquet.iter_batches(batch_size=batch_rows)
        for batch in batches:
            keep = None
            if not by_file and shard_key is not None:
                # A hash that is the same in every process (unlike Python's salted hash()).
                hashes = pd.util.hash_pandas_object(batch.column(shard_key).to_pandas(), index=False).to_numpy()
                keep = hashes % size == rank
            elif not by_file:
                keep = np.arange(read, read + len(batch)) % size == rank
                read += len(batch)
            if keep is not None:
                batch = batch.filter(pa.array(keep))
            if split is not None:
                batch = batch.filter(pc.equal(batch.column("split"), split))
            frame = batch.to_pandas()
            if len(frame):
                empty = False
                yield number, frame
            elif empty is None:
                empty = frame
    if empty is not False:
        yield numbers[0], empty if empty is not None else parquet.schema_arrow.empty_table().to_pandas()


def read_shard(
    table_uri: str, dataset_id: str, rank: int, size: int, split: str | None = None, shard_key: str | None = None
) -> pd.DataFrame:
    """The rows of :func:`iter_shard`, in one frame (for evaluation; training streams them)."""
    frames = [frame for _, frame in iter_shard(table_uri, dataset_id, rank, size, split, shard_key)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def held_out(file_number: int, positions: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which examples a worker holds out for validation: those whose hash of (seed, file number,
    position of the example in the worker's rows of that file) falls below ``fraction``. The same
    rows in every pass and every run with the same seed, whatever the read batch size, and decided
    one batch at a time (no sample over the whole shard)."""
    with np.errstate(over="ignore"):
        start = _mix(np.array([seed, file_number], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        keys = _mix(np.asarray(positions, dtype=np.uint64) ^ (start[0] * np.uint64(31) + start[1]))
    return _unit_interval(keys) < fraction


GROUP_HASH_KEY = "lakecart-groups1"  # pandas' hash key (16 characters): fixed, so the groups are too


def held_out_groups(values: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """Which rows a worker holds out for validation when whole groups (customers) are held out: those
    whose hash of (seed, value) falls below ``fraction``, so a value's rows are all held out or none,
    on any worker and in any batch."""
    keys = pd.util.hash_pandas_object(values.astype(str), index=False, hash_key=GROUP_HASH_KEY).to_numpy()
    with np.errstate(over="ignore"):
        start = _mix(np.array([seed], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        keys = _mix(keys.astype(np.uint64) ^ start[0])
    return _unit_interval(keys) < fraction


def _unit_interval(keys: np.ndarray) -> np.ndarray:
    """Mixed 64-bit keys as uniform floats in [0, 1) (their top 53 bits)."""
    return (keys >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of 64-bit integers whose outputs look uniform."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def rebatch(
    chunks: Iterable[dict[str, np.ndarray]],
    batch: int,
    window_rows: int = 0,
    rng: np.random.Generator | None = None,
    drop_remainder: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Model inputs (dicts of arrays with equal rows) in batches of exactly ``batch`` rows (the last
    one smaller unless ``drop_remainder``). With ``rng``, rows are shuffled within windows of at
    least ``window_rows`` rows: what is held at once is one window plus one chunk, never the shard.
    Rows left under a batch after a window go into the next one, so a pass yields rows // batch."""
    pending: list[dict[str, np.ndarray]] = []
    held = 0
    chunks = iter(chunks)
    while True:
        chunk = next(chunks, None)
        if chunk is not None:
            rows = len(next(iter(chunk.values())))
            if not rows:
                continue
            pending.append(chunk)
            held += rows
            if held < max(window_rows, batch):
                continue
        if not held:
            return
        window = {k: np.concatenate([c[k] for c in pending]) if len(pending) > 1 else pending[0][k] for k in pending[0]}
        order = rng.permutation(held) if rng is not None else np.arange(held)
        full = held - held % batch
        for start in range(0, full, batch):
            yield {k: v[order[start : start + batch]] for k, v in window.items()}
        rest = order[full:]
        if chunk is None:
            if len(rest) and not drop_remainder:
                yield {k: v[rest] for k, v in window.items()}
            return
        pending = [{k: v[rest] for k, v in window.items()}] if len(rest) else []
        held = len(rest)


def numeric_columns(table_uri: str) -> list[str]:
    """Names of the table's numeric (integer or floating) columns, from its schema."""
    schema = open_delta(table_uri).to_pyarrow_dataset().schema
    return [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]


def features_as_of(
    table_uri: str,
    key_columns: Sequence[str],
    ttl: timedelta,
    at: pd.Timestamp,
    keys: Sequence | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each key's newest row of a feature table that was known at ``at`` (``available_at <= at``)
    and still fresh (``at - available_at < ttl``): the point-in-time join's rule for one instant
    (rows known at the same instant resolve to the newer ``feature_date``).

    ``keys``: only these keys (tuples for several key columns), in this order, each listed once,
    with nulls where nothing is known; None: every key that has such a row. ``columns``: the
    feature columns to read (default all); keys, ``feature_date`` and ``available_at`` come too.
    """
    at = pd.Timestamp(at)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    dataset = open_delta(table_uri).to_pyarrow_dataset()
    known_type = dataset.schema.field(AVAILABLE_AT).type
    # Compared in the column's own type: a timestamp with a zone, or a naive one holding UTC.
    as_column = lambda t: pa.scalar(t if known_type.tz else t.tz_convert(None), type=known_type)  # noqa: E731
    # A row is known a day after its feature_date at the earliest: later days cannot qualify.
    condition = (
        (pc.field(FEATURE_DATE) <= pa.scalar(at.date()))
        & (pc.field(AVAILABLE_AT) <= as_column(at))
        & (pc.field(AVAILABLE_AT) > as_column(at - ttl))
    )
    key_columns = list(key_columns)
    wanted = None
    if keys is not None:
        wanted = pd.DataFrame([k if isinstance(k, tuple) else (k,) for k in keys], columns=key_columns)
        condition &= pc.field(key_columns[0]).isin(wanted[key_columns[0]].drop_duplicates().tolist())
    read = None if columns is None else [*key_columns, FEATURE_DATE, AVAILABLE_AT, *columns]
    frame = dataset.to_table(columns=read, filter=condition).to_pandas()
    newest = frame.sort_values([AVAILABLE_AT, FEATURE_DATE], kind="stable").groupby(key_columns).tail(1)
    if wanted is None:
        return newest.sort_values(key_columns).reset_index(drop=True)
    return wanted.drop_duplicates().merge(newest, on=key_columns, how="left")


def read_delta(
    table_uri: str, columns: list[str] | None = None, filters=None, version: int | None = None
) -> pd.DataFrame:
    """A Delta table (at ``version``, else its newest) as pandas, through delta-rs."""
    return open_delta(table_uri, version=version).to_pandas(columns=columns, filters=filters)


def read_pinned(settings, dataset_id: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """``table`` at the Delta version the training set ``dataset_id`` recorded for it in its manifest
    (``input_versions``), so training, evaluation and outputs read the catalogue the set was built
    with; the newest version when the manifest pinned none (the table did not exist then)."""
    from lakecart import tables

    version = manifest(settings, dataset_id).get("input_versions", {}).get(str(table))
    return read_delta(tables.table_path(table, settings), columns, version=version)


def purchased_categories(
    settings, catalogue: pd.DataFrame, start: date, end: date, versions: dict[str, int | None] | None = None
) -> pd.DataFrame:
    """Each (``user_id``, ``category``) with a purchase from ``start`` to ``end`` inclusive, once: the
    purchase events of ``silver.events`` and the lines of ``silver.order_lines``, whichever the lake
    has (a clickstream shop, an order export, or both), with ``catalogue``'s ``item_id`` ->
    ``category``. DuckDB streams the tables' Arrow datasets (the date ranges prune their partitions)
    and keeps only the distinct pairs, so a year of purchases is never held row by row.

    ``versions``: a training set's pinned ``input_versions``; a table it names is read at that
    version, or not at all where it pinned None (the table did not exist when the set was built), so
    a rerun reads what the first run read. A table it does not name: the newest version."""
    import duckdb

    from lakecart import tables

    sources = (
        (tables.SILVER_EVENTS, "event_date", "and event_type = 'purchase'"),
        (tables.SILVER_ORDER_LINES, "order_date", ""),
    )
    with duckdb.connect() as con:
        con.register("catalogue", catalogue[["item_id", "category"]].astype(str))
        parts, pinned = [], versions or {}
        for n, (table, day, only) in enumerate(sources):
            path = tables.table_path(table, settings)
            if str(table) in pinned and pinned[str(table)] is None:
                continue
            if is_delta(path):
                con.register(f"source_{n}", open_delta(path, version=pinned.get(str(table))).to_pyarrow_dataset())
                parts.append(
                    f"select cast(user_id as varchar) as user_id, cast(item_id as varchar) as item_id "
                    f"from source_{n} where {day} between $start and $end {only}"
                )
        if not parts:
            return pd.DataFrame({"user_id": pd.Series(dtype=str), "category": pd.Series(dtype=str)})
        query = (
            f"select distinct p.user_id, c.category from ({' union all '.join(parts)}) as p "
            "join catalogue as c using (item_id) where c.category is not null order by 1, 2"
        )
        return con.execute(query, {"start": start, "end": end}).df()


def manifest(settings, dataset_id: str) -> dict:
    """A training set's manifest (parameters, inputs and their Delta versions) from ``training.manifests``."""
    import json

    from lakecart import tables

    rows = read_delta(
        tables.table_path(tables.TRAINING_MANIFESTS, settings), ["manifest"], filters=[("dataset_id", "=", dataset_id)]
    )
    if rows.empty:
        raise UnknownTrainingSet(
            f"no manifest for training set {dataset_id!r}: build it with `lakecart dataset build <kind> --date D`"
        )
    return json.loads(rows["manifest"].iloc[0])
