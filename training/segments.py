"""Customer segments: k-means over recency/frequency/monetary features and, when a retrieval model is
published, its customer embeddings; each segment profiled for the people who act on it.

Inputs as of the end of ``--date`` (the point-in-time rule of every output): ``user_activity_v2``
(recency, purchase days and spend over 90 days, breadth; computed from order lines too, see
``features.sources``), the published retrieval model's ``gold.user_embeddings`` (reduced to a few
principal components, so 32 embedding dimensions do not drown four RFM ones), the published
``gold.churn_scores`` and ``user_category_affinity_v1`` for the profiles, and the attributes of
``silver.users`` (demographics) where a shop sends them.

The number of segments is chosen by the silhouette score over ``k_range`` (on a sample of at most
``SILHOUETTE_SAMPLE`` customers, seeded); the report gives every k's silhouette and mean distance to
the centroid so the choice can be checked. Features are log-scaled counts and money, standardised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.errors import LakecartError
from lakecart.features import user_activity_v2, user_category_affinity_v1
from lakecart.features.pit import feature_prefix
from lakecart.storage import is_delta, open_delta

log = logging.getLogger(__name__)

ACTIVITY = user_activity_v2.table_name
AFFINITY = user_category_affinity_v1.table_name
RFM_FEATURES = (
    "days_since_purchase",
    "purchase_days_90d",
    "spend_90d",
    "spend_per_purchase_90d",
    "categories_purchased_90d",
)
NO_PURCHASE_DAYS = 91  # "days since" beyond the 90-day window
EMBEDDING_COMPONENTS = 4
SILHOUETTE_SAMPLE = 5000
DEFAULT_K_RANGE = (2, 3, 4, 5, 6, 7, 8)
# A category must hold this share of a segment's purchases before its index names it "distinctive".
MIN_CATEGORY_SHARE = 0.01


class NoCustomers(LakecartError, ValueError):
    """Too few customers with features as of the date to form segments."""


@dataclass
class SegmentModel:
    k: int
    labels: np.ndarray
    distances: np.ndarray  # each customer's Euclidean distance to its centroid (standardised space)
    scores: dict[int, dict[str, float]] = field(default_factory=dict)  # k -> silhouette, mean distance

    def report(self) -> dict:
        return {
            "k": self.k,
            "silhouette": self.scores[self.k]["silhouette"],
            "mean_distance_to_centroid": self.scores[self.k]["mean_distance"],
            "by_k": {str(k): v for k, v in self.scores.items()},
        }


def standardise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype="float64")
    spread = matrix.std(axis=0)
    return (matrix - matrix.mean(axis=0)) / np.where(spread > 1e-12, spread, 1.0)


def rfm_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Recency as days (missing: beyond the window); counts and money log1p-scaled (missing: 0)."""
    columns = []
    for name in RFM_FEATURES:
        column = f"{feature_prefix(ACTIVITY)}{name}"
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce")
        else:
            values = pd.Series(np.nan, index=frame.index, dtype="float64")
        if name.startswith("days_since"):
            columns.append(values.fillna(NO_PURCHASE_DAYS).to_numpy(dtype="float64"))
        else:
            columns.append(np.log1p(values.fillna(0.0).clip(lower=0.0).to_numpy(dtype="float64")))
    return np.column_stack(columns)


def embedding_components(vectors: np.ndarray, n: int = EMBEDDING_COMPONENTS, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, dtype="float64")
    n = min(n, vectors.shape[1], max(len(vectors) - 1, 1))
    return PCA(n_components=n, random_state=seed).fit_transform(vectors)


