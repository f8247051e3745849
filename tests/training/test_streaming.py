"""Training streams each worker's shard (issue 19): bounded record batches in, bounded shuffle
windows out, validation rows chosen per row, so a set larger than memory trains and the same seed
gives the same run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakecart.training.data import iter_shard, read_shard, rebatch
from lakecart.training.tasks.base import ModelTask


def _training_set(path, rows: int = 10, files: int = 1) -> str:
    """``rows`` rows (user u<n % 4>, x = n) over ``files`` files, rows 0..rows-3 in train."""
    frame = pd.DataFrame(
        {
            "dataset_id": ["d1"] * rows,
            "user_id": [f"u{n % 4}" for n in range(rows)],
            "event_id": np.arange(rows),
            "x": np.arange(rows, dtype="float64"),
            "split": ["train"] * (rows - 2) + ["test"] * 2,
        }
    )
    for part in np.array_split(np.arange(rows), files):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        write_deltalake(str(path), table, partition_by=["dataset_id"], mode="append")
    return str(path)


class Rows(ModelTask):
    """A task over the set above: the event id and x as inputs."""

    name = "rows"
    dataset_kind = "retrieval"
    shard_key = "user_id"

    def __init__(self, uri: str) -> None:
        super().__init__(None, "d1")
        self.uri = uri

    @property
    def table_uri(self) -> str:
        return self.uri

    def inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"event_id": frame["event_id"].to_numpy(), "x": frame[["x"]].to_numpy("float32")}


class Pairs(Rows):
    """A task whose examples combine a user's rows (as ranking's do)."""

    def examples(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.groupby("user_id", as_index=False).agg(event_id=("event_id", "min"), x=("x", "sum"))


def test_a_shard_is_read_a_bounded_batch_at_a_time_and_whole_files_only_for_paired_examples(tmp_path):
    uri = _training_set(tmp_path / "t", rows=10)
    frames = [frame for _, frame in iter_shard(uri, "d1", 0, 1, batch_rows=3)]
    # Never more than 3 rows held, and together the rows read_shard returns, in the same order.
    assert [len(f) for f in frames] == [3, 3, 3, 1]
    assert pd.concat(frames, ignore_index=True).equals(read_shard(uri, "d1", 0, 1))
    # The split filters each batch: 8 train rows.
    assert [len(f) for _, f in iter_shard(uri, "d1", 0, 1, split="train", batch_rows=3)] == [3, 3, 2]
    # Pairs need every row of a user: one frame per file (files hold whole users), one example per user.
    assert [len(f) for _, f in Rows(uri).stream_shard(0, 1, batch_rows=3)] == [3, 3, 3, 1]
    assert [len(f) for _, f in Pairs(uri).stream_shard(0, 1, batch_rows=3)] == [4]


def test_reading_holds_about_one_batch_of_arrow_memory_not_the_file(tmp_path):
    """8 row groups of 5000 rows of 200-byte strings (about 1 MB each, 8 MB in all) read 1000 rows
    at a time. Arrow's dataset scanner reads row groups ahead (6.4 MB held at once, measured); the
    shard reader holds about one batch (0.2 MB)."""
    from deltalake import WriterProperties

    rows = 40_000
    frame = pd.DataFrame({"dataset_id": "d1", "user_id": np.arange(rows) % 7, "payload": "x" * 200, "split": "train"})
    properties = WriterProperties(max_row_group_size=5000)
    write_deltalake(str(tmp_path / "t"), frame, partition_by=["dataset_id"], writer_properties=properties)
    before, held, seen = pa.total_allocated_bytes(), 0, 0
    for _, batch in iter_shard(str(tmp_path / "t"), "d1", 0, 1, split="train", batch_rows=1000):
        held, seen = max(held, pa.total_allocated_bytes() - before), seen + len(batch)
    assert seen == rows and held < 2**20  # less than one row group


def test_the_fallback_keeps_a_users_rows_together_when_read_in_batches(tmp_path):
    uri = _training_set(tmp_path / "t", rows=10)
    shards = [
        pd.concat(f for _, f in iter_shard(uri, "d1", rank, 3, shard_key="user_id", batch_rows=3)) for rank in range(3)
    ]
    assert sorted(e for s in shards for e in s["event_id"]) == list(range(10))
    owners = {u: [r for r, s in enumerate(shards) if u in set(s["user_id"])] for u in ("u0", "u1", "u2", "u3")}
    assert all(len(ranks) == 1 for ranks in owners.values()), owners
    # Without a key, every 3rd row counted over the batches, not restarted in each one.
    assert list(pd.concat(f for _, f in iter_shard(uri, "d1", 1, 3, batch_rows=4))["event_id"]) == [1, 4, 7]
    # A worker left without rows still learns the columns.
    (number, empty), *more = iter_shard(uri, "d1", 0, 1, split="none", batch_rows=4)
    assert not more and empty.empty and "x" in empty.columns


def test_rebatching_holds_one_window_and_one_chunk_never_the_stream():
    consumed = []

    def chunks():  # 25 rows in chunks of 3 (the last one 1 row)
        for start in range(0, 25, 3):
            consumed.append(min(start + 3, 25))
            yield {"id": np.arange(start, min(start + 3, 25))}

    yielded = 0
    batches = []
    for batch in rebatch(chunks(), 4, window_rows=8, rng=np.random.default_rng(0)):
        # Rows read but not yet handed on: under a window (8) plus a chunk (3).
        assert consumed[-1] - yielded <= 8 + 3 - 1
        yielded += 4
        batches.append(batch["id"])
    # 25 // 4 full batches, every row at most once, one row left over.
    assert [len(b) for b in batches] == [4] * 6
    assert len(set(np.concatenate(batches))) == 24
    # The same generator seed, the same batches; another seed, another order.
    again = list(
        rebatch(({"id": np.arange(s, min(s + 3, 25))} for s in range(0, 25, 3)), 4, 8, np.random.default_rng(0))
    )
    assert all((a["id"] == b).all() for a, b in zip(again, batches, strict=True))
    other = list(
        rebatch(({"id": np.arange(s, min(s + 3, 25))} for s in range(0, 25, 3)), 4, 8, np.random.default_rng(1))
    )
    assert any((a["id"] != b).any() for a, b in zip(other, batches, strict=True))
    # Without shuffling (validation): in order, the last batch kept.
    kept = list(rebatch(({"id": np.arange(s, min(s + 3, 7))} for s in range(0, 7, 3)), 4, drop_remainder=False))
    assert [list(b["id"]) for b in kept] == [[0, 1, 2, 3], [4, 5, 6]]


def test_validation_rows_partition_the_shard_and_are_the_same_in_every_run_with_the_seed(tmp_path):
    from lakecart.training.worker import ShardStream

    uri = _training_set(tmp_path / "t", rows=4000, files=2)

    def ids(stream: ShardStream, part: str) -> list[int]:
        return sorted(int(e) for inputs in stream.inputs(part) for e in inputs["event_id"])

    stream = ShardStream(Rows(uri), 0, 1, validation_fraction=0.1, seed=5)
    fit, held = ids(stream, "fit"), ids(stream, "held_out")
    assert not set(fit) & set(held) and sorted(fit + held) == list(range(3998))  # the train split, once
    assert 0.08 < len(held) / 3998 < 0.12
    assert held == ids(ShardStream(Rows(uri), 0, 1, 0.1, seed=5), "held_out")
    assert held != ids(ShardStream(Rows(uri), 0, 1, 0.1, seed=6), "held_out")
    scan = stream.scan()
    assert (scan.rows, scan.held_out) == (3998, len(held))
    # The streamed mean and variance of x are those of the whole column (0..3997).
    mean, variance = scan.moments["x"].stats()
    assert mean == pytest.approx([1998.5]) and variance == pytest.approx([(3998**2 - 1) / 12])
    # Workers split the files; together they hold out the same kind of slice.
    halves = [ShardStream(Rows(uri), rank, 2, 0.1, seed=5) for rank in range(2)]
    assert sorted(sum((ids(h, "fit") + ids(h, "held_out") for h in halves), [])) == list(range(3998))


def test_the_same_seed_streams_the_same_training_batches(tmp_path):
    from lakecart.training.worker import ShardStream

    uri = _training_set(tmp_path / "t", rows=300)

    def first_batches(seed: int) -> list[list[int]]:
        stream = ShardStream(Rows(uri), 0, 1, validation_fraction=0.1, seed=seed)
        dataset = stream.training_batches(stream.scan().signature, batch=32, window_rows=100)
        # Two passes over the ~268 fit rows (8 batches of 32 a pass), then the stream goes on.
        return [list(b["event_id"].numpy()) for b in dataset.take(16)]

    first = first_batches(3)
    assert first == first_batches(3) and first != first_batches(4)
    assert all(len(b) == 32 for b in first)
    assert first[:8] != first[8:]  # each pass is shuffled anew


class Panel(Rows):
    """A panel set: each user at several observation dates (as churn's and demand's are)."""

    validate_on_newest = "observation_date"


def _panel_set(path, users: int, dates: int, test_dates: int) -> tuple[str, pd.DataFrame, list]:
    """``users`` x ``dates`` weekly observations, the last ``test_dates`` of them the test split."""
    from datetime import date, timedelta

    days = [date(2017, 1, 1) + timedelta(days=7 * n) for n in range(dates)]
    rows = users * dates
    frame = pd.DataFrame(
        {
            "dataset_id": "d1",
            "user_id": [f"u{u}" for _ in days for u in range(users)],
            "observation_date": [d for d in days for _ in range(users)],
            "event_id": np.arange(rows),
            "x": np.arange(rows, dtype="float64"),
            "split": ["train"] * (rows - users * test_dates) + ["test"] * (users * test_dates),
        }
    )
    write_deltalake(str(path), pa.Table.from_pandas(frame), partition_by=["dataset_id"])
    return str(path), frame, days


def test_a_panel_set_validates_on_its_newest_training_dates_on_every_worker(tmp_path):
    from lakecart.training.worker import ShardStream

    # 20 users x 12 weekly observations; the last 2 dates are the test split.
    uri, frame, days = _panel_set(tmp_path / "p", users=20, dates=12, test_dates=2)
    by_id = frame.set_index("event_id")["observation_date"]

    def held_dates(stream: ShardStream) -> set:
        return {by_id[int(e)] for inputs in stream.inputs("held_out") for e in inputs["event_id"]}

    # 10 training dates, 20%: the newest 2 (not the same customers' other weeks at random).
    assert held_dates(ShardStream(Panel(uri), 0, 1, 0.2, seed=1)) == {days[8], days[9]}
    assert held_dates(ShardStream(Panel(uri), 0, 1, 0.01, seed=1)) == {days[9]}  # at least one
    # Each worker holds out the same dates of its own users, whatever its shard holds.
    workers = [ShardStream(Panel(uri), rank, 2, 0.1, seed=1) for rank in range(2)]
    assert [held_dates(w) for w in workers] == [{days[9]}, {days[9]}]
    fit = sorted(int(e) for w in workers for inputs in w.inputs("fit") for e in inputs["event_id"])
    assert fit == list(range(180))  # every other training row trains
    # The per-row draw without the column (as before): held-out rows from every date.
    assert len(held_dates(ShardStream(Rows(uri), 0, 1, 0.5, seed=1))) > 2


class Customers(Rows):
    """A panel set that validates on whole customers (as churn's does)."""

    validate_on_groups = "user_id"


def test_a_set_validating_on_customers_holds_out_all_their_rows_and_trains_on_none(tmp_path):
    from lakecart.training.worker import ShardStream

    # 40 users x 6 weekly observations; the last date is the test split.
    uri, frame, _ = _panel_set(tmp_path / "p", users=40, dates=6, test_dates=1)
    user = frame.set_index("event_id")["user_id"]

    def users(stream: ShardStream, part: str) -> list[str]:
        return [user[int(e)] for inputs in stream.inputs(part) for e in inputs["event_id"]]

    workers = [ShardStream(Customers(uri), rank, 2, 0.25, seed=1) for rank in range(2)]
    held = [u for w in workers for u in users(w, "held_out")]
    fit = [u for w in workers for u in users(w, "fit")]
    assert not set(held) & set(fit)  # no held-out customer trains, at any date
    assert all(held.count(u) == 5 for u in set(held))  # each at all 5 training dates
    assert len(held) + len(fit) == 200 and 4 <= len(set(held)) <= 16  # about a quarter of 40
    assert set(held) == {u for u in users(ShardStream(Customers(uri), 0, 1, 0.25, seed=1), "held_out")}
    assert set(held) != set(users(ShardStream(Customers(uri), 0, 1, 0.25, seed=2), "held_out"))
