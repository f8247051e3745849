import json
from datetime import date

import pandas as pd
import pytest

from lakecart import tables
from lakecart.jobs import ingest
from lakecart.jobs.importer import (
    ImportMapping,
    MappingError,
    MissingColumnError,
    import_frame,
    read_source,
    run_import,
    to_raw_catalog,
    to_raw_customers,
    to_raw_events,
    to_raw_orders,
)
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


# --- kinds beyond events: orders, catalogue, customers, promotions -----------------------------------

ORDERS = ImportMapping(
    name="grocer",
    kind="orders",
    fields={
        "order_id": "basket",
        "user_id": "household",
        "item_id": "product",
        "order_time": "at",
        "quantity": "qty",
        "line_amount": "paid",
        "discount": ["loyalty", "coupon"],
        "category": "dept",
    },
)


def grocer_csv(tmp_path, rows: list[str]):
    path = tmp_path / "lines.csv"
    path.write_text("basket,household,product,at,qty,paid,loyalty,coupon,dept,store\n" + "\n".join(rows) + "\n")
    return path


def test_order_ids_stay_text_and_unit_price_comes_from_the_line_amount(tmp_path):
    path = grocer_csv(
        tmp_path,
        [
            "0001,007,01104905,2026-01-02T10:00:00Z,2,3.00,-0.40,-0.20,DAIRY,0042",
            "0002,008,00000017,2026-01-02T11:00:00Z,1200,1800.00,0,0,BULK,0042",
        ],
    )
    lines, merged = to_raw_orders(read_source(path, ORDERS), ORDERS)
    first, bulk = lines.iloc[0], lines.iloc[1]
    assert (first["order_id"], first["user_id"], first["item_id"]) == ("0001", "007", "01104905")
    assert first["store"] == 42  # an unmapped column is read as pandas reads it (read_options can say str)
    # discount = |-0.40| + |-0.20| = 0.60; list value = 3.00 paid + 0.60 = 3.60 over 2 units = 1.80
    assert first["discount"] == pytest.approx(0.60) and first["unit_price"] == pytest.approx(1.80)
    assert first["quantity"] == 2 and merged == 0
    assert (bulk["quantity"], bulk["unit_price"]) == (1200, 1.5)  # 1800.00 / 1200


def test_duplicate_order_lines_are_added_up_and_counted(tmp_path):
    path = grocer_csv(
        tmp_path,
        [
            "B1,U1,I1,2026-01-02T10:00:00Z,1,2.00,-0.50,0,DAIRY,1",
            "B1,U1,I2,2026-01-02T10:00:00Z,1,5.00,0,0,DAIRY,1",
            "B1,U1,I1,2026-01-02T10:00:00Z,3,6.00,0,-1.00,DAIRY,1",
        ],
    )
    summary = run_import(path, ORDERS, tmp_path / "raw")
    assert (summary["rows"], summary["order_lines"], summary["duplicate_lines_merged"]) == (3, 2, 1)
    written = [json.loads(x) for x in (tmp_path / "raw/orders/order_date=2026-01-02/grocer.jsonl").read_text().split()]
    i1 = next(r for r in written if r["item_id"] == "I1")
    # quantity 1 + 3 = 4; paid 2.00 + 6.00 = 8.00; discount 0.50 + 1.00 = 1.50; unit = 9.50 / 4 = 2.375
    assert (i1["quantity"], i1["discount"], i1["unit_price"], i1["paid"]) == (4, 1.5, 2.375, 8.0)


