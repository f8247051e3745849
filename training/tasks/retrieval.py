"""Retrieval: which items will a user interact with next? Two towers over feature-store features.

Query: user id, the user's last items and categories (``user_sequences_v1``), activity windows
(``user_activity_v1``) and the context of the interaction (device, hour, weekday), all as of the
interaction's time. Candidate: item id, category, brand and price from the catalogue.
Evaluated on the held-out days over the whole catalogue against most-popular and item
co-occurrence; the serving index (TFRS BruteForce) is saved with the model.

Batch recommendations come from an index over the item embeddings (:mod:`lakecart.serving.ann`),
searched a bounded block of users at a time; the evaluation and the baselines' scores are computed,
ranked and dropped a block of queries at a time (:class:`~lakecart.training.evaluate.Scores`): no
queries x catalogue score matrix is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.features import user_activity_v1, user_sequences_v1
from lakecart.features.pit import feature_prefix
from lakecart.training import data as training_data
from lakecart.training import plots
from lakecart.training.evaluate import (
    Scores,
    cooccurrence_matrix,
    cooccurrence_scores,
    popularity_scores,
    ranking_metrics,
    top_k_indices,
)
from lakecart.training.inputs import TowerSpec, pad_sequences, scale_counts
from lakecart.training.tasks.base import (
    ModelTask,
    TrainParams,
    feature_columns,
    features_as_of,
    id_array,
    numeric_matrix,
)

KS = (10, 50, 100)
SEQUENCE_LENGTH = 10
USER_VIEW = user_activity_v1.table_name
SEQUENCE_VIEW = user_sequences_v1.table_name
RECENT_ITEMS = f"{feature_prefix(SEQUENCE_VIEW)}recent_items"
RECENT_CATEGORIES = f"{feature_prefix(SEQUENCE_VIEW)}recent_categories"
CANDIDATES_PER_USER = 100  # handed to the ranking stage
# Cross-category recommendations leave out the categories a user bought from over this many days up
# to the run's date (a year: a household that buys turkey at Christmas has bought from the category).
CROSS_CATEGORY_HISTORY_DAYS = 365
# The batch job searches exactly (a flat index): published lists equal the dense top-k the gate
# scored; the HNSW graph (built at publish) serves real-time queries.
BATCH_INDEX = "flat"
# search(query rows, n) -> (catalogue positions, scores) of each query's n best, best first.
Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class RetrievalTask(ModelTask):
    name = "retrieval"
    dataset_kind = "retrieval"
    shard_key = "user_id"
    primary_metric = "ndcg@100"  # the gate: sensitive to where in the list the item lands
    defaults = {"epochs": 10, "global_batch_size": 512, "learning_rate": 0.1}
    output_tables = (
        tables.USER_EMBEDDINGS,
        tables.ITEM_EMBEDDINGS,
        tables.RECOMMENDATIONS,
        tables.CROSS_CATEGORY_RECOMMENDATIONS,
    )
    artefacts = ("candidates",)  # the top-100 per user that ranking re-ranks (from the published run)
    params = {
        "embedding_dim": "width of the embeddings and of both towers' output (default 32)",
        "hidden_layers": "units of each tower's hidden ReLU layers (default [64])",
        "sampling_bias_correction": "the logQ correction of in-batch negatives (default true)",
    }

    # --- data ---------------------------------------------------------------------------------
    def catalogue(self) -> pd.DataFrame:
        """The catalogue, read once per task (inputs, evaluation and outputs all need it)."""
        if getattr(self, "_catalogue", None) is None:
            items = training_data.read_pinned(
                self.settings, self.dataset_id, tables.SILVER_ITEMS, ["item_id", "category", "brand", "price"]
            )
            self._catalogue = items.sort_values("item_id").reset_index(drop=True)
        return self._catalogue

    def state_columns(self) -> list[str]:
        # No list columns: every worker reads these in full, and a row's lists cost far more than its ids.
        return ["user_id", "device", "item_id", "split"]

    def fit_state(self, full: pd.DataFrame) -> None:
        items = self.catalogue()
        self.state = {
            "users": sorted(full["user_id"].dropna().astype(str).unique()),
            "items": items["item_id"].astype(str).tolist(),
            "categories": sorted(items["category"].dropna().astype(str).unique()),
            "brands": sorted(items["brand"].dropna().astype(str).unique()),
            "devices": sorted(full["device"].dropna().astype(str).unique()),
            "item_shares": item_shares(full),
            "user_features": feature_columns(
                training_data.numeric_columns(self.table_uri), (feature_prefix(USER_VIEW),)
            ),
        }

    def query_inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        times = pd.to_datetime(frame["event_time"], utc=True)
        return {
            "user_id": id_array(frame["user_id"]),
            "device": id_array(frame["device"]),
            "hour": np.array([f"h{h:02d}" for h in times.dt.hour]),
            "weekday": np.array([f"d{d}" for d in times.dt.weekday]),
            "recent_items": pad_sequences(_column(frame, RECENT_ITEMS), SEQUENCE_LENGTH),
            "recent_categories": pad_sequences(_column(frame, RECENT_CATEGORIES), SEQUENCE_LENGTH),
            "user_numeric": numeric_matrix(frame, self.state["user_features"]),
        }

    def candidate_inputs(self, item_ids: pd.Series) -> dict[str, np.ndarray]:
        catalogue = self.catalogue().set_index("item_id").reindex(item_ids.astype(str))
        return {
            "item_id": item_ids.astype(str).to_numpy(),
            "category": id_array(catalogue["category"]),
            "brand": id_array(catalogue["brand"]),
            "item_numeric": scale_counts(catalogue[["price"]].to_numpy()).astype("float32"),
        }

    def inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        inputs = {**self.query_inputs(frame), **self.candidate_inputs(frame["item_id"])}
        if self.state.get("sampling_bias_correction", True):
            shares = pd.Series(self.state["item_shares"], dtype="float64")
            probability = shares.reindex(frame["item_id"].astype(str)).fillna(shares.min())
            inputs["candidate_probability"] = probability.to_numpy(dtype="float32")
        return inputs

    # --- model --------------------------------------------------------------------------------
    def build(self, params: TrainParams):
        from lakecart.training.retrieval import TwoTowerRetrieval

        dim = int(params.extra.get("embedding_dim", 32))
        hidden = tuple(params.extra.get("hidden_layers", (64,)))
        s = self.state
        query = TowerSpec(
            ids={
                "user_id": s["users"],
                "device": s["devices"],
                "hour": [f"h{h:02d}" for h in range(24)],
                "weekday": [f"d{d}" for d in range(7)],
            },
            sequences={"recent_items": s["items"], "recent_categories": s["categories"]},
            numeric="user_numeric",
            numeric_stats=self.numeric_stats("user_numeric"),
            n_numeric=len(s["user_features"]),
            embedding_dim=dim,
            hidden_layers=hidden,
            output_dim=dim,
        )
        candidate = TowerSpec(
            ids={"item_id": s["items"], "category": s["categories"], "brand": s["brands"]},
            numeric="item_numeric",
            numeric_stats=self.numeric_stats("item_numeric"),
            n_numeric=1,
            embedding_dim=dim,
            hidden_layers=hidden,
            output_dim=dim,
        )
        # The logQ correction is on unless switched off (the ablation in the training benchmark).
        self.state["sampling_bias_correction"] = bool(params.extra.get("sampling_bias_correction", True))
        return TwoTowerRetrieval(query, candidate)

    def optimizer(self, params: TrainParams):
        import tensorflow as tf

        return tf.keras.optimizers.legacy.Adagrad(params.learning_rate)

    # --- evaluation ---------------------------------------------------------------------------
    def item_vectors(self, model) -> np.ndarray:
        from lakecart.training.retrieval import embed

        return embed(model.candidate_model, self.candidate_inputs(pd.Series(self.state["items"])))

    def item_index(self) -> pd.Series:
        """Catalogue position of each item id."""
        return pd.Series(np.arange(len(self.state["items"])), index=self.state["items"])

    def baseline_scores(self, train: pd.DataFrame, queries: pd.DataFrame) -> dict[str, Scores]:
        """Each baseline's scores (queries x catalogue, computed a block of queries at a time), learnt
        from the training interactions: most-popular, and item co-occurrence with the query's recent
        items."""
        items = self.item_index()
        n_items = len(items)
        train = train[train["item_id"].astype(str).isin(items.index)]
        train_index = items.loc[train["item_id"].astype(str)].to_numpy()
        popular = popularity_scores(train_index, n_items, 1)[0]
        users = pd.Series(np.arange(train["user_id"].nunique()), index=sorted(train["user_id"].unique()))
        matrix = cooccurrence_matrix(users.loc[train["user_id"]].to_numpy(), train_index, n_items)
        history = [
            items.reindex([str(v) for v in (seq if seq is not None else [])]).dropna().astype(int).to_numpy()
            for seq in _column(queries, RECENT_ITEMS)
        ]
        return {
            "most_popular": Scores(n_items, lambda rows: np.broadcast_to(popular, (len(rows), n_items))),
            "co_occurrence": Scores(
                n_items, lambda rows: cooccurrence_scores([history[row] for row in rows], matrix, popular)
            ),
        }

    def evaluate(self, model, train: pd.DataFrame, test: pd.DataFrame) -> dict:
        from lakecart.training.retrieval import embed

        items = self.item_index()
        test = test[test["item_id"].astype(str).isin(items.index)].reset_index(drop=True)
        true_index = items.loc[test["item_id"].astype(str)].to_numpy()
        queries = embed(model.query_model, self.query_inputs(test))
        vectors = self.item_vectors(model)
        model_scores = Scores(len(vectors), lambda rows: queries[rows] @ vectors.T)
        return {
            "test": ranking_metrics(model_scores, true_index, KS),
            "baselines": {
                name: ranking_metrics(scores, true_index, KS)
                for name, scores in self.baseline_scores(train, test).items()
            },
        }

    # --- outputs --------------------------------------------------------------------------------
    def serving_queries(self, as_of: date) -> pd.DataFrame:
        """One row per user: features as of the end of ``as_of`` and the context of the user's
        last interaction in the training set."""
        full = training_data.read_delta(
            self.table_uri, ["user_id", "device", "event_time"], filters=[("dataset_id", "=", self.dataset_id)]
        )
        last = full.sort_values("event_time").groupby("user_id").tail(1).set_index("user_id")
        frame = last.reindex(self.state["users"]).rename_axis("user_id").reset_index()
        rows = features_as_of(self.settings, (USER_VIEW, SEQUENCE_VIEW), "user_id", as_of, "left", self.state["users"])
        frame = frame.merge(rows, on="user_id", how="left")
        frame["event_time"] = frame["event_time"].fillna(pd.Timestamp(as_of, tz="UTC"))
        return frame

    def outputs(self, model, as_of: date) -> dict[str, pd.DataFrame]:
        from lakecart.serving.ann import AnnIndex
        from lakecart.training.retrieval import embed

        queries = self.serving_queries(as_of)
        user_vectors = embed(model.query_model, self.query_inputs(queries))
        item_vectors = self.item_vectors(model)
        index = AnnIndex.build(self.state["items"], item_vectors, kind=BATCH_INDEX)
        return {
            tables.USER_EMBEDDINGS: pd.DataFrame({"user_id": queries["user_id"], "embedding": list(user_vectors)}),
            tables.ITEM_EMBEDDINGS: pd.DataFrame({"item_id": self.state["items"], "embedding": list(item_vectors)}),
            **self.recommendation_rows(queries, lambda rows, n: index.search_positions(user_vectors[rows], n), as_of),
        }

    def baseline_outputs(self, train: pd.DataFrame, as_of: date) -> dict[str, dict[str, pd.DataFrame]]:
        """The baselines' recommendations and candidates (a baseline has no embeddings to index: its
        scores are searched a block of queries at a time)."""
        queries = self.serving_queries(as_of)
        return {
            name: self.recommendation_rows(queries, scores_search(scores), as_of)
            for name, scores in self.baseline_scores(train, queries).items()
        }

    def bought_categories(self, as_of: date) -> dict[str, set]:
        """user (as text) -> the categories they bought from in the training set or over the
        ``CROSS_CATEGORY_HISTORY_DAYS`` up to ``as_of`` (silver at the versions the set pinned); read
        once per date (the model's outputs and each baseline's ask for the same)."""
        cached = getattr(self, "_bought", None)
        if cached is not None and cached[0] == as_of:
            return cached[1]
        bought = training_data.read_delta(
            self.table_uri, ["user_id", "category", "event_type"], filters=[("dataset_id", "=", self.dataset_id)]
        )
        bought = bought[bought["event_type"] == "purchase"][["user_id", "category"]]
        history = training_data.purchased_categories(
            self.settings,
            self.catalogue(),
            as_of - timedelta(days=CROSS_CATEGORY_HISTORY_DAYS - 1),
            as_of,
            versions=self.manifest.get("input_versions", {}),
        )
        by_user = (
            pd.concat([bought.astype({"user_id": str}), history], ignore_index=True)
            .groupby("user_id")["category"]
            .agg(set)
            .to_dict()
        )
        self._bought = (as_of, by_user)
        return by_user

    def recommendation_rows(self, queries: pd.DataFrame, search: Search, as_of: date) -> dict[str, pd.DataFrame]:
        """Top-k, cross-category top-k and the candidates handed to ranking, from ``search(query
        rows, n) -> (catalogue positions, scores)``, best first (an index over the item embeddings,
        or :func:`dense_search` of a score matrix). Cross-category leaves out every category a user
        bought from in the training set or over the ``CROSS_CATEGORY_HISTORY_DAYS`` up to ``as_of``."""
        bought = self.bought_categories(as_of)
        catalogue = self.catalogue().set_index("item_id")["category"]
        users = queries["user_id"].to_numpy()
        return recommendation_frames(
            users,
            np.array(self.state["items"]),
            catalogue.reindex(self.state["items"]).to_numpy(),
            {user: bought.get(str(user), set()) for user in users},
            search,
            self.settings.training.top_k,
        )

    def save_artifacts(self, model, run_dir: Path) -> dict[str, str]:
        return {"index": self.save_index(model, run_dir)}

    def save_index(self, model, run_dir: Path) -> str:
        """The serving artefact: a TFRS BruteForce index over the item embeddings, as a SavedModel
        that maps query features to the top items."""
        import tensorflow as tf

        from lakecart.training.retrieval import brute_force_index

        k = min(CANDIDATES_PER_USER, len(self.state["items"]))
        index = brute_force_index(model.query_model, np.array(self.state["items"]), self.item_vectors(model), k=k)
        example = {k: v[:1] for k, v in self.query_inputs(self.serving_queries_example()).items()}
        index(example)
        path = run_dir / "index"
        tf.saved_model.save(index, str(path))
        return str(path)

    def serving_queries_example(self) -> pd.DataFrame:
        return training_data.read_shard(self.table_uri, self.dataset_id, 0, 1).head(1)

    def plot(self, run_dir: Path, metrics: dict, history: dict) -> list[str]:
        series = {"two-tower": metrics["test"], **metrics["baselines"]}
        return [
            plots.training_curves(run_dir / "training_loss.png", history, "retrieval: in-batch softmax loss"),
            plots.grouped_bars(run_dir / "retrieval.png", series, "held-out days, full catalogue", "score"),
        ]


def item_shares(rows: pd.DataFrame) -> dict[str, float]:
    """Each item's share of the training split's rows: its chance of being an in-batch candidate
    (the logQ correction). Counted over the whole split, not each batch a worker streams: every
    worker's batches are drawn from it (and with shared negatives, scored against each other)."""
    items = rows.loc[rows["split"] == "train", "item_id"].dropna().astype(str)
    return {str(k): float(v) for k, v in items.value_counts(normalize=True).sort_index().items()}


