"""Raw data contracts as code, and the pure transforms of ingestion (no I/O): the contract rules
that decide each record's ``reject_reason``, typing, de-duplication (first seen wins), sessions, and the
``RawSource`` declarations. ``lakecart.jobs.ingest`` re-exports every public name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakecart import tables
from lakecart.config import IngestSettings, Settings, get_settings

EVENT_TYPES = (
    "page_view",
    "search",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "refund",
)
ITEM_EVENT_TYPES = ("product_view", "add_to_cart", "remove_from_cart", "purchase", "refund")
MAX_PRICE = 100_000.0
# The most units on one line is a setting (``ingest.max_quantity``): real bulk orders differ per shop.
SESSION_GAP_SECONDS = 30 * 60  # a pause this long starts a new session (the common web-analytics default)

# Every field is read as text first, so that one bad value is reported, not a whole null record.
RAW_EVENT_FIELDS = (
    "event_id",
    "user_id",
    "anonymous_id",
    "session_id",
    "event_type",
    "item_id",
    "category",
    "price",
    "quantity",
    "search_query",
    "device",
    "channel",
    "event_time",
)
RAW_ORDER_FIELDS = ("order_id", "user_id", "item_id", "quantity", "unit_price", "discount", "order_time")
RAW_USER_FIELDS = ("user_id", "signup_time", "region", "segment")
# A promotion of an item in one store (store_id null: every store) over [start_date, end_date], inclusive.
RAW_PROMOTION_FIELDS = ("item_id", "store_id", "start_date", "end_date", "display", "mailer", "price_cut")
# Where a record came from; (ingest_date, source_file, source_line) is also the "first seen" order.
INGEST_COLUMNS = ("ingest_date", "source_file", "source_line", "batch_id")

# Silver keeps every contract field, typed, plus what ingestion learned about each record.
SILVER_COLUMNS = (*RAW_EVENT_FIELDS, "session_key", "extra", "event_date", *INGEST_COLUMNS)
SILVER_ORDER_COLUMNS = (*RAW_ORDER_FIELDS, "revenue", "extra", "order_date", *INGEST_COLUMNS)
SILVER_USER_COLUMNS = (*RAW_USER_FIELDS, "extra", *INGEST_COLUMNS)
SILVER_PROMOTION_COLUMNS = (*RAW_PROMOTION_FIELDS, "extra", *INGEST_COLUMNS)


def to_bronze(raw: DataFrame, batch_ids: dict[date, str]) -> DataFrame:
    """Raw records plus ingest metadata; blank lines carry no record and are not kept.

    ``raw`` is always valid UTF-8, so every Delta reader (Spark, delta-rs, DuckDB) can read the table: a
    record whose bytes are not UTF-8 keeps them in ``raw_bytes`` (null otherwise) and its text with
    each bad sequence replaced by U+FFFD; silver quarantines it as ``invalid_utf8``.

    ``ingested_at`` is audit metadata (when the file landed), the one wall-clock value in the lake: no
    logic reads it, and content comparisons across re-runs leave it out."""
    mapping = F.create_map(*[x for d, b in batch_ids.items() for x in (F.lit(d), F.lit(b))])
    valid = F.is_valid_utf8("raw")
    return raw.where(F.trim("raw") != "").select(
        F.when(valid, F.col("raw")).otherwise(F.make_valid_utf8("raw")).alias("raw"),
        F.when(~valid, F.col("raw").cast("binary")).alias("raw_bytes"),
        "source_file",
        F.col("source_line").cast("long").alias("source_line"),
        mapping[F.col("ingest_date")].alias("batch_id"),
        F.current_timestamp().alias("ingested_at"),
        "ingest_date",
    )


def _first_breach(rules: list[tuple[Column, str]]) -> Column:
    """The name of the first rule whose condition holds, or null if none does."""
    reason = F.lit(None).cast("string")
    for condition, name in reversed(rules):
        reason = F.when(condition, F.lit(name)).otherwise(reason)
    return reason


def _malformed(p: str) -> Column:
    return F.col(f"{p}._corrupt_record").isNotNull() | F.col(p).isNull()


def _price_rules(column: Column, raw: Column) -> list[tuple[Column, str]]:
    # try_* because Spark 4 runs in ANSI mode: a plain cast of a bad value fails the whole job.
    price = column.try_cast("double")
    return [
        (raw.isNotNull() & price.isNull(), "invalid_price"),
        (price < 0, "negative_price"),
        (price > MAX_PRICE, "price_out_of_range"),
    ]


def _event_rules(p: str = "p", limits: IngestSettings | None = None) -> Column:
    """The first clickstream contract rule a parsed record breaks, or null if it keeps them all."""
    col = lambda name: F.col(f"{p}.{name}")  # noqa: E731
    return _first_breach(
        [
            (_malformed(p), "malformed_record"),
            (col("event_id").isNull(), "missing_event_id"),
            # Signed-out visitors have only an anonymous id; one of the two must be there.
            (col("user_id").isNull() & col("anonymous_id").isNull(), "missing_user_id"),
            (col("event_type").isNull(), "missing_event_type"),
            (~col("event_type").isin(*EVENT_TYPES), "unknown_event_type"),
            (col("event_type").isin(*ITEM_EVENT_TYPES) & col("item_id").isNull(), "missing_item_id"),
            ((col("event_type") == "search") & col("search_query").isNull(), "missing_search_query"),
            (F.try_to_timestamp(col("event_time")).isNull(), "invalid_event_time"),
            *_price_rules(col("price"), col("price")),
            (col("quantity").isNotNull() & col("quantity").try_cast("int").isNull(), "invalid_quantity"),
        ]
    )


def _order_rules(p: str = "p", limits: IngestSettings | None = None) -> Column:
    limits = limits or get_settings().ingest
    col = lambda name: F.col(f"{p}.{name}")  # noqa: E731
    quantity, discount = col("quantity").try_cast("int"), F.coalesce(col("discount").try_cast("double"), F.lit(0.0))
    return _first_breach(
        [
            (_malformed(p), "malformed_record"),
            (col("order_id").isNull(), "missing_order_id"),
            (col("user_id").isNull(), "missing_user_id"),
            (col("item_id").isNull(), "missing_item_id"),
            (quantity.isNull() | (quantity < 1) | (quantity > limits.max_quantity), "invalid_quantity"),
            (col("unit_price").isNull(), "missing_unit_price"),
            *_price_rules(col("unit_price"), col("unit_price")),
            (col("discount").isNotNull() & col("discount").try_cast("double").isNull(), "invalid_discount"),
            ((discount < 0) | (discount > col("unit_price").try_cast("double") * quantity), "invalid_discount"),
            (F.try_to_timestamp(col("order_time")).isNull(), "invalid_order_time"),
        ]
    )


def _user_rules(p: str = "p", limits: IngestSettings | None = None) -> Column:
    col = lambda name: F.col(f"{p}.{name}")  # noqa: E731
    return _first_breach(
        [
            (_malformed(p), "malformed_record"),
            (col("user_id").isNull(), "missing_user_id"),
            (F.try_to_timestamp(col("signup_time")).isNull(), "invalid_signup_time"),
        ]
    )


def _date(column: Column) -> Column:
    """A ``yyyy-MM-dd`` text as a date; null when it is not one (ANSI mode: never a failed job)."""
    return F.to_date(F.try_to_timestamp(column, F.lit("yyyy-MM-dd")))


def _flag_rule(column: Column, reason: str) -> tuple[Column, str]:
    """A boolean field: absent means false; anything but a boolean is a breach."""
    return (column.isNotNull() & column.try_cast("boolean").isNull(), reason)


def _promotion_rules(p: str = "p", limits: IngestSettings | None = None) -> Column:
    col = lambda name: F.col(f"{p}.{name}")  # noqa: E731
    start, end, cut = _date(col("start_date")), _date(col("end_date")), col("price_cut").try_cast("double")
    return _first_breach(
        [
            (_malformed(p), "malformed_record"),
            (col("item_id").isNull(), "missing_item_id"),
            (start.isNull(), "invalid_start_date"),
            (end.isNull(), "invalid_end_date"),
            (end < start, "end_before_start"),
            _flag_rule(col("display"), "invalid_display"),
            _flag_rule(col("mailer"), "invalid_mailer"),
            (col("price_cut").isNotNull() & cut.isNull(), "invalid_price_cut"),
            ((cut < 0) | (cut > MAX_PRICE), "price_cut_out_of_range"),
        ]
    )


def _extra_fields(known_fields: tuple[str, ...]) -> Column:
    """Fields the contract does not name, kept as text (a new field appearing mid-stream is data,
    not an error); an empty map when there are none (``_null_if_no_extra`` makes that null)."""
    everything = F.from_json("raw", T.MapType(T.StringType(), T.StringType()))
    known = F.array(*[F.lit(name) for name in known_fields])
    # A field sent as null is a field not sent (bulk writers such as pandas write nulls, not gaps).
    return F.map_filter(everything, lambda key, value: ~F.array_contains(known, key) & value.isNotNull())


def _null_if_no_extra(typed: DataFrame) -> DataFrame:
    """``extra`` null where the record has no extra field. A projection of its own: one expression
    naming the map twice (is it empty? then the map) had Spark parse every record's JSON twice."""
    return typed.withColumn("extra", F.when(F.size("extra") > 0, F.col("extra")))


