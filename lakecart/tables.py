"""Every table in the lake, declared once: name, keys, partitioning, owner, its Great Expectations
suite and the rows a validation run checks.

A table name is ``<layer>.<table>``; its location is ``<lake root>/lake/<layer>/<table>``. A
declaration *is* its name (``Table`` subclasses ``str``), so ``tables.SILVER_EVENTS`` works wherever a
name is expected and carries its declaration where one is needed (``tables.SILVER_EVENTS.keys``).
Feature views (``features.<view>_v<n>``) and their tiles (``tiles.<view>_v<n>``, the per-day partials
materialisation keeps) are declared by their ``FeatureView`` in ``features/`` and looked up here by
name too (:func:`declared`).

Suites are named by import path (``module:function``) and imported only when a validation runs, so
this module stays light: the CLI, delta-rs readers and tests import it without Spark or GX.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from lakecart.config import Settings, get_settings
from lakecart.storage import table_folders


class Table(str):
    """A declared lake table. Compares, hashes and formats as its name."""

    keys: tuple[str, ...]
    partition: str | None
    owner: str
    description: str
    suite: str | None
    validates: str | None

    def __new__(
        cls,
        name: str,
        *,
        keys: tuple[str, ...],
        description: str,
        partition: str | None = None,
        owner: str = "data-platform",
        suite: str | None = None,
        validates: str | None = None,
    ) -> Table:
        layer, _, table = name.partition(".")
        if not layer or not table or "." in table:
            raise ValueError(f"table names look like 'layer.table', got {name!r}")
        if (suite is None) != (validates is None):
            raise ValueError(f"{name}: a suite needs a description of the rows it validates, and vice versa")
        self = super().__new__(cls, name)
        self.keys, self.partition, self.owner = tuple(keys), partition, owner
        self.description, self.suite, self.validates = description, suite, validates
        return self

    @property
    def name(self) -> str:
        return str.__str__(self)

    @property
    def layer(self) -> str:
        return self.name.partition(".")[0]

    def path(self, settings: Settings | None = None) -> str:
        return table_path(self, settings)

    def expectations(self) -> list:
        """The table's suite: a fresh list of GX expectations (imports GX and the suite's module)."""
        if self.suite is None:
            raise LookupError(f"{self.name} declares no validation suite")
        module, function, *args = self.suite.split(":")
        build: Callable[..., list] = getattr(import_module(module), function)
        return build(*args)

    def __reduce__(self):  # pickles (Spark closures, multiprocessing) as a declaration, not a str
        return (_rebuild, (self.name,))


def _rebuild(name: str) -> Table:
    return declared(name)


_DECLARED: list[Table] = []


def _declare(name: str, **kwargs) -> Table:
    table = Table(name, **kwargs)
    _DECLARED.append(table)
    return table


_INGEST = "lakecart.jobs.ingest_suites"
_BRONZE_FILES = "one row per raw file landed for the run's days (bronze_file_profile)"
_STAGED_BATCH = "the staged batch, exactly (the rows of the batch ids the staging run recorded)"

# --- clickstream events: raw -> bronze -> staging (audit) -> silver ---------------------------------
BRONZE_EVENTS = _declare(
    "bronze.events",
    keys=("source_file",),
    partition="ingest_date",
    description="every raw clickstream record as text, with source_file, batch_id, ingested_at",
    suite=f"{_INGEST}:bronze_expectations",
    validates=_BRONZE_FILES,
)
INGEST_LEDGER = _declare(
    "bronze.ingest_ledger",
    keys=("source_file",),
    description="raw event files seen (path, size, mtime) and how far each got: bronze, staged, published",
)
STAGING_SILVER_EVENTS = _declare(
    "staging.silver_events",
    keys=("event_id",),
    description="the typed events batch under audit (write-audit-publish)",
    suite=f"{_INGEST}:silver_events_expectations",
    validates=_STAGED_BATCH,
)
QUARANTINE_EVENTS = _declare(
    "quarantine.events",
    keys=("source_file",),
    partition="ingest_date",
    description="every rejected clickstream record with its reject_reason",
)
SILVER_EVENTS = _declare(
    "silver.events",
    keys=("event_id",),
    partition="event_date",
    description="typed, de-duplicated, sessionised, validated clickstream events",
)
SILVER_ITEMS = _declare("silver.items", keys=("item_id",), description="the catalogue, one row per item")

# --- order lines ----------------------------------------------------------------------------------
BRONZE_ORDERS = _declare(
    "bronze.orders",
    keys=("source_file",),
    partition="ingest_date",
    description="every raw order-line record as text",
    suite=f"{_INGEST}:bronze_expectations",
    validates=_BRONZE_FILES,
)
ORDERS_LEDGER = _declare("bronze.orders_ledger", keys=("source_file",), description="raw order files seen")
STAGING_ORDER_LINES = _declare(
    "staging.order_lines",
    keys=("order_id", "item_id"),
    description="the typed order-lines batch under audit",
    suite=f"{_INGEST}:silver_order_lines_expectations",
    validates=_STAGED_BATCH,
)
QUARANTINE_ORDERS = _declare(
    "quarantine.order_lines",
    keys=("source_file",),
    partition="ingest_date",
    description="every rejected order line with its reject_reason",
)
SILVER_ORDER_LINES = _declare(
    "silver.order_lines",
    keys=("order_id", "item_id"),
    partition="order_date",
    description="typed, validated order lines with revenue",
)

# --- promotions (an item on display or in the mailer, per store or everywhere, over a date span) --
BRONZE_PROMOTIONS = _declare(
    "bronze.promotions",
    keys=("source_file",),
    partition="ingest_date",
    description="every raw promotion record as text",
    suite=f"{_INGEST}:bronze_expectations",
    validates=_BRONZE_FILES,
)
PROMOTIONS_LEDGER = _declare("bronze.promotions_ledger", keys=("source_file",), description="raw promotion files seen")
STAGING_PROMOTIONS = _declare(
    "staging.promotions",
    keys=("item_id", "store_id", "start_date"),
    description="the typed promotions batch under audit",
    suite=f"{_INGEST}:silver_promotions_expectations",
    validates=_STAGED_BATCH,
)
QUARANTINE_PROMOTIONS = _declare(
    "quarantine.promotions",
    keys=("source_file",),
    partition="ingest_date",
    description="every rejected promotion record with its reject_reason",
)
SILVER_PROMOTIONS = _declare(
    "silver.promotions",
    keys=("item_id", "store_id", "start_date"),
    partition="start_date",
    description="item promotions (display, mailer, price cut) per store, store_id null = every store; "
    "end_date inclusive",
)

# --- users ----------------------------------------------------------------------------------------
BRONZE_USERS = _declare(
    "bronze.users",
    keys=("source_file",),
    partition="ingest_date",
    description="every raw user-export record as text",
    suite=f"{_INGEST}:bronze_expectations",
    validates=_BRONZE_FILES,
)
USERS_LEDGER = _declare("bronze.users_ledger", keys=("source_file",), description="raw user-export files seen")
STAGING_USERS = _declare(
    "staging.users",
    keys=("user_id",),
    description="the typed users batch under audit",
    suite=f"{_INGEST}:silver_users_expectations",
    validates=_STAGED_BATCH,
)
QUARANTINE_USERS = _declare(
    "quarantine.users",
    keys=("source_file",),
    partition="ingest_date",
    description="every rejected user record with its reject_reason",
)
SILVER_USERS = _declare("silver.users", keys=("user_id",), description="one row per user, newest export wins")

# --- training sets --------------------------------------------------------------------------------
_TRAINING_SUITE = "lakecart.jobs.training_set:training_set_expectations"  # (kind)
_TRAINING_ROWS = "the training set built for the run's date (its dataset_id)"


def _training(kind: str, keys: tuple[str, ...], description: str) -> Table:
    return _declare(
        f"training.{kind}",
        keys=keys,
        partition="dataset_id",
        owner="ml-platform",
        description=description,
        suite=f"{_TRAINING_SUITE}:{kind}",
        validates=_TRAINING_ROWS,
    )


TRAINING_RETRIEVAL = _training("retrieval", ("dataset_id", "event_id"), "interactions with features as of each")
TRAINING_CHURN = _training("churn", ("dataset_id", "user_id", "observation_date"), "churn labels with features")
TRAINING_DEMAND = _training("demand", ("dataset_id", "item_id", "observation_date"), "item demand labels")
TRAINING_CATEGORY_DEMAND = _training(
    "category_demand", ("dataset_id", "category", "observation_date"), "category demand labels"
)
TRAINING_SETS: dict[str, Table] = {
    t.name.partition(".")[2]: t for t in (TRAINING_RETRIEVAL, TRAINING_CHURN, TRAINING_DEMAND, TRAINING_CATEGORY_DEMAND)
}


def training_set(kind: str) -> Table:
    """The declared table of the training sets of ``kind`` (retrieval, churn, demand, category_demand)."""
    if kind not in TRAINING_SETS:
        raise LookupError(f"no training-set table for kind {kind!r}; kinds: {', '.join(TRAINING_SETS)}")
    return TRAINING_SETS[kind]


TRAINING_MANIFESTS = _declare(
    "training.manifests",
    keys=("dataset_id",),
    owner="ml-platform",
    description="one manifest per training set: parameters, input Delta versions, view fingerprints, code version",
)

# --- model outputs (gold): each row carries model_version and created_at -------------------------
_GOLD = {"owner": "ml-platform"}
USER_EMBEDDINGS = _declare(
    "gold.user_embeddings", keys=("model_version", "user_id"), description="query-tower vectors", **_GOLD
)
ITEM_EMBEDDINGS = _declare(
    "gold.item_embeddings", keys=("model_version", "item_id"), description="candidate-tower vectors", **_GOLD
)
RECOMMENDATIONS = _declare(
    "gold.recommendations", keys=("model_version", "user_id", "rank"), description="retrieval top-k", **_GOLD
)
CROSS_CATEGORY_RECOMMENDATIONS = _declare(
    "gold.cross_category_recommendations",
    keys=("model_version", "user_id", "rank"),
    description="top-k from categories the user has not bought from",
    **_GOLD,
)
RANKED_RECOMMENDATIONS = _declare(
    "gold.ranked_recommendations",
    keys=("model_version", "user_id", "rank"),
    description="the published retrieval model's candidates re-ranked: the final top-k",
    **_GOLD,
)
CHURN_SCORES = _declare(
    "gold.churn_scores", keys=("model_version", "user_id"), description="probability of churn per user", **_GOLD
)
DEMAND_FORECASTS = _declare(
    "gold.demand_forecasts",
    keys=("model_version", "level", "series_id", "forecast_origin", "horizon_days"),
    description="units forecast per item or category and horizon",
    **_GOLD,
)
USER_SEGMENTS = _declare(
    "gold.user_segments",
    keys=("model_version", "user_id"),
    description="each customer's segment (k-means over RFM and embeddings) and distance to its centroid",
    **_GOLD,
)
SEGMENT_PROFILES = _declare(
    "gold.segment_profiles",
    keys=("model_version", "segment"),
    description="per segment: size, recency, frequency, spend, churn risk, top and distinctive categories, "
    "common attributes",
    **_GOLD,
)
MODEL_REGISTRY = _declare(
    "gold.model_registry",
    keys=("model_version",),
    description="one row per evaluated model: status, metrics, baselines, the gate's reason, lineage",
    **_GOLD,
)

# --- metadata -------------------------------------------------------------------------------------
FEATURE_REGISTRY = _declare(
    "meta.feature_registry", keys=("table",), description="applied feature-view definitions and fingerprints"
)
FEATURE_MATERIALIZATIONS = _declare(
    "meta.feature_materializations",
    keys=("view", "feature_date"),
    description="what each materialised view day was computed from",
)
FEATURE_TILES = _declare(
    "meta.feature_tiles",
    keys=("view", "day"),
    description="what each tile (a view's partials of one source day) was computed from",
)
VALIDATION_RUNS = _declare(
    "meta.validation_runs",
    keys=("table", "batch"),
    description="every gate verdict: table, the batch it validated, success, failures, code version",
)
TASK_FAILURES = _declare(
    "meta.task_failures",
    keys=("dag_id", "task_id", "run_id", "map_index", "try_number"),
    description="every failed Airflow task try: dag, task, try, logical date and the reason (lakecart runlog)",
)
JOB_RUNS = _declare(
    "meta.job_runs",
    keys=("run_id",),
    description="every job run: job, logical date, input and output Delta versions, rows, seconds, status, code "
    "version (lakecart/runs.py; `lakecart status`)",
)

DECLARED: dict[str, Table] = {t.name: t for t in _DECLARED}
if len(DECLARED) != len(_DECLARED):  # pragma: no cover - a programming error in this file
    raise RuntimeError("a table is declared twice in lakecart/tables.py")


def declared(name: str) -> Table:
    """The declaration of ``name``: a table above, or a feature view's table from ``features/``."""
    if name in DECLARED:
        return DECLARED[name]
    if name.startswith("features."):
        from lakecart.features import REGISTRY  # features/ imports pyspark: only when a view is asked for

        view = REGISTRY.get(name.removeprefix("features."))
        if view is not None:
            return view_table(view)
    if name.startswith("tiles."):
        from lakecart.features import REGISTRY

        view = REGISTRY.get(name.removeprefix("tiles."))
        if view is not None and view.tiles is not None:
            return tile_table(view)
    raise LookupError(f"{name!r} is not a declared table; declared: {', '.join(sorted(DECLARED))}, features.*, tiles.*")


