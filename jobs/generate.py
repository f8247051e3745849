"""Deterministic synthetic e-commerce raw logs: clickstream, orders and user exports per date, plus a
catalogue. Same spec and seed, same bytes.

Structure, so that models have something real to learn:
- a catalogue with three-level category paths; item popularity follows a Zipf law inside each leaf
  category; list prices are log-normal per category and some items change price each week;
- items launch over time and appear in events only from their launch date;
- each user has a Dirichlet category affinity and a gamma-distributed activity level; users sign up
  over time and churn with a hazard that rises with the days since they were last active;
- signed-out visitors browse under an anonymous id only and cannot check out;
- sessions run a funnel: landing page view, sometimes a search with a query, product views, carts
  (less likely the dearer the item is relative to its category), removals, checkout, purchases and the
  odd refund; 15% of views wander into another category (cross-category browsing);
- weekends are busier; one day in seven runs a 15% promotion (lower prices, so more carts).

Defects can be planted in known amounts (``defects={"malformed_json": 5, ...}``); the counts are
written to ``_manifest.json`` so ingestion can be reconciled against them.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart.errors import LakecartError

log = logging.getLogger(__name__)

DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = ("organic", "search", "email", "social", "paid")
REGIONS = ("north", "south", "east", "west", "central", "islands")
DEPARTMENTS = ("Home", "Electronics", "Fashion", "Sports", "Beauty", "Grocery", "Toys", "Garden")
RANGES = ("Essentials", "Premium", "Outdoor", "Kids")
QUERY_WORDS = ("", "cheap ", "best ", "new ", "sale ")
FORMATS = ("jsonl", "jsonl.gz", "csv", "parquet")

# Defect kind -> the quarantine reason ingestion must give it (None: the record is accepted).
DEFECT_REASONS: dict[str, str | None] = {
    "malformed_json": "malformed_record",
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
# Defects that need a record with an item and a price (not a page view, search or checkout).
ITEM_DEFECTS = ("missing_item_id", "negative_price", "absurd_price")


class SpecError(LakecartError, ValueError):
    """A generator argument is out of range; the message names it and the value given."""


EVENTS_PER_SESSION = 4.85  # measured mean over the funnel below; sizes the day to ``events_per_day``


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
    format: str = "jsonl"
    anonymous_share: float = 0.12  # sessions by signed-out visitors
    churn_hazard: float = 0.004  # daily hazard of an active user; x(1 + inactive days / 7)

    def __post_init__(self) -> None:
        """Refuse what the generator cannot honour before anything is written (numpy would fail
        half-way with its own words, ``high <= 0``)."""
        for name in ("users", "items", "categories", "days", "events_per_day"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SpecError(f"{name} must be at least 1 (got {value!r})")
        if self.format not in FORMATS:
            raise SpecError(f"unknown raw format {self.format!r}; known: {', '.join(FORMATS)}")
        for kind, count in self.defects.items():
            if kind not in DEFECT_REASONS:
                raise SpecError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECT_KINDS)}")
            if not isinstance(count, int) or count < 0:
                raise SpecError(f"defect count for {kind} must be at least 0 (got {count!r})")
        if not 0 <= self.anonymous_share < 1:
            raise SpecError(f"anonymous_share must be in [0, 1) (got {self.anonymous_share!r})")
        if not 0 <= self.churn_hazard <= 1:
            raise SpecError(f"churn_hazard must be in [0, 1] (got {self.churn_hazard!r})")

    @property
    def end_date(self) -> date:
        return self.start_date + timedelta(days=self.days - 1)


def category_path(code: int) -> str:
    """Three levels: department > range > leaf (the leaf id is the ``category`` on events)."""
    department = DEPARTMENTS[code % len(DEPARTMENTS)]
    return f"{department} > {department} {RANGES[(code // len(DEPARTMENTS)) % len(RANGES)]} > c{code:02d}"


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
            "category_path": [category_path(int(c)) for c in category_of_item],
            "price": base_price,
            "launch_date": [str(spec.start_date + timedelta(days=int(o))) for o in launch_offsets],
            "_launch_offset": launch_offsets,
            "_category_code": category_of_item,
        }
    )


@dataclass
class _World:
    """Everything that persists from one generated day to the next."""

    catalog: pd.DataFrame
    affinity_cum: np.ndarray
    activity: np.ndarray
    signup_offset: np.ndarray  # day offset a user signs up (negative: before the range)
    alive: np.ndarray
    last_active: np.ndarray  # day offset of the user's last session
    price_factor: np.ndarray  # weekly price changes, per item
    popularity: list[np.ndarray]  # per category: Zipf weights of its items, by item index
    category_median: np.ndarray
    churned_on: dict[int, int] = field(default_factory=dict)


def _world(spec: GeneratorSpec, rng: np.random.Generator, catalog: pd.DataFrame) -> _World:
    affinity = rng.dirichlet(np.full(spec.categories, 0.3), size=spec.users)
    activity = rng.gamma(0.8, 1.0, spec.users)
    signup = np.where(
        rng.random(spec.users) < 0.85, -rng.integers(1, 365, spec.users), rng.integers(0, spec.days, spec.users)
    )
    codes = catalog["_category_code"].to_numpy()
    popularity = []
    for c in range(spec.categories):
        members = rng.permutation(np.flatnonzero(codes == c))  # popularity rank is random w.r.t. id
        weights = np.zeros(spec.items)
        weights[members] = 1.0 / np.arange(1, members.size + 1) ** 1.1
        popularity.append(weights)
    prices = catalog["price"].to_numpy()
    median = np.array([np.median(prices[codes == c]) if (codes == c).any() else 1.0 for c in range(spec.categories)])
    return _World(
        catalog=catalog,
        affinity_cum=np.cumsum(affinity, axis=1),
        activity=activity,
        signup_offset=signup,
        alive=np.ones(spec.users, bool),
        last_active=np.maximum(signup, 0),
        price_factor=np.ones(spec.items),
        popularity=popularity,
        category_median=median,
    )


def _advance(spec: GeneratorSpec, world: _World, offset: int, rng: np.random.Generator) -> None:
    """Start of a day: churn (hazard rising with inactivity) and the weekly price changes."""
    signed_up = world.signup_offset <= offset
    inactive_days = np.maximum(offset - world.last_active, 0)
    hazard = spec.churn_hazard * (1.0 + inactive_days / 7.0)
    churn = world.alive & signed_up & (rng.random(spec.users) < hazard)
    for user in np.flatnonzero(churn):
        world.churned_on[int(user)] = offset
    world.alive &= ~churn
    if offset > 0 and offset % 7 == 0:
        changed = rng.random(spec.items) < 0.1
        world.price_factor = np.where(
            changed, world.price_factor * rng.uniform(0.85, 1.15, spec.items), world.price_factor
        )


def _day_events(spec: GeneratorSpec, day: date, rng: np.random.Generator, world: _World) -> pd.DataFrame:
    offset = (day - spec.start_date).days
    catalog = world.catalog
    weekend = day.weekday() >= 5
    promo = offset % 7 == 3
    n_sessions = max(1, int(spec.events_per_day * (1.25 if weekend else 1.0) / EVENTS_PER_SESSION))

    # Who shops today: signed-up, not churned users by activity, plus anonymous visitors.
    weights = world.activity * (world.alive & (world.signup_offset <= offset))
    anonymous = rng.random(n_sessions) < spec.anonymous_share
    if weights.sum() == 0:
        anonymous[:] = True
        weights = np.ones(spec.users)
    session_user = np.where(anonymous, -1, rng.choice(spec.users, size=n_sessions, p=weights / weights.sum()))
    visitor = rng.integers(0, spec.users * 2, n_sessions)
    world.last_active[session_user[~anonymous]] = offset
    r = rng.random(n_sessions)
    known_cum = world.affinity_cum[np.maximum(session_user, 0)]
    session_category = np.where(
        anonymous, rng.integers(0, spec.categories, n_sessions), (known_cum < r[:, None]).sum(axis=1)
    ).clip(0, spec.categories - 1)
    session_start = rng.beta(2.5, 2.0, n_sessions) * 80_000  # afternoon-heavy, seconds into the day
    views = 1 + rng.poisson(1.5, n_sessions)

    # Product views: items of the session's category (15% wander elsewhere), launched ones only.
    view_session = np.repeat(np.arange(n_sessions), views)
    n_views = view_session.size
    view_category = session_category[view_session]
    wander = rng.random(n_views) < 0.15
    view_category = np.where(wander, rng.integers(0, spec.categories, n_views), view_category)
    launched = catalog["_launch_offset"].to_numpy() <= offset
    view_item = rng.integers(0, spec.items, n_views)  # fallback for a category with no launched item
    for c in range(spec.categories):
        mask = view_category == c
        weights_c = world.popularity[c] * launched
        if mask.any() and weights_c.sum() > 0:
            cum = np.cumsum(weights_c) / weights_c.sum()
            view_item[mask] = np.searchsorted(cum, rng.random(mask.sum())).clip(0, spec.items - 1)
    # 20-120 s between consecutive views of a session: a running sum keeps them in rank order.
    gaps = rng.uniform(20, 120, n_views)
    before = np.cumsum(gaps) - gaps
    first_view = np.cumsum(views) - views
    view_time = session_start[view_session] + 30 + before - np.repeat(before[first_view], views)

    # Price effects: today's price against the leaf category's median; a promotion lowers both.
    list_price = catalog["price"].to_numpy() * world.price_factor
    paid_price = np.round(list_price * (0.85 if promo else 1.0), 2)
    relative = paid_price[view_item] / world.category_median[catalog["_category_code"].to_numpy()[view_item]]
    p_cart = np.clip(0.2 * relative**-0.6, 0.02, 0.6)
    carted = rng.random(n_views) < p_cart
    removed = carted & (rng.random(n_views) < 0.15)
    kept = carted & ~removed
    quantity = 1 + rng.poisson(0.3, n_views)
    cart_time = view_time + 15
    session_has_cart = np.bincount(view_session, weights=kept, minlength=n_sessions) > 0
    checkout = session_has_cart & ~anonymous & (rng.random(n_sessions) < 0.6)
    last_cart = np.zeros(n_sessions)
    np.maximum.at(last_cart, view_session[kept], cart_time[kept])
    checkout_time = last_cart + 60
    purchased = kept & checkout[view_session]
    refunded = purchased & (rng.random(n_views) < 0.03)
    cart_value = np.bincount(view_session, weights=kept * paid_price[view_item] * quantity, minlength=n_sessions)
    cart_units = np.bincount(view_session, weights=kept * quantity, minlength=n_sessions).astype(int)

    searched = rng.random(n_sessions) < 0.3
    ix = np.flatnonzero
    no_item = -1
    parts = [
        # (session, item, seconds, type, price, quantity, query)
        (np.arange(n_sessions), no_item, session_start, "page_view", np.nan, 0, None),
        (ix(searched), no_item, session_start[searched] + 10, "search", np.nan, 0, "q"),
        (view_session, view_item, view_time, "product_view", paid_price[view_item], 0, None),
        (view_session[carted], view_item[carted], cart_time[carted], "add_to_cart", None, None, None),
        (view_session[removed], view_item[removed], cart_time[removed] + 40, "remove_from_cart", None, None, None),
        (ix(checkout), no_item, checkout_time[checkout], "checkout", cart_value[checkout], cart_units[checkout], None),
        (
            view_session[purchased],
            view_item[purchased],
            checkout_time[view_session[purchased]] + 30,
            "purchase",
            None,
            None,
            None,
        ),
    ]
    frames = []
    for session, item, seconds, kind, price, qty, query in parts:
        mask = {"add_to_cart": carted, "remove_from_cart": removed, "purchase": purchased}.get(kind)
        frame = pd.DataFrame({"session": session, "item": item, "seconds": seconds, "event_type": kind})
        frame["price"] = paid_price[view_item[mask]] if mask is not None else price
        frame["quantity"] = quantity[mask] if mask is not None else qty
        frame["query"] = query
        frames.append(frame)
    refund = pd.DataFrame(
        {
            "session": view_session[refunded],
            "item": view_item[refunded],
            "seconds": checkout_time[view_session[refunded]] + 30 + rng.exponential(4 * 3600, refunded.sum()),
            "event_type": "refund",
            "price": paid_price[view_item[refunded]],
            "quantity": quantity[refunded],
            "query": None,
        }
    )
    ev = pd.concat([*frames, refund], ignore_index=True)
    ev["seconds"] = np.minimum(ev["seconds"].to_numpy(), 86_399.0)
    ev = ev.sort_values(["seconds", "session"], kind="stable")

    n = len(ev)
    session = ev["session"].to_numpy()
    item = ev["item"].to_numpy()
    has_item = item >= 0
    user_idx = session_user[session]
    # Name lookups are built once per day and indexed: a Python format per row is the slow part at 10M.
    user_names = np.array([f"u{u:06d}" for u in range(spec.users)], dtype=object)
    member_cookies = np.array([f"a{u:07d}" for u in range(spec.users)], dtype=object)
    visitor_cookies = np.array([f"a9{v:06d}" for v in range(spec.users * 2)], dtype=object)
    session_names = np.array([f"s{day:%Y%m%d}{s:07d}" for s in range(n_sessions)], dtype=object)
    category_names = np.array([f"c{c:02d}" for c in range(spec.categories)], dtype=object)
    query = np.full(n, None, dtype=object)
    is_search = ev["query"].notna().to_numpy()
    query[is_search] = [
        f"{QUERY_WORDS[w]}{category_path(int(c)).split(' > ')[1].lower()}"
        for w, c in zip(
            rng.integers(0, len(QUERY_WORDS), is_search.sum()), session_category[session[is_search]], strict=True
        )
    ]
    day_start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
    times = day_start + pd.to_timedelta(ev["seconds"].to_numpy(), unit="s")
    event_ids = np.frombuffer(rng.bytes(16 * n).hex().encode(), dtype="S32").astype(str)
    return pd.DataFrame(
        {
            "event_id": event_ids,
            "user_id": np.where(user_idx >= 0, user_names[np.maximum(user_idx, 0)], None),
            "anonymous_id": np.where(
                user_idx >= 0, member_cookies[np.maximum(user_idx, 0)], visitor_cookies[visitor[session]]
            ),
            "session_id": session_names[session],
            "event_type": ev["event_type"].to_numpy(),
            "item_id": np.where(has_item, catalog["item_id"].to_numpy()[np.maximum(item, 0)], None),
            "category": np.where(
                has_item, category_names[catalog["_category_code"].to_numpy()[np.maximum(item, 0)]], None
            ),
            "price": ev["price"].to_numpy(dtype=float),
            "quantity": ev["quantity"].to_numpy(dtype=int),
            "search_query": query,
            "device": np.array(DEVICES)[rng.choice(3, n, p=[0.6, 0.33, 0.07])],
            "channel": np.array(CHANNELS)[rng.choice(5, n, p=[0.35, 0.3, 0.1, 0.1, 0.15])],
            "event_time": times.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z",
        }
    )


def _order_lines(events: pd.DataFrame, catalog: pd.DataFrame, list_price: np.ndarray) -> pd.DataFrame:
    """Each checkout's purchases as order lines, one per item (an item bought twice in a session is one
    line with both quantities); the discount is list price minus price paid."""
    bought = events[events["event_type"] == "purchase"].copy()
    position = catalog.reset_index().set_index("item_id")["index"]
    bought["unit_price"] = np.round(list_price[position.loc[bought["item_id"]].to_numpy()], 2)
    bought["discount"] = np.maximum(bought["unit_price"] - bought["price"], 0) * bought["quantity"]
    lines = bought.groupby(["session_id", "item_id"], sort=False, as_index=False).agg(
        user_id=("user_id", "first"),
        quantity=("quantity", "sum"),
        unit_price=("unit_price", "first"),
        discount=("discount", "sum"),
        order_time=("event_time", "first"),
    )
    return pd.DataFrame(
        {
            "order_id": "o" + lines["session_id"].str[1:],
            "user_id": lines["user_id"],
            "item_id": lines["item_id"],
            "quantity": lines["quantity"],
            "unit_price": lines["unit_price"],
            "discount": lines["discount"].round(2),
            "order_time": lines["order_time"],
        }
    )


def _users(spec: GeneratorSpec, world: _World, rng: np.random.Generator) -> pd.DataFrame:
    tiers = np.quantile(world.activity, [0.5, 0.9])
    segment = np.where(
        world.activity >= tiers[1], "loyal", np.where(world.activity >= tiers[0], "regular", "occasional")
    )
    signup_seconds = rng.integers(0, 86_400, spec.users)
    start = pd.Timestamp(datetime(spec.start_date.year, spec.start_date.month, spec.start_date.day, tzinfo=UTC))
    signup = start + pd.to_timedelta(world.signup_offset, unit="D") + pd.to_timedelta(signup_seconds, unit="s")
    return pd.DataFrame(
        {
            "user_id": [f"u{u:06d}" for u in range(spec.users)],
            "signup_time": signup.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), spec.users)],
            "segment": segment,
            "_signup_offset": world.signup_offset,
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
    with_item = records["item_id"].notna().to_numpy() & records["price"].notna().to_numpy()
    free = [int(i) for i in rng.permutation(len(lines))]
    free_item = [i for i in free if with_item[i]]
    used: set[int] = set()

    def take(pool: list[int]) -> int | None:
        while pool:
            i = pool.pop()
            if i not in used:
                used.add(i)
                return i
        return None

    for kind, wanted in counts.items():
        if kind not in DEFECT_KINDS:
            raise ValueError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECT_KINDS)}")
        for _ in range(wanted):
            i = take(free_item if kind in ITEM_DEFECTS else free)
            if i is None:
                break
            rec = {
                k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in records.iloc[i].to_dict().items()
            }
            if kind == "malformed_json":
                lines[i] = lines[i][: len(lines[i]) // 2]
            elif kind == "missing_user_id":
                rec["user_id"] = rec["anonymous_id"] = None
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


def write_records(records: pd.DataFrame | list[str], path_stem: Path, fmt: str) -> Path:
    """Write records (a frame, or JSON lines) as ``<stem>.<fmt>``; bytes depend only on the records."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown raw format {fmt!r}; known: {', '.join(FORMATS)}")
    path = path_stem.with_name(f"{path_stem.name}.{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(records, list):
        text = "\n".join(records) + "\n"
        if fmt in ("jsonl", "jsonl.gz"):
            data = text.encode()
            path.write_bytes(gzip.compress(data, mtime=0) if fmt == "jsonl.gz" else data)
            return path
        try:
            records = pd.read_json(io.StringIO(text), lines=True, dtype=False)
        except ValueError as exc:
            raise ValueError(f"{fmt} files cannot carry malformed lines; plant malformed_json in jsonl only") from exc
    records = records[[c for c in records.columns if not c.startswith("_")]]
    if fmt == "jsonl":
        path.write_text(records.to_json(orient="records", lines=True))
    elif fmt == "jsonl.gz":
        path.write_bytes(gzip.compress(records.to_json(orient="records", lines=True).encode(), mtime=0))
    elif fmt == "csv":
        records.to_csv(path, index=False)
    else:
        records.astype({c: "string" for c in records.columns if records[c].dtype == object}).to_parquet(
            path, index=False
        )
    return path


def generate(spec: GeneratorSpec, raw_root: str | Path) -> dict:
    """Write per day ``raw_root/events/event_date=D/events.<fmt>``, ``orders/order_date=D/orders.<fmt>``
    and ``users/export_date=D/users.<fmt>`` (users who signed up that day; all earlier ones on the
    first day), and the catalogue ``raw_root/catalog/catalog.jsonl``."""
    root = Path(raw_root)
    rng = np.random.default_rng(spec.seed)
    catalog = _catalog(spec, rng)
    write_records(catalog, root / "catalog" / "catalog", "jsonl")
    world = _world(spec, rng, catalog)
    users = _users(spec, world, rng)

    planted_total = {k: 0 for k in spec.defects}
    rows_total = orders_total = 0
    carried_late: list[str] = []
    for offset in range(spec.days):
        day = spec.start_date + timedelta(days=offset)
        _advance(spec, world, offset, rng)
        events = _day_events(spec, day, rng, world)
        orders = _order_lines(events, catalog, catalog["price"].to_numpy() * world.price_factor)
        arrived_late, carried_late = carried_late, []
        if spec.defects:
            lines = events.to_json(orient="records", lines=True).splitlines()
            wanted = dict(spec.defects)
            if offset == spec.days - 1:
                wanted.pop("late_event", None)  # no later file to arrive in
            lines, planted, carried_late = _plant_defects(lines, events, wanted, rng)
            for k, v in planted.items():
                planted_total[k] += v
            lines += arrived_late  # yesterday's late events land in today's file
            write_records(lines, root / "events" / f"event_date={day}" / "events", spec.format)
            rows_total += len(lines)
        else:
            write_records(events, root / "events" / f"event_date={day}" / "events", spec.format)
            rows_total += len(events)
        write_records(orders, root / "orders" / f"order_date={day}" / "orders", spec.format)
        signed_up = users[(users["_signup_offset"] <= offset) if offset == 0 else (users["_signup_offset"] == offset)]
        write_records(signed_up, root / "users" / f"export_date={day}" / "users", spec.format)
        orders_total += len(orders)
        log.info("generated %s: %d events, %d order lines", day, len(events), len(orders))

    manifest = {
        "spec": {**asdict(spec), "start_date": spec.start_date.isoformat()},
        "raw_lines": rows_total,
        "order_lines": orders_total,
        "users": spec.users,
        "churned_users": len(world.churned_on),
        "planted_defects": planted_total,
    }
    (root / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