def sessionise(events: DataFrame, gap_seconds: int = SESSION_GAP_SECONDS) -> DataFrame:
    """``session_key``: per shopper (user id, else anonymous id), a new session after ``gap_seconds``
    without events. The key is the shopper and the session's first event time, so it is stable
    across re-runs. Sessions are cut at batch boundaries (a day's file), as in most batch pipelines."""
    shopper = F.coalesce("user_id", "anonymous_id")
    ordered = Window.partitionBy(shopper).orderBy("event_time", "event_id")
    seconds = F.col("event_time").cast("long")
    starts = F.lag(seconds).over(ordered).isNull() | (seconds - F.lag(seconds).over(ordered) > gap_seconds)
    flagged = events.withColumn("_start", F.when(starts, F.col("event_time")))
    session_start = F.max("_start").over(ordered)  # running max: the latest start so far
    key = F.concat_ws("@", shopper, F.date_format(session_start, "yyyyMMdd'T'HHmmss.SSS"))
    return flagged.withColumn("session_key", key).drop("_start")


def first_seen_order(newest: bool = False) -> list[Column]:
    """The order records are seen in: raw partition date, then source file, then position in it."""
    order = [F.col(c) for c in ("ingest_date", "source_file", "source_line")]
    return [c.desc_nulls_last() for c in order] if newest else [c.asc_nulls_last() for c in order]


