"""The columnar point-in-time plan: Spark schedules, a vectorised engine joins inside each task.

Spark's row-at-a-time execution spends most of a large point-in-time join decoding and probing the
feature rows (BENCHMARKS.md). Here Spark only hands out the files of the feature table: each task
takes a contiguous run of them and joins it, in DuckDB, against the label rows (a broadcast, as
Arrow), keeping per (keys, label time) the newest candidate of its files. DuckDB reads local files
itself; files on other file systems (S3, HDFS, ...) come through Arrow's file systems. Spark then
merges the few candidates per label across tasks. The same code runs on a laptop (two tasks) and a
cluster (one task per core).

It applies where Spark would otherwise scan files anyway: the feature frame must be a plain read of
a Parquet or Delta table (no filters or projections on top; Delta tables without deletion vectors
or column mapping, which only Delta's own reader understands), and the labels must fit in a
broadcast. ``files_of`` says whether a frame qualifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame
from pyspark.sql import types as T

# A candidate's order is one long: its age within the TTL above DAY_BITS bits of feature_date's
# day offset from the label day. Both plans use it; the column is named ORDER.
DAY_BITS = 23
ORDER = "_order"
# Feature rows a task joins at once: bounds a task's memory whatever its share of the table.
_ROWS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class FeatureFile:
    uri: str
    partition_values: dict[str, str | None]  # as written in the path (hive style), before typing


def is_file_scan(frame: DataFrame) -> bool:
    """Whether ``frame`` is a plain read of a table's files (no filters, projections or transforms)."""
    try:
        plan = frame._jdf.queryExecution().optimizedPlan()
    except Exception:  # Spark Connect has no JVM-side plan to inspect
        return False
    return plan.getClass().getSimpleName() == "LogicalRelation"


def files_of(frame: DataFrame) -> list[FeatureFile] | None:
    """The files a plain read of a Parquet or Delta table consists of, with their partition values;
    None when ``frame`` is anything else (a filter, a projection, an in-memory frame, Spark Connect)."""
    if not is_file_scan(frame):
        return None
    uris = list(frame.inputFiles())
    if not all(u.endswith(".parquet") for u in uris):
        return None
    root = _delta_root(uris[0]) if uris else None
    if root is not None and not _plain_delta(root):
        return None
    partition_columns = set(frame.columns)
    return [FeatureFile(u, _partition_values(u, partition_columns)) for u in uris]


def _delta_root(uri: str) -> str | None:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(_arrow_uri(uri))
    parts = path.split("/")
    for end in range(len(parts) - 1, 0, -1):
        candidate = "/".join(parts[:end])
        if fs.get_file_info(f"{candidate}/_delta_log").type == pafs.FileType.Directory:
            return uri[: len(uri) - len(path)] + candidate if "://" in uri else candidate
    return None


def _plain_delta(root: str) -> bool:
    from deltalake import DeltaTable

    protocol = DeltaTable(_arrow_uri(root)).protocol()
    version = protocol.min_reader_version
    # Reader version 2 means column mapping; version 3 lists its features.
    return version == 1 or (
        version == 3 and not set(protocol.reader_features or []) & {"deletionVectors", "columnMapping"}
    )


def _partition_values(uri: str, columns: set[str]) -> dict[str, str | None]:
    values = {}
    for segment in urlparse(uri).path.split("/")[:-1]:
        name, sep, value = segment.partition("=")
        if sep and name in columns:
            values[name] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return values


def _arrow_uri(uri: str) -> str:
    # Hadoop's s3a:// is Arrow's s3://; a bare local path needs no scheme.
    return "s3://" + uri.removeprefix("s3a://") if uri.startswith("s3a://") else uri


