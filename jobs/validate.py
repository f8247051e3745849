"""The validation gate: run a table's Great Expectations suite on the rows a run produced.

A failure raises ``ValidationFailed`` listing each failed expectation, so the Airflow task fails
and nothing downstream (training, publishing) runs.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import tables
from lakecart.config import Settings
from lakecart.features import REGISTRY
from lakecart.features.definitions import FEATURE_DATE, view_expectations
from lakecart.jobs.ingest import silver_events_expectations
from lakecart.jobs.materialize import view_path
from lakecart.jobs.training_set import dataset_id_for, retrieval_set_expectations
from lakecart.quality import ValidationFailed, ValidationOutcome, validate_dataframe


def _target(spark: SparkSession, settings: Settings, table: str, start: date, end: date) -> tuple[DataFrame, list]:
    load = lambda path: spark.read.format("delta").load(path)  # noqa: E731
    if table in (tables.STAGING_SILVER_EVENTS, tables.SILVER_EVENTS):
        # The audit step of write-audit-publish: the staged batch, before anyone can read it.
        return load(tables.table_path(tables.STAGING_SILVER_EVENTS, settings)), silver_events_expectations()
    if table == tables.TRAINING_RETRIEVAL:
        rows = load(tables.table_path(table, settings)).where(F.col("dataset_id") == dataset_id_for(end))
        return rows, retrieval_set_expectations()
    name = table.removeprefix("features.")
    if name in REGISTRY:
        view = REGISTRY[name]
        rows = load(view_path(view, settings)).where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
        return rows, view_expectations(view)
    known = [tables.STAGING_SILVER_EVENTS, tables.TRAINING_RETRIEVAL, *(v.qualified_name for v in REGISTRY.values())]
    raise ValueError(f"no validation suite for {table!r}; known: {', '.join(known)}")


def run_validate(
    spark: SparkSession, settings: Settings, table: str, end: date, lookback_days: int = 0
) -> ValidationOutcome:
    start = end - timedelta(days=lookback_days)
    rows, expectations = _target(spark, settings, table, start, end)
    outcome = validate_dataframe(rows, table, expectations, f"{settings.lake.reports}/gx/{table}")
    if not outcome.success:
        raise ValidationFailed(outcome.summary())
    return outcome
