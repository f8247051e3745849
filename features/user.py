"""User features: activity windows, recency-frequency-monetary, conversion, breadth, price
sensitivity, recent-interaction sequences, and category affinity (the user x category entity)."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features.definitions import (
    AVAILABLE_AT,
    FEATURE_DATE,
    Entity,
    Feature,
    FeatureView,
    Tiles,
    select_features,
)
from lakecart.features.windows import (
    AGE,
    availability,
    distinct_counts,
    fan_out,
    known_date,
    newest,
    rate_feature,
    recency,
    window_sum,
    windowed_sums,
)

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


def _window_features(metrics: tuple[str, ...], windows: tuple[int, ...]) -> tuple[Feature, ...]:
    return tuple(
        Feature(f"{m}_{w}d", "double" if m == "spend" else "bigint", f"{m} in the trailing {w} days")
        for m in metrics
        for w in windows
    )


USER_ACTIVITY_V1 = (
    *_window_features(METRICS, WINDOWS),
    rate_feature("purchase_rate_28d", "purchases per product view, trailing 28 days", "purchases_28d", "views_28d"),
    Feature("days_since_active", "int", "days since the user's last event (within 28 days)"),
)


def combine_user_activity(partials: DataFrame, start: date, end: date) -> DataFrame:
    out = windowed_sums(partials, ["user_id"], "event_date", METRICS, WINDOWS, start, end)
    return select_features(out, USER.keys, USER_ACTIVITY_V1)


user_activity_v1 = FeatureView(
    name="user_activity",
    version=1,
    entity=USER,
    features=USER_ACTIVITY_V1,
    tiles=Tiles(daily_user_partials, combine_user_activity),
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="How active each user has been: views, carts, purchases and spend over 7 and 28 days.",
    lookback_days=max(WINDOWS) - 1,
    refactored_from=("e74a040d04ddb86e",),  # d2a3b36: before tiles and the narrower fan_out
)


# --- version 2: the feature families the churn, ranking and retrieval models use ----------------

WINDOWS_V2 = (1, 7, 28, 90)
DISTINCT_WINDOWS = (7, 28, 90)
RECENT_N = 10  # length of the recent-items and recent-categories sequences
INTERACTIONS = ("product_view", "add_to_cart", "purchase")


def daily_user_partials_v2(events: DataFrame) -> DataFrame:
    """One row per user and event day: counts, spend, purchase categories, the day's newest
    interactions, and the prices paid relative to the category's average price that day."""
    signed_in = events.where(F.col("user_id").isNotNull())
    category_price = (
        events.where(F.col("price").isNotNull() & F.col("category").isNotNull())
        .groupBy("category", "event_date")
        .agg(F.avg("price").alias("_category_price"))
    )
    is_type = lambda t: F.when(F.col("event_type") == t, 1).otherwise(0)  # noqa: E731
    purchase = F.col("event_type") == "purchase"
    interaction = F.struct(F.col("event_time"), F.col("item_id"), F.col("category"))
    return (
        signed_in.join(category_price, ["category", "event_date"], "left")
        .groupBy("user_id", "event_date")
        .agg(
            F.sum(is_type("product_view")).alias("views"),
            F.sum(is_type("add_to_cart")).alias("carts"),
            F.sum(is_type("purchase")).alias("purchases"),
            F.sum(F.when(purchase, F.col("price") * F.col("quantity")).otherwise(0.0)).alias("spend"),
            F.max(is_type("purchase")).alias("purchase_days"),
            F.collect_set(F.when(purchase, F.col("category"))).alias("purchase_categories"),
            F.collect_set(F.when(F.col("event_type") == "product_view", F.col("item_id"))).alias("viewed_items"),
            F.slice(
                F.sort_array(F.collect_list(F.when(F.col("event_type").isin(*INTERACTIONS), interaction)), asc=False),
                1,
                RECENT_N,
            ).alias("recent"),
            F.sum(F.when(purchase, F.col("price") / F.col("_category_price"))).alias("price_index_sum"),
            F.count(F.when(purchase & (F.col("_category_price") > 0), 1)).alias("price_index_count"),
            known_date(events),
        )
    )


