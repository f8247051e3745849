"""Reading a training set's shard per worker (``training/data.py``)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from lakecart.jobs.training_set import KINDS
from lakecart.training.data import read_shard
from lakecart.training.tasks import TASKS


def _one_file_training_set(path) -> None:
    # 3 users with 1, 2 and 4 rows, all in one file: fewer files than the workers below.
    rows = pd.DataFrame(
        {
            "dataset_id": ["d1"] * 7,
            "user_id": [10, 20, 20, 30, 30, 30, 30],
            "event_id": [1, 2, 3, 4, 5, 6, 7],
            "split": ["train"] * 6 + ["test"],
        }
    )
    write_deltalake(str(path), pa.Table.from_pandas(rows, preserve_index=False), partition_by=["dataset_id"])


def test_with_fewer_files_than_workers_each_entity_stays_with_one_worker(tmp_path):
    _one_file_training_set(tmp_path / "t")
    shards = [read_shard(str(tmp_path / "t"), "d1", rank, 4, shard_key="user_id") for rank in range(4)]
    # Disjoint, and together the whole set.
    assert sorted(e for s in shards for e in s["event_id"]) == [1, 2, 3, 4, 5, 6, 7]
    # Every user's rows in exactly one shard.
    owners = {u: [r for r, s in enumerate(shards) if u in set(s["user_id"])] for u in (10, 20, 30)}
    assert all(len(ranks) == 1 for ranks in owners.values()), owners
    assert [int((s["user_id"] == 30).sum()) for s in shards if 30 in set(s["user_id"])] == [4]


def test_without_a_key_rows_are_strided_and_a_split_filters(tmp_path):
    _one_file_training_set(tmp_path / "t")
    shards = [read_shard(str(tmp_path / "t"), "d1", rank, 2) for rank in range(2)]
    assert [list(s["event_id"]) for s in shards] == [[1, 3, 5, 7], [2, 4, 6]]
    assert list(read_shard(str(tmp_path / "t"), "d1", 0, 1, split="test")["event_id"]) == [7]


def test_every_task_shards_by_the_key_its_training_set_is_split_by():
    assert {name: task.shard_key for name, task in TASKS.items()} == {
        name: KINDS[task.dataset_kind].shard_key for name, task in TASKS.items()
    }


def test_the_catalogue_is_read_at_the_version_the_training_set_pinned(tmp_path):
    """A retrieval set built when the catalogue had 2 items keeps reading those 2 after a third item
    lands (version 1), so training, evaluation and outputs agree with the manifest."""
    import json

    from lakecart import tables
    from lakecart.config import LakeSettings, Settings
    from lakecart.training.tasks.retrieval import RetrievalTask

    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    items = tables.table_path(tables.SILVER_ITEMS, settings)
    row = {"category": "c1", "brand": "b", "price": 1.0}
    write_deltalake(items, pd.DataFrame([{"item_id": "i1", **row}, {"item_id": "i2", **row}]))  # version 0
    write_deltalake(items, pd.DataFrame([{"item_id": "i3", **row}]), mode="append")  # version 1
    manifests = tables.table_path(tables.TRAINING_MANIFESTS, settings)
    for dataset_id, pinned in (("retrieval_20260101", 0), ("retrieval_20260102", None)):
        manifest = {"dataset_id": dataset_id, "input_versions": {"silver.items": pinned}}
        write_deltalake(
            manifests, pd.DataFrame([{"dataset_id": dataset_id, "manifest": json.dumps(manifest)}]), mode="append"
        )
    assert RetrievalTask(settings, "retrieval_20260101").catalogue()["item_id"].tolist() == ["i1", "i2"]
    # Nothing pinned (no catalogue when the set was built): the newest version.
    assert RetrievalTask(settings, "retrieval_20260102").catalogue()["item_id"].tolist() == ["i1", "i2", "i3"]


def test_purchased_categories_read_both_sources_up_to_the_date_and_only_purchases(tmp_path):
    from datetime import date

    from lakecart import tables
    from lakecart.config import LakeSettings, Settings
    from lakecart.training.data import purchased_categories

    settings = Settings(lake=LakeSettings(root=str(tmp_path / "lake")))
    catalogue = pd.DataFrame(
        {"item_id": ["i1", "i2", "i3", "i4", "i5", "i6", "i7"], "category": ["x", "y", "x", "z", "y", "z", "x"]}
    )
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u1"],
            "item_id": ["i1", "i2", "i3", "i4", "i7"],
            "event_type": ["purchase", "view", "purchase", "purchase", "purchase"],
            "event_date": [date(2026, 1, 5), date(2026, 1, 5), date(2025, 12, 1), date(2026, 1, 11), date(2026, 1, 6)],
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": ["o1", "o2"],
            "user_id": ["u3", "u3"],
            "item_id": ["i5", "i6"],
            "order_date": [date(2026, 1, 10), date(2025, 11, 30)],
        }
    )
    write_deltalake(tables.table_path(tables.SILVER_EVENTS, settings), events, partition_by=["event_date"])
    write_deltalake(tables.table_path(tables.SILVER_ORDER_LINES, settings), lines, partition_by=["order_date"])
    got = purchased_categories(settings, catalogue, date(2025, 12, 1), date(2026, 1, 10))
    # u1 bought i1 and i7 (both x: one pair) and only viewed i2; i4 (z) and i6 (z) fall after and
    # before the range.
    assert list(map(tuple, got.to_numpy())) == [("u1", "x"), ("u2", "x"), ("u3", "y")]
    # An order export alone (no clickstream table at all) reads its lines.
    orders_only = Settings(lake=LakeSettings(root=str(tmp_path / "orders-only")))
    write_deltalake(tables.table_path(tables.SILVER_ORDER_LINES, orders_only), lines, partition_by=["order_date"])
    got = purchased_categories(orders_only, catalogue, date(2025, 11, 1), date(2026, 1, 10))
    assert list(map(tuple, got.to_numpy())) == [("u3", "y"), ("u3", "z")]
    # At the versions a training set pinned: lines appended since (version 1) are not read, and a
    # table the set was built without (pinned None: it did not exist then) is not read either.
    later = pd.DataFrame({"order_id": ["o3"], "user_id": ["u3"], "item_id": ["i1"], "order_date": [date(2026, 1, 9)]})
    write_deltalake(tables.table_path(tables.SILVER_ORDER_LINES, settings), later, mode="append")
    pinned = {str(tables.SILVER_ORDER_LINES): 0, str(tables.SILVER_EVENTS): None}
    got = purchased_categories(settings, catalogue, date(2025, 12, 1), date(2026, 1, 10), versions=pinned)
    assert list(map(tuple, got.to_numpy())) == [("u3", "y")]
    # Not pinned (a table the manifest does not name): the newest version.
    got = purchased_categories(settings, catalogue, date(2025, 12, 1), date(2026, 1, 10), versions={})
    assert ("u3", "x") in set(map(tuple, got.to_numpy()))
