"""Next-basket recommendation from transaction logs: the temporal protocol, the standard metrics,
the baselines every model must beat, and candidate generation with per-pair features for a learned
scorer. Pure pandas, numpy and scipy.sparse.

A transactions frame has one row per purchased line: ``user`` and ``item`` (integer codes,
0..n-1), ``basket`` (any id, one per shopping trip) and ``ts`` (a timestamp). Item metadata
(category, department) are integer arrays indexed by item code, -1 for unknown.

Memory: nothing here builds a dense users x items matrix. Scores are sparse rows (or dense blocks of
``CHUNK`` users) cut to their top n at once, so 32k users x 24k items works like 2.5k x 90k.

Metrics follow Li et al. 2023, "A Next Basket Recommendation Reality Check": recall@k =
|top-k ∩ truth| / |truth| averaged over users, NDCG@k with binary gains, and the same recall on the
repeat part of the truth (items the user bought before) and on the explore part (new items).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from lakecart.errors import UsageError

CHUNK = 512  # users per block of scores
Recs = dict[int, np.ndarray]  # user -> item codes, best first
Truth = dict[int, set[int]]  # user -> items bought in the window


def _progress(message: str, verbose: bool) -> None:
    if verbose:
        print(f"[nextbasket {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- protocol -------------------------------------------------------------------------------------


def split_window(tx: pd.DataFrame, start, end) -> tuple[pd.DataFrame, Truth]:
    """History (every row strictly before ``start``) and the truth: the set of items each user with
    history bought in ``[start, end)``. Users without history, or without a purchase in the window,
    are not in the truth."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end <= start:
        raise UsageError(f"the window must end after it starts, not {start} .. {end}")
    history = tx[tx["ts"] < start]
    window = tx[(tx["ts"] >= start) & (tx["ts"] < end)]
    window = window[window["user"].isin(history["user"].unique())]
    truth = {int(u): set(items.tolist()) for u, items in window.groupby("user")["item"].unique().items()}
    return history, truth


def seen_items(history: pd.DataFrame) -> Truth:
    """Items each user bought in the history."""
    return {int(u): set(items.tolist()) for u, items in history.groupby("user")["item"].unique().items()}


# --- metrics --------------------------------------------------------------------------------------


def recall_at_k(ranked: Sequence[int], truth: set[int], k: int) -> float:
    """|top-k ∩ truth| / |truth| (0 for an empty truth)."""
    if not truth:
        return 0.0
    return len(set(list(ranked)[:k]) & truth) / len(truth)


def ndcg_at_k(ranked: Sequence[int], truth: set[int], k: int) -> float:
    """Binary gains: DCG = sum over hits at 0-based rank r < k of 1/log2(r + 2), divided by the
    DCG of the ideal list (min(|truth|, k) hits at the top)."""
    if not truth:
        return 0.0
    dcg = sum(1.0 / np.log2(r + 2) for r, item in enumerate(list(ranked)[:k]) if item in truth)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(truth), k)))
    return float(dcg / ideal)


def evaluate(recs: Mapping[int, Sequence[int]], truth: Truth, seen: Truth, ks: Sequence[int]) -> dict[str, float]:
    """recall@k and NDCG@k over every user of the truth (a user without recommendations scores 0);
    repeat_recall@k over users whose truth holds items of their history, against those items only;
    explore_recall@k likewise for the new items. Also the user counts."""
    out: dict[str, list[float]] = {}
    n_repeat = n_explore = 0
    for user, items in truth.items():
        ranked = list(recs.get(user, ()))
        history = seen.get(user, set())
        repeat, explore = items & history, items - history
        n_repeat += bool(repeat)
        n_explore += bool(explore)
        for k in ks:
            out.setdefault(f"recall@{k}", []).append(recall_at_k(ranked, items, k))
            out.setdefault(f"ndcg@{k}", []).append(ndcg_at_k(ranked, items, k))
            if repeat:
                out.setdefault(f"repeat_recall@{k}", []).append(recall_at_k(ranked, repeat, k))
            if explore:
                out.setdefault(f"explore_recall@{k}", []).append(recall_at_k(ranked, explore, k))
    metrics = {name: float(np.mean(values)) for name, values in out.items()}
    for k in ks:  # a split without users reports 0, never a missing key
        metrics.setdefault(f"repeat_recall@{k}", 0.0)
        metrics.setdefault(f"explore_recall@{k}", 0.0)
    return {**metrics, "users": len(truth), "repeat_users": n_repeat, "explore_users": n_explore}


