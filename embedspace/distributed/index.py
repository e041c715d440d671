"""Build an IVF or IVF-PQ search index on Ray: train on a sample, fill shards in parallel, merge.

Why: in an IVF build the part that grows with n is adding the vectors — assigning each
to its k-means cell and, for IVF-PQ, encoding it. Once the coarse quantizer (and the PQ
codebooks) are trained that work splits into independent pieces, so it is what this
module sends to a Ray cluster. Everything else is the ordinary
:func:`embedspace.search.index.build_index`, which takes the shard adder as a collaborator.

What runs where
---------------
- **Driver** (the process running ``embedspace index --engine ray``): reads the set
  (memory-mapped), draws the training sample and trains k-means (and the PQ codebooks)
  exactly as the single-process build does — same seed, same centroids — and puts the
  trained, empty index into Ray's object store once.
- **Ray tasks** (one CPU each, on any node): each gets the trained index and one block of
  rows, shipped by the driver through the object store (so workers need no access to the
  set's path), adds the rows with their row ids and returns the filled shard, serialised.
- **Driver**: merges the shards in row order (``IndexIVF.merge_from`` moves each shard's
  inverted lists into the index), tunes ``nprobe`` on the rows held out for tuning, adds
  them, builds BM25 and saves one ordinary index directory.

Because every row lands in the same cell with the same code and each inverted list holds
the same ids in the same order, the merged index is byte-for-byte the index the single
process builds (``tests/test_distributed_scale.py`` checks this), so its recall is equal
by construction; the result is one index that ``embedspace search`` loads like any other.

Kinds: ``ivf`` and ``ivfpq`` are built in shards. ``auto`` picks IVF where the local
engine would pick HNSW (an HNSW graph cannot be built in pieces and merged), IVF-PQ where
memory is short, and exact search for sets under 50,000 vectors (built by the driver;
there is nothing worth distributing). ``hnsw`` with ``--engine ray`` is refused.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque

import numpy as np

from embedspace._progress import progress_bar
from embedspace.distributed.session import ray_session, unwrap_ray_error
from embedspace.errors import InputError
from embedspace.search import SetSource, build_index, choose_kind, default_budget, parse_memory

__all__ = ["build_index_with_ray", "RAY_KINDS"]

log = logging.getLogger("embedspace")

RAY_KINDS = ("auto", "flat", "ivf", "ivfpq")
_MAX_SHARD_ROWS = 50_000
"""Rows per shard at most: 77 MB of 384-d float32 in flight per task."""


def _fill_shard(blob, vectors, ids, threads):
    """Ray task: add one block of rows to a copy of the trained empty index; return it serialised."""
    import faiss

    faiss.omp_set_num_threads(int(threads))
    index = faiss.deserialize_index(blob)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return faiss.serialize_index(index)


def shard_bounds(n_rows: int, workers: int, rows_per_shard: int | None = None) -> list[tuple[int, int]]:
    """Split ``n_rows`` into contiguous ``[start, stop)`` blocks for ``workers`` Ray tasks.

    Parameters
    ----------
    n_rows : int
    workers : int
        Tasks that run at once.
    rows_per_shard : int, optional
        Default: the rows split in 2 blocks per worker, between 5,000 and 50,000 rows each.

    Returns
    -------
    list of (int, int)
    """
    if rows_per_shard is None:
        rows_per_shard = min(_MAX_SHARD_ROWS, max(5_000, math.ceil(n_rows / (2 * max(workers, 1)))))
    if rows_per_shard < 1:
        raise InputError(f"rows_per_shard must be at least 1, got {rows_per_shard}")
    return [(start, min(start + rows_per_shard, n_rows)) for start in range(0, n_rows, rows_per_shard)]


class RayShardAdder:
    """Adds rows to a trained IVF index through Ray tasks, then merges the shards in order.

    An ``adder`` for :func:`embedspace.search.index.build_index` (see :func:`embedspace.search.ann.build`).

    Parameters
    ----------
    ray : module
        The connected ``ray`` module (:func:`embedspace.distributed.session.ray_session`).
    workers : int
        Tasks running at once; the driver keeps at most twice as many blocks in flight.
    rows_per_shard : int, optional
        See :func:`shard_bounds`.

    Attributes
    ----------
    shards_ : int
        Shards added by the last call.
    """

    def __init__(self, ray, workers: int, rows_per_shard: int | None = None):
        self.ray = ray
        self.workers = int(workers)
        self.rows_per_shard = rows_per_shard
        self.shards_ = 0

    def __call__(self, index, store, rows, progress=None) -> None:
        import faiss

        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        if not hasattr(index, "invlists"):
            raise InputError(f"only IVF indexes are built in shards, not {type(index).__name__}")
        empty = index
        if index.ntotal:  # the shards must start empty, or merging would repeat the rows
            empty = faiss.clone_index(index)
            empty.reset()
        blob = self.ray.put(faiss.serialize_index(empty))
        fill = self.ray.remote(num_cpus=1)(_fill_shard)
        bounds = shard_bounds(len(rows), self.workers, self.rows_per_shard)
        self.shards_ = len(bounds)
        pending: deque = deque()
        submitted = 0
        with progress_bar(len(rows), "indexing (ray)", progress=progress, unit="vec") as bar:
            try:
                while submitted < len(bounds) or pending:
                    while submitted < len(bounds) and len(pending) < 2 * self.workers:
                        start, stop = bounds[submitted]
                        ids = rows[start:stop]
                        pending.append((fill.remote(blob, store.take(ids), ids, 1), len(ids)))
                        submitted += 1
                    ref, size = pending.popleft()
                    shard = faiss.deserialize_index(self.ray.get(ref))
                    del ref
                    index.merge_from(shard, 0)  # moves the shard's lists; row order kept
                    bar.update(size)
            except Exception as exc:  # a failed task carries the embedspace error as its cause
                for ref, _ in pending:
                    self.ray.cancel(ref)
                inner = unwrap_ray_error(exc)
                if inner is not exc:
                    raise inner from None
                raise


def resolve_kind(kind: str, n: int, d: int, memory_budget) -> str:
    """The index kind an ``--engine ray`` build makes for ``kind`` (see the module notes).

    Raises
    ------
    InputError
        For ``hnsw`` or an unknown kind.
    """

    if kind == "hnsw":
        raise InputError(
            "an HNSW graph cannot be built in shards and merged, so engine='ray' builds IVF or IVF-PQ indexes: "
            "use kind='ivf' (or 'ivfpq', or 'auto'), or engine='local' for HNSW"
        )
    if kind not in RAY_KINDS:
        raise InputError(f"unknown index kind '{kind}' (with engine='ray' choose from {', '.join(RAY_KINDS)})")
    if kind != "auto":
        return kind
    chosen = choose_kind(n, d, memory_budget)
    return "ivf" if chosen == "hnsw" else chosen


def build_index_with_ray(space, kind: str = "auto", memory_budget=None, progress=None, random_state: int = 0, *,
                         lexical: bool = True, address: str | None = None, workers: int | None = None,
                         rows_per_shard: int | None = None):
    """Build a search index with the row additions spread over a Ray cluster.

    Parameters
    ----------
    space : EmbeddingSet or path-like
        As for :func:`embedspace.search.index.build_index`; a set on disk is read by the driver.
    kind : {"auto", "flat", "ivf", "ivfpq"}, default="auto"
        ``auto`` gives IVF where the local build would give HNSW (see the module notes).
    memory_budget, progress, random_state, lexical
        As for :func:`embedspace.search.index.build_index`.
    address : str, optional
        Ray cluster to join; ``None`` starts a local one.
    workers : int, optional
        Shard tasks running at once; default: the cluster's CPUs.
    rows_per_shard : int, optional
        Rows per task (default: 2 shards per worker, 5,000 to 50,000 rows each).

    Returns
    -------
    Index
        The same index :func:`embedspace.search.index.build_index` returns for the resolved kind;
        ``info`` adds ``engine``, ``ray_workers`` and ``shards``.

    Raises
    ------
    InputError
        ``kind="hnsw"``, an unknown kind, an empty set, an unreachable cluster.

    Examples
    --------
    >>> from embedspace.distributed.index import build_index_with_ray  # doctest: +SKIP
    >>> index = build_index_with_ray("big.set", kind="ivfpq")  # doctest: +SKIP
    >>> index.save("big.index")  # doctest: +SKIP
    """

    started = time.perf_counter()
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise InputError(f"workers must be a whole number >= 1, got {workers!r}")
    budget = parse_memory(memory_budget) if memory_budget is not None else default_budget()
    source = SetSource.of(space)
    if source.n == 0:
        raise InputError("cannot index an empty EmbeddingSet")
    chosen = resolve_kind(kind, source.n, source.d, budget)
    if chosen == "flat":
        log.info("%d vectors: exact search, built by the driver (nothing to shard)", source.n)
        index = build_index(space, kind="flat", memory_budget=budget, progress=progress,
                            random_state=random_state, lexical=lexical)
        index.info.update({"engine": "ray", "ray_workers": 0, "shards": 0, "requested_kind": kind})
        return index
    ray = ray_session(address)
    n_workers = int(workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    adder = RayShardAdder(ray, n_workers, rows_per_shard)
    index = build_index(space, kind=chosen, memory_budget=budget, progress=progress, random_state=random_state,
                        lexical=lexical, adder=adder)
    index.info.update({"engine": "ray", "ray_workers": n_workers, "shards": adder.shards_, "requested_kind": kind,
                       "seconds": round(time.perf_counter() - started, 3)})
    return index
