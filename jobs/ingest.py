"""Raw logs -> bronze (raw text + ingest metadata) -> silver (typed, de-duplicated), for every raw
source: clickstream events, order lines, user exports and promotions.

Records that break a source's contract go to ``quarantine.<source>`` with a machine-readable reason;
nothing is dropped silently. Per batch: raw records = accepted + quarantined + duplicates dropped.
Raw files may be JSON lines (plain or gzip), CSV (plain or gzip) or Parquet, mixed freely.

Duplicates: one row per key in silver, across the whole table. Events and order lines keep the
**first seen** record: the earliest raw partition (``ingest_date``), then the source file (by path),
then its position in the file (``source_line``), within a batch and across batches, whatever order
batches are published in. A re-sent key with a changed time is not a second row. User exports keep
the **newest** record instead (an export carries changed users). A raw file that is re-sent
(rewritten) replaces its rows as a whole: rows it no longer has leave silver.

This module is the I/O (raw files, ledger, bronze, staging, publish); the contracts and pure
transforms live in ``ingest_transforms`` and the suites in ``ingest_suites``, and are re-exported
here, so ``ingest.EVENTS``, ``ingest.parse_records`` or ``ingest.bronze_expectations`` keep working.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.errors import LakecartError
from lakecart.faults import crash_point
from lakecart.jobs.ingest_suites import (
    MAX_QUARANTINED_SHARE,
    MOSTLY_SENT,
    RECORD_LIKE_SHARE,
    SENT_FIELDS,
    SHARE_MIN_RECORDS,
    bronze_expectations,
    bronze_file_profile,
    silver_events_expectations,
    silver_order_lines_expectations,
    silver_promotions_expectations,
    silver_users_expectations,
    staged_days_expectations,
)
from lakecart.jobs.ingest_transforms import (
    CATALOG_FIELDS,
    CATALOG_SCHEMA,
    CATEGORY_PATH_SEPARATOR,
    EVENT_TYPES,
    EVENTS,
    INGEST_COLUMNS,
    ITEM_EVENT_TYPES,
    MAX_PRICE,
    ORDERS,
    PROMOTIONS,
    RAW_EVENT_FIELDS,
    RAW_ORDER_FIELDS,
    RAW_PROMOTION_FIELDS,
    RAW_USER_FIELDS,
    SESSION_GAP_SECONDS,
    SILVER_COLUMNS,
    SILVER_ORDER_COLUMNS,
    SILVER_PROMOTION_COLUMNS,
    SILVER_USER_COLUMNS,
    SOURCES,
    USERS,
    RawSource,
    first_seen_order,
    keep_first_seen,
    parse_records,
    quarantined,
    sessionise,
    to_bronze,
    to_silver,
    to_silver_items,
)
from lakecart.lineage import commit_metadata

log = logging.getLogger(__name__)

# The contracts, transforms and suites are re-exported: callers import them from here.
__all__ = [
    "CATALOG_FIELDS",
    "CATALOG_SCHEMA",
    "CATEGORY_PATH_SEPARATOR",
    "EVENTS",
    "EVENT_TYPES",
    "INGEST_COLUMNS",
    "ITEM_EVENT_TYPES",
    "IngestReport",
    "LEDGER_KEY",
    "LEDGER_SCHEMA",
    "MAX_PRICE",
    "MAX_QUARANTINED_SHARE",
    "MOSTLY_SENT",
    "MissingInputError",
    "ORDERS",
    "PROMOTIONS",
    "PublishRefused",
    "RAW_EVENT_FIELDS",
    "RAW_FORMATS",
    "RAW_ORDER_FIELDS",
    "RAW_PROMOTION_FIELDS",
    "RAW_USER_FIELDS",
    "RECORD_LIKE_SHARE",
    "RawFile",
    "RawInputError",
    "RawSource",
    "SENT_FIELDS",
    "SESSION_GAP_SECONDS",
    "SHARE_MIN_RECORDS",
    "SILVER_COLUMNS",
    "SILVER_ORDER_COLUMNS",
    "SILVER_PROMOTION_COLUMNS",
    "SILVER_USER_COLUMNS",
    "SOURCES",
    "STAGED_BATCH_KEY",
    "StagedBatch",
    "USERS",
    "batch_id_for",
    "bronze_expectations",
    "bronze_file_profile",
    "first_seen_order",
    "keep_first_seen",
    "list_raw_files",
    "merge_first_seen",
    "parse_records",
    "quarantined",
    "raw_format",
    "read_ledger",
    "read_raw",
    "run_bronze",
    "run_catalog",
    "run_publish",
    "run_silver",
    "sessionise",
    "silver_events_expectations",
    "silver_order_lines_expectations",
    "silver_promotions_expectations",
    "silver_users_expectations",
    "source_present",
    "stage_id_for",
    "staged_batch",
    "staged_days_expectations",
    "to_bronze",
    "to_silver",
    "to_silver_items",
    "write_staging",
]


# A run over more days than this (a backfill) logs one line of totals at INFO and each day's line at
# DEBUG: a year's import otherwise prints 365 lines per stage and source. The counts per day stay in
# the staging commit and the returned reports.
DAY_LINES = 7


def log_days(days: list, counts: list[tuple[int, ...]], render: Callable[[str, tuple[int, ...]], str]) -> None:
    """Each day's counts, rendered as ``render(day, counts)``, at INFO when there are at most
    ``DAY_LINES`` days; else one line of the summed counts over the range at INFO (rendered with
    ``first..last (n days)`` for the day) and the days' lines at DEBUG."""
    lines = [render(str(day), c) for day, c in zip(days, counts, strict=True)]
    if len(lines) <= DAY_LINES:
        for line in lines:
            log.info(line)
        return
    totals = tuple(sum(column) for column in zip(*counts, strict=True))
    log.info("%s (each day at DEBUG)", render(f"{days[0]}..{days[-1]} ({len(days)} days)", totals))
    for line in lines:
        log.debug(line)


