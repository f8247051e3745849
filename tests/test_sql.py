"""``lakecart sql`` is read-only: one query over the lake's registered tables. Statements that change
data, settings or the catalogue, reads of arbitrary files and of tables outside the lake are refused
before anything runs; ``--allow-writes`` lets an operator run them, logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakecart import tables
from lakecart.errors import LakecartError
from lakecart.summary import run_query


def make_lake(spark, settings):
    """silver.events: ids 0..4 (5 rows); gold.recommendations: ids 3..5 (3 rows)."""
    for name, ids in ((tables.SILVER_EVENTS, range(5)), (tables.RECOMMENDATIONS, range(3, 6))):
        spark.createDataFrame([(i, f"u{i}") for i in ids], "id long, user_id string").write.format("delta").save(
            tables.table_path(name, settings)
        )
    return settings


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """One lake for the tests that change nothing (each checks that)."""
    from lakecart.config import LakeSettings, Settings

    root = tmp_path_factory.mktemp("sql") / "lake-root"
    return make_lake(spark, Settings(lake=LakeSettings(root=str(root))))


def count(spark, settings) -> int:
    return spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings)).count()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT count(*) AS n FROM silver.events", [5]),
        # ids 3 and 4 are in both tables
        ("SELECT count(*) AS n FROM silver.events e JOIN gold.recommendations r USING (id)", [2]),
        ("SELECT id FROM silver.events WHERE id IN (SELECT id FROM gold.recommendations) ORDER BY id", [3, 4]),
        ("WITH big AS (SELECT id FROM silver.events WHERE id > 2) SELECT count(*) FROM big", [2]),
        ("SELECT count(*) FROM silver.events VERSION AS OF 0", [5]),
        ("SELECT sum(id) FROM range(4)", [6]),  # 0 + 1 + 2 + 3
    ],
)
def test_queries_over_the_lake_run(spark, lake, query, expected):
    assert [r[0] for r in run_query(spark, lake, query).collect()] == expected


REFUSED = {
    "delete": "DELETE FROM silver.events WHERE id < 3",
    "update": "UPDATE silver.events SET user_id = 'x'",
    "merge": "MERGE INTO silver.events t USING gold.recommendations s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "insert": "INSERT INTO silver.events SELECT * FROM gold.recommendations",
    "insert with cte": "WITH s AS (SELECT * FROM gold.recommendations) INSERT INTO silver.events SELECT * FROM s",
    "restore": "RESTORE TABLE silver.events TO VERSION AS OF 0",
    "create table as": "CREATE TABLE silver.copy AS SELECT * FROM silver.events",
    "drop": "DROP TABLE silver.events",
    "truncate": "TRUNCATE TABLE silver.events",
    "set": "SET spark.sql.runSQLOnFiles=true",
    "cache": "CACHE TABLE silver.events",
    "vacuum": "VACUUM silver.events",
    "optimize": "OPTIMIZE silver.events",
    "describe history": "DESCRIBE HISTORY silver.events",
    "a file": "SELECT * FROM text.`/etc/passwd`",
    "a delta path": "SELECT * FROM delta.`/tmp`",
    "an unknown table": "SELECT * FROM silver.nope",
    "two statements": "SELECT 1; DELETE FROM silver.events",
    "a script": "SELECT TRANSFORM(id) USING 'cat' FROM silver.events",
    "java reflection": "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
}


@pytest.mark.parametrize("query", REFUSED.values(), ids=REFUSED.keys())
def test_anything_but_a_query_of_the_lake_is_refused_and_changes_nothing(spark, lake, query):
    with pytest.raises(LakecartError, match="lakecart sql is read-only|does not parse|not a table of the lake"):
        run_query(spark, lake, query)
    assert count(spark, lake) == 5


def test_allow_writes_runs_a_statement(spark, settings, caplog):
    lake = make_lake(spark, settings)
    run_query(spark, lake, "DELETE FROM silver.events WHERE id < 2", allow_writes=True)
    assert count(spark, lake) == 3  # 5 rows, ids 0 and 1 deleted
    assert any("--allow-writes" in r.getMessage() for r in caplog.records)


def test_the_command_refuses_a_delete_in_one_line(spark, lake, capsys, monkeypatch, in_process_cli):
    from lakecart.cli import main
    from lakecart.config import get_settings

    monkeypatch.setenv("LAKECART_LAKE__ROOT", lake.lake.root)
    get_settings.cache_clear()

    # Before: exit 0 and the rows were gone.
    assert main(["sql", "DELETE FROM silver.events WHERE id < 3"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lakecart sql: error: lakecart sql is read-only") and "\n" not in err
    assert count(spark, lake) == 5
    get_settings.cache_clear()


def test_a_spark_analysis_error_is_one_line(spark, lake, capsys, monkeypatch, in_process_cli):
    from lakecart.cli import main
    from lakecart.config import get_settings

    monkeypatch.setenv("LAKECART_LAKE__ROOT", lake.lake.root)
    get_settings.cache_clear()
    # Before: an AnalysisException traceback with the JVM's stack.
    assert main(["sql", "SELECT no_such_column FROM silver.events"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lakecart sql: error: [UNRESOLVED_COLUMN") and "\n" not in err
    assert err.endswith("(check table and column names: `lakecart tables`)")
    get_settings.cache_clear()


def test_the_command_with_a_relative_lake_root_prints_json_and_leaves_no_warehouse(lake):
    # Run from the folder that holds the lake, naming it by a relative path.
    here = Path(lake.lake.root).parent
    env = {**os.environ, "LAKECART_LAKE__ROOT": "lake-root", "LAKECART_SPARK__SHUFFLE_PARTITIONS": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "lakecart.cli", "sql", "--json", "SELECT count(*) AS n FROM silver.events"],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Before: DELTA_TABLE_NOT_FOUND (the relative location) and ./spark-warehouse left behind.
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == [{"n": 5}]
    assert not (here / "spark-warehouse").exists()
    # Spark's start-up chatter stays out of sight: at most the JVM's own notice and a warning or two.
    noise = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(noise) <= 5 and not any(" INFO " in line for line in noise), noise
