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
   ``|log2(share_b / share_a)|``. Before them come the significant **pockets**
   (:mod:`~embedspace.analysis.compare_pockets`): documents of one set whose neighbours (on
   the map's graph joined with one by embedding and words) are far more often from that set
   than the pooled share predicts, joined
   along the graph, each with a family-wise permutation p-value (``kind="pocket"``, ``q_value``
   = that p-value; a document's pocket is the ``pocket`` column). A map region is drawn
   without the sources, so a topic only B has shares one with its neighbour topic (20
   Newsgroups: rec.autos with rec.motorcycles); the pocket is that topic alone. Measured by
   ``scripts/bench_compare.py`` (x = 5% of one newsgroup injected into B, 10 seeds per group):
   see ``scripts/BENCHMARKS.md`` § bench_compare.py for purity and coverage of B's top region.
   The global test does not use the pockets. Regions and pockets are named in one
   c-TF-IDF pass (:func:`embedspace.mapping.describe`) over at most ``NAMING_DOCS`` = 150
   documents of each (a seeded sample), about half the time of naming from every document
   with most keywords the same (``scripts/bench_compare.py --part speed``; BENCHMARKS.md).
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

from embedspace.analysis.compare_pockets import POCKET_PERMUTATIONS, find_pockets, pocket_neighbours
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
NAMING_DOCS = 150  # documents per region that its keywords are counted on
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
        ``n_significant`` (pockets included), ``n_pockets``, ``alpha``, ``seed``, ``names``,
        ``pockets`` (the pocket null: ``permutations``, ``largest_core``,
        ``null_largest_core_95``), ``timings``.
    regions : pandas.DataFrame
        One row per region: significant pockets first (largest core first), then
        significant map regions (ranked by ``|log2_ratio|``), then the rest by p-value:
        ``cluster`` (an id unique in this table; pockets are numbered after the map
        regions), ``kind`` ("pocket" or "cluster"), ``core_size`` (pockets), ``label``,
        ``keywords`` (list), ``n_a``, ``n_b``,
        ``share_a``, ``share_b``, ``log2_ratio``, ``odds_ratio``, ``p_value``,
        ``q_value``, ``significant``, ``direction`` ("more in B" / "less in B" / ""),
        ``examples_a`` and ``examples_b`` (lists of text), ``example_rows_a``/``_b``.
    space : EmbeddingSet
        A ∪ B (A's rows first) with ``source`` ("A"/"B" or the given names), ``x``, ``y``,
        ``cluster`` (region), ``map_cluster`` (the map's own cluster), ``pocket`` (the
        significant pocket the document is in, -1 = none), ``novelty``
        (NaN on A's rows) and ``source_row`` (the row within its own set).
    """

    metrics: dict
    regions: object
    space: EmbeddingSet
    extra: dict = field(default_factory=dict)

    def members(self, cluster: int) -> np.ndarray:
        """Boolean mask over ``space``'s rows of the documents in region ``cluster`` (a pocket or a map region)."""
        kind = self.regions.loc[self.regions["cluster"] == cluster, "kind"]
        column = "pocket" if len(kind) and kind.iloc[0] == "pocket" else "cluster"
        return self.space.table[column].to_numpy() == cluster

    def to_json(self, top: int | None = None) -> dict:
        """The ``--json`` object of DESIGN.md §5: p_value, statistic, auroc and the significant regions."""
        regions = self.regions[self.regions["significant"]]
        if top is not None:
            regions = regions.head(top)
        keep = ["cluster", "kind", "label", "share_a", "share_b", "n_a", "n_b", "log2_ratio", "p_value", "q_value", "direction"]
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


def _graph_of(mapper, union):
    """The map's own kNN graph (k = 15), or one of that k when the map made none (tiny inputs)."""
    return mapper.knn_ if mapper.knn_ is not None else knn_graph(union, k=min(15, len(union) - 1))


def _global_test(test, graph, union, is_b, regions, permutations, seed) -> dict:
    """The global test's result; ``knn+regions`` is the Bonferroni combination ``min(1, 2 min(p_knn, p_regions))``."""
    parts = {}
    if test in ("knn", "knn+regions"):
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


def _pocket_frame(pockets, is_b, offset: int):
    """The significant pockets as region rows (ids from ``offset`` on) and each document's pocket id (-1 = none)."""
    import pandas as pd

    pocket = np.full(len(is_b), -1, dtype=np.int64)
    total_b = int(is_b.sum())
    total_a = len(is_b) - total_b
    rows = []
    for number, found in enumerate(p for p in pockets if p["significant"]):
        members = found["members"]
        pocket[members] = offset + number
        n_b = int(is_b[members].sum())
        n_a = len(members) - n_b
        ratio = float(np.log2(((n_b + 0.5) / (total_b + 0.5)) / ((n_a + 0.5) / (total_a + 0.5))))
        rows.append({"cluster": offset + number, "n_a": n_a, "n_b": n_b, "share_a": n_a / total_a,
                     "share_b": n_b / total_b, "log2_ratio": ratio, "odds_ratio": np.nan, "p_value": found["p_value"],
                     "q_value": found["p_value"], "kind": "pocket", "core_size": found["core_size"]})
    return pd.DataFrame(rows), pocket


def _naming_sample(naming: np.ndarray, seed: int) -> np.ndarray:
    """Rows that name the regions: at most NAMING_DOCS per region, a seeded sample (the module notes, 2.)."""
    rng = np.random.default_rng([seed, 15485863])
    chosen = [rng.permutation(np.flatnonzero(naming == c))[:NAMING_DOCS] for c in np.unique(naming)]
    return np.sort(np.concatenate(chosen))


def _describe_regions(union, regions, is_b, alpha, n_examples, pockets=(), seed: int = 0):
    """Regions (significant pockets first, then map regions) with names, examples and ranks; and the pocket ids."""
    import pandas as pd

    frame = fisher_regions(regions, is_b).assign(kind="cluster", core_size=0)
    pocket_rows, pocket = _pocket_frame(pockets, is_b, int(max(regions.max(), -1)) + 1)
    if len(pocket_rows):
        frame = pd.concat([pocket_rows, frame], ignore_index=True)
    naming = np.where(pocket >= 0, pocket, regions)  # one c-TF-IDF pass names pockets and regions together
    keep = _naming_sample(naming, seed)
    names = describe(union.select(keep).assign(cluster=naming[keep]), n_keywords=10, n_examples=0)
    frame = frame.merge(names[["cluster", "label", "keywords"]], on="cluster", how="left")
    unnamed = frame["label"].isna()
    frame.loc[unnamed, "label"] = [f"region {c}" for c in frame.loc[unnamed, "cluster"]]
    frame["keywords"] = [k if isinstance(k, list) else [] for k in frame["keywords"]]
    texts = union.table["text"].tolist()
    vectors = union.vectors
    rows_a, rows_b = [], []
    for cluster, kind in zip(frame["cluster"], frame["kind"]):
        members = (pocket if kind == "pocket" else regions) == cluster
        rows_a.append(_examples(vectors, np.flatnonzero(members & ~is_b), n_examples))
        rows_b.append(_examples(vectors, np.flatnonzero(members & is_b), n_examples))
    frame["example_rows_a"], frame["example_rows_b"] = rows_a, rows_b
    frame["examples_a"] = [[texts[i] for i in rows] for rows in rows_a]
    frame["examples_b"] = [[texts[i] for i in rows] for rows in rows_b]
    frame["significant"] = (frame["q_value"] < alpha).fillna(False).astype(bool)
    frame["direction"] = np.where(~frame["significant"], "", np.where(frame["log2_ratio"] > 0, "more in B", "less in B"))
    is_pocket = (frame["kind"] == "pocket").to_numpy()
    frame["_group"] = np.where(frame["significant"], np.where(is_pocket, 0, 1), 2)
    frame["_rank"] = np.where(is_pocket, 0.0, np.where(frame["significant"], -frame["log2_ratio"].abs(), np.inf))
    frame = frame.sort_values(["_group", "_rank", "p_value", "cluster"], kind="stable", na_position="last")
    return frame.drop(columns=["_group", "_rank"]).reset_index(drop=True), pocket


def _region_counts(frame, found) -> dict:
    """``n_regions`` (map regions), ``n_significant`` (pockets included), ``n_pockets`` and the pocket null's summary."""
    null_max = found["null_max"]
    n_pockets = int((frame["kind"] == "pocket").sum())
    return {"n_regions": int(((frame["kind"] == "cluster") & (frame["cluster"] >= 0)).sum()),
            "n_significant": int(frame["significant"].sum()), "n_pockets": n_pockets,
            "pockets": {"permutations": found["permutations"], "n_significant": n_pockets,
                        "largest_core": max((p["core_size"] for p in found["pockets"]), default=0),
                        "null_largest_core_95": float(np.quantile(null_max, 0.95)) if len(null_max) else None}}


def compare_sets(a, b, *, test: str = DEFAULT_TEST, permutations: int = PERMUTATIONS, alpha: float = ALPHA,
                 seed: int = 0, names=("A", "B"), novelty_k: int = 10, n_examples: int = 3,
                 pocket_permutations: int = POCKET_PERMUTATIONS, progress: bool | None = None) -> SetComparison:
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
    pocket_permutations : int, default=200
        Permutations of the pockets' null (module notes, 2.).
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
    if int(pocket_permutations) < 1:
        raise InputError(f"pocket_permutations must be at least 1, got {pocket_permutations}")
    timings = {}
    started = time.perf_counter()
    union = _union(a, b, names)
    is_b = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    mapper = CollectionMapper(random_state=seed, progress=progress, levels=1).fit(union)  # no topic tree: regions below
    timings["map"] = round(time.perf_counter() - started, 3)
    clock = time.perf_counter()
    map_clusters = mapper.clusterer_.labels_.astype(np.int64)
    regions = regions_of(mapper, seed)
    graph = _graph_of(mapper, union)
    result = _global_test(test, graph, union, is_b, regions, permutations, seed)
    timings["test"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    found = find_pockets(pocket_neighbours(graph.indices, union, seed=seed), is_b, permutations=pocket_permutations,
                         alpha=alpha, seed=seed)
    timings["pockets"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    frame, pocket = _describe_regions(union, regions, is_b, alpha, n_examples, found["pockets"], seed)
    timings["regions"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    novelty = np.full(len(union), np.nan, dtype=np.float32)
    novelty[is_b] = outlier_scores(b, reference=a, method="knn", k=novelty_k, random_state=seed, progress=progress)
    timings["novelty"] = round(time.perf_counter() - clock, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    space = mapper.space_.assign(cluster=regions, map_cluster=map_clusters, pocket=pocket, novelty=novelty)
    metrics = {"test": result["test"], "p_value": result["p_value"], "statistic": result["statistic"],
               "auroc": result.get("auroc"), "n_a": len(a), "n_b": len(b), **_region_counts(frame, found),
               "alpha": alpha, "seed": seed, "names": list(names), "region_min_size": region_size(len(union)),
               "method": mapper.method_, "global_test": result, "timings": timings}
    return SetComparison(metrics=metrics, regions=frame, space=space)
