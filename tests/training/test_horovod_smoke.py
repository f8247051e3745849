"""Two real Horovod processes (horovodrun --gloo -np 2) train the retrieval model for one epoch on a
tiny training set and must report the same averaged loss."""

import json
import subprocess
from datetime import date, datetime, timedelta

import pytest

from lakecart import delta, tables
from lakecart.training.distributed import horovodrun_command


@pytest.fixture()
def tiny_training_set(spark, settings):
    rows, day = [], date(2026, 1, 1)
    for i in range(640):
        user, item = f"u{i % 40}", f"i{(i * 7) % 25}"
        split = "test" if i % 10 == 0 else "train"
        rows.append(
            (
                f"e{i}",
                user,
                item,
                f"c{(i * 7) % 25 % 5}",
                "product_view",
                "mobile",
                datetime(2026, 1, 2) + timedelta(minutes=i),
                day,
                split,
                float(i % 3),
                "retrieval_20260102",
            )
        )
    frame = spark.createDataFrame(
        rows,
        "event_id string, user_id string, item_id string, category string, event_type string, device string, "
        "event_time timestamp, event_date date, split string, user_activity_v1__views_7d double, dataset_id string",
    ).repartition(4)
    delta.replace_partitions(
        frame, tables.table_path(tables.TRAINING_RETRIEVAL, settings), "dataset_id", ["retrieval_20260102"]
    )
    items = spark.createDataFrame([(f"i{n}", f"c{n % 5}") for n in range(25)], "item_id string, category string")
    items.write.format("delta").save(tables.table_path(tables.SILVER_ITEMS, settings))
    users = spark.createDataFrame(
        [(f"u{n}", date(2026, 1, 2), 1) for n in range(40)], "user_id string, feature_date date, views_7d long"
    )
    users.write.format("delta").partitionBy("feature_date").save(
        tables.table_path("features.user_activity_v1", settings)
    )
    return settings


def test_two_gloo_workers_agree_on_the_averaged_loss(tiny_training_set, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "--dataset-id",
        "retrieval_20260102",
        "--as-of",
        "2026-01-02",
        "--run-dir",
        str(run_dir),
        "--epochs",
        "1",
        "--global-batch-size",
        "64",
    ]
    done = subprocess.run(
        horovodrun_command("lakecart.training.train_retrieval", args, 2), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rank0 = json.loads((run_dir / "loss-rank0.json").read_text())
    rank1 = json.loads((run_dir / "loss-rank1.json").read_text())
    assert len(rank0) == 1 and rank0 == pytest.approx(rank1, rel=1e-6)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["params"]["workers"] == 2
    assert set(metrics["test"]) == {"recall@10", "recall@50", "recall@100"}
    assert (run_dir / "retrieval.png").stat().st_size > 0


def test_shards_are_disjoint_and_cover_the_data(tiny_training_set):
    from lakecart.training.data import read_shard

    uri = tables.table_path(tables.TRAINING_RETRIEVAL, tiny_training_set)
    shards = [set(read_shard(uri, "retrieval_20260102", r, 2)["event_id"]) for r in range(2)]
    assert not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == 640