# File name endings ingestion reads, and how. A ``.gz`` on JSON lines or CSV is decompressed.
RAW_FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class MissingInputError(LakecartError, FileNotFoundError):
    """The raw partition a job was told to read does not exist."""


class RawInputError(LakecartError, ValueError):
    """A raw file cannot be ingested (unknown format, unreadable); the message names the file."""


class PublishRefused(LakecartError, RuntimeError):
    """The staged batch may not be published (no passing gate verdict, or staging is out of date)."""


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
LEDGER_KEY = ("source_file", "size", "modified_ms", "ingest_date", "batch_id")


def list_raw_files(spark: SparkSession, raw_root: str, days: list[date], source: RawSource = EVENTS) -> list[RawFile]:
    """The raw files of the given date partitions. A missing partition (except for a ``sparse``
    source), a file in a format ingestion does not read, or a file that cannot be opened is an error
    naming it, raised before any write."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    files, missing = [], []
    for day in days:
        folder = jvm.org.apache.hadoop.fs.Path(f"{raw_root}/{source.name}/{source.partition}={day.isoformat()}")
        fs = folder.getFileSystem(conf)
        if not fs.exists(folder):
            if not source.sparse:
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


def source_present(settings: Settings, source: RawSource) -> bool:
    return raw_source_present(settings, source.name)


def raw_source_present(settings: Settings, folder: str) -> bool:
    """Whether ``raw/<folder>/`` exists at all (``events``, ``catalog``, ...). Asked without Spark
    (the local disk or the object store through Arrow): a step a shop has no data for is skipped
    before it pays a JVM start."""
    import pyarrow.fs as pafs

    from lakecart import storage

    filesystem, path = storage.arrow_filesystem(f"{settings.lake.raw}/{folder}")
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


def read_raw(spark: SparkSession, paths: list[str]) -> DataFrame:
    """``raw`` text, ``source_file`` and ``source_line`` of every record in ``paths``, whatever their
    format: a JSON line as it is; a CSV or Parquet row rendered as a JSON object of its columns (a CSV
    line that does not split into the header's columns is kept as its text, so it is quarantined as
    malformed). ``source_line`` is the record's position in its file (1-based: the line of a JSON-lines
    file, the row of a CSV or Parquet file), the tie-break of "first seen wins"."""
    by_format: dict[str, list[str]] = {}
    for path in paths:
        by_format.setdefault(raw_format(path), []).append(path)
    # Position: a file split is read by one task, in order, so (split start, id within the task)
    # orders a file's records; both are taken right at the scan, before anything moves rows.
    source = [
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_seq"),
    ]
    frames = []
    if "json" in by_format:
        frames.append(spark.read.text(by_format["json"]).select(F.col("value").alias("raw"), *source))
    if "parquet" in by_format:
        rows = spark.read.option("mergeSchema", "true").parquet(*by_format["parquet"])
        frames.append(rows.select(F.to_json(F.struct(*rows.columns)).alias("raw"), *source))
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
        frames.append(rows.select(raw.alias("raw"), *source))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    line = F.row_number().over(Window.partitionBy("source_file").orderBy("_block", "_seq"))
    return out.select(
        "raw",
        "source_file",
        line.cast("long").alias("source_line"),
        F.to_date(F.regexp_extract("source_file", r"_date=(\d{4}-\d{2}-\d{2})", 1)).alias("ingest_date"),
    )


def _read_failure(exc: Exception, source: RawSource) -> RawInputError:
    """One line naming the file, from Spark's error: a corrupt gzip or Parquet file fails inside the
    job, so the Delta commit never happens and nothing is half-written."""
    text = str(exc)
    where = re.search(r"while reading file (\S+?)\.?\s", text)
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    reason = (causes[-1] if causes else text.strip().splitlines()[0]).strip()[:200]
    path = where.group(1) if where else f"raw {source.name}"
    return RawInputError(f"{path}: cannot read raw file ({reason}); nothing was written")


def read_ledger(spark: SparkSession, settings: Settings, source: RawSource) -> DataFrame:
    """The source's file ledger: every raw file seen and how far it got (bronze, staged, published)."""
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
        for r in read_ledger(spark, settings, source).select("source_file", "size", "modified_ms").collect()
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
    days_done = sorted(by_day)
    log_days(
        days_done,
        [(counts.get(d, 0), len(by_day[d])) for d in days_done],
        lambda day, c: f"bronze {source.name} {day}: {c[0]} records from {c[1]} new file(s)",
    )
    return {d: counts.get(d, 0) for d in sorted(by_day)}