def test_orders_without_a_catalogue_derive_one(tmp_path):
    path = grocer_csv(
        tmp_path,
        [
            "B1,U1,I1,2026-01-02T10:00:00Z,1,1.00,0,0,DAIRY,1",
            "B2,U1,I1,2026-01-03T10:00:00Z,1,3.00,0,0,DAIRY,1",
            "B3,U2,I1,2026-01-03T11:00:00Z,1,4.00,0,0,FROZEN,1",
            "B3,U2,I2,2026-01-03T11:00:00Z,0,0.00,0,0,BAKERY,1",
        ],
    )
    summary = run_import(path, ORDERS, tmp_path / "raw")
    items = pd.read_json(tmp_path / "raw/catalog/grocer.derived.jsonl", lines=True, dtype=False)
    # I1: median of 1.00, 3.00, 4.00 = 3.00, DAIRY on 2 of its 3 lines; I2 has no priceable line
    assert items.set_index("item_id")["category"].to_dict() == {"I1": "DAIRY", "I2": "BAKERY"}
    assert items.set_index("item_id")["price"].iloc[0] == 3.0 and pd.isna(items["price"].iloc[1])
    assert summary["catalog_items_derived"] == 2 and summary["lines_without_unit_price"] == 1
    # A real catalogue replaces the derived one; orders imported after it derive nothing.
    catalog = ImportMapping(name="shelf", kind="catalog", fields={"item_id": "sku", "hierarchy": ["a", "b"]})
    (tmp_path / "items.csv").write_text("sku,a,b\nI1,DAIRY,MILK\n")
    assert run_import(tmp_path / "items.csv", catalog, tmp_path / "raw")["derived_catalogs_replaced"] == [
        "grocer.derived.jsonl"
    ]
    assert run_import(path, ORDERS, tmp_path / "raw")["catalog_items_derived"] == 0
    assert sorted(p.name for p in (tmp_path / "raw/catalog").iterdir()) == ["shelf.jsonl"]


def test_unit_price_given_is_kept_and_quantity_defaults_to_one():
    mapping = ImportMapping(
        name="s",
        kind="orders",
        fields={"order_id": "o", "user_id": "u", "item_id": "i", "order_time": "t", "unit_price": "p"},
    )
    source = pd.DataFrame({"o": ["1"], "u": ["u"], "i": ["x"], "t": ["2026-01-01T00:00:00Z"], "p": [0.1]})
    lines, _ = to_raw_orders(source, mapping)
    assert (lines.iloc[0]["quantity"], lines.iloc[0]["unit_price"]) == (1, 0.1)
    assert "discount" not in lines  # not in the export: absent, which the contract reads as 0


def test_lines_sold_by_weight_count_as_one_purchase_at_the_lines_amounts(tmp_path):
    path = grocer_csv(
        tmp_path,
        [
            "B1,U1,APPLES,2026-01-02T10:00:00Z,0.454,1.36,-0.20,0,PRODUCE,1",
            "B1,U1,MILK,2026-01-02T10:00:00Z,2,3.00,0,0,DAIRY,1",
            "B2,U2,PEARS,2026-01-02T11:00:00Z,0,0.00,0,0,PRODUCE,1",
        ],
    )
    source = read_source(path, ORDERS)
    as_before, _ = to_raw_orders(source, ORDERS)  # without the option: written as exported, quarantined
    assert as_before.set_index("item_id").loc["APPLES", "quantity"] == 0.454 and "exported_quantity" not in as_before
    fractional = ImportMapping(**{**ORDERS.__dict__, "measured_lines": "fractional"})
    lines = to_raw_orders(source, fractional)[0].set_index("item_id")
    # 0.454 kg: one purchase; list value 1.36 paid + 0.20 discount = 1.56 for the whole line
    assert (lines.loc["APPLES", "quantity"], lines.loc["APPLES", "unit_price"]) == (1, 1.56)
    assert lines.loc["APPLES", "exported_quantity"] == 0.454
    assert (lines.loc["MILK", "quantity"], lines.loc["MILK", "unit_price"]) == (2, 1.5)
    assert lines["exported_quantity"].isna().tolist() == [False, True, True]
    assert lines.loc["PEARS", "quantity"] == 0  # a line of 0 is no purchase: still quarantined
    summary = run_import(path, fractional, tmp_path / "raw")
    assert (summary["lines_counted_as_one_purchase"], summary["lines_without_unit_price"]) == (1, 1)
    # The sparse extra field is in the measured line's record only, not a null in every other one.
    raw = (tmp_path / "raw/orders/order_date=2026-01-02/grocer.jsonl").read_text()
    assert raw.count("exported_quantity") == 1 and "null" not in raw


