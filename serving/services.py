"""Feature services: named lists of feature views served together, declared once.

A service's views share one entity key; materialisation writes one pre-assembled row per entity
(every feature of every view, named as the point-in-time join names them, plus each view's feature
time for the TTL rule), so a lookup reads one value per entity however many views the service has.
The views are the *current* version of each (the highest ``version`` declared in ``features/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from lakecart.errors import ConfigError, UsageError
from lakecart.features import REGISTRY, FeatureView
from lakecart.features.pit import feature_column, feature_time_column


@dataclass(frozen=True)
class FeatureService:
    name: str
    views: tuple[FeatureView, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.views:
            raise ConfigError(f"feature service {self.name!r} has no views")
        keys = {view.entity.keys for view in self.views}
        if len(keys) != 1:
            listed = ", ".join(f"{v.table_name} {v.entity.keys}" for v in self.views)
            raise ConfigError(f"feature service {self.name!r}: its views must share one entity key, got {listed}")
        names = [view.table_name for view in self.views]
        if len(set(names)) != len(names):
            raise ConfigError(f"feature service {self.name!r} lists a view twice: {', '.join(names)}")

    @property
    def keys(self) -> tuple[str, ...]:
        """The entity key columns every view of the service shares (``("user_id",)``)."""
        return self.views[0].entity.keys

    @property
    def namespace(self) -> str:
        """The online store namespace of its rows: ``features:<name>``."""
        return f"features:{self.name}"

    def feature_columns(self) -> list[str]:
        """Every feature, as ``<view table>__<feature>`` (``features.pit.feature_column``), in view order."""
        return [feature_column(view, f) for view in self.views for f in view.feature_names()]

    def time_columns(self) -> list[str]:
        """Per view, the ``available_at`` of the row served (``features.pit.feature_time_column``)."""
        return [feature_time_column(view) for view in self.views]

    @cached_property
    def layout(self) -> tuple[tuple[str, tuple[str, ...], int], ...]:
        """Per view: its time column, its feature columns and its TTL in microseconds (the read path's
        plan, computed once)."""
        return tuple(
            (
                feature_time_column(view),
                tuple(feature_column(view, f) for f in view.feature_names()),
                view.ttl // timedelta(microseconds=1),
            )
            for view in self.views
        )


def current_view(name: str) -> FeatureView:
    """The highest declared version of the view called ``name`` (``user_activity`` -> ``user_activity_v2``)."""
    versions = [view for view in REGISTRY.values() if view.name == name]
    if not versions:
        raise ConfigError(f"no feature view called {name!r} is declared in features/")
    return max(versions, key=lambda view: view.version)


SERVICES: dict[str, FeatureService] = {
    service.name: service
    for service in (
        FeatureService(
            "user",
            (current_view("user_activity"), current_view("user_sequences"), current_view("customer_orders")),
            "a shopper: clickstream activity, recent items and categories, order history",
        ),
        FeatureService(
            "item",
            (
                current_view("item_popularity"),
                current_view("item_demand"),
                current_view("item_sales"),
                current_view("item_promotions"),
            ),
            "a product: views, carts, sales, demand lags and promotions",
        ),
        # The views the ranking model learnt from (training.retrieval joins them; training/tasks/ranking.py
        # USER_VIEW, ITEM_VIEW): `POST /rerank` reads its features from these, the versions it was
        # trained on, not the current ones (a test keeps the two lists equal).
        FeatureService("ranking_user", (REGISTRY["user_activity_v1"],), "what the ranking model knows of a shopper"),
        FeatureService("ranking_item", (REGISTRY["item_popularity_v1"],), "what the ranking model knows of an item"),
    )
}


def service(name: str) -> FeatureService:
    """The declared service ``name``; a ``UsageError`` naming the known ones otherwise."""
    try:
        return SERVICES[name]
    except KeyError:
        raise UsageError(f"unknown feature service {name!r}; known: {', '.join(sorted(SERVICES))}") from None
