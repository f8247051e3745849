"""Views built from tiles (per-day partials kept between runs) give the same rows as the same views
computed from silver, after backfills, next-day runs and late data; and a daily run summarises only
the source days that are new or changed."""

from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakecart import delta, tables
from lakecart.config import LakeSettings, Settings, SparkSettings
from lakecart.features import REGISTRY
from lakecart.jobs import feature_store
from lakecart.jobs.materialize import compute_view, run_materialize

COLUMNS = (
    "event_id string, user_id string, anonymous_id string, session_key string, event_type string, item_id string, "
    "category string, price double, quantity int, device string, event_time timestamp, event_date date, "
    "ingest_date date"
)
START = date(2026, 3, 1)
TILED = sorted(name for name, view in REGISTRY.items() if view.tiles is not None)


def event(n, user, kind, item, category, price, quantity, day, hour, late=0):
    when = START + timedelta(days=day)
    return (
        f"e{n}",
        user,
        None if user else "anon",
        f"{user}@{day}",
        kind,
        item,
        category,
        price,
        quantity,
        "web",
        datetime.combine(when, datetime.min.time()) + timedelta(hours=hour),
        when,
        when + timedelta(days=late),
    )


def publish(spark, settings, rows):
    frame = spark.createDataFrame(rows, COLUMNS)
    delta.merge_by_key(frame, tables.table_path(tables.SILVER_EVENTS, settings), ["event_id"], "event_date")


def normalised(rows, columns):
    def value(v):
        if isinstance(v, float):
            return round(v, 9)
        if isinstance(v, list):
            return tuple(value(x) for x in v)
        if hasattr(v, "asDict"):
            return tuple(value(x) for x in v)
        return v

    return sorted((tuple(value(r[c]) for c in columns) for r in rows), key=repr)


def assert_tables_match_silver(spark, settings, first, last):
    silver = spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings))
    for name in TILED:
        view = REGISTRY[name]
        held = spark.read.format("delta").load(tables.table_path(view.qualified_name, settings))
        held = held.where(held.feature_date.between(first, last)).collect()
        direct = compute_view(view, silver, first, last).collect()
        assert normalised(held, view.columns) == normalised(direct, view.columns), name


USERS = st.sampled_from([None, "u1", "u2", "u3"])
KINDS = st.sampled_from(["product_view", "add_to_cart", "purchase", "search"])
ITEMS = st.sampled_from([None, "i1", "i2", "i3"])
CATEGORIES = st.sampled_from([None, "c1", "c2"])
PRICES = st.sampled_from([None, 5.0, 12.5, 30.0])
DAYS = 12
random_events = st.lists(
    st.tuples(
        USERS,
        KINDS,
        ITEMS,
        CATEGORIES,
        PRICES,
        st.integers(1, 3),
        st.integers(0, DAYS - 1),
        st.integers(0, 23),
        st.integers(0, 3),
    ),
    min_size=5,
    max_size=40,
)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_events)
def test_views_from_tiles_match_views_from_silver_on_random_data(spark, tmp_path_factory, monkeypatch, raw):
    root = tmp_path_factory.mktemp("tiles-lake")
    monkeypatch.setenv("LAKECART_LAKE__ROOT", str(root))
    lake = Settings(lake=LakeSettings(root=str(root)), spark=SparkSettings(shuffle_partitions=2))
    # Every day holds a record (materialisation refuses a gap), then the random ones; each arrives
    # ``late`` days after its own: days 0..7 are published, materialised, then the rest arrives
    # (new days, and late records that change days already summarised into tiles).
    rows = [event(f"f{d}", "u9", "product_view", "i9", "c9", 1.0, 1, d, 0) for d in range(DAYS)]
    rows += [  # and late records for days already summarised, whatever the random ones hold
        event("late-a", "u1", "purchase", "i1", "c1", 7.0, 2, 6, 10, 3),
        event("late-b", None, "product_view", "i2", None, None, 1, 2, 9, 7),
    ]
    rows += [event(n, *r) for n, r in enumerate(raw)]
    cut = START + timedelta(days=7)
    publish(spark, lake, [r for r in rows if r[-1] <= cut])
    feature_store.apply(spark, lake, views=[REGISTRY[v] for v in TILED])
    run_materialize(spark, lake, START + timedelta(days=5), cut, TILED)
    publish(spark, lake, [r for r in rows if r[-1] > cut])
    last = START + timedelta(days=DAYS - 1)
    run_materialize(spark, lake, START + timedelta(days=5), last, TILED)
    assert_tables_match_silver(spark, lake, START + timedelta(days=5), last)


def test_a_daily_run_summarises_only_the_new_day_and_the_days_late_data_changed(spark, settings):
    views = ["user_activity_v2", "item_demand_v2"]
    day = lambda n: START + timedelta(days=n)  # noqa: E731
    daily = lambda n, tag="": [  # noqa: E731
        event(f"{tag}{n}-{u}", f"u{u}", "purchase", f"i{u}", "c1", 10.0, 1, n, 12) for u in range(3)
    ]
    publish(spark, settings, [r for n in range(10) for r in daily(n)])
    feature_store.apply(spark, settings, views=[REGISTRY[v] for v in views])
    first = run_materialize(spark, settings, day(9), day(9), views)
    # The first run summarises every day the windows reach (90 days back for activity: all 10).
    assert first["user_activity_v2"].tiles_written == 10 and first["item_demand_v2"].tiles_written == 10
    publish(spark, settings, daily(10))
    nxt = run_materialize(spark, settings, day(10), day(10), views)
    assert {v: r.tiles_written for v, r in nxt.items()} == {v: 1 for v in views}
    # A late purchase for day 4 arrives with day 11: day 4's tile is summarised again, with day 11's.
    late = [event("late", "u1", "purchase", "i1", "c1", 10.0, 5, 4, 12, late=7)]
    publish(spark, settings, daily(11) + late)
    after = run_materialize(spark, settings, day(4), day(11), views)
    assert {v: r.tiles_written for v, r in after.items()} == {v: 2 for v in views}
    assert after["user_activity_v2"].written_days == [str(day(n)) for n in (4, 5, 6, 7, 8, 9, 10, 11)]
    activity = spark.read.format("delta").load(tables.table_path("features.user_activity_v2", settings))
    spend = lambda: {  # noqa: E731
        r["feature_date"]: r["spend_90d"] for r in activity.where("user_id = 'u1'").collect()
    }
    # u1 bought one unit at 10.0 on each of the 12 days, and 5 units on day 4, arriving late.
    assert spend()[day(11)] == 12 * 10.0 + 5 * 10.0 and spend()[day(4)] == 5 * 10.0 + 5 * 10.0
    # --force summarises every day again; the rows stay the same.
    forced = run_materialize(spark, settings, day(11), day(11), views, force=True)
    assert forced["user_activity_v2"].tiles_written == 12
    assert spend()[day(11)] == 170.0