@dataclass(frozen=True)
class StagedBatch:
    """What ``run_silver`` last wrote to a source's staging table, recorded in that Delta commit: the
    ledger rows (raw files, by path, size, modification time and bronze batch) it holds, and each raw
    day's counts. ``stage_id`` names exactly this content: the gate's verdict is recorded against it
    and publish looks the verdict up by it."""

    stage_id: str
    files: tuple[tuple[str, int, int, str, str], ...]  # (source_file, size, modified_ms, ingest_date, batch_id)
    counts: dict[str, dict[str, int]]  # ingest_date -> raw_records, accepted, quarantined, duplicates_dropped

    @property
    def days(self) -> list[date]:
        return sorted(date.fromisoformat(d) for d in self.counts)

    @property
    def source_files(self) -> list[str]:
        return sorted({f[0] for f in self.files})

    def describe(self) -> str:
        days = self.days
        span = f"{days[0]}..{days[-1]}" if len(days) > 1 else str(days[0]) if days else "no days"
        return f"batch {self.stage_id} ({span}, {len(self.files)} file(s))"


def stage_id_for(files: list[tuple]) -> str:
    """Deterministic: the same raw files (path, size, modification time, bronze batch) make the same id;
    a re-sent file (new size or time) makes a new one, so an old verdict never covers new content."""
    text = "\n".join("|".join(str(v) for v in f) for f in sorted(files))
    return f"stage-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


STAGED_BATCH_KEY = "staged_batch"


def staged_batch(spark: SparkSession, settings: Settings, source: RawSource) -> StagedBatch | None:
    """The batch in the source's staging table, from its latest commit; None when there is no staging
    table or it was not written by ``run_silver`` (so nobody can say which batch it holds)."""
    from delta.tables import DeltaTable

    path = tables.table_path(source.staging, settings)
    if not delta.table_exists(spark, path):
        return None
    latest = DeltaTable.forPath(spark, path).history(1).select("userMetadata").first()
    try:
        recorded = json.loads(latest["userMetadata"] or "{}").get(STAGED_BATCH_KEY)
    except ValueError:
        return None
    if not recorded:
        return None
    files = tuple(tuple(f) for f in recorded["files"])
    return StagedBatch(recorded["stage_id"], files, recorded["counts"])  # type: ignore[arg-type]


def write_staging(frame: DataFrame, settings: Settings, source: RawSource, batch: StagedBatch) -> None:
    """Replace the source's staging table with ``frame``, recording ``batch`` in the commit."""
    record = {"stage_id": batch.stage_id, "files": [list(f) for f in batch.files], "counts": batch.counts}
    (
        frame.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", commit_metadata(job=f"ingest silver {source.name}", **{STAGED_BATCH_KEY: record}))
        .save(tables.table_path(source.staging, settings))
    )


