"""The columnar point-in-time plan: Spark schedules, a vectorised engine joins inside each task.

Spark's row-at-a-time execution spends most of a large point-in-time join decoding and probing the
feature rows (BENCHMARKS.md). Here DuckDB does that inside Spark tasks, joining feature files with
label rows (Arrow) on (keys, TTL-wide time bucket). DuckDB reads local files itself; files on other
file systems (S3, HDFS, ...) come through Arrow's file systems. Two ways to split the work:

- **by label time** (``answer_by_label_time``): the label rows are cut into stretches of time with
  equal counts, one per task; a task answers its labels completely from the files whose
  ``available_at`` range (Delta statistics, Parquet footers) overlaps its stretch widened by the
  TTL, and its output is the final rows: no shuffle, merge or join back. Every task reads a TTL's
  worth of files more than its stretch, so this is chosen where that stays under
  ``BY_LABEL_TIME_MAX_READ`` passes over the rows (few tasks, or label times spanning much more
  than tasks x TTL).
- **by file** (``newest_candidates``): each task takes a contiguous run of files and keeps per
  (keys, label time) the newest candidate among them; Spark merges the candidates of a label
  across tasks and joins them back. Every file is read once, however many tasks.

The same code runs on a laptop (two tasks) and a cluster (one task per core).

It applies where Spark would otherwise scan files anyway: the feature frame must be a plain read of
a Parquet or Delta table (no filters or projections on top; Delta tables without deletion vectors
or column mapping, which only Delta's own reader understands), and the labels must fit in a
broadcast. ``files_of`` says whether a frame qualifies.

The single-node plan (``pit_local``) runs the same per-view answer (``answer_view``) once over all
of a table's files, listed and pruned by the same public helpers (``plain_delta``,
``delta_time_ranges``, ``footer_time_ranges``, ``partition_values``, ``may_matter``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from lakecart.storage import open_delta

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
    # The least and greatest available_at in the file (microseconds), from Delta's statistics or the
    # Parquet footer; None when neither has them. Only used to skip files, never to answer.
    time_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class ColumnarView:
    """What a task needs to answer one view for its label rows."""

    files: list[FeatureFile]
    keys: tuple[str, ...]  # the view's key columns in its files
    label_keys: tuple[str, ...]  # the label table's columns holding them, typed as in the files
    ttl_micros: int
    features: tuple[str, ...]
    feature_columns: tuple[str, ...]  # the output's names for ``features``
    time_column: str  # the output's name for the available_at of the row used
    frame_schema: T.StructType


def is_file_scan(frame: DataFrame) -> bool:
    """Whether ``frame`` is a plain read of a table's files (no filters, projections or transforms)."""
    try:
        plan = frame._jdf.queryExecution().optimizedPlan()
    except Exception:  # Spark Connect has no JVM-side plan to inspect
        return False
    return plan.getClass().getSimpleName() == "LogicalRelation"


def files_of(frame: DataFrame, time_column: str | None = None) -> list[FeatureFile] | None:
    """The files a plain read of a Parquet or Delta table consists of, with their partition values
    (and the range of ``time_column`` in each where statistics have it); None when ``frame`` is
    anything else (a filter, a projection, an in-memory frame, Spark Connect)."""
    if not is_file_scan(frame):
        return None
    uris = list(frame.inputFiles())
    if not all(u.endswith(".parquet") for u in uris):
        return None
    root = _delta_root(uris[0]) if uris else None
    table = open_delta(root) if root is not None else None
    if table is not None and not plain_delta(table):
        return None
    partition_columns = set(frame.columns)
    ranges = {}
    if time_column and uris:
        ranges = delta_time_ranges(table, time_column) if table else footer_time_ranges(uris, time_column)
    return [FeatureFile(u, partition_values(u, partition_columns), ranges.get(unquote(urlparse(u).path))) for u in uris]


