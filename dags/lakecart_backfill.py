"""lakecart backfill: the daily pipeline's steps for every day from ``params.start`` to ``params.end``.

Two parts, so that the result does not depend on the order Airflow runs mapped instances in (it
does not promise one):

1. ``process_day``: one mapped task instance per day (dynamic task mapping over the dates), at most
   one running at a time (``max_active_tis_per_dagrun=1``). Each runs the daily *ingest* steps of
   ``lakecart_pipeline`` for its day (catalogue, bronze, validation, silver, publish, orders, users,
   promotions), one after the other, stopping at the first that fails. These write that day's
   partitions only, so the days may land in any order; a failed day is retried (all steps are
   idempotent), and once fixed it is re-run by clearing that one mapped instance.
2. Once every day is in: ``apply_feature_definitions``, then ``materialize_features`` for the whole
   range in one command (``--date <end> --lookback-days <days - 1>``: the feature job computes the days
   oldest first, each window seeing every earlier day), then both feature validations. By default
   (``feature_history`` "training") only the views a training set joins get the earlier days; the
   others are computed for the end day (the daily runs carry them on); "all" computes every view
   for every day.

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
from lakecart_common import DAILY_STEPS, DEFAULT_ARGS, LAKECART, STEPS, lakecart

from lakecart import contracts  # standard library only: the Airflow environment imports it too

MAX_DAYS = 366
# Computed once over the whole range after every day is in; the rest runs per day.
FEATURE_STEPS = (
    "apply_feature_definitions",
    "materialize_features",
    "validate_user_features",
    "validate_item_features",
)
DAY_STEPS = tuple(step for step in DAILY_STEPS if step.task_id not in FEATURE_STEPS)
# Each day's steps, in order, for the day in $BACKFILL_DAY (not LAKECART_*: the settings refuse unknown
# LAKECART_ variables); `set -e` stops at the first failure.
DAY_SCRIPT = "set -euo pipefail\n" + "\n".join(
    f'echo "== {step.task_id} $BACKFILL_DAY"\n{LAKECART} {step.command("$BACKFILL_DAY")}' for step in DAY_STEPS
)
END = "{{ params.end }}"
LOOKBACK = "{{ ti.xcom_pull(task_ids='days') | length - 1 }}"
# The days before the end for the views a training set joins; the others for the end day alone.
FEATURE_HISTORY = "training"


def feature_command(task_id: str, end: str, lookback: str, history: str = "{{ params.feature_history }}") -> str:
    """A feature step's ``lakecart`` arguments over the range ending ``end``."""
    command = STEPS[task_id].command(end, lookback)
    return f"{command} --history {history}" if task_id == "materialize_features" else command


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
        "feature_history": Param(
            FEATURE_HISTORY,
            enum=list(contracts.FEATURE_HISTORY),
            description="training: the days before the end only for the views a training set joins (the others "
            "for the end day); all: every view for every day",
        ),
    },
    tags=["lakecart", "features", "backfill"],
    doc_md=__doc__,
)
def lakecart_backfill():
    @task(doc_md="The days from `params.start` to `params.end`, oldest first, as each day's environment.")
    def days(params=None) -> list[dict[str, str]]:
        return [{"BACKFILL_DAY": day} for day in days_between(params["start"], params["end"])]

    processed = BashOperator.partial(
        task_id="process_day",
        bash_command=DAY_SCRIPT,
        append_env=True,
        # One day at a time (they share staging tables); in whatever order Airflow picks.
        max_active_tis_per_dagrun=1,
        execution_timeout=timedelta(hours=2),
        doc_md="The daily ingest steps for one day (`$BACKFILL_DAY`), in order; stops at the first that fails.",
    ).expand(env=days())
    apply, materialize, validate_user, validate_item = (
        lakecart(
            task_id,
            feature_command(task_id, END, LOOKBACK),
            doc_md=STEPS[task_id].doc + " Over the whole range, once every day is in.",
            execution_timeout=STEPS[task_id].timeout * 4,
        )
        for task_id in FEATURE_STEPS
    )
    processed >> apply >> materialize >> [validate_user, validate_item]


lakecart_backfill()
