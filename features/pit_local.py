"""The point-in-time join on one machine: DuckDB alone, no Spark and no JVM.

The same answer as ``features/pit.py`` (its property test runs this plan too): every label row
takes, from each view, the newest feature row of its keys already known (``available_at <= label
time``) and still fresh (``label time - available_at < ttl``), ties on ``available_at`` going to
the newer ``feature_date``; nulls where there is none; every label row once, in the order given.

It is the columnar plan's task (``pit_columnar``) run once over every file, with all cores and a
memory limit, instead of once per Spark task: DuckDB reads the feature files itself (local files;
object stores come through Arrow's file systems), pairs each feature row only with the labels of
its keys in the same or the previous TTL-wide time bucket (a hash join built on the labels, the
feature rows streamed through it) and keeps the newest match per label row. Files whose
``available_at`` range (Delta statistics, Parquet footers) cannot matter to any label are not read.

``join_to_parquet`` runs the same join from a label file to an answer file, DuckDB reading and
writing both: labels and answer larger than memory stay on disk (``lakecart features join``).

Use it where the work fits one machine and a JVM's start-up would dominate:
notebooks, ``lakecart features join``, a service. It needs no cluster, but it is no scale path:
the Spark plans are (``point_in_time_join(..., plan="local")`` runs this one in the driver).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

from lakecart.features import pit_columnar
from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, FeatureView

_MICROS = "_pit_t"  # the label time in microseconds, as the view answers see it


def point_in_time_join(
    labels: pa.Table,
    label_time: str,
    views: Sequence[tuple[FeatureView, str]],
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> pa.Table:
    """``labels`` with, per view, its feature columns (``<view table>__<feature>``) and the
    ``available_at`` of the row used (``feature_time__<view table>``), as the Spark plans name them.

    ``views`` pairs each view with the location of its feature table: a Delta table's root or a
    folder of Parquet files (hive-style partition folders allowed), local or on an object store.
    ``threads`` defaults to every core; ``memory_limit`` (DuckDB's, e.g. ``"1GB"``) bounds what the
    join holds before it spills to disk (default: DuckDB's, 80% of memory)."""
    resolved = []
    for view, location in views:
        files, schema = feature_files(location)
        resolved.append((view, files, schema))
    return join_files(labels, label_time, resolved, threads=threads, memory_limit=memory_limit)


def join_files(
    labels: pa.Table,
    label_time: str,
    views: Sequence[tuple[FeatureView, Sequence[pit_columnar.FeatureFile], pa.Schema]],
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> pa.Table:
    """``point_in_time_join`` over feature tables given as their files and schema (Arrow), as
    ``feature_files`` lists them or Spark's ``pit_columnar.files_of`` finds them under a frame."""
    import duckdb

    if label_time not in labels.column_names:
        raise ValueError(f"the labels have no column {label_time!r}; they have {labels.column_names}")
    micros = _micros(labels[label_time])
    valid = micros.filter(pc.is_valid(micros))
    span = (pc.min(valid).as_py(), pc.max(valid).as_py()) if len(valid) else None
    config = {"threads": threads or os.cpu_count() or 1}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    columns = {name: labels[name] for name in labels.column_names}
    times = {}
    try:
        for index, (view, files, schema) in enumerate(views):
            _check(view, labels.column_names, schema)
            part, label_keys = _label_part(labels, micros, view, schema, index)
            spec = _spec(view, files, label_keys)
            needed = [(f.uri, f.partition_values) for f in files if pit_columnar.may_matter(f, span, spec.ttl_micros)]
            found = pit_columnar.answer_view(con, part, _MICROS, spec, needed, schema, FEATURE_DATE, AVAILABLE_AT)
            times[spec.time_column] = found.pop(spec.time_column)
            columns.update(found)
    finally:
        con.close()
    return pa.table({**columns, **times})


def join_to_parquet(
    labels: str | pa.Table,
    label_time: str,
    views: Sequence[tuple[FeatureView, str]],
    out: str,
    *,
    columns: Sequence[str] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> dict:
    """``point_in_time_join``'s answer written to the Parquet file ``out`` by DuckDB, the labels read
    by it too: neither the labels nor the answer pass through Python, so both may be larger than
    memory (``memory_limit`` bounds the join; DuckDB spills the rest to a temporary folder). The
    same rows and columns, in the order given, as ``point_in_time_join``; ``columns`` keeps only
    those. ``labels`` is a Parquet file or a folder of them (read in ``pyarrow.dataset``'s order,
    hive-style folder names ignored; on an object store they are read through Arrow, into memory),
    or an Arrow table.

    Returns the rows and columns written, the share of the rows each view answered (by table name: its
    ``feature_time__<table>`` not null; views whose time column is not written are left out) and the
    labels' time range."""
    import duckdb

    from lakecart.features.pit import feature_time_column

    config = {"threads": threads or os.cpu_count() or 1}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not isinstance(labels, pa.Table) and pit_columnar._local_path(labels) is None:
            import pyarrow.dataset as ds

            labels = ds.dataset(pit_columnar.arrow_uri(labels), format="parquet").to_table()
        _labels_view(con, labels)
        types = {name: kind for name, kind, *_ in con.execute("DESCRIBE lab").fetchall() if name != _ROW}
        names = list(types)
        if label_time not in names:
            raise ValueError(f"the labels have no column {label_time!r}; they have {names}")
        con.execute(f"CREATE TEMP VIEW lab_t AS SELECT *, {_micros_sql(label_time, types[label_time])} AS _t FROM lab")
        span = con.execute("SELECT min(_t), max(_t) FROM lab_t").fetchall()[0]
        span = None if span[0] is None else span
        selected, times, joins = [(n, f"lab.{_q(n)}") for n in names], [], []
        for index, (view, location) in enumerate(views):
            files, schema = feature_files(location)
            _check(view, names, schema)
            feature_types = _duckdb_types(con, schema)
            keys = ", ".join(f"CAST({_q(k)} AS {feature_types[k]}) AS {_q(k)}" for k in view.entity.keys)
            con.execute(f"CREATE OR REPLACE TEMP VIEW labels AS SELECT {_ROW} AS _row, {keys}, _t FROM lab_t")
            spec = _spec(view, files, tuple(view.entity.keys))
            needed = [(f.uri, f.partition_values) for f in files if pit_columnar.may_matter(f, span, spec.ttl_micros)]
            found = f"found{index}"
            try:
                answered = pit_columnar.newest_into(con, found, spec, needed, schema, FEATURE_DATE, AVAILABLE_AT)
            except duckdb.ConversionException as exc:  # a label key the feature table's type cannot hold
                raise ValueError(
                    f"{view.qualified_name}: a label key does not convert to the feature table's type: {exc}"
                ) from None
            if answered:
                joins.append(f"LEFT JOIN {found} ON {found}._row = lab.{_ROW}")

            def value(field: str, found: str = found, answered: bool = answered) -> str:
                return f"{found}.newest.{_q(field)}" if answered else "NULL"

            for feature, name in zip(spec.features, spec.feature_columns, strict=True):
                selected.append((name, f"CAST({value(feature)} AS {feature_types[feature]})"))
            times.append((spec.time_column, f"CAST(make_timestamp({value(AVAILABLE_AT)}) AS TIMESTAMPTZ)"))
        outputs = dict([*selected, *times])
        if columns is not None:
            unknown = [c for c in columns if c not in outputs]
            if unknown:
                raise ValueError(f"the join gives no columns {unknown}; it gives {list(outputs)}")
            outputs = {c: outputs[c] for c in columns}
        target = "'" + str(out).replace("'", "''") + "'"
        listed = ", ".join(f"{sql} AS {_q(name)}" for name, sql in outputs.items())
        con.execute(
            f"COPY (SELECT {listed} FROM lab {' '.join(joins)} ORDER BY lab.{_ROW}) TO {target} (FORMAT parquet)"
        )
        answered_by = [feature_time_column(v) for v, _ in views if feature_time_column(v) in outputs]
        counted = ", ".join(["count(*)", *(f"count({_q(c)})" for c in answered_by)])
        rows, *found_counts = con.execute(f"SELECT {counted} FROM read_parquet({target})").fetchall()[0]
    finally:
        con.close()
    return {
        "rows": rows,
        "columns": len(outputs),
        "share_of_rows_with_features": {
            column.removeprefix("feature_time__"): round(n / max(1, rows), 4)
            for column, n in zip(answered_by, found_counts, strict=True)
        },
        "label_time_range": None if span is None else [str(_from_micros(t)) for t in span],
    }


_ROW = "_pit_label_row"  # a label row's place in the input: (file index << 40) + its row in the file


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _labels_view(con, labels) -> None:
    """DuckDB's view ``lab``: the label rows with ``_ROW``, their place in the input."""
    if isinstance(labels, pa.Table):
        import numpy as np

        if _ROW in labels.column_names:
            raise ValueError(f"the labels may not have a column named {_ROW!r}")
        con.register("lab_arrow", labels.append_column(_ROW, pa.array(np.arange(len(labels), dtype=np.int64))))
        con.execute("CREATE TEMP VIEW lab AS SELECT * FROM lab_arrow")
        return
    files = parquet_files(labels)  # the order read_labels reads them in
    if not files:
        raise ValueError(f"no Parquet files at {labels}")
    con.register("lab_files", pa.table({"_file": files, "_index": pa.array(range(len(files)), pa.int64())}))
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    every = f"read_parquet([{listing}], union_by_name = true)"  # a name in any of the files
    plain = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {every}").fetchall()]
    taken = sorted({"_pit_file", "file_row_number", _ROW} & set(plain))
    if taken:  # the names this view adds to keep the rows' order
        raise ValueError(f"the labels may not have columns named {taken}")
    raw = f"read_parquet([{listing}], filename = '_pit_file', file_row_number = true, hive_partitioning = false)"
    kept = [c for c in (r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()) if c in plain]
    con.execute(
        f"CREATE TEMP VIEW lab AS SELECT {', '.join('r.' + _q(c) for c in kept)}, "
        f"(f._index << 40) + r.file_row_number AS {_ROW} FROM {raw} r JOIN lab_files f ON r._pit_file = f._file"
    )


def parquet_files(path: str) -> list[str]:
    """The Parquet files ``pyarrow.dataset.dataset(path)`` reads, in its order: ``path`` itself, or
    every file below the folder ``path`` except those under a name starting with ``.`` or ``_``
    (``_SUCCESS``, ``.crc``, ``_delta_log``), sorted by path. Local paths only (``file:`` URIs too).
    Listed with ``pyarrow.fs`` because importing ``pyarrow.dataset`` (and with it pandas) costs a
    short join a tenth of its time."""
    import pyarrow.fs as pafs

    local = pit_columnar._local_path(path)
    if local is None:
        raise ValueError(f"{path}: label files must be local here; read them to Arrow first (read_labels)")
    fs, root = pafs.LocalFileSystem(), os.path.abspath(local)
    found = fs.get_file_info(root)
    if found.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such file or folder: {path}")
    if found.type == pafs.FileType.File:
        return [root]
    listing = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(
        f.path
        for f in listing
        if f.type == pafs.FileType.File
        and not any(part.startswith((".", "_")) for part in os.path.relpath(f.path, root).split(os.sep))
    )


def _micros_sql(column: str, duckdb_type: str) -> str:
    """The label time in microseconds since 1970, as ``_micros`` computes it (a date is its
    midnight; a time without a zone is UTC: the connection's time zone)."""
    if duckdb_type == "DATE" or duckdb_type.startswith("TIMESTAMP"):  # any unit, with a zone or not
        return f"epoch_us(CAST({_q(column)} AS TIMESTAMPTZ))"
    raise ValueError(f"label times must be dates or timestamps, not {duckdb_type}")


def _duckdb_types(con, schema: pa.Schema) -> dict[str, str]:
    """Each column of an Arrow schema as DuckDB types it."""
    con.register("_schema_probe", schema.empty_table())
    try:
        return dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE _schema_probe)").fetchall())
    finally:
        con.unregister("_schema_probe")


def _from_micros(micros: int):
    from datetime import UTC, datetime

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def feature_files(location: str) -> tuple[list[pit_columnar.FeatureFile], pa.Schema]:
    """The data files of the feature table at ``location`` (a Delta table's current files, or every
    Parquet file under a folder), with partition values and ``available_at`` ranges, and the
    table's schema (Arrow) including its partition columns."""
    from lakecart import storage

    if not urlparse(location).scheme:
        location = os.path.abspath(location)
    table = storage.open_delta(location) if storage.is_delta(location) else None
    if table is not None:  # its log is read once, here
        if not pit_columnar.plain_delta(table):
            raise ValueError(f"{location}: deletion vectors or column mapping; read it with the Spark plans")
        schema = pa.schema(table.schema().to_arrow())
        partitions = set(table.metadata().partition_columns)
        uris = table.file_uris()
        ranges = pit_columnar.delta_time_ranges(table, AVAILABLE_AT)
    elif (listed := _plain_local_folder(location)) is not None:
        import pyarrow.parquet as pq

        uris, partitions = listed, set()
        schema = pq.read_schema(listed[0])  # what pyarrow.dataset reads: the first file's
        ranges = pit_columnar.footer_time_ranges(uris, AVAILABLE_AT)
    else:  # on an object store, or hive-style folders: their partition columns typed as Arrow does
        import pyarrow.dataset as ds

        dataset = ds.dataset(
            pit_columnar.arrow_uri(location),
            format="parquet",
            partitioning="hive",
        )
        uris = [_as_uri(location, path) for path in dataset.files]
        schema = dataset.schema
        partitions = {name for uri in uris for name in pit_columnar.partition_values(uri, set(schema.names))}
        ranges = pit_columnar.footer_time_ranges(uris, AVAILABLE_AT) if uris else {}
    files = [
        pit_columnar.FeatureFile(
            uri, pit_columnar.partition_values(uri, partitions), ranges.get(unquote(urlparse(uri).path))
        )
        for uri in sorted(uris)
    ]
    return files, schema


def _plain_local_folder(location: str) -> list[str] | None:
    """A local folder's Parquet files (``parquet_files``) when there are some and none lies in a
    hive-style folder (``name=value``), else None."""
    local = pit_columnar._local_path(location)
    if local is None or not os.path.isdir(local):
        return None
    files = parquet_files(local)
    folders = {part for f in files for part in os.path.relpath(f, local).split(os.sep)[:-1]}
    return files if files and not any("=" in part for part in folders) else None


def _as_uri(location: str, path: str) -> str:
    """A file found by Arrow (a path on the location's file system) as a URI like ``location``."""
    scheme = urlparse(location).scheme
    if scheme in ("", "file"):
        return path
    return f"{scheme}://{path}"


def _micros(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """Label times as microseconds since 1970 (a date is its midnight; a time without a zone is
    UTC, as the Spark session reads it)."""
    if pa.types.is_date(times.type):
        times = pc.cast(times, pa.timestamp("us"))
    elif pa.types.is_timestamp(times.type):
        times = pc.cast(times, pa.timestamp("us", tz=times.type.tz))
    else:
        raise ValueError(f"label times must be dates or timestamps, not {times.type}")
    return pc.cast(times, pa.int64())


def _check(view: FeatureView, label_columns: Sequence[str], schema: pa.Schema) -> None:
    """What the local plan cannot answer, as an error naming the view: a TTL longer than the
    bucketed join takes, or a key column missing from the labels or the feature table."""
    from lakecart.features.pit import BUCKETED_TTL_LIMIT

    if view.ttl > BUCKETED_TTL_LIMIT:
        raise ValueError(
            f"{view.qualified_name}: the local plan takes TTLs up to {BUCKETED_TTL_LIMIT}, not {view.ttl}; "
            "use the Spark plans"
        )
    for key in view.entity.keys:
        if key not in label_columns:
            raise ValueError(f"{view.qualified_name}: the labels have no key column {key!r}")
        if key not in schema.names:
            raise ValueError(f"{view.qualified_name}: the feature table has no key column {key!r}")


def _spec(view: FeatureView, files, label_keys: tuple[str, ...]) -> pit_columnar.ColumnarView:
    from lakecart.features.pit import feature_column, feature_time_column

    return pit_columnar.ColumnarView(
        files=list(files),
        keys=tuple(view.entity.keys),
        label_keys=label_keys,
        ttl_micros=view.ttl // timedelta(microseconds=1),
        features=tuple(view.feature_names()),
        feature_columns=tuple(feature_column(view, f) for f in view.feature_names()),
        time_column=feature_time_column(view),
        frame_schema=None,
    )


def _label_part(labels: pa.Table, micros, view: FeatureView, schema: pa.Schema, index: int):
    """The label columns one view's answer needs: its keys typed as the feature table types them
    (as Spark would cast them), and the label time in microseconds."""
    part = {_MICROS: micros}
    label_keys = []
    for key in view.entity.keys:
        name = f"_pit_key{index}_{key}"
        try:
            part[name] = pc.cast(labels[key], schema.field(key).type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(
                f"{view.qualified_name}: label column {key!r} ({labels[key].type}) does not convert to the "
                f"feature table's {schema.field(key).type}: {exc}"
            ) from None
        label_keys.append(name)
    return pa.table(part), tuple(label_keys)
