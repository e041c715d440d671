"""The map pipeline as one call: choose the estimator for the collection's size, fit it, measure stability.

:func:`map_collection` (``embedspace.map_collection``; ``embedspace.map`` adds the outlier and
duplicate columns of :mod:`embedspace.analysis`) maps a collection with
:class:`~embedspace.mapping.mapper.CollectionMapper`, or, above ``sample_size`` rows or on
Ray, with :class:`~embedspace.mapping.sampled.SampledMapper`; :func:`clustering_stability`
reruns the clustering with several seeds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from embedspace._progress import progress_bar
from embedspace.encoding import load_or_embed
from embedspace.errors import InputError
from embedspace.mapping.mapper import CLUSTER_DIMENSIONS, MAP_COLUMNS, MIN_DOCUMENTS, N_NEIGHBORS, CollectionMapper
from embedspace.mapping.sampled import SAMPLE_SIZE, SampledMapper
from embedspace.mapping.tree import check_levels

__all__ = ["clustering_stability", "collection_name", "make_mapper", "map_collection", "space_to_map"]


def space_to_map(source, *, text_col: str = "text", label_col: str | None = None, model: str | None = None,
                 backend: str = "auto", max_tokens: int | None = None, progress: bool | None = None):
    """The EmbeddingSet a map of ``source`` is made from: a saved set as it is, or text embedded.

    Text is embedded as ``embed`` embeds it: ``backend="auto"`` is
    :func:`~embedspace.encoding.default_backend`, so ``embed FILE`` then ``map FILE`` never
    embeds a text twice, and ``map FILE`` gives the map of the set ``embed FILE`` writes.
    The faster approximate backend for long documents
    (:func:`~embedspace.encoding.default_map_backend`) is an explicit choice. Collections
    with fewer than ``MIN_DOCUMENTS`` (distinct) documents are refused before the model
    loads. See :func:`~embedspace.encoding.load_or_embed` for the parameters.
    """
    space = load_or_embed(source, text_col=text_col, label_col=label_col, model=model, backend=backend,
                          max_tokens=max_tokens, min_documents=MIN_DOCUMENTS, progress=progress)
    _refuse_our_column_names(space, source)
    return space


def collection_name(source, default: str = "embedspace map") -> str:
    """The name a map of ``source`` is titled by: never a path.

    ``corpus:NAME`` gives NAME; a file gives its stem (``/data/news/docs.jsonl`` ->
    ``docs``); a folder, an EmbeddingSet directory included, its name without the
    ``.set`` suffix (``runs/news.set`` -> ``news``); anything else (a DataFrame, a list of
    texts, an EmbeddingSet in memory) gives ``default``.

    Parameters
    ----------
    source : str, path-like or object
    default : str, default="embedspace map"

    Returns
    -------
    str
    """
    if not isinstance(source, (str, os.PathLike)):
        return default
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text.startswith("corpus:"):
        return text[len("corpus:"):] or default
    path = Path(text)
    name = path.name or Path(os.path.abspath(text)).name
    if not name:
        return default
    stem = name[: -len(".set")] if name.endswith(".set") and len(name) > 4 else name
    if path.suffix and not path.is_dir():
        stem = path.stem or name
    return stem or default


_OUR_COLUMNS = re.compile(r"^(?:row|%s|cluster_l\d+)$" % "|".join(MAP_COLUMNS))


def _refuse_our_column_names(space, source) -> None:
    """A map writes ``row``, ``x``, ``y``, ``cluster``… itself: metadata of those names would be lost or crash it.

    They are refused (not renamed) so that no column of the user's changes meaning
    silently; the message names them.
    """
    taken = [str(c) for c in space.table.columns if _OUR_COLUMNS.match(str(c))]
    if taken:
        names = ", ".join(repr(c) for c in taken)
        raise InputError(f"{source}: metadata column{'s' if len(taken) > 1 else ''} {names} "
                         f"{'have' if len(taken) > 1 else 'has'} the name{'s' if len(taken) > 1 else ''} of a column "
                         "the map writes (row, x, y, cluster, probability, outlier_score, cluster_l0…); rename "
                         f"{'them' if len(taken) > 1 else 'it'} in the input and run again")


def map_collection(space, *, seed: int = 0, min_cluster_size="auto", k: int | None = None,
                   assign_outliers: bool = False, n_neighbors: int = N_NEIGHBORS,
                   cluster_dimensions: int = CLUSTER_DIMENSIONS, progress: bool | None = None,
                   sample_size: int | None = None, engine: str = "local", address: str | None = None,
                   levels="auto"):
    """Lay out and cluster a collection.

    Collections larger than ``sample_size`` (and any with ``engine="ray"``) are mapped by
    :class:`embedspace.mapping.sampled.SampledMapper`: UMAP and HDBSCAN are fitted on a
    seeded sample and every other row is placed against it in parallel batches.

    Parameters
    ----------
    space : EmbeddingSet
        Embedded documents (see :func:`embedspace.embed`).
    seed : int, default=0
        The same seed gives identical columns, across runs and processes.
    min_cluster_size : int or "auto", default="auto"
    k : int, optional
        Ask for exactly ``k`` clusters.
    assign_outliers : bool, default=False
        Attach outliers to their nearest cluster instead of -1.
    n_neighbors : int, default=15
    cluster_dimensions : int, default=5
    progress : bool or None, default=None
    sample_size : int, optional
        Rows the layouts and clusters are fitted on when the collection is larger
        (default ``mapping_large.SAMPLE_SIZE``, 50,000).
    engine : {"local", "ray"}, default="local"
        Where the placement batches of a sampled map run.
    address : str, optional
        Ray cluster to join with ``engine="ray"`` (default: start a local one).
    levels : "auto" or int, default="auto"
        Levels of the topic tree (:mod:`embedspace.mapping.tree`): ``"auto"`` chooses
        the count from the data, an int forces it (a sampled map has one level).

    Returns
    -------
    EmbeddingSet
        ``space`` with columns ``x``, ``y`` (float32), ``cluster`` (int64, -1 = outlier,
        0 = largest), ``probability`` and ``outlier_score`` (float32 in [0, 1]: HDBSCAN's GLOSH;
        ``embedspace.map`` replaces it with the default outlier method's rank), and
        ``cluster_l0`` (= ``cluster``, the top) to ``cluster_lN`` (the finest level).

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> mapped = es.map_collection(es.embed("corpus:20newsgroups"), seed=0)  # doctest: +SKIP
    >>> mapped.table[["x", "y", "cluster"]].head()  # doctest: +SKIP
    """
    mapper = make_mapper(space, sample_size=sample_size, engine=engine, address=address, n_neighbors=n_neighbors,
                         cluster_dimensions=cluster_dimensions, min_cluster_size=min_cluster_size, n_clusters=k,
                         assign_outliers=assign_outliers, random_state=seed, progress=progress)
    check_levels(levels)
    if isinstance(mapper, CollectionMapper):
        mapper.levels = levels
    mapped = mapper.fit(space).space_
    if "cluster_l0" not in mapped.table.columns:
        mapped = mapped.assign(cluster_l0=mapped.table["cluster"].to_numpy().astype(np.int64))
    return mapped


def make_mapper(space, *, sample_size: int | None = None, engine: str = "local", address: str | None = None,
                workers: int | None = None, **params):
    """The estimator that maps ``space``: :class:`CollectionMapper` for a collection up to
    ``sample_size`` rows on the local engine, else :class:`embedspace.mapping.sampled.SampledMapper`.

    Parameters
    ----------
    space : EmbeddingSet
    sample_size : int, optional
        Default ``mapping_large.SAMPLE_SIZE`` (50,000).
    engine : {"local", "ray"}, default="local"
    address : str, optional
    workers : int, optional
        Parallel placement tasks on Ray (default: the cluster's CPUs); needs ``engine="ray"``.
    **params
        :class:`CollectionMapper` parameters.

    Returns
    -------
    CollectionMapper or SampledMapper
        Not yet fitted.
    """

    sample_size = SAMPLE_SIZE if sample_size is None else sample_size
    if workers is not None and engine != "ray":
        raise InputError("a Ray worker count needs engine='ray'")
    if engine == "local" and address is None and hasattr(space, "__len__") and not isinstance(sample_size, bool) \
            and isinstance(sample_size, (int, np.integer)) and len(space) <= sample_size:
        return CollectionMapper(**params)
    return SampledMapper(sample_size=sample_size, engine=engine, address=address, workers=workers, **params)


def clustering_stability(space, seeds=(0, 1, 2, 3, 4), *, progress: bool | None = None, **params) -> dict:
    """Rerun the clustering with several seeds; report the mean pairwise ARI.

    The kNN graph is shared; each seed recomputes the clustering layout and clusters
    (the display layout is skipped).

    Parameters
    ----------
    space : EmbeddingSet
    seeds : sequence of int, default=(0, 1, 2, 3, 4)
    progress : bool or None
    **params
        ``min_cluster_size``, ``k``, ``assign_outliers``, ``n_neighbors``, ``cluster_dimensions``.

    Returns
    -------
    dict
        ``{"seeds", "mean_ari", "min_ari", "pairwise_ari": [[i, j, ari], ...], "n_clusters": [...]}``
    """
    from sklearn.metrics import adjusted_rand_score

    seeds = list(seeds)
    if len(seeds) < 2:
        raise InputError(f"stability needs at least 2 seeds, got {len(seeds)}")
    runs = []
    with progress_bar(len(seeds), "stability", progress=progress, unit="run") as bar:
        for seed in seeds:
            mapper = CollectionMapper(n_neighbors=params.get("n_neighbors", N_NEIGHBORS),
                                      cluster_dimensions=params.get("cluster_dimensions", CLUSTER_DIMENSIONS),
                                      min_cluster_size=params.get("min_cluster_size", "auto"),
                                      n_clusters=params.get("k"), assign_outliers=params.get("assign_outliers", False),
                                      random_state=seed, display=False, progress=False)
            runs.append(mapper.fit(space).clusterer_.labels_)
            bar.update(1)
    pairs = [[seeds[i], seeds[j], float(adjusted_rand_score(runs[i], runs[j]))]
             for i in range(len(runs)) for j in range(i + 1, len(runs))]
    values = [p[2] for p in pairs]
    return {
        "seeds": seeds,
        "mean_ari": float(np.mean(values)),
        "min_ari": float(np.min(values)),
        "pairwise_ari": pairs,
        "n_clusters": [int(len(np.unique(r[r >= 0]))) for r in runs],
    }
