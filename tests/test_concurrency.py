"""Two `lakecart ingest` runs on one lake at once (two Airflow runs overlapping, or a person and the
scheduler): Delta's optimistic concurrency keeps the table intact; the write helpers retry a commit
conflict with back-off, and a run that still loses ends in one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lakecart.jobs.generate import GeneratorSpec, generate

CLI = [sys.executable, "-m", "lakecart.cli"]


def test_two_overlapping_bronze_runs_leave_what_one_run_leaves(tmp_path):
    root = tmp_path / "lake-root"
    manifest = generate(GeneratorSpec(users=20, items=10, categories=3, days=2, events_per_day=100), root / "raw")
    env = {**os.environ, "LAKECART_LAKE__ROOT": str(root), "LAKECART_SPARK__SHUFFLE_PARTITIONS": "2"}
    argv = [*CLI, "ingest", "bronze", "--date", "2026-01-02", "--lookback-days", "1"]
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    done = [(run.wait(timeout=600), *run.communicate()) for run in runs]

    codes = sorted(rc for rc, _, _ in done)
    assert codes in ([0, 0], [0, 1]), [err[-3000:] for _, _, err in done]
    for rc, _, err in done:
        assert "Traceback" not in err, err[-3000:]
        if rc == 1:  # the loser: one line naming the table and what to do
            last = err.strip().splitlines()[-1]
            assert last.startswith("lakecart ingest: error: bronze.") and "re-run" in last, err[-3000:]

    # A single run lands every raw line of both days once: the generator's count, 2 files in the ledger.
    bronze = DeltaTable(str(root / "lake" / "bronze" / "events")).to_pyarrow_table()
    assert bronze.num_rows == manifest["raw_lines"]
    assert pc.count_distinct(bronze["source_file"]).as_py() == 2
    ledger = DeltaTable(str(root / "lake" / "bronze" / "ingest_ledger")).to_pyarrow_table()
    assert sorted(ledger["status"].to_pylist()) == ["bronze", "bronze"]


def test_a_conflict_is_tried_again_and_a_run_that_keeps_losing_names_the_table(monkeypatch):
    from delta.exceptions import ConcurrentAppendException

    from lakecart import delta
    from lakecart.delta import ConcurrentWriteError, retry_conflicts

    monkeypatch.setattr(delta, "BACKOFF_S", 0.001)
    tries = []

    def loses_once():
        tries.append(1)
        if len(tries) == 1:
            raise ConcurrentAppendException("Files were added to partition [ingest_date=2026-01-01]")
        return "committed"

    assert retry_conflicts("/x/lake/bronze/events", loses_once) == "committed" and len(tries) == 2

    def always_loses():
        raise ConcurrentAppendException("Files were added")

    with pytest.raises(ConcurrentWriteError, match=r"^bronze\.events: another run kept committing .*re-run"):
        retry_conflicts("/x/lake/bronze/events", always_loses, attempts=3)


def test_other_errors_are_not_retried():
    from lakecart.delta import retry_conflicts

    tries = []

    def broken():
        tries.append(1)
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        retry_conflicts("/x/lake/bronze/events", broken)
    assert len(tries) == 1
