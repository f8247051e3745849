"""Idempotent Delta writes, each scoped to the partitions being processed."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)


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
    """Overwrite exactly the rows matching ``predicate`` with ``df``, in one transaction."""
    (df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).partitionBy(partition_col).save(path))
    log.info("replaced %s where %s", path, predicate[:200])


def merge_by_key(df, path: str, keys: Sequence[str], partition_col: str | None = None) -> None:
    """Upsert ``df`` into the table at ``path`` on ``keys`` (insert new, update matched).

    When ``partition_col`` is given the match is pruned to the partitions present in ``df``.
    Creates the table on first use.
    """
    from delta.tables import DeltaTable

    spark = df.sparkSession
    if not table_exists(spark, path):
        writer = df.write.format("delta").mode("overwrite")
        if partition_col:
            writer = writer.partitionBy(partition_col)
        writer.save(path)
        return
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