USER_ACTIVITY_V2 = (
    *_window_features(METRICS, WINDOWS_V2),
    Feature("days_since_active", "int", "recency: days since the user's last event (within 90 days)"),
    Feature("days_since_purchase", "int", "days since the last purchase within 90 days; null if none"),
    Feature("purchase_days_90d", "bigint", "frequency: days with a purchase in the trailing 90 days"),
    rate_feature(
        "spend_per_purchase_90d", "monetary value: spend per purchase, trailing 90 days", "spend_90d", "purchases_90d"
    ),
    rate_feature("cart_rate_28d", "add-to-carts per product view, trailing 28 days", "carts_28d", "views_28d"),
    rate_feature(
        "cart_to_purchase_rate_28d", "purchases per add-to-cart, trailing 28 days", "purchases_28d", "carts_28d"
    ),
    Feature("categories_purchased_90d", "int", "cross-category breadth: distinct categories bought, 90 days"),
    *[
        Feature(f"distinct_items_viewed_{w}d", "int", f"distinct items viewed in the trailing {w} days")
        for w in DISTINCT_WINDOWS
    ],
    Feature(
        "price_index_90d",
        "double",
        "price sensitivity: mean price paid / the category's average price that day (< 1: buys cheap); "
        "null without purchases",
        expr=lambda: F.when(F.col("_price_index_count") > 0, F.col("_price_index_sum") / F.col("_price_index_count")),
    ),
)


def combine_user_activity_v2(partials: DataFrame, start: date, end: date) -> DataFrame:
    fanned = fan_out(partials, "event_date", max(WINDOWS_V2), start, end)
    sums = [window_sum(m, w).alias(f"{m}_{w}d") for m in METRICS for w in WINDOWS_V2]
    out = fanned.groupBy("user_id", FEATURE_DATE).agg(
        *sums,
        window_sum("purchase_days", 90).alias("purchase_days_90d"),
        window_sum("price_index_sum", 90).alias("_price_index_sum"),
        window_sum("price_index_count", 90).alias("_price_index_count"),
        recency().alias("days_since_active"),
        F.min(F.when(F.col("purchases") > 0, F.col(AGE))).alias("days_since_purchase"),
        availability(),
    )
    # Distinct counts from exploded elements, joined: an aggregation over lists of 90 days of arrays
    # per user cost more than the rest of the view together.
    breadth = {
        "purchase_categories": {90: "categories_purchased_90d"},
        "viewed_items": {w: f"distinct_items_viewed_{w}d" for w in DISTINCT_WINDOWS},
    }
    for column, windows in breadth.items():
        counts = distinct_counts(partials, ["user_id"], "event_date", column, windows, start, end)
        out = out.join(counts, ["user_id", FEATURE_DATE], "left").fillna(0, subset=list(windows.values()))
    return select_features(out, USER.keys, USER_ACTIVITY_V2)


user_activity_v2 = FeatureView(
    name="user_activity",
    version=2,
    entity=USER,
    features=USER_ACTIVITY_V2,
    tiles=Tiles(daily_user_partials_v2, combine_user_activity_v2),
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="Activity over 1/7/28/90 days, recency-frequency-monetary, conversion, breadth and price "
    "sensitivity per user.",
    lookback_days=max(WINDOWS_V2) - 1,
    refactored_from=(
        "bf727802cd2a8832",  # d2a3b36: before tiles and the narrower fan_out
        "eff65f6f6dd0af0a",  # a9f2e6d: distinct counts over lists of arrays, before `distinct_counts`
        "198389a8162af528",  # `distinct_counts` fanning each element out to every output day
    ),
)


SEQUENCE_DAYS = 28


