"""Ingest one tiny generated day and materialise one view, as the CLI runs them, in one process
(one Spark session): ``python -m tests.s3.steps TIMINGS.json`` on the lake the environment names
(``LAKECART_LAKE__ROOT``, local or ``s3a://``); each step's seconds go to TIMINGS.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 1, 1)
VIEW = "user_activity_v1"
WINDOW = ["--date", DAY.isoformat(), "--lookback-days", "0"]
STEPS: dict[str, list[str]] = {
    "bronze": ["ingest", "bronze", *WINDOW],
    "silver": ["ingest", "silver", *WINDOW],
    "validate_silver": ["validate", "staging.silver_events", "--date", DAY.isoformat()],
    "publish": ["ingest", "publish"],
    "features_apply": ["features", "apply"],
    "features_materialize": ["features", "materialize", *WINDOW, "--view", VIEW],
}


def tiny_spec():
    """One day of a few dozen users (no shape of the demo's is assumed by the checks)."""
    from lakecart.jobs.generate import GeneratorSpec

    return GeneratorSpec(users=30, items=15, categories=3, days=1, events_per_day=150, start_date=DAY)


def local_dir(timings: Path) -> Path:
    """The lake's local working folder (``lake.local_dir``) of the run that writes ``timings``."""
    return timings.with_name(f"{timings.stem}-work")


def launch(root: str, timings: Path, env_changes: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """The steps in a fresh process on the lake at ``root``; the caller's ``LAKECART_*`` are dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKECART_")}
    env.update(LAKECART_LAKE__ROOT=root, PYTHONPATH=str(REPO), **env_changes)
    if "://" in root:  # GX's local working copies: next to the timings, not in the shared <tmp>/lakecart-<uid>
        env.setdefault("LAKECART_LAKE__LOCAL_DIR", str(local_dir(timings)))
    # In the timings' folder: a step that still wrote to a path named after the lake root would make
    # a folder ``s3a:`` there (the s3 tier checks it does not), never in the checkout.
    return subprocess.run(
        [sys.executable, "-m", "tests.s3.steps", str(timings)],
        cwd=timings.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main(out: str) -> int:
    from lakecart import cli
    from lakecart.spark import get_spark

    timings, rc = {}, 0
    started = time.perf_counter()
    get_spark(app_name="lakecart-s3-steps").range(1).count()
    timings["session"] = time.perf_counter() - started
    for name, args in STEPS.items():
        started = time.perf_counter()
        rc = cli.main(args)
        timings[name] = time.perf_counter() - started
        if rc != 0:
            print(f"step {name} (lakecart {' '.join(args)}) exited {rc}", file=sys.stderr)
            break
    Path(out).write_text(json.dumps(timings))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if rc else 0)  # as the CLI does: no interpreter teardown racing native thread pools


if __name__ == "__main__":
    main(sys.argv[1])
