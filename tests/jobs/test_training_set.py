"""Training sets: the gate catches leaking or broken builds, and the manifest records everything a
rebuild or a training run needs (the catalogue's version, the code version, the views' code)."""

import json
from datetime import date, datetime, timedelta

import pytest

from lakecart import delta, lineage, tables
from lakecart.features import customer_orders_v1, item_demand_v2, user_activity_v2, user_sequences_v1
from lakecart.features import user as user_module
from lakecart.features import windows as windows_module
from lakecart.features.definitions import SCHEME_1_BEFORE_FEATURE_SPECS
from lakecart.jobs import training_set
from lakecart.jobs.materialize import run_materialize
from lakecart.quality import validate_dataframe
from tests.features.test_fingerprint import edited_copy
from tests.jobs.test_feature_store import START, apply_only, publish, silver_rows

CHURN_COLUMNS = (
    "user_id string, observation_date date, label_time timestamp, churned int, split string, "
    "feature_time__user_activity_v2 timestamp, feature_time__user_sequences_v1 timestamp, "
    "feature_time__customer_orders_v1 timestamp"
)
LABEL_TIME = datetime(2026, 3, 8)  # observation Mar 7, features as of midnight after it
KNOWN = datetime(2026, 3, 8)  # Mar 7's feature rows became known at midnight: fresh, not from the future


def churn_set(spark, **change):
    """Four train and four test rows, half churned on each split, every row with every view's
    features; ``change``: row index -> the fields to replace in that row."""
    rows = []
    for n in range(8):
        split, observed, label_time = (
            ("train", date(2026, 3, 1), datetime(2026, 3, 2)) if n < 4 else ("test", date(2026, 3, 7), LABEL_TIME)
        )
        row = {
            "user_id": f"u{n}",
            "observation_date": observed,
            "label_time": label_time,
            "churned": n % 2,
            "split": split,
            "feature_time__user_activity_v2": label_time,
            "feature_time__user_sequences_v1": label_time - timedelta(hours=12),
            "feature_time__customer_orders_v1": label_time,
        }
        row.update(change.get(f"row{n}", {}))
        rows.append(tuple(row.values()))
    return spark.createDataFrame(rows, CHURN_COLUMNS)


def gate(frame, tmp_path):
    return validate_dataframe(frame, "training.churn", training_set.training_set_expectations("churn"), tmp_path)


def failed(outcome, text):
    return [f for f in outcome.failures if text in f]


def test_the_churn_gate_passes_a_correct_set(spark, tmp_path):
    outcome = gate(churn_set(spark), tmp_path)
    assert outcome.success, outcome.summary()


def test_the_churn_gate_fails_a_feature_row_newer_than_its_label(spark, tmp_path):
    # Row 5's activity features became known an hour after its label time: leakage.
    leaking = churn_set(spark, row5={"feature_time__user_activity_v2": LABEL_TIME + timedelta(hours=1)})
    outcome = gate(leaking, tmp_path)
    assert not outcome.success
    assert len(outcome.failures) == 1 and failed(outcome, "feature_time__user_activity_v2"), outcome.summary()


def test_the_churn_gate_fails_a_feature_row_older_than_the_time_to_live(spark, tmp_path):
    # user_sequences_v1 has a 2-day TTL: a row known exactly 2 days before the label is stale
    # (fresh means label time - available_at < TTL).
    stale = churn_set(spark, row6={"feature_time__user_sequences_v1": LABEL_TIME - timedelta(days=2)})
    outcome = gate(stale, tmp_path)
    assert not outcome.success
    assert len(outcome.failures) == 1 and failed(outcome, "feature_time__user_sequences_v1"), outcome.summary()


def test_the_churn_gate_fails_a_split_where_everyone_churned(spark, tmp_path):
    # Features of a day without data: every test-split user looks inactive and churns (rate 4/4 = 1).
    everyone = churn_set(spark, row4={"churned": 1}, row6={"churned": 1})
    outcome = gate(everyone, tmp_path)
    assert not outcome.success
    assert len(outcome.failures) == 1 and failed(outcome, "churned"), outcome.summary()


def test_the_churn_gate_fails_a_split_where_most_labels_got_no_features(spark, tmp_path):
    # 3 of the 4 test rows got no user_sequences_v1 row: coverage 1/4 < its 0.3 floor (train: 4/4).
    missing = {"feature_time__user_sequences_v1": None}
    sparse = churn_set(spark, row4=missing, row5=missing, row6=missing)
    outcome = gate(sparse, tmp_path)
    assert not outcome.success
    assert len(outcome.failures) == 1 and failed(outcome, "feature_time__user_sequences_v1"), outcome.summary()