def rows_in_files(frame: DataFrame) -> int | None:
    """The row count of a plain read of a Parquet or Delta table, from its metadata alone (Delta's
    log, Parquet footers): no Spark job. None when that is not known."""
    files = files_of(frame)
    if not files:
        return None if files is None else 0
    root = _delta_root(files[0].uri)
    if root is not None:
        from lakecart.storage import file_actions, recorded_rows

        actions = file_actions(open_delta(root))
        return recorded_rows(actions) if actions.num_rows == len(files) else None
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    def rows(uri: str) -> int:
        fs, path = pafs.FileSystem.from_uri(arrow_uri(uri))
        with fs.open_input_file(path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(rows, [f.uri for f in files]))


def _micros(instant) -> int:
    from datetime import UTC, datetime, timedelta

    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# Delta keeps timestamp statistics in milliseconds, truncated: a file's greatest time may be up to
# 1 ms past its recorded maximum.
_STATS_SLACK_MICROS = 1000


def delta_time_ranges(table, time_column: str) -> dict[str, tuple[int, int]]:
    """Per file of the Delta ``table`` (delta-rs, ``storage.open_delta``; its path, decoded), the
    range of ``time_column`` in Delta's file statistics."""
    from lakecart.storage import file_actions

    actions = file_actions(table)
    low, high = f"min.{time_column}", f"max.{time_column}"
    if low not in actions.column_names or high not in actions.column_names:
        return {}
    base = unquote(urlparse(table.table_uri).path).rstrip("/")
    ranges = {}
    for path, least, greatest in zip(*actions.select(["path", low, high]).to_pydict().values(), strict=True):
        if least is not None and greatest is not None:
            ranges[f"{base}/{unquote(path)}"] = (_micros(least), _micros(greatest) + _STATS_SLACK_MICROS)
    return ranges


def footer_time_ranges(uris: list[str], time_column: str) -> dict[str, tuple[int, int]]:
    """Per file (its path, decoded), the range of ``time_column`` over its row groups' statistics,
    read from the Parquet footers (a few threads: on object storage each footer is a request)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    def time_range(uri: str):
        fs, path = pafs.FileSystem.from_uri(arrow_uri(uri))
        with fs.open_input_file(path) as handle:
            meta = pq.ParquetFile(handle).metadata
        lows, highs = [], []
        for group in range(meta.num_row_groups):
            columns = meta.row_group(group)
            found = [columns.column(i) for i in range(columns.num_columns)]
            found = [c for c in found if c.path_in_schema == time_column]
            stats = found[0].statistics if found else None
            if stats is None or not stats.has_min_max or not hasattr(stats.min, "tzinfo"):
                return None  # e.g. Spark's INT96 timestamps carry no statistics
            lows.append(_micros(stats.min))
            highs.append(_micros(stats.max) + 1)  # nanoseconds truncated to microseconds
        return (min(lows), max(highs)) if lows else None

    with ThreadPoolExecutor(8) as pool:
        found = pool.map(time_range, uris)
        return {unquote(urlparse(u).path): r for u, r in zip(uris, found, strict=True) if r is not None}


def _delta_root(uri: str) -> str | None:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(arrow_uri(uri))
    parts = path.split("/")
    for end in range(len(parts) - 1, 0, -1):
        candidate = "/".join(parts[:end])
        if fs.get_file_info(f"{candidate}/_delta_log").type == pafs.FileType.Directory:
            return uri[: len(uri) - len(path)] + candidate if "://" in uri else candidate
    return None


def plain_delta(table) -> bool:
    """Whether the Delta ``table`` (delta-rs, ``storage.open_delta``) can be read as plain Parquet
    files: no deletion vectors, no column mapping."""
    protocol = table.protocol()
    version = protocol.min_reader_version
    # Reader version 2 means column mapping; version 3 lists its features.
    return version == 1 or (
        version == 3 and not set(protocol.reader_features or []) & {"deletionVectors", "columnMapping"}
    )


def partition_values(uri: str, columns: set[str]) -> dict[str, str | None]:
    values = {}
    for segment in urlparse(uri).path.split("/")[:-1]:
        name, sep, value = segment.partition("=")
        if sep and name in columns:
            values[name] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return values


def arrow_uri(uri: str) -> str:
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
    ``_order`` (greater is newer: (available_at, feature_date)), ``available_at`` and the features.
    Spark merges the candidates of one label across tasks."""
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
        for found in _over_files(con, newest, files, wanted, arrow_frame, available_at, feature_date):
            yield from _typed(found, available_at, arrow_out).to_batches()

    return listing.mapInArrow(run, out_schema)