def view_table(view) -> Table:
    """The declaration of a feature view's table (keys, ``feature_date`` partitions, the views' suite)."""
    return Table(
        view.qualified_name,
        keys=(*view.entity.keys, "feature_date"),
        partition="feature_date",
        owner=view.owner,
        description=view.description,
        suite=f"lakecart.tables:view_suite:{view.table_name}",
        validates="the view's rows for the run's feature dates",
    )


def tile_table(view) -> Table:
    """The declaration of a view's tiles: its partials, one partition per source day (``Tiles``).
    An internal table, not validated: the view's rows built from it are."""
    return Table(
        view.tile_table,
        keys=(*view.entity.keys, view.tiles.day),
        partition=view.tiles.day,
        owner=view.owner,
        description=f"per-day partials of {view.qualified_name}, combined into its windows",
    )


def view_suite(view_table_name: str) -> list:
    """The suite of a feature view's table (every view gets the same checks of its declaration)."""
    from lakecart.features import REGISTRY
    from lakecart.features.definitions import view_expectations

    return view_expectations(REGISTRY[view_table_name])


# The run recorders listening (lakecart/runs.py): each collects the names of the tables a job locates.
TOUCHED: list[set[str]] = []


def table_path(name: str, settings: Settings | None = None) -> str:
    layer, _, table = str(name).partition(".")
    if not layer or not table:
        raise ValueError(f"table names look like 'layer.table', got {name!r}")
    for touched in TOUCHED:
        touched.add(f"{layer}.{table}")
    return f"{lake_tables_root(settings)}/{layer}/{table}"


