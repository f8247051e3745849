"""Deterministic synthetic e-commerce raw logs: clickstream JSON lines per event date, plus a catalogue.

Structure, so that models have something real to learn:
- item popularity follows a Zipf law inside each category; prices are log-normal per category;
- each user has a Dirichlet category affinity and a gamma-distributed activity level;
- sessions run a funnel: product views, some added to cart, some carts purchased;
- weekends are busier; one day in seven runs a promotion (lower prices, more carts).

Defects can be planted in known amounts (``defects={"malformed_json": 5, ...}``); the counts are
written to ``_manifest.json`` so ingestion can be reconciled against them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = ("organic", "search", "email", "social", "paid")
# Defect kind -> the quarantine reason ingestion must give it (None: the record is accepted).
DEFECT_REASONS: dict[str, str | None] = {
    "malformed_json": "malformed_json",
    "missing_event_id": "missing_event_id",
    "missing_user_id": "missing_user_id",
    "missing_item_id": "missing_item_id",
    "unknown_event_type": "unknown_event_type",
    "negative_price": "negative_price",
    "absurd_price": "price_out_of_range",
    "duplicate_event": None,  # dropped as a duplicate
    "late_event": None,  # arrives in the next day's file, belongs to its own event date
    "extra_field": None,  # a field the contract does not name appears mid-stream
}
DEFECT_KINDS = tuple(DEFECT_REASONS)


@dataclass(frozen=True)
class GeneratorSpec:
    users: int = 500
    items: int = 200
    categories: int = 12
    days: int = 14
    events_per_day: int = 2000
    start_date: date = date(2026, 1, 1)
    seed: int = 42
    defects: dict[str, int] = field(default_factory=dict)

    @property
    def end_date(self) -> date:
        return self.start_date + timedelta(days=self.days - 1)


def _catalog(spec: GeneratorSpec, rng: np.random.Generator) -> pd.DataFrame:
    category_of_item = np.sort(rng.integers(0, spec.categories, size=spec.items))
    base_price = np.round(np.exp(rng.normal(3.0 + 0.15 * (category_of_item % 5), 0.6)), 2)
    launch_offsets = np.where(rng.random(spec.items) < 0.1, rng.integers(0, spec.days, spec.items), -30)
    return pd.DataFrame(
        {
            "item_id": [f"i{i:06d}" for i in range(spec.items)],
            "title": [f"Product {i}" for i in range(spec.items)],
            "brand": [f"brand_{b:02d}" for b in rng.integers(0, 25, spec.items)],
            "category": [f"c{c:02d}" for c in category_of_item],
            "price": base_price,
            "launch_date": [str(spec.start_date + timedelta(days=int(o))) for o in launch_offsets],
        }
    )


def _day_events(
    spec: GeneratorSpec,
    day: date,
    rng: np.random.Generator,
    catalog: pd.DataFrame,
    affinity_cum: np.ndarray,
    activity: np.ndarray,
    category_items: list[np.ndarray],
    category_item_cum: list[np.ndarray],
) -> pd.DataFrame:
    weekend = day.weekday() >= 5
    promo = (day - spec.start_date).days % 7 == 3
    seasonal = 1.25 if weekend else 1.0
    mean_views = 2.5
    n_sessions = max(1, int(spec.events_per_day * seasonal / (mean_views * 1.35)))

    session_user = rng.choice(spec.users, size=n_sessions, p=activity)
    r = rng.random(n_sessions)
    session_category = (affinity_cum[session_user] < r[:, None]).sum(axis=1).clip(0, spec.categories - 1)
    session_start = rng.beta(2.5, 2.0, n_sessions) * 86_000  # afternoon-heavy, seconds into the day
    views = 1 + rng.poisson(mean_views - 1, n_sessions)

    view_session = np.repeat(np.arange(n_sessions), views)
    view_rank = np.arange(view_session.size) - np.repeat(np.cumsum(views) - views, views)
    view_item = np.empty(view_session.size, dtype=np.int64)
    view_category = session_category[view_session]
    # 15% of views wander into a random category: cross-category browsing.
    wander = rng.random(view_session.size) < 0.15
    view_category = np.where(wander, rng.integers(0, spec.categories, view_session.size), view_category)
    for c in range(spec.categories):
        mask = view_category == c
        if not mask.any():
            continue
        if category_items[c].size == 0:
            view_item[mask] = rng.integers(0, spec.items, mask.sum())
            continue
        pick = np.searchsorted(category_item_cum[c], rng.random(mask.sum()))
        view_item[mask] = category_items[c][pick.clip(0, category_items[c].size - 1)]

    view_time = session_start[view_session] + view_rank * rng.exponential(40, view_session.size)
    p_cart = 0.28 if promo else 0.2
    carted = rng.random(view_session.size) < p_cart
    purchased = carted & (rng.random(view_session.size) < 0.45)

    kinds = [
        (np.ones(view_session.size, bool), "product_view", 0.0),
        (carted, "add_to_cart", 20.0),
        (purchased, "purchase", 90.0),
    ]
    prices = catalog["price"].to_numpy() * (0.85 if promo else 1.0)
    frames = []
    for mask, kind, delay in kinds:
        idx = np.flatnonzero(mask)
        frames.append(
            pd.DataFrame(
                {
                    "session": view_session[idx],
                    "item": view_item[idx],
                    "seconds": np.minimum(view_time[idx] + delay, 86_399.0),
                    "event_type": kind,
                }
            )
        )
    ev = pd.concat(frames, ignore_index=True).sort_values(["seconds", "session"], kind="stable")
    n = len(ev)
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    times = pd.to_datetime(day_start) + pd.to_timedelta(ev["seconds"].to_numpy(), unit="s")
    ids = rng.integers(0, 2**63 - 1, size=(n, 2), dtype=np.int64)
    user_idx = session_user[ev["session"].to_numpy()]
    return pd.DataFrame(
        {
            "event_id": [f"{a:016x}{b:016x}" for a, b in ids],
            "user_id": [f"u{u:06d}" for u in user_idx],
            "session_id": [f"s{day:%Y%m%d}{s:07d}" for s in ev["session"].to_numpy()],
            "event_type": ev["event_type"].to_numpy(),
            "item_id": catalog["item_id"].to_numpy()[ev["item"].to_numpy()],
            "category": catalog["category"].to_numpy()[ev["item"].to_numpy()],
            "price": np.round(prices[ev["item"].to_numpy()], 2),
            "quantity": np.where(ev["event_type"].to_numpy() == "product_view", 0, 1 + rng.poisson(0.3, n)),
            "device": np.array(DEVICES)[rng.choice(3, n, p=[0.6, 0.33, 0.07])],
            "channel": np.array(CHANNELS)[rng.choice(5, n, p=[0.35, 0.3, 0.1, 0.1, 0.15])],
            "event_time": times.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z",
        }
    )


def _plant_defects(
    lines: list[str], records: pd.DataFrame, counts: dict[str, int], rng: np.random.Generator
) -> tuple[list[str], dict[str, int], list[str]]:
    """Replace or add raw lines with known defects.

    Returns the day's lines, what was planted, and the late lines to append to the next day's file.
    """
    planted = {k: 0 for k in counts}
    late: list[str] = []
    free = list(rng.permutation(len(lines)))

    def take() -> int:
        return int(free.pop())

    for kind, wanted in counts.items():
        if kind not in DEFECT_KINDS:
            raise ValueError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECT_KINDS)}")
        for _ in range(min(wanted, len(free))):
            i = take()
            rec = records.iloc[i].to_dict()
            if kind == "malformed_json":
                lines[i] = lines[i][: len(lines[i]) // 2]
            elif kind == "missing_user_id":
                rec["user_id"] = None
                lines[i] = json.dumps(rec)
            elif kind == "unknown_event_type":
                rec["event_type"] = "teleport"
                lines[i] = json.dumps(rec)
            elif kind in ("missing_event_id", "missing_item_id"):
                rec[kind.removeprefix("missing_")] = None
                lines[i] = json.dumps(rec)
            elif kind == "negative_price":
                rec["price"] = -abs(float(rec["price"])) - 1.0
                lines[i] = json.dumps(rec)
            elif kind == "absurd_price":
                rec["price"] = 1e9
                lines[i] = json.dumps(rec)
            elif kind == "duplicate_event":
                lines.append(lines[i])
            elif kind == "extra_field":
                rec["ab_bucket"] = "treatment"
                lines[i] = json.dumps(rec)
            elif kind == "late_event":
                late.append(lines[i])
                lines[i] = ""
            planted[kind] += 1
    return [line for line in lines if line], planted, late


def generate(spec: GeneratorSpec, raw_root: str | Path) -> dict:
    """Write ``raw_root/events/event_date=D/events.jsonl`` per day and ``raw_root/catalog/``."""
    root = Path(raw_root)
    rng = np.random.default_rng(spec.seed)
    catalog = _catalog(spec, rng)
    (root / "catalog").mkdir(parents=True, exist_ok=True)
    catalog.to_json(root / "catalog" / "catalog.jsonl", orient="records", lines=True)

    affinity = rng.dirichlet(np.full(spec.categories, 0.3), size=spec.users)
    affinity_cum = np.cumsum(affinity, axis=1)
    activity = rng.gamma(0.8, 1.0, spec.users)
    activity /= activity.sum()
    codes = catalog["category"].str[1:].astype(int).to_numpy()
    category_items, category_item_cum = [], []
    for c in range(spec.categories):
        members = np.flatnonzero(codes == c)
        members = rng.permutation(members)  # popularity rank is random w.r.t. id
        weights = 1.0 / np.arange(1, members.size + 1) ** 1.1
        category_items.append(members)
        category_item_cum.append(np.cumsum(weights) / weights.sum() if members.size else weights)

    planted_total = {k: 0 for k in spec.defects}
    rows_total = 0
    carried_late: list[str] = []
    for offset in range(spec.days):
        day = spec.start_date + timedelta(days=offset)
        events = _day_events(spec, day, rng, catalog, affinity_cum, activity, category_items, category_item_cum)
        lines = events.to_json(orient="records", lines=True).splitlines()
        arrived_late, carried_late = carried_late, []
        if spec.defects:
            wanted = dict(spec.defects)
            if offset == spec.days - 1:
                wanted.pop("late_event", None)  # no later file to arrive in
            lines, planted, carried_late = _plant_defects(lines, events, wanted, rng)
            for k, v in planted.items():
                planted_total[k] += v
        lines += arrived_late  # yesterday's late events land in today's file
        folder = root / "events" / f"event_date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
        rows_total += len(lines)
        log.info("generated %s: %d raw lines", day, len(lines))

    manifest = {
        "spec": {**asdict(spec), "start_date": spec.start_date.isoformat()},
        "raw_lines": rows_total,
        "planted_defects": planted_total,
    }
    (root / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
