"""The publish gate and the write-back: a worse model never replaces the published one, publishing
needs a passed gate, and publishing twice leaves the same tables."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakecart import tables
from lakecart.demo import gate_outcome

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


def test_a_model_that_loses_to_its_baseline_is_held_back_and_the_baseline_published(own_lake, tmp_path):
    from lakecart.training.publish import champion, evaluate_candidate, publish, run_root_for

    settings = own_lake
    root = run_root_for(settings, "churn", DATASET)
    # A barely trained model against logistic regression on RFM (the planted rule: inactive > 7
    # days churns) and BG/NBD: it cannot beat the better of them.
    weak, run_dir = train(settings, "churn", tmp_path, root, epochs=1, global_batch_size=64, learning_rate=1e-6)
    key = "pr_auc"
    best = max(weak["baselines"], key=lambda name: weak["baselines"][name][key])
    assert weak["test"][key] < weak["baselines"][best][key]

    gate = evaluate_candidate(settings, "churn", DATASET)
    assert gate["decision"] == "baseline" and gate["baseline"] == best
    assert best in gate["reason"] and weak["model_version"] in gate["reason"]
    summary = publish(settings, "churn", DATASET, END)
    version = f"churn-{END:%Y%m%d}-baseline-{best}"
    assert summary["model_version"] == version
    scores = read(settings, tables.CHURN_SCORES)
    # The baseline's scores for every customer, in the model's table, marked with its name.
    assert set(scores["model_version"]) == {version} and scores["user_id"].is_unique
    model_rows = pd.read_parquet(run_dir / "outputs" / f"{tables.CHURN_SCORES}.parquet")
    assert sorted(scores["user_id"]) == sorted(model_rows["user_id"])  # the same customers
    assert scores["churn_probability"].between(0, 1).all()
    registry = read(settings, tables.MODEL_REGISTRY).set_index("model_version")
    assert registry.loc[weak["model_version"], "status"] == "held_back"
    assert best in registry.loc[weak["model_version"], "reason"]
    assert registry.loc[version, ["status", "kind"]].tolist() == ["published", "baseline"]
    assert registry.loc[version, "primary_value"] == pytest.approx(weak["baselines"][best][key])
    # Lineage: the code version in each registry row and in the gold table's Delta commit.
    assert all(json.loads(v)["package"] for v in registry["code_version"])
    commit = DeltaTable(tables.table_path(tables.CHURN_SCORES, settings)).history(1)[0]
    assert json.loads(commit["userMetadata"])["job"] == "publish"
    assert json.loads(commit["userMetadata"])["model"] == "churn"
    assert (run_dir / "baselines" / best).is_dir()
    # The demo's summary says which happened and why.
    said = gate_outcome(run_dir / "evaluation.json")
    assert said.startswith(f"held back; baseline {best} published instead: ") and gate["reason"] in said

    # A published baseline is no model to re-score: the next candidate that beats the baseline
    # is published, and ranks as the newest published row.
    good, _ = train(settings, "churn", tmp_path, root, epochs=10, global_batch_size=64, learning_rate=0.003)
    gate = evaluate_candidate(settings, "churn", DATASET)
    assert gate["decision"] == "candidate" and gate["champion"] is None
    publish(settings, "churn", DATASET, END + timedelta(days=1))
    assert champion(settings, "churn")["model_version"] == good["model_version"]


def test_ranking_re_ranks_the_published_retrieval_models_candidates(own_lake, tmp_path):
    """Not the newest retrieval run's: that one may be held back by the gate."""
    from lakecart import contracts
    from lakecart.training.publish import run_root_for
    from lakecart.training.tasks.ranking import RankingTask
    from lakecart.training.worker import LATEST

    from .conftest import ITEMS, USERS, _write

    settings = own_lake
    dataset = f"retrieval_{END:%Y%m%d}"
    runs = run_root_for(settings, "retrieval", dataset)

    def retrieval_run(version: str, items: list[str]) -> str:
        outputs = runs / version / "outputs"
        outputs.mkdir(parents=True)
        pd.DataFrame(
            [(u, r + 1, i, 1.0 - r / 100) for u in USERS for r, i in enumerate(items)],
            columns=["user_id", "rank", "item_id", "score"],
        ).astype({"rank": "int32", "score": "float32"}).to_parquet(outputs / "candidates.parquet")
        return str((runs / version).resolve())

    published = retrieval_run("retrieval-published", ITEMS[1::2])  # odd items
    retrieval_run("retrieval-held-back", ITEMS[0::2])  # even items, the newest run
    (runs / LATEST).write_text("retrieval-held-back")
    registry = pd.DataFrame(
        [
            ("retrieval-published", "retrieval", dataset, "published", "model", published, f"{published}/outputs"),
            ("retrieval-held-back", "retrieval", dataset, "held_back", "model", "x", "x/outputs"),
        ],
        columns=["model_version", "model", "dataset_id", "status", "kind", "artifact_path", "outputs_path"],
    ).assign(created_at=pd.Timestamp(END, tz="UTC"))
    _write(settings, tables.MODEL_REGISTRY, registry)

    _, run_dir = train(settings, "ranking", tmp_path, epochs=1, global_batch_size=64)
    ranked = pd.read_parquet(run_dir / "outputs" / f"{tables.RANKED_RECOMMENDATIONS}.parquet")
    assert len(ranked) == len(USERS) * 10 and set(ranked["item_id"]) <= set(ITEMS[1::2])
    assert RankingTask.upstream == contracts.MODEL_UPSTREAM["ranking"]


