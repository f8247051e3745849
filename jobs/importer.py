"""Bring an existing shop's exports into the raw zone, without writing code.

A small YAML mapping (or CLI flags) says which kind of export a file is and which source column feeds
which contract field; every unmapped column is kept as an extra field (``silver.<table>.extra``). Output:
JSON lines in the raw zone under deterministic file names (re-importing replaces a file and the ingest
ledger re-ingests just that file), then the normal pipeline takes over (``lakecart ingest ...``).

=============  =========================================  ===========================================
kind           writes                                     contract
=============  =========================================  ===========================================
events         raw/events/event_date=D/<name>.jsonl       clickstream_event (the default kind)
orders         raw/orders/order_date=D/<name>.jsonl       order_line, key (order_id, item_id)
catalog        raw/catalog/<name>.jsonl                   catalog_item
customers      raw/users/export_date=D/<name>.jsonl       user (D: the signup date)
promotions     raw/promotions/start_date=D/<name>.jsonl   promotion
=============  =========================================  ===========================================

Example mapping (``infra/importers/*.yaml`` holds the presets' mappings)::

    name: my-shop
    kind: orders
    format: csv            # csv | tsv | parquet | jsonl
    fields:
      order_id: basket
      user_id: customer
      item_id: sku
      order_time: ordered_at
      quantity: qty
      line_amount: paid           # the line's total after discounts ...
      discount: [promo, coupon]   # ... and its discounts (summed, as positive amounts)
      category: department        # only feeds the derived catalogue
    time_format: iso       # iso | unix | a strftime pattern such as "%d/%m/%Y %H:%M"

Conventions, for every kind:

- Mapped ids and other text fields are read as text, always: ``01104905`` stays ``01104905`` (CSV and
  TSV columns are read as text; Parquet and JSON-lines numbers are rendered without a decimal point).
  Unmapped columns are read as pandas reads them (``read_options: {dtype: {store: str}}`` keeps one as text).
- Order lines: ``discount`` is the line's total discount, a positive amount (exports write discounts
  as negative or positive numbers: the absolute value is taken; a list of columns is summed).
  ``unit_price`` is the list price per unit; when the export gives the amount paid instead
  (``line_amount``, after discounts), ``unit_price = (line_amount + discount) / quantity``, so silver's
  ``revenue = unit_price x quantity - discount`` is the amount paid again. ``quantity`` defaults to 1.
  Lines of the same (order, item) are one line in the contract: the importer adds them up (quantity,
  amounts, discounts; other fields from the first) and reports how many it merged. A line it cannot
  price (quantity 0, text in a number) is written as it is, for ingestion to quarantine with a reason.
- Goods sold by weight or volume (0.454 kg of apples, 10.3 gallons of fuel) have no whole quantity,
  and ingestion would quarantine them as unpriceable. ``measured_lines: fractional`` counts every line
  with a quantity that is not a whole number as one purchase; ``measured_lines: {column: unit, values:
  [kg, l]}`` every line whose ``unit`` is one of those. Such a line gets ``quantity`` 1 at the line's
  amounts (its unit price is what the whole line cost) and keeps the exported figure in the extra
  field ``exported_quantity``; the summary counts them (``lines_counted_as_one_purchase``).
- No catalogue file in ``raw/catalog``: importing orders derives one (``<name>.derived.jsonl``: each
  item, its category from a mapped ``category`` column, its median unit price). Importing a catalogue
  later replaces every derived file.
- Catalogue: ``hierarchy: [department, category, type]`` (any depth, top first) becomes
  ``category_path`` ``"A > B > C"``; a missing level ends the path.
- Customers: ``signup_time`` is required by the user contract. Unmapped, it is each customer's first
  order time when orders come in the same import (a preset); customers with neither are kept in
  ``raw/import_rejects``, counted, never dropped.
- Promotions: each row goes to the raw folder of the day it became known (its ingest date, which the
  known-in-advance features read): a mapped ``announced_date``, else ``start_date - lead_days``.
- Rows whose time or date cannot be read have no partition to go to: they are kept in
  ``raw/import_rejects/<name>.jsonl`` (events) or ``<name>-<kind>.jsonl``, and counted.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lakecart.errors import LakecartError
from lakecart.jobs.ingest_transforms import EVENT_TYPES, RAW_EVENT_FIELDS, RAW_PROMOTION_FIELDS

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "parquet", "jsonl")
KINDS = ("events", "orders", "catalog", "customers", "promotions")
ORDER_TARGETS = ("order_id", "user_id", "item_id", "quantity", "unit_price", "line_amount", "discount", "order_time")
CATALOG_TARGETS = ("item_id", "title", "brand", "category", "category_path", "hierarchy", "price", "launch_date")
CUSTOMER_TARGETS = ("user_id", "signup_time", "region", "segment")
# kind -> (the fields a mapping may name, the fields it must name)
TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "events": (RAW_EVENT_FIELDS, ("user_id", "item_id", "event_time")),
    "orders": ((*ORDER_TARGETS, "category"), ("order_id", "user_id", "item_id", "order_time")),
    "catalog": (CATALOG_TARGETS, ("item_id",)),
    "customers": (CUSTOMER_TARGETS, ("user_id",)),
    "promotions": ((*RAW_PROMOTION_FIELDS, "announced_date"), ("item_id", "start_date", "end_date")),
}
LIST_FIELDS = ("hierarchy", "discount")  # fields a list of columns may feed
NUMBER_FIELDS = ("price", "quantity", "unit_price", "line_amount", "discount", "price_cut")
TIME_FIELDS = ("event_time", "order_time", "signup_time")
DATE_FIELDS = ("start_date", "end_date", "launch_date", "announced_date")
FLAG_FIELDS = ("display", "mailer")
DERIVED_CATALOG_SUFFIX = ".derived.jsonl"
PRICE_DECIMALS = 9  # unit prices are written rounded to this many decimals (exact in JSON)


class MappingError(LakecartError, ValueError):
    """An import mapping names something that does not exist (a field, a kind, a format, a column)."""


class MissingColumnError(MappingError, KeyError):
    """A mapping names a source column the export does not have."""

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class ImportMapping:
    name: str
    fields: dict[str, str | list | dict]
    kind: str = "events"
    format: str = "csv"
    time_format: str = "iso"
    read_options: dict = field(default_factory=dict)
    # Promotions: the plan is sent this many days before a promotion starts (see ``to_raw_promotions``).
    lead_days: int = 0
    # Orders: which lines are sold by measure and count as one purchase each (see the module's notes).
    measured_lines: str | dict | None = None

    def __post_init__(self) -> None:
        if self.lead_days and self.kind != "promotions":
            raise MappingError(f"mapping {self.name!r}: lead_days is for promotions, not {self.kind}")
        if not isinstance(self.lead_days, int) or isinstance(self.lead_days, bool) or self.lead_days < 0:
            raise MappingError(
                f"mapping {self.name!r}: lead_days must be a whole number of days >= 0, got {self.lead_days!r}"
            )
        if self.kind not in KINDS:
            raise MappingError(f"mapping {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        self._check_measured_lines()
        if self.format not in FORMATS:
            raise MappingError(f"mapping {self.name!r}: format must be one of {FORMATS}, got {self.format!r}")
        allowed, required = TARGETS[self.kind]
        unknown = set(self.fields) - set(allowed)
        if unknown:
            raise MappingError(
                f"mapping {self.name!r} names fields the {self.kind} contract does not have: {sorted(unknown)} "
                f"(fields: {', '.join(allowed)})"
            )
        missing = set(required) - set(self.fields)
        if missing:
            raise MappingError(f"mapping {self.name!r} ({self.kind}) must give {sorted(missing)}")
        if self.kind == "orders" and not {"unit_price", "line_amount"} & set(self.fields):
            raise MappingError(f"mapping {self.name!r} (orders) must give unit_price or line_amount")
        if {"hierarchy", "category_path"} <= set(self.fields):
            raise MappingError(f"mapping {self.name!r}: give hierarchy or category_path, not both")
        for target, spec in self.fields.items():
            if isinstance(spec, dict) and set(spec) != {"constant"}:
                raise MappingError(f"mapping {self.name!r}: {target}: a dict must be {{constant: value}}, got {spec}")
            if isinstance(spec, list) and (target not in LIST_FIELDS or not all(isinstance(c, str) for c in spec)):
                raise MappingError(f"mapping {self.name!r}: {target}: only {LIST_FIELDS} take a list of columns")
            if not isinstance(spec, str | list | dict):
                raise MappingError(f"mapping {self.name!r}: {target}: give a column name, a list or {{constant: v}}")

    def _check_measured_lines(self) -> None:
        spec = self.measured_lines
        if spec is None:
            return
        if self.kind != "orders":
            raise MappingError(f"mapping {self.name!r}: measured_lines is for orders, not {self.kind}")
        by_column = (
            isinstance(spec, dict)
            and set(spec) == {"column", "values"}
            and isinstance(spec["column"], str)
            and isinstance(spec["values"], list)
            and spec["values"]
        )
        if spec != "fractional" and not by_column:
            raise MappingError(
                f"mapping {self.name!r}: measured_lines must be 'fractional' or {{column: <name>, values: "
                f"[<value>, ...]}}, got {spec!r}"
            )

    @classmethod
    def from_yaml(cls, path: str | Path) -> ImportMapping:
        data = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MappingError(f"{path}: unknown mapping keys {unknown} (keys: {', '.join(sorted(known))})")
        if "name" not in data or "fields" not in data:
            raise MappingError(f"{path}: a mapping needs name: and fields:")
        return cls(**data)

    def columns(self, target: str) -> list[str]:
        """The source columns ``target`` reads (none for a constant)."""
        spec = self.fields.get(target)
        return [spec] if isinstance(spec, str) else list(spec) if isinstance(spec, list) else []

    @property
    def text_columns(self) -> list[str]:
        """Source columns read as text: everything but numbers, times, dates and flags."""
        numeric = (*NUMBER_FIELDS, *TIME_FIELDS, *DATE_FIELDS, *FLAG_FIELDS)
        return [c for t in self.fields if t not in numeric for c in self.columns(t)]


# --- reading ---------------------------------------------------------------------------------------


def _as_text(values: pd.Series) -> pd.Series:
    """Text, missing stays missing; whole floats (an integer column with gaps) lose their ``.0``."""
    if pd.api.types.is_float_dtype(values):
        present = values.dropna()
        if (present == np.floor(present)).all():
            values = values.astype("Int64")
    return values.astype("string")


def read_source(path: str | Path, mapping: ImportMapping) -> pd.DataFrame:
    """The export as a frame; mapped id and text columns are text whatever the file says."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"import source not found: {path}")
    options = dict(mapping.read_options)
    if mapping.format in ("csv", "tsv"):
        # Mapped ids and texts as text: a CSV has no types, and guessing them turns 01104905 into 1104905.
        # Other columns keep pandas' reading (read_options: dtype can make them text too).
        dtype = options.pop("dtype", None)
        dtype = {**(dtype if isinstance(dtype, dict) else {}), **dict.fromkeys(mapping.text_columns, str)}
        sep = "\t" if mapping.format == "tsv" else options.pop("sep", ",")
        frame = pd.read_csv(path, sep=sep, dtype=dtype, **options)
    elif mapping.format == "parquet":
        frame = pd.read_parquet(path, **options)
    else:
        frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False, **options)
    return frame