def test_raw_records_leave_missing_values_out_and_keep_text_that_looks_like_them(tmp_path):
    from lakecart.jobs.importer import _write_jsonl

    rows = pd.DataFrame({"a/b": [None, 'x,"c":null/', None], "c": [1.0, None, None], "d": ["k", "l", None]})
    _write_jsonl(rows, tmp_path / "x.jsonl")
    records = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert records == [{"c": 1.0, "d": "k"}, {"a/b": 'x,"c":null/', "d": "l"}, {}]


def test_lines_sold_by_measure_can_be_chosen_by_a_column_and_priced_per_unit_of_measure():
    mapping = ImportMapping(
        name="s",
        kind="orders",
        fields={"order_id": "o", "user_id": "u", "item_id": "i", "order_time": "t", "quantity": "q", "unit_price": "p"},
        measured_lines={"column": "unit", "values": ["kg", "l"]},
    )
    source = pd.DataFrame(
        {
            "o": ["1", "1", "2", "2"],
            "u": ["u"] * 4,
            "i": ["beef", "eggs", "fuel", "fuel"],
            "t": ["2026-01-01T00:00:00Z"] * 4,
            "q": [2.0, 6.0, 40.0, 10.0],
            "p": [12.5, 0.3, 1.5, 1.5],
            "unit": ["kg", "each", "l", "l"],
        }
    )
    lines, merged = to_raw_orders(source, mapping)
    lines = lines.set_index("item_id")
    # 2 kg at 12.50 a kg: one purchase of 25.00 (a whole number of kg is still a weight)
    assert (lines.loc["beef", "quantity"], lines.loc["beef", "unit_price"], lines.loc["beef", "exported_quantity"]) == (
        1,
        25.0,
        2.0,
    )
    assert (lines.loc["eggs", "quantity"], lines.loc["eggs", "unit_price"]) == (6, 0.3)
    # two fills in one basket merge like any repeated line: 2 purchases, (60 + 15) / 2 each, 50 l
    assert merged == 1
    assert (lines.loc["fuel", "quantity"], lines.loc["fuel", "unit_price"], lines.loc["fuel", "exported_quantity"]) == (
        2,
        37.5,
        50.0,
    )
    assert lines.loc["fuel", "unit"] == "l"  # the column that chose them stays an extra field


def test_measured_lines_is_checked_when_the_mapping_is_read():
    with pytest.raises(MappingError, match="measured_lines is for orders"):
        ImportMapping(name="x", kind="catalog", fields={"item_id": "sku"}, measured_lines="fractional")
    with pytest.raises(MappingError, match="measured_lines must be 'fractional' or"):
        ImportMapping(**{**ORDERS.__dict__, "measured_lines": "fractionl"})
    with pytest.raises(MappingError, match="measured_lines must be"):
        ImportMapping(**{**ORDERS.__dict__, "measured_lines": {"column": "unit"}})
    mapping = ImportMapping(**{**ORDERS.__dict__, "measured_lines": {"column": "unit", "values": ["kg"]}})
    with pytest.raises(MissingColumnError, match="measured_lines <- 'unit': no such column"):
        to_raw_orders(
            pd.DataFrame({c: ["1"] for c in ("basket", "household", "product", "at", "qty", "paid")}), mapping
        )


def test_catalog_hierarchy_becomes_a_category_path_and_extras_stay(tmp_path):
    products = pd.DataFrame(
        {
            "product_id": [25671, 26081],
            "department": ["GROCERY", "MISCELLANEOUS"],
            "product_category": ["FRZN ICE", None],
            "product_type": ["ICE - CRUSHED/CUBED", "ANYTHING"],  # after a missing level: not part of the path
            "brand": ["National", "Private"],
            "package_size": ["22 LB", None],
        }
    )
    mapping = ImportMapping(
        name="cj",
        kind="catalog",
        fields={
            "item_id": "product_id",
            "brand": "brand",
            "hierarchy": ["department", "product_category", "product_type"],
        },
    )
    items = to_raw_catalog(products, mapping)
    assert list(items["item_id"]) == ["25671", "26081"]
    assert list(items["category_path"]) == ["GROCERY > FRZN ICE > ICE - CRUSHED/CUBED", "MISCELLANEOUS"]
    assert items.iloc[0]["package_size"] == "22 LB" and "department" not in items


