"""Benchmark: wall time of `make demo`.

  warm (default): environments already built, fresh lake (`--fresh`), repeated --repeat times; median.
  --cold:         a fresh `git clone` of this repository with an empty pip cache, so the run includes
                  creating both environments (downloads, Horovod compiled from source), then the demo.

Prints one JSON object and appends it to bench-results/demo_run.jsonl. Record results in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}); log: {log}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cold", action="store_true", help="fresh clone + empty pip cache: includes environment creation"
    )
    parser.add_argument("--repeat", type=int, default=1, help="warm runs to take the median of")
    args = parser.parse_args()

    results_dir = REPO / "bench-results"
    results_dir.mkdir(exist_ok=True)
    env = {**os.environ}
    if args.cold:
        workdir = Path(tempfile.mkdtemp(prefix="lakecart-cold-"))
        subprocess.run(["git", "clone", "-q", str(REPO), str(workdir / "repo")], check=True)
        cwd = workdir / "repo"
        env["PIP_CACHE_DIR"] = str(workdir / "pip-cache")  # nothing cached: a first run on a new machine
        runs = [timed(["make", "demo"], cwd, env, results_dir / "demo_cold.log")]
    else:
        cwd = REPO
        runs = [
            timed(["make", "demo", "DEMO_ARGS=--fresh"], cwd, env, results_dir / f"demo_warm_{i}.log")
            for i in range(args.repeat)
        ]
    result = {
        "benchmark": "demo_cold" if args.cold else "demo_warm",
        "seconds_median": round(statistics.median(runs), 1),
        "seconds_all": [round(r, 1) for r in runs],
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}",
        "date": datetime.now(UTC).date().isoformat(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }
    print(json.dumps(result))
    with (results_dir / "demo_run.jsonl").open("a") as out:
        out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
