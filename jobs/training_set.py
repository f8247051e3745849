"""Point-in-time correct training sets, written to Delta with a manifest that can rebuild them.

A *kind* of training set (retrieval, churn, demand, category_demand) is its labels plus the
feature views joined to them as of each label's time. ``run_training_set`` reads silver and every
view at their current Delta versions, records those versions (and those of the tables training
reads beside the set: the catalogue, ``silver.items``), the views' versions, fingerprints and code
digests, the code version (package and git commit) and the build parameters in
``training.manifests``, and writes the rows to ``training.<kind>`` under a ``dataset_id``.
``rebuild`` reads the same versions again (time travel), so it returns the same rows however much
data arrived since, and refuses, naming the view and the function, if a view's code changed.

``training_set_expectations`` is the gate a build must pass before training: keys, splits, no
feature row newer than its label or older than its time-to-live (leakage), every view covering
most label rows of each split, and (binary labels) both classes on each split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakecart import delta, lineage, tables
from lakecart.config import Settings
from lakecart.contracts import TRAINING_SET_SHARDS
from lakecart.errors import LakecartError, UnknownTrainingSet
from lakecart.features import (
    REGISTRY,
    FeatureView,
    category_demand_v2,
    customer_orders_v1,
    item_demand_v2,
    item_popularity_v1,
    item_popularity_v2,
    item_promotions_v2,
    user_activity_v1,
    user_activity_v2,
    user_sequences_v1,
)
from lakecart.features.definitions import legacy_fingerprints
from lakecart.features.pit import feature_column, feature_time_column, point_in_time_join
from lakecart.features.registry import changed_code, recorded_scheme
from lakecart.features.sources import interactions
from lakecart.jobs import labels as label_builders
from lakecart.jobs.feature_store import require_applied, view_path

log = logging.getLogger(__name__)

INTERACTIONS = ("product_view", "add_to_cart", "purchase")


@dataclass(frozen=True)
class BuildParams:
    end: date  # the logical date: data is complete through it
    days: int = 14  # retrieval: days of interactions; churn/demand: span of observation dates
    test_days: int = 2  # the newest days (of interactions or observations) held out
    horizon_days: int = 28  # churn: days without a purchase that count as churned
    every_days: int = 7  # churn/demand: days between observation dates
    horizons: tuple[int, ...] = label_builders.DEMAND_HORIZONS  # demand: days ahead forecast
    active_days: int = 90  # churn: customers are those with a purchase in this many days up to the observation

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", tuple(sorted(int(h) for h in self.horizons)))

    def to_json(self) -> dict:
        return {**self.__dict__, "end": self.end.isoformat(), "horizons": list(self.horizons)}

    @classmethod
    def from_json(cls, data: dict) -> BuildParams:
        # Manifests written before ``active_days`` existed used 90 (the default).
        return cls(**{**data, "end": date.fromisoformat(data["end"])})


def retrieval_labels(events: DataFrame, start: date, end: date, test_days: int) -> DataFrame:
    """Every interaction in ``[start, end]``; the last ``test_days`` days form the test split."""
    test_start = end - timedelta(days=test_days - 1)
    return events.where(
        F.col("event_date").between(F.lit(start), F.lit(end))
        & F.col("event_type").isin(*INTERACTIONS)
        & F.col("user_id").isNotNull()  # signed-out browsing cannot be tied to a user
    ).select(
        "event_id",
        "user_id",
        "item_id",
        "category",
        "event_type",
        "device",
        "event_time",
        "event_date",
        F.when(F.col("event_date") >= F.lit(test_start), "test").otherwise("train").alias("split"),
    )


def _retrieval(events: DataFrame, p: BuildParams) -> DataFrame:
    if p.test_days < 1 or p.days <= p.test_days:
        raise ValueError(f"need more days ({p.days}) than test_days ({p.test_days})")
    start = p.end - timedelta(days=p.days - 1)
    return retrieval_labels(events, start, p.end, p.test_days)


def _observations(p: BuildParams, horizon: int) -> tuple[list[date], list[date]]:
    """(training, held-out) observation dates: anchored at the cut (the newest date whose label window
    ends on the logical date), held-out ones within ``test_days`` of it, training ones at least one
    horizon before them (``labels.observation_plan``)."""
    return label_builders.observation_plan(p.end - timedelta(days=horizon), p.days, p.every_days, horizon, p.test_days)


def _with_split(frame: DataFrame, test: list[date]) -> DataFrame:
    return frame.withColumn("split", F.when(F.col("observation_date") >= F.lit(min(test)), "test").otherwise("train"))


def _churn(events: DataFrame, p: BuildParams) -> DataFrame:
    train, test = _observations(p, p.horizon_days)
    frame = label_builders.churn_labels(events, train + test, p.horizon_days, p.end, active_days=p.active_days)
    return _with_split(frame, test)


def _demand(key: str) -> Callable[[DataFrame, BuildParams], DataFrame]:
    def build(events: DataFrame, p: BuildParams) -> DataFrame:
        train, test = _observations(p, max(p.horizons))
        frame = label_builders.demand_labels(events, train + test, p.end, key, p.horizons)
        return _with_split(frame, test)

    return build


# The gate's floor: on each split, at least this share of label rows got a row from each view. The
# first days of a lake have no history (a retrieval set over the first 5 days measured 0.70 for
# user features on its train split); a view that was not materialised for the label days scores 0.
MIN_FEATURE_COVERAGE = 0.5


@dataclass(frozen=True, kw_only=True)
class DatasetKind:
    name: str
    labels: Callable[[DataFrame, BuildParams], DataFrame]  # (silver events, params) -> label rows with "split"
    label_time: str  # the labels' column features are joined as of
    views: tuple[FeatureView, ...]
    unique_key: tuple[str, ...]  # one row per these columns: the suite checks it
    # All rows of one entity go to one file. Training workers shard by file, and examples built from
    # a worker's rows (ranking's view -> purchase pairs) must see every row of that entity.
    shard_key: str
    # A binary label as a Spark SQL condition (true: the positive class): the gate wants both
    # classes on each split. None: the label is not binary.
    positive: str | None = None
    # A split of positives only passes: retrieval's purchases from a shop without a clickstream (its
    # "negatives", views that did not end in a purchase, are for ranking, which refuses such a set).
    all_positive_ok: bool = False
    # Tables training reads beside the set (the catalogue): their Delta versions are recorded in
    # the manifest, so a training run can read what the set was built against.
    pinned: tuple[str, ...] = ()
    min_feature_coverage: float = MIN_FEATURE_COVERAGE
    # Per view (table name), where its window is shorter than the labels' population's history.
    coverage_floors: dict[str, float] = field(default_factory=dict)

    @property
    def table(self) -> tables.Table:
        return tables.training_set(self.name)

    def coverage_floor(self, view: FeatureView) -> float:
        return self.coverage_floors.get(view.table_name, self.min_feature_coverage)

    def feature_columns(self) -> list[str]:
        """The joined feature columns, ``<view table>__<feature>``, named by the join's own function."""
        return [feature_column(v, f) for v in self.views for f in v.feature_names()]


