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

Use it where the labels and the result fit one machine and a JVM's start-up would dominate:
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

    from lakecart.features.pit import BUCKETED_TTL_LIMIT, feature_column, feature_time_column

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
            if view.ttl > BUCKETED_TTL_LIMIT:
                raise ValueError(
                    f"{view.qualified_name}: the local plan takes TTLs up to {BUCKETED_TTL_LIMIT}, not {view.ttl}; "
                    "use the Spark plans"
                )
            part, label_keys = _label_part(labels, micros, view, schema, index)
            spec = pit_columnar.ColumnarView(
                files=list(files),
                keys=tuple(view.entity.keys),
                label_keys=label_keys,
                ttl_micros=view.ttl // timedelta(microseconds=1),
                features=tuple(view.feature_names()),
                feature_columns=tuple(feature_column(view, f) for f in view.feature_names()),
                time_column=feature_time_column(view),
                frame_schema=None,
            )
            needed = [(f.uri, f.partition_values) for f in files if pit_columnar.may_matter(f, span, spec.ttl_micros)]
            found = pit_columnar.answer_view(con, part, _MICROS, spec, needed, schema, FEATURE_DATE, AVAILABLE_AT)
            times[spec.time_column] = found.pop(spec.time_column)
            columns.update(found)
    finally:
        con.close()
    return pa.table({**columns, **times})


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
    else:
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


def _label_part(labels: pa.Table, micros, view: FeatureView, schema: pa.Schema, index: int):
    """The label columns one view's answer needs: its keys typed as the feature table types them
    (as Spark would cast them), and the label time in microseconds."""
    part = {_MICROS: micros}
    label_keys = []
    for key in view.entity.keys:
        if key not in labels.column_names:
            raise ValueError(f"{view.qualified_name}: the labels have no key column {key!r}")
        if key not in schema.names:
            raise ValueError(f"{view.qualified_name}: the feature table has no key column {key!r}")
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
