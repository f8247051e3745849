"""What every lakecart DAG shares: how a task calls the ``lakecart`` CLI, retries, timeouts, the pool
of the training tasks, the failure run log, and the daily steps (the daily DAG and the backfill run
the same ones). Not a DAG itself (``.airflowignore`` keeps the dag-processor from parsing it as one).

Imports nothing from the pipeline environment: the failure callback shells out to its ``lakecart``
(``LAKECART_PIPELINE_BIN``), like every task.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator

log = logging.getLogger(__name__)

# Resolved by bash when the task runs, never at parse time.
LAKECART = 'PATH="${LAKECART_PIPELINE_BIN:+$LAKECART_PIPELINE_BIN:}$PATH" lakecart'
TRAINING_POOL = "lakecart_training"  # one slot, created by `lakecart airflow up`
# Every task is idempotent (partition-scoped Delta writes, a file ledger, publish behind the gate), so
# a failed try is simply run again: after 1, 2, 4 ... minutes, at most 15 minutes apart.
RETRIES = 2
RETRY_DELAY = timedelta(minutes=1)
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(minutes=15)
CALLBACK_TIMEOUT_S = 120


OUTPUT_LOGGER = "airflow.task.hooks.airflow.providers.standard.hooks.subprocess.SubprocessHook"
OUTPUT_LINES = 5


def _output_tail(ti, log_folder: str | None) -> list[str]:
    """The last lines the command printed (its error, usually), from the try's log file: Airflow's
    default log path, JSON lines, the Bash hook's lines. Empty when there is none to read."""
    if not log_folder:
        return []
    mapped = f"map_index={ti.map_index}/" if ti.map_index is not None and ti.map_index >= 0 else ""
    folder = os.path.join(log_folder, f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}")
    path = os.path.join(folder, f"{mapped}attempt={ti.try_number}.log")
    lines = []
    try:
        with open(path, errors="replace") as log_file:
            for line in log_file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("logger") == OUTPUT_LOGGER and str(record.get("event", "")).strip():
                    lines = [*lines[-OUTPUT_LINES + 1 :], str(record["event"]).strip()]
    except OSError:
        return []
    return lines


def _reason(context, log_folder: str | None = None) -> str:
    exc = context.get("exception")
    reason = f"{type(exc).__name__}: {exc}" if exc else "no exception reported (killed, timed out or marked failed)"
    tail = _output_tail(context["ti"], log_folder)
    return reason + ("\n" + "\n".join(tail) if tail else "")


def _log_folder() -> str | None:
    from airflow.configuration import conf  # loaded already in a task process; not at parse time

    return conf.get("logging", "base_log_folder", fallback=None)


