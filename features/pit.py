"""Point-in-time correct joins of label rows with feature views.

Every label row takes, from each view, the newest feature row of its keys that was already known
(``available_at <= label time``) and still fresh (``label time - available_at < ttl``). Two plans
compute the same answer:

- **bucketed** (short time-to-live, the usual case for daily views): time is cut into buckets one
  TTL wide, so a label's candidate rows lie in its own bucket or the one before. Label rows are
  duplicated into those two buckets and equi-joined on (keys, bucket) with a *hash* join, the label
  side as the build side (broadcast when it is small enough), so the far larger feature side is
  only scanned and probed: no shuffle or sort of feature rows. The join key is one 64-bit hash of
  (keys, bucket), which Spark probes in its fast long-keyed hash map; the keys themselves are
  compared after a hit, so a hash collision cannot pair wrong rows. The few matches are reduced to
  the newest per (keys, label time) with a hash aggregate (``max_by`` a packed 64-bit order) and
  joined back to the labels on (keys, label time): the answer depends on nothing else.
- **sorted** (long TTL, where a label would match many rows of its key): label and feature rows in
  one frame, partitioned by the keys and ordered by time (a feature row at its ``available_at``, a
  label row at its label time, features first on a tie); each label takes the last feature row
  before it. One shuffle and sort of labels + features.

- **columnar** (the bucketed case when the feature frame is a plain read of a Parquet or Delta
  table and the labels fit in a broadcast): Spark only hands out the work; DuckDB, a vectorised
  engine, reads the files and joins them with the labels inside each task, on the same (keys,
  bucket) scheme. The label rows come to the driver once, as Arrow. Where it reads little more
  than one pass over the feature rows, each task takes one stretch of label time and answers its
  labels completely, reading only the files whose ``available_at`` range (Delta statistics,
  Parquet footers) can matter to it: no shuffle at all. Otherwise (many tasks for a short span of
  label times) each task takes a run of files and Spark merges the candidates per label and joins
  them back (``features/pit_columnar.py``). Same answers; on a large table most of the time goes
  into decoding and probing feature rows, which DuckDB does several times faster than Spark's
  row-at-a-time code (BENCHMARKS.md).

- **local** (asked for, never picked by "auto"): the columnar plan's join run once in the driver,
  over every file, with no Spark tasks (``features/pit_local.py``, which also runs without Spark).

``plan="auto"`` picks columnar, else bucketed, when a view's TTL is at most ``BUCKETED_MAX_TTL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features import pit_columnar
from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, FeatureView

Plan = Literal["auto", "columnar", "bucketed", "sorted", "local"]

# Above this TTL a daily view has more than ~2 * 7 candidate rows per label and the sorted plan wins.
BUCKETED_MAX_TTL = timedelta(days=7)
# Label rows (times two buckets) up to this many are broadcast to every task; more are shuffled.
BROADCAST_MAX_LABEL_ROWS = 5_000_000
# The columnar plan ships every label row (keys, time) to every task as Arrow.
COLUMNAR_MAX_LABEL_ROWS = 5_000_000
# A label's candidates are ordered by one long (pit_columnar.DAY_BITS): the age within the TTL, in
# microseconds, must fit in the bits above feature_date's.
BUCKETED_TTL_LIMIT = timedelta(microseconds=1 << (63 - pit_columnar.DAY_BITS)) - timedelta(microseconds=1)  # ~12.7 days

_IS_LABEL = "_pit_is_label"
_TIME = "_pit_time"
_FOUND = "_pit_found"
_BUCKET = "_pit_bucket"
_HASH = "_pit_hash"
_MICROS = "_t"  # the label time in microseconds, as the columnar plan's tasks see it


def feature_column(view: FeatureView, feature: str) -> str:
    """Joined feature columns are named ``<view table>__<feature>``: unambiguous across views."""
    return f"{feature_prefix(view)}{feature}"


def feature_prefix(view: FeatureView | str) -> str:
    """The prefix every joined column of ``view`` starts with (``<view table>__``); ``view`` may be
    the view or its table name."""
    return f"{view if isinstance(view, str) else view.table_name}__"


def feature_time_column(view: FeatureView) -> str:
    """The ``available_at`` of the feature row a label row got (null when it got none): kept in the
    output so that a leakage check can prove no value is newer than its label."""
    return f"feature_time__{view.table_name}"


def plan_for(view: FeatureView, plan: Plan = "auto") -> str:
    """The plan for ``view`` as far as its TTL decides: "auto" becomes bucketed or sorted. The join
    then runs a bucketed view the columnar way where the feature frame allows it."""
    if plan in ("bucketed", "columnar", "local") and view.ttl > BUCKETED_TTL_LIMIT:
        raise ValueError(
            f"{view.qualified_name}: the bucketed plan takes TTLs up to {BUCKETED_TTL_LIMIT}, not {view.ttl}"
        )
    if plan != "auto":
        return plan
    return "bucketed" if view.ttl <= BUCKETED_MAX_TTL else "sorted"


def point_in_time_join(
    labels: DataFrame,
    label_time: str,
    views: Sequence[tuple[FeatureView, DataFrame]],
    plan: Plan = "auto",
) -> DataFrame:
    """Attach, to every label row, the newest feature row of each view that was already known
    (``available_at <= label time``) and still fresh (``label time - available_at < ttl``).

    Label rows without such a feature row keep nulls in that view's columns (missing is explicit)
    and every label row appears exactly once in the output, duplicates included. Rows known at the
    same instant resolve to the newer ``feature_date``.
    """
    label_columns = labels.columns
    plans = [plan_for(view, plan) for view, _ in views]
    if plan == "local":
        return _local(labels, label_time, views)
    # Files of the views the columnar plan may take (None: it may not).
    files = [
        pit_columnar.files_of(frame, AVAILABLE_AT)
        if chosen == "columnar" or (plan == "auto" and chosen == "bucketed")
        else None
        for (_, frame), chosen in zip(views, plans, strict=True)
    ]
    for (view, _), chosen, listed in zip(views, plans, files, strict=True):
        if chosen == "columnar" and listed is None:
            raise ValueError(f"the columnar plan needs {view.table_name} as a plain read of a Parquet or Delta table")
    out = labels.withColumn(_TIME, F.col(label_time).cast("timestamp"))
    if {"bucketed", "columnar"} & set(plans):
        # Read more than once (counted, then shipped or probed and joined back to): materialised
        # once, so that labels built by an expensive or non-deterministic transform are computed
        # once and agree with themselves. A plain read of files is neither, and is read again.
        from_files = pit_columnar.rows_in_files(labels) if pit_columnar.is_file_scan(labels) else None
        out = base = out if from_files is not None else _materialised(out)
        label_rows = from_files if from_files is not None else base.count()
        broadcast = label_rows * 2 <= BROADCAST_MAX_LABEL_ROWS
        plans = [
            "columnar"
            if plan == "auto" and chosen == "bucketed" and listed and label_rows <= COLUMNAR_MAX_LABEL_ROWS
            else chosen
            for chosen, listed in zip(plans, files, strict=True)
        ]
    columnar = [i for i, chosen in enumerate(plans) if chosen == "columnar"]
    if columnar:
        out = _columnar(out, [(*views[i], files[i]) for i in columnar])
    for (view, frame), chosen in zip(views, plans, strict=True):
        if chosen == "bucketed":
            newest = _newest_in_buckets(base, view, frame, broadcast)
            out = out.join(newest, [*view.entity.keys, _TIME], "left")
        elif chosen == "sorted":
            out = _sorted(out, view, frame)
    times = [feature_time_column(v) for v, _ in views]
    features = [c for c in out.columns if c not in label_columns and c not in times and c != _TIME]
    return out.select(*label_columns, *features, *times)


def _local(labels: DataFrame, label_time: str, views: Sequence[tuple[FeatureView, DataFrame]]) -> DataFrame:
    """The local plan (``pit_local``): the label rows to the driver as Arrow, DuckDB joins them with
    the views' files there, and the answer comes back as a frame. For a driver that can hold the
    labels and the result; each view must be a plain read of a Parquet or Delta table."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from lakecart.features import pit_local

    resolved = []
    for view, frame in views:
        files = pit_columnar.files_of(frame, AVAILABLE_AT)
        if files is None:
            raise ValueError(f"the local plan needs {view.table_name} as a plain read of a Parquet or Delta table")
        resolved.append((view, files, to_arrow_schema(frame.schema)))
    table = labels.withColumn(_TIME, F.col(label_time).cast("timestamp")).toArrow()
    joined = pit_local.join_files(table, _TIME, resolved).drop_columns([_TIME])
    return labels.sparkSession.createDataFrame(joined)


