"""The validation gate: run a table's Great Expectations suite on the rows a run produced.

A failure raises ``ValidationFailed`` listing each failed expectation, so the Airflow task fails
and nothing downstream (training, publishing) runs. Every verdict, pass or fail, is recorded in
``meta.validation_runs`` (table, the batch validated, its dates, success, row count, failures, code
version); ``ingest publish`` publishes a staged batch only when its latest verdict is a pass.

A staging table is validated as the batch ``ingest silver`` recorded in it, exactly: the gate for
``--date D`` fails when that batch does not cover D (nothing of D's was staged), and fails on any of
the batch's raw days that brought no usable record (unless the source declares such days normal) or
had more than ``ingest.MAX_QUARANTINED_SHARE`` of its records quarantined.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatch

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.errors import UsageError
from lakecart.features import REGISTRY
from lakecart.features.definitions import FEATURE_DATE
from lakecart.jobs import ingest
from lakecart.jobs.training_set import dataset_id_for
from lakecart.lineage import code_version
from lakecart.quality import ValidationFailed, ValidationOutcome, validate_dataframe

log = logging.getLogger(__name__)


def _validated_table(table: str) -> tables.Table:
    """The declared table whose rows a validation of ``table`` checks, with its suite. A silver source
    is validated in its staging table: the audit step of write-audit-publish, before anyone can read
    the batch."""
    source = _staged_source(table)
    try:
        declared = tables.declared(source.staging if source else table)
    except LookupError:
        declared = None
    if declared is None or declared.suite is None:
        raise UsageError(f"no validation suite for {table!r}; known: {', '.join(known_targets())}")
    return declared


def known_targets() -> list[str]:
    """Every table a validation can name: the declared tables with a suite, the silver tables (their
    batches are validated in staging) and every feature view."""
    with_suites = {t.name for t in tables.DECLARED.values() if t.suite}
    silver = {source.silver for source in ingest.SOURCES.values()}
    return sorted({*with_suites, *silver, *(v.qualified_name for v in REGISTRY.values())})


def expand_targets(patterns: list[str], settings: Settings | None = None) -> list[str]:
    """Table names, with shell-style patterns (``features.user_*``) expanded over the known targets.
    With ``settings``, a pattern leaves out the feature views whose source this lake does not have
    (a shop without promotions has no ``item_promotions_v2`` to validate); a name given in full is
    always kept."""
    targets: list[str] = []
    for pattern in patterns:
        matches = [t for t in known_targets() if fnmatch(t, pattern)] if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise UsageError(f"no validation target matches {pattern!r}; known: {', '.join(known_targets())}")
        if settings is not None and matches != [pattern]:
            kept = [m for m in matches if _source_present(settings, m)]
            if len(kept) < len(matches):
                left_out = sorted(set(matches) - set(kept))
                log.info("%s: leaving out %s (their source is not in this lake)", pattern, left_out)
            matches = kept
        targets += [m for m in matches if m not in targets]
    return targets


def target_exists(settings: Settings, table: str) -> bool:
    """Whether the table a validation reads exists: the staging table for a silver name."""
    from deltalake import DeltaTable

    source = _staged_source(table)
    name = source.staging if source is not None else table
    return DeltaTable.is_deltatable(tables.table_path(name, settings))


def _source_present(settings: Settings, table: str) -> bool:
    from lakecart.jobs.materialize import view_source_exists

    view = REGISTRY.get(table.removeprefix("features."))
    return view is None or not table.startswith("features.") or view_source_exists(settings, view.source)


def _target(spark: SparkSession, settings: Settings, table: str, start: date, end: date) -> tuple[DataFrame, list]:
    """The rows the declared table's validation checks for ``start``..``end``, and its suite."""
    declared = _validated_table(table)
    rows = spark.read.format("delta").load(declared.path(settings))
    if declared.layer == "bronze":  # the landing, one row per file
        rows = ingest.bronze_file_profile(rows.where(F.col("ingest_date").between(F.lit(start), F.lit(end))))
    elif declared.layer == "training":  # the set built for the date
        rows = rows.where(F.col("dataset_id") == dataset_id_for(end, declared.name.partition(".")[2]))
    elif declared.layer == "features":  # the view's rows for the run's feature dates
        rows = rows.where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
    return rows, declared.expectations()


