"""Each feature view on a tiny inline event log, against values computed by hand."""

from datetime import date, datetime

import pytest

from lakecart.features import (
    REGISTRY,
    category_demand_v2,
    item_demand_v2,
    item_popularity_v2,
    session_summary_v1,
    user_activity_v2,
    user_category_affinity_v1,
    user_sequences_v1,
)
from lakecart.jobs.materialize import compute_view

COLUMNS = (
    "event_id string, user_id string, session_key string, event_type string, item_id string, category string, "
    "price double, quantity int, device string, event_time timestamp, event_date date, ingest_date date"
)


def D(day):  # noqa: N802 - reads like the dates in the comments
    return date(2026, 3, day)


def T(day, hour=12, minute=0):  # noqa: N802
    return datetime(2026, 3, day, hour, minute)


def log(spark, rows):
    """rows: (user, type, item, category, price, quantity, day, hour[, minute][, ingest day])."""
    full = []
    for n, r in enumerate(rows):
        user, kind, item, category, price, quantity, day, hour, *rest = r
        minute = rest[0] if rest else 0
        ingest = D(rest[1]) if len(rest) > 1 else D(day)
        full.append(
            (
                f"e{n}",
                user,
                f"{user}@{day}",
                kind,
                item,
                category,
                price,
                quantity,
                "web",
                T(day, hour, minute),
                D(day),
                ingest,
            )
        )
    return spark.createDataFrame(full, COLUMNS)


def rows_by_key(frame, *keys):
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in frame.collect()}


@pytest.fixture(scope="module")
def shopper_log(spark):
    # Two categories; the category's average price on each day comes from all its priced events.
    return log(
        spark,
        [
            ("u", "product_view", "i1", "shoes", 100.0, 1, 1, 10),
            ("u", "purchase", "i1", "shoes", 80.0, 2, 1, 11),  # shoes on Mar 1 average (100+80)/2 = 90
            ("u", "product_view", "i2", "hats", 20.0, 1, 20, 9),
            ("u", "add_to_cart", "i2", "hats", 20.0, 1, 20, 10),
            ("u", "product_view", "i3", "hats", 40.0, 1, 25, 9),
            ("u", "purchase", "i3", "hats", 40.0, 1, 25, 10),  # hats on Mar 25 average 40
            ("v", "product_view", "i1", "shoes", 100.0, 1, 25, 10),
        ],
    )


def test_user_activity_v2_windows_rfm_conversion_breadth_and_price_index(spark, shopper_log):
    row = rows_by_key(compute_view(user_activity_v2, shopper_log, D(25), D(25)), "user_id")["u"]
    # Windows ending Mar 25: 1d = Mar 25; 7d = Mar 19..25; 28d and 90d reach back to Mar 1.
    assert (row["views_1d"], row["views_7d"], row["views_28d"], row["views_90d"]) == (1, 2, 3, 3)
    assert (row["purchases_1d"], row["purchases_7d"], row["purchases_28d"]) == (1, 1, 2)
    assert row["spend_90d"] == 2 * 80.0 + 40.0
    assert row["days_since_active"] == 0 and row["days_since_purchase"] == 0
    assert row["purchase_days_90d"] == 2  # frequency: Mar 1 and Mar 25
    assert row["spend_per_purchase_90d"] == 100.0  # monetary: 200 / 2 purchases
    assert row["cart_rate_28d"] == pytest.approx(1 / 3)  # 1 cart / 3 views
    assert row["cart_to_purchase_rate_28d"] == 2.0  # 2 purchases / 1 cart
    assert row["categories_purchased_90d"] == 2  # shoes and hats
    assert (row["distinct_items_viewed_7d"], row["distinct_items_viewed_28d"]) == (2, 3)  # i2, i3; and i1
    # Paid 80 where shoes averaged 90, and 40 where hats averaged 40: mean of 0.889 and 1.0.
    assert row["price_index_90d"] == pytest.approx((80 / 90 + 1.0) / 2)


def test_user_sequences_hold_the_newest_interactions_first(spark, shopper_log):
    row = rows_by_key(compute_view(user_sequences_v1, shopper_log, D(25), D(25)), "user_id")["u"]
    # The 28-day window ending Mar 25 starts Feb 26, so Mar 1 is still in it.
    assert row["recent_items"] == ["i3", "i3", "i2", "i2", "i1", "i1"]
    assert row["recent_categories"] == ["hats", "hats", "hats", "hats", "shoes", "shoes"]
    assert row["recent_length"] == 6


