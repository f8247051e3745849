"""End-to-end for a shop that sends nothing but an order-line export (issue 16): no clickstream, no
sessions, no catalogue, no customer table. A CSV with ids that keep leading zeros, line amounts
instead of unit prices and a weighed item, imported with the command line's flags as a person
would, then the pipeline DAG and the training DAG through Airflow (``airflow dags test``), each
task the real CLI. Ranking cannot learn without product views and is skipped; every other model
publishes itself or its best baseline.

Slow tier (about 12 minutes: two DAG runs). The default run covers the pieces: the importer's
mappings (tests/jobs/test_importer.py), an imported export through ingest (tests/jobs/test_ingest.py),
the order views on a lake without clickstream (tests/features/test_order_views.py) and ranking's
skip (tests/test_cli.py)."""

import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from lakecart import tables
from lakecart.config import LakeSettings, Settings
from lakecart.demo import TRAINING_DAG_ID, run_dag, training_conf
from lakecart.storage import is_delta

pytestmark = pytest.mark.slow

DAYS = 35
START = date(2026, 1, 1)
END = START + timedelta(days=DAYS - 1)


def order_export(path: Path) -> pd.DataFrame:
    """Baskets of 120 customers over DAYS days: each buys from its own favourites every 2-5 days
    (a fifth stop three weeks before the end), now and then something new, and some buy apples by
    weight (a fractional quantity)."""
    rng = np.random.default_rng(7)
    items = [f"0{i:04d}" for i in range(48)]
    rows = []
    for n in range(120):
        customer = f"{n:05d}"
        favourites = rng.choice(items, size=8, replace=False)
        gap = int(rng.integers(2, 6))
        last = DAYS if n % 5 else DAYS - 21
        for day in range(int(rng.integers(0, gap)), last, gap):
            at = datetime(2026, 1, 1, 9) + timedelta(days=day, minutes=int(rng.integers(0, 600)))
            basket = set(rng.choice(favourites, size=int(rng.integers(2, 6)), replace=False))
            if rng.random() < 0.3:
                basket.add(str(rng.choice(items)))
            for item in sorted(basket):
                quantity = int(rng.integers(1, 4))
                price = 1.0 + int(item) % 7
                rows.append((f"B{customer}-{day:02d}", customer, item, at, quantity, quantity * price, int(item) % 6))
            if n % 4 == 0:
                kilos = round(float(rng.uniform(0.3, 2.0)), 3)
                rows.append((f"B{customer}-{day:02d}", customer, "apples", at, kilos, round(2.4 * kilos, 2), 6))
    frame = pd.DataFrame(rows, columns=["basket", "customer", "sku", "at", "qty", "paid", "aisle"])
    frame["at"] = frame["at"].map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame["aisle"] = "aisle-" + frame["aisle"].astype(str)
    frame.to_csv(path, index=False)
    return frame


def read(settings, name):
    return DeltaTable(tables.table_path(name, settings)).to_pandas()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("orders-only")
    export = order_export(root / "till.csv")
    flags = ["--kind", "orders", "--order-col", "basket", "--user-col", "customer", "--item-col", "sku"]
    flags += ["--time-col", "at", "--quantity-col", "qty", "--amount-col", "paid", "--category-col", "aisle"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lakecart"), "import", str(root / "till.csv"), *flags,
         "--measured-lines", "fractional"],
        env={**os.environ, "LAKECART_LAKE__ROOT": str(root)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    pipeline = run_dag(root, END, {"lookback_days": DAYS - 1}, capture=True)
    assert pipeline[0] == "success", pipeline[1][-5000:]
    training = run_dag(root, END, training_conf(DAYS), capture=True, dag_id=TRAINING_DAG_ID)
    return root, export, training


def test_the_export_reaches_silver_whole(shop):
    root, export, _ = shop
    settings = Settings(lake=LakeSettings(root=str(root)))
    lines = read(settings, tables.SILVER_ORDER_LINES)
    assert len(lines) == len(export.drop_duplicates(["basket", "sku"]))  # one line per (order, item)
    assert set(lines["user_id"]) == set(export["customer"].astype(str).str.zfill(5))  # zeros kept
    apples = lines[lines["item_id"] == "apples"]
    assert len(apples) > 0 and (apples["quantity"] == 1).all()  # weighed: one purchase each
    assert apples["revenue"].sum() == pytest.approx(export.loc[export["sku"] == "apples", "paid"].sum())
    assert not is_delta(tables.table_path(tables.SILVER_EVENTS, settings))  # no clickstream, none made up
    assert len(read(settings, tables.SILVER_ITEMS)) == export["sku"].nunique()  # the derived catalogue


def test_both_dags_publish_every_model_but_ranking_from_orders_alone(shop):
    root, export, (state, output) = shop
    assert state == "success", output[-5000:]
    settings = Settings(lake=LakeSettings(root=str(root)))
    registry = read(settings, tables.MODEL_REGISTRY)
    published = registry[registry["status"] == "published"]
    # Ranking learns view -> purchase: a shop without product views cannot teach it (train exits 98).
    assert sorted(published["model"]) == ["category_demand", "churn", "demand", "retrieval"]
    churn = read(settings, tables.CHURN_SCORES)
    assert churn["churn_probability"].between(0, 1).all() and churn["user_id"].str.len().eq(5).all()
    forecasts = read(settings, tables.DEMAND_FORECASTS)
    assert set(forecasts["level"]) == {"item", "category"} and (forecasts["forecast_units"] >= 0).all()
    assert set(forecasts.loc[forecasts["level"] == "category", "series_id"]) <= set(export["aisle"])
    recommendations = read(settings, tables.RECOMMENDATIONS)
    assert recommendations["user_id"].nunique() > 0.5 * export["customer"].nunique()
    assert set(recommendations["item_id"]) <= set(export["sku"])
    assert read(settings, tables.USER_SEGMENTS)["user_id"].nunique() > 0