# --- sparse helpers -------------------------------------------------------------------------------


def _n_items(history: pd.DataFrame, n_items: int | None) -> int:
    return int(n_items) if n_items is not None else int(history["item"].max()) + 1


def user_item_counts(history: pd.DataFrame, n_users: int, n_items: int) -> sparse.csr_matrix:
    """users x items: the number of distinct baskets of the user holding the item."""
    pairs = history[["user", "basket", "item"]].drop_duplicates()
    return sparse.csr_matrix(
        (np.ones(len(pairs), dtype="float32"), (pairs["user"].to_numpy(), pairs["item"].to_numpy())),
        shape=(n_users, n_items),
    )


def top_n_row(indices: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """The n indices of the largest values, best first; ties: the lower index first."""
    if len(indices) == 0:
        return indices[:0]
    if len(values) > n:  # a partition first: sorting only the candidates (and every tie at the cut)
        kth = np.partition(values, len(values) - n)[len(values) - n]
        keep = values >= kth
        indices, values = indices[keep], values[keep]
    order = np.lexsort((indices, -values))
    return indices[order[:n]]


def top_n_sparse(matrix: sparse.csr_matrix, rows: Sequence[int], n: int) -> Recs:
    """Top n columns of each CSR row (only stored, positive entries), keyed by ``rows``."""
    return collect(iter([(np.asarray(rows), matrix)]), n)[0]


def collect(
    blocks: Iterator[tuple[np.ndarray, sparse.csr_matrix]], n: int, pairs: pd.DataFrame | None = None
) -> tuple[Recs, np.ndarray | None, dict[int, np.ndarray]]:
    """One pass over blocks of sparse scores (rows: the block's users): each user's top n (stored,
    positive scores only), the scores of ``pairs`` (a frame of user, item; 0 where not stored) if
    given, and the scores of each user's top n."""
    recs: Recs = {}
    top_scores: dict[int, np.ndarray] = {}
    values = np.zeros(len(pairs), dtype="float32") if pairs is not None else None
    by_user = pairs.groupby("user").indices if pairs is not None else {}
    pair_items = pairs["item"].to_numpy() if pairs is not None else None
    scratch = None
    for users, block in blocks:
        if scratch is None:
            scratch = np.zeros(block.shape[1], dtype="float64")
        for local, user in enumerate(users):
            start, end = block.indptr[local], block.indptr[local + 1]
            idx, val = block.indices[start:end], block.data[start:end]
            # A dense scratch row of the items: sums duplicates, and looks pairs up in O(1).
            np.add.at(scratch, idx, val)
            idx = np.unique(idx)
            val = scratch[idx]
            keep = val > 0
            best = top_n_row(idx[keep], val[keep], n)
            recs[int(user)] = best
            top_scores[int(user)] = scratch[best].astype("float32")
            if int(user) in by_user:
                rows = by_user[int(user)]
                values[rows] = scratch[pair_items[rows]]
            scratch[idx] = 0.0
    return recs, values, top_scores


# --- popularity baselines -------------------------------------------------------------------------


def item_popularity(history: pd.DataFrame, n_items: int | None = None, since=None) -> np.ndarray:
    """Distinct baskets holding each item (rows from ``since`` on, if given)."""
    rows = history if since is None else history[history["ts"] >= pd.Timestamp(since)]
    counts = rows[["basket", "item"]].drop_duplicates()["item"].to_numpy()
    return np.bincount(counts, minlength=_n_items(history, n_items)).astype("float64")


def popular_order(popularity: np.ndarray) -> np.ndarray:
    """Item codes, most popular first; ties: lower code first."""
    return np.lexsort((np.arange(len(popularity)), -popularity))


def top_freq(history: pd.DataFrame, n: int) -> Recs:
    """Personal top-frequency: the user's items by the number of their baskets holding them, ties
    broken by the most recent purchase, then the lower item code."""
    stats = (
        history.groupby(["user", "item"])
        .agg(freq=("basket", "nunique"), last=("ts", "max"))
        .reset_index()
        .sort_values(["user", "freq", "last", "item"], ascending=[True, False, False, True])
    )
    top = stats.groupby("user").head(n)
    return {int(u): items.to_numpy() for u, items in top.groupby("user")["item"]}


def gp_top_freq(history: pd.DataFrame, n: int, users: Sequence[int], popularity: np.ndarray) -> Recs:
    """Personal top-frequency, then the globally popular items the user has not bought, to n."""
    personal = top_freq(history, n)
    order = popular_order(popularity)[: 2 * n + 1]
    out: Recs = {}
    for user in users:
        own = personal.get(int(user), np.zeros(0, dtype=np.int64))
        fill = [i for i in order if i not in set(own.tolist())][: n - len(own)]
        out[int(user)] = np.concatenate([own, np.asarray(fill, dtype=own.dtype)]).astype(np.int64)
    return out


# --- item co-occurrence ---------------------------------------------------------------------------


def item_cooccurrence(
    history: pd.DataFrame, n_items: int | None = None, neighbours: int = 50, min_baskets: int = 2
) -> sparse.csr_matrix:
    """items x items cosine similarity of basket co-occurrence, ``co(i, j) / sqrt(n_i n_j)`` with n_i
    the baskets holding i; the diagonal is 0, items in fewer than ``min_baskets`` baskets get no
    neighbours, and each row keeps its ``neighbours`` largest entries."""
    n_items = _n_items(history, n_items)
    pairs = history[["basket", "item"]].drop_duplicates()
    baskets = pd.factorize(pairs["basket"])[0]
    counts = np.bincount(pairs["item"].to_numpy(), minlength=n_items).astype("float64")
    keep = counts[pairs["item"].to_numpy()] >= min_baskets
    b = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype="float32"), (baskets[keep], pairs["item"].to_numpy()[keep])),
        shape=(int(baskets.max()) + 1 if len(baskets) else 0, n_items),
    )
    co = (b.T @ b).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    co = co.tocoo()
    norm = np.sqrt(counts[co.row] * counts[co.col])
    sim = sparse.csr_matrix((co.data / norm, (co.row, co.col)), shape=(n_items, n_items))
    return _prune_rows(sim, neighbours)


