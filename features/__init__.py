"""Feature definitions: entities and versioned feature views, declared as code.

``REGISTRY`` lists every view the platform materialises; jobs and training look views up here.
"""

from lakecart.features.definitions import Entity, Feature, FeatureView
from lakecart.features.item import ITEM, item_popularity_v1
from lakecart.features.user import USER, user_activity_v1

REGISTRY: dict[str, FeatureView] = {view.table_name: view for view in (user_activity_v1, item_popularity_v1)}

__all__ = ["Entity", "Feature", "FeatureView", "REGISTRY", "USER", "ITEM"]
