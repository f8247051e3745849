"""lakecart daily pipeline: raw logs -> bronze -> silver -> validated feature tables.

Publishing validated features emits the Assets ``lakecart://features/user`` and
``lakecart://features/item``; the training DAG (``lakecart_training``) runs on them.

This file only wires tasks. Each task runs the ``lakecart`` command line in the pipeline
environment (``LAKECART_PIPELINE_BIN`` names its ``bin/``; otherwise ``lakecart`` must be on PATH),
exactly as a person would. Validation tasks gate what follows: when a suite fails, the task
fails and nothing downstream runs. Silver is write-audit-publish: new events are staged,
validated, and only then merged into ``silver.events``; order lines and user exports go through
the same steps inside one task each.

Params: ``lookback_days`` re-processes that many days before the logical date (backfill through
the same code path; ``lakecart_backfill`` runs a range of days one by one).

Every task retries twice with exponential back-off (all are idempotent), has an execution timeout,
and records each failed try in the lake's ``meta.task_failures`` (``lakecart runlog record``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag
from lakecart_common import DEFAULT_ARGS, STEPS, lakecart

from lakecart import contracts  # standard library only: the Airflow environment imports it too

DAY = "{{ ds }}"
LOOKBACK = "{{ params.lookback_days }}"

SILVER_EVENTS = Asset(contracts.SILVER_EVENTS_ASSET)
SILVER_ORDER_LINES = Asset(contracts.SILVER_ORDER_LINES_ASSET)
SILVER_USERS = Asset(contracts.SILVER_USERS_ASSET)
SILVER_PROMOTIONS = Asset(contracts.SILVER_PROMOTIONS_ASSET)
# Every view of the user side (user, user x category, session) and of the item side (item, category).
USER_FEATURES = Asset(contracts.USER_FEATURES_ASSET)
ITEM_FEATURES = Asset(contracts.ITEM_FEATURES_ASSET)
OUTLETS = {
    "publish_silver": [SILVER_EVENTS],
    "validate_user_features": [USER_FEATURES],
    "validate_item_features": [ITEM_FEATURES],
    "ingest_orders": [SILVER_ORDER_LINES],
    "ingest_users": [SILVER_USERS],
    "ingest_promotions": [SILVER_PROMOTIONS],
}


def step(task_id: str):
    """The daily step ``task_id`` for the logical date (and ``params.lookback_days`` before it)."""
    spec = STEPS[task_id]
    return lakecart(
        task_id,
        spec.command(DAY, LOOKBACK),
        doc_md=spec.doc,
        execution_timeout=spec.timeout,
        outlets=OUTLETS.get(task_id, []),
    )


@dag(
    dag_id="lakecart_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "lookback_days": Param(0, type="integer", minimum=0, description="also re-process this many earlier days"),
    },
    tags=["lakecart", "features"],
    doc_md=__doc__,
)
def lakecart_pipeline():
    catalog, bronze, validate_bronze, silver, validate_silver, publish_silver = map(
        step,
        ("ingest_catalog", "ingest_bronze", "validate_bronze", "ingest_silver", "validate_silver", "publish_silver"),
    )
    # Records new view versions and creates their tables; a view whose logic changed without a new
    # version fails here, before anything is materialised.
    apply_features, features = step("apply_feature_definitions"), step("materialize_features")
    validate_user, validate_item = step("validate_user_features"), step("validate_item_features")
    # Orders, user exports and promotions: bronze, both validations and publish in one command each.
    # --skip-if-absent: an imported interaction log brings none of them.
    # Order views read order lines, promotions and the catalogue; clickstream views read the orders too.
    others = [step(task_id) for task_id in ("ingest_orders", "ingest_users", "ingest_promotions")]

    (
        bronze
        >> validate_bronze
        >> silver
        >> validate_silver
        >> publish_silver
        >> apply_features
        >> features
        >> [validate_user, validate_item]
    )
    # Item features are published only with the catalogue they describe.
    [catalog, *others] >> apply_features


lakecart_pipeline()
