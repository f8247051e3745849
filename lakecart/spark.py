"""The one SparkSession factory: jobs, notebooks and tests all get their session here."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from lakecart import storage
from lakecart.config import Settings, get_settings
from lakecart.errors import ConfigError
from lakecart.lineage import commit_metadata

log = logging.getLogger(__name__)


def bundled_jars_dir() -> Path:
    """Where ``infra/bootstrap.sh`` puts the Delta jars it fetched with Maven."""
    return Path(sys.prefix) / "share" / "lakecart" / "jars"


def s3_jars_dir() -> Path:
    """Where ``infra/bootstrap.sh`` puts hadoop-aws and the AWS SDK modules it needs (s3a:// lakes)."""
    return Path(sys.prefix) / "share" / "lakecart" / "jars-s3"


def s3_jars(jars_dir: str = "") -> list[Path]:
    """The jars an ``s3a://`` lake needs: from ``spark.jars_dir`` when one is set (it must then hold
    hadoop-aws), else the ones bootstrap fetched; a ConfigError that says how to get them otherwise."""
    folder = Path(jars_dir) if jars_dir else s3_jars_dir()
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    if not any(j.name.startswith("hadoop-aws-") for j in jars):
        raise ConfigError(
            f"the lake is on object storage but {folder} holds no hadoop-aws jar: run `infra/bootstrap.sh pipeline` "
            "(it fetches them), or put hadoop-aws and the AWS SDK in spark.jars_dir"
        )
    return [] if jars_dir else jars  # jars_dir's own jars are on the class path already


def hadoop_version() -> str:
    """The Hadoop version pyspark bundles (hadoop-aws must be the same one)."""
    import pyspark

    found = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    if not found:
        raise ConfigError("pyspark bundles no hadoop-client-api jar: cannot tell which hadoop-aws it needs")
    return found[-1].name.removeprefix("hadoop-client-api-").removesuffix(".jar")


def class_archive_path() -> Path:
    """Where ``infra/bootstrap.sh`` puts the JVM class-data archive it records for this environment."""
    return Path(sys.prefix) / "share" / "lakecart" / "spark-classes.jsa"


def driver_java_options(master: str, archive: Path | None = None, quick_jit: bool = True) -> str:
    """The driver JVM's options: UTC, and, for a local master, the environment's class-data archive.

    Loading Spark's ~10,000 classes from the archive (a memory-mapped snapshot of them, parsed and
    verified) instead of from jars takes seconds off every local session start and its first job;
    every CLI call and Airflow task starts one. A cluster's driver runs elsewhere, without the file.
    ``-Xshare:auto``: a missing or stale archive (another JDK) is skipped, never fatal.
    ``quick_jit``: see ``SparkSettings.quick_jit``.
    """
    archive = class_archive_path() if archive is None else archive
    options = ["-Duser.timezone=UTC"]
    local = master.startswith("local")
    if local and archive.is_file():
        options += [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
    if local and quick_jit:
        # C1 alone defaults to a 48 MiB code cache, which a long session (a backfill, a benchmark,
        # the test suite) fills with generated code: the JVM then stops compiling and runs the rest
        # interpreted ("CodeCache is full. Compiler has been disabled"). 240 MiB is the tiered default.
        options += ["-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC", "-XX:ReservedCodeCacheSize=240m"]
    return " ".join(options)


# Driver loggers whose lines nobody running a command can act on. A failed task's stack trace is
# logged three times over (executor, task set, writer) before the error reaches Python, where the
# command turns it into one line; ``-v`` (or LAKECART_SPARK__CONF with a log4j2 file) shows them.
QUIET_LOGGERS = {
    "org.apache.hadoop.util.NativeCodeLoader": "error",
    "org.apache.spark.util.Utils": "error",
    "org.apache.spark.SparkConf": "error",
    "org.apache.spark.sql.internal.SharedState": "error",
    "org.apache.spark.sql.catalyst.util.SparkStringUtils": "error",
    "org.apache.spark.executor.Executor": "fatal",
    "org.apache.spark.scheduler.TaskSetManager": "fatal",
    "org.apache.spark.sql.execution.datasources.FileFormatWriter": "fatal",
    "org.apache.spark.util.TaskResources": "fatal",
    "org.apache.spark.sql.delta": "error",
    "org.apache.spark.storage.DiskBlockObjectWriter": "error",
    "org.sparkproject.jetty": "error",
}


def log4j2_properties(verbose: bool = False) -> str:
    """The driver JVM's log4j2 configuration: warnings and errors on stderr (never stdout, which
    carries results), Spark's INFO chatter only with ``verbose``."""
    lines = [
        f"rootLogger.level = {'info' if verbose else 'warn'}",
        "rootLogger.appenderRef.stderr.ref = stderr",
        "appender.stderr.type = Console",
        "appender.stderr.name = stderr",
        "appender.stderr.target = SYSTEM_ERR",
        "appender.stderr.layout.type = PatternLayout",
        "appender.stderr.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex",
    ]
    if not verbose:
        for n, (name, level) in enumerate(sorted(QUIET_LOGGERS.items())):
            lines += [f"logger.q{n}.name = {name}", f"logger.q{n}.level = {level}"]
    return "\n".join(lines) + "\n"


def _scratch_file(name: str, text: str) -> Path:
    """``text`` in a per-user temp file named after its content (written once, atomically)."""
    folder = Path(tempfile.gettempdir()) / f"lakecart-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}-{name}"
    if not path.is_file():
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(text)
        partial.replace(path)
    return path


def warehouse_dir() -> str:
    """Where Spark's in-memory catalogue puts database folders (``register_tables`` creates one
    database per layer): a per-user temp folder, not ``./spark-warehouse`` wherever a command ran.
    A shared metastore sets its own (``spark.conf``)."""
    path = Path(tempfile.gettempdir()) / f"lakecart-{os.getuid()}" / "spark-warehouse"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


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
    # Arrow's default allocator (jemalloc) runs several times slower in the Python workers Spark forks
    # (reading Parquet with Arrow in a task: 9.6 s vs 2.0 s); the system allocator does not.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

    app_name = app_name or cfg.app_name
    verbose = logging.getLogger("lakecart").isEnabledFor(logging.DEBUG)
    log4j2 = _scratch_file("log4j2.properties", log4j2_properties(verbose))
    java_options = f"{driver_java_options(cfg.master, quick_jit=cfg.quick_jit)} -Dlog4j2.configurationFile={log4j2}"
    builder = (
        SparkSession.builder.appName(app_name)
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
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.sql.warehouse.dir", warehouse_dir())
        # Every Delta commit this session makes records the code that made it (DESCRIBE HISTORY).
        .config("spark.databricks.delta.commitInfo.userMetadata", commit_metadata(job=app_name))
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executorEnv.ARROW_DEFAULT_MEMORY_POOL", os.environ["ARROW_DEFAULT_MEMORY_POOL"])
    )
    # An object-store lake: hadoop-aws's endpoint and addressing (from the environment); spark.conf wins.
    for key, value in {**storage.spark_conf(settings.lake.root), **cfg.conf}.items():
        builder = builder.config(key, value)

    jars_dir = Path(cfg.jars_dir) if cfg.jars_dir else bundled_jars_dir()
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    on_object_store = storage.is_object_store(settings.lake.root)
    # hadoop-aws and the AWS SDK only when the lake is in a bucket: local sessions stay as they were.
    s3 = s3_jars(cfg.jars_dir) if jars and on_object_store else []
    if jars and cfg.master.startswith("local"):
        # On the JVM's own class path (one JVM in local mode), Delta's classes go into the class-data
        # archive too; jars added with spark.jars load through Spark's own class loader, which the
        # archive cannot hold, and the first Delta query then takes seconds longer.
        builder = builder.config("spark.driver.extraClassPath", os.pathsep.join(str(j) for j in jars))
        if s3:
            # Not on the class path: that would no longer match the archive's and lose it altogether.
            builder = builder.config("spark.jars", ",".join(str(j) for j in s3))
    elif jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in [*jars, *s3]))
    else:
        from delta import configure_spark_with_delta_pip

        packages = [f"org.apache.hadoop:hadoop-aws:{hadoop_version()}"] if on_object_store else None
        builder = configure_spark_with_delta_pip(builder, extra_packages=packages)

    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("INFO" if verbose else "WARN")
    if cfg.ui_enabled and spark.sparkContext.uiWebUrl:
        # Where to watch this job's stages (cluster profiles turn the UI on; local runs keep it off).
        log.warning("Spark UI for %s: %s", app_name, spark.sparkContext.uiWebUrl)
    return spark


