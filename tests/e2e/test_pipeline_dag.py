"""End-to-end: Airflow runs the real DAGs (``airflow dags test``, SQLite) over tiny generated raw
logs, the pipeline and then the training DAG; every task is the real CLI in the pipeline
environment: Spark + Delta, GX, horovodrun --gloo -np 2. Then the Delta outputs are read back with
delta-rs."""

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakecart import tables
from lakecart.config import LakeSettings, Settings
from lakecart.demo import START, TRAINING_DAG_ID, run_dag, training_conf
from lakecart.jobs.generate import GeneratorSpec, generate
from lakecart.training.data import read_shard
from lakecart.training.tasks.ranking import view_purchase_pairs

DAYS = 5
END = date(2026, 1, DAYS)
CONF = {"lookback_days": DAYS - 1}
TINY = GeneratorSpec(
    users=60,
    items=30,
    categories=5,
    days=DAYS,
    events_per_day=400,
    start_date=START,
    defects={"malformed_json": 2, "duplicate_event": 1},
)


def read(settings, name, **kwargs):
    return DeltaTable(tables.table_path(name, settings)).to_pandas(**kwargs)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-good")
    manifest = generate(TINY, root / "raw")
    state, output = run_dag(root, END, CONF, capture=True)
    return root, manifest, state, output


@pytest.fixture(scope="module")
def training_run(good_run):
    """The training DAG on the pipeline run's lake (a scheduler would start it from the feature assets)."""
    root = good_run[0]
    assert good_run[2] == "success"
    state, output = run_dag(root, END, training_conf(DAYS, test_days=1), capture=True, dag_id=TRAINING_DAG_ID)
    return root, state, output


def test_pipeline_dag_succeeds(good_run):
    _, _, state, output = good_run
    assert state == "success", output[-5000:]


def test_counts_reconcile_from_raw_to_silver(good_run):
    root, manifest, _, _ = good_run
    settings = Settings(lake=LakeSettings(root=str(root)))
    bronze, silver = read(settings, tables.BRONZE_EVENTS), read(settings, tables.SILVER_EVENTS)
    quarantine = read(settings, tables.QUARANTINE_EVENTS)
    assert len(bronze) == manifest["raw_lines"]
    planted = manifest["planted_defects"]
    assert len(quarantine) == planted["malformed_json"]
    assert set(quarantine["reject_reason"]) == {"malformed_record"}
    assert len(silver) == len(bronze) - planted["malformed_json"] - planted["duplicate_event"]
    assert silver["event_id"].is_unique
    # Orders and user exports took their own path (ingest_orders, ingest_users) into silver.
    assert len(read(settings, tables.SILVER_ORDER_LINES)) == manifest["order_lines"]
    assert len(read(settings, tables.SILVER_USERS)) == manifest["users"]


def test_feature_tables(good_run):
    root, _, _, _ = good_run
    settings = Settings(lake=LakeSettings(root=str(root)))
    users = read(settings, "features.user_activity_v1")
    assert {"user_id", "feature_date", "available_at", "views_7d", "spend_28d"} <= set(users.columns)
    assert not users.duplicated(["user_id", "feature_date"]).any()
    # Every declared view was applied (registry) and materialised for every day.
    from lakecart.features import REGISTRY

    registry = read(settings, tables.FEATURE_REGISTRY).set_index("table")
    assert set(registry.index) == {v.qualified_name for v in REGISTRY.values()}
    assert set(registry["status"]) == {"active"}
    # The generator sends no promotions: views of silver.promotions are applied but have no rows.
    for view in REGISTRY.values():
        days = set(read(settings, view.qualified_name, columns=["feature_date"])["feature_date"])
        assert len(days) == (0 if view.source == "silver.promotions" else DAYS), view.qualified_name


