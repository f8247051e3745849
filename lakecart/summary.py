"""What is in the lake: tables, row counts, versions (read with delta-rs, no JVM), and read-only
queries over them (``lakecart sql``)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lakecart.config import Settings, get_settings
from lakecart.errors import LakecartError
from lakecart.storage import file_actions, open_delta, recorded_rows, table_folders

log = logging.getLogger(__name__)


def table_overview(settings: Settings | None = None) -> list[dict]:
    """One row per table folder. A table that cannot be read (a run killed during its first commit
    leaves a ``_delta_log`` with no commit) is listed with ``error`` instead of failing the listing."""
    from deltalake.exceptions import DeltaError

    settings = settings or get_settings()
    rows = []
    # Listed through pyarrow's filesystem: a local folder or a bucket alike.
    for folder in table_folders(settings.lake.tables):
        name, path = f"{folder.layer}.{folder.name}", folder.uri
        try:
            table = open_delta(path)
            # Row counts from the log's file statistics: no data file is opened. A file written
            # without statistics: the Parquet footers (a metadata read, still no data).
            n = recorded_rows(file_actions(table))
            if n is None:
                n = table.to_pyarrow_dataset().count_rows()
        except (DeltaError, OSError) as exc:
            problem = _problem(folder.committed, exc)
            rows.append({"table": name, "rows": None, "version": None, "path": path, "error": problem})
            continue
        rows.append({"table": name, "rows": n, "version": table.version(), "path": path})
    return rows


def _problem(committed: bool, exc: Exception) -> str:
    if not committed:
        return (
            "no commit in _delta_log (a run was killed during the table's first commit): re-run the job that "
            "writes it, or delete the folder"
        )
    return f"cannot read the table ({' '.join(str(exc).split())[:300]}); re-run the job that writes it"


class QueryRefused(LakecartError):
    """``lakecart sql`` was asked for something other than a read of the lake's tables."""


# Plan nodes of a query (as parsed, before analysis). Anything else - DML, DDL, SET, CACHE, Delta's
# RESTORE/VACUUM/OPTIMIZE/DESCRIBE HISTORY, scripts (TRANSFORM ... USING) - is refused.
QUERY_NODES = frozenset(
    {
        "Aggregate", "CTERelationDef", "CTERelationRef", "Deduplicate", "Distinct", "Except", "Expand", "Filter",
        "Generate", "GlobalLimit", "Intersect", "Join", "LateralJoin", "LocalLimit", "LocalRelation", "Offset",
        "OneRowRelation", "Pivot", "Project", "Range", "RebalancePartitions", "RelationTimeTravel", "Repartition",
        "RepartitionByExpression", "Sample", "Sort", "SubqueryAlias", "Tail", "Union", "UnresolvedHaving",
        "UnresolvedHint", "UnresolvedInlineTable", "UnresolvedRelation", "UnresolvedSubqueryColumnAliases",
        "UnresolvedTableValuedFunction", "UnresolvedTVFAliases", "UnresolvedWith", "Unpivot", "Window",
        "WithCTE", "WithWindowDefinition",
    }
)  # fmt: skip
# Table-valued functions that compute rows rather than read anything.
SAFE_TABLE_FUNCTIONS = frozenset(
    {"range", "explode", "explode_outer", "inline", "inline_outer", "posexplode", "posexplode_outer", "stack"}
)
# Functions that call into the JVM: they could do anything the process can.
_REFLECTION = re.compile(r"\b(reflect|java_method|try_reflect)\s*\(", re.IGNORECASE)


def _absolute(settings: Settings) -> Settings:
    """A relative local lake root as an absolute path: table locations must not depend on the
    directory Spark resolves them against."""
    root = settings.lake.root
    if "://" in root or root.startswith("/"):
        return settings
    return settings.model_copy(update={"lake": settings.lake.model_copy(update={"root": str(Path(root).resolve())})})


def _seq(scala_seq) -> list:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _check_read_only(spark, query: str, registered: set[str]) -> None:
    """Parse ``query`` with Spark's own parser (Delta's statements included) and refuse anything but
    one query whose relations are all registered lake tables (or its own CTEs)."""
    refuse = "lakecart sql is read-only: {}; an operator can run it with --allow-writes"
    if _REFLECTION.search(query):
        raise QueryRefused(refuse.format("Java reflection functions are not allowed"))
    from pyspark.errors import ParseException

    try:
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(query)
    except ParseException as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        raise QueryRefused(f"the SQL does not parse (one statement only): {lines[0] if lines else exc}") from None
    relations, ctes, stack = [], set(), [plan]
    while stack:
        node = stack.pop()
        name = node.getClass().getSimpleName()
        if name not in QUERY_NODES:
            keyword = query.split(maxsplit=1)[0].upper() if query.strip() else ""
            raise QueryRefused(refuse.format(f"{keyword} ... is not a query (it parses to {name})"))
        if name == "UnresolvedRelation":
            relations.append(".".join(str(p) for p in _seq(node.multipartIdentifier())).lower())
        elif name == "UnresolvedWith":
            ctes |= {str(pair._1()).lower() for pair in _seq(node.cteRelations())}
        elif name == "UnresolvedTableValuedFunction":
            function = ".".join(str(p) for p in _seq(node.name())).lower()
            if function not in SAFE_TABLE_FUNCTIONS:
                raise QueryRefused(refuse.format(f"the table function {function}() is not allowed"))
        stack += _seq(node.children()) + _seq(node.subqueries())
    for relation in relations:
        name = relation.removeprefix("spark_catalog.")
        if name not in registered and name not in ctes:
            raise QueryRefused(
                f"{relation} is not a table of the lake; tables: {', '.join(sorted(registered)) or 'none'} "
                "(files cannot be read by path)"
            )


def run_query(spark, settings: Settings, query: str, allow_writes: bool = False):
    """The DataFrame of one read-only ``query`` over the lake's tables, by name (``silver.events``).

    Refused (``QueryRefused``) unless it is a query: DML (DELETE, UPDATE, MERGE, INSERT), DDL,
    RESTORE, SET, CACHE, several statements, reads of files by path and of tables outside the lake.
    ``allow_writes`` (operators) runs any statement, logged.
    """
    from lakecart.tables import register_tables

    registered = set(register_tables(spark, _absolute(settings)))
    if allow_writes:
        log.warning("lakecart sql --allow-writes: running %r", query)
        return spark.sql(query)
    _check_read_only(spark, query, registered)
    previous = spark.conf.get("spark.sql.runSQLOnFiles")
    spark.conf.set("spark.sql.runSQLOnFiles", "false")  # belt and braces: no `format`.`path` reads
    try:
        return spark.sql(query)  # analysed here, so the setting applies
    finally:
        spark.conf.set("spark.sql.runSQLOnFiles", previous)
