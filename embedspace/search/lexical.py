"""Lexical (BM25) search over an index's texts, and its fusion with dense search.

Dense embeddings miss exact terms (names, numbers, rare words) that a keyword ranking
gets right, and the other way round, so ``search --mode hybrid`` merges both rankings.

BM25 is computed by `bm25s <https://github.com/xhluca/bm25s>`_ (Lucene's BM25 variant,
``k1=1.2``, ``b=0.75``, the Lucene/Elasticsearch defaults that BEIR's BM25 baseline
uses). Texts are tokenised here: lower-cased words of two or more characters (the
scikit-learn / bm25s pattern), English stop words removed (bm25s' list) and Snowball
English stemming (PyStemmer). The BM25 matrix is saved beside the FAISS vectors as plain
``.npy`` + JSON files (``allow_pickle=False``) in the index directory's ``bm25/`` folder.

Fusion
------
Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): each document scores
``sum over rankings of 1 / (RRF_K + rank)`` over the top :data:`FUSION_DEPTH` of the dense
and the BM25 ranking, with the customary constant ``RRF_K = 60``. RRF needs no score
calibration between cosine similarities and BM25 scores (whose scale depends on the query
length and the corpus), has no weight to fit, and is the method compared against on BEIR.
``scripts/bench_search.py --fusion`` compares it with min-max score blending on SciFact's
*train* queries; the figures are in ``scripts/BENCHMARKS.md``, section bench_search.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from embedspace._progress import progress_bar
from embedspace.errors import FormatError, InputError, require

__all__ = ["BM25Index", "tokenize", "reciprocal_rank_fusion", "RRF_K", "FUSION_DEPTH"]

RRF_K = 60
"""The RRF constant k of Cormack et al. (2009): a document at rank r adds 1 / (60 + r)."""
FUSION_DEPTH = 100
"""How many hits of each ranking take part in the fusion."""
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_SETTINGS_VERSION = 1


def _stemmer(name: str | None):
    if not name:
        return None
    stemmer_module = require("Stemmer", feature="BM25 stemming", package="PyStemmer")
    return stemmer_module.Stemmer(name)


def _stopwords(name: str | None) -> frozenset:
    if not name:
        return frozenset()
    if name != "en":
        raise InputError(f"unknown stop-word list '{name}' (only 'en' is available)")
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(texts, *, stemmer: str | None = "english", stopwords: str | None = "en") -> list[list[str]]:
    """Split texts into BM25 terms.

    Parameters
    ----------
    texts : iterable of str
    stemmer : str or None, default="english"
        Snowball stemmer name (PyStemmer), or None for no stemming.
    stopwords : {"en", None}, default="en"

    Returns
    -------
    list of list of str
        One term list per text (possibly empty).

    Examples
    --------
    >>> tokenize(["The cells were dividing rapidly"])
    [['cell', 'divid', 'rapid']]
    """
    stem = _stemmer(stemmer)
    stop = _stopwords(stopwords)
    out = []
    for text in texts:
        words = [w for w in _TOKEN.findall(str(text).lower()) if w not in stop]
        out.append(stem.stemWords(words) if stem is not None and words else words)
    return out


class BM25Index:
    """BM25 over a fixed list of texts (rows 0..n-1), built with bm25s.

    Parameters
    ----------
    k1 : float, default=1.2
    b : float, default=0.75
    stemmer : str or None, default="english"
    stopwords : {"en", None}, default="en"

    Attributes
    ----------
    n_ : int
        Number of documents indexed.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, stemmer: str | None = "english", stopwords: str | None = "en"):
        self.k1 = k1
        self.b = b
        self.stemmer = stemmer
        self.stopwords = stopwords
        self._bm25 = None
        self.n_ = 0

    def settings(self) -> dict:
        """JSON-friendly description, stored in the index manifest."""
        from importlib import metadata

        try:
            version = metadata.version("bm25s")
        except metadata.PackageNotFoundError:  # pragma: no cover
            version = None
        return {
            "library": "bm25s", "library_version": version, "method": "lucene", "k1": self.k1, "b": self.b,
            "stemmer": self.stemmer, "stopwords": self.stopwords, "n": self.n_, "settings_version": _SETTINGS_VERSION,
        }

    def fit(self, texts, *, progress=None) -> "BM25Index":
        """Index ``texts`` (a sequence of n strings); returns self."""
        bm25s = require("bm25s", feature="BM25 search")

        texts = list(texts)
        bar = progress_bar(len(texts), "bm25", progress=progress, unit="doc")
        tokens = []
        for start in range(0, len(texts), 20_000):
            tokens += tokenize(texts[start:start + 20_000], stemmer=self.stemmer, stopwords=self.stopwords)
            bar.update(min(20_000, len(texts) - start))
        bar.close()
        model = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        model.index(tokens, show_progress=False)
        self._bm25 = model
        self.n_ = len(texts)
        return self

    def save(self, directory: str | os.PathLike) -> list[str]:
        """Write the BM25 matrix and vocabulary into ``directory``; return the file names written."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(directory), show_progress=False, allow_pickle=False)
        (directory / "settings.json").write_text(json.dumps(self.settings(), indent=2) + "\n", encoding="utf-8")
        return sorted(p.name for p in directory.iterdir() if p.is_file())

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "BM25Index":
        """Read a BM25 folder written by :meth:`save`.

        Raises
        ------
        FormatError
            If the folder is incomplete or unreadable.
        """
        bm25s = require("bm25s", feature="BM25 search")
        directory = Path(directory)
        try:
            settings = json.loads((directory / "settings.json").read_text(encoding="utf-8"))
            model = bm25s.BM25.load(str(directory), load_corpus=False, mmap=False, allow_pickle=False, show_progress=False)
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"{directory}: unreadable BM25 index ({exc})") from None
        index = cls(k1=settings["k1"], b=settings["b"], stemmer=settings.get("stemmer"), stopwords=settings.get("stopwords"))
        index._bm25 = model
        index.n_ = int(model.scores["num_docs"])
        return index

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for one query: ndarray of shape (n,), float32."""
        terms = tokenize([query], stemmer=self.stemmer, stopwords=self.stopwords)[0]
        ids = self._bm25.get_tokens_ids(terms)
        if not ids:
            return np.zeros(self.n_, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, queries, k: int, mask: np.ndarray | None = None):
        """Top-k documents by BM25 among rows where ``mask`` is true.

        Documents with score 0 (no query term) are not returned.

        Parameters
        ----------
        queries : list of str, length m
        k : int
        mask : ndarray of shape (n,), bool, optional

        Returns
        -------
        scores : ndarray of shape (m, k), float32, -inf padding
        rows : ndarray of shape (m, k), int64, -1 padding
        """
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        for q, query in enumerate(queries):
            scores = self.scores(query)
            if mask is not None:
                scores = np.where(mask, scores, 0.0)
            candidates = np.flatnonzero(scores > 0)
            if len(candidates) > k:
                part = np.argpartition(-scores[candidates], k - 1)[:k]
                candidates = candidates[part]
            order = np.lexsort((candidates, -scores[candidates]))
            chosen = candidates[order][:k]
            out_scores[q, :len(chosen)] = scores[chosen]
            out_rows[q, :len(chosen)] = chosen
        return out_scores, out_rows


def reciprocal_rank_fusion(rankings, k: int, *, rrf_k: int = RRF_K):
    """Fuse several rankings of the same queries by reciprocal rank.

    Parameters
    ----------
    rankings : list of ndarray of shape (m, depth), int
        Row ids best first; -1 marks padding.
    k : int
        Results kept per query.
    rrf_k : int, default=60

    Returns
    -------
    scores : ndarray of shape (m, k), float32 (sum of 1 / (rrf_k + rank)), -inf padding
    rows : ndarray of shape (m, k), int64, -1 padding
    """
    m = rankings[0].shape[0]
    out_scores = np.full((m, k), -np.inf, dtype=np.float32)
    out_rows = np.full((m, k), -1, dtype=np.int64)
    for q in range(m):
        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, row in enumerate(ranking[q], start=1):
                if row >= 0:
                    fused[int(row)] = fused.get(int(row), 0.0) + 1.0 / (rrf_k + rank)
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
        for i, (row, score) in enumerate(best):
            out_rows[q, i] = row
            out_scores[q, i] = score
    return out_scores, out_rows