def _columnar(labels: DataFrame, views: list[tuple[FeatureView, DataFrame, list]]) -> DataFrame:
    """``labels`` (with ``_TIME``) with the columns of ``views`` attached, the columnar way. The
    label rows come to the driver once, as Arrow. Views for which a task per stretch of label time
    reads little more than one pass are answered together, each task answering its labels
    completely (``pit_columnar.answer_by_label_time``); the others merge candidates per run of
    files and are joined back (``_newest_in_files``)."""
    from pyspark.sql import types as T

    shipped_columns = [F.col(c) for c in labels.columns] + [F.unix_micros(F.col(_TIME)).alias(_MICROS)]
    specs = []
    for index, (view, frame, files) in enumerate(views):
        label_keys = []
        for k in view.entity.keys:
            if labels.schema[k].dataType == frame.schema[k].dataType:
                label_keys.append(k)
            else:  # compared as the feature table types them, as Spark would cast them
                label_keys.append(f"_pit_key{index}_{k}")
                shipped_columns.append(F.col(k).cast(frame.schema[k].dataType).alias(label_keys[-1]))
        specs.append(
            pit_columnar.ColumnarView(
                files=files,
                keys=tuple(view.entity.keys),
                label_keys=tuple(label_keys),
                ttl_micros=view.ttl // timedelta(microseconds=1),
                features=tuple(view.feature_names()),
                feature_columns=tuple(feature_column(view, f) for f in view.feature_names()),
                time_column=feature_time_column(view),
                frame_schema=frame.schema,
            )
        )
    table = labels.select(*shipped_columns).toArrow()
    stretches = pit_columnar.Stretches.of(table[_MICROS], labels.sparkSession.sparkContext.defaultParallelism)
    by_time = [stretches.by_label_time_pays(spec) for spec in specs]
    out = labels
    together = [spec for spec, chosen in zip(specs, by_time, strict=True) if chosen]
    if together:
        fields = list(labels.schema.fields)
        for spec in together:
            fields += [
                T.StructField(name, spec.frame_schema[f].dataType)
                for name, f in zip(spec.feature_columns, spec.features, strict=True)
            ]
            fields.append(T.StructField(spec.time_column, T.TimestampType()))
        out = pit_columnar.answer_by_label_time(
            table, _MICROS, stretches, together, FEATURE_DATE, AVAILABLE_AT, T.StructType(fields)
        )
    for (view, frame, _), spec, chosen in zip(views, specs, by_time, strict=True):
        if not chosen:
            # Joined on the label time in microseconds, as the candidates were grouped: they stay
            # partitioned as the merge left them, with no second shuffle. A shuffled hash join
            # built on the labels (narrow rows, at most COLUMNAR_MAX_LABEL_ROWS of them): no sorts,
            # and no broadcast of the candidates, whose size the planner cannot know up front.
            probe = table.select([*spec.label_keys, _MICROS]).rename_columns([*spec.keys, _MICROS])
            newest = _newest_in_files(probe, view, frame, stretches.files_for_any(spec))
            labelled = out.withColumn(_MICROS, F.unix_micros(_TIME)).hint("shuffle_hash")
            out = labelled.join(newest, [*view.entity.keys, _MICROS], "left").drop(_MICROS)
    return out