# --- pure transforms -------------------------------------------------------------------------------


def _take(source: pd.DataFrame, mapping: ImportMapping, target: str) -> pd.Series | pd.DataFrame | None:
    """The values feeding ``target``: a column, a constant, a frame of columns (a list), or None."""
    spec = mapping.fields.get(target)
    if spec is None:
        return None
    if isinstance(spec, dict):
        return pd.Series(spec["constant"], index=source.index)
    missing = [c for c in mapping.columns(target) if c not in source.columns]
    if missing:
        raise MissingColumnError(
            f"mapping {target} <- {spec!r}: no such column {missing} (have {list(source.columns)})"
        )
    return source[spec] if isinstance(spec, str) else source[list(spec)]


def _extras(source: pd.DataFrame, mapping: ImportMapping, out: pd.DataFrame, keep: tuple[str, ...] = ()) -> None:
    """Copy every source column the contract fields did not consume (``keep``: consumed, kept too)."""
    used = {c for t in mapping.fields for c in mapping.columns(t)} - set(keep)
    for column in source.columns:
        if column not in used and column not in out.columns:
            out[column] = source[column]


def _numbers(values: pd.Series, integer: bool = False) -> pd.Series:
    """Numbers where the text is one; any other value is kept as it is, for ingestion to quarantine
    with a reason (a guessed null would hide it)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if integer and (numeric.dropna() == np.floor(numeric.dropna())).all():
        numeric = numeric.astype("Int64")
    bad = numeric.isna() & values.notna()
    if not bad.any():
        return numeric
    return numeric.astype(object).where(~bad, values)


def _times(values: pd.Series, time_format: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    if time_format == "unix":
        return pd.to_datetime(pd.to_numeric(values, errors="coerce"), unit="s", utc=True)
    if time_format == "iso":
        return pd.to_datetime(values, utc=True, errors="coerce")
    return pd.to_datetime(values, format=time_format, utc=True, errors="coerce")


def _iso(times: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(``2026-01-02T10:30:00.000Z``, ``2026-01-02``) per UTC time; both missing where the time is."""
    naive = times.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    missing = pd.isna(times).to_numpy()
    stamp = np.char.add(np.datetime_as_string(naive, unit="ms"), "Z").astype(object)
    day = np.datetime_as_string(naive, unit="D").astype(object)
    stamp[missing], day[missing] = None, None
    return pd.Series(stamp, index=times.index), pd.Series(day, index=times.index)


