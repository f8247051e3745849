import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakecart.features import pit_columnar
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
# Every plan must give the same, correct answer; "auto" picks columnar for this 2-day TTL when the
# features are a read of a table's files, bucketed when not. The columnar plan has two ways to
# split the work: by stretches of label time (chosen where it reads little more than one pass) and
# by runs of files, merging candidates ("columnar-by-file" forces the latter). "local" runs the
# columnar join once in the driver (features/pit_local.py, which also runs without Spark);
# "local-parquet" is pit_local's file-to-file path (``join_to_parquet``: labels and answer never in
# Python); "local-parquet-chunks" the same with the files read as object-store files are (through
# Arrow, a few rows at a time, a label's candidates merged across chunks; the label file too, as
# object-store labels are: into Arrow first).
PLANS = pytest.mark.parametrize(
    "plan", ["columnar", "columnar-by-file", "bucketed", "sorted", "local", "local-parquet", "local-parquet-chunks"]
)
SCHEMA = "user_id string, feature_date date, available_at timestamp, score long"


LOCATIONS = {}  # id of a frame ``source`` read back -> the folder it was written to


@pytest.fixture()
def source(spark, tmp_path):
    """The feature frame as each plan gets it: the columnar plan reads files, so its frames are
    written partitioned by day (as feature tables are) and read back."""
    written = iter(range(1000))

    def as_source(frame, plan, fmt="parquet"):
        if not plan.startswith(("columnar", "local")):
            return frame
        path = str(tmp_path / f"features-{next(written)}")
        frame.write.format(fmt).partitionBy("feature_date").save(path)
        reader = spark.read.format(fmt)
        read = (reader if fmt == "delta" else reader.schema(frame.schema)).load(path)
        LOCATIONS[id(read)] = path
        return read

    return as_source


@pytest.fixture()
def join(monkeypatch, tmp_path):
    """point_in_time_join with one of PLANS."""
    calls = iter(range(1000))

    def joined(labels, views, plan):
        if plan.startswith("local-parquet"):  # the labels to a file, the answer read back from one
            import pyarrow.parquet as pq

            from lakecart.features import pit_local

            if plan == "local-parquet-chunks":
                monkeypatch.setattr(pit_columnar, "_local_path", lambda uri: None)
                monkeypatch.setattr(pit_columnar, "_ROWS_PER_CHUNK", 1)  # a chunk per file

            n = next(calls)
            labels_file, out = tmp_path / f"labels-{n}.parquet", tmp_path / f"joined-{n}.parquet"
            pq.write_table(labels.toArrow(), labels_file)
            located = [(view, LOCATIONS[id(frame)]) for view, frame in views]
            pit_local.join_to_parquet(str(labels_file), "label_time", located, str(out))
            return labels.sparkSession.read.parquet(str(out))
        if plan.startswith("columnar"):
            by_time = float("inf") if plan == "columnar" else 0.0
            monkeypatch.setattr(pit_columnar, "BY_LABEL_TIME_MAX_READ", by_time)
            plan = "columnar"
        return point_in_time_join(labels, "label_time", views, plan=plan)

    return joined


@PLANS
def test_uses_the_newest_known_fresh_value_and_never_a_future_one(spark, plan, source, join):
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
    out = join(labels, [(VIEW, source(features, plan))], plan)
    got = sorted((r["user_id"], r["label_time"], r["toy_v1__score"]) for r in out.collect())
    assert got == [
        ("a", datetime(2026, 1, 2, 23), 1),
        ("a", datetime(2026, 1, 3, 12), 2),
        ("a", datetime(2026, 1, 5, 23), None),
        ("b", datetime(2026, 1, 2, 1), 7),
        ("c", datetime(2026, 1, 2, 1), None),
    ]


