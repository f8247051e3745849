"""Table declarations (lakecart/tables.py): one place a table is defined."""

from __future__ import annotations

import pickle

import pytest

from lakecart import tables
from lakecart.config import LakeSettings, Settings


def test_a_declaration_is_its_name_and_carries_its_contract():
    assert tables.SILVER_EVENTS == "silver.events"
    assert {tables.SILVER_EVENTS: 1}["silver.events"] == 1  # usable wherever a name is
    assert tables.SILVER_EVENTS.keys == ("event_id",)
    assert tables.SILVER_EVENTS.partition == "event_date"
    assert tables.SILVER_EVENTS.layer == "silver"
    # Pickled into a Spark closure, it stays a declaration.
    copy = pickle.loads(pickle.dumps(tables.STAGING_ORDER_LINES))
    assert isinstance(copy, tables.Table) and copy.keys == ("order_id", "item_id")


def test_every_declared_table_lives_under_its_layer(tmp_path):
    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    for name, table in tables.DECLARED.items():
        layer, short = name.split(".")
        assert table.path(settings) == f"{tmp_path}/lake/{layer}/{short}"


def test_a_relative_lake_root_becomes_absolute(tmp_path, monkeypatch):
    # Spark's catalogue resolves a relative LOCATION against its warehouse, delta-rs against the
    # working directory: one absolute path keeps them on the same table.
    monkeypatch.chdir(tmp_path)
    settings = Settings(lake=LakeSettings(root="data"))
    assert tables.table_path(tables.SILVER_ITEMS, settings) == f"{tmp_path}/data/lake/silver/items"
    object_store = Settings(lake=LakeSettings(root="s3a://shop-lake"))
    assert tables.table_path(tables.SILVER_ITEMS, object_store) == "s3a://shop-lake/lake/silver/items"


def test_every_suite_resolves_to_expectations():
    with_suites = [t for t in tables.DECLARED.values() if t.suite]
    # bronze x4, staging x4 (events, orders, users, promotions), training sets x4
    assert len(with_suites) == 12
    for table in with_suites:
        suite = table.expectations()
        assert suite, table
        assert table.validates


def test_feature_views_are_declared_by_their_definition():
    from lakecart.features import REGISTRY

    for view in REGISTRY.values():
        table = tables.declared(view.qualified_name)
        assert table.keys == (*view.entity.keys, "feature_date")
        assert table.partition == "feature_date"
        assert len(table.expectations()) >= 4


def test_tiles_are_declared_by_the_views_that_keep_them():
    import pickle

    from lakecart.features import REGISTRY

    tiled = [v for v in REGISTRY.values() if v.tiles is not None]
    assert tiled and all(v.tile_table == f"tiles.{v.table_name}" for v in tiled)
    for view in tiled:
        table = tables.declared(view.tile_table)
        assert (table.partition, table.keys) == (view.tiles.day, (*view.entity.keys, view.tiles.day))
        assert pickle.loads(pickle.dumps(table)).keys == table.keys
    untiled = next(v for v in REGISTRY.values() if v.tiles is None)
    with pytest.raises(LookupError, match="not a declared table"):
        tables.declared(f"tiles.{untiled.table_name}")


def test_undeclared_names_and_half_declarations_are_errors():
    with pytest.raises(LookupError, match="not a declared table"):
        tables.declared("silver.evnets")
    with pytest.raises(ValueError, match="layer.table"):
        tables.Table("events", keys=(), description="")
    with pytest.raises(ValueError, match="rows it validates"):
        tables.Table("x.y", keys=(), description="", suite="m:f")


def test_registering_another_lake_repoints_the_names(spark, tmp_path):
    """One long-lived session (a notebook, the test session) registering lake A, then lake B: the
    names must read B, and A's data stays where it was."""
    lakes = []
    for label, ids in (("a", range(2)), ("b", range(5))):  # lake a: 2 rows, lake b: 5 rows
        settings = Settings(lake=LakeSettings(root=str(tmp_path / label)))
        spark.createDataFrame([(i,) for i in ids], "id long").write.format("delta").save(
            tables.table_path(tables.SILVER_ITEMS, settings)
        )
        lakes.append(settings)
    tables.register_tables(spark, lakes[0])
    assert spark.sql("SELECT count(*) AS n FROM silver.items").first()["n"] == 2
    tables.register_tables(spark, lakes[1])
    assert spark.sql("SELECT count(*) AS n FROM silver.items").first()["n"] == 5
    # Dropping the old catalogue entry deleted nothing: lake a still holds its 2 rows.
    assert spark.read.format("delta").load(tables.table_path(tables.SILVER_ITEMS, lakes[0])).count() == 2


def test_validation_targets_come_from_the_declarations():
    from lakecart.errors import UsageError
    from lakecart.jobs import validate

    # A silver source is validated in its staging table (write-audit-publish's audit).
    assert validate._validated_table("silver.events") is tables.STAGING_SILVER_EVENTS
    assert validate._validated_table("silver.order_lines") is tables.STAGING_ORDER_LINES
    assert validate._validated_table("training.churn") is tables.TRAINING_CHURN
    assert validate._validated_table("features.user_activity_v2").partition == "feature_date"
    declared_with_suites = {t for t in tables.DECLARED.values() if t.suite}
    assert declared_with_suites <= set(validate.known_targets())
    assert validate.expand_targets(["training.*"]) == [
        "training.category_demand",
        "training.churn",
        "training.demand",
        "training.retrieval",
    ]
    with pytest.raises(UsageError, match="no validation suite for 'gold.recommendations'"):
        validate._validated_table("gold.recommendations")
    with pytest.raises(UsageError, match=r"no validation target matches 'silver\.nope\*'"):
        validate.expand_targets(["silver.nope*"])


def test_every_training_set_kind_has_its_declared_table():
    from lakecart.jobs.training_set import KINDS

    assert set(tables.TRAINING_SETS) == set(KINDS)
    for name, kind in KINDS.items():
        assert kind.table is tables.training_set(name)
        # One row per dataset and the kind's own unique key.
        assert kind.table.keys == ("dataset_id", *kind.unique_key)
    with pytest.raises(LookupError, match="kinds: retrieval"):
        tables.training_set("retrival")


def test_raw_sources_take_keys_and_partitions_from_their_declared_tables():
    from lakecart.jobs import ingest

    expected = {  # what silver promises: one row per key
        "events": (("event_id",), "event_date"),
        "orders": (("order_id", "item_id"), "order_date"),
        "users": (("user_id",), None),
        "promotions": (("item_id", "store_id", "start_date"), "start_date"),
    }
    for name, source in ingest.SOURCES.items():
        assert (source.keys, source.silver_partition) == expected[name]
        assert source.staging.keys == source.silver.keys  # the audited batch has the same key