def fit_segments(matrix: np.ndarray, k_range: Sequence[int] = DEFAULT_K_RANGE, seed: int = 0) -> SegmentModel:
    """K-means for each k (standardised inputs); the k with the best silhouette wins."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = standardise(matrix)
    candidates = [k for k in k_range if 2 <= k < len(x)]
    if not candidates:
        raise NoCustomers(f"{len(x)} customers: too few for segments (k in {list(k_range)})")
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(x), size=min(SILHOUETTE_SAMPLE, len(x)), replace=False)
    best, scores = None, {}
    for k in candidates:
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        distances = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
        labels_sample = km.labels_[sample]
        silhouette = float(silhouette_score(x[sample], labels_sample)) if len(set(labels_sample)) > 1 else -1.0
        scores[k] = {"silhouette": round(silhouette, 4), "mean_distance": round(float(distances.mean()), 4)}
        if best is None or silhouette > scores[best[0]]["silhouette"]:
            best = (k, km.labels_.copy(), distances)
    k, labels, distances = best
    # Segment 0 is the largest: stable names across runs of similar data.
    order = {old: new for new, old in enumerate(pd.Series(labels).value_counts().index)}
    return SegmentModel(k=k, labels=np.array([order[v] for v in labels]), distances=distances, scores=scores)


def profile(
    frame: pd.DataFrame, labels: np.ndarray, churn: pd.Series | None, affinity: pd.DataFrame | None, top: int = 3
) -> pd.DataFrame:
    """One row per segment: size, share, median recency, mean purchase days and spend (90 days),
    mean churn probability, the categories its customers buy most and the attributes most common
    among them (demographics, where the shop sends any)."""
    prefix = feature_prefix(ACTIVITY)
    data = frame.assign(segment=labels)
    if churn is not None:
        data = data.assign(churn_probability=data["user_id"].map(churn))
    rows = []
    attribute_columns = [c for c in data.columns if c.startswith("attr__")]
    everyone = (
        affinity.groupby("category")["weight"].sum()
        if affinity is not None and len(affinity)
        else pd.Series(dtype="float64")
    )
    for segment, group in data.groupby("segment", sort=True):
        row = {
            "segment": int(segment),
            "customers": len(group),
            "share": round(len(group) / len(data), 4),
            "median_days_since_purchase": float(
                pd.to_numeric(group.get(f"{prefix}days_since_purchase"), errors="coerce")
                .fillna(NO_PURCHASE_DAYS)
                .median()
            ),
            "mean_purchase_days_90d": float(
                pd.to_numeric(group.get(f"{prefix}purchase_days_90d"), errors="coerce").fillna(0).mean()
            ),
            "mean_spend_90d": float(pd.to_numeric(group.get(f"{prefix}spend_90d"), errors="coerce").fillna(0).mean()),
            "mean_churn_probability": float(group["churn_probability"].mean())
            if "churn_probability" in group and group["churn_probability"].notna().any()
            else None,
        }
        if affinity is not None and len(affinity):
            members = affinity[affinity["user_id"].isin(group["user_id"])]
            weights = members.groupby("category")["weight"].sum()
            # Categories only viewed in the window are listed with zero purchases: not favourites.
            weights = weights[weights > 0].sort_values(ascending=False, kind="stable")
            row["top_categories"] = [str(c) for c in weights.index[:top]]
            row["distinctive_categories"] = json.dumps(distinctive(weights, everyone, top))
        else:
            row["top_categories"] = []
            row["distinctive_categories"] = json.dumps({})
        row["attributes"] = json.dumps(
            {
                c.removeprefix("attr__"): str(group[c].mode().iloc[0])
                for c in attribute_columns
                if group[c].notna().any()
            },
            sort_keys=True,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def distinctive(segment: pd.Series, everyone: pd.Series, top: int = 3, min_share: float = MIN_CATEGORY_SHARE) -> dict:
    """The ``top`` categories a segment over-indexes on: a category's share of the segment's purchases
    over its share of everyone's (the index: 2.0 = twice as likely as the average customer), among
    categories holding at least ``min_share`` of the segment's purchases (a handful of purchases do
    not make a trait); only indices above 1, highest first, rounded to two decimals."""
    total, overall = segment.sum(), everyone.sum()
    if total <= 0 or overall <= 0:
        return {}
    share = segment / total
    index = (share / (everyone.reindex(share.index) / overall))[share >= min_share]
    index = index[index > 1].sort_values(ascending=False, kind="stable")[:top]
    return {str(c): round(float(v), 2) for c, v in index.items()}


def _read_published(settings, table: str, model: str) -> pd.DataFrame | None:
    from lakecart.training.publish import champion

    current = champion(settings, model)
    path = tables.table_path(table, settings)
    if current is None or not is_delta(path):
        return None
    rows = open_delta(path).to_pandas(filters=[("model_version", "=", current["model_version"])])
    return rows if len(rows) else None


def _affinity(settings, as_of: date) -> pd.DataFrame | None:
    """Purchases per customer and category over 28 days, as of the end of ``as_of``."""
    from lakecart.features import REGISTRY
    from lakecart.training import data as training_data
    from lakecart.training.tasks.base import serving_time

    view = REGISTRY[AFFINITY]
    path = tables.table_path(view.qualified_name, settings)
    if not is_delta(path):
        return None
    rows = training_data.features_as_of(path, view.entity.keys, view.ttl, serving_time(as_of))
    return pd.DataFrame(
        {"user_id": rows["user_id"].astype(str), "category": rows["category"], "weight": rows["purchases_28d"]}
    )


def _attributes(settings) -> pd.DataFrame | None:

    path = tables.table_path(tables.SILVER_USERS, settings)
    if not is_delta(path):
        return None
    users = open_delta(path).to_pandas()
    out = pd.DataFrame({"user_id": users["user_id"].astype(str)})
    for column in ("region", "segment"):
        if column in users and users[column].notna().any():
            out[f"attr__{column}"] = users[column]
    if "extra" in users:
        extras = pd.DataFrame([dict(e) if e is not None else {} for e in users["extra"]], index=users.index)
        for column in extras.columns:
            out[f"attr__{column}"] = extras[column]
    return out


def run_segments(settings, as_of: date, k_range: Sequence[int] = DEFAULT_K_RANGE, seed: int = 0) -> dict:
    """Segment every customer with activity features as of the end of ``as_of`` and write
    ``gold.user_segments`` and ``gold.segment_profiles`` (``model_version`` ``segments-<date>``,
    replaced on a rerun)."""
    from lakecart.training.publish import replace_version
    from lakecart.training.tasks.base import features_as_of

    frame = features_as_of(settings, (ACTIVITY,), "user_id", as_of, how="outer")
    if frame.empty or len(frame) < 3:
        raise NoCustomers(f"{len(frame)} customers have {ACTIVITY} features as of {as_of}: too few for segments")
    frame["user_id"] = frame["user_id"].astype(str)
    parts, used = [rfm_matrix(frame)], ["rfm"]
    embeddings = _read_published(settings, tables.USER_EMBEDDINGS, "retrieval")
    if embeddings is not None:
        vectors = dict(zip(embeddings["user_id"].astype(str), embeddings["embedding"], strict=True))
        known = frame["user_id"].map(vectors)
        if known.notna().mean() >= 0.5:  # most customers have one: use it (zeros for the rest)
            width = len(next(v for v in known if v is not None and not (isinstance(v, float))))
            matrix = np.stack(
                [
                    np.asarray(v, dtype="float64") if v is not None and not isinstance(v, float) else np.zeros(width)
                    for v in known
                ]
            )
            parts.append(embedding_components(matrix, seed=seed))
            used.append("embeddings")
    model = fit_segments(np.column_stack(parts), k_range, seed)
    churn_rows = _read_published(settings, tables.CHURN_SCORES, "churn")
    churn = (
        None
        if churn_rows is None
        else churn_rows.assign(user_id=churn_rows["user_id"].astype(str)).set_index("user_id")["churn_probability"]
    )
    affinity = _affinity(settings, as_of)
    attributes = _attributes(settings)
    if attributes is not None:
        frame = frame.merge(attributes, on="user_id", how="left")
    version = f"segments-{as_of:%Y%m%d}"
    created_at = pd.Timestamp(as_of).tz_localize("UTC") + pd.Timedelta(days=1)
    assignments = pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "segment": model.labels.astype("int32"),
            "distance_to_centroid": model.distances.astype("float32"),
            "as_of": as_of,
            "model_version": version,
            "created_at": created_at,
        }
    )
    profiles = profile(frame, model.labels, churn, affinity).assign(
        as_of=as_of, model_version=version, created_at=created_at, features=",".join(used)
    )
    from lakecart import lineage

    metadata = lineage.commit_metadata(job="segments", model="segments", model_version=version)
    replace_version(tables.table_path(tables.USER_SEGMENTS, settings), assignments, version, metadata)
    replace_version(tables.table_path(tables.SEGMENT_PROFILES, settings), profiles, version, metadata)
    summary = {"model_version": version, "customers": len(assignments), "features": used, **model.report()}
    log.info("segments %s", summary)
    return summary