def test_a_publish_that_would_write_no_table_fails_and_registers_nothing(own_lake, tmp_path):
    from lakecart.training.publish import NothingPublished, evaluate_candidate, publish, run_root_for

    settings = own_lake
    root = run_root_for(settings, "churn", DATASET)
    _, run_dir = train(settings, "churn", tmp_path, root, epochs=2, global_batch_size=64, learning_rate=0.003)
    assert evaluate_candidate(settings, "churn", DATASET)["publish"]
    for table in (run_dir / "outputs").glob("*.parquet"):  # a run that scored nobody
        table.unlink()
    for table in (run_dir / "baselines").glob("*/*.parquet"):
        table.unlink()
    registry_path = tables.table_path(tables.MODEL_REGISTRY, settings)
    before = DeltaTable(registry_path).version() if DeltaTable.is_deltatable(registry_path) else None
    with pytest.raises(NothingPublished, match="no rows for any of its tables"):
        publish(settings, "churn", DATASET, END)
    after = DeltaTable(registry_path).version() if DeltaTable.is_deltatable(registry_path) else None
    assert after == before  # no registry row was written


def test_the_champion_is_what_was_published_last_even_on_the_same_logical_date(settings):
    """Two publishes for one logical date (the training DAG re-run for a day, `publish --force`):
    the later one is the champion, whatever the versions' names sort like."""
    from lakecart.training.publish import _register, champion

    created = pd.Timestamp("2026-01-14", tz="UTC")

    def row(version: str) -> dict:
        return {
            "model_version": version,
            "model": "ranking",
            "kind": "model",
            "status": "published",
            "created_at": created,
            "artifact_path": f"/runs/{version}",
        }

    # "ranking-...-b94b" sorts before "ranking-...-baseline-..." by name; it is published second.
    _register(settings, row("ranking-20260114-baseline-item_conversion_rate"), "publish")
    _register(settings, row("ranking-20260114-b94b131f"), "publish")
    assert champion(settings, "ranking")["model_version"] == "ranking-20260114-b94b131f"
    _register(settings, row("ranking-20260114-baseline-item_conversion_rate"), "publish")  # published again
    assert champion(settings, "ranking")["model_version"] == "ranking-20260114-baseline-item_conversion_rate"