REFERENCE_DAYS = 7
MAX_PSI_EVENT_TYPE = 0.25  # above this the event mix has shifted a lot (population stability index)
# A site-wide 15% promotion day measured 0.19-0.21 on the synthetic logs (ordinary days: 0.01-0.03), so
# prices only fail on breaks like a unit or currency change.
MAX_PSI_PRICE = 0.5
ROWS_PER_DAY_RATIO = (0.5, 2.0)  # a day with half or twice the usual volume is an incident


def silver_batch_profile(
    spark: SparkSession, settings: Settings, staged: DataFrame, batch_days: int | None = None
) -> DataFrame | None:
    """One row comparing the staged batch with the published silver data of the ``REFERENCE_DAYS``
    days before it: PSI of the event-type mix and of price deciles, and rows per day relative to the
    reference. ``batch_days``: the raw days the batch covers (a day that brought nothing counts);
    default, the event dates it has rows for. ``None`` when there is no reference yet (the first load)."""
    from lakecart.drift import population_stability_index

    silver_path = tables.table_path(tables.SILVER_EVENTS, settings)
    bounds = staged.agg(F.min("event_date").alias("lo"), F.max("event_date").alias("hi")).first()
    if bounds["lo"] is None or not delta.table_exists(spark, silver_path):
        return None
    reference = (
        spark.read.format("delta")
        .load(silver_path)
        .where(
            F.col("event_date").between(
                F.lit(bounds["lo"] - timedelta(days=REFERENCE_DAYS)), F.lit(bounds["lo"] - timedelta(days=1))
            )
        )
        .cache()
    )
    reference_days = reference.select("event_date").distinct().count()
    if reference_days == 0:
        reference.unpersist()
        return None

    def counts(frame: DataFrame, column: str) -> dict:
        return {r[0]: r[1] for r in frame.groupBy(column).count().collect()}

    deciles = sorted(set(reference.approxQuantile("price", [i / 10 for i in range(1, 10)], 0.001)))
    bucket = lambda frame: frame.where(F.col("price").isNotNull()).select(  # noqa: E731
        sum((F.col("price") > edge).cast("int") for edge in deciles).alias("price_bucket")
        if deciles
        else F.lit(0).alias("price_bucket")
    )
    batch_days = batch_days or staged.select("event_date").distinct().count()
    profile = {
        "psi_event_type": population_stability_index(counts(reference, "event_type"), counts(staged, "event_type")),
        "psi_price": population_stability_index(
            counts(bucket(reference), "price_bucket"), counts(bucket(staged), "price_bucket")
        ),
        "rows_per_day_ratio": (staged.count() / batch_days) / (reference.count() / reference_days),
        "reference_days": reference_days,
    }
    reference.unpersist()
    return spark.createDataFrame(
        [profile], "psi_event_type double, psi_price double, rows_per_day_ratio double, reference_days long"
    )


def silver_profile_expectations() -> list:
    import great_expectations.expectations as gxe

    low, high = ROWS_PER_DAY_RATIO
    return [
        gxe.ExpectColumnValuesToBeBetween(column="psi_event_type", max_value=MAX_PSI_EVENT_TYPE),
        gxe.ExpectColumnValuesToBeBetween(column="psi_price", max_value=MAX_PSI_PRICE),
        gxe.ExpectColumnValuesToBeBetween(column="rows_per_day_ratio", min_value=low, max_value=high),
    ]


VERDICT_SCHEMA = (
    "table string, batch string, start_date date, end_date date, success boolean, rows long, "
    "evaluated int, failures array<string>, code_version string, validated_at timestamp"
)


