"""Windowed aggregates from per-day partials.

Each source day is aggregated once per key (a *partial*); a window of ``w`` days ending on day
``d`` is the sum of the partials of days ``d-w+1 .. d``. Output days are produced by fanning
each partial out to the output days it contributes to, so cost grows with days x longest window,
never with days x history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE


def windowed_sums(
    partials: DataFrame,
    keys: Sequence[str],
    day_col: str,
    metrics: Sequence[str],
    windows: Sequence[int],
    start: date,
    end: date,
) -> DataFrame:
    """Sum each metric over each trailing window, for every output day in ``[start, end]``.

    Output: ``keys``, ``feature_date``, ``available_at``, ``<metric>_<w>d`` per metric and window,
    and ``days_since_active`` (days from the newest partial to the output day).
    A key gets a row for an output day when it has any partial inside the longest window.
    """
    longest = max(windows)
    fanned = (
        partials.where((F.col(day_col) > F.lit(start - timedelta(days=longest))) & (F.col(day_col) <= F.lit(end)))
        .withColumn(
            FEATURE_DATE,
            F.explode(F.sequence(F.col(day_col), F.date_add(F.col(day_col), longest - 1))),
        )
        .where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
    )
    age = F.datediff(F.col(FEATURE_DATE), F.col(day_col))
    aggregations = [
        F.sum(F.when(age < w, F.col(m)).otherwise(F.lit(0))).alias(f"{m}_{w}d") for m in metrics for w in windows
    ]
    # Recency falls out of the same pass: the youngest partial inside the longest window.
    aggregations.append(F.min(age).alias("days_since_active"))
    out = fanned.groupBy(*keys, FEATURE_DATE).agg(*aggregations)
    return out.withColumn(AVAILABLE_AT, available_at(F.col(FEATURE_DATE)))


def available_at(feature_date: F.Column) -> F.Column:
    """A day's features are known once the day has closed: midnight UTC after ``feature_date``."""
    return F.to_timestamp(F.date_add(feature_date, 1))
