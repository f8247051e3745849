"""Where benchmark results go: one JSON line per run in ``bench-results/<name>.jsonl``, stamped
with the machine and the date (BENCHMARKS.md quotes them from there); and how the scripts that run
each side in its own process measure it (``become_subreaper``, ``measured``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def stamp() -> dict[str, str]:
    return {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}",
        "date": datetime.now(UTC).date().isoformat(),
    }


def append(name: str, summary: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    with path.open("a") as out:
        out.write(json.dumps(summary) + "\n")
    return path


def become_subreaper() -> None:
    """Orphans of a side (Spark's JVM outlives the Python driver by a moment, its Python workers the
    JVM) are re-parented to this process instead of init, so that ``measured`` reaps them and counts
    their CPU time too."""
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def measured(command: list[str], timeout_s: int) -> dict:
    """Run ``command``; wall time (until the command itself exits, to within 10 ms), exit code, CPU
    seconds (user + system of every process of its tree, from the kernel's accounting as each is
    reaped) and the peak resident memory of the tree (sampled every 0.25 s). Needs
    ``become_subreaper`` first and no other children of this process."""
    import signal

    import psutil

    me = psutil.Process()
    started = time.perf_counter()
    process = subprocess.Popen(command, start_new_session=True)
    peak, cpu, status, ended, timed_out = 0, 0.0, None, None, False
    sampled = -1.0
    while True:
        try:
            while (reaped := os.wait4(-1, os.WNOHANG))[0]:
                pid, code, usage = reaped
                cpu += usage.ru_utime + usage.ru_stime
                if pid == process.pid:
                    status, ended = code, time.perf_counter()
        except ChildProcessError:  # the command and all its orphans are gone
            break
        if time.perf_counter() - sampled >= 0.25:  # memory every 0.25 s; exits are seen within 10 ms
            sampled = time.perf_counter()
            try:
                peak = max(peak, sum(p.memory_info().rss for p in me.children(recursive=True)))
            except psutil.Error:
                pass
        late = ended is not None and time.perf_counter() - ended > 30  # an orphan that stays
        if time.perf_counter() - started > timeout_s or late:
            timed_out = timed_out or not late
            for p in me.children(recursive=True):
                p.send_signal(signal.SIGKILL)
        time.sleep(0.01)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": round((ended or time.perf_counter()) - started, 2),
        "exit_code": process.returncode,
        "cpu_seconds": round(cpu, 1),
        "peak_rss_gib": round(peak / 2**30, 2),
        "timed_out": timed_out,
    }