def _dates(values: pd.Series) -> pd.Series:
    """``yyyy-MM-dd`` text per value; a value that is not a date is kept, for ingestion to report."""
    parsed = pd.to_datetime(values, errors="coerce")
    text = pd.Series(np.datetime_as_string(parsed.to_numpy(dtype="datetime64[D]"), unit="D"), index=values.index)
    return text.astype(object).where(parsed.notna(), values)


def _flags(values: pd.Series) -> pd.Series:
    """Booleans from true/false, yes/no, 1/0 (any case); other values kept for ingestion to report."""
    if pd.api.types.is_bool_dtype(values):
        return values
    words = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False, "t": True, "f": False}
    mapped = values.astype("string").str.strip().str.lower().map(words)
    return mapped.astype(object).where(mapped.notna(), values)


def to_raw_events(source: pd.DataFrame, mapping: ImportMapping) -> pd.DataFrame:
    """Pure: the source rows as contract-shaped events (+ unmapped columns), with ``event_date``."""
    out = pd.DataFrame(index=source.index)
    for target in mapping.fields:
        out[target] = _take(source, mapping, target)
    out["event_time"], out["event_date"] = _iso(_times(out["event_time"], mapping.time_format))
    for column in ("event_id", "user_id", "anonymous_id", "item_id", "session_id", "category"):
        if column in out:
            out[column] = _as_text(out[column])
    for column in ("price", "quantity"):
        if column in out:
            out[column] = _numbers(out[column], integer=column == "quantity")
    if "event_type" not in out:
        out["event_type"] = EVENT_TYPES[-1]
    if "event_id" not in out:
        # Deterministic: the same export always yields the same ids, so re-imports de-duplicate.
        keys = source.astype(str).agg("|".join, axis=1) + "|" + source.index.astype(str)
        out["event_id"] = [hashlib.sha1(f"{mapping.name}|{k}".encode()).hexdigest() for k in keys]
    _extras(source, mapping, out)
    return out


