"""Session features: what happened in each shopping session (silver's ``session_key``)."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, Entity, Feature, FeatureView

SESSION = Entity("session", ("session_key",), "One visit: a shopper's events with no 30-minute gap.")


def _flag(event_type: str) -> Column:
    """1 when the session had an event of ``event_type``, else 0."""
    return F.max(F.when(F.col("event_type") == event_type, 1).otherwise(0))


# Aggregates over one session's events of one day.
SESSION_SUMMARY = (
    Feature(
        "user_id",
        "string",
        "the signed-in shopper, null for anonymous sessions",
        expr=lambda: F.first("user_id", ignorenulls=True),
    ),
    Feature(
        "device", "string", "the device of the session's first event", expr=lambda: F.first("device", ignorenulls=True)
    ),
    Feature("events", "bigint", "events in the session (that day)", expr=lambda: F.count(F.lit(1))),
    Feature(
        "product_views",
        "bigint",
        "product views",
        expr=lambda: F.count(F.when(F.col("event_type") == "product_view", 1)),
    ),
    Feature("distinct_items", "bigint", "distinct items touched", expr=lambda: F.countDistinct("item_id")),
    Feature("searches", "bigint", "searches", expr=lambda: F.count(F.when(F.col("event_type") == "search", 1))),
    Feature("reached_cart", "int", "1 when the session added anything to the cart", expr=lambda: _flag("add_to_cart")),
    Feature("purchased", "int", "1 when the session ended in a purchase", expr=lambda: _flag("purchase")),
    Feature(
        "duration_s",
        "bigint",
        "seconds from the first to the last event",
        expr=lambda: F.max("event_time").cast("long") - F.min("event_time").cast("long"),
    ),
)


def compute_session_summary(events: DataFrame, start: date, end: date) -> DataFrame:
    closed = F.date_add(F.col("event_date"), 1)
    return (
        events.where(F.col("event_date").between(F.lit(start), F.lit(end)))
        .groupBy("session_key", F.col("event_date").alias(FEATURE_DATE))
        .agg(
            F.to_timestamp(F.greatest(F.max(closed), F.date_add(F.max("ingest_date"), 1))).alias(AVAILABLE_AT),
            *[f.column() for f in SESSION_SUMMARY],
        )
    )


session_summary_v1 = FeatureView(
    name="session_summary",
    version=1,
    entity=SESSION,
    features=SESSION_SUMMARY,
    transform=compute_session_summary,
    ttl=timedelta(days=1),
    owner="ml-platform",
    description="One row per session and day: depth, searches, whether it reached the cart or a purchase.",
)
