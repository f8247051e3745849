"""Features from what a shop sells rather than what its visitors click: order lines
(``silver.order_lines``, given to each transform joined with the catalogue's ``category``,
``category_levels`` and ``brand``, null where the catalogue has no row) and planned promotions
(``silver.promotions``).

Customers: recency, frequency, monetary value, inter-purchase time and how overdue the next order
is, basket size, discounts and coupons, breadth, repeat buying, tenure and the top department's share
of spend; customer x item repeat-purchase cycles (the signal next-basket models rely on); customer x
category spend shares. Items and categories: daily units with lags, rolling sums, revenue, price,
discount depth, selling days and the repurchase cycle. Items: promotions today and known in advance.

Windows are built like the clickstream views' (``features/windows.py``): one partial per key and
order day, fanned out to the output days it feeds, each carrying ``known_date`` (its newest
``ingest_date``), so late order lines make a row known later. Nothing here depends on how ids look
or how many categories a shop has.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features.definitions import (
    AVAILABLE_AT,
    FEATURE_DATE,
    ORDER_LINES_SOURCE,
    PROMOTIONS_SOURCE,
    Entity,
    Feature,
    FeatureView,
    select_features,
)
from lakecart.features.item import CATEGORY, ITEM
from lakecart.features.user import USER, USER_CATEGORY
from lakecart.features.windows import (
    AGE,
    KNOWN_DATE,
    availability,
    distinct_counts,
    fan_out,
    in_window,
    known_date,
    lag,
    recency,
    window_sum,
)

ORDER_DAY = "order_date"
USER_ITEM = Entity("user_item", ("user_id", "item_id"), "A shopper's relationship with one item.")


def _list_value() -> Column:
    """The line's value at list price (before its discount)."""
    return F.col("unit_price") * F.col("quantity")


def _share(numerator: str, denominator: str) -> Column:
    """``numerator / denominator``; null where the denominator is 0 (nothing to take a share of)."""
    return F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator))


def _mean_gap(first_age: str, last_age: str, days: str) -> Column:
    """The mean gap in days between consecutive days with a purchase: the first-to-last span over
    the number of gaps; null with fewer than two such days."""
    return F.when(F.col(days) >= 2, (F.col(first_age) - F.col(last_age)) / (F.col(days) - 1))


# --- customers: recency, frequency, monetary, rhythm, baskets ----------------------------------------

CUSTOMER_WINDOWS = (30, 90, 180)
CUSTOMER_DAYS = max(CUSTOMER_WINDOWS)
BASKET_DAYS = 90
COUPON_FIELD = "coupon_disc"  # silver's ``extra`` field with a line's coupon discount, where a shop sends one


def _coupon_value() -> Column:
    """The line's coupon discount from ``extra`` as a number (null where the shop sends none)."""
    return F.try_element_at(F.col("extra"), F.lit(COUPON_FIELD)).try_cast("double")


def daily_customer_partials(lines: DataFrame) -> DataFrame:
    """One row per customer and order day: orders, lines, units, spend, list value, discounts,
    coupon use, and the items and categories bought."""
    order = F.col("order_id")
    return (
        lines.where(F.col("user_id").isNotNull())
        .groupBy("user_id", ORDER_DAY)
        .agg(
            F.countDistinct(order).alias("orders"),
            F.count(F.lit(1)).alias("lines"),
            F.sum("quantity").alias("units"),
            F.sum("revenue").alias("spend"),
            F.sum(_list_value()).alias("list_value"),
            F.sum("discount").alias("discount"),
            F.countDistinct(F.when(_coupon_value().isNotNull(), order)).alias("coupon_known_orders"),
            F.countDistinct(F.when(F.abs(_coupon_value()) > 0, order)).alias("coupon_orders"),
            F.collect_set("item_id").alias("items"),
            F.collect_set("category").alias("categories"),
            known_date(lines),
        )
    )


def _mean_order_gap() -> Column:
    """The customer's mean gap between order days in 180 days (null with fewer than two)."""
    return _mean_gap("days_since_first_order_180d", "days_since_last_order", "_order_days")


