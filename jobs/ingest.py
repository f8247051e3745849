"""Raw logs -> bronze (raw text + ingest metadata) -> silver (typed, de-duplicated), for every raw
source: clickstream events, order lines and user exports.

Records that break a source's contract go to ``quarantine.<source>`` with a machine-readable reason;
nothing is dropped silently. Per batch: raw records = accepted + quarantined + duplicates dropped.
Raw files may be JSON lines (plain or gzip), CSV (plain or gzip) or Parquet, mixed freely.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.faults import crash_point

log = logging.getLogger(__name__)

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
MAX_QUANTITY = 1000
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
INGEST_COLUMNS = ("ingest_date", "source_file", "batch_id")

# Silver keeps every contract field, typed, plus what ingestion learned about each record.
SILVER_COLUMNS = (*RAW_EVENT_FIELDS, "session_key", "extra", "event_date", *INGEST_COLUMNS)
SILVER_ORDER_COLUMNS = (*RAW_ORDER_FIELDS, "revenue", "extra", "order_date", *INGEST_COLUMNS)
SILVER_USER_COLUMNS = (*RAW_USER_FIELDS, "extra", *INGEST_COLUMNS)

# File name endings ingestion reads, and how. A ``.gz`` on JSON lines or CSV is decompressed.
RAW_FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class MissingInputError(FileNotFoundError):
    """The raw partition a job was told to read does not exist."""


class RawInputError(ValueError):
    """A raw file cannot be ingested (unknown format, unreadable); the message names the file."""


def raw_format(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    compressed = name.endswith(".gz")
    base = name.removesuffix(".gz")
    for suffix, fmt in RAW_FORMATS.items():
        if base.endswith(suffix) and not (compressed and fmt == "parquet"):
            return fmt
    accepted = ", ".join([*RAW_FORMATS, *(s + ".gz" for s in RAW_FORMATS if RAW_FORMATS[s] != "parquet")])
    raise RawInputError(f"{path}: unknown raw format (accepted endings: {accepted})")


def batch_id_for(day: date, files: list[str]) -> str:
    """Deterministic: the same files for the same day always make the same batch id."""
    digest = hashlib.sha256("\n".join([day.isoformat(), *sorted(files)]).encode()).hexdigest()
    return f"{day:%Y%m%d}-{digest[:12]}"


def _path_exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hpath)


# --- pure transforms -------------------------------------------------------------------------


def to_bronze(raw: DataFrame, batch_ids: dict[date, str]) -> DataFrame:
    """Raw records plus ingest metadata; blank lines carry no record and are not kept.

    ``ingested_at`` is audit metadata (when the file landed), the one wall-clock value in the lake: no
    logic reads it, and content comparisons across re-runs leave it out."""
    mapping = F.create_map(*[x for d, b in batch_ids.items() for x in (F.lit(d), F.lit(b))])
    return raw.where(F.trim("raw") != "").select(
        "raw",
        "source_file",
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


def _event_rules(p: str = "p") -> Column:
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


def _order_rules(p: str = "p") -> Column:
    col = lambda name: F.col(f"{p}.{name}")  # noqa: E731
    quantity, discount = col("quantity").try_cast("int"), F.coalesce(col("discount").try_cast("double"), F.lit(0.0))
    return _first_breach(
        [
            (_malformed(p), "malformed_record"),
            (col("order_id").isNull(), "missing_order_id"),
            (col("user_id").isNull(), "missing_user_id"),
            (col("item_id").isNull(), "missing_item_id"),
            (quantity.isNull() | (quantity < 1) | (quantity > MAX_QUANTITY), "invalid_quantity"),
            (col("unit_price").isNull(), "missing_unit_price"),
            *_price_rules(col("unit_price"), col("unit_price")),
            (col("discount").isNotNull() & col("discount").try_cast("double").isNull(), "invalid_discount"),
            ((discount < 0) | (discount > col("unit_price").try_cast("double") * quantity), "invalid_discount"),
            (F.try_to_timestamp(col("order_time")).isNull(), "invalid_order_time"),
        ]
    )


def _user_rules(p: str = "p") -> Column:
    col = lambda name: F.col(f"{p}.{name}")  # noqa: E731
    return _first_breach(
        [
            (_malformed(p), "malformed_record"),
            (col("user_id").isNull(), "missing_user_id"),
            (F.try_to_timestamp(col("signup_time")).isNull(), "invalid_signup_time"),
        ]
    )


def _extra_fields(known_fields: tuple[str, ...]) -> Column:
    """Fields the contract does not name, kept as text (a new field appearing mid-stream is data,
    not an error); null when there are none."""
    everything = F.from_json("raw", T.MapType(T.StringType(), T.StringType()))
    known = F.array(*[F.lit(name) for name in known_fields])
    extra = F.map_filter(everything, lambda key, _: ~F.array_contains(known, key))
    return F.when(F.size(extra) > 0, extra)


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
    return sessionise(typed.dropDuplicates(["event_id"])).select(*SILVER_COLUMNS)


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
    return typed.dropDuplicates(["order_id", "item_id"]).select(*SILVER_ORDER_COLUMNS)


def _typed_users(accepted: DataFrame) -> DataFrame:
    typed = accepted.select(
        F.col("p.user_id").alias("user_id"),
        F.try_to_timestamp(F.col("p.signup_time")).alias("signup_time"),
        F.col("p.region").alias("region"),
        F.col("p.segment").alias("segment"),
        _extra_fields(RAW_USER_FIELDS).alias("extra"),
        *INGEST_COLUMNS,
    )
    return typed.dropDuplicates(["user_id"]).select(*SILVER_USER_COLUMNS)


@dataclass(frozen=True)
class RawSource:
    """One kind of raw input: where its files land, its contract, and the tables it feeds."""

    name: str
    partition: str  # the raw folder's date partition, e.g. event_date=2026-01-01
    fields: tuple[str, ...]
    rules: Callable[[str], Column]
    typed: Callable[[DataFrame], DataFrame]
    keys: tuple[str, ...]
    silver_partition: str | None
    bronze: str
    ledger: str
    quarantine: str
    staging: str
    silver: str

    @property
    def schema(self) -> T.StructType:
        return T.StructType(
            [T.StructField(n, T.StringType()) for n in self.fields] + [T.StructField("_corrupt_record", T.StringType())]
        )


EVENTS = RawSource(
    "events",
    "event_date",
    RAW_EVENT_FIELDS,
    _event_rules,
    _typed_events,
    ("event_id",),
    "event_date",
    tables.BRONZE_EVENTS,
    tables.INGEST_LEDGER,
    tables.QUARANTINE_EVENTS,
    tables.STAGING_SILVER_EVENTS,
    tables.SILVER_EVENTS,
)
ORDERS = RawSource(
    "orders",
    "order_date",
    RAW_ORDER_FIELDS,
    _order_rules,
    _typed_orders,
    ("order_id", "item_id"),
    "order_date",
    tables.BRONZE_ORDERS,
    tables.ORDERS_LEDGER,
    tables.QUARANTINE_ORDERS,
    tables.STAGING_ORDER_LINES,
    tables.SILVER_ORDER_LINES,
)
USERS = RawSource(
    "users",
    "export_date",
    RAW_USER_FIELDS,
    _user_rules,
    _typed_users,
    ("user_id",),
    None,
    tables.BRONZE_USERS,
    tables.USERS_LEDGER,
    tables.QUARANTINE_USERS,
    tables.STAGING_USERS,
    tables.SILVER_USERS,
)
SOURCES = {s.name: s for s in (EVENTS, ORDERS, USERS)}


def parse_records(bronze: DataFrame, source: RawSource = EVENTS) -> DataFrame:
    """Parse raw JSON and attach ``reject_reason`` (null for records that keep the contract)."""
    parsed = bronze.withColumn(
        "p",
        F.from_json("raw", source.schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}),
    )
    return parsed.withColumn("reject_reason", source.rules("p"))


def quarantined(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "raw", "source_file", "batch_id", "ingest_date", "reject_reason"
    )


def to_silver(parsed: DataFrame, source: RawSource = EVENTS) -> DataFrame:
    """Typed, contract-keeping records, one row per key (first seen wins)."""
    return source.typed(parsed.where(F.col("reject_reason").isNull()))


# --- thin I/O --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestReport:
    day: date
    raw_records: int
    accepted: int
    quarantined: int
    duplicates_dropped: int

    @property
    def reconciles(self) -> bool:
        return self.raw_records == self.accepted + self.quarantined + self.duplicates_dropped


def _counts_by_day(df: DataFrame) -> dict[date, int]:
    return {r["ingest_date"]: r["count"] for r in df.groupBy("ingest_date").count().collect()}


@dataclass(frozen=True)
class RawFile:
    path: str
    size: int
    modified_ms: int
    day: date


LEDGER_SCHEMA = "source_file string, size long, modified_ms long, ingest_date date, batch_id string, status string"


def list_raw_files(spark: SparkSession, raw_root: str, days: list[date], source: RawSource = EVENTS) -> list[RawFile]:
    """The raw files of the given date partitions. A missing partition, a file in a format ingestion
    does not read, or a file that cannot be opened is an error naming it, raised before any write."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    files, missing = [], []
    for day in days:
        folder = jvm.org.apache.hadoop.fs.Path(f"{raw_root}/{source.name}/{source.partition}={day.isoformat()}")
        fs = folder.getFileSystem(conf)
        if not fs.exists(folder):
            missing.append(folder.toString())
            continue
        iterator = fs.listFiles(folder, True)
        while iterator.hasNext():
            status = iterator.next()
            name = status.getPath().getName()
            if name.startswith((".", "_")):
                continue
            path = status.getPath().toString()
            raw_format(path)
            try:
                fs.open(status.getPath()).close()
            except Exception as exc:  # noqa: BLE001 - py4j wraps the Java IOException
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RawInputError(f"{path}: cannot read raw file ({reason})") from None
            files.append(RawFile(path, status.getLen(), status.getModificationTime(), day))
    if missing:
        raise MissingInputError(f"raw {source.name} not found: {', '.join(missing)}")
    return sorted(files, key=lambda f: f.path)