def _found_struct(view: FeatureView) -> F.Column:
    return F.struct(
        F.col(AVAILABLE_AT).alias("available_at"),
        F.col(FEATURE_DATE).alias("feature_date"),
        *[F.col(f).alias(feature_column(view, f)) for f in view.feature_names()],
    )


def _feature_rows(view: FeatureView, frame: DataFrame) -> DataFrame:
    rows = frame.where(F.col(AVAILABLE_AT).isNotNull())
    for k in view.entity.keys:
        rows = rows.where(F.col(k).isNotNull())
    return rows


def _unpacked(joined: DataFrame, columns: list[str], view: FeatureView) -> DataFrame:
    return joined.select(
        *[F.col(c) for c in columns],
        *[F.col(f"{_FOUND}.{feature_column(view, f)}").alias(feature_column(view, f)) for f in view.feature_names()],
        F.col(f"{_FOUND}.available_at").alias(feature_time_column(view)),
    )


def _materialised(labels: DataFrame) -> DataFrame:
    spark = labels.sparkSession
    if spark.sparkContext.getCheckpointDir():
        return labels.checkpoint(eager=True)  # reliable storage on a cluster
    return labels.localCheckpoint(eager=True)


def _newest_in_buckets(labels: DataFrame, view: FeatureView, frame: DataFrame, broadcast: bool) -> DataFrame:
    """Per (keys, label time) that has one: the newest known and fresh feature row's features and
    ``available_at``, as the output's columns."""
    keys = list(view.entity.keys)
    ttl_micros = view.ttl // timedelta(microseconds=1)
    # Floor division (a double holds microseconds exactly for +-285 years around 1970).
    bucket_of = lambda column: F.floor(F.unix_micros(column) / F.lit(ttl_micros))  # noqa: E731
    probe = labels.select(*keys, _TIME).where(F.col(_TIME).isNotNull())
    for k in keys:
        probe = probe.where(F.col(k).isNotNull())
    bucket = bucket_of(F.col(_TIME))
    probe = probe.select(*keys, _TIME, F.explode(F.array(bucket, bucket - 1)).alias(_BUCKET))
    probe = probe.select(*keys, _TIME, F.xxhash64(*keys, _BUCKET).alias(_HASH))
    probe = F.broadcast(probe) if broadcast else probe.hint("shuffle_hash")
    rows = _feature_rows(view, frame).select(
        *keys,
        AVAILABLE_AT,
        FEATURE_DATE,
        *view.feature_names(),
        F.xxhash64(*keys, bucket_of(F.col(AVAILABLE_AT))).alias(_HASH),
    )
    # Only the hash is an equality: one long key. Keys are compared as a range (a <= b <= a), which
    # Spark does not turn into more join keys; it guards against hash collisions.
    condition = [rows[_HASH] == probe[_HASH]]
    condition += [(rows[k] >= probe[k]) & (rows[k] <= probe[k]) for k in keys]
    condition += [
        rows[AVAILABLE_AT] <= probe[_TIME],
        rows[AVAILABLE_AT] > probe[_TIME] - F.expr(f"INTERVAL {ttl_micros} MICROSECONDS"),
    ]
    # Newer is greater: age within the TTL (0 .. ttl), then feature_date, from the label day, clamped.
    span = 1 << (pit_columnar.DAY_BITS - 1)
    age = F.unix_micros(rows[AVAILABLE_AT]) - F.unix_micros(probe[_TIME]) + F.lit(ttl_micros)
    day = F.unix_date(rows[FEATURE_DATE].cast("date")) - F.unix_date(probe[_TIME].cast("date"))
    day = F.coalesce(F.least(F.greatest(day, F.lit(-span)), F.lit(span - 1)) + F.lit(span), F.lit(0))
    matches = rows.join(probe, condition, "inner").select(
        *[probe[k] for k in keys],
        probe[_TIME],
        (F.shiftleft(age, pit_columnar.DAY_BITS) + day).alias(pit_columnar.ORDER),
        AVAILABLE_AT,
        *view.feature_names(),
    )
    return _newest_per(matches, [*keys, _TIME], view)


