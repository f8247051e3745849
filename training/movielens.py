"""MovieLens-100K in the shape of the TensorFlow Recommenders tutorials (TFDS ``movielens/100k-ratings``),
built from the copy that ships in the ``recbole`` wheel, and the tutorials' 80/20 split.

RecBole's files are tab-separated with typed headers (``user_id:token``, ``rating:float``); its
item file keeps the title without the year and the year in ``release_year`` (``unkonwn`` for the
one movie without a date). TFDS' ``movie_title`` is ``"Toy Story (1995)"``, and the tutorials use it
as the candidate id: title + year gives the same 1,664 distinct titles over 1,682 movies.

Also here: smoothed mean ratings per user or movie (:func:`smoothed_means`), computed out of fold
on the training rows (:func:`out_of_fold_means`) so a row's own rating never feeds its feature.

The tutorials shuffle all 100,000 ratings once with seed 42 (``reshuffle_each_iteration=False``)
and take the first 80,000 for training and the next 20,000 for test; :func:`tutorial_split` does
the same with a numpy permutation (a different order than TFDS', the same protocol).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

RECBOLE_VERSION = "1.2.1"
RECBOLE_BASE = "recbole/dataset_example/ml-100k/ml-100k"
# TFDS' bucketized_user_age: the MovieLens-1M age groups, each age mapped to its group's lower bound.
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)
UNKNOWN_YEAR = "unkonwn"  # sic, as spelled in the data


def read_recbole(source: bytes | str | Path) -> pd.DataFrame:
    """One RecBole atomic file (bytes, text or a path) -> a frame of strings with the type suffix
    dropped from each header (``user_id:token`` -> ``user_id``)."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, str) and "\t" in source:
        source = io.StringIO(source)
    frame = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [column.split(":", 1)[0] for column in frame.columns]
    return frame


def movie_title(title: str, year: str) -> str:
    """TFDS' title: ``"Toy Story (1995)"``; the movie without a year is ``"unknown"``."""
    if year == UNKNOWN_YEAR or not year:
        return "unknown" if title in ("", UNKNOWN_YEAR) else title
    return f"{title} ({year})"


def bucketize_age(age: np.ndarray | pd.Series) -> np.ndarray:
    """Age -> the lower bound of its MovieLens-1M age group (1, 18, 25, 35, 45, 50, 56)."""
    buckets = np.asarray(AGE_BUCKETS)
    positions = np.searchsorted(buckets, np.asarray(age, dtype="int64"), side="right") - 1
    return buckets[np.clip(positions, 0, len(buckets) - 1)]


def item_frame(items: pd.DataFrame) -> pd.DataFrame:
    """RecBole's item file -> ``movie_id, movie_title, movie_genres`` (list), ``release_year``
    (float, NaN when unknown)."""
    return pd.DataFrame(
        {
            "movie_id": items["item_id"],
            "movie_title": [
                movie_title(t, y) for t, y in zip(items["movie_title"], items["release_year"], strict=True)
            ],
            "movie_genres": items["class"].str.split(" "),
            "release_year": pd.to_numeric(items["release_year"], errors="coerce"),
        }
    )


def movielens_frames(inter: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """The three RecBole frames -> one row per rating, in file order, with TFDS' column names:
    ``user_id, movie_id, movie_title, user_rating, timestamp, raw_user_age, bucketized_user_age,
    user_gender, user_occupation_text, user_zip_code, movie_genres`` (list of genres) and
    ``release_year`` (float, NaN when unknown). Ids stay strings."""
    users = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "raw_user_age": users["age"].astype("int64"),
            "bucketized_user_age": bucketize_age(users["age"]),
            "user_gender": users["gender"],
            "user_occupation_text": users["occupation"],
            "user_zip_code": users["zip_code"],
        }
    )
    ratings = pd.DataFrame(
        {
            "user_id": inter["user_id"],
            "movie_id": inter["item_id"],
            "user_rating": inter["rating"].astype("float32"),
            "timestamp": inter["timestamp"].astype("int64"),
        }
    )
    out = ratings.merge(item_frame(items), on="movie_id", how="left", validate="m:1").merge(
        users, on="user_id", how="left", validate="m:1"
    )
    missing = out["movie_title"].isna() | out["user_gender"].isna()
    if missing.any():
        raise ValueError(f"{int(missing.sum())} ratings refer to a movie or user missing from the item/user files")
    columns = ["user_id", "movie_id", "movie_title", "user_rating", "timestamp", *users.columns[1:]]
    return out[[*columns, "movie_genres", "release_year"]]


