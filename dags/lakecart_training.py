"""lakecart training: point-in-time training sets -> Horovod training -> gate -> results in the lake.

Runs when the pipeline DAG has published validated user *and* item features (Airflow Assets).
For each model: build its training set from the feature store, validate it (a failing suite stops
that model), train on N Horovod workers, evaluate against the published model and the task's
baselines on the same held-out data, and publish what the gate chose: the new model when it beats
the best baseline and is at least as good as the champion, else the best baseline's rows when no
model beats it. When the champion stays, ``lakecart evaluate`` exits 99, which marks the task
skipped, so publishing is skipped too. A model whose training set cannot teach it by design (ranking
on a shop that sends only orders: no product views) is skipped the same way: ``lakecart train`` says
why and exits 98, and that model's gate and publish are skipped while the others, the segments and
the online store run.

Models: ``retrieval`` (two-tower), ``ranking`` (DCN; re-ranks the *published* retrieval model's
candidates, so it trains after ``publish_retrieval``, or after the gate held retrieval back),
``churn``, ``demand`` (per item) and ``category_demand``.

The data date: ``params.date`` if given, else the logical date of a manual or ``dags test`` run,
else the logical date of the pipeline run whose asset event triggered this run.
This file only wires tasks; each task is the ``lakecart`` command line in the pipeline environment.

Tasks retry twice with exponential back-off (all are idempotent), except ``evaluate_<model>``: its
verdict is deterministic and its exit 99 ("the champion stays") is a skip, not a failure. Training
tasks run in the pool ``lakecart_training`` (one slot: one Horovod job at a time on a machine). Each
failed try is recorded in the lake's ``meta.task_failures``. **Unpause this DAG** (``lakecart airflow
up`` does): a paused DAG ignores the asset events, and the pipeline's runs never start training.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag
from lakecart_common import DEFAULT_ARGS, TRAINING_POOL, lakecart

from lakecart import contracts  # standard library only: the Airflow environment imports it too

# Asset-triggered runs have no logical date: take the producing pipeline run's.
DATA_DATE = (
    "{{ params.date or (logical_date | ds if logical_date is defined and logical_date else "
    "(triggering_asset_events.values() | first | last).source_dag_run.logical_date | ds) }}"
)
DAY = f"--date {DATA_DATE}"

USER_FEATURES = Asset(contracts.USER_FEATURES_ASSET)
ITEM_FEATURES = Asset(contracts.ITEM_FEATURES_ASSET)
# What each model publishes (downstream teams can schedule on these).
OUTPUTS = {model: Asset(uri) for model, uri in contracts.MODEL_OUTPUT_ASSETS.items()}
# `dataset build` flags per training set: the shared windows ...
_WINDOWS = {
    "retrieval": "--days {{ params.train_days }} --test-days {{ params.test_days }}",
    "churn": "--days {{ params.observation_days }} --every-days {{ params.every_days }} "
    "--horizon-days {{ params.churn_horizon_days }} --test-days {{ params.test_days }}",
    "demand": "--days {{ params.observation_days }} --every-days {{ params.every_days }} "
    "--horizons {{ params.demand_horizons }} --test-days {{ params.test_days }}",
}
_WINDOWS["category_demand"] = _WINDOWS["demand"]
# ... then the set's own flags (params.dataset_args), which win: argparse keeps a flag's last value.
DATASET_ARGS = {kind: f"{args} {{{{ params.dataset_args.get('{kind}', '') }}}}" for kind, args in _WINDOWS.items()}

TIMEOUTS = {
    "build": timedelta(minutes=45),
    "validate": timedelta(minutes=30),
    "train": timedelta(hours=3),
    "evaluate": timedelta(minutes=30),
    "publish": timedelta(minutes=45),
}


@dag(
    dag_id="lakecart_training",
    schedule=(USER_FEATURES & ITEM_FEATURES),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "date": Param(None, type=["null", "string"], format="date", description="data date (default: see above)"),
        "train_days": Param(14, type="integer", minimum=2, description="retrieval/ranking: days of interactions"),
        "test_days": Param(2, type="integer", minimum=1, description="newest days/observations held out"),
        "observation_days": Param(56, type="integer", minimum=1, description="churn/demand: span of observations"),
        "every_days": Param(7, type="integer", minimum=1, description="churn/demand: days between observations"),
        "churn_horizon_days": Param(28, type="integer", minimum=1, description="churn: days without a purchase"),
        "demand_horizons": Param("7,14,28", type="string", description="demand: days ahead, comma-separated"),
        "processes": Param(2, type="integer", minimum=1, description="Horovod workers per model"),
        "dataset_args": Param(
            {},
            type="object",
            description="extra `lakecart dataset build` flags per training set, after the defaults above (the "
            'last of a flag wins), e.g. {"category_demand": "--days 280 --every-days 2"}',
        ),
        "train_args": Param(
            {}, type="object", description='extra `lakecart train` flags per model, e.g. {"churn": "--epochs 5"}'
        ),
    },
    tags=["lakecart", "training"],
    doc_md=__doc__,
)
def lakecart_training():
    validated, trained, published = {}, {}, {}
    for model, kind in contracts.MODEL_TRAINING_SETS.items():
        if kind not in validated:  # ranking learns from the retrieval training set
            build = lakecart(
                f"build_{kind}_set",
                f"dataset build {kind} {DAY} {DATASET_ARGS[kind]}",
                doc_md=f"Build the point-in-time `{kind}` training set for the data date, with its manifest.",
                execution_timeout=TIMEOUTS["build"],
            )
            validated[kind] = lakecart(
                f"validate_{kind}_set",
                f"validate training.{kind} {DAY}",
                doc_md=f"Great Expectations on `training.{kind}`; a failing suite stops the models that learn from it.",
                execution_timeout=TIMEOUTS["validate"],
            )
            build >> validated[kind]
        train = lakecart(
            f"train_{model}",
            f"train {model} {DAY} --processes {{{{ params.processes }}}} "
            f"{{{{ params.train_args.get('{model}', '') }}}}",
            doc_md=f"Train `{model}` on `params.processes` Horovod workers; metrics, plots and TensorBoard logs "
            "go to the models folder. Runs in the one-slot pool `lakecart_training`.",
            execution_timeout=TIMEOUTS["train"],
            pool=TRAINING_POOL,
            # The set cannot teach the model by design (ranking on a shop that sends only orders): the
            # CLI says why and exits CANNOT_TRAIN_EXIT, a skip; its gate and publish are skipped with it.
            skip_on_exit_code=contracts.CANNOT_TRAIN_EXIT,
            # A model whose outputs read an upstream model's published artefacts (ranking: the
            # retrieval candidates) runs after the upstream's publish step, and also when the gate
            # held the upstream back (publish skipped): it then reads the previous champion's.
            trigger_rule="none_failed" if model in contracts.MODEL_UPSTREAM else "all_success",
        )
        evaluate = lakecart(
            f"evaluate_{model}",
            f"evaluate {model} {DAY}",
            doc_md=f"The publish gate for `{model}`: exit 0 publishes (the candidate, or the best baseline), exit "
            f"{contracts.GATE_HOLD_EXIT} skips publishing (the champion stays). Not retried: the verdict is "
            "deterministic.",
            execution_timeout=TIMEOUTS["evaluate"],
            skip_on_exit_code=contracts.GATE_HOLD_EXIT,
            retries=0,
        )
        publish = lakecart(
            f"publish_{model}",
            f"publish {model} {DAY}",
            doc_md=f"Write what the gate chose for `{model}` to the lake and its registry row; emits "
            f"`{contracts.MODEL_OUTPUT_ASSETS[model]}`.",
            execution_timeout=TIMEOUTS["publish"],
            outlets=[OUTPUTS[model]],
        )
        validated[kind] >> train >> evaluate >> publish
        trained[model], published[model] = train, publish
    for model, upstream in contracts.MODEL_UPSTREAM.items():
        for name in upstream:
            published[name] >> trained[model]
    online = lakecart(
        "materialize_online",
        f"online materialize {DAY}",
        doc_md="Copy the newest published, validated values (feature services, recommendations, churn scores, "
        "segments, most-popular items) into the online store, each namespace replaced atomically; `lakecart "
        "serve` answers from it. Runs after every publish step, also when a gate held a model back.",
        execution_timeout=TIMEOUTS["publish"],
        trigger_rule="none_failed",
    )
    segments = lakecart(
        "publish_segments",
        f"segments {DAY}",
        doc_md="Customer segments (k-means over recency, frequency, spend and the published user embeddings; k by "
        "silhouette) into `gold.user_segments` and `gold.segment_profiles`. Runs once retrieval and churn are "
        "published or held back (it reads the champions' embeddings and churn scores).",
        execution_timeout=TIMEOUTS["publish"],
        trigger_rule="none_failed",
    )
    [published["retrieval"], published["churn"]] >> segments
    [*published.values(), segments] >> online


lakecart_training()
