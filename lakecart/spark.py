"""The one SparkSession factory: jobs, notebooks and tests all get their session here."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from lakecart.config import Settings, get_settings

log = logging.getLogger(__name__)


def bundled_jars_dir() -> Path:
    """Where ``infra/bootstrap.sh`` puts the Delta jars it fetched with Maven."""
    return Path(sys.prefix) / "share" / "lakecart" / "jars"


def get_spark(settings: Settings | None = None, app_name: str | None = None):
    """Return a Delta-enabled SparkSession in UTC, sized by configuration.

    On a cluster set ``LAKECART_SPARK__MASTER`` (``spark://...``, ``yarn``, ``k8s://...``) or a
    ``LAKECART_CONFIG`` profile from ``infra/config/``; the code is the same.
    """
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    cfg = settings.spark
    # Executors must run the interpreter of this environment, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    builder = (
        SparkSession.builder.appName(app_name or cfg.app_name)
        .master(cfg.master)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.ui.enabled", str(cfg.ui_enabled).lower())
        .config("spark.ui.showConsoleProgress", "false")
        # Delta rebuilds table state with 50 tasks by default: far too many for small local tables.
        .config("spark.databricks.delta.snapshotPartitions", str(cfg.shuffle_partitions))
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        # Keep tables on default features so delta-rs (training, downstream readers) can write too.
        .config("spark.databricks.delta.properties.defaults.enableDeletionVectors", "false")
        # Additive schema changes (a new column in a job's output) evolve the table on MERGE.
        .config("spark.databricks.delta.schema.autoMerge.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, value)

    jars_dir = Path(cfg.jars_dir) if cfg.jars_dir else bundled_jars_dir()
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    else:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)

    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