# Each task of the by-label-time split reads the files that can matter to its stretch of label
# times, a TTL's worth more than the stretch. Where that adds up to more than this many times the
# files any label needs, splitting by runs of files (``newest_candidates``) reads less.
BY_LABEL_TIME_MAX_READ = 2.0


@dataclass(frozen=True)
class Stretches:
    """The label rows cut into one stretch of label time per task, equal counts (rows with the same
    time may fall on both sides of a cut)."""

    order: object  # numpy: the label rows by time, rows without a time first
    runs: list[tuple[int, int]]  # per task, (start, end) in ``order``
    bounds: list[tuple[int, int] | None]  # per task, its least and greatest label time (None: no time)

    @classmethod
    def of(cls, times, tasks: int) -> Stretches:
        """``times``: the label times in microseconds (Arrow, nulls allowed)."""
        import numpy as np
        import pyarrow.compute as pc

        valid = pc.is_valid(times).to_numpy(zero_copy_only=False)
        values = pc.fill_null(times, 0).to_numpy()
        order = np.lexsort((values, valid))  # nulls (valid False) first, then by time
        cuts = [(len(order) * i) // tasks for i in range(tasks + 1)]
        runs = [(cuts[i], cuts[i + 1]) for i in range(tasks) if cuts[i] < cuts[i + 1]]
        bounds = []
        for begin, end in runs:
            own = order[begin:end][valid[order[begin:end]]]
            bounds.append((int(values[own].min()), int(values[own].max())) if len(own) else None)
        return cls(order, runs, bounds)

    def files_per_task(self, view: ColumnarView) -> list[list[FeatureFile]]:
        return [[f for f in view.files if may_matter(f, b, view.ttl_micros)] for b in self.bounds]

    def files_for_any(self, view: ColumnarView) -> list[FeatureFile]:
        """The files that can hold a candidate for any label: all the by-file split needs to read."""
        known = [b for b in self.bounds if b is not None]
        span = (min(b[0] for b in known), max(b[1] for b in known)) if known else None
        return [f for f in view.files if may_matter(f, span, view.ttl_micros)]

    def by_label_time_pays(self, view: ColumnarView) -> bool:
        """Whether the tasks' files add up to at most BY_LABEL_TIME_MAX_READ times the files any
        label needs (counted in files: a table's files are of similar size)."""
        per_task = sum(len(files) for files in self.files_per_task(view))
        return per_task <= BY_LABEL_TIME_MAX_READ * max(1, len(self.files_for_any(view)))


def answer_by_label_time(
    labels,  # pyarrow.Table: the label rows, their time in microseconds in column ``micros``
    micros: str,
    stretches: Stretches,
    views: Sequence[ColumnarView],
    feature_date: str,
    available_at: str,
    out_schema: T.StructType,  # label columns, then per view its feature columns and time column
) -> DataFrame:
    """Every label row with, per view, the features and available_at of the newest known, fresh
    feature row of its keys (nulls when there is none), in the columns ``out_schema`` names.

    Each task gets one of the ``stretches`` and answers it completely, reading only the files whose
    available_at range (``FeatureFile.time_range``) overlaps its stretch widened by the TTL. No
    candidates cross tasks: no merge, no join back. Label columns pass through as Arrow, untouched
    by DuckDB."""
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql.pandas.types import to_arrow_schema

    spark = SparkSession.getActiveSession()
    labels = labels.take(stretches.order)
    per_view = [stretches.files_per_task(view) for view in views]
    specs = [
        {
            "offset": begin,
            "length": end - begin,
            "files": [[(f.uri, f.partition_values) for f in files[task]] for files in per_view],
        }
        for task, (begin, end) in enumerate(stretches.runs)
    ]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, labels.schema) as writer:
        writer.write_table(labels)
    # Labels and per-task file lists go out once per executor, not in every task's closure.
    shipped = spark.sparkContext.broadcast((sink.getvalue().to_pybytes(), specs))
    arrow_out = to_arrow_schema(out_schema)
    arrow_frames = [to_arrow_schema(v.frame_schema) for v in views]
    passed = [n for n in arrow_out.names if n in labels.column_names]
    views = [replace(v, files=[]) for v in views]  # each task's files are in its spec

    def run(batches: Iterator) -> Iterator:
        import duckdb

        label_ipc, specs = shipped.value
        for batch in batches:
            for spec in (specs[task] for task in batch.column(0).to_pylist()):
                part = pa.ipc.open_stream(label_ipc).read_all().slice(spec["offset"], spec["length"])
                con = duckdb.connect(config={"threads": 1})  # one Spark task, one core
                columns = {name: part[name] for name in passed}
                for view, arrow_frame, files in zip(views, arrow_frames, spec["files"], strict=True):
                    columns.update(answer_view(con, part, micros, view, files, arrow_frame, feature_date, available_at))
                con.close()
                table = pa.table({name: columns[name] for name in arrow_out.names})
                yield from table.cast(arrow_out).to_batches(max_chunksize=10_000)

    # One row per task, its index into the specs: made in the JVM, no Python needed to list them.
    listing = spark.range(len(specs), numPartitions=max(1, len(specs)))
    return listing.mapInArrow(run, out_schema)


