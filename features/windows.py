"""Windowed aggregates from per-day partials.

Each source day is aggregated once per key (a *partial*); a window of ``w`` days ending on day
``d`` combines the partials of days ``d-w+1 .. d``. Output days are produced by fanning each
partial out to the output days it contributes to (``fan_out``), so cost grows with days x longest
window, never with days x history. Sums, newest-N sequences, lags and "latest value" combine this
way; the column helpers below build them over a fanned frame. Distinct counts do not: an element
fanned out to every output day costs elements x window, so ``distinct_counts`` keeps a running count
of when each element enters and leaves a window instead.

Every partial carries ``known_date``: the newest ingest date of the records it summarises. A late
event (arriving in a later batch) therefore moves ``available_at`` of every output row it touches
to the day after it arrived, and a point-in-time join cannot use it before then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, Feature

AGE = "_age"  # days from a partial's day to the output day (0 = the output day itself)
KNOWN_DATE = "known_date"  # on partials: the newest ingest_date among the records summarised


def known_date(events: DataFrame) -> Column:
    """The partial's ``known_date`` aggregate: when the last record of the group arrived."""
    return F.max("ingest_date" if "ingest_date" in events.columns else "event_date").alias(KNOWN_DATE)


def fan_out(partials: DataFrame, day_col: str, longest: int, start: date, end: date) -> DataFrame:
    """Each partial once per output day in ``[start, end]`` whose ``longest``-day window holds it,
    with ``feature_date`` and ``_age``."""
    # Only the output days of [start, end]: a 180-day window materialised for one day makes one row
    # per partial, not 180 to filter down to one.
    first = F.greatest(F.col(day_col), F.lit(start))
    last = F.least(F.date_add(F.col(day_col), longest - 1), F.lit(end))
    return (
        partials.where((F.col(day_col) > F.lit(start - timedelta(days=longest))) & (F.col(day_col) <= F.lit(end)))
        .withColumn(FEATURE_DATE, F.explode(F.sequence(first, last)))
        .withColumn(AGE, F.datediff(F.col(FEATURE_DATE), F.col(day_col)))
    )


def in_window(days: int) -> Column:
    return F.col(AGE) < days


def window_sum(metric: str, days: int) -> Column:
    """Sum of ``metric`` over the trailing ``days`` (0 when nothing happened)."""
    return F.sum(F.when(in_window(days), F.col(metric)).otherwise(F.lit(0)))


def distinct_counts(
    partials: DataFrame,
    keys: Sequence[str],
    day_col: str,
    array_col: str,
    windows: dict[int, str],
    start: date,
    end: date,
) -> DataFrame:
    """``keys``, ``feature_date`` and, per ``{days: name}`` of ``windows``, the distinct elements of
    a per-day ``collect_set`` column over the trailing ``days``, as a frame to join (keys without
    elements have no row).

    Two plans, the same rows: a run of a few output days (the daily run) fans each element out to
    them (``_fanned_distinct_counts``); a longer run (a backfill) keeps running counts
    (``_running_distinct_counts``), whose cost does not grow with the days. On The Complete
    Journey's purchase categories (windows of 7, 28 and 90 days) running counts took 2.9x the
    fanned plan's time for one output day and 0.6x for seven (medians of 3 rounds), and 60 s ->
    2.8 s for 85 (BENCHMARKS.md)."""
    if (end - start).days < FANNED_DISTINCT_DAYS:
        return _fanned_distinct_counts(partials, keys, day_col, array_col, windows, start, end)
    return _running_distinct_counts(partials, keys, day_col, array_col, windows, start, end)


# Output days up to which distinct counts fan elements out (below the break-even measured above).
FANNED_DISTINCT_DAYS = 3


def _fanned_distinct_counts(partials, keys, day_col, array_col, windows, start, end) -> DataFrame:
    """Each element kept once per output day at its newest age: cost grows with elements x output
    days (up to the longest window)."""
    elements = partials.select(*keys, day_col, F.explode(array_col).alias("_element"))
    newest_age = (
        fan_out(elements, day_col, max(windows), start, end)
        .groupBy(*keys, FEATURE_DATE, "_element")
        .agg(F.min(AGE).alias(AGE))
    )
    return newest_age.groupBy(*keys, FEATURE_DATE).agg(
        *[F.count_if(in_window(days)).cast("int").alias(name) for days, name in windows.items()]
    )


