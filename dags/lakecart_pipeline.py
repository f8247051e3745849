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
the same code path).
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset, Param, dag

from lakecart import contracts  # standard library only: the Airflow environment imports it too

# Resolved by bash when the task runs, never at parse time.
LAKECART = 'PATH="${LAKECART_PIPELINE_BIN:+$LAKECART_PIPELINE_BIN:}$PATH" lakecart'
DAY = "--date {{ ds }}"
WINDOW = DAY + " --lookback-days {{ params.lookback_days }}"

SILVER_EVENTS = Asset(contracts.SILVER_EVENTS_ASSET)
SILVER_ORDER_LINES = Asset(contracts.SILVER_ORDER_LINES_ASSET)
SILVER_USERS = Asset(contracts.SILVER_USERS_ASSET)
# Every view of the user side (user, user x category, session) and of the item side (item, category).
USER_FEATURES = Asset(contracts.USER_FEATURES_ASSET)
ITEM_FEATURES = Asset(contracts.ITEM_FEATURES_ASSET)


def lakecart(task_id: str, arguments: str, **kwargs) -> BashOperator:
    return BashOperator(task_id=task_id, bash_command=f"{LAKECART} {arguments}", **kwargs)


@dag(
    dag_id="lakecart_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    params={
        "lookback_days": Param(0, type="integer", minimum=0, description="also re-process this many earlier days"),
    },
    tags=["lakecart", "features"],
    doc_md=__doc__,
)
def lakecart_pipeline():
    catalog = lakecart("ingest_catalog", "ingest catalog")
    bronze = lakecart("ingest_bronze", f"ingest bronze {WINDOW}")
    validate_bronze = lakecart("validate_bronze", f"validate bronze.events {WINDOW}")
    silver = lakecart("ingest_silver", f"ingest silver {WINDOW}")
    validate_silver = lakecart("validate_silver", f"validate staging.silver_events {DAY}")
    publish_silver = lakecart("publish_silver", "ingest publish", outlets=[SILVER_EVENTS])
    # Records new view versions and creates their tables; a view whose logic changed without a new
    # version fails here, before anything is materialised.
    apply_features = lakecart("apply_feature_definitions", "features apply")
    features = lakecart("materialize_features", f"features materialize {WINDOW}")
    validate_user = lakecart(
        "validate_user_features",
        f"validate 'features.user_*' 'features.session_*' {WINDOW}",
        outlets=[USER_FEATURES],
    )
    validate_item = lakecart(
        "validate_item_features", f"validate 'features.item_*' 'features.category_*' {WINDOW}", outlets=[ITEM_FEATURES]
    )
    # Orders and user exports: bronze, both validations and publish in one command each.
    # --skip-if-absent: an imported interaction log brings no orders or user exports.
    lakecart("ingest_orders", f"ingest orders {WINDOW} --skip-if-absent", outlets=[SILVER_ORDER_LINES])
    lakecart("ingest_users", f"ingest users {WINDOW} --skip-if-absent", outlets=[SILVER_USERS])

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
    catalog >> validate_item


lakecart_pipeline()