def movies_frame(items: pd.DataFrame) -> pd.DataFrame:
    """The candidate catalogue: one row per distinct ``movie_title`` (its first movie id), sorted
    by title."""
    return item_frame(items).drop_duplicates("movie_title").sort_values("movie_title").reset_index(drop=True)


def load_movielens_100k(cache: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings, movies) from the ``recbole==1.2.1`` wheel, downloaded once into ``cache``."""
    from lakecart.jobs.presets import wheel_member

    def read(suffix: str) -> pd.DataFrame:
        return read_recbole(wheel_member("recbole", RECBOLE_VERSION, f"{RECBOLE_BASE}.{suffix}", Path(cache)))

    items = read("item")
    return movielens_frames(read("inter"), items, read("user")), movies_frame(items)


def tutorial_split(n: int, seed: int = 42, train: int = 80_000, test: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and test sets: one permutation of ``range(n)`` with ``seed``,
    the first ``train`` positions, then the next ``test``."""
    if train + test > n:
        raise ValueError(f"train + test = {train + test} exceeds the {n} rows")
    order = np.random.default_rng(seed).permutation(n)
    return order[:train], order[train : train + test]


def validation_split(train_rows: np.ndarray, share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The last ``share`` of the (already shuffled) training positions is held out for tuning:
    (fit rows, validation rows). The test split is never looked at."""
    cut = len(train_rows) - int(round(len(train_rows) * share))
    return train_rows[:cut], train_rows[cut:]


def smoothed_means(
    keys_fit: np.ndarray, labels_fit: np.ndarray, keys_apply: np.ndarray, weight: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """For each key of ``keys_apply``: the mean label of its rows in the fit set, shrunk towards the
    fit set's global mean as if ``weight`` more rows had the global mean, and its number of rows
    there: ``((sum + weight * mean) / (count + weight), count)``. Unseen keys get the global mean."""
    labels_fit = np.asarray(labels_fit, dtype="float64")
    overall = labels_fit.mean()
    stats = (
        pd.DataFrame({"key": np.asarray(keys_fit), "label": labels_fit}).groupby("key")["label"].agg(["sum", "count"])
    )
    keys = pd.Series(np.asarray(keys_apply))
    sums = keys.map(stats["sum"]).fillna(0.0).to_numpy(dtype="float64")
    counts = keys.map(stats["count"]).fillna(0.0).to_numpy(dtype="float64")
    return (sums + weight * overall) / (counts + weight), counts


def out_of_fold_means(
    keys: np.ndarray, labels: np.ndarray, folds: np.ndarray, weight: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`smoothed_means` for training rows without their own label: each row gets the
    statistics of the rows in the other folds (``folds``: a fold number per row). Counts are scaled
    by ``k / (k - 1)`` for ``k`` folds, to the scale of counts over all the training rows."""
    keys, labels, folds = np.asarray(keys), np.asarray(labels), np.asarray(folds)
    distinct = np.unique(folds)
    if len(distinct) < 2:
        raise ValueError("out-of-fold statistics need at least two folds")
    means, counts = np.zeros(len(keys)), np.zeros(len(keys))
    for fold in distinct:
        inside = folds == fold
        means[inside], counts[inside] = smoothed_means(keys[~inside], labels[~inside], keys[inside], weight)
    return means, counts * len(distinct) / (len(distinct) - 1)
