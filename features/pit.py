"""Point-in-time correct joins of label rows with feature views."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, FeatureView

LABEL_ID = "_label_row"


def feature_column(view: FeatureView, feature: str) -> str:
    """Joined feature columns are named ``<view table>__<feature>``: unambiguous across views."""
    return f"{view.table_name}__{feature}"


def point_in_time_join(
    labels: DataFrame,
    label_time: str,
    views: Sequence[tuple[FeatureView, DataFrame]],
) -> DataFrame:
    """Attach, to every label row, the newest feature row of each view that was already known
    (``available_at <= label time``) and still fresh (``label time - available_at <= ttl``).

    Label rows without such a feature row keep nulls in that view's columns (missing is explicit)
    and every label row appears exactly once in the output.
    """
    out = labels.withColumn(LABEL_ID, F.monotonically_increasing_id())
    for view, frame in views:
        keys = list(view.entity.keys)
        feats = frame.select(
            *[F.col(k).alias(f"_f_{k}") for k in keys],
            F.col(AVAILABLE_AT).alias("_f_available_at"),
            F.col(FEATURE_DATE).alias("_f_feature_date"),
            *[F.col(f).alias(feature_column(view, f)) for f in view.feature_names()],
        )
        ttl_seconds = int(view.ttl.total_seconds())
        condition = [F.col(k) == F.col(f"_f_{k}") for k in keys] + [
            F.col("_f_available_at") <= F.col(label_time),
            F.col("_f_available_at") > F.col(label_time) - F.expr(f"INTERVAL {ttl_seconds} SECONDS"),
        ]
        joined = out.join(feats, on=condition, how="left")
        newest_first = Window.partitionBy(LABEL_ID).orderBy(
            F.col("_f_available_at").desc_nulls_last(), F.col("_f_feature_date").desc_nulls_last()
        )
        out = (
            joined.withColumn("_rank", F.row_number().over(newest_first))
            .where(F.col("_rank") == 1)
            .drop("_rank", "_f_available_at", "_f_feature_date", *[f"_f_{k}" for k in keys])
        )
    return out.drop(LABEL_ID)