class Verdicts:
    """Gate verdicts bound for ``meta.validation_runs``, appended in one Delta commit when the block
    ends (also when it ends in an error): a gate over several tables pays one commit, not one per
    table (about 1.5 s each on a 2-core machine)."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark, self.settings, self.rows = spark, settings, []

    def add(
        self,
        table: str,
        batch: str,
        days: tuple[date, date],
        outcome: ValidationOutcome,
        rows: int | None,
    ) -> None:
        self.rows.append(
            (
                str(table),
                batch,
                days[0],
                days[1],
                bool(outcome.success),
                rows,
                outcome.evaluated,
                list(outcome.failures),
                json.dumps(code_version(), sort_keys=True),
                datetime.now(UTC).replace(tzinfo=None),
            )
        )

    def write(self) -> None:
        if not self.rows:
            return
        frame = self.spark.createDataFrame(self.rows, VERDICT_SCHEMA)
        frame.write.format("delta").mode("append").save(tables.table_path(tables.VALIDATION_RUNS, self.settings))
        self.rows = []

    def __enter__(self) -> Verdicts:
        return self

    def __exit__(self, *exc) -> None:
        self.write()


def _staged_source(table: str) -> ingest.RawSource | None:
    for source in ingest.SOURCES.values():
        if table in (source.staging, source.silver):
            return source
    return None


def _failed(table: str, message: str) -> ValidationOutcome:
    return ValidationOutcome(table, False, 1, [message])


def staged_day_profile(
    spark: SparkSession, settings: Settings, source: ingest.RawSource, batch: ingest.StagedBatch, start: date, end: date
) -> DataFrame:
    """One row per raw day from the batch's first day (or ``start``) to ``end``: raw records, accepted,
    quarantined share. A day the batch does not cover counts as bringing nothing, unless all its files
    were published before (an earlier batch brought them)."""
    first = min(start, batch.days[0])
    published = {
        r["ingest_date"]
        for r in ingest.read_ledger(spark, settings, source)
        .where(F.col("ingest_date").between(F.lit(first), F.lit(end)))
        .groupBy("ingest_date")
        .agg(F.min(F.col("status") == "published").alias("all_published"))
        .where("all_published")
        .collect()
    }
    rows = []
    for n in range((end - first).days + 1):
        day = first + timedelta(days=n)
        counts = batch.counts.get(day.isoformat())
        if counts is None and day in published:
            continue
        counts = counts or {"raw_records": 0, "accepted": 0, "quarantined": 0}
        share = counts["quarantined"] / counts["raw_records"] if counts["raw_records"] else 0.0
        rows.append((day, counts["raw_records"], counts["accepted"], share))
    return spark.createDataFrame(rows, "ingest_date date, raw_records long, accepted long, quarantined_share double")


def sent_fields(spark: SparkSession, settings: Settings, staged: DataFrame) -> frozenset[str]:
    """The optional event fields (``ingest.SENT_FIELDS``) this source sends: those on any event of the
    batch it belongs to, or on any published event of the ``REFERENCE_DAYS`` before the batch (a
    source that stopped sending one is still held to it)."""

    def present(frame: DataFrame) -> set[str]:
        counts = frame.agg(
            *[
                F.count(
                    F.when(F.col(c).isNotNull() & (F.col("event_type").isin(*kinds) if kinds else F.lit(True)), 1)
                ).alias(c)
                for c, kinds in ingest.SENT_FIELDS.items()
            ]
        ).first()
        return {c for c in ingest.SENT_FIELDS if counts[c]}

    sent = present(staged)
    silver_path = tables.table_path(tables.SILVER_EVENTS, settings)
    if sent != set(ingest.SENT_FIELDS) and delta.table_exists(spark, silver_path):
        lo = staged.agg(F.min("event_date")).first()[0]
        if lo is not None:
            reference = (
                spark.read.format("delta")
                .load(silver_path)
                .where(
                    F.col("event_date").between(
                        F.lit(lo - timedelta(days=REFERENCE_DAYS)), F.lit(lo - timedelta(days=1))
                    )
                )
            )
            sent |= present(reference)
    return frozenset(sent)


def _validate_staged(
    spark: SparkSession, settings: Settings, source: ingest.RawSource, table: str, start: date, end: date
) -> tuple[ValidationOutcome, str, tuple[date, date], int | None]:
    """The staged batch's verdict for day ``end``: (outcome, batch id, its days, staged rows)."""
    batch = ingest.staged_batch(spark, settings, source)
    if batch is None:
        message = f"{source.staging} records no batch: run `lakecart ingest silver --date {end}` first"
        return _failed(table, message), "none", (start, end), None
    if end not in batch.days:
        ledger = ingest.read_ledger(spark, settings, source).where(F.col("ingest_date") == F.lit(end))
        statuses = {r["status"] for r in ledger.select("status").distinct().collect()}
        if statuses == {"published"}:  # a retried run: the day's batch passed and was published before
            outcome = ValidationOutcome(table, True, 0, [])
            log.info("%s: %s is already published; nothing new to validate", table, end)
            return outcome, f"published:{end}", (end, end), 0
        message = (
            f"{end}: nothing staged for this day ({source.staging} holds {batch.describe()}); "
            f"run `lakecart ingest bronze --date {end}` and `lakecart ingest silver --date {end}` first"
        )
        return _failed(table, message), batch.stage_id, (end, end), None

    rows, count = _cached(spark.read.format("delta").load(tables.table_path(source.staging, settings)))
    try:
        reports = f"{settings.lake.reports}/gx"
        days = staged_day_profile(spark, settings, source, batch, start, end)
        name = f"{source.staging}.days"
        outcome = validate_dataframe(
            days, name, ingest.staged_days_expectations(source.empty_days_ok), f"{reports}/{name}"
        )
        outcome.table = table
        if count or not source.empty_days_ok:
            if source is ingest.EVENTS:
                suite = ingest.silver_events_expectations(sent_fields(spark, settings, rows))
            else:
                suite = tables.declared(source.staging).expectations()
            _combine(outcome, validate_dataframe(rows, table, suite, f"{reports}/{table}"))
        if source is ingest.EVENTS and count:
            profile = silver_batch_profile(spark, settings, rows, len(batch.days))
            if profile is not None:
                name = f"{tables.STAGING_SILVER_EVENTS}.profile"
                _combine(outcome, validate_dataframe(profile, name, silver_profile_expectations(), f"{reports}/{name}"))
    finally:
        rows.unpersist()
    return outcome, batch.stage_id, (batch.days[0], batch.days[-1]), count


