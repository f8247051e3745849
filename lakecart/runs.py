"""Run records: every job leaves one row in ``meta.job_runs``, and ``lakecart status`` reads them.

A job is a CLI command that writes the lake (``ingest silver``, ``features materialize``, ``train``,
``publish``, ...: ``JOBS``). ``cli.main`` wraps it in ``recorded``; nothing in the jobs themselves
changes. What a row holds and where it comes from:

- ``job``, ``logical_date`` (its ``--date``), ``argv``, ``started_at``, ``seconds``, ``status``
  (``succeeded`` / ``failed`` / ``skipped``: the exit codes the training DAG maps to a skip,
  ``contracts.GATE_HOLD_EXIT`` and ``CANNOT_TRAIN_EXIT``), ``error`` (the one-line reason),
  ``code_version`` (lineage's commit or the package version), ``airflow`` (``dag.task.run_id`` when
  Airflow ran it: its ``AIRFLOW_CTX_*`` variables);
- ``outputs``: every lake table whose Delta version moved during the run, with the versions before
  and after and the rows its commits wrote (from each commit's ``operationMetrics``, so no data file
  is read);
- ``inputs``: the tables the job named (every lake location goes through ``tables.table_path``) that
  it did not write, at the version they had when it started.

The versions come from the ``_delta_log`` listings of the lake, on disk or in a bucket (pyarrow's
filesystem), taken before and after: a run record costs two listings and one small delta-rs append.
A record that cannot be written is a warning, never the job's failure. Jobs that run concurrently
against the same lake may see each other's commits among their outputs; the DAGs do not run two
writers of one table at a time (pools and the backfill's bounded concurrency).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa

from lakecart import tables
from lakecart.config import Settings, get_settings

log = logging.getLogger(__name__)

# Commands (their names as typed) that write the lake; each run of one is recorded.
JOBS = frozenset(
    {
        "import",
        "ingest bronze",
        "ingest silver",
        "ingest orders",
        "ingest users",
        "ingest promotions",
        "ingest publish",
        "ingest catalog",
        "validate",
        "features apply",
        "features materialize",
        "dataset build",
        "dataset rebuild",
        "train",
        "evaluate",
        "publish",
        "segments",
        "online materialize",
    }
)

_TABLE_REF = pa.struct([("table", pa.string()), ("version", pa.int64())])
_OUTPUT = pa.struct(
    [("table", pa.string()), ("version_before", pa.int64()), ("version", pa.int64()), ("rows", pa.int64())]
)
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("job", pa.string()),
        ("logical_date", pa.date32()),
        ("argv", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("seconds", pa.float64()),
        ("inputs", pa.list_(_TABLE_REF)),
        ("outputs", pa.list_(_OUTPUT)),
        ("rows_written", pa.int64()),
        ("code_version", pa.string()),
        ("host", pa.string()),
        ("airflow", pa.string()),
    ]
)
ERROR_LIMIT = 1000  # characters


@dataclass
class Run:
    """One job run, filled in by ``recorded``."""

    job: str
    logical_date: date | None
    argv: list[str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "running"
    error: str | None = None
    seconds: float = 0.0
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)

    def row(self) -> dict:
        from lakecart.lineage import code_version

        version = code_version()
        return {
            "run_id": self.run_id,
            "job": self.job,
            "logical_date": self.logical_date,
            "argv": " ".join(self.argv),
            "status": self.status,
            "error": self.error[:ERROR_LIMIT] if self.error else None,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "rows_written": sum(o["rows"] or 0 for o in self.outputs),
            "code_version": version["commit"] or version["package"],
            "host": socket.gethostname(),
            "airflow": _airflow_context(),
        }


def job_name(command: str, sub: str | None) -> str:
    """``ingest`` + ``silver`` -> ``ingest silver``; ``train`` -> ``train``."""
    return f"{command} {sub}" if sub else command


@contextmanager
def recorded(job: str, logical_date: date | None, argv: list[str], settings: Settings | None = None) -> Iterator[Run]:
    """Run the body as ``job``; append its record to ``meta.job_runs`` whether it succeeds or fails.
    ``error`` is set by the caller (the CLI knows the one-line reason); an exception marks it failed."""
    settings = settings or get_settings()
    run = Run(job=job, logical_date=logical_date, argv=argv)
    root = tables.lake_tables_root(settings)
    try:
        before: dict[str, int] | None = _versions(root)
    except Exception as exc:  # noqa: BLE001 - an unreadable lake is the job's to report, not the record's
        log.warning("run record of %s: could not list the lake's tables (%s); outputs not recorded", job, exc)
        before = None
    touched: set[str] = set()
    tables.TOUCHED.append(touched)
    start = time.perf_counter()
    try:
        yield run
        if run.status == "running":
            run.status = "succeeded"
    except BaseException as exc:
        run.status = "failed"
        run.error = run.error or f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        run.seconds = time.perf_counter() - start
        tables.TOUCHED.remove(touched)
        try:
            if before is not None:
                run.outputs = _outputs(root, before, _versions(root))
                written = {o["table"] for o in run.outputs}
                run.inputs = [
                    {"table": name, "version": before[name]} for name in sorted(touched - written) if name in before
                ]
            append(run, settings)
        except Exception as exc:  # noqa: BLE001 - the record is a by-product: never fail the job over it
            log.warning("could not write the run record of %s: %s", job, exc)


def append(run: Run, settings: Settings | None = None) -> None:
    from deltalake import write_deltalake

    from lakecart.storage import storage_options

    path = tables.table_path(tables.JOB_RUNS, settings)
    batch = pa.Table.from_pylist([run.row()], schema=SCHEMA)
    write_deltalake(path, batch, mode="append", storage_options=storage_options(path))


def _airflow_context() -> str | None:
    """``dag.task.run_id`` from the variables Airflow sets for a task's process."""
    parts = [os.environ.get(f"AIRFLOW_CTX_{k}") for k in ("DAG_ID", "TASK_ID", "DAG_RUN_ID")]
    return ".".join(parts) if all(parts) else None  # type: ignore[arg-type]


