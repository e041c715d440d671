"""Compare two collections of one model: is there a difference, where is it, and which documents are new.

:func:`compare_sets` (``es.compare_sets``, ``embedspace compare sets A B -o DIR``):

1. **Global test.** A ∪ B is mapped once with :class:`embedspace.mapping.CollectionMapper`
   (one kNN graph, k = 15) and cut into regions (2. below); neither step sees the sources,
   so permuting the sources over them gives exact nulls. The default ``test="knn+regions"``
   combines two permutation tests (1,000 permutations each) with Bonferroni,
   ``p = min(1, 2 min(p_knn, p_regions))``:
   ``knn`` — a classifier two-sample test on the map's graph (each document scored by the
   share of its neighbours from B; the statistic and ``auroc`` reported are this test's),
   sensitive to diffuse shifts; ``regions`` — the smallest per-region exact p-value, sensitive
   to one region that grew or shrank. Measured on 20 Newsgroups (``scripts/bench_compare.py``,
   section in ``scripts/BENCHMARKS.md``): the k-NN test alone missed 5% injections of a topic
   that the MMD baseline found (knn 16/19 vs MMD 19/19 at x = 5%), while a region at q < 0.05
   existed in every one of those splits; on 20 random half-splits the k-NN test gave p < 0.05
   in 0 and a region at q < 0.05 appeared in 1. ``test="linear"`` (cross-validated logistic
   regression) and ``test="mmd"`` (Gaussian-kernel MMD, the textbook baseline) are the
   alternatives measured.
2. **Regions.** HDBSCAN on the map's clustering layout with ``min_cluster_size =
   max(10, n // 200)`` and every outlier assigned to its nearest cluster, so that every
   document is in a region (the map's own automatic granularity has ~10 clusters at
   n = 6,000, too coarse to isolate one newsgroup; ``scripts/bench_compare.py``'s power
   grid chose n // 200). Per region: the share of A and of B in it, a two-sided Fisher
   exact test, Benjamini-Hochberg q-values; regions with ``q < alpha`` are ranked by
   ``|log2(share_b / share_a)|``.
3. **Novelty.** Each document of B is scored against A with
   :func:`embedspace.analysis.outlier_scores` (``method="knn"``: mean distance to A's 10
   nearest documents over the median of A's own; 1.0 = typical).

:func:`write_comparison` writes the result directory (``regions.csv``, ``documents.parquet``,
``compare.png``, ``compare.html``, ``metrics.json``, ``manifest.json``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from embedspace.analysis.compare_stats import (
    TESTS,
    fisher_regions,
    knn_two_sample_test,
    linear_two_sample_test,
    mmd_test,
    region_test,
)
from embedspace.analysis.outliers import outlier_scores
from embedspace.embeddingset import EmbeddingSet
from embedspace.errors import InputError, ModelMismatchError
from embedspace.mapping import Clusterer, CollectionMapper, describe, knn_graph

__all__ = ["ALPHA", "DEFAULT_TEST", "SetComparison", "compare_sets", "region_size", "regions_of"]

DEFAULT_TEST = "knn+regions"
ALPHA = 0.05
PERMUTATIONS = 1000
_SMALL = 30  # at or below this many documents the map uses PCA and its own clusters are the regions


def region_size(n: int) -> int:
    """The ``min_cluster_size`` of the regions of a union of ``n`` documents: ``max(10, n // 200)``."""
    return max(10, int(n) // 200)


def regions_of(mapper, seed: int = 0) -> np.ndarray:
    """Regions of a fitted :class:`~embedspace.mapping.CollectionMapper`: every document in one (see the module notes).

    Returns
    -------
    ndarray of int64 of shape (n,)
    """
    map_clusters = mapper.clusterer_.labels_.astype(np.int64)
    n = len(map_clusters)
    if n <= _SMALL:
        regions = map_clusters
    else:
        regions = Clusterer(region_size(n), assign_outliers=True,
                            random_state=seed).fit(mapper.cluster_embedding_).labels_.astype(np.int64)
    if (regions < 0).all():  # nothing dense enough: the map's clusters, or one region
        regions = map_clusters if (map_clusters >= 0).any() else np.zeros(n, dtype=np.int64)
    return regions


@dataclass
class SetComparison:
    """What :func:`compare_sets` found.

    Attributes
    ----------
    metrics : dict
        ``test``, ``p_value``, ``statistic``, ``auroc``, ``n_a``, ``n_b``, ``n_regions``,
        ``n_significant``, ``alpha``, ``seed``, ``names``, ``timings``.
    regions : pandas.DataFrame
        One row per region, significant ones first (ranked by ``|log2_ratio|``), then
        by p-value: ``cluster``, ``label``, ``keywords`` (list), ``n_a``, ``n_b``,
        ``share_a``, ``share_b``, ``log2_ratio``, ``odds_ratio``, ``p_value``,
        ``q_value``, ``significant``, ``direction`` ("more in B" / "less in B" / ""),
        ``examples_a`` and ``examples_b`` (lists of text), ``example_rows_a``/``_b``.
    space : EmbeddingSet
        A ∪ B (A's rows first) with ``source`` ("A"/"B" or the given names), ``x``, ``y``,
        ``cluster`` (region), ``map_cluster`` (the map's own cluster), ``novelty``
        (NaN on A's rows) and ``source_row`` (the row within its own set).
    """

    metrics: dict
    regions: object
    space: EmbeddingSet
    extra: dict = field(default_factory=dict)

    def to_json(self, top: int | None = None) -> dict:
        """The ``--json`` object of DESIGN.md §5: p_value, statistic, auroc and the significant regions."""
        regions = self.regions[self.regions["significant"]]
        if top is not None:
            regions = regions.head(top)
        keep = ["cluster", "label", "share_a", "share_b", "n_a", "n_b", "log2_ratio", "p_value", "q_value", "direction"]
        out = {key: self.metrics[key] for key in ("p_value", "statistic", "auroc", "test", "n_a", "n_b",
                                                  "n_regions", "n_significant")}
        out["regions"] = regions[keep].to_dict(orient="records")
        return out


def _check_pair(a, b, names) -> None:
    for what, space in (("a", a), ("b", b)):
        if not hasattr(space, "vectors") or not hasattr(space, "table"):
            raise InputError(f"{what} must be an EmbeddingSet (see embedspace.embed), got {type(space).__name__}")
        if len(space) < 2:
            raise InputError(f"comparing sets needs at least 2 documents in each set; {what} has {len(space)}")
    if a.dim != b.dim or (a.model is not None and b.model is not None and not a.model.same_space(b.model)):
        show = (lambda s: s.model.describe() if s.model is not None else f"{s.dim}-d vectors")
        raise ModelMismatchError(f"a was embedded by {show(a)} and b by {show(b)}; compare_sets needs one model "
                                 "(embed both with the same model, or use compare_models for two models)")
    if len(names) != 2 or names[0] == names[1]:
        raise InputError(f"names must be two different labels, got {names!r}")


def _union(a, b, names) -> EmbeddingSet:
    import pandas as pd

    table = pd.concat([a.table, b.table], ignore_index=True, sort=False)
    source = np.array([names[0]] * len(a) + [names[1]] * len(b), dtype=object)
    table = table.assign(source=source, source_row=np.r_[np.arange(len(a)), np.arange(len(b))].astype(np.int64))
    vectors = np.vstack([np.asarray(a.vectors, dtype=np.float32), np.asarray(b.vectors, dtype=np.float32)])
    return EmbeddingSet(vectors, table, a.model if a.model is not None else b.model)


def _global_test(test, mapper, union, is_b, regions, permutations, seed) -> dict:
    """The global test's result; ``knn+regions`` is the Bonferroni combination ``min(1, 2 min(p_knn, p_regions))``."""
    parts = {}
    if test in ("knn", "knn+regions"):
        graph = mapper.knn_ if mapper.knn_ is not None else knn_graph(union, k=min(15, len(union) - 1))
        parts["knn"] = knn_two_sample_test(graph.indices, is_b, permutations=permutations, seed=seed)
        parts["knn"].pop("scores", None)
    if test in ("regions", "knn+regions"):
        parts["regions"] = region_test(regions, is_b, permutations=permutations, seed=seed)
    if test == "linear":
        parts["linear"] = linear_two_sample_test(union.vectors, is_b, seed=seed)
        parts["linear"].pop("scores", None)
    if test == "mmd":
        parts["mmd"] = mmd_test(union.vectors, is_b, permutations=permutations, seed=seed)
    first = parts.get("knn") or next(iter(parts.values()))
    p_value = min(1.0, len(parts) * min(part["p_value"] for part in parts.values()))
    return {"test": test, "p_value": float(p_value), "statistic": first.get("statistic"), "auroc": first.get("auroc"),
            "parts": parts}


def _examples(vectors, members, n_examples) -> list[int]:
    """The ``n_examples`` rows of ``members`` closest (cosine) to their own mean."""
    if len(members) == 0:
        return []
    block = vectors[members].astype(np.float64)
    block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    centre = block.mean(axis=0)
    order = np.argsort(-(block @ centre), kind="stable")[:n_examples]
    return [int(members[i]) for i in order]


def _describe_regions(union, regions, is_b, alpha, n_examples):
    frame = fisher_regions(regions, is_b)
    names = describe(union.assign(cluster=regions), n_keywords=10, n_examples=0)
    frame = frame.merge(names[["cluster", "label", "keywords"]], on="cluster", how="left")
    texts = union.table["text"].tolist()
    vectors = union.vectors
    rows_a, rows_b = [], []
    for cluster in frame["cluster"]:
        members = regions == cluster
        rows_a.append(_examples(vectors, np.flatnonzero(members & ~is_b), n_examples))
        rows_b.append(_examples(vectors, np.flatnonzero(members & is_b), n_examples))
    frame["example_rows_a"], frame["example_rows_b"] = rows_a, rows_b
    frame["examples_a"] = [[texts[i] for i in rows] for rows in rows_a]
    frame["examples_b"] = [[texts[i] for i in rows] for rows in rows_b]
    frame["significant"] = (frame["q_value"] < alpha).fillna(False).astype(bool)
    frame["direction"] = np.where(~frame["significant"], "", np.where(frame["log2_ratio"] > 0, "more in B", "less in B"))
    frame["_effect"] = -frame["log2_ratio"].abs()
    frame["_rank"] = np.where(frame["significant"], frame["_effect"], np.inf)
    frame = frame.sort_values(["_rank", "p_value", "cluster"], kind="stable", na_position="last")
    return frame.drop(columns=["_effect", "_rank"]).reset_index(drop=True)


def compare_sets(a, b, *, test: str = DEFAULT_TEST, permutations: int = PERMUTATIONS, alpha: float = ALPHA,
                 seed: int = 0, names=("A", "B"), novelty_k: int = 10, n_examples: int = 3,
                 progress: bool | None = None) -> SetComparison:
    """Test whether ``a`` and ``b`` come from one distribution, find the regions that differ, score B's novelty.

    Parameters
    ----------
    a, b : EmbeddingSet
        Two collections embedded by the same model (at least 2 documents each).
    test : {"knn+regions", "knn", "regions", "linear", "mmd"}, default="knn+regions"
        The global two-sample test (see the module notes).
    permutations : int, default=1000
        Permutations of the knn and mmd tests' null distributions.
    alpha : float, default=0.05
        Regions with a Benjamini-Hochberg q-value below it are reported as significant.
    seed : int, default=0
        One seed for the map, the regions and the permutations: the same seed gives the same result.
    names : tuple of two str, default=("A", "B")
        The values of the ``source`` column.
    novelty_k : int, default=10
        Neighbours in A per document of B for the novelty score.
    n_examples : int, default=3
        Representative documents per region from each side.
    progress : bool or None, default=None

    Returns
    -------
    SetComparison

    Raises
    ------
    InputError
        A set with fewer than 2 documents, an unknown test, alpha outside (0, 1).
    ModelMismatchError
        ``a`` and ``b`` come from different models.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> result = es.compare_sets(es.embed(last_month), es.embed(this_month))  # doctest: +SKIP
    >>> result.metrics["p_value"], result.regions.head()  # doctest: +SKIP
    """
    names = tuple(str(n) for n in names)
    _check_pair(a, b, names)
    if test not in TESTS:
        raise InputError(f"unknown test '{test}' (choose from {', '.join(TESTS)})")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    timings = {}
    started = time.perf_counter()
    union = _union(a, b, names)
    is_b = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    mapper = CollectionMapper(random_state=seed, progress=progress).fit(union)
    timings["map"] = round(time.perf_counter() - started, 3)
    clock = time.perf_counter()
    map_clusters = mapper.clusterer_.labels_.astype(np.int64)
    regions = regions_of(mapper, seed)
    result = _global_test(test, mapper, union, is_b, regions, permutations, seed)
    timings["test"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    frame = _describe_regions(union, regions, is_b, alpha, n_examples)
    timings["regions"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    novelty = np.full(len(union), np.nan, dtype=np.float32)
    novelty[is_b] = outlier_scores(b, reference=a, method="knn", k=novelty_k, random_state=seed, progress=progress)
    timings["novelty"] = round(time.perf_counter() - clock, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    space = mapper.space_.assign(cluster=regions, map_cluster=map_clusters, novelty=novelty)
    metrics = {"test": result["test"], "p_value": result["p_value"], "statistic": result["statistic"],
               "auroc": result.get("auroc"), "n_a": len(a), "n_b": len(b), "n_regions": int((frame["cluster"] >= 0).sum()),
               "n_significant": int(frame["significant"].sum()), "alpha": alpha, "seed": seed, "names": list(names),
               "region_min_size": region_size(len(union)), "method": mapper.method_, "global_test": result,
               "timings": timings}
    return SetComparison(metrics=metrics, regions=frame, space=space)
