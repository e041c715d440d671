"""Map and cluster a collection: one kNN graph -> UMAP -> HDBSCAN -> names, plots, metrics.

:func:`map_collection` (exported as ``embedspace.map``) takes an EmbeddingSet and returns
a new one with the columns ``x``, ``y`` (2-D display layout), ``cluster`` (-1 =
outlier), ``probability`` and ``outlier_score``. :class:`CollectionMapper` is the same
pipeline as an estimator that keeps its intermediate results. :func:`write_map` writes
the map directory; :func:`clustering_stability` reruns the pipeline with several seeds.

Pipeline
--------
1. The cosine kNN graph, once, with FAISS (:mod:`embedspace.mapping.neighbors`).
2. UMAP to ``CLUSTER_DIMENSIONS`` dimensions (``min_dist=0``) for clustering and to 2
   dimensions (``min_dist=DISPLAY_MIN_DIST``) for display, both from that graph.
3. HDBSCAN with automatic granularity, or k-means for ``k`` clusters on the embeddings
   and that layout side by side (:mod:`embedspace.mapping.clustering`).

Defaults, chosen with ``scripts/bench_map.py sweep`` (3 seeds) and 5-seed stability runs
on 20 Newsgroups and AG News (tables in ``scripts/BENCHMARKS.md``, section bench_map.py,
"Defaults of the mapper"):

* ``N_NEIGHBORS = 15``: n_neighbors 15, 30 and 50 give the same quality (within 0.02
  NMI / V-measure), and 15 is by far the most stable across seeds on 20 Newsgroups and
  the cheapest. (Larger values fragment less when ``min_cluster_size`` is a small
  constant, as BERTopic's 10; here it scales with the collection.)
* ``CLUSTER_DIMENSIONS = 5``: 10 dimensions changed NMI by < 0.01 on AG News.
* ``N_EPOCHS = 200`` (umap-learn uses 500 up to 10,000 points): the same NMI at 40% of
  the time; 100 epochs made 20 Newsgroups unstable across seeds.
* Outliers are kept (-1) unless ``assign_outliers``.

Small inputs: fewer than ``MIN_DOCUMENTS`` documents (or distinct documents) is an
error; up to ``SMALL_COLLECTION`` documents get a documented fallback — a PCA layout
and one cluster (or k-means on the PCA layout with ``k``) — since UMAP and HDBSCAN
have nothing to learn from so few points.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from embedspace._progress import progress_bar
from embedspace.errors import InputError
from embedspace.mapping.clustering import Clusterer
from embedspace.mapping.neighbors import knn_graph
from embedspace.mapping.reduction import PCAReducer, UMAPReducer
from embedspace.mapping.tree import build_levels, check_levels, level_columns, split_features

__all__ = [
    "CollectionMapper",
    "MAP_COLUMNS",
    "MAP_FORMAT",
    "MAP_FORMAT_VERSION",
    "N_NEIGHBORS",
    "CLUSTER_DIMENSIONS",
    "MIN_DOCUMENTS",
    "SMALL_COLLECTION",
    "require_embeddingset",
]

log = logging.getLogger("embedspace")

MAP_FORMAT = "embedspace.map"
MAP_FORMAT_VERSION = 1
N_NEIGHBORS = 15
CLUSTER_DIMENSIONS = 5
DISPLAY_MIN_DIST = 0.1
N_EPOCHS = 200
MIN_DOCUMENTS = 5
SMALL_COLLECTION = 30
MAP_COLUMNS = ("x", "y", "cluster", "probability", "outlier_score")


def _distinct_rows(vectors: np.ndarray) -> int:
    """Number of distinct rows (compared after rounding to float16)."""
    rounded = np.ascontiguousarray(np.asarray(vectors, dtype=np.float16))
    return len({row.tobytes() for row in rounded})


def require_embeddingset(space) -> None:
    """Raise InputError unless ``space`` looks like an EmbeddingSet (vectors and a table)."""
    if not hasattr(space, "vectors") or not hasattr(space, "table"):
        raise InputError(f"map needs an EmbeddingSet (see embedspace.embed), got {type(space).__name__}")


class CollectionMapper:
    """The map pipeline as an estimator (see the module notes).

    Parameters
    ----------
    n_neighbors : int, default=N_NEIGHBORS
    cluster_dimensions : int, default=CLUSTER_DIMENSIONS
    min_cluster_size : int or "auto", default="auto"
    n_clusters : int or None, default=None
        Exactly this many clusters (k-means on the embeddings beside the clustering
        layout; see :mod:`embedspace.mapping.clustering`).
    assign_outliers : bool, default=False
    random_state : int, default=0
        One seed for every random step; the same seed gives the same columns.
    display : bool, default=True
        Compute the 2-D display layout (skipped by stability runs).
    progress : bool or None, default=None
    levels : "auto" or int, default="auto"
        Levels of the topic tree (:mod:`embedspace.mapping.tree`); level 0 is ``cluster``.

    Attributes
    ----------
    space_ : EmbeddingSet
        The input with ``x``, ``y``, ``cluster``, ``probability``, ``outlier_score``.
    knn_ : KNNGraph or None
    cluster_embedding_ : ndarray of shape (n, cluster_dimensions)
    clusterer_ : Clusterer
    method_ : str
        ``"umap+hdbscan"``, ``"umap+kmeans"``, ``"pca+one-cluster"`` or ``"pca+kmeans"``.
    levels_ : list of ndarray of shape (n,)
        The topic tree's levels, top first (columns ``cluster_l0`` ...).
    timings_ : dict
        Seconds per stage.
    """

    def __init__(self, *, n_neighbors: int = N_NEIGHBORS, cluster_dimensions: int = CLUSTER_DIMENSIONS,
                 min_cluster_size="auto", n_clusters: int | None = None, assign_outliers: bool = False,
                 random_state: int = 0, display: bool = True, progress: bool | None = None, levels="auto"):
        self.levels = levels
        self.n_neighbors = n_neighbors
        self.cluster_dimensions = cluster_dimensions
        self.min_cluster_size = min_cluster_size
        self.n_clusters = n_clusters
        self.assign_outliers = assign_outliers
        self.random_state = random_state
        self.display = display
        self.progress = progress

    def _check(self, space) -> None:
        require_embeddingset(space)
        n = len(space)
        if n < MIN_DOCUMENTS:
            raise InputError(f"a map needs at least {MIN_DOCUMENTS} documents, got {n}; add documents")
        distinct = _distinct_rows(space.vectors)
        if distinct < MIN_DOCUMENTS:
            raise InputError(
                f"the {n} documents have only {distinct} distinct embedding(s) (identical texts?); "
                f"a map needs at least {MIN_DOCUMENTS} different documents"
            )
        if self.n_clusters is not None:
            if not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 1:
                raise InputError(f"k must be a whole number >= 1, got {self.n_clusters!r}")
            if self.n_clusters > distinct:
                what = f"{n} documents" if distinct == n else f"{distinct} distinct documents"
                raise InputError(f"asked for k={self.n_clusters} clusters but there are only {what}; use a k of at most {distinct}")
        if self.min_cluster_size != "auto":
            if not isinstance(self.min_cluster_size, (int, np.integer)) or self.min_cluster_size < 2:
                raise InputError(f"min_cluster_size must be 'auto' or a whole number >= 2, got {self.min_cluster_size!r}")
            if self.min_cluster_size > n:
                raise InputError(f"min_cluster_size {self.min_cluster_size} is larger than the collection ({n} documents)")
        check_levels(self.levels)
        for name in ("n_neighbors", "cluster_dimensions"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 2:
                raise InputError(f"{name} must be a whole number >= 2, got {value!r}")

    def fit(self, space) -> "CollectionMapper":
        """Map ``space`` (an EmbeddingSet); the result is ``space_``."""

        self._check(space)
        vectors = space.vectors
        n = len(space)
        self.timings_ = {}
        steps = 4 if self.display else 3
        with progress_bar(steps, "map", progress=self.progress, unit="step") as bar:
            if n <= SMALL_COLLECTION:
                self._fit_small(vectors, bar)
            else:
                self._fit_umap(vectors, space, bar)
        self.space_ = space.assign(
            x=self.display_embedding_[:, 0].astype(np.float32),
            y=self.display_embedding_[:, 1].astype(np.float32),
            cluster=self.clusterer_.labels_.astype(np.int64),
            probability=self.clusterer_.probabilities_.astype(np.float32),
            outlier_score=self.clusterer_.outlier_scores_.astype(np.float32),
            **dict(zip(level_columns(len(self.levels_)), self.levels_)),
        )
        return self

    def _fit_tree(self, space) -> None:
        """The topic tree's levels from the clustering (see :mod:`embedspace.mapping.tree`)."""
        started = time.perf_counter()
        labels = self.clusterer_.labels_.astype(np.int64)
        if self.levels != 1 and (getattr(self.clusterer_, "method_", "") == "hdbscan" or self.levels != "auto"):
            counts = [c["n_clusters"] for c in getattr(self.clusterer_, "candidates_", [])]
            min_child = max(5, int(self.clusterer_.min_cluster_size_) // 4)
            texts = space.table["text"].tolist() if "text" in space.table.columns else None
            features = split_features(self.cluster_embedding_, texts, random_state=self.random_state)
            self.levels_ = build_levels(features, labels, candidate_counts=counts, levels=self.levels,
                                        min_child=min_child, random_state=self.random_state)
        else:
            self.levels_ = [labels]
        self.timings_["tree"] = round(time.perf_counter() - started, 3)

    def _timed(self, name, bar, function, *args, **kwargs):
        started = time.perf_counter()
        bar.set_description(f"map: {name}")
        result = function(*args, **kwargs)
        self.timings_[name] = round(time.perf_counter() - started, 3)
        bar.update(1)
        return result

    def _fit_umap(self, vectors, space, bar) -> None:
        seed = self.random_state
        self.knn_ = self._timed("neighbours", bar, knn_graph, space, k=self.n_neighbors)
        reducer = UMAPReducer(self.cluster_dimensions, n_neighbors=self.n_neighbors, min_dist=0.0,
                              n_epochs=N_EPOCHS, random_state=seed)
        self.cluster_embedding_ = self._timed("clustering layout", bar, reducer.fit_transform, vectors, knn=self.knn_)
        self.clusterer_ = Clusterer(self.min_cluster_size, n_clusters=self.n_clusters,
                                    assign_outliers=self.assign_outliers, random_state=seed)
        self._timed("clusters", bar, self.clusterer_.fit, self.cluster_embedding_, vectors=vectors)
        self._fit_tree(space)
        if self.display:
            display = UMAPReducer(2, n_neighbors=self.n_neighbors, min_dist=DISPLAY_MIN_DIST, n_epochs=N_EPOCHS,
                                  init=_projection_2d(self.cluster_embedding_), random_state=seed)
            self.display_embedding_ = self._timed("display layout", bar, display.fit_transform, vectors, knn=self.knn_)
        else:
            self.display_embedding_ = np.zeros((len(vectors), 2), dtype=np.float32)
        self.method_ = f"umap+{self.clusterer_.method_}"

    def _fit_small(self, vectors, bar) -> None:
        n = len(vectors)
        self.knn_ = None
        layout = self._timed("layout", bar, PCAReducer(min(self.cluster_dimensions, n - 1),
                                                      random_state=self.random_state).fit_transform, vectors)
        self.cluster_embedding_ = layout
        self.display_embedding_ = np.ascontiguousarray(layout[:, :2]) if layout.shape[1] >= 2 else np.column_stack(
            [layout[:, 0], np.zeros(n, dtype=np.float32)])
        if self.n_clusters is not None:
            self.clusterer_ = Clusterer(self.min_cluster_size, n_clusters=self.n_clusters, min_samples=2,
                                        random_state=self.random_state)
            self._timed("clusters", bar, self.clusterer_.fit, layout)
            self.method_ = "pca+kmeans"
        else:
            log.warning("only %d documents: too few for UMAP and HDBSCAN, so they are laid out by PCA and kept "
                        "as one cluster (more than %d documents get a real map)", n, SMALL_COLLECTION)
            self.clusterer_ = _OneCluster(n)
            self.timings_["clusters"] = 0.0
            self.method_ = "pca+one-cluster"
        self.levels_ = [self.clusterer_.labels_.astype(np.int64)]
        bar.update(_steps_left(bar))


def _steps_left(bar) -> int:
    total = getattr(bar, "total", None) or 0
    return max(0, total - getattr(bar, "n", 0))


def _projection_2d(layout: np.ndarray) -> np.ndarray:
    """The first two principal axes of the clustering layout, scaled to [-10, 10].

    Used as the display layout's starting point: the 2-D map then keeps the clustering
    layout's arrangement, and the eigensolver of a second spectral initialisation
    (about 15% of a UMAP run's time on 20 Newsgroups) is skipped.
    """
    centred = np.asarray(layout, dtype=np.float64) - layout.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ axes[:2].T
    signs = np.sign(axes[np.arange(2), np.abs(axes[:2]).argmax(axis=1)])  # fix each axis' sign
    projected *= np.where(signs == 0, 1.0, signs)
    return projected * (10.0 / max(float(np.abs(projected).max()), 1e-12))


class _OneCluster:
    """The fallback "clustering" of a tiny collection: everything in cluster 0."""

    method_ = "one-cluster"

    def __init__(self, n: int):
        self.labels_ = np.zeros(n, dtype=np.int64)
        self.probabilities_ = np.ones(n, dtype=np.float32)
        self.outlier_scores_ = np.zeros(n, dtype=np.float32)
        self.min_cluster_size_ = n
        self.n_clusters_ = 1
        self.candidates_ = []
        self.params_ = {}


