from datetime import date, datetime

import pytest

from lakecart import tables
from lakecart.jobs import ingest
from lakecart.jobs.validate import run_validate
from lakecart.quality import ValidationFailed

COLUMNS = (
    "event_id string, user_id string, anonymous_id string, session_id string, session_key string, "
    "event_type string, item_id string, category string, price double, quantity int, search_query string, "
    "device string, channel string, event_time timestamp, event_date date, ingest_date date, "
    "source_file string, batch_id string"
)


def silver_rows(spark, settings, rows):
    day = date(2026, 1, 1)
    full = [
        (
            eid,
            "u1",
            "a1",
            "s1",
            "u1@20260101T090000.000",
            kind,
            "i1",
            category,
            price,
            1,
            None,
            "mobile",
            "email",
            datetime(2026, 1, 1, 9),
            day,
            day,
            "f",
            "b",
        )
        for eid, kind, category, price in rows
    ]
    write_staged(settings, spark.createDataFrame(full, COLUMNS))


def write_staged(settings, frame):
    """Stage ``frame`` as ``ingest silver`` would: the batch (its raw days' counts) recorded with it."""
    counts = {str(r["ingest_date"]): r["count"] for r in frame.groupBy("ingest_date").count().collect()}
    batch = ingest.StagedBatch(
        ingest.stage_id_for([(d, n) for d, n in counts.items()]),
        (),
        {d: {"raw_records": n, "accepted": n, "quarantined": 0, "duplicates_dropped": 0} for d, n in counts.items()},
    )
    ingest.write_staging(frame, settings, ingest.EVENTS, batch)


def test_clean_partition_passes_and_writes_data_docs(spark, settings):
    silver_rows(spark, settings, [("e1", "purchase", "c1", 5.0), ("e2", "product_view", "c2", 7.0)])
    outcome = run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, date(2026, 1, 1))
    assert outcome.success and outcome.evaluated >= 10 and not outcome.failures
    assert outcome.docs.endswith("index.html")


def test_failure_names_each_failed_expectation(spark, settings):
    # An absurd price, and a tracking release that stopped sending categories on 2 of 3 purchases.
    silver_rows(
        spark,
        settings,
        [("e1", "purchase", None, 5.0), ("e2", "purchase", None, 2_000_000.0), ("e3", "purchase", "c1", 5.0)],
    )
    with pytest.raises(ValidationFailed) as failure:
        run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, date(2026, 1, 1))
    message = str(failure.value)
    assert "staging.silver_events" in message
    assert "expect_column_values_to_be_between(column=price" in message
    assert "expect_column_values_to_not_be_null(column=category" in message
    assert "expect_column_values_to_be_unique" not in message


def events_frame(spark, day: date, kinds: dict[str, int], prefix: str):
    rows = []
    for kind, n in kinds.items():
        for i in range(n):
            rows.append(
                (
                    f"{prefix}-{kind}-{i}",
                    "u1",
                    "a1",
                    "s1",
                    "u1@session",
                    kind,
                    "i1",
                    "c1",
                    float(1 + i % 20),
                    1,
                    None,
                    "mobile",
                    "email",
                    datetime(day.year, day.month, day.day, 9),
                    day,
                    day,
                    "f",
                    "b",
                )
            )
    return spark.createDataFrame(rows, COLUMNS)


@pytest.fixture()
def published_week(spark, settings):
    """Seven published days of 60 views, 30 carts and 10 purchases each: the reference window."""
    frames = [
        events_frame(spark, date(2026, 1, d), {"product_view": 60, "add_to_cart": 30, "purchase": 10}, f"d{d}")
        for d in range(1, 8)
    ]
    reference = frames[0]
    for frame in frames[1:]:
        reference = reference.unionByName(frame)
    reference.write.format("delta").partitionBy("event_date").save(tables.table_path(tables.SILVER_EVENTS, settings))
    return settings


def stage(spark, settings, kinds):
    write_staged(settings, events_frame(spark, date(2026, 1, 8), kinds, "new"))


def test_a_batch_like_the_reference_passes_the_drift_and_volume_checks(spark, published_week):
    stage(spark, published_week, {"product_view": 62, "add_to_cart": 28, "purchase": 11})
    outcome = run_validate(spark, published_week, tables.STAGING_SILVER_EVENTS, date(2026, 1, 8))
    assert outcome.success and outcome.evaluated >= 13  # row-level suite + 3 profile expectations


def test_a_shifted_event_mix_fails_on_psi(spark, published_week):
    # Carts vanish and purchases jump: what a broken tracking release looks like.
    stage(spark, published_week, {"product_view": 60, "add_to_cart": 2, "purchase": 40})
    with pytest.raises(ValidationFailed) as failure:
        run_validate(spark, published_week, tables.STAGING_SILVER_EVENTS, date(2026, 1, 8))
    assert "column=psi_event_type" in str(failure.value)
    assert "column=rows_per_day_ratio" not in str(failure.value)


def test_a_collapse_in_volume_fails_on_the_row_count_ratio(spark, published_week):
    stage(spark, published_week, {"product_view": 12, "add_to_cart": 6, "purchase": 2})  # a fifth of a day
    with pytest.raises(ValidationFailed) as failure:
        run_validate(spark, published_week, tables.STAGING_SILVER_EVENTS, date(2026, 1, 8))
    assert "column=rows_per_day_ratio" in str(failure.value)


def land(settings, day: date, files: dict[str, str]):
    folder = settings.lake.raw + f"/events/event_date={day.isoformat()}"
    import pathlib

    pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (pathlib.Path(folder) / name).write_text(text)


