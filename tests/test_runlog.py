"""The run log: failed Airflow task tries appended to meta.task_failures with delta-rs."""

from datetime import UTC, datetime

from deltalake import DeltaTable

from lakecart import tables
from lakecart.cli import main
from lakecart.runlog import REASON_LIMIT, TaskFailure, record


def test_failures_are_appended_with_their_try_and_a_bounded_reason(settings):
    at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    record(
        TaskFailure(
            dag_id="lakecart_pipeline",
            task_id="ingest_bronze",
            run_id="manual__1",
            try_number=1,
            state="up_for_retry",
            logical_date="2026-03-04T00:00:00+00:00",
            reason="  AirflowException: exit 1\nno raw files  ",
            recorded_at=at,
        ),
        settings,
    )
    # 2500 characters: the newest 1997 are kept behind "..." (2000 in all).
    long_reason = "x" * 500 + "y" * 2000
    record(
        TaskFailure(
            dag_id="lakecart_backfill",
            task_id="process_day",
            run_id="manual__2",
            map_index=3,
            try_number=3,
            logical_date="",
            reason=long_reason,
            recorded_at=at,
        ),
        settings,
    )
    rows = DeltaTable(tables.table_path(tables.TASK_FAILURES, settings)).to_pandas().sort_values("try_number")
    first, last = rows.to_dict("records")
    assert first["reason"] == "AirflowException: exit 1\nno raw files"
    assert (first["map_index"], first["state"]) == (-1, "up_for_retry")
    assert first["logical_date"] == "2026-03-04T00:00:00+00:00"
    assert (last["map_index"], last["state"], last["logical_date"]) == (3, "failed", None)
    assert len(last["reason"]) == REASON_LIMIT == 2000 and last["reason"] == "..." + "y" * 1997
    assert list(rows.columns) == [
        "dag_id", "task_id", "run_id", "map_index", "try_number", "logical_date", "state", "reason", "recorded_at"
    ]  # fmt: skip


def test_the_cli_records_a_failure(settings, capsys):
    code = main(["runlog", "record", "--dag-id", "d", "--task-id", "t", "--run-id", "r", "--try-number", "2"])
    assert code == 0
    rows = DeltaTable(tables.table_path(tables.TASK_FAILURES, settings)).to_pandas()
    assert rows[["dag_id", "task_id", "run_id", "try_number", "state"]].to_dict("records") == [
        {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 2, "state": "failed"}
    ]
