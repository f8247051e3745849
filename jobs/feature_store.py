"""The feature store's I/O: the registry of applied views, table registration for SQL, and
point lookups for given keys as of a time (no JVM: delta-rs and pandas).

``plan``/``apply`` (``lakecart features plan|apply``) keep the registry in step with ``features/``;
materialisation refuses views that were not applied, so code and lake cannot drift apart silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.errors import LakecartError, UsageError
from lakecart.features import REGISTRY, VIEWS, FeatureView
from lakecart.features.definitions import FEATURE_DATE
from lakecart.features.registry import ACTIVE, REMOVED, Change, check_applicable, plan
from lakecart.storage import is_delta, open_delta

log = logging.getLogger(__name__)


class NotApplied(LakecartError, RuntimeError):
    """A view is materialised or read before ``lakecart features apply`` recorded it."""


def view_path(view: FeatureView, settings: Settings) -> str:
    return tables.table_path(view.qualified_name, settings)


def applied_rows(settings: Settings) -> list[dict]:
    """The registry's rows (delta-rs: planning needs no Spark)."""

    path = tables.table_path(tables.FEATURE_REGISTRY, settings)
    if not is_delta(path):
        return []
    return open_delta(path).to_pyarrow_table().to_pylist()


def plan_changes(settings: Settings, remove: Sequence[str] = (), views: Sequence[FeatureView] = VIEWS) -> list[Change]:
    return plan(views, applied_rows(settings), remove)


def apply(spark, settings: Settings, remove: Sequence[str] = (), views: Sequence[FeatureView] = VIEWS) -> list[Change]:
    """Create the tables of new views (empty, with their schema), record them, retire removed ones.
    Refuses the whole plan if any view is blocked; applying an unchanged plan changes nothing."""
    from pyspark.sql import functions as F

    changes = plan_changes(settings, remove, views)
    check_applicable(changes)
    by_table = {v.qualified_name: v for v in views}
    applied = {r["table"]: r for r in applied_rows(settings)}
    rows = []
    for change in changes:
        if change.action in ("create", "update"):  # update: the same logic under a newer fingerprint scheme
            view = by_table[change.table]
            path = view_path(view, settings)
            if not delta.table_exists(spark, path):
                empty = spark.createDataFrame([], view.schema)
                empty.write.format("delta").partitionBy(FEATURE_DATE).save(path)
            rows.append(
                (
                    change.table,
                    view.name,
                    view.version,
                    view.fingerprint(),
                    ACTIVE,
                    json.dumps(view.definition(), sort_keys=True),
                )
            )
        elif change.action == "remove":
            row = applied[change.table]
            rows.append((row["table"], row["name"], row["version"], row["fingerprint"], REMOVED, row["definition"]))
    if rows:
        frame = spark.createDataFrame(
            rows, "table string, name string, version int, fingerprint string, status string, definition string"
        ).withColumn("applied_at", F.current_timestamp())  # audit metadata, like bronze's ingested_at
        delta.merge_by_key(frame, tables.table_path(tables.FEATURE_REGISTRY, settings), ["table"])
    for change in changes:
        log.info("features apply: %s %s %s", change.action, change.table, change.detail)
    return changes


def require_applied(settings: Settings, views: Sequence[FeatureView]) -> None:
    """Fail unless every view is applied, active, and has the logic the registry recorded."""
    applied = {r["table"]: r for r in applied_rows(settings)}
    problems = []
    for view in views:
        row = applied.get(view.qualified_name)
        if row is None or row["status"] != ACTIVE:
            problems.append(f"{view.qualified_name} is not applied")
        elif row["fingerprint"] != view.fingerprint():
            update = [c for c in plan([view], [row]) if c.action == "update"]
            problems.append(
                f"{view.qualified_name} was recorded before a refactor or under an older fingerprint scheme "
                "(logic unchanged)"
                if update
                else f"{view.qualified_name} changed since it was applied"
            )
    if problems:
        raise NotApplied("; ".join(problems) + ": run `lakecart features plan`, then `lakecart features apply`")


def get_features(settings: Settings, view_name: str, keys: Sequence[str], as_of: datetime):
    """Each key's newest row of ``view_name`` that was known at ``as_of`` and still fresh (the
    view's time-to-live), as a pandas DataFrame; keys without one are listed with nulls. The same
    read (``training.data.features_as_of``) gives the models' outputs their features."""
    from lakecart.training.data import features_as_of

    view = REGISTRY.get(view_name.removeprefix("features."))
    if view is None:
        raise UsageError(f"unknown feature view {view_name!r}; known: {', '.join(sorted(REGISTRY))}")
    if len(view.entity.keys) != 1 and any("," not in k for k in keys):
        raise UsageError(
            f"{view.table_name} has keys {view.entity.keys}: give each key as {','.join(view.entity.keys)}"
        )
    path = view_path(view, settings)
    if not is_delta(path):
        raise NotApplied(f"{view.qualified_name} has no table at {path}: apply and materialise it first")
    wanted = [tuple(k.split(",")) for k in keys]
    rows = features_as_of(path, view.entity.keys, view.ttl, as_of, keys=wanted)
    # Nullable dtypes: a key without values must not turn the other keys' counts into floats.
    return rows.convert_dtypes()


def read_labels(path: str, key_columns: Sequence[str] = ()):
    """A label table (Parquet file or folder, or CSV) as Arrow. From CSV, ``key_columns`` are read
    as text, so ids such as ``01104905`` keep their leading zeros."""
    import pyarrow as pa

    if path.endswith(".csv"):
        from pyarrow import csv

        options = csv.ConvertOptions(column_types={k: pa.string() for k in key_columns})
        return csv.read_csv(path, convert_options=options)
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").to_table()


def historical_features(
    settings: Settings,
    labels,
    label_time: str,
    view_names: Sequence[str],
    threads: int | None = None,
    memory_limit: str | None = None,
):
    """Every row of ``labels`` (Arrow) with each view's features as they were known at its
    ``label_time`` (what Feast calls historical features): the point-in-time join on one machine
    (``features/pit_local.py``: DuckDB over the views' Delta tables, no JVM). Feature columns are
    named ``<view table>__<feature>``, as in training sets."""
    from lakecart.features import pit_local

    views = _located_views(settings, view_names)
    return pit_local.point_in_time_join(labels, label_time, views, threads=threads, memory_limit=memory_limit)


def historical_features_to_parquet(
    settings: Settings,
    labels,
    label_time: str,
    view_names: Sequence[str],
    out: str,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> dict:
    """``historical_features`` from a label file (a Parquet file or folder; or Arrow labels) to the
    Parquet file ``out``, DuckDB reading and writing both (``pit_local.join_to_parquet``): labels
    and answer larger than memory stay on disk. Returns the rows written and each view's share."""
    from lakecart.features import pit_local

    views = _located_views(settings, view_names)
    return pit_local.join_to_parquet(labels, label_time, views, out, threads=threads, memory_limit=memory_limit)


def _located_views(settings: Settings, view_names: Sequence[str]) -> list:
    """(view, its Delta table's location) per name; an unknown or unmaterialised view is an error."""
    views = []
    for name in view_names:
        view = REGISTRY.get(name.removeprefix("features."))
        if view is None:
            raise UsageError(f"unknown feature view {name!r}; known: {', '.join(sorted(REGISTRY))}")
        path = view_path(view, settings)
        if not is_delta(path):
            raise NotApplied(f"{view.qualified_name} has no table at {path}: apply and materialise it first")
        views.append((view, path))
    return views
