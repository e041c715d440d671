"""Pockets: places in the union's kNN graph where one side's documents have few counterparts from the other.

A map cluster is drawn without the sources, so a topic that only B has often shares its
cluster with a neighbouring topic both sets have (rec.autos with rec.motorcycles on 20
Newsgroups). A pocket uses the sources, as ``map add`` does for new topics
(:mod:`embedspace.mapping.grow`), on a graph that joins the map's own (k = 15, each
document's 14 neighbours besides itself) with each document's 14 nearest by embedding and
words (:func:`pocket_neighbours`: a topic like rec.autos, pressed against rec.motorcycles by
the embedding, is kept apart by its words). The rule, for B (A is the mirror image, with
``1 - share``):

1. **Share.** Each document's share of neighbours from B, smoothed once over the graph:
   ``s = (share + mean share of its neighbours) / 2``. With B a share ``p`` of A ∪ B, a
   document on common ground has ``s ≈ p``.
2. **Core.** Documents of B with ``s > (1 + p) / 2`` (the midpoint rule of ``map add``),
   joined when one is among the other's neighbours (connected components of the graph
   restricted to them). The size of a core is its statistic.
3. **Family-wise p-value.** The whole of steps 1–2 is repeated on ``permutations``
   permutations of the sources (vectorised on the n × k neighbour array; sparse
   connected components), keeping the largest core of either side per permutation:
   ``p = (1 + #{null largest core >= core size}) / (1 + permutations)``. Choosing the
   pocket after looking at the sources is what this null repeats, so the p-value holds
   for the largest of all the pockets looked at (a plain Fisher test on a pocket would not).
   ``POCKET_PERMUTATIONS`` = 200: the smallest p-value is 1/201; pockets (the words graph
   and the null) take about 2 s at 6,000 documents.
4. **Extent.** A core at ``p < alpha`` takes in each document of its own side from which a
   random walk on the graph (each neighbour link walked both ways; a step onto the other
   side's documents weighted by ``n_own / n_other``, so unequal sets weigh the same) reaches
   the core before any document of the other side with probability above ``EXTEND``
   (0.2). That probability is the harmonic function of the graph with the core
   held at 1 and the other side (and other pockets' documents) at 0, solved by sweeps
   until no value moves by 1e-6 (at most 1,000; counts in BENCHMARKS.md). A document of B next to
   both the pocket and A's documents (B's rec.motorcycles posts beside injected
   rec.autos) scores low, because its walks soon meet A; one inside the injected topic
   scores high even when few of its own neighbours are in the core. The p-value is the
   core's; the extent describes it.

Chosen by ``scripts/bench_compare.py --part power`` (tables in ``scripts/BENCHMARKS.md``
§ bench_compare.py): 5% of one newsgroup (sci.space, sci.med, rec.autos) injected into B,
3,000 posts a side, 10 seeds each; B's top pocket should be >= 80% that newsgroup and hold
>= 70% of the injected posts. Cores alone are pure but hold about half of them. The extent
rule was chosen on 20 Newsgroups (seeds 0-39) and AG News (World or Sports injected, seeds
0-19) together, and checked at x = 10% and with A half the size of B
(``scripts/bench_pockets.py``): the walk's probability met both bars in more splits than the
earlier rule (a document joined when 0.35 of its neighbours of A or in the pocket were in
the pocket) in every one of those settings, on either corpus, and any bar from 0.18 to 0.22
does about as well. Walking the links one way only, or on either neighbour list alone, did
worse; so did a bar chosen per pocket by decoys (A's documents passing it) and a third,
words-alone list (BENCHMARKS.md, "Tried and rejected"). Joining the words graph to the
map's met both in more splits than either graph alone, with the calibration unchanged.
"""

from __future__ import annotations

import numpy as np

from embedspace.errors import InputError
from embedspace.mapping import knn_graph, split_features