def record_class_archive(dest: Path) -> Path:
    """Run a small representative workload (Delta write, MERGE and read, Parquet, joins, windows,
    aggregates, Arrow) in a fresh JVM that writes the classes it loaded to ``dest`` when it exits.
    The JVM writes at exit, so this waits for it and then moves the file into place."""
    import subprocess

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + f".{os.getpid()}.partial")
    # The JVM lists every class it could not archive (generated accessors, ...): keep that out of sight.
    done = subprocess.run(
        [sys.executable, "-m", "lakecart.spark", "--workload", str(partial)], capture_output=True, text=True
    )
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"recording the class-data archive failed:\n{done.stderr[-4000:]}")
    partial.replace(dest)
    return dest


def _archive_workload(archive: Path) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakecart.config import Settings, SparkSettings

    cfg = SparkSettings(
        conf={"spark.driver.extraJavaOptions": f"-Duser.timezone=UTC -XX:ArchiveClassesAtExit={archive}"}
    )
    spark = get_spark(Settings(spark=cfg), app_name="lakecart-class-archive")
    with tempfile.TemporaryDirectory() as tmp:
        rows = spark.range(2000).select(
            "id",
            (F.col("id") % 50).alias("user_id"),
            F.to_date(F.lit("2026-01-01")).alias("day"),
            (F.col("id") * 1.5).alias("amount"),
            F.concat(F.lit("item-"), (F.col("id") % 7).cast("string")).alias("item"),
        )
        rows.write.format("delta").partitionBy("day").save(f"{tmp}/delta")
        from delta.tables import DeltaTable

        table = DeltaTable.forPath(spark, f"{tmp}/delta")
        (
            table.alias("t")
            .merge(rows.alias("s"), "t.id = s.id AND t.day = s.day")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
        read = spark.read.format("delta").load(f"{tmp}/delta")
        ranked = read.withColumn("rank", F.row_number().over(Window.partitionBy("user_id").orderBy("amount")))
        totals = read.groupBy("user_id", "item").agg(F.sum("amount").alias("total"), F.countDistinct("day"))
        joined = ranked.join(totals, ["user_id", "item"], "left").join(
            F.broadcast(totals.limit(5)), "user_id", "left_anti"
        )
        joined.write.mode("overwrite").parquet(f"{tmp}/parquet")
        spark.read.parquet(f"{tmp}/parquet").toArrow()
        spark.sql(f"SELECT item, max_by(amount, user_id) FROM delta.`{tmp}/delta` GROUP BY item").collect()
    jvm = spark.sparkContext._gateway.proc  # the JVM writes the archive as it exits: wait for it
    spark.stop()
    spark.sparkContext._gateway.shutdown()
    jvm.stdin.close()
    jvm.wait(timeout=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Record the JVM class-data archive for local Spark sessions.")
    parser.add_argument("dest", nargs="?", type=Path, default=class_archive_path())
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        _archive_workload(args.workload)
    else:
        print(record_class_archive(args.dest))
