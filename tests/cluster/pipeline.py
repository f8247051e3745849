"""The pipeline's steps as the CLI runs them, all in one process (one Spark session, one driver
JVM, one set of executors on a cluster) so that a mode's whole run costs one start-up.

    python -m tests.cluster.pipeline TIMINGS.json STEP...

runs the named steps in order with the environment's settings (``LAKECART_LAKE__ROOT``,
``LAKECART_CONFIG`` or ``LAKECART_SPARK__MASTER``), writes each step's seconds to TIMINGS.json
(``session`` is the Spark session's start) and exits 1 at the first step that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

DAYS = 3
START = date(2026, 1, 1)
END = START + timedelta(days=DAYS - 1)
WINDOW = ["--date", END.isoformat(), "--lookback-days", str(DAYS - 1)]

VIEWS = ("user_activity_v1", "user_sequences_v1", "item_popularity_v1")  # what a retrieval set joins
# name -> the command's arguments, in the order of the daily DAG and then the training DAG.
STEPS: dict[str, list[str]] = {
    "bronze": ["ingest", "bronze", *WINDOW],
    "silver": ["ingest", "silver", *WINDOW],
    "validate_silver": ["validate", "staging.silver_events", "--date", END.isoformat()],
    "publish": ["ingest", "publish"],
    "catalog": ["ingest", "catalog"],
    "features_apply": ["features", "apply"],
    # The views of the retrieval set only (every view triples the step's time; all share one code path).
    "features_materialize": ["features", "materialize", *WINDOW, *[a for v in VIEWS for a in ("--view", v)]],
    "dataset_retrieval": [
        "dataset",
        "build",
        "retrieval",
        "--date",
        END.isoformat(),
        "--days",
        str(DAYS),
        "--test-days",
        "1",
    ],
}


def launch(
    root: Path, timings: Path, steps: Sequence[str], env_changes: dict[str, str], timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run ``steps`` in a fresh process (this module as a script) on the lake at ``root``: the caller's
    ``LAKECART_*`` settings are dropped and ``env_changes`` added; step seconds land in ``timings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKECART_")}
    env.update(LAKECART_LAKE__ROOT=str(root), **env_changes)
    return subprocess.run(
        [sys.executable, "-m", "tests.cluster.pipeline", str(timings), *steps],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


INGEST = ("bronze", "silver", "validate_silver", "publish")
FEATURES = ("catalog", "features_apply", "features_materialize")
DATASET = ("dataset_retrieval",)


def tiny_spec():
    """A few dozen users over three days, with a few planted defects (quarantine has rows)."""
    from lakecart.jobs.generate import GeneratorSpec

    return GeneratorSpec(
        users=40,
        items=20,
        categories=4,
        days=DAYS,
        events_per_day=200,
        start_date=START,
        defects={"malformed_json": 1, "duplicate_event": 1, "negative_price": 1},
    )


def run(steps: list[str]) -> dict[str, float]:
    from lakecart import cli
    from lakecart.spark import get_spark

    timings: dict[str, float] = {}
    started = time.perf_counter()
    get_spark(app_name="lakecart-cluster-steps").range(1).count()  # the session and its executors
    timings["session"] = time.perf_counter() - started
    for name in steps:
        started = time.perf_counter()
        rc = cli.main(STEPS[name])
        timings[name] = time.perf_counter() - started
        if rc != 0:
            raise SystemExit(f"step {name} (lakecart {' '.join(STEPS[name])}) exited {rc}")
    return timings


def main(argv: list[str]) -> int:
    out, steps = argv[0], argv[1:]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        print(f"unknown steps {unknown}; known: {list(STEPS)}", file=sys.stderr)
        return 2
    rc = 0
    try:
        with open(out, "w") as f:
            json.dump(run(steps), f)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        rc = 1
    finally:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # as the CLI does: no interpreter teardown racing native thread pools


if __name__ == "__main__":
    main(sys.argv[1:])
