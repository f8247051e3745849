"""A tiny lake for the training tests, written directly with delta-rs (seconds, no JVM): training
sets of every kind with the real schema (``<view>__<feature>`` columns, ``split``, ``dataset_id``),
the feature rows as of the last day, the catalogue and the manifests.

Each set carries a planted signal that a working model must find and a broken one cannot:
retrieval: user k interacts almost only with category k % 5; ranking: even users buy even items;
churn: customers inactive for more than a week churn, unless they browse a lot; demand:
each item sells at its own steady rate, and the 7-day mean is a noisy estimate of it. The real
pipeline that builds such sets is covered by tests/jobs and the end-to-end DAG test.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

END = date(2026, 1, 10)
DAYS = 10
USERS = [f"u{k:02d}" for k in range(60)]
ITEMS = [f"i{i:02d}" for i in range(30)]


def category(item: str) -> str:
    return f"c{int(item[1:]) % 5}"


def _write(settings, name: str, frame: pd.DataFrame, partition_by: list[str] | None = None) -> None:
    from deltalake import write_deltalake

    from lakecart import tables

    write_deltalake(tables.table_path(name, settings), frame, mode="overwrite", partition_by=partition_by)


def _with_view(frame: pd.DataFrame, view: str, features: dict[str, object]) -> pd.DataFrame:
    return frame.assign(**{f"{view}__{k}": v for k, v in features.items()})


def _manifest(dataset_id: str, views: list[str], **params) -> dict:
    recorded = {f"features.{v}": {} for v in views}
    manifest = {"params": params, "content_hash": dataset_id, "feature_views": recorded}
    return {"dataset_id": dataset_id, "manifest": json.dumps(manifest)}


def retrieval_rows(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for day in range(DAYS):
        event_date = END - timedelta(days=DAYS - 1 - day)
        for k, user in enumerate(USERS):
            for n in range(3):
                own = [i for i in ITEMS if category(i) == f"c{k % 5}"]
                item = own[rng.integers(len(own))] if rng.random() < 0.9 else ITEMS[rng.integers(len(ITEMS))]
                when = datetime.combine(event_date, datetime.min.time(), UTC) + timedelta(hours=8 + n, minutes=k)
                rows.append((user, item, "product_view", when, event_date))
                likely = k % 2 == 0 and int(item[1:]) % 2 == 0
                if rng.random() < (0.7 if likely else 0.05):
                    rows.append((user, item, "purchase", when + timedelta(minutes=5), event_date))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "event_time", "event_date"])
    frame.insert(0, "event_id", [f"e{n:05d}" for n in range(len(frame))])
    frame["category"] = frame["item_id"].map(category)
    frame["device"] = np.where(rng.random(len(frame)) < 0.5, "mobile", "desktop")
    frame["split"] = np.where(frame["event_date"] > END - timedelta(days=2), "test", "train")
    k = frame["user_id"].str[1:].astype(int)
    frame = _with_view(
        frame,
        "user_activity_v1",
        {
            "views_7d": rng.integers(5, 30, len(frame)).astype("float64"),
            "purchase_rate_28d": np.where(k % 2 == 0, 0.3, 0.02),
        },
    )
    frame["user_sequences_v1__recent_items"] = [[i for i in ITEMS if category(i) == f"c{u % 5}"][:3] for u in k]
    frame["user_sequences_v1__recent_categories"] = [[f"c{u % 5}"] * 3 for u in k]
    frame["user_sequences_v1__recent_length"] = 3
    return frame.assign(
        item_popularity_v1__conversion_rate_7d=np.where(frame["item_id"].str[1:].astype(int) % 2 == 0, 0.4, 0.1),
        dataset_id=f"retrieval_{END:%Y%m%d}",
    )


def churn_rows(rng: np.random.Generator) -> pd.DataFrame:
    # More customers than the other sets: the 1-vs-2-worker comparison needs a steady test metric.
    customers = [f"u{k:03d}" for k in range(300)]
    observations = [END - timedelta(days=d) for d in (6, 5, 4, 3, 2)]
    frame = pd.DataFrame([(u, o) for o in observations for u in customers], columns=["user_id", "observation_date"])
    inactive = rng.integers(0, 15, len(frame))
    flip = rng.random(len(frame)) < 0.05
    frame["split"] = np.where(frame["observation_date"] == observations[-1], "test", "train")
    frame = _with_view(
        frame,
        "user_activity_v2",
        {
            "days_since_active": inactive,
            "days_since_purchase": np.where(rng.random(len(frame)) < 0.3, np.nan, inactive + 2.0),
            "purchase_days_90d": rng.integers(0, 10, len(frame)),
            "spend_per_purchase_90d": rng.uniform(5, 50, len(frame)),
            "views_7d": rng.integers(0, 40, len(frame)),
        },
    )
    frame["user_sequences_v1__recent_items"] = [list(rng.choice(ITEMS, 3)) for _ in range(len(frame))]
    frame["user_sequences_v1__recent_categories"] = [
        [category(i) for i in s] for s in frame["user_sequences_v1__recent_items"]
    ]
    # Keen browsers (25+ views in 7 days) do not churn however long since they were active. The
    # RFM baselines do not see views, the deep model does.
    keen = frame["user_activity_v2__views_7d"].to_numpy() >= 25
    churned = ((inactive > 7) & ~keen).astype("int32")
    frame["churned"] = np.where(flip, 1 - churned, churned).astype("int32")
    return frame.assign(dataset_id=f"churn_{END:%Y%m%d}")


def demand_rows(
    rng: np.random.Generator, keys: list[str], key: str, view: str, kind: str, promotions: bool = False
) -> pd.DataFrame:
    observations = [END - timedelta(days=d) for d in range(8, 2, -1)]
    frame = pd.DataFrame([(s, o) for o in observations for s in keys], columns=[key, "observation_date"])
    rate = frame[key].map({s: 0.5 + n % 6 for n, s in enumerate(keys)}).to_numpy()
    if promotions:  # a display planned for the next 3 days triples what the item sells
        promoted = rng.random(len(frame)) < 0.3
        rate_ahead = rate * np.where(promoted, 3.0, 1.0)
        frame["item_promotions_v2__display_days_next_7d"] = np.where(promoted, 3, 0)
    else:
        rate_ahead = rate
    frame["units_next_1d"] = rng.poisson(rate_ahead)
    frame["units_next_3d"] = rng.poisson(3 * rate_ahead)
    frame["split"] = np.where(frame["observation_date"] >= observations[-2], "test", "train")
    frame = _with_view(
        frame,
        view,
        {
            "units_mean_7d": rng.poisson(7 * rate) / 7,
            "units_mean_28d": rng.poisson(28 * rate) / 28,
            "units_lag_1d": rng.poisson(rate),
            "avg_price": 10.0 + rate,
        },
    )
    return frame.assign(dataset_id=f"{kind}_{END:%Y%m%d}")


def feature_rows(training: pd.DataFrame, key: str, view: str) -> pd.DataFrame:
    """The newest training row per key, as the view's row for ``END``."""
    prefix = f"{view}__"
    latest = training.drop_duplicates(key, keep="last")
    columns = {c: c.removeprefix(prefix) for c in latest.columns if c.startswith(prefix)}
    out = latest[[key, *columns]].rename(columns=columns)
    return out.assign(feature_date=END, available_at=pd.Timestamp(END + timedelta(days=1), tz="UTC"))


