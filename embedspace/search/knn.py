"""Nearest neighbours and similarity ranges of whole collections, in bounded memory.

What :mod:`embedspace.analysis` (outlier scores, duplicate groups) and the map's columns
need: every row's k nearest rows of a *base* collection, or every pair of rows above a
cosine threshold — for collections of millions of rows, so queries go through FAISS in
blocks and nothing of size ``n x n`` is ever held.

The base is searched

- exactly (``IndexFlatIP`` over unit rows) up to :data:`EXACT_MAX_ROWS` rows;
- above that through an inverted file with 8-bit scalar-quantised codes
  (``IndexIVFScalarQuantizer``, ``nlist ≈ 4√n`` cells, :data:`IVF_NPROBE` probed): the codes
  take d bytes per row (384 MB for a million 384-d rows) while the float vectors stay
  where they are (a memory-mapped EmbeddingSet is read block by block). Similarities
  from the codes are within ~1e-3 of the float ones; range searches re-check every
  candidate pair on the float vectors, so a threshold is applied exactly.

Cosine similarity is the inner product of unit rows; rows that are not unit length are
scaled block by block.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from embedspace._progress import progress_bar
from embedspace.errors import InputError

__all__ = ["EXACT_MAX_ROWS", "IVF_NPROBE", "NeighbourSearch", "QUERY_BLOCK"]

EXACT_MAX_ROWS = 100_000
"""Bases up to this many rows are searched exactly; a flat scan of 100k x 100k 384-d rows
is ~4e12 multiply-adds (about a minute on 2 cores)."""
IVF_NPROBE = 32
"""Cells probed per query in the IVF index (see scripts/bench_outliers.py, scale table)."""
QUERY_BLOCK = 4096
"""Queries per FAISS call: results and scratch stay ~k x 4096 per block."""
_TRAIN_PER_CELL = 40
_PARALLEL_WORK = 5e7
"""Searches of fewer query x base pairs than this run FAISS on one thread (OpenMP
spin-up and waiting cost more than they save on small jobs on a busy machine)."""


def unit_rows(block) -> np.ndarray:
    """Return float32 rows of ``block`` scaled to unit length (rows of zeros stay zero).

    Parameters
    ----------
    block : array-like of shape (m, d)

    Returns
    -------
    ndarray of shape (m, d), float32, C-contiguous
    """
    array = np.ascontiguousarray(block, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.all(np.abs(norms - 1.0) <= 1e-3):
        return array
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


@contextlib.contextmanager
def _threads(work: float):
    import faiss

    if work >= _PARALLEL_WORK:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class NeighbourSearch:
    """A FAISS index over a base collection, searched by blocks of query rows.

    Parameters
    ----------
    base : array-like of shape (n, d)
        The rows searched (possibly memory-mapped; read in blocks).
    exact : bool or None, default=None
        Force a flat (exact) or IVF (approximate) index; ``None``: exact when
        ``n <= EXACT_MAX_ROWS``.
    random_state : int, default=0
        Seed of the IVF training sample.
    progress : bool or None, default=None
        Progress bar while the index is built.

    Attributes
    ----------
    exact : bool
    n : int
    """

    def __init__(self, base, *, exact: bool | None = None, random_state: int = 0, progress=None):
        import faiss

        self.base = base
        n, d = int(base.shape[0]), int(base.shape[1])
        if n < 1:
            raise InputError("the collection to search is empty")
        self.n, self.d = n, d
        self.exact = n <= EXACT_MAX_ROWS if exact is None else bool(exact)
        if self.exact:
            self.index = faiss.IndexFlatIP(d)
        else:
            nlist = max(1, min(int(4 * math.sqrt(n)), n // _TRAIN_PER_CELL))
            quantizer = faiss.IndexFlatIP(d)
            self.index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                       faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(random_state)
            sample = np.sort(rng.choice(n, size=min(n, nlist * _TRAIN_PER_CELL), replace=False))
            with _threads(len(sample) * nlist):
                self.index.train(unit_rows(base[sample]))
            self.index.nprobe = min(IVF_NPROBE, nlist)
        step = 65536
        with progress_bar(n, "indexing", progress=progress, unit="row") as bar, _threads(n * 1000):
            for start in range(0, n, step):
                self.index.add(unit_rows(base[start:start + step]))
                bar.update(min(step, n - start))

    def search(self, queries, k: int, *, self_offset: int | None = None, progress=None, desc: str = "neighbours"):
        """The ``k`` most similar base rows of every query row.

        Parameters
        ----------
        queries : array-like of shape (m, d)
        k : int
            Neighbours per query (at most the base's size, less one with ``self_offset``).
        self_offset : int or None, default=None
            When the queries are base rows ``self_offset .. self_offset + m - 1``, leave
            each query's own row out of its neighbours (with exact duplicates, one copy
            is left out: the row itself when found, else the last of the ``k + 1``).
        progress : bool or None, default=None
        desc : str
            Label of the progress bar.

        Returns
        -------
        similarities : ndarray of shape (m, k), float32
            Cosine similarities, most similar first.
        indices : ndarray of shape (m, k), int64
            Base rows (-1 where the IVF search found fewer than ``k``).
        """
        extra = 0 if self_offset is None else 1
        if not 1 <= k <= self.n - extra:
            raise InputError(f"k must be between 1 and {self.n - extra} for a collection of {self.n} rows, got {k}")
        m = int(queries.shape[0])
        similarities = np.empty((m, k), dtype=np.float32)
        indices = np.empty((m, k), dtype=np.int64)
        with progress_bar(m, desc, progress=progress, unit="row") as bar, \
                _threads(m * (self.n if self.exact else self.n * self.index.nprobe / self.index.nlist)):
            for start in range(0, m, QUERY_BLOCK):
                stop = min(start + QUERY_BLOCK, m)
                found_s, found_i = self.index.search(unit_rows(queries[start:stop]), k + extra)
                if extra:
                    found_s, found_i = _drop_self(found_s, found_i, np.arange(start, stop) + self_offset)
                similarities[start:stop] = found_s
                indices[start:stop] = found_i
                bar.update(stop - start)
        return similarities, indices

    def pairs_above(self, threshold: float, *, progress=None, desc: str = "similar pairs"):
        """Yield every pair of base rows ``i < j`` with cosine similarity >= ``threshold``.

        The base is searched against itself, one block of query rows at a time; each
        candidate pair is re-scored on the float vectors, so the threshold is exact
        (for the IVF index, a pair whose codes score it more than 0.01 too low can be
        missed; see scripts/bench_outliers.py).

        Parameters
        ----------
        threshold : float
            In (0, 1].
        progress : bool or None, default=None
        desc : str

        Yields
        ------
        left, right : ndarray of shape (p,), int64
            ``left < right``.
        similarity : ndarray of shape (p,), float32
        """
        slack = 0.0 if self.exact else 0.01
        with progress_bar(self.n, desc, progress=progress, unit="row") as bar, \
                _threads(self.n * (self.n if self.exact else self.n * self.index.nprobe / self.index.nlist)):
            for start in range(0, self.n, QUERY_BLOCK):
                stop = min(start + QUERY_BLOCK, self.n)
                queries = unit_rows(self.base[start:stop])
                limits, scores, found = self.index.range_search(queries, float(threshold) - slack - 1e-6)
                owner = np.repeat(np.arange(start, stop), np.diff(limits.astype(np.int64)))
                found = found.astype(np.int64)
                keep = found > owner
                owner, found = owner[keep], found[keep]
                if len(owner):
                    exact = _pair_similarities(self.base, queries, owner - start, found)
                    keep = exact >= threshold
                    yield owner[keep], found[keep], exact[keep]
                bar.update(stop - start)


def _pair_similarities(base, queries: np.ndarray, query_rows: np.ndarray, others: np.ndarray,
                       block: int = 65536) -> np.ndarray:
    """Cosine of ``queries[query_rows[p]]`` and base row ``others[p]`` for each pair p (float32)."""
    out = np.empty(len(others), dtype=np.float32)
    for start in range(0, len(others), block):
        stop = min(start + block, len(others))
        rows = others[start:stop]
        order = np.argsort(rows, kind="stable")  # sorted reads are kind to a memory-mapped base
        right = unit_rows(np.asarray(base[rows[order]]))
        left = queries[query_rows[start:stop][order]]
        values = np.einsum("ij,ij->i", left, right)
        out[start + order] = np.minimum(values, 1.0)
    return out


def _drop_self(similarities: np.ndarray, indices: np.ndarray, rows: np.ndarray):
    """Remove each query's own row (or, when absent, its last result) from k + 1 results."""
    m, width = indices.shape
    is_self = indices == rows[:, None]
    first = np.where(is_self.any(axis=1), is_self.argmax(axis=1), width - 1)
    keep = np.ones_like(is_self)
    keep[np.arange(m), first] = False
    return similarities[keep].reshape(m, width - 1), indices[keep].reshape(m, width - 1)
