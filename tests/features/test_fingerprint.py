"""A view's fingerprint covers the code that actually runs: the transform, the project helpers it
calls (transitively) and the constants they read, so editing a helper without a new version is
blocked like editing the transform itself."""

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lakecart.features import (
    REGISTRY,
    item_demand_v2,
    user_activity_v1,
    user_activity_v2,
    user_sequences_v1,
)
from lakecart.features import user as user_module
from lakecart.features import windows as windows_module
from lakecart.features.registry import PlanBlocked, check_applicable, plan
from tests.features.test_registry import actions, applied


def edited_copy(module, old: str, new: str, tmp_path: Path):
    """The module loaded again (same name, so its functions count as project code) from a copy of
    its source in which ``old`` is replaced by ``new``; sys.modules keeps the original."""
    source = inspect.getsource(module)
    assert source.count(old) == 1, f"{old!r} must occur once in {module.__name__}"
    path = tmp_path / f"{module.__name__.rsplit('.', 1)[1]}_edited.py"
    path.write_text(source.replace(old, new))
    spec = importlib.util.spec_from_file_location(module.__name__, path)
    edited = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edited)
    return edited


def test_editing_a_helper_the_transform_calls_blocks_the_plan(tmp_path):
    from lakecart.features import item as item_module

    # The view's partials function's own source is untouched; only the helper it calls changes.
    edited = edited_copy(
        item_module,
        'F.avg(F.when(F.col("event_type") == "purchase", F.col("price")))',
        'F.max(F.when(F.col("event_type") == "purchase", F.col("price")))',
        tmp_path,
    )
    assert inspect.getsource(edited.daily_item_demand_partials) == inspect.getsource(
        item_module.daily_item_demand_partials
    )
    changed = edited.item_demand_v2
    assert changed.fingerprint() != item_demand_v2.fingerprint()
    changes = plan([changed], applied(item_demand_v2))
    assert actions(changes) == {"features.item_demand_v2": "blocked"}
    # The plan names the function whose code changed, not just "logic changed".
    assert "lakecart.features.item._demand_partials" in changes[0].detail
    assert "declare it as version 3" in changes[0].detail
    with pytest.raises(PlanBlocked, match="_demand_partials"):
        check_applicable(changes)


def test_editing_a_windows_helper_blocks_exactly_the_views_that_call_it(tmp_path, monkeypatch):
    # window_sum counts 1 instead of 0 on days outside the window: a different value, same version.
    edited = edited_copy(
        windows_module,
        "F.sum(F.when(in_window(days), F.col(metric)).otherwise(F.lit(0)))",
        "F.sum(F.when(in_window(days), F.col(metric)).otherwise(F.lit(1)))",
        tmp_path,
    )
    views = [user_activity_v1, user_activity_v2, user_sequences_v1]
    recorded = applied(*views)
    # user.py imported window_sum by name: the edit reaches combine_user_activity_v2 through it.
    monkeypatch.setattr(user_module, "window_sum", edited.window_sum)
    assert actions(plan(views, recorded)) == {
        # v1 sums through windows.windowed_sums, whose window_sum is still the original one
        "features.user_activity_v1": "unchanged",
        "features.user_activity_v2": "blocked",
        # the sequences never sum
        "features.user_sequences_v1": "unchanged",
    }


def test_a_constant_a_helper_reads_is_part_of_the_fingerprint(monkeypatch):
    recorded = applied(user_sequences_v1)
    # daily_user_partials_v2 keeps the RECENT_N newest interactions per day.
    monkeypatch.setattr(user_module, "RECENT_N", 5)
    assert actions(plan([user_sequences_v1], recorded)) == {"features.user_sequences_v1": "blocked"}


def test_a_feature_declaration_is_part_of_the_fingerprint(tmp_path):
    # cart_rate_28d's spec (the one place the column is computed) now divides 7-day counts.
    edited = edited_copy(user_module, '"carts_28d", "views_28d")', '"carts_7d", "views_7d")', tmp_path)
    changes = plan([edited.user_activity_v2], applied(user_activity_v2))
    assert actions(changes) == {"features.user_activity_v2": "blocked"}
    assert "feature cart_rate_28d" in changes[0].detail


