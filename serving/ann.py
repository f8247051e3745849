"""Approximate nearest neighbours over item embeddings (FAISS).

The retrieval model scores a (user, item) pair by the dot product of the two towers' vectors, so the
index searches by inner product. Two kinds:

- ``hnsw``: ``faiss.IndexHNSWFlat`` (a graph over the raw vectors). Its parameters were chosen by
  measurement (``benchmarks/ann_index.py``, BENCHMARKS.md "ANN index"): ``M`` 48 links per node,
  ``efConstruction`` 40 and ``efSearch`` 256 give recall@100 0.97 against exact search at 1M
  clustered 64-d items, 48x the speed of exact FAISS (``M`` 16 stays under 0.95 even at 100k items;
  ``M`` 32 gave 0.91-0.95 at 1M, across two builds); raise ``efSearch``
  (:meth:`AnnIndex.set_ef_search`) for more recall at less speed.
- ``flat``: ``faiss.IndexFlatIP``, exact brute force; the reference recall is measured against, and
  the index of small catalogues (below :data:`HNSW_FROM` items), where exact search is cheap.

An index is saved as a folder (``index.faiss``: ``faiss.serialize_index``; ``meta.json``: the item
ids and parameters), on local disk or in a bucket (through :func:`lakecart.storage.arrow_filesystem`).
``lakecart publish retrieval`` builds one over ``gold.item_embeddings`` of the published version
and stores it next to the run's outputs (:func:`publish_index`); the HTTP service loads it with
:meth:`AnnIndex.load_published`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lakecart.errors import LakecartError

Kind = Literal["auto", "hnsw", "flat"]
INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
PUBLISHED_DIR = "ann_index"  # in the published run's outputs folder
# Catalogues this big or bigger get an HNSW graph; smaller ones an exact flat index.
HNSW_FROM = 50_000
HNSW_M = 48
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 256
# Batch searches fetch at most this many (query, item) results at a time (about 48 MB).
RESULTS_PER_BATCH = 1 << 22


class IndexNotFound(LakecartError, FileNotFoundError):
    """No saved index where one was expected."""


def _faiss():
    import faiss

    return faiss


@dataclass
class AnnIndex:
    """An inner-product index over item vectors, answering with item ids."""

    item_ids: np.ndarray  # str, row i of the index is item_ids[i]
    index: object  # a faiss.Index
    kind: Literal["hnsw", "flat"]
    _rows: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # item id -> row, on first use

    @classmethod
    def build(
        cls,
        item_ids: Sequence[str] | np.ndarray,
        vectors: np.ndarray,
        metric: Literal["ip"] = "ip",
        kind: Kind = "auto",
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_search: int = HNSW_EF_SEARCH,
    ) -> AnnIndex:
        """Index ``vectors`` (one row per item of ``item_ids``) for inner-product search; ``kind``
        ``auto``: HNSW from :data:`HNSW_FROM` items, exact below."""
        faiss = _faiss()
        if metric != "ip":
            raise LakecartError(f"metric {metric!r} is not supported: the retrieval model scores by inner product (ip)")
        ids = np.asarray(item_ids).astype(str)
        data = np.ascontiguousarray(vectors, dtype="float32")
        if data.ndim != 2 or len(data) != len(ids) or len(ids) == 0:
            raise LakecartError(f"need one vector per item id: {len(ids)} ids, vectors of shape {data.shape}")
        if len(set(ids.tolist())) != len(ids):
            raise LakecartError("item ids must be unique")
        if kind == "auto":
            kind = "hnsw" if len(ids) >= HNSW_FROM else "flat"
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        elif kind == "flat":
            index = faiss.IndexFlatIP(data.shape[1])
        else:
            raise LakecartError(f"unknown index kind {kind!r}: hnsw, flat or auto")
        index.add(data)
        return cls(ids, index, kind)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def ef_search(self) -> int | None:
        return int(self.index.hnsw.efSearch) if self.kind == "hnsw" else None

    def set_ef_search(self, ef_search: int) -> None:
        """HNSW only: how many candidates a search keeps (higher: better recall, slower)."""
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = ef_search

    def search_positions(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``k`` best items per query, best first, and their scores; ``k`` beyond the
        catalogue (or an HNSW search that finds fewer) pads with row -1 and score -inf."""
        data = np.ascontiguousarray(np.atleast_2d(queries), dtype="float32")
        if data.shape[1] != self.dim:
            raise LakecartError(f"query vectors have {data.shape[1]} dimensions, the index {self.dim}")
        scores, rows = self.index.search(data, k)
        scores[rows < 0] = -np.inf
        return rows, scores

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ids of the ``k`` best items per query (``""`` where fewer exist), and their scores."""
        rows, scores = self.search_positions(queries, k)
        return np.where(rows >= 0, self.item_ids[np.maximum(rows, 0)], ""), scores

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of ``item_ids`` (a ``KeyError`` names the first unknown id)."""
        return self.index.reconstruct_batch(self.positions(item_ids))

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Index rows of ``item_ids`` (a ``KeyError`` names the first unknown id)."""
        if not self._rows:
            self._rows.update((item, row) for row, item in enumerate(self.item_ids.tolist()))
        missing = [item for item in item_ids if item not in self._rows]
        if missing:
            raise KeyError(missing[0])
        return np.array([self._rows[item] for item in item_ids], dtype="int64")

    def search_excluding(
        self, queries: np.ndarray, k: int, excluded: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search_positions` for many queries in bounded batches; query ``i`` never gets the
        rows ``excluded[i]`` (see :func:`top_k_excluding`)."""
        return top_k_excluding(lambda rows, n: self.search_positions(queries[rows], n), len(queries), k, excluded)

    # --- persistence ------------------------------------------------------------------------
    def save(self, uri: str) -> str:
        """Write the index to the folder ``uri`` (local path or bucket URI); returns ``uri``."""
        from lakecart.storage import arrow_filesystem

        faiss = _faiss()
        filesystem, path = arrow_filesystem(uri)
        filesystem.create_dir(path, recursive=True)
        with filesystem.open_output_stream(f"{path}/{INDEX_FILE}") as out:
            out.write(faiss.serialize_index(self.index).tobytes())
        meta = {"kind": self.kind, "metric": "ip", "dim": self.dim, "count": len(self), "ef_search": self.ef_search}
        with filesystem.open_output_stream(f"{path}/{META_FILE}") as out:  # last: a folder with meta is whole
            out.write(json.dumps({**meta, "item_ids": self.item_ids.tolist()}).encode())
        return uri

    @classmethod
    def load(cls, uri: str) -> AnnIndex:
        """The index saved at ``uri`` by :meth:`save`."""
        import pyarrow.fs as pafs

        from lakecart.storage import arrow_filesystem

        faiss = _faiss()
        filesystem, path = arrow_filesystem(uri)
        if filesystem.get_file_info(f"{path}/{META_FILE}").type != pafs.FileType.File:
            raise IndexNotFound(f"no ANN index at {uri} (no {META_FILE})")
        with filesystem.open_input_stream(f"{path}/{META_FILE}") as source:
            meta = json.loads(source.read())
        with filesystem.open_input_stream(f"{path}/{INDEX_FILE}") as source:
            index = faiss.deserialize_index(np.frombuffer(source.read(), dtype="uint8"))
        loaded = cls(np.array(meta["item_ids"], dtype=str), index, meta["kind"])
        if len(loaded.item_ids) != len(loaded):
            raise IndexNotFound(f"the ANN index at {uri} is damaged: {len(loaded.item_ids)} ids, {len(loaded)} vectors")
        if meta.get("ef_search"):
            loaded.set_ef_search(int(meta["ef_search"]))
        return loaded

    @classmethod
    def load_published(cls, settings) -> AnnIndex | None:
        """The index of the published retrieval model; None when none is published or the published
        answer is a baseline (no embeddings)."""
        from lakecart.training.publish import champion

        current = champion(settings, "retrieval")
        if current is None or current.get("kind") != "model":
            return None
        uri = published_uri(current["outputs_path"])
        try:
            return cls.load(uri)
        except IndexNotFound as error:
            raise IndexNotFound(
                f"{error}: the published retrieval model {current['model_version']} has no ANN index; "
                "publish it again (`lakecart publish retrieval --force`) to build one"
            ) from error