KINDS: dict[str, DatasetKind] = {
    k.name: k
    for k in (
        DatasetKind(
            name="retrieval",
            labels=_retrieval,
            label_time="event_time",
            views=(user_activity_v1, user_sequences_v1, item_popularity_v1),
            unique_key=("event_id",),
            shard_key="user_id",
            positive="event_type = 'purchase'",  # ranking learns view -> purchase
            all_positive_ok=True,
            pinned=(tables.SILVER_ITEMS,),  # retrieval's candidates and ranking's categories
        ),
        DatasetKind(
            name="churn",
            labels=_churn,
            label_time=label_builders.LABEL_TIME,
            # customer_orders_v1: the order lines' rhythm, baskets, discounts and breadth over 180
            # days, for a shop that sends orders (its table is empty for a clickstream-only shop).
            views=(user_activity_v2, user_sequences_v1, customer_orders_v1),
            unique_key=("user_id", "observation_date"),
            shard_key="user_id",
            positive="churned = 1",
            # Customers bought within 90 days; the sequences look back 28: a customer who has not
            # visited since has none (150-day synthetic logs: 0.75 of customers have a row). A shop
            # without order lines has no customer_orders_v1 rows at all.
            coverage_floors={user_sequences_v1.table_name: 0.3, customer_orders_v1.table_name: 0.0},
        ),
        DatasetKind(
            name="demand",
            labels=_demand("item_id"),
            label_time=label_builders.LABEL_TIME,
            views=(item_demand_v2, item_popularity_v2, item_promotions_v2),
            unique_key=("item_id", "observation_date"),
            shard_key="item_id",
            # Promotions are known for the items a shop promotes (none, for a shop without them):
            # an item without a row has no promotion planned.
            coverage_floors={item_promotions_v2.table_name: 0.0},
        ),
        DatasetKind(
            name="category_demand",
            labels=_demand("category"),
            label_time=label_builders.LABEL_TIME,
            views=(category_demand_v2,),
            unique_key=("category", "observation_date"),
            shard_key="category",
        ),
    )
}


