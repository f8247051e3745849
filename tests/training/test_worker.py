"""The generic worker's command line and training loop: parameters are checked before anything is
hashed into a model version, and the per-epoch training metrics are the real ones."""

from __future__ import annotations

import pandas as pd
import pytest

from .test_trainers import train


def params_for(model: str, *argv: str, train_rows: int | None = None):
    from lakecart.training.tasks import TASKS
    from lakecart.training.worker import parse_args, train_params

    args = parse_args(
        ["--model", model, "--dataset-id", "x_20260110", "--as-of", "2026-01-10", "--run-root", "r", *argv]
    )
    return train_params(TASKS[model], args, train_rows)


def test_an_unknown_param_is_an_error_naming_the_known_ones():
    with pytest.raises(SystemExit, match=r"bogus.*embedding_dim.*hidden_layers.*patience"):
        params_for("churn", "--param", "bogus=1")
    # A known one is accepted, JSON-decoded, and recorded.
    assert params_for("churn", "--param", "hidden_layers=[8]").extra == {"hidden_layers": [8]}
    assert params_for("ranking", "--param", "deep_layers=[8]").extra == {"deep_layers": [8]}


@pytest.mark.parametrize("flag", ["--epochs", "--global-batch-size", "--learning-rate"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_zero_or_negative_sizes_are_rejected_not_replaced_by_defaults(flag, value):
    with pytest.raises(SystemExit, match=flag.lstrip("-").replace("-", "[-_ ]")):
        params_for("churn", flag, value)


def test_an_epoch_logs_the_real_training_auc(tiny_lake, tmp_path):
    metrics, _ = train(tiny_lake, "churn", tmp_path, epochs=2, global_batch_size=64, learning_rate=0.01)
    # The planted rule (inactive > 7 days churns) is learnt within an epoch: the AUC over the
    # epoch's training batches is well above chance, never the 0.0 of a metric nothing updates.
    assert len(metrics["history"]["auc"]) == 2
    assert all(auc > 0.6 for auc in metrics["history"]["auc"]), metrics["history"]["auc"]
    assert all(auc > 0.6 for auc in metrics["history"]["val_auc"]), metrics["history"]["val_auc"]


def test_a_run_writes_only_the_outputs_its_task_declares(tmp_path):
    from lakecart import tables
    from lakecart.training.tasks import TASKS
    from lakecart.training.worker import write_outputs

    retrieval = TASKS["retrieval"]
    frame = pd.DataFrame({"user_id": ["u1"]})
    assert write_outputs(retrieval, tmp_path, {tables.RECOMMENDATIONS: frame, "candidates": frame}) == {
        tables.RECOMMENDATIONS: 1,
        "candidates": 1,
    }
    with pytest.raises(ValueError, match=r"\['gold.churn_scores'\].*does not declare"):
        write_outputs(retrieval, tmp_path, {tables.CHURN_SCORES: frame})


def test_tasks_agree_with_the_contracts_the_dags_use():
    from lakecart import contracts
    from lakecart.training.tasks import TASKS

    assert {name: task.dataset_kind for name, task in TASKS.items()} == contracts.MODEL_TRAINING_SETS
    assert {name: task.upstream for name, task in TASKS.items() if task.upstream} == contracts.MODEL_UPSTREAM
    # What a model reads from its upstream is an artefact the upstream declares.
    assert all("candidates" in TASKS[up].artefacts for ups in contracts.MODEL_UPSTREAM.values() for up in ups)


def test_demand_grows_its_default_batch_with_the_set_and_a_given_batch_wins():
    from lakecart.training.tasks import TASKS
    from lakecart.training.worker import auto_batch

    demand = TASKS["demand"]
    # 92,448 rows, 10% held out: 83,203 fitted; 128 -> 650 steps, 256 -> 325, 512 -> 162.5 <= 200.
    assert params_for("demand", train_rows=92_448).global_batch_size == 512
    assert params_for("demand", train_rows=25_600).global_batch_size == 128  # 23,040 / 128 = 180 steps
    assert params_for("demand", train_rows=28_600).global_batch_size == 256  # 25,740 / 128 = 201 steps
    assert auto_batch(demand, 128, 10_000_000, 0.1) == demand.max_auto_batch  # capped
    assert params_for("demand", "--global-batch-size", "128", train_rows=92_448).global_batch_size == 128
    assert params_for("demand").global_batch_size == 128  # no manifest rows: the default
    # A task without a limit keeps its default at any size.
    assert params_for("churn", train_rows=10_000_000).global_batch_size == TASKS["churn"].defaults["global_batch_size"]
