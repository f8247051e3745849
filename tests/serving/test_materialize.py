"""Online = offline: what ``lakecart online materialize`` writes and ``feature_vectors`` reads equals,
column by column, what the point-in-time join (Spark, the training sets' join) gives for the same
entities and instants, on both stores; plus the published model outputs.

The tiny lake (written with delta-rs) holds the user service's clickstream views but no order
lines (``customer_orders_v1`` has no table: skipped), one item view, the registry and gold tables.
Every view's TTL is 2 days. T = 2026-01-10 12:00 UTC (materialisation), T2 = 2026-01-12 00:00 UTC
(a later lookup). Activity rows, by user (feature_date -> available_at):
- u1: Jan 5..9, each known at midnight after its day: at T the Jan 9 row (12 h old); at T2 it is
  exactly 2 days old: expired (the TTL boundary is exclusive: ``now - available_at < ttl``).
- u2: newest known Jan 8 00:00: 2.5 days old at T: null at T (its sequences row keeps it known).
- u3: Jan 9 (known Jan 10 00:00) and Jan 10 known only on Jan 13 (after T2): the Jan 9 row at T.
- u4: known at exactly T - 2 days: expired at T; its sequences row, 1 microsecond younger, is fresh.
- u5: Jan 8 and Jan 9 both known Jan 10 00:00: the newer feature_date (Jan 9) wins.
- u6: Jan 9 known Jan 10 06:00: fresh at T and at T2 (1 day 18 h old).
No row becomes known between T and T2, so the join at T2 is also what a lookup at T2 must give.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from lakecart import tables
from lakecart.features import REGISTRY
from lakecart.features.pit import feature_column, feature_time_column
from lakecart.serving.lookup import feature_vectors, to_micros
from lakecart.serving.materialize import materialize
from lakecart.serving.services import SERVICES

T = datetime(2026, 1, 10, 12, tzinfo=UTC)
T2 = datetime(2026, 1, 12, tzinfo=UTC)
USERS = ["u1", "u2", "u3", "u4", "u5", "u6", "u9"]  # u9: nobody knows it
ACTIVITY, SEQUENCES = REGISTRY["user_activity_v2"], REGISTRY["user_sequences_v1"]
POPULARITY = REGISTRY["item_popularity_v2"]
_ARROW = {"int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(), "string": pa.string()}


def midnight(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def value(entity: str, day: int, index: int, dtype: str):
    """A feature's value: (31 * entity number + 7 * day + index) % 97, / 8 for doubles; the 18th
    activity feature (days_since_purchase) is null for u1."""
    n = (31 * int(entity[1:]) + 7 * day + index) % 97
    if entity == "u1" and index == 17:
        return None
    if dtype.startswith("array"):
        return [f"i{n}", f"i{n + 1}"]
    return n / 8 if dtype == "double" else n


def view_rows(view, rows: list[tuple[str, int, datetime]]) -> pa.Table:
    """A feature view's table rows: (key, feature_date day of January, available_at)."""
    key = view.entity.keys[0]
    columns = {
        key: pa.array([r[0] for r in rows], pa.string()),
        "feature_date": pa.array([date(2026, 1, r[1]) for r in rows], pa.date32()),
        "available_at": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")),
    }
    for index, f in enumerate(view.features):
        kind = pa.list_(pa.string()) if f.dtype.startswith("array") else _ARROW[f.dtype]
        columns[f.name] = pa.array([value(r[0], r[1], index, f.dtype) for r in rows], kind)
    return pa.table(columns)


def write(settings, name: str, data, mode: str = "overwrite", partition_by=None) -> None:
    from deltalake import write_deltalake

    write_deltalake(tables.table_path(name, settings), data, mode=mode, partition_by=partition_by)