def _windowed(metric: str, dtype: str, what: str) -> tuple[Feature, ...]:
    return tuple(Feature(f"{metric}_{w}d", dtype, f"{what} in the trailing {w} days") for w in CUSTOMER_WINDOWS)


CUSTOMER_ORDERS = (
    Feature("days_since_last_order", "int", "recency: days since the customer's last order (within 180 days)"),
    *_windowed("orders", "bigint", "frequency: orders"),
    *_windowed("spend", "double", "monetary: revenue (after discounts)"),
    *_windowed("units", "bigint", "units bought"),
    Feature(
        "mean_days_between_orders_180d",
        "double",
        "inter-purchase time: mean gap in days between consecutive days with an order, 180 days; "
        "null with fewer than two",
        expr=lambda: _mean_order_gap(),
    ),
    Feature(
        "last_gap_vs_mean_180d",
        "double",
        "the trend of that rhythm: the last gap between order days / the mean gap (> 1: slowing down)",
        expr=lambda: F.col("_last_gap") / _mean_order_gap(),
    ),
    Feature(
        "overdue_ratio_180d",
        "double",
        "days since the last order / the mean gap (> 1: the next order is overdue); null without a gap",
        expr=lambda: F.col("days_since_last_order") / _mean_order_gap(),
    ),
    Feature(
        "lines_per_order_90d",
        "double",
        "basket size: order lines per order, 90 days; null without an order",
        expr=lambda: _share("_lines_90d", "orders_90d"),
    ),
    Feature(
        "units_per_order_90d",
        "double",
        "basket size: units per order, 90 days",
        expr=lambda: _share("units_90d", "orders_90d"),
    ),
    Feature(
        "spend_per_order_90d",
        "double",
        "basket value: revenue per order, 90 days",
        expr=lambda: _share("spend_90d", "orders_90d"),
    ),
    Feature(
        "discount_share_90d",
        "double",
        "discounts / the value at list price of what was bought, 90 days",
        expr=lambda: _share("_discount_90d", "_list_value_90d"),
    ),
    Feature(
        "coupon_order_share_90d",
        "double",
        f"share of orders with a non-zero coupon discount (extra {COUPON_FIELD}), 90 days; "
        "null where the shop sends no coupon field",
        expr=lambda: _share("_coupon_orders_90d", "_coupon_known_orders_90d"),
    ),
    Feature("distinct_items_90d", "int", "distinct items bought, 90 days"),
    Feature("distinct_categories_90d", "int", "distinct (leaf) categories bought, 90 days; 0 without a catalogue"),
    Feature(
        "repeat_line_share_180d",
        "double",
        "repeat rate: share of the order lines of 180 days whose item the customer had bought earlier in "
        "the window (an order has one line per item, so: 1 - distinct items / lines)",
        expr=lambda: _share("_repeat_lines_180d", "_lines_180d"),
    ),
    Feature("days_since_first_order_180d", "int", "tenure within the lookback: days since the first order in 180 days"),
    Feature(
        "top_department_spend_share_180d",
        "double",
        "spend in the customer's top department (category_levels[0]) / all spend, 180 days; "
        "null without a catalogue or spend",
        expr=lambda: _share("_top_department_spend", "spend_180d"),
    ),
)


def _top_department_spend(lines: DataFrame, start: date, end: date) -> DataFrame:
    """Per customer and output day: the spend of their biggest department over 180 days."""
    department = F.try_element_at(F.col("category_levels"), F.lit(1))
    partials = (
        lines.where(F.col("user_id").isNotNull() & department.isNotNull())
        .groupBy("user_id", department.alias("_department"), ORDER_DAY)
        .agg(F.sum("revenue").alias("spend"))
    )
    per_department = (
        fan_out(partials, ORDER_DAY, CUSTOMER_DAYS, start, end)
        .groupBy("user_id", "_department", FEATURE_DATE)
        .agg(F.sum("spend").alias("_spend"))
    )
    return per_department.groupBy("user_id", FEATURE_DATE).agg(F.max("_spend").alias("_top_department_spend"))