def _prune_rows(matrix: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    """Keep the n largest entries of each row (ties: the lower column)."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()  # sorted columns within each row, for the stable sort below
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    # One stable sort on row - value / (2 max): rows in order, values descending, ties by column.
    scale = 2.0 * max(float(np.abs(matrix.data).max()) if matrix.nnz else 1.0, 1e-12)
    order = np.argsort(rows - matrix.data.astype("float64") / scale, kind="stable")
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    keep = np.sort(order[rank < n])
    return sparse.csr_matrix(
        (matrix.data[keep].astype("float32"), (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )


def cooccurrence_blocks(
    history: pd.DataFrame, sim: sparse.csr_matrix, users: Sequence[int]
) -> Iterator[tuple[np.ndarray, sparse.csr_matrix]]:
    """Blocks of scores: a user's score of item j sums ``sim[i, j]`` weighted by log(1 + baskets
    holding i) over the items i of their history."""
    users = np.asarray(sorted(int(u) for u in users))
    n_users = int(max(users.max() if len(users) else 0, history["user"].max()) + 1)
    weights = user_item_counts(history, n_users, sim.shape[0])
    weights.data = np.log1p(weights.data)
    for start in range(0, len(users), CHUNK):
        block = users[start : start + CHUNK]
        yield block, (weights[block] @ sim).tocsr()


# --- TIFU-KNN -------------------------------------------------------------------------------------


def tifu_user_vectors(
    history: pd.DataFrame, n_users: int, n_items: int, group_size: int, within_decay: float, group_decay: float
) -> sparse.csr_matrix:
    """TIFU-KNN's user vectors (Hu et al. 2020): a user's baskets, oldest to newest, are cut into
    groups of ``group_size`` counted from the newest (the oldest group may be smaller). A group's
    vector is the mean of its baskets' binary vectors, basket r (0 = newest in the group) weighted
    by ``within_decay**r``; the user vector is the mean of the group vectors, group g (0 = newest)
    weighted by ``group_decay**g``."""
    if group_size < 1:
        raise UsageError(f"group_size must be at least 1, not {group_size}")
    baskets = (
        history.groupby(["user", "basket"], sort=False)["ts"].max().reset_index().sort_values(["user", "ts", "basket"])
    )
    back = baskets.groupby("user").cumcount(ascending=False).to_numpy()  # 0 = newest basket
    n = baskets.groupby("user")["basket"].transform("size").to_numpy()
    group = back // group_size
    n_groups = -(-n // group_size)
    group_len = np.minimum(group_size, n - group * group_size)
    baskets["w"] = (within_decay ** (back % group_size) / group_len) * (group_decay**group / n_groups)
    rows = history[["user", "basket", "item"]].drop_duplicates().merge(baskets[["user", "basket", "w"]])
    return sparse.csr_matrix(
        (rows["w"].to_numpy("float64"), (rows["user"].to_numpy(), rows["item"].to_numpy())), shape=(n_users, n_items)
    )


def knn_neighbours(vectors: sparse.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other users (Euclidean distance, as TIFU-KNN's reference code) of each of
    ``users`` among all rows of ``vectors`` with a non-empty vector; ``(len(users), k)``."""
    candidates = np.flatnonzero(np.diff(vectors.indptr) > 0)
    pool = vectors[candidates]
    sq_pool = np.asarray(pool.multiply(pool).sum(axis=1)).ravel()
    k = min(k, len(candidates) - 1)
    out = np.zeros((len(users), max(k, 0)), dtype=np.int64)
    if k <= 0:
        return out
    for start in range(0, len(users), CHUNK):
        block = users[start : start + CHUNK]
        rows = vectors[block]
        gram = (rows @ pool.T).toarray()
        sq = np.asarray(rows.multiply(rows).sum(axis=1)).ravel()
        dist = sq[:, None] + sq_pool[None, :] - 2 * gram
        dist[candidates[None, :] == block[:, None]] = np.inf  # never one's own neighbour
        part = np.argpartition(dist, k - 1, axis=1)[:, :k]
        out[start : start + len(block)] = candidates[part]
    return out


