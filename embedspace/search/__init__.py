"""Vectors to answers: FAISS indexes chosen by size, the ``--where`` grammar, BM25 and hybrid fusion.

:func:`build_index` makes an :class:`Index` over one or more EmbeddingSets; ``Index.search``
answers queries in words (dense, ``bm25`` or ``hybrid``), filtered by metadata;
:func:`load_index` opens a saved one.
"""

from __future__ import annotations

from embedspace.search.ann import choose_kind, default_budget, parse_memory
from embedspace.search.filters import Filter, filter_mask, parse_filter
from embedspace.search.index import FORMAT, KINDS, MODES, Index, build_index
from embedspace.search.index_files import add_to_index, load_index
from embedspace.search.knn import NeighbourSearch
from embedspace.search.lexical import BM25Index, reciprocal_rank_fusion
from embedspace.search.set_sources import SetSource

__all__ = [
    "BM25Index",
    "FORMAT",
    "Filter",
    "Index",
    "KINDS",
    "MODES",
    "NeighbourSearch",
    "SetSource",
    "add_to_index",
    "build_index",
    "choose_kind",
    "default_budget",
    "filter_mask",
    "load_index",
    "parse_filter",
    "parse_memory",
    "reciprocal_rank_fusion",
]
