"""Bring an existing interaction or order export into the raw zone, without writing code.

A small YAML mapping (or CLI flags) says which source column feeds which contract field; everything
unmapped is kept and lands in ``silver.events.extra``. Output: JSON lines under
``raw/events/event_date=D/<name>.jsonl`` (deterministic file names, so re-importing replaces a file
and the ingest ledger re-ingests just that file), then the normal pipeline takes over.

Example mapping (``infra/importers/*.yaml`` holds the presets' mappings)::

    name: my-shop
    format: csv            # csv | tsv | parquet | jsonl
    fields:
      user_id: customer
      item_id: sku
      event_time: ordered_at
      quantity: qty
      price: unit_price
      category: department
      event_type: {constant: purchase}
    time_format: iso       # iso | unix | a strftime pattern such as "%d/%m/%Y %H:%M"
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lakecart.jobs.ingest import EVENT_TYPES, RAW_EVENT_FIELDS

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "parquet", "jsonl")


@dataclass(frozen=True)
class ImportMapping:
    name: str
    fields: dict[str, str | dict]
    format: str = "csv"
    time_format: str = "iso"
    read_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        unknown = set(self.fields) - set(RAW_EVENT_FIELDS)
        if unknown:
            raise ValueError(f"mapping names fields the contract does not have: {sorted(unknown)}")
        missing = {"user_id", "item_id", "event_time"} - set(self.fields)
        if missing:
            raise ValueError(f"mapping must give {sorted(missing)}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ImportMapping:
        return cls(**yaml.safe_load(Path(path).read_text()))


def read_source(path: str | Path, mapping: ImportMapping) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"import source not found: {path}")
    options = dict(mapping.read_options)
    if mapping.format in ("csv", "tsv"):
        return pd.read_csv(path, sep="\t" if mapping.format == "tsv" else options.pop("sep", ","), **options)
    if mapping.format == "parquet":
        return pd.read_parquet(path, **options)
    return pd.read_json(path, lines=True, **options)


def _times(values: pd.Series, time_format: str) -> pd.Series:
    if time_format == "unix":
        return pd.to_datetime(pd.to_numeric(values, errors="coerce"), unit="s", utc=True)
    if time_format == "iso":
        return pd.to_datetime(values, utc=True, errors="coerce")
    return pd.to_datetime(values, format=time_format, utc=True, errors="coerce")


def to_raw_events(source: pd.DataFrame, mapping: ImportMapping) -> pd.DataFrame:
    """Pure: the source rows as contract-shaped records (+ unmapped columns), with ``event_date``."""
    out = pd.DataFrame(index=source.index)
    used = set()
    for target, spec in mapping.fields.items():
        if isinstance(spec, dict):
            out[target] = spec["constant"]
        else:
            if spec not in source.columns:
                raise KeyError(f"mapping {target} <- {spec!r}: no such column (have {list(source.columns)})")
            out[target] = source[spec]
            used.add(spec)
    times = _times(out["event_time"], mapping.time_format)
    out["event_time"] = times.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    out["event_date"] = times.dt.strftime("%Y-%m-%d")
    for column in ("user_id", "item_id", "session_id"):
        if column in out:
            out[column] = out[column].astype("string")
    if "event_type" not in out:
        out["event_type"] = EVENT_TYPES[-1]
    if "event_id" not in out:
        # Deterministic: the same export always yields the same ids, so re-imports de-duplicate.
        keys = source.astype(str).agg("|".join, axis=1) + "|" + source.index.astype(str)
        out["event_id"] = [hashlib.sha1(f"{mapping.name}|{k}".encode()).hexdigest() for k in keys]
    for extra in source.columns:
        if extra not in used and extra not in out.columns:
            out[extra] = source[extra]
    return out


def _json_lines(rows: pd.DataFrame) -> str:
    records = rows.drop(columns=["event_date"]).replace({np.nan: None}).to_dict("records")
    return "\n".join(json.dumps({k: v for k, v in r.items() if v is not None}, default=str) for r in records) + "\n"


def write_raw(events: pd.DataFrame, raw_root: str | Path, name: str) -> dict[str, int]:
    """One JSON-lines file per event date, named after the import. Rows whose time cannot be read
    have no partition to go to: they are kept in ``raw/import_rejects/<name>.jsonl``, counted as
    ``unknown``, never dropped."""
    counts = {}
    undated = events["event_date"].isna()
    for day, rows in events[~undated].groupby("event_date", sort=True):
        folder = Path(raw_root) / "events" / f"event_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jsonl").write_text(_json_lines(rows))
        counts[day] = len(rows)
    if undated.any():
        rejects = Path(raw_root) / "import_rejects"
        rejects.mkdir(parents=True, exist_ok=True)
        (rejects / f"{name}.jsonl").write_text(_json_lines(events[undated]))
        counts["unknown"] = int(undated.sum())
    return counts


def run_import(source: str | Path, mapping: ImportMapping, raw_root: str | Path) -> dict:
    frame = read_source(source, mapping)
    counts = write_raw(to_raw_events(frame, mapping), raw_root, mapping.name)
    dated = sorted(d for d in counts if d != "unknown")
    summary = {
        "source": str(source),
        "rows": int(len(frame)),
        "days": len(dated),
        "first_date": dated[0] if dated else None,
        "last_date": dated[-1] if dated else None,
        "rows_without_time": counts.get("unknown", 0),
    }
    log.info("imported %s: %s", mapping.name, summary)
    return summary
