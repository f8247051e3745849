import dataclasses
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakecart.features.definitions import Entity, Feature, FeatureView
from lakecart.features.pit import plan_for, point_in_time_join

VIEW = FeatureView(
    name="toy",
    version=1,
    entity=Entity("user", ("user_id",), ""),
    features=(Feature("score", "bigint", ""),),
    transform=lambda df, s, e: df,
    ttl=timedelta(days=2),
    owner="tests",
    description="",
)
# Both plans must give the same, correct answer; "auto" picks bucketed for this 2-day TTL.
PLANS = pytest.mark.parametrize("plan", ["bucketed", "sorted"])


@PLANS
def test_uses_the_newest_known_fresh_value_and_never_a_future_one(spark, plan):
    features = spark.createDataFrame(
        [
            # feature_date, available_at (midnight after the day), value
            ("a", date(2026, 1, 1), datetime(2026, 1, 2), 1),
            ("a", date(2026, 1, 2), datetime(2026, 1, 3), 2),
            ("a", date(2026, 1, 5), datetime(2026, 1, 6), 5),
            ("b", date(2026, 1, 1), datetime(2026, 1, 2), 7),
        ],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame(
        [
            ("a", datetime(2026, 1, 3, 12)),  # Jan 2's row is known (Jan 3 00:00) -> 2
            ("a", datetime(2026, 1, 2, 23)),  # only Jan 1's row is known yet -> 1
            (
                "a",
                datetime(2026, 1, 5, 23),
            ),  # Jan 5's row arrives at Jan 6: future. Jan 2's is 2d 23h old > ttl -> null
            ("b", datetime(2026, 1, 2, 1)),  # -> 7
            ("c", datetime(2026, 1, 2, 1)),  # no features at all -> null
        ],
        "user_id string, label_time timestamp",
    )
    out = point_in_time_join(labels, "label_time", [(VIEW, features)], plan=plan)
    got = sorted((r["user_id"], r["label_time"], r["toy_v1__score"]) for r in out.collect())
    assert got == [
        ("a", datetime(2026, 1, 2, 23), 1),
        ("a", datetime(2026, 1, 3, 12), 2),
        ("a", datetime(2026, 1, 5, 23), None),
        ("b", datetime(2026, 1, 2, 1), 7),
        ("c", datetime(2026, 1, 2, 1), None),
    ]


@PLANS
def test_duplicate_label_rows_are_kept_once_each(spark, plan):
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame([("a", datetime(2026, 1, 2, 5))] * 3, "user_id string, label_time timestamp")
    assert point_in_time_join(labels, "label_time", [(VIEW, features)], plan=plan).count() == 3


def brute_force(features, labels, ttl):
    """The definition, literally: per label, the newest (available_at, feature_date) row of its key
    with available_at <= label time and available_at > label time - ttl."""
    out = []
    for key, label_time in labels:
        candidates = [
            (available, day, value)
            for k, day, available, value in features
            if k == key and available <= label_time and available > label_time - ttl
        ]
        out.append((key, label_time, max(candidates)[2] if candidates else None))
    return sorted(out, key=lambda r: (r[0], r[1], r[2] is None, r[2] or 0))


feature_rows = st.lists(
    st.tuples(
        st.sampled_from("abc"),
        st.integers(0, 9),  # feature day
        st.sampled_from([0, 12, 24, 36, 48]),  # hours late after the day closed (late data)
        st.integers(-5, 50),
    ),
    max_size=25,
    unique_by=lambda r: (r[0], r[1]),
)
# Times on a 12-hour grid, like the late arrivals: labels often fall exactly on a feature row's
# available_at or on the time-to-live boundary, and rows of two days often become known together.
label_rows = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 25).map(lambda k: 12 * k)), min_size=1, max_size=20
)


@PLANS
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feature_rows, label_rows)
def test_matches_a_brute_force_reference_on_random_data(spark, plan, raw_features, raw_labels):
    start = datetime(2026, 1, 1)
    features = [
        (key, date(2026, 1, 1) + timedelta(days=day), start + timedelta(days=day + 1, hours=late), value)
        for key, day, late, value in raw_features
    ]
    labels = [(key, start + timedelta(hours=hours)) for key, hours in raw_labels]
    frame = spark.createDataFrame(features, "user_id string, feature_date date, available_at timestamp, score long")
    label_frame = spark.createDataFrame(labels, "user_id string, label_time timestamp")
    out = point_in_time_join(label_frame, "label_time", [(VIEW, frame)], plan=plan).collect()
    got = sorted(
        ((r["user_id"], r["label_time"], r["toy_v1__score"]) for r in out),
        key=lambda r: (r[0], r[1], r[2] is None, r[2] or 0),
    )
    assert got == brute_force(features, labels, VIEW.ttl)
    # Leakage: no value used was known after its label time.
    assert all(r["feature_time__toy_v1"] is None or r["feature_time__toy_v1"] <= r["label_time"] for r in out)


@PLANS
def test_rows_known_at_the_same_instant_resolve_to_the_newer_day(spark, plan):
    # Jan 1's row arrived a day late, so it became known together with Jan 2's on-time row.
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 3), 1), ("a", date(2026, 1, 2), datetime(2026, 1, 3), 2)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame([("a", datetime(2026, 1, 3))], "user_id string, label_time timestamp")
    out = point_in_time_join(labels, "label_time", [(VIEW, features)], plan=plan).collect()
    assert [r["toy_v1__score"] for r in out] == [2]


def test_auto_picks_the_bucketed_plan_for_short_ttls_only():
    assert plan_for(VIEW) == "bucketed"
    assert plan_for(dataclasses.replace(VIEW, ttl=timedelta(days=30))) == "sorted"
    assert plan_for(VIEW, "sorted") == "sorted"


def test_several_views_with_different_plans_in_one_join(spark):
    # A 30-day TTL goes the sorted way, the 2-day one bucketed; each must match its own single-view join.
    long_view = dataclasses.replace(VIEW, name="toy_long", ttl=timedelta(days=30))
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1), ("a", date(2026, 1, 5), datetime(2026, 1, 6), 5)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame(
        [("a", datetime(2026, 1, 5, 12)), ("a", datetime(2026, 1, 6, 1)), ("b", datetime(2026, 1, 6))],
        "user_id string, label_time timestamp",
    )
    out = point_in_time_join(labels, "label_time", [(VIEW, features), (long_view, features)]).collect()
    got = sorted((r["user_id"], r["label_time"], r["toy_v1__score"], r["toy_long_v1__score"]) for r in out)
    # Jan 5 12:00: the Jan 1 row is 3.5 days old, too old for 2 days, fresh for 30; Jan 6 01:00: Jan 5's row.
    assert got == [
        ("a", datetime(2026, 1, 5, 12), None, 1),
        ("a", datetime(2026, 1, 6, 1), 5, 5),
        ("b", datetime(2026, 1, 6), None, None),
    ]
