"""DAG integrity: every DAG imports cleanly, cheaply, and is wired as intended. Runs in the Airflow
environment, which has neither Spark nor TensorFlow: a DAG that imports them fails here."""

import json
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
    # Order views read order lines, promotions and the catalogue; clickstream views the orders too.
    *{(f"ingest_{s}", "apply_feature_definitions") for s in ("catalog", "orders", "users", "promotions")},
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
    # The online store takes what every model published, once they are all done.
    *{(f"publish_{model}", "materialize_online") for model in MODELS},
    # Segments read the published user embeddings and churn scores.
    ("publish_retrieval", "publish_segments"),
    ("publish_churn", "publish_segments"),
    ("publish_segments", "materialize_online"),
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


def test_the_online_store_is_refreshed_after_every_publish_even_a_held_back_one(dagbag):
    task = dagbag.dags["lakecart_training"].get_task("materialize_online")
    # A gate that holds a model back skips its publish: the store still gets the others' outputs.
    assert task.trigger_rule == "none_failed"
    assert "online materialize --date" in task.bash_command


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


def test_a_training_set_takes_its_own_build_flags_after_the_shared_defaults(dagbag):
    """A year-long shop gives category demand more observations than churn: per-set flags come last,
    so argparse's last occurrence of a flag wins; the other sets keep the shared defaults."""
    from airflow.sdk.definitions.context import Context

    dag = dagbag.dags["lakecart_training"]
    params = {**dag.params.dump(), "date": "2017-12-31"}
    params["dataset_args"] = {"category_demand": "--days 280 --every-days 2"}
    render = lambda task_id: " ".join(  # noqa: E731
        dag.get_task(task_id).render_template(dag.get_task(task_id).bash_command, Context(params=params)).split()
    )
    category, item = render("build_category_demand_set"), render("build_demand_set")
    assert category.endswith("--days 56 --every-days 7 --horizons 7,14,28 --test-days 2 --days 280 --every-days 2")
    assert item.endswith(
        "dataset build demand --date 2017-12-31 --days 56 --every-days 7 --horizons 7,14,28 --test-days 2"
    )