def verdict(settings, view, first: int, last: int, success: bool, validated_at: datetime) -> None:
    """One gate verdict in meta.validation_runs for ``view``'s days first..last of January."""
    row = {
        "table": view.qualified_name,
        "batch": f"2026-01-{first:02d}..2026-01-{last:02d}",
        "start_date": date(2026, 1, first),
        "end_date": date(2026, 1, last),
        "success": success,
        "validated_at": validated_at.replace(tzinfo=None),
    }
    write(settings, tables.VALIDATION_RUNS, pd.DataFrame([row]), mode="append")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from lakecart.config import LakeSettings, Settings

    settings = Settings(lake=LakeSettings(root=str(tmp_path_factory.mktemp("serving-lake"))))
    late = midnight(8) + timedelta(hours=12)  # T - 2 days
    activity = [("u1", d, midnight(d + 1)) for d in range(5, 10)]
    activity += [("u2", 6, midnight(7)), ("u2", 7, midnight(8)), ("u3", 9, midnight(10)), ("u4", 8, late)]
    activity += [("u5", 8, midnight(10)), ("u5", 9, midnight(10))]
    write(settings, ACTIVITY.qualified_name, view_rows(ACTIVITY, activity), partition_by=["feature_date"])
    # A second commit (version 1): what the report must record.
    more = [("u3", 10, midnight(13)), ("u6", 9, midnight(10) + timedelta(hours=6))]
    write(settings, ACTIVITY.qualified_name, view_rows(ACTIVITY, more), "append", ["feature_date"])
    sequences = [("u1", 9, midnight(10)), ("u2", 9, midnight(10)), ("u6", 9, midnight(10) + timedelta(hours=6))]
    sequences += [("u4", 8, late + timedelta(microseconds=1))]
    write(settings, SEQUENCES.qualified_name, view_rows(SEQUENCES, sequences), partition_by=["feature_date"])
    # Items: i3 expired at T (known Jan 8 00:00); units_sold_28d is feature 8: (31 n + 63 + 8) % 97.
    items = [("i1", 9, midnight(10)), ("i2", 9, midnight(10)), ("i4", 9, midnight(10)), ("i3", 7, midnight(8))]
    write(settings, POPULARITY.qualified_name, view_rows(POPULARITY, items), partition_by=["feature_date"])

    for view in (ACTIVITY, SEQUENCES, POPULARITY):
        verdict(settings, view, 5, 10, True, T)

    registry = [
        ("retrieval-20260108", "retrieval", "published", midnight(9)),
        ("retrieval-20260109", "retrieval", "approved", midnight(10)),  # gated, never published
        ("churn-20260109", "churn", "published", midnight(10)),
    ]
    write(
        settings,
        tables.MODEL_REGISTRY,
        pd.DataFrame(registry, columns=["model_version", "model", "status", "created_at"]).assign(kind="model"),
    )
    recommendations = [
        ("retrieval-20260108", "u1", 2, "i3", 0.5),
        ("retrieval-20260108", "u1", 1, "i2", 0.75),
        ("retrieval-20260108", "u2", 1, "i1", 0.25),
        ("retrieval-20260109", "u1", 1, "i9", 1.0),
    ]
    frame = pd.DataFrame(recommendations, columns=["model_version", "user_id", "rank", "item_id", "score"])
    write(settings, tables.RECOMMENDATIONS, frame.astype({"rank": "int32", "score": "float32"}))
    churn = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "as_of": [date(2026, 1, 9)] * 2,
            "horizon_days": pd.Series([14, 14], dtype="int32"),
            "churn_probability": pd.Series([0.25, 0.75], dtype="float32"),
            "model_version": "churn-20260109",
        }
    )
    write(settings, tables.CHURN_SCORES, churn)
    segments = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "segment": pd.Series([0, 2, 1], dtype="int32"),
            "distance_to_centroid": pd.Series([0.5, 1.5, 0.25], dtype="float32"),
            "as_of": [date(2026, 1, 8), date(2026, 1, 9), date(2026, 1, 9)],
            "model_version": ["segments-20260108", "segments-20260109", "segments-20260109"],
            "created_at": [midnight(9), midnight(10), midnight(10)],
        }
    )
    write(settings, tables.USER_SEGMENTS, segments)
    return settings


@pytest.fixture(scope="module")
def offline(lake, spark):
    """The point-in-time join of every user at T and at T2 with the views the lake has, as
    {(user, instant): {column: value}}; times as microseconds since the epoch."""
    from pyspark.sql import functions as F

    from lakecart.features.pit import point_in_time_join

    labels = spark.createDataFrame(
        [(u, to_micros(t)) for u in USERS for t in (T, T2)], "user_id string, t long"
    ).withColumn("label_time", F.timestamp_micros("t"))
    views = [
        (view, spark.read.format("delta").load(tables.table_path(view.qualified_name, lake)))
        for view in (ACTIVITY, SEQUENCES)
    ]
    joined = point_in_time_join(labels, "label_time", views)
    times = [feature_time_column(v) for v, _ in views]
    joined = joined.select(*[F.unix_micros(c).alias(c) if c in times else F.col(c) for c in joined.columns])
    out = {}
    for row in joined.collect():
        values = row.asDict()
        key = (values.pop("user_id"), values.pop("t"))
        out[key] = {k: v for k, v in values.items() if k != "label_time"}
    return out


