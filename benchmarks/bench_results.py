"""Where benchmark results go: one JSON line per run in ``bench-results/<name>.jsonl``, stamped
with the machine and the date (BENCHMARKS.md quotes them from there)."""

from __future__ import annotations

import json
import os
import platform
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