def test_customers_take_their_first_order_time_when_the_export_has_no_signup(tmp_path):
    demographics = pd.DataFrame({"household_id": [1, 2, 3], "income": ["35-49K", "Under 15K", "100-124K"]})
    mapping = ImportMapping(name="cj", kind="customers", fields={"user_id": "household_id"})
    with pytest.raises(MappingError, match="no signup_time"):
        to_raw_customers(demographics, mapping)
    first = pd.Series({"1": "2026-01-05T09:00:00.000Z", "2": "2026-01-02T08:00:00.000Z"})
    summary = import_frame(demographics, mapping, tmp_path / "raw", first_orders=first)
    assert (summary["customers"], summary["customers_without_signup_time"], summary["days"]) == (2, 1, 2)
    user = json.loads((tmp_path / "raw/users/export_date=2026-01-02/cj.jsonl").read_text())
    assert user == {"user_id": "2", "signup_time": "2026-01-02T08:00:00.000Z", "income": "Under 15K"}
    kept = json.loads((tmp_path / "raw/import_rejects/cj-customers.jsonl").read_text())
    assert kept["user_id"] == "3"  # no order, no signup time: kept and counted, not dropped


def test_promotions_rows_are_partitioned_by_start_date(tmp_path):
    source = pd.DataFrame(
        {
            "sku": ["01", "02", "03"],
            "store": [None, "7", None],
            "from": ["2026-01-05", "2026-01-05", "soon"],
            "to": ["2026-01-11", "2026-01-04", "2026-01-11"],
            "on_display": ["yes", "0", "1"],
            "cut": [0.5, None, None],
        }
    )
    mapping = ImportMapping(
        name="promo",
        kind="promotions",
        fields={
            "item_id": "sku",
            "store_id": "store",
            "start_date": "from",
            "end_date": "to",
            "display": "on_display",
            "price_cut": "cut",
        },
    )
    summary = import_frame(source, mapping, tmp_path / "raw")
    assert (summary["promotions"], summary["rows_without_start_date"]) == (2, 1)
    rows = [json.loads(x) for x in (tmp_path / "raw/promotions/start_date=2026-01-05/promo.jsonl").read_text().split()]
    assert rows[0] == {  # no store: every store (the key is left out, which the contract reads as null)
        "item_id": "01",
        "start_date": "2026-01-05",
        "end_date": "2026-01-11",
        "display": True,
        "price_cut": 0.5,
    }
    # End before start is written as exported: ingestion quarantines it (end_before_start).
    assert (rows[1]["store_id"], rows[1]["end_date"], rows[1]["display"]) == ("7", "2026-01-04", False)


def test_promotions_planned_ahead_land_on_the_day_they_became_known(tmp_path):
    """``lead_days``: a plan is sent that many days before its promotions start, and a promotion is
    known from the raw folder's day (its ingest date), so each row goes to ``start - lead_days``, not
    before the export's first start (nothing was sent before the export begins)."""
    source = pd.DataFrame(
        {
            "sku": ["a", "b", "c"],
            "from": ["2026-01-05", "2026-01-12", "2026-01-30"],
            "to": ["2026-01-11"] * 2 + ["2026-02-05"],
        }
    )
    fields = {"item_id": "sku", "start_date": "from", "end_date": "to"}
    mapping = ImportMapping(name="plan", kind="promotions", fields=fields, lead_days=7)
    summary = import_frame(source, mapping, tmp_path / "raw")
    assert (summary["first_date"], summary["last_date"], summary["promotions"]) == ("2026-01-05", "2026-01-23", 3)
    folder = tmp_path / "raw" / "promotions"
    assert sorted(p.parent.name for p in folder.glob("*/plan.jsonl")) == [
        "start_date=2026-01-05",  # a (Jan 5) and b (Jan 12 - 7) were both known on the first day
        "start_date=2026-01-23",  # c: Jan 30 - 7
    ]
    known_early = [json.loads(x) for x in (folder / "start_date=2026-01-05/plan.jsonl").read_text().split()]
    assert [r["start_date"] for r in known_early] == ["2026-01-05", "2026-01-12"]  # the rows keep their dates
    with pytest.raises(MappingError, match="lead_days"):
        ImportMapping(name="x", kind="orders", fields={**fields, "order_id": "o"}, lead_days=7)
    with pytest.raises(MappingError, match="lead_days"):
        ImportMapping(name="x", kind="promotions", fields=fields, lead_days=-1)


