"""Materialise feature views for a logical date, or backfill a date range: the same code path.

Each output day is written with a partition-scoped ``replaceWhere`` (idempotent). The run is
incremental: an output day is skipped when the view's logic and every silver partition its window
reads are the same as when the day was last written. Silver's partitions are compared by the data
files the Delta log lists for them (files are immutable, so any change to a day shows up), which
costs a read of the log, not of the data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.errors import LakecartError
from lakecart.features import REGISTRY, FeatureView
from lakecart.features.definitions import FEATURE_DATE
from lakecart.jobs.feature_store import require_applied, view_path

log = logging.getLogger(__name__)

__all__ = ["compute_view", "run_materialize", "view_path", "MaterializeReport", "NoSilverInput"]


class NoSilverInput(LakecartError, ValueError):
    """A day to materialise has no rows in silver: its features would say every user was inactive."""


@dataclass
class MaterializeReport:
    view: str
    written_days: list[str] = field(default_factory=list)
    skipped_days: list[str] = field(default_factory=list)
    rows: int = 0


def compute_view(view: FeatureView, events: DataFrame, start: date, end: date) -> DataFrame:
    """The view's transform over ``[start, end]``, reading only the history its windows need."""
    history_start = start - timedelta(days=view.lookback_days)
    scoped = events.where(F.col("event_date").between(F.lit(history_start), F.lit(end)))
    return view.transform(scoped, start, end).select(*view.columns)


def silver_partition_files(settings: Settings) -> dict[date, tuple[str, ...]]:
    """event_date -> the data files of that silver partition, from the Delta log (delta-rs)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    # pa.table: delta-rs returns an arro3 table; pyarrow takes it over the Arrow C interface.
    actions = pa.table(DeltaTable(tables.table_path(tables.SILVER_EVENTS, settings)).get_add_actions(flatten=True))
    files: dict[date, list[str]] = {}
    for path, day in zip(
        actions.column("path").to_pylist(), actions.column("partition.event_date").to_pylist(), strict=True
    ):
        files.setdefault(day if isinstance(day, date) else date.fromisoformat(str(day)), []).append(path)
    return {day: tuple(sorted(paths)) for day, paths in files.items()}


def input_signature(view: FeatureView, day: date, files: dict[date, tuple[str, ...]]) -> str:
    """What output ``day`` of ``view`` depends on: its logic and the silver files of its window."""
    digest = hashlib.sha256(view.fingerprint().encode())
    for n in range(view.lookback_days, -1, -1):
        source_day = day - timedelta(days=n)
        digest.update(f"{source_day}:{','.join(files.get(source_day, ()))};".encode())
    return digest.hexdigest()[:24]


def _recorded_signatures(settings: Settings, view: FeatureView) -> dict[date, str]:
    from deltalake import DeltaTable

    path = tables.table_path(tables.FEATURE_MATERIALIZATIONS, settings)
    if not DeltaTable.is_deltatable(path):
        return {}
    rows = DeltaTable(path).to_pyarrow_table(filters=[("view", "=", view.table_name)]).to_pylist()
    return {r[FEATURE_DATE]: r["input_signature"] for r in rows}


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into ``(first, last)`` ranges."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day - timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def run_materialize(
    spark: SparkSession,
    settings: Settings,
    start: date,
    end: date,
    views: Sequence[str] | None = None,
    force: bool = False,
) -> dict[str, MaterializeReport]:
    selected = [REGISTRY[name.removeprefix("features.")] for name in views] if views else list(REGISTRY.values())
    require_applied(settings, selected)
    events = spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings))
    files = silver_partition_files(settings)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    # A day without events is missing data (not published yet, or its batch failed its gate), not a
    # day nobody shopped: refuse before writing anything rather than publish "inactive" features.
    empty = [day for day in days if not files.get(day)]
    if empty:
        raise NoSilverInput(
            f"{', '.join(map(str, empty))}: no rows in {tables.SILVER_EVENTS}; publish those days first "
            f"(`lakecart ingest publish` after their gate passed) or materialise a range without them"
        )
    reports = {}
    for view in selected:
        report = reports[view.table_name] = MaterializeReport(view.table_name)
        recorded = {} if force else _recorded_signatures(settings, view)
        wanted = {day: input_signature(view, day, files) for day in days}
        todo = [day for day in days if recorded.get(day) != wanted[day]]
        report.skipped_days = [d.isoformat() for d in days if d not in todo]
        for first, last in _runs(todo):
            log.info("materialising %s for %s..%s", view.qualified_name, first, last)
            frame = compute_view(view, events, first, last)
            run_days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
            delta.replace_partitions(frame, view_path(view, settings), FEATURE_DATE, run_days)
            state = spark.createDataFrame(
                [(view.table_name, d, wanted[d]) for d in run_days],
                "view string, feature_date date, input_signature string",
            )
            delta.merge_by_key(
                state, tables.table_path(tables.FEATURE_MATERIALIZATIONS, settings), ["view", FEATURE_DATE]
            )
            report.written_days += [d.isoformat() for d in run_days]
        report.rows = (
            spark.read.format("delta")
            .load(view_path(view, settings))
            .where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
            .count()
        )
        log.info(
            "%s %s..%s: %d days written, %d unchanged (skipped), %d rows",
            view.qualified_name,
            start,
            end,
            len(report.written_days),
            len(report.skipped_days),
            report.rows,
        )
    return reports
