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
MODEL_REGISTRY = "gold.model_registry"


def table_path(name: str, settings: Settings | None = None) -> str:
    layer, _, table = name.partition(".")
    if not layer or not table:
        raise ValueError(f"table names look like 'layer.table', got {name!r}")
    return f"{(settings or get_settings()).lake.tables}/{layer}/{table}"
