"""The online read path of feature services: one store read per batch, the point-in-time join's
TTL rule applied at read time.

A row was materialised with each view's newest value known at materialisation time; by the time it
is read, that value may have expired. A view's features are served only while its feature row is
known and fresh at ``now``: ``available_at <= now`` and ``now - available_at < ttl`` (the rule of
``features.pit.point_in_time_join`` and ``training.data.features_as_of``: a row exactly one TTL
old is expired). Otherwise that view's features and feature time come back null, as offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from lakecart.serving.online import OnlineStore
from lakecart.serving.services import FeatureService
from lakecart.serving.services import service as declared_service

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(t: datetime) -> int:
    """``t`` (naive: UTC) as microseconds since the epoch, exactly."""
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return (t - EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def feature_vectors(
    store: OnlineStore, service: FeatureService | str, ids: Sequence[str], now: datetime | None = None
) -> list[dict | None]:
    """Per id, in order: the service's features (``<view>__<feature>``) and per view its feature time
    (``feature_time__<view>``, a UTC ``datetime``), nulled for a view whose row is not fresh at ``now``
    (default: the current time); None for an id the store has no row for. One store read for the batch."""
    svc = declared_service(service) if isinstance(service, str) else service
    now_micros = to_micros(now or datetime.now(UTC))
    out: list[dict | None] = []
    for row in store.get(svc.namespace, [str(i) for i in ids]):
        if row is not None:  # a freshly decoded row: filled in place
            for time_column, columns, ttl in svc.layout:
                known = row.get(time_column)
                if known is not None and known <= now_micros < known + ttl:
                    row[time_column] = from_micros(known)
                else:  # expired, not known yet, or a view the lake had no table for
                    for column in columns:
                        row[column] = None
                    row[time_column] = None
        out.append(row)
    return out