def test_user_sequences_stop_at_ten(spark):
    views = log(spark, [("u", "product_view", f"i{n}", "c", 1.0, 1, 1 + n // 5, 8, n) for n in range(14)])
    row = rows_by_key(compute_view(user_sequences_v1, views, D(3), D(3)), "user_id")["u"]
    assert row["recent_items"] == [f"i{n}" for n in range(13, 3, -1)]


def test_category_affinity_shares_sum_to_one_per_user(spark, shopper_log):
    rows = rows_by_key(compute_view(user_category_affinity_v1, shopper_log, D(25), D(25)), "user_id", "category")
    # Mar 25's 28-day window: shoes 2 interactions (Mar 1), hats 4.
    assert rows[("u", "shoes")]["interaction_share_28d"] == pytest.approx(2 / 6)
    assert rows[("u", "hats")]["interaction_share_28d"] == pytest.approx(4 / 6)
    assert rows[("u", "hats")]["purchases_28d"] == 1
    assert rows[("v", "shoes")]["interaction_share_28d"] == 1.0


def test_item_popularity_v2_trend_price_and_price_change(spark):
    # i1: one view a day Mar 1..21 at 10.0, then Mar 22..28 three views a day at 8.0.
    rows = [("u", "product_view", "i1", "c", 10.0, 1, d, 9) for d in range(1, 22)]
    rows += [("u", "product_view", "i1", "c", 8.0, 1, d, h) for d in range(22, 29) for h in (9, 10, 11)]
    row = rows_by_key(compute_view(item_popularity_v2, log(spark, rows), D(28), D(28)), "item_id")["i1"]
    assert (row["views_7d"], row["views_28d"]) == (21, 42)
    assert row["views_trend_7d_vs_28d"] == pytest.approx((21 / 7) / (42 / 28))  # 2.0: rising
    assert row["price"] == 8.0
    assert row["price_change_7d"] == pytest.approx(8.0 / 10.0 - 1)  # Mar 21 (7 days back) was 10.0


def test_demand_lags_and_rolling_means(spark):
    # Units bought: 2 on Mar 1, 3 on Mar 15, 4 on Mar 28, 5 on Mar 29.
    sales = [(1, 2), (15, 3), (28, 4), (29, 5)]
    events = log(spark, [("u", "purchase", "i1", "c", 10.0, q, d, 10) for d, q in sales])
    item = rows_by_key(compute_view(item_demand_v2, events, D(29), D(29)), "item_id")["i1"]
    assert item["units"] == 5
    assert (item["units_lag_1d"], item["units_lag_7d"], item["units_lag_14d"], item["units_lag_28d"]) == (4, 0, 3, 2)
    assert item["units_mean_7d"] == pytest.approx(9 / 7)
    assert item["units_mean_28d"] == pytest.approx(12 / 28)  # Mar 2..29: Mar 1 has aged out
    category = rows_by_key(compute_view(category_demand_v2, events, D(29), D(29)), "category")["c"]
    assert category["units_lag_14d"] == 3


def test_demand_means_count_only_the_days_the_lake_holds(spark):
    # The lake begins on Mar 10 (a view of another item); i1 sells 3 on Mar 12 and 4 on Mar 15.
    rows = [("v", "product_view", "i2", "c", 5.0, 1, 10, 9)]
    rows += [("u", "purchase", "i1", "c", 10.0, q, d, 10) for d, q in [(12, 3), (15, 4)]]
    events = log(spark, rows)
    backfill = rows_by_key(compute_view(item_demand_v2, events, D(15), D(20)), "item_id", "feature_date")
    # Mar 15: six days of history (Mar 10..15), not 7 or 28 days of which the first were never seen.
    assert backfill[("i1", D(15))]["units_mean_7d"] == pytest.approx(7 / 6)
    assert backfill[("i1", D(15))]["units_mean_28d"] == pytest.approx(7 / 6)
    assert backfill[("i1", D(16))]["units_mean_7d"] == pytest.approx(7 / 7)
    # Mar 20: the 7-day window (Mar 14..20) is all history; the 28-day one holds 11 days of it.
    assert backfill[("i1", D(20))]["units_mean_7d"] == pytest.approx(4 / 7)
    assert backfill[("i1", D(20))]["units_mean_28d"] == pytest.approx(7 / 11)
    # One day on its own reads a different range of the source and gives the same row.
    alone = rows_by_key(compute_view(item_demand_v2, events, D(20), D(20)), "item_id")["i1"]
    assert alone == backfill[("i1", D(20))]
    category = rows_by_key(compute_view(category_demand_v2, events, D(15), D(15)), "category")["c"]
    assert category["units_mean_28d"] == pytest.approx(7 / 6)


def test_session_summary(spark):
    events = log(
        spark,
        [
            ("u", "page_view", None, None, None, None, 2, 10, 0),
            ("u", "product_view", "i1", "c", 5.0, 1, 2, 10, 5),
            ("u", "product_view", "i2", "c", 5.0, 1, 2, 10, 7),
            ("u", "add_to_cart", "i2", "c", 5.0, 1, 2, 10, 9),
        ],
    )
    row = rows_by_key(compute_view(session_summary_v1, events, D(2), D(2)), "session_key")["u@2"]
    assert (row["events"], row["product_views"], row["distinct_items"]) == (4, 2, 2)
    assert (row["reached_cart"], row["purchased"], row["duration_s"]) == (1, 0, 540)


def test_late_data_makes_a_row_known_later(spark):
    # Two views on Mar 10; one arrived with the Mar 12 batch (late).
    events = log(
        spark,
        [("u", "product_view", "i1", "c", 1.0, 1, 10, 9), ("u", "product_view", "i1", "c", 1.0, 1, 10, 9, 0, 12)],
    )
    rows = rows_by_key(compute_view(user_activity_v2, events, D(10), D(11)), "feature_date")
    assert rows[D(10)]["views_1d"] == 2
    assert rows[D(10)]["available_at"] == datetime(2026, 3, 13)  # not Mar 11: the late view came Mar 12
    on_time = log(spark, [("u", "product_view", "i1", "c", 1.0, 1, 10, 9)])
    assert rows_by_key(compute_view(user_activity_v2, on_time, D(10), D(10)), "feature_date")[D(10)][
        "available_at"
    ] == datetime(2026, 3, 11)


# Views of the other sources (order lines, promotions): tests/features/test_order_views.py.
@pytest.mark.parametrize("name", sorted(n for n, v in REGISTRY.items() if v.source == "silver.events"))
def test_every_view_computes_exactly_the_columns_it_declares(spark, shopper_log, name):
    # The transform itself (compute_view would select the declared columns and hide a mismatch).
    view = REGISTRY[name]
    computed = view.transform(shopper_log, D(25), D(25)).schema
    declared = [c.split(" ", 1) for c in view.schema.split(", ")]
    assert [(f.name, f.dataType.simpleString()) for f in computed] == [(n, t) for n, t in declared]
