"""Materialise feature views for a logical date, or backfill a date range: the same code path.

Each view reads its own silver table (``FeatureView.source``): clickstream events, order lines
(joined with the catalogue's category, category_levels and brand) or promotions. A lake without a
view's source table skips the view with one log line, unless the view was asked for by name; a day
with no rows in a source is refused for the views that read it (promotions excepted: a day on which
no promotion starts is normal).

Each output day is written with a partition-scoped ``replaceWhere`` (idempotent). The run is
incremental: an output day is skipped when the view's logic and every source partition its window
reads are the same as when the day was last written. Partitions are compared by the data files the
Delta log lists for them (files are immutable, so any change to a day shows up), which costs a read
of the log, not of the data.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import delta, tables
from lakecart.config import Settings
from lakecart.contracts import FEATURE_HISTORY
from lakecart.errors import LakecartError
from lakecart.features import REGISTRY, FeatureView
from lakecart.features.definitions import (
    EVENTS_SOURCE,
    FEATURE_DATE,
    ORDER_LINES_SOURCE,
    PROMOTIONS_SOURCE,
)
from lakecart.jobs.feature_store import require_applied, view_path

log = logging.getLogger(__name__)

__all__ = [
    "compute_view",
    "run_materialize",
    "view_path",
    "MaterializeReport",
    "NoSilverInput",
    "SourceAbsent",
    "SILVER_SOURCES",
]


class NoSilverInput(LakecartError, ValueError):
    """A day to materialise has no rows in silver: its features would say every user was inactive."""


class SourceAbsent(NoSilverInput):
    """A view asked for by name reads a silver table this lake does not have."""


@dataclass(frozen=True)
class SilverSource:
    """How materialisation reads one silver table that views compute from."""

    table: str
    day: str  # the partition column: the day a record belongs to
    # The last day a record covers, where records span days (a promotion's end_date): any earlier
    # partition can then reach an output day.
    until: str | None = None
    # A day without records is normal (no promotion starts that day), not missing data.
    empty_days_ok: bool = False


SILVER_SOURCES = {
    EVENTS_SOURCE: SilverSource(EVENTS_SOURCE, tables.SILVER_EVENTS.partition),
    ORDER_LINES_SOURCE: SilverSource(ORDER_LINES_SOURCE, tables.SILVER_ORDER_LINES.partition),
    # Declared in lakecart/tables.py as SILVER_PROMOTIONS with the same partition (the contract).
    PROMOTIONS_SOURCE: SilverSource(PROMOTIONS_SOURCE, "start_date", until="end_date", empty_days_ok=True),
}
CATALOGUE_COLUMNS = {"category": "string", "category_levels": "array<string>", "brand": "string"}


@dataclass
class MaterializeReport:
    view: str
    written_days: list[str] = field(default_factory=list)
    skipped_days: list[str] = field(default_factory=list)
    rows: int = 0
    # Source days summarised into tiles by this run (views with ``Tiles``; the rest reuse theirs).
    tiles_written: int = 0
    seconds: float = 0.0  # wall time of the view's run, its tiles included
    # Why the view was not materialised at all (its source table is absent); None when it was.
    skipped_reason: str | None = None


def compute_from_tiles(view: FeatureView, partials: DataFrame, start: date, end: date) -> DataFrame:
    """The view's rows over ``[start, end]`` from its tiles (``Tiles.combine``), reading only the
    days its windows need: the same rows as ``compute_view`` on the source they summarise."""
    day = F.col(view.tiles.day)
    scoped = partials.where(day.between(F.lit(start - timedelta(days=view.lookback_days)), F.lit(end)))
    return view.tiles.combine(scoped, start, end).select(*view.columns)


def compute_view(view: FeatureView, source: DataFrame, start: date, end: date) -> DataFrame:
    """The view's transform over ``[start, end]``, reading only the source history its windows need
    (and the days ahead it looks at, for records planned in advance)."""
    spec = SILVER_SOURCES[view.source]
    first, last = F.lit(start - timedelta(days=view.lookback_days)), F.lit(end + timedelta(days=view.lead_days))
    if spec.until is None:
        scoped = source.where(F.col(spec.day).between(first, last))
    else:
        scoped = source.where((F.col(spec.until) >= first) & (F.col(spec.day) <= last))
    return view.transform(scoped, start, end).select(*view.columns)


def _add_actions(path: str):
    import pyarrow as pa
    from deltalake import DeltaTable

    # pa.table: delta-rs returns an arro3 table; pyarrow takes it over the Arrow C interface.
    return pa.table(DeltaTable(path).get_add_actions(flatten=True))


def partition_files(settings: Settings, source: SilverSource) -> dict[date, tuple[str, ...]]:
    """Partition day -> the data files of that partition of ``source``, from the Delta log (delta-rs)."""
    actions = _add_actions(tables.table_path(source.table, settings))
    if f"partition.{source.day}" not in actions.column_names:
        raise NoSilverInput(f"{source.table} is not partitioned by {source.day}: views cannot read it by day")
    files: dict[date, list[str]] = {}
    for path, day in zip(
        actions.column("path").to_pylist(), actions.column(f"partition.{source.day}").to_pylist(), strict=True
    ):
        if day is None:  # a record without its day cannot feed any window
            continue
        files.setdefault(day if isinstance(day, date) else date.fromisoformat(str(day)), []).append(path)
    return {day: tuple(sorted(paths)) for day, paths in files.items()}


def silver_partition_files(settings: Settings) -> dict[date, tuple[str, ...]]:
    """event_date -> the data files of that silver.events partition, from the Delta log (delta-rs)."""
    return partition_files(settings, SILVER_SOURCES[EVENTS_SOURCE])


def catalogue_files(settings: Settings) -> tuple[str, ...]:
    """The data files of silver.items (order views read its categories); empty without a catalogue."""
    from deltalake import DeltaTable

    path = tables.table_path(tables.SILVER_ITEMS, settings)
    if not DeltaTable.is_deltatable(path):
        return ()
    return tuple(sorted(_add_actions(path).column("path").to_pylist()))


def input_signature(
    view: FeatureView, day: date, files: dict[date, tuple[str, ...]], extra: tuple[str, ...] = ()
) -> str:
    """What output ``day`` of ``view`` depends on: its logic, the source files of its window (from
    ``lookback_days`` before to ``lead_days`` after; every earlier partition too where records span
    days) and ``extra`` inputs (the catalogue's files for order views)."""
    digest = hashlib.sha256(view.fingerprint().encode())
    first = day - timedelta(days=view.lookback_days)
    if SILVER_SOURCES[view.source].until is not None and files:
        first = min(first, min(files))
    for n in range((day - first).days, -view.lead_days - 1, -1):
        source_day = day - timedelta(days=n)
        digest.update(f"{source_day}:{','.join(files.get(source_day, ()))};".encode())
    if extra:
        digest.update(f"extra:{','.join(extra)};".encode())
    return digest.hexdigest()[:24]


def tile_signature(view: FeatureView, day: date, files: dict[date, tuple[str, ...]], extra: tuple[str, ...]) -> str:
    """What the tile of ``view`` for source ``day`` depends on: the view's logic, that day's source
    files and ``extra`` inputs (the catalogue's files)."""
    digest = hashlib.sha256(f"{view.fingerprint()}|tile {day}:{','.join(files.get(day, ()))}".encode())
    if extra:
        digest.update(f"|extra:{','.join(extra)}".encode())
    return digest.hexdigest()[:24]


def _recorded_tiles(settings: Settings, view: FeatureView) -> dict[date, str]:
    from deltalake import DeltaTable

    path = tables.table_path(tables.FEATURE_TILES, settings)
    if not DeltaTable.is_deltatable(path):
        return {}
    rows = DeltaTable(path).to_pyarrow_table(filters=[("view", "=", view.table_name)]).to_pylist()
    return {r["day"]: r["input_signature"] for r in rows}


def refresh_tiles(
    settings: Settings,
    view: FeatureView,
    source: DataFrame,
    days: Sequence[date],
    files: dict[date, tuple[str, ...]],
    extra: tuple[str, ...],
    force: bool = False,
) -> tuple[DataFrame, list[tuple[str, date, str]]]:
    """The tiles of ``view`` for the source ``days`` that hold files, each computed from silver
    only when it is missing or its day's files (or the view's logic, or ``extra``) changed since
    it was written; and ``(view, day, signature)`` for each tile written, to record."""
    held = [d for d in days if files.get(d)]
    wanted = {d: tile_signature(view, d, files, extra) for d in held}
    recorded = {} if force else _recorded_tiles(settings, view)
    stale = [d for d in held if recorded.get(d) != wanted[d]]
    path = tables.table_path(view.tile_table, settings)
    if stale:
        log.info(
            "%s: summarising %d source day(s) into tiles (%d reused)",
            view.tile_table,
            len(stale),
            len(held) - len(stale),
        )
        partials = view.tiles.partials(source.where(F.col(view.tiles.day).isin(*stale)))
        # One file per tile day: a window reads up to 90 of them, and small files cost more to open
        # than to read.
        partials = partials.repartition(F.col(view.tiles.day))
        if _schema_changed(source.sparkSession, path, partials):
            # Refactored code (``refactored_from``) summarising differently: every tile is stale
            # (the fingerprint changed), so the table starts again from the days computed now.
            log.info("%s: partials changed shape; rewriting the tiles", view.tile_table)
            writer = partials.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
            writer.partitionBy(view.tiles.day).save(path)
        else:
            delta.replace_partitions(partials, path, view.tiles.day, stale)
    spark = source.sparkSession
    tiles = spark.read.format("delta").load(path).where(F.col(view.tiles.day).isin(*held))
    return tiles, [(view.table_name, d, wanted[d]) for d in stale]


def _schema_changed(spark: SparkSession, path: str, frame: DataFrame) -> bool:
    if not delta.table_exists(spark, path):
        return False

    def shape(schema) -> list[tuple[str, str]]:  # names and types, not nullability (Delta may relax it)
        return [(f.name, f.dataType.simpleString()) for f in schema]

    return shape(spark.read.format("delta").load(path).schema) != shape(frame.schema)


def source_exists(settings: Settings, table: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(tables.table_path(table, settings))


def view_source_exists(settings: Settings, source: str) -> bool:
    """Clickstream views compute from *interactions* (``features.sources``): the clickstream, the
    order lines, or both, so a shop that sends either has them."""
    return any(source_exists(settings, table) for table in _tables_read(source))


# The ledger of the raw files behind each source a view reads.
_LEDGERS = {EVENTS_SOURCE: tables.INGEST_LEDGER, ORDER_LINES_SOURCE: tables.ORDERS_LEDGER}


def published_days(settings: Settings, table: str) -> set[date]:
    """Days whose raw files were published, whether or not they held a record: a closed shop's empty
    file (the export says nothing was sold) accounts for its day, a day with no file does not."""
    from deltalake import DeltaTable

    ledger = _LEDGERS.get(table)
    path = tables.table_path(ledger, settings) if ledger else None
    if path is None or not DeltaTable.is_deltatable(path):
        return set()
    rows = DeltaTable(path).to_pyarrow_table(columns=["ingest_date", "status"]).to_pylist()
    return {r["ingest_date"] for r in rows if r["status"] == "published" and r["ingest_date"] is not None}


def source_files(settings: Settings, source: str) -> dict[date, tuple[str, ...]]:
    """Partition day -> data files of what a view of ``source`` reads; for clickstream views, the
    files of the clickstream and of the order lines (either may be absent)."""
    merged: dict[date, tuple[str, ...]] = {}
    for table in _tables_read(source):
        if not source_exists(settings, table):
            continue
        for day, paths in partition_files(settings, SILVER_SOURCES[table]).items():
            merged[day] = tuple(sorted((*merged.get(day, ()), *paths)))
    return merged


def _window_days(start: date, end: date, lookback_days: int, first: date) -> list[date]:
    """The days a run from ``start`` to ``end`` reads: ``lookback_days`` before ``start`` (not before
    ``first``, the source's first day) through ``end``."""
    begin = max(start - timedelta(days=lookback_days), min(first, start))
    return [begin + timedelta(days=n) for n in range((end - begin).days + 1)]


def accounted_days(settings: Settings, source: str) -> set[date]:
    return set().union(*(published_days(settings, t) for t in _tables_read(source)))


def _tables_read(source: str) -> tuple[str, ...]:
    """The silver tables behind a view source: clickstream views read the orders too."""
    return (EVENTS_SOURCE, ORDER_LINES_SOURCE) if source == EVENTS_SOURCE else (source,)


def read_source(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    """A view source as its transforms get it: for clickstream views, interactions (clickstream and
    order lines, purchases from the orders when there are any: ``features.sources``); order lines
    joined with the catalogue's category, category_levels and brand (null where the catalogue has
    no row, or there is no catalogue)."""
    if table == EVENTS_SOURCE:
        from lakecart.features.sources import interactions

        def load(name: str) -> DataFrame | None:
            exists = source_exists(settings, name)
            return spark.read.format("delta").load(tables.table_path(name, settings)) if exists else None

        return interactions(load(EVENTS_SOURCE), load(ORDER_LINES_SOURCE), load(tables.SILVER_ITEMS))
    frame = spark.read.format("delta").load(tables.table_path(table, settings))
    if table != ORDER_LINES_SOURCE:
        return frame
    frame = frame.drop(*CATALOGUE_COLUMNS)
    if not source_exists(settings, tables.SILVER_ITEMS):
        return frame.select("*", *[F.lit(None).cast(t).alias(c) for c, t in CATALOGUE_COLUMNS.items()])
    items = spark.read.format("delta").load(tables.table_path(tables.SILVER_ITEMS, settings))
    catalogue = items.select(
        "item_id",
        *[(F.col(c) if c in items.columns else F.lit(None)).cast(t).alias(c) for c, t in CATALOGUE_COLUMNS.items()],
    )
    return frame.join(catalogue, "item_id", "left")


def _rows_between(spark: SparkSession, path: str, start: date, end: date) -> int:
    """Rows of the feature table at ``path`` dated ``start``..``end``: from the Delta log's file
    statistics where every file has them (no Spark job), else counted by Spark."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakecart.storage import file_actions, open_delta, recorded_rows

    actions = file_actions(open_delta(path))
    column = f"partition.{FEATURE_DATE}"
    if column in actions.column_names:
        days = pc.cast(actions[column], pa.date32())
        rows = recorded_rows(actions.filter(pc.and_(pc.greater_equal(days, start), pc.less_equal(days, end))))
        if rows is not None:
            return rows
    frame = spark.read.format("delta").load(path)
    return frame.where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end))).count()


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


def _select(settings: Settings, views: Sequence[str] | None) -> tuple[list[FeatureView], dict[str, MaterializeReport]]:
    """The views to run and reports for those skipped: every view of a source this lake has, or the
    views named (refused, not skipped, when their source is absent)."""
    named = [REGISTRY[name.removeprefix("features.")] for name in views] if views else None
    candidates = named or list(REGISTRY.values())
    present = {s: view_source_exists(settings, s) for s in sorted({v.source for v in candidates})}
    absent = [v for v in candidates if not present[v.source]]
    if named and absent:
        raise SourceAbsent(
            "; ".join(f"{v.qualified_name} reads {v.source}, which this lake does not have" for v in absent)
            + ": ingest that source first, or materialise views of the sources the lake has"
        )
    skipped = {}
    for source in sorted({v.source for v in absent}):
        names = [v.qualified_name for v in absent if v.source == source]
        log.info("%s does not exist in this lake: skipping the views that read it (%s)", source, ", ".join(names))
        for v in absent:
            if v.source == source:
                skipped[v.table_name] = MaterializeReport(v.table_name, skipped_reason=f"no {source} table")
    run = [v for v in candidates if present[v.source]]
    if not run:
        raise NoSilverInput(
            f"none of {', '.join(present)} exists in this lake: ingest a source (`lakecart ingest ...`) first"
        )
    return run, skipped


def _longest_first(views: Sequence[FeatureView]) -> list[FeatureView]:
    """The views with the longest windows first: run side by side, the slowest starts first and the
    short ones fill the gaps (their order is otherwise the registry's)."""
    return sorted(views, key=lambda v: -v.lookback_days)


def _run_concurrently(work, views: Sequence[FeatureView], parallel: int) -> None:
    """``work(view)`` for every view, ``parallel`` at a time in threads of this process (one Spark
    session runs their jobs side by side: the driver's fixed costs of one view, such as planning,
    Delta commits and log reads, overlap another's tasks). The first failure stops views not yet
    started, waits for those running and is raised."""
    if parallel <= 1:
        for view in views:
            work(view)
        return
    stop = threading.Event()  # set by the failing thread itself: no view starts after it

    def guarded(view: FeatureView) -> None:
        if stop.is_set():
            raise _NotStarted(view.name)
        try:
            work(view)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="materialise") as pool:
        futures = [pool.submit(guarded, view) for view in views]
        wait(futures, return_when=FIRST_EXCEPTION)
        if stop.is_set():
            for future in futures:
                future.cancel()  # those not started; the running ones finish (the pool waits for them)
    failed = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    failed = [e for e in failed if not isinstance(e, _NotStarted)]
    if failed:
        raise failed[0]


class _NotStarted(Exception):
    """A view skipped because another had failed first."""


HISTORY = FEATURE_HISTORY


def views_training_reads() -> set[str]:
    """The views (table names) some training set joins as of its labels' times: those whose earlier
    days a backfill must compute. The others are read as of a run's date only (outputs, serving,
    segments) or by SQL users."""
    from lakecart.jobs.training_set import KINDS

    return {view.table_name for kind in KINDS.values() for view in kind.views}


def run_materialize(
    spark: SparkSession,
    settings: Settings,
    start: date,
    end: date,
    views: Sequence[str] | None = None,
    force: bool = False,
    tiles: bool = True,
    history: str = "all",
) -> dict[str, MaterializeReport]:
    """Materialise ``views`` (all of the lake's sources when None) for ``start``..``end``. Views with
    ``Tiles`` are combined from their per-day partials, kept between runs and recomputed per source
    day when it changes; ``tiles=False`` computes every window from silver instead (the same rows).
    ``history="training"``: only the views a training set joins get the days before ``end``, the rest
    ``end`` alone (on The Complete Journey two views no model reads, every customer x item pair and
    customer x category every day, were most of a backfill's time); a later run with ``"all"``
    computes the days left out."""
    if history not in HISTORY:
        raise ValueError(f"unknown history {history!r}: one of {', '.join(HISTORY)}")
    selected, skipped = _select(settings, views)
    require_applied(settings, selected)
    # Each view's first day: ``start``, or for history="training" ``end`` alone for the views no
    # training set joins. One run for both groups: their views go side by side in one pool.
    first_day = {v.table_name: start for v in selected}
    if history == "training" and start < end:
        reads = views_training_reads()
        first_day = {v.table_name: start if v.table_name in reads else end for v in selected}
        log.info(
            "history for the views training sets read (%s); %s only: %s",
            ", ".join(n for n, d in first_day.items() if d == start),
            end,
            ", ".join(n for n, d in first_day.items() if d != start),
        )
    sources = [SILVER_SOURCES[s] for s in sorted({v.source for v in selected})]
    files = {s.table: source_files(settings, s.table) for s in sources}
    # A day without events (or order lines) is missing data (not published yet, or its batch failed
    # its gate), not a day nobody shopped: refuse before writing anything rather than publish
    # "inactive" features.
    accounted = {s.table: accounted_days(settings, s.table) for s in sources if not s.empty_days_ok}
    # The windows reach back before `start` too: a day missing there (its batch failed its gate while
    # later days went on) would be read as a day nobody shopped. Days before the source's first day
    # are its history's start, not a gap.
    readers = {table: [v for v in selected if SILVER_SOURCES[v.source].table == table] for table in accounted}
    lookback = {table: max((v.lookback_days for v in views), default=0) for table, views in readers.items()}
    begins = {table: min((first_day[v.table_name] for v in views), default=start) for table, views in readers.items()}
    empty = {
        table: [
            day
            for day in _window_days(begins[table], end, lookback[table], min((*files[table], *seen), default=start))
            if not files[table].get(day) and day not in seen
        ]
        for table, seen in accounted.items()
    }
    if any(empty.values()):
        raise NoSilverInput(
            "; ".join(f"{', '.join(map(str, e))}: no rows in {table}" for table, e in empty.items() if e)
            + "; publish those days first (`lakecart ingest publish` after their gate passed) or materialise "
            "a range without them"
        )
    has_orders = source_exists(settings, ORDER_LINES_SOURCE)
    catalogue = catalogue_files(settings) if has_orders else ()
    frames = {s.table: read_source(spark, settings, s.table) for s in sources}
    reports = {}
    # What was written is recorded once at the end (one MERGE, not one per view), and also when a
    # view fails: a day written but not recorded is only computed again by the next run.
    written: list[tuple[str, date, str]] = []
    tiles_written: list[tuple[str, date, str]] = []

    def materialise(view: FeatureView) -> None:
        report = reports[view.table_name] = MaterializeReport(view.table_name)
        began = time.perf_counter()
        first_day_of_view = first_day[view.table_name]
        days = [first_day_of_view + timedelta(days=n) for n in range((end - first_day_of_view).days + 1)]
        recorded = {} if force else _recorded_signatures(settings, view)
        # Order lines (as themselves, or as the purchases of interactions) take categories from the catalogue.
        extra = catalogue if view.source in (ORDER_LINES_SOURCE, EVENTS_SOURCE) else ()
        wanted = {day: input_signature(view, day, files[view.source], extra) for day in days}
        todo = [day for day in days if recorded.get(day) != wanted[day]]
        report.skipped_days = [d.isoformat() for d in days if d not in todo]
        for first, last in _runs(todo):
            log.info("materialising %s for %s..%s", view.qualified_name, first, last)
            if tiles and view.tiles is not None:
                reach = [first - timedelta(days=n) for n in range(view.lookback_days, -(last - first).days - 1, -1)]
                partials, fresh = refresh_tiles(
                    settings, view, frames[view.source], reach, files[view.source], extra, force
                )
                tiles_written.extend(fresh)  # list.extend is atomic: the views' threads share these lists
                report.tiles_written += len(fresh)
                frame = compute_from_tiles(view, partials, first, last)
            else:
                frame = compute_view(view, frames[view.source], first, last)
            run_days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
            delta.replace_partitions(frame, view_path(view, settings), FEATURE_DATE, run_days)
            written.extend((view.table_name, d, wanted[d]) for d in run_days)
            report.written_days += [d.isoformat() for d in run_days]
        report.rows = _rows_between(spark, view_path(view, settings), first_day_of_view, end)
        report.seconds = round(time.perf_counter() - began, 1)
        log.info(
            "%s %s..%s: %d days written, %d unchanged (skipped), %d rows, %.1f s",
            view.qualified_name,
            first_day_of_view,
            end,
            len(report.written_days),
            len(report.skipped_days),
            report.rows,
            report.seconds,
        )

    try:
        _run_concurrently(materialise, _longest_first(selected), settings.features.parallel_views)
    finally:
        if tiles_written:
            state = spark.createDataFrame(tiles_written, "view string, day date, input_signature string")
            delta.merge_by_key(state, tables.table_path(tables.FEATURE_TILES, settings), ["view", "day"])
        if written:
            state = spark.createDataFrame(written, "view string, feature_date date, input_signature string")
            delta.merge_by_key(
                state, tables.table_path(tables.FEATURE_MATERIALIZATIONS, settings), ["view", FEATURE_DATE]
            )
    everything = {**reports, **skipped}
    return {name: everything[name] for name in REGISTRY if name in everything}  # the registry's order