def _discounts(source: pd.DataFrame, mapping: ImportMapping) -> pd.Series | None:
    """The line's total discount as a positive amount: the absolute values of the mapped columns,
    summed. A value that is not a number is kept as it is (the line cannot be priced: ingestion
    quarantines it)."""
    values = _take(source, mapping, "discount")
    if values is None:
        return None
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    total = numeric.abs().sum(axis=1, min_count=1)
    bad = (numeric.isna() & frame.notna()).any(axis=1)
    if not bad.any():
        return total
    text = frame.astype("string").agg(lambda row: "+".join(v for v in row if pd.notna(v)), axis=1)
    return total.astype(object).where(~bad, text)


def _aggregate_lines(lines: pd.DataFrame, sums: list[str]) -> tuple[pd.DataFrame, int]:
    """One row per (order_id, item_id): ``sums`` added up, every other column from the first line.
    Only priceable lines are merged (a line ingestion will quarantine stays as it is)."""
    lines = lines.assign(_merged=False)
    priceable = lines["_quantity"].notna() & lines["_list_total"].notna()
    keyed = lines[priceable]
    repeated = keyed.duplicated(["order_id", "item_id"], keep=False)
    if not repeated.any():
        return lines, 0
    subset = keyed[repeated].copy()
    subset[sums] = subset[sums].apply(pd.to_numeric, errors="coerce")
    groups = subset.groupby(["order_id", "item_id"], sort=False, dropna=False)
    merged = groups.first()
    merged[sums] = groups[sums].sum(min_count=1)
    merged = merged.reset_index().assign(_merged=True)[list(lines.columns)]
    out = pd.concat([lines[~priceable], keyed[~repeated], merged], ignore_index=True)
    return out, int(repeated.sum() - len(merged))


