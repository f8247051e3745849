"""Point-in-time correct joins of label rows with feature views.

Every label row takes, from each view, the newest feature row of its keys that was already known
(``available_at <= label time``) and still fresh (``label time - available_at < ttl``). Two plans
compute the same answer:

- **bucketed** (short time-to-live, the usual case for daily views): time is cut into buckets one
  TTL wide, so a label's candidate rows lie in its own bucket or the one before. Label rows are
  duplicated into those two buckets and equi-joined on (keys, bucket) with a *hash* join, the label
  side as the build side (broadcast when it is small enough), so the far larger feature side is
  only scanned and probed: no shuffle or sort of feature rows. The few matches per label are reduced
  to the newest and joined back to the labels by a row id.
- **sorted** (long TTL, where a label would match many rows of its key): label and feature rows in
  one frame, partitioned by the keys and ordered by time (a feature row at its ``available_at``, a
  label row at its label time, features first on a tie); each label takes the last feature row
  before it. One shuffle and sort of labels + features.

``plan="auto"`` picks bucketed when a view's TTL is at most ``BUCKETED_MAX_TTL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, FeatureView

Plan = Literal["auto", "bucketed", "sorted"]

# Above this TTL a daily view has more than ~2 * 7 candidate rows per label and the sorted plan wins.
BUCKETED_MAX_TTL = timedelta(days=7)
# Label rows (times two buckets) up to this many are broadcast to every task; more are shuffled.
BROADCAST_MAX_LABEL_ROWS = 5_000_000

_IS_LABEL = "_pit_is_label"
_TIME = "_pit_time"
_FOUND = "_pit_found"
_ROW_ID = "_pit_row_id"
_BUCKET = "_pit_bucket"


def feature_column(view: FeatureView, feature: str) -> str:
    """Joined feature columns are named ``<view table>__<feature>``: unambiguous across views."""
    return f"{view.table_name}__{feature}"


def feature_time_column(view: FeatureView) -> str:
    """The ``available_at`` of the feature row a label row got (null when it got none): kept in the
    output so that a leakage check can prove no value is newer than its label."""
    return f"feature_time__{view.table_name}"


def plan_for(view: FeatureView, plan: Plan = "auto") -> str:
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
    out = labels
    if "bucketed" in plans:
        # Every view's probe side comes from these materialised rows, not from the previous view's
        # output (which would be recomputed); they are counted once.
        out = ided = _with_row_ids(labels)
        broadcast = ided.count() * 2 <= BROADCAST_MAX_LABEL_ROWS
    for (view, frame), chosen in zip(views, plans, strict=True):
        if chosen == "bucketed":
            newest = _newest_in_buckets(ided, label_time, view, frame, broadcast)
            out = _unpacked(out.join(newest, _ROW_ID, "left"), out.columns, view)
        else:
            out = _sorted(out, label_time, view, frame)
    times = [feature_time_column(v) for v, _ in views]
    features = [c for c in out.columns if c not in label_columns and c not in times and c != _ROW_ID]
    return out.select(*label_columns, *features, *times)


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


def _with_row_ids(labels: DataFrame) -> DataFrame:
    """Label rows with a stable id, hash-partitioned by it (so joining matches back needs no second
    shuffle of the labels). Materialised once: ``monotonically_increasing_id`` depends on
    partitioning and row order, which a recomputed shuffle need not repeat, and the ids are read
    twice (the probe side and the join back)."""
    spark = labels.sparkSession
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    with_ids = labels.withColumn(_ROW_ID, F.monotonically_increasing_id()).repartition(partitions, _ROW_ID)
    if spark.sparkContext.getCheckpointDir():
        return with_ids.checkpoint(eager=True)  # reliable storage on a cluster
    return with_ids.localCheckpoint(eager=True)


def _newest_in_buckets(
    labels: DataFrame, label_time: str, view: FeatureView, frame: DataFrame, broadcast: bool
) -> DataFrame:
    """(row id, newest known and fresh feature row as a struct) for the labels that have one."""
    keys = list(view.entity.keys)
    ttl_seconds = int(view.ttl.total_seconds())
    # Floor division (a double holds microseconds exactly for +-285 years around 1970).
    bucket_of = lambda column: F.floor(F.unix_micros(F.col(column)) / F.lit(ttl_seconds * 1_000_000))  # noqa: E731
    probe = labels.select(_ROW_ID, *keys, F.col(label_time).cast("timestamp").alias(_TIME)).where(
        F.col(_TIME).isNotNull()
    )
    probe = probe.withColumn(_BUCKET, F.explode(F.array(bucket_of(_TIME), bucket_of(_TIME) - 1)))
    for k in keys:
        probe = probe.where(F.col(k).isNotNull())
    probe = F.broadcast(probe) if broadcast else probe.hint("shuffle_hash")
    rows = _feature_rows(view, frame).select(
        *keys, bucket_of(AVAILABLE_AT).alias(_BUCKET), AVAILABLE_AT, FEATURE_DATE, *view.feature_names()
    )
    condition = [rows[k] == probe[k] for k in [*keys, _BUCKET]] + [
        rows[AVAILABLE_AT] <= probe[_TIME],
        rows[AVAILABLE_AT] > probe[_TIME] - F.expr(f"INTERVAL {ttl_seconds} SECONDS"),
    ]
    matches = rows.join(probe, condition, "inner").select(_ROW_ID, AVAILABLE_AT, FEATURE_DATE, *view.feature_names())
    # max over (available_at, feature_date, ...) is the newest known row, the newer day on a tie;
    # the struct is built for matched rows only, not for every feature row scanned.
    return matches.groupBy(_ROW_ID).agg(F.max(_found_struct(view)).alias(_FOUND))


def _sorted(labels: DataFrame, label_time: str, view: FeatureView, frame: DataFrame) -> DataFrame:
    keys = list(view.entity.keys)
    feature_rows = _feature_rows(view, frame).select(
        *keys, F.col(AVAILABLE_AT).alias(_TIME), F.lit(0).alias(_IS_LABEL), _found_struct(view).alias(_FOUND)
    )
    label_rows = labels.select(
        *[F.col(c) for c in labels.columns], F.col(label_time).alias(_TIME), F.lit(1).alias(_IS_LABEL)
    )
    combined = label_rows.unionByName(feature_rows, allowMissingColumns=True)
    history = (
        Window.partitionBy(*keys)
        .orderBy(F.col(_TIME), F.col(_IS_LABEL), F.col(f"{_FOUND}.feature_date"))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    found = F.last(F.col(_FOUND), ignorenulls=True).over(history)
    fresh = F.col(f"{_FOUND}.available_at") > F.col(label_time) - F.expr(
        f"INTERVAL {int(view.ttl.total_seconds())} SECONDS"
    )
    joined = (
        combined.withColumn(_FOUND, found).where(F.col(_IS_LABEL) == 1).withColumn(_FOUND, F.when(fresh, F.col(_FOUND)))
    )
    return _unpacked(joined, labels.columns, view)
