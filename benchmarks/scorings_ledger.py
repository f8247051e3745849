"""How often each real-data protocol's test window has been scored, kept in a committed ledger
(``test_window_scorings.json`` next to this file), not next to a machine's cached data: a fresh clone
counts on from the number ``BENCHMARKS.md`` states instead of starting again at 1. A run counts
before it scores (a run that crashes while scoring still looked); commit the ledger with the results."""

from __future__ import annotations

import json
from pathlib import Path

LEDGER = Path(__file__).with_name("test_window_scorings.json")


def scorings(protocol: str, ledger: Path = LEDGER) -> int:
    """Times ``protocol``'s test window has been scored so far."""
    return int(_read(ledger).get(protocol, 0))


def count_scoring(protocol: str, ledger: Path = LEDGER) -> int:
    """Record one more scoring of ``protocol``'s test window; returns the count including it."""
    counts = _read(ledger)
    counts[protocol] = int(counts.get(protocol, 0)) + 1
    ledger.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    return counts[protocol]


def _read(ledger: Path) -> dict[str, int]:
    return json.loads(ledger.read_text()) if ledger.exists() else {}