def dataset_id_for(end: date, kind: str = "retrieval") -> str:
    return f"{kind}_{end:%Y%m%d}"


def build_rows(kind: DatasetKind, events: DataFrame, views: dict[str, DataFrame], params: BuildParams) -> DataFrame:
    return point_in_time_join(
        kind.labels(events, params), kind.label_time, [(v, views[v.table_name]) for v in kind.views]
    )


# What labels are built from: the clickstream and/or the order lines (with the catalogue, for their
# categories), whichever the shop sends (``features.sources.interactions``).
SOURCES = (tables.SILVER_EVENTS, tables.SILVER_ORDER_LINES, tables.SILVER_ITEMS)


class NoLabelSource(LakecartError, ValueError):
    """Neither a clickstream nor order lines: there is nothing to build labels from."""


def _inputs(kind: DatasetKind, settings: Settings) -> dict[str, str]:
    return {
        **{name: tables.table_path(name, settings) for name in SOURCES},
        **{v.qualified_name: view_path(v, settings) for v in kind.views},
        **{name: tables.table_path(name, settings) for name in kind.pinned},
    }


def _build_at(spark: SparkSession, kind: DatasetKind, paths: dict, versions: dict, params: BuildParams) -> DataFrame:
    # Read exactly the versions recorded in the manifest, so a rebuild can reproduce the rows. A
    # source recorded as absent (None, or missing from an older manifest) stays absent.
    def read(name: str) -> DataFrame:
        return spark.read.format("delta").option("versionAsOf", versions[name]).load(paths[name])

    source = {name: read(name) if versions.get(name) is not None else None for name in SOURCES}
    events = interactions(source[tables.SILVER_EVENTS], source[tables.SILVER_ORDER_LINES], source[tables.SILVER_ITEMS])
    return build_rows(kind, events, {v.table_name: read(v.qualified_name) for v in kind.views}, params)


def _latest_inputs(spark: SparkSession, kind: DatasetKind, settings: Settings) -> tuple[dict, dict]:
    paths = _inputs(kind, settings)
    versions = {}
    for name, path in paths.items():
        if (name in kind.pinned or name in SOURCES) and not delta.table_exists(spark, path):
            if name in kind.pinned:
                # The build itself does not read it; training will fail on it, with its own message.
                log.warning("%s: %s has no table yet, so the manifest cannot pin its version", kind.table, name)
            versions[name] = None
        else:
            versions[name] = delta.latest_version(spark, path)
    if versions[tables.SILVER_EVENTS] is None and versions[tables.SILVER_ORDER_LINES] is None:
        raise NoLabelSource(
            f"neither {tables.SILVER_EVENTS} nor {tables.SILVER_ORDER_LINES} exists: ingest a clickstream or order "
            "lines first (`lakecart ingest publish` / `lakecart ingest orders`)"
        )
    return paths, versions


def view_lineage(kind: DatasetKind) -> dict[str, dict]:
    """What a manifest records of each view: version, fingerprint (and its scheme) and the code
    digests behind it, so that a rebuild can say which function changed."""
    return {
        v.qualified_name: {
            "version": v.version,
            "fingerprint": v.fingerprint(),
            "fingerprint_scheme": v.definition()["fingerprint_scheme"],
            "code": v.code_digests(),
        }
        for v in kind.views
    }


def recorded_views(kind: DatasetKind, recorded: dict[str, dict]) -> tuple[FeatureView, ...]:
    """The views a manifest's set was built from (``recorded``: its ``feature_views``), in the kind's
    order: a view the kind reads now but did not then (customer_orders_v1 joined churn later) is left
    out, so that the set is rebuilt as it was built."""
    views = [v for v in kind.views if v.qualified_name in recorded]
    known = {v.qualified_name for v in views}
    gone = [name for name in recorded if name not in known and name.removeprefix("features.") not in REGISTRY]
    if gone:
        raise NotRebuildable(f"{', '.join(gone)}: no longer declared in code, so the set cannot be rebuilt")
    return tuple(views + [REGISTRY[name.removeprefix("features.")] for name in recorded if name not in known])


