import json
from datetime import date

import pytest

from lakecart import tables
from lakecart.jobs import ingest

GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "session_id": "s1",
    "event_type": "purchase",
    "item_id": "i1",
    "category": "c1",
    "price": 10.5,
    "quantity": 2,
    "device": "mobile",
    "channel": "email",
    "event_time": "2026-01-01T10:00:00.000Z",
}


def bronze_of(spark, lines, day=date(2026, 1, 1)):
    raw = spark.createDataFrame(
        [(line, "f.jsonl", day) for line in lines], "raw string, source_file string, ingest_date date"
    )
    return ingest.to_bronze(raw, {day: "batch-1"})


def with_(**changes):
    return json.dumps({**GOOD, **changes})


def test_each_contract_breach_gets_its_reason(spark):
    lines = [
        json.dumps(GOOD),
        '{"event_id": "e2", "user_id": ',  # cut off
        with_(event_id="e3", user_id=None),
        with_(event_id="e4", event_type="teleport"),
        with_(event_id="e5", event_time="yesterday"),
        with_(event_id="e6", price=-3.0),
        with_(event_id="e7", price="cheap"),
        "",  # blank line: not a record
    ]
    parsed = ingest.parse_events(bronze_of(spark, lines))
    reasons = {r["raw"][:40]: r["reject_reason"] for r in parsed.collect()}
    assert sorted(v for v in reasons.values() if v) == sorted(
        [
            "malformed_json",
            "missing_user_id",
            "unknown_event_type",
            "invalid_event_time",
            "negative_price",
            "invalid_price",
        ]
    )
    assert parsed.count() == 7


def test_silver_is_typed_and_deduplicated(spark):
    lines = [json.dumps(GOOD), json.dumps(GOOD), with_(event_id="e2", event_time="2025-12-31T23:59:00Z")]
    silver = ingest.to_silver(ingest.parse_events(bronze_of(spark, lines)))
    rows = {r["event_id"]: r for r in silver.collect()}
    assert set(rows) == {"e1", "e2"}
    assert rows["e1"]["price"] == 10.5 and rows["e1"]["quantity"] == 2
    # A late event lands in the partition of its event time, not the day it arrived.
    assert rows["e2"]["event_date"] == date(2025, 12, 31)
    assert rows["e2"]["ingest_date"] == date(2026, 1, 1)


def test_runs_reconcile_and_reruns_change_nothing(spark, settings, tmp_path):
    day = date(2026, 1, 1)
    folder = tmp_path / "lake-root" / "raw" / "events" / "event_date=2026-01-01"
    folder.mkdir(parents=True)
    lines = [json.dumps(GOOD), json.dumps(GOOD), with_(event_id="e2"), "{broken"]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")

    def run():
        ingest.run_bronze(spark, settings, [day])
        reports = ingest.run_silver(spark, settings, [day])
        ingest.run_publish_silver(spark, settings)
        return reports

    (first,) = run()
    assert (first.raw_records, first.accepted, first.quarantined, first.duplicates_dropped) == (4, 2, 1, 1)
    assert first.reconciles

    def snapshot(name):
        frame = spark.read.format("delta").load(tables.table_path(name, settings))
        return sorted(tuple(r) for r in frame.drop("source_file").collect())

    before = {t: snapshot(t) for t in (tables.BRONZE_EVENTS, tables.SILVER_EVENTS, tables.QUARANTINE_EVENTS)}
    assert run() == []  # the ledger knows the file: nothing new to stage
    assert {t: snapshot(t) for t in before} == before
    # Forced re-processing goes through the same writes and still changes nothing.
    ingest.run_bronze(spark, settings, [day], reprocess=True)
    ingest.run_silver(spark, settings, [day], reprocess=True)
    ingest.run_publish_silver(spark, settings)
    assert {t: snapshot(t) for t in before} == before
    assert [
        r["reject_reason"]
        for r in spark.read.format("delta").load(tables.table_path(tables.QUARANTINE_EVENTS, settings)).collect()
    ] == ["malformed_json"]


def test_missing_input_names_the_path(spark, settings):
    with pytest.raises(ingest.MissingInputError, match="event_date=2030-01-01"):
        ingest.run_bronze(spark, settings, [date(2030, 1, 1)])


def test_every_planted_defect_is_accounted_for(spark, settings, tmp_path):
    """Plant each defect kind in a known amount; quarantine reasons, duplicates, late events and
    extra fields must match the plan exactly, and raw = silver + quarantined + duplicates."""
    from collections import Counter

    from lakecart.jobs.generate import DEFECT_REASONS, GeneratorSpec, generate

    per_day = {kind: 2 for kind in DEFECT_REASONS}
    spec = GeneratorSpec(users=40, items=20, categories=4, days=3, events_per_day=300, defects=per_day)
    manifest = generate(spec, tmp_path / "lake-root" / "raw")
    planted = manifest["planted_defects"]
    assert planted["late_event"] == 4 and planted["malformed_json"] == 6  # no late events off the last day

    days = [date(2026, 1, d) for d in (1, 2, 3)]
    ingest.run_bronze(spark, settings, days)
    reports = ingest.run_silver(spark, settings, days)
    ingest.run_publish_silver(spark, settings)
    raw = sum(r.raw_records for r in reports)
    assert raw == manifest["raw_lines"]
    assert all(r.reconciles for r in reports)

    quarantine = spark.read.format("delta").load(tables.table_path(tables.QUARANTINE_EVENTS, settings))
    expected = Counter({reason: planted[kind] for kind, reason in DEFECT_REASONS.items() if reason})
    assert Counter(r["reject_reason"] for r in quarantine.collect()) == expected
    assert sum(r.duplicates_dropped for r in reports) == planted["duplicate_event"]

    silver = spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings))
    assert silver.count() == raw - sum(expected.values()) - planted["duplicate_event"]
    late = silver.where("event_date < ingest_date").count()
    assert late == planted["late_event"]  # arrived a day late, filed under their own event date
    assert silver.where("extra['ab_bucket'] = 'treatment'").count() == planted["extra_field"]


def test_a_new_file_is_ingested_alone_and_a_changed_file_again(spark, settings, tmp_path):
    day = date(2026, 1, 1)
    folder = tmp_path / "lake-root" / "raw" / "events" / "event_date=2026-01-01"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text(json.dumps(GOOD) + "\n")
    assert ingest.run_bronze(spark, settings, [day]) == {day: 1}
    (folder / "b.jsonl").write_text(with_(event_id="e2") + "\n" + with_(event_id="e3") + "\n")
    assert ingest.run_bronze(spark, settings, [day]) == {day: 2}  # only the new file
    (folder / "a.jsonl").write_text(json.dumps(GOOD) + "\n" + with_(event_id="e4") + "\n")
    assert ingest.run_bronze(spark, settings, [day]) == {day: 2}  # a.jsonl changed: its rows replaced
    bronze = spark.read.format("delta").load(tables.table_path(tables.BRONZE_EVENTS, settings))
    assert bronze.count() == 4