def keep_first_seen(frame: DataFrame, keys: list[str], newest: bool = False) -> DataFrame:
    """One row per key: the first seen (or, with ``newest``, the last seen), deterministically."""
    rank = F.row_number().over(Window.partitionBy(*keys).orderBy(*first_seen_order(newest)))
    return frame.withColumn("_rank", rank).where(F.col("_rank") == 1).drop("_rank")


def _typed_events(accepted: DataFrame) -> DataFrame:
    typed = accepted.select(
        *[
            F.col(f"p.{name}").alias(name)
            for name in RAW_EVENT_FIELDS
            if name not in ("price", "quantity", "event_time")
        ],
        F.col("p.price").try_cast("double").alias("price"),
        F.coalesce(F.col("p.quantity").try_cast("int"), F.lit(0)).alias("quantity"),
        F.try_to_timestamp(F.col("p.event_time")).alias("event_time"),
        _extra_fields(RAW_EVENT_FIELDS).alias("extra"),
        *INGEST_COLUMNS,
    ).withColumn("event_date", F.to_date("event_time"))
    return sessionise(keep_first_seen(_null_if_no_extra(typed), ["event_id"])).select(*SILVER_COLUMNS)


def _typed_orders(accepted: DataFrame) -> DataFrame:
    quantity = F.col("p.quantity").try_cast("int")
    unit_price = F.col("p.unit_price").try_cast("double")
    discount = F.coalesce(F.col("p.discount").try_cast("double"), F.lit(0.0))
    typed = accepted.select(
        *[F.col(f"p.{name}").alias(name) for name in ("order_id", "user_id", "item_id")],
        quantity.alias("quantity"),
        unit_price.alias("unit_price"),
        discount.alias("discount"),
        F.try_to_timestamp(F.col("p.order_time")).alias("order_time"),
        F.round(unit_price * quantity - discount, 2).alias("revenue"),
        _extra_fields(RAW_ORDER_FIELDS).alias("extra"),
        *INGEST_COLUMNS,
    ).withColumn("order_date", F.to_date("order_time"))
    return keep_first_seen(_null_if_no_extra(typed), ["order_id", "item_id"]).select(*SILVER_ORDER_COLUMNS)


