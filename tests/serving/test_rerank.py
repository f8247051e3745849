"""The ranking model's serving export scores exactly as training's own predictions, from raw ids and
the feature store's raw values (no feature code in serving); what the registry publishes is loaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakecart import tables
from tests.training.conftest import END, _write, own_lake, tiny_lake  # noqa: F401 (fixtures)

DATASET = f"retrieval_{END:%Y%m%d}"


@pytest.fixture(scope="module")
def ranking_run(tiny_lake, tmp_path_factory):  # noqa: F811
    """One tiny ranking run (one epoch): the trained model, its task and its run folder."""
    from lakecart.training.publish import load_trained
    from tests.training.test_trainers import train

    metrics, run_dir = train(tiny_lake, "ranking", tmp_path_factory.mktemp("ranking"), epochs=1, global_batch_size=64)
    task, model = load_trained(tiny_lake, "ranking", run_dir, DATASET)
    return task, model, run_dir, metrics


def test_the_scorer_gives_trainings_scores_from_raw_ids_and_feature_values(ranking_run):
    from lakecart.serving.rerank import SCORER, Ranker

    task, model, run_dir, metrics = ranking_run
    assert metrics["artifacts"] == {SCORER: str(run_dir / SCORER)}
    ranker = Ranker.load(run_dir / SCORER, metrics["model_version"])
    assert ranker.feature_names == task.state["features"]
    user_columns = [c for c in ranker.feature_names if c.startswith("user_activity_v1__")]
    item_columns = [c for c in ranker.feature_names if c.startswith("item_popularity_v1__")]
    assert user_columns and item_columns and len(user_columns) + len(item_columns) == len(ranker.feature_names)

    test = task.read_split("test")
    user = test["user_id"].iloc[0]
    frame = test[test["user_id"] == user].drop_duplicates("item_id").head(5).assign(device="mobile")
    # One user row for every candidate, as the online store holds it (training rows differ by day).
    frame = frame.assign(**frame.iloc[0][user_columns].to_dict())
    # An item the model never saw, without feature rows: out-of-vocabulary ids, missing features.
    unknown = frame.iloc[:1].assign(item_id="i-new", category=None, **{c: np.nan for c in item_columns})
    frame = pd.concat([frame, unknown], ignore_index=True)
    # Scores from the training code: its own category column and numeric preparation.
    expected = task.predict(model, frame.assign(category=frame["category"].fillna("")))[:, 0]

    user_row = frame.iloc[0][user_columns].to_dict()
    item_rows = [row[item_columns].to_dict() for _, row in frame.iloc[:-1].iterrows()] + [None]
    scores = ranker.score(user, frame["item_id"].tolist(), user_row, item_rows, device="mobile")
    assert scores.shape == (len(frame),)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    # The features do matter: without the user's row the scores change.
    assert not np.allclose(ranker.score(user, frame["item_id"].tolist(), None, item_rows, device="mobile"), expected)


def test_the_published_ranking_model_or_baseline_is_what_serving_loads(ranking_run, own_lake):  # noqa: F811
    from lakecart.serving.rerank import FeatureRanker, NoRankingModel, Ranker, load_published
    from lakecart.training.tasks.ranking import BASELINE

    _, _, run_dir, metrics = ranking_run
    with pytest.raises(NoRankingModel, match="no ranking model is published"):
        load_published(own_lake)

    columns = ["model_version", "model", "dataset_id", "status", "kind", "artifact_path", "outputs_path", "params"]

    def registry(version: str, kind: str, artifact: str, params: str) -> None:
        """The registry with one published ranking row (the table is overwritten)."""
        row = [(version, "ranking", DATASET, "published", kind, artifact, artifact, params)]
        frame = pd.DataFrame(row, columns=columns).assign(created_at=pd.Timestamp(END, tz="UTC"))
        _write(own_lake, tables.MODEL_REGISTRY, frame)

    registry(metrics["model_version"], "model", str(run_dir), "{}")
    ranker = load_published(own_lake)
    assert isinstance(ranker, Ranker) and ranker.model_version == metrics["model_version"]

    registry("ranking-x-baseline-item_conversion_rate", "baseline", "x", '{"baseline": "item_conversion_rate"}')
    baseline = load_published(own_lake)
    assert isinstance(baseline, FeatureRanker) and baseline.model_version.endswith("baseline-item_conversion_rate")
    # Scores are the items' conversion rates; an item without a row scores 0.
    scores = baseline.score("u1", ["a", "b", "c"], {}, [{BASELINE: 0.4}, {BASELINE: 0.1}, None])
    np.testing.assert_allclose(scores, [0.4, 0.1, 0.0])

    registry("ranking-old", "model", str(run_dir.parent / "no-such-run"), "{}")
    with pytest.raises(NoRankingModel, match="has no serving export"):
        load_published(own_lake)


def test_feature_values_are_placed_by_column_name():
    from lakecart.serving.rerank import feature_matrix

    matrix = feature_matrix(["u__a", "i__b"], {"u__a": 2, "other": 9}, [{"i__b": 1.5}, None, {"i__b": "x", "u__a": 7}])
    # The user's value fills every row unless the item row carries the column; missing and
    # non-numeric values are NaN (the model treats them as 0, like training's missing values).
    np.testing.assert_array_equal(matrix, np.array([[2, 1.5], [2, np.nan], [7, np.nan]], dtype="float32"))