@PLANS
def test_duplicate_label_rows_are_kept_once_each(spark, plan, source, join):
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame([("a", datetime(2026, 1, 2, 5))] * 3, "user_id string, label_time timestamp")
    assert join(labels, [(VIEW, source(features, plan))], plan).count() == 3


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
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feature_rows, label_rows)
def test_matches_a_brute_force_reference_on_random_data(spark, plan, source, join, raw_features, raw_labels):
    start = datetime(2026, 1, 1)
    features = [
        (key, date(2026, 1, 1) + timedelta(days=day), start + timedelta(days=day + 1, hours=late), value)
        for key, day, late, value in raw_features
    ]
    labels = [(key, start + timedelta(hours=hours)) for key, hours in raw_labels]
    frame = spark.createDataFrame(features, "user_id string, feature_date date, available_at timestamp, score long")
    label_frame = spark.createDataFrame(labels, "user_id string, label_time timestamp")
    # Delta: its file statistics let the columnar plan skip files, which must not change an answer.
    out = join(label_frame, [(VIEW, source(frame, plan, fmt="delta"))], plan).collect()
    got = sorted(
        ((r["user_id"], r["label_time"], r["toy_v1__score"]) for r in out),
        key=lambda r: (r[0], r[1], r[2] is None, r[2] or 0),
    )
    assert got == brute_force(features, labels, VIEW.ttl)
    # Leakage: no value used was known after its label time.
    assert all(r["feature_time__toy_v1"] is None or r["feature_time__toy_v1"] <= r["label_time"] for r in out)


@PLANS
def test_a_null_in_the_newest_row_is_the_answer_not_an_older_rows_value(spark, plan, source, join):
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1), ("a", date(2026, 1, 2), datetime(2026, 1, 3), None)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame([("a", datetime(2026, 1, 3, 12))], "user_id string, label_time timestamp")
    out = join(labels, [(VIEW, source(features, plan))], plan).collect()
    assert [(r["toy_v1__score"], r["feature_time__toy_v1"]) for r in out] == [(None, datetime(2026, 1, 3))]


@PLANS
def test_rows_known_at_the_same_instant_resolve_to_the_newer_day(spark, plan, source, join):
    # Jan 1's row arrived a day late, so it became known together with Jan 2's on-time row.
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 3), 1), ("a", date(2026, 1, 2), datetime(2026, 1, 3), 2)],
        "user_id string, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame([("a", datetime(2026, 1, 3))], "user_id string, label_time timestamp")
    out = join(labels, [(VIEW, source(features, plan))], plan).collect()
    assert [r["toy_v1__score"] for r in out] == [2]


def test_auto_picks_the_bucketed_plan_for_short_ttls_only():
    assert plan_for(VIEW) == "bucketed"
    assert plan_for(dataclasses.replace(VIEW, ttl=timedelta(days=30))) == "sorted"
    assert plan_for(VIEW, "sorted") == "sorted"
    # The bucketed and columnar plans pack a row's age within the TTL into 40 bits of microseconds.
    with pytest.raises(ValueError, match="TTLs up to"):
        plan_for(dataclasses.replace(VIEW, ttl=timedelta(days=13)), "bucketed")


def test_auto_goes_columnar_for_a_table_read_only(spark, source):
    features = spark.createDataFrame([("a", date(2026, 1, 1), datetime(2026, 1, 2), 1)], SCHEMA)
    labels = spark.createDataFrame([("a", datetime(2026, 1, 2, 5))], "user_id string, label_time timestamp")
    table = source(features, "columnar", fmt="delta")

    def plan_text(frame):
        joined = point_in_time_join(labels, "label_time", [(VIEW, frame)])
        assert [r["toy_v1__score"] for r in joined.collect()] == [1]
        return joined._jdf.queryExecution().optimizedPlan().toString()

    assert "MapInArrow" in plan_text(table)
    # Anything but a plain read (here a filter, or rows built in memory) goes the bucketed way.
    assert "MapInArrow" not in plan_text(table.where("score > 0"))
    assert "MapInArrow" not in plan_text(features)
    with pytest.raises(ValueError, match="plain read"):
        point_in_time_join(labels, "label_time", [(VIEW, features)], plan="columnar")


