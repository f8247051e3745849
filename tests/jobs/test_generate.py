import json

from lakecart.jobs.generate import GeneratorSpec, generate

SMALL = dict(users=30, items=20, categories=4, days=2, events_per_day=200)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    generate(GeneratorSpec(**SMALL, seed=7), tmp_path / "a")
    generate(GeneratorSpec(**SMALL, seed=7), tmp_path / "b")
    generate(GeneratorSpec(**SMALL, seed=8), tmp_path / "c")
    day = "events/event_date=2026-01-02/events.jsonl"
    assert (tmp_path / "a" / day).read_bytes() == (tmp_path / "b" / day).read_bytes()
    assert (tmp_path / "a" / day).read_bytes() != (tmp_path / "c" / day).read_bytes()


def test_records_follow_the_funnel_and_the_contract(tmp_path):
    generate(GeneratorSpec(**SMALL), tmp_path)
    lines = (tmp_path / "events/event_date=2026-01-01/events.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    kinds = [r["event_type"] for r in records]
    # Every cart comes from a view, every purchase from a cart.
    assert kinds.count("product_view") >= kinds.count("add_to_cart") >= kinds.count("purchase") > 0
    assert all(r["event_time"].startswith("2026-01-01T") and r["price"] > 0 for r in records)
    assert len({r["event_id"] for r in records}) == len(records)


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
