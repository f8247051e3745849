"""Exactly-once under crashes: a run killed mid-way (a real process killed, no cleanup) and run
again must leave the same table content as a run that never failed."""

import hashlib
import os
import subprocess
import sys

import pytest

from lakecart import tables
from lakecart.jobs.generate import GeneratorSpec, generate

SPEC = GeneratorSpec(users=30, items=15, categories=3, days=2, events_per_day=150, defects={"duplicate_event": 2})
CLI = [sys.executable, "-m", "lakecart.cli"]


def lakecart(root, *args, crash_at=None):
    env = {**os.environ, "LAKECART_LAKE__ROOT": str(root), "LAKECART_SPARK__SHUFFLE_PARTITIONS": "2"}
    if crash_at:
        env["LAKECART_CRASH_AT"] = crash_at
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)


def content_hash(spark, path, drop=("source_file", "batch_id", "ingested_at")):
    rows = spark.read.format("delta").load(path).drop(*drop).collect()
    return hashlib.sha256("\n".join(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()


@pytest.mark.parametrize(
    "crash_at", ["bronze.after_write", pytest.param("publish.after_merge", marks=pytest.mark.slow)]
)
def test_killed_run_then_rerun_equals_a_clean_run(spark, tmp_path, crash_at):
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    for root in (clean, crashed):
        generate(SPEC, root / "raw")
    window = ["--date", "2026-01-02", "--lookback-days", "1"]
    # The reference run never fails, so it runs in this process (the session's Spark: no JVM start-ups).
    from datetime import date

    from lakecart.config import LakeSettings, Settings
    from lakecart.jobs import ingest
    from lakecart.jobs.validate import run_validate

    reference, days = Settings(lake=LakeSettings(root=str(clean))), [date(2026, 1, 1), date(2026, 1, 2)]
    ingest.run_bronze(spark, reference, days)
    ingest.run_silver(spark, reference, days)
    run_validate(spark, reference, tables.STAGING_SILVER_EVENTS, days[-1], 1)
    ingest.run_publish(spark, reference, ingest.EVENTS)

    # Run the steps until the crash point kills one: after the bronze write (ledger not updated) or
    # after the silver MERGE (ledger still says "staged").
    steps = (
        ["ingest", "bronze", *window],
        ["ingest", "silver", *window],
        ["validate", tables.STAGING_SILVER_EVENTS, *window],
        ["ingest", "publish"],
    )
    for step in steps:
        killed = lakecart(crashed, *step, crash_at=crash_at)
        if killed.returncode != 0:
            break
    assert killed.returncode == 137, killed.stderr[-2000:]
    for step in steps:
        done = lakecart(crashed, *step)
        assert done.returncode == 0, done.stderr[-2000:]

    for table in (tables.BRONZE_EVENTS, tables.SILVER_EVENTS, tables.QUARANTINE_EVENTS):
        paths = [f"{root}/lake/{table.replace('.', '/')}" for root in (clean, crashed)]
        assert content_hash(spark, paths[0]) == content_hash(spark, paths[1]), table