def _unit_prices(list_total: pd.Series, quantity: pd.Series, discount: pd.Series | None) -> pd.Series:
    """List price per unit, rounded to ``PRICE_DECIMALS``; nudged up where rounding would make the
    discount exceed the line's list value (the contract's ``discount <= unit_price x quantity``, checked
    in the same double arithmetic ingestion uses). Null where the quantity cannot price a unit."""
    q = quantity.astype("float64")
    unit = (list_total / q.where(q > 0)).round(PRICE_DECIMALS)
    if discount is not None:
        short = (unit * q) < discount.fillna(0)
        unit = unit.where(~short, unit + 10.0**-PRICE_DECIMALS)
    return unit


def _measured(source: pd.DataFrame, mapping: ImportMapping, numeric: pd.Series | None) -> pd.Series:
    """Lines sold by measure (``mapping.measured_lines``) with a positive exported quantity
    (``numeric``: the quantities as numbers): a line without one is not a measured purchase but a line
    ingestion quarantines."""
    spec, none = mapping.measured_lines, pd.Series(False, index=source.index)
    if spec is None or numeric is None:
        return none
    if spec == "fractional":
        chosen = numeric != np.floor(numeric)
    else:
        if spec["column"] not in source.columns:
            raise MissingColumnError(
                f"measured_lines <- {spec['column']!r}: no such column (have {list(source.columns)})"
            )
        chosen = _as_text(source[spec["column"]]).isin([str(v) for v in spec["values"]]).fillna(False)
    return (chosen & (numeric > 0)).astype(bool)


def to_raw_orders(source: pd.DataFrame, mapping: ImportMapping) -> tuple[pd.DataFrame, int]:
    """Pure: order lines in the order_line contract (+ unmapped columns, the amount and discount columns
    included), with ``order_date``; and how many duplicate (order, item) lines were merged."""
    out = pd.DataFrame(index=source.index)
    for target in ("order_id", "user_id", "item_id"):
        out[target] = _as_text(_take(source, mapping, target))
    quantity = _take(source, mapping, "quantity")
    exported = None if quantity is None else pd.to_numeric(quantity, errors="coerce")
    measured = _measured(source, mapping, exported)
    if measured.any():  # one purchase each, at the line's amounts; the exported figure kept
        out["exported_quantity"] = exported.where(measured)
        quantity = quantity.where(~measured, 1)
    out["quantity"] = 1 if quantity is None else _numbers(quantity, integer=True)
    discount = _discounts(source, mapping)
    amount = _take(source, mapping, "line_amount")
    given_price = _take(source, mapping, "unit_price")
    out["_quantity"] = pd.to_numeric(out["quantity"], errors="coerce").where(lambda q: q == np.floor(q))
    out["_measured"] = measured
    if amount is not None:
        paid = pd.to_numeric(amount, errors="coerce")
        out["_list_total"] = paid if discount is None else paid + pd.to_numeric(discount, errors="coerce").fillna(0)
        if discount is not None:  # a discount that is not a number: the line cannot be priced
            out.loc[pd.to_numeric(discount, errors="coerce").isna() & discount.notna(), "_list_total"] = np.nan
    else:  # a measured line's list value is its price per kg (or litre) times the exported figure
        units = out["_quantity"].where(~measured, out.get("exported_quantity"))
        out["_list_total"] = pd.to_numeric(given_price, errors="coerce") * units
        out["unit_price"] = _numbers(given_price)
    if discount is not None:
        out["discount"] = discount
    out["order_time"], out["order_date"] = _iso(_times(_take(source, mapping, "order_time"), mapping.time_format))
    category = _take(source, mapping, "category")
    if category is not None:
        out["_category"] = _as_text(category)
    amounts = (*mapping.columns("line_amount"), *mapping.columns("discount"))
    _extras(source, mapping, out, keep=(*amounts, *mapping.columns("category")))
    summed = ["_quantity", "_list_total", *(["discount"] if discount is not None else [])]
    summed += ["exported_quantity"] if "exported_quantity" in out else []
    out, merged = _aggregate_lines(out, [*summed, *(c for c in amounts if c in out)])
    numeric_discount = pd.to_numeric(out["discount"], errors="coerce") if discount is not None else None
    derived = _unit_prices(out["_list_total"], out["_quantity"], numeric_discount)
    if amount is not None:
        out["unit_price"] = derived
    else:  # a line as exported keeps its price; a merged or measured line gets what one unit cost
        out["unit_price"] = out["unit_price"].where(~(out["_merged"] | out["_measured"]), derived)
    whole = out["_quantity"].astype("Int64")
    out["quantity"] = whole if whole.notna().all() else whole.astype(object).where(whole.notna(), out["quantity"])
    if numeric_discount is not None:
        out["discount"] = (
            numeric_discount.round(PRICE_DECIMALS).astype(object).where(numeric_discount.notna(), out["discount"])
        )
    first = ["order_id", "user_id", "item_id", "quantity", "unit_price", "discount", "order_time"]
    ordered = [c for c in first if c in out] + [c for c in out.columns if c not in first]
    return out[ordered], merged


