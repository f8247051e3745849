"""How the benchmark scripts measure a side run in its own process (``bench_results.measured``)."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# measured() reaps every child of its process: run it in a process of its own, not in pytest's.
MEASURE = """
import json, sys
sys.path.insert(0, {benchmarks!r})
import bench_results
bench_results.become_subreaper()
print(json.dumps(bench_results.measured(sys.argv[1:], 60)))
"""


def measured(*command: str) -> dict:
    script = MEASURE.format(benchmarks=str(BENCHMARKS))
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_short_command_is_timed_to_its_exit_not_to_the_next_memory_sample():
    # A command that exits at once: its wall time is its start-up, far under the 0.25 s between
    # memory samples (that interval was the resolution of every short side's time).
    # The least of three runs: a busy machine may slow one start-up, not the resolution.
    runs = [measured(sys.executable, "-S", "-c", "pass") for _ in range(3)]
    assert all(r["exit_code"] == 0 and not r["timed_out"] for r in runs)
    assert min(r["seconds"] for r in runs) < 0.2, runs


def test_exit_code_cpu_and_memory_of_the_whole_tree_are_counted():
    # A child that burns CPU and holds 200 MB for half a second, its parent failing with code 3.
    child = (
        "import time; b = bytearray(200 * 2**20); t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}]); sys.exit(3)"
    result = measured(sys.executable, "-c", parent)
    assert result["exit_code"] == 3
    assert result["cpu_seconds"] >= 0.5
    assert result["peak_rss_gib"] >= 0.19