def _newest_per(candidates: DataFrame, group: list[str], view: FeatureView) -> DataFrame:
    """Per ``group``, the features and ``available_at`` of the candidate with the greatest order, as
    the output's columns. max_by over primitive columns keeps fixed-width buffers: a hash aggregate,
    not a sort."""
    order = pit_columnar.ORDER
    return candidates.groupBy(*group).agg(
        *[F.max_by(f, order).alias(feature_column(view, f)) for f in view.feature_names()],
        F.max_by(AVAILABLE_AT, order).alias(feature_time_column(view)),
    )


def _newest_in_files(probe, view: FeatureView, frame: DataFrame, files: list) -> DataFrame:
    """What ``_newest_in_buckets`` returns, computed the columnar way, with the label time as
    microseconds (``_MICROS``). ``probe`` holds the labels' keys (typed as in ``frame``) and
    ``_MICROS``, as Arrow."""
    import pyarrow as pa
    from pyspark.sql import types as T

    spark = frame.sparkSession
    keys = list(view.entity.keys)
    features = view.feature_names()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, probe.schema) as writer:
        writer.write_table(probe)
    shipped = spark.sparkContext.broadcast(sink.getvalue().to_pybytes())
    out_schema = T.StructType(
        [
            *[frame.schema[k] for k in keys],
            T.StructField(_MICROS, T.LongType()),
            T.StructField(pit_columnar.ORDER, T.LongType()),
            T.StructField(AVAILABLE_AT, T.TimestampType()),
            *[frame.schema[f] for f in features],
        ]
    )
    tasks = max(1, min(len(files), spark.sparkContext.defaultParallelism))
    ttl_micros = view.ttl // timedelta(microseconds=1)
    candidates = pit_columnar.newest_candidates(
        files, shipped, keys, ttl_micros, FEATURE_DATE, AVAILABLE_AT, features, frame.schema, out_schema, tasks
    )
    # A label's candidates from different tasks: keep the newest.
    return _newest_per(candidates, [*keys, _MICROS], view)


def _sorted(labels: DataFrame, view: FeatureView, frame: DataFrame) -> DataFrame:
    """``labels`` carries the label time as ``_TIME``."""
    keys = list(view.entity.keys)
    feature_rows = _feature_rows(view, frame).select(
        *keys, F.col(AVAILABLE_AT).alias(_TIME), F.lit(0).alias(_IS_LABEL), _found_struct(view).alias(_FOUND)
    )
    label_rows = labels.withColumn(_IS_LABEL, F.lit(1))
    combined = label_rows.unionByName(feature_rows, allowMissingColumns=True)
    history = (
        Window.partitionBy(*keys)
        .orderBy(F.col(_TIME), F.col(_IS_LABEL), F.col(f"{_FOUND}.feature_date"))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    found = F.last(F.col(_FOUND), ignorenulls=True).over(history)
    fresh = F.col(f"{_FOUND}.available_at") > F.col(_TIME) - F.expr(f"INTERVAL {int(view.ttl.total_seconds())} SECONDS")
    joined = (
        combined.withColumn(_FOUND, found).where(F.col(_IS_LABEL) == 1).withColumn(_FOUND, F.when(fresh, F.col(_FOUND)))
    )
    return _unpacked(joined, labels.columns, view)
