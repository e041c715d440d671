"""Two embeddings of the same texts (two models, backends, token windows or dtypes): do they see the same space?

:func:`compare_models` (``es.compare_models``, ``embedspace compare models A B``):

- the rows must hold the same texts in the same order (checked; the differing rows are named);
- **k-NN overlap**: for each document, the share of its k nearest neighbours (cosine, itself
  excluded, k = 10) that both spaces agree on; the mean over documents, and each document's
  own value;
- **linear CKA** (Kornblith et al., 2019) and its debiased form, on the vectors; defined across
  dimensions (384 vs 768) and invariant to rotation and isotropic scaling;
- **Spearman** correlation of the cosine similarities of 20,000 random pairs of documents;
- the topics (the regions of a map of A, or A's own ``cluster`` column) whose documents keep
  the fewest neighbours: where the two spaces disagree most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedspace.analysis.compare_collections import regions_of
from embedspace.analysis.compare_stats import knn_overlap, linear_cka
from embedspace.errors import InputError
from embedspace.mapping import CollectionMapper, describe, knn_graph

__all__ = ["ModelComparison", "compare_models"]

PAIRS = 20_000


@dataclass
class ModelComparison:
    """What :func:`compare_models` found.

    Attributes
    ----------
    metrics : dict
        ``knn_overlap`` (mean), ``cka``, ``cka_debiased``, ``spearman``, ``n``, ``k``,
        ``pairs``, ``dims`` ([d_a, d_b]), ``models`` ([name_a, name_b]).
    documents : pandas.DataFrame
        A's table with ``overlap`` (each document's own k-NN overlap) and ``cluster``.
    clusters : pandas.DataFrame
        Per topic: ``cluster``, ``label``, ``size``, ``overlap`` (mean), fewest kept first.
    """

    metrics: dict
    documents: object
    clusters: object

    def to_json(self, top: int = 10) -> dict:
        """The ``--json`` object of DESIGN.md §5 (knn_overlap, cka, n, ...) with the topics that disagree most."""
        worst = self.clusters[self.clusters["cluster"] >= 0].head(top)
        return {**self.metrics, "clusters": worst[["cluster", "label", "size", "overlap"]].to_dict(orient="records")}


def _check_same_texts(a, b) -> None:
    for what, space in (("a", a), ("b", b)):
        if not hasattr(space, "vectors") or not hasattr(space, "table"):
            raise InputError(f"{what} must be an EmbeddingSet (see embedspace.embed), got {type(space).__name__}")
    if len(a) != len(b):
        raise InputError(f"a has {len(a)} rows and b {len(b)}; compare_models needs the same texts in the same order")
    texts_a, texts_b = np.asarray(a.table["text"], dtype=object), np.asarray(b.table["text"], dtype=object)
    differ = np.flatnonzero(texts_a != texts_b)
    if len(differ):
        shown = ", ".join(str(int(i)) for i in differ[:10]) + (", ..." if len(differ) > 10 else "")
        raise InputError(f"{len(differ)} of {len(a)} rows hold different texts in a and b (rows {shown}); "
                         "compare_models needs the same texts in the same order")


def _neighbours(space, k: int) -> np.ndarray:
    graph = knn_graph(space, k=k + 1)
    indices = graph.indices
    own = indices == np.arange(len(indices))[:, None]
    order = np.argsort(own, axis=1, kind="stable")  # the row itself (wherever it is) goes last, then is dropped
    return np.take_along_axis(indices, order, axis=1)[:, :k]


def _pair_spearman(va: np.ndarray, vb: np.ndarray, pairs: int, seed: int) -> float:
    from scipy.stats import spearmanr

    n = len(va)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, pairs)
    j = (i + rng.integers(1, n, pairs)) % n  # never i itself

    def cosines(v):
        v = np.asarray(v, dtype=np.float64)
        norms = np.maximum(np.linalg.norm(v, axis=1), 1e-12)
        return np.einsum("ij,ij->i", v[i], v[j]) / (norms[i] * norms[j])

    return float(spearmanr(cosines(va), cosines(vb)).statistic)


def compare_models(a, b, *, k: int = 10, pairs: int = PAIRS, seed: int = 0, progress: bool | None = None) -> ModelComparison:
    """Compare two embeddings of the same texts (see the module notes).

    Parameters
    ----------
    a, b : EmbeddingSet
        The same texts in the same order; any dimensions.
    k : int, default=10
        Neighbours per document for the overlap.
    pairs : int, default=20000
        Random pairs for the Spearman correlation of cosine similarities.
    seed : int, default=0
        Seed of the pair sample and of the map of A.
    progress : bool or None, default=None

    Returns
    -------
    ModelComparison

    Raises
    ------
    InputError
        Different row counts or texts (the rows are named), fewer than ``k + 2`` rows.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> es.compare_models(es.embed(docs), es.embed(docs, max_tokens=64)).metrics["knn_overlap"]  # doctest: +SKIP
    """
    _check_same_texts(a, b)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a whole number >= 1, got {k!r}")
    if len(a) < max(k + 2, 5):
        raise InputError(f"compare_models with k={k} needs at least {max(k + 2, 5)} documents, got {len(a)}")
    overlap = knn_overlap(_neighbours(a, k), _neighbours(b, k))
    va, vb = np.asarray(a.vectors, dtype=np.float64), np.asarray(b.vectors, dtype=np.float64)
    metrics = {"knn_overlap": float(overlap.mean()), "cka": linear_cka(va, vb), "cka_debiased": linear_cka(va, vb, debiased=True),
               "spearman": _pair_spearman(va, vb, int(pairs), seed), "n": len(a), "k": int(k), "pairs": int(pairs),
               "dims": [a.dim, b.dim], "models": [a.model.describe() if a.model else None,
                                                   b.model.describe() if b.model else None]}
    if "cluster" in a.table.columns:
        space, clusters = a, a.table["cluster"].to_numpy().astype(np.int64)
    else:
        mapper = CollectionMapper(random_state=seed, display=False, progress=progress).fit(a)
        space, clusters = mapper.space_, regions_of(mapper, seed)
    space = space.assign(cluster=clusters, overlap=overlap)
    names = describe(space, n_examples=0).set_index("cluster")
    frame = space.table.groupby("cluster")["overlap"].agg(["size", "mean"]).reset_index()
    frame.columns = ["cluster", "size", "overlap"]
    frame["label"] = [names.loc[c, "label"] for c in frame["cluster"]]
    frame = frame.sort_values(["overlap", "cluster"], kind="stable").reset_index(drop=True)
    return ModelComparison(metrics=metrics, documents=space.table, clusters=frame[["cluster", "label", "size", "overlap"]])
