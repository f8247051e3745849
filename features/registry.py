"""Plan changes between the feature views declared in code and those applied to the lake.

The registry (a Delta table, ``meta.feature_registry``) holds one row per view version ever applied:
its definition, a fingerprint of its logic, and whether it is active. Planning is pure: it compares
rows with code and says what ``apply`` would do. A view's version is part of its table name, so a
new version is a new table and the old one keeps working until it is removed on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lakecart.errors import LakecartError
from lakecart.features.definitions import FINGERPRINT_SCHEME, FeatureView, legacy_fingerprints

ACTIVE, REMOVED = "active", "removed"


@dataclass(frozen=True)
class Change:
    table: str  # features.<name>_v<version>
    # create | unchanged | blocked | remove | keep (applied, no longer in code, not removed) |
    # update (recorded under an older fingerprint scheme, or before a refactor that kept every row:
    # logic unchanged, apply re-records it)
    action: str
    detail: str = ""


class PlanBlocked(LakecartError, ValueError):
    """The plan cannot be applied: a view's logic changed without a new version."""


def plan(views: Sequence[FeatureView], applied: Iterable[dict], remove: Sequence[str] = ()) -> list[Change]:
    """``applied``: registry rows (``table``, ``version``, ``fingerprint``, ``status``).
    ``remove``: tables the operator asks to retire (they must be applied and gone from code)."""
    rows = {r["table"]: r for r in applied}
    in_code = {v.qualified_name: v for v in views}
    changes: list[Change] = []
    for table, view in in_code.items():
        row = rows.get(table)
        if table in remove:
            changes.append(Change(table, "blocked", "still declared in code: delete the definition before removing it"))
        elif row is None or row["status"] == REMOVED:
            others = sorted(t for t, r in rows.items() if r["name"] == view.name and r["status"] == ACTIVE)
            detail = f"new version; {', '.join(others)} keep working" if others else "new view"
            changes.append(Change(table, "create", detail))
        elif row["fingerprint"] == view.fingerprint():
            changes.append(Change(table, "unchanged"))
        elif row["fingerprint"] in view.refactored_from:
            changes.append(
                Change(
                    table,
                    "update",
                    f"code refactored since {row['fingerprint']}, every row the same (the view's refactored_from): "
                    "apply records the new fingerprint",
                )
            )
        elif recorded_scheme(row) < FINGERPRINT_SCHEME and row["fingerprint"] in legacy_fingerprints(view):
            changes.append(
                Change(
                    table,
                    "update",
                    f"fingerprint scheme {recorded_scheme(row)} -> {FINGERPRINT_SCHEME} (now covers the helpers "
                    "and constants the transform uses): logic unchanged, apply records the new fingerprint",
                )
            )
        else:
            changes.append(
                Change(
                    table,
                    "blocked",
                    f"logic or schema changed since it was applied ({row['fingerprint']} -> {view.fingerprint()}"
                    f"{changed_code(recorded_definition(row), view)}): "
                    f"declare it as version {view.version + 1} so that {table} keeps its meaning",
                )
            )
    for table, row in sorted(rows.items()):
        if table in in_code or row["status"] == REMOVED:
            continue
        if table in remove:
            changes.append(Change(table, "remove", "no longer materialised; its table stays readable"))
        else:
            changes.append(
                Change(table, "keep", "gone from code but still applied: pass --remove to retire it on purpose")
            )
    for table in remove:
        if table not in rows and table not in in_code:
            changes.append(Change(table, "blocked", "not in the registry"))
    return changes


def recorded_definition(row: dict) -> dict:
    """The definition a registry row recorded (``{}`` when it has none)."""
    definition = row.get("definition")
    return json.loads(definition) if isinstance(definition, str) else dict(definition or {})


def recorded_scheme(row: dict) -> int:
    """The fingerprint scheme a registry row (or a manifest's view entry) was recorded with; rows
    written before schemes were recorded are scheme 1."""
    scheme = row.get("fingerprint_scheme") or recorded_definition(row).get("fingerprint_scheme")
    return int(scheme) if scheme else 1


def changed_code(recorded: dict, view: FeatureView) -> str:
    """``; code changed: a.b, c.d`` naming what differs between the recorded code digests and the
    view's current ones; ``""`` when nothing was recorded (an older scheme) or the code is the same."""
    before = recorded.get("code")
    if not before:
        return ""
    now = view.code_digests()
    names = sorted(n for n in {*before, *now} if before.get(n) != now.get(n))
    return f"; code changed: {', '.join(names)}" if names else ""


def check_applicable(changes: Sequence[Change]) -> None:
    blocked = [c for c in changes if c.action == "blocked"]
    if blocked:
        raise PlanBlocked("; ".join(f"{c.table}: {c.detail}" for c in blocked))


def render(changes: Sequence[Change]) -> str:
    symbol = {"create": "+", "remove": "-", "blocked": "!", "unchanged": "=", "keep": "~", "update": "^"}
    lines = [f"  {symbol[c.action]} {c.table:<40} {c.action:<10} {c.detail}" for c in changes]
    counts = {a: sum(c.action == a for c in changes) for a in symbol}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    return "\n".join(["Feature registry plan:", *lines, f"({summary})"])
