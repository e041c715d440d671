"""A topic tree from the clustering itself: levels coarse -> fine, each nested in the one above.

Construction (chosen by ``scripts/bench_map.py tree``; figures in ``scripts/BENCHMARKS.md``,
section bench_map_tree.py)
-----------------------------------------------------------------------------------------
* **Level 0** (the top) is the map's own clustering: HDBSCAN at the granularity plateau
  (:mod:`embedspace.mapping.clustering`), so the top level is exactly today's map.
* **How many clusters a finer level has**: ``LEVEL_GROWTH`` (2) times the level above
  (9 -> 18 -> 36 -> 72 on 20 Newsgroups), as long as the finest candidate of the
  granularity grid, which the clusterer has already fitted, still finds that many clusters
  (``levels="auto"``; at most ``MAX_LEVELS`` levels). The grid says how fine the data's
  density structure goes; taking its own uneven intermediate counts as levels scored
  lower and varied more between seeds (``scripts/bench_map.py tree levels``).
* **Where the finer clusters are**: each cluster of the level above is split by k-means,
  restricted to its own documents (so every child lies in exactly one parent), into a
  number of children proportional to its size (``round(T * size / clustered)`` for a
  level of ``T`` clusters, at least 1, children of at least ``min_child`` documents), in
  :func:`split_features`: the 5-d clustering layout beside a block of the documents'
  words (TF-IDF of their first ``TEXT_CHARS`` characters, reduced by truncated SVD to
  ``TEXT_DIMENSIONS``), each block weighing the same. UMAP presses together topics
  that share a vocabulary register (the five comp.* groups of 20 Newsgroups, one
  cluster at the top); their words keep them apart. It scored higher NMI than the layout
  alone at the first finer level of 20 Newsgroups test on seeds 0-2, with no level of AG
  News lower, and higher than the alternatives tried (the ``--k`` space, bisecting, a
  Gaussian mixture, Ward, spectral clustering, HDBSCAN's own finer clusterings)
  (``scripts/bench_map.py tree levels``; figures in ``scripts/BENCHMARKS.md``, section
  bench_map_tree.py).
* Outliers (-1) of the top level stay -1 at every level; with ``assign_outliers`` there
  are none. ``levels=N`` forces N levels, doubling without the grid's limit (fewer when
  the collection cannot be split that far: a level must differ from its parent, and a
  child has at least ``min_child`` documents).

Determinism: the SVD and k-means run with the map's seed, a fixed ``n_init`` and one
thread, so the same seed gives the same tree in any process and thread count.
"""

from __future__ import annotations

import numpy as np

from embedspace.errors import InputError
from embedspace.mapping.clustering import equal_weight_blocks, relabel_by_size
from embedspace.mapping.labels import _TOKEN_PATTERN, keyword_stop_words, without_headers

__all__ = [
    "build_levels",
    "check_levels",
    "level_columns",
    "level_parents",
    "split_features",
    "LEVEL_GROWTH",
    "MAX_LEVELS",
]

# Each level has this many times the clusters of the level above.
LEVEL_GROWTH = 2.0
# At most this many levels with levels="auto" (and with levels=N).
MAX_LEVELS = 4
# k-means starts per split (2 scored as 4 on 20 Newsgroups and AG News and cost 0.1 s less).
_KMEANS_RESTARTS = 2
# The words block of the split features: TF-IDF of each document's first TEXT_CHARS
# characters after a leading header block, its TEXT_TERMS commonest words, reduced to
# TEXT_DIMENSIONS by truncated SVD (see the module notes).
TEXT_CHARS = 2000
TEXT_TERMS = 20000
TEXT_DIMENSIONS = 50
_HEADER_CHARS = 1000  # read this much more, for the header lines without_headers drops


def check_levels(levels) -> None:
    """Raise InputError unless ``levels`` is ``"auto"`` or a whole number from 1 to MAX_LEVELS."""
    if isinstance(levels, str) and levels == "auto":
        return
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 1 <= levels <= MAX_LEVELS:
        raise InputError(f"levels must be 'auto' or a whole number from 1 to {MAX_LEVELS}, got {levels!r}")


def level_columns(n_levels: int) -> list[str]:
    """``["cluster_l0", ..., "cluster_l{n_levels-1}"]``."""
    return [f"cluster_l{i}" for i in range(n_levels)]


def _level_targets(top_count: int, candidate_counts: list[int], levels) -> list[int]:
    """Cluster counts of the levels below the top (see the module notes)."""
    wanted = MAX_LEVELS - 1 if levels == "auto" else int(levels) - 1
    finest = max(candidate_counts, default=0)
    targets, current = [], top_count
    while len(targets) < wanted:
        current = int(round(LEVEL_GROWTH * current))
        if levels == "auto" and current > finest:
            break
        targets.append(current)
    return targets