def run_silver(
    spark: SparkSession, settings: Settings, days: list[date], reprocess: bool = False, source: RawSource = EVENTS
) -> list[IngestReport]:
    """Write step of write-audit-publish: bronze rows of files not yet published -> quarantine, and
    the typed, de-duplicated batch -> the source's staging table, with the batch (its files and each
    day's counts) recorded in the staging commit. Consumers do not see it until ``run_publish`` runs
    after the batch passed validation."""
    ledger = read_ledger(spark, settings, source).where(F.col("ingest_date").isin(days))
    if not reprocess:
        ledger = ledger.where(F.col("status") != "published")
    ledger_rows = [tuple(r) for r in ledger.select(*LEDGER_KEY).collect()]
    if not ledger_rows:
        log.info("silver %s: nothing new to stage for %s..%s", source.name, days[0], days[-1])
        return []
    files = [r[0] for r in ledger_rows]
    pending_days = sorted({r[3] for r in ledger_rows})
    scope = _file_scope(pending_days, files)
    bronze = spark.read.format("delta").load(tables.table_path(source.bronze, settings)).where(scope)
    if "source_line" not in bronze.columns:  # landed before positions were recorded: ties break by file
        bronze = bronze.withColumn("source_line", F.lit(None).cast("long"))
    parsed = parse_records(bronze, source, settings).cache()
    rejects = quarantined(parsed)
    silver = to_silver(parsed, source).cache()

    raw_counts, reject_counts, accepted_counts = _counts_by_day(parsed), _counts_by_day(rejects), _counts_by_day(silver)
    reports = []
    for day in pending_days:
        raw_n, rej_n, acc_n = raw_counts.get(day, 0), reject_counts.get(day, 0), accepted_counts.get(day, 0)
        reports.append(IngestReport(day, raw_n, acc_n, rej_n, raw_n - rej_n - acc_n))
    batch = StagedBatch(
        stage_id_for(ledger_rows),
        tuple((f, size, mtime, str(day), b) for f, size, mtime, day, b in sorted(ledger_rows)),
        {
            str(r.day): {
                "raw_records": r.raw_records,
                "accepted": r.accepted,
                "quarantined": r.quarantined,
                "duplicates_dropped": r.duplicates_dropped,
            }
            for r in reports
        },
    )

    delta.replace_where(rejects, tables.table_path(source.quarantine, settings), scope, "ingest_date")
    write_staging(silver, settings, source, batch)
    _set_status(spark, settings, source, ledger_rows, "staged")
    parsed.unpersist()
    silver.unpersist()

    log_days(
        [r.day for r in reports],
        [(r.raw_records, r.accepted, r.quarantined, r.duplicates_dropped) for r in reports],
        lambda day, c: (
            f"silver {source.name} {day}: {c[0]} raw = {c[1]} accepted + {c[2]} quarantined + "
            f"{c[3]} duplicates (staged as {batch.stage_id})"
        ),
    )
    return reports


def _seen_before(a: str, b: str) -> str:
    """SQL: row ``a`` was seen before row ``b`` (raw partition date, then source file, then line)."""
    return (
        f"({a}.ingest_date < {b}.ingest_date OR ({a}.ingest_date = {b}.ingest_date AND "
        f"({a}.source_file < {b}.source_file OR ({a}.source_file = {b}.source_file AND "
        f"{a}.source_line < {b}.source_line))))"
    )


