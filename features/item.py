"""Item features: popularity over trailing windows and conversion."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.features.definitions import Entity, Feature, FeatureView
from lakecart.features.windows import windowed_sums

ITEM = Entity("item", ("item_id",), "A product in the catalogue.")

WINDOWS = (7, 28)
METRICS = ("views", "carts", "units_sold")


def daily_item_partials(events: DataFrame) -> DataFrame:
    return (
        events.where(F.col("item_id").isNotNull())
        .groupBy("item_id", "event_date")
        .agg(
            F.sum(F.when(F.col("event_type") == "product_view", 1).otherwise(0)).alias("views"),
            F.sum(F.when(F.col("event_type") == "add_to_cart", 1).otherwise(0)).alias("carts"),
            F.sum(F.when(F.col("event_type") == "purchase", F.col("quantity")).otherwise(0)).alias("units_sold"),
        )
    )


def compute_item_popularity(events: DataFrame, start: date, end: date) -> DataFrame:
    out = windowed_sums(daily_item_partials(events), ["item_id"], "event_date", METRICS, WINDOWS, start, end)
    conversion = F.when(F.col("views_7d") > 0, F.col("units_sold_7d") / F.col("views_7d"))
    return out.select(
        "item_id",
        "feature_date",
        "available_at",
        *[F.col(f"{m}_{w}d").cast("long").alias(f"{m}_{w}d") for m in METRICS for w in WINDOWS],
        F.coalesce(conversion, F.lit(0.0)).alias("conversion_rate_7d"),
    )


item_popularity_v1 = FeatureView(
    name="item_popularity",
    version=1,
    entity=ITEM,
    features=(
        *[Feature(f"{m}_{w}d", "bigint", f"{m} in the trailing {w} days") for m in METRICS for w in WINDOWS],
        Feature("conversion_rate_7d", "double", "units sold per product view, trailing 7 days"),
    ),
    transform=compute_item_popularity,
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="How popular each item is: views, carts and units sold over 7 and 28 days.",
    lookback_days=max(WINDOWS) - 1,
)