def _typed_users(accepted: DataFrame) -> DataFrame:
    typed = accepted.select(
        F.col("p.user_id").alias("user_id"),
        F.try_to_timestamp(F.col("p.signup_time")).alias("signup_time"),
        F.col("p.region").alias("region"),
        F.col("p.segment").alias("segment"),
        _extra_fields(RAW_USER_FIELDS).alias("extra"),
        *INGEST_COLUMNS,
    )
    return keep_first_seen(_null_if_no_extra(typed), ["user_id"], newest=True).select(*SILVER_USER_COLUMNS)


def _typed_promotions(accepted: DataFrame) -> DataFrame:
    typed = accepted.select(
        F.col("p.item_id").alias("item_id"),
        F.col("p.store_id").alias("store_id"),
        _date(F.col("p.start_date")).alias("start_date"),
        _date(F.col("p.end_date")).alias("end_date"),
        F.coalesce(F.col("p.display").try_cast("boolean"), F.lit(False)).alias("display"),
        F.coalesce(F.col("p.mailer").try_cast("boolean"), F.lit(False)).alias("mailer"),
        F.col("p.price_cut").try_cast("double").alias("price_cut"),
        _extra_fields(RAW_PROMOTION_FIELDS).alias("extra"),
        *INGEST_COLUMNS,
    )
    return keep_first_seen(_null_if_no_extra(typed), list(tables.SILVER_PROMOTIONS.keys)).select(
        *SILVER_PROMOTION_COLUMNS
    )


@dataclass(frozen=True, kw_only=True)
class RawSource:
    """One kind of raw input: where its files land, its contract, and the tables it feeds.

    ``newest_wins``: a key seen again replaces the silver row (user exports); otherwise the first
    seen record stays. ``empty_days_ok``: a day that brings no usable record passes the gate (a user
    export with no new or changed users); otherwise it fails it."""

    name: str
    partition: str  # the raw folder's date partition, e.g. event_date=2026-01-01
    fields: tuple[str, ...]
    rules: Callable[[str, IngestSettings], Column]  # (parsed struct column, the ingest bounds) -> reason
    typed: Callable[[DataFrame], DataFrame]
    bronze: tables.Table
    ledger: tables.Table
    quarantine: tables.Table
    staging: tables.Table
    silver: tables.Table
    newest_wins: bool = False
    empty_days_ok: bool = False
    # Partitions exist only on some days by nature (a promotion starts on a few days of a year): a
    # day without a folder in a backfill range is no promotion starting, not missing data.
    sparse: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """The silver table's key, as its declaration says (one row per key)."""
        return self.silver.keys

    @property
    def silver_partition(self) -> str | None:
        return self.silver.partition

    @property
    def schema(self) -> T.StructType:
        return T.StructType(
            [T.StructField(n, T.StringType()) for n in self.fields] + [T.StructField("_corrupt_record", T.StringType())]
        )


