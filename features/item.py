"""Item and category features: popularity and its trend, prices and price changes, and daily demand
with lags and rolling means (the demand model's inputs)."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakecart.features.definitions import FEATURE_DATE, Entity, Feature, FeatureView, Tiles, select_features
from lakecart.features.windows import (
    availability,
    fan_out,
    known_date,
    lag,
    latest,
    rate_feature,
    window_sum,
    windowed_sums,
)

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


def _window_features(windows: tuple[int, ...]) -> tuple[Feature, ...]:
    return tuple(Feature(f"{m}_{w}d", "bigint", f"{m} in the trailing {w} days") for m in METRICS for w in windows)


CONVERSION_RATE_7D = rate_feature(
    "conversion_rate_7d", "units sold per product view, trailing 7 days", "units_sold_7d", "views_7d"
)
ITEM_POPULARITY_V1 = (*_window_features(WINDOWS), CONVERSION_RATE_7D)


def combine_item_popularity(partials: DataFrame, start: date, end: date) -> DataFrame:
    out = windowed_sums(partials, ["item_id"], "event_date", METRICS, WINDOWS, start, end)
    return select_features(out, ITEM.keys, ITEM_POPULARITY_V1)


item_popularity_v1 = FeatureView(
    name="item_popularity",
    version=1,
    entity=ITEM,
    features=ITEM_POPULARITY_V1,
    tiles=Tiles(daily_item_partials, combine_item_popularity),
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="How popular each item is: views, carts and units sold over 7 and 28 days.",
    lookback_days=max(WINDOWS) - 1,
    refactored_from=("6feb4fcd98f4484a",),  # d2a3b36: before tiles and the narrower fan_out
)


# --- version 2: popularity with its trend, and prices -------------------------------------------

WINDOWS_V2 = (1, 7, 28)


def daily_item_partials_v2(events: DataFrame) -> DataFrame:
    """One row per item and event day: views, carts, units sold, and the day's last seen price."""
    priced = F.when(F.col("price").isNotNull(), F.struct("event_time", "price"))
    return (
        events.where(F.col("item_id").isNotNull())
        .groupBy("item_id", "event_date")
        .agg(
            F.sum(F.when(F.col("event_type") == "product_view", 1).otherwise(0)).alias("views"),
            F.sum(F.when(F.col("event_type") == "add_to_cart", 1).otherwise(0)).alias("carts"),
            F.sum(F.when(F.col("event_type") == "purchase", F.col("quantity")).otherwise(0)).alias("units_sold"),
            F.max(priced)["price"].alias("price"),
            known_date(events),
        )
    )


ITEM_POPULARITY_V2 = (
    *_window_features(WINDOWS_V2),
    Feature(
        "views_trend_7d_vs_28d",
        "double",
        "daily views over 7 days / daily views over 28 days",
        # 1 = steady, > 1 = rising
        expr=lambda: F.coalesce(
            F.when(F.col("views_28d") > 0, (F.col("views_7d") / 7) / (F.col("views_28d") / 28)), F.lit(0.0)
        ),
    ),
    CONVERSION_RATE_7D,
    Feature("price", "double", "the last price seen within 28 days"),
    Feature(
        "price_change_7d",
        "double",
        "price / the last price seen at least 7 days earlier - 1 (-0.2: 20% cheaper); null if unknown",
        min_value=-1.0,
        expr=lambda: F.when(F.col("_price_week_ago") > 0, F.col("price") / F.col("_price_week_ago") - 1),
    ),
)


def combine_item_popularity_v2(partials: DataFrame, start: date, end: date) -> DataFrame:
    fanned = fan_out(partials, "event_date", max(WINDOWS_V2), start, end)
    out = fanned.groupBy("item_id", FEATURE_DATE).agg(
        *[window_sum(m, w).alias(f"{m}_{w}d") for m in METRICS for w in WINDOWS_V2],
        latest("price").alias("price"),
        latest("price", min_age=7).alias("_price_week_ago"),
        availability(),
    )
    return select_features(out, ITEM.keys, ITEM_POPULARITY_V2)


item_popularity_v2 = FeatureView(
    name="item_popularity",
    version=2,
    entity=ITEM,
    features=ITEM_POPULARITY_V2,
    tiles=Tiles(daily_item_partials_v2, combine_item_popularity_v2),
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="Popularity over 1/7/28 days with its trend, conversion, price and price change per item.",
    lookback_days=max(WINDOWS_V2) - 1,
    refactored_from=("32b83088382f56cb",),  # d2a3b36: before tiles and the narrower fan_out
)


