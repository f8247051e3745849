"""Real Horovod: ``horovodrun --gloo -np 2`` workers, each reading its own shard of the Delta
training set, through the same command line a person uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import END

# The same global batch, epochs, learning rate and seed for both runs; no early stopping, so both
# train exactly the same number of steps.
SAME_RUN = ["--epochs", "10", "--global-batch-size", "64", "--learning-rate", "0.003", "--param", "patience=null"]


def lakecart_train(model: str, processes: int, *args: str) -> dict:
    lakecart = str(Path(sys.executable).parent / "lakecart")
    done = subprocess.run(
        [lakecart, "train", model, "--date", END.isoformat(), "--processes", str(processes), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    from lakecart.config import get_settings
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.training.publish import run_dir_for
    from lakecart.training.tasks import TASKS

    run_dir = run_dir_for(get_settings(), model, dataset_id_for(END, TASKS[model].dataset_kind))
    return {**json.loads((run_dir / "metrics.json").read_text()), "run_dir": run_dir, "stderr": done.stderr}


@pytest.fixture(scope="module")
def one_and_two_workers(tiny_lake):
    return lakecart_train("churn", 1, *SAME_RUN), lakecart_train("churn", 2, *SAME_RUN)


def test_two_workers_report_the_same_averaged_loss_and_split_the_data(one_and_two_workers, tiny_lake):
    _, two = one_and_two_workers
    run_dir = two["run_dir"]
    rank0 = json.loads((run_dir / "history-rank0.json").read_text())
    rank1 = json.loads((run_dir / "history-rank1.json").read_text())
    assert len(rank0["loss"]) == 10 and rank0["loss"] == pytest.approx(rank1["loss"], rel=1e-6)
    # The same final weights on both workers: gradients were averaged every step. (Equal *reported*
    # losses alone prove nothing: the metric callback averages them even when workers diverge.)
    assert rank0["weights_l1"] == pytest.approx(rank1["weights_l1"], rel=1e-6)
    assert two["params"]["workers"] == 2
    # Disjoint shards: each worker saw about half of the training rows.
    assert two["rows_per_worker"] < 0.6 * two["train_rows"]


def test_two_workers_reach_the_quality_of_one_within_two_percent(one_and_two_workers):
    one, two = one_and_two_workers
    for metric in ("roc_auc", "pr_auc"):
        assert abs(two["test"][metric] - one["test"][metric]) <= 0.02 * one["test"][metric], metric
    assert one["model_version"] != two["model_version"]  # both runs kept, side by side


def test_training_logs_leave_out_tensorflows_harmless_import_errors(one_and_two_workers):
    for run in one_and_two_workers:
        assert "worker 0/" in run["stderr"]  # the workers' own log lines come through
        assert "Unable to register" not in run["stderr"]  # TF 2.15's CUDA plugins, on every import
        # Keras blaming the first batch's one-off callback work (Horovod's broadcast, TensorBoard)
        assert "is slow compared to the batch time" not in run["stderr"]


def test_the_launcher_drops_only_the_harmless_lines(capfd):
    from lakecart.training.distributed import run_quietly

    script = (
        "import sys; print('to stdout'); "
        "sys.stderr.write('E cuda_dnn.cc:9261] Unable to register cuDNN factory: Attempting to register\\n'"
        "'E cuda_fft.cc:607] Unable to register cuFFT factory: Attempting to register\\n'"
        "'E something.cc:1] a real error\\n'); sys.exit(3)"
    )
    assert run_quietly([sys.executable, "-c", script]) == 3
    out, err = capfd.readouterr()
    assert out == "to stdout\n"
    assert err == "E something.cc:1] a real error\n"


def test_the_same_trainer_runs_inside_spark_tasks(tiny_lake):
    """``horovod.spark.run``: two Spark tasks (local[2]) are the two Horovod workers."""
    run = lakecart_train("churn", 2, "--on-spark", "--epochs", "1", "--global-batch-size", "64")
    assert run["params"]["workers"] == 2
    assert (run["run_dir"] / "history-rank1.json").exists()


def test_executor_workers_get_the_settings_with_absolute_paths(tmp_path, monkeypatch):
    """On a cluster, executors neither inherit the driver's environment nor run in its folder: the
    workers read the default lake in their work folder unless the settings travel, paths absolute."""
    from lakecart.training.distributed import executor_env

    monkeypatch.chdir(tmp_path)
    env = executor_env(
        {
            "LAKECART_LAKE__ROOT": "data",
            "LAKECART_CONFIG": "conf/x.yaml",
            "LAKECART_SPARK__MASTER": "spark://h:7077",
            "HOME": "/root",
        }
    )
    assert env == {
        "LAKECART_LAKE__ROOT": f"{tmp_path}/data",
        "LAKECART_CONFIG": f"{tmp_path}/conf/x.yaml",
        "LAKECART_SPARK__MASTER": "spark://h:7077",
    }
    assert executor_env({"LAKECART_LAKE__ROOT": "s3a://shop-lake"})["LAKECART_LAKE__ROOT"] == "s3a://shop-lake"
