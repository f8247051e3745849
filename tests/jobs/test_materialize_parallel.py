"""Views materialised side by side: a failure stops the views not yet started, lets the running
ones finish (what they wrote is recorded by the caller) and is raised."""

import threading
import time
from types import SimpleNamespace

import pytest

from lakecart.jobs.materialize import _longest_first, _run_concurrently


def test_a_failure_stops_queued_views_and_waits_for_running_ones():
    started, finished = [], []
    b_running = threading.Event()

    def work(view):
        started.append(view.name)
        if view.name == "a":
            b_running.wait(5)
            time.sleep(0.01)
            raise RuntimeError("planted failure in a")
        if view.name == "b":
            b_running.set()
            time.sleep(0.3)  # still running when a fails
        finished.append(view.name)

    views = [SimpleNamespace(name=n) for n in "abcd"]
    with pytest.raises(RuntimeError, match="planted failure in a"):
        _run_concurrently(work, views, parallel=2)
    assert "b" in finished  # the running view finished
    # No queued view started once a failed, not even on a's own worker thread, which is free before
    # the caller hears of the failure (cancelling after the fact left that race open; CI lost it).
    assert sorted(started) == ["a", "b"]


def test_one_at_a_time_runs_in_order_and_stops_at_the_failure():
    started = []

    def work(view):
        started.append(view.name)
        if view.name == "b":
            raise RuntimeError("planted")

    with pytest.raises(RuntimeError):
        _run_concurrently(work, [SimpleNamespace(name=n) for n in "abc"], parallel=1)
    assert started == ["a", "b"]


def test_views_with_the_longest_windows_start_first():
    views = [SimpleNamespace(name=n, lookback_days=d) for n, d in (("a", 6), ("b", 89), ("c", 27), ("d", 89))]
    assert [v.name for v in _longest_first(views)] == ["b", "d", "c", "a"]
