"""The building blocks: ``Entity``, ``Feature`` and ``FeatureView``.

A view's table is ``features.<name>_v<version>``, partitioned by ``feature_date``. Each row says
what the features were at the end of ``feature_date`` (event time) and carries ``available_at``,
the moment the row could be known (the day closes, then the daily job runs), so that training-set
joins can refuse values from the future.
"""

from __future__ import annotations

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


def view_expectations(view: FeatureView) -> list:
    """The suite every feature view gets: keys present and unique per day, counts never negative."""
    import great_expectations.expectations as gxe

    keys = list(view.entity.keys)
    suite = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=k) for k in keys],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[*keys, FEATURE_DATE]),
        gxe.ExpectColumnValuesToNotBeNull(column=AVAILABLE_AT),
    ]
    suite += [
        gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=0)
        for f in view.features
        if f.dtype in ("bigint", "int", "double")
    ]
    return suite