def changed_views(kind: DatasetKind, recorded: dict[str, dict]) -> list[str]:
    """The views whose logic differs from what a manifest recorded (``recorded``: its
    ``feature_views``), each as ``<table> (<old> -> <new>; code changed: ...)``. A manifest of an
    older fingerprint scheme is compared with that scheme's fingerprint."""
    problems = []
    for view in recorded_views(kind, recorded):
        entry = recorded[view.qualified_name]
        if entry["fingerprint"] == view.fingerprint():
            continue
        if recorded_scheme(entry) == 1 and entry["fingerprint"] in legacy_fingerprints(view):
            continue
        if entry["fingerprint"] in view.refactored_from:  # the same rows, computed by refactored code
            continue
        problems.append(
            f"{view.qualified_name} ({entry['fingerprint']} -> {view.fingerprint()}{changed_code(entry, view)})"
        )
    return problems


def build_current(spark: SparkSession, settings: Settings, kind: str, params: BuildParams) -> DataFrame:
    """The rows a build would write now (inputs at their latest versions), without writing them."""
    return _build_at(spark, KINDS[kind], *_latest_inputs(spark, KINDS[kind], settings), params)


def content_hash(frame: DataFrame, exclude: tuple[str, ...] = ("dataset_id",)) -> str:
    """An order-independent hash of the rows (sum and xor of per-row 64-bit hashes, plus the count)."""
    columns = sorted(c for c in frame.columns if c not in exclude)
    row_hash = F.xxhash64(*[F.col(c) for c in columns])
    agg = frame.agg(F.count(F.lit(1)), F.sum(row_hash.cast("decimal(38,0)")), F.bit_xor(row_hash)).first()
    return hashlib.sha256(f"{','.join(columns)}|{agg[0]}|{agg[1]}|{agg[2]}".encode()).hexdigest()[:32]


def stored_layout(frame: DataFrame, kind: DatasetKind, shards: int) -> DataFrame:
    """The rows as a set is stored: ``shards`` files by ``kind.shard_key`` (an entity's rows in one
    file), each in one order, by a hash of the unique key. Workers read files and rows in stored
    order and a model version pins the rows' content, not their order: without this, the same set
    computed twice (other shuffle partitions, input files, a rebuild) trained on other batches with
    the same seed. The hash order also mixes entities within a file for the workers' windowed shuffle."""
    keys = [F.col(k) for k in kind.unique_key]
    return frame.repartition(shards, kind.shard_key).sortWithinPartitions(F.xxhash64(*keys), *keys)


def run_training_set(
    spark: SparkSession, settings: Settings, kind: str, params: BuildParams, shards: int = TRAINING_SET_SHARDS
) -> dict:
    """Build one training set of ``kind`` and record its manifest; returns the manifest."""
    dataset_kind = KINDS[kind]
    require_applied(settings, dataset_kind.views)
    paths, versions = _latest_inputs(spark, dataset_kind, settings)
    dataset_id = dataset_id_for(params.end, kind)
    frame = _build_at(spark, dataset_kind, paths, versions, params)
    frame = stored_layout(frame.withColumn("dataset_id", F.lit(dataset_id)), dataset_kind, shards)
    out_path = tables.table_path(dataset_kind.table, settings)
    delta.replace_partitions(frame, out_path, "dataset_id", [dataset_id])
    written = spark.read.format("delta").load(out_path).where(F.col("dataset_id") == dataset_id)
    counts = {r["split"]: r["count"] for r in written.groupBy("split").count().collect()}
    manifest = {
        "dataset_id": dataset_id,
        "kind": kind,
        "table": dataset_kind.table,
        "params": params.to_json(),
        "shards": shards,
        "rows": counts,
        "content_hash": content_hash(written),
        "feature_views": view_lineage(dataset_kind),
        "input_versions": versions,  # the label sources (None: absent), every view, the tables training reads
        "code_version": lineage.code_version(),
        "output_version": delta.latest_version(spark, out_path),
    }
    # Manifests live in the lake too (a Delta table), so they travel wherever the lake does.
    manifest_row = spark.createDataFrame([(dataset_id, json.dumps(manifest))], "dataset_id string, manifest string")
    delta.merge_by_key(manifest_row, tables.table_path(tables.TRAINING_MANIFESTS, settings), ["dataset_id"])
    log.info("training set %s: %s", dataset_id, counts)
    return manifest


class NotRebuildable(LakecartError, RuntimeError):
    """A view's code changed since the set was built: the rebuild could not be identical."""


def load_manifest(spark: SparkSession, settings: Settings, dataset_id: str) -> dict:
    path = tables.table_path(tables.TRAINING_MANIFESTS, settings)
    rows = (
        spark.read.format("delta").load(path).where(F.col("dataset_id") == dataset_id).collect()
        if delta.table_exists(spark, path)
        else []
    )
    if not rows:
        raise UnknownTrainingSet(
            f"no manifest for training set {dataset_id!r} in {tables.TRAINING_MANIFESTS}: "
            "build it with `lakecart dataset build <kind> --date D`"
        )
    return json.loads(rows[0]["manifest"])


