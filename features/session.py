"""Session features: what happened in each shopping session (silver's ``session_key``)."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, Entity, Feature, FeatureView

SESSION = Entity("session", ("session_key",), "One visit: a shopper's events with no 30-minute gap.")


def compute_session_summary(events: DataFrame, start: date, end: date) -> DataFrame:
    is_type = lambda t: F.max(F.when(F.col("event_type") == t, 1).otherwise(0))  # noqa: E731
    closed = F.date_add(F.col("event_date"), 1)
    return (
        events.where(F.col("event_date").between(F.lit(start), F.lit(end)))
        .groupBy("session_key", F.col("event_date").alias(FEATURE_DATE))
        .agg(
            F.to_timestamp(F.greatest(F.max(closed), F.date_add(F.max("ingest_date"), 1))).alias(AVAILABLE_AT),
            F.first("user_id", ignorenulls=True).alias("user_id"),
            F.first("device", ignorenulls=True).alias("device"),
            F.count(F.lit(1)).cast("long").alias("events"),
            F.count(F.when(F.col("event_type") == "product_view", 1)).cast("long").alias("product_views"),
            F.countDistinct("item_id").cast("long").alias("distinct_items"),
            F.count(F.when(F.col("event_type") == "search", 1)).cast("long").alias("searches"),
            is_type("add_to_cart").alias("reached_cart"),
            is_type("purchase").alias("purchased"),
            (F.max("event_time").cast("long") - F.min("event_time").cast("long")).alias("duration_s"),
        )
    )


session_summary_v1 = FeatureView(
    name="session_summary",
    version=1,
    entity=SESSION,
    features=(
        Feature("user_id", "string", "the signed-in shopper, null for anonymous sessions"),
        Feature("device", "string", "the device of the session's first event"),
        Feature("events", "bigint", "events in the session (that day)"),
        Feature("product_views", "bigint", "product views"),
        Feature("distinct_items", "bigint", "distinct items touched"),
        Feature("searches", "bigint", "searches"),
        Feature("reached_cart", "int", "1 when the session added anything to the cart"),
        Feature("purchased", "int", "1 when the session ended in a purchase"),
        Feature("duration_s", "bigint", "seconds from the first to the last event"),
    ),
    transform=compute_session_summary,
    ttl=timedelta(days=1),
    owner="ml-platform",
    description="One row per session and day: depth, searches, whether it reached the cart or a purchase.",
)
