"""The cluster tier's fixture: a Spark standalone cluster (lakecart/cluster.py) on free loopback
ports with its own state folder, so it never meets a cluster someone else started; always stopped."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running two-worker cluster: yields its config and state; stops it (and checks so) at the end."""
    from lakecart import cluster as spark_cluster

    cfg = spark_cluster.ClusterConfig.on_free_ports(tmp_path_factory.mktemp("spark-cluster"))
    try:
        state = spark_cluster.up(cfg)
        yield cfg, state
    finally:
        recorded = spark_cluster._read_state(cfg)
        spark_cluster.down(cfg)
    procs = [recorded["master"], *recorded["workers"]] if recorded else []
    assert not [p for p in procs if spark_cluster._alive(p)], "down left cluster processes running"
    assert not spark_cluster.status(cfg)["running"]
