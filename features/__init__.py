"""Feature definitions: entities and versioned feature views, declared as code.

``REGISTRY`` lists every view the platform materialises; jobs and training look views up here. Each
view reads one silver table (``FeatureView.source``): clickstream events, order lines or promotions.
``lakecart features plan`` compares it with what was applied to the lake; ``apply`` records it.
"""

from lakecart.features.definitions import Entity, Feature, FeatureView
from lakecart.features.item import (
    CATEGORY,
    ITEM,
    category_demand_v2,
    item_demand_v2,
    item_popularity_v1,
    item_popularity_v2,
)
from lakecart.features.orders import (
    USER_ITEM,
    category_sales_v1,
    customer_category_share_v1,
    customer_item_repeat_v1,
    customer_orders_v1,
    item_promotions_v2,
    item_sales_v1,
)
from lakecart.features.session import SESSION, session_summary_v1
from lakecart.features.user import (
    USER,
    USER_CATEGORY,
    user_activity_v1,
    user_activity_v2,
    user_category_affinity_v1,
    user_sequences_v1,
)

VIEWS = (
    user_activity_v1,
    user_activity_v2,
    user_sequences_v1,
    user_category_affinity_v1,
    item_popularity_v1,
    item_popularity_v2,
    item_demand_v2,
    category_demand_v2,
    session_summary_v1,
    # From order lines and promotions (``FeatureView.source``), for shops that send orders, not clicks.
    customer_orders_v1,
    customer_item_repeat_v1,
    customer_category_share_v1,
    item_sales_v1,
    category_sales_v1,
    item_promotions_v2,
)
REGISTRY: dict[str, FeatureView] = {view.table_name: view for view in VIEWS}
ENTITIES = (USER, ITEM, CATEGORY, USER_CATEGORY, SESSION, USER_ITEM)

__all__ = ["Entity", "Feature", "FeatureView", "REGISTRY", "VIEWS", "ENTITIES", "USER", "ITEM", "CATEGORY"]