@pytest.fixture(scope="session")
def tiny_lake(tmp_path_factory):
    from lakecart.config import LakeSettings, Settings, get_settings

    root = tmp_path_factory.mktemp("training-lake")
    settings = Settings(lake=LakeSettings(root=str(root)))
    rng = np.random.default_rng(7)
    retrieval, churn = retrieval_rows(rng), churn_rows(rng)
    items = demand_rows(rng, ITEMS, "item_id", "item_demand_v2", "demand", promotions=True)
    categories = demand_rows(rng, [f"c{n}" for n in range(5)], "category", "category_demand_v2", "category_demand")
    for name, frame in (
        ("training.retrieval", retrieval),
        ("training.churn", churn),
        ("training.demand", items),
        ("training.category_demand", categories),
    ):
        _write(settings, name, frame, ["dataset_id"])
    for view, frame, key in (
        ("user_activity_v1", retrieval, "user_id"),
        ("user_sequences_v1", retrieval, "user_id"),
        ("item_popularity_v1", retrieval, "item_id"),
        ("user_activity_v2", churn, "user_id"),
        ("item_demand_v2", items, "item_id"),
        ("item_popularity_v2", items, "item_id"),
        ("item_promotions_v2", items, "item_id"),
        ("category_demand_v2", categories, "category"),
    ):
        _write(settings, f"features.{view}", feature_rows(frame, key, view))
    _write(
        settings,
        "silver.items",
        pd.DataFrame(
            {
                "item_id": ITEMS,
                "category": [category(i) for i in ITEMS],
                "brand": [f"b{int(i[1:]) % 3}" for i in ITEMS],
                "price": [10.0 + int(i[1:]) for i in ITEMS],
            }
        ),
    )
    _write(
        settings,
        "training.manifests",
        pd.DataFrame(
            [
                _manifest(
                    f"retrieval_{END:%Y%m%d}",
                    ["user_activity_v1", "user_sequences_v1", "item_popularity_v1"],
                    days=DAYS,
                ),
                _manifest(f"churn_{END:%Y%m%d}", ["user_activity_v2", "user_sequences_v1"], horizon_days=2),
                _manifest(
                    f"demand_{END:%Y%m%d}",
                    ["item_demand_v2", "item_popularity_v2", "item_promotions_v2"],
                    horizons=[1, 3],
                ),
                _manifest(f"category_demand_{END:%Y%m%d}", ["category_demand_v2"], horizons=[1, 3]),
            ]
        ),
    )
    # Subprocesses (horovodrun workers, the CLI) find the lake through the environment.
    previous = os.environ.get("LAKECART_LAKE__ROOT")
    os.environ["LAKECART_LAKE__ROOT"] = str(root)
    get_settings.cache_clear()
    yield settings
    if previous is None:
        os.environ.pop("LAKECART_LAKE__ROOT", None)
    else:
        os.environ["LAKECART_LAKE__ROOT"] = previous
    get_settings.cache_clear()


@pytest.fixture()
def own_lake(tiny_lake, tmp_path):
    """A copy of the tiny lake's tables (no runs, no registry) for a test that publishes: the
    registry and gold tables it writes are its own."""
    import shutil

    from lakecart.config import LakeSettings, Settings

    root = tmp_path / "own-lake"
    shutil.copytree(tiny_lake.lake.tables, root / "lake", ignore=lambda _, names: [n for n in names if n == "gold"])
    return Settings(lake=LakeSettings(root=str(root)))