def test_labels_read_from_files_are_joined_without_a_copy_and_match(spark, source, tmp_path):
    # Labels that are a plain read of files are read again rather than materialised; same answer.
    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1), ("a", date(2026, 1, 2), datetime(2026, 1, 3), 2)], SCHEMA
    )
    labels = spark.createDataFrame(
        [("a", datetime(2026, 1, 2, 5)), ("a", datetime(2026, 1, 3, 1)), ("b", datetime(2026, 1, 3))],
        "user_id string, label_time timestamp",
    )
    labels.write.parquet(str(tmp_path / "labels"))
    from_files = spark.read.parquet(str(tmp_path / "labels"))
    assert pit_columnar.is_file_scan(from_files) and not pit_columnar.is_file_scan(labels)
    table = source(features, "columnar")
    got = {
        (r["user_id"], r["label_time"], r["toy_v1__score"])
        for r in point_in_time_join(from_files, "label_time", [(VIEW, table)]).collect()
    }
    assert got == {
        ("a", datetime(2026, 1, 2, 5), 1),
        ("a", datetime(2026, 1, 3, 1), 2),
        ("b", datetime(2026, 1, 3), None),
    }


def test_duckdb_and_arrow_readers_see_the_same_rows(spark, source):
    # Local files are read by DuckDB, other file systems through Arrow: same rows, partition values
    # (from the listing) and integer times either way.
    import duckdb
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    features = spark.createDataFrame(
        [("a", date(2026, 1, 1), datetime(2026, 1, 2), 1), ("b", date(2026, 1, 2), datetime(2026, 1, 3, 6), None)],
        SCHEMA,
    )
    table = source(features, "columnar", fmt="delta")
    files = pit_columnar.files_of(table)
    wanted = ["user_id", "feature_date", "available_at", "score"]
    arrow_frame = to_arrow_schema(table.schema)
    via_arrow = pa.concat_tables(
        pit_columnar._as_micros(chunk, "available_at", "feature_date")
        for chunk in pit_columnar._chunks([(f.uri, f.partition_values) for f in files], wanted, arrow_frame)
    )
    paths = [pit_columnar._local_path(f.uri) for f in files]
    listing = [(f.uri, f.partition_values) for f in files]
    con = duckdb.connect()
    con.register("parts", pit_columnar._partitions_table(listing, paths, arrow_frame))
    con.execute(pit_columnar._local_feats_sql(paths, listing, wanted, "available_at", "feature_date"))
    via_duckdb = con.sql("SELECT * FROM feats").to_arrow_table()
    rows = lambda t: sorted(tuple(r.values()) for r in t.select(wanted).to_pylist())  # noqa: E731
    jan_2 = (date(2026, 1, 2) - date(1970, 1, 1)).days
    assert rows(via_arrow) == rows(via_duckdb)
    assert rows(via_duckdb) == [("a", jan_2 - 1, 1767312000000000, 1), ("b", jan_2, 1767420000000000, None)]


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


