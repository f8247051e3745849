import json
from dataclasses import replace

import pytest

from lakecart.features import REGISTRY, user_activity_v1, user_activity_v2
from lakecart.features.definitions import Feature
from lakecart.features.registry import ACTIVE, REMOVED, PlanBlocked, check_applicable, plan


def applied(*views, status=ACTIVE):
    return [
        {
            "table": v.qualified_name,
            "name": v.name,
            "version": v.version,
            "fingerprint": v.fingerprint(),
            "status": status,
            "definition": json.dumps(v.definition(), sort_keys=True),
        }
        for v in views
    ]


def actions(changes):
    return {c.table: c.action for c in changes}


def test_a_first_plan_creates_every_view():
    assert set(actions(plan(list(REGISTRY.values()), [])).values()) == {"create"}


def test_applying_the_same_code_again_changes_nothing():
    views = [user_activity_v1, user_activity_v2]
    assert actions(plan(views, applied(*views))) == {
        "features.user_activity_v1": "unchanged",
        "features.user_activity_v2": "unchanged",
    }


def test_a_new_version_is_created_and_the_old_one_keeps_working():
    changes = plan([user_activity_v1, user_activity_v2], applied(user_activity_v1))
    assert actions(changes) == {"features.user_activity_v1": "unchanged", "features.user_activity_v2": "create"}
    assert "features.user_activity_v1 keep working" in changes[1].detail


def test_changing_logic_or_schema_without_a_new_version_is_blocked():
    recorded = applied(user_activity_v1)
    wider = replace(user_activity_v1, features=(*user_activity_v1.features, Feature("x", "bigint", "")))
    other_logic = replace(user_activity_v1, transform=lambda events, start, end: events, tiles=None)
    longer_ttl = replace(user_activity_v1, ttl=user_activity_v1.ttl * 2)
    for changed in (wider, other_logic, longer_ttl):
        changes = plan([changed], recorded)
        assert actions(changes) == {"features.user_activity_v1": "blocked"}
        assert "declare it as version 2" in changes[0].detail
        with pytest.raises(PlanBlocked):
            check_applicable(changes)
    # Descriptions and owners are metadata, not logic.
    reworded = replace(user_activity_v1, description="reworded", owner="someone else")
    assert actions(plan([reworded], recorded)) == {"features.user_activity_v1": "unchanged"}


def test_a_view_gone_from_code_is_kept_until_removed_on_purpose():
    recorded = applied(user_activity_v1, user_activity_v2)
    assert actions(plan([user_activity_v2], recorded))["features.user_activity_v1"] == "keep"
    changes = plan([user_activity_v2], recorded, remove=["features.user_activity_v1"])
    assert actions(changes)["features.user_activity_v1"] == "remove"
    # Removing a view that is still declared, or unknown, is refused.
    assert (
        actions(plan([user_activity_v2], recorded, remove=["features.user_activity_v2"]))["features.user_activity_v2"]
        == "blocked"
    )
    assert actions(plan([user_activity_v2], recorded, remove=["features.nope_v1"]))["features.nope_v1"] == "blocked"
    # A removed view is not planned again unless it comes back to code.
    assert "features.user_activity_v1" not in actions(
        plan([user_activity_v2], applied(user_activity_v1, status=REMOVED))
    )


def test_a_refactor_that_keeps_every_row_is_re_recorded_not_blocked():
    recorded = applied(user_activity_v1)
    other_code = replace(user_activity_v1, transform=lambda events, start, end: events, tiles=None)
    assert actions(plan([other_code], recorded)) == {"features.user_activity_v1": "blocked"}
    refactored = replace(other_code, refactored_from=(user_activity_v1.fingerprint(),))
    changes = plan([refactored], recorded)
    assert actions(changes) == {"features.user_activity_v1": "update"}
    assert "every row the same" in changes[0].detail
    check_applicable(changes)


def test_a_view_declares_a_transform_or_tiles():
    from lakecart.errors import ConfigError

    with pytest.raises(ConfigError, match="either a transform or tiles"):
        replace(user_activity_v1, transform=lambda events, start, end: events)
    with pytest.raises(ConfigError, match="either a transform or tiles"):
        replace(user_activity_v1, transform=None, tiles=None)
