"""``lakecart tables`` (``lakecart.summary.table_overview``): the lake's tables read with delta-rs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakecart.summary import table_overview


def test_a_half_created_table_is_reported_and_the_others_listed(settings):
    lake = settings.lake.tables
    write_deltalake(f"{lake}/silver/items", pa.table({"item_id": ["i1", "i2", "i3"]}))
    write_deltalake(f"{lake}/silver/items", pa.table({"item_id": ["i4"]}), mode="append")
    # A run killed during a table's first commit leaves a log folder with no commit in it.
    (Path(lake) / "silver" / "events" / "_delta_log").mkdir(parents=True)

    rows = {row["table"]: row for row in table_overview(settings)}

    # 3 rows in version 0 + 1 appended in version 1.
    assert {k: rows["silver.items"][k] for k in ("rows", "version")} == {"rows": 4, "version": 1}
    assert rows["silver.events"]["rows"] is None and rows["silver.events"]["version"] is None
    assert "no commit" in rows["silver.events"]["error"] and "re-run" in rows["silver.events"]["error"]


def test_the_tables_command_lists_the_good_table_and_warns_about_the_broken_one(settings, capsys):
    import json

    from lakecart.cli import main

    write_deltalake(f"{settings.lake.tables}/silver/items", pa.table({"item_id": ["i1"]}))
    (Path(settings.lake.tables) / "silver" / "events" / "_delta_log").mkdir(parents=True)

    assert main(["tables"]) == 0
    out, err = capsys.readouterr()
    assert [(r["table"], r["rows"]) for r in json.loads(out)] == [("silver.events", None), ("silver.items", 1)]
    assert "silver.events: no commit in _delta_log" in err


def test_files_written_without_statistics_are_counted_too(spark, settings):
    path = f"{settings.lake.tables}/silver/items"
    spark.range(3).write.format("delta").save(path)
    key = "spark.databricks.delta.stats.collect"
    spark.conf.set(key, "false")  # a writer that records no row count for its file
    try:
        spark.range(2).write.format("delta").mode("append").save(path)
    finally:
        spark.conf.unset(key)
    rows = {row["table"]: row for row in table_overview(settings)}
    assert rows["silver.items"]["rows"] == 5  # not 3: the log knows only the first file's count