def test_rebuild_accepts_a_manifest_of_the_old_fingerprint_scheme_and_names_changed_code(tmp_path, monkeypatch):
    kind = training_set.KINDS["churn"]
    current = training_set.view_lineage(kind)
    assert training_set.changed_views(kind, current) == []
    # A manifest written before scheme 2 recorded only the version and the scheme-1 fingerprint (of
    # the views churn read then: customer_orders_v1 came later).
    old = {
        v.qualified_name: {"version": v.version, "fingerprint": SCHEME_1_BEFORE_FEATURE_SPECS[v.table_name]}
        for v in (user_activity_v2, user_sequences_v1)
    }
    assert training_set.changed_views(kind, old) == []
    # One recorded before the views were split into tiles (the same rows: ``refactored_from``).
    before_tiles = {
        v.qualified_name: {"version": v.version, "fingerprint": v.refactored_from[0], "fingerprint_scheme": 2}
        for v in (user_activity_v2, user_sequences_v1)
    }
    assert training_set.changed_views(kind, before_tiles) == []
    unknown = {name: {**entry, "fingerprint": "0" * 16} for name, entry in before_tiles.items()}
    assert len(training_set.changed_views(kind, unknown)) == 2
    edited = edited_copy(user_module, "RECENT_N = 10", "RECENT_N = 5", tmp_path)
    monkeypatch.setattr(user_module, "RECENT_N", edited.RECENT_N)
    # Both views read RECENT_N (through daily_user_partials_v2).
    problems = training_set.changed_views(kind, current)
    assert [p.split(" ")[0] for p in problems] == [user_activity_v2.qualified_name, user_sequences_v1.qualified_name]
    assert all("lakecart.features.user.RECENT_N" in p for p in problems)


def test_a_set_is_rebuilt_from_the_views_its_manifest_recorded():
    # churn reads customer_orders_v1 since after this manifest was written: its rebuild joins the
    # two views it was built from, not three (nor fails on the view the manifest does not name).
    kind = training_set.KINDS["churn"]
    assert customer_orders_v1 in kind.views
    recorded = {v.qualified_name: {} for v in (user_sequences_v1, user_activity_v2)}
    assert training_set.recorded_views(kind, recorded) == (user_activity_v2, user_sequences_v1)
    # A view recorded then but no longer read by the kind is still joined; one gone from code cannot be.
    recorded[item_demand_v2.qualified_name] = {}
    assert training_set.recorded_views(kind, recorded) == (user_activity_v2, user_sequences_v1, item_demand_v2)
    with pytest.raises(training_set.NotRebuildable, match="features.user_activity_v0"):
        training_set.recorded_views(kind, {**recorded, "features.user_activity_v0": {}})


def test_a_retrieval_manifest_pins_the_catalogue_and_the_code_and_its_rows_pass_the_gate(
    spark, settings, tmp_path, monkeypatch
):
    views = ("user_activity_v1", "user_sequences_v1", "item_popularity_v1")
    publish(spark, settings, silver_rows(START, 3))  # Mar 1..3
    apply_only(spark, settings, *views)
    run_materialize(spark, settings, START, START + timedelta(days=2), list(views))
    items_path = tables.table_path(tables.SILVER_ITEMS, settings)
    catalogue = spark.createDataFrame([(f"i{n}", f"c{n % 2}") for n in range(4)], "item_id string, category string")
    delta.merge_by_key(catalogue, items_path, ["item_id"])
    delta.merge_by_key(catalogue.limit(1), items_path, ["item_id"])  # a second commit: version 1
    # Interactions of Mar 2..3, test split Mar 3; u1 buys on Mar 2 and u0 on Mar 3 (silver_rows'
    # ordinals), so each split has both labels of the ranking task.
    params = training_set.BuildParams(end=START + timedelta(days=2), days=2, test_days=1)
    manifest = training_set.run_training_set(spark, settings, "retrieval", params, shards=1)
    assert manifest["input_versions"][tables.SILVER_ITEMS] == delta.latest_version(spark, items_path) == 1
    assert manifest["code_version"] == lineage.code_version()
    assert manifest["code_version"]["package"] and "commit" in manifest["code_version"]
    recorded = manifest["feature_views"]["features.user_activity_v1"]
    assert recorded["code"]["lakecart.features.user.combine_user_activity"]

    # The rows actually built pass the gate (every label has features: the users browse daily).
    rows = spark.read.format("delta").load(tables.table_path("training.retrieval", settings))
    outcome = validate_dataframe(
        rows, "training.retrieval", training_set.training_set_expectations("retrieval"), tmp_path
    )
    assert outcome.success, outcome.summary()

    # A helper of user_activity_v1 is edited without a new version: rebuild names the view and the helper.
    edited = edited_copy(
        windows_module,
        "fanned = fan_out(partials, day_col, max(windows), start, end)",
        "fanned = fan_out(partials, day_col, max(windows) + 1, start, end)",
        tmp_path,
    )
    monkeypatch.setattr(user_module, "windowed_sums", edited.windowed_sums)
    with pytest.raises(RuntimeError, match=r"features\.user_activity_v1 .*lakecart\.features\.windows\.windowed_sums"):
        training_set.rebuild(spark, settings, manifest["dataset_id"])