def record_failure(context) -> None:
    """``on_failure_callback`` and ``on_retry_callback``: append the failed try to the lake's
    ``meta.task_failures`` through ``lakecart runlog record`` (the pipeline environment). A run log
    that cannot be written is logged, never raised: it must not change the task's outcome."""
    ti = context["ti"]
    logical_date = context.get("logical_date")
    state = "up_for_retry" if ti.try_number <= (ti.max_tries or 0) else "failed"
    bin_dir = os.environ.get("LAKECART_PIPELINE_BIN", "")
    lakecart = shutil.which("lakecart", path=os.pathsep.join(filter(None, [bin_dir, os.environ.get("PATH", "")])))
    if lakecart is None:
        log.error("run log not written: no `lakecart` on PATH or in LAKECART_PIPELINE_BIN=%r", bin_dir)
        return
    command = [
        lakecart,
        "runlog",
        "record",
        "--dag-id",
        ti.dag_id,
        "--task-id",
        ti.task_id,
        "--run-id",
        ti.run_id,
        "--map-index",
        str(ti.map_index if ti.map_index is not None else -1),
        "--try-number",
        str(ti.try_number),
        "--logical-date",
        logical_date.isoformat() if logical_date else "",
        "--state",
        state,
        "--reason",
        _reason(context, _log_folder()),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CALLBACK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("run log not written: %s", exc)
        return
    if done.returncode != 0:
        log.error("run log not written (exit %s): %s", done.returncode, done.stderr.strip()[-1000:])


# Every task of every lakecart DAG.
DEFAULT_ARGS = {
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": RETRY_BACKOFF,
    "max_retry_delay": MAX_RETRY_DELAY,
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": record_failure,
    "on_retry_callback": record_failure,
}


def lakecart(task_id: str, arguments: str, doc_md: str, **kwargs) -> BashOperator:
    """A task that runs ``lakecart <arguments>`` in the pipeline environment."""
    return BashOperator(task_id=task_id, bash_command=f"{LAKECART} {arguments}", doc_md=doc_md, **kwargs)


@dataclass(frozen=True)
class Step:
    """One daily step: its task id, the ``lakecart`` arguments for one day (``{day}``, and
    ``{lookback}`` where the command re-processes earlier days), and what it does."""

    task_id: str
    arguments: str
    doc: str
    timeout: timedelta = timedelta(minutes=30)

    def command(self, day: str, lookback: str | None = None) -> str:
        window = f"--date {day}" + (f" --lookback-days {lookback}" if lookback is not None else "")
        return self.arguments.format(day=f"--date {day}", window=window)


# The daily steps in the order the backfill runs them (the daily DAG wires the same steps in parallel
# where it can). ``{window}`` = the day and its lookback; ``{day}`` = the day alone.
DAILY_STEPS = (
    Step(
        "ingest_catalog",
        "ingest catalog --skip-if-absent",
        "Snapshot the item catalogue into `silver.items` (not tied to a day; skipped when none is sent).",
    ),
    Step(
        "ingest_bronze",
        "ingest bronze {window} --skip-if-absent",
        "Land the day's new raw event files in `bronze.events` (skipped for a shop that sends no clickstream).",
    ),
    Step(
        "validate_bronze",
        "validate bronze.events {window} --skip-if-absent",
        "Great Expectations on the landed files; a failing suite stops everything downstream.",
    ),
    Step(
        "ingest_silver",
        "ingest silver {window} --skip-if-absent",
        "Parse, deduplicate, quarantine; stage the batch for audit.",
    ),
    Step(
        "validate_silver",
        "validate staging.silver_events {day} --skip-if-absent",
        "Audit the staged batch (write-audit-publish).",
    ),
    Step(
        "publish_silver",
        "ingest publish --skip-if-absent",
        "Merge the validated batch into `silver.events` (emits its asset).",
    ),
    Step(
        "ingest_orders",
        "ingest orders {window} --skip-if-absent",
        "Order lines: bronze, both suites, publish to `silver.order_lines` (skipped when no orders are sent).",
    ),
    Step(
        "ingest_users",
        "ingest users {window} --skip-if-absent",
        "User exports: bronze, both suites, publish to `silver.users` (skipped when none are sent).",
    ),
    Step(
        "ingest_promotions",
        "ingest promotions {window} --skip-if-absent",
        "Promotions: bronze, both suites, publish to `silver.promotions` (skipped when none are sent).",
    ),
    Step(
        "apply_feature_definitions",
        "features apply",
        "Record new feature-view versions and create their tables; a view changed without a new version fails.",
    ),
    Step(
        "materialize_features",
        "features materialize {window}",
        "Compute the feature views for the day(s), skipping days whose inputs did not change.",
        timeout=timedelta(hours=1),
    ),
    Step(
        "validate_user_features",
        "validate 'features.user_*' 'features.session_*' 'features.customer_*' {window}",
        "Validate the user-side views; success emits `lakecart://features/user`.",
    ),
    Step(
        "validate_item_features",
        "validate 'features.item_*' 'features.category_*' {window}",
        "Validate the item-side views; success emits `lakecart://features/item`.",
    ),
)
STEPS = {step.task_id: step for step in DAILY_STEPS}
