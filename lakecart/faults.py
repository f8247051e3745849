"""Crash points for recovery tests: ``LAKECART_CRASH_AT=<name>`` kills the process there, the way
a lost executor or an OOM-killed driver would (no cleanup, no exception handlers)."""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    if os.environ.get("LAKECART_CRASH_AT") == name:
        os._exit(137)