def newest_candidates(
    files: Sequence[FeatureFile],
    labels_ipc,  # a Spark broadcast of the label rows as Arrow IPC bytes: keys, _t (micros)
    keys: Sequence[str],
    ttl_micros: int,
    feature_date: str,
    available_at: str,
    features: Sequence[str],
    frame_schema: T.StructType,
    out_schema: T.StructType,
    tasks: int,
) -> DataFrame:
    """Per (keys, label time) and task, the newest known, fresh feature row among the task's files:
    the keys, ``_t`` (the label time in microseconds),
    ``_order`` (greater is newer: (available_at, feature_date)), ``available_at``, ``feature_date``
    and the features. Spark merges the candidates of one label across tasks."""
    from pyspark.sql import SparkSession
    from pyspark.sql.pandas.types import to_arrow_schema

    spark = SparkSession.getActiveSession()
    # Sorted and sliced: each task takes a contiguous run of paths, which for a table partitioned by
    # date is a contiguous stretch of time, so few labels get candidates from more than one task.
    rows = sorted((f.uri, json.dumps(f.partition_values)) for f in files)
    listing = spark.createDataFrame(spark.sparkContext.parallelize(rows, tasks), "uri string, partition_values string")
    arrow_out = to_arrow_schema(out_schema)
    arrow_frame = to_arrow_schema(frame_schema)
    wanted = [*keys, feature_date, available_at, *features]

    def run(batches: Iterator) -> Iterator:
        import duckdb
        import pyarrow as pa

        files = [(u, json.loads(p)) for b in batches for u, p in zip(*b.to_pydict().values(), strict=True)]
        if not files:
            return
        labels = pa.ipc.open_stream(labels_ipc.value).read_all()
        con = duckdb.connect(config={"threads": 1})  # one Spark task, one core
        con.register("labels", labels)
        con.execute(label_buckets_sql(ttl_micros))
        newest = _newest_sql(keys, ttl_micros, available_at, feature_date, features)
        paths = [_local_path(uri) for uri, _ in files]
        if all(paths):
            # DuckDB reads local files itself, streaming and several times faster than Arrow.
            con.register("parts", _partitions_table(files, paths, arrow_frame))
            con.execute(_local_feats_sql(paths, files, wanted, available_at, feature_date))
            yield from _typed(con.sql(newest).to_arrow_table(), available_at, feature_date, arrow_out).to_batches()
            return
        for chunk in _chunks(files, wanted, arrow_frame):  # object stores and HDFS: through Arrow's filesystems
            con.register("feats", _as_micros(chunk, available_at, feature_date))
            found = con.sql(newest).to_arrow_table()
            con.unregister("feats")
            yield from _typed(found, available_at, feature_date, arrow_out).to_batches()

    return listing.mapInArrow(run, out_schema)


