"""Names the DAGs and the pipeline code must agree on, declared once.

This module imports nothing beyond the standard library, so the Airflow environment (which has no
Spark, TensorFlow or pandas) imports it too: both environments install the ``lakecart`` package
(the Airflow one without dependencies). ``tests/dags`` checks that the DAGs wire these names and
``tests/test_contracts.py`` that the pipeline code agrees with them.
"""

from __future__ import annotations

# `lakecart evaluate` exits with this code when the gate holds the candidate back. Airflow's
# BashOperator marks the task skipped (``skip_on_exit_code``), so publishing is skipped, not failed.
GATE_HOLD_EXIT = 99
# `lakecart train` exits with this code, before starting any worker, when the training set cannot
# teach the model by design (ranking on a shop without product views: an order export). The training
# DAG marks the task skipped, and the model's gate and publish with it; the other models go on.
CANNOT_TRAIN_EXIT = 98

# Files a training set is stored as (`lakecart dataset build --shards`), so Horovod workers read
# disjoint shards; the manifest records the number a set was built with.
TRAINING_SET_SHARDS = 4

# `lakecart materialize --history`: "all" computes every view for every day of a backfill, "training"
# the earlier days only for the views a training set joins (the backfill DAG's choice).
FEATURE_HISTORY = ("all", "training")

# Airflow Asset URIs: what a task emits when the table behind it was updated and validated.
SILVER_EVENTS_ASSET = "lakecart://silver/events"
SILVER_ORDER_LINES_ASSET = "lakecart://silver/order_lines"
SILVER_USERS_ASSET = "lakecart://silver/users"
SILVER_PROMOTIONS_ASSET = "lakecart://silver/promotions"
# Every view of the user side (user, user x category, session) and of the item side (item, category).
USER_FEATURES_ASSET = "lakecart://features/user"
ITEM_FEATURES_ASSET = "lakecart://features/item"

# model -> the training-set kind it learns from (``lakecart dataset build <kind>``), in the order the
# training DAG builds them. Ranking learns from the retrieval set and re-ranks the *published*
# retrieval model's candidates.
MODEL_TRAINING_SETS: dict[str, str] = {
    "retrieval": "retrieval",
    "ranking": "retrieval",
    "churn": "churn",
    "demand": "demand",
    "category_demand": "category_demand",
}

# model -> the asset its publish task emits (downstream teams can schedule on these).
MODEL_OUTPUT_ASSETS: dict[str, str] = {
    "retrieval": "lakecart://gold/recommendations",
    "ranking": "lakecart://gold/ranked_recommendations",
    "churn": "lakecart://gold/churn_scores",
    "demand": "lakecart://gold/demand_forecasts/item",
    "category_demand": "lakecart://gold/demand_forecasts/category",
}

# model -> the models whose *published* output it consumes (publish order in the DAG).
MODEL_UPSTREAM: dict[str, tuple[str, ...]] = {"ranking": ("retrieval",)}
