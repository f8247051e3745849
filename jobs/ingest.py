"""Raw JSON-lines logs -> bronze (raw text + ingest metadata) -> silver (typed, de-duplicated).

Records that break the raw contract go to ``quarantine.events`` with a machine-readable reason;
nothing is dropped silently. Per batch: raw lines = accepted + quarantined + duplicates dropped.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.faults import crash_point

log = logging.getLogger(__name__)

EVENT_TYPES = ("product_view", "add_to_cart", "purchase")
MAX_PRICE = 100_000.0

# Every field is read as text first, so that one bad value is reported, not a whole null record.
RAW_EVENT_FIELDS = (
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "item_id",
    "category",
    "price",
    "quantity",
    "device",
    "channel",
    "event_time",
)
RAW_EVENT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in RAW_EVENT_FIELDS]
    + [T.StructField("_corrupt_record", T.StringType())]
)

# Silver keeps every contract field, typed, plus what ingestion learned about each record.
SILVER_COLUMNS = (*RAW_EVENT_FIELDS, "extra", "event_date", "ingest_date", "source_file", "batch_id")


class MissingInputError(FileNotFoundError):
    """The raw partition a job was told to read does not exist."""


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
    """Raw lines plus ingest metadata; blank lines carry no record and are not kept."""
    mapping = F.create_map(*[x for d, b in batch_ids.items() for x in (F.lit(d), F.lit(b))])
    return raw.where(F.trim("raw") != "").select(
        "raw", "source_file", mapping[F.col("ingest_date")].alias("batch_id"), "ingest_date"
    )


def _reject_reason(p: str = "p") -> F.Column:
    """The first contract rule a parsed record breaks, or null if it keeps them all."""
    # try_* because Spark 4 runs in ANSI mode: a plain cast of a bad value fails the whole job.
    price = F.col(f"{p}.price").try_cast("double")
    quantity = F.col(f"{p}.quantity").try_cast("int")
    event_time = F.try_to_timestamp(F.col(f"{p}.event_time"))
    rules = [
        (F.col(f"{p}._corrupt_record").isNotNull() | F.col(p).isNull(), "malformed_json"),
        (F.col(f"{p}.event_id").isNull(), "missing_event_id"),
        (F.col(f"{p}.user_id").isNull(), "missing_user_id"),
        (F.col(f"{p}.item_id").isNull(), "missing_item_id"),
        (F.col(f"{p}.event_type").isNull(), "missing_event_type"),
        (~F.col(f"{p}.event_type").isin(*EVENT_TYPES), "unknown_event_type"),
        (event_time.isNull(), "invalid_event_time"),
        (F.col(f"{p}.price").isNotNull() & price.isNull(), "invalid_price"),
        (price < 0, "negative_price"),
        (price > MAX_PRICE, "price_out_of_range"),
        (F.col(f"{p}.quantity").isNotNull() & quantity.isNull(), "invalid_quantity"),
    ]
    reason = F.lit(None).cast("string")
    for condition, name in reversed(rules):
        reason = F.when(condition, F.lit(name)).otherwise(reason)
    return reason


def _extra_fields() -> F.Column:
    """Fields the contract does not name, kept as text (a new field appearing mid-stream is data,
    not an error); null when there are none."""
    everything = F.from_json("raw", T.MapType(T.StringType(), T.StringType()))
    known = F.array(*[F.lit(name) for name in RAW_EVENT_FIELDS])
    extra = F.map_filter(everything, lambda key, _: ~F.array_contains(known, key))
    return F.when(F.size(extra) > 0, extra)


def parse_events(bronze: DataFrame) -> DataFrame:
    """Parse raw JSON and attach ``reject_reason`` (null for records that keep the contract)."""
    parsed = bronze.withColumn(
        "p",
        F.from_json("raw", RAW_EVENT_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}),
    )
    return parsed.withColumn("reject_reason", _reject_reason("p"))


def quarantined(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "raw", "source_file", "batch_id", "ingest_date", "reject_reason"
    )


def to_silver(parsed: DataFrame) -> DataFrame:
    """Typed, contract-keeping records, one row per event id (first seen wins)."""
    accepted = parsed.where(F.col("reject_reason").isNull())
    typed = accepted.select(
        F.col("p.event_id").alias("event_id"),
        F.col("p.user_id").alias("user_id"),
        F.col("p.session_id").alias("session_id"),
        F.col("p.event_type").alias("event_type"),
        F.col("p.item_id").alias("item_id"),
        F.col("p.category").alias("category"),
        F.col("p.price").try_cast("double").alias("price"),
        F.coalesce(F.col("p.quantity").try_cast("int"), F.lit(0)).alias("quantity"),
        F.col("p.device").alias("device"),
        F.col("p.channel").alias("channel"),
        F.try_to_timestamp(F.col("p.event_time")).alias("event_time"),
        _extra_fields().alias("extra"),
        "ingest_date",
        "source_file",
        "batch_id",
    ).withColumn("event_date", F.to_date("event_time"))
    return typed.dropDuplicates(["event_id"]).select(*SILVER_COLUMNS)


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


def list_raw_files(spark: SparkSession, raw_root: str, days: list[date]) -> list[RawFile]:
    """The raw files of the given event-date partitions; a missing partition is an error."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    files, missing = [], []
    for day in days:
        folder = jvm.org.apache.hadoop.fs.Path(f"{raw_root}/events/event_date={day.isoformat()}")
        fs = folder.getFileSystem(conf)
        if not fs.exists(folder):
            missing.append(folder.toString())
            continue
        iterator = fs.listFiles(folder, True)
        while iterator.hasNext():
            status = iterator.next()
            name = status.getPath().getName()
            if not name.startswith((".", "_")):
                files.append(RawFile(status.getPath().toString(), status.getLen(), status.getModificationTime(), day))
    if missing:
        raise MissingInputError(f"raw events not found: {', '.join(missing)}")
    return sorted(files, key=lambda f: f.path)