def _local_path(uri: str) -> str | None:
    """The file system path of a local file's URI (``file:`` or no scheme), else None."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else uri
    return None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _partitions_table(files, paths, arrow_frame):
    """One row per file: its path and its partition values, typed as in the frame."""
    import pyarrow as pa

    names = sorted({name for _, partitions in files for name in partitions})
    columns = {"_file": pa.array(paths, pa.string())}
    for name in names:
        raw = pa.array([partitions.get(name) for _, partitions in files], pa.string())
        columns[name] = raw.cast(arrow_frame.field(name).type)
    return pa.table(columns)


def _local_feats_sql(paths, files, wanted, available_at: str, feature_date: str) -> str:
    """The view ``feats``: the wanted columns of the files, times as integers (see ``_as_micros``),
    partition columns from the listing (``parts``). Files written before a column was added read it
    as null (union by name), as Spark does."""
    partition_columns = {name for _, partitions in files for name in partitions}

    def column(name: str) -> str:
        source = f"p.{_q(name)}" if name in partition_columns else f"r.{_q(name)}"
        if name == available_at:
            return f"epoch_us({source}) AS {_q(name)}"
        if name == feature_date:
            return f"CAST(CAST({source} AS DATE) - DATE '1970-01-01' AS INTEGER) AS {_q(name)}"
        return f"{source} AS {_q(name)}"

    listing = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return f"""
        CREATE TEMP VIEW feats AS
        SELECT {", ".join(column(c) for c in wanted)}
        FROM read_parquet([{listing}], filename = true, union_by_name = true, hive_partitioning = false) r
        JOIN parts p ON r.filename = p._file"""


def _chunks(files, wanted, arrow_frame) -> Iterator:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    pending, rows = [], 0
    for uri, partitions in files:
        fs, path = pafs.FileSystem.from_uri(_arrow_uri(uri))
        # Partition values come from the listing, not from parsing the path again.
        table = pq.read_table(
            path, filesystem=fs, columns=[c for c in wanted if c not in partitions], partitioning=None
        )
        for name, value in partitions.items():
            if name in wanted:
                typed = pa.array([value], pa.string()).cast(arrow_frame.field(name).type)
                table = table.append_column(name, pa.repeat(typed[0], table.num_rows))
        pending.append(table.select(wanted))
        rows += table.num_rows
        if rows >= _ROWS_PER_CHUNK:
            yield pa.concat_tables(pending, promote_options="permissive")
            pending, rows = [], 0
    if pending:
        yield pa.concat_tables(pending, promote_options="permissive")


def _as_micros(table, available_at: str, feature_date: str):
    """Times as plain integers (microseconds, days since 1970): the join compares numbers, whatever
    the files' timestamp flavour (Spark's INT96, Delta's micros, tz-aware or not; all UTC instants)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    micros = pc.cast(pc.cast(table[available_at], pa.timestamp("us")), pa.int64())
    days = pc.cast(pc.cast(table[feature_date], pa.date32()), pa.int32())
    table = table.set_column(table.schema.get_field_index(available_at), available_at, micros)
    return table.set_column(table.schema.get_field_index(feature_date), feature_date, days)


def _newest_sql(keys, ttl_micros: int, available_at: str, feature_date: str, features) -> str:
    q = _q
    day_span = 1 << (DAY_BITS - 1)
    # Same order as the bucketed plan: age within the TTL in the high bits, feature_date's day offset
    # from the label day (clamped) in the low ones.
    order = (
        f"((f.{q(available_at)} - l._t + {ttl_micros}) << {DAY_BITS}) + "
        f"least(greatest(f.{q(feature_date)} - (l._t // 86400000000), {-day_span}), {day_span - 1}) + {day_span}"
    )
    values = ", ".join(f"{q(c)} := f.{q(c)}" for c in [available_at, feature_date, *features])
    # Equal keys and equal TTL-wide time bucket (labels sit in their own bucket and the one before,
    # see ``label_buckets_sql``): a hash join that pairs a feature row only with the labels of its
    # key that are close in time, instead of with every label of its key.
    on = " AND ".join(f"f.{q(k)} = l.{q(k)}" for k in [*keys]) + f" AND f.{q(available_at)} // {ttl_micros} = l._b"
    label_keys = ", ".join(f"l.{q(k)}" for k in keys)
    return f"""
        SELECT {", ".join(q(k) for k in keys)}, _t, {ORDER}, newest.*
        FROM (
            SELECT {label_keys}, l._t, max({order}) AS {ORDER}, arg_max(struct_pack({values}), {order}) AS newest
            FROM feats f JOIN labels_in_buckets l
              ON {on} AND f.{q(available_at)} <= l._t AND f.{q(available_at)} > l._t - {ttl_micros}
            GROUP BY {label_keys}, l._t
        )"""


def label_buckets_sql(ttl_micros: int) -> str:
    return f"""
        CREATE TEMP TABLE labels_in_buckets AS
        SELECT *, unnest([_t // {ttl_micros}, _t // {ttl_micros} - 1]) AS _b FROM labels"""


def _typed(found, available_at: str, feature_date: str, arrow_out):
    import pyarrow as pa
    import pyarrow.compute as pc

    found = found.set_column(
        found.schema.get_field_index(available_at),
        available_at,
        pc.cast(found[available_at], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    )
    found = found.set_column(
        found.schema.get_field_index(feature_date),
        feature_date,
        pc.cast(found[feature_date], pa.int32()).cast(pa.date32()),
    )
    return found.select(arrow_out.names).cast(arrow_out)