def split_features(layout, texts=None, *, random_state: int = 0) -> np.ndarray:
    """The space the finer levels are split in: the clustering layout beside the documents' words.

    Parameters
    ----------
    layout : array-like of shape (n, d_layout)
        The clustering layout.
    texts : sequence of str of length n, optional
        The documents: a TF-IDF block of their words (the first ``TEXT_CHARS``
        characters after a leading e-mail/Usenet header block,
        :func:`embedspace.mapping.labels.without_headers`; words as keywords tokenise
        them, the ``TEXT_TERMS`` commonest in 2 documents to 40% of them), reduced by
        truncated SVD to ``TEXT_DIMENSIONS`` and each row normalised. Left out when no
        word survives.
    random_state : int, default=0
        Seed of the randomized SVD.

    Returns
    -------
    ndarray of shape (n, d_layout + d_text), float64
        The blocks side by side, each centred and scaled to a total variance of 1
        (:func:`embedspace.mapping.clustering.equal_weight_blocks`), so layout and words
        weigh the same in k-means.

    Raises
    ------
    InputError
        If ``texts`` and ``layout`` differ in length.
    """
    blocks = [np.asarray(layout, dtype=np.float64)]
    if texts is not None and len(texts) != len(blocks[0]):
        raise InputError(f"texts has {len(texts)} documents and layout {len(blocks[0])} rows")
    if texts is not None:
        words = _text_block(texts, random_state)
        if words is not None:
            blocks.append(words)
    return equal_weight_blocks(blocks)


def _text_block(texts, random_state: int):
    """Unit rows of the truncated SVD of the documents' TF-IDF; None when too few words survive."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from threadpoolctl import threadpool_limits

    cut = [without_headers(str(t)[: TEXT_CHARS + _HEADER_CHARS])[:TEXT_CHARS] for t in texts]
    vectorizer = TfidfVectorizer(min_df=2 if len(cut) >= 20 else 1, max_df=0.4 if len(cut) >= 50 else 1.0,
                                 stop_words=keyword_stop_words(), token_pattern=_TOKEN_PATTERN,
                                 sublinear_tf=True, max_features=TEXT_TERMS, dtype=np.float32)
    try:
        weights = vectorizer.fit_transform(cut)
    except ValueError:  # no word survived
        return None
    dimensions = min(TEXT_DIMENSIONS, weights.shape[1] - 1, len(cut) - 1)
    if dimensions < 2:
        return None
    with threadpool_limits(1):
        reduced = TruncatedSVD(dimensions, algorithm="randomized", n_iter=3,
                               random_state=random_state).fit_transform(weights)
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)


def _split_level(X: np.ndarray, parent: np.ndarray, target: int, min_child: int, seed: int) -> np.ndarray:
    """Split each cluster of ``parent`` by k-means in ``X`` into children proportional to its size."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    out = np.full(parent.shape, -1, dtype=np.int64)
    clustered = max(int((parent >= 0).sum()), 1)
    probe = np.random.default_rng(0).standard_normal(X.shape[1])
    next_id = 0
    for p in np.unique(parent[parent >= 0]):
        members = np.flatnonzero(parent == p)
        k = int(min(max(1, round(target * len(members) / clustered)), len(members) // max(min_child, 1)))
        distinct = len(np.unique((X[members] @ probe).round(9)))  # distinct rows, almost surely
        k = max(1, min(k, distinct))
        if k > 1:
            with threadpool_limits(1):
                labels = KMeans(n_clusters=k, n_init=_KMEANS_RESTARTS, random_state=seed).fit_predict(X[members])
        else:
            labels = np.zeros(len(members), dtype=np.int64)
        _, labels = np.unique(labels, return_inverse=True)
        out[members] = labels + next_id
        next_id += int(labels.max()) + 1
    return relabel_by_size(out)


def build_levels(X, top_labels, *, candidate_counts=(), levels="auto", min_child: int = 5,
                 random_state: int = 0) -> list[np.ndarray]:
    """The levels of the topic tree, top (the map's clustering) first.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The space clusters are split in: :func:`split_features` (what
        :class:`~embedspace.mapping.mapper.CollectionMapper` passes), or the clustering layout.
    top_labels : array-like of shape (n,), int
        The map's clusters (-1 = outlier): level 0.
    candidate_counts : sequence of int
        Cluster counts of the granularity grid's candidates (``Clusterer.candidates_``).
    levels : "auto" or int, default="auto"
    min_child : int, default=5
        Smallest child cluster.
    random_state : int, default=0

    Returns
    -------
    list of ndarray of shape (n,), int64
        Level 0 first; clusters numbered 0 = largest within each level; -1 where level 0
        has an outlier. Every cluster of level ``i + 1`` lies inside one cluster of level
        ``i``, and no level equals the one above.
    """
    check_levels(levels)
    X = np.asarray(X, dtype=np.float64)
    top = np.asarray(top_labels, dtype=np.int64)
    result = [top.copy()]
    top_count = int(len(np.unique(top[top >= 0])))
    if top_count == 0:
        return result
    for target in _level_targets(top_count, [int(c) for c in candidate_counts], levels):
        level = _split_level(X, result[-1], target, min_child, random_state)
        if len(np.unique(level[level >= 0])) <= len(np.unique(result[-1][result[-1] >= 0])):
            break  # nothing left to split
        result.append(level)
    return result


def level_parents(levels) -> list[dict[int, int]]:
    """For each level, ``{cluster: parent cluster in the level above}`` (level 0: parent -1).

    Parameters
    ----------
    levels : list of ndarray of shape (n,)

    Returns
    -------
    list of dict
    """
    parents = []
    for i, level in enumerate(levels):
        level = np.asarray(level)
        ids = np.unique(level[level >= 0])
        if i == 0:
            parents.append({int(c): -1 for c in ids})
            continue
        above = np.asarray(levels[i - 1])
        mapping = {}
        for c in ids:
            values, counts = np.unique(above[level == c], return_counts=True)
            mapping[int(c)] = int(values[np.argmax(counts)])
        parents.append(mapping)
    return parents