def _running_distinct_counts(partials, keys, day_col, array_col, windows, start, end) -> DataFrame:
    """An element seen on day ``x`` and next on day ``x'`` is, on every output day ``d`` from ``x``
    to ``x' - 1``, ``d - x`` days old: it counts in a ``w``-day window on the days ``x`` up to
    ``min(x', x + w) - 1``. Each occurrence adds 1 on its first such day and takes it away the day
    after its last; a running sum of those changes per key is the count, constant between two
    changes. Cost grows with the elements, not with elements x output days."""
    longest = max(windows)
    named = sorted(windows.items())
    element = "_element"
    occurrences = partials.where(
        (F.col(day_col) > F.lit(start - timedelta(days=longest))) & (F.col(day_col) <= F.lit(end))
    ).select(*keys, F.col(day_col).alias("_day"), F.explode(array_col).alias(element))
    following = F.lead("_day").over(Window.partitionBy(*keys, element).orderBy("_day"))
    occurrences = occurrences.withColumn("_next", following)
    # One change row per occurrence and window end, with the change of every window's count.
    starts = F.struct(F.col("_day").alias("_at"), *[F.lit(1).alias(name) for _, name in named])
    stops = [
        F.struct(
            F.least(F.coalesce(F.col("_next"), F.date_add("_day", days)), F.date_add("_day", days)).alias("_at"),
            *[F.lit(-1 if other == days else 0).alias(name) for other, name in named],
        )
        for days, _ in named
    ]
    changes = (
        occurrences.select(*keys, F.explode(F.array(starts, *stops)).alias("_change"))
        .select(*keys, "_change.*")
        .groupBy(*keys, "_at")
        .agg(*[F.sum(name).alias(name) for _, name in named])
    )
    ordered = Window.partitionBy(*keys).orderBy("_at")
    running = changes.select(
        *keys,
        "_at",
        F.lead("_at").over(ordered).alias("_until"),
        *[F.sum(name).over(ordered.rowsBetween(Window.unboundedPreceding, 0)).alias(name) for _, name in named],
    )
    # Each count holds from its change to the day before the next; output days in [start, end] only.
    first = F.greatest(F.col("_at"), F.lit(start))
    last = F.least(F.date_sub(F.coalesce(F.col("_until"), F.date_add(F.lit(end), 1)), 1), F.lit(end))
    return running.where((F.col(windows[longest]) > 0) & (first <= last)).select(
        *keys,
        F.explode(F.sequence(first, last)).alias(FEATURE_DATE),
        *[F.coalesce(F.col(name).cast("int"), F.lit(0)).alias(name) for _, name in named],  # never null
    )


def newest(struct_array_col: str, n: int) -> Column:
    """The ``n`` newest elements of per-day arrays of structs whose first field is a timestamp,
    newest first (the longest window bounds how far back it looks)."""
    return F.slice(F.sort_array(F.flatten(F.collect_list(F.col(struct_array_col))), asc=False), 1, n)


def lag(metric: str, days: int) -> Column:
    """``metric`` of the day ``days`` before the output day (0 when that day had none)."""
    return F.coalesce(F.sum(F.when(F.col(AGE) == days, F.col(metric))), F.lit(0))


def latest(metric: str, min_age: int = 0) -> Column:
    """The newest non-null ``metric`` at least ``min_age`` days before the output day."""
    usable = (F.col(AGE) >= min_age) & F.col(metric).isNotNull()
    return F.max_by(F.when(usable, F.col(metric)), F.when(usable, -F.col(AGE)))


def ratio(numerator: str, denominator: str) -> Column:
    """``numerator / denominator``, 0 where the denominator is 0 or missing (a rate with no events)."""
    return F.coalesce(F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator)), F.lit(0.0))


def rate_feature(name: str, description: str, numerator: str, denominator: str) -> Feature:
    """A feature that is one aggregated column over another (``ratio``)."""
    return Feature(name, "double", description, expr=lambda: ratio(numerator, denominator))


def recency() -> Column:
    """Days since the newest partial inside the longest window."""
    return F.min(AGE)


def availability() -> Column:
    """When an output row could first be known: after its day closed, and after the last record
    summarised in it arrived (late data makes a row known later, never earlier)."""
    closed = F.date_add(F.col(FEATURE_DATE), 1)
    return F.to_timestamp(F.greatest(F.first(closed), F.date_add(F.max(KNOWN_DATE), 1))).alias(AVAILABLE_AT)


def windowed_sums(
    partials: DataFrame,
    keys: Sequence[str],
    day_col: str,
    metrics: Sequence[str],
    windows: Sequence[int],
    start: date,
    end: date,
) -> DataFrame:
    """Sum each metric over each trailing window, for every output day in ``[start, end]``.

    Output: ``keys``, ``feature_date``, ``available_at``, ``<metric>_<w>d`` per metric and window,
    and ``days_since_active`` (days from the newest partial to the output day).
    A key gets a row for an output day when it has any partial inside the longest window.
    """
    if KNOWN_DATE not in partials.columns:
        partials = partials.withColumn(KNOWN_DATE, F.col(day_col))
    fanned = fan_out(partials, day_col, max(windows), start, end)
    return fanned.groupBy(*keys, FEATURE_DATE).agg(
        *[window_sum(m, w).alias(f"{m}_{w}d") for m in metrics for w in windows],
        recency().alias("days_since_active"),
        availability(),
    )
