"""Dimension reduction: UMAP, PCA and t-SNE as small estimators with ``random_state``.

Each reducer is a scikit-learn style estimator: parameters are stored unchanged in
``__init__``, checked in ``fit``, and the result is the fitted attribute
``embedding_`` of shape ``(n, n_components)``. :func:`reduce` is the one-call form.

UMAP takes a precomputed neighbour graph (:class:`embedspace.mapping.neighbors.KNNGraph`), so
the FAISS graph is computed once and shared by the 2-D display layout and the n-D
clustering layout, and pynndescent is never run.

Start-up cost
-------------
UMAP's numba functions are compiled on first use (tens of seconds per process).
umap-learn does not ask numba to cache most of them, so :func:`prepare_numba` points
numba's cache folder at ``<embedspace cache>/numba`` (``numba.config``, before umap-learn
is imported; the environment is left as it was) and switches on numba's on-disk cache for
UMAP's compiled functions;
the first process compiles and stores them, later processes load them.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

from embedspace._fs import cache_dir
from embedspace.errors import InputError, require
from embedspace.mapping.neighbors import knn_graph

__all__ = ["UMAPReducer", "PCAReducer", "TSNEReducer", "reduce", "prepare_numba", "REDUCERS"]

log = logging.getLogger("embedspace")

REDUCERS = ("umap", "pca", "tsne")
_NUMBA_READY = False


def numba_cache_dir():
    """Folder of numba's on-disk cache: ``<embedspace cache>/numba``."""

    return cache_dir() / "numba"


def prepare_numba() -> None:
    """Give numba a persistent cache and import UMAP with caching switched on.

    numba's cache folder is set in ``numba.config`` (``NUMBA_CACHE_DIR`` wins when the user
    set it; the environment itself is never changed) before umap-learn is imported, then
    numba's on-disk cache is enabled for the compiled functions of umap-learn's modules
    that do not request it themselves. Idempotent; cheap after the first call.
    """
    global _NUMBA_READY
    if _NUMBA_READY:
        return
    import sys

    folder = os.environ.get("NUMBA_CACHE_DIR") or str(numba_cache_dir())
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:  # an unwritable cache only costs compile time
        log.debug("numba cache folder %s is not writable", folder)
    try:
        import numba
    except ImportError:
        numba = None
    if numba is not None:
        numba.config.CACHE_DIR = folder
    if "umap" not in sys.modules:
        _import_umap_with_cache()
    require("umap", feature="UMAP", package="umap-learn")
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.dispatcher import Dispatcher

    for module in (umap.umap_, umap.layouts, umap.spectral, umap.utils):
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and type(value._cache).__name__ == "NullCache":
                value.enable_caching()
    _NUMBA_READY = True