def test_file_time_ranges_come_from_delta_statistics_and_parquet_footers(spark, source, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        ("a", date(2026, 1, 1), datetime(2026, 1, 2), 1),
        ("b", date(2026, 1, 1), datetime(2026, 1, 3, 6), 2),
        ("a", date(2026, 1, 2), datetime(2026, 1, 3), 3),
    ]
    micros = lambda t: int(t.replace(tzinfo=UTC).timestamp()) * 10**6  # noqa: E731
    jan_2, jan_3, jan_3_6h = micros(datetime(2026, 1, 2)), micros(datetime(2026, 1, 3)), micros(datetime(2026, 1, 3, 6))
    # One file per day. Delta keeps milliseconds, truncated: the upper end gets a millisecond more.
    table = source(spark.createDataFrame(rows, SCHEMA).coalesce(1), "columnar", fmt="delta")
    ranges = sorted(f.time_range for f in pit_columnar.files_of(table, "available_at"))
    assert ranges == [(jan_2, jan_3_6h + 1000), (jan_3, jan_3 + 1000)]
    # Plain Parquet (written by Arrow, which keeps statistics): the footers, microseconds exact.
    for day in (1, 2):
        mine = [r for r in rows if r[1].day == day]
        pq.write_table(
            pa.table(
                {
                    "user_id": [r[0] for r in mine],
                    "available_at": pa.array([r[2] for r in mine], pa.timestamp("us", tz="UTC")),
                }
            ),
            tmp_path / f"day{day}.parquet",
        )
    from_footers = spark.read.parquet(str(tmp_path / "day1.parquet"), str(tmp_path / "day2.parquet"))
    ranges = sorted(f.time_range for f in pit_columnar.files_of(from_footers, "available_at"))
    assert ranges == [(jan_2, jan_3_6h + 1), (jan_3, jan_3 + 1)]
    # A task whose labels lie between Jan 2 01:00 and Jan 2 23:00 needs the first file only.
    first, second = sorted(pit_columnar.files_of(table, "available_at"), key=lambda f: f.time_range)
    low, high = micros(datetime(2026, 1, 2, 1)), micros(datetime(2026, 1, 2, 23))
    ttl = VIEW.ttl // timedelta(microseconds=1)
    assert pit_columnar.may_matter(first, (low, high), ttl) and not pit_columnar.may_matter(second, (low, high), ttl)
    # Labels on Jan 4 need it too (its Jan 3 06:00 row is fresh for two days); from Jan 5 06:00 on,
    # a TTL after its last row (plus Delta's millisecond), they do not.
    jan_5_6h = jan_3_6h + 2 * 86_400_000_000
    assert pit_columnar.may_matter(first, (micros(datetime(2026, 1, 4)), micros(datetime(2026, 1, 4, 12))), ttl)
    # A label at the very instant the file's first row became known needs it.
    assert pit_columnar.may_matter(first, (jan_2 - 3_600_000_000, jan_2), ttl)
    assert not pit_columnar.may_matter(first, (jan_5_6h + 1000, jan_5_6h * 2), ttl)


@pytest.mark.parametrize("plan", ["columnar", "columnar-by-file", "local"])
def test_label_columns_pass_through_and_labels_without_time_or_key_find_nothing(spark, plan, source, join):
    features = spark.createDataFrame([("a", date(2026, 1, 1), datetime(2026, 1, 2), 1)], SCHEMA)
    labels = spark.createDataFrame(
        [
            (1, "a", datetime(2026, 1, 2, 5), 0.5, date(2026, 1, 2), ["x", "y"]),
            (2, "a", None, None, None, None),
            (3, None, datetime(2026, 1, 2, 5), 1.5, date(2026, 1, 3), []),
        ],
        "label_id long, user_id string, label_time timestamp, weight double, day date, tags array<string>",
    )
    out = join(labels, [(VIEW, source(features, plan))], plan)
    assert out.columns == [*labels.columns, "toy_v1__score", "feature_time__toy_v1"]
    assert sorted(tuple(r) for r in out.collect()) == [
        (1, "a", datetime(2026, 1, 2, 5), 0.5, date(2026, 1, 2), ["x", "y"], 1, datetime(2026, 1, 2)),
        (2, "a", None, None, None, None, None, None),
        (3, None, datetime(2026, 1, 2, 5), 1.5, date(2026, 1, 3), [], None, None),
    ]


