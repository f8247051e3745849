"""Names and locations of every table in the lake, in one place.

A table name is ``<layer>.<table>``; its location is ``<lake root>/lake/<layer>/<table>``.
"""

from __future__ import annotations

from lakecart.config import Settings, get_settings

BRONZE_EVENTS = "bronze.events"
INGEST_LEDGER = "bronze.ingest_ledger"
STAGING_SILVER_EVENTS = "staging.silver_events"
QUARANTINE_EVENTS = "quarantine.events"
SILVER_EVENTS = "silver.events"
SILVER_ITEMS = "silver.items"
BRONZE_ORDERS = "bronze.orders"
ORDERS_LEDGER = "bronze.orders_ledger"
STAGING_ORDER_LINES = "staging.order_lines"
QUARANTINE_ORDERS = "quarantine.order_lines"
SILVER_ORDER_LINES = "silver.order_lines"
BRONZE_USERS = "bronze.users"
USERS_LEDGER = "bronze.users_ledger"
STAGING_USERS = "staging.users"
QUARANTINE_USERS = "quarantine.users"
SILVER_USERS = "silver.users"
TRAINING_RETRIEVAL = "training.retrieval"
TRAINING_MANIFESTS = "training.manifests"
USER_EMBEDDINGS = "gold.user_embeddings"
ITEM_EMBEDDINGS = "gold.item_embeddings"
RECOMMENDATIONS = "gold.recommendations"
CROSS_CATEGORY_RECOMMENDATIONS = "gold.cross_category_recommendations"
RANKED_RECOMMENDATIONS = "gold.ranked_recommendations"
CHURN_SCORES = "gold.churn_scores"
DEMAND_FORECASTS = "gold.demand_forecasts"
MODEL_REGISTRY = "gold.model_registry"
FEATURE_REGISTRY = "meta.feature_registry"
FEATURE_MATERIALIZATIONS = "meta.feature_materializations"


def table_path(name: str, settings: Settings | None = None) -> str:
    layer, _, table = name.partition(".")
    if not layer or not table:
        raise ValueError(f"table names look like 'layer.table', got {name!r}")
    return f"{(settings or get_settings()).lake.tables}/{layer}/{table}"


def register_tables(spark, settings: Settings | None = None) -> list[str]:
    """Make the lake's tables queryable by name (``SELECT ... FROM features.user_activity_v2``): one
    database per layer, each table an external Delta table at its location. Metadata only; tables
    already registered are left alone. A local lake is listed from disk; an object-store lake
    registers its tables once in a shared metastore instead (see README, "Querying the lake")."""
    from pathlib import Path

    root = Path((settings or get_settings()).lake.tables)
    if not root.is_dir():
        return []
    registered = []
    for log_dir in sorted(root.glob("*/*/_delta_log")):
        table_dir = log_dir.parent
        layer, name = table_dir.parent.name, table_dir.name
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
        spark.sql(f"CREATE TABLE IF NOT EXISTS `{layer}`.`{name}` USING DELTA LOCATION '{table_dir}'")
        registered.append(f"{layer}.{name}")
    return registered
