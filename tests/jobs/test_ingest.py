import json
from datetime import date, timedelta

import pytest

from lakecart import tables
from lakecart.jobs import ingest
from lakecart.jobs.validate import run_validate

GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "anonymous_id": "a1",
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
        [(line, "f.jsonl", n + 1, day) for n, line in enumerate(lines)],
        "raw string, source_file string, source_line long, ingest_date date",
    )
    return ingest.to_bronze(raw, {day: "batch-1"})


def audit_and_publish(spark, settings, days):
    """The gate, then publish (publish refuses a batch without a passing verdict)."""
    run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, days[-1], (days[-1] - days[0]).days)
    return ingest.run_publish(spark, settings)


def with_(**changes):
    return json.dumps({**GOOD, **changes})


def test_each_contract_breach_gets_its_reason(spark):
    lines = [
        json.dumps(GOOD),
        '{"event_id": "e2", "user_id": ',  # cut off
        with_(event_id="e3", user_id=None, anonymous_id=None),
        with_(event_id="e4", event_type="teleport"),
        with_(event_id="e5", event_time="yesterday"),
        with_(event_id="e6", price=-3.0),
        with_(event_id="e7", price="cheap"),
        "",  # blank line: not a record
    ]
    parsed = ingest.parse_records(bronze_of(spark, lines))
    reasons = {r["raw"][:40]: r["reject_reason"] for r in parsed.collect()}
    assert sorted(v for v in reasons.values() if v) == sorted(
        [
            "malformed_record",
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
    silver = ingest.to_silver(ingest.parse_records(bronze_of(spark, lines)))
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
        audit_and_publish(spark, settings, [day])
        return reports

    (first,) = run()
    assert (first.raw_records, first.accepted, first.quarantined, first.duplicates_dropped) == (4, 2, 1, 1)
    assert first.reconciles

    def snapshot(name):
        frame = spark.read.format("delta").load(tables.table_path(name, settings))
        return sorted(tuple(r) for r in frame.drop("source_file", "ingested_at").collect())

    before = {t: snapshot(t) for t in (tables.BRONZE_EVENTS, tables.SILVER_EVENTS, tables.QUARANTINE_EVENTS)}
    assert run() == []  # the ledger knows the file: nothing new to stage
    assert {t: snapshot(t) for t in before} == before
    # Forced re-processing goes through the same writes and still changes nothing.
    ingest.run_bronze(spark, settings, [day], reprocess=True)
    ingest.run_silver(spark, settings, [day], reprocess=True)
    ingest.run_publish(spark, settings)  # the same files staged again: the same batch, its verdict holds
    assert {t: snapshot(t) for t in before} == before
    assert [
        r["reject_reason"]
        for r in spark.read.format("delta").load(tables.table_path(tables.QUARANTINE_EVENTS, settings)).collect()
    ] == ["malformed_record"]


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
    audit_and_publish(spark, settings, days)
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


def test_sessions_split_after_thirty_idle_minutes(spark):
    def event(event_id, user, anonymous, clock):
        return with_(event_id=event_id, user_id=user, anonymous_id=anonymous, event_time=f"2026-01-01T{clock}Z")

    lines = [
        event("e1", "u1", "a1", "10:00:00"),
        event("e2", "u1", "a1", "10:29:59"),  # 29:59 after e1: same session
        event("e3", "u1", "a1", "11:00:00"),  # 30:01 after e2: a new one
        event("e4", None, "a7", "10:05:00"),  # signed out: sessionised by the anonymous id
        event("e5", None, "a7", "10:06:00"),
    ]
    silver = ingest.to_silver(ingest.parse_records(bronze_of(spark, lines)))
    keys = {r["event_id"]: r["session_key"] for r in silver.collect()}
    assert keys["e1"] == keys["e2"] == "u1@20260101T100000.000"
    assert keys["e3"] == "u1@20260101T110000.000"
    assert keys["e4"] == keys["e5"] == "a7@20260101T100500.000"


def write_day(folder, name, frame, fmt):
    folder.mkdir(parents=True, exist_ok=True)
    from lakecart.jobs.generate import write_records

    return write_records(frame, folder / name, fmt)


def test_every_raw_format_gives_the_same_silver_rows(spark, settings, tmp_path):
    """The same events as JSON lines, gzip JSON lines, CSV and Parquet, each in its own event-date
    partition, land as identical silver rows (apart from where they came from)."""
    import pandas as pd

    from lakecart.jobs.generate import FORMATS

    records = pd.DataFrame(
        [
            {**GOOD, "event_id": "e1", "search_query": None},
            {**GOOD, "event_id": "e2", "event_type": "search", "item_id": None, "search_query": "red, wide shoes"},
            {**GOOD, "event_id": "e3", "user_id": None, "event_type": "page_view", "item_id": None, "price": None},
        ]
    )
    days = [date(2026, 1, d) for d in range(1, len(FORMATS) + 1)]
    raw = tmp_path / "lake-root" / "raw" / "events"
    for day, fmt in zip(days, FORMATS, strict=True):
        shifted = records.assign(event_id=records["event_id"] + f"-{day.day}", event_time=f"{day}T10:00:00.000Z")
        write_day(raw / f"event_date={day}", "events", shifted, fmt)
    ingest.run_bronze(spark, settings, days)
    reports = ingest.run_silver(spark, settings, days)
    assert [(r.raw_records, r.accepted) for r in reports] == [(3, 3)] * len(FORMATS)
    staged = spark.read.format("delta").load(tables.table_path(tables.STAGING_SILVER_EVENTS, settings))
    content = {}
    for row in staged.collect():
        fields = {k: row[k] for k in ("user_id", "anonymous_id", "event_type", "item_id", "price", "quantity")}
        content.setdefault(row["event_date"], set()).add((*fields.values(), row["search_query"]))
    assert len(content) == len(FORMATS)
    assert all(rows == content[days[0]] for rows in content.values())
    assert (None, "a1", "page_view", None, None, 2, None) in content[days[0]]


def test_a_malformed_csv_line_is_quarantined_with_its_text(spark, settings, tmp_path):
    folder = tmp_path / "lake-root" / "raw" / "events" / "event_date=2026-01-01"
    folder.mkdir(parents=True)
    header = ",".join(ingest.RAW_EVENT_FIELDS)
    good = ",".join(str(GOOD.get(f, "")) for f in ingest.RAW_EVENT_FIELDS)
    (folder / "events.csv").write_text(f"{header}\n{good}\ne9,u1,only-three-fields\n")
    ingest.run_bronze(spark, settings, [date(2026, 1, 1)])
    (report,) = ingest.run_silver(spark, settings, [date(2026, 1, 1)])
    assert (report.raw_records, report.accepted, report.quarantined) == (2, 1, 1)
    (bad,) = spark.read.format("delta").load(tables.table_path(tables.QUARANTINE_EVENTS, settings)).collect()
    assert (bad["raw"], bad["reject_reason"]) == ("e9,u1,only-three-fields", "malformed_record")


def test_unknown_format_and_unreadable_files_fail_naming_the_file_before_any_write(spark, settings, tmp_path):
    folder = tmp_path / "lake-root" / "raw" / "events" / "event_date=2026-01-01"
    folder.mkdir(parents=True)
    (folder / "good.jsonl").write_text(json.dumps(GOOD) + "\n")
    (folder / "events.xml").write_text("<events/>")
    with pytest.raises(ingest.RawInputError, match=r"events\.xml: unknown raw format"):
        ingest.run_bronze(spark, settings, [date(2026, 1, 1)])
    (folder / "events.xml").unlink()
    # A file that cannot be read: a .gz that is not gzip (the job fails inside Spark, before the commit).
    (folder / "broken.jsonl.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ingest.RawInputError, match=r"broken\.jsonl\.gz: cannot read raw file \(.*not a gzip file"):
        ingest.run_bronze(spark, settings, [date(2026, 1, 1)])
    from lakecart import delta

    # Nothing half-written: no Delta commit, no ledger entry.
    assert not delta.table_exists(spark, tables.table_path(tables.BRONZE_EVENTS, settings))
    assert not delta.table_exists(spark, tables.table_path(tables.INGEST_LEDGER, settings))


def test_orders_and_users_go_through_write_audit_publish(spark, settings, tmp_path):
    import pandas as pd

    from lakecart.jobs.validate import run_write_audit_publish

    raw = tmp_path / "lake-root" / "raw"
    line = {
        "order_id": "o1",
        "user_id": "u1",
        "item_id": "i1",
        "quantity": 2,
        "unit_price": 10.0,
        "discount": 3.0,
        "order_time": "2026-01-01T09:00:00Z",
    }
    orders = pd.DataFrame(
        [line, {**line, "item_id": "i2", "discount": None}, line, {**line, "item_id": "i3", "quantity": 0}]
    )
    write_day(raw / "orders" / "order_date=2026-01-01", "orders", orders, "csv")
    users = pd.DataFrame(
        [
            {"user_id": "u1", "signup_time": "2025-01-01T00:00:00Z", "region": "north", "segment": "loyal"},
            {"user_id": None, "signup_time": "2025-01-01T00:00:00Z", "region": "north", "segment": "loyal"},
        ]
    )
    write_day(raw / "users" / "export_date=2026-01-01", "users", users, "parquet")

    days = [date(2026, 1, 1)]
    (report,) = run_write_audit_publish(spark, settings, ingest.ORDERS, days)
    assert (report.raw_records, report.accepted, report.quarantined, report.duplicates_dropped) == (4, 2, 1, 1)
    silver = spark.read.format("delta").load(tables.table_path(tables.SILVER_ORDER_LINES, settings))
    assert {r["item_id"]: r["revenue"] for r in silver.collect()} == {"i1": 17.0, "i2": 20.0}
    assert run_write_audit_publish(spark, settings, ingest.ORDERS, days) == []  # the ledger knows the file

    (report,) = run_write_audit_publish(spark, settings, ingest.USERS, days)
    assert (report.accepted, report.quarantined) == (1, 1)
    (user,) = spark.read.format("delta").load(tables.table_path(tables.SILVER_USERS, settings)).collect()
    assert (user["user_id"], user["region"], str(user["signup_time"])) == ("u1", "north", "2025-01-01 00:00:00")


def test_a_batch_failing_its_suite_is_held_back_in_staging(spark, settings, tmp_path):
    """Write-audit-publish in one call: records that keep the raw contract (category is optional) but
    fail the silver suite (item events without a category) stop before silver.events exists."""
    from lakecart import delta
    from lakecart.jobs.validate import run_write_audit_publish
    from lakecart.quality import ValidationFailed

    folder = tmp_path / "lake-root" / "raw" / "events" / "event_date=2026-01-01"
    folder.mkdir(parents=True)
    no_category = {k: v for k, v in GOOD.items() if k != "category"}
    # The source sends categories (e0 has one), but 19 of 20 item events lack it: 95% < 99%.
    lines = [json.dumps(GOOD)] + [json.dumps({**no_category, "event_id": f"e{n}"}) for n in range(1, 20)]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailed, match="expect_column_values_to_not_be_null\\(column=category"):
        run_write_audit_publish(spark, settings, ingest.EVENTS, [date(2026, 1, 1)])
    assert delta.table_exists(spark, tables.table_path(tables.STAGING_SILVER_EVENTS, settings))
    assert not delta.table_exists(spark, tables.table_path(tables.SILVER_EVENTS, settings))


def test_random_bytes_in_a_raw_file_leave_bronze_readable_without_a_jvm(spark, settings, tmp_path):
    from deltalake import DeltaTable

    folder = tmp_path / "lake-root" / "raw" / "events" / "event_date=2026-01-01"
    folder.mkdir(parents=True)
    not_utf8 = with_(event_id="e2").encode().replace(b'"u1"', b'"u\xff\xfe1"')  # a JSON record, bytes broken
    noise = bytes(range(0x80, 0x100))  # 128 bytes, none of them a newline, not valid UTF-8
    (folder / "events.jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n" + not_utf8 + b"\n" + noise + b"\n")
    ingest.run_bronze(spark, settings, [date(2026, 1, 1)])
    bronze = DeltaTable(tables.table_path(tables.BRONZE_EVENTS, settings)).to_pandas()
    assert len(bronze) == 3
    (report,) = ingest.run_silver(spark, settings, [date(2026, 1, 1)])
    assert (report.raw_records, report.accepted, report.quarantined) == (3, 1, 2)
    quarantine = DeltaTable(tables.table_path(tables.QUARANTINE_EVENTS, settings)).to_pandas()
    assert sorted(quarantine["reject_reason"]) == ["invalid_utf8", "invalid_utf8"]
    assert any(raw.startswith('{"event_id": "e2"') for raw in quarantine["raw"])  # the readable part is kept


def test_duplicates_within_a_batch_keep_the_first_line(spark):
    lines = [with_(price=1.0), with_(price=2.0), with_(price=3.0)]
    raw = spark.createDataFrame(
        [(line, "f.jsonl", n + 1, date(2026, 1, 1)) for n, line in enumerate(lines)][::-1],  # rows out of order
        "raw string, source_file string, source_line long, ingest_date date",
    )
    silver = ingest.to_silver(ingest.parse_records(ingest.to_bronze(raw, {date(2026, 1, 1): "batch-1"})))
    assert [(r["price"], r["source_line"]) for r in silver.collect()] == [(1.0, 1)]


@pytest.mark.parametrize("source", list(ingest.SOURCES.values()), ids=list(ingest.SOURCES))
def test_extra_fields_are_parsed_once_per_record(spark, source):
    """Each record's JSON is read into a map once for its extra fields: an expression naming the map
    twice (is it empty? then the map) made Spark parse every record twice, about a fifth of silver's
    time on an order export whose every line has extra fields (BENCHMARKS.md)."""
    fields = {
        "events": GOOD,
        "orders": {
            "order_id": "o1",
            "user_id": "u1",
            "item_id": "i1",
            "quantity": 1,
            "unit_price": 2.5,
            "order_time": "2026-01-01T10:00:00Z",
        },
        "users": {"user_id": "u1", "signup_time": "2025-06-01T00:00:00Z"},
        "promotions": {"item_id": "i1", "start_date": "2026-01-01", "end_date": "2026-01-07", "mailer": True},
    }[source.name]
    key = {"events": "event_id", "orders": "order_id", "users": "user_id", "promotions": "item_id"}[source.name]
    lines = [json.dumps({**fields, "aisle": "7", "week": None}), json.dumps({**fields, key: "second"})]
    raw = spark.createDataFrame(
        [(line, "f.jsonl", n + 1, date(2026, 1, 1)) for n, line in enumerate(lines)],
        "raw string, source_file string, source_line long, ingest_date date",
    )
    silver = ingest.to_silver(ingest.parse_records(ingest.to_bronze(raw, {date(2026, 1, 1): "b"}), source), source)
    plan = silver._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("from_json(MapType") == 1
    # A field sent as null is not an extra field; a record without extra fields has null, not {}.
    assert sorted((r["source_line"], r["extra"]) for r in silver.collect()) == [(1, {"aisle": "7"}), (2, None)]


def test_an_imported_order_export_and_promotions_reach_silver(spark, settings, tmp_path):
    """The importer's output through bronze, both suites and publish: a bulk line above the old fixed
    bound of 1,000 units is accepted (ingest.max_quantity), a line of quantity 0 is quarantined, a line
    sold by weight (0.454 kg) is one purchase, and a promotion for every store (store_id null) stays one
    row when its file is published again."""
    import pandas as pd

    from lakecart.config import IngestSettings, Settings
    from lakecart.jobs.importer import ImportMapping, import_frame
    from lakecart.jobs.validate import run_write_audit_publish

    raw = tmp_path / "lake-root" / "raw"
    orders = ImportMapping(
        name="shop",
        kind="orders",
        fields={
            "order_id": "basket",
            "user_id": "hh",
            "item_id": "sku",
            "order_time": "at",
            "quantity": "qty",
            "line_amount": "paid",
            "discount": "disc",
        },
        measured_lines="fractional",
    )
    lines = pd.DataFrame(
        {
            "basket": ["b1", "b1", "b2", "b3", "b4"],
            "hh": ["01", "01", "02", "03", "04"],
            "sku": ["007", "007", "008", "009", "apples"],
            "at": ["2026-01-01T09:00:00Z"] * 5,
            "qty": [1, 2, 1200, 0, 0.454],
            "paid": [2.0, 4.0, 1800.0, 0.0, 1.36],
            "disc": [-0.5, -1.0, 0.0, 0.0, -0.2],
        }
    )
    summary = import_frame(lines, orders, raw)
    assert (summary["duplicate_lines_merged"], summary["lines_counted_as_one_purchase"]) == (1, 1)
    promotions = ImportMapping(
        name="shop",
        kind="promotions",
        fields={"item_id": "sku", "start_date": "from", "end_date": "to", "mailer": "ad"},
    )
    promo = pd.DataFrame({"sku": ["007", "008"], "from": ["2026-01-01"] * 2, "to": ["2026-01-07", "2025-12-31"]})
    import_frame(promo.assign(ad=[True, False]), promotions, raw)

    days = [date(2026, 1, 1)]
    (report,) = run_write_audit_publish(spark, settings, ingest.ORDERS, days)
    assert (report.raw_records, report.accepted, report.quarantined) == (4, 3, 1)  # 5 lines in, 2 merged
    silver = {
        r["item_id"]: r
        for r in spark.read.format("delta").load(tables.table_path(tables.SILVER_ORDER_LINES, settings)).collect()
    }
    # 007: quantity 1 + 2 = 3, discount 1.50, unit (6.00 + 1.50) / 3 = 2.50, revenue 3 x 2.50 - 1.50 = 6.00
    assert (silver["007"]["quantity"], silver["007"]["unit_price"], silver["007"]["revenue"]) == (3, 2.5, 6.0)
    assert (silver["007"]["user_id"], silver["008"]["quantity"], silver["008"]["revenue"]) == ("01", 1200, 1800.0)
    # apples: one purchase at the line's list value 1.36 + 0.20 = 1.56, revenue what was paid; 0.454 kept
    apples = silver["apples"]
    assert (apples["quantity"], apples["unit_price"], apples["revenue"]) == (1, 1.56, 1.36)
    assert float(apples["extra"]["exported_quantity"]) == 0.454
    quarantine = spark.read.format("delta").load(tables.table_path(tables.QUARANTINE_ORDERS, settings)).collect()
    assert [r["reject_reason"] for r in quarantine] == ["invalid_quantity"]
    # The bound is a setting: at 1,000 units the bulk line would have been quarantined.
    bronze = spark.read.format("delta").load(tables.table_path(tables.BRONZE_ORDERS, settings))
    strict = Settings(lake=settings.lake, ingest=IngestSettings(max_quantity=1000))
    assert ingest.parse_records(bronze, ingest.ORDERS, strict).where("reject_reason IS NOT NULL").count() == 2

    (report,) = run_write_audit_publish(spark, settings, ingest.PROMOTIONS, days)
    assert (report.raw_records, report.accepted, report.quarantined) == (2, 1, 1)
    assert [
        r["reject_reason"]
        for r in spark.read.format("delta").load(tables.table_path(tables.QUARANTINE_PROMOTIONS, settings)).collect()
    ] == ["end_before_start"]
    path = tables.table_path(tables.SILVER_PROMOTIONS, settings)
    (row,) = spark.read.format("delta").load(path).collect()
    assert (row["item_id"], row["store_id"], str(row["start_date"]), str(row["end_date"])) == (
        "007",
        None,
        "2026-01-01",
        "2026-01-07",
    )
    assert (row["display"], row["mailer"], row["price_cut"], row["extra"]) == (False, True, None, None)
    # Published again (re-processed): the key with a null store is matched, not inserted twice.
    run_write_audit_publish(spark, settings, ingest.PROMOTIONS, days, reprocess=True)
    assert spark.read.format("delta").load(path).count() == 1


def test_a_closed_day_and_sparse_promotion_days_pass_a_backfill(spark, settings, tmp_path):
    """A backfill over days where the shop sold nothing (an empty file: the export says so) and
    where no promotion starts (no folder at all: promotions are sparse by nature) goes through; a
    day of orders with no file at all is still missing data, an error naming it."""
    import pandas as pd

    from lakecart.jobs.importer import ImportMapping, import_frame
    from lakecart.jobs.validate import run_write_audit_publish

    raw = tmp_path / "lake-root" / "raw"
    orders = ImportMapping(
        name="shop",
        kind="orders",
        fields={"order_id": "b", "user_id": "u", "item_id": "i", "order_time": "at", "line_amount": "paid"},
    )
    lines = pd.DataFrame(
        {"b": ["1", "2"], "u": ["7", "7"], "i": ["9", "9"], "at": ["2026-01-01T09:00:00Z", "2026-01-03T09:00:00Z"]}
    ).assign(paid=2.0)
    assert import_frame(lines, orders, raw)["days_without_orders"] == ["2026-01-02"]
    promotions = ImportMapping(
        name="shop", kind="promotions", fields={"item_id": "i", "start_date": "s", "end_date": "e"}
    )
    import_frame(pd.DataFrame({"i": ["9"], "s": ["2026-01-01"], "e": ["2026-01-07"]}), promotions, raw)

    days = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
    reports = run_write_audit_publish(spark, settings, ingest.ORDERS, days)
    assert sum(r.accepted for r in reports) == 2
    reports = run_write_audit_publish(spark, settings, ingest.PROMOTIONS, days)
    assert sum(r.accepted for r in reports) == 1
    with pytest.raises(ingest.MissingInputError, match="order_date=2026-01-04"):
        ingest.list_raw_files(spark, str(raw), [date(2026, 1, 4)], ingest.ORDERS)


def _render(day: str, counts: tuple[int, ...]) -> str:
    return f"{day}: {counts[0]} records from {counts[1]} files"


def test_a_backfill_logs_one_line_of_totals_and_each_day_at_debug(caplog):
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(ingest.DAY_LINES + 1)]
    counts = [(10 * n, 1) for n in range(len(days))]  # 0 + 10 + ... + 70 = 280 records, 8 files
    with caplog.at_level("DEBUG", logger=ingest.log.name):
        ingest.log_days(days, counts, _render)
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    debug = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert info == ["2026-01-01..2026-01-08 (8 days): 280 records from 8 files (each day at DEBUG)"]
    assert debug == [f"{d}: {c[0]} records from 1 files" for d, c in zip(days, counts, strict=True)]


def test_a_daily_run_logs_each_day_and_no_totals(caplog):
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(ingest.DAY_LINES)]
    with caplog.at_level("DEBUG", logger=ingest.log.name):
        ingest.log_days(days, [(5, 2)] * len(days), _render)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"{d}: 5 records from 2 files") for d in days
    ]
