"""Write-audit-publish across days: a batch reaches silver only through a passing gate, a failed day is
never marked published, and each event id is in silver once, the first seen (earliest raw partition,
then source file, then line)."""

import json
import os
from datetime import date

import pytest

from lakecart import tables
from lakecart.jobs import ingest
from lakecart.jobs.validate import run_validate
from lakecart.quality import ValidationFailed

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def event(event_id: str, day: date, **changes) -> str:
    record = {
        "event_id": event_id,
        "user_id": "u1",
        "anonymous_id": "a1",
        "session_id": "s1",
        "event_type": "product_view",
        "item_id": "i1",
        "category": "c1",
        "price": 10.0,
        "quantity": 1,
        "event_time": f"{day}T10:00:00.000Z",
    }
    return json.dumps({k: v for k, v in {**record, **changes}.items() if v is not None})


def land(settings, day: date, name: str, lines: list[str]) -> None:
    folder = f"{settings.lake.raw}/events/event_date={day}"
    os.makedirs(folder, exist_ok=True)
    path = f"{folder}/{name}"
    existed = os.path.exists(path)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    if existed:  # a rewrite within the same second must still look changed to the ledger
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def dag_day(spark, settings, day: date, bronze_gate: bool = False) -> None:
    """The DAG's clickstream commands for one day, in order; the first failing one raises. The bronze
    gate (which these files pass) only where a test is about the whole chain: each GX run costs seconds."""
    ingest.run_bronze(spark, settings, [day])
    if bronze_gate:
        run_validate(spark, settings, tables.BRONZE_EVENTS, day)
    ingest.run_silver(spark, settings, [day])
    run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, day)
    ingest.run_publish(spark, settings)


def silver(spark, settings):
    return spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings))


def ledger(spark, settings) -> dict[str, str]:
    rows = spark.read.format("delta").load(tables.table_path(tables.INGEST_LEDGER, settings)).collect()
    return {r["source_file"].rsplit("/", 2)[-2]: r["status"] for r in rows}


def test_a_failed_day_is_never_marked_published_and_publishes_once_repaired(spark, settings):
    # D1: 20 item events, 19 without a category (the contract allows it, the silver suite does not).
    bad = [event(f"d1-{n}", D1, category=None) for n in range(19)] + [event("d1-19", D1)]
    land(settings, D1, "events.jsonl", bad)
    with pytest.raises(ValidationFailed, match="column=category"):
        dag_day(spark, settings, D1, bronze_gate=True)
    # D2: 10 events, and d1-19 re-sent (another price): D2 is published before D1 is.
    resent = event("d1-19", D1, price=2.0)
    land(settings, D2, "events.jsonl", [event(f"d2-{n}", D2) for n in range(10)] + [resent])
    dag_day(spark, settings, D2, bronze_gate=True)
    # D2 passed and published; D1's file must not be marked published, its rows never reached silver.
    assert ledger(spark, settings) == {"event_date=2026-01-01": "staged", "event_date=2026-01-02": "published"}
    assert silver(spark, settings).count() == 11

    # The tracking fix is back-filled: D1's file is re-sent with categories and D1 re-run.
    land(settings, D1, "events.jsonl", [event(f"d1-{n}", D1) for n in range(20)])
    dag_day(spark, settings, D1, bronze_gate=True)
    assert ledger(spark, settings) == {"event_date=2026-01-01": "published", "event_date=2026-01-02": "published"}
    rows = silver(spark, settings)
    assert rows.count() == rows.select("event_id").distinct().count() == 30  # 20 of D1 + 10 of D2
    # d1-19 was first seen in D1's file (an earlier raw partition), so D1's record wins though D2
    # was published first.
    assert rows.where("event_id = 'd1-19'").first()["price"] == 10.0


def test_publish_refuses_a_batch_whose_gate_failed_or_never_ran(spark, settings):
    # The source sends categories (e0 has one) but 19 of 20 item events lack it: 95% < 99%.
    land(settings, D1, "events.jsonl", [event("e0", D1)] + [event(f"e{n}", D1, category=None) for n in range(1, 20)])
    ingest.run_bronze(spark, settings, [D1])
    ingest.run_silver(spark, settings, [D1])
    with pytest.raises(ingest.PublishRefused, match=r"no passing verdict.*lakecart validate staging\.silver_events"):
        ingest.run_publish(spark, settings)  # never validated
    with pytest.raises(ValidationFailed):
        run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, D1)
    with pytest.raises(ingest.PublishRefused, match="2026-01-01"):
        ingest.run_publish(spark, settings)  # validated, and failed
    assert not os.path.exists(tables.table_path(tables.SILVER_EVENTS, settings))
    verdicts = spark.read.format("delta").load(tables.table_path(tables.VALIDATION_RUNS, settings))
    (verdict,) = verdicts.where(f"table = '{tables.STAGING_SILVER_EVENTS}'").collect()
    assert (verdict["success"], verdict["rows"], verdict["start_date"], verdict["end_date"]) == (False, 20, D1, D1)
    assert any("column=category" in f for f in verdict["failures"]) and verdict["code_version"]


