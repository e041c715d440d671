"""Checks of the arguments every search takes: the queries and ``k``."""

from __future__ import annotations

import numpy as np

from embedspace.errors import InputError
from embedspace.sources import replace_surrogates

__all__ = ["check_k", "check_queries"]


def check_k(k) -> int:
    """``k`` as an int, refusing anything but a whole number of at least 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


def check_queries(queries) -> list[str]:
    """Queries as a list of non-empty strings (one string is one query); lone surrogates replaced."""
    if isinstance(queries, str):
        queries = [queries]
    queries = list(queries) if queries is not None else []
    if not queries:
        raise InputError("no query given: pass at least one query text")
    for i, query in enumerate(queries, start=1):
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"query {i} is empty: every query needs some text")
    return [replace_surrogates(query)[0] for query in queries]  # lone surrogates: like undecodable bytes
