from datetime import date, datetime

import pytest

from lakecart import delta, tables
from lakecart.jobs.validate import run_validate
from lakecart.quality import ValidationFailed

COLUMNS = (
    "event_id string, user_id string, session_id string, event_type string, item_id string, category string, "
    "price double, quantity int, device string, channel string, event_time timestamp, event_date date, "
    "ingest_date date, source_file string, batch_id string"
)


def silver_rows(spark, settings, rows):
    day = date(2026, 1, 1)
    full = [
        (
            eid,
            "u1",
            "s1",
            kind,
            "i1",
            category,
            price,
            1,
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
    frame = spark.createDataFrame(full, COLUMNS)
    delta.replace_partitions(frame, tables.table_path(tables.STAGING_SILVER_EVENTS, settings), "ingest_date", [day])


def test_clean_partition_passes_and_writes_data_docs(spark, settings):
    silver_rows(spark, settings, [("e1", "purchase", "c1", 5.0), ("e2", "product_view", "c2", 7.0)])
    outcome = run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, date(2026, 1, 1))
    assert outcome.success and outcome.evaluated >= 10 and not outcome.failures
    assert outcome.docs.endswith("index.html")


def test_failure_names_each_failed_expectation(spark, settings):
    # An absurd price, and a tracking release that stopped sending categories.
    silver_rows(spark, settings, [("e1", "purchase", None, 5.0), ("e2", "purchase", None, 2_000_000.0)])
    with pytest.raises(ValidationFailed) as failure:
        run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, date(2026, 1, 1))
    message = str(failure.value)
    assert "staging.silver_events" in message
    assert "expect_column_values_to_be_between(column=price" in message
    assert "expect_column_values_to_not_be_null(column=category" in message
    assert "expect_column_values_to_be_unique" not in message
