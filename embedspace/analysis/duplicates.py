"""Exact and near duplicates: which documents are in a collection more than once.

:func:`find_duplicates` returns one row per group of two or more documents:

1. **exact** groups: texts equal after white space is collapsed and case folded
   (``"Hello  World"`` and ``"hello world"``), found by hashing, whatever the vectors say;
2. **near** groups: pairs of documents that pass the ``threshold`` rule (below), found over
   one representative per exact group with FAISS (:class:`embedspace.search.NeighbourSearch`,
   in blocks of rows, exact up to 100,000 distinct texts, an IVF index above, so a million
   texts fit in bounded memory: scripts/bench_outliers.py --part scale), and joined
   by union-find: A~B and B~C put A, B and C in one group even when A and C are further
   apart — ``min_similarity`` says how far apart the group's members can be.

Each group names its most central member (the highest cosine to the group's mean vector),
the one :func:`drop_duplicates` keeps.

Rules (``threshold=`` accepts a preset name or a number in (0, 1]):

``"near"`` (default): near copies, the embedding proposes and the text decides
    A pair is a candidate when one is among the other's :data:`NEAR_K` nearest neighbours
    with cosine >= :data:`NEAR_COSINE`; it is a near copy when the shorter text holds at
    least :data:`NEAR_CONTAINMENT` of its character 5-grams inside the longer
    (:mod:`embedspace.analysis.shingles`: words only, case folded, so quote markers and
    white space do not count; "... writes:" lines ignored) and is at least
    :data:`NEAR_RATIO` of its length. Texts under :data:`NEAR_MIN_GRAMS` 5-grams must match
    as a whole (shared over all 5-grams of both), not merely be inside the other. Cosine
    alone cannot tell a copy from a post on the same subject: an embedding of the first
    256 tokens misses a copy whose start differs (a quoted reply, moved sentences, a first
    half), and short texts on one subject ("A man is playing a guitar." / "... the
    cello.") score above 0.85. Measured by ``scripts/bench_outliers.py`` (duplicates
    table: 2,000 20 Newsgroups posts and seven kinds of copies of each; rule chosen on
    seed 0 among 5/10/20 neighbours, cosine 0.5/0.6/0.7, containment 0.5-0.8, checked on
    seed 1): pair precision 0.990 and recall 0.974 (seed 0), where no cosine threshold
    reaches 0.95 in both (0.85: 0.999 and 0.754) and MinHash gets 0.986 and 0.544. On
    1,000 STS-B sentences it groups 16 (mostly "A man" / "The man" variants) where cosine
    0.85 groups 150.
a number T in (0, 1]: cosine only
    Cosine similarity >= T over every pair (FAISS range search). ``1.0`` finds exact
    duplicates and identical vectors only.
``"paraphrase"`` (0.75): cosine only
    Also the same content said differently; more false pairs (precision 0.935 there).
"""

from __future__ import annotations

import numpy as np

from embedspace.analysis._rows import file_rows
from embedspace.analysis.shingles import overlap, shingle_sets
from embedspace.errors import InputError
from embedspace.search import NeighbourSearch

__all__ = ["NEAR_CONTAINMENT", "NEAR_COSINE", "NEAR_K", "NEAR_MIN_GRAMS", "NEAR_RATIO", "PRESETS", "THRESHOLD", "describe_threshold", "drop_duplicates", "duplicate_groups", "find_duplicates", "normalize_text",
           "resolve_threshold"]

PRESETS = {"near": "near", "paraphrase": 0.75}
"""Named rules: ``"near"`` (cosine candidates checked on the text) or a cosine threshold."""
THRESHOLD = "near"
NEAR_K = 10
"""Candidates per document of the ``near`` rule: its nearest neighbours (scripts/bench_outliers.py:
5, 10, 20 and all pairs compared; 10 keeps 0.98 recall with the best precision)."""
NEAR_COSINE = 0.5
"""Smallest cosine of a ``near`` candidate (0.6 loses quoted replies: recall 0.962)."""
NEAR_CONTAINMENT = 0.8
"""Share of the shorter text's character 5-grams found in the longer one (0.7: more false pairs)."""
NEAR_RATIO = 0.25
"""The shorter text's length over the longer's, at least (a sentence is not a copy of a long post)."""
NEAR_MIN_GRAMS = 64
"""Below this many 5-grams (about 12 words) the shorter text must match the longer as a whole (shared
5-grams over all 5-grams of both >= NEAR_CONTAINMENT), not just be inside it: "A man is dancing." is inside
"A woman is dancing and singing." yet no copy of it (STS-B sentences: 240 of 1,000 dropped by containment)."""
_PAIR_BLOCK = 4096
"""Members per block when the smallest similarity inside a large group is computed."""


def normalize_text(text: str) -> str:
    """The key two texts must share to be exact duplicates: white space collapsed, case folded."""
    return " ".join(str(text).split()).casefold()