def _column(frame: pd.DataFrame, name: str) -> list:
    return list(frame[name]) if name in frame.columns else [None] * len(frame)


def dense_search(scores: np.ndarray) -> Search:
    """The ``search`` of :meth:`RetrievalTask.recommendation_rows` over a queries x catalogue
    score matrix (ties: the lower catalogue position first)."""
    return scores_search(Scores.of(scores))


def scores_search(scores: Scores) -> Search:
    """The ``search`` of :meth:`RetrievalTask.recommendation_rows` over scores computed a block of
    queries at a time (ties: the lower catalogue position first)."""

    def search(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        best, found = [], []
        for _, block in scores.blocks(np.asarray(rows)):
            best.append(top_k_indices(block, n))
            found.append(np.take_along_axis(block, best[-1], axis=1))
        return np.concatenate(best), np.concatenate(found)

    return search


def recommendation_frames(
    users: np.ndarray,
    item_ids: np.ndarray,
    item_category: np.ndarray,
    bought: Mapping[str, set],
    search: Search,
    k: int,
) -> dict[str, pd.DataFrame]:
    """The rows of :meth:`RetrievalTask.recommendation_rows`: the top ``CANDIDATES_PER_USER``
    (``candidates``; their top ``k`` are the recommendations) and the top ``k`` from categories the
    user has not bought from (``bought``: user -> categories, in the training window), ranked by the
    same affinity score. ``item_category``: each catalogue position's category."""
    from lakecart.serving.ann import top_k_excluding

    best, scores = top_k_excluding(search, len(users), CANDIDATES_PER_USER)
    candidates = _top_k_frame(users, item_ids, best, scores)
    positions = pd.Series(item_category).groupby(item_category).indices  # category -> catalogue positions
    none = np.empty(0, dtype="int64")
    excluded = [np.concatenate([positions.get(c, none) for c in bought.get(user, ())] + [none]) for user in users]
    best, scores = top_k_excluding(search, len(users), k, excluded)
    cross = _top_k_frame(users, item_ids, best, scores)
    cross = cross[np.isfinite(cross["score"])]
    cross["category"] = pd.Series(item_category, index=item_ids).reindex(cross["item_id"]).to_numpy()
    return {
        tables.RECOMMENDATIONS: candidates[candidates["rank"] <= k].reset_index(drop=True),
        tables.CROSS_CATEGORY_RECOMMENDATIONS: cross.reset_index(drop=True),
        "candidates": candidates,
    }


def _top_k_frame(users: np.ndarray, item_ids: np.ndarray, best: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """One row per (user, rank) of ``best`` (catalogue positions; -1: none, left out)."""
    n, k = best.shape
    found = best.ravel() >= 0
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, k)[found],
            "rank": np.tile(np.arange(1, k + 1), n).astype("int32")[found],
            "item_id": item_ids[best.ravel()[found]],
            "score": scores.ravel()[found].astype("float32"),
        }
    )