def _versions(root: str) -> dict[str, int]:
    """``layer.table`` -> the newest committed version, from the ``_delta_log`` listings alone."""
    from lakecart.storage import table_folders

    return {f"{f.layer}.{f.name}": f.version for f in table_folders(root) if f.version is not None}


def _outputs(root: str, before: dict[str, int], after: dict[str, int]) -> list[dict]:
    outputs = []
    for name, version in sorted(after.items()):
        previous = before.get(name, -1)
        if version == previous:
            continue
        uri = f"{root}/{name.replace('.', '/', 1)}"
        rows = sum(_rows_written(uri, v) for v in range(previous + 1, version + 1))
        outputs.append(
            {"table": name, "version_before": previous if previous >= 0 else None, "version": version, "rows": rows}
        )
    return outputs


def _rows_written(table_uri: str, version: int) -> int:
    """Rows one commit wrote (inserted or updated), from its ``commitInfo.operationMetrics``."""
    from lakecart.storage import arrow_filesystem

    filesystem, path = arrow_filesystem(f"{table_uri}/_delta_log/{version:020d}.json")
    try:
        with filesystem.open_input_stream(path) as stream:
            lines = stream.read().decode().splitlines()
    except (FileNotFoundError, OSError):
        return 0
    for line in lines:
        info = json.loads(line).get("commitInfo") if line.strip() else None
        if info is None:
            continue
        return _metric_rows(info.get("operation", ""), info.get("operationMetrics") or {})
    return 0


def _metric_rows(operation: str, metrics: dict) -> int:
    """Spark's metrics are strings (``numOutputRows``; MERGE: inserted plus updated); delta-rs writes
    ``num_added_rows``."""

    def get(key: str) -> int:
        return int(metrics.get(key) or 0)

    if operation == "MERGE":
        return get("numTargetRowsInserted") + get("numTargetRowsUpdated")
    return get("numOutputRows") or get("num_added_rows")


def read_runs(settings: Settings | None = None):
    """``meta.job_runs`` as pandas, newest first (empty when nothing ran yet)."""
    import pandas as pd

    from lakecart.storage import is_delta, open_delta

    path = tables.table_path(tables.JOB_RUNS, settings)
    if not is_delta(path):
        return pd.DataFrame(columns=SCHEMA.names)
    return open_delta(path).to_pandas().sort_values("started_at", ascending=False, ignore_index=True)


