"""The published contract and the ingest rules must say the same thing."""

import json
from pathlib import Path

from lakecart.jobs import ingest

SCHEMA = json.loads((Path(ingest.__file__).parent / "contracts" / "clickstream_event.schema.json").read_text())


def test_schema_names_exactly_the_fields_ingest_reads():
    assert set(SCHEMA["properties"]) == set(ingest.RAW_EVENT_FIELDS)


def test_schema_enum_and_ranges_match_the_ingest_rules():
    assert SCHEMA["properties"]["event_type"]["enum"] == list(ingest.EVENT_TYPES)
    assert SCHEMA["properties"]["price"]["maximum"] == ingest.MAX_PRICE
    assert SCHEMA["properties"]["price"]["minimum"] == 0


BASE = {
    "event_id": "e",
    "user_id": "u",
    "event_type": "purchase",
    "item_id": "i",
    "event_time": "2026-01-01T00:00:00Z",
}


def reason_for(spark, record: dict):
    raw = spark.createDataFrame([(json.dumps(record), "f", None)], "raw string, source_file string, ingest_date date")
    return ingest.parse_events(raw).first()["reject_reason"]


def test_required_fields_are_the_ones_ingest_rejects_when_missing(spark):
    assert set(SCHEMA["required"]) == set(BASE)
    for field in SCHEMA["required"]:
        expected = "invalid_event_time" if field == "event_time" else f"missing_{field}"
        assert reason_for(spark, {k: v for k, v in BASE.items() if k != field}) == expected
    assert reason_for(spark, BASE) is None  # every other field is optional
