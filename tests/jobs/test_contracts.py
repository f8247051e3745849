"""The published contracts (JSON Schema) and the ingest rules must say the same thing: every generated
record validates, and a record ingestion rejects also breaks the schema."""

import json
from pathlib import Path

import jsonschema
import pytest

from lakecart.jobs import ingest
from lakecart.jobs.generate import GeneratorSpec, generate

CONTRACTS = Path(ingest.__file__).parent / "contracts"


def schema(name: str) -> dict:
    return json.loads((CONTRACTS / f"{name}.schema.json").read_text())


EVENT, ORDER, USER, ITEM = (schema(n) for n in ("clickstream_event", "order_line", "user", "catalog_item"))


@pytest.mark.parametrize(
    ("contract", "fields"),
    [
        (EVENT, ingest.RAW_EVENT_FIELDS),
        (ORDER, ingest.RAW_ORDER_FIELDS),
        (USER, ingest.RAW_USER_FIELDS),
        (ITEM, ingest.CATALOG_FIELDS),
    ],
)
def test_each_schema_names_exactly_the_fields_ingest_reads(contract, fields):
    jsonschema.Draft202012Validator.check_schema(contract)
    assert set(contract["properties"]) == set(fields)


def test_schema_enum_and_ranges_match_the_ingest_rules():
    assert EVENT["properties"]["event_type"]["enum"] == list(ingest.EVENT_TYPES)
    item_rule = EVENT["allOf"][0]["if"]["properties"]["event_type"]["enum"]
    assert item_rule == list(ingest.ITEM_EVENT_TYPES)
    for contract, column in ((EVENT, "price"), (ORDER, "unit_price")):
        assert contract["properties"][column]["maximum"] == ingest.MAX_PRICE
        assert contract["properties"][column]["minimum"] == 0


def test_every_generated_record_keeps_its_contract(tmp_path):
    generate(GeneratorSpec(users=40, items=20, categories=4, days=2, events_per_day=300), tmp_path)
    for folder, contract in (("events", EVENT), ("orders", ORDER), ("users", USER), ("catalog", ITEM)):
        records = [
            json.loads(line) for f in (tmp_path / folder).rglob("*.jsonl") for line in f.read_text().splitlines()
        ]
        assert records, folder
        for record in records:
            jsonschema.validate({k: v for k, v in record.items() if v is not None}, contract)


BASE = {"event_id": "e", "anonymous_id": "a", "event_type": "page_view", "event_time": "2026-01-01T00:00:00Z"}


def reason_for(spark, record: dict, source=ingest.EVENTS):
    raw = spark.createDataFrame([(json.dumps(record), "f", None)], "raw string, source_file string, ingest_date date")
    return ingest.parse_records(raw, source).first()["reject_reason"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (BASE, None),  # a signed-out page view needs no user, item or price
        ({**BASE, "user_id": "u", "anonymous_id": None}, None),
        ({**BASE, "anonymous_id": None}, "missing_user_id"),
        ({**BASE, "event_type": "purchase"}, "missing_item_id"),
        ({**BASE, "event_type": "refund", "item_id": "i"}, None),
        ({**BASE, "event_type": "search"}, "missing_search_query"),
        ({**BASE, "event_type": "search", "search_query": "red shoes"}, None),
        ({**BASE, "event_type": "teleport"}, "unknown_event_type"),
        ({**BASE, "event_id": None}, "missing_event_id"),
        ({**BASE, "event_time": "soon"}, "invalid_event_time"),
        ({**BASE, "price": 100_001}, "price_out_of_range"),
    ],
)
def test_ingest_accepts_what_the_schema_accepts(spark, record, reason):
    assert reason_for(spark, record) == reason
    valid = jsonschema.Draft202012Validator(EVENT).is_valid({k: v for k, v in record.items() if v is not None})
    if reason != "invalid_event_time":  # JSON Schema does not enforce "format" by default
        assert valid == (reason is None)


ORDER_BASE = {
    "order_id": "o",
    "user_id": "u",
    "item_id": "i",
    "quantity": 2,
    "unit_price": 10.0,
    "order_time": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"discount": 20.0}, None),
        ({"discount": 20.01}, "invalid_discount"),  # more than the line is worth
        ({"discount": -1}, "invalid_discount"),
        ({"quantity": 0}, "invalid_quantity"),
        ({"quantity": "two"}, "invalid_quantity"),
        ({"unit_price": None}, "missing_unit_price"),
        ({"unit_price": -5}, "negative_price"),
        ({"order_id": None}, "missing_order_id"),
        ({"order_time": "later"}, "invalid_order_time"),
    ],
)
def test_order_line_rules(spark, changes, reason):
    assert reason_for(spark, {**ORDER_BASE, **changes}, ingest.ORDERS) == reason


def test_user_rules(spark):
    good = {"user_id": "u1", "signup_time": "2025-06-01T12:00:00Z", "region": "north"}
    assert reason_for(spark, good, ingest.USERS) is None
    assert reason_for(spark, {**good, "signup_time": None}, ingest.USERS) == "invalid_signup_time"
    assert reason_for(spark, {**good, "user_id": None}, ingest.USERS) == "missing_user_id"