EVENTS = RawSource(
    name="events",
    partition="event_date",
    fields=RAW_EVENT_FIELDS,
    rules=_event_rules,
    typed=_typed_events,
    bronze=tables.BRONZE_EVENTS,
    ledger=tables.INGEST_LEDGER,
    quarantine=tables.QUARANTINE_EVENTS,
    staging=tables.STAGING_SILVER_EVENTS,
    silver=tables.SILVER_EVENTS,
)
ORDERS = RawSource(
    name="orders",
    partition="order_date",
    fields=RAW_ORDER_FIELDS,
    rules=_order_rules,
    typed=_typed_orders,
    bronze=tables.BRONZE_ORDERS,
    ledger=tables.ORDERS_LEDGER,
    quarantine=tables.QUARANTINE_ORDERS,
    staging=tables.STAGING_ORDER_LINES,
    silver=tables.SILVER_ORDER_LINES,
)
USERS = RawSource(
    name="users",
    partition="export_date",
    fields=RAW_USER_FIELDS,
    rules=_user_rules,
    typed=_typed_users,
    bronze=tables.BRONZE_USERS,
    ledger=tables.USERS_LEDGER,
    quarantine=tables.QUARANTINE_USERS,
    staging=tables.STAGING_USERS,
    silver=tables.SILVER_USERS,
    newest_wins=True,  # an export carries each day's new *and changed* users
    empty_days_ok=True,  # a day without new or changed users is normal
    sparse=True,  # ... and so is a day without an export at all (a customer table imported once)
)
PROMOTIONS = RawSource(
    name="promotions",
    partition="start_date",
    fields=RAW_PROMOTION_FIELDS,
    rules=_promotion_rules,
    typed=_typed_promotions,
    bronze=tables.BRONZE_PROMOTIONS,
    ledger=tables.PROMOTIONS_LEDGER,
    quarantine=tables.QUARANTINE_PROMOTIONS,
    staging=tables.STAGING_PROMOTIONS,
    silver=tables.SILVER_PROMOTIONS,
    empty_days_ok=True,
    sparse=True,
)
SOURCES = {s.name: s for s in (EVENTS, ORDERS, USERS, PROMOTIONS)}


def parse_records(bronze: DataFrame, source: RawSource = EVENTS, settings: Settings | None = None) -> DataFrame:
    """Parse raw JSON and attach ``reject_reason`` (null for records that keep the contract).
    ``settings``: whose ``ingest`` bounds the rules apply (default: the process settings)."""
    parsed = bronze.withColumn(
        "p",
        F.from_json("raw", source.schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}),
    )
    reason = source.rules("p", (settings or get_settings()).ingest)
    if "raw_bytes" in bronze.columns:  # bronze written before raw_bytes existed has none
        reason = F.when(F.col("raw_bytes").isNotNull(), F.lit("invalid_utf8")).otherwise(reason)
    return parsed.withColumn("reject_reason", reason)


def quarantined(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "raw", "source_file", "source_line", "batch_id", "ingest_date", "reject_reason"
    )


def to_silver(parsed: DataFrame, source: RawSource = EVENTS) -> DataFrame:
    """Typed, contract-keeping records, one row per key (first seen wins)."""
    return source.typed(parsed.where(F.col("reject_reason").isNull()))


CATALOG_FIELDS = ("item_id", "title", "brand", "category", "category_path", "price", "launch_date")
CATALOG_SCHEMA = T.StructType(
    [T.StructField(n, T.DoubleType() if n == "price" else T.StringType()) for n in CATALOG_FIELDS]
)
CATEGORY_PATH_SEPARATOR = " > "


def to_silver_items(catalog: DataFrame) -> DataFrame:
    """Keyed items; ``category_levels`` splits the path (top level first), ``category`` defaults to
    its leaf."""
    levels = F.when(F.col("category_path").isNotNull(), F.split("category_path", CATEGORY_PATH_SEPARATOR))
    return (
        catalog.where(F.col("item_id").isNotNull())
        .withColumn("launch_date", F.to_date("launch_date"))
        .withColumn("category_levels", levels)
        .withColumn("category", F.coalesce("category", F.element_at(levels, -1)))
        .dropDuplicates(["item_id"])
    )
