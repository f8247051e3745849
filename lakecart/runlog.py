"""The run log: Airflow task failures recorded in the lake (``meta.task_failures``).

The DAGs' ``on_failure_callback`` runs ``lakecart runlog record ...`` (the Airflow environment has
neither Spark nor delta-rs, so it shells out to the pipeline environment like every task does). One
row per failed try: the DAG, task, run, map index, try number, logical date (empty for
asset-triggered runs), whether Airflow retries it (``up_for_retry``) or gave up (``failed``), and the
reason Airflow gave. delta-rs writes it: no JVM in a callback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import write_deltalake

from lakecart import tables
from lakecart.config import Settings, get_settings

SCHEMA = pa.schema(
    [
        ("dag_id", pa.string()),
        ("task_id", pa.string()),
        ("run_id", pa.string()),
        ("map_index", pa.int32()),
        ("try_number", pa.int32()),
        ("logical_date", pa.string()),
        ("state", pa.string()),
        ("reason", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]
)
REASON_LIMIT = 2000  # characters: a traceback's last lines are kept, not a whole log


@dataclass(frozen=True, kw_only=True)
class TaskFailure:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    reason: str
    map_index: int = -1
    logical_date: str | None = None
    state: str = "failed"  # or "up_for_retry": the try failed and Airflow will run it again
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def record(failure: TaskFailure, settings: Settings | None = None) -> dict:
    """Append one failure to ``meta.task_failures`` (created on first use); return the row."""
    row = asdict(failure)
    reason = row["reason"].strip()
    row["reason"] = reason if len(reason) <= REASON_LIMIT else "..." + reason[-REASON_LIMIT + 3 :]
    row["logical_date"] = row["logical_date"] or None
    path = tables.table_path(tables.TASK_FAILURES, settings or get_settings())
    write_deltalake(path, pa.Table.from_pylist([row], schema=SCHEMA), mode="append")
    return row
