"""Words and phrases in the semantic space: neighbours, similarity, analogy, odd one out, concept axes.

Every function takes ``space=`` (a :class:`TermSpace`: the sentence encoder by default, or
word2vec/GloVe vectors read with :func:`read_word_vectors`) and returns a DataFrame or a
small result object; :mod:`~embedspace.relations.plots` draws heatmaps and axes.

Examples
--------
>>> import embedspace as es  # doctest: +SKIP
>>> es.relations.analogy("man", "king", "woman")  # doctest: +SKIP
"""

from __future__ import annotations

from embedspace.relations.operations import (
    METHODS,
    AxisResult,
    analogy,
    analogy_scores,
    axis,
    default_space,
    neighbors,
    odd_one_out,
    similarity,
    similarity_matrix,
)
from embedspace.relations.plots import plot_axis, plot_similarity_heatmap
from embedspace.relations.wordvectors import TermSpace, load_vocabulary, read_word_vectors

__all__ = [
    "METHODS",
    "AxisResult",
    "TermSpace",
    "analogy",
    "analogy_scores",
    "axis",
    "default_space",
    "load_vocabulary",
    "neighbors",
    "odd_one_out",
    "plot_axis",
    "plot_similarity_heatmap",
    "read_word_vectors",
    "similarity",
    "similarity_matrix",
]
