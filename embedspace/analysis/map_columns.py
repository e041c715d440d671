"""The analysis columns of a map: ``outlier_score`` from the default outlier method, ``glosh``, ``duplicate_group``.

:func:`map_and_score` is ``embedspace.map``: the map of :func:`embedspace.mapping.map_collection`
with these columns, the same table ``embedspace map`` writes.

The map (:mod:`embedspace.mapping`) fills ``outlier_score`` with HDBSCAN's GLOSH score, the
only one it can compute: mapping sits below analysis in the package's layers and may not
call it. ``embedspace map`` then calls :func:`add_map_columns` here, one layer above, which

- keeps GLOSH as its own column ``glosh``;
- puts the default outlier method of :func:`embedspace.analysis.outlier_scores`
  (``contrast``; without a reference it ranks as ``knn``) in ``outlier_score``, as the
  share of the map's documents that score lower (0 the most typical, 1 the most
  anomalous), so the column stays in [0, 1] like the scores ``map add`` gives to added
  documents. GLOSH ranks outliers far worse: contaminated 20 Newsgroups collections,
  mean AUROC 0.630 against 0.944 (scripts/bench_outliers.py, contaminated table);
- adds ``duplicate_group`` from :func:`embedspace.analysis.duplicate_groups` (default
  ``near`` rule): a group number shared by a document's copies, -1 for one that occurs once.
"""

from __future__ import annotations

import numpy as np

from embedspace.analysis.duplicates import THRESHOLD, duplicate_groups
from embedspace.analysis.outliers import DEFAULT_METHOD, outlier_scores
from embedspace.errors import InputError
from embedspace.mapping import map_collection

__all__ = ["ANALYSIS_COLUMNS", "add_map_columns", "map_and_score"]

ANALYSIS_COLUMNS = ("glosh", "duplicate_group")
"""Columns :func:`add_map_columns` adds (it also rewrites ``outlier_score``)."""


def add_map_columns(mapped, *, duplicates=THRESHOLD, method: str = DEFAULT_METHOD, progress: bool | None = None):
    """A mapped set with ``outlier_score`` from ``method``, GLOSH kept as ``glosh``, and ``duplicate_group``.

    Parameters
    ----------
    mapped : EmbeddingSet
        What :func:`embedspace.map` returned (columns ``outlier_score`` and ``text``).
    duplicates : str or float, default="near"
        The rule of :func:`embedspace.analysis.duplicate_groups`.
    method : str, default="contrast"
        See :func:`embedspace.analysis.outlier_scores`.
    progress : bool or None, default=None

    Returns
    -------
    EmbeddingSet
        ``mapped`` with ``glosh`` (float32, the map's GLOSH), ``outlier_score`` (float32 in
        [0, 1]: the share of documents with a lower ``method`` score, ties averaged) and
        ``duplicate_group`` (int64, -1 = no copy).

    Raises
    ------
    InputError
        The set is not mapped, or already has a ``glosh`` or ``duplicate_group`` column.
    """
    table = mapped.table
    if "outlier_score" not in table.columns:
        raise InputError("the set is not mapped (no outlier_score); run embedspace.map(space) first")
    taken = [c for c in ANALYSIS_COLUMNS if c in table.columns]
    if taken:
        raise InputError(f"the set already has a column named {', '.join(map(repr, taken))}, which the map writes; "
                         "rename it in the input")
    scores = outlier_scores(mapped, method=method, progress=progress)
    groups = duplicate_groups(mapped, duplicates, progress=progress)
    return mapped.assign(glosh=table["outlier_score"].to_numpy(dtype=np.float32),
                         outlier_score=_rank_share(scores), duplicate_group=groups)


def map_and_score(space, *, duplicates=THRESHOLD, outlier_method: str = DEFAULT_METHOD, progress: bool | None = None,
                  **map_params):
    """Map a collection and score it: ``embedspace.map``, the table ``embedspace map`` writes.

    :func:`embedspace.mapping.map_collection` (layout, clusters, topic tree), then
    :func:`add_map_columns`: ``outlier_score`` from ``outlier_method`` as a rank share in
    [0, 1], HDBSCAN's GLOSH kept as ``glosh``, and ``duplicate_group``.

    Parameters
    ----------
    space : EmbeddingSet, n rows
        Embedded documents with a ``text`` column.
    duplicates : str or float, default="near"
        The rule of :func:`embedspace.analysis.duplicate_groups`.
    outlier_method : str, default="contrast"
        See :func:`embedspace.analysis.outlier_scores`.
    progress : bool or None, default=None
    **map_params
        ``seed``, ``min_cluster_size``, ``k``, ``assign_outliers``, ``levels`` … of
        :func:`embedspace.mapping.map_collection`.

    Returns
    -------
    EmbeddingSet, n rows
        ``space`` with ``x``, ``y``, ``cluster``, ``probability``, ``cluster_l0`` …
        ``cluster_lN``, ``outlier_score``, ``glosh`` and ``duplicate_group``.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> mapped = es.map(es.embed("corpus:20newsgroups"), seed=0)  # doctest: +SKIP
    >>> mapped.table.nlargest(5, "outlier_score")[["text", "cluster"]]  # doctest: +SKIP
    """
    mapped = map_collection(space, progress=progress, **map_params)
    return add_map_columns(mapped, duplicates=duplicates, method=outlier_method, progress=progress)


def _rank_share(scores: np.ndarray) -> np.ndarray:
    """The share of the other scores below each one (ties count half), float32 in [0, 1]."""
    values = np.asarray(scores, dtype=np.float64)
    if len(values) < 2:
        return np.zeros(len(values), dtype=np.float32)
    order = np.sort(values)
    below = np.searchsorted(order, values, side="left")
    ties = np.searchsorted(order, values, side="right") - below - 1
    return ((below + 0.5 * ties) / (len(values) - 1)).astype(np.float32)