def compute_customer_orders(lines: DataFrame, start: date, end: date) -> DataFrame:
    partials = daily_customer_partials(lines)
    fanned = fan_out(partials, ORDER_DAY, CUSTOMER_DAYS, start, end)
    ages = F.sort_array(F.collect_list(AGE))
    out = fanned.groupBy("user_id", FEATURE_DATE).agg(
        *[window_sum(m, w).alias(f"{m}_{w}d") for m in ("orders", "spend", "units") for w in CUSTOMER_WINDOWS],
        *[
            window_sum(m, BASKET_DAYS).alias(f"_{m}_{BASKET_DAYS}d")
            for m in ("lines", "list_value", "discount", "coupon_known_orders", "coupon_orders")
        ],
        window_sum("lines", CUSTOMER_DAYS).alias("_lines_180d"),
        recency().alias("days_since_last_order"),
        F.max(AGE).alias("days_since_first_order_180d"),
        F.count(F.lit(1)).alias("_order_days"),  # one partial per day with an order
        (F.try_element_at(ages, F.lit(2)) - F.try_element_at(ages, F.lit(1))).alias("_last_gap"),
        availability(),
    )
    # Distinct counts from exploded elements, joined (``distinct_counts``): collecting 180 days of
    # item lists per customer and output day cost most of the view's time on real baskets.
    breadth = {
        "items": {BASKET_DAYS: "distinct_items_90d", CUSTOMER_DAYS: "_distinct_items_180d"},
        "categories": {BASKET_DAYS: "distinct_categories_90d"},
    }
    for column, windows in breadth.items():
        counts = distinct_counts(partials, ["user_id"], ORDER_DAY, column, windows, start, end)
        out = out.join(counts, ["user_id", FEATURE_DATE], "left").withColumns(
            {name: F.coalesce(name, F.lit(0)) for name in windows.values()}  # 0, never null, as before
        )
    out = out.withColumn("_repeat_lines_180d", F.col("_lines_180d") - F.col("_distinct_items_180d"))
    # The department spend summarises the same lines, so the row's available_at covers it.
    out = out.join(_top_department_spend(lines, start, end), ["user_id", FEATURE_DATE], "left")
    return select_features(out, USER.keys, CUSTOMER_ORDERS)


customer_orders_v1 = FeatureView(
    name="customer_orders",
    version=1,
    entity=USER,
    features=CUSTOMER_ORDERS,
    transform=compute_customer_orders,
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="Customers from their orders: recency, frequency and spend over 30/90/180 days, inter-purchase "
    "rhythm and overdue ratio, baskets, discounts and coupons, breadth, repeat rate, tenure, top department share.",
    lookback_days=CUSTOMER_DAYS - 1,
    source=ORDER_LINES_SOURCE,
    refactored_from=(
        "ed060ae139ca76ca",  # d2a3b36, before fan_out made only the run's output days
        "538ce1ca7e68ec31",  # distinct items and categories over collected lists of 180 days of arrays
    ),
)


# --- customer x item: repeat-purchase cycles -------------------------------------------------------

REPEAT_DAYS = 180

CUSTOMER_ITEM_REPEAT = (
    Feature("purchases_180d", "bigint", "orders that held the item, 180 days"),
    Feature("units_180d", "bigint", "units of the item bought, 180 days"),
    Feature("days_since_last_purchase", "int", "days since the customer last bought the item (within 180 days)"),
    Feature(
        "mean_days_between_purchases_180d",
        "double",
        "the typical interval: mean gap in days between consecutive days the item was bought, 180 days; "
        "null with fewer than two",
        expr=lambda: _mean_gap("_first_age", "days_since_last_purchase", "_purchase_days"),
    ),
    Feature(
        "days_overdue_180d",
        "double",
        "days since the last purchase - the typical interval (> 0: the item is due again); null without one",
        min_value=None,
        expr=lambda: (
            F.col("days_since_last_purchase") - _mean_gap("_first_age", "days_since_last_purchase", "_purchase_days")
        ),
    ),
)


