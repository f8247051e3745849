"""Idempotent Delta writes, each scoped to the partitions being processed.

Two runs writing one table at once (two Airflow runs overlapping, a person and the scheduler) are
serialised by Delta's optimistic concurrency: the second commit fails with one of Delta's
concurrent-modification errors and nothing of it is written. Every write here is idempotent, so it
is simply tried again, with exponential back-off and jitter; a write that keeps losing ends in a
``ConcurrentWriteError`` naming the table.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from lakecart.errors import LakecartError

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 6  # 1 + 5 retries: about a minute of back-off in all, at most
BACKOFF_S = 1.0  # before the first retry; doubles each time, up to BACKOFF_MAX_S, times 0.5-1.5
BACKOFF_MAX_S = 20.0


class ConcurrentWriteError(LakecartError):
    """Another run kept committing to the same table; the message names it and says to re-run."""


def _conflicts() -> tuple[type[BaseException], ...]:
    """Delta's concurrent-modification family, as pyspark raises it (importing ``delta.exceptions``
    installs the translation from the JVM's exceptions)."""
    import delta.exceptions

    return tuple(getattr(delta.exceptions, name) for name in delta.exceptions.__all__)


def table_name(path: str) -> str:
    """``<lake>/lake/<layer>/<table>`` -> ``layer.table`` (the path itself for other locations)."""
    parts = path.rstrip("/").split("/")
    return f"{parts[-2]}.{parts[-1]}" if len(parts) >= 3 and parts[-3] == "lake" else path


def retry_conflicts(path: str, write: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run ``write`` (an idempotent commit to the table at ``path``), again after a Delta commit
    conflict, waiting ``BACKOFF_S * 2**n`` seconds (capped, with jitter so two losers do not collide
    again)."""
    conflicts = _conflicts()
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except conflicts as exc:
            kind = type(exc).__name__
            if attempt == attempts:
                raise ConcurrentWriteError(
                    f"{table_name(path)}: another run kept committing to this table at the same time ({kind}, "
                    f"{attempts} tries); nothing of this step was committed: re-run the command once the other "
                    "run has finished"
                ) from exc
            delay = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            log.warning(
                "%s: another run committed first (%s); trying again in %.1f s (%d/%d)",
                table_name(path),
                kind,
                delay,
                attempt,
                attempts - 1,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _sql_list(values: Iterable[object]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def table_exists(spark, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def replace_partitions(df, path: str, partition_col: str, values: Sequence[object]) -> None:
    """Overwrite exactly the given partitions with ``df`` (``replaceWhere``); other partitions stay.

    Re-running with the same input leaves the same rows: the write is a transaction that
    replaces the partition wholesale, so a crash mid-write leaves the previous version intact.
    """
    if not values:
        raise ValueError(f"no partitions given for {path}")
    replace_where(df, path, f"{partition_col} IN ({_sql_list(values)})", partition_col)


def replace_where(df, path: str, predicate: str, partition_col: str) -> None:
    """Overwrite exactly the rows matching ``predicate`` with ``df``, in one transaction (tried again
    after a commit conflict: the result is the same)."""
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).partitionBy(partition_col)
    retry_conflicts(path, lambda: writer.save(path))
    log.info("replaced %s where %s", path, predicate[:200])


def merge_by_key(df, path: str, keys: Sequence[str], partition_col: str | None = None) -> None:
    """Upsert ``df`` into the table at ``path`` on ``keys`` (insert new, update matched).

    When ``partition_col`` is given the match is pruned to the partitions present in ``df``.
    Creates the table on first use. Tried again after a commit conflict (another run created the
    table or merged first): the result is the same.
    """
    retry_conflicts(path, lambda: _merge_by_key(df, path, keys, partition_col))


def _merge_by_key(df, path: str, keys: Sequence[str], partition_col: str | None) -> None:
    from delta.tables import DeltaTable
    from pyspark.errors import AnalysisException

    spark = df.sparkSession
    if not table_exists(spark, path):
        # "errorifexists", not "overwrite": a table another run created since the check is merged
        # into below, never replaced.
        writer = df.write.format("delta").mode("errorifexists")
        if partition_col:
            writer = writer.partitionBy(partition_col)
        try:
            writer.save(path)
            return
        except AnalysisException:
            if not table_exists(spark, path):
                raise
    condition = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    if partition_col:
        values = [r[0] for r in df.select(partition_col).distinct().collect()]
        if not values:
            return
        condition = (
            f"t.{partition_col} IN ({_sql_list(values)}) AND t.{partition_col} = s.{partition_col} AND {condition}"
        )
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(df.alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def latest_version(spark, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])