def derive_catalog(orders: pd.DataFrame) -> pd.DataFrame:
    """Pure: a catalogue from order lines: every item, its most frequent category (when a ``category``
    column was mapped) and its median unit price over the lines that have one."""
    price = pd.to_numeric(orders["unit_price"], errors="coerce")
    median = price.groupby(orders["item_id"], sort=True).median()
    items = pd.DataFrame({"item_id": median.index.astype("string"), "price": median.to_numpy()})
    if "_category" in orders:
        counts = orders.groupby(["item_id", "_category"]).size().reset_index(name="n")
        top = counts.sort_values(["item_id", "n", "_category"], ascending=[True, False, True])
        items["category"] = items["item_id"].map(top.drop_duplicates("item_id").set_index("item_id")["_category"])
    return items


def _category_paths(levels: pd.DataFrame) -> pd.Series:
    """``"A > B > C"`` from level columns, top first; a missing (or blank) level ends the path."""
    path = pd.Series(pd.NA, index=levels.index, dtype="string")
    going = pd.Series(True, index=levels.index)
    for column in levels.columns:
        level = _as_text(levels[column]).str.strip()
        going &= level.notna() & (level != "")
        path = path.mask(going & path.isna(), level).mask(going & path.notna(), path + " > " + level)
    return path


def to_raw_catalog(source: pd.DataFrame, mapping: ImportMapping) -> pd.DataFrame:
    """Pure: catalogue items in the catalog_item contract (+ unmapped columns)."""
    out = pd.DataFrame(index=source.index)
    out["item_id"] = _as_text(_take(source, mapping, "item_id"))
    for target in ("title", "brand", "category", "category_path"):
        values = _take(source, mapping, target)
        if values is not None:
            out[target] = _as_text(values)
    levels = _take(source, mapping, "hierarchy")
    if levels is not None:
        out["category_path"] = _category_paths(levels.to_frame() if isinstance(levels, pd.Series) else levels)
    price = _take(source, mapping, "price")
    if price is not None:
        # silver.items reads price as a number: a value that is not one has no better place than null.
        out["price"] = pd.to_numeric(price, errors="coerce")
    launch = _take(source, mapping, "launch_date")
    if launch is not None:
        out["launch_date"] = _dates(launch).where(lambda d: d.astype("string").str.len().eq(10), None)
    _extras(source, mapping, out)
    return out


def first_order_times(orders: pd.DataFrame) -> pd.Series:
    """Each user's first order time (ISO text), from ``to_raw_orders`` output."""
    return orders.dropna(subset=["order_time"]).groupby("user_id")["order_time"].min()


def to_raw_customers(
    source: pd.DataFrame, mapping: ImportMapping, first_orders: pd.Series | None = None
) -> pd.DataFrame:
    """Pure: users in the user contract (+ attribute columns), with ``export_date`` = the signup date.
    Without a mapped signup time, ``first_orders`` (user id -> first order time) gives it."""
    out = pd.DataFrame(index=source.index)
    out["user_id"] = _as_text(_take(source, mapping, "user_id"))
    signup = _take(source, mapping, "signup_time")
    if signup is not None:
        out["signup_time"], out["export_date"] = _iso(_times(signup, mapping.time_format))
    elif first_orders is not None:
        out["signup_time"] = out["user_id"].map(first_orders).astype(object)
        out["export_date"] = out["signup_time"].str[:10]
    else:
        raise MappingError(
            f"mapping {mapping.name!r} (customers) gives no signup_time: map a column, or import the customers "
            "together with their orders (a preset), whose first order time is then the signup time"
        )
    for target in ("region", "segment"):
        values = _take(source, mapping, target)
        if values is not None:
            out[target] = _as_text(values)
    _extras(source, mapping, out)
    return out