# --- demand: daily units with lags and rolling means, per item and per category ------------------

LAGS = (1, 7, 14, 28)
ROLLING = (7, 28)
DEMAND_DAYS = max(LAGS) + 1
HISTORY_START = "_history_start"  # the first day of the source's history that the run reads


def history_days(days: int) -> Column:
    """Days of the trailing ``days`` on or after the first day of history: a lake (or a shop) younger
    than the window has not seen its earlier days, and they are not days without sales."""
    return F.least(F.lit(days), F.datediff(F.col(FEATURE_DATE), F.col(HISTORY_START)) + 1)


DEMAND = (
    Feature("units", "bigint", "units sold on feature_date"),
    *[Feature(f"units_lag_{k}d", "bigint", f"units sold {k} days before feature_date") for k in LAGS],
    *[
        Feature(
            f"units_mean_{w}d",
            "double",
            f"mean daily units over the trailing {w} days, over the days of them the source holds",
            expr=lambda w=w: F.col(f"_units_{w}d") / history_days(w),
        )
        for w in ROLLING
    ],
    Feature("avg_price", "double", "the average price paid on the newest day with a sale (28 days)"),
)


def _demand_partials(events: DataFrame, key: str) -> DataFrame:
    """One row per key and event day: units sold and the average price paid. Rows without a key are
    summarised too (as a null key): the combination reads from them which days the source holds."""
    return events.groupBy(key, "event_date").agg(
        F.sum(F.when(F.col("event_type") == "purchase", F.col("quantity")).otherwise(0)).alias("units"),
        F.avg(F.when(F.col("event_type") == "purchase", F.col("price"))).alias("avg_price"),
        known_date(events),
    )


def _demand_features(partials: DataFrame, key: str, start: date, end: date) -> DataFrame:
    fanned = fan_out(partials.where(F.col(key).isNotNull()), "event_date", DEMAND_DAYS, start, end)
    out = fanned.groupBy(key, FEATURE_DATE).agg(
        lag("units", 0).alias("units"),
        *[lag("units", k).alias(f"units_lag_{k}d") for k in LAGS],
        *[window_sum("units", w).alias(f"_units_{w}d") for w in ROLLING],
        latest("avg_price").alias("avg_price"),
        availability(),
    )
    # The run reads the source from DEMAND_DAYS - 1 days before ``start`` (``compute_view``), and
    # materialisation refuses a window with a missing day after the source's first day: the first
    # day read is that window's start or the source's first day, whatever the range of the run.
    first = partials.agg(F.min("event_date").alias(HISTORY_START))
    return select_features(out.crossJoin(F.broadcast(first)), [key], DEMAND)


def daily_item_demand_partials(events: DataFrame) -> DataFrame:
    return _demand_partials(events, "item_id")


def combine_item_demand(partials: DataFrame, start: date, end: date) -> DataFrame:
    return _demand_features(partials, "item_id", start, end)


def daily_category_demand_partials(events: DataFrame) -> DataFrame:
    return _demand_partials(events, "category")


def combine_category_demand(partials: DataFrame, start: date, end: date) -> DataFrame:
    return _demand_features(partials, "category", start, end)


def _demand_view(name: str, entity: Entity, tiles: Tiles, before_tiles: str) -> FeatureView:
    subject = entity.name
    return FeatureView(
        name=name,
        # v2: the rolling means divide by the days of the window the source holds (v1 divided by the
        # window, so a lake younger than 28 days forecast its items at a fraction of their sales).
        version=2,
        entity=entity,
        features=DEMAND,
        tiles=tiles,
        ttl=timedelta(days=2),
        owner="forecasting",
        description=f"Daily units sold per {subject} with lags of 1/7/14/28 days and 7/28-day rolling means.",
        lookback_days=DEMAND_DAYS - 1,
        refactored_from=(before_tiles,),
    )


CATEGORY = Entity("category", ("category",), "A leaf category of the catalogue.")
item_demand_v2 = _demand_view(
    "item_demand", ITEM, Tiles(daily_item_demand_partials, combine_item_demand), "7073e57b65f1e7fc"
)
category_demand_v2 = _demand_view(
    "category_demand", CATEGORY, Tiles(daily_category_demand_partials, combine_category_demand), "23ec4fbf3aad583b"
)
