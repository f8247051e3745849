"""The HTTP service (``lakecart serve``): the online store, the published ranking model and the ANN
index behind a FastAPI app. See docs/serving.md ("HTTP service") for the endpoints.

``create_app`` takes its dependencies (store, index, ranker) so tests pass real ones on tmp data;
left out, they are opened from the settings: the configured online store, the ANN index and the
ranking model ``gold.model_registry`` has published. A model or index that is not published makes
its endpoints answer 503 with the reason; the others keep working.

Every answer is JSON; bad input is a 4xx whose ``detail`` is one line a caller can act on, never a
500. ``LAKECART_SERVE_TOKEN`` set: every endpoint but ``/healthz``, ``/readyz`` and the docs needs
``Authorization: Bearer <token>``. ``/metrics``: request counts and latency histograms by route,
from a Prometheus registry of the app's own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lakecart.config import Settings
from lakecart.errors import LakecartError, UsageError
from lakecart.serving.lookup import feature_vectors
from lakecart.serving.online import OnlineStore, OnlineStoreError, open_store
from lakecart.serving.services import SERVICES, FeatureService

log = logging.getLogger(__name__)

TOKEN_ENV = "LAKECART_SERVE_TOKEN"
# Namespaces besides the feature services' that a materialisation writes (serving/materialize.py).
RESULT_NAMESPACES = ("recommendations", "churn", "segments", "popular")
POPULAR_KEY = "top"
MAX_K = 1000  # most neighbours or recommendations one request may ask for
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


# --- request bodies -------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class IdsBody(_Body):
    ids: list[str] = Field(min_length=1, description="entity ids (at most serving.max_ids)")


class RerankBody(_Body):
    user_id: str = Field(min_length=1)
    item_ids: list[str] = Field(min_length=1, description="the candidates (at most serving.max_ids)")
    device: str = Field("", description="the device the request comes from (empty: unknown)")


class NearestBody(_Body):
    vector: list[float] = Field(min_length=1, description="a query vector of the index's dimension")
    k: int = Field(10, ge=1, le=MAX_K)


# --- plumbing -------------------------------------------------------------------------------
class _Json(Response):
    """A JSON answer without FastAPI's per-value encoder (datetimes as ISO text); the latency of a
    100-entity lookup is mostly encoding."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=_encode).encode()