def resolve_threshold(threshold) -> float | str:
    """A rule: ``"near"``, or a cosine threshold in (0, 1] (a number given, a numeric string, ``"paraphrase"``).

    Raises
    ------
    InputError
        An unknown preset or a number outside (0, 1].
    """
    if isinstance(threshold, str):
        if threshold in PRESETS:
            return PRESETS[threshold]
        try:
            threshold = float(threshold)
        except ValueError:
            raise InputError(f"unknown threshold '{threshold}' (a number in (0, 1] or one of: "
                             f"{', '.join(PRESETS)})") from None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise InputError(f"threshold must be a number in (0, 1] or a preset name, got {threshold!r}")
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold}")
    return value


def describe_threshold(threshold) -> str:
    """The rule in words, for messages: ``"near copies (…)"`` or ``"cosine >= 0.9"``."""
    value = resolve_threshold(threshold)
    if value == "near":
        return (f"near copies: cosine >= {NEAR_COSINE:g} among {NEAR_K} nearest and "
                f">= {NEAR_CONTAINMENT:.0%} of the shorter text's 5-grams in the longer")
    return f"cosine >= {value:g}"


def _exact_keys(texts) -> tuple[np.ndarray, np.ndarray]:
    """``representative`` (first row of each distinct normalised text) and ``key`` (n,): rows -> its index."""
    first: dict[str, int] = {}
    key = np.empty(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        key[row] = first.setdefault(normalize_text(text), len(first))
    representative = np.full(len(first), -1, dtype=np.int64)
    representative[key[::-1]] = np.arange(len(texts))[::-1]  # the first row of each key wins
    return representative, key


def _roots(parent: np.ndarray) -> np.ndarray:
    """Point every element straight at its root (pointer jumping), in place; return ``parent``."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent[:] = grand


def _union(parent: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """Join the sets of ``left[p]`` and ``right[p]`` for every p (vectorised union-find; roots are smallest members)."""
    while len(left):
        _roots(parent)
        a, b = parent[left], parent[right]
        differ = a != b
        if not differ.any():
            return
        a, b = a[differ], b[differ]
        low, high = np.minimum(a, b), np.maximum(a, b)
        parent[high] = low  # where one root gets several writes, one wins; the loop retries the rest
        left, right = left[differ], right[differ]


def duplicate_groups(space, threshold=THRESHOLD, *, progress: bool | None = None) -> np.ndarray:
    """The duplicate group of every document: a group number, or -1 for a document that occurs once.

    Parameters
    ----------
    space : EmbeddingSet
        Vectors and a ``text`` column.
    threshold : str or float, default="near"
        ``"near"`` (near copies: cosine candidates checked on the text, see the module's
        docstring), ``"paraphrase"`` (cosine >= 0.75) or a cosine threshold in (0, 1];
        ``1.0`` finds exact duplicates and identical vectors only.
    progress : bool or None, default=None

    Returns
    -------
    ndarray of shape (n,), int64
        Groups are numbered 0, 1, … from the largest (ties: by first row).
    """
    value = resolve_threshold(threshold)
    if not hasattr(space, "vectors") or not hasattr(space, "table"):
        raise InputError(f"find_duplicates needs an EmbeddingSet (see embedspace.embed), got {type(space).__name__}")
    n = len(space)
    if n < 2:
        raise InputError(f"finding duplicates needs at least 2 documents, got {n}")
    representative, key = _exact_keys(space.table["text"].tolist())
    parent = np.arange(len(representative), dtype=np.int64)
    if len(representative) >= 2:
        base = file_rows(space.vectors)  # a memory-mapped set is read without mapping it (RSS at scale)
        reps = base if len(representative) == n else _RowView(base, representative)
        index = NeighbourSearch(reps, progress=progress)
        if value == "near":
            left, right = _near_copies(index, reps, space.table["text"], representative, progress)
            _union(parent, left, right)
        else:
            for left, right, _ in index.pairs_above(value, progress=progress, desc="near duplicates"):
                _union(parent, left, right)
    component = _roots(parent)[key]
    sizes = np.bincount(component, minlength=len(representative))
    grouped = sizes[component] >= 2
    labels = np.full(n, -1, dtype=np.int64)
    if grouped.any():
        roots, first_row = np.unique(component[grouped], return_index=True)
        first_row = np.flatnonzero(grouped)[first_row]
        order = np.lexsort((first_row, -sizes[roots]))
        number = np.full(len(representative), -1, dtype=np.int64)
        number[roots[order]] = np.arange(len(roots))
        labels[grouped] = number[component[grouped]]
    return labels


def _near_copies(index, reps, texts, representative: np.ndarray, progress) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of representatives that are near copies: cosine candidates (k nearest), then the text decides."""
    k = min(NEAR_K, len(representative) - 1)
    similarities, neighbours = index.search(reps, k, self_offset=0, progress=progress, desc="near duplicates")
    left = np.repeat(np.arange(len(representative), dtype=np.int64), k)
    right = neighbours.ravel()
    keep = (similarities.ravel() >= NEAR_COSINE) & (right >= 0)
    del similarities, neighbours
    left, right = np.minimum(left[keep], right[keep]), np.maximum(left[keep], right[keep])
    if not len(left):
        return left, right
    pairs = _distinct(left * len(representative) + right)
    left, right = pairs // len(representative), pairs % len(representative)
    used = _distinct(np.concatenate([left, right]))
    sketches = shingle_sets([texts.iat[int(r)] for r in representative[used]])
    a, b = np.searchsorted(used, left), np.searchsorted(used, right)
    containment, ratio = overlap(sketches, a, b)
    small = np.minimum(sketches[0][a], sketches[0][b]).astype(np.float64)
    shared = containment * small
    resemblance = shared / np.maximum(small / np.maximum(ratio, 1e-12) + small - shared, 1.0)
    lexical = np.where(small >= NEAR_MIN_GRAMS, containment, resemblance)
    keep = (lexical >= NEAR_CONTAINMENT) & (ratio >= NEAR_RATIO)
    return left[keep], right[keep]


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + neighbour test: numpy 2's hash-based ``np.unique`` is far slower here)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


class _RowView:
    """Rows ``rows`` of ``base`` as an array-like of shape (len(rows), d), read on demand."""

    def __init__(self, base, rows: np.ndarray):
        self.base, self.rows = base, rows
        self.shape = (len(rows), base.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item):
        return np.asarray(self.base[self.rows[item]])


def find_duplicates(space, threshold=THRESHOLD, *, progress: bool | None = None):
    """Groups of exact and near duplicate documents.

    Parameters
    ----------
    space : EmbeddingSet
    threshold : str or float, default="near"
        See :func:`duplicate_groups`.
    progress : bool or None, default=None

    Returns
    -------
    pandas.DataFrame
        One row per group, largest first, columns ``group`` (int), ``size`` (int),
        ``rows`` (list of int, the central member first, then by row), ``central`` (int),
        ``min_similarity`` (float: the smallest cosine between two members),
        ``exact`` (bool: all members have the same text after normalisation).

    Raises
    ------
    InputError
        A threshold outside (0, 1], an unknown preset, fewer than 2 documents.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> groups = es.find_duplicates(es.embed(["a cat", "A  cat", "a dog"]))  # doctest: +SKIP
    >>> groups[["group", "rows", "min_similarity"]]  # doctest: +SKIP
       group    rows  min_similarity
    0      0  [0, 1]             1.0
    """
    import pandas as pd

    labels = duplicate_groups(space, threshold, progress=progress)
    texts = space.table["text"]
    records = []
    vectors = file_rows(space.vectors)
    members = np.flatnonzero(labels >= 0)
    by_group = np.split(members[np.argsort(labels[members], kind="stable")],
                        np.cumsum(np.bincount(labels[members]))[:-1]) if len(members) else []
    for group, rows in enumerate(by_group):
        central, smallest = _centre_and_spread(vectors, rows)
        ordered = [int(central)] + [int(r) for r in rows if r != central]
        same = len({normalize_text(texts.iat[r]) for r in rows}) == 1
        records.append({"group": group, "size": len(rows), "rows": ordered, "central": int(central),
                        "min_similarity": smallest, "exact": same})
    return pd.DataFrame.from_records(records, columns=["group", "size", "rows", "central", "min_similarity", "exact"])


def _centre_and_spread(vectors, rows: np.ndarray) -> tuple[int, float]:
    """The member closest to the group's mean direction, and the smallest cosine between two members."""
    unit = np.asarray(vectors[rows], dtype=np.float32)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    centre = unit.mean(axis=0)
    central = int(rows[int(np.argmax(unit @ centre))])
    smallest = 1.0
    for start in range(0, len(unit), _PAIR_BLOCK):
        block = unit[start:start + _PAIR_BLOCK] @ unit.T
        smallest = min(smallest, float(block.min()))
    return central, round(min(max(smallest, -1.0), 1.0), 6)


def drop_duplicates(space, threshold=THRESHOLD, *, groups=None, progress: bool | None = None):
    """The collection with one document per duplicate group (its central member), in row order.

    Parameters
    ----------
    space : EmbeddingSet
    threshold : str or float, default="near"
        See :func:`duplicate_groups`.
    groups : pandas.DataFrame, optional
        What :func:`find_duplicates` returned for ``space`` (then ``threshold`` is not used).
    progress : bool or None, default=None

    Returns
    -------
    EmbeddingSet
        The rows kept, with a ``source_row`` column (their row in ``space``).
    """
    if groups is None:
        groups = find_duplicates(space, threshold, progress=progress)
    drop = np.zeros(len(space), dtype=bool)
    for rows in groups["rows"]:
        drop[rows[1:]] = True
    kept = np.flatnonzero(~drop)
    return space.select(kept).assign(source_row=kept)
