"""Point-in-time correct joins of label rows with feature views.

The join is an *as-of* join done as one sort per view, not a range join: label rows and feature
rows are put in one frame, partitioned by the entity keys and ordered by time (a feature row at
its ``available_at``, a label row at its label time, features first on a tie), and each label row
takes the last feature row before it. Cost is a shuffle and sort of labels + features, so 1M labels
against 20M feature rows stays linear; a key join with a time range would pair every label with
every feature row of its key first.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, FeatureView

_IS_LABEL = "_pit_is_label"
_TIME = "_pit_time"
_FOUND = "_pit_found"


def feature_column(view: FeatureView, feature: str) -> str:
    """Joined feature columns are named ``<view table>__<feature>``: unambiguous across views."""
    return f"{view.table_name}__{feature}"


def feature_time_column(view: FeatureView) -> str:
    """The ``available_at`` of the feature row a label row got (null when it got none): kept in the
    output so that a leakage check can prove no value is newer than its label."""
    return f"feature_time__{view.table_name}"


def point_in_time_join(
    labels: DataFrame,
    label_time: str,
    views: Sequence[tuple[FeatureView, DataFrame]],
) -> DataFrame:
    """Attach, to every label row, the newest feature row of each view that was already known
    (``available_at <= label time``) and still fresh (``label time - available_at < ttl``).

    Label rows without such a feature row keep nulls in that view's columns (missing is explicit)
    and every label row appears exactly once in the output, duplicates included.
    """
    out = labels
    label_columns = labels.columns
    for view, frame in views:
        keys = list(view.entity.keys)
        names = view.feature_names()
        values = F.struct(
            F.col(AVAILABLE_AT).alias("available_at"),
            F.col(FEATURE_DATE).alias("feature_date"),
            *[F.col(f).alias(feature_column(view, f)) for f in names],
        )
        feature_rows = frame.where(F.col(AVAILABLE_AT).isNotNull()).select(
            *keys, F.col(AVAILABLE_AT).alias(_TIME), F.lit(0).alias(_IS_LABEL), values.alias(_FOUND)
        )
        for k in keys:
            feature_rows = feature_rows.where(F.col(k).isNotNull())
        label_rows = out.select(
            *[F.col(c) for c in out.columns], F.col(label_time).alias(_TIME), F.lit(1).alias(_IS_LABEL)
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
            combined.withColumn(_FOUND, found)
            .where(F.col(_IS_LABEL) == 1)
            .withColumn(_FOUND, F.when(fresh, F.col(_FOUND)))
        )
        out = joined.select(
            *[F.col(c) for c in out.columns],
            *[F.col(f"{_FOUND}.{feature_column(view, f)}").alias(feature_column(view, f)) for f in names],
            F.col(f"{_FOUND}.available_at").alias(feature_time_column(view)),
        )
    times = [feature_time_column(v) for v, _ in views]
    features = [c for c in out.columns if c not in label_columns and c not in times]
    return out.select(*label_columns, *features, *times)