def _combine(outcome: ValidationOutcome, more: ValidationOutcome) -> None:
    outcome.success = outcome.success and more.success
    outcome.evaluated += more.evaluated
    outcome.failures += more.failures
    outcome.docs = more.docs or outcome.docs


@dataclass
class _Batch:
    """A declared table's rows for a run (cached: GX computes each expectation's metrics as separate
    Spark jobs, so the batch is read once, not per job), their count and the table's suite."""

    rows: DataFrame
    count: int
    expectations: list


def _cached(rows: DataFrame) -> tuple[DataFrame, int]:
    """``rows`` cached (GX computes each expectation's metrics as separate Spark jobs: read once, not
    per job) and counted, which fills the cache; the caller unpersists them once checked."""
    rows = rows.cache()
    return rows, rows.count()


def _read_batch(spark: SparkSession, settings: Settings, table: str, start: date, end: date) -> _Batch:
    rows, expectations = _target(spark, settings, table, start, end)
    return _Batch(*_cached(rows), expectations)


def run_validate(
    spark: SparkSession,
    settings: Settings,
    table: str,
    end: date,
    lookback_days: int = 0,
    verdicts: Verdicts | None = None,
    read: Future[_Batch] | None = None,
) -> ValidationOutcome:
    """Validate ``table``'s rows for ``end`` (and ``lookback_days`` before it), record the verdict in
    ``meta.validation_runs`` (at once, or with ``verdicts`` when that block ends) and raise
    ``ValidationFailed`` when it is a fail. ``read``: the rows already being read (``run_gate``)."""
    start = end - timedelta(days=lookback_days)
    source = _staged_source(table)
    if source is not None:
        outcome, batch, days, count = _validate_staged(spark, settings, source, table, start, end)
        verdict_table = source.staging
    else:
        rows = read.result() if read is not None else _read_batch(spark, settings, table, start, end)
        try:
            outcome = validate_dataframe(rows.rows, table, rows.expectations, f"{settings.lake.reports}/gx/{table}")
        finally:
            rows.rows.unpersist()
        count, verdict_table, days = rows.count, table, (start, end)
        batch = (
            dataset_id_for(end, table.removeprefix("training.")) if table.startswith("training.") else f"{start}..{end}"
        )
    if verdicts is None:
        with Verdicts(spark, settings) as verdicts:
            verdicts.add(verdict_table, batch, days, outcome, count)
    else:
        verdicts.add(verdict_table, batch, days, outcome, count)
    if not outcome.success:
        raise ValidationFailed(outcome.summary())
    return outcome


