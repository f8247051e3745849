"""Drift and volume checks of a new batch against a reference window of published data."""

from __future__ import annotations

import math
from collections.abc import Mapping

EPSILON = 1e-4  # stands in for an empty bin, so a bin seen on one side only is finite, not infinite


def population_stability_index(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """PSI = sum over bins of (cur% - ref%) * ln(cur% / ref%). Rule of thumb: < 0.1 stable,
    0.1-0.25 moderate shift, > 0.25 a major shift."""
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    if ref_total <= 0 or cur_total <= 0:
        raise ValueError("both distributions need at least one observation")
    psi = 0.0
    for key in set(reference) | set(current):
        r = max(reference.get(key, 0) / ref_total, EPSILON)
        c = max(current.get(key, 0) / cur_total, EPSILON)
        psi += (c - r) * math.log(c / r)
    return psi