def source_present(spark: SparkSession, settings: Settings, source: RawSource) -> bool:
    return _path_exists(spark, f"{settings.lake.raw}/{source.name}")


def read_raw(spark: SparkSession, paths: list[str]) -> DataFrame:
    """``raw`` text and ``source_file`` of every record in ``paths``, whatever their format: a JSON
    line as it is; a CSV or Parquet row rendered as a JSON object of its columns (a CSV line that does
    not split into the header's columns is kept as its text, so it is quarantined as malformed)."""
    by_format: dict[str, list[str]] = {}
    for path in paths:
        by_format.setdefault(raw_format(path), []).append(path)
    source_file = F.col("_metadata.file_path").alias("source_file")
    frames = []
    if "json" in by_format:
        frames.append(spark.read.text(by_format["json"]).select(F.col("value").alias("raw"), source_file))
    if "parquet" in by_format:
        rows = spark.read.option("mergeSchema", "true").parquet(*by_format["parquet"])
        frames.append(rows.select(F.to_json(F.struct(*rows.columns)).alias("raw"), source_file))
    for path in by_format.get("csv", []):
        # Each CSV file brings its own header, so a column added mid-stream is read, not misaligned.
        header = spark.read.option("header", "true").csv(path).columns
        schema = T.StructType([T.StructField(c, T.StringType()) for c in [*header, "_corrupt_record"]])
        rows = (
            spark.read.schema(schema)
            .option("header", "true")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", "_corrupt_record")
            .csv(path)
        )
        raw = F.coalesce(F.col("_corrupt_record"), F.to_json(F.struct(*[F.col(f"`{c}`") for c in header])))
        frames.append(rows.select(raw.alias("raw"), source_file))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out.withColumn("ingest_date", F.to_date(F.regexp_extract("source_file", r"_date=(\d{4}-\d{2}-\d{2})", 1)))