def may_matter(file: FeatureFile, label_times: tuple[int, int] | None, ttl_micros: int) -> bool:
    """Whether ``file`` can hold a candidate for a label timed within ``label_times`` (least,
    greatest; None: no label with a time, nothing to match)."""
    if label_times is None:
        return False
    if file.time_range is None:
        return True
    (least, greatest), (low, high) = file.time_range, label_times
    return least <= high and greatest > low - ttl_micros


def answer_view(con, part, micros: str, view: ColumnarView, files, arrow_frame, feature_date, available_at) -> dict:
    """For the label rows ``part``, the view's output columns (Arrow arrays aligned with ``part``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(part)
    keys = list(view.keys)
    out_types = [arrow_frame.field(f).type for f in view.features]
    time_type = pa.timestamp("us", tz="UTC")
    pieces = []
    if files:
        narrow = {"_row": pa.array(np.arange(rows, dtype=np.int64))}
        narrow.update({k: part[label_key] for k, label_key in zip(keys, view.label_keys, strict=True)})
        narrow["_t"] = part[micros]
        con.register("labels", pa.table(narrow))
        con.execute(label_buckets_sql(view.ttl_micros))
        newest = _newest_per_row_sql(keys, view.ttl_micros, available_at, feature_date, view.features)
        wanted = [*keys, feature_date, available_at, *view.features]
        pieces = list(_over_files(con, newest, files, wanted, arrow_frame, available_at, feature_date))
        con.unregister("labels")
    if len(pieces) > 1:  # a label's candidates from several chunks: keep the newest
        con.register("pieces", pa.concat_tables(pieces))
        pieces = [
            con.sql(f"SELECT _row, arg_max(newest, {ORDER}) AS newest FROM pieces GROUP BY _row").to_arrow_table()
        ]
        con.unregister("pieces")
    if not pieces or not len(pieces[0]):
        found = {name: pa.nulls(rows, t) for name, t in zip(view.feature_columns, out_types, strict=True)}
        return {**found, view.time_column: pa.nulls(rows, time_type)}
    found = pieces[0]
    newest = found["newest"].combine_chunks()
    # Scatter the found rows to their label rows; null where a label found nothing.
    at = np.full(rows, -1, dtype=np.int64)
    at[found["_row"].to_numpy()] = np.arange(len(found), dtype=np.int64)
    at = pa.array(at, mask=at < 0)
    out = {
        name: pc.take(newest.field(feature), at).cast(t)
        for name, feature, t in zip(view.feature_columns, view.features, out_types, strict=True)
    }
    out[view.time_column] = pc.take(newest.field(available_at), at).cast(pa.int64()).cast(time_type)
    return out


def newest_into(con, table: str, view: ColumnarView, files, arrow_frame, feature_date, available_at) -> bool:
    """``answer_view``'s candidates kept in DuckDB: the newest candidate per label row in the temp
    table ``table`` (``_row``, ``newest``: a struct of available_at in microseconds and the
    features), for answers larger than memory. The label rows are DuckDB's view ``labels`` (``_row``,
    the view's keys, ``_t``). False, and no table, when no file can hold a candidate."""
    if not files:
        return False
    con.execute(label_buckets_sql(view.ttl_micros))
    newest = _newest_per_row_sql(list(view.keys), view.ttl_micros, available_at, feature_date, view.features)
    wanted = [*view.keys, feature_date, available_at, *view.features]
    pieces = f"{table}_pieces"
    count = 0
    for count, _ in enumerate(_feats(con, files, wanted, arrow_frame, available_at, feature_date), start=1):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {pieces} AS {newest}" if count == 1 else f"INSERT INTO {pieces} {newest}"
        )
    if count == 1:  # one pass (local files, read by DuckDB at once; or a single chunk): nothing to merge
        con.execute(f"ALTER TABLE {pieces} RENAME TO {table}")
    else:  # chunks through Arrow's file systems: a label's candidates from several, keep the newest
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT _row, arg_max(newest, {ORDER}) AS newest FROM {pieces} GROUP BY _row"
        )
        con.execute(f"DROP TABLE {pieces}")
    con.execute("DROP TABLE labels_in_buckets")
    return True