__all__ = ["EXTEND", "POCKET_PERMUTATIONS", "find_pockets", "neighbours_without_self", "pocket_neighbours",
           "smoothed_share"]

POCKET_PERMUTATIONS = 200
EXTEND = 0.2
_MAX_SWEEPS = 1000
_TOLERANCE = 1e-6


def neighbours_without_self(indices) -> np.ndarray:
    """A kNN graph's ``indices`` (n, k) with each row's own index dropped: (n, k - 1).

    Rows whose own index is missing (duplicates) lose their last neighbour instead.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2 or indices.shape[1] < 2:
        raise InputError(f"neighbors must have shape (n, k) with k >= 2, got {indices.shape}")
    own = indices == np.arange(indices.shape[0])[:, None]
    order = np.argsort(own, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1)[:, :-1]


def pocket_neighbours(indices, union, *, seed: int = 0) -> np.ndarray:
    """The graph pockets are found on: the map's neighbours beside as many neighbours by embedding and words.

    Parameters
    ----------
    indices : ndarray of int of shape (n, k)
        The map's kNN graph (each row's own index included).
    union : EmbeddingSet, n rows
        A ∪ B, with a ``text`` column.
    seed : int, default=0
        Seed of the words block's SVD.

    Returns
    -------
    ndarray of int of shape (n, 2k - 1)
        ``indices`` then each row's ``k - 1`` nearest in
        :func:`embedspace.mapping.split_features` of the unit embeddings and the texts
        (the embeddings beside a TF-IDF/SVD block of the words, each weighing the same);
        a neighbour in both lists counts twice. Neither graph sees the sources, so the
        permutation null stays exact.
    """
    indices = np.asarray(indices, dtype=np.int64)
    k = indices.shape[1]
    if len(union) < 3 or k < 2:
        return indices
    texts = union.table["text"].astype(str).tolist() if "text" in union.table.columns else None
    features = split_features(np.asarray(union.vectors, dtype=np.float32), texts, random_state=seed)
    words = knn_graph(features, k=min(k, len(union))).indices
    return np.concatenate([indices, neighbours_without_self(words)], axis=1)


def smoothed_share(neighbours: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Each row's share of neighbours from B, averaged with its neighbours' own shares (rule 1). Shape (n,)."""
    share = source[neighbours].mean(axis=1)
    return 0.5 * (share + share[neighbours].mean(axis=1))