def _read_failure(exc: Exception, source: RawSource) -> RawInputError:
    """One line naming the file, from Spark's error: a corrupt gzip or Parquet file fails inside the
    job, so the Delta commit never happens and nothing is half-written."""
    text = str(exc)
    where = re.search(r"while reading file (\S+?)\.?\s", text)
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    reason = (causes[-1] if causes else text.strip().splitlines()[0]).strip()[:200]
    path = where.group(1) if where else f"raw {source.name}"
    return RawInputError(f"{path}: cannot read raw file ({reason}); nothing was written")


def _ledger(spark: SparkSession, settings: Settings, source: RawSource) -> DataFrame:
    path = tables.table_path(source.ledger, settings)
    if delta.table_exists(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], LEDGER_SCHEMA)


def _set_status(spark: SparkSession, settings: Settings, source: RawSource, rows: list[tuple], status: str) -> None:
    """Upsert ledger rows ``(source_file, size, modified_ms, ingest_date, batch_id)`` with ``status``."""
    frame = spark.createDataFrame([(*r, status) for r in rows], LEDGER_SCHEMA)
    delta.merge_by_key(frame, tables.table_path(source.ledger, settings), ["source_file"])


def _sql_in(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _file_scope(days: list[date], files: list[str]) -> str:
    """The rows of these raw files: partition-pruned by ingest date, then matched by file."""
    return f"ingest_date IN ({_sql_in([str(d) for d in days])}) AND source_file IN ({_sql_in(files)})"


def run_bronze(
    spark: SparkSession, settings: Settings, days: list[date], reprocess: bool = False, source: RawSource = EVENTS
) -> dict[date, int]:
    """Land raw files not yet ingested (per the ledger: same path, size and modification time) in
    bronze. The write replaces exactly those files' rows, so a run killed after the write but before
    the ledger update is repaired by running again. ``reprocess`` ignores the ledger."""
    files = list_raw_files(spark, settings.lake.raw, days, source)
    seen = {
        (r["source_file"], r["size"], r["modified_ms"])
        for r in _ledger(spark, settings, source).select("source_file", "size", "modified_ms").collect()
    }
    pending = [f for f in files if reprocess or (f.path, f.size, f.modified_ms) not in seen]
    if not pending:
        log.info(
            "bronze %s: no new raw files for %s..%s (%d already ingested)", source.name, days[0], days[-1], len(files)
        )
        return {}
    by_day: dict[date, list[str]] = {}
    for f in pending:
        by_day.setdefault(f.day, []).append(f.path)
    batch_ids = {d: batch_id_for(d, paths) for d, paths in by_day.items()}
    bronze = to_bronze(read_raw(spark, [f.path for f in pending]), batch_ids)
    path = tables.table_path(source.bronze, settings)
    scope = _file_scope(list(by_day), [f.path for f in pending])
    try:
        delta.replace_where(bronze, path, scope, "ingest_date")
    except Exception as exc:
        if not type(exc).__module__.startswith(("py4j", "pyspark")):
            raise
        raise _read_failure(exc, source) from exc
    crash_point("bronze.after_write")
    rows = [(f.path, f.size, f.modified_ms, f.day, batch_ids[f.day]) for f in pending]
    _set_status(spark, settings, source, rows, "bronze")
    counts = _counts_by_day(spark.read.format("delta").load(path).where(scope))
    for day, paths in sorted(by_day.items()):
        log.info("bronze %s %s: %d records from %d new file(s)", source.name, day, counts.get(day, 0), len(paths))
    return {d: counts.get(d, 0) for d in sorted(by_day)}


def run_silver(
    spark: SparkSession, settings: Settings, days: list[date], reprocess: bool = False, source: RawSource = EVENTS
) -> list[IngestReport]:
    """Write step of write-audit-publish: bronze rows of files not yet published -> quarantine, and
    the typed, de-duplicated batch -> the source's staging table. Consumers do not see it until
    ``run_publish`` runs after the batch passed validation."""
    ledger = _ledger(spark, settings, source).where(F.col("ingest_date").isin(days))
    if not reprocess:
        ledger = ledger.where(F.col("status") != "published")
    pending = [(r["source_file"], r["ingest_date"]) for r in ledger.select("source_file", "ingest_date").collect()]
    if not pending:
        log.info("silver %s: nothing new to stage for %s..%s", source.name, days[0], days[-1])
        return []
    files = [p for p, _ in pending]
    pending_days = sorted({d for _, d in pending})
    scope = _file_scope(pending_days, files)
    bronze = spark.read.format("delta").load(tables.table_path(source.bronze, settings)).where(scope)
    parsed = parse_records(bronze, source).cache()
    rejects = quarantined(parsed)
    silver = to_silver(parsed, source).cache()

    raw_counts, reject_counts, accepted_counts = _counts_by_day(parsed), _counts_by_day(rejects), _counts_by_day(silver)
    reports = []
    for day in pending_days:
        raw_n, rej_n, acc_n = raw_counts.get(day, 0), reject_counts.get(day, 0), accepted_counts.get(day, 0)
        reports.append(IngestReport(day, raw_n, acc_n, rej_n, raw_n - rej_n - acc_n))

    delta.replace_where(rejects, tables.table_path(source.quarantine, settings), scope, "ingest_date")
    (
        silver.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .save(tables.table_path(source.staging, settings))
    )
    ledger_rows = ledger.select("source_file", "size", "modified_ms", "ingest_date", "batch_id").collect()
    _set_status(spark, settings, source, [tuple(r) for r in ledger_rows], "staged")
    parsed.unpersist()
    silver.unpersist()
    for r in reports:
        log.info(
            "silver %s %s: %d raw = %d accepted + %d quarantined + %d duplicates (staged)",
            source.name,
            r.day,
            r.raw_records,
            r.accepted,
            r.quarantined,
            r.duplicates_dropped,
        )
    return reports


def run_publish(spark: SparkSession, settings: Settings, source: RawSource = EVENTS) -> int:
    """Publish step: MERGE the validated staged batch into the silver table (idempotent on its keys)."""
    staging_path = tables.table_path(source.staging, settings)
    if not delta.table_exists(spark, staging_path):
        raise MissingInputError(f"nothing staged to publish: {staging_path}")
    staged = spark.read.format("delta").load(staging_path)
    delta.merge_by_key(staged, tables.table_path(source.silver, settings), list(source.keys), source.silver_partition)
    crash_point("publish.after_merge")
    ledger = _ledger(spark, settings, source).where(F.col("status") == "staged")
    rows = ledger.select("source_file", "size", "modified_ms", "ingest_date", "batch_id").collect()
    _set_status(spark, settings, source, [tuple(r) for r in rows], "published")
    count = staged.count()
    log.info("published %d staged %s into %s", count, source.name, source.silver)
    return count


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


def run_catalog(spark: SparkSession, settings: Settings) -> int:
    path = f"{settings.lake.raw}/catalog"
    if not _path_exists(spark, path):
        raise MissingInputError(f"raw catalogue not found: {path}")
    items = to_silver_items(spark.read.schema(CATALOG_SCHEMA).json(path))
    delta.merge_by_key(items, tables.table_path(tables.SILVER_ITEMS, settings), ["item_id"])
    return items.count()


# --- expectations: what a batch must satisfy before anyone reads it ------------------------------
# The contract checks above are per record; these are about the batch: keys, uniqueness, ranges,
# completeness of optional fields.


RECORD_LIKE_SHARE = 0.95  # share of a file's lines that must at least look like a JSON record


def bronze_file_profile(bronze: DataFrame) -> DataFrame:
    """One row per landed file: its ingest metadata, how many records it holds, how many have no text
    and what share looks like a record. The bronze gate validates this profile, one pass over the
    landing with no cache of the raw text, and a bad file shows up by name in the Data Docs."""
    return bronze.groupBy("source_file", "batch_id", "ingest_date").agg(
        F.count(F.lit(1)).alias("records"),
        F.sum(F.col("raw").isNull().cast("long")).alias("records_without_text"),
        F.avg(F.coalesce(F.col("raw").rlike(r"^\s*\{"), F.lit(False)).cast("double")).alias("record_like_share"),
    )


def bronze_expectations() -> list:
    """Bronze keeps raw text, so its suite guards the landing itself, file by file (over
    ``bronze_file_profile``): metadata complete, no empty file, and the records look like records (a
    wholesale format break, such as an HTML error page saved as a .jsonl file, fails here before
    silver parses it)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("source_file", "batch_id", "ingest_date")],
        gxe.ExpectColumnValuesToBeUnique(column="source_file"),
        gxe.ExpectColumnValuesToMatchRegex(column="batch_id", regex=r"^\d{8}-[0-9a-f]{12}$"),
        gxe.ExpectColumnValuesToBeBetween(column="records", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="records_without_text", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="record_like_share", min_value=RECORD_LIKE_SHARE),
    ]


def silver_events_expectations() -> list:
    import great_expectations.expectations as gxe

    item_events = ", ".join(f"'{t}'" for t in ITEM_EVENT_TYPES)
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[
            gxe.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("event_id", "anonymous_id", "event_type", "event_time", "session_key")
        ],
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
        gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=MAX_PRICE),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, max_value=MAX_QUANTITY),
        # Optional in the contract, but a tracking release that stops sending them is an incident.
        *[
            gxe.ExpectColumnValuesToNotBeNull(
                column=c, mostly=0.99, row_condition=f"event_type IN ({item_events})", condition_parser="spark"
            )
            for c in ("category", "price")
        ],
        gxe.ExpectColumnValuesToNotBeNull(column="user_id", mostly=0.5),
        gxe.ExpectColumnValuesToNotBeNull(column="session_id", mostly=0.99),
    ]


def silver_order_lines_expectations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("order_id", "user_id", "item_id", "order_time")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["order_id", "item_id"]),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1, max_value=MAX_QUANTITY),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, max_value=MAX_PRICE),
        gxe.ExpectColumnValuesToBeBetween(column="revenue", min_value=0),
    ]


def silver_users_expectations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        gxe.ExpectColumnValuesToBeUnique(column="user_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="signup_time"),
        gxe.ExpectColumnValuesToNotBeNull(column="region", mostly=0.95),
    ]