def test_the_gate_validates_the_batch_of_the_day_it_names(spark, settings):
    land(settings, D1, "events.jsonl", [event(f"e{n}", D1) for n in range(10)])
    ingest.run_bronze(spark, settings, [D1])
    ingest.run_silver(spark, settings, [D1])
    # Staging holds D1's batch; D2 staged nothing, so there is nothing of D2's to call good.
    with pytest.raises(ValidationFailed, match=r"2026-01-02: nothing staged.*2026-01-01"):
        run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, D2)


def test_a_day_whose_every_record_was_quarantined_fails_the_gate(spark, settings):
    land(settings, D1, "events.jsonl", [event(f"a{n}", D1) for n in range(10)])
    broken = ["{broken"] * 10 + [event(f"no-user{n}", D2, user_id=None, anonymous_id=None) for n in range(10)]
    land(settings, D2, "events.jsonl", broken)
    ingest.run_bronze(spark, settings, [D1, D2])
    ingest.run_silver(spark, settings, [D1, D2])
    # Staged rows: 10, all of D1; D2 brought 20 raw records and 0 usable ones (20/20 = 100% quarantined).
    with pytest.raises(ValidationFailed) as failure:
        run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, D2, lookback_days=1)
    assert "column=accepted" in str(failure.value) and "column=quarantined_share" in str(failure.value)


def test_duplicates_first_seen_wins_within_and_across_batches(spark, settings):
    # D1: e1 twice in one file (line 1 wins), e2 in two files (a.jsonl before b.jsonl).
    land(settings, D1, "a.jsonl", [event("e1", D1, price=1.0), event("e1", D1, price=2.0), event("e2", D1, price=3.0)])
    land(settings, D1, "b.jsonl", [event("e2", D1, price=4.0)] + [event(f"x{n}", D1) for n in range(8)])
    dag_day(spark, settings, D1)
    # D2 re-sends e1 with a changed time (another event_date) and e2 with a changed price.
    resent = [event("e1", D2, event_time="2026-01-02T09:00:00.000Z", price=5.0), event("e2", D1, price=6.0)]
    land(settings, D2, "events.jsonl", resent + [event(f"y{n}", D2) for n in range(8)])
    dag_day(spark, settings, D2)
    rows = silver(spark, settings)
    assert rows.count() == rows.select("event_id").distinct().count() == 2 + 8 + 8
    prices = {r["event_id"]: (r["price"], r["event_date"]) for r in rows.where("event_id IN ('e1', 'e2')").collect()}
    assert prices == {"e1": (1.0, D1), "e2": (3.0, D1)}


def test_a_rewritten_raw_file_replaces_its_rows_as_a_whole(spark, settings):
    land(settings, D1, "events.jsonl", [event(f"e{n}", D1) for n in range(12)])
    dag_day(spark, settings, D1)
    # The file is re-sent without e10 and e11, and e0's price corrected.
    land(settings, D1, "events.jsonl", [event("e0", D1, price=99.0)] + [event(f"e{n}", D1) for n in range(1, 10)])
    dag_day(spark, settings, D1)
    rows = {r["event_id"]: r["price"] for r in silver(spark, settings).collect()}
    assert sorted(rows) == sorted(f"e{n}" for n in range(10)) and rows["e0"] == 99.0


def test_a_gate_shows_its_outcome_once(spark, settings, capsys, caplog, in_process_cli):
    """`lakecart validate` prints the gate's outcome; the suites it ran do not log theirs as well
    (a staged batch's three suites used to add three more lines on the terminal)."""
    import logging
    import re

    from lakecart import cli

    land(settings, D1, "a.json", [event("e1", D1), event("e2", D1, event_type="add_to_cart")])
    ingest.run_bronze(spark, settings, [D1])
    ingest.run_silver(spark, settings, [D1])
    with caplog.at_level(logging.DEBUG, logger="lakecart"):
        caplog.set_level(logging.INFO, logger="lakecart.quality")
        assert cli.main(["validate", tables.STAGING_SILVER_EVENTS, "--date", str(D1)]) == 0
    shown = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert len(re.findall(r"expectations passed", shown)) == 1, shown
    assert re.search(rf"^{re.escape(tables.STAGING_SILVER_EVENTS)}: (\d+)/\1 expectations passed", shown, re.M)
