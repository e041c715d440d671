"""How words and phrases relate in the semantic space: neighbours, similarity, analogies,
odd one out and concept axes.

Every function takes terms (single words or multi-word phrases) and an optional
:class:`~embedspace.relations.wordvectors.TermSpace`; without one it uses the default model with the
shipped 30,000-word English vocabulary (built once per process; the vocabulary matrix is
cached on disk). Results are pandas tables, so they print, filter and save like any other.

Semantics follow gensim's ``KeyedVectors`` so that the numbers can be checked against it:

- scores are cosines of unit vectors;
- ``analogy(a, b, c)`` answers a : b :: c : ? with 3CosAdd (rank by the cosine with the
  normalised ``b - a + c`` of unit vectors: gensim's ``most_similar(positive=[b, c],
  negative=[a])``) or 3CosMul (Levy & Goldberg 2014, cosines shifted to [0, 1], epsilon 1e-6:
  gensim's ``most_similar_cosmul``); the three inputs are never answers (in any letter case);
- ``odd_one_out`` picks the term least similar to the normalised mean of all (gensim's
  ``doesnt_match``);
- ``axis`` scores terms on the direction from the negative pole(s) to the positive pole(s)
  by cosine (SemAxis, An et al. 2018) and by position (-1 at the negative pole, +1 at the
  positive one), with a permutation-test p-value (see :func:`axis`).

Examples
--------
>>> import embedspace as es  # doctest: +SKIP
>>> es.relations.analogy("man", "king", "woman").head(3)  # doctest: +SKIP
   rank      term     score
0     1     queen  0.71...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from embedspace.errors import InputError
from embedspace.relations.wordvectors import TermSpace

__all__ = [
    "AxisResult",
    "analogy",
    "analogy_scores",
    "axis",
    "default_space",
    "neighbors",
    "odd_one_out",
    "similarity",
    "similarity_matrix",
]

METHODS = ("add", "mul")
_COSMUL_EPSILON = 1e-6  # gensim's most_similar_cosmul
_default_spaces: dict = {}


def default_space(*, templates: bool = False, progress=None):
    """The default model over the shipped English vocabulary, built once per process.

    Parameters
    ----------
    templates : bool, default=False
        Average the prompt templates of :data:`~embedspace.relations.wordvectors.WORD_TEMPLATES`.
    progress : bool or None
        Progress bar while the vocabulary is embedded the first time (about 30,000 words).

    Returns
    -------
    TermSpace
    """

    key = bool(templates)
    if key not in _default_spaces:
        encoder = next((s._embedder.encoder for s in _default_spaces.values()), None)  # load the model once
        _default_spaces[key] = TermSpace.from_encoder("default", encoder=encoder, templates=templates, progress=progress)
    return _default_spaces[key]


def _clean_terms(terms, *, what: str = "term", at_least: int = 1) -> list[str]:
    if isinstance(terms, str):
        terms = [terms]
    cleaned = []
    for term in terms:
        if not isinstance(term, str) or not term.strip():
            raise InputError(f"every {what} must be a non-empty word or phrase, got {term!r}")
        cleaned.append(" ".join(term.split()))
    if len(cleaned) < at_least:
        raise InputError(f"need at least {at_least} {what}s, got {len(cleaned)}: {', '.join(cleaned) or '(none)'}")
    return cleaned


def _candidates(space, what: str):
    if len(space) == 0:
        raise InputError(f"{what} needs a vocabulary of candidate terms, and this term space has none (give one with vocabulary=)")
    return space.vectors


def _top(scores: np.ndarray, excluded, k: int) -> np.ndarray:
    """Indices of the k best scores, ties broken by vocabulary order, excluded rows left out."""
    scores = np.array(scores, dtype=np.float64)
    scores[list(excluded)] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    cut = scores[part].min()
    pool = np.flatnonzero(scores >= cut)  # every row tied with the k-th, so order is stable
    return pool[np.lexsort((pool, -scores[pool]))][:k]


def _frame(rows, columns):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


# --- neighbours and similarity ---------------------------------------------------------------
def neighbors(terms, k: int = 10, *, space=None):
    """Nearest vocabulary terms of each query term.

    Parameters
    ----------
    terms : str or sequence of str
        Query words or phrases.
    k : int, default=10
        Neighbours per query; the query itself (in any case) is left out.
    space : TermSpace, optional
        Default: :func:`default_space`.

    Returns
    -------
    pandas.DataFrame
        Columns ``query, rank, term, score`` (cosine), ``k`` rows per query.
    """
    terms = _clean_terms(terms, what="query term")
    _check_k(k)
    space = default_space() if space is None else space
    candidates = _candidates(space, "neighbors")
    queries, _ = space.embed(terms)
    rows = []
    for term, query in zip(terms, queries):
        scores = candidates @ query
        for rank, row in enumerate(_top(scores, space.same_term_rows(term), k), start=1):
            rows.append((term, rank, space.terms[row], float(scores[row])))
    return _frame(rows, ["query", "rank", "term", "score"])


def similarity(a: str, b: str, *, space=None) -> float:
    """Cosine similarity of two words or phrases.

    Returns
    -------
    float
        In [-1, 1].
    """
    a, b = _clean_terms([a, b])
    vectors, _ = (_query_space() if space is None else space).embed([a, b])
    return float(vectors[0] @ vectors[1])


def similarity_matrix(terms: Sequence[str], *, space=None):
    """Cosine similarity of every pair of terms.

    Returns
    -------
    pandas.DataFrame of shape (n, n)
        Rows and columns are the terms, in the order given.
    """
    import pandas as pd

    terms = _clean_terms(terms, at_least=2)
    vectors, _ = (_query_space() if space is None else space).embed(terms)
    matrix = np.clip(vectors.astype(np.float64) @ vectors.T.astype(np.float64), -1.0, 1.0)
    return pd.DataFrame(matrix, index=terms, columns=terms)


def _query_space():
    """A space for queries only: the default space if already built, else the encoder alone."""

    if False in _default_spaces:
        return _default_spaces[False]
    if "query" not in _default_spaces:
        encoder = next((s._embedder.encoder for s in _default_spaces.values()), None)
        _default_spaces["query"] = TermSpace.from_encoder(None, encoder=encoder)
    return _default_spaces["query"]


def _check_k(k) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a whole number of at least 1, got {k!r}")


# --- analogies ----------------------------------------------------------------------------
def analogy_scores(candidates: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: str = "add") -> np.ndarray:
    """Scores of every candidate as the answer d of a : b :: c : d.

    Parameters
    ----------
    candidates : ndarray of shape (n, d)
        Unit vectors of the candidate terms.
    a, b, c : ndarray of shape (q, d)
        Unit vectors of q questions' terms.
    method : {"add", "mul"}
        3CosAdd: cosine with the normalised ``b - a + c``. 3CosMul:
        ``((1 + cos(x, b)) / 2) * ((1 + cos(x, c)) / 2) / ((1 + cos(x, a)) / 2 + 1e-6)``.

    Returns
    -------
    ndarray of shape (q, n), float32
    """
    if method not in METHODS:
        raise InputError(f"unknown analogy method '{method}' (choose add or mul)")
    if method == "add":
        target = b - a + c
        norms = np.linalg.norm(target, axis=1, keepdims=True)
        target = target / np.where(norms > 0, norms, 1.0)
        return target.astype(np.float32) @ candidates.T
    shifted = [(1.0 + x.astype(np.float32) @ candidates.T) / 2.0 for x in (a, b, c)]
    return shifted[1] * shifted[2] / (shifted[0] + _COSMUL_EPSILON)


def analogy(a: str, b: str, c: str, k: int = 10, *, method: str = "add", space=None):
    """Answer a : b :: c : ? ("man is to king as woman is to ?").

    Parameters
    ----------
    a, b, c : str
        Words or phrases.
    k : int, default=10
        Candidates returned.
    method : {"add", "mul"}, default="add"
        3CosAdd or 3CosMul (see :func:`analogy_scores`).
    space : TermSpace, optional
        Default: :func:`default_space`.

    Returns
    -------
    pandas.DataFrame
        Columns ``rank, term, score``; a, b and c themselves are excluded.
    """
    terms = _clean_terms([a, b, c])
    _check_k(k)
    space = default_space() if space is None else space
    candidates = _candidates(space, "analogy")
    vectors, _ = space.embed(terms)
    scores = analogy_scores(candidates, vectors[:1], vectors[1:2], vectors[2:3], method)[0]
    excluded = [row for term in terms for row in space.same_term_rows(term)]
    rows = [(rank, space.terms[row], float(scores[row])) for rank, row in enumerate(_top(scores, excluded, k), start=1)]
    return _frame(rows, ["rank", "term", "score"])


# --- odd one out ------------------------------------------------------------------------------
def odd_one_out(terms: Sequence[str], *, space=None):
    """Which term does not belong with the others?

    Parameters
    ----------
    terms : sequence of str
        At least three words or phrases.

    Returns
    -------
    pandas.DataFrame
        Columns ``term, centroid_similarity`` (cosine with the normalised mean of all the
        terms' unit vectors), ``mean_similarity`` (mean cosine with the other terms) and
        ``odd`` (true for exactly one term: the one least similar to the centroid), most
        central first, so the odd one is the last row.
    """
    terms = _clean_terms(terms, at_least=3)
    vectors, _ = (_query_space() if space is None else space).embed(terms)
    vectors = vectors.astype(np.float64)
    centre = vectors.mean(axis=0)
    centre /= max(np.linalg.norm(centre), 1e-12)
    central = vectors @ centre
    pairwise = vectors @ vectors.T
    others = (pairwise.sum(axis=1) - np.diag(pairwise)) / (len(terms) - 1)
    order = np.lexsort((np.arange(len(terms)), -central))
    rows = [(terms[i], float(central[i]), float(others[i]), bool(i == order[-1])) for i in order]
    return _frame(rows, ["term", "centroid_similarity", "mean_similarity", "odd"])


# --- concept axes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AxisResult:
    """Terms projected on the axis from ``neg`` to ``pos``.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``term``, ``score`` (cosine of the term with the axis direction ``mean(pos) -
        mean(neg)``) and ``position`` (-1 at the mean of the negative poles, +1 at the mean
        of the positive ones, 0 halfway), in the order given.
    pos, neg : list of str
        The poles.
    statistic : float
        Root mean square of the terms' scores: how strongly the terms load on the axis.
    p_value : float
        Share of random axes (plus one) whose statistic is at least as large; NaN when the
        vocabulary is too small to draw them.
    permutations : int
        Random axes drawn.
    """

    table: object
    pos: list
    neg: list
    statistic: float
    p_value: float
    permutations: int
    null: np.ndarray = field(repr=False, default=None)

    @property
    def name(self) -> str:
        """``"neg → pos"`` label of the axis."""
        return f"{', '.join(self.neg)} → {', '.join(self.pos)}"

    def to_dict(self) -> dict:
        """JSON-friendly form: ``pos, neg, statistic, p_value, permutations, terms``."""
        return {
            "pos": list(self.pos),
            "neg": list(self.neg),
            "statistic": self.statistic,
            "p_value": None if math.isnan(self.p_value) else self.p_value,
            "permutations": self.permutations,
            "terms": self.table.to_dict(orient="records"),
        }


def _axis_direction(pos_vectors: np.ndarray, neg_vectors: np.ndarray):
    mean_pos, mean_neg = pos_vectors.mean(axis=-2), neg_vectors.mean(axis=-2)
    return mean_pos - mean_neg, (mean_pos + mean_neg) / 2.0


def axis(pos, neg, terms, *, space=None, permutations: int = 1000, seed: int = 0) -> AxisResult:
    """Project terms on the direction between two poles (or two sets of poles).

    Parameters
    ----------
    pos, neg : str or sequence of str
        Positive and negative pole(s), e.g. ``"good"`` and ``"bad"``, or
        ``["good", "great"]`` and ``["bad", "awful"]``.
    terms : sequence of str
        Words or phrases to place on the axis.
    space : TermSpace, optional
        Default: :func:`default_space` (its vocabulary supplies the random poles).
    permutations : int, default=1000
        Random axes for the p-value; 0 skips the test.
    seed : int, default=0
        Seed of the random draws.

    Returns
    -------
    AxisResult

    Notes
    -----
    The permutation test asks whether the terms line up along this axis more than along an
    axis built the same way from arbitrary words. Each permutation puts randomly drawn
    vocabulary words (other than the poles and the terms, as many as there are poles) in the
    places of the poles, rebuilds the axis and recomputes the statistic (the root mean square
    of the terms' cosines with the axis). The p-value is ``(1 + #{random >= observed}) /
    (1 + permutations)``.
    """
    pos = _clean_terms(pos, what="positive pole")
    neg = _clean_terms(neg, what="negative pole")
    terms = _clean_terms(terms, what="term")
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 0:
        raise InputError(f"permutations must be a whole number >= 0, got {permutations!r}")
    space = default_space() if space is None else space
    vectors, _ = space.embed(pos + neg + terms)
    vectors = vectors.astype(np.float64)
    pos_vectors, neg_vectors, term_vectors = vectors[: len(pos)], vectors[len(pos): len(pos) + len(neg)], vectors[len(pos) + len(neg):]
    direction, middle = _axis_direction(pos_vectors, neg_vectors)
    length = np.linalg.norm(direction)
    if length < 1e-9:
        raise InputError(f"the poles {pos} and {neg} have the same vector, so they define no direction; choose different poles")
    scores = term_vectors @ direction / (np.linalg.norm(term_vectors, axis=1) * length)
    positions = 2.0 * (term_vectors - middle) @ direction / length**2
    statistic = float(np.sqrt(np.mean(scores**2)))
    null, p_value = _axis_null(space, pos + neg + terms, term_vectors, len(pos), len(neg), permutations, seed, statistic)
    table = _frame(list(zip(terms, scores.tolist(), positions.tolist())), ["term", "score", "position"])
    return AxisResult(table=table, pos=pos, neg=neg, statistic=statistic, p_value=p_value, permutations=len(null), null=null)


def _axis_null(space, used, term_vectors, n_pos, n_neg, permutations, seed, statistic):
    excluded = {row for term in used for row in space.same_term_rows(term)}
    pool = np.setdiff1d(np.arange(len(space)), np.fromiter(excluded, dtype=np.int64, count=len(excluded)))
    if permutations == 0 or len(pool) < n_pos + n_neg:
        return np.zeros(0), float("nan")
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.choice(pool, size=n_pos + n_neg, replace=False) for _ in range(permutations)])
    poles = np.asarray(space.vectors[np.sort(np.unique(draws))], dtype=np.float64)
    lookup = np.searchsorted(np.sort(np.unique(draws)), draws)
    random_pos, random_neg = poles[lookup[:, :n_pos]], poles[lookup[:, n_pos:]]
    directions, _ = _axis_direction(random_pos, random_neg)
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    term_units = term_vectors / np.linalg.norm(term_vectors, axis=1, keepdims=True)
    null = np.sqrt(np.mean((directions @ term_units.T) ** 2, axis=1))
    return null, float((1 + np.sum(null >= statistic - 1e-12)) / (1 + permutations))
