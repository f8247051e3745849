"""Run records (meta.job_runs) and `lakecart status`: what a job read and wrote, at which versions."""

from __future__ import annotations

import io
import json
from datetime import date

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakecart import runs, tables
from lakecart.cli import main
from lakecart.runlog import TaskFailure, record


def _append(name: str, n: int, settings) -> None:
    write_deltalake(tables.table_path(name, settings), pa.table({"k": list(range(n))}), mode="append")


def test_a_job_records_what_it_wrote_and_read_at_their_versions(settings):
    _append("silver.events", 4, settings)  # version 0
    _append("silver.events", 2, settings)  # version 1: what the job reads
    _append("gold.churn_scores", 1, settings)  # version 0: untouched by the job

    with runs.recorded("features materialize", date(2026, 3, 4), ["features", "materialize"], settings) as run:
        tables.table_path("silver.events", settings)  # located, not written: an input
        _append("features.user_activity_v2", 3, settings)  # new table, version 0
        _append("features.user_activity_v2", 5, settings)  # version 1
    assert run.status == "succeeded"

    frame = runs.read_runs(settings)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row.job, row.status, row.logical_date) == ("features materialize", "succeeded", date(2026, 3, 4))
    assert list(row.inputs) == [{"table": "silver.events", "version": 1}]
    # Two commits of a new table: versions -> 1, rows 3 + 5 (delta-rs's num_added_rows).
    assert list(row.outputs) == [
        {"table": "features.user_activity_v2", "version_before": None, "version": 1, "rows": 8}
    ]
    assert row.rows_written == 8 and row.seconds >= 0 and row.code_version


def test_a_failed_job_is_recorded_with_its_reason_and_the_error_still_raises(settings):
    with pytest.raises(RuntimeError, match="disk full"):
        with runs.recorded("ingest silver", date(2026, 3, 5), ["ingest", "silver"], settings):
            raise RuntimeError("disk full\nmore lines")
    row = runs.read_runs(settings).iloc[0]
    assert (row.status, row.error) == ("failed", "RuntimeError: disk full")
    assert list(row.outputs) == []


def test_the_cli_records_jobs_with_their_one_line_error_and_not_read_only_commands(settings, capsys):
    # A usage error stops `dataset build` before Spark starts: a failed run, recorded with its message.
    assert main(["dataset", "build", "nope", "--date", "2026-03-04"]) == 1
    assert main(["tables"]) == 0  # read-only: no record
    frame = runs.read_runs(settings)
    assert frame["job"].tolist() == ["dataset build"]
    assert frame.iloc[0]["status"] == "failed"
    assert frame.iloc[0]["error"].startswith("unknown training set kind 'nope'")
    assert frame.iloc[0]["argv"] == "dataset build nope --date 2026-03-04"


@pytest.mark.parametrize(
    ("operation", "metrics", "rows"),
    [
        ("WRITE", {"numOutputRows": "5", "numFiles": "1"}, 5),  # Spark: metrics are strings
        ("MERGE", {"numTargetRowsInserted": "2", "numTargetRowsUpdated": "1", "numTargetRowsCopied": "9"}, 3),
        ("WRITE", {"num_added_rows": 7}, 7),  # delta-rs
        ("OPTIMIZE", {}, 0),
    ],
)
def test_rows_come_from_the_commit_metrics(operation, metrics, rows):
    assert runs._metric_rows(operation, metrics) == rows


def test_spark_merges_count_inserted_and_updated_rows(spark, settings):
    from lakecart.delta import merge_by_key

    path = tables.table_path("silver.users", settings)
    merge_by_key(spark.createDataFrame(pd.DataFrame({"user_id": ["a", "b"], "n": [1, 1]})), path, ["user_id"])
    with runs.recorded("ingest users", date(2026, 3, 6), ["ingest", "users"], settings):
        # b updated, c inserted: 2 rows written; a untouched.
        merge_by_key(spark.createDataFrame(pd.DataFrame({"user_id": ["b", "c"], "n": [2, 1]})), path, ["user_id"])
    outputs = list(runs.read_runs(settings).iloc[0]["outputs"])
    assert outputs == [{"table": "silver.users", "version_before": 0, "version": 1, "rows": 2}]


def test_status_shows_runs_failures_and_each_tables_last_writer(settings, capfd):
    with runs.recorded("publish", date(2026, 3, 4), ["publish"], settings):
        _append("gold.churn_scores", 2, settings)
    with pytest.raises(ValueError):
        with runs.recorded("train", date(2026, 3, 5), ["train"], settings):
            raise ValueError("no training set")
    record(
        TaskFailure(dag_id="lakecart_pipeline", task_id="validate", run_id="r1", try_number=2, reason="gate\nclosed"),
        settings,
    )

    report = runs.status(settings)
    assert [r["job"] for r in report["runs"]] == ["train", "publish"]
    assert [r["job"] for r in report["failed_runs"]] == ["train"]
    assert [f["task_id"] for f in report["task_failures"]] == ["validate"]
    churn = next(t for t in report["tables"] if t["table"] == "gold.churn_scores")
    assert (churn["job"], churn["logical_date"], churn["version"], churn["rows"]) == ("publish", "2026-03-04", 0, 2)
    assert churn["age_hours"] is not None and churn["age_hours"] < 1

    out = io.StringIO()
    runs.render(report, out)
    text = out.getvalue()
    assert "task lakecart_pipeline.validate try 2" in text and "closed" in text
    assert "gold.churn_scores" in text and "no training set" in text

    assert main(["status", "--json"]) == 0
    printed = json.loads(capfd.readouterr().out)
    assert printed["runs_recorded"] == 2


def test_a_lake_that_cannot_be_listed_does_not_stop_the_job(settings, monkeypatch):
    def unreadable(root):
        raise OSError("access denied")

    monkeypatch.setattr(runs, "_versions", unreadable)
    with runs.recorded("ingest users", date(2026, 3, 6), ["ingest", "users"], settings) as run:
        _append("silver.users", 1, settings)  # the job itself works
    assert run.status == "succeeded"
    row = runs.read_runs(settings).iloc[0]
    assert (row.status, list(row.outputs)) == ("succeeded", [])
