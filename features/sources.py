"""What the clickstream views read: *interactions*, one event-shaped row per view, cart, search or
purchase, whichever way a shop sends them.

A shop may send a clickstream (``silver.events``), order lines (``silver.order_lines``), or both.
Purchases are taken from the order lines whenever the shop sends any (they carry quantities, prices
and discounts as the till saw them); the clickstream's own purchase events are then left out, so a
purchase is never counted twice, and its views, carts and searches stay. A shop without a
clickstream thus gets every clickstream view (activity, sequences, popularity, demand) computed from
its orders: views and carts are simply zero. Each order line becomes a ``purchase`` event of its
order (``session_id`` = ``session_key`` = the order), priced at what was paid per unit
(``revenue / quantity``), in the catalogue's category.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.jobs.ingest_transforms import SILVER_COLUMNS

PURCHASE = "purchase"


def order_line_purchases(lines: DataFrame, items: DataFrame | None = None) -> DataFrame:
    """Order lines as ``silver.events``-shaped purchase rows (the same columns, in the same order)."""
    if items is not None:
        lines = lines.join(
            items.select("item_id", F.col("category").alias("_category")).dropDuplicates(["item_id"]),
            "item_id",
            "left",
        )
    else:
        lines = lines.withColumn("_category", F.lit(None).cast("string"))
    # A line paid nothing (a free or fully discounted item) has no price to learn from: null, so
    # spend counts it as 0 and category price averages leave it out (a category of only free lines
    # would otherwise average 0, and price / category average divide by it).
    paid = F.when((F.col("quantity") > 0) & (F.col("revenue") > 0), F.col("revenue") / F.col("quantity"))

    def optional(name: str, dtype: str):  # lineage columns a hand-built frame may not carry
        return (F.col(name) if name in lines.columns else F.lit(None)).cast(dtype).alias(name)

    shopper = F.col("user_id")
    return lines.select(
        F.concat_ws(":", F.lit("order"), "order_id", "item_id").alias("event_id"),
        shopper.alias("user_id"),
        F.lit(None).cast("string").alias("anonymous_id"),
        F.col("order_id").alias("session_id"),
        F.lit(PURCHASE).alias("event_type"),
        "item_id",
        F.col("_category").alias("category"),
        paid.cast("double").alias("price"),
        F.col("quantity").cast("int").alias("quantity"),
        F.lit(None).cast("string").alias("search_query"),
        F.lit(None).cast("string").alias("device"),
        F.lit("orders").alias("channel"),
        F.col("order_time").alias("event_time"),
        F.concat_ws("@", shopper, F.concat(F.lit("order:"), "order_id")).alias("session_key"),
        optional("extra", "map<string,string>"),
        F.col("order_date").alias("event_date"),
        optional("ingest_date", "date"),
        optional("source_file", "string"),
        optional("source_line", "long"),
        optional("batch_id", "string"),
    )


def interactions(events: DataFrame | None, lines: DataFrame | None = None, items: DataFrame | None = None) -> DataFrame:
    """Clickstream and order lines as one event-shaped frame: purchases from the order lines when
    there are any (``lines`` not None), else from the clickstream."""
    if lines is None:
        if events is None:
            raise ValueError("no clickstream and no order lines: nothing to compute interactions from")
        return events
    purchases = order_line_purchases(lines, items)
    if events is None:
        return purchases
    browsing = events.where(F.col("event_type") != PURCHASE).select(*SILVER_COLUMNS)
    return browsing.unionByName(purchases.select(*SILVER_COLUMNS))
