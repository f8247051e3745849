"""The building blocks: ``Entity``, ``Feature`` and ``FeatureView``.

A view's table is ``features.<name>_v<version>``, partitioned by ``feature_date``. Each row says
what the features were at the end of ``feature_date`` (event time) and carries ``available_at``,
the moment the row could be known (the day closes, then the daily job runs), so that training-set
joins can refuse values from the future.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import DataFrame

FEATURE_DATE = "feature_date"
AVAILABLE_AT = "available_at"


@dataclass(frozen=True)
class Entity:
    name: str
    keys: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # a Spark SQL type name
    description: str
    # The suite's lower bound for numeric features (counts, rates, prices); None: no bound.
    min_value: float | None = 0.0


# transform(silver_events, start, end) -> one row per key and feature_date in [start, end]
Transform = Callable[[DataFrame, date, date], DataFrame]


@dataclass(frozen=True)
class FeatureView:
    name: str
    version: int
    entity: Entity
    features: tuple[Feature, ...]
    transform: Transform
    ttl: timedelta
    owner: str
    description: str
    source: str = "silver.events"
    # How many days of source history one output day needs (the longest window).
    lookback_days: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def table_name(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def qualified_name(self) -> str:
        return f"features.{self.table_name}"

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.entity.keys, FEATURE_DATE, AVAILABLE_AT, *(f.name for f in self.features))

    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def schema(self) -> str:
        """The table's schema as a Spark DDL string (keys are strings)."""
        columns = [f"{k} string" for k in self.entity.keys] + [f"{FEATURE_DATE} date", f"{AVAILABLE_AT} timestamp"]
        return ", ".join(columns + [f"{f.name} {f.dtype}" for f in self.features])

    def definition(self) -> dict:
        """What the registry records: everything that defines the view's table and its values."""
        return {
            "name": self.name,
            "version": self.version,
            "table": self.qualified_name,
            "entity": self.entity.name,
            "keys": list(self.entity.keys),
            "schema": self.schema,
            "ttl_seconds": int(self.ttl.total_seconds()),
            "source": self.source,
            "lookback_days": self.lookback_days,
            "owner": self.owner,
            "description": self.description,
            "transform": f"{self.transform.__module__}.{self.transform.__qualname__}",
        }

    def fingerprint(self) -> str:
        """Changes when the schema, keys, time-to-live, lookback or the transform's code change
        (ownership and descriptions are metadata: editing them is not a new version)."""
        definition = self.definition()
        logic = {k: v for k, v in definition.items() if k not in ("owner", "description")}
        try:
            logic["code"] = inspect.getsource(self.transform)
        except (OSError, TypeError):  # defined interactively: fall back to the compiled code
            logic["code"] = self.transform.__code__.co_code.hex()
        return hashlib.sha256(json.dumps(logic, sort_keys=True).encode()).hexdigest()[:16]


def view_expectations(view: FeatureView) -> list:
    """The suite every feature view gets: keys present and unique per day, numeric features at or above
    their lower bound (counts, rates and prices never negative)."""
    import great_expectations.expectations as gxe

    keys = list(view.entity.keys)
    suite = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=k) for k in keys],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[*keys, FEATURE_DATE]),
        gxe.ExpectColumnValuesToNotBeNull(column=AVAILABLE_AT),
    ]
    suite += [
        gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min_value)
        for f in view.features
        if f.dtype in ("bigint", "int", "double") and f.min_value is not None
    ]
    return suite