def online_at(store, now: datetime) -> dict:
    vectors = feature_vectors(store, "user", USERS, now)
    service = SERVICES["user"]
    columns = service.feature_columns() + service.time_columns()
    out = {}
    for user, vector in zip(USERS, vectors, strict=True):
        vector = vector if vector is not None else dict.fromkeys(columns)  # unknown: every column null
        out[user] = {
            k: (to_micros(v) if k.startswith("feature_time__") and v is not None else v) for k, v in vector.items()
        }
    return out


def test_online_equals_the_point_in_time_join(lake, offline, online_store):
    report = materialize(lake, T, store=online_store)
    for now in (T, T2):
        online = online_at(online_store, now)
        for user in USERS:
            expected = offline[(user, to_micros(now))]
            got = online[user]
            for column, value in expected.items():
                assert got[column] == value, (user, now, column)
            # The view the lake has no table for: nulls online (and no column offline).
            orders = REGISTRY["customer_orders_v1"]
            assert all(got[feature_column(orders, f)] is None for f in orders.feature_names())
            assert got[feature_time_column(orders)] is None
    views = report["namespaces"]["features:user"]
    # Activity: two commits (versions 0, 1); the verdicts: three appends (0, 1, 2).
    assert views["tables"] == {
        "features.user_activity_v2": 1,
        "features.user_sequences_v1": 0,
        "meta.validation_runs": 2,
    }
    assert views["skipped"] == ["features.customer_orders_v1: no table in the lake (not materialised for this shop)"]
    assert online_store.meta("features:user")["tables"] == views["tables"]


def test_hand_computed_cells_and_ttl(lake, online_store):
    """A few cells by hand, so the comparison above cannot pass with both sides wrong the same way."""
    materialize(lake, T, store=online_store)
    views_1d, days_since_purchase = (
        feature_column(ACTIVITY, "views_1d"),
        feature_column(ACTIVITY, "days_since_purchase"),
    )
    activity_time = feature_time_column(ACTIVITY)
    at_t = dict(zip(USERS, feature_vectors(online_store, SERVICES["user"], USERS, T), strict=True))
    assert at_t["u1"][views_1d] == (31 + 63) % 97  # 94: the Jan 9 row (index 0)
    assert at_t["u1"][days_since_purchase] is None  # a null feature stays null
    assert at_t["u1"][activity_time] == midnight(10)
    assert at_t["u2"][views_1d] is None and at_t["u2"][activity_time] is None  # 2.5 days old: expired
    assert at_t["u3"][views_1d] == (93 + 63) % 97  # 59: Jan 9; the Jan 10 row is not known yet
    assert at_t["u4"][views_1d] is None  # exactly one TTL old: expired
    assert at_t["u4"][feature_column(SEQUENCES, "recent_length")] == (124 + 56 + 2) % 97  # 85: 1 us younger
    assert at_t["u5"][views_1d] == (155 + 63) % 97  # 24: same available_at, the newer feature_date
    assert at_t["u9"] is None
    later = dict(zip(USERS, feature_vectors(online_store, "user", USERS, T2), strict=True))
    assert later["u1"][views_1d] is None  # fresh at materialisation, exactly 2 days old at T2
    assert later["u6"][views_1d] == (186 + 63) % 97  # 55: known Jan 10 06:00, still fresh
    before = feature_vectors(online_store, "user", ["u6"], midnight(10))
    assert before[0][views_1d] is None  # a lookup before the row was known does not see it