def _encode(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _validation_message(errors: Sequence[dict]) -> str:
    """FastAPI's validation errors as one line: ``body.ids: Input should be a valid list; ...``."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append(f"malformed JSON body: {error.get('ctx', {}).get('error', error['msg'])}")
            continue
        where = ".".join(str(p) for p in error.get("loc", ()))
        if where == "body" and error.get("type") in ("model_attributes_type", "dict_type"):
            parts.append("body: expected a JSON object (sent with Content-Type: application/json)")
            continue
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts) or "invalid request"


class _Metrics:
    """Prometheus request counts and latency histograms by route template, in the app's own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lakecart_http_requests", "HTTP requests answered", ("method", "route", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "lakecart_http_request_duration_seconds",
            "time to answer, by route",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class _MetricsMiddleware:
    """Plain ASGI (lighter than ``BaseHTTPMiddleware``): times each HTTP request, counts its status."""

    def __init__(self, app, metrics: _Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, route, str(status[0])).inc()


def _authorise(request: Request) -> None:
    token = request.app.state.token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(
            401,
            "missing or wrong bearer token (Authorization: Bearer <LAKECART_SERVE_TOKEN>)",
            {"WWW-Authenticate": "Bearer"},
        )


def _check_count(ids: Sequence[str], settings: Settings, what: str = "ids") -> None:
    if len(ids) > settings.serving.max_ids:
        raise HTTPException(
            422, f"too many {what}: {len(ids)}, at most {settings.serving.max_ids} per request (serving.max_ids)"
        )


def _service(name: str) -> FeatureService:
    try:
        return SERVICES[name]
    except KeyError:
        raise HTTPException(404, f"unknown feature service {name!r}; known: {', '.join(sorted(SERVICES))}") from None


def _version(store: OnlineStore, namespace: str) -> str | None:
    meta = store.meta(namespace)
    return meta["version"] if meta else None


def _unavailable(what: str, why: str | None) -> HTTPException:
    return HTTPException(503, f"{what} is not available: {why}")


# --- the ranking model's features -------------------------------------------------------------
def rerank_plan(feature_names: Sequence[str]) -> tuple[dict[str, list[FeatureService]], list[str]]:
    """The feature services whose rows carry the ranking model's features, by entity key
    (``user_id``, ``item_id``), and the model's views no service serves (their features arrive missing)."""
    views = sorted({name.split("__", 1)[0] for name in feature_names if "__" in name})
    plan: dict[str, list[FeatureService]] = {}
    missing = []
    for view in views:
        found = next((s for s in SERVICES.values() if view in {v.table_name for v in s.views}), None)
        if found is None:
            missing.append(view)
        elif found not in plan.setdefault(found.keys[0], []):
            plan[found.keys[0]].append(found)
    return plan, missing


def _merged_rows(store: OnlineStore, services: Sequence[FeatureService], ids: Sequence[str], now) -> list[dict | None]:
    rows: list[dict | None] = [None] * len(ids)
    for svc in services:
        for n, row in enumerate(feature_vectors(store, svc, ids, now)):
            if row is not None:
                rows[n] = {**(rows[n] or {}), **row}
    return rows


# --- the app --------------------------------------------------------------------------------
def create_app(
    settings: Settings,
    store: OnlineStore | None = None,
    index=None,
    ranker=None,
    *,
    index_version: str | None = None,
    token: str | None = None,
    as_of: datetime | None = None,
) -> FastAPI:
    """The service over ``store`` (default: ``open_store(settings)``), the ANN ``index`` (default: the
    published retrieval model's, ``index_version`` its model version) and ``ranker`` (default: the
    published ranking model). ``token``: the bearer token (default: ``LAKECART_SERVE_TOKEN``).
    ``as_of``: the instant feature TTLs are judged at (default: the clock; a fixed one serves a
    historic lake, such as the demo's, as it was then)."""
    owned = store is None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if owned:  # a store the caller passed in is the caller's to close
            app.state.store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="lakecart serving",
        description="Online features, recommendations, real-time re-ranking and similar items from the lake's "
        "published results.",
        version="1",
    )
    state = app.state
    state.token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    state.as_of = as_of

    def now() -> datetime:
        return state.as_of or datetime.now(UTC)

    state.store = store if store is not None else open_store(settings)
    state.ranker, state.ranker_error = ranker, None
    if ranker is None:
        try:
            from lakecart.serving.rerank import load_published

            state.ranker = load_published(settings)
        except (LakecartError, FileNotFoundError) as error:
            state.ranker_error = str(error)
    state.index, state.index_version, state.index_error = index, index_version, None
    if index is None:
        state.index, state.index_version, state.index_error = _published_index(settings)
    if state.ranker is not None:
        state.rerank_plan, state.rerank_missing = rerank_plan(state.ranker.feature_names)
        if state.rerank_missing:
            log.warning("re-ranking: no feature service serves %s; their features arrive missing", state.rerank_missing)
    for what, why in (("re-ranking", state.ranker_error), ("similar items", state.index_error)):
        if why:
            log.warning("%s is not available: %s", what, why)
    metrics = _Metrics()
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(OnlineStoreError)
    async def store_down(request: Request, exc: OnlineStoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(LakecartError)
    async def refused(request: Request, exc: LakecartError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, UsageError) else 422)

    secured = [Depends(_authorise)]

    @app.get("/healthz", tags=["operations"], summary="the process answers")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="the store answers and every namespace is written")
    def readyz() -> Response:
        expected = [s.namespace for s in SERVICES.values()] + list(RESULT_NAMESPACES)
        try:
            versions = {ns: _version(state.store, ns) for ns in expected}
        except Exception as error:  # noqa: BLE001 -- any failure to read means not ready, said why
            return _Json({"ready": False, "detail": f"online store unreachable: {error}"}, status_code=503)
        missing = [ns for ns, v in versions.items() if v is None]
        body = {
            "ready": not missing,
            "namespaces": versions,
            "ranking_model": getattr(state.ranker, "model_version", None),
            "ann_index": state.index_version if state.index is not None else None,
            "as_of": as_of,
        }
        if missing:
            body["detail"] = f"never materialised: {', '.join(missing)} (run `lakecart online materialize`)"
        return _Json(body, status_code=200 if not missing else 503)

    @app.get("/metrics", tags=["operations"], dependencies=secured, summary="Prometheus metrics")
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def features(service: str, ids: list[str]) -> Response:
        svc = _service(service)
        _check_count(ids, settings)
        rows = feature_vectors(state.store, svc, ids, now())
        return _Json(
            {
                "service": svc.name,
                "online_version": _version(state.store, svc.namespace),
                "ids": ids,
                "rows": rows,
                "found": sum(r is not None for r in rows),
            }
        )

    @app.post("/features/{service}", tags=["features"], dependencies=secured, summary="feature vectors of ids")
    async def post_features(service: str, body: IdsBody) -> Response:
        """One row per id, in order (null: no row for that id): the service's features named
        ``<view>__<feature>`` and each view's ``feature_time__<view>``, nulled when older than the view's TTL."""
        return features(service, body.ids)

    @app.get("/features/{service}", tags=["features"], dependencies=secured, summary="feature vectors of ids")
    async def get_features(
        service: str, ids: Annotated[str, Query(min_length=1, description="comma-separated ids")]
    ) -> Response:
        parsed = [i for i in ids.split(",") if i]
        if not parsed:
            raise HTTPException(422, "query.ids: no id given (?ids=a,b)")
        return features(service, parsed)

    @app.get("/recommendations/{user_id}", tags=["recommendations"], dependencies=secured, summary="published top-k")
    async def recommendations(
        user_id: Annotated[str, Path(min_length=1)], k: Annotated[int, Query(ge=1, le=MAX_K)] = 10
    ) -> Response:
        """The published top-k for the user; for a user the model never scored, the most popular
        items, marked ``"fallback": "most_popular"``."""
        row = state.store.get("recommendations", [user_id])[0]
        namespace, fallback = "recommendations", None
        if row is None:
            row = state.store.get("popular", [POPULAR_KEY])[0]
            namespace, fallback = "popular", "most_popular"
            if row is None:
                raise _unavailable("recommendations", "nothing materialised (run `lakecart online materialize`)")
        return _Json(
            {
                **row,
                "user_id": user_id,
                "items": row.get("items", [])[:k],
                "model_version": row.get("model_version"),
                "fallback": fallback,
                "online_version": _version(state.store, namespace),
            }
        )

    def user_result(namespace: str, what: str, user_id: str) -> Response:
        row = state.store.get(namespace, [user_id])[0]
        if row is None:
            if _version(state.store, namespace) is None:
                raise _unavailable(what, "nothing materialised (run `lakecart online materialize`)")
            raise HTTPException(404, f"unknown user {user_id!r}: no published {what} for them")
        return _Json({"user_id": user_id, **row, "online_version": _version(state.store, namespace)})

    @app.get("/users/{user_id}/churn", tags=["users"], dependencies=secured, summary="published churn risk")
    async def churn(user_id: Annotated[str, Path(min_length=1)]) -> Response:
        return user_result("churn", "churn score", user_id)

    @app.get("/users/{user_id}/segment", tags=["users"], dependencies=secured, summary="published segment")
    async def segment(user_id: Annotated[str, Path(min_length=1)]) -> Response:
        return user_result("segments", "segment", user_id)

    @app.post("/rerank", tags=["recommendations"], dependencies=secured, summary="score candidates now")
    def rerank(body: RerankBody) -> Response:
        """The candidates ordered by the published ranking model (best first), scored from the
        user's and items' online features; ``features_missing`` names views no feature service serves."""
        _check_count(body.item_ids, settings, "item_ids")
        if state.ranker is None:
            raise _unavailable("re-ranking", state.ranker_error)
        plan, at = state.rerank_plan, now()
        user_row = _merged_rows(state.store, plan.get("user_id", []), [body.user_id], at)[0]
        item_rows = _merged_rows(state.store, plan.get("item_id", []), body.item_ids, at)
        scores = state.ranker.score(body.user_id, body.item_ids, user_row, item_rows, device=body.device)
        order = sorted(range(len(scores)), key=lambda n: -float(scores[n]))
        return _Json(
            {
                "user_id": body.user_id,
                "model_version": state.ranker.model_version,
                "items": [{"item_id": body.item_ids[n], "score": float(scores[n])} for n in order],
                "online_versions": {
                    s.namespace: _version(state.store, s.namespace) for group in plan.values() for s in group
                },
                "features_missing": state.rerank_missing,
                "user_features_found": user_row is not None,
            }
        )

    def neighbours(vectors, k: int, exclude: str | None = None) -> list[dict]:
        ids, scores = state.index.search(vectors, k + (exclude is not None))
        out = [
            {"item_id": str(i), "score": float(s)}
            for i, s in zip(ids[0], scores[0], strict=True)
            if i != "" and i != exclude and math.isfinite(float(s))
        ]
        return out[:k]

    @app.get("/items/{item_id}/similar", tags=["items"], dependencies=secured, summary="similar items (ANN)")
    def similar(item_id: Annotated[str, Path(min_length=1)], k: Annotated[int, Query(ge=1, le=MAX_K)] = 10) -> Response:
        """The items whose embeddings score highest against this item's (inner product), itself excluded."""
        if state.index is None:
            raise _unavailable("the ANN index", state.index_error)
        try:
            vector = state.index.vectors([item_id])
        except KeyError:
            raise HTTPException(404, f"unknown item {item_id!r}: not in the published item embeddings") from None
        return _Json(
            {"item_id": item_id, "items": neighbours(vector, k, exclude=item_id), "model_version": state.index_version}
        )

    @app.post("/items/nearest", tags=["items"], dependencies=secured, summary="items for a query vector (ANN)")
    def nearest(body: NearestBody) -> Response:
        if state.index is None:
            raise _unavailable("the ANN index", state.index_error)
        if not all(math.isfinite(v) for v in body.vector):
            raise HTTPException(422, "body.vector: every component must be a finite number")
        if len(body.vector) != state.index.dim:
            raise HTTPException(422, f"body.vector: {len(body.vector)} components, the index has {state.index.dim}")
        import numpy as np

        items = neighbours(np.asarray([body.vector], dtype="float32"), body.k)
        return _Json({"items": items, "model_version": state.index_version})

    return app


def app_from_settings() -> FastAPI:
    """``create_app`` over the process's settings (uvicorn's factory for ``lakecart serve``)."""
    from lakecart.config import get_settings

    return create_app(get_settings())


def _published_index(settings: Settings) -> tuple[object | None, str | None, str | None]:
    """The published retrieval model's ANN index, its model version, and why there is none (one
    registry read, so the version is the index's)."""
    from lakecart.serving.ann import AnnIndex, published_uri
    from lakecart.training.publish import champion

    try:
        current = champion(settings, "retrieval")
        if current is None or current.get("kind") != "model":
            return None, None, "no retrieval model with item embeddings is published"
        return AnnIndex.load(published_uri(current["outputs_path"])), current["model_version"], None
    except (LakecartError, FileNotFoundError) as error:
        return None, None, f"{error} (publish the retrieval model again: `lakecart publish retrieval --force`)"