def tifu_blocks(
    vectors: sparse.csr_matrix, users: Sequence[int], k: int, alpha: float, verbose: bool = False
) -> Iterator[tuple[np.ndarray, sparse.csr_matrix]]:
    """Blocks of TIFU-KNN scores: ``alpha * own vector + (1 - alpha) * mean of the k neighbours'
    vectors``."""
    users = np.asarray(sorted(int(u) for u in users), dtype=np.int64)
    for start in range(0, len(users), CHUNK):
        block = users[start : start + CHUNK]
        nbrs = knn_neighbours(vectors, block, k)
        width = nbrs.shape[1]
        mean = sparse.csr_matrix(
            (
                np.full(nbrs.size, 1.0 / max(width, 1)),
                (np.repeat(np.arange(len(block)), width), nbrs.ravel()),
            ),
            shape=(len(block), vectors.shape[0]),
        )
        _progress(f"TIFU-KNN users {start + len(block)}/{len(users)}", verbose)
        yield block, (alpha * vectors[block] + (1 - alpha) * (mean @ vectors)).tocsr()


# --- cross-category baselines ---------------------------------------------------------------------


def user_categories(history: pd.DataFrame, item_category: np.ndarray, n_users: int) -> sparse.csr_matrix:
    """users x categories: 1 where the user bought an item of the category (unknown: ignored)."""
    cats = item_category[history["item"].to_numpy()]
    keep = cats >= 0
    pairs = pd.DataFrame({"user": history["user"].to_numpy()[keep], "cat": cats[keep]}).drop_duplicates()
    n_cats = int(item_category.max()) + 1
    return sparse.csr_matrix(
        (np.ones(len(pairs), dtype="float32"), (pairs["user"], pairs["cat"])), shape=(n_users, n_cats)
    )