def compute_customer_item_repeat(lines: DataFrame, start: date, end: date) -> DataFrame:
    partials = (
        lines.where(F.col("user_id").isNotNull())
        .groupBy("user_id", "item_id", ORDER_DAY)
        .agg(
            F.count(F.lit(1)).alias("purchases"),  # one line per order and item
            F.sum("quantity").alias("units"),
            known_date(lines),
        )
    )
    fanned = fan_out(partials, ORDER_DAY, REPEAT_DAYS, start, end)
    out = fanned.groupBy("user_id", "item_id", FEATURE_DATE).agg(
        window_sum("purchases", REPEAT_DAYS).alias("purchases_180d"),
        window_sum("units", REPEAT_DAYS).alias("units_180d"),
        recency().alias("days_since_last_purchase"),
        F.max(AGE).alias("_first_age"),
        F.count(F.lit(1)).alias("_purchase_days"),
        availability(),
    )
    return select_features(out, USER_ITEM.keys, CUSTOMER_ITEM_REPEAT)


customer_item_repeat_v1 = FeatureView(
    name="customer_item_repeat",
    version=1,
    entity=USER_ITEM,
    features=CUSTOMER_ITEM_REPEAT,
    transform=compute_customer_item_repeat,
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="Repeat purchases per customer and item over 180 days: count, units, days since the last, "
    "typical interval and days overdue (next-basket signals).",
    lookback_days=REPEAT_DAYS - 1,
    source=ORDER_LINES_SOURCE,
    refactored_from=("161c51bebf136af5",),  # d2a3b36, before fan_out made only the run's output days
)


# --- customer x category: spend shares -------------------------------------------------------------

SHARE_DAYS = 90


def _per_customer() -> Window:
    return Window.partitionBy("user_id", FEATURE_DATE)


CUSTOMER_CATEGORY_SHARE = (
    Feature("spend_90d", "double", "revenue in the (leaf) category, 90 days"),
    Feature("orders_90d", "bigint", "orders with a line in the category, 90 days"),
    Feature(
        "spend_share_90d",
        "double",
        "the category's share of the customer's spend in categorised lines, 90 days; null without spend",
        expr=lambda: F.when(
            F.sum("spend_90d").over(_per_customer()) > 0, F.col("spend_90d") / F.sum("spend_90d").over(_per_customer())
        ),
    ),
)


def compute_customer_category_share(lines: DataFrame, start: date, end: date) -> DataFrame:
    partials = (
        lines.where(F.col("user_id").isNotNull() & F.col("category").isNotNull())
        .groupBy("user_id", "category", ORDER_DAY)
        .agg(F.sum("revenue").alias("spend"), F.countDistinct("order_id").alias("orders"), known_date(lines))
    )
    out = (
        fan_out(partials, ORDER_DAY, SHARE_DAYS, start, end)
        .groupBy("user_id", "category", FEATURE_DATE)
        .agg(
            window_sum("spend", SHARE_DAYS).alias("spend_90d"),
            window_sum("orders", SHARE_DAYS).alias("orders_90d"),
            availability(),
        )
    )
    # The customer's row is known when the last of their categories is: the share depends on all of them.
    out = out.withColumn(AVAILABLE_AT, F.max(AVAILABLE_AT).over(_per_customer()))
    return select_features(out, USER_CATEGORY.keys, CUSTOMER_CATEGORY_SHARE)


customer_category_share_v1 = FeatureView(
    name="customer_category_share",
    version=1,
    entity=USER_CATEGORY,
    features=CUSTOMER_CATEGORY_SHARE,
    transform=compute_customer_category_share,
    ttl=timedelta(days=2),
    owner="ml-platform",
    description="Each customer's spend and orders per leaf category over 90 days, and the category's share of spend.",
    lookback_days=SHARE_DAYS - 1,
    source=ORDER_LINES_SOURCE,
    refactored_from=("ac2a563e4b21c8a5",),  # d2a3b36, before fan_out made only the run's output days
)


# --- items and categories: demand from sales -------------------------------------------------------

SALES_WINDOWS = (7, 28)
SALES_LAGS = (1, 7, 14, 28)
SALES_DAYS = max(SALES_LAGS) + 1
REPURCHASE_DAYS = 90

