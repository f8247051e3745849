from datetime import date, datetime, timedelta

from lakecart.features.definitions import Entity, Feature, FeatureView
from lakecart.features.pit import point_in_time_join

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


def test_uses_the_newest_known_fresh_value_and_never_a_future_one(spark):
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
    out = point_in_time_join(labels, "label_time", [(VIEW, features)])
    got = sorted((r["user_id"], r["label_time"], r["toy_v1__score"]) for r in out.collect())
    assert got == [
        ("a", datetime(2026, 1, 2, 23), 1),
        ("a", datetime(2026, 1, 3, 12), 2),
        ("a", datetime(2026, 1, 5, 23), None),
        ("b", datetime(2026, 1, 2, 1), 7),
        ("c", datetime(2026, 1, 2, 1), None),
    ]


def test_duplicate_label_rows_are_kept_once_each(spark):
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame([("a", datetime(2026, 1, 2, 5))] * 3, "user_id string, label_time timestamp")
    assert point_in_time_join(labels, "label_time", [(VIEW, features)]).count() == 3