def category_scores(owned: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
    """``(len(users), categories)``: the mean over the user's categories c' of P(c | c'), the share
    of the users (all rows of ``owned``) buying c' who also bought c; categories the user owns score
    0. Dense in categories, never in items."""
    counts = np.asarray(owned.sum(axis=0)).ravel()
    co = (owned.T @ owned).toarray()
    np.fill_diagonal(co, 0.0)
    cond = co / np.maximum(counts, 1.0)[:, None]  # row c', column c: P(c | c')
    rows = owned[users]
    n_own = np.asarray(rows.sum(axis=1)).ravel()
    scores = np.asarray(rows @ cond) / np.maximum(n_own, 1.0)[:, None]
    return np.where(rows.toarray() > 0, 0.0, scores)


def _new_category_blocks(
    history: pd.DataFrame,
    users: Sequence[int],
    item_category: np.ndarray,
    item_score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    users = np.asarray(sorted(int(u) for u in users), dtype=np.int64)
    n_users = int(max(users.max() if len(users) else 0, history["user"].max()) + 1)
    owned = user_categories(history, item_category, n_users)
    for start in range(0, len(users), CHUNK // 4):
        block = users[start : start + CHUNK // 4]
        scores = item_score(owned, block)  # (block, items), dense per block only
        new = (item_category >= 0)[None, :] & (owned[block].toarray()[:, np.maximum(item_category, 0)] == 0)
        yield block, np.where(new, scores, 0.0)


def _dense_top_n(blocks: Iterator[tuple[np.ndarray, np.ndarray]], n: int) -> Recs:
    out: Recs = {}
    for users, scores in blocks:
        for row, user in enumerate(users):
            idx = np.flatnonzero(scores[row] > 0)
            out[int(user)] = top_n_row(idx, scores[row, idx], n)
    return out


def popular_in_new_categories(
    history: pd.DataFrame, users: Sequence[int], item_category: np.ndarray, popularity: np.ndarray, n: int
) -> Recs:
    """Popular-in-category: the most popular items of categories the user never bought."""
    return _dense_top_n(
        _new_category_blocks(history, users, item_category, lambda owned, block: np.tile(popularity, (len(block), 1))),
        n,
    )


def category_cooccurrence(
    history: pd.DataFrame, users: Sequence[int], item_category: np.ndarray, popularity: np.ndarray, n: int
) -> Recs:
    """Category co-occurrence: score(item) = score of its category (:func:`category_scores`, among
    categories the user never bought) x the item's share of its category's popularity."""
    return _dense_top_n(
        _new_category_blocks(history, users, item_category, _category_item_score(item_category, popularity)), n
    )


def _category_item_score(item_category: np.ndarray, popularity: np.ndarray):
    cat = np.maximum(item_category, 0)
    cat_pop = np.bincount(cat, weights=popularity * (item_category >= 0), minlength=int(cat.max()) + 1)
    share = popularity / np.maximum(cat_pop[cat], 1e-12)

    def score(owned: sparse.csr_matrix, block: np.ndarray) -> np.ndarray:
        return category_scores(owned, block)[:, cat] * share[None, :]

    return score


# --- candidates and features ----------------------------------------------------------------------


def candidates(sources: Mapping[str, Recs]) -> pd.DataFrame:
    """The union of the sources' lists: one row per (user, item) with a 0/1 column ``src_<name>``
    per source."""
    frames = [
        pd.DataFrame(
            {
                "user": np.repeat(np.array(list(recs), dtype=np.int64), [len(v) for v in recs.values()]),
                "item": np.concatenate([np.asarray(v, dtype=np.int64) for v in recs.values()])
                if recs
                else np.zeros(0, np.int64),
                f"src_{name}": np.float32(1.0),
            }
        )
        for name, recs in sources.items()
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.merge(frame, on=["user", "item"], how="outer")
    src = [f"src_{name}" for name in sources]
    out[src] = out[src].fillna(0.0).astype("float32")
    return out.sort_values(["user", "item"], ignore_index=True)


FEATURES = (
    "ui_baskets",  # baskets of the user holding the item (log1p)
    "ui_share",  # that count / the user's baskets
    "ui_decay_14",  # sum over those baskets of 0.5 ** (age in days / 14)
    "ui_decay_60",
    "ui_days_since",  # days since the user last bought the item (365 if never)
    "ui_interval",  # mean days between the user's purchases of the item (365 if fewer than 2)
    "ui_overdue",  # days since / interval (0 if fewer than 2 purchases)
    "ui_bought",  # 1 if bought before
    "ui_baskets_28",  # baskets of the user holding the item in the last 28 days (log1p)
    "ui_rate_28",  # baskets holding the item per 28 days since the user's first basket
    "uc_baskets",  # baskets of the user holding the item's category (log1p)
    "u_baskets",  # the user's baskets (log1p)
    "u_baskets_28",  # in the last 28 days (log1p)
    "u_days_since",  # days since the user's last basket
    "u_items",  # distinct items the user bought (log1p)
    "i_pop",  # distinct users who bought the item (log1p)
    "i_pop_28",  # in the last 28 days (log1p)
    "i_trend",  # (baskets in the last 28 days + 1) / (baskets in the last 84 days / 3 + 1)
    "i_repeat",  # share of the item's buyers who bought it in at least 2 baskets
    "i_baskets_per_user",  # the item's baskets / its buyers (log)
    "c_pop",  # distinct users who bought the item's category (log1p)
    "cat_score",  # category co-occurrence score of the item's category (0 for owned categories)
    "cooc_score",  # item co-occurrence score
    "tifu_score",  # TIFU-KNN score (x 100)
)


def pair_features(
    history: pd.DataFrame,
    pairs: pd.DataFrame,
    cut,
    item_category: np.ndarray,
    extra: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """Features of each (user, item) pair as of ``cut`` from the history only (rows before cut):
    ``FEATURES`` in that order, computed here except ``cat_score``, ``cooc_score`` and
    ``tifu_score``, which come aligned with ``pairs`` in ``extra``."""
    cut = pd.Timestamp(cut)
    if len(history) and history["ts"].max() >= cut:
        raise UsageError(f"history holds rows at or after the cut {cut.date()}: features would see the future")
    day = 86400.0
    lines = history[["user", "item", "basket", "ts"]].drop_duplicates(["user", "item", "basket"])
    age = (cut - lines["ts"]).dt.total_seconds().to_numpy() / day
    lines = lines.assign(age=age, recent=(age < 28).astype("int64"), d14=0.5 ** (age / 14), d60=0.5 ** (age / 60))
    ui = lines.groupby(["user", "item"]).agg(
        n=("basket", "size"),
        n28=("recent", "sum"),
        d14=("d14", "sum"),
        d60=("d60", "sum"),
        last=("age", "min"),
        first=("age", "max"),
    )
    ui = ui.reset_index()
    baskets = history.groupby(["user", "basket"])["ts"].max().reset_index()
    b_age = (cut - baskets["ts"]).dt.total_seconds() / day
    u = pd.DataFrame(
        {
            "u_n": baskets.groupby("user").size(),
            "u_n28": (b_age < 28).groupby(baskets["user"]).sum(),
            "u_last": b_age.groupby(baskets["user"]).min(),
            "u_first": b_age.groupby(baskets["user"]).max(),
            "u_items": history.groupby("user")["item"].nunique(),
        }
    ).reset_index(names="user")
    n_items = len(item_category)
    users_per_item = history[["user", "item"]].drop_duplicates()["item"].to_numpy()
    i_pop = np.bincount(users_per_item, minlength=n_items)
    buyers = np.bincount(ui["item"].to_numpy(), minlength=n_items).astype("float64")
    repeaters = np.bincount(ui["item"].to_numpy(), weights=(ui["n"].to_numpy() >= 2), minlength=n_items)
    item_baskets = np.bincount(ui["item"].to_numpy(), weights=ui["n"].to_numpy(), minlength=n_items)
    recent = history[history["ts"] >= cut - pd.Timedelta(days=28)]
    i_pop_28 = np.bincount(recent[["user", "item"]].drop_duplicates()["item"].to_numpy(), minlength=n_items)
    b28 = item_popularity(history, n_items, since=cut - pd.Timedelta(days=28))
    b84 = item_popularity(history, n_items, since=cut - pd.Timedelta(days=84))
    trend = (b28 + 1) / (b84 / 3 + 1)
    cats = item_category[history["item"].to_numpy()]
    uc_frame = pd.DataFrame({"user": history["user"].to_numpy(), "cat": cats, "basket": history["basket"].to_numpy()})
    uc_frame = uc_frame[uc_frame["cat"] >= 0]
    uc = uc_frame.groupby(["user", "cat"])["basket"].nunique().rename("uc_n").reset_index()
    c_pop = uc.groupby("cat")["user"].nunique()
    c_pop = np.bincount(c_pop.index.to_numpy(), weights=c_pop.to_numpy(), minlength=int(item_category.max()) + 1)

    out = pairs[["user", "item"]].merge(ui, on=["user", "item"], how="left").merge(u, on="user", how="left")
    out["cat"] = item_category[out["item"].to_numpy()]
    out = out.merge(uc, on=["user", "cat"], how="left")
    n = out["n"].fillna(0.0).to_numpy()
    interval = np.where(n >= 2, (out["first"] - out["last"]) / np.maximum(n - 1, 1), 365.0)
    since = out["last"].fillna(365.0).to_numpy()
    item = out["item"].to_numpy()
    cat = np.maximum(out["cat"].to_numpy(), 0)
    feats = {
        "ui_baskets": np.log1p(n),
        "ui_share": n / np.maximum(out["u_n"].fillna(1.0).to_numpy(), 1.0),
        "ui_decay_14": out["d14"].fillna(0.0).to_numpy(),
        "ui_decay_60": out["d60"].fillna(0.0).to_numpy(),
        "ui_days_since": since,
        "ui_interval": np.asarray(interval, dtype="float64"),
        "ui_overdue": np.where(n >= 2, since / np.maximum(np.asarray(interval, dtype="float64"), 1.0), 0.0),
        "ui_bought": (n > 0).astype("float64"),
        "ui_baskets_28": np.log1p(out["n28"].fillna(0.0).to_numpy()),
        "ui_rate_28": 28.0 * n / np.maximum(out["u_first"].fillna(1.0).to_numpy(), 1.0),
        "uc_baskets": np.log1p(out["uc_n"].fillna(0.0).to_numpy()),
        "u_baskets": np.log1p(out["u_n"].fillna(0.0).to_numpy()),
        "u_baskets_28": np.log1p(out["u_n28"].fillna(0.0).to_numpy()),
        "u_days_since": out["u_last"].fillna(365.0).to_numpy(),
        "u_items": np.log1p(out["u_items"].fillna(0.0).to_numpy()),
        "i_pop": np.log1p(i_pop[item]),
        "i_pop_28": np.log1p(i_pop_28[item]),
        "i_trend": trend[item],
        "i_repeat": repeaters[item] / np.maximum(buyers[item], 1.0),
        "i_baskets_per_user": np.log(np.maximum(item_baskets[item], 1.0) / np.maximum(buyers[item], 1.0)),
        "c_pop": np.log1p(np.where(out["cat"].to_numpy() >= 0, c_pop[cat], 0.0)),
        "cat_score": np.asarray(extra["cat_score"], dtype="float64"),
        "cooc_score": np.asarray(extra["cooc_score"], dtype="float64"),
        "tifu_score": 100.0 * np.asarray(extra["tifu_score"], dtype="float64"),
    }
    return pd.concat(
        [pairs.reset_index(drop=True), pd.DataFrame({name: feats[name].astype("float32") for name in FEATURES})],
        axis=1,
    )


def category_pair_scores(
    history: pd.DataFrame, pairs: pd.DataFrame, item_category: np.ndarray, n_users: int
) -> np.ndarray:
    """:func:`category_scores` of each pair's item category (0 for unknown categories)."""
    owned = user_categories(history, item_category, n_users)
    users = np.sort(pairs["user"].unique())
    row_of = {int(u): r for r, u in enumerate(users)}
    out = np.zeros(len(pairs), dtype="float32")
    for start in range(0, len(users), CHUNK):
        block = users[start : start + CHUNK]
        scores = category_scores(owned, block)
        mask = pairs["user"].isin(block).to_numpy()
        rows = np.array([row_of[int(u)] - start for u in pairs["user"].to_numpy()[mask]], dtype=np.int64)
        cats = item_category[pairs["item"].to_numpy()[mask]]
        out[mask] = np.where(cats >= 0, scores[rows, np.maximum(cats, 0)], 0.0)
    return out


def with_explore_slots(ranked: Sequence[int], seen: set[int], slots: int, at: int) -> np.ndarray:
    """``ranked`` changed so that its first ``at`` items hold at least ``slots`` items new to the user
    (not in ``seen``), if it has them: the first ``at - slots`` items stay, then come the best new
    items still missing, then the rest in order."""
    ranked = [int(i) for i in ranked]
    head = ranked[: max(at - slots, 0)]
    missing = max(slots - sum(i not in seen for i in head), 0)
    added = [i for i in ranked[len(head) :] if i not in seen][:missing]
    rest = [i for i in ranked[len(head) :] if i not in set(added)]
    return np.asarray(head + added + rest, dtype=np.int64)


def rank_by(frame: pd.DataFrame, score: str, n: int) -> Recs:
    """Each user's items of ``frame`` by ``score``, best first (ties: lower item code), cut to n."""
    ordered = frame.sort_values(["user", score, "item"], ascending=[True, False, True])
    top = ordered.groupby("user").head(n)
    return {int(u): items.to_numpy() for u, items in top.groupby("user")["item"]}