def test_orders_users_and_promotions_are_ingested_with_their_own_assets(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    for task_id, asset in (
        ("ingest_orders", "lakecart://silver/order_lines"),
        ("ingest_users", "lakecart://silver/users"),
        ("ingest_promotions", "lakecart://silver/promotions"),
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
import importlib.util, pathlib, sys
sys.path.append(str(pathlib.Path(sys.argv[1]).parent))  # as the dag-processor does (BundleDagBag)
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
heavy = ("pyspark", "tensorflow", "horovod", "great_expectations", "deltalake")
# Of lakecart, only the standard-library-only contracts module (and the package it is in).
light = ("lakecart", "lakecart.contracts")
loaded = [n for n in sys.modules if n.startswith("lakecart.") and n not in light]
print(",".join([name for name in heavy if name in sys.modules] + loaded))
"""


@pytest.mark.parametrize("dag_file", ["lakecart_pipeline.py", "lakecart_training.py", "lakecart_backfill.py"])
def test_parsing_imports_nothing_heavy(dag_file):
    out = subprocess.run(
        [sys.executable, "-c", PARSE_AND_LIST_HEAVY_MODULES, str(DAGS / dag_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""


# --- operations: retries, timeouts, the failure run log, pools, docs, the backfill ---------------------

ALL_DAGS = ("lakecart_pipeline", "lakecart_training", "lakecart_backfill")


def test_every_dag_and_task_is_documented_retried_timed_and_logs_failures(dagbag):
    from lakecart_common import record_failure

    assert set(ALL_DAGS) <= set(dagbag.dags)
    for dag_id in ALL_DAGS:
        dag = dagbag.dags[dag_id]
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.doc_md, where
            assert task.execution_timeout is not None and task.execution_timeout.total_seconds() > 0, where
            assert record_failure in _callbacks(task.on_failure_callback), where
            assert record_failure in _callbacks(task.on_retry_callback), where
            if task.task_id.startswith("evaluate_"):
                # exit 99 = the champion stays (a skip); any other verdict is deterministic: never retried
                assert task.retries == 0, where
            else:
                assert task.retries == 2, where
                assert task.retry_exponential_backoff == 2.0, where


def _callbacks(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def test_training_tasks_share_the_one_slot_pool(dagbag):
    dag = dagbag.dags["lakecart_training"]
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert {t for t, p in pools.items() if p == "lakecart_training"} == {f"train_{m}" for m in MODELS}
    assert {p for t, p in pools.items() if not t.startswith("train_")} == {"default_pool"}
    # `lakecart airflow up` creates the pool the DAG names, with one slot.
    from lakecart.airflow_ops import POOLS

    assert POOLS["lakecart_training"][0] == 1


def test_promotions_are_ingested_beside_orders(dagbag):
    dag = dagbag.dags["lakecart_pipeline"]
    task = dag.get_task("ingest_promotions")
    command = task.bash_command.split("lakecart ", 1)[1]
    assert command == "ingest promotions --date {{ ds }} --lookback-days {{ params.lookback_days }} --skip-if-absent"
    # Before the features: item_promotions_v2 reads silver.promotions.
    assert task.upstream_task_ids == set() and task.downstream_task_ids == {"apply_feature_definitions"}


def test_backfill_maps_one_instance_per_day_one_at_a_time(dagbag):
    dag = dagbag.dags["lakecart_backfill"]
    process = dag.get_task("process_day")
    assert type(process).__name__ == "MappedOperator"
    assert process.upstream_task_ids == {"days"}
    assert process.partial_kwargs["max_active_tis_per_dagrun"] == 1
    assert type(dag.timetable).__name__ == "NullTimetable"  # triggered by hand with start/end
    assert set(dag.params) == {"start", "end", "feature_history"}


def test_days_between_is_inclusive_oldest_first_and_bounded():
    from lakecart_backfill import days_between

    # 2026 is not a leap year: Feb 27, Feb 28, Mar 1, Mar 2.
    assert days_between("2026-02-27", "2026-03-02") == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert days_between("2026-05-05", "2026-05-05") == ["2026-05-05"]
    with pytest.raises(ValueError, match="before start"):
        days_between("2026-05-05", "2026-05-04")
    with pytest.raises(ValueError, match="at most 366"):
        days_between("2026-01-01", "2027-01-02")  # 367 days


FAKE_LAKECART = """#!/usr/bin/env bash
# Stands in for the pipeline environment's CLI: records its arguments, exits where told (default 1).
echo "$*" >> "$FAKE_LAKECART_LOG"
if [ -n "${FAKE_LAKECART_FAIL:-}" ] && [[ "$*" == *"$FAKE_LAKECART_FAIL"* ]]; then exit "${FAKE_LAKECART_EXIT:-1}"; fi
"""


@pytest.fixture
def fake_lakecart(tmp_path, monkeypatch):
    """A `lakecart` in LAKECART_PIPELINE_BIN that records each call (one line of arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "lakecart"
    script.write_text(FAKE_LAKECART)
    script.chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("LAKECART_PIPELINE_BIN", str(bin_dir))
    monkeypatch.setenv("FAKE_LAKECART_LOG", str(log))
    return log


def test_backfill_ingests_each_day_then_computes_features_over_the_range(dagbag, fake_lakecart):
    from lakecart_backfill import DAY_STEPS, FEATURE_STEPS

    dag = dagbag.dags["lakecart_backfill"]
    assert dag.get_task("process_day").downstream_task_ids == {"apply_feature_definitions"}
    run = dag.test(run_conf={"start": "2026-02-27", "end": "2026-03-01"})
    assert run.state == "success"
    calls = fake_lakecart.read_text().splitlines()
    days = ["2026-02-27", "2026-02-28", "2026-03-01"]
    # 9 ingest steps per day (3 days), then the 4 feature steps once: 31 calls.
    assert len(DAY_STEPS) == 9 and len(FEATURE_STEPS) == 4 and len(calls) == 3 * 9 + 4
    # Airflow does not promise the order of mapped instances: each day's steps run together and in
    # the declared order, the days in any order.
    per_day = [calls[i : i + 9] for i in range(0, 27, 9)]
    dated = [{c.split("--date ")[1].split()[0] for c in day if "--date" in c} for day in per_day]
    assert all(len(d) == 1 for d in dated) and sorted(d.pop() for d in dated) == days
    for day in per_day:
        assert [c.split()[0:2] for c in day] == [s.arguments.split()[0:2] for s in DAY_STEPS]
    assert not any("features" in c for c in calls[:27])
    # Then the features over the whole range in one command: the end date and 2 days before it.
    # By default only the views a training set joins get the earlier days (the others the end day).
    assert calls[27:29] == [
        "features apply",
        "features materialize --date 2026-03-01 --lookback-days 2 --history training",
    ]
    assert set(calls[29:]) == {
        "validate features.user_* features.session_* features.customer_* --date 2026-03-01 --lookback-days 2",
        "validate features.item_* features.category_* --date 2026-03-01 --lookback-days 2",
    }  # the patterns as the shell passes them, unquoted


def test_a_failed_try_is_recorded_through_the_cli(fake_lakecart):
    from types import SimpleNamespace

    import pendulum
    from lakecart_common import record_failure

    ti = SimpleNamespace(
        dag_id="lakecart_pipeline", task_id="ingest_bronze", run_id="manual__x", map_index=-1, try_number=1, max_tries=2
    )
    logical_date = pendulum.datetime(2026, 3, 4, tz="UTC")
    record_failure({"ti": ti, "logical_date": logical_date, "exception": RuntimeError("disk full")})
    ti.try_number = 3  # the last of 1 + 2 retries: Airflow gives up
    record_failure({"ti": ti, "logical_date": None, "exception": None})
    first, last = fake_lakecart.read_text().splitlines()
    assert first == (
        "runlog record --dag-id lakecart_pipeline --task-id ingest_bronze --run-id manual__x --map-index -1 "
        "--try-number 1 --logical-date 2026-03-04T00:00:00+00:00 --state up_for_retry --reason RuntimeError: disk full"
    )
    assert "--try-number 3 --logical-date  --state failed --reason no exception reported" in last


def test_the_reason_carries_the_last_lines_the_command_printed(tmp_path):
    from types import SimpleNamespace

    from lakecart_common import OUTPUT_LOGGER, _reason

    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=2, try_number=1)
    log = tmp_path / "dag_id=d" / "run_id=r" / "task_id=t" / "map_index=2" / "attempt=1.log"
    log.parent.mkdir(parents=True)
    printed = [f"line {n}" for n in range(1, 8)]  # 7 lines printed: the last 5 are kept
    records = [{"logger": "task", "event": "Running command"}]
    records += [{"logger": OUTPUT_LOGGER, "event": line} for line in printed]
    log.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    context = {"ti": ti, "exception": RuntimeError("Bash command failed")}
    expected = "RuntimeError: Bash command failed\nline 3\nline 4\nline 5\nline 6\nline 7"
    assert _reason(context, str(tmp_path)) == expected
    assert _reason(context, str(tmp_path / "elsewhere")) == "RuntimeError: Bash command failed"  # no log: no tail


def test_a_model_that_cannot_train_on_the_shop_is_skipped_and_the_others_still_publish(
    dagbag, fake_lakecart, monkeypatch
):
    """An orders-only shop: `lakecart train ranking` exits CANNOT_TRAIN_EXIT (no product views). The
    task is skipped, not failed, and so are ranking's gate and publish; every other model, the segments
    and the online store still run, and the run succeeds."""
    from lakecart import contracts

    dag = dagbag.dags["lakecart_training"]
    for model in MODELS:
        assert dag.get_task(f"train_{model}").skip_on_exit_code == [contracts.CANNOT_TRAIN_EXIT]
    assert contracts.CANNOT_TRAIN_EXIT not in (0, 1, contracts.GATE_HOLD_EXIT)
    monkeypatch.setenv("FAKE_LAKECART_FAIL", "train ranking")
    monkeypatch.setenv("FAKE_LAKECART_EXIT", str(contracts.CANNOT_TRAIN_EXIT))
    run = dag.test(run_conf={"date": "2026-03-04"})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    ranking = {"train_ranking", "evaluate_ranking", "publish_ranking"}
    assert {t for t, s in states.items() if s == "skipped"} == ranking
    assert {t for t, s in states.items() if s == "success"} == {t.task_id for t in dag.tasks} - ranking
    assert run.state == "success"
    calls = fake_lakecart.read_text().splitlines()
    assert not any(c.startswith(("evaluate ranking", "publish ranking")) for c in calls)
    assert "online materialize --date 2026-03-04" in calls and "segments --date 2026-03-04" in calls
