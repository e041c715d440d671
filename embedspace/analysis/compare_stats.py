"""The statistics behind ``compare``: two-sample tests, exact tests per region, trends, q-values, CKA.

Everything here works on arrays (no EmbeddingSet, no files), so each piece can be checked
on its own and reused by :mod:`~embedspace.analysis.compare_collections`,
:mod:`~embedspace.analysis.compare_slices` and :mod:`~embedspace.analysis.compare_spaces`.

Global two-sample tests ("are A and B drawn from one distribution?"), all one-sided
(a difference makes the statistic large):

- :func:`knn_two_sample_test` — the default. A classifier two-sample test whose classifier
  is the leave-one-out k-nearest-neighbour vote on the map's own kNN graph: each document
  is scored by the share of its neighbours (itself excluded) that come from B, and the
  statistic is the AUROC of those scores against the true sources. The graph does not
  depend on the sources, so permuting the sources over it gives an exact null: the
  p-value ``(1 + #{permuted AUROC >= observed}) / (1 + permutations)`` is valid at any
  sample size. It costs nothing beyond the graph the map builds anyway.
- :func:`linear_two_sample_test` — a logistic regression on the vectors, stratified
  K-fold; each fold's held-out AUROC has the Mann-Whitney null (the classifier never
  saw those labels) and the folds are pooled as van Elteren's stratified rank test.
- :func:`mmd_test` — the textbook baseline: maximum mean discrepancy with a Gaussian
  kernel whose bandwidth is the median pairwise distance, permutation null.

``scripts/bench_compare.py`` measured the three on 20 Newsgroups (calibration over 20
random half-splits, power over injected topics): see its section of
``scripts/BENCHMARKS.md``; the k-NN test was kept as the default.
"""

from __future__ import annotations

import math

import numpy as np

from embedspace.errors import InputError

__all__ = [
    "TESTS",
    "auroc",
    "benjamini_hochberg",
    "cochran_armitage",
    "fisher_regions",
    "knn_overlap",
    "knn_two_sample_test",
    "linear_cka",
    "linear_two_sample_test",
    "mmd_test",
    "region_test",
]

TESTS = ("knn+regions", "knn", "regions", "linear", "mmd")
# Permutations per chunk of the k-NN test (memory: chunk x n x k booleans).
_CHUNK_CELLS = 20_000_000
# Rows the MMD baseline works on at most (an n x n kernel matrix).
MMD_MAX_ROWS = 12_000


