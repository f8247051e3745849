from datetime import date, datetime

import pytest

from lakecart.jobs.labels import LabelWindowError, check_windows, churn_labels, demand_labels

COLUMNS = "user_id string, item_id string, category string, event_type string, quantity int, event_date date"


def D(day):  # noqa: N802
    return date(2026, 4, day)


def test_churn_is_no_purchase_in_the_horizon_after_the_observation(spark):
    events = spark.createDataFrame(
        [
            ("stays", "i", "c", "purchase", 1, D(2)),
            ("stays", "i", "c", "purchase", 1, D(12)),  # buys again within 10 days of Apr 5
            ("leaves", "i", "c", "purchase", 1, D(3)),
            ("leaves", "i", "c", "product_view", 1, D(8)),  # browsing is not buying
            ("late", "i", "c", "purchase", 1, D(4)),
            ("late", "i", "c", "purchase", 1, D(16)),  # after the 10-day horizon: churned
            ("new", "i", "c", "purchase", 1, D(7)),  # not a customer yet on Apr 5
        ],
        COLUMNS,
    )
    rows = {r["user_id"]: r for r in churn_labels(events, [D(5)], horizon_days=10, data_end=D(20)).collect()}
    assert {u: r["churned"] for u, r in rows.items()} == {"stays": 0, "leaves": 1, "late": 1}
    assert rows["stays"]["label_time"] == datetime(2026, 4, 6)  # features as of midnight after Apr 5


def test_demand_counts_units_per_horizon_and_zero_for_items_without_sales(spark):
    events = spark.createDataFrame(
        [
            ("u", "i1", "c", "purchase", 2, D(1)),
            ("u", "i1", "c", "purchase", 3, D(3)),  # 2 days ahead of Apr 1
            ("u", "i1", "c", "purchase", 5, D(9)),  # 8 days ahead
            ("u", "i1", "c", "purchase", 7, D(30)),  # 29 days ahead: past every horizon
            ("u", "i2", "c", "product_view", 1, D(1)),  # seen, never sold
        ],
        COLUMNS,
    )
    rows = {r["item_id"]: r for r in demand_labels(events, [D(1)], data_end=D(30)).collect()}
    assert (rows["i1"]["units_next_7d"], rows["i1"]["units_next_14d"], rows["i1"]["units_next_28d"]) == (3, 8, 8)
    assert (rows["i2"]["units_next_7d"], rows["i2"]["units_next_28d"]) == (0, 0)
    by_category = demand_labels(events, [D(1)], data_end=D(30), key="category").collect()
    assert [(r["category"], r["units_next_14d"]) for r in by_category] == [("c", 8)]


def test_guards_refuse_overlapping_or_truncated_windows():
    check_windows([D(1)], horizon_days=28, data_end=D(29))  # Apr 2..29: inside the data
    with pytest.raises(LabelWindowError, match="run past the data"):
        check_windows([D(1), D(8)], horizon_days=28, data_end=D(29))
    with pytest.raises(LabelWindowError, match="labels would leak into features"):
        check_windows([D(1)], horizon_days=7, data_end=D(29), label_start_offset=0)
    with pytest.raises(LabelWindowError):
        check_windows([D(1)], horizon_days=0, data_end=D(29))