def published_uri(outputs_path: str) -> str:
    """Where the ANN index of a published run lives: next to its outputs."""
    return f"{str(outputs_path).rstrip('/')}/{PUBLISHED_DIR}"


def publish_index(settings, model_version: str, outputs_path: str | Path) -> dict:
    """Build an index over ``gold.item_embeddings`` of ``model_version`` and save it next to the
    run's outputs; returns what was built."""
    import time

    from lakecart import tables
    from lakecart.storage import open_delta

    frame = open_delta(tables.table_path(tables.ITEM_EMBEDDINGS, settings)).to_pandas(
        columns=["item_id", "embedding"], filters=[("model_version", "=", model_version)]
    )
    if frame.empty:
        raise LakecartError(f"gold.item_embeddings has no rows for {model_version}: nothing to index")
    started = time.perf_counter()
    index = AnnIndex.build(frame["item_id"].to_numpy(), np.stack(frame["embedding"].to_numpy()).astype("float32"))
    uri = index.save(published_uri(str(outputs_path)))
    return {"uri": uri, "kind": index.kind, "items": len(index), "seconds": round(time.perf_counter() - started, 3)}


def top_k_excluding(search, n_queries: int, k: int, excluded: Sequence[np.ndarray] | None = None):
    """The ``k`` best rows per query, best first, skipping each query's ``excluded`` rows; pads with
    row -1 and score -inf where fewer are left.

    ``search(queries: slice | ndarray, n) -> (rows, scores)`` answers the ``n`` best rows of the
    selected queries (e.g. :meth:`AnnIndex.search_positions`, or a dense score matrix's top-n).
    Queries are grouped by how many rows they exclude and fetched ``k`` + that many at a time, so
    at most :data:`RESULTS_PER_BATCH` results are held at once: no queries x items matrix."""
    best = np.full((n_queries, k), -1, dtype="int64")
    best_scores = np.full((n_queries, k), -np.inf, dtype="float32")
    extra = np.zeros(n_queries, dtype="int64") if excluded is None else np.array([len(e) for e in excluded])
    order = np.argsort(extra, kind="stable")
    start = 0
    while start < n_queries:
        # Results held if the batch ended at each next query (sorted: the last excludes the most).
        held = np.arange(1, RESULTS_PER_BATCH + 1)[: n_queries - start] * (k + extra[order[start:][:RESULTS_PER_BATCH]])
        chosen = np.sort(order[start : start + max(1, int(np.searchsorted(held, RESULTS_PER_BATCH, side="right")))])
        rows, scores = search(chosen, k + int(extra[chosen].max()))
        for i, query in enumerate(chosen):
            keep = rows[i] >= 0
            if excluded is not None and len(excluded[query]):
                keep &= ~np.isin(rows[i], excluded[query])
            kept = rows[i][keep][:k]
            best[query, : len(kept)] = kept
            best_scores[query, : len(kept)] = scores[i][keep][:k]
        start += len(chosen)
    return best, best_scores


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k (rows of ``exact``) that ``found`` also returned."""
    pairs = zip(found, exact, strict=True)
    return float(np.mean([len(np.intersect1d(f[f >= 0], e[e >= 0])) / max(1, (e >= 0).sum()) for f, e in pairs]))