def test_swapping_two_features_expressions_is_a_change(monkeypatch):
    # Both rates are the same lambda (windows.rate_feature) over other columns: swapping which
    # columns each divides leaves the set of lambdas as it was, not what each feature computes.
    spec = {f.name: f for f in user_module.USER_ACTIVITY_V2}
    swapped = tuple(
        replace(f, expr=spec["cart_to_purchase_rate_28d"].expr)
        if f.name == "cart_rate_28d"
        else replace(f, expr=spec["cart_rate_28d"].expr)
        if f.name == "cart_to_purchase_rate_28d"
        else f
        for f in user_module.USER_ACTIVITY_V2
    )
    monkeypatch.setattr(user_module, "USER_ACTIVITY_V2", swapped)
    changes = plan([replace(user_activity_v2, features=swapped)], applied(user_activity_v2))
    assert actions(changes) == {"features.user_activity_v2": "blocked"}
    assert "feature cart_rate_28d" in changes[0].detail and "feature cart_to_purchase_rate_28d" in changes[0].detail


def test_rewording_a_comment_or_docstring_is_not_a_new_version(tmp_path, monkeypatch):
    recorded = applied(user_activity_v2)
    edited = edited_copy(
        windows_module,
        '"""Sum of ``metric`` over the trailing ``days`` (0 when nothing happened)."""',
        '"""The trailing ``days``' + "'" + ' sum of ``metric``."""  # reworded',
        tmp_path,
    )
    monkeypatch.setattr(user_module, "window_sum", edited.window_sum)
    assert actions(plan([user_activity_v2], recorded)) == {"features.user_activity_v2": "unchanged"}


def test_a_registry_row_of_the_old_scheme_is_re_recorded_not_blocked():
    from lakecart.features.definitions import FINGERPRINT_SCHEME

    old_row = {
        "table": user_activity_v2.qualified_name,
        "name": user_activity_v2.name,
        "version": 2,
        # What the registry recorded for user_activity_v2 under scheme 1 (before f7dac08).
        "fingerprint": "39e4b375c4371794",
        "status": "active",
        # rows written before the scheme was recorded have none in their definition
        "definition": json.dumps({"name": "user_activity", "version": 2}),
    }
    changes = plan([user_activity_v2], [old_row])
    assert actions(changes) == {"features.user_activity_v2": "update"}
    assert f"fingerprint scheme 1 -> {FINGERPRINT_SCHEME}" in changes[0].detail
    check_applicable(changes)  # not blocked: apply records the new fingerprint
    # An old-scheme row whose recorded logic differs from the code is still blocked.
    stale = {**old_row, "fingerprint": "0123456789abcdef"}
    assert actions(plan([user_activity_v2], [stale])) == {"features.user_activity_v2": "blocked"}


def test_fingerprints_are_the_same_in_another_process():
    # Another hash seed reorders sets and dicts; the fingerprint must not depend on it.
    code = (
        "import json; from lakecart.features import REGISTRY; "
        "print(json.dumps({n: v.fingerprint() for n, v in REGISTRY.items()}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {n: v.fingerprint() for n, v in REGISTRY.items()}


def test_apply_re_records_a_view_applied_under_the_old_scheme(spark, settings):
    from pyspark.sql import functions as F

    from lakecart import delta, tables
    from lakecart.features.definitions import SCHEME_1_BEFORE_FEATURE_SPECS
    from lakecart.jobs import feature_store

    view = user_sequences_v1
    feature_store.apply(spark, settings, views=[view])
    # The row as scheme 1 wrote it: the old fingerprint, a definition without a scheme.
    old = spark.createDataFrame(
        [
            (
                view.qualified_name,
                view.name,
                view.version,
                SCHEME_1_BEFORE_FEATURE_SPECS[view.table_name],
                "active",
                "{}",
            )
        ],
        "table string, name string, version int, fingerprint string, status string, definition string",
    ).withColumn("applied_at", F.current_timestamp())
    delta.merge_by_key(old, tables.table_path(tables.FEATURE_REGISTRY, settings), ["table"])
    with pytest.raises(feature_store.NotApplied, match="older fingerprint scheme .*lakecart features apply"):
        feature_store.require_applied(settings, [view])
    assert actions(feature_store.apply(spark, settings, views=[view])) == {view.qualified_name: "update"}
    feature_store.require_applied(settings, [view])  # materialisation and training sets may run again
    assert actions(feature_store.plan_changes(settings, views=[view])) == {view.qualified_name: "unchanged"}