USER_SEQUENCES = (
    Feature(
        "recent_items",
        "array<string>",
        f"the last {RECENT_N} items viewed, carted or bought, newest first",
        expr=lambda: F.col("_recent.item_id"),
    ),
    Feature(
        "recent_categories",
        "array<string>",
        "the categories of those interactions, same order",
        expr=lambda: F.col("_recent.category"),
    ),
    Feature(
        "recent_length",
        "int",
        f"how many interactions the sequences hold (at most {RECENT_N})",
        expr=lambda: F.size("_recent"),
    ),
)


def combine_user_sequences(partials: DataFrame, start: date, end: date) -> DataFrame:
    fanned = fan_out(partials, "event_date", SEQUENCE_DAYS, start, end)
    out = fanned.groupBy("user_id", FEATURE_DATE).agg(newest("recent", RECENT_N).alias("_recent"), availability())
    return select_features(out, USER.keys, USER_SEQUENCES)


user_sequences_v1 = FeatureView(
    name="user_sequences",
    version=1,
    entity=USER,
    features=USER_SEQUENCES,
    tiles=Tiles(daily_user_partials_v2, combine_user_sequences),
    ttl=timedelta(days=2),
    owner="ml-platform",
    description=f"Each user's last {RECENT_N} item interactions within {SEQUENCE_DAYS} days, as sequences.",
    lookback_days=SEQUENCE_DAYS - 1,
    refactored_from=("c953f76c397a4f3d",),  # d2a3b36: before tiles and the narrower fan_out
)


USER_CATEGORY = Entity("user_category", ("user_id", "category"), "A shopper's relationship with one category.")
AFFINITY_DAYS = 28


def _per_user() -> Window:
    return Window.partitionBy("user_id", FEATURE_DATE)


USER_CATEGORY_AFFINITY = (
    Feature("interactions_28d", "bigint", "views, carts and purchases in the category, trailing 28 days"),
    Feature("purchases_28d", "bigint", "purchases in the category, trailing 28 days"),
    Feature(
        "interaction_share_28d",
        "double",
        "the category's share of the user's interactions, 28 days",
        expr=lambda: F.col("interactions_28d") / F.sum("interactions_28d").over(_per_user()),
    ),
)


def daily_user_category_partials(events: DataFrame) -> DataFrame:
    """One row per user, category and event day: interactions and purchases."""
    is_type = lambda t: F.when(F.col("event_type") == t, 1).otherwise(0)  # noqa: E731
    return (
        events.where(
            F.col("user_id").isNotNull() & F.col("category").isNotNull() & F.col("event_type").isin(*INTERACTIONS)
        )
        .groupBy("user_id", "category", "event_date")
        .agg(
            F.count(F.lit(1)).alias("interactions"),
            F.sum(is_type("purchase")).alias("purchases"),
            known_date(events),
        )
    )


def combine_user_category_affinity(partials: DataFrame, start: date, end: date) -> DataFrame:
    fanned = fan_out(partials, "event_date", AFFINITY_DAYS, start, end)
    out = fanned.groupBy("user_id", "category", FEATURE_DATE).agg(
        window_sum("interactions", AFFINITY_DAYS).alias("interactions_28d"),
        window_sum("purchases", AFFINITY_DAYS).alias("purchases_28d"),
        availability(),
    )
    # The user's row is known when the last of its categories is: the share depends on all of them.
    out = out.withColumn(AVAILABLE_AT, F.max(AVAILABLE_AT).over(_per_user()))
    return select_features(out, USER_CATEGORY.keys, USER_CATEGORY_AFFINITY)


user_category_affinity_v1 = FeatureView(
    name="user_category_affinity",
    version=1,
    entity=USER_CATEGORY,
    features=USER_CATEGORY_AFFINITY,
    tiles=Tiles(daily_user_category_partials, combine_user_category_affinity),
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="Category affinity per user: how much of a shopper's recent attention each category gets.",
    lookback_days=AFFINITY_DAYS - 1,
    refactored_from=("0f01b4d5cad96147",),  # d2a3b36: before tiles and the narrower fan_out
)
