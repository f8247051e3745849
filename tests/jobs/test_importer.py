import json
from datetime import date

import pandas as pd
import pytest

from lakecart import tables
from lakecart.jobs import ingest
from lakecart.jobs.importer import ImportMapping, run_import, to_raw_events
from lakecart.jobs.validate import run_validate

MAPPING = ImportMapping(
    name="shop",
    fields={
        "user_id": "customer",
        "item_id": "sku",
        "event_time": "ordered_at",
        "quantity": "qty",
        "event_type": {"constant": "purchase"},
    },
    time_format="%d/%m/%Y %H:%M",
)


def test_mapping_renames_keeps_extras_and_derives_stable_ids():
    source = pd.DataFrame(
        {
            "customer": [7, 8],
            "sku": ["A", "B"],
            "ordered_at": ["02/01/2026 10:30", "garbage"],
            "qty": [2, 1],
            "store": ["x", "y"],
        }
    )
    out = to_raw_events(source, MAPPING)
    first = out.iloc[0]
    assert (first["user_id"], first["item_id"], first["event_type"], first["quantity"]) == ("7", "A", "purchase", 2)
    assert first["event_time"] == "2026-01-02T10:30:00.000Z" and first["event_date"] == "2026-01-02"
    assert first["store"] == "x"  # unmapped columns travel on as extra fields
    assert pd.isna(out.iloc[1]["event_date"])  # an unreadable time is kept, not guessed
    assert list(to_raw_events(source, MAPPING)["event_id"]) == list(out["event_id"])
    assert out["event_id"].is_unique


def test_mapping_errors_are_clear():
    with pytest.raises(ValueError, match="must give"):
        ImportMapping(name="x", fields={"user_id": "a"})
    with pytest.raises(ValueError, match="does not have"):
        ImportMapping(name="x", fields={"user_id": "a", "item_id": "b", "event_time": "c", "colour": "d"})
    with pytest.raises(KeyError, match="no such column"):
        to_raw_events(pd.DataFrame({"customer": [1]}), MAPPING)


def test_imported_export_flows_through_ingest_and_rejects_are_kept(spark, settings, tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text(
        "customer,sku,ordered_at,qty\n"
        "7,A,02/01/2026 10:30,2\n"
        "8,B,02/01/2026 11:00,1\n"
        "9,C,03/01/2026 09:00,1\n"
        "9,D,never,1\n"
    )
    raw_root = tmp_path / "lake-root" / "raw"
    summary = run_import(csv, MAPPING, raw_root)
    assert summary == {
        "source": str(csv),
        "rows": 4,
        "days": 2,
        "first_date": "2026-01-02",
        "last_date": "2026-01-03",
        "rows_without_time": 1,
    }
    kept = [json.loads(line) for line in (raw_root / "import_rejects" / "shop.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in kept] == ["D"]

    # Through the DAG's gates: the export has no anonymous id, session, price or category, all of
    # which the contract makes optional, so the suites must not demand them.
    days = [date(2026, 1, 2), date(2026, 1, 3)]
    ingest.run_bronze(spark, settings, days)
    run_validate(spark, settings, tables.BRONZE_EVENTS, days[-1], lookback_days=1)
    reports = ingest.run_silver(spark, settings, days)
    run_validate(spark, settings, tables.STAGING_SILVER_EVENTS, days[-1])
    ingest.run_publish(spark, settings)
    assert [(r.raw_records, r.accepted, r.quarantined) for r in reports] == [(2, 2, 0), (1, 1, 0)]
    silver = spark.read.format("delta").load(tables.table_path(tables.SILVER_EVENTS, settings))
    assert sorted((r["user_id"], r["quantity"]) for r in silver.collect()) == [("7", 2), ("8", 1), ("9", 1)]


def test_movielens_preset_fetches_and_maps_all_ratings(tmp_path):
    from lakecart.jobs.presets import import_movielens_100k

    summary = import_movielens_100k(tmp_path / "raw")
    assert summary["rows"] == 100_000 and summary["rows_without_time"] == 0
    assert (summary["first_date"], summary["last_date"]) == ("1997-09-20", "1998-04-22")
    lines = sum(len(p.read_text().splitlines()) for p in (tmp_path / "raw" / "events").glob("*/movielens-100k.jsonl"))
    assert lines == 100_000
    record = json.loads(
        (tmp_path / "raw/events/event_date=1997-09-20/movielens-100k.jsonl").read_text().splitlines()[0]
    )
    assert {"user_id", "item_id", "event_time", "category", "rating:float"} <= set(record)
    assert len((tmp_path / "raw" / "catalog" / "catalog.jsonl").read_text().splitlines()) == 1682


def test_instacart_preset_orders_each_users_orders_in_time(tmp_path):
    from lakecart.jobs.presets import import_instacart_sample

    summary = import_instacart_sample(tmp_path / "raw")
    assert summary["rows"] == 150_000 and summary["rows_without_time"] == 0
    lines = [
        json.loads(line)
        for path in (tmp_path / "raw" / "events").glob("*/instacart-sample.jsonl")
        for line in path.read_text().splitlines()
    ]
    frame = pd.DataFrame(lines)
    assert len(frame) == 150_000 and set(frame["event_type"]) == {"purchase"}
    # One time per order, and a user's later orders never happen earlier.
    per_order = frame.groupby(["user_id", "session_id"]).agg(t=("event_time", "first"), n=("order_number", "first"))
    assert (frame.groupby("session_id")["event_time"].nunique() == 1).all()
    for _, orders in per_order.groupby(level="user_id"):
        times = orders.sort_values("n")["t"].tolist()
        assert times == sorted(times)
