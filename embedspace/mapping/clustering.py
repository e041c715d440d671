"""Clustering of the reduced space: HDBSCAN with automatic granularity, or exactly k clusters.

Implementation choice: ``hdbscan``, which on the 5-d UMAP layout of 20 Newsgroups gave the
same clustering as ``fast_hdbscan`` and scikit-learn's HDBSCAN, fits fastest, compiles
nothing at start-up and has GLOSH outlier scores (table in ``scripts/BENCHMARKS.md``,
section bench_map.py, "Clustering library and granularity").

Automatic granularity
---------------------
``min_cluster_size`` is scaled to the collection, ``m = c * sqrt(n)``, over the grid
``c in GRANULARITY_GRID`` (a square root rather than a fixed share of n, so that topics
of a few hundred documents stay findable in a 200,000-document collection, where 1% of n
would already be 2,000); each candidate is clustered (a 0.1 s fit each) and the
criterion is **stability of the partition**: neighbouring candidates whose labels agree
(adjusted Rand index >= ``PLATEAU_AGREEMENT``, 0.9) form a plateau, and the middle of
the widest plateau wins —
where the answer does not depend on the exact value chosen. Ties go to the coarser
plateau (fewer, broader clusters); a grid with no plateau falls back to the candidate that
agrees best (the smaller ARI) with both its neighbours. On 20 Newsgroups over several UMAP
settings the best DBCV (HDBSCAN's relative validity) picked 10 to 59 clusters with up to
22% noise, where the plateau picked 9 every time with 5-8% noise at the same NMI; and the
widest plateau, rather than the best-agreeing single candidate, keeps the
``openvino-int8-bf16`` vectors stable across seeds (measured by ``scripts/bench_map.py``;
figures in ``scripts/BENCHMARKS.md``, section bench_map.py).

Exactly k clusters
------------------
With ``n_clusters=k`` k-means (``KMEANS_RESTARTS`` = 10 starts, the lowest inertia kept)
runs on the unit embeddings and the 5-D clustering layout side by side
(:func:`kmeans_features`: each block centred and scaled to a total variance of 1) when
the embeddings are given to :meth:`Clusterer.fit`, else on the layout alone.
``scripts/bench_kmeans.py`` chose it (seeds 0-4, 20 Newsgroups and AG News, table in
``scripts/BENCHMARKS.md``, section bench_kmeans.py): it never lost to scikit-learn
``KMeans(k)`` on the raw vectors in the mean, where the layout alone can (the embeddings
keep apart topics that UMAP pressed together; the layout sharpens the rest). There is no noise in this
mode; ``probability`` is the margin ``1 - d1/d2`` between the nearest and
second-nearest centre, and ``outlier_score`` still comes from GLOSH on one HDBSCAN run
of the layout, so outliers remain visible.
"""

from __future__ import annotations

import numpy as np

from embedspace.errors import InputError

__all__ = [
    "Clusterer",
    "cluster",
    "assign_outliers",
    "clustering_scores",
    "auto_min_cluster_size",
    "GRANULARITY_GRID",
    "MIN_SAMPLES",
    "PLATEAU_AGREEMENT",
    "KMEANS_RESTARTS",
    "kmeans_features",
    "equal_weight_blocks",
    "relabel_by_size",
]

# Candidate multipliers c of sqrt(n) for min_cluster_size; the first and last only serve
# as neighbours of the others in the plateau criterion.
GRANULARITY_GRID = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
# HDBSCAN's min_samples (how conservative the density estimate is): 5, 10 and 15 give NMI
# within 0.02; 10 is the most stable across seeds on both 20 Newsgroups and AG News
# (scripts/bench_map.py; figures in scripts/BENCHMARKS.md, section bench_map.py).
MIN_SAMPLES = 10
# Neighbouring grid candidates whose partitions agree at least this much (adjusted Rand
# index) belong to one plateau.
PLATEAU_AGREEMENT = 0.9
_MIN_CLUSTER_FLOOR = 5
# k-means starts (the lowest inertia wins); see the module notes.
KMEANS_RESTARTS = 10