def _import_umap_with_cache() -> None:
    """Import umap-learn with ``numba.njit`` defaulting to ``cache=True``.

    umap.utils compiles two functions with explicit signatures while it is imported
    (~1-3 s per process); only a cache requested at decoration time can keep those.
    ``numba.njit`` is wrapped for the duration of this one import and restored after.
    """
    try:
        import numba
    except ImportError:
        return
    original = numba.njit

    def caching_njit(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return original(*args, **kwargs)

    numba.njit = caching_njit
    try:
        import umap  # noqa: F401
    except ImportError:
        pass  # reported by require() with an install hint
    finally:
        numba.njit = original


def _check_matrix(X, name: str = "X") -> np.ndarray:
    array = np.asarray(X, dtype=np.float32)
    if array.ndim != 2:
        raise InputError(f"{name} must have shape (n, d), got {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return array


class UMAPReducer:
    """UMAP on cosine distances, fed a precomputed neighbour graph.

    Parameters
    ----------
    n_components : int, default=2
        Output dimension (2 for display, 5-10 for clustering).
    n_neighbors : int, default=30
        Neighbours per point; larger values keep more global structure.
    min_dist : float, default=0.1
        Minimum spacing of points in the output; 0 packs clusters tightly
        (best for clustering), ~0.1 reads better on a plot.
    n_epochs : int or None, default=None
        Optimisation epochs; ``None`` means 200 for n > 10,000, else 500 (umap-learn's rule).
    init : "spectral" or array-like of shape (n, n_components), default="spectral"
        Starting layout: the graph's spectral embedding, or given coordinates (e.g. a
        projection of another layout of the same graph, which saves the eigensolver).
    random_state : int, default=0
        Seed; the same seed and input give the same layout (UMAP then runs single-threaded).

    Attributes
    ----------
    embedding_ : ndarray of shape (n, n_components), float32
        The layout.
    n_neighbors_ : int
        Neighbours actually used (reduced for tiny inputs).
    """

    def __init__(self, n_components: int = 2, *, n_neighbors: int = 30, min_dist: float = 0.1,
                 n_epochs: int | None = None, init="spectral", random_state: int = 0):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.init = init
        self.random_state = random_state

    def fit(self, X, knn=None) -> "UMAPReducer":
        """Fit the layout.

        Parameters
        ----------
        X : array-like of shape (n, d)
            The vectors (used for the spectral initialisation's fallback and checks).
        knn : KNNGraph, optional
            Precomputed neighbours with at least ``n_neighbors`` columns; computed
            with FAISS when missing.

        Returns
        -------
        self
        """

        X = _check_matrix(X)
        n = X.shape[0]
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise InputError(f"n_components must be a whole number >= 1, got {self.n_components!r}")
        if not isinstance(self.n_neighbors, (int, np.integer)) or self.n_neighbors < 2:
            raise InputError(f"n_neighbors must be a whole number >= 2, got {self.n_neighbors!r}")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise InputError(f"min_dist must be between 0 and 1, got {self.min_dist!r}")
        if n <= self.n_components + 1:
            raise InputError(
                f"UMAP needs more than {self.n_components + 1} documents for a {self.n_components}-d layout, got {n}"
            )
        n_neighbors = int(min(self.n_neighbors, n - 1))
        if knn is None:
            knn = knn_graph(X, k=n_neighbors)
        if len(knn) != n:
            raise InputError(f"the neighbour graph has {len(knn)} rows but X has {n}")
        n_neighbors = min(n_neighbors, knn.n_neighbors)
        init = self.init
        if not isinstance(init, str):
            init = _check_matrix(init, "init").astype(np.float64)
            if init.shape != (n, self.n_components):
                raise InputError(f"init must have shape ({n}, {self.n_components}), got {init.shape}")
        elif init != "spectral":
            raise InputError(f"init must be 'spectral' or an array, got '{init}'")
        prepare_numba()
        import umap

        model = umap.UMAP(
            n_components=int(self.n_components),
            n_neighbors=n_neighbors,
            min_dist=float(self.min_dist),
            metric="cosine",
            n_epochs=self.n_epochs,
            init=init,
            random_state=self.random_state,
            precomputed_knn=knn.for_umap(n_neighbors),
            verbose=False,
        )
        with warnings.catch_warnings():
            # Expected with a precomputed graph: no NNDescent index (so no .transform),
            # and "n_jobs overridden by random_state" (a seeded run is single-threaded).
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            embedding = model.fit_transform(X)
        self.embedding_ = np.ascontiguousarray(embedding, dtype=np.float32)
        self.n_neighbors_ = n_neighbors
        return self

    def fit_transform(self, X, knn=None) -> np.ndarray:
        """Fit and return ``embedding_`` (shape (n, n_components))."""
        return self.fit(X, knn=knn).embedding_


class PCAReducer:
    """Principal component analysis (deterministic up to sign; signs are fixed).

    Parameters
    ----------
    n_components : int, default=2
    random_state : int, default=0
        Used by the randomized solver for large inputs.

    Attributes
    ----------
    embedding_ : ndarray of shape (n, n_components), float32
    explained_variance_ratio_ : ndarray of shape (n_components,)
    """

    def __init__(self, n_components: int = 2, *, random_state: int = 0):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, knn=None) -> "PCAReducer":
        """Fit on ``X`` of shape (n, d); ``knn`` is accepted and ignored."""
        from sklearn.decomposition import PCA

        X = _check_matrix(X)
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise InputError(f"n_components must be a whole number >= 1, got {self.n_components!r}")
        n, d = X.shape
        components = min(int(self.n_components), n, d)
        if n < 2:
            raise InputError(f"PCA needs at least 2 documents, got {n}")
        model = PCA(n_components=components, random_state=self.random_state)
        embedding = model.fit_transform(X)
        # Make the sign of each axis reproducible: largest |loading| positive.
        signs = np.sign(model.components_[np.arange(components), np.abs(model.components_).argmax(axis=1)])
        embedding = embedding * np.where(signs == 0, 1, signs)
        if components < self.n_components:
            embedding = np.hstack([embedding, np.zeros((n, self.n_components - components))])
        self.embedding_ = np.ascontiguousarray(embedding, dtype=np.float32)
        self.explained_variance_ratio_ = model.explained_variance_ratio_
        return self

    def fit_transform(self, X, knn=None) -> np.ndarray:
        """Fit and return ``embedding_`` (shape (n, n_components))."""
        return self.fit(X, knn=knn).embedding_


class TSNEReducer:
    """t-SNE (openTSNE's FFT-accelerated version when installed, else scikit-learn's).

    Parameters
    ----------
    n_components : int, default=2
    perplexity : float, default=30.0
        Reduced automatically for small inputs (must stay below n / 3).
    random_state : int, default=0

    Attributes
    ----------
    embedding_ : ndarray of shape (n, n_components), float32
    """

    def __init__(self, n_components: int = 2, *, perplexity: float = 30.0, random_state: int = 0):
        self.n_components = n_components
        self.perplexity = perplexity
        self.random_state = random_state

    def fit(self, X, knn=None) -> "TSNEReducer":
        """Fit on ``X`` of shape (n, d); ``knn`` is accepted and ignored."""
        import importlib.util

        X = _check_matrix(X)
        n = X.shape[0]
        if n < 5:
            raise InputError(f"t-SNE needs at least 5 documents, got {n}")
        if float(self.perplexity) <= 0:
            raise InputError(f"perplexity must be positive, got {self.perplexity!r}")
        perplexity = float(min(self.perplexity, (n - 1) / 3.0))
        if importlib.util.find_spec("openTSNE") is not None and self.n_components <= 2:
            from openTSNE import TSNE

            model = TSNE(n_components=int(self.n_components), perplexity=perplexity, metric="cosine",
                         neighbors="exact" if n <= 5000 else "annoy", random_state=self.random_state,
                         n_jobs=1, verbose=False)
            embedding = np.asarray(model.fit(X.astype(np.float64)))
        else:
            from sklearn.manifold import TSNE

            model = TSNE(n_components=int(self.n_components), perplexity=perplexity, metric="cosine",
                         init="pca", random_state=self.random_state)
            embedding = model.fit_transform(X)
        self.embedding_ = np.ascontiguousarray(embedding, dtype=np.float32)
        return self

    def fit_transform(self, X, knn=None) -> np.ndarray:
        """Fit and return ``embedding_`` (shape (n, n_components))."""
        return self.fit(X, knn=knn).embedding_


def reduce(X, method: str = "umap", n_components: int = 2, *, knn=None, random_state: int = 0, **params) -> np.ndarray:
    """Reduce vectors to ``n_components`` dimensions.

    Parameters
    ----------
    X : array-like of shape (n, d)
    method : {"umap", "pca", "tsne"}, default="umap"
    n_components : int, default=2
    knn : KNNGraph, optional
        Shared neighbour graph (UMAP only).
    random_state : int, default=0
    **params
        Other parameters of the reducer class (e.g. ``n_neighbors``, ``min_dist``).

    Returns
    -------
    ndarray of shape (n, n_components), float32
    """
    classes = {"umap": UMAPReducer, "pca": PCAReducer, "tsne": TSNEReducer}
    if method not in classes:
        raise InputError(f"unknown reduction method '{method}' (choose from {', '.join(REDUCERS)})")
    try:
        reducer = classes[method](n_components, random_state=random_state, **params)
    except TypeError as exc:
        raise InputError(f"bad parameter for {method}: {exc}") from None
    return reducer.fit_transform(X, knn=knn)
