"""Next-basket protocol, metrics and baselines on a hand-sized log: every expected value is worked
out in the comments.

The log (day: user basket {items}), window days 7 .. 9 (day 10 is outside):

    day 1: u0 b1 {0, 1}     day 2: u1 b4 {1, 2}    day 6: u2 b6 {3, 4}
    day 3: u0 b2 {0, 2}     day 4: u1 b5 {1, 3}
    day 5: u0 b3 {0}
    window: day 7 u0 b7 {0, 3}; day 8 u1 b8 {4}; day 8 u3 b9 {0} (no history); day 10 u2 b10 {1} (after the end)

Categories: items 0, 1 -> 0; item 2 -> 1; item 3 -> 2; item 4 unknown (-1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakecart.errors import UsageError
from lakecart.training import nextbasket as nb

DAY0 = pd.Timestamp("2017-01-01")
ROWS = [
    (1, 0, "b1", [0, 1]),
    (3, 0, "b2", [0, 2]),
    (5, 0, "b3", [0]),
    (2, 1, "b4", [1, 2]),
    (4, 1, "b5", [1, 3]),
    (6, 2, "b6", [3, 4]),
    (7, 0, "b7", [0, 3]),
    (8, 1, "b8", [4]),
    (8, 3, "b9", [0]),
    (10, 2, "b10", [1]),
]
CATEGORY = np.array([0, 0, 1, 2, -1])
START, END = DAY0 + pd.Timedelta(days=7), DAY0 + pd.Timedelta(days=10)


@pytest.fixture
def tx() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"user": user, "item": item, "basket": basket, "ts": DAY0 + pd.Timedelta(days=day)}
            for day, user, basket, items in ROWS
            for item in items
        ]
    )


@pytest.fixture
def history(tx) -> pd.DataFrame:
    return nb.split_window(tx, START, END)[0]


def as_lists(recs) -> dict:
    return {u: list(map(int, v)) for u, v in recs.items()}


def test_split_window_keeps_the_future_out_of_history(tx):
    history, truth = nb.split_window(tx, START, END)
    assert history["ts"].max() < START
    assert sorted(history["basket"].unique()) == ["b1", "b2", "b3", "b4", "b5", "b6"]
    # u3 has no history, u2's only window row is on day 10 (the end is exclusive).
    assert truth == {0: {0, 3}, 1: {4}}
    assert nb.seen_items(history) == {0: {0, 1, 2}, 1: {1, 2, 3}, 2: {3, 4}}


def test_split_window_rejects_an_empty_window(tx):
    with pytest.raises(UsageError, match="must end after"):
        nb.split_window(tx, END, START)


def test_recall_and_ndcg_by_hand():
    ranked, truth = [1, 2, 3, 4], {2, 4, 9}
    assert nb.recall_at_k(ranked, truth, 2) == pytest.approx(1 / 3)  # item 2 only
    assert nb.recall_at_k(ranked, truth, 4) == pytest.approx(2 / 3)  # items 2 and 4
    # A hit at rank 1 (0-based); the ideal list has min(3, k) hits at the top.
    assert nb.ndcg_at_k(ranked, truth, 2) == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert nb.ndcg_at_k(ranked, truth, 4) == pytest.approx(
        (1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3) + 1 / np.log2(4))
    )
    assert nb.ndcg_at_k([2, 4, 9], truth, 2) == pytest.approx(1.0)
    assert nb.recall_at_k(ranked, set(), 2) == 0.0


def test_evaluate_splits_repeat_and_explore():
    truth = {"A": {2, 4, 9}, "B": {7}, "C": {1}}
    seen = {"A": {2, 9}, "C": {1}}
    recs = {"A": [1, 2, 3, 4], "B": [7]}  # C gets nothing and scores 0
    m = nb.evaluate(recs, truth, seen, [2])
    assert m["recall@2"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    # repeat: A's {2, 9} (top-2 [1, 2] finds 2: 1/2) and C's {1} (0); B has no repeat items.
    assert m["repeat_recall@2"] == pytest.approx((0.5 + 0) / 2)
    # explore: A's {4} (0) and B's {7} (1).
    assert m["explore_recall@2"] == pytest.approx(0.5)
    assert (m["users"], m["repeat_users"], m["explore_users"]) == (3, 2, 2)


def test_top_freq_breaks_ties_by_recency_then_code(history):
    # u0: item 0 in 3 baskets, then 2 (day 3) before 1 (day 1); u1: item 1 twice, then 3 (day 4)
    # before 2 (day 2); u2: 3 and 4 both on day 6 -> lower code first.
    assert as_lists(nb.top_freq(history, 5)) == {0: [0, 2, 1], 1: [1, 3, 2], 2: [3, 4]}
    assert as_lists(nb.top_freq(history, 1)) == {0: [0], 1: [1], 2: [3]}


def test_gp_top_freq_fills_with_popular_unbought_items(history):
    popularity = nb.item_popularity(history, 5)
    assert popularity.tolist() == [3, 3, 2, 2, 1]  # baskets holding each item
    recs = nb.gp_top_freq(history, 4, [0, 1, 2], popularity)
    assert as_lists(recs) == {0: [0, 2, 1, 3], 1: [1, 3, 2, 0], 2: [3, 4, 0, 1]}


def test_item_cooccurrence_is_cosine_and_pruned(history):
    sim = nb.item_cooccurrence(history, 5).toarray()
    s6 = 1 / np.sqrt(6)
    # co(0, 1) = 1 over 3 x 3 baskets; co(0, 2), co(1, 2), co(1, 3) = 1 over 3 x 2; item 4 is in one
    # basket (< min_baskets 2): no neighbours, and nobody's neighbour.
    expected = np.array(
        [
            [0, 1 / 3, s6, 0, 0],
            [1 / 3, 0, s6, s6, 0],
            [s6, s6, 0, 0, 0],
            [0, s6, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(sim, expected, rtol=1e-6)
    # One neighbour per row: the largest, ties to the lower code (row 1: 2 and 3 tie -> 2).
    pruned = nb.item_cooccurrence(history, 5, neighbours=1).toarray()
    assert [np.flatnonzero(row).tolist() for row in pruned] == [[2], [2], [0], [1], []]


def test_cooccurrence_scores_sum_weighted_neighbours(history):
    sim = nb.item_cooccurrence(history, 5)
    recs, values, top = nb.collect(
        nb.cooccurrence_blocks(history, sim, [1, 2]), 5, pd.DataFrame({"user": [1, 1], "item": [0, 4]})
    )
    # u1 holds item 1 in 2 baskets (weight log 3), items 2 and 3 in one (log 2).
    # item 0: log3 * 1/3 + log2 / sqrt6 = 0.649; item 1: 2 log2 / sqrt6 = 0.566;
    # items 2 and 3: log3 / sqrt6 = 0.449 each (tie -> lower code). u2: only item 1 via item 3.
    assert as_lists(recs) == {1: [0, 1, 2, 3], 2: [1]}
    assert values.tolist() == pytest.approx([np.log(3) / 3 + np.log(2) / np.sqrt(6), 0.0], rel=1e-5)
    assert top[2].tolist() == pytest.approx([np.log(2) / np.sqrt(6)], rel=1e-5)


def test_tifu_user_vectors_by_hand(history):
    v = nb.tifu_user_vectors(history, 3, 5, group_size=2, within_decay=0.5, group_decay=0.25).toarray()
    # u0's baskets b1, b2, b3 -> groups [b1] (older) and [b2, b3]. New group: (0.5 b2 + b3) / 2 =
    # {0: 0.75, 2: 0.25}; old group: b1 = {0: 1, 1: 1}; user = (0.25 old + new) / 2.
    np.testing.assert_allclose(v[0], [0.5, 0.125, 0.125, 0, 0])
    # u1: one group (0.5 b4 + b5) / 2; u2: its one basket.
    np.testing.assert_allclose(v[1], [0, 0.75, 0.25, 0.5, 0])
    np.testing.assert_allclose(v[2], [0, 0, 0, 1, 1])


def test_tifu_knn_mixes_own_and_nearest_vectors(history):
    v = nb.tifu_user_vectors(history, 3, 5, group_size=2, within_decay=0.5, group_decay=0.25)
    # Squared distances: u0-u1 0.906, u0-u2 2.281, u1-u2 1.875 -> nearest: u0 u1, u1 u0, u2 u1.
    assert nb.knn_neighbours(v, np.array([0, 1, 2]), 1).ravel().tolist() == [1, 0, 1]
    recs, _, top = nb.collect(nb.tifu_blocks(v, [0, 2], k=1, alpha=0.5), 5)
    # u0: 0.5 u0 + 0.5 u1 = {0: .25, 1: .4375, 2: .1875, 3: .25} (0 and 3 tie -> 0 first);
    # u2: 0.5 u2 + 0.5 u1 = {1: .375, 2: .125, 3: .75, 4: .5}.
    assert as_lists(recs) == {0: [1, 0, 3, 2], 2: [3, 4, 1, 2]}
    assert top[0].tolist() == [0.4375, 0.25, 0.25, 0.1875]


def test_popular_in_new_categories(history):
    popularity = nb.item_popularity(history, 5)
    recs = nb.popular_in_new_categories(history, [0, 1, 2], CATEGORY, popularity, 5)
    # u0 owns categories {0, 1} -> only item 3; u1 owns all three; u2 owns {2} -> items 0, 1, 2
    # by popularity 3, 3, 2. Item 4 has no category and is never recommended.
    assert as_lists(recs) == {0: [3], 1: [], 2: [0, 1, 2]}


def test_category_cooccurrence_scores_new_categories(history):
    owned = nb.user_categories(history, CATEGORY, 3)
    # Owners: c0 {u0, u1}, c1 {u0, u1}, c2 {u1, u2}. P(c | c'): P(1|0) = P(0|1) = 1,
    # P(2|0) = P(2|1) = P(0|2) = P(1|2) = 0.5. u2 owns {2}: [0.5, 0.5, 0]; u0 owns {0, 1}:
    # mean of [0, 1, .5] and [1, 0, .5] with owned categories zeroed -> [0, 0, 0.5].
    np.testing.assert_allclose(nb.category_scores(owned, np.array([2, 0])), [[0.5, 0.5, 0], [0, 0, 0.5]])
    popularity = nb.item_popularity(history, 5)
    recs = nb.category_cooccurrence(history, [0, 2], CATEGORY, popularity, 5)
    # Item shares of their category's popularity: 0 -> 3/6, 1 -> 3/6, 2 -> 2/2, 3 -> 2/2.
    # u2: item 2 = 0.5 x 1 beats items 0 and 1 = 0.5 x 0.5 (unlike popularity alone).
    assert as_lists(recs) == {0: [3], 2: [2, 0, 1]}


def test_candidates_union_with_source_flags():
    frame = nb.candidates({"a": {0: np.array([1, 2])}, "b": {0: np.array([2, 3]), 1: np.array([5])}})
    assert frame[["user", "item", "src_a", "src_b"]].values.tolist() == [
        [0, 1, 1, 0],
        [0, 2, 1, 1],
        [0, 3, 0, 1],
        [1, 5, 0, 1],
    ]
    ranked = nb.rank_by(frame.assign(score=[0.1, 0.9, 0.9, 0.5]), "score", 2)
    assert as_lists(ranked) == {0: [2, 3], 1: [5]}


def test_pair_features_by_hand(history):
    pairs = pd.DataFrame({"user": [0, 0], "item": [0, 3]})
    extra = {"cat_score": np.array([0.0, 0.5]), "cooc_score": np.array([0.1, 0.2]), "tifu_score": np.array([0.3, 0])}
    f = nb.pair_features(history, pairs, START, CATEGORY, extra).set_index("item")
    # u0 bought item 0 on days 1, 3, 5 (ages 6, 4, 2 at the cut on day 7) in all 3 of its baskets.
    assert f.loc[0, "ui_baskets"] == pytest.approx(np.log(4))
    assert f.loc[0, "ui_share"] == pytest.approx(1.0)
    assert f.loc[0, "ui_decay_14"] == pytest.approx(0.5 ** (6 / 14) + 0.5 ** (4 / 14) + 0.5 ** (2 / 14))
    assert f.loc[0, "ui_days_since"] == pytest.approx(2.0)
    assert f.loc[0, "ui_interval"] == pytest.approx(2.0)  # (6 - 2) / (3 - 1)
    assert f.loc[0, "ui_overdue"] == pytest.approx(1.0)
    assert f.loc[0, "ui_baskets_28"] == pytest.approx(np.log(4))  # all within 28 days
    assert f.loc[0, "ui_rate_28"] == pytest.approx(28 * 3 / 6)  # first basket 6 days before the cut
    assert f.loc[0, "uc_baskets"] == pytest.approx(np.log(4))  # category 0 in b1, b2, b3
    assert f.loc[0, "i_pop"] == pytest.approx(np.log(2))  # one household bought item 0
    # Never bought: the fill values, and item 3's category 2 is new to u0.
    assert f.loc[
        3, ["ui_baskets", "ui_days_since", "ui_interval", "ui_overdue", "ui_bought", "uc_baskets"]
    ].tolist() == [
        0,
        365,
        365,
        0,
        0,
        0,
    ]
    assert f.loc[3, "i_pop"] == pytest.approx(np.log(3))  # u1 and u2
    # Item 0: one buyer (u0) in 3 baskets -> repeat share 1, 3 baskets per buyer; item 3: u1 and u2
    # once each -> 0 and 1.
    assert f.loc[0, "i_repeat"] == pytest.approx(1.0)
    assert f.loc[0, "i_baskets_per_user"] == pytest.approx(np.log(3))
    assert (f.loc[3, "i_repeat"], f.loc[3, "i_baskets_per_user"]) == (0.0, 0.0)
    assert f.loc[3, "cat_score"] == pytest.approx(0.5)
    assert f.loc[0, "tifu_score"] == pytest.approx(30.0)  # x 100
    assert f.loc[0, "u_days_since"] == pytest.approx(2.0)
    assert f.loc[0, "u_baskets_28"] == pytest.approx(np.log(4))
    assert list(f.columns[-len(nb.FEATURES) :]) == list(nb.FEATURES)


def test_pair_features_refuse_history_after_the_cut(tx):
    pairs = pd.DataFrame({"user": [0], "item": [0]})
    extra = {name: np.zeros(1) for name in ("cat_score", "cooc_score", "tifu_score")}
    with pytest.raises(UsageError, match="at or after the cut"):
        nb.pair_features(tx, pairs, START, CATEGORY, extra)


def test_category_pair_scores_match_category_scores(history):
    pairs = pd.DataFrame({"user": [2, 2, 0, 2], "item": [0, 3, 3, 4]})
    # u2: category 0 -> 0.5, category 2 (owned) -> 0, unknown -> 0; u0: category 2 -> 0.5.
    assert nb.category_pair_scores(history, pairs, CATEGORY, 3).tolist() == [0.5, 0.0, 0.5, 0.0]


def test_explore_slots_move_the_best_new_items_up():
    ranked, seen = [1, 2, 3, 4, 5, 6], {1, 2, 3, 4}
    # Keep the first 4 - 2 = 2, then the new items 5 and 6, then the rest.
    assert nb.with_explore_slots(ranked, seen, 2, 4).tolist() == [1, 2, 5, 6, 3, 4]
    # The head already holds one new item (5): only one more (6) is moved up.
    assert nb.with_explore_slots([5, 1, 2, 3, 6], {1, 2, 3}, 2, 4).tolist() == [5, 1, 6, 2, 3]
    assert nb.with_explore_slots(ranked, seen, 0, 4).tolist() == ranked