def test_a_training_set_built_on_the_published_features_is_point_in_time_correct(good_run):
    """The training DAG's first command, on the pipeline's real output."""
    root = good_run[0]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lakecart"), "dataset", "build", "retrieval", "--date", str(END),
         "--days", str(DAYS), "--test-days", "1"],
        env={**os.environ, "LAKECART_LAKE__ROOT": str(root)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    settings = Settings(lake=LakeSettings(root=str(root)))
    training = read(settings, tables.TRAINING_RETRIEVAL)
    assert set(training["split"]) == {"train", "test"}
    joined = training.dropna(subset=["user_activity_v1__views_7d"])
    assert len(joined) > 0.5 * len(training)
    # No feature row used was known after its label (point-in-time correctness on real output).
    used = training.dropna(subset=["feature_time__user_activity_v1"])
    assert len(used) == len(joined)
    assert (used["feature_time__user_activity_v1"] <= used["event_time"]).all()
    manifest = json.loads(read(settings, tables.TRAINING_MANIFESTS)["manifest"].iloc[0])
    assert manifest["input_versions"]["silver.events"] >= 0
    # Workers shard by file; a user's rows share one file, so the ranking examples two workers build
    # from their shards (views paired with same-day purchases) are exactly those one worker builds.
    uri, dataset_id = tables.table_path(tables.TRAINING_RETRIEVAL, settings), manifest["dataset_id"]
    whole = view_purchase_pairs(read_shard(uri, dataset_id, 0, 1))
    halves = pd.concat([view_purchase_pairs(read_shard(uri, dataset_id, rank, 2)) for rank in (0, 1)])
    assert len(halves) == len(whole) and halves["label"].sum() == whole["label"].sum() > 0


# The training DAG through Airflow: slow tier (about 7 more minutes of JVM and TensorFlow start-ups).
# The default run executes every one of its task commands for real (tests/training: `lakecart train`
# on 1 and 2 Gloo workers and inside Spark tasks, the gate, publish; tests/jobs: dataset builds) and
# checks its wiring and data-date rendering (tests/dags); `make demo` runs it whole.
@pytest.mark.slow
def test_every_model_is_trained_gated_and_published(training_run):
    root, state, output = training_run
    assert state == "success", output[-5000:]
    settings = Settings(lake=LakeSettings(root=str(root)))
    registry = read(settings, tables.MODEL_REGISTRY)
    assert registry["model_version"].is_unique
    # One published answer per model: the model itself, or its best baseline when the model did not
    # beat it (tiny data: either can happen; the gate's rule is tested in tests/training).
    published = registry[registry["status"] == "published"]
    assert sorted(published["model"]) == ["category_demand", "churn", "demand", "ranking", "retrieval"]
    for row in published.itertuples():
        run = Path(row.artifact_path) if row.kind == "model" else Path(row.artifact_path).parents[1]
        gate = json.loads((run / "evaluation.json").read_text())
        assert gate["publish"] is True and gate["decision"] == ("candidate" if row.kind == "model" else "baseline")
        assert (run / "metrics.json").exists() and list(run.glob("*.png")) and (run / "tensorboard").is_dir()
        assert json.loads((run / "metrics.json").read_text())["params"]["workers"] == 2
    version = dict(zip(published["model"], published["model_version"], strict=True))
    kind = dict(zip(published["model"], published["kind"], strict=True))

    if kind["retrieval"] == "model":  # a baseline has no embeddings
        training = read(settings, tables.TRAINING_RETRIEVAL)
        user_emb, item_emb = read(settings, tables.USER_EMBEDDINGS), read(settings, tables.ITEM_EMBEDDINGS)
        assert set(training["user_id"]) <= set(user_emb["user_id"])
        assert set(training["item_id"]) <= set(item_emb["item_id"])
        assert {"model_version", "embedding", "created_at"} <= set(user_emb.columns)
        assert set(user_emb["model_version"]) == {version["retrieval"]}
    for name in (tables.RECOMMENDATIONS, tables.RANKED_RECOMMENDATIONS):
        recs = read(settings, name)
        assert recs.groupby("user_id")["rank"].apply(sorted).map(lambda r: r == list(range(1, 11))).all(), name
    # The final list re-ranks retrieval's candidates: every item came from them.
    ranked = read(settings, tables.RANKED_RECOMMENDATIONS)
    assert set(ranked["model_version"]) == {version["ranking"]} and (ranked["retrieval_rank"] >= 1).all()
    churn = read(settings, tables.CHURN_SCORES)
    assert churn["churn_probability"].between(0, 1).all() and set(churn["horizon_days"]) == {1}
    forecasts = read(settings, tables.DEMAND_FORECASTS)
    assert set(forecasts["level"]) == {"item", "category"} and set(forecasts["horizon_days"]) == {1}
    assert (forecasts["forecast_units"] >= 0).all()


# Also the slow tier: it needs the training DAG's run. tests/serving serves lakes written by the same
# publish code; `make demo` ends with these requests.
@pytest.mark.slow
def test_the_published_results_are_served_over_http(training_run):
    """The training DAG ends by publishing segments and filling the online store; `lakecart serve`
    (what the demo's last step starts) answers from it as of the morning after the data date."""
    from lakecart.demo import serve_sample

    root, state, _ = training_run
    assert state == "success"
    answers = serve_sample(root, END)
    recommended = answers["recommendations"]
    assert len(recommended["items"]) == 5 and recommended["fallback"] is None
    assert recommended["model_version"].startswith("retrieval-")
    reranked = answers["rerank"]
    assert reranked["model_version"].startswith("ranking-") and reranked["features_missing"] == []
    assert sorted(i["item_id"] for i in reranked["items"]) == sorted(i["item_id"] for i in recommended["items"])
    [row] = answers["features"]["rows"]
    assert row is not None and any(v is not None for k, v in row.items() if k.startswith("user_activity_v2__"))
    settings = Settings(lake=LakeSettings(root=str(root)))
    assert read(settings, tables.USER_SEGMENTS)["user_id"].nunique() > 0


# A second full DAG run: slow tier (`make test-all`). The default run covers the same gate in two
# cheaper halves: tests/jobs/test_ingest.py holds a failing batch back in staging, and
# tests/dags/test_dag_integrity.py proves features (the training DAG's trigger) are published only after
# every validation task.
@pytest.mark.slow
def test_failed_validation_stops_training_and_publishing(tmp_path):
    generate(TINY, tmp_path / "raw")
    # A tracking release stops sending the category on the last day: every record still keeps the
    # raw contract (category is optional), so ingestion accepts it; the silver suite must not.
    day_file = tmp_path / "raw" / "events" / f"event_date={END}" / "events.jsonl"
    lines = []
    for line in day_file.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)
            continue
        record.pop("category")
        lines.append(json.dumps(record))
    day_file.write_text("\n".join(lines) + "\n")

    state, output = run_dag(tmp_path, END, CONF, capture=True)
    assert state == "failed"
    assert "expect_column_values_to_not_be_null(column=category" in output
    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    assert DeltaTable.is_deltatable(tables.table_path(tables.STAGING_SILVER_EVENTS, settings))  # it got that far
    for never in (
        tables.SILVER_EVENTS,  # the failing batch is held back: write-audit-publish
        tables.TRAINING_RETRIEVAL,
        tables.USER_EMBEDDINGS,
        tables.RECOMMENDATIONS,
        "features.user_activity_v1",
    ):
        assert not DeltaTable.is_deltatable(tables.table_path(never, settings)), never
    assert not (tmp_path / "models").exists()
