"""Build the retrieval training set: interactions joined point-in-time with user and item features."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.features import item_popularity_v1, user_activity_v1
from lakecart.features.pit import point_in_time_join
from lakecart.jobs.materialize import view_path

log = logging.getLogger(__name__)

RETRIEVAL_VIEWS = (user_activity_v1, item_popularity_v1)
INTERACTIONS = ("product_view", "add_to_cart", "purchase")


def dataset_id_for(end: date) -> str:
    return f"retrieval_{end:%Y%m%d}"


def retrieval_labels(events: DataFrame, start: date, end: date, test_days: int) -> DataFrame:
    """Every interaction in ``[start, end]``; the last ``test_days`` days form the test split."""
    test_start = end - timedelta(days=test_days - 1)
    return events.where(
        F.col("event_date").between(F.lit(start), F.lit(end))
        & F.col("event_type").isin(*INTERACTIONS)
        & F.col("user_id").isNotNull()  # signed-out browsing cannot be tied to a user
    ).select(
        "event_id",
        "user_id",
        "item_id",
        "category",
        "event_type",
        "device",
        "event_time",
        "event_date",
        F.when(F.col("event_date") >= F.lit(test_start), "test").otherwise("train").alias("split"),
    )


def build_retrieval_set(
    events: DataFrame, views: dict[str, DataFrame], start: date, end: date, test_days: int
) -> DataFrame:
    labels = retrieval_labels(events, start, end, test_days)
    return point_in_time_join(labels, "event_time", [(v, views[v.table_name]) for v in RETRIEVAL_VIEWS])


def run_training_set(
    spark: SparkSession, settings: Settings, start: date, end: date, test_days: int = 2, shards: int = 4
) -> dict:
    if test_days < 1 or (end - start).days < test_days:
        raise ValueError(f"need more days than test_days={test_days} between {start} and {end}")
    events_path = tables.table_path(tables.SILVER_EVENTS, settings)
    inputs = {tables.SILVER_EVENTS: events_path, **{v.qualified_name: view_path(v, settings) for v in RETRIEVAL_VIEWS}}
    versions = {name: delta.latest_version(spark, path) for name, path in inputs.items()}
    # Read exactly the versions recorded in the manifest, so a rebuild can reproduce the rows.
    read = lambda name: spark.read.format("delta").option("versionAsOf", versions[name]).load(inputs[name])  # noqa: E731
    frame = build_retrieval_set(
        read(tables.SILVER_EVENTS),
        {v.table_name: read(v.qualified_name) for v in RETRIEVAL_VIEWS},
        start,
        end,
        test_days,
    )
    dataset_id = dataset_id_for(end)
    frame = frame.withColumn("dataset_id", F.lit(dataset_id)).repartition(shards, "user_id")
    out_path = tables.table_path(tables.TRAINING_RETRIEVAL, settings)
    delta.replace_partitions(frame, out_path, "dataset_id", [dataset_id])
    counts = {
        r["split"]: r["count"]
        for r in spark.read.format("delta")
        .load(out_path)
        .where(F.col("dataset_id") == dataset_id)
        .groupBy("split")
        .count()
        .collect()
    }
    manifest = {
        "dataset_id": dataset_id,
        "table": tables.TRAINING_RETRIEVAL,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "test_days": test_days,
        "rows": counts,
        "feature_views": {v.qualified_name: v.version for v in RETRIEVAL_VIEWS},
        "input_versions": versions,
        "output_version": delta.latest_version(spark, out_path),
    }
    # Manifests live in the lake too (a Delta table), so they travel wherever the lake does.
    manifest_row = spark.createDataFrame([(dataset_id, json.dumps(manifest))], "dataset_id string, manifest string")
    delta.merge_by_key(manifest_row, tables.table_path(tables.TRAINING_MANIFESTS, settings), ["dataset_id"])
    log.info("training set %s: %s", dataset_id, counts)
    return manifest


def retrieval_set_expectations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("user_id", "item_id", "event_time", "split")],
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train", "test"]),
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
    ]