def test_published_outputs(lake, online_store):
    report = materialize(lake, T, store=online_store)
    recommendations = online_store.get("recommendations", ["u1", "u2", "u3"])
    assert recommendations == [
        {
            "model_version": "retrieval-20260108",
            "items": [{"item_id": "i2", "score": 0.75}, {"item_id": "i3", "score": 0.5}],
        },
        {"model_version": "retrieval-20260108", "items": [{"item_id": "i1", "score": 0.25}]},
        None,
    ]
    assert report["namespaces"]["recommendations"]["tables"] == {"gold.recommendations": 0, "gold.model_registry": 0}
    churn = online_store.get("churn", ["u2"])[0]
    assert churn == {
        "model_version": "churn-20260109",
        "churn_probability": 0.75,
        "horizon_days": 14,
        "as_of": "2026-01-09",
    }
    segments = online_store.get("segments", ["u1", "u2"])
    assert [s["segment"] for s in segments] == [2, 1]  # the newest version, segments-20260109
    assert segments[0]["model_version"] == "segments-20260109"
    # units_sold_28d (feature 8): i1 (31+71)%97 = 5, i2 (62+71)%97 = 36, i4 (124+71)%97 = 1; i3 expired.
    top = online_store.get("popular", ["top"])[0]
    assert top["items"] == [
        {"item_id": "i2", "score": 36.0},
        {"item_id": "i1", "score": 5.0},
        {"item_id": "i4", "score": 1.0},
    ]
    assert sorted(report["namespaces"]) == [
        "churn",
        "features:item",
        "features:user",
        "popular",
        "recommendations",
        "segments",
    ]
    assert len(report["namespaces"]["features:item"]["skipped"]) == 3  # demand, sales, promotions: no tables
    # The ranking model's views (the v1 versions) are not in this lake.
    assert sorted(report["skipped"]) == ["features:ranking_item", "features:ranking_user"]


def test_a_lake_without_models_skips_their_namespaces(settings, online_store):
    write(settings, SEQUENCES.qualified_name, view_rows(SEQUENCES, [("u1", 9, midnight(10))]))
    verdict(settings, SEQUENCES, 9, 9, True, T)
    report = materialize(settings, T, store=online_store)
    assert sorted(report["namespaces"]) == ["features:user"]
    assert set(report["skipped"]) == {
        "features:item",
        "features:ranking_user",
        "features:ranking_item",
        "recommendations",
        "churn",
        "segments",
        "popular",
    }
    assert "nothing is published for retrieval" in report["skipped"]["recommendations"]
    assert online_store.namespaces() == ["features:user"]


def test_cli_materialize_then_status(lake, monkeypatch, capsys):
    import json

    from lakecart.cli import main
    from lakecart.config import get_settings

    monkeypatch.setenv("LAKECART_LAKE__ROOT", lake.lake.root)
    get_settings.cache_clear()
    try:
        assert main(["online", "materialize", "--as-of", "2026-01-10T12:00"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["as_of"] == "2026-01-10T12:00:00+00:00" and report["store"] == "lmdb"
        assert report["namespaces"]["features:user"]["rows"] == 6  # u1..u6 (u2, u4: by their sequences rows)
        assert main(["online", "status"]) == 0
        status = json.loads(capsys.readouterr().out)
    finally:
        get_settings.cache_clear()
    assert sorted(status) == sorted(report["namespaces"])
    assert status["features:user"]["version"] == report["namespaces"]["features:user"]["version"]
    assert status["recommendations"]["model_version"] == "retrieval-20260108"
    assert status["churn"]["tables"] == {"gold.churn_scores": 0, "gold.model_registry": 0}


def test_only_validated_days_are_served(lake, tmp_path, online_store):
    """A newer failing verdict for Jan 9 (the day most activity rows served at T come from): the user
    service is not written and keeps its previous version; a day never validated is refused too."""
    import shutil

    from lakecart.config import LakeSettings, Settings

    first = materialize(lake, T, store=online_store)["namespaces"]["features:user"]["version"]
    copy = Settings(lake=LakeSettings(root=str(tmp_path / "copy")))
    shutil.copytree(lake.lake.tables, copy.lake.tables, ignore=shutil.ignore_patterns("online"))
    verdict(copy, ACTIVITY, 9, 9, False, T + timedelta(hours=1))
    report = materialize(copy, T, store=online_store)
    assert "features:user" not in report["namespaces"]
    assert report["skipped"]["features:user"].startswith(
        "features.user_activity_v2 would serve days without a passing validation (2026-01-09)"
    )
    assert online_store.meta("features:user")["version"] == first
    assert "features:item" in report["namespaces"]  # the item service's own days passed
    verdict(copy, ACTIVITY, 9, 9, True, T + timedelta(hours=2))  # validated again: served
    assert "features:user" in materialize(copy, T, store=online_store)["namespaces"]
    never = Settings(lake=LakeSettings(root=str(tmp_path / "never")))
    write(never, SEQUENCES.qualified_name, view_rows(SEQUENCES, [("u1", 9, midnight(10))]))
    assert "2026-01-09" in materialize(never, T, store=online_store)["skipped"]["features:user"]
