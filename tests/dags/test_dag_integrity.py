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
    ("validate_user_features", "build_training_set"),
    ("validate_item_features", "build_training_set"),
    ("ingest_catalog", "build_training_set"),
    ("build_training_set", "validate_training_set"),
    ("validate_training_set", "train_retrieval"),
    ("train_retrieval", "publish_retrieval"),
}


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "lakecart_pipeline" in dagbag.dags


def test_pipeline_edges(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == EXPECTED_EDGES


def test_training_and_publishing_sit_behind_every_validation(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    upstream_of_train = dag.get_task("train_retrieval").get_flat_relative_ids(upstream=True)
    assert {
        "validate_bronze",
        "validate_silver",
        "validate_user_features",
        "validate_item_features",
        "validate_training_set",
    } <= upstream_of_train
    # Consumers only ever see validated silver data (write-audit-publish).
    assert dag.get_task("publish_silver").upstream_task_ids == {"validate_silver"}
    assert dag.get_task("ingest_silver").upstream_task_ids == {"validate_bronze"}


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
    assert "--processes {{ params.processes }}" in dag.get_task("train_retrieval").bash_command


PARSE_AND_LIST_HEAVY_MODULES = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
heavy = ("pyspark", "tensorflow", "horovod", "great_expectations", "deltalake", "lakecart")
print(",".join(name for name in heavy if name in sys.modules))
"""


def test_parsing_imports_nothing_heavy():
    out = subprocess.run(
        [sys.executable, "-c", PARSE_AND_LIST_HEAVY_MODULES, str(DAGS / "lakecart_pipeline.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
