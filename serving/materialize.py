"""``lakecart online materialize``: the newest published, validated values into the online store.

- ``features:<service>`` per feature service (``serving/services.py``): one pre-assembled row per
  entity that any of the service's views knows at ``as_of``: every feature named as the point-in-time
  join names it (``<view>__<feature>``) and per view ``feature_time__<view>`` (the row's
  ``available_at``, in microseconds since the epoch) for the read path's TTL rule. Values come from
  ``training.data.features_as_of``, the read the offline side uses (known at ``as_of``, younger than
  the TTL, the newest per key), so online and offline cannot disagree. Only validated days are
  served: when a row it would serve comes from a day whose newest verdict in ``meta.validation_runs``
  is not a pass (or that was never validated), the service is not written and keeps its previous
  version. A view the lake has no table for (a shop without clickstream) is skipped, and the report
  says so.
- ``recommendations`` (user -> the published retrieval model's top-k), ``churn`` (user -> score),
  ``segments`` (user -> segment): the rows of the version ``gold.model_registry`` lists as
  ``published`` (``training.publish.champion``); segments, which have no gate, the newest version.
- ``popular`` (key ``top``): the most-sold items, the answer for a user nobody knows.

Each namespace is replaced whole and atomically (``serving/online.py``), and its meta records the
Delta version of every table it was read from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from lakecart import tables
from lakecart.config import Settings
from lakecart.features.definitions import AVAILABLE_AT, FEATURE_DATE, FeatureView
from lakecart.features.pit import feature_column, feature_time_column
from lakecart.serving.online import OnlineStore, open_store
from lakecart.serving.services import SERVICES, FeatureService, current_view
from lakecart.storage import is_delta, open_delta

log = logging.getLogger(__name__)

POPULAR_K = 100
# The most-popular list: the first of these item features the lake has, as (view name, feature).
POPULARITY = (("item_popularity", "units_sold_28d"), ("item_sales", "units_28d"))
_INTEGER_TYPES = ("int", "bigint", "smallint", "tinyint")
_EPOCH = pd.Timestamp(0, tz="UTC")


def materialize(
    settings: Settings, as_of: datetime | None = None, store: OnlineStore | None = None, kind: str | None = None
) -> dict:
    """Write every namespace (module docstring) as of ``as_of`` (default now; naive: UTC) into
    ``store`` (default: ``open_store(settings, kind)``, closed afterwards). Returns the report: per
    namespace the rows, the store version and the Delta versions read; what was skipped and why."""
    at = _utc(as_of)
    own = store is None
    store = open_store(settings, kind) if own else store
    report: dict = {"as_of": at.isoformat(), "store": kind or settings.serving.online_store, "namespaces": {}}
    skipped: dict[str, str] = {}
    try:
        outputs: dict[str, tuple[dict, dict] | str] = {}
        item_rows = None
        for service in SERVICES.values():
            built = service_rows(settings, service, at)
            outputs[service.namespace] = built
            if service.name == "item" and not isinstance(built, str):
                item_rows = built
        outputs["recommendations"] = _recommendations(settings)
        outputs["churn"] = _published_by_user(
            settings, tables.CHURN_SCORES, "churn", ["churn_probability", "horizon_days", "as_of"]
        )
        outputs["segments"] = _segments(settings)
        outputs["popular"] = _popular(item_rows)
        for namespace, built in outputs.items():
            if isinstance(built, str):
                skipped[namespace] = built
                continue
            rows, meta = built
            version = store.write(namespace, rows, {"as_of": at.isoformat(), **meta})
            report["namespaces"][namespace] = {"rows": len(rows), "version": version, **meta}
            log.info("online %s: %d rows, version %s", namespace, len(rows), version)
    finally:
        if own:
            store.close()
    report["skipped"] = skipped
    return report


def _utc(t: datetime | None) -> pd.Timestamp:
    at = pd.Timestamp(t if t is not None else datetime.now(UTC))
    return at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")


def _stable_read(path: str, read: Callable[[int], pd.DataFrame]) -> tuple[pd.DataFrame, int]:
    """``read(version)`` of the table at ``path`` and the Delta version it saw: read again when a
    commit landed meanwhile (``features_as_of`` reads the newest version itself)."""
    for _ in range(5):
        before = open_delta(path).version()
        frame = read(before)
        if open_delta(path).version() == before:
            return frame, before
    raise RuntimeError(f"{path} kept changing while it was read; materialise again when its writers are done")


def service_rows(settings: Settings, service: FeatureService, at: pd.Timestamp) -> tuple[dict, dict] | str:
    """The rows of ``service`` as of ``at`` (key -> row) and their meta; a string saying why not when
    the lake has none of its views."""
    from lakecart.training.data import features_as_of

    frame, read, skipped = None, {}, []
    for view in service.views:
        path = tables.table_path(view.qualified_name, settings)
        if not is_delta(path):
            skipped.append(f"{view.qualified_name}: no table in the lake (not materialised for this shop)")
            continue
        rows, read[view.qualified_name] = _stable_read(
            path, lambda _, path=path, view=view: features_as_of(path, view.entity.keys, view.ttl, at)
        )
        unvalidated, read[str(tables.VALIDATION_RUNS)] = unvalidated_days(settings, view, rows[FEATURE_DATE])
        if unvalidated:
            days = ", ".join(str(d) for d in unvalidated[:5]) + (" ..." if len(unvalidated) > 5 else "")
            return (
                f"{view.qualified_name} would serve days without a passing validation ({days}): the online "
                f"store keeps its previous version (run `lakecart validate {view.qualified_name} --date D`)"
            )
        rows = _view_columns(view, rows)
        keys = list(view.entity.keys)
        frame = rows if frame is None else frame.merge(rows, on=keys, how="outer")
    if frame is None:
        return f"none of its views has a table in the lake ({'; '.join(skipped)})"
    columns = {}
    for view in service.views:
        for f in view.features:
            name = feature_column(view, f.name)
            if name in frame.columns:
                columns[name] = _plain_values(frame[name], f.dtype)
        time = feature_time_column(view)
        if time in frame.columns:
            columns[time] = _micros(frame[time])
    keys = _row_keys(frame, list(service.keys))
    names = list(columns)
    per_entity = zip(*columns.values(), strict=True)
    rows = {key: dict(zip(names, values, strict=True)) for key, values in zip(keys, per_entity, strict=True)}
    meta = {
        "service": service.name,
        "keys": list(service.keys),
        "views": [v.table_name for v in service.views],
        "tables": read,
        "skipped": skipped,
    }
    return rows, meta


def unvalidated_days(settings: Settings, view: FeatureView, feature_dates: pd.Series) -> tuple[list[date], int | None]:
    """The days among ``feature_dates`` whose newest verdict in ``meta.validation_runs`` (of a
    validation whose days cover it) is not a pass, or that were never validated; and the Delta
    version of ``meta.validation_runs`` read (None: the lake has none, so every day is unvalidated)."""
    days = sorted({pd.Timestamp(d).date() for d in feature_dates.dropna()})
    path = tables.table_path(tables.VALIDATION_RUNS, settings)
    if not days or not is_delta(path):
        return days, None
    columns = ["start_date", "end_date", "success", "validated_at"]
    verdicts, version = _stable_read(
        path,
        lambda v: open_delta(path, version=v).to_pandas(columns=columns, filters=[("table", "=", view.qualified_name)]),
    )
    verdicts = verdicts.sort_values("validated_at", kind="stable")
    starts = [pd.Timestamp(d).date() for d in verdicts["start_date"]]
    ends = [pd.Timestamp(d).date() for d in verdicts["end_date"]]
    success = verdicts["success"].tolist()
    failing = []
    for day in days:
        newest = None  # the success of the newest verdict covering ``day``
        for start, end, ok in zip(starts, ends, success, strict=True):
            if start <= day <= end:
                newest = ok
        if newest is not True:
            failing.append(day)
    return failing, version


def _view_columns(view: FeatureView, rows: pd.DataFrame) -> pd.DataFrame:
    """A view's ``features_as_of`` rows with the point-in-time join's column names."""
    renamed = {f: feature_column(view, f) for f in view.feature_names()}
    renamed[AVAILABLE_AT] = feature_time_column(view)
    return rows.drop(columns=[FEATURE_DATE]).rename(columns=renamed)


def _row_keys(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """The store key of each row: the entity key, or its values joined with ``,`` for compound keys."""
    if len(keys) == 1:
        return frame[keys[0]].astype(str).tolist()
    return [",".join(map(str, values)) for values in frame[keys].itertuples(index=False)]


def _plain_values(column: pd.Series, dtype: str) -> list:
    """JSON values of a feature column as declared: nulls (NaN, None) as None; integers as int even
    where an outer merge turned the column into floats; arrays as lists."""
    values = column.astype(object).tolist()
    if dtype in _INTEGER_TYPES:
        return [None if _null(v) else int(v) for v in values]
    if dtype in ("double", "float"):
        return [None if _null(v) else float(v) for v in values]
    if dtype.startswith("array"):
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) else [_plain(x) for x in v] for v in values]
    return [None if _null(v) else _plain(v) for v in values]


def _null(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, date):  # dates, datetimes, pandas Timestamps
        return value.isoformat()
    return value


def _micros(column: pd.Series) -> list:
    """Timestamps (a zone, or naive holding UTC) as whole microseconds since the epoch; NaT as None."""
    times = pd.to_datetime(column, utc=True)
    return [None if pd.isna(t) else (t - _EPOCH) // pd.Timedelta(microseconds=1) for t in times]


# --- published model outputs ---------------------------------------------------------------------


def _registry_version(settings: Settings) -> int | None:
    path = tables.table_path(tables.MODEL_REGISTRY, settings)
    return open_delta(path).version() if is_delta(path) else None


def _published_rows(settings: Settings, table: str, model: str) -> tuple[pd.DataFrame, dict] | str:
    """The rows of ``table`` of what is published for ``model`` and the versions read; a string when
    nothing is."""
    from lakecart.training.publish import champion

    registry = _registry_version(settings)
    current = champion(settings, model)
    path = tables.table_path(table, settings)
    if current is None:
        return f"nothing is published for {model} ({tables.MODEL_REGISTRY} has no published row)"
    if not is_delta(path):
        return f"{table} has no table in the lake"
    version = current["model_version"]
    rows, read = _stable_read(
        path, lambda v: open_delta(path, version=v).to_pandas(filters=[("model_version", "=", version)])
    )
    meta = {"model_version": version, "tables": {str(table): read, str(tables.MODEL_REGISTRY): registry}}
    return rows, meta


def _recommendations(settings: Settings) -> tuple[dict, dict] | str:
    """user -> ``{"model_version", "items": [{"item_id", "score"}, ...]}`` in rank order."""
    published = _published_rows(settings, tables.RECOMMENDATIONS, "retrieval")
    if isinstance(published, str):
        return published
    frame, meta = published
    frame = frame.sort_values(["user_id", "rank"], kind="stable")
    users = frame["user_id"].astype(str).to_numpy()
    items = frame["item_id"].astype(str).tolist()
    scores = frame["score"].astype(float).tolist()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(users)]
    version = meta["model_version"]
    rows = {
        users[s]: {
            "model_version": version,
            "items": [{"item_id": items[i], "score": scores[i]} for i in range(s, e)],
        }
        for s, e in zip(starts, ends, strict=True)
    }
    return rows, meta


def _published_by_user(settings: Settings, table: str, model: str, columns: list[str]) -> tuple[dict, dict] | str:
    published = _published_rows(settings, table, model)
    if isinstance(published, str):
        return published
    frame, meta = published
    return _by_user(frame, columns, meta["model_version"]), meta


def _by_user(frame: pd.DataFrame, columns: list[str], model_version: str) -> dict:
    present = [c for c in columns if c in frame.columns]
    values = {c: [None if _null(v) else _plain(v) for v in frame[c].astype(object).tolist()] for c in present}
    users = frame["user_id"].astype(str).tolist()
    return {
        user: {"model_version": model_version, **{c: values[c][i] for c in present}} for i, user in enumerate(users)
    }


def _segments(settings: Settings) -> tuple[dict, dict] | str:
    """user -> segment of the newest ``gold.user_segments`` version (segments have no gate)."""
    path = tables.table_path(tables.USER_SEGMENTS, settings)
    if not is_delta(path):
        return f"{tables.USER_SEGMENTS} has no table in the lake (run `lakecart segments`)"

    def newest(version: int) -> pd.DataFrame:
        frame = open_delta(path, version=version).to_pandas()
        if frame.empty:
            return frame
        latest = frame.sort_values(["created_at", "model_version"]).iloc[-1]["model_version"]
        return frame[frame["model_version"] == latest]

    frame, read = _stable_read(path, newest)
    if frame.empty:
        return f"{tables.USER_SEGMENTS} is empty"
    version = str(frame["model_version"].iloc[0])
    rows = _by_user(frame, ["segment", "distance_to_centroid", "as_of"], version)
    return rows, {"model_version": version, "tables": {str(tables.USER_SEGMENTS): read}}


def _popular(item_rows: tuple[dict, dict] | None) -> tuple[dict, dict] | str:
    """``top`` -> the ``POPULAR_K`` items with the most units sold (the first popularity feature the
    item service's rows have), ties by item id."""
    if item_rows is None:
        return "the item feature service has no rows"
    rows, meta = item_rows
    for view_name, feature in POPULARITY:
        column = feature_column(current_view(view_name), feature)
        scored = [(value[column], key) for key, value in rows.items() if value.get(column) is not None]
        if scored:
            best = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:POPULAR_K]
            items = [{"item_id": key, "score": float(score)} for score, key in best]
            return {"top": {"items": items, "source": column}}, {"source": column, "tables": meta["tables"]}
    return "no item has a popularity feature (" + ", ".join(f"{v}.{f}" for v, f in POPULARITY) + ")"
