"""The SparkSession factory's JVM class-data archive (``lakecart.spark``)."""

from __future__ import annotations

import subprocess

from lakecart.spark import class_archive_path, driver_java_options


def test_a_local_driver_maps_the_archive_when_it_exists(tmp_path):
    archive = tmp_path / "classes.jsa"
    archive.write_bytes(b"")
    options = driver_java_options("local[2]", archive).split()
    assert "-Duser.timezone=UTC" in options
    assert f"-XX:SharedArchiveFile={archive}" in options and "-Xshare:auto" in options


def test_no_archive_option_without_the_file_and_no_local_options_for_a_cluster_driver(tmp_path):
    archive = tmp_path / "classes.jsa"
    assert "SharedArchiveFile" not in driver_java_options("local[2]", archive)
    archive.write_bytes(b"")
    for master in ("yarn", "spark://head:7077", "k8s://https://api:6443"):
        assert driver_java_options(master, archive) == "-Duser.timezone=UTC"


def test_quick_jit_for_local_sessions_unless_turned_off(tmp_path):
    options = driver_java_options("local[*]", tmp_path / "none.jsa").split()
    assert "-XX:TieredStopAtLevel=1" in options and "-XX:+UseParallelGC" in options
    assert driver_java_options("local[*]", tmp_path / "none.jsa", quick_jit=False) == "-Duser.timezone=UTC"


def test_quick_jit_keeps_the_tiered_code_cache():
    """C1 alone defaults to a 48 MiB code cache; a long session filled it and ran interpreted."""
    import shutil
    from pathlib import Path

    options = [o for o in driver_java_options("local[2]", Path("/nonexistent.jsa")).split() if o.startswith("-XX")]
    java = shutil.which("java")
    flags = subprocess.run([java, *options, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True)
    size = next(int(line.split()[3]) for line in flags.stdout.splitlines() if " ReservedCodeCacheSize " in line)
    assert size >= 240 * 1024 * 1024


def test_a_stale_or_broken_archive_is_skipped_not_fatal(tmp_path):
    broken = tmp_path / "broken.jsa"
    broken.write_bytes(b"not an archive" * 100)
    options = driver_java_options("local[2]", broken).split()
    done = subprocess.run(["java", *options, "-version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_test_session_runs_on_the_installed_archive(spark):
    # The install step (infra/bootstrap.sh) records it; `python -m lakecart.spark` records it by hand.
    assert class_archive_path().is_file(), f"no class-data archive at {class_archive_path()}"
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert f"-XX:SharedArchiveFile={class_archive_path()}" in list(runtime.getInputArguments())


def test_every_delta_commit_records_the_code_version(spark, tmp_path):
    import json

    from lakecart.lineage import git_commit

    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    (row,) = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("userMetadata").collect()
    recorded = json.loads(row["userMetadata"])
    assert recorded == {"job": "lakecart-tests", "lakecart": {"package": "0.1.0", "commit": git_commit()}}


def test_the_sql_warehouse_is_not_the_working_directory(spark):
    import os
    import tempfile

    warehouse = spark.conf.get("spark.sql.warehouse.dir")
    # Spark's default is ./spark-warehouse: `lakecart sql` left one wherever it was run.
    assert not warehouse.removeprefix("file:").startswith(os.getcwd())
    assert warehouse.removeprefix("file:").startswith(tempfile.gettempdir())