def retrieval_set(spark, event_types):
    known = datetime(2026, 3, 8)
    rows = [
        (f"e{n}", f"u{n % 3}", f"i{n}", "c", event_type, None, known + timedelta(hours=n), date(2026, 3, 8),
         "train" if n < len(event_types) // 2 else "test", known, known, known)
        for n, event_type in enumerate(event_types)
    ]  # fmt: skip
    return spark.createDataFrame(
        rows,
        "event_id string, user_id string, item_id string, category string, event_type string, device string, "
        "event_time timestamp, event_date date, split string, feature_time__user_activity_v1 timestamp, "
        "feature_time__user_sequences_v1 timestamp, feature_time__item_popularity_v1 timestamp",
    )


def test_the_retrieval_gate_takes_a_shop_that_sends_only_orders_but_not_a_split_without_purchases(spark, tmp_path):
    def expectations():
        return training_set.training_set_expectations("retrieval")

    # Only purchases (an order export): retrieval learns from them; ranking, which needs views, says so itself.
    orders_only = retrieval_set(spark, ["purchase"] * 4)
    outcome = validate_dataframe(orders_only, "training.retrieval", expectations(), tmp_path / "a")
    assert outcome.success, outcome.summary()
    browsing_only = retrieval_set(spark, ["purchase", "product_view", "product_view", "product_view"])
    outcome = validate_dataframe(browsing_only, "training.retrieval", expectations(), tmp_path / "b")
    assert not outcome.success and failed(outcome, "positive_rate"), outcome.summary()


def stored_rows(settings, dataset_id):
    """Each file of a training set, in the order workers read them, as its rows' event ids in order."""
    from lakecart.training.data import dataset_fragments

    uri = tables.table_path("training.retrieval", settings)
    return [
        fragment.to_table(columns=["event_id"]).column(0).to_pylist() for fragment in dataset_fragments(uri, dataset_id)
    ]


def test_a_set_is_stored_in_one_order_however_it_was_computed_and_when_rebuilt(spark, settings):
    """Training reads files and rows in stored order, and the model version pins the rows' content,
    not their order: the same set, computed with other shuffle partitions or rebuilt from its manifest,
    must be stored the same way, or one version trains on different batches. A rebuild also wrote its
    rows unsharded, so an entity's rows could span files (and workers)."""
    views = ("user_activity_v1", "user_sequences_v1", "item_popularity_v1")
    publish(spark, settings, silver_rows(START, 3))
    apply_only(spark, settings, *views)
    run_materialize(spark, settings, START, START + timedelta(days=2), list(views))
    catalogue = spark.createDataFrame([(f"i{n}", f"c{n % 2}") for n in range(4)], "item_id string, category string")
    delta.merge_by_key(catalogue, tables.table_path(tables.SILVER_ITEMS, settings), ["item_id"])
    params = training_set.BuildParams(end=START + timedelta(days=2), days=2, test_days=1)
    first = training_set.run_training_set(spark, settings, "retrieval", params, shards=2)
    stored = stored_rows(settings, first["dataset_id"])
    assert len(stored) == 2 and sum(map(len, stored)) == sum(first["rows"].values())
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "5")
        again = training_set.run_training_set(spark, settings, "retrieval", params, shards=2)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    assert again["content_hash"] == first["content_hash"]
    assert stored_rows(settings, first["dataset_id"]) == stored
    assert training_set.rebuild(spark, settings, first["dataset_id"], write=True)["identical"]
    assert stored_rows(settings, first["dataset_id"]) == stored
    # A rebuild whose rows differ from the recorded ones (here its manifest's window was edited) must
    # not replace the stored set: a pinned set stays the rows its models were trained and scored on.
    path = tables.table_path(tables.TRAINING_MANIFESTS, settings)
    manifest = training_set.load_manifest(spark, settings, first["dataset_id"])
    manifest["params"] = {**manifest["params"], "days": 3}
    edited = spark.createDataFrame([(first["dataset_id"], json.dumps(manifest))], "dataset_id string, manifest string")
    delta.merge_by_key(edited, path, ["dataset_id"])
    result = training_set.rebuild(spark, settings, first["dataset_id"], write=True)
    assert not result["identical"] and not result["written"]
    assert stored_rows(settings, first["dataset_id"]) == stored