def _over_files(con, query: str, files, wanted, arrow_frame, available_at: str, feature_date: str) -> Iterator:
    """The results (Arrow) of ``query`` over each ``feats`` that ``_feats`` sets up."""
    for _ in _feats(con, files, wanted, arrow_frame, available_at, feature_date):
        yield con.sql(query).to_arrow_table()


def _feats(con, files, wanted, arrow_frame, available_at: str, feature_date: str) -> Iterator[None]:
    """Sets DuckDB's view ``feats`` to the ``wanted`` columns of ``files`` and yields while it holds
    them: once when DuckDB reads the files itself (local files: streaming and several times faster
    than Arrow), once per chunk when they come through Arrow's file systems (object stores, HDFS)."""
    paths = [_local_path(uri) for uri, _ in files]
    if all(paths):
        con.register("parts", _partitions_table(files, paths, arrow_frame))
        con.execute(_local_feats_sql(paths, files, wanted, available_at, feature_date))
        yield
        con.execute("DROP VIEW feats")
        con.unregister("parts")
        return
    for chunk in _chunks(files, wanted, arrow_frame):
        con.register("feats", _as_micros(chunk, available_at, feature_date))
        yield
        con.unregister("feats")


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
        fs, path = pafs.FileSystem.from_uri(arrow_uri(uri))
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


