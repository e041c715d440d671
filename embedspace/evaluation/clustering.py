"""Clustering quality against reference labels: the map pipeline's clusters scored by ARI, NMI and V-measure."""

from __future__ import annotations

from embedspace.mapping import CollectionMapper, clustering_scores, space_to_map

__all__ = ["evaluate_clustering"]

KEYS = ("ari", "nmi", "v_measure", "noise_fraction", "n_clusters", "n", "homogeneity", "completeness")


def evaluate_clustering(source, label_col: str, *, text_col: str = "text", k: int | None = None, seed: int = 0,
                        model: str | None = None, backend: str = "auto", max_tokens: int | None = None,
                        progress: bool | None = None) -> dict:
    """Cluster a labelled collection as ``embedspace map`` does and score the clusters against its labels.

    Outliers count as a class of their own. Nothing is written.

    Parameters
    ----------
    source : EmbeddingSet, path-like or DataFrame
        A set, or text that :func:`~embedspace.mapping.space_to_map` embeds.
    label_col : str
        Column of reference labels.
    text_col : str, default="text"
    k : int, optional
        Ask for exactly ``k`` clusters (default: HDBSCAN's automatic granularity).
    seed : int, default=0
    model, backend, max_tokens
        As for :func:`embedspace.embed`, when ``source`` is text.
    progress : bool or None

    Returns
    -------
    dict
        ``ari``, ``nmi``, ``v_measure``, ``noise_fraction``, ``n_clusters``, ``n``,
        ``homogeneity``, ``completeness``.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> es.evaluate_clustering("corpus:20newsgroups", "label")["nmi"]  # doctest: +SKIP
    """
    space = space_to_map(source, text_col=text_col, label_col=label_col, model=model, backend=backend,
                         max_tokens=max_tokens, progress=progress)
    mapper = CollectionMapper(n_clusters=k, random_state=seed, display=False, progress=progress).fit(space)
    scores = clustering_scores(mapper.clusterer_.labels_, space.table[label_col].to_numpy())
    return {key: scores[key] for key in KEYS}