def rebuild(spark: SparkSession, settings: Settings, dataset_id: str, write: bool = False) -> dict:
    """Recompute a training set from its manifest: the same inputs at the same Delta versions, the
    same parameters. Fails if a view's logic changed since (its fingerprint), since the rows would
    differ. ``write``: replace the stored rows with the rebuilt ones (e.g. after a vacuum lost them)."""
    manifest = load_manifest(spark, settings, dataset_id)
    kind = KINDS[manifest["kind"]]
    changed = changed_views(kind, manifest["feature_views"])
    if changed:
        raise NotRebuildable(
            f"{'; '.join(changed)}: changed since {dataset_id} was built, so the rebuild would not be identical "
            "(a view whose values change needs a new version)"
        )
    kind = replace(kind, views=recorded_views(kind, manifest["feature_views"]))
    frame = _build_at(
        spark, kind, _inputs(kind, settings), manifest["input_versions"], BuildParams.from_json(manifest["params"])
    ).withColumn("dataset_id", F.lit(dataset_id))
    if write:  # stored as the build stored it (manifests from before "shards" was recorded: the default)
        # Kept while it is hashed, so the write does not compute the set a second time.
        frame = stored_layout(frame, kind, manifest.get("shards", TRAINING_SET_SHARDS)).persist(
            StorageLevel.MEMORY_AND_DISK
        )
    try:
        rebuilt_hash = content_hash(frame)
        identical = rebuilt_hash == manifest["content_hash"]
        if write and identical:  # rows that differ never replace a pinned set: its models used the stored ones
            delta.replace_partitions(frame, tables.table_path(kind.table, settings), "dataset_id", [dataset_id])
    finally:
        if write:
            frame.unpersist()
    return {
        "dataset_id": dataset_id,
        "content_hash": rebuilt_hash,
        "recorded_hash": manifest["content_hash"],
        "identical": identical,
        "written": write and identical,
    }


def training_set_expectations(kind: str = "retrieval") -> list:
    """The gate of a training set of ``kind``: what a build must satisfy before anything trains on it.

    Beyond keys and splits: every joined feature row was known at or before its label time and
    within its view's time-to-live (the join's own rule, audited on the rows written, so a build
    that leaks fails here); on each split, each view covers at least its ``coverage_floor`` of the
    label rows; a binary label has both classes on each split (a set where every customer
    "churned" comes from broken features, not from customers).
    """
    import great_expectations.expectations as gxe

    dataset_kind = KINDS[kind]
    keys = list(dataset_kind.unique_key)
    suite = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (*keys, "split", dataset_kind.label_time)],
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train", "test"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=keys)
        if len(keys) > 1
        else gxe.ExpectColumnValuesToBeUnique(column=keys[0]),
    ]
    if kind == "retrieval":
        suite += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("user_id", "item_id")]
    label_time = dataset_kind.label_time
    for view in dataset_kind.views:
        known = feature_time_column(view)
        ttl_micros = int(view.ttl.total_seconds() * 1_000_000)
        floor = dataset_kind.coverage_floor(view)
        suite += [
            gxe.UnexpectedRowsExpectation(
                description=f"{known}: every feature row was known at or before {label_time} and within "
                f"{view.qualified_name}'s time-to-live ({view.ttl})",
                unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {known} > {label_time} "
                f"OR unix_micros({label_time}) - unix_micros({known}) >= {ttl_micros}",
            ),
            gxe.UnexpectedRowsExpectation(
                description=f"{known}: on each split at least {floor:.0%} of the "
                f"label rows got a row of {view.qualified_name}",
                unexpected_rows_query=f"SELECT split, count({known}) / count(*) AS coverage FROM {{batch}} "
                f"GROUP BY split HAVING count({known}) < {floor} * count(*)",
            ),
        ]
    if dataset_kind.positive is not None:
        rate = f"avg(CASE WHEN {dataset_kind.positive} THEN 1.0 ELSE 0.0 END)"
        wanted = "positives" if dataset_kind.all_positive_ok else "both classes"
        suite.append(
            gxe.UnexpectedRowsExpectation(
                description=f"{wanted} of the label ({dataset_kind.positive}) on each split",
                unexpected_rows_query=f"SELECT split, {rate} AS positive_rate FROM {{batch}} "
                f"GROUP BY split HAVING {rate} <= 0" + ("" if dataset_kind.all_positive_ok else f" OR {rate} >= 1"),
            )
        )
    return suite