def to_raw_promotions(source: pd.DataFrame, mapping: ImportMapping) -> pd.DataFrame:
    """Pure: promotions in the promotion contract (+ unmapped columns), partitioned by the day each
    became known: a promotion counts as known from its raw folder's day (its ingest date), so the
    known-in-advance features see it only from then. That day is the row's mapped
    ``announced_date`` (never after its start); else ``start_date - lead_days`` (0: known when it
    starts), never before the export's first ``start_date``. An announced date that is not a date
    falls back to the start (the latest day the promotion was surely known; ``_unreadable``)."""
    out = pd.DataFrame(index=source.index)
    for target in ("item_id", "store_id"):
        values = _take(source, mapping, target)
        if values is not None:
            out[target] = _as_text(values)
    for target in ("start_date", "end_date"):
        out[target] = _dates(_take(source, mapping, target))
    for target in FLAG_FIELDS:
        values = _take(source, mapping, target)
        if values is not None:
            out[target] = _flags(values)
    cut = _take(source, mapping, "price_cut")
    if cut is not None:
        out["price_cut"] = _numbers(cut)
    _extras(source, mapping, out)
    dated = out["start_date"].where(out["start_date"].astype("string").str.len().eq(10), None)
    announced = _take(source, mapping, "announced_date")
    if (mapping.lead_days or announced is not None) and dated.notna().any():
        starts = pd.to_datetime(dated)
        known = (starts - pd.Timedelta(days=mapping.lead_days)).clip(lower=starts.min())
        if announced is not None:
            told = pd.to_datetime(_dates(announced), format="%Y-%m-%d", errors="coerce")
            out["_unreadable"] = told.isna() & announced.notna()
            known = told.where(told.notna(), known.where(~out["_unreadable"], starts)).where(
                lambda k: k <= starts, starts
            )
        dated = known.dt.strftime("%Y-%m-%d").where(starts.notna(), None)
    out["_partition"] = dated
    return out


# --- writing ---------------------------------------------------------------------------------------


@functools.cache  # one per column name, not one per column of every file written
def _json_key(column: str) -> str:
    """``column`` as pandas writes it as a JSON key (quoted, ``/`` escaped)."""
    line = pd.DataFrame({column: [0]}).to_json(orient="records", lines=True, force_ascii=False)
    return line[1 : line.rindex(":")]


