"""Materialise feature views for a logical date (or a backfill range): one driver for every view."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.features import REGISTRY, FeatureView
from lakecart.features.definitions import FEATURE_DATE

log = logging.getLogger(__name__)


def view_path(view: FeatureView, settings: Settings) -> str:
    return tables.table_path(view.qualified_name, settings)


def compute_view(view: FeatureView, events: DataFrame, start: date, end: date) -> DataFrame:
    """The view's transform over ``[start, end]``, reading only the history its windows need."""
    history_start = start - timedelta(days=view.lookback_days)
    scoped = events.where(F.col("event_date").between(F.lit(history_start), F.lit(end)))
    return view.transform(scoped, start, end).select(*view.columns)


def run_materialize(
    spark: SparkSession, settings: Settings, start: date, end: date, views: Sequence[str] | None = None
) -> dict[str, int]:
    selected = [REGISTRY[name] for name in views] if views else list(REGISTRY.values())
    events = spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings))
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    written = {}
    for view in selected:
        frame = compute_view(view, events, start, end)
        delta.replace_partitions(frame, view_path(view, settings), FEATURE_DATE, days)
        written[view.table_name] = (
            spark.read.format("delta")
            .load(view_path(view, settings))
            .where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
            .count()
        )
        log.info("materialised %s for %s..%s: %d rows", view.qualified_name, start, end, written[view.table_name])
    return written