RECORD = '{"event_id": "e%d", "user_id": "u1", "event_type": "page_view", "event_time": "2026-01-01T10:00:00Z"}'


def test_bronze_gate_passes_a_landing_with_a_few_broken_lines(spark, settings):
    from lakecart.jobs import ingest

    day = date(2026, 1, 1)
    lines = [RECORD % n for n in range(40)] + ["<html>"]  # 1 of 41 lines broken: 97.6% look like records
    land(settings, day, {"a.jsonl": "\n".join(lines) + "\n"})
    ingest.run_bronze(spark, settings, [day])
    outcome = run_validate(spark, settings, tables.BRONZE_EVENTS, day)
    assert outcome.success and not outcome.failures


def test_bronze_gate_names_a_file_that_is_not_records(spark, settings):
    from lakecart.jobs import ingest

    day = date(2026, 1, 1)
    land(
        settings,
        day,
        {
            "a.jsonl": "\n".join(RECORD % n for n in range(40)) + "\n",
            # An error page saved under a .jsonl name: only 1 of its 4 lines looks like a record.
            "b.jsonl": "<html>\n<body>Gateway timeout</body>\n</html>\n" + RECORD % 99 + "\n",
        },
    )
    ingest.run_bronze(spark, settings, [day])
    with pytest.raises(ValidationFailed) as failure:
        run_validate(spark, settings, tables.BRONZE_EVENTS, day)
    message = str(failure.value)
    assert "column=record_like_share" in message and "1 unexpected" in message


def test_a_pattern_leaves_out_views_whose_source_the_lake_does_not_have(settings):
    import pandas as pd
    from deltalake import write_deltalake

    from lakecart import tables
    from lakecart.jobs.validate import expand_targets

    write_deltalake(tables.table_path(tables.SILVER_ORDER_LINES, settings), pd.DataFrame({"order_id": ["o1"]}))
    everything = expand_targets(["features.item_*"])
    assert "features.item_promotions_v2" in everything and "features.item_sales_v1" in everything
    here = expand_targets(["features.item_*"], settings)  # order lines, no promotions
    assert "features.item_promotions_v2" not in here
    assert {"features.item_sales_v1", "features.item_popularity_v2"} <= set(here)  # clickstream views: from orders
    assert expand_targets(["features.item_promotions_v2"], settings) == ["features.item_promotions_v2"]


def test_one_command_records_every_table_verdict_in_one_commit(spark, settings):
    # A gate over several tables (the DAG's feature gates validate 7-8 views) appends its verdicts to
    # meta.validation_runs once: each Delta append costs a commit (about 1.5 s on this VM), and a
    # failing table's verdict is recorded with the others. It reads the next table while one is checked.
    from lakecart.jobs.validate import run_gate

    day = date(2026, 1, 1)
    land(settings, day, {"a.jsonl": "\n".join(RECORD % n for n in range(40)) + "\n"})
    ingest.run_bronze(spark, settings, [day])
    silver_rows(spark, settings, [("e1", "purchase", "c1", 5.0), ("e2", "purchase", "c1", 2_000_000.0)])
    path = tables.table_path(tables.VALIDATION_RUNS, settings)
    gate = [tables.BRONZE_EVENTS, tables.STAGING_SILVER_EVENTS, tables.BRONZE_EVENTS]
    spark.catalog.clearCache()
    outcomes = list(run_gate(spark, settings, gate, day))
    assert [type(o).__name__ for o in outcomes] == ["ValidationOutcome", "ValidationFailed", "ValidationOutcome"]
    assert outcomes[0].success and "column=price" in str(outcomes[1])
    assert outcomes[2].evaluated == outcomes[0].evaluated and not outcomes[2].failures
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert [h["operation"] for h in history] == ["WRITE"]  # created by the one append
    recorded = [(r["table"], r["success"]) for r in spark.read.format("delta").load(path).collect()]
    assert sorted(recorded) == [(tables.BRONZE_EVENTS, True)] * 2 + [(tables.STAGING_SILVER_EVENTS, False)]
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()  # nothing read ahead is left cached


def test_a_gate_reads_the_next_table_while_it_checks_one(spark, settings, monkeypatch):
    # The read-ahead itself: the second table's rows are read in the reader thread, starting before
    # the first table's suite has finished (the real read and the real GX run, timed).
    import threading
    import time

    from lakecart.jobs import validate

    day = date(2026, 1, 1)
    land(settings, day, {"a.jsonl": "\n".join(RECORD % n for n in range(40)) + "\n"})
    ingest.run_bronze(spark, settings, [day])
    events, reads, checks = [], [], []
    read, check = validate._read_batch, validate.validate_dataframe

    def timed_read(*args, **kwargs):
        reads.append((time.perf_counter(), threading.current_thread().name))
        return read(*args, **kwargs)

    def timed_check(*args, **kwargs):
        began = time.perf_counter()
        outcome = check(*args, **kwargs)
        checks.append((began, time.perf_counter()))
        return outcome

    monkeypatch.setattr(validate, "_read_batch", timed_read)
    monkeypatch.setattr(validate, "validate_dataframe", timed_check)
    for outcome in validate.run_gate(spark, settings, [tables.BRONZE_EVENTS] * 3, day):
        events.append(outcome)
    assert [o.success for o in events] == [True] * 3
    assert len(reads) == 3 and {name for _, name in reads} == {"gate-read_0"}
    assert len(checks) == 3
    # Table n+1's read began before table n's check ended: they overlap.
    assert all(reads[n + 1][0] < checks[n][1] for n in range(2)), (reads, checks)
