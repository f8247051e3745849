"""The publish gate and the write-back: a worse model never replaces the published one, publishing
needs a passed gate, and publishing twice leaves the same tables."""

from __future__ import annotations

import json

import pytest
from deltalake import DeltaTable

from lakecart import tables

from .conftest import END
from .test_trainers import train

DATASET = f"churn_{END:%Y%m%d}"


def read(settings, name):
    return DeltaTable(tables.table_path(name, settings)).to_pandas()


def test_gate_then_publish_then_hold_back_a_worse_model(tiny_lake, tmp_path):
    from lakecart.training.publish import GateClosed, evaluate_candidate, publish, run_root_for

    settings = tiny_lake
    # Runs live where the CLI puts them, so the gate can find the champion's artefacts.
    root = run_root_for(settings, "churn", DATASET)
    good, good_dir = train(settings, "churn", tmp_path, root, epochs=10, global_batch_size=64, learning_rate=0.003)

    with pytest.raises(GateClosed, match="not been evaluated"):
        publish(settings, "churn", DATASET, END)
    first = evaluate_candidate(settings, "churn", DATASET)
    assert first["publish"] and first["champion"] is None
    summary = publish(settings, "churn", DATASET, END)
    scores = read(settings, tables.CHURN_SCORES)
    assert summary["tables"] == {tables.CHURN_SCORES: len(scores)}
    assert set(scores["model_version"]) == {good["model_version"]}
    assert {"user_id", "churn_probability", "horizon_days", "model_version", "created_at"} <= set(scores.columns)
    publish(settings, "churn", DATASET, END)  # again: same rows, no duplicates
    assert len(read(settings, tables.CHURN_SCORES)) == len(scores)
    registry = read(settings, tables.MODEL_REGISTRY)
    assert len(registry) == 1 and registry["status"].tolist() == ["published"]
    row = registry.iloc[0]
    assert (row["model"], row["dataset_id"], row["primary_metric"]) == ("churn", DATASET, "pr_auc")
    assert json.loads(row["metrics"])["test"]["pr_auc"] == pytest.approx(row["primary_value"])
    assert (good_dir / "weights").is_dir() and row["artifact_path"] == str(good_dir.resolve())

    # A barely trained model: the gate re-scores the champion on the same held-out rows and holds it back.
    weak, _ = train(settings, "churn", tmp_path, root, epochs=1, global_batch_size=64, learning_rate=1e-6)
    second = evaluate_candidate(settings, "churn", DATASET)
    assert second["champion"] == good["model_version"] and not second["publish"]
    assert second["champion_test"]["pr_auc"] == pytest.approx(good["test"]["pr_auc"], abs=1e-6)
    with pytest.raises(GateClosed, match="holds"):
        publish(settings, "churn", DATASET, END)
    assert set(read(settings, tables.CHURN_SCORES)["model_version"]) == {good["model_version"]}
    # Both models are in the registry; only the published one is the champion.
    statuses = read(settings, tables.MODEL_REGISTRY).set_index("model_version")["status"].to_dict()
    assert statuses == {good["model_version"]: "published", weak["model_version"]: "held_back"}