def _write_jsonl(rows: pd.DataFrame, path: Path) -> None:
    """JSON lines in one pass (pandas, not a record at a time). A missing value is left out of its
    record, which every contract reads as absent (a sparse extra field such as ``exported_quantity``
    is then in the records that have it only). A key followed by ``:null`` cannot occur inside a
    JSON string (its quotes would be escaped), so removing those members is exact. 15 significant
    digits keep PRICE_DECIMALS exact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = rows.to_json(orient="records", lines=True, double_precision=15, force_ascii=False)
    for column in rows.columns[rows.isna().any().to_numpy()]:
        key = _json_key(column)
        text = text.replace(f",{key}:null", "").replace(f"{{{key}:null,", "{").replace(f"{{{key}:null}}", "{}")
    path.write_text(text, encoding="utf-8")


def _private(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("_")]


def write_partitioned(
    rows: pd.DataFrame, raw_root: str | Path, folder: str, by: str, name: str, rejects: str, drop_by: bool = True
) -> dict[str, int]:
    """One JSON-lines file per value of ``by`` under ``raw/<folder>/<by>=D/<name>.jsonl`` (``by`` is left
    out of the records when ``drop_by``). Rows without a value have no partition to go to: they are kept
    in ``raw/import_rejects/<rejects>.jsonl``, counted as ``unknown``, never dropped."""
    column = "_partition" if "_partition" in rows else by
    drop = [c for c in {*_private(rows), *([by] if drop_by else [])} if c in rows]
    counts: dict[str, int] = {}
    undated = rows[column].isna()
    for day, group in rows[~undated].groupby(column, sort=True):
        _write_jsonl(group.drop(columns=drop), Path(raw_root) / folder / f"{by}={day}" / f"{name}.jsonl")
        counts[str(day)] = len(group)
    if undated.any():
        _write_jsonl(rows[undated].drop(columns=drop), Path(raw_root) / "import_rejects" / f"{rejects}.jsonl")
        counts["unknown"] = int(undated.sum())
    return counts


def write_closed_days(counts: dict[str, int], raw_root: str | Path, folder: str, by: str, name: str) -> list[str]:
    """Days inside the export's span without a single row (a shop closed on Christmas Day) get an
    empty file: the export says nothing was sold, which ingestion tells apart from a day whose data
    has not arrived (no file at all, an error). Returns those days."""
    dated = sorted(date.fromisoformat(d) for d in counts if d != "unknown")
    if not dated:
        return []
    span = (dated[-1] - dated[0]).days + 1
    missing = [dated[0] + timedelta(days=n) for n in range(span)]
    closed = [d.isoformat() for d in missing if d.isoformat() not in counts]
    for day in closed:
        target = Path(raw_root) / folder / f"{by}={day}" / f"{name}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    return closed


def write_raw(events: pd.DataFrame, raw_root: str | Path, name: str) -> dict[str, int]:
    """Events: one JSON-lines file per event date, named after the import (see ``write_partitioned``)."""
    return write_partitioned(events, raw_root, "events", "event_date", name, name)


def _span(counts: dict[str, int]) -> dict:
    dated = sorted(d for d in counts if d != "unknown")
    return {"days": len(dated), "first_date": dated[0] if dated else None, "last_date": dated[-1] if dated else None}


def _catalogue_files(raw_root: Path) -> list[Path]:
    folder = raw_root / "catalog"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith((".", "_")))


def import_frame(
    frame: pd.DataFrame,
    mapping: ImportMapping,
    raw_root: str | Path,
    source: str = "<frame>",
    first_orders: pd.Series | None = None,
) -> dict:
    """Map ``frame`` by ``mapping.kind`` and write it to the raw zone; a summary of what was written.
    ``first_orders`` (customers only): user id -> first order time, the signup time when unmapped."""
    raw_root = Path(raw_root)
    name, kind = mapping.name, mapping.kind
    summary: dict = {"kind": kind, "source": source, "rows": int(len(frame))}
    if kind == "events":
        counts = write_raw(to_raw_events(frame, mapping), raw_root, name)
        summary.pop("kind")  # the events summary keeps its original shape
        return {**summary, **_span(counts), "rows_without_time": counts.get("unknown", 0)}
    rejects = f"{name}-{kind}"
    if kind == "orders":
        lines, merged = to_raw_orders(frame, mapping)
        counts = write_partitioned(lines, raw_root, "orders", "order_date", name, rejects)
        closed = write_closed_days(counts, raw_root, "orders", "order_date", name)
        derived = 0
        if not [p for p in _catalogue_files(raw_root) if p.name != f"{name}{DERIVED_CATALOG_SUFFIX}"]:
            items = derive_catalog(lines)
            _write_jsonl(items, raw_root / "catalog" / f"{name}{DERIVED_CATALOG_SUFFIX}")
            derived = len(items)
        summary |= {
            "order_lines": int(len(lines)),
            "duplicate_lines_merged": merged,
            "lines_without_unit_price": int(pd.to_numeric(lines["unit_price"], errors="coerce").isna().sum()),
            "lines_counted_as_one_purchase": int(lines["_measured"].sum()),
            **_span(counts),
            "rows_without_time": counts.get("unknown", 0),
            "catalog_items_derived": derived,
            "days_without_orders": closed,
        }
        summary["_first_orders"] = first_order_times(lines)
    elif kind == "catalog":
        items = to_raw_catalog(frame, mapping)
        replaced = [p.name for p in _catalogue_files(raw_root) if p.name.endswith(DERIVED_CATALOG_SUFFIX)]
        for stale in replaced:
            (raw_root / "catalog" / stale).unlink()
        _write_jsonl(items, raw_root / "catalog" / f"{name}.jsonl")
        summary |= {"items": int(len(items)), "derived_catalogs_replaced": replaced}
    elif kind == "customers":
        users = to_raw_customers(frame, mapping, first_orders)
        counts = write_partitioned(users, raw_root, "users", "export_date", name, rejects)
        summary |= {"customers": int(len(users)) - counts.get("unknown", 0), **_span(counts)}
        summary["customers_without_signup_time"] = counts.get("unknown", 0)
    else:
        promotions = to_raw_promotions(frame, mapping)
        counts = write_partitioned(promotions, raw_root, "promotions", "start_date", name, rejects, drop_by=False)
        summary |= {"promotions": int(len(promotions)) - counts.get("unknown", 0), **_span(counts)}
        summary["rows_without_start_date"] = counts.get("unknown", 0)
        if "announced_date" in mapping.fields:
            unreadable = promotions.get("_unreadable", pd.Series(dtype=bool))
            summary["announced_dates_unreadable"] = int(unreadable.sum())
    log.info("imported %s (%s): %s", name, kind, {k: v for k, v in summary.items() if not k.startswith("_")})
    return summary


def public(summary: dict) -> dict:
    """A summary without its private entries (what the command line prints)."""
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def run_import(source: str | Path, mapping: ImportMapping, raw_root: str | Path) -> dict:
    return public(import_frame(read_source(source, mapping), mapping, raw_root, str(source)))
