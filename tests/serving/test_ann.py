"""The ANN index (serving/ann.py) and the batch recommendations searched through it."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from lakecart import tables
from lakecart.serving import ann
from lakecart.serving.ann import AnnIndex, IndexNotFound, recall_at_k
from lakecart.training.evaluate import top_k_indices
from lakecart.training.tasks.retrieval import dense_search, recommendation_frames


def random_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype("float32")


def test_hnsw_finds_95_percent_of_the_exact_top_100():
    # Uniform Gaussian noise is the hard case for a graph index (no clusters to follow).
    items, queries = random_vectors(20_000, 32, 1), random_vectors(200, 32, 2)
    ids = [f"i{i}" for i in range(len(items))]
    hnsw = AnnIndex.build(ids, items, kind="hnsw")
    exact = AnnIndex.build(ids, items, kind="flat")
    found, _ = hnsw.search_positions(queries, 100)
    truth, _ = exact.search_positions(queries, 100)
    assert recall_at_k(found, truth) >= 0.95
    # The bar is not a given: a sparse graph (4 links per node, shallow construction) misses it.
    sparse = AnnIndex.build(ids, items, kind="hnsw", m=4, ef_construction=8, ef_search=16)
    assert recall_at_k(sparse.search_positions(queries, 100)[0], truth) < 0.95


def test_the_flat_index_is_brute_force():
    items, queries = random_vectors(500, 8, 3), random_vectors(20, 8, 4)
    index = AnnIndex.build([f"i{i}" for i in range(500)], items, kind="flat")
    ids, scores = index.search(queries, 10)
    dense = queries @ items.T
    best = top_k_indices(dense, 10)
    assert (ids == np.char.add("i", best.astype(str))).all()
    assert np.allclose(scores, np.take_along_axis(dense, best, axis=1), atol=1e-5)


def test_a_small_catalogue_is_indexed_exactly_and_k_beyond_it_pads():
    # Scores of the query (1, 0): a 3, b 1, c -2 (inner products of the first coordinate).
    index = AnnIndex.build(["a", "b", "c"], np.array([[3, 0], [1, 5], [-2, 1]]))
    assert index.kind == "flat"
    ids, scores = index.search(np.array([1, 0]), 5)
    assert ids.tolist() == [["a", "b", "c", "", ""]]
    assert scores[0, :3].tolist() == [3.0, 1.0, -2.0] and np.isneginf(scores[0, 3:]).all()
    assert index.vectors(["c", "a"]).tolist() == [[-2.0, 1.0], [3.0, 0.0]]
    with pytest.raises(KeyError, match="zz"):
        index.vectors(["zz"])


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_save_and_load_give_the_same_answers(tmp_path, kind):
    items, queries = random_vectors(2_000, 16, 5), random_vectors(30, 16, 6)
    index = AnnIndex.build([f"i{i}" for i in range(2_000)], items, kind=kind, ef_search=64)
    loaded = AnnIndex.load(index.save(str(tmp_path / "index")))
    assert loaded.kind == kind and loaded.ef_search == index.ef_search
    assert (loaded.item_ids == index.item_ids).all()
    before, after = index.search(queries, 20), loaded.search(queries, 20)
    assert (before[0] == after[0]).all() and np.allclose(before[1], after[1])


def test_loading_where_nothing_was_saved_says_so(tmp_path):
    with pytest.raises(IndexNotFound, match="no ANN index"):
        AnnIndex.load(str(tmp_path / "nowhere"))


def test_bad_input_is_refused():
    with pytest.raises(ann.LakecartError, match="one vector per item id"):
        AnnIndex.build(["a", "b"], np.ones((3, 2)))
    with pytest.raises(ann.LakecartError, match="unique"):
        AnnIndex.build(["a", "a"], np.ones((2, 2)))
    with pytest.raises(ann.LakecartError, match="3 dimensions, the index 2"):
        AnnIndex.build(["a"], np.ones((1, 2))).search(np.ones((1, 3)), 1)


def test_excluding_in_small_batches_equals_masking_the_whole_matrix(monkeypatch):
    items, users = random_vectors(300, 8, 7), random_vectors(50, 8, 8)
    index = AnnIndex.build([f"i{i}" for i in range(300)], items, kind="flat")
    rng = np.random.default_rng(9)
    excluded = [rng.choice(300, size=rng.integers(0, 280), replace=False) for _ in range(50)]
    monkeypatch.setattr(ann, "RESULTS_PER_BATCH", 500)  # a handful of users per search
    best, scores = index.search_excluding(users, 10, excluded)
    dense = users @ items.T
    for row, skip in enumerate(excluded):
        dense[row, skip] = -np.inf
    expected = top_k_indices(dense, 10)
    assert (best == expected).all()
    assert np.allclose(scores, np.take_along_axis(dense, expected, axis=1), atol=1e-5)


def test_batch_recommendations_equal_the_dense_top_k():
    # Two categories: x (items a, b) and y (items c, d). Scores (user . item):
    #   u1 = (1, 0): a 4, b 3, c 2, d 1; u1 bought from x -> cross-category: c, d
    #   u2 = (0, 1): a 1, b 2.5, c 3.25, d 4.1; u2 bought from x and y -> no cross-category items
    #   u3 = (1, 1): a 5, b 5.5, c 5.25, d 5.1; bought nothing -> cross: b, c
    items = np.array([[4, 1], [3, 2.5], [2, 3.25], [1, 4.1]], dtype="float32")
    users = np.array([[1, 0], [0, 1], [1, 1]], dtype="float32")
    item_ids, category = np.array(["a", "b", "c", "d"]), np.array(["x", "x", "y", "y"], dtype=object)
    bought = {"u1": {"x"}, "u2": {"x", "y"}}
    user_ids = np.array(["u1", "u2", "u3"])
    index = AnnIndex.build(item_ids, items)
    by_index = recommendation_frames(
        user_ids, item_ids, category, bought, lambda rows, n: index.search_positions(users[rows], n), 2
    )
    by_matrix = recommendation_frames(user_ids, item_ids, category, bought, dense_search(users @ items.T), 2)
    recs = by_index[tables.RECOMMENDATIONS]
    assert recs.groupby("user_id")["item_id"].apply(list).to_dict() == {
        "u1": ["a", "b"],
        "u2": ["d", "c"],
        "u3": ["b", "c"],
    }
    cross = by_index[tables.CROSS_CATEGORY_RECOMMENDATIONS]
    assert cross[["user_id", "rank", "item_id", "category"]].values.tolist() == [
        ["u1", 1, "c", "y"],
        ["u1", 2, "d", "y"],
        ["u3", 1, "b", "x"],
        ["u3", 2, "c", "y"],
    ]
    assert by_index["candidates"].groupby("user_id").size().tolist() == [4, 4, 4]  # the whole catalogue
    for name, frame in by_index.items():
        pd.testing.assert_frame_equal(frame, by_matrix[name], check_exact=False, atol=1e-6)


def test_publishing_a_retrieval_model_builds_the_index_serving_loads(settings):
    from lakecart.training.publish import publish, replace_version, run_root_for
    from lakecart.training.worker import LATEST, OUTPUTS

    assert AnnIndex.load_published(settings) is None  # nothing published yet
    dataset = "retrieval_20260110"
    root = run_root_for(settings, "retrieval", dataset)
    run = root / "retrieval-20260110-a"
    (run / OUTPUTS).mkdir(parents=True)
    vectors = random_vectors(40, 4, 10)
    embeddings = pd.DataFrame({"item_id": [f"i{i}" for i in range(40)], "embedding": list(vectors)})
    embeddings.to_parquet(run / OUTPUTS / f"{tables.ITEM_EMBEDDINGS}.parquet")
    metrics = dict(model_version="retrieval-20260110-a", model="retrieval", dataset_id=dataset, params={})
    metrics |= dict(test={"ndcg@100": 0.5}, baselines={}, primary_metric="ndcg@100", as_of="2026-01-10")
    (run / "metrics.json").write_text(json.dumps(metrics))
    (root / LATEST).write_text(run.name)
    older = embeddings.head(5).assign(model_version="retrieval-older", embedding=[[0.0] * 4] * 5)
    replace_version(tables.table_path(tables.ITEM_EMBEDDINGS, settings), older, "retrieval-older", "{}")

    summary = publish(settings, "retrieval", dataset, date(2026, 1, 10), force=True)
    # This version's 40 rows only, not the older version's 5; 40 < HNSW_FROM: exact.
    assert summary["ann_index"]["items"] == 40 and summary["ann_index"]["kind"] == "flat"
    published = AnnIndex.load_published(settings)
    ids, scores = published.search(vectors[7], 3)
    exact = vectors @ vectors[7]
    best = np.argsort(-exact)[:3]
    assert ids[0].tolist() == [f"i{i}" for i in best] and np.allclose(scores[0], exact[best], atol=1e-5)


def test_a_search_over_score_blocks_answers_as_the_dense_one():
    from lakecart.training.evaluate import Scores
    from lakecart.training.tasks.retrieval import scores_search

    scores = np.random.default_rng(3).random((7, 20)).astype("float32")
    rows = np.array([6, 0, 3, 4])
    dense = dense_search(scores)(rows, 5)
    blocked = scores_search(Scores(20, lambda r: scores[r], rows_per_block=3))(rows, 5)
    assert np.array_equal(blocked[0], dense[0]) and np.array_equal(blocked[1], dense[1])
    assert blocked[0][0].tolist() == np.argsort(-scores[6])[:5].tolist()
