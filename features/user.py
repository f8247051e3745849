"""User features: activity over trailing windows, spend, conversion and recency."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.features.definitions import Entity, Feature, FeatureView
from lakecart.features.windows import windowed_sums

USER = Entity("user", ("user_id",), "A signed-in shopper.")

WINDOWS = (7, 28)
METRICS = ("views", "carts", "purchases", "spend")


def daily_user_partials(events: DataFrame) -> DataFrame:
    """One row per user and event day: counts by event type and purchase spend."""
    is_type = lambda t: F.when(F.col("event_type") == t, 1).otherwise(0)  # noqa: E731
    signed_in = events.where(F.col("user_id").isNotNull())  # anonymous visitors have no user features
    return signed_in.groupBy("user_id", "event_date").agg(
        F.sum(is_type("product_view")).alias("views"),
        F.sum(is_type("add_to_cart")).alias("carts"),
        F.sum(is_type("purchase")).alias("purchases"),
        F.sum(F.when(F.col("event_type") == "purchase", F.col("price") * F.col("quantity")).otherwise(0.0)).alias(
            "spend"
        ),
    )


def compute_user_activity(events: DataFrame, start: date, end: date) -> DataFrame:
    partials = daily_user_partials(events)
    out = windowed_sums(partials, ["user_id"], "event_date", METRICS, WINDOWS, start, end)
    conversion = F.when(F.col("views_28d") > 0, F.col("purchases_28d") / F.col("views_28d"))
    return out.select(
        "user_id",
        "feature_date",
        "available_at",
        *[
            F.col(f"{m}_{w}d").cast("double" if m == "spend" else "long").alias(f"{m}_{w}d")
            for m in METRICS
            for w in WINDOWS
        ],
        F.coalesce(conversion, F.lit(0.0)).alias("purchase_rate_28d"),
        F.col("days_since_active").cast("int").alias("days_since_active"),
    )


user_activity_v1 = FeatureView(
    name="user_activity",
    version=1,
    entity=USER,
    features=(
        *[
            Feature(f"{m}_{w}d", "double" if m == "spend" else "bigint", f"{m} in the trailing {w} days")
            for m in METRICS
            for w in WINDOWS
        ],
        Feature("purchase_rate_28d", "double", "purchases per product view, trailing 28 days"),
        Feature("days_since_active", "int", "days since the user's last event (within 28 days)"),
    ),
    transform=compute_user_activity,
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="How active each user has been: views, carts, purchases and spend over 7 and 28 days.",
    lookback_days=max(WINDOWS) - 1,
)
