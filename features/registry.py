"""Plan changes between the feature views declared in code and those applied to the lake.

The registry (a Delta table, ``meta.feature_registry``) holds one row per view version ever applied:
its definition, a fingerprint of its logic, and whether it is active. Planning is pure: it compares
rows with code and says what ``apply`` would do. A view's version is part of its table name, so a
new version is a new table and the old one keeps working until it is removed on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lakecart.features.definitions import FeatureView

ACTIVE, REMOVED = "active", "removed"


@dataclass(frozen=True)
class Change:
    table: str  # features.<name>_v<version>
    action: str  # create | unchanged | blocked | remove | keep (applied, no longer in code, not removed)
    detail: str = ""


class PlanBlocked(ValueError):
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
        elif row["fingerprint"] != view.fingerprint():
            changes.append(
                Change(
                    table,
                    "blocked",
                    f"logic or schema changed since it was applied ({row['fingerprint']} -> {view.fingerprint()}): "
                    f"declare it as version {view.version + 1} so that {table} keeps its meaning",
                )
            )
        else:
            changes.append(Change(table, "unchanged"))
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


def check_applicable(changes: Sequence[Change]) -> None:
    blocked = [c for c in changes if c.action == "blocked"]
    if blocked:
        raise PlanBlocked("; ".join(f"{c.table}: {c.detail}" for c in blocked))


def render(changes: Sequence[Change]) -> str:
    symbol = {"create": "+", "remove": "-", "blocked": "!", "unchanged": "=", "keep": "~"}
    lines = [f"  {symbol[c.action]} {c.table:<40} {c.action:<10} {c.detail}" for c in changes]
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "remove", "blocked", "unchanged", "keep")}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    return "\n".join(["Feature registry plan:", *lines, f"({summary})"])