def test_promotions_land_on_the_day_they_were_announced_when_the_export_says(tmp_path):
    """``announced_date``: the plan's own date for each row (never after its start, when it was
    known for sure); rows without one fall back to ``lead_days``, an unreadable one to its start
    (the latest day it was surely known), counted."""
    source = pd.DataFrame(
        {
            "sku": ["a", "b", "c", "d", "e"],
            "from": ["2026-01-12", "2026-01-12", "2026-01-12", "2026-01-12", "2026-01-05"],
            "to": ["2026-01-18"] * 4 + ["2026-01-11"],
            "told": ["2025-12-29", None, "2026-01-20", "next week", "2026-01-02"],
        }
    )
    fields = {"item_id": "sku", "start_date": "from", "end_date": "to", "announced_date": "told"}
    mapping = ImportMapping(name="plan", kind="promotions", fields=fields, lead_days=3)
    summary = import_frame(source, mapping, tmp_path / "raw")
    folders = {
        json.loads(line)["item_id"]: path.parent.name.removeprefix("start_date=")
        for path in (tmp_path / "raw" / "promotions").glob("*/plan.jsonl")
        for line in path.read_text().split()
    }
    # a: announced Dec 29, before the export's first start (real dates are not clamped); b: none,
    # Jan 12 - 3; c: announced after it started, known by Jan 12; d: unreadable, its start; e: Jan 2
    assert folders == {"a": "2025-12-29", "b": "2026-01-09", "c": "2026-01-12", "d": "2026-01-12", "e": "2026-01-02"}
    assert (summary["promotions"], summary["announced_dates_unreadable"]) == (5, 1)
    record = json.loads((tmp_path / "raw/promotions/start_date=2025-12-29/plan.jsonl").read_text())
    assert "told" not in record and "announced_date" not in record  # the folder's day says it
    with pytest.raises(MappingError, match="does not have"):
        ImportMapping(name="x", kind="catalog", fields={"item_id": "sku", "announced_date": "told"})


def test_a_typo_in_a_mapping_is_an_error_naming_it(tmp_path):
    with pytest.raises(MappingError, match=r"orders contract does not have: \['quantiy'\]"):
        ImportMapping(name="x", kind="orders", fields={**ORDERS.fields, "quantiy": "qty"})
    with pytest.raises(MappingError, match="kind must be one of"):
        ImportMapping(name="x", kind="order", fields=ORDERS.fields)
    with pytest.raises(MappingError, match="unit_price or line_amount"):
        ImportMapping(
            name="x", kind="orders", fields={"order_id": "a", "user_id": "b", "item_id": "c", "order_time": "d"}
        )
    with pytest.raises(MappingError, match="only .* take a list"):
        ImportMapping(name="x", kind="catalog", fields={"item_id": ["a", "b"]})
    (tmp_path / "m.yaml").write_text("name: x\nkind: catalog\nfeilds: {item_id: sku}\n")
    with pytest.raises(MappingError, match=r"unknown mapping keys \['feilds'\]"):
        ImportMapping.from_yaml(tmp_path / "m.yaml")
    with pytest.raises(MissingColumnError, match=r"no such column \['household'\]"):
        to_raw_orders(pd.DataFrame({"basket": [1]}), ORDERS)


