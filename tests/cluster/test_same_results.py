"""The same code on a Spark standalone cluster and in local mode gives the same tables, row for row.

One tiny generated lake (3 days, 40 users) goes through the pipeline's steps twice, each time as
the CLI runs them (tests/cluster/pipeline.py): once with ``local[2]``, once on a two-worker cluster
(``LAKECART_CONFIG=infra/config/spark-standalone-local.yaml``). Both runs use the same lake root
in turn (its tables are moved aside after each), so paths, batch ids and input signatures agree
and only ``ingested_at`` (the wall clock) may differ. Tables are read back with delta-rs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.cluster import pipeline
from tests.cluster.compare import assert_same

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "infra" / "config" / "spark-standalone-local.yaml"
APP = "lakecart-cluster-steps"
STEPS = [*pipeline.INGEST, *pipeline.FEATURES, *pipeline.DATASET]


def _run(root: Path, timings: Path, env_changes: dict[str, str]) -> None:
    done = pipeline.launch(root, timings, STEPS, env_changes, timeout=480)
    assert done.returncode == 0, f"{env_changes}: exit {done.returncode}\n{done.stderr[-6000:]}"


@pytest.fixture(scope="module")
def lakes(cluster, tmp_path_factory):
    """The pipeline run locally and on the cluster over the same raw logs: (local tables, cluster tables)."""
    from lakecart.jobs.generate import generate

    cfg, _ = cluster
    work = tmp_path_factory.mktemp("same-results")
    root = work / "lake-root"
    generate(pipeline.tiny_spec(), root / "raw")
    out = {}
    for mode, env in (
        ("local", {"LAKECART_SPARK__MASTER": "local[2]"}),
        ("cluster", {"LAKECART_CONFIG": str(PROFILE), "LAKECART_SPARK__MASTER": cfg.master_url}),
    ):
        _run(root, work / f"{mode}-timings.json", env)
        out[mode] = (root / "lake").rename(work / f"{mode}-lake")
        shutil.rmtree(root / "reports", ignore_errors=True)
    return out["local"], out["cluster"]


def test_the_cluster_ran_the_jobs(cluster, lakes):
    from lakecart import cluster as spark_cluster

    info = spark_cluster.status(cluster[0])
    assert info["running"] and info["alive_workers"] == 2, info
    assert APP in info["completed_apps"], info
    work = Path(info["logs"]).parent
    # Each worker launched an executor for the run, with Delta's jars on its class path.
    for n in (1, 2):
        stderr = sorted(work.glob(f"work-{n}/app-*/*/stderr"))
        assert stderr, f"worker {n} ran no executor"
        assert "delta-spark" in stderr[0].read_text().split("\n", 1)[0]


def test_ingest_bronze_silver_publish_equal_local(lakes):
    local, cluster = lakes
    rows = {
        name: assert_same(local, cluster, name, ignore=("ingested_at",))
        for name in ("bronze/events", "bronze/ingest_ledger", "quarantine/events", "silver/events", "silver/items")
    }
    # Raw lines = silver + quarantined + duplicates (one planted a day).
    assert rows["bronze/events"] == rows["silver/events"] + rows["quarantine/events"] + pipeline.DAYS


def test_materialized_features_equal_local(lakes):
    local, cluster = lakes
    for view in pipeline.VIEWS:
        assert_same(local, cluster, f"features/{view}")
    # The same view-days recorded; their input signatures name silver's files (random names), not rows.
    assert_same(local, cluster, "meta/feature_materializations", ignore=("input_signature",))


def test_retrieval_training_set_equals_local(lakes):
    local, cluster = lakes
    assert_same(local, cluster, "training/retrieval")
    manifests = [json.loads(DeltaTable(str(lake / "training/manifests")).to_pandas()["manifest"][0]) for lake in lakes]
    assert (manifests[0]["rows"], manifests[0]["content_hash"]) == (manifests[1]["rows"], manifests[1]["content_hash"])


def test_horovod_trains_in_executors_on_the_cluster(cluster, lakes, tmp_path):
    """``lakecart train --on-spark``: the two Horovod workers are tasks on the cluster's two executors,
    reading the training set the cluster built."""
    cfg, _ = cluster
    root = tmp_path / "lake-root"
    root.mkdir()
    (root / "lake").symlink_to(lakes[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKECART_")}
    env.update(LAKECART_LAKE__ROOT=str(root), LAKECART_CONFIG=str(PROFILE), LAKECART_SPARK__MASTER=cfg.master_url)
    lakecart = str(Path(sys.executable).parent / "lakecart")
    train = ["train", "retrieval", "--date", pipeline.END.isoformat(), "--processes", "2", "--on-spark"]
    done = subprocess.run(
        [lakecart, *train, "--epochs", "1", "--global-batch-size", "128"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["test"]


def test_up_refuses_ports_in_use(cluster, tmp_path):
    from lakecart import cluster as spark_cluster

    cfg, _ = cluster
    other = spark_cluster.ClusterConfig(
        master_port=cfg.master_port,
        master_webui_port=cfg.master_webui_port,
        worker_webui_port=cfg.worker_webui_port,
        state_dir=tmp_path / "other",
    )
    with pytest.raises(spark_cluster.ClusterError, match=f"port in use on 127.0.0.1: master .* {cfg.master_port}"):
        spark_cluster.up(other)
    assert spark_cluster.up(cfg)["already_running"]  # the running one is left as it is
