"""A model run on an object-store lake: the worker writes the run in its local working copy
(``lake.local_dir``, here the default ``<tmp>/lakecart-<uid>/<bucket>/<prefix>``) and copies it to the
bucket; the gate and publish, on a machine without that copy (it is deleted first), fetch it back.

The lake is the training tests' tiny churn set (tests/training/conftest.py), written to a bucket of
the project's S3 server with delta-rs; the model trains for 2 epochs in this process (one worker).
"""

from __future__ import annotations

import json
import shutil
import uuid

import pandas as pd
import pyarrow.fs as pafs
import pytest

from lakecart import storage, tables
from lakecart.s3dev import server_env
from tests.training.conftest import END, _manifest, churn_rows, feature_rows

pytestmark = pytest.mark.s3

DATASET = f"churn_{END:%Y%m%d}"


@pytest.fixture(scope="module")
def bucket_lake(s3_server):
    """The tiny churn lake in the bucket, under a prefix of its own; this process's readers and the
    settings point at it through the environment only."""
    import numpy as np
    from deltalake import write_deltalake

    from lakecart.config import LakeSettings, Settings, get_settings

    root = f"s3a://{s3_server['bucket']}/training-{uuid.uuid4().hex[:8]}"
    patch = pytest.MonkeyPatch()
    for name, value in server_env(s3_server).items():
        patch.setenv(name, value)
    patch.setenv("LAKECART_LAKE__ROOT", root)
    get_settings.cache_clear()
    settings = Settings(lake=LakeSettings(root=root))
    churn = churn_rows(np.random.default_rng(7))
    for name, frame, partitions in (
        ("training.churn", churn, ["dataset_id"]),
        ("features.user_activity_v2", feature_rows(churn, "user_id", "user_activity_v2"), None),
        ("features.user_sequences_v1", feature_rows(churn, "user_id", "user_sequences_v1"), None),
        ("training.manifests", pd.DataFrame([_manifest(DATASET, horizon_days=2)]), None),
    ):
        path = tables.table_path(name, settings)
        write_deltalake(path, frame, partition_by=partitions, storage_options=storage.storage_options(path))
    try:
        yield settings
    finally:
        shutil.rmtree(storage.default_local_dir(root), ignore_errors=True)
        patch.undo()
        get_settings.cache_clear()


def _files(uri: str) -> set[str]:
    """The files under ``uri`` (local or in the bucket), relative to it."""
    filesystem, base = storage.arrow_filesystem(uri)
    listed = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    return {i.path[len(base) + 1 :] for i in listed if i.type == pafs.FileType.File}


def test_a_run_on_a_bucket_lake_goes_to_the_bucket_and_is_published_from_it(bucket_lake):
    from lakecart.training import worker
    from lakecart.training.publish import evaluate_candidate, publish, run_root_for

    settings = bucket_lake
    lake_root = f"{settings.lake.models}/churn/{DATASET}"
    local_root = run_root_for(settings, "churn", DATASET)
    assert local_root == storage.default_local_dir(settings.lake.root) / "models" / "churn" / DATASET

    # As `lakecart train` runs it, but with the lake location as the run root (the worker maps it).
    flags = ["--epochs", "2", "--global-batch-size", "64", "--learning-rate", "0.003", "--seed", "1"]
    args = ["--model", "churn", "--dataset-id", DATASET, "--as-of", END.isoformat(), "--run-root", lake_root]
    assert worker.main([*args, *flags]) == 0
    version = storage.read_text(f"{lake_root}/latest")
    assert version and version.startswith("churn-20260110-")
    in_bucket = _files(f"{lake_root}/{version}")
    # Everything the run wrote is in the bucket: weights, state, metrics, plots, TensorBoard, outputs.
    assert in_bucket == _files(str(local_root / version))
    assert {"metrics.json", "state.json", f"outputs/{tables.CHURN_SCORES}.parquet"} <= in_bucket
    assert any(f.startswith("weights/") for f in in_bucket) and any(f.startswith("tensorboard/") for f in in_bucket)
    assert not [p for p in storage.default_local_dir(settings.lake.root).rglob("*") if "s3a:" in p.name]

    # Another machine: no working copy. The gate fetches the run and writes its verdict back.
    shutil.rmtree(storage.default_local_dir(settings.lake.root))
    evaluate_candidate(settings, "churn", DATASET)
    assert json.loads(storage.read_text(f"{lake_root}/{version}/evaluation.json"))["candidate"] == version

    shutil.rmtree(storage.default_local_dir(settings.lake.root))
    # --force: the candidate's own rows whatever the gate decided (a 2-epoch model may lose to a baseline).
    summary = publish(settings, "churn", DATASET, END, force=True)
    filesystem, path = storage.arrow_filesystem(f"{lake_root}/{version}/outputs/{tables.CHURN_SCORES}.parquet")
    with filesystem.open_input_file(path) as stream:
        rows = len(pd.read_parquet(stream))
    assert summary["tables"] == {tables.CHURN_SCORES: rows} and rows == 300  # one score per customer
    published = storage.open_delta(tables.table_path(tables.CHURN_SCORES, settings)).to_pandas()
    assert set(published["model_version"]) == {version} and len(published) == rows
    registry = storage.open_delta(tables.table_path(tables.MODEL_REGISTRY, settings)).to_pandas()
    assert registry.set_index("model_version").loc[version, "artifact_path"] == f"{lake_root}/{version}"

    # A second run (another learning rate, another version): its gate re-scores the champion, loaded
    # from the run folder the registry names in the bucket, on a machine without any working copy.
    flags[flags.index("0.003")] = "0.001"
    assert worker.main([*args, *flags]) == 0
    shutil.rmtree(storage.default_local_dir(settings.lake.root))
    second = evaluate_candidate(settings, "churn", DATASET)
    assert second["candidate"] != version and second["champion"] == version
    first = json.loads(storage.read_text(f"{lake_root}/{version}/metrics.json"))["test"]
    assert second["champion_test"]["pr_auc"] == pytest.approx(first["pr_auc"], abs=1e-6)
