"""DAG integrity: every DAG imports cleanly, cheaply, and is wired as intended. Runs in the Airflow
environment, which has neither Spark nor TensorFlow: a DAG that imports them fails here."""

import subprocess
import sys

import pytest

from .conftest import DAGS

EXPECTED_EDGES = {
    ("ingest_bronze", "validate_bronze"),
    ("validate_bronze", "ingest_silver"),
    ("ingest_silver", "validate_silver"),
    ("validate_silver", "publish_silver"),
    ("publish_silver", "apply_feature_definitions"),
    ("apply_feature_definitions", "materialize_features"),
    ("materialize_features", "validate_user_features"),
    ("materialize_features", "validate_item_features"),
    ("ingest_catalog", "validate_item_features"),
}
MODELS = {"retrieval": "retrieval", "ranking": "retrieval", "churn": "churn", "demand": "demand"}
MODELS["category_demand"] = "category_demand"
TRAINING_EDGES = {
    *{(f"build_{kind}_set", f"validate_{kind}_set") for kind in set(MODELS.values())},
    *{(f"validate_{kind}_set", f"train_{model}") for model, kind in MODELS.items()},
    *{(f"train_{model}", f"evaluate_{model}") for model in MODELS},
    *{(f"evaluate_{model}", f"publish_{model}") for model in MODELS},
    # Ranking re-ranks the *published* retrieval model's candidates: it runs after retrieval's
    # publish step, or after the gate held retrieval back (the previous champion's candidates).
    ("publish_retrieval", "train_ranking"),
}


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"lakecart_pipeline", "lakecart_training"} <= set(dagbag.dags)


def test_pipeline_edges(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == EXPECTED_EDGES


def test_training_edges(dagbag):
    dag = dagbag.dags["lakecart_training"]
    assert {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids} == TRAINING_EDGES


def test_a_model_runs_after_its_upstream_publishes_or_is_held_back(dagbag):
    from lakecart import contracts

    dag = dagbag.dags["lakecart_training"]
    assert contracts.MODEL_UPSTREAM == {"ranking": ("retrieval",)}
    for model, upstream in contracts.MODEL_UPSTREAM.items():
        train = dag.get_task(f"train_{model}")
        assert {f"publish_{u}" for u in upstream} <= train.upstream_task_ids
        # A skipped publish (the gate held the upstream back) lets it run; a failure does not.
        assert train.trigger_rule == "none_failed"
    assert {m: dag.get_task(f"publish_{m}").outlets[0].uri for m in MODELS} == contracts.MODEL_OUTPUT_ASSETS
    assert {m: k for m, k in MODELS.items()} == contracts.MODEL_TRAINING_SETS


def test_features_are_published_only_after_validation(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    for task_id, asset in (
        ("validate_user_features", "lakecart://features/user"),
        ("validate_item_features", "lakecart://features/item"),
    ):
        assert [o.uri for o in dag.get_task(task_id).outlets] == [asset]
        assert {"validate_bronze", "validate_silver"} <= dag.get_task(task_id).get_flat_relative_ids(upstream=True)
    # Consumers only ever see validated silver data (write-audit-publish).
    assert dag.get_task("publish_silver").upstream_task_ids == {"validate_silver"}
    assert dag.get_task("ingest_silver").upstream_task_ids == {"validate_bronze"}


def test_training_runs_on_both_feature_assets_and_publishes_behind_the_gate(dagbag):
    dag = dagbag.dags["lakecart_training"]
    # Scheduled on user AND item features (an asset condition, not a time table).
    assert {a.uri for a in dag.timetable.asset_condition.objects} == {
        "lakecart://features/user",
        "lakecart://features/item",
    }
    assert type(dag.timetable.asset_condition).__name__ == "AssetAll"
    for model, kind in MODELS.items():
        publish = dag.get_task(f"publish_{model}")
        assert publish.upstream_task_ids == {f"evaluate_{model}"}
        assert {f"validate_{kind}_set", f"train_{model}"} <= publish.get_flat_relative_ids(upstream=True)
        # `lakecart evaluate` exits 99 when the candidate is worse: the task is skipped, so is publishing.
        assert dag.get_task(f"evaluate_{model}").skip_on_exit_code == [99]
        assert publish.outlets


def test_the_data_date_of_an_asset_triggered_run_is_the_producing_runs(dagbag):
    """Asset-triggered runs have no logical date: the command renders the pipeline run's date."""
    from types import SimpleNamespace

    import pendulum
    from airflow.sdk.definitions.context import Context

    task = dagbag.dags["lakecart_training"].get_task("train_churn")
    produced = SimpleNamespace(source_dag_run=SimpleNamespace(logical_date=pendulum.datetime(2026, 3, 4, tz="UTC")))
    context = Context(
        params={"date": None, "processes": 2, "train_args": {"churn": "--epochs 3"}},
        triggering_asset_events={"lakecart://features/user": [produced]},
    )
    command = task.render_template(task.bash_command, context)
    assert command.endswith("train churn --date 2026-03-04 --processes 2 --epochs 3")
    context["logical_date"] = pendulum.datetime(2026, 5, 6, tz="UTC")  # a manual or `dags test` run
    assert "--date 2026-05-06 " in task.render_template(task.bash_command, context)
    context["params"]["date"] = "2026-07-08"  # an explicit date wins
    assert "--date 2026-07-08 " in task.render_template(task.bash_command, context)


def test_orders_and_users_are_ingested_with_their_own_assets(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    for task_id, asset in (
        ("ingest_orders", "lakecart://silver/order_lines"),
        ("ingest_users", "lakecart://silver/users"),
    ):
        task = dag.get_task(task_id)
        assert [outlet.uri for outlet in task.outlets] == [asset]
        assert task.bash_command.split("lakecart ", 1)[1].startswith(f"ingest {task_id.removeprefix('ingest_')} ")


def test_tasks_call_the_lakecart_cli_with_the_logical_date(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    for task in dag.tasks:
        assert "lakecart " in task.bash_command, task.task_id
        # Not tied to a day: the catalogue snapshot, publishing what was staged, recording definitions.
        if task.task_id not in ("ingest_catalog", "publish_silver", "apply_feature_definitions"):
            assert "{{ ds }}" in task.bash_command, task.task_id
    training = dagbag.dags["lakecart_training"]
    for task in training.tasks:
        assert " lakecart " in task.bash_command and "--date {{ params.date or" in task.bash_command, task.task_id
    assert "--processes {{ params.processes }}" in training.get_task("train_retrieval").bash_command


PARSE_AND_LIST_HEAVY_MODULES = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
heavy = ("pyspark", "tensorflow", "horovod", "great_expectations", "deltalake")
# Of lakecart, only the standard-library-only contracts module (and the package it is in).
light = ("lakecart", "lakecart.contracts")
loaded = [n for n in sys.modules if n.startswith("lakecart.") and n not in light]
print(",".join([name for name in heavy if name in sys.modules] + loaded))
"""


@pytest.mark.parametrize("dag_file", ["lakecart_pipeline.py", "lakecart_training.py"])
def test_parsing_imports_nothing_heavy(dag_file):
    out = subprocess.run(
        [sys.executable, "-c", PARSE_AND_LIST_HEAVY_MODULES, str(DAGS / dag_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
