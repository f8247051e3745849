from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from lakecart.jobs.labels import (
    LabelWindowError,
    check_split_windows,
    check_windows,
    churn_labels,
    demand_labels,
    observation_plan,
)

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


def test_observation_dates_are_anchored_at_the_cut_whatever_the_span():
    # 20 days every 7 from a cut of Apr 29: Apr 29, 22, 15 (not Apr 10, 17, 24: the cut is always observed).
    train, test = observation_plan(cut=D(29), span_days=20, every_days=7, horizon_days=3, test_days=1)
    assert test == [D(29)]
    assert train == [D(15), D(22)]


def test_no_training_label_window_reaches_past_the_held_out_observation():
    # Weekly cuts, a 14-day horizon: the held-out observation is Apr 29, so a training label window
    # must end by then: Apr 15 (labels Apr 16..29) is the newest training observation; Apr 22
    # (labels Apr 23..May 6) would see the held-out window and is left out.
    train, test = observation_plan(cut=D(29), span_days=29, every_days=7, horizon_days=14, test_days=1)
    assert test == [D(29)]
    assert train == [D(1), D(8), D(15)]
    assert all(d + timedelta(days=14) <= test[0] for d in train)


def test_the_guard_refuses_a_training_window_that_reaches_into_the_held_out_one():
    check_split_windows([D(15)], [D(29)], horizon_days=14)
    with pytest.raises(LabelWindowError, match="reach past the held-out observation date"):
        check_split_windows([D(15), D(22)], [D(29)], horizon_days=14)


def test_a_plan_with_no_training_observation_left_is_refused():
    with pytest.raises(LabelWindowError, match="no training observation"):
        observation_plan(cut=D(29), span_days=10, every_days=1, horizon_days=28, test_days=2)


def test_churn_sets_take_the_active_window_as_a_parameter(spark):
    from lakecart.jobs.training_set import BuildParams, _churn

    # Cut Jun 28 (data through Jul 5, 7-day horizon); "rare" last bought 100 days before the cut.
    events = spark.createDataFrame(
        [
            ("rare", "i", "c", "purchase", 1, date(2026, 3, 20)),
            ("often", "i", "c", "purchase", 1, date(2026, 6, 27)),
        ],
        COLUMNS,
    )
    params = BuildParams(end=date(2026, 7, 5), days=15, test_days=1, horizon_days=7, every_days=7)
    customers = lambda p: {r.user_id for r in _churn(events, p).where("split = 'test'").collect()}  # noqa: E731
    assert customers(params) == {"often"}
    assert customers(replace(params, active_days=120)) == {"often", "rare"}


def test_churn_and_demand_labels_from_a_shop_that_sends_only_order_lines(spark):
    from lakecart.features.sources import interactions
    from lakecart.jobs.training_set import BuildParams, _churn, _demand

    lines = spark.createDataFrame(
        [
            ("o1", "007", "0042", 2, 1.0, 0.0, datetime(2026, 6, 20, 9), 2.0, None, date(2026, 6, 20)),
            ("o2", "007", "0042", 5, 1.0, 0.0, datetime(2026, 6, 30, 9), 5.0, None, date(2026, 6, 30)),
            ("o3", "010", "0042", 1, 1.0, 0.0, datetime(2026, 6, 21, 9), 1.0, None, date(2026, 6, 21)),
        ],
        "order_id string, user_id string, item_id string, quantity int, unit_price double, discount double, "
        "order_time timestamp, revenue double, extra map<string,string>, order_date date",
    ).selectExpr("*", "order_date AS ingest_date", "'f' AS source_file", "1L AS source_line", "'b' AS batch_id")
    events = interactions(None, lines)
    # Cut Jun 28 (data through Jul 5, 7-day horizon): 007 buys again Jun 30, 010 does not.
    params = BuildParams(end=date(2026, 7, 5), days=8, test_days=1, horizon_days=7, every_days=7, horizons=(7,))
    churn = {r.user_id: r.churned for r in _churn(events, params).where("split = 'test'").collect()}
    assert churn == {"007": 0, "010": 1}
    [demand] = _demand("item_id")(events, params).where("split = 'test'").collect()
    assert (demand.item_id, demand.units_next_7d) == ("0042", 5)