def merge_first_seen(staged: DataFrame, path: str, source: RawSource, files: list[str]) -> None:
    """MERGE a batch (one row per key) into the silver table at ``path`` with one row per key across
    the whole table: a key already there keeps the first seen record (``source.newest_wins``: the
    newest) wherever its partition; a row of a re-sent file is replaced by the file's new version, and
    rows that version no longer has are deleted.

    The partitions the batch can touch are looked up first (where its keys and its files' rows are, a
    read of the key columns), so the MERGE itself reads only those partitions."""
    from delta.tables import DeltaTable

    spark = staged.sparkSession
    keys, partition = list(source.keys), source.silver_partition
    if not delta.table_exists(spark, path):
        writer = staged.write.format("delta").mode("overwrite")
        (writer.partitionBy(partition) if partition else writer).save(path)
        return
    target = spark.read.format("delta").load(path)
    resent = target.where(F.col("source_file").isin(files)) if files else None
    has_resent = resent is not None and resent.limit(1).count() > 0
    # Null-safe: a key may hold a null meaning "all" (a promotion's store_id), still one row per key.
    condition = " AND ".join(f"t.{k} <=> s.{k}" for k in keys)
    scope = "TRUE"
    if partition:
        hits = target.join(F.broadcast(staged.select(*keys).distinct()), keys, "left_semi").select(partition)
        if has_resent:
            hits = hits.unionByName(resent.select(partition))
        values = {r[0] for r in hits.unionByName(staged.select(partition)).distinct().collect()}
        if not values:
            return
        scope = f"t.{partition} IN ({', '.join(repr(str(v)) for v in sorted(values, key=str))})"
        condition = f"{scope} AND {condition}"
    replaces = _seen_before("t", "s") if source.newest_wins else _seen_before("s", "t")
    merge = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(staged.alias("s"), condition)
        .whenMatchedUpdateAll(condition=f"s.source_file = t.source_file OR {replaces}")
        .whenNotMatchedInsertAll()
    )
    if has_resent:  # only then: a not-matched-by-source clause reads every partition in scope
        merge = merge.whenNotMatchedBySourceDelete(condition=f"{scope} AND t.source_file IN ({_sql_in(files)})")
    merge.execute()


def _latest_verdict(spark: SparkSession, settings: Settings, table: str, batch: str):
    path = tables.table_path(tables.VALIDATION_RUNS, settings)
    if not delta.table_exists(spark, path):
        return None
    runs = spark.read.format("delta").load(path).where((F.col("table") == str(table)) & (F.col("batch") == batch))
    return runs.orderBy(F.col("validated_at").desc()).first()


def run_publish(spark: SparkSession, settings: Settings, source: RawSource = EVENTS) -> int:
    """Publish step: MERGE the staged batch into the silver table, only if the gate's latest verdict
    on exactly this batch is a pass, then mark exactly this batch's files published in the ledger.
    Publishing a batch already published changes nothing (a retried task)."""
    staging_path = tables.table_path(source.staging, settings)
    if not delta.table_exists(spark, staging_path):
        raise MissingInputError(f"nothing staged to publish: {staging_path}")
    batch = staged_batch(spark, settings, source)
    if batch is None:
        raise PublishRefused(
            f"{source.staging} records no batch (it was not written by `lakecart ingest silver`); "
            "stage the days again with `lakecart ingest silver --date D`"
        )
    last_day = batch.days[-1] if batch.days else None
    validate_cmd = f"`lakecart validate {source.staging} --date {last_day}`"
    ledger = {tuple(r[:5]): r[5] for r in read_ledger(spark, settings, source).collect()}
    keyed = [(f, size, mtime, date.fromisoformat(day), b) for f, size, mtime, day, b in batch.files]
    statuses = {ledger.get(k) for k in keyed}
    if statuses == {"published"}:
        log.info("%s: %s is already published; nothing to do", source.staging, batch.describe())
        return 0
    if statuses != {"staged"}:
        raise PublishRefused(
            f"{source.staging} holds {batch.describe()}, but its raw files changed or were re-staged since; "
            f"run `lakecart ingest silver --date {last_day}` and {validate_cmd} again"
        )
    verdict = _latest_verdict(spark, settings, source.staging, batch.stage_id)
    if verdict is None or not verdict["success"]:
        state = "never validated" if verdict is None else f"its latest verdict, at {verdict['validated_at']}, failed"
        raise PublishRefused(
            f"{source.staging}: {batch.describe()} has no passing verdict ({state}); "
            f"run {validate_cmd}, fix what it reports, then publish again"
        )
    staged = spark.read.format("delta").load(staging_path)
    merge_first_seen(staged, tables.table_path(source.silver, settings), source, batch.source_files)
    crash_point("publish.after_merge")
    _set_status(spark, settings, source, keyed, "published")
    count = staged.count()
    log.info("published %d staged %s into %s (%s)", count, source.name, source.silver, batch.describe())
    return count


def run_catalog(spark: SparkSession, settings: Settings) -> int:
    path = f"{settings.lake.raw}/catalog"
    if not _path_exists(spark, path):
        raise MissingInputError(f"raw catalogue not found: {path}")
    items = to_silver_items(spark.read.schema(CATALOG_SCHEMA).json(path))
    delta.merge_by_key(items, tables.table_path(tables.SILVER_ITEMS, settings), ["item_id"])
    return items.count()