class _Cores:
    """Connected components of the marked documents of each side, on one fixed graph."""

    def __init__(self, neighbours: np.ndarray):
        self.neighbours = neighbours
        n, k = neighbours.shape
        self.n = n
        self.rows = np.repeat(np.arange(n), k)
        self.cols = neighbours.ravel()

    def __call__(self, source: np.ndarray):
        """Core label per row (-1 = none), the cores' sizes, and each core's side (True = B)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        p = source.mean()
        share = smoothed_share(self.neighbours, source)
        mark_b = source & (share > (1.0 + p) / 2.0)
        mark_a = ~source & (1.0 - share > (2.0 - p) / 2.0)
        marked = mark_b | mark_a
        if not marked.any():
            return np.full(self.n, -1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        r, c = self.rows, self.cols
        keep = (mark_b[r] & mark_b[c]) | (mark_a[r] & mark_a[c])
        graph = coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (r[keep], c[keep])), shape=(self.n, self.n))
        _, components = connected_components(graph.tocsr(), directed=True, connection="weak")
        ids, labels = np.unique(components[marked], return_inverse=True)
        core = np.full(self.n, -1, dtype=np.int64)
        core[marked] = labels
        sizes = np.bincount(labels, minlength=len(ids))
        side = np.zeros(len(ids), dtype=bool)
        side[labels] = source[marked]
        return core, sizes, side


def _walk_graph(neighbours: np.ndarray):
    """The neighbour links made two-way, as a sparse (n, n) matrix (a link both ways counts twice)."""
    from scipy.sparse import coo_matrix

    n, k = neighbours.shape
    links = coo_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), neighbours.ravel())), shape=(n, n)).tocsr()
    return (links + links.T).tocsr()


def _extent(graph, own: np.ndarray, members: np.ndarray, taken: np.ndarray, bar: float) -> np.ndarray:
    """Rule 4: the core and the free documents of its side whose walk reaches it first with probability > bar."""
    weight = np.where(own, 1.0, own.sum() / max(int((~own).sum()), 1))
    degree = graph @ weight
    free = own & ~members & ~taken
    reach = members.astype(np.float64)
    for _ in range(_MAX_SWEEPS):
        new = np.where(free, (graph @ (weight * reach)) / degree, reach)
        moved = float(np.abs(new - reach).max())
        reach = new
        if moved < _TOLERANCE:
            break
    return members | (free & (reach > bar))


def find_pockets(neighbors, source, *, permutations: int = POCKET_PERMUTATIONS, alpha: float = 0.05,
                 seed: int = 0, min_size: int = 5, extend: float = EXTEND) -> dict:
    """Find pockets of either side and their family-wise p-values (see the module notes).

    Parameters
    ----------
    neighbors : ndarray of int of shape (n, k)
        Each row's nearest neighbours in A ∪ B (a :class:`~embedspace.mapping.KNNGraph`'s
        ``indices``; the row itself, if present, is ignored).
    source : array-like of bool of shape (n,)
        True for rows of B.
    permutations : int, default=200
        Permutations of the sources for the null of the largest core.
    alpha : float, default=0.05
        Cores with a family-wise p-value below it are extended and returned as significant.
    seed : int, default=0
    min_size : int, default=5
        Smaller cores are not returned.
    extend : float, default=EXTEND (0.2)
        The extent's bar on the walk's probability of reaching the core first (rule 4), in (0, 1).

    Returns
    -------
    dict
        ``pockets``: list of dicts (largest core first) with ``side`` ("B" or "A"),
        ``core_size``, ``p_value``, ``significant``, ``core`` (ndarray of the core's row
        indices) and ``members`` (ndarray of row indices: the extent for significant
        pockets, the core otherwise); ``null_max``
        (ndarray (permutations,): the largest core of each permutation); ``permutations``.
    """
    source = np.asarray(source, dtype=bool)
    indices = np.asarray(neighbors, dtype=np.int64)
    if not 0.0 < float(extend) < 1.0:
        raise InputError(f"extend must be between 0 and 1, got {extend}")
    if indices.shape[0] != len(source):
        raise InputError(f"neighbors has {indices.shape[0]} rows and source {len(source)}")
    neighbours = neighbours_without_self(indices)
    if source.all() or not source.any():
        return {"pockets": [], "null_max": np.zeros(0), "permutations": 0}
    cores = _Cores(neighbours)
    core, sizes, side = cores(source)
    rng = np.random.default_rng([seed, 4099])
    null_max = np.empty(permutations, dtype=np.int64)
    for i in range(permutations):
        null_sizes = cores(rng.permutation(source))[1]
        null_max[i] = null_sizes.max() if len(null_sizes) else 0
    pockets = []
    taken = np.zeros(len(source), dtype=bool)
    graph = None
    for label in np.argsort(-sizes, kind="stable"):
        if sizes[label] < min_size:
            break
        p_value = float((1 + np.count_nonzero(null_max >= sizes[label])) / (1 + permutations))
        members = in_core = core == label
        if p_value < alpha:
            own = source if side[label] else ~source
            graph = _walk_graph(neighbours) if graph is None else graph
            members = _extent(graph, own, members, taken, float(extend))
            taken |= members
        pockets.append({"side": "B" if side[label] else "A", "core_size": int(sizes[label]), "p_value": p_value,
                        "significant": p_value < alpha, "core": np.flatnonzero(in_core),
                        "members": np.flatnonzero(members)})
    return {"pockets": pockets, "null_max": null_max, "permutations": int(permutations)}