def lake_tables_root(settings: Settings | None = None) -> str:
    """The tables' root as an absolute location: a relative local root is resolved against the working
    directory, so Spark's catalogue (which would resolve it against its warehouse) and delta-rs agree."""
    root = (settings or get_settings()).lake.tables
    if "://" in root or root.startswith("/"):
        return root
    return str(Path(root).resolve())


def register_tables(spark, settings: Settings | None = None) -> list[str]:
    """Make the lake's tables queryable by name (``SELECT ... FROM features.user_activity_v2``): one
    database per layer, each table an external Delta table at its location. Metadata only; tables
    already registered are left alone. The lake is listed where it is, on disk or in a bucket (a folder
    whose ``_delta_log`` holds no commit yet is skipped); a shared metastore can register an
    object-store lake's tables once instead (see README, "Querying the lake")."""
    registered = []
    for folder in table_folders(lake_tables_root(settings)):
        if not folder.committed:
            continue  # a first commit that never finished: not a table (``lakecart tables`` reports it)
        table_dir, layer, name = folder.uri, folder.layer, folder.name
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
        if _registered_location(spark, layer, name) not in (None, f"file:{table_dir}", str(table_dir)):
            # Registered earlier in this session for another lake root: point the name here. The
            # table is external, so dropping it removes the catalogue entry, never data.
            spark.sql(f"DROP TABLE `{layer}`.`{name}`")
        spark.sql(f"CREATE TABLE IF NOT EXISTS `{layer}`.`{name}` USING DELTA LOCATION '{table_dir}'")
        registered.append(f"{layer}.{name}")
    return registered


def _registered_location(spark, layer: str, name: str) -> str | None:
    """Where the session's catalogue says ``layer.name`` lives; None when it is not registered."""
    if not spark.catalog.tableExists(f"`{layer}`.`{name}`"):
        return None
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED `{layer}`.`{name}`").where("col_name = 'Location'").collect()
    return rows[0]["data_type"].rstrip("/") if rows else None