SALES = (
    Feature("units_1d", "bigint", "units sold on feature_date"),
    *[Feature(f"units_{w}d", "bigint", f"units sold in the trailing {w} days") for w in SALES_WINDOWS],
    *[Feature(f"units_lag_{k}d", "bigint", f"units sold on the single day {k} days before") for k in SALES_LAGS],
    *[Feature(f"revenue_{w}d", "double", f"revenue in the trailing {w} days") for w in SALES_WINDOWS],
    Feature(
        "avg_unit_price_7d",
        "double",
        "mean list unit price over the units sold in 7 days; null without a sale",
        expr=lambda: _share("_list_value_7d", "units_7d"),
    ),
    Feature(
        "discount_depth_7d",
        "double",
        "discounts / value at list price of what was sold, 7 days; null without a sale",
        expr=lambda: _share("_discount_7d", "_list_value_7d"),
    ),
    Feature("days_with_sales_28d", "bigint", "days with at least one sale in the trailing 28 days"),
    Feature(
        "repurchase_cycle_days_90d",
        "double",
        "mean gap in days between a customer's consecutive purchase days, over every customer who bought "
        "again within 90 days; null where nobody did",
        expr=lambda: _share("_repurchase_span", "_repurchase_gaps"),
    ),
)


def _repurchase_gaps(lines: DataFrame, key: str, start: date, end: date) -> DataFrame:
    """Per ``key`` and output day: the summed first-to-last spans and the number of gaps between
    customers' purchase days of it within 90 days (their ratio is the mean gap)."""
    partials = (
        lines.where(F.col("user_id").isNotNull() & F.col(key).isNotNull())
        .groupBy("user_id", key, ORDER_DAY)
        .agg(known_date(lines))
    )
    per_customer = (
        fan_out(partials, ORDER_DAY, REPURCHASE_DAYS, start, end)
        .groupBy("user_id", key, FEATURE_DATE)
        .agg(
            (F.max(AGE) - F.min(AGE)).alias("_span"),
            (F.count(F.lit(1)) - 1).alias("_gaps"),
            F.max(KNOWN_DATE).alias(KNOWN_DATE),
        )
    )
    return per_customer.groupBy(key, FEATURE_DATE).agg(
        F.sum("_span").alias("_repurchase_span"),
        F.sum("_gaps").alias("_repurchase_gaps"),
        availability().alias("_repurchase_available_at"),
    )


def _sales_features(lines: DataFrame, key: str, start: date, end: date) -> DataFrame:
    """One row per ``key`` with a sale in the 29 days up to each output day."""
    partials = (
        lines.where(F.col(key).isNotNull())
        .groupBy(key, ORDER_DAY)
        .agg(
            F.sum("quantity").alias("units"),
            F.sum("revenue").alias("revenue"),
            F.sum(_list_value()).alias("list_value"),
            F.sum("discount").alias("discount"),
            known_date(lines),
        )
    )
    fanned = fan_out(partials, ORDER_DAY, SALES_DAYS, start, end)
    out = fanned.groupBy(key, FEATURE_DATE).agg(
        lag("units", 0).alias("units_1d"),
        *[window_sum("units", w).alias(f"units_{w}d") for w in SALES_WINDOWS],
        *[lag("units", k).alias(f"units_lag_{k}d") for k in SALES_LAGS],
        *[window_sum("revenue", w).alias(f"revenue_{w}d") for w in SALES_WINDOWS],
        window_sum("list_value", 7).alias("_list_value_7d"),
        window_sum("discount", 7).alias("_discount_7d"),
        F.count(F.when(in_window(28), 1)).alias("days_with_sales_28d"),  # one partial per day with sales
        availability(),
    )
    out = out.join(_repurchase_gaps(lines, key, start, end), [key, FEATURE_DATE], "left")
    # The repurchase cycle reads 90 days: a late line older than the 29-day windows makes the row known later too.
    out = out.withColumn(AVAILABLE_AT, F.greatest(AVAILABLE_AT, "_repurchase_available_at"))
    return select_features(out, [key], SALES)


