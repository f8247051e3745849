"""The s3 tier's fixture: the project's own S3 server (lakecart/s3dev.py, what infra/s3/s3.sh runs)
on a free loopback port with its own state folder; always stopped. Its tests run only when asked for
(``make test-s3``, ``-m s3``): the default suite stays off the network and off a second server."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "s3: on a local S3-compatible server (run `make test-s3`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "s3" in (config.getoption("markexpr") or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("s3") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("s3")])
        items[:] = chosen


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A running server with a bucket: yields its state (endpoint, bucket, keys); stopped at the end."""
    from lakecart import s3dev
    from lakecart.cluster import free_port

    cfg = s3dev.ServerConfig(state_dir=tmp_path_factory.mktemp("s3-server"), port=free_port(), bucket="lake")
    try:
        yield s3dev.up(cfg)
    finally:
        recorded = s3dev._read_state(cfg)
        s3dev.down(cfg)
        assert recorded is None or not s3dev._alive(recorded["proc"]), "down left the server running"
        assert not s3dev.status(cfg)["running"]