@pytest.mark.slow
def test_complete_journey_preset_accounts_for_every_line(tmp_path):
    """The real export: every one of the 1,469,307 transaction lines is an order line written to the raw
    zone (minus lines merged as duplicates: none in this export); the 8,869 lines of quantity 0 are written
    as they are, unpriced, for ingestion to quarantine (invalid_quantity)."""
    from lakecart.jobs.presets import import_complete_journey

    summary = import_complete_journey(tmp_path / "raw")
    orders = summary["orders"]
    assert orders["rows"] == 1_469_307
    assert orders["order_lines"] == orders["rows"] - orders["duplicate_lines_merged"] == 1_469_307
    assert (orders["lines_without_unit_price"], orders["rows_without_time"]) == (8_869, 0)
    assert (orders["days"], orders["first_date"], orders["last_date"]) == (365, "2017-01-01", "2018-01-01")
    written = 0
    for path in (tmp_path / "raw" / "orders").glob("order_date=*/complete-journey.jsonl"):
        with path.open() as lines:
            written += sum(1 for _ in lines)
    assert written == 1_469_307
    assert (summary["catalog"]["items"], orders["catalog_items_derived"]) == (92_331, 0)
    assert (summary["customers"]["customers"], summary["customers"]["customers_without_signup_time"]) == (801, 0)
    # 20,940,529 product x store x week rows are 1,184,798 product-weeks, each in the folder of the day
    # it became known, a week before its start: 53 week starts, the first two (2017-01-01, 01-02) both
    # known on the export's first day.
    assert (summary["promotions"]["promotions"], summary["promotions"]["days"]) == (1_184_798, 52)
    assert summary["promotions"]["first_date"] == "2017-01-01"
    # Fuel is sold by volume (thousandths of a gallon): each such line is one purchase at its price.
    fuel = pd.concat(
        pd.read_json(path, lines=True, dtype={"item_id": str}).query("item_id == '6534178'")
        for path in (tmp_path / "raw" / "orders").glob("order_date=2017-0[1-3]-*/complete-journey.jsonl")
    )
    assert len(fuel) > 500 and set(fuel["quantity"]) == {1}
    assert 10 < fuel["unit_price"].median() < 60 and fuel["exported_quantity"].median() > 1_000  # $ a fill
    assert orders["lines_counted_as_one_purchase"] == 14_697


def test_complete_journey_counts_each_fuel_line_as_one_purchase():
    """The export's gasoline lines carry a volume (thousandths of a gallon), not a count: each becomes one
    purchase at the line's price, the exported figure kept; every other line is left as it is."""
    from lakecart.jobs.presets import count_measured_lines

    products = pd.DataFrame({"product_id": [1, 2, 3], "product_type": ["GASOLINE-REG UNLEADED", "BANANAS", None]})
    transactions = pd.DataFrame(
        {"product_id": [1, 2, 1, 3], "quantity": [10_601, 3, 1, 2], "sales_value": [25.0, 1.5, 15.0, 4.0]}
    )
    lines, counted = count_measured_lines(transactions, products)
    assert counted == 2
    assert lines["quantity"].tolist() == [1, 3, 1, 2]
    assert lines["exported_quantity"].tolist()[::2] == [10_601, 1]
    assert lines["exported_quantity"].isna().tolist() == [False, True, False, True]
    assert lines["sales_value"].tolist() == [25.0, 1.5, 15.0, 4.0]
    assert transactions["quantity"].tolist() == [10_601, 3, 1, 2]  # the input is not changed


def test_a_day_without_orders_inside_the_export_gets_an_empty_file(tmp_path):
    # Jan 2 and Jan 4 have lines; Jan 3 (the shop was closed) gets an empty file, so ingestion can
    # tell "nothing sold" from "not arrived yet" (no file, an error).
    path = grocer_csv(
        tmp_path,
        ["B1,U1,I1,2026-01-02T10:00:00Z,1,1.00,0,0,DAIRY,1", "B2,U1,I1,2026-01-04T10:00:00Z,1,1.00,0,0,DAIRY,1"],
    )
    summary = run_import(path, ORDERS, tmp_path / "raw")
    assert summary["days_without_orders"] == ["2026-01-03"]
    assert (tmp_path / "raw/orders/order_date=2026-01-03/grocer.jsonl").read_text() == ""
    assert (tmp_path / "raw/orders/order_date=2026-01-02/grocer.jsonl").read_text() != ""