def kmeans_features(layout, vectors) -> np.ndarray:
    """The space ``k`` clusters are found in: unit embeddings beside the clustering layout.

    Parameters
    ----------
    layout : array-like of shape (n, d_layout)
        The clustering layout (5-D UMAP).
    vectors : array-like of shape (n, d)
        The embeddings; normalised to unit length here.

    Returns
    -------
    ndarray of shape (n, d + d_layout), float64
        ``[vectors | layout]``, each block centred and divided by the square root of its
        total variance, so the two weigh the same in k-means' squared distances.
    """
    unit = np.asarray(vectors, dtype=np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    return equal_weight_blocks([unit, layout])


def equal_weight_blocks(blocks) -> np.ndarray:
    """Blocks of features side by side, each centred and divided by the square root of its total variance.

    Parameters
    ----------
    blocks : sequence of array-like of shape (n, d_i)

    Returns
    -------
    ndarray of shape (n, sum of d_i), float64
        Every block weighs the same in k-means' squared distances.
    """
    scaled = []
    for block in blocks:
        centred = np.asarray(block, dtype=np.float64)
        centred = centred - centred.mean(axis=0)
        scaled.append(centred / max(float(np.sqrt((centred ** 2).sum(axis=1).mean())), 1e-12))
    return np.hstack(scaled)


def auto_min_cluster_size(n: int, multiplier: float = 1.0) -> int:
    """``max(5, round(multiplier * sqrt(n)))``, capped at ``n // 2``."""
    return int(max(_MIN_CLUSTER_FLOOR, min(round(multiplier * np.sqrt(n)), max(n // 2, 2))))


def _hdbscan_fit(X: np.ndarray, min_cluster_size: int, min_samples: int):
    import hdbscan

    model = hdbscan.HDBSCAN(
        min_cluster_size=int(min_cluster_size),
        min_samples=int(min_samples),
        cluster_selection_method="eom",
        core_dist_n_jobs=1,
    )
    model.fit(X)
    return model


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (ties by first appearance); -1 stays."""
    out = np.full(labels.shape, -1, dtype=np.int64)
    ids, first, counts = np.unique(labels[labels >= 0], return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda i: (-counts[i], first[i]))
    for new, i in enumerate(order):
        out[labels == ids[i]] = new
    return out


def _partition_agreement(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


class Clusterer:
    """HDBSCAN with automatic granularity, or k-means for exactly ``n_clusters``.

    Parameters
    ----------
    min_cluster_size : int or "auto", default="auto"
        Smallest cluster; ``"auto"`` chooses it from ``GRANULARITY_GRID * sqrt(n)``
        by the plateau criterion (see the module notes).
    min_samples : int, default=MIN_SAMPLES
        HDBSCAN's density smoothing (capped at ``min_cluster_size``).
    n_clusters : int or None, default=None
        Ask for exactly this many clusters (k-means on ``X``, or on ``X`` beside the
        embeddings when :meth:`fit` gets them); no outliers then.
    assign_outliers : bool, default=False
        Attach each outlier to the cluster of its nearest clustered neighbour.
    random_state : int, default=0
        Seed for k-means.

    Attributes
    ----------
    labels_ : ndarray of shape (n,), int64
        Cluster of each point, 0 = largest; -1 = outlier.
    probabilities_ : ndarray of shape (n,), float32
        Membership strength in [0, 1] (0 for outliers).
    outlier_scores_ : ndarray of shape (n,), float32
        GLOSH outlier score in [0, 1] (higher = more unusual).
    min_cluster_size_ : int
        The size used (chosen or given).
    n_clusters_ : int
    candidates_ : list of dict
        With ``"auto"``: each grid candidate's ``min_cluster_size``, ``n_clusters``,
        ``noise_fraction`` and ``plateau`` score.
    method_ : str
        ``"hdbscan"`` or ``"kmeans"``.
    params_ : dict
        The method's own parameters, as used: ``{"min_cluster_size", "min_samples"}``
        for HDBSCAN, ``{"k", "n_init", "features"}`` for k-means (whose
        ``min_cluster_size_`` only sets the GLOSH outlier scores).
    """

    def __init__(self, min_cluster_size="auto", *, min_samples: int = MIN_SAMPLES, n_clusters: int | None = None,
                 assign_outliers: bool = False, random_state: int = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.n_clusters = n_clusters
        self.assign_outliers = assign_outliers
        self.random_state = random_state

    def _validate(self, n: int) -> None:
        if self.min_cluster_size != "auto":
            if not isinstance(self.min_cluster_size, (int, np.integer)) or self.min_cluster_size < 2:
                raise InputError(f"min_cluster_size must be 'auto' or a whole number >= 2, got {self.min_cluster_size!r}")
            if self.min_cluster_size > n:
                raise InputError(
                    f"min_cluster_size {self.min_cluster_size} is larger than the number of documents ({n}); "
                    "use a smaller value or 'auto'"
                )
        if not isinstance(self.min_samples, (int, np.integer)) or self.min_samples < 1:
            raise InputError(f"min_samples must be a whole number >= 1, got {self.min_samples!r}")
        if self.n_clusters is not None:
            if not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 1:
                raise InputError(f"the number of clusters must be a whole number >= 1, got {self.n_clusters!r}")
            if self.n_clusters > n:
                raise InputError(
                    f"asked for {self.n_clusters} clusters but there are only {n} documents; ask for at most {n}"
                )

    def fit(self, X, vectors=None) -> "Clusterer":
        """Cluster the rows of ``X`` (shape (n, d), a low-dimensional layout).

        ``vectors`` (shape (n, d_embedding), optional): the embeddings the layout was made
        from; with ``n_clusters`` k-means then runs on :func:`kmeans_features`.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise InputError(f"clustering needs a finite (n, d) array, got shape {X.shape}")
        n = X.shape[0]
        if n < 2:
            raise InputError(f"clustering needs at least 2 documents, got {n}")
        if vectors is not None and len(vectors) != n:
            raise InputError(f"vectors has {len(vectors)} rows but the layout has {n}")
        self._validate(n)
        if self.n_clusters is not None:
            self._fit_kmeans(X, vectors)
        else:
            self._fit_hdbscan(X)
        if self.assign_outliers and (self.labels_ < 0).any() and (self.labels_ >= 0).any():
            self.labels_ = assign_outliers(X, self.labels_)
        self.n_clusters_ = int(self.labels_.max() + 1) if (self.labels_ >= 0).any() else 0
        return self

    def fit_predict(self, X) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X).labels_

    def _samples(self, size: int) -> int:
        return int(min(self.min_samples, size))

    def _fit_hdbscan(self, X: np.ndarray) -> None:
        n = X.shape[0]
        if self.min_cluster_size == "auto":
            sizes = sorted({auto_min_cluster_size(n, c) for c in GRANULARITY_GRID})
            fits = [(size, _hdbscan_fit(X, size, self._samples(size))) for size in sizes]
            labels = [model.labels_ for _, model in fits]
            agreement = [_partition_agreement(a, b) for a, b in zip(labels, labels[1:])]  # of candidates i, i+1
            candidates = []
            for i, (size, model) in enumerate(fits):
                neighbours = [agreement[j] for j in (i - 1, i) if 0 <= j < len(agreement)]
                candidates.append({
                    "min_cluster_size": size,
                    "n_clusters": int(model.labels_.max() + 1),
                    "noise_fraction": float((model.labels_ < 0).mean()),
                    "plateau": min(neighbours, default=1.0),
                })
            best = _plateau_choice(candidates, agreement)
            self.min_cluster_size_, model = fits[best]
            self.candidates_ = candidates
        else:
            self.min_cluster_size_ = int(self.min_cluster_size)
            model = _hdbscan_fit(X, self.min_cluster_size_, self._samples(self.min_cluster_size_))
            self.candidates_ = []
        self.labels_ = relabel_by_size(model.labels_)
        self.probabilities_ = np.asarray(model.probabilities_, dtype=np.float32)
        self.outlier_scores_ = _finite_scores(model.outlier_scores_)
        self.method_ = "hdbscan"
        self.params_ = {"min_cluster_size": int(self.min_cluster_size_), "min_samples": self._samples(self.min_cluster_size_)}

    def _fit_kmeans(self, X: np.ndarray, vectors=None) -> None:
        from sklearn.cluster import KMeans

        n = X.shape[0]
        k = int(self.n_clusters)
        features = X if vectors is None else kmeans_features(X, vectors)
        distinct = len(np.unique(features.round(6), axis=0))
        if k > distinct:
            raise InputError(
                f"asked for {k} clusters but the documents have only {distinct} distinct positions; ask for at most {distinct}"
            )
        model = KMeans(n_clusters=k, n_init=KMEANS_RESTARTS, random_state=self.random_state).fit(features)
        distances = model.transform(features)
        if k > 1:
            nearest_two = np.partition(distances, 1, axis=1)[:, :2]
            margin = 1.0 - nearest_two[:, 0] / np.maximum(nearest_two[:, 1], 1e-12)
        else:
            margin = np.ones(n)
        self.labels_ = relabel_by_size(model.labels_)
        self.probabilities_ = np.clip(margin, 0.0, 1.0).astype(np.float32)
        size = self.min_cluster_size_ = auto_min_cluster_size(n) if self.min_cluster_size == "auto" else int(self.min_cluster_size)
        self.outlier_scores_ = _finite_scores(_hdbscan_fit(X, size, self._samples(size)).outlier_scores_)
        self.candidates_ = []
        self.method_ = "kmeans"
        self.params_ = {"k": k, "n_init": KMEANS_RESTARTS,
                        "features": "layout" if vectors is None else "unit vectors + layout"}


def _plateau_choice(candidates: list[dict], agreement: list[float]) -> int:
    """Index of the grid candidate at the middle of the widest plateau (see the module notes).

    Parameters
    ----------
    candidates : list of dict of length m
        Each with ``min_cluster_size``, ``n_clusters`` and ``plateau`` (its smaller
        agreement with a neighbour).
    agreement : list of float of length m - 1
        Adjusted Rand index between candidates ``i`` and ``i + 1``.

    Returns
    -------
    int
        Never an end point of the grid when there are inner candidates (they only serve
        as neighbours), and a candidate with at least one cluster when there is one.
    """
    m = len(candidates)
    inner = list(range(1, m - 1)) or list(range(m))
    usable = [i for i in inner if candidates[i]["n_clusters"] >= 1] or inner
    runs, start = [], 0
    for i in range(1, m + 1):
        if i == m or agreement[i - 1] < PLATEAU_AGREEMENT:
            if i - 1 > start:
                runs.append((start, i - 1))
            start = i
    # widest first, then the coarser (larger min_cluster_size) plateau
    for first, last in sorted(runs, key=lambda run: (run[1] - run[0], run[1]), reverse=True):
        members = [i for i in usable if first <= i <= last]
        if members:
            middle = (first + last + 1) // 2  # the upper middle of an even run: the coarser one
            return min(members, key=lambda i: (abs(i - middle), -i))
    return max(usable, key=lambda i: (round(candidates[i]["plateau"], 6), candidates[i]["min_cluster_size"]))


def _finite_scores(scores) -> np.ndarray:
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(scores, 0.0, 1.0).astype(np.float32)


def cluster(X, min_cluster_size="auto", *, min_samples: int = MIN_SAMPLES, n_clusters: int | None = None,
            assign_outliers: bool = False, random_state: int = 0):
    """Cluster a layout; see :class:`Clusterer`.

    Returns
    -------
    labels : ndarray of shape (n,), int64
    probabilities : ndarray of shape (n,), float32
    outlier_scores : ndarray of shape (n,), float32
    """
    model = Clusterer(min_cluster_size, min_samples=min_samples, n_clusters=n_clusters,
                      assign_outliers=assign_outliers, random_state=random_state).fit(X)
    return model.labels_, model.probabilities_, model.outlier_scores_


def assign_outliers(X, labels) -> np.ndarray:
    """Give each outlier (-1) the cluster of its nearest clustered point.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The space the clustering was done in.
    labels : array-like of shape (n,)

    Returns
    -------
    ndarray of shape (n,), int64
        Labels with no -1 left (unchanged if nothing is clustered).
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise = labels < 0
    if not noise.any() or noise.all():
        return labels
    clustered = np.flatnonzero(~noise)
    finder = NearestNeighbors(n_neighbors=1).fit(X[clustered])
    _, nearest = finder.kneighbors(X[noise])
    labels[noise] = labels[clustered[nearest[:, 0]]]
    return labels


def clustering_scores(labels, truth=None, *, X=None) -> dict:
    """Scores of a clustering.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Clusters, -1 = outlier (counted as a class of its own in the label scores).
    truth : array-like of shape (n,), optional
        Reference classes; gives ``ari``, ``nmi``, ``v_measure``, ``homogeneity``,
        ``completeness``.
    X : array-like of shape (n, d), optional
        The clustering space; without ``truth`` gives ``silhouette`` (on clustered
        points, at most 10,000 sampled) and ``dbcv`` (HDBSCAN's relative validity).

    Returns
    -------
    dict
        Always ``n``, ``n_clusters`` and ``noise_fraction``.
    """
    labels = np.asarray(labels)
    scores = {
        "n": int(len(labels)),
        "n_clusters": int(len(np.unique(labels[labels >= 0]))),
        "noise_fraction": float((labels < 0).mean()) if len(labels) else 0.0,
    }
    if truth is not None:
        from sklearn import metrics

        truth = np.asarray(truth).astype(str)
        scores["ari"] = float(metrics.adjusted_rand_score(truth, labels))
        scores["nmi"] = float(metrics.normalized_mutual_info_score(truth, labels))
        homogeneity, completeness, v_measure = metrics.homogeneity_completeness_v_measure(truth, labels)
        scores.update(v_measure=float(v_measure), homogeneity=float(homogeneity), completeness=float(completeness))
    elif X is not None:
        scores.update(_internal_scores(np.asarray(X, dtype=np.float64), labels))
    return scores


def _internal_scores(X: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import silhouette_score

    scores = {"silhouette": None, "dbcv": None}
    clustered = np.flatnonzero(labels >= 0)
    if len(np.unique(labels[clustered])) < 2:
        return scores
    sample = clustered
    if len(sample) > 10_000:
        sample = np.sort(np.random.default_rng(0).choice(clustered, 10_000, replace=False))
    scores["silhouette"] = float(silhouette_score(X[sample], labels[sample]))
    try:
        from hdbscan.validity import validity_index

        scores["dbcv"] = float(validity_index(X[sample], labels[sample].astype(np.intp)))
    except (ValueError, ImportError, ZeroDivisionError, FloatingPointError):
        scores["dbcv"] = None
    return scores