def test_columnar_views_are_answered_together_and_keys_typed_as_the_features(spark, source, join):
    # Two columnar views in one pass; the labels' int keys compared as the features' longs.
    short_view = dataclasses.replace(VIEW, name="toy_short", ttl=timedelta(hours=12))
    features = spark.createDataFrame(
        [
            (1, date(2026, 1, 1), datetime(2026, 1, 2), 1),
            (1, date(2026, 1, 2), datetime(2026, 1, 3), 2),
            (2, date(2026, 1, 1), datetime(2026, 1, 2, 6), 7),
        ],
        "user_id long, feature_date date, available_at timestamp, score long",
    )
    labels = spark.createDataFrame(
        [(1, datetime(2026, 1, 3, 13)), (2, datetime(2026, 1, 2, 12)), (2, datetime(2026, 1, 3, 12))],
        "user_id int, label_time timestamp",
    )
    table = source(features, "columnar")
    out = join(labels, [(VIEW, table), (short_view, table)], "columnar")
    assert out._jdf.queryExecution().optimizedPlan().toString().count("MapInArrow") == 1
    got = sorted((r["user_id"], r["label_time"], r["toy_v1__score"], r["toy_short_v1__score"]) for r in out.collect())
    # Jan 3 13:00: Jan 2's row is 13 hours old, fresh for 2 days, too old for 12 hours.
    assert got == [
        (1, datetime(2026, 1, 3, 13), 2, None),
        (2, datetime(2026, 1, 2, 12), 7, 7),
        (2, datetime(2026, 1, 3, 12), 7, None),
    ]