def _ledger(spark: SparkSession, settings: Settings) -> DataFrame:
    path = tables.table_path(tables.INGEST_LEDGER, settings)
    if delta.table_exists(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], LEDGER_SCHEMA)


def _set_status(spark: SparkSession, settings: Settings, rows: list[tuple], status: str) -> None:
    """Upsert ledger rows ``(source_file, size, modified_ms, ingest_date, batch_id)`` with ``status``."""
    frame = spark.createDataFrame([(*r, status) for r in rows], LEDGER_SCHEMA)
    delta.merge_by_key(frame, tables.table_path(tables.INGEST_LEDGER, settings), ["source_file"])


def _sql_in(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _file_scope(days: list[date], files: list[str]) -> str:
    """The rows of these raw files: partition-pruned by ingest date, then matched by file."""
    return f"ingest_date IN ({_sql_in([str(d) for d in days])}) AND source_file IN ({_sql_in(files)})"


def run_bronze(spark: SparkSession, settings: Settings, days: list[date], reprocess: bool = False) -> dict[date, int]:
    """Land raw files not yet ingested (per the ledger: same path, size and modification time) in
    bronze. The write replaces exactly those files' rows, so a run killed after the write but before
    the ledger update is repaired by running again. ``reprocess`` ignores the ledger."""
    files = list_raw_files(spark, settings.lake.raw, days)
    seen = {
        (r["source_file"], r["size"], r["modified_ms"])
        for r in _ledger(spark, settings).select("source_file", "size", "modified_ms").collect()
    }
    pending = [f for f in files if reprocess or (f.path, f.size, f.modified_ms) not in seen]
    if not pending:
        log.info("bronze: no new raw files for %s..%s (%d already ingested)", days[0], days[-1], len(files))
        return {}
    by_day: dict[date, list[str]] = {}
    for f in pending:
        by_day.setdefault(f.day, []).append(f.path)
    batch_ids = {d: batch_id_for(d, paths) for d, paths in by_day.items()}
    raw = spark.read.text([f.path for f in pending]).select(
        F.col("value").alias("raw"),
        F.col("_metadata.file_path").alias("source_file"),
        F.to_date(F.regexp_extract("_metadata.file_path", r"event_date=(\d{4}-\d{2}-\d{2})", 1)).alias("ingest_date"),
    )
    bronze = to_bronze(raw, batch_ids)
    path = tables.table_path(tables.BRONZE_EVENTS, settings)
    scope = _file_scope(list(by_day), [f.path for f in pending])
    delta.replace_where(bronze, path, scope, "ingest_date")
    crash_point("bronze.after_write")
    _set_status(spark, settings, [(f.path, f.size, f.modified_ms, f.day, batch_ids[f.day]) for f in pending], "bronze")
    counts = _counts_by_day(spark.read.format("delta").load(path).where(scope))
    for day, paths in sorted(by_day.items()):
        log.info("bronze %s: %d records from %d new file(s)", day, counts.get(day, 0), len(paths))
    return {d: counts.get(d, 0) for d in sorted(by_day)}


def run_silver(
    spark: SparkSession, settings: Settings, days: list[date], reprocess: bool = False
) -> list[IngestReport]:
    """Write step of write-audit-publish: bronze rows of files not yet published -> quarantine, and
    the typed, de-duplicated batch -> ``staging.silver_events``. Consumers do not see it until
    ``run_publish_silver`` runs after the batch passed validation."""
    ledger = _ledger(spark, settings).where(F.col("ingest_date").isin(days))
    if not reprocess:
        ledger = ledger.where(F.col("status") != "published")
    pending = [(r["source_file"], r["ingest_date"]) for r in ledger.select("source_file", "ingest_date").collect()]
    if not pending:
        log.info("silver: nothing new to stage for %s..%s", days[0], days[-1])
        return []
    files = [p for p, _ in pending]
    pending_days = sorted({d for _, d in pending})
    scope = _file_scope(pending_days, files)
    bronze = spark.read.format("delta").load(tables.table_path(tables.BRONZE_EVENTS, settings)).where(scope)
    parsed = parse_events(bronze).cache()
    rejects = quarantined(parsed)
    silver = to_silver(parsed).cache()

    raw_counts, reject_counts, accepted_counts = _counts_by_day(parsed), _counts_by_day(rejects), _counts_by_day(silver)
    reports = []
    for day in pending_days:
        raw_n, rej_n, acc_n = raw_counts.get(day, 0), reject_counts.get(day, 0), accepted_counts.get(day, 0)
        reports.append(IngestReport(day, raw_n, acc_n, rej_n, raw_n - rej_n - acc_n))

    delta.replace_where(rejects, tables.table_path(tables.QUARANTINE_EVENTS, settings), scope, "ingest_date")
    (
        silver.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .save(tables.table_path(tables.STAGING_SILVER_EVENTS, settings))
    )
    ledger_rows = ledger.select("source_file", "size", "modified_ms", "ingest_date", "batch_id").collect()
    _set_status(spark, settings, [tuple(r) for r in ledger_rows], "staged")
    parsed.unpersist()
    silver.unpersist()
    for r in reports:
        log.info(
            "silver %s: %d raw = %d accepted + %d quarantined + %d duplicates (staged)",
            r.day,
            r.raw_records,
            r.accepted,
            r.quarantined,
            r.duplicates_dropped,
        )
    return reports


def run_publish_silver(spark: SparkSession, settings: Settings) -> int:
    """Publish step: MERGE the validated staged batch into ``silver.events`` (idempotent on event id)."""
    staging_path = tables.table_path(tables.STAGING_SILVER_EVENTS, settings)
    if not delta.table_exists(spark, staging_path):
        raise MissingInputError(f"nothing staged to publish: {staging_path}")
    staged = spark.read.format("delta").load(staging_path)
    delta.merge_by_key(staged, tables.table_path(tables.SILVER_EVENTS, settings), ["event_id"], "event_date")
    ledger = _ledger(spark, settings).where(F.col("status") == "staged")
    rows = ledger.select("source_file", "size", "modified_ms", "ingest_date", "batch_id").collect()
    _set_status(spark, settings, [tuple(r) for r in rows], "published")
    count = staged.count()
    log.info("published %d staged events into %s", count, tables.SILVER_EVENTS)
    return count


CATALOG_SCHEMA = T.StructType(
    [
        T.StructField("item_id", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("brand", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("launch_date", T.StringType()),
    ]
)


def to_silver_items(catalog: DataFrame) -> DataFrame:
    return (
        catalog.where(F.col("item_id").isNotNull())
        .withColumn("launch_date", F.to_date("launch_date"))
        .dropDuplicates(["item_id"])
    )


def run_catalog(spark: SparkSession, settings: Settings) -> int:
    path = f"{settings.lake.raw}/catalog"
    if not _path_exists(spark, path):
        raise MissingInputError(f"raw catalogue not found: {path}")
    items = to_silver_items(spark.read.schema(CATALOG_SCHEMA).json(path))
    delta.merge_by_key(items, tables.table_path(tables.SILVER_ITEMS, settings), ["item_id"])
    return items.count()


def silver_events_expectations() -> list:
    """What a published silver partition must satisfy (the contract checks above are per record;
    these are about the data set: uniqueness, ranges, completeness of optional fields)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("event_id", "user_id", "item_id", "event_time")],
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
        gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=MAX_PRICE),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, max_value=1000),
        # Optional in the contract, but a tracking release that stops sending them is an incident.
        gxe.ExpectColumnValuesToNotBeNull(column="category", mostly=0.99),
        gxe.ExpectColumnValuesToNotBeNull(column="session_id", mostly=0.99),
    ]
