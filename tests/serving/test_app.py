"""The HTTP service against a real LMDB store on tmp data, a real (tiny, untrained) ranking
SavedModel and a real exact ANN index: every endpoint, bad input (4xx with one clear line, never a
500: the TestClient re-raises any server error), the bearer token, the metrics, and `lakecart serve`
as a process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

USER_VIEWS = "user_activity_v2__views_7d"
ITEM_VIEWS = "item_popularity_v2__views_7d"
TOKEN = "s3cret-token"


def _micros(t: datetime) -> int:
    from lakecart.serving.lookup import to_micros

    return to_micros(t)


@pytest.fixture(scope="module")
def ranker(tmp_path_factory):
    """A tiny DCN (untrained, seeded) exported like a trained one: two features, one per entity."""
    import pandas as pd
    import tensorflow as tf

    from lakecart.serving.rerank import Ranker, export_scorer
    from lakecart.training.inputs import TowerSpec
    from lakecart.training.ranking import DCNRanking

    tf.keras.utils.set_random_seed(3)
    spec = TowerSpec(
        ids={"user_id": ["u1", "u2"], "item_id": ["i1", "i2", "i3"], "category": ["c1", "c2"], "device": ["mobile"]},
        numeric="numeric",
        n_numeric=2,
        embedding_dim=4,
    )
    model = DCNRanking(spec, deep_layers=(8,), objective="binary")
    model(
        {
            "user_id": tf.constant(["u1"]),
            "item_id": tf.constant(["i1"]),
            "category": tf.constant(["c1"]),
            "device": tf.constant(["mobile"]),
            "numeric": tf.zeros((1, 2)),
        }
    )
    catalogue = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "category": ["c1", "c2", "c1"]})
    path = export_scorer(model, [USER_VIEWS, ITEM_VIEWS], catalogue, tmp_path_factory.mktemp("rank") / "scorer")
    return Ranker.load(path, "ranking-20260110-test")


@pytest.fixture(scope="module")
def index():
    from lakecart.serving.ann import AnnIndex

    # Inner products with i1 = (1, 0): i2 0.9, i3 0.0, i4 -1.0.
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]], dtype="float32")
    return AnnIndex.build(["i1", "i2", "i3", "i4"], vectors, kind="flat")


def materialise(store) -> dict[str, str]:
    """Every namespace the service reads, as a materialisation writes them; returns their versions."""
    fresh = _micros(datetime.now(UTC) - timedelta(hours=1))
    stale = _micros(datetime.now(UTC) - timedelta(days=3))  # older than the 2-day TTL
    users = {
        "u1": {USER_VIEWS: 12.0, "feature_time__user_activity_v2": fresh},
        "u2": {USER_VIEWS: 5.0, "feature_time__user_activity_v2": stale},
    }
    items = {
        "i1": {ITEM_VIEWS: 100.0, "feature_time__item_popularity_v2": fresh},
        "i2": {ITEM_VIEWS: 3.0, "feature_time__item_popularity_v2": fresh},
    }
    versions = {
        "features:user": store.write("features:user", users, {}),
        "features:item": store.write("features:item", items, {}),
        # The ranking model's own services (its views' versions); this tiny ranker reads the ones above.
        "features:ranking_user": store.write("features:ranking_user", {}, {}),
        "features:ranking_item": store.write("features:ranking_item", {}, {}),
    }
    for namespace, rows in {
        "recommendations": {
            "u1": {
                "model_version": "ranking-20260110",
                "items": [{"item_id": f"i{n}", "score": 1 - n / 10, "rank": n} for n in (1, 2, 3)],
            }
        },
        "popular": {"top": {"items": [{"item_id": "i9", "score": 40.0}], "source": "item_sales_v1__units_28d"}},
        "churn": {"u1": {"churn_probability": 0.25, "model_version": "churn-20260110"}},
        "segments": {"u1": {"segment": 2, "model_version": "segments-20260110"}},
    }.items():
        versions[namespace] = store.write(namespace, rows, {})
    return versions


@pytest.fixture()
def store(tmp_path):
    from lakecart.serving.online import LmdbStore

    store = LmdbStore(tmp_path / "online")
    yield store
    store.close()


@pytest.fixture()
def client(settings, store, index, ranker):
    from lakecart.serving.app import create_app

    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"max_ids": 3})})
    app = create_app(settings, store, index, ranker, index_version="retrieval-20260110", token="")
    with TestClient(app) as client:
        yield client


def test_health_is_open_and_ready_once_every_namespace_is_written(client, store):
    assert client.get("/healthz").json() == {"status": "ok"}
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "never materialised: features:user" in answer.json()["detail"]
    versions = materialise(store)
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json()["ready"] is True
    assert answer.json()["namespaces"] == {ns: versions[ns] for ns in answer.json()["namespaces"]}
    assert answer.json()["ranking_model"] == "ranking-20260110-test"


def test_feature_vectors_by_post_and_get_with_the_ttl_and_the_version(client, store):
    versions = materialise(store)
    answer = client.post("/features/user", json={"ids": ["u1", "nobody", "u2"]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["service"] == "user" and body["online_version"] == versions["features:user"] and body["found"] == 2
    u1, nobody, u2 = body["rows"]
    assert u1[USER_VIEWS] == 12.0 and u1["feature_time__user_activity_v2"].startswith(str(datetime.now(UTC).year))
    assert nobody is None
    assert u2[USER_VIEWS] is None  # 3 days old, TTL 2 days: expired, as in the point-in-time join
    assert client.get("/features/item", params={"ids": "i2,i1"}).json()["rows"][0][ITEM_VIEWS] == 3.0


def test_a_fixed_as_of_serves_a_historic_lake_as_it_was_then(settings, store):
    from lakecart.serving.app import create_app

    materialise(store)
    then = datetime.now(UTC) - timedelta(days=3) + timedelta(hours=1)  # u2's row is an hour old then
    with TestClient(create_app(settings, store, token="", as_of=then)) as client:
        u1, u2 = client.post("/features/user", json={"ids": ["u1", "u2"]}).json()["rows"]
    assert u2[USER_VIEWS] == 5.0
    assert u1[USER_VIEWS] is None  # written after `then`: not known yet


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "detail"),
    [
        (
            "post",
            "/features/shoppers",
            {"ids": ["u1"]},
            404,
            "unknown feature service 'shoppers'; known: item, ranking_item, ranking_user, user",
        ),
        ("post", "/features/user", {"ids": ["a", "b", "c", "d"]}, 422, "too many ids: 4, at most 3 per request"),
        ("post", "/features/user", {"ids": []}, 422, "body.ids: List should have at least 1 item"),
        ("post", "/features/user", {"ids": "u1"}, 422, "body.ids: Input should be a valid list"),
        ("post", "/features/user", {"ids": [1, 2]}, 422, "body.ids.0: Input should be a valid string"),
        ("post", "/features/user", {"ids": ["u1"], "k": 1}, 422, "body.k: Extra inputs are not permitted"),
        ("post", "/features/user", b'{"ids": ["u1"', 422, "malformed JSON body"),
        ("get", "/features/user?ids=,", None, 422, "query.ids: no id given"),
        ("get", "/features/user", None, 422, "query.ids: Field required"),
        ("get", "/recommendations/u1?k=0", None, 422, "query.k: Input should be greater than or equal to 1"),
        ("get", "/recommendations/u1?k=5000", None, 422, "query.k: Input should be less than or equal to 1000"),
        ("get", "/recommendations/u1?k=ten", None, 422, "query.k: Input should be a valid integer"),
        ("get", "/users/ghost/churn", None, 404, "unknown user 'ghost': no published churn score"),
        ("get", "/users/ghost/segment", None, 404, "unknown user 'ghost': no published segment"),
        ("post", "/rerank", {"user_id": "u1", "item_ids": []}, 422, "body.item_ids: List should have at least 1"),
        ("post", "/rerank", {"user_id": "u1", "item_ids": list("abcd")}, 422, "too many item_ids: 4, at most 3"),
        ("post", "/rerank", {"user_id": "", "item_ids": ["i1"]}, 422, "body.user_id: String should have at least"),
        ("post", "/rerank", {"item_ids": ["i1"]}, 422, "body.user_id: Field required"),
        ("post", "/rerank", [], 422, "body: expected a JSON object (sent with Content-Type: application/json)"),
        ("get", "/items/nope/similar", None, 404, "unknown item 'nope'"),
        ("get", "/items/i1/similar?k=-1", None, 422, "query.k: Input should be greater than or equal to 1"),
        ("post", "/items/nearest", {"vector": [1.0, 0.0, 0.0]}, 422, "body.vector: 3 components, the index has 2"),
        ("post", "/items/nearest", {"vector": [1.0, 0.0], "k": 0}, 422, "body.k: Input should be greater than"),
        ("post", "/items/nearest", {"vector": ["x", 1]}, 422, "body.vector.0: Input should be a valid number"),
        ("post", "/items/nearest", b'{"vector": [NaN, 1]}', 422, "body.vector: every component must be a finite"),
    ],
)
def test_bad_input_is_a_4xx_with_one_clear_line(client, store, method, path, payload, status, detail):
    materialise(store)
    if isinstance(payload, bytes):
        answer = client.request(method, path, content=payload, headers={"content-type": "application/json"})
    else:
        answer = client.request(method, path, json=payload)
    assert answer.status_code == status, answer.text
    message = answer.json()["detail"]
    assert isinstance(message, str) and "\n" not in message and message.startswith(detail), message


def test_recommendations_fall_back_to_the_most_popular_for_an_unknown_user(client, store):
    versions = materialise(store)
    known = client.get("/recommendations/u1", params={"k": 2}).json()
    assert [i["item_id"] for i in known["items"]] == ["i1", "i2"] and known["fallback"] is None
    assert known["model_version"] == "ranking-20260110" and known["online_version"] == versions["recommendations"]
    unknown = client.get("/recommendations/newcomer").json()
    assert unknown["fallback"] == "most_popular" and unknown["items"][0]["item_id"] == "i9"
    assert unknown["online_version"] == versions["popular"] and unknown["source"] == "item_sales_v1__units_28d"
    assert client.get("/users/u1/churn").json()["churn_probability"] == 0.25
    assert client.get("/users/u1/segment").json()["segment"] == 2


def test_rerank_scores_candidates_with_the_published_model_and_the_online_features(client, store, ranker):
    import tensorflow as tf

    materialise(store)
    answer = client.post("/rerank", json={"user_id": "u1", "item_ids": ["i1", "i2", "i-new"], "device": "mobile"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == "ranking-20260110-test" and body["user_features_found"] is True
    assert body["features_missing"] == [] and set(body["online_versions"]) == {"features:user", "features:item"}
    # The model called directly with the values written above: (user views, item views) per candidate.
    expected = ranker._loaded.score(
        tf.constant(["u1"] * 3),
        tf.constant(["i1", "i2", "i-new"]),
        tf.constant(["mobile"] * 3),
        tf.constant([[12.0, 100.0], [12.0, 3.0], [12.0, np.nan]]),
    )["score"].numpy()
    by_item = {row["item_id"]: row["score"] for row in body["items"]}
    np.testing.assert_allclose([by_item[i] for i in ("i1", "i2", "i-new")], expected, rtol=1e-6)
    scores = [row["score"] for row in body["items"]]
    assert scores == sorted(scores, reverse=True)
    # A user the store has no row for still gets an order (cold start), and says so.
    cold = client.post("/rerank", json={"user_id": "stranger", "item_ids": ["i1", "i2"]}).json()
    assert cold["user_features_found"] is False and len(cold["items"]) == 2


def test_similar_and_nearest_items_through_the_ann_index(client):
    similar = client.get("/items/i1/similar", params={"k": 2}).json()
    assert [r["item_id"] for r in similar["items"]] == ["i2", "i3"]  # itself excluded
    assert similar["items"][0]["score"] == pytest.approx(0.9) and similar["model_version"] == "retrieval-20260110"
    nearest = client.post("/items/nearest", json={"vector": [0.0, 1.0], "k": 2}).json()
    assert [r["item_id"] for r in nearest["items"]] == ["i3", "i2"]
    assert [r["score"] for r in nearest["items"]] == pytest.approx([1.0, 0.1])


def test_nothing_published_is_a_503_with_the_reason(settings, store):
    from lakecart.serving.app import create_app

    with TestClient(create_app(settings, store, token="")) as client:
        answer = client.post("/rerank", json={"user_id": "u1", "item_ids": ["i1"]})
        assert answer.status_code == 503 and "no ranking model is published" in answer.json()["detail"]
        answer = client.get("/items/i1/similar")
        assert answer.status_code == 503 and "no retrieval model" in answer.json()["detail"]
        answer = client.get("/recommendations/u1")
        assert answer.status_code == 503 and "lakecart online materialize" in answer.json()["detail"]


def test_the_published_retrieval_models_index_is_loaded_with_its_version(settings, store, index, tmp_path):
    import pandas as pd

    from lakecart import tables
    from lakecart.serving.ann import published_uri
    from lakecart.serving.app import create_app
    from tests.training.conftest import _write

    outputs = tmp_path / "retrieval-run" / "outputs"
    index.save(published_uri(str(outputs)))
    registry = pd.DataFrame(
        [("retrieval-20260110-abc", "retrieval", "published", "model", str(outputs))],
        columns=["model_version", "model", "status", "kind", "outputs_path"],
    ).assign(created_at=pd.Timestamp("2026-01-10", tz="UTC"))
    _write(settings, tables.MODEL_REGISTRY, registry)
    with TestClient(create_app(settings, store, token="")) as client:
        similar = client.get("/items/i3/similar", params={"k": 1}).json()
    assert similar == {
        "item_id": "i3",
        "items": [{"item_id": "i2", "score": pytest.approx(0.1)}],
        "model_version": "retrieval-20260110-abc",
    }


def test_the_bearer_token_guards_everything_but_health_and_docs(settings, store, index, ranker, monkeypatch):
    from lakecart.serving.app import create_app

    materialise(store)
    monkeypatch.setenv("LAKECART_SERVE_TOKEN", TOKEN)
    with TestClient(create_app(settings, store, index, ranker)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = client.post("/features/user", json={"ids": ["u1"]}, headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert "bearer token" in answer.json()["detail"]
            assert client.get("/metrics", headers=headers).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/features/user", json={"ids": ["u1"]}, headers=good).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
        assert {"/features/{service}", "/recommendations/{user_id}", "/rerank", "/items/nearest"} <= set(spec["paths"])


def _count(metrics: str, route: str, status: str) -> float:
    pattern = rf'lakecart_http_requests_total\{{method="POST",route="{re.escape(route)}",status="{status}"\}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_requests_and_time_them_by_route(client, store):
    materialise(store)
    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/features/user", json={"ids": ["u1"]})
    client.post("/features/nope", json={"ids": ["u1"]})
    after = client.get("/metrics").text
    assert _count(after, "/features/{service}", "200") == _count(before, "/features/{service}", "200") + 3
    assert _count(after, "/features/{service}", "404") == _count(before, "/features/{service}", "404") + 1
    assert re.search(r'lakecart_http_request_duration_seconds_bucket\{le="0.002",method="POST",route="/features', after)


def test_two_apps_keep_their_own_metrics(settings, store, index, ranker):
    from lakecart.serving.app import create_app

    first, second = (TestClient(create_app(settings, store, index, ranker, token="")) for _ in range(2))
    first.get("/healthz")
    assert 'route="/healthz"' in first.get("/metrics").text
    assert 'route="/healthz"' not in second.get("/metrics").text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lakecart_serve_answers_on_loopback(settings, store):
    materialise(store)
    store.close()
    port = _free_port()
    env = {**os.environ, "LAKECART_SERVING__LMDB_PATH": store.path, "LAKECART_SERVE_TOKEN": ""}
    command = [sys.executable, "-m", "lakecart.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/features/user", json={"ids": ["u1"]}, timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"lakecart serve did not answer: {server.communicate(timeout=5)}") from None
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["rows"][0][USER_VIEWS] == 12.0
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"lakecart serve: http://127.0.0.1:{port} (API docs: http://127.0.0.1:{port}/docs)" in err
