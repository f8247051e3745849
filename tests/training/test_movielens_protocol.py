"""MovieLens-100K loading and the TFRS tutorial split, on tiny inline RecBole files (no download)."""

import numpy as np
import pandas as pd
import pytest

from lakecart.training.movielens import (
    bucketize_age,
    movie_title,
    movielens_frames,
    movies_frame,
    out_of_fold_means,
    read_recbole,
    smoothed_means,
    tutorial_split,
    validation_split,
)

INTER = (
    b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t2\t4\t881250949\n3\t1\t1\t878887116\n7\t3\t5\t5\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "1\tToy Story\t1995\tAnimation Children's Comedy\n"
    "2\tunkonwn\tunkonwn\tunknown\n"
    "3\tToy Story\t1995\tComedy\n"
)
USER = (
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "3\t17\tF\tstudent\t0210\n"
    "7\t45\tM\tother\tT8H1N\n"
)


def test_read_recbole_drops_type_suffixes_and_keeps_strings():
    frame = read_recbole(INTER)
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert frame["user_id"].tolist() == ["7", "3", "7"]
    # Zip codes with a leading zero stay as written.
    assert read_recbole(USER)["zip_code"].tolist() == ["0210", "T8H1N"]


def test_movie_title_adds_the_year_like_tfds():
    assert movie_title("Toy Story", "1995") == "Toy Story (1995)"
    assert movie_title("unkonwn", "unkonwn") == "unknown"


def test_bucketize_age_uses_the_movielens_1m_groups():
    ages = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
    expected = [1, 1, 18, 18, 25, 25, 35, 35, 45, 45, 50, 50, 56, 56]
    assert bucketize_age(np.array(ages)).tolist() == expected


def test_movielens_frames_joins_in_file_order():
    ratings = movielens_frames(read_recbole(INTER), read_recbole(ITEM), read_recbole(USER))
    assert ratings["user_id"].tolist() == ["7", "3", "7"]
    assert ratings["movie_id"].tolist() == ["2", "1", "3"]
    assert ratings["movie_title"].tolist() == ["unknown", "Toy Story (1995)", "Toy Story (1995)"]
    assert ratings["user_rating"].tolist() == [4.0, 1.0, 5.0]
    assert ratings["timestamp"].tolist() == [881250949, 878887116, 5]
    assert ratings["raw_user_age"].tolist() == [45, 17, 45]
    assert ratings["bucketized_user_age"].tolist() == [45, 1, 45]
    assert ratings["user_gender"].tolist() == ["M", "F", "M"]
    assert ratings["user_occupation_text"].tolist() == ["other", "student", "other"]
    assert ratings["user_zip_code"].tolist() == ["T8H1N", "0210", "T8H1N"]
    assert ratings["movie_genres"].tolist() == [["unknown"], ["Animation", "Children's", "Comedy"], ["Comedy"]]
    assert np.isnan(ratings["release_year"].iloc[0]) and ratings["release_year"].iloc[1] == 1995


def test_movielens_frames_refuses_a_rating_of_an_unknown_user():
    inter = read_recbole(INTER)
    inter.loc[0, "user_id"] = "99"
    with pytest.raises(ValueError, match="1 ratings"):
        movielens_frames(inter, read_recbole(ITEM), read_recbole(USER))


def test_movies_frame_has_one_row_per_title_sorted():
    movies = movies_frame(read_recbole(ITEM))
    # Two movies share "Toy Story (1995)": the first (id 1) is the candidate; "T" < "u".
    assert movies["movie_title"].tolist() == ["Toy Story (1995)", "unknown"]
    assert movies["movie_id"].tolist() == ["1", "2"]


def test_tutorial_split_takes_consecutive_slices_of_one_shuffle():
    train, test = tutorial_split(10, seed=42, train=6, test=3)
    assert len(train) == 6 and len(test) == 3
    assert len(set(train) | set(test)) == 9  # disjoint
    again_train, again_test = tutorial_split(10, seed=42, train=6, test=3)
    assert train.tolist() == again_train.tolist() and test.tolist() == again_test.tolist()
    # The whole protocol: 80,000 + 20,000 = every rating once, in a shuffled order.
    train, test = tutorial_split(100_000)
    everything = np.concatenate([train, test])
    assert len(train) == 80_000 and len(test) == 20_000
    assert np.array_equal(np.sort(everything), np.arange(100_000))
    assert not np.array_equal(everything, np.arange(100_000))
    assert not np.array_equal(tutorial_split(100_000, seed=7)[0], train)


def test_tutorial_split_refuses_more_rows_than_exist():
    with pytest.raises(ValueError, match="exceeds"):
        tutorial_split(10, train=8, test=3)


def test_validation_split_holds_out_the_last_share():
    fit, validation = validation_split(np.array([9, 4, 7, 1, 0, 3, 8, 2, 6, 5]), share=0.2)
    assert fit.tolist() == [9, 4, 7, 1, 0, 3, 8, 2]
    assert validation.tolist() == [6, 5]
    fit, validation = validation_split(np.arange(80_000), share=0.1)
    assert (len(fit), len(validation)) == (72_000, 8_000)


def test_read_recbole_reads_a_path(tmp_path):
    path = tmp_path / "ml.user"
    path.write_text(USER)
    assert read_recbole(path).equals(read_recbole(USER))
    assert isinstance(read_recbole(path.read_bytes()), pd.DataFrame)


def test_smoothed_means_shrink_towards_the_global_mean():
    # Global mean 3; "a": (5 + 3 + 1 * 3) / (2 + 1) = 11/3; "b": (1 + 3) / 2 = 2; unseen "c": 3.
    means, counts = smoothed_means(np.array(["a", "a", "b"]), np.array([5.0, 3.0, 1.0]), np.array(["a", "b", "c"]), 1.0)
    assert means == pytest.approx([11 / 3, 2.0, 3.0])
    assert counts.tolist() == [2, 1, 0]


def test_out_of_fold_means_never_use_the_rows_own_label():
    keys = np.array(["a", "a", "a", "b"])
    folds = np.array([0, 1, 0, 1])
    # Fold 0 from rows 1 and 3 (mean 3.5): "a" = (3 + 3.5) / 2 = 3.25 over 1 row (x2 for 2 folds).
    # Fold 1 from rows 0 and 2 (mean 3): "a" = (5 + 1 + 3) / 3 = 3; "b" unseen = 3 over 0 rows.
    means, counts = out_of_fold_means(keys, np.array([5.0, 3.0, 1.0, 4.0]), folds, weight=1.0)
    assert means == pytest.approx([3.25, 3.0, 3.25, 3.0])
    assert counts.tolist() == [2, 4, 2, 0]
    changed, _ = out_of_fold_means(keys, np.array([1.0, 3.0, 1.0, 4.0]), folds, weight=1.0)
    assert changed[0] == pytest.approx(3.25)  # row 0's own label changed, its feature did not
    # Rows of the other fold see it: rows 0 and 2 now have mean 1, "a" = (1 + 1 + 1) / 3.
    assert changed[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two folds"):
        out_of_fold_means(keys, np.ones(4), np.zeros(4))