def _match_sql(keys, ttl_micros: int, available_at: str, feature_date: str) -> tuple[str, str]:
    """The pieces both ways of grouping share: a candidate's order and the join of ``feats`` with
    ``labels_in_buckets``."""
    q = _q
    day_span = 1 << (DAY_BITS - 1)
    # Same order as the bucketed plan: age within the TTL in the high bits, feature_date's day offset
    # from the label day (clamped) in the low ones.
    order = (
        f"((f.{q(available_at)} - l._t + {ttl_micros}) << {DAY_BITS}) + "
        f"least(greatest(f.{q(feature_date)} - (l._t // 86400000000), {-day_span}), {day_span - 1}) + {day_span}"
    )
    # Equal keys and equal TTL-wide time bucket (labels sit in their own bucket and the one before,
    # see ``label_buckets_sql``): a hash join that pairs a feature row only with the labels of its
    # key that are close in time, instead of with every label of its key.
    on = " AND ".join(f"f.{q(k)} = l.{q(k)}" for k in keys) + f" AND f.{q(available_at)} // {ttl_micros} = l._b"
    join = f"""feats f JOIN labels_in_buckets l
              ON {on} AND f.{q(available_at)} <= l._t AND f.{q(available_at)} > l._t - {ttl_micros}"""
    return order, join


def _newest_aggregates(order: str, carried) -> str:
    """The greatest ``order`` (as ``ORDER``) and each ``carried`` column of the row that has it (as
    ``_pit_c0``, ``_pit_c1``, ...). One ``arg_max_null`` per column takes about half the time of one
    ``arg_max`` over a struct of them; ``_null`` because a null value is that row's value (``arg_max``
    would skip to an older row). Feature rows are unique per key and feature_date, so ``order`` has
    no ties within a label's candidates and every column comes from the same row."""
    return ", ".join(
        [f"max({order}) AS {ORDER}", *(f"arg_max_null(f.{_q(c)}, {order}) AS _pit_c{i}" for i, c in enumerate(carried))]
    )


def _newest_sql(keys, ttl_micros: int, available_at: str, feature_date: str, features) -> str:
    """Per (keys, label time): the newest candidate's order, available_at and features."""
    order, join = _match_sql(keys, ttl_micros, available_at, feature_date)
    carried = [available_at, *features]
    label_keys = ", ".join(f"l.{_q(k)}" for k in keys)
    named = ", ".join(f"_pit_c{i} AS {_q(c)}" for i, c in enumerate(carried))
    return f"""
        SELECT {", ".join(_q(k) for k in keys)}, _t, {ORDER}, {named}
        FROM (
            SELECT {label_keys}, l._t, {_newest_aggregates(order, carried)}
            FROM {join}
            GROUP BY {label_keys}, l._t
        )"""


def _newest_per_row_sql(keys, ttl_micros: int, available_at: str, feature_date: str, features) -> str:
    """Per label row (``_row``) that has one: the newest candidate's order and its available_at and
    features (a struct)."""
    order, join = _match_sql(keys, ttl_micros, available_at, feature_date)
    carried = [available_at, *features]
    packed = "struct_pack(" + ", ".join(f"{_q(c)} := _pit_c{i}" for i, c in enumerate(carried)) + ")"
    return f"""
        SELECT _row, {ORDER}, {packed} AS newest
        FROM (
            SELECT l._row, {_newest_aggregates(order, carried)}
            FROM {join}
            GROUP BY l._row
        )"""


def label_buckets_sql(ttl_micros: int) -> str:
    return f"""
        CREATE OR REPLACE TEMP TABLE labels_in_buckets AS
        SELECT *, unnest([_t // {ttl_micros}, _t // {ttl_micros} - 1]) AS _b FROM labels WHERE _t IS NOT NULL"""


def _typed(found, available_at: str, arrow_out):
    import pyarrow as pa
    import pyarrow.compute as pc

    found = found.set_column(
        found.schema.get_field_index(available_at),
        available_at,
        pc.cast(found[available_at], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    )
    return found.select(arrow_out.names).cast(arrow_out)
