"""Row-for-row comparison of two runs' Delta tables, wherever they live (local disk or a bucket)."""

from __future__ import annotations

import math

import pandas as pd

from lakecart import storage


def _cell(value):
    """A hashable, comparable form of a cell: arrays become tuples, NaN and None one marker."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ("<null>",)
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_cell(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _cell(v)) for k, v in value.items()))
    return value


def canonical(uri: str, ignore: tuple[str, ...] = ()) -> pd.DataFrame:
    """The table at ``uri`` without the ``ignore`` columns, columns and rows in a fixed order."""
    frame = storage.open_delta(str(uri)).to_pandas()
    frame = frame.drop(columns=[c for c in ignore if c in frame.columns])
    frame = frame[sorted(frame.columns)]
    cells = frame.map(_cell)
    order = sorted(range(len(frame)), key=lambda i: tuple(repr(v) for v in cells.iloc[i]))
    return frame.iloc[order].reset_index(drop=True)


def assert_same(left_root: str, right_root: str, name: str, ignore: tuple[str, ...] = ()) -> int:
    """The table ``name`` (``layer/table``) holds the same rows under both roots; returns the count."""
    left, right = canonical(f"{left_root}/{name}", ignore), canonical(f"{right_root}/{name}", ignore)
    assert len(left) > 0, f"{name}: the local run wrote no rows; the comparison would prove nothing"
    # Sums over doubles may be added in another order on two executors: equal to 1e-9, not to the bit.
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-9, obj=name)
    return len(left)