def run_gate(
    spark: SparkSession, settings: Settings, targets: list[str], end: date, lookback_days: int = 0
) -> Iterator[ValidationOutcome | ValidationFailed]:
    """Validate each of ``targets`` in turn, as ``run_validate`` does; yields each table's outcome, or
    its ``ValidationFailed``, so a gate validates every table asked for before it fails.

    A gate over many small tables (the DAG's feature gates: 7-8 views of one day) waits mostly on
    fixed latencies, so two things are shared: every verdict goes to ``meta.validation_runs`` in one
    commit, and while one table's suite runs, a second thread reads and caches the next table (its
    Delta log, the scan's planning and the read overlap GX's work; at most two batches are cached)."""
    start = end - timedelta(days=lookback_days)
    with Verdicts(spark, settings) as verdicts, ThreadPoolExecutor(1, thread_name_prefix="gate-read") as reader:

        def read_ahead(position: int) -> Future[_Batch] | None:
            if position >= len(targets) or _staged_source(targets[position]) is not None:
                return None
            return reader.submit(_read_batch, spark, settings, targets[position], start, end)

        ahead = read_ahead(0)
        try:
            for position, table in enumerate(targets):
                read, ahead = ahead, read_ahead(position + 1)
                try:
                    yield run_validate(spark, settings, table, end, lookback_days, verdicts, read)
                except ValidationFailed as failed:
                    yield failed
        finally:  # stopped early (an error): drop what was read ahead
            if ahead is not None and ahead.exception() is None:
                ahead.result().rows.unpersist()


def run_write_audit_publish(
    spark: SparkSession,
    settings: Settings,
    source: ingest.RawSource,
    days: list[date],
    reprocess: bool = False,
    skip_if_absent: bool = False,
) -> list[ingest.IngestReport]:
    """A whole source in one call: land new files in bronze, validate the landing, stage the typed
    batch, validate it, publish it. A failing suite raises before anything reaches silver.
    ``skip_if_absent``: a deployment that never sends this source (no ``raw/<source>/`` folder at all,
    e.g. an imported interaction log) is skipped; a missing day of a source that exists still fails."""
    if skip_if_absent and not ingest.source_present(settings, source):
        log.info("no raw %s folder under %s: skipping", source.name, settings.lake.raw)
        return []
    ingest.run_bronze(spark, settings, days, reprocess, source)
    log.info(run_validate(spark, settings, source.bronze, days[-1], (days[-1] - days[0]).days).summary())
    reports = ingest.run_silver(spark, settings, days, reprocess, source)
    if reports:  # the gate names exactly the staged days: from the first to the last day staged
        first, last = reports[0].day, reports[-1].day
        log.info(run_validate(spark, settings, source.staging, last, (last - first).days).summary())
        ingest.run_publish(spark, settings, source)
    return reports