def _rng(seed: int) -> np.random.Generator:
    """A generator of its own stream: a caller that shuffles its data with the same seed gets other numbers."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(33,)))


def _as_source(source, n: int | None = None) -> np.ndarray:
    source = np.asarray(source)
    if source.dtype != bool:
        source = source.astype(bool)
    if n is not None and len(source) != n:
        raise InputError(f"{len(source)} source labels for {n} rows")
    n_b = int(source.sum())
    if n_b == 0 or n_b == len(source):
        raise InputError("a two-sample test needs documents from both sets")
    return source


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the rows where ``positive`` is True (ties count half).

    Parameters
    ----------
    scores : array-like of shape (n,)
    positive : array-like of bool of shape (n,)

    Returns
    -------
    float
        In [0, 1]; 0.5 when the scores do not separate the two groups.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        raise InputError("AUROC needs both positive and negative rows")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _discrete_aurocs(counts: np.ndarray, labels: np.ndarray, levels: int) -> np.ndarray:
    """AUROC of integer scores ``counts`` (values 0..levels-1) per row of ``labels`` (P, n) bool."""
    p = labels.shape[0]
    offsets = (np.arange(p)[:, None] * 2 * levels)
    keys = (counts + levels * labels + offsets).ravel()
    hist = np.bincount(keys, minlength=p * 2 * levels).reshape(p, 2, levels).astype(np.float64)
    neg, pos = hist[:, 0, :], hist[:, 1, :]
    below = np.cumsum(neg, axis=1) - neg  # negatives with a strictly smaller score
    n1 = pos.sum(axis=1)
    n0 = neg.sum(axis=1)
    return (pos * (below + 0.5 * neg)).sum(axis=1) / (n1 * n0)


def knn_two_sample_test(neighbors, source, *, permutations: int = 1000, seed: int = 0) -> dict:
    """Classifier two-sample test with the leave-one-out k-NN vote on a fixed neighbour graph.

    Parameters
    ----------
    neighbors : ndarray of shape (n, k), int
        Row ``i`` lists the nearest rows of ``i``; an entry equal to ``i`` (the row
        itself) is ignored, so a :class:`~embedspace.mapping.KNNGraph`'s ``indices`` can be
        passed as they are.
    source : array-like of bool of shape (n,)
        True for rows of B.
    permutations : int, default=1000
        Random relabellings for the null distribution.
    seed : int, default=0

    Returns
    -------
    dict
        ``test`` ("knn"), ``auroc`` (observed), ``statistic`` (the AUROC standardised by
        the permutation null's mean and standard deviation), ``p_value``,
        ``permutations``, ``k`` (neighbours used per row), ``scores`` (ndarray (n,): the
        share of each row's neighbours that come from B).
    """
    indices = np.asarray(neighbors, dtype=np.int64)
    if indices.ndim != 2 or indices.shape[1] < 2:
        raise InputError(f"neighbors must have shape (n, k) with k >= 2, got {indices.shape}")
    n = indices.shape[0]
    source = _as_source(source, n)
    if permutations < 1:
        raise InputError(f"permutations must be at least 1, got {permutations}")
    own = indices == np.arange(n)[:, None]
    # Each row's own entry moves to the end and is dropped (a row without one drops its farthest neighbour).
    order = np.argsort(own, axis=1, kind="stable")
    others = np.take_along_axis(indices, order, axis=1)[:, :-1]
    levels = others.shape[1] + 1
    counts = source[others].sum(axis=1)
    observed = float(_discrete_aurocs(counts[None, :], source[None, :], levels)[0])
    rng = _rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(1, n * others.shape[1]))
    null = []
    for start in range(0, permutations, chunk):
        size = min(chunk, permutations - start)
        labels = np.stack([rng.permutation(source) for _ in range(size)])
        perm_counts = labels[:, others].sum(axis=2)
        null.append(_discrete_aurocs(perm_counts, labels, levels))
    null = np.concatenate(null)
    spread = float(null.std())
    statistic = (observed - float(null.mean())) / spread if spread > 0 else 0.0
    return {
        "test": "knn",
        "auroc": observed,
        "statistic": float(statistic),
        "p_value": float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + permutations)),
        "permutations": int(permutations),
        "k": int(others.shape[1]),
        "scores": counts / others.shape[1],
    }


def linear_two_sample_test(vectors, source, *, folds: int = 5, seed: int = 0, C: float = 1.0) -> dict:
    """Classifier two-sample test with a logistic regression and stratified K-fold cross-validation.

    Each fold's held-out rows were never seen by the classifier that scores them, so
    under the null their scores are exchangeable between A and B and the fold's
    Mann-Whitney U has its usual null; the folds are pooled as van Elteren's stratified
    test, ``Z = sum(U_k - E U_k) / sqrt(sum Var U_k)``, one-sided.

    Parameters
    ----------
    vectors : ndarray of shape (n, d)
    source : array-like of bool of shape (n,)
    folds : int, default=5
        Fewer when a set is smaller than that.
    seed : int, default=0
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.

    Returns
    -------
    dict
        ``test`` ("linear"), ``auroc`` (mean held-out AUROC), ``statistic`` (Z),
        ``p_value``, ``folds``, ``scores`` (ndarray (n,): held-out probability of B).
    """
    from scipy.stats import norm, rankdata
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(vectors, dtype=np.float64)
    source = _as_source(source, X.shape[0])
    folds = int(min(folds, source.sum(), (~source).sum()))
    if folds < 2:
        raise InputError("the linear test needs at least 2 documents in each set")
    scores = np.zeros(len(source))
    total, variance, aurocs = 0.0, 0.0, []
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, source):
        model = LogisticRegression(C=C, max_iter=500).fit(X[train], source[train])
        held_scores = model.decision_function(X[held])
        scores[held] = 1.0 / (1.0 + np.exp(-held_scores))
        labels = source[held]
        n1, n0 = int(labels.sum()), int((~labels).sum())
        u = rankdata(held_scores)[labels].sum() - n1 * (n1 + 1) / 2.0
        total += u - n1 * n0 / 2.0
        variance += n1 * n0 * (n1 + n0 + 1) / 12.0
        aurocs.append(u / (n1 * n0))
    z = total / math.sqrt(variance)
    return {"test": "linear", "auroc": float(np.mean(aurocs)), "statistic": float(z),
            "p_value": float(norm.sf(z)), "folds": folds, "scores": scores}


def mmd_test(vectors, source, *, permutations: int = 1000, seed: int = 0, max_rows: int = MMD_MAX_ROWS) -> dict:
    """Maximum mean discrepancy with a Gaussian kernel and a permutation null (the textbook baseline).

    The bandwidth is the median Euclidean distance between rows (over at most 2,000
    sampled rows); the statistic is the biased MMD² ``s^T K s`` with ``s = 1/n_B`` on B
    rows and ``-1/n_A`` on A rows, recomputed for every permutation of the sources.

    Parameters
    ----------
    vectors : ndarray of shape (n, d)
    source : array-like of bool of shape (n,)
    permutations : int, default=1000
    seed : int, default=0
    max_rows : int, default=MMD_MAX_ROWS
        Larger inputs are refused (the kernel matrix is n x n).

    Returns
    -------
    dict
        ``test`` ("mmd"), ``mmd2``, ``statistic`` (MMD² standardised by the null),
        ``p_value``, ``bandwidth``, ``permutations``, ``auroc`` (None: no classifier).
    """
    X = np.asarray(vectors, dtype=np.float32)
    source = _as_source(source, X.shape[0])
    n = X.shape[0]
    if n > max_rows:
        raise InputError(f"the MMD test builds an n x n kernel; {n} rows is more than max_rows={max_rows}")
    rng = _rng(seed)
    sample = X[rng.choice(n, min(n, 2000), replace=False)]
    sq = (sample ** 2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * sample @ sample.T, 0.0))
    bandwidth = float(np.median(dist[np.triu_indices(len(sample), 1)])) or 1.0
    sq = (X ** 2).sum(1)
    kernel = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.maximum(kernel, 0.0, out=kernel)
    kernel *= -1.0 / (2.0 * bandwidth ** 2)
    np.exp(kernel, out=kernel)
    n_b = int(source.sum())
    weights_b, weights_a = 1.0 / n_b, -1.0 / (n - n_b)

    def mmd2(labels: np.ndarray) -> np.ndarray:  # labels (n, P) bool
        s = np.where(labels, weights_b, weights_a).astype(np.float32)
        return np.einsum("ip,ip->p", s, kernel @ s, dtype=np.float64)

    observed = float(mmd2(source[:, None])[0])
    null = []
    for start in range(0, permutations, 250):
        size = min(250, permutations - start)
        null.append(mmd2(np.stack([rng.permutation(source) for _ in range(size)], axis=1)))
    null = np.concatenate(null)
    spread = float(null.std())
    return {"test": "mmd", "mmd2": observed, "auroc": None, "bandwidth": bandwidth, "permutations": int(permutations),
            "statistic": float((observed - null.mean()) / spread) if spread > 0 else 0.0,
            "p_value": float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + permutations))}


def _region_p_values(counts_b: np.ndarray, sizes: np.ndarray, n: int, n_b: int) -> np.ndarray:
    """Two-sided hypergeometric p-values ``min(1, 2 min(P(X <= x), P(X >= x)))`` of B-counts per region."""
    from scipy.stats import hypergeom

    upper = hypergeom.sf(counts_b - 1, n, n_b, sizes)
    lower = hypergeom.cdf(counts_b, n, n_b, sizes)
    return np.minimum(1.0, 2.0 * np.minimum(upper, lower))


def _hypergeometric_two_sided(size: int, n: int, n_b: int) -> np.ndarray:
    """Two-sided p-value of every count 0..size of B in a region of ``size`` rows (as :func:`_region_p_values`)."""
    from scipy.special import gammaln

    def log_choose(a, b):
        return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)

    x = np.arange(size + 1, dtype=np.float64)
    possible = (x <= n_b) & (size - x <= n - n_b)
    pmf = np.zeros(size + 1)
    xs = x[possible]
    pmf[possible] = np.exp(log_choose(n_b, xs) + log_choose(n - n_b, size - xs) - log_choose(n, size))
    lower = np.cumsum(pmf)
    upper = np.cumsum(pmf[::-1])[::-1]
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def region_test(regions, source, *, permutations: int = 1000, seed: int = 0) -> dict:
    """Permutation test of "B is spread over the regions like A", sensitive to one region that differs.

    The statistic is the smallest two-sided hypergeometric p-value over the regions (the
    exact per-region test of :func:`fisher_regions`, written as a hypergeometric tail). The
    regions come from a map of A ∪ B made without the sources, so permuting the sources
    over them gives an exact null: ``p = (1 + #{permuted min-p <= observed}) / (1 + permutations)``.

    Parameters
    ----------
    regions : array-like of int of shape (n,)
        Region of each row; rows with -1 are left out.
    source : array-like of bool of shape (n,)
        True for rows of B.
    permutations : int, default=1000
    seed : int, default=0

    Returns
    -------
    dict
        ``test`` ("regions"), ``min_p`` (observed), ``p_value``, ``permutations``, ``n_regions``.
    """
    regions = np.asarray(regions, dtype=np.int64)
    source = _as_source(source, len(regions))
    keep = regions >= 0
    ids, codes = np.unique(regions[keep], return_inverse=True)
    labels = source[keep]
    n, n_b, r = len(labels), int(labels.sum()), len(ids)
    if r < 2 or n_b in (0, n):
        return {"test": "regions", "min_p": 1.0, "p_value": 1.0, "permutations": int(permutations), "n_regions": int(r)}
    sizes = np.bincount(codes, minlength=r)
    # Every region's two-sided p-value for every possible count, looked up instead of recomputed per permutation.
    tables = [_hypergeometric_two_sided(int(size), n, n_b) for size in sizes]
    offsets = np.r_[0, np.cumsum(sizes + 1)[:-1]]
    flat = np.concatenate(tables)
    onehot = np.zeros((n, r), dtype=np.float32)
    onehot[np.arange(n), codes] = 1.0

    def smallest(label_rows: np.ndarray) -> np.ndarray:  # (P, n) bool -> (P,)
        counts = np.rint(label_rows.astype(np.float32) @ onehot).astype(np.int64)
        return flat[offsets[None, :] + counts].min(axis=1)

    observed = float(smallest(labels[None, :])[0])
    rng = _rng(seed + 7919)
    null = np.empty(permutations)
    for start in range(0, permutations, 100):
        size = min(100, permutations - start)
        null[start:start + size] = smallest(np.stack([rng.permutation(labels) for _ in range(size)]))
    return {"test": "regions", "min_p": observed, "n_regions": int(r), "permutations": int(permutations),
            "p_value": float((1 + np.count_nonzero(null <= observed * (1 + 1e-9))) / (1 + permutations))}


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p-values) of a vector of p-values; NaN stays NaN.

    Parameters
    ----------
    p_values : array-like of shape (m,)

    Returns
    -------
    ndarray of shape (m,)
        ``q_i = min_{j >= i} p_(j) m / j`` over the sorted finite p-values, capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return q
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def fisher_regions(clusters, source):
    """Per cluster: documents of A and B in it, their shares, a two-sided Fisher exact test and q-values.

    Parameters
    ----------
    clusters : array-like of int of shape (n,)
        Cluster of each row; -1 (outliers) gets a row with shares but no test.
    source : array-like of bool of shape (n,)
        True for rows of B.

    Returns
    -------
    pandas.DataFrame
        One row per cluster: ``cluster``, ``n_a``, ``n_b``, ``share_a``, ``share_b``
        (fraction of each set in the cluster), ``log2_ratio`` (``log2(share_b / share_a)``
        with 0.5 added to each count, > 0 = over-represented in B), ``odds_ratio``,
        ``p_value`` and ``q_value`` (Benjamini-Hochberg over the real clusters).
    """
    import pandas as pd
    from scipy.stats import fisher_exact

    clusters = np.asarray(clusters, dtype=np.int64)
    source = _as_source(source, len(clusters))
    total_b = int(source.sum())
    total_a = len(source) - total_b
    rows = []
    for cluster in np.unique(clusters):
        members = clusters == cluster
        n_b = int((members & source).sum())
        n_a = int(members.sum()) - n_b
        ratio = math.log2(((n_b + 0.5) / (total_b + 0.5)) / ((n_a + 0.5) / (total_a + 0.5)))
        odds, p = (math.nan, math.nan)
        if cluster >= 0:
            odds, p = fisher_exact([[n_b, total_b - n_b], [n_a, total_a - n_a]], alternative="two-sided")
        rows.append({"cluster": int(cluster), "n_a": n_a, "n_b": n_b, "share_a": n_a / total_a, "share_b": n_b / total_b,
                     "log2_ratio": ratio, "odds_ratio": float(odds), "p_value": float(p)})
    frame = pd.DataFrame(rows, columns=["cluster", "n_a", "n_b", "share_a", "share_b", "log2_ratio", "odds_ratio",
                                        "p_value"])
    frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy())
    return frame


def cochran_armitage(counts, totals, scores=None) -> tuple[float, float]:
    """Cochran-Armitage test for a linear trend of a proportion over ordered groups, two-sided.

    Parameters
    ----------
    counts : array-like of shape (g,)
        Documents of the topic in each ordered group (bin).
    totals : array-like of shape (g,)
        Documents in each group; empty groups are allowed and weigh nothing.
    scores : array-like of shape (g,), optional
        The groups' positions (default 0, 1, ..., g-1).

    Returns
    -------
    z : float
        Positive when the proportion rises along the groups.
    p_value : float
        Two-sided, from the normal approximation; NaN when the topic is in no group or
        in every document.
    """
    from scipy.stats import norm

    counts = np.asarray(counts, dtype=np.float64)
    totals = np.asarray(totals, dtype=np.float64)
    t = np.arange(len(counts), dtype=np.float64) if scores is None else np.asarray(scores, dtype=np.float64)
    n = totals.sum()
    p = counts.sum() / n if n > 0 else 0.0
    centred = t - (totals * t).sum() / n
    statistic = (counts * centred).sum()
    variance = p * (1.0 - p) * (totals * centred ** 2).sum()
    if variance <= 0:
        return 0.0, math.nan
    z = statistic / math.sqrt(variance)
    return float(z), float(2.0 * norm.sf(abs(z)))


def _centred(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def _debiased_product(xty: float, rows_x: np.ndarray, rows_y: np.ndarray, norm_x: float, norm_y: float, n: int) -> float:
    # The unbiased HSIC estimator of Song et al. (2012) written with features (Kornblith et al.'s helper).
    return xty - n / (n - 2.0) * float(rows_x @ rows_y) + norm_x * norm_y / ((n - 1.0) * (n - 2.0))


def linear_cka(x, y, *, debiased: bool = False) -> float:
    """Linear centred kernel alignment between two representations of the same rows.

    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred ``X`` and ``Y``
    (Kornblith et al., 2019); invariant to orthogonal transforms and isotropic scaling of
    either side, and defined across dimensions. ``debiased=True`` replaces each HSIC by
    its unbiased estimator (Song et al., 2012; Nguyen et al., 2021), which removes the
    upward bias CKA has when the dimension is not small against the number of rows.
    Computed from the features: memory O(n d), no n x n matrix.

    Parameters
    ----------
    x : ndarray of shape (n, d1)
    y : ndarray of shape (n, d2)
    debiased : bool, default=False

    Returns
    -------
    float
        1.0 for representations that agree up to rotation and scale.
    """
    x, y = _centred(x), _centred(y)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"CKA needs the same rows on both sides, got {x.shape[0]} and {y.shape[0]}")
    n = x.shape[0]
    if n < 4 and debiased:
        raise InputError(f"the debiased CKA needs at least 4 rows, got {n}")
    xty = float(np.linalg.norm(y.T @ x) ** 2)
    xtx = float(np.linalg.norm(x.T @ x))
    yty = float(np.linalg.norm(y.T @ y))
    if debiased:
        rows_x, rows_y = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        norm_x, norm_y = float(rows_x.sum()), float(rows_y.sum())
        xty = _debiased_product(xty, rows_x, rows_y, norm_x, norm_y, n)
        xtx = math.sqrt(max(_debiased_product(xtx ** 2, rows_x, rows_x, norm_x, norm_x, n), 0.0))
        yty = math.sqrt(max(_debiased_product(yty ** 2, rows_y, rows_y, norm_y, norm_y, n), 0.0))
    if xtx == 0 or yty == 0:
        return math.nan
    return float(xty / (xtx * yty))


def knn_overlap(indices_a, indices_b) -> np.ndarray:
    """Per row, the share of its neighbours in ``indices_a`` that are also in ``indices_b``.

    Parameters
    ----------
    indices_a, indices_b : ndarray of shape (n, k), int
        Each row's k nearest neighbours (itself excluded) in two spaces.

    Returns
    -------
    ndarray of shape (n,), float64
        In [0, 1]; 1.0 when both spaces give the same neighbour set.
    """
    a = np.asarray(indices_a, dtype=np.int64)
    b = np.asarray(indices_b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"neighbour lists differ in shape: {a.shape} and {b.shape}")
    found = np.zeros(a.shape[0], dtype=np.int64)
    for start in range(0, a.shape[0], 4096):
        block = slice(start, start + 4096)
        found[block] = (a[block, :, None] == b[block, None, :]).any(axis=2).sum(axis=1)
    return found / a.shape[1]