def status(settings: Settings | None = None, latest: int = 15) -> dict:
    """What ``lakecart status`` shows: the latest runs, the failures (job runs and Airflow task
    tries), and each table's freshness (version, last write, the job and logical date behind it)."""
    import pandas as pd

    from lakecart.storage import is_delta, open_delta
    from lakecart.summary import table_overview

    settings = settings or get_settings()
    runs = read_runs(settings)
    now = datetime.now(UTC)
    last_write: dict[str, dict] = {}
    for run in runs.itertuples():  # newest first: the first run that wrote a table is its last writer
        for output in run.outputs if run.outputs is not None else []:
            last_write.setdefault(output["table"], {"job": run.job, "logical_date": run.logical_date})
    freshness = []
    for table in table_overview(settings):
        if table.get("error"):
            freshness.append({"table": table["table"], "error": table["error"]})
            continue
        when = open_delta(table["path"]).history(1)[0].get("timestamp")
        written = datetime.fromtimestamp(when / 1000, UTC) if when else None
        writer = last_write.get(table["table"], {})
        freshness.append(
            {
                "table": table["table"],
                "version": table["version"],
                "rows": table["rows"],
                "last_write": written.isoformat(timespec="seconds") if written else None,
                "age_hours": round((now - written).total_seconds() / 3600, 1) if written else None,
                "job": writer.get("job"),
                "logical_date": _iso(writer.get("logical_date")),
            }
        )
    failures = runs[runs["status"] == "failed"].head(latest)
    task_failures = []
    path = tables.table_path(tables.TASK_FAILURES, settings)
    if is_delta(path):
        tries = open_delta(path).to_pandas().sort_values("recorded_at", ascending=False).head(latest)
        task_failures = [
            {**row, "recorded_at": row["recorded_at"].isoformat(timespec="seconds")} for row in tries.to_dict("records")
        ]
    return {
        "runs": [_run_summary(r) for r in runs.head(latest).to_dict("records")],
        "failed_runs": [_run_summary(r) for r in failures.to_dict("records")],
        "task_failures": task_failures,
        "tables": freshness,
        "runs_recorded": int(len(runs)),
        "as_of": pd.Timestamp(now).isoformat(timespec="seconds"),
    }


def _iso(value) -> str | None:
    return None if value is None or value != value else str(value)[:10]


def _run_summary(row: dict) -> dict:
    return {
        "job": row["job"],
        "logical_date": _iso(row["logical_date"]),
        "status": row["status"],
        "started_at": row["started_at"].isoformat(timespec="seconds"),
        "seconds": row["seconds"],
        "rows_written": row["rows_written"],
        "outputs": [f"{o['table']}@{o['version']}" for o in (row["outputs"] if row["outputs"] is not None else [])],
        "error": row["error"],
        "airflow": row["airflow"],
    }


def render(report: dict, out=sys.stdout) -> None:
    """``lakecart status`` for a person: three short tables."""

    def table(rows: list[dict], columns: list[str]) -> None:
        if not rows:
            print("  (none)", file=out)
            return
        cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
        print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
        for row in cells:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=out)

    print(f"latest runs ({report['runs_recorded']} recorded):", file=out)
    table(report["runs"], ["started_at", "job", "logical_date", "status", "seconds", "rows_written"])
    print("failures:", file=out)
    failed = [{**r, "what": f"job {r['job']}"} for r in report["failed_runs"]] + [
        {
            "started_at": f["recorded_at"],
            "what": f"task {f['dag_id']}.{f['task_id']} try {f['try_number']}",
            "logical_date": f["logical_date"],
            "error": f["reason"].splitlines()[-1] if f["reason"] else "",
        }
        for f in report["task_failures"]
    ]
    table(failed, ["started_at", "what", "logical_date", "error"])
    print("tables:", file=out)
    table(report["tables"], ["table", "version", "rows", "last_write", "age_hours", "job", "logical_date"])
