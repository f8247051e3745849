"""Shared fixtures. Heavy imports happen inside fixtures so that tests/dags (run in the Airflow
environment, which has no Spark) can share this file."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long end-to-end tests, excluded from `make test` (run `make test-all`)")
    config.addinivalue_line("markers", "cluster: on a local Spark standalone cluster (run `make test-cluster`)")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from lakecart.config import Settings, SparkSettings
    from lakecart.spark import get_spark

    session = get_spark(
        Settings(spark=SparkSettings(master="local[2]", shuffle_partitions=2)), app_name="lakecart-tests"
    )
    yield session
    session.stop()


@pytest.fixture()
def in_process_cli(spark):
    """For a test that runs a ``lakecart`` command in this process: the command asks the session
    factory for a session, gets the suite's shared one and renames the job that every later Delta
    commit records (``lakecart.lineage``); put the suite's name back after the test."""
    key = "spark.databricks.delta.commitInfo.userMetadata"
    before = spark.conf.get(key)
    yield
    spark.conf.set(key, before)


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    """Settings with a fresh lake under tmp_path, also exported for subprocesses (CLI, horovodrun)."""
    from lakecart.config import LakeSettings, Settings, SparkSettings, get_settings

    monkeypatch.setenv("LAKECART_LAKE__ROOT", str(tmp_path / "lake-root"))
    get_settings.cache_clear()
    yield Settings(lake=LakeSettings(root=str(tmp_path / "lake-root")), spark=SparkSettings(shuffle_partitions=2))
    get_settings.cache_clear()
