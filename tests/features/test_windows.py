from datetime import date, datetime

import pytest

from lakecart.features.user import user_activity_v1
from lakecart.features.windows import FANNED_DISTINCT_DAYS, windowed_sums


def test_windowed_sums_match_hand_computed_values(spark):
    # user a: 1 view on Jan 1, 2 on Jan 3, 4 on Jan 10.  Windows of 2 and 7 days.
    partials = spark.createDataFrame(
        [("a", date(2026, 1, 1), 1), ("a", date(2026, 1, 3), 2), ("a", date(2026, 1, 10), 4)],
        "user_id string, event_date date, views long",
    )
    out = windowed_sums(partials, ["user_id"], "event_date", ["views"], [2, 7], date(2026, 1, 3), date(2026, 1, 10))
    rows = {r["feature_date"]: r for r in out.collect()}
    # Jan 3: 2d = Jan 2..3 = 2; 7d = Dec 28..Jan 3 = 1 + 2 = 3
    assert (rows[date(2026, 1, 3)]["views_2d"], rows[date(2026, 1, 3)]["views_7d"]) == (2, 3)
    # Jan 8: 7d = Jan 2..8 = 2 (Jan 1 has aged out); 2d = 0; last activity Jan 3, 5 days earlier
    assert (rows[date(2026, 1, 8)]["views_2d"], rows[date(2026, 1, 8)]["views_7d"]) == (0, 2)
    assert rows[date(2026, 1, 8)]["days_since_active"] == 5
    # Jan 10: 7d = Jan 4..10 = 4
    assert rows[date(2026, 1, 10)]["views_7d"] == 4
    # Jan 9 has no activity in 7 days? Jan 3 is 6 days earlier, so it still has a row.
    assert rows[date(2026, 1, 9)]["views_7d"] == 2
    # Known once the day has closed.
    assert rows[date(2026, 1, 3)]["available_at"] == datetime(2026, 1, 4)
    assert set(rows) == {date(2026, 1, d) for d in range(3, 11)}


def test_user_activity_counts_spend_and_conversion(spark):
    events = spark.createDataFrame(
        [
            ("u", "product_view", 10.0, 0, date(2026, 1, 5)),
            ("u", "product_view", 10.0, 0, date(2026, 1, 5)),
            ("u", "add_to_cart", 10.0, 1, date(2026, 1, 6)),
            ("u", "purchase", 10.0, 3, date(2026, 1, 6)),
        ],
        "user_id string, event_type string, price double, quantity int, event_date date",
    )
    row = user_activity_v1.transform(events, date(2026, 1, 6), date(2026, 1, 6)).collect()[0]
    assert (row["views_7d"], row["carts_7d"], row["purchases_7d"]) == (2, 1, 1)
    assert row["spend_7d"] == 30.0  # 3 units x 10.0
    assert row["purchase_rate_28d"] == 0.5  # 1 purchase / 2 views
    assert row["days_since_active"] == 0


def test_distinct_counts_keep_each_element_at_its_newest_day(spark):
    from lakecart.features.windows import distinct_counts

    # user a viewed x and y on Jan 1, x again on Jan 5, z on Jan 6; user b viewed nothing in a
    # row (an empty set); windows of 2 and 7 days.
    partials = spark.createDataFrame(
        [
            ("a", date(2026, 1, 1), ["x", "y"]),
            ("a", date(2026, 1, 5), ["x"]),
            ("a", date(2026, 1, 6), ["z"]),
            ("b", date(2026, 1, 6), []),
        ],
        "user_id string, event_date date, items array<string>",
    )
    out = distinct_counts(
        partials, ["user_id"], "event_date", "items", {2: "d2", 7: "d7"}, date(2026, 1, 6), date(2026, 1, 8)
    )
    rows = {(r["user_id"], r["feature_date"]): (r["d2"], r["d7"]) for r in out.collect()}
    # Jan 6: 2d = Jan 5..6 = {x, z}; 7d = Dec 31..Jan 6 = {x, y, z}
    # Jan 7: 2d = Jan 6..7 = {z}; 7d = Jan 1..7 = {x, y, z}
    # Jan 8: 2d = {}; 7d = Jan 2..8 = {x, z} (y was last seen on Jan 1)
    assert rows == {
        ("a", date(2026, 1, 6)): (2, 3),
        ("a", date(2026, 1, 7)): (1, 3),
        ("a", date(2026, 1, 8)): (0, 2),
    }


@pytest.mark.parametrize(
    "days", [FANNED_DISTINCT_DAYS, 25], ids=["a-few-days-fanned-out", "a-backfill-from-running-counts"]
)
def test_distinct_counts_match_a_brute_force_count_on_random_data(spark, days):
    """Every (key, output day) against a direct count of the distinct elements seen in each trailing
    window, on random sets over 60 days: elements coming back after gaps shorter and longer than the
    windows, days with no row, empty and null-free sets, two-part keys. Both plans: a run of a few
    output days and a longer one."""
    import random
    from datetime import timedelta

    from lakecart.features.windows import distinct_counts

    rng = random.Random(11)
    first = date(2026, 1, 1)
    rows = []
    for shop in ("s1", "s2"):
        for user in ("a", "b", "c", "d"):
            for offset in sorted(rng.sample(range(60), rng.randint(0, 25))):
                rows.append((shop, user, first + timedelta(days=offset), rng.sample("pqrstuvw", rng.randint(0, 4))))
    partials = spark.createDataFrame(rows, "shop string, user_id string, event_date date, items array<string>")
    windows = {1: "d1", 3: "d3", 10: "d10"}
    end = date(2026, 2, 5)
    start = end - timedelta(days=days - 1)
    out = distinct_counts(partials, ["shop", "user_id"], "event_date", "items", windows, start, end)
    got = {(r["shop"], r["user_id"], r["feature_date"]): tuple(r[n] for n in windows.values()) for r in out.collect()}

    expected = {}
    for shop, user in {(r[0], r[1]) for r in rows}:
        seen = [(day, items) for s, u, day, items in rows if (s, u) == (shop, user)]
        for n in range((end - start).days + 1):
            day = start + timedelta(days=n)
            counts = tuple(len({i for d, items in seen if 0 <= (day - d).days < w for i in items}) for w in windows)
            if counts[-1]:  # a row only where the longest window holds an element
                expected[(shop, user, day)] = counts
    assert len(expected) > 5 * days  # the data exercises the windows
    assert got == expected
