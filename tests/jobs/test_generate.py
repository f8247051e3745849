import json
import re
from collections import Counter
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from lakecart.jobs.generate import FORMATS, GeneratorSpec, _advance, _catalog, _world, generate

SMALL = dict(users=30, items=20, categories=4, days=2, events_per_day=200)


def events_of(root, day="2026-01-01"):
    return [json.loads(line) for line in (root / f"events/event_date={day}/events.jsonl").read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    generate(GeneratorSpec(**SMALL, seed=7), tmp_path / "a")
    generate(GeneratorSpec(**SMALL, seed=7), tmp_path / "b")
    generate(GeneratorSpec(**SMALL, seed=8), tmp_path / "c")
    for day in ("events/event_date=2026-01-02/events.jsonl", "orders/order_date=2026-01-02/orders.jsonl"):
        assert (tmp_path / "a" / day).read_bytes() == (tmp_path / "b" / day).read_bytes()
        assert (tmp_path / "a" / day).read_bytes() != (tmp_path / "c" / day).read_bytes()


def test_records_follow_the_funnel(tmp_path):
    generate(GeneratorSpec(**SMALL), tmp_path)
    records = events_of(tmp_path)
    kinds = Counter(r["event_type"] for r in records)
    # Every cart comes from a view, every purchase from a cart, every removal from a cart.
    assert kinds["product_view"] >= kinds["add_to_cart"] >= kinds["purchase"] > 0
    assert kinds["add_to_cart"] >= kinds["remove_from_cart"] > 0
    assert kinds["page_view"] > 0 and kinds["search"] > 0 and kinds["checkout"] > 0
    assert all(r["event_time"].startswith("2026-01-01T") for r in records)
    assert all(r["price"] > 0 for r in records if r["item_id"])
    assert all(r["search_query"] for r in records if r["event_type"] == "search")
    assert len({r["event_id"] for r in records}) == len(records)
    # Signed-out visitors browse but cannot check out.
    anonymous = [r for r in records if r["user_id"] is None]
    assert anonymous and all(r["anonymous_id"] for r in anonymous)
    assert not {"checkout", "purchase", "refund"} & {r["event_type"] for r in anonymous}
    # A session opens with its page view; its product views follow one another 20-120 s apart.
    by_session: dict[str, list] = {}
    for r in sorted(records, key=lambda r: r["event_time"]):
        by_session.setdefault(r["session_id"], []).append(r)
    assert all(events[0]["event_type"] == "page_view" for events in by_session.values())
    for events in by_session.values():
        times = [datetime.fromisoformat(r["event_time"]) for r in events if r["event_type"] == "product_view"]
        assert all(20 <= (b - a).total_seconds() <= 120 for a, b in zip(times, times[1:], strict=False))


def test_order_lines_are_the_purchases(tmp_path):
    generate(GeneratorSpec(**SMALL), tmp_path)
    purchases = [r for r in events_of(tmp_path) if r["event_type"] == "purchase"]
    orders = pd.read_json(tmp_path / "orders/order_date=2026-01-01/orders.jsonl", lines=True)
    assert orders["quantity"].sum() == sum(r["quantity"] for r in purchases)
    paid = sum(r["price"] * r["quantity"] for r in purchases)
    assert (orders["unit_price"] * orders["quantity"] - orders["discount"]).sum() == pytest.approx(paid, abs=0.05)
    assert not orders.duplicated(["order_id", "item_id"]).any()


def test_promotion_days_discount_orders(tmp_path):
    spec = GeneratorSpec(users=60, items=30, categories=4, days=5, events_per_day=400)
    generate(spec, tmp_path)
    discount = {
        day: pd.read_json(tmp_path / f"orders/order_date=2026-01-0{day}/orders.jsonl", lines=True)["discount"].sum()
        for day in range(1, 6)
    }
    assert discount[4] > 0  # day offset 3 runs the promotion
    assert all(discount[d] == 0 for d in (1, 2, 3, 5))


def test_items_appear_only_from_their_launch_date(tmp_path):
    spec = GeneratorSpec(users=200, items=100, categories=4, days=10, events_per_day=1500)
    generate(spec, tmp_path)
    catalog = pd.read_json(tmp_path / "catalog/catalog.jsonl", lines=True, dtype={"launch_date": str})
    launch = dict(zip(catalog["item_id"], catalog["launch_date"].astype(str), strict=True))
    late_launches = {i for i, d in launch.items() if d > "2026-01-01"}
    assert late_launches
    seen_after_launch = set()
    for day in range(1, 11):
        stamp = f"2026-01-{day:02d}"
        for r in events_of(tmp_path, stamp):
            if r["item_id"]:
                assert launch[r["item_id"]] <= stamp, r
                seen_after_launch |= {r["item_id"]} & late_launches
    assert seen_after_launch  # launched items do get traffic
    assert catalog["category_path"].str.count(" > ").eq(2).all()


def test_churn_hazard_rises_with_inactivity():
    spec = GeneratorSpec(users=20_000, items=10, categories=2, days=1, churn_hazard=0.01)
    rng = np.random.default_rng(0)
    world = _world(spec, rng, _catalog(spec, rng))
    world.signup_offset[:] = -1
    world.last_active[:] = np.where(np.arange(spec.users) < spec.users // 2, 30, 2)  # 0 vs 28 days inactive
    _advance(spec, world, 30, rng)
    churned = ~world.alive
    recent, idle = churned[: spec.users // 2].mean(), churned[spec.users // 2 :].mean()
    assert recent == pytest.approx(0.01, abs=0.005)  # base hazard
    assert idle == pytest.approx(0.05, abs=0.01)  # x (1 + 28/7)


def test_churned_users_stop_shopping(tmp_path):
    manifest = generate(GeneratorSpec(users=100, items=20, categories=4, days=12, churn_hazard=0.05), tmp_path)
    assert manifest["churned_users"] > 0
    last_day_users = {r["user_id"] for r in events_of(tmp_path, "2026-01-12") if r["user_id"]}
    signups = pd.concat(pd.read_json(f, lines=True) for f in sorted((tmp_path / "users").rglob("*.jsonl")))
    assert len(signups) == 100 and signups["user_id"].is_unique
    assert len(last_day_users) < 100


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "jsonl"])
def test_every_format_carries_the_same_records(tmp_path, fmt):
    generate(GeneratorSpec(**SMALL), tmp_path / "jsonl")
    generate(GeneratorSpec(**SMALL, format=fmt), tmp_path / fmt)
    expected = pd.read_json(tmp_path / "jsonl/events/event_date=2026-01-01/events.jsonl", lines=True, dtype=False)
    path = tmp_path / fmt / f"events/event_date=2026-01-01/events.{fmt}"
    if fmt == "csv":
        got = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif fmt == "parquet":
        got = pd.read_parquet(path)
    else:
        got = pd.read_json(path, lines=True, dtype=False)
    assert len(got) == len(expected)
    assert list(got["event_id"]) == list(expected["event_id"])


def test_planted_defects_are_counted(tmp_path):
    manifest = generate(GeneratorSpec(**SMALL, defects={"malformed_json": 3, "duplicate_event": 2}), tmp_path)
    assert manifest["planted_defects"] == {"malformed_json": 6, "duplicate_event": 4}  # per day x 2 days
    lines = (tmp_path / "events/event_date=2026-01-01/events.jsonl").read_text().splitlines()
    broken = 0
    for line in lines:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            broken += 1
    assert broken == 3


def test_malformed_lines_need_a_line_format(tmp_path):
    with pytest.raises(ValueError, match="plant malformed_json in jsonl only"):
        generate(GeneratorSpec(**SMALL, format="parquet", defects={"malformed_json": 1}), tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("users", 0, "users must be at least 1"),
        ("items", -3, "items must be at least 1"),
        ("categories", 0, "categories must be at least 1"),
        ("days", 0, "days must be at least 1"),
        ("events_per_day", 0, "events_per_day must be at least 1"),
        ("format", "xml", "unknown raw format 'xml'"),
        ("defects", {"gremlins": 1}, "unknown defect kind 'gremlins'"),
        ("defects", {"malformed_json": -1}, "defect count for malformed_json must be at least 0"),
        ("anonymous_share", 1.5, "anonymous_share must be in [0, 1)"),
    ],
)
def test_invalid_arguments_are_refused_up_front_naming_the_argument(field, value, says):
    from lakecart.errors import LakecartError

    # Before: categories=0 died inside numpy ("high <= 0") after writing the catalogue.
    with pytest.raises(LakecartError, match=re.escape(says)):
        GeneratorSpec(**{**SMALL, field: value})


def test_the_cli_reports_a_bad_generator_argument_in_one_line(tmp_path, capsys):
    from lakecart.cli import main

    assert main(["generate", "--out", str(tmp_path / "raw"), "--categories", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "lakecart generate: error: categories must be at least 1 (got 0)"
    assert not (tmp_path / "raw").exists()
