"""Map a collection too large to lay out whole: fit on a sample, place every other row.

Why: UMAP and HDBSCAN grow faster than the collection in time and memory, and topic
tools fail at half a million to a million documents. The usual remedy — fit on a sample,
then ``transform`` / ``approximate_predict`` the rest — also makes the expensive part
(placing the other rows) independent row by row, so it runs in parallel batches, locally
or on Ray.

Fit
---
:class:`SampledMapper` draws ``sample_size`` rows (default 50,000, seeded) and runs the
ordinary map pipeline on them (:class:`embedspace.mapping.mapper.CollectionMapper`: FAISS kNN
graph, UMAP to 5-D for clustering and to 2-D for display, HDBSCAN with automatic
granularity or k-means). Sample rows keep exactly the positions and clusters of that fit.
With ``n <= sample_size`` the whole collection is mapped the ordinary way.

Placement of every other row (:func:`place_rows`, in batches of ``batch_rows``)
-----------------------------------------------------------------------------
1. Its ``n_neighbors`` nearest sample rows by cosine, with FAISS (exact for samples up to
   20,000 rows, HNSW above). The sample's UMAP was fit on a precomputed graph and so has
   no search index of its own; this replaces ``UMAP.transform``'s search, nothing else.
2. UMAP's own transform machinery, for the 5-D and the 2-D layout: ``smooth_knn_dist``
   and ``compute_membership_strengths(bipartite=True)`` weight the neighbours, the row
   starts at the weighted mean of their positions (``init_graph_transform``, vectorised)
   and ``optimize_layout_euclidean`` moves it for ``n_epochs // 3`` epochs with the sample
   fixed. One documented difference: edges are pruned and scheduled against the largest
   possible strength (1) instead of the largest in the batch, so a row's position does not
   depend on which batch it is in (UMAP's per-row random streams already do not).
3. Its cluster: ``hdbscan.approximate_predict`` on its 5-D position, against HDBSCAN refit
   on the sample's 5-D layout with ``prediction_data=True`` at the ``min_cluster_size``
   the sample's clustering chose (the same labels, mapped to the sample's numbering);
   ``outlier_score`` from ``approximate_predict_scores``. With ``n_clusters`` the row
   joins the nearest centre of the sample's clusters (the k-means rule), ``probability``
   being the margin ``1 - d1 / d2`` as for sample rows. With ``assign_outliers`` a placed
   outlier takes the cluster of its nearest clustered sample row.

Because a row's placement depends only on the fitted sample and the seed, local batches
and Ray batches give identical columns (tested). With ``engine="ray"`` the driver fits the
sample, puts the fitted state in Ray's object store once and sends row blocks to tasks of
one CPU each; the sample fit itself is one process.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from embedspace._progress import progress_bar
from embedspace.distributed import ray_session, unwrap_ray_error
from embedspace.errors import InputError
from embedspace.mapping import mapper as mapping
from embedspace.mapping.clustering import MIN_SAMPLES
from embedspace.mapping.mapper import require_embeddingset
from embedspace.mapping.neighbors import rescore_neighbours
from embedspace.mapping.reduction import prepare_numba

__all__ = ["SampledMapper", "map_sampled", "place_rows", "PlacementState", "SAMPLE_SIZE", "BATCH_ROWS", "MIN_SAMPLE"]

log = logging.getLogger("embedspace")

SAMPLE_SIZE = 50_000
"""Rows the layouts and clusters are fitted on by default."""
BATCH_ROWS = 20_000
"""Rows placed per batch (per Ray task)."""
MIN_SAMPLE = 100
"""The smallest sample a map is fitted on."""
_EXACT_SAMPLE = 20_000
_HNSW_M = 32
_HNSW_EF = 128
_SPARE = 5
"""Extra candidates fetched from FAISS, so near-ties at the k-th place are settled exactly."""


@dataclass
class PlacementState:
    """Everything a batch needs to place rows against the fitted sample (picklable).

    Attributes
    ----------
    index_blob : ndarray of uint8
        Serialised FAISS index over the sample's unit vectors (row i = sample row i).
    sample_vectors : ndarray of shape (s, d), float32
        The sample's unit vectors (the neighbours' similarities are recomputed from them).
    layouts : list of ndarray of shape (s, c), float32
        The sample's clustering layout, then (if computed) its display layout.
    ab : list of (float, float)
        UMAP's curve parameters ``a, b`` for each layout.
    n_neighbors, n_epochs : int
    method : str
        ``"hdbscan"`` or ``"kmeans"``.
    hdbscan_model : hdbscan.HDBSCAN
        Fitted on the clustering layout with prediction data.
    label_map : ndarray of int64
        ``label_map[raw + 1]`` = the sample clustering's label of HDBSCAN's raw label.
    centres : ndarray of shape (k, c) or None
        Cluster centres in the clustering layout (k-means).
    sample_labels : ndarray of shape (s,), int64
    assign_outliers : bool
    seed : int
    """

    index_blob: np.ndarray
    sample_vectors: np.ndarray
    layouts: list
    ab: list
    n_neighbors: int
    n_epochs: int
    method: str
    hdbscan_model: object
    label_map: np.ndarray
    centres: np.ndarray | None
    sample_labels: np.ndarray
    assign_outliers: bool
    seed: int


_INDEXES: dict = {}


def _sample_index(state: PlacementState):
    """The FAISS index of ``state``, deserialised once per process."""
    import faiss

    key = (id(state.index_blob), len(state.index_blob))
    if key not in _INDEXES:
        _INDEXES.clear()
        _INDEXES[key] = faiss.deserialize_index(state.index_blob)
    return _INDEXES[key]


def _unit(vectors) -> np.ndarray:
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    return np.ascontiguousarray(array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12))


def initial_positions(indices: np.ndarray, weights: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """Weighted mean of the neighbours' positions: ``umap.umap_.init_graph_transform``, vectorised.

    Parameters
    ----------
    indices : ndarray of shape (m, k), int
        Neighbours (rows of ``layout``); -1 for none.
    weights : ndarray of shape (m, k), float
        Membership strengths; 0 for none. A strength of exactly 1 (a duplicate of a
        sample row) places the row on that neighbour, as UMAP does.
    layout : ndarray of shape (s, c)

    Returns
    -------
    ndarray of shape (m, c), float32
        NaN rows where a row has no neighbour with positive strength.
    """
    weights = np.where(indices >= 0, weights, 0.0).astype(np.float64)
    positions = layout[np.maximum(indices, 0)].astype(np.float64)  # (m, k, c)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (weights[:, :, None] * positions).sum(axis=1) / total
    exact = weights == 1.0
    hit = exact.any(axis=1)
    if hit.any():
        first = exact.argmax(axis=1)
        result[hit] = positions[np.flatnonzero(hit), first[hit]]
    return result.astype(np.float32)


def place_rows(state: PlacementState, vectors) -> dict:
    """Place rows against the fitted sample (see the module notes).

    Parameters
    ----------
    state : PlacementState
    vectors : array-like of shape (m, d)
        The rows' embeddings (normalised here).

    Returns
    -------
    dict of ndarray
        ``cluster_embedding`` (m, c), ``display_embedding`` (m, 2) or None, ``cluster``
        (m,) int64, ``probability`` (m,) float32, ``outlier_score`` (m,) float32.
    """
    import faiss
    import scipy.sparse
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import compute_membership_strengths, smooth_knn_dist

    prepare_numba()
    unit = _unit(vectors)
    m = len(unit)
    index = _sample_index(state)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one CPU per batch; batches run side by side
    try:
        _, found = index.search(unit, min(state.n_neighbors + _SPARE, len(state.sample_vectors)))
    finally:
        faiss.omp_set_num_threads(before)
    indices, similarities = rescore_neighbours(unit, state.sample_vectors, found, state.n_neighbors)
    distances = np.ascontiguousarray(np.clip(1.0 - similarities, 0.0, 2.0), dtype=np.float32)
    distances[indices < 0] = 2.0  # HNSW found fewer than k: the slot is skipped below
    sigmas, rhos = smooth_knn_dist(distances, float(state.n_neighbors), local_connectivity=0.0)
    # one entry per (row, neighbour) slot in row-major order; skipped slots hold strength 0
    rows, cols, strengths, _ = compute_membership_strengths(indices, distances, sigmas, rhos, bipartite=True)
    weights = strengths.reshape(indices.shape)
    placed = []
    rng_state = np.random.RandomState(state.seed).randint(-2147483647, 2147483646, 3).astype(np.int64)
    for layout, (a, b) in zip(state.layouts, state.ab):
        start = initial_positions(indices, weights, layout)
        lost = ~np.isfinite(start).all(axis=1)
        if lost.any():  # no usable neighbour: sit on the nearest sample row
            start[lost] = layout[np.maximum(indices[lost, 0], 0)]
        graph = scipy.sparse.coo_matrix((strengths, (rows, cols)), shape=(m, len(layout)))
        graph.data[graph.data < 1.0 / state.n_epochs] = 0.0  # UMAP prunes against max strength; here 1
        graph.eliminate_zeros()
        epochs_per_sample = np.where(graph.data > 0, 1.0 / np.maximum(graph.data, 1e-300), -1.0)
        moved = optimize_layout_euclidean(
            np.ascontiguousarray(start, dtype=np.float32), np.ascontiguousarray(layout, dtype=np.float32).copy(),
            graph.row, graph.col, state.n_epochs, len(layout), epochs_per_sample, a, b, rng_state,
            1.0, 0.25, 5.0, False, move_other=False,
        )
        placed.append(np.ascontiguousarray(moved, dtype=np.float32))
    cluster_position = placed[0]
    labels, probability, outlier = _clusters(state, cluster_position)
    return {
        "cluster_embedding": cluster_position,
        "display_embedding": placed[1] if len(placed) > 1 else None,
        "cluster": labels,
        "probability": probability,
        "outlier_score": outlier,
    }


def _clusters(state: PlacementState, positions: np.ndarray):
    import hdbscan

    points = np.asarray(positions, dtype=np.float64)
    model = state.hdbscan_model
    scores = np.nan_to_num(np.asarray(hdbscan.approximate_predict_scores(model, points), dtype=np.float64),
                           nan=0.0, posinf=1.0, neginf=0.0)
    outlier = np.clip(scores, 0.0, 1.0).astype(np.float32)
    if state.method == "kmeans":
        distances = np.linalg.norm(points[:, None, :] - state.centres[None, :, :], axis=2)
        labels = distances.argmin(axis=1).astype(np.int64)
        if distances.shape[1] > 1:
            two = np.partition(distances, 1, axis=1)[:, :2]
            probability = np.clip(1.0 - two[:, 0] / np.maximum(two[:, 1], 1e-12), 0.0, 1.0)
        else:
            probability = np.ones(len(points))
        return labels, probability.astype(np.float32), outlier
    raw, strength = hdbscan.approximate_predict(model, points)
    labels = state.label_map[np.asarray(raw, dtype=np.int64) + 1]
    probability = np.asarray(strength, dtype=np.float32)
    if state.assign_outliers and (labels < 0).any() and (state.sample_labels >= 0).any():
        from sklearn.neighbors import NearestNeighbors

        clustered = np.flatnonzero(state.sample_labels >= 0)
        finder = NearestNeighbors(n_neighbors=1).fit(np.asarray(state.layouts[0], dtype=np.float64)[clustered])
        noise = labels < 0
        _, nearest = finder.kneighbors(points[noise])
        labels[noise] = state.sample_labels[clustered[nearest[:, 0]]]
    return labels, probability, outlier


class SampledMapper:
    """The map pipeline for large collections: fit on a sample, place the other rows.

    Parameters
    ----------
    sample_size : int, default=SAMPLE_SIZE
        Rows UMAP and HDBSCAN are fitted on; collections up to this size are mapped whole.
    n_neighbors, cluster_dimensions, min_cluster_size, n_clusters, assign_outliers, display, progress
        As for :class:`embedspace.mapping.mapper.CollectionMapper`.
    random_state : int, default=0
        Seeds the sample, the fit and the placement; the same seed gives the same columns.
    engine : {"local", "ray"}, default="local"
        Where the placement batches run.
    address : str, optional
        Ray cluster to join (``engine="ray"``); ``None`` starts a local one.
    workers : int, optional
        Ray tasks at once; default the cluster's CPUs.
    batch_rows : int, default=BATCH_ROWS
        Rows per placement batch.

    Attributes
    ----------
    space_ : EmbeddingSet
        The input with ``x``, ``y``, ``cluster``, ``probability``, ``outlier_score``.
    sample_rows_ : ndarray of int64
        The rows fitted (sorted); every other row was placed.
    sample_mapper_ : CollectionMapper
        The fit on the sample.
    cluster_embedding_ : ndarray of shape (n, cluster_dimensions)
    display_embedding_ : ndarray of shape (n, 2)
    clusterer_ : Clusterer
        The sample's clustering (its ``labels_`` cover the sample rows).
    method_ : str
        E.g. ``"umap+hdbscan, fitted on 50000 rows, 950000 placed"``.
    timings_ : dict
        Seconds per stage, ``placement`` included.
    n_placed_ : int
    """

    def __init__(self, *, sample_size: int = SAMPLE_SIZE, n_neighbors: int | None = None, cluster_dimensions: int | None = None,
                 min_cluster_size="auto", n_clusters: int | None = None, assign_outliers: bool = False,
                 random_state: int = 0, display: bool = True, progress: bool | None = None, engine: str = "local",
                 address: str | None = None, workers: int | None = None, batch_rows: int = BATCH_ROWS):
        self.sample_size = sample_size
        self.n_neighbors = n_neighbors
        self.cluster_dimensions = cluster_dimensions
        self.min_cluster_size = min_cluster_size
        self.n_clusters = n_clusters
        self.assign_outliers = assign_outliers
        self.random_state = random_state
        self.display = display
        self.progress = progress
        self.engine = engine
        self.address = address
        self.workers = workers
        self.batch_rows = batch_rows

    def _check(self, space) -> None:
        require_embeddingset(space)
        for name, low in (("sample_size", MIN_SAMPLE), ("batch_rows", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise InputError(f"{name} must be a whole number >= {low}, got {value!r}")
        if self.engine not in ("local", "ray"):
            raise InputError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.engine == "local" and (self.address or self.workers):
            raise InputError("a Ray address or worker count needs engine='ray'")
        if self.workers is not None and (not isinstance(self.workers, (int, np.integer)) or self.workers < 1):
            raise InputError(f"workers must be a whole number >= 1, got {self.workers!r}")

    def _inner(self, display: bool):
        return mapping.CollectionMapper(
            n_neighbors=self.n_neighbors or mapping.N_NEIGHBORS,
            cluster_dimensions=self.cluster_dimensions or mapping.CLUSTER_DIMENSIONS,
            min_cluster_size=self.min_cluster_size, n_clusters=self.n_clusters, assign_outliers=self.assign_outliers,
            random_state=self.random_state, display=display, progress=self.progress)

    def fit(self, space) -> "SampledMapper":
        """Map ``space`` (an EmbeddingSet); the result is ``space_``."""
        self._check(space)
        n = len(space)
        inner = self._inner(self.display)
        if n <= self.sample_size:
            inner.fit(space)
            self._adopt(inner, np.arange(n), inner.cluster_embedding_, inner.display_embedding_)
            self.space_ = inner.space_
            self.n_placed_ = 0
            return self
        rng = np.random.default_rng(self.random_state)
        sample = np.sort(rng.choice(n, size=int(self.sample_size), replace=False))
        inner.fit(space.select(sample))
        if not inner.method_.startswith("umap"):
            raise InputError(f"the sample of {len(sample)} rows was too small to map; use a larger sample_size")
        started = time.perf_counter()
        state = _placement_state(inner, self.random_state)
        others = np.setdiff1d(np.arange(n), sample, assume_unique=True)
        dims = inner.cluster_embedding_.shape[1]
        cluster_embedding = np.empty((n, dims), dtype=np.float32)
        display_embedding = np.zeros((n, 2), dtype=np.float32)
        labels = np.empty(n, dtype=np.int64)
        probability = np.empty(n, dtype=np.float32)
        outlier = np.empty(n, dtype=np.float32)
        cluster_embedding[sample] = inner.cluster_embedding_
        display_embedding[sample] = inner.display_embedding_
        labels[sample] = inner.clusterer_.labels_
        probability[sample] = inner.clusterer_.probabilities_
        outlier[sample] = inner.clusterer_.outlier_scores_
        for rows, result in self._batches(space, others, state):
            cluster_embedding[rows] = result["cluster_embedding"]
            if result["display_embedding"] is not None:
                display_embedding[rows] = result["display_embedding"]
            labels[rows] = result["cluster"]
            probability[rows] = result["probability"]
            outlier[rows] = result["outlier_score"]
        self._adopt(inner, sample, cluster_embedding, display_embedding)
        self.timings_["placement"] = round(time.perf_counter() - started, 3)
        self.n_placed_ = len(others)
        self.method_ = f"{inner.method_}, fitted on {len(sample)} rows, {len(others)} placed"
        self.space_ = space.assign(
            x=display_embedding[:, 0], y=display_embedding[:, 1], cluster=labels, probability=probability,
            outlier_score=outlier,
        )
        return self

    def _adopt(self, inner, sample, cluster_embedding, display_embedding) -> None:
        self.sample_rows_ = np.asarray(sample, dtype=np.int64)
        self.sample_mapper_ = inner
        self.clusterer_ = inner.clusterer_
        self.cluster_embedding_ = cluster_embedding
        self.display_embedding_ = display_embedding
        self.knn_ = None
        self.method_ = inner.method_
        self.timings_ = dict(inner.timings_)
        # the parameters write_map records, as the inner pipeline resolved them
        self.n_neighbors = inner.n_neighbors
        self.cluster_dimensions = inner.cluster_dimensions

    def _batches(self, space, rows: np.ndarray, state: PlacementState):
        """Yield ``(rows, result)`` per batch, in row order, locally or from Ray tasks."""

        stored = space.stored_vectors
        bounds = [(s, min(s + self.batch_rows, len(rows))) for s in range(0, len(rows), self.batch_rows)]
        with progress_bar(len(rows), "placing rows" + (" (ray)" if self.engine == "ray" else ""),
                          progress=self.progress, unit="row") as bar:
            if self.engine == "local":
                for start, stop in bounds:
                    batch = rows[start:stop]
                    yield batch, place_rows(state, np.asarray(stored[batch], dtype=np.float32))
                    bar.update(len(batch))
                return
            yield from self._ray_batches(stored, rows, bounds, state, bar)

    def _ray_batches(self, stored, rows, bounds, state, bar):
        ray = ray_session(self.address)
        workers = int(self.workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        state_ref = ray.put(state)
        task = ray.remote(num_cpus=1)(place_rows)
        pending: deque = deque()
        submitted = 0
        try:
            while submitted < len(bounds) or pending:
                while submitted < len(bounds) and len(pending) < 2 * workers:
                    start, stop = bounds[submitted]
                    batch = rows[start:stop]
                    pending.append((task.remote(state_ref, np.asarray(stored[batch], dtype=np.float32)), batch))
                    submitted += 1
                ref, batch = pending.popleft()
                result = ray.get(ref)
                yield batch, result
                bar.update(len(batch))
        except Exception as exc:
            for ref, _ in pending:
                ray.cancel(ref)
            inner = unwrap_ray_error(exc)
            if inner is not exc:
                raise inner from None
            raise


def _placement_state(inner, seed: int) -> PlacementState:
    """Index the sample, refit HDBSCAN with prediction data, and collect the layouts."""
    import faiss
    import hdbscan
    from umap.umap_ import find_ab_params

    vectors = _unit(inner.space_.vectors)
    s, d = vectors.shape
    if s <= _EXACT_SAMPLE:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, _HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 2 * _HNSW_EF
        index.hnsw.efSearch = _HNSW_EF
    index.add(vectors)
    layouts = [np.ascontiguousarray(inner.cluster_embedding_, dtype=np.float32)]
    ab = [tuple(map(float, find_ab_params(1.0, 0.0)))]
    if inner.display:
        layouts.append(np.ascontiguousarray(inner.display_embedding_, dtype=np.float32))
        ab.append(tuple(map(float, find_ab_params(1.0, mapping.DISPLAY_MIN_DIST))))
    clusterer = inner.clusterer_
    size = int(clusterer.min_cluster_size_)
    model = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=int(min(MIN_SAMPLES, size)),
                            cluster_selection_method="eom", core_dist_n_jobs=1, prediction_data=True)
    model.fit(np.asarray(layouts[0], dtype=np.float64))
    sample_labels = np.asarray(clusterer.labels_, dtype=np.int64)
    label_map = np.full(int(model.labels_.max()) + 2, -1, dtype=np.int64)
    for raw in range(int(model.labels_.max()) + 1):
        found, counts = np.unique(sample_labels[model.labels_ == raw], return_counts=True)
        label_map[raw + 1] = found[counts.argmax()]
        if clusterer.method_ == "hdbscan" and len(found) != 1:
            log.warning("HDBSCAN refit on the sample split cluster %d differently; placed rows follow its majority", raw)
    centres = None
    if clusterer.method_ == "kmeans":
        k = int(sample_labels.max()) + 1
        centres = np.stack([layouts[0][sample_labels == c].mean(axis=0) for c in range(k)]).astype(np.float64)
    return PlacementState(
        index_blob=faiss.serialize_index(index), sample_vectors=vectors, layouts=layouts, ab=ab, n_neighbors=int(inner.n_neighbors),
        n_epochs=max(1, mapping.N_EPOCHS // 3), method=clusterer.method_, hdbscan_model=model, label_map=label_map,
        centres=centres, sample_labels=sample_labels, assign_outliers=bool(clusterer.assign_outliers), seed=int(seed),
    )


def map_sampled(space, *, sample_size: int = SAMPLE_SIZE, seed: int = 0, engine: str = "local", address: str | None = None,
                progress: bool | None = None, **params):
    """Lay out and cluster a large collection by fitting a sample and placing the rest.

    Parameters
    ----------
    space : EmbeddingSet
    sample_size : int, default=50000
    seed : int, default=0
    engine : {"local", "ray"}, default="local"
    address : str, optional
    progress : bool or None
    **params
        ``min_cluster_size``, ``n_clusters``, ``assign_outliers``, ``n_neighbors``,
        ``cluster_dimensions``, ``workers``, ``batch_rows``, ``display``.

    Returns
    -------
    EmbeddingSet
        ``space`` with ``x``, ``y``, ``cluster``, ``probability``, ``outlier_score``
        (as :func:`embedspace.mapping.mapper.map_collection`).

    Examples
    --------
    >>> from embedspace.mapping.sampled import map_sampled  # doctest: +SKIP
    >>> mapped = map_sampled(es.EmbeddingSet.load("big.set"), sample_size=50_000, engine="ray")  # doctest: +SKIP
    """
    mapper = SampledMapper(sample_size=sample_size, random_state=seed, engine=engine, address=address,
                           progress=progress, **params)
    return mapper.fit(space).space_
