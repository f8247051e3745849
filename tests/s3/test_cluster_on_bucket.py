"""The cluster tier on an object-store lake: the Spark standalone cluster runs the pipeline's steps
with the lake in a bucket of the project's S3 server, and every table equals local mode on local disk.

The cluster tier's steps (tests/cluster/pipeline.py: ingest, validation, publish, catalogue, feature
views, a retrieval training set through the columnar point-in-time plan, DuckDB inside executors) run
twice over the same raw logs: with ``local[2]`` on local disk, then on a two-worker cluster with
``LAKECART_LAKE__ROOT=s3a://lake/...``. The workers are started with the S3 server's ``AWS_*``
variables in their environment, which is how executors get credentials (never Spark's configuration).
Tables are read back from the bucket with delta-rs. Runs with ``make test-s3`` and ``make test-cluster``.
"""

from __future__ import annotations

import json
import os

import pytest

from lakecart import storage
from lakecart.s3dev import server_env
from tests.cluster import pipeline
from tests.cluster.compare import assert_same

pytestmark = [pytest.mark.s3, pytest.mark.cluster]

PROFILE = pipeline.REPO / "infra" / "config" / "spark-standalone-local.yaml"
STEPS = [*pipeline.INGEST, *pipeline.FEATURES, *pipeline.DATASET]
TABLES = (
    "bronze/events",
    "quarantine/events",
    "silver/events",
    "silver/items",
    *(f"features/{view}" for view in pipeline.VIEWS),
    "training/retrieval",
)


@pytest.fixture(scope="module")
def aws_env(s3_server):
    """The server's variables in this process's environment (the cluster's daemons inherit them)."""
    env = {k: v for k, v in server_env(s3_server).items() if k.startswith("AWS_")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def bucket_cluster(aws_env, tmp_path_factory):
    from lakecart import cluster as spark_cluster

    cfg = spark_cluster.ClusterConfig.on_free_ports(tmp_path_factory.mktemp("bucket-cluster"))
    try:
        yield cfg, spark_cluster.up(cfg)
    finally:
        spark_cluster.down(cfg)


@pytest.fixture(scope="module")
def lakes(s3_server, aws_env, bucket_cluster, tmp_path_factory):
    from lakecart.jobs.generate import generate

    cfg, _ = bucket_cluster
    work = tmp_path_factory.mktemp("cluster-bucket")
    local_root = work / "local-root"
    generate(pipeline.tiny_spec(), local_root / "raw")
    bucket_root = f"s3a://{s3_server['bucket']}/cluster"
    storage.copy_tree(str(local_root / "raw"), f"{bucket_root}/raw")
    timings = {}
    for mode, root, changes in (
        ("local", str(local_root), {"LAKECART_SPARK__MASTER": "local[2]"}),
        ("cluster-s3", bucket_root, {"LAKECART_CONFIG": str(PROFILE), "LAKECART_SPARK__MASTER": cfg.master_url}),
    ):
        done = pipeline.launch(root, work / f"{mode}.json", STEPS, {**changes, **aws_env}, timeout=1200)
        assert done.returncode == 0, f"{mode}: exit {done.returncode}\n{done.stderr[-6000:]}"
        timings[mode] = json.loads((work / f"{mode}.json").read_text())
    print("step seconds:", json.dumps(timings))
    return f"{local_root}/lake", f"{bucket_root}/lake"


def test_the_cluster_on_a_bucket_equals_local_mode_on_disk(lakes):
    local, bucket = lakes
    for name in TABLES:
        # ingested_at is the wall clock; source_file names the raw file's location (disk or bucket) and
        # batch_id is a digest of those locations.
        assert_same(local, bucket, name, ignore=("ingested_at", "source_file", "batch_id"))
    manifests = [
        json.loads(storage.open_delta(f"{lake}/training/manifests").to_pandas()["manifest"][0]) for lake in lakes
    ]
    assert manifests[0]["rows"] == manifests[1]["rows"]
    assert manifests[0]["content_hash"] == manifests[1]["content_hash"]


def test_the_run_records_in_the_bucket_name_the_steps(lakes):
    _, bucket = lakes
    runs = storage.open_delta(f"{bucket}/meta/job_runs").to_pandas()
    assert set(runs["status"]) == {"succeeded"}
    assert {"ingest silver", "features materialize", "dataset build"} <= set(runs["job"])
