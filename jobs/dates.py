"""Logical dates: jobs are told which day they process, they never ask the clock."""

from __future__ import annotations

from datetime import date, timedelta


def date_range(end: date, lookback_days: int = 0) -> list[date]:
    """The days ``end - lookback_days`` .. ``end`` inclusive, oldest first."""
    if lookback_days < 0:
        raise ValueError("lookback_days must be >= 0")
    return [end - timedelta(days=n) for n in range(lookback_days, -1, -1)]
