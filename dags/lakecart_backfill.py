"""lakecart backfill: the daily pipeline's steps for every day from ``params.start`` to ``params.end``.

One mapped task instance per day (dynamic task mapping over the dates), at most one running at a
time, so days are processed in date order: each runs the same ``lakecart`` commands as a
``lakecart_pipeline`` run for that day (bronze, validation, silver, publish, feature definitions,
features, feature validation, orders, users, promotions), one after the other, stopping at the
first that fails. The days are independent Airflow task instances: a failed day is retried (all
steps are idempotent), and once fixed it is re-run by clearing that one mapped instance.

Trigger it with ``{"start": "2026-01-01", "end": "2026-01-14"}``. It emits no feature assets (its
run has no data date of its own): afterwards, trigger ``lakecart_training`` with ``{"date": <end>}``.
Airflow's own ``airflow backfill create --dag-id lakecart_pipeline`` is the other way: one
``lakecart_pipeline`` run per day, in order (``max_active_runs=1``), each emitting its assets.
"""

from __future__ import annotations

from datetime import date, timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param, dag, task
from lakecart_common import DAILY_STEPS, DEFAULT_ARGS, LAKECART

MAX_DAYS = 366
# Each day's steps, in order, for the day in $LAKECART_DAY; `set -e` stops at the first failure.
DAY_SCRIPT = "set -euo pipefail\n" + "\n".join(
    f'echo "== {step.task_id} $LAKECART_DAY"\n{LAKECART} {step.command("$LAKECART_DAY")}' for step in DAILY_STEPS
)


def days_between(start: str, end: str) -> list[str]:
    """Every day from ``start`` to ``end`` (inclusive, YYYY-MM-DD), oldest first."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if last < first:
        raise ValueError(f"end {end} is before start {start}")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise ValueError(f"{count} days from {start} to {end}: at most {MAX_DAYS} per backfill run")
    return [(first + timedelta(days=n)).isoformat() for n in range(count)]


@dag(
    dag_id="lakecart_backfill",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "start": Param(type="string", format="date", description="first day to process (YYYY-MM-DD)"),
        "end": Param(type="string", format="date", description="last day to process, inclusive (YYYY-MM-DD)"),
    },
    tags=["lakecart", "features", "backfill"],
    doc_md=__doc__,
)
def lakecart_backfill():
    @task(doc_md="The days from `params.start` to `params.end`, oldest first, as each day's environment.")
    def days(params=None) -> list[dict[str, str]]:
        return [{"LAKECART_DAY": day} for day in days_between(params["start"], params["end"])]

    BashOperator.partial(
        task_id="process_day",
        bash_command=DAY_SCRIPT,
        append_env=True,
        # One day at a time: mapped instances are queued by map index, so days run oldest first.
        max_active_tis_per_dagrun=1,
        execution_timeout=timedelta(hours=2),
        doc_md="All daily steps for one day (`$LAKECART_DAY`), in order; stops at the first that fails.",
    ).expand(env=days())


lakecart_backfill()
