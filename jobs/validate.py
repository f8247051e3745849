"""The validation gate: run a table's Great Expectations suite on the rows a run produced.

A failure raises ``ValidationFailed`` listing each failed expectation, so the Airflow task fails
and nothing downstream (training, publishing) runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import tables
from lakecart.config import Settings
from lakecart.features import REGISTRY
from lakecart.features.definitions import FEATURE_DATE, view_expectations
from lakecart.jobs import ingest
from lakecart.jobs.feature_store import view_path
from lakecart.jobs.training_set import KINDS, dataset_id_for, training_set_expectations
from lakecart.quality import ValidationFailed, ValidationOutcome, validate_dataframe

log = logging.getLogger(__name__)


def _suites() -> dict[str, tuple[str, Callable[[], list]]]:
    """Validation target -> (table whose rows are validated, suite). Silver sources are validated in
    staging: the audit step of write-audit-publish, before anyone can read the batch."""
    suites: dict[str, tuple[str, Callable[[], list]]] = {
        source.bronze: (source.bronze, ingest.bronze_expectations) for source in ingest.SOURCES.values()
    }
    for source, suite in (
        (ingest.EVENTS, ingest.silver_events_expectations),
        (ingest.ORDERS, ingest.silver_order_lines_expectations),
        (ingest.USERS, ingest.silver_users_expectations),
    ):
        suites[source.staging] = suites[source.silver] = (source.staging, suite)
    for kind in KINDS.values():
        suites[kind.table] = (kind.table, lambda name=kind.name: training_set_expectations(name))
    return suites


def known_targets() -> list[str]:
    return sorted({*_suites(), *(v.qualified_name for v in REGISTRY.values())})


def expand_targets(patterns: list[str]) -> list[str]:
    """Table names, with shell-style patterns (``features.user_*``) expanded over the known targets."""
    from fnmatch import fnmatch

    targets: list[str] = []
    for pattern in patterns:
        matches = [t for t in known_targets() if fnmatch(t, pattern)] if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise ValueError(f"no validation target matches {pattern!r}; known: {', '.join(known_targets())}")
        targets += [m for m in matches if m not in targets]
    return targets


def _target(spark: SparkSession, settings: Settings, table: str, start: date, end: date) -> tuple[DataFrame, list]:
    load = lambda path: spark.read.format("delta").load(path)  # noqa: E731
    suites = _suites()
    if table in suites:
        source_table, suite = suites[table]
        rows = load(tables.table_path(source_table, settings))
        if source_table.startswith("bronze."):
            rows = ingest.bronze_file_profile(rows.where(F.col("ingest_date").between(F.lit(start), F.lit(end))))
        elif source_table.startswith("training."):
            rows = rows.where(F.col("dataset_id") == dataset_id_for(end, source_table.removeprefix("training.")))
        return rows, suite()
    name = table.removeprefix("features.")
    if name in REGISTRY:
        view = REGISTRY[name]
        rows = load(view_path(view, settings)).where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
        return rows, view_expectations(view)
    raise ValueError(f"no validation suite for {table!r}; known: {', '.join(known_targets())}")


REFERENCE_DAYS = 7
MAX_PSI_EVENT_TYPE = 0.25  # above this the event mix has shifted a lot (population stability index)
# A site-wide 15% promotion day measured 0.19-0.21 on the synthetic logs (ordinary days: 0.01-0.03), so
# prices only fail on breaks like a unit or currency change.
MAX_PSI_PRICE = 0.5
ROWS_PER_DAY_RATIO = (0.5, 2.0)  # a day with half or twice the usual volume is an incident


def silver_batch_profile(spark: SparkSession, settings: Settings, staged: DataFrame) -> DataFrame | None:
    """One row comparing the staged batch with the published silver data of the ``REFERENCE_DAYS``
    days before it: PSI of the event-type mix and of price deciles, and rows per day relative to the
    reference. ``None`` when there is no reference yet (the first load)."""
    from lakecart import delta
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
    batch_days = staged.select("event_date").distinct().count()
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


def run_validate(
    spark: SparkSession, settings: Settings, table: str, end: date, lookback_days: int = 0
) -> ValidationOutcome:
    start = end - timedelta(days=lookback_days)
    rows, expectations = _target(spark, settings, table, start, end)
    # GX computes each expectation's metrics as separate Spark jobs: read the batch once, not per job.
    rows = rows.cache()
    outcome = validate_dataframe(rows, table, expectations, f"{settings.lake.reports}/gx/{table}")
    if table in (tables.STAGING_SILVER_EVENTS, tables.SILVER_EVENTS):
        profile = silver_batch_profile(spark, settings, rows)
        if profile is not None:
            name = f"{tables.STAGING_SILVER_EVENTS}.profile"
            drift = validate_dataframe(
                profile, name, silver_profile_expectations(), f"{settings.lake.reports}/gx/{name}"
            )
            outcome.success = outcome.success and drift.success
            outcome.evaluated += drift.evaluated
            outcome.failures += drift.failures
    rows.unpersist()
    if not outcome.success:
        raise ValidationFailed(outcome.summary())
    return outcome


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
    if skip_if_absent and not ingest.source_present(spark, settings, source):
        log.info("no raw %s folder under %s: skipping", source.name, settings.lake.raw)
        return []
    ingest.run_bronze(spark, settings, days, reprocess, source)
    run_validate(spark, settings, source.bronze, days[-1], (days[-1] - days[0]).days)
    reports = ingest.run_silver(spark, settings, days, reprocess, source)
    if reports:
        run_validate(spark, settings, source.staging, days[-1])
        ingest.run_publish(spark, settings, source)
    return reports