def compute_item_sales(lines: DataFrame, start: date, end: date) -> DataFrame:
    return _sales_features(lines, "item_id", start, end)


def compute_category_sales(lines: DataFrame, start: date, end: date) -> DataFrame:
    return _sales_features(lines, "category", start, end)


def _sales_view(name: str, entity: Entity, transform, before: str) -> FeatureView:
    return FeatureView(
        name=name,
        version=1,
        entity=entity,
        features=SALES,
        transform=transform,
        ttl=timedelta(days=2),
        owner="forecasting",
        description=f"Sales per {entity.name} from order lines: daily units, 7/28-day units and revenue, lags of "
        "1/7/14/28 days, unit price, discount depth, selling days and the 90-day repurchase cycle.",
        lookback_days=REPURCHASE_DAYS - 1,
        source=ORDER_LINES_SOURCE,
        refactored_from=(before,),  # d2a3b36, before fan_out made only the run's output days
    )


item_sales_v1 = _sales_view("item_sales", ITEM, compute_item_sales, "44f22b6d9fae6dab")
category_sales_v1 = _sales_view("category_sales", CATEGORY, compute_category_sales, "212a1f57804803ea")


# --- items: promotions, today and known in advance -------------------------------------------------

PROMOTION_DAYS = 90  # how far back "days since the last promotion" looks
AHEAD = (7, 14, 28)  # known-in-advance horizons
PROMOTION_LEAD = max(AHEAD)


def _promotion_days(promotions: DataFrame, start: date, end: date) -> DataFrame:
    """One row per item and day a promotion runs (``promo_day``), for the days any output day in
    ``[start, end]`` can see, with when each part of it became known.

    An item's promotions for one day (several stores, or a plan amended later) collapse into one row:
    ``first_known`` (the first ``ingest_date`` of any of them), ``display_known`` and
    ``mailer_known`` (the first of those with the flag; null if none has it), and ``cut_known_today``
    (the largest ``price_cut`` among those known by the day itself: the only day that reads it).
    With one row per day, a day is counted once by a plain count: no distinct aggregates."""
    first = F.lit(start - timedelta(days=PROMOTION_DAYS - 1))
    last = F.lit(end + timedelta(days=PROMOTION_LEAD))
    known = F.col("ingest_date" if "ingest_date" in promotions.columns else "start_date")
    spans = promotions.where(
        F.col("item_id").isNotNull()
        & (F.col("start_date") <= F.col("end_date"))
        & (F.col("end_date") >= first)
        & (F.col("start_date") <= last)
    ).select(
        "item_id",
        F.coalesce(F.col("display"), F.lit(False)).alias("display"),
        F.coalesce(F.col("mailer"), F.lit(False)).alias("mailer"),
        "price_cut",
        known.alias(KNOWN_DATE),
        F.explode(F.sequence(F.greatest("start_date", first), F.least("end_date", last))).alias("promo_day"),
    )
    return spans.groupBy("item_id", "promo_day").agg(
        F.min(KNOWN_DATE).alias("first_known"),
        F.min(F.when(F.col("display"), F.col(KNOWN_DATE))).alias("display_known"),
        F.min(F.when(F.col("mailer"), F.col(KNOWN_DATE))).alias("mailer_known"),
        F.max(F.when(F.col(KNOWN_DATE) <= F.col("promo_day"), F.col("price_cut"))).alias("cut_known_today"),
    )


def _promoted_days_ahead(flag: str, days: int) -> Column:
    """Days in the next ``days`` days (after feature_date) with a ``flag`` promotion known by then."""
    known = F.col(f"{flag}_known") <= F.col(FEATURE_DATE)
    return F.count(F.when(known & F.col(AGE).between(-days, -1), 1))


def _today(flag: str) -> Column:
    return F.max(F.when((F.col(AGE) == 0) & (F.col(f"{flag}_known") <= F.col(FEATURE_DATE)), 1).otherwise(0))