@pytest.mark.parametrize("fmt", ["delta", "parquet", "flat-parquet"])
def test_the_local_engine_joins_arrow_labels_with_a_table_location_without_spark(spark, tmp_path, fmt):
    """pit_local.point_in_time_join takes Arrow labels and a table's location (a Delta root, or a
    folder of Parquet files written by another tool, hive-partitioned or not): no Spark involved."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakecart.features import pit_local

    rows = [
        (1, date(2026, 1, 1), datetime(2026, 1, 2), 10),
        (1, date(2026, 1, 2), datetime(2026, 1, 3), 20),
        (1, date(2026, 1, 3), datetime(2026, 1, 5, 6), 30),  # 30 hours late
        (2, date(2026, 1, 1), datetime(2026, 1, 2), 70),
    ]
    location = tmp_path / "toy"
    if fmt == "delta":
        frame = spark.createDataFrame(rows, "user_id long, feature_date date, available_at timestamp, score long")
        frame.write.format("delta").partitionBy("feature_date").save(str(location))
    elif fmt == "flat-parquet":  # feature_date a column, folders not named name=value, files not data
        for user, day, known, score in rows:
            folder = location / f"batch-{user}"
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.table(
                {
                    "user_id": pa.array([user], pa.int64()),
                    "feature_date": pa.array([day], pa.date32()),
                    "available_at": pa.array([known.replace(tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
                    "score": pa.array([score], pa.int64()),
                }
            )
            pq.write_table(table, folder / f"part-{day.isoformat()}.parquet")
        (location / "_SUCCESS").write_text("")
        (location / "batch-1" / ".part-x.parquet.crc").write_text("not parquet")
        (location / "_temporary").mkdir()
        (location / "_temporary" / "part-9.parquet").write_text("not parquet")
    else:
        for user, day, known, score in rows:
            folder = location / f"feature_date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.table(
                {
                    "user_id": pa.array([user], pa.int64()),
                    "available_at": pa.array([known.replace(tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
                    "score": pa.array([score], pa.int64()),
                }
            )
            pq.write_table(table, folder / f"part-{user}.parquet")
        (location / "_SUCCESS").write_text("")  # written by some tools; not data
    labels = pa.table(
        {
            "label_id": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "user_id": pa.array([1, 1, 1, 2, 3], pa.int32()),  # compared as the table's longs
            "label_time": pa.array(
                [
                    datetime(2026, 1, 3, 12),  # Jan 2's row (known Jan 3) -> 20
                    datetime(2026, 1, 5, 5),  # Jan 3's row not known yet; Jan 2's is 2d 5h old -> null
                    datetime(2026, 1, 5, 6),  # Jan 3's row became known at this instant -> 30
                    datetime(2026, 1, 2),  # -> 70
                    datetime(2026, 1, 2),  # no such user -> null
                ],
                pa.timestamp("us"),
            ),
        }
    )
    out = pit_local.point_in_time_join(labels, "label_time", [(VIEW, str(location))], threads=2)
    assert out.column_names == ["label_id", "user_id", "label_time", "toy_v1__score", "feature_time__toy_v1"]
    assert out["label_id"].to_pylist() == [1, 2, 3, 4, 5]  # the labels' order
    assert out["toy_v1__score"].to_pylist() == [20, None, 30, 70, None]
    known = [t and t.replace(tzinfo=None) for t in out["feature_time__toy_v1"].to_pylist()]
    assert known == [datetime(2026, 1, 3), None, datetime(2026, 1, 5, 6), datetime(2026, 1, 2), None]

    with pytest.raises(ValueError, match="TTLs up to"):
        long_ttl = dataclasses.replace(VIEW, ttl=timedelta(days=30))
        pit_local.point_in_time_join(labels, "label_time", [(long_ttl, str(location))])
    with pytest.raises(ValueError, match="no key column 'user_id'"):
        pit_local.point_in_time_join(labels.drop_columns(["user_id"]), "label_time", [(VIEW, str(location))])

    # File to file (``join_to_parquet``): the same table, from a labels file split in two (read in
    # order) or from Arrow labels, and a chosen subset of columns.
    folder = tmp_path / "labels"
    folder.mkdir()
    pq.write_table(labels.slice(0, 3), folder / "part-0.parquet")
    pq.write_table(labels.slice(3), folder / "part-1.parquet")
    for n, labels_in in enumerate([str(folder), labels]):
        written = tmp_path / f"joined-{n}.parquet"
        summary = pit_local.join_to_parquet(labels_in, "label_time", [(VIEW, str(location))], str(written), threads=2)
        assert pq.read_table(written).equals(out), labels_in
        assert summary["rows"] == 5 and summary["share_of_rows_with_features"] == {"toy_v1": 0.6}
    pit_local.join_to_parquet(
        str(folder), "label_time", [(VIEW, str(location))], str(written), columns=["toy_v1__score", "label_id"]
    )
    assert pq.read_table(written).to_pydict() == {
        "toy_v1__score": [20, None, 30, 70, None],
        "label_id": [1, 2, 3, 4, 5],
    }
    with pytest.raises(ValueError, match="no columns \\['toy_v1__nope'\\]"):
        pit_local.join_to_parquet(
            str(folder), "label_time", [(VIEW, str(location))], str(written), columns=["toy_v1__nope"]
        )
    with pytest.raises(ValueError, match="no column 'at'"):
        pit_local.join_to_parquet(str(folder), "at", [(VIEW, str(location))], str(written))
    with pytest.raises(ValueError, match="label times must be dates or timestamps, not BIGINT"):
        pit_local.join_to_parquet(str(folder), "label_id", [(VIEW, str(location))], str(written))
    # Label times in any unit and zone (as pandas writes them: nanoseconds), or dates: the same rows.
    for times in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns", tz="Europe/Berlin"), pa.timestamp("s")):
        retimed = labels.set_column(
            2, "label_time", labels["label_time"].cast(pa.timestamp("us", tz="UTC")).cast(times)
        )
        pit_local.join_to_parquet(retimed, "label_time", [(VIEW, str(location))], str(written))
        assert pq.read_table(written)["toy_v1__score"].to_pylist() == [20, None, 30, 70, None], times
    dated = labels.set_column(2, "label_time", pa.array([date(2026, 1, 3), None, None, date(2026, 1, 2), None]))
    pit_local.join_to_parquet(dated, "label_time", [(VIEW, str(location))], str(written))
    # Jan 3 is its midnight: the instant Jan 2's row became known -> 20.
    assert pq.read_table(written)["toy_v1__score"].to_pylist() == [20, None, None, 70, None]
    clash = tmp_path / "clash.parquet"  # a name the file-to-file join adds to keep the rows' order
    pq.write_table(labels.append_column("file_row_number", labels["label_id"]), clash)
    with pytest.raises(ValueError, match="may not have columns named \\['file_row_number'\\]"):
        pit_local.join_to_parquet(str(clash), "label_time", [(VIEW, str(location))], str(written))
    text_ids = labels.set_column(1, "user_id", pa.array(["1", "x", "1", "2", "3"]))
    with pytest.raises(ValueError, match="toy_v1: a label key does not convert"):
        pit_local.join_to_parquet(text_ids, "label_time", [(VIEW, str(location))], str(written))


def test_label_files_are_listed_as_pyarrow_dataset_lists_them(tmp_path):
    # join_to_parquet keeps the labels' order by file: the files, and their order, must be those
    # read_labels (pyarrow.dataset) reads, without importing it.
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from lakecart.features import pit_local

    for name in ["b/part-1.parquet", "a=2/x.parquet", "a=10/x.parquet", "B.parquet", "b/c/d.parquet", "b-2.parquet"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [1]}), tmp_path / name)
    for junk in ["_SUCCESS", ".hidden.parquet", "b/.part-1.parquet.crc", "_delta_log/0.json", "b/_tmp/y.parquet"]:
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("not parquet")
    listed = pit_local.parquet_files(str(tmp_path))
    assert listed == ds.dataset(str(tmp_path), format="parquet").files
    assert len(listed) == 6 and listed[0].endswith("/B.parquet")
    assert pit_local.parquet_files(f"file://{tmp_path}/b-2.parquet") == [str(tmp_path / "b-2.parquet")]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        pit_local.parquet_files(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="must be local"):
        pit_local.parquet_files("s3://bucket/labels")


def test_stretches_cut_labels_into_equal_counts_by_time_and_pick_the_cheaper_split():
    import pyarrow as pa

    day = 86_400_000_000
    # Five labels, one without a time (it goes first, answered with nothing); two tasks: 2 and 3 rows.
    stretches = pit_columnar.Stretches.of(pa.array([5 * day, None, day, 3 * day, 2 * day], pa.int64()), 2)
    assert stretches.order.tolist() == [1, 2, 4, 3, 0]
    assert stretches.runs == [(0, 2), (2, 5)]
    assert stretches.bounds == [(day, day), (2 * day, 5 * day)]
    # Labels at one instant are still shared out evenly.
    at_once = pit_columnar.Stretches.of(pa.array([7 * day] * 4, pa.int64()), 2)
    assert at_once.runs == [(0, 2), (2, 4)] and at_once.bounds == [(7 * day, 7 * day)] * 2
    # Ten daily files, each known over the first half of its day; a 2-day TTL. Labels at day 7 need
    # days 5-7 (day 5's rows are younger than two days until day 7 12:00).
    files = [pit_columnar.FeatureFile(f"d{d}", {}, (d * day, d * day + day // 2)) for d in range(10)]
    view = pit_columnar.ColumnarView(files, ("k",), ("k",), 2 * day, (), (), "t", None)
    assert [[f.uri for f in task] for task in at_once.files_per_task(view)] == [["d5", "d6", "d7"]] * 2
    assert [f.uri for f in at_once.files_for_any(view)] == ["d5", "d6", "d7"]
    # Two tasks read 6 files where one pass needs 3: within BY_LABEL_TIME_MAX_READ (2); three do not.
    assert at_once.by_label_time_pays(view)
    three = pit_columnar.Stretches.of(pa.array([7 * day] * 6, pa.int64()), 3)
    assert not three.by_label_time_pays(view)
    # Labels spread over days 3-9: two tasks read days 1-6 and 5-9 (11 files) against days 1-9 (9).
    spread = pit_columnar.Stretches.of(pa.array([d * day for d in (3, 4, 5, 6, 7, 8, 9, 9)], pa.int64()), 2)
    assert [len(task) for task in spread.files_per_task(view)] == [6, 5]
    assert len(spread.files_for_any(view)) == 9 and spread.by_label_time_pays(view)
