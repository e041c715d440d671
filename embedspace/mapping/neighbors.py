"""The k-nearest-neighbour graph of a collection, computed once and reused.

UMAP needs each document's nearest neighbours; by default it finds them with
pynndescent, which costs a numba compilation per process and an approximate search.
embedspace computes the graph once with FAISS (cosine similarity as the inner product
of unit vectors) and hands the same graph to every UMAP run through
``precomputed_knn`` — the 2-D display layout and the n-D clustering layout alike.

Small collections (``n <= EXACT_MAX_ROWS``) get the exact graph from a flat index.
Larger ones use an HNSW index: :func:`embedspace.search.index.build_index` with
``kind="hnsw"`` for an EmbeddingSet, FAISS's ``IndexHNSWFlat`` directly for a bare array.

The graph follows UMAP's convention: row ``i`` lists its neighbours by increasing
distance and starts with ``i`` itself at distance 0, even when exact duplicates of
document ``i`` exist (FAISS may rank a duplicate before the document itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedspace.errors import InputError
from embedspace.search import build_index

__all__ = ["KNNGraph", "knn_graph", "rescore_neighbours", "EXACT_MAX_ROWS"]

# Above this many rows the graph comes from an HNSW index instead of brute force. A flat
# search costs n^2 * d multiply-adds: 20,000 x 20,000 x 384 is ~1.5e11, a few seconds
# on 2 cores; beyond that HNSW (recall ~0.98 at k=30) wins quickly.
EXACT_MAX_ROWS = 20_000
_HNSW_M = 32
# Neighbours fetched beyond k by the exact search, so that the float64 re-ranking sees
# every row that float32 rounding could have moved across the k-th place.
_RERANK_MARGIN = 8
_HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class KNNGraph:
    """Nearest neighbours of every row of a collection.

    Attributes
    ----------
    indices : ndarray of shape (n, k), int64
        ``indices[i]`` are the rows nearest to row ``i``, nearest first;
        ``indices[i, 0] == i``.
    distances : ndarray of shape (n, k), float32
        Cosine distances ``1 - cos(v_i, v_j)`` (0 for the row itself), non-decreasing.
    exact : bool
        Whether the graph is exact (flat search) or approximate (HNSW).
    """

    indices: np.ndarray
    distances: np.ndarray
    exact: bool

    @property
    def n_neighbors(self) -> int:
        """Neighbours per row, the row itself included."""
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def truncate(self, k: int) -> "KNNGraph":
        """Return the graph with only the first ``k`` neighbours of each row."""
        if k > self.n_neighbors:
            raise InputError(f"the graph has {self.n_neighbors} neighbours per row, cannot widen it to {k}")
        return KNNGraph(self.indices[:, :k], self.distances[:, :k], self.exact)

    def for_umap(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, distances)`` for UMAP's ``precomputed_knn`` with ``k`` neighbours.

        Returns
        -------
        indices : ndarray of shape (n, k), int32
        distances : ndarray of shape (n, k), float32
        """
        graph = self.truncate(k)
        return np.ascontiguousarray(graph.indices, dtype=np.int32), np.ascontiguousarray(graph.distances, dtype=np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length (rows of zeros stay zero)."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.allclose(norms, 1.0, atol=1e-3):
        return array
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


def _self_first(indices: np.ndarray, similarities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put each row itself first; drop the farthest neighbour where the search missed it.

    Returns indices (int64) and cosine distances (float32), both of shape (n, k).
    """
    n, k = indices.shape
    rows = np.arange(n)[:, None]
    is_self = indices == rows
    # Self first, then the others in their original (nearest-first) order.
    key = np.where(is_self, -1, np.arange(k)[None, :])
    order = np.argsort(key, axis=1, kind="stable")
    indices = np.take_along_axis(indices, order, axis=1)
    similarities = np.take_along_axis(similarities, order, axis=1)
    missing = ~is_self.any(axis=1)
    if missing.any():
        indices[missing, 1:] = indices[missing, :-1]
        similarities[missing, 1:] = similarities[missing, :-1]
        indices[missing, 0] = np.flatnonzero(missing)
    distances = np.clip(1.0 - similarities, 0.0, 2.0).astype(np.float32)
    distances[:, 0] = 0.0
    # Rounding can leave tiny inversions; UMAP expects sorted rows.
    distances = np.maximum.accumulate(distances, axis=1)
    unfilled = indices < 0
    if unfilled.any():  # HNSW may return fewer than k results for a few rows
        indices = np.where(unfilled, rows, indices)
        distances = np.where(unfilled, distances[:, -1:], distances)
    return indices.astype(np.int64), distances


def _search_exact(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    _, candidates = index.search(unit, min(unit.shape[0], k + _RERANK_MARGIN))
    indices, similarities = rescore_neighbours(unit, unit, candidates, k)
    return indices, similarities.astype(np.float32)


def rescore_neighbours(queries: np.ndarray, base: np.ndarray, found: np.ndarray, k: int,
                       block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Keep each query's ``k`` best candidates by a float64 cosine, ties broken by row number.

    FAISS scores queries with float32 matrix products whose rounding depends on the batch
    a query is in and on the number of threads; near-ties then trade places and UMAP,
    being chaotic, lands elsewhere (on 20 Newsgroups, 1.8% of the cluster labels differed
    between 1 and 2 threads). Products of float32 numbers are exact in float64 and each
    row's sum has a fixed order, so with a total order (score, then row) a query's
    neighbours and scores depend neither on its batch nor on the thread count.

    Parameters
    ----------
    queries : ndarray of shape (m, d), float32
        Unit-length query rows.
    base : ndarray of shape (n, d), float32
        Unit-length rows the candidates point into.
    found : ndarray of shape (m, w), w >= k
        Candidate row numbers from a search (-1 for none).
    k : int

    Returns
    -------
    indices : ndarray of shape (m, k), int64
        -1 where fewer than ``k`` were found.
    similarities : ndarray of shape (m, k), float64
        -inf where fewer than ``k`` were found.
    """
    m = found.shape[0]
    indices = np.empty((m, k), dtype=np.int64)
    similarities = np.empty((m, k), dtype=np.float64)
    for start in range(0, m, block):
        rows = slice(start, min(start + block, m))
        candidates = np.asarray(found[rows], dtype=np.int64)
        valid = candidates >= 0
        others = base[np.where(valid, candidates, 0)].astype(np.float64)  # (b, w, d)
        scores = (others * np.asarray(queries[rows], dtype=np.float64)[:, None, :]).sum(axis=-1)
        scores = np.where(valid, scores, -np.inf)
        order = np.lexsort((np.where(valid, candidates, np.iinfo(np.int64).max), -scores), axis=-1)[:, :k]
        indices[rows] = np.take_along_axis(np.where(valid, candidates, -1), order, axis=1)
        similarities[rows] = np.take_along_axis(scores, order, axis=1)
    return indices, similarities


def _search_hnsw(space, unit: np.ndarray, k: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    if space is not None:  # the search engine's HNSW index, tuned for recall

        index = build_index(space, kind="hnsw", progress=False, random_state=random_state, lexical=False)
        similarities, indices = index.search_vectors(unit, k)
        return np.asarray(indices), np.asarray(similarities, dtype=np.float32)
    import faiss

    index = faiss.IndexHNSWFlat(unit.shape[1], _HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 2 * _HNSW_EF_SEARCH
    index.hnsw.efSearch = max(_HNSW_EF_SEARCH, 2 * k)
    index.add(unit)
    similarities, indices = index.search(unit, k)
    return indices, similarities


def knn_graph(data, k: int = 30, *, exact: bool | None = None, random_state: int = 0) -> KNNGraph:
    """Find the ``k`` nearest neighbours (by cosine similarity) of every row.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
        The collection; rows are scaled to unit length if they are not already.
    k : int, default=30
        Neighbours per row, the row itself included; reduced to ``n`` for tiny inputs.
    exact : bool or None, default=None
        Force a flat (exact) or HNSW (approximate) search; ``None`` picks exact for
        ``n <= EXACT_MAX_ROWS``.
    random_state : int, default=0
        Seed of the HNSW index's tuning sample (the exact search has no randomness).

    Returns
    -------
    KNNGraph

    Raises
    ------
    InputError
        If ``k < 2`` or the data has fewer than 2 rows or non-finite values.
    """
    space = data if hasattr(data, "vectors") and hasattr(data, "table") else None
    vectors = np.asarray(space.vectors if space is not None else data)
    if vectors.ndim != 2:
        raise InputError(f"vectors must have shape (n, d), got {vectors.shape}")
    n = vectors.shape[0]
    if n < 2:
        raise InputError(f"a neighbour graph needs at least 2 documents, got {n}")
    if k < 2:
        raise InputError(f"k must be at least 2 (the row itself and one neighbour), got {k}")
    if not np.isfinite(vectors).all():
        raise InputError("vectors contain NaN or infinite values; re-embed the collection")
    k = min(int(k), n)
    unit = _unit_rows(vectors)
    use_exact = n <= EXACT_MAX_ROWS if exact is None else bool(exact)
    if use_exact:
        indices, similarities = _search_exact(unit, k)
    else:
        indices, similarities = _search_hnsw(space, unit, k, random_state)
    indices, distances = _self_first(np.array(indices, dtype=np.int64), np.array(similarities, dtype=np.float32))
    return KNNGraph(indices, distances, use_exact)