ITEM_PROMOTIONS = (
    Feature("on_display_today", "int", "1 when a known promotion puts the item on display on feature_date (any store)"),
    Feature("on_mailer_today", "int", "1 when a known promotion features the item in a mailer on feature_date"),
    Feature(
        "price_cut_today",
        "double",
        "the largest price_cut of the promotions running on feature_date (in the source's units); 0 without one",
        min_value=None,
    ),
    Feature(
        "days_since_last_promotion",
        "int",
        f"days since the item last ran a promotion, 0 today (within {PROMOTION_DAYS} days); null if none",
    ),
    *[
        Feature(f"{flag}_days_next_{w}d", "bigint", f"days among the next {w} with a known {flag} promotion")
        for flag in ("display", "mailer")
        for w in AHEAD
    ],
)


def compute_item_promotions(promotions: DataFrame, start: date, end: date) -> DataFrame:
    """Promotions of each item as known at the end of each output day.

    Promotions are planned ahead, so the counts of display and mailer days in the next 7/14/28 days
    are known in advance: a promotion counts for output day ``d`` only when its ``ingest_date`` is at
    or before ``d`` (it was known by the end of the day), so the row never holds a plan that arrived
    later and ``available_at`` (the day after ``d``) is point-in-time correct. A promotion recorded
    late shows from the day after it arrived, never in earlier rows.

    Each promoted item-day is fanned out to the output days that see it: from when it was first
    known (and at most ``PROMOTION_LEAD`` days ahead) to ``PROMOTION_DAYS - 1`` days after it, where
    "days since the last promotion" reads it. A day followed by another promoted day that is known no
    later stops at its own day: after it, the next day is the newer promotion everywhere, so its
    older rows would change nothing (a week-long promotion fans out its last day only that far).
    """
    days = _promotion_days(promotions, start, end)
    following = Window.partitionBy("item_id").orderBy("promo_day")
    superseded = (F.lead("promo_day").over(following) == F.date_add("promo_day", 1)) & (
        F.lead("first_known").over(following) <= F.greatest("first_known", F.date_add("promo_day", 1))
    )
    first_seen = F.greatest(F.lit(start), F.col("first_known"), F.date_sub("promo_day", PROMOTION_LEAD))
    last_seen = F.least(
        F.lit(end), F.when(superseded, F.col("promo_day")).otherwise(F.date_add("promo_day", PROMOTION_DAYS - 1))
    )
    fanned = (
        days.withColumn("_last_seen", last_seen)
        .where(first_seen <= F.col("_last_seen"))
        .withColumn(FEATURE_DATE, F.explode(F.sequence(first_seen, F.col("_last_seen"))))
        .withColumn(AGE, F.datediff(F.col(FEATURE_DATE), F.col("promo_day")))
        .withColumn(KNOWN_DATE, F.col("first_known"))  # <= feature_date: available the day after
    )
    out = fanned.groupBy("item_id", FEATURE_DATE).agg(
        _today("display").alias("on_display_today"),
        _today("mailer").alias("on_mailer_today"),
        F.coalesce(F.max(F.when(F.col(AGE) == 0, F.col("cut_known_today"))), F.lit(0.0)).alias("price_cut_today"),
        F.min(F.when(F.col(AGE) >= 0, F.col(AGE))).alias("days_since_last_promotion"),
        *[
            _promoted_days_ahead(flag, w).alias(f"{flag}_days_next_{w}d")
            for flag in ("display", "mailer")
            for w in AHEAD
        ],
        availability(),
    )
    return select_features(out, ITEM.keys, ITEM_PROMOTIONS)


item_promotions_v2 = FeatureView(
    name="item_promotions",
    version=2,
    entity=ITEM,
    features=ITEM_PROMOTIONS,
    transform=compute_item_promotions,
    ttl=timedelta(days=2),
    owner="forecasting",
    description="Promotions per item: display, mailer and price cut today, days since the last promotion, and "
    "display and mailer days planned for the next 7/14/28 days (as known that day).",
    lookback_days=PROMOTION_DAYS - 1,
    source=PROMOTIONS_SOURCE,
    lead_days=PROMOTION_LEAD,
)
