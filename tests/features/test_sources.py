"""Interactions: purchases come from order lines when a shop sends them, never twice."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from lakecart.features.sources import interactions, order_line_purchases

EVENTS = (
    "event_id string, user_id string, anonymous_id string, session_id string, event_type string, item_id string, "
    "category string, price double, quantity int, search_query string, device string, channel string, "
    "event_time timestamp, session_key string, extra map<string,string>, event_date date, ingest_date date, "
    "source_file string, source_line long, batch_id string"
)
LINES = (
    "order_id string, user_id string, item_id string, quantity int, unit_price double, discount double, "
    "order_time timestamp, revenue double, extra map<string,string>, order_date date, ingest_date date, "
    "source_file string, source_line long, batch_id string"
)
DAY = date(2026, 5, 4)
T = datetime(2026, 5, 4, 10, 0)


def _event(spark, event_id, event_type, item="i1", quantity=None):
    return (event_id, "007", None, "s1", event_type, item, "dairy", 2.0, quantity, None, "web", None, T, "k",
            None, DAY, DAY, "f", 1, "b")  # fmt: skip


def test_an_order_line_becomes_a_purchase_at_the_price_paid_in_its_catalogue_category(spark):
    lines = spark.createDataFrame(
        [("o9", "007", "0042", 3, 2.0, 1.5, T, 4.5, {"store_id": "s1"}, DAY, DAY, "f", 7, "b")], LINES
    )
    items = spark.createDataFrame([("0042", "dairy")], "item_id string, category string")
    [row] = order_line_purchases(lines, items).collect()
    assert (row.event_type, row.user_id, row.item_id, row.category) == ("purchase", "007", "0042", "dairy")
    assert (row.quantity, row.price) == (3, pytest.approx(1.5))  # (3 x 2.0 - 1.5) / 3 paid per unit
    assert (row.session_id, row.event_id, row.event_date, row.extra) == ("o9", "order:o9:0042", DAY, {"store_id": "s1"})
    [no_catalogue] = order_line_purchases(lines).collect()
    assert no_catalogue.category is None
    free = lines.withColumn("revenue", F.lit(0.0))  # fully discounted: no price, not a price of 0
    assert order_line_purchases(free).collect()[0].price is None


def test_purchases_come_from_order_lines_when_the_shop_sends_them(spark):
    events = spark.createDataFrame(
        [
            _event(spark, "e1", "product_view"),
            _event(spark, "e2", "add_to_cart"),
            _event(spark, "e3", "purchase", quantity=1),
        ],
        EVENTS,
    )
    lines = spark.createDataFrame([("o1", "007", "i1", 1, 2.0, 0.0, T, 2.0, None, DAY, DAY, "f", 1, "b")], LINES)
    both = {(r.event_type, r.event_id) for r in interactions(events, lines).collect()}
    # The clickstream's purchase e3 is the order line o1: counted once, from the order.
    assert both == {("product_view", "e1"), ("add_to_cart", "e2"), ("purchase", "order:o1:i1")}
    assert {r.event_id for r in interactions(None, lines).collect()} == {"order:o1:i1"}
    assert {r.event_id for r in interactions(events, None).collect()} == {"e1", "e2", "e3"}
    with pytest.raises(ValueError, match="nothing to compute"):
        interactions(None, None)


def test_clickstream_views_of_a_shop_without_clickstream_come_from_its_orders(spark, settings):
    """No silver.events at all: user_activity_v2 is computed from the order lines (purchases and
    spend; views zero), and a day whose published raw file was empty (a closed shop) is not refused."""
    from datetime import timedelta

    from deltalake import DeltaTable

    from lakecart import tables
    from lakecart.features import REGISTRY
    from lakecart.jobs.feature_store import apply
    from lakecart.jobs.materialize import run_materialize

    lines = spark.createDataFrame(
        [
            ("o1", "007", "0042", 2, 3.0, 1.0, T, 5.0, None, DAY, DAY, "f1", 1, "b1"),
            (
                "o2",
                "007",
                "0042",
                1,
                3.0,
                0.0,
                T + timedelta(days=2),
                3.0,
                None,
                DAY + timedelta(days=2),
                DAY + timedelta(days=2),
                "f3",
                1,
                "b1",
            ),
        ],
        LINES,
    )
    lines.write.format("delta").partitionBy("order_date").save(tables.table_path(tables.SILVER_ORDER_LINES, settings))
    ledger = spark.createDataFrame(
        [(f"f{n}", 10 if n != 2 else 0, 0, DAY + timedelta(days=n - 1), "b1", "published") for n in (1, 2, 3)],
        "source_file string, size long, modified_ms long, ingest_date date, batch_id string, status string",
    )
    ledger.write.format("delta").save(tables.table_path(tables.ORDERS_LEDGER, settings))
    apply(spark, settings, views=[REGISTRY["user_activity_v2"]])
    run_materialize(spark, settings, DAY, DAY + timedelta(days=2), ["user_activity_v2"])
    rows = DeltaTable(tables.table_path("features.user_activity_v2", settings)).to_pandas().set_index("feature_date")
    last = rows.loc[DAY + timedelta(days=2)]
    assert (last["purchases_7d"], last["spend_7d"], last["views_7d"], last["days_since_purchase"]) == (
        2,
        8.0,
        0,
        0,
    )  # two purchases (order lines), 5.00 + 3.00 paid
    assert rows.loc[DAY + timedelta(days=1), "days_since_purchase"] == 1  # the closed day, accounted for
