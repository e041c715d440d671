"""Name and summarise clusters: class-based TF-IDF keywords, short labels, examples.

Keywords follow the class-based TF-IDF of BERTopic (Grootendorst, 2022): the documents
of each cluster are pooled into one "class document"; a term's weight in class ``c`` is
its frequency in ``c`` (normalised by the class's length) times
``log(1 + A / f_t)``, where ``A`` is the average number of words per class and ``f_t``
the term's frequency over all classes. Terms are unigrams and bigrams of words with at
least one letter, English stop words (and those of news text, ``NEWS_STOP_WORDS``)
removed, seen in at least two documents and in at most 40% of them (words that common
are the collection's own stop words), counted after dropping e-mail/Usenet header
lines, addresses and URLs (:func:`keyword_text`).

A cluster's short label joins its top keywords, skipping a keyword that repeats words
of one already chosen ("space" after "space shuttle"). Its representative documents are
the members closest (cosine) to the cluster's mean embedding; keywords are counted on
the ``MAX_KEYWORD_DOCUMENTS`` members closest to it.
"""

from __future__ import annotations

import re

import numpy as np

from embedspace.errors import InputError

__all__ = ["describe", "class_tfidf_keywords", "keyword_text", "without_headers", "short_label", "keyword_stop_words",
           "term_counts", "NOISE_LABEL"]

NOISE_LABEL = "(unclustered)"
# Documents are cut to this many characters for keyword counting: the head of a long
# document names its topic, and counting megabyte-long outliers would dominate the time.
_MAX_CHARS = 10_000
_TOKEN_PATTERN = r"(?u)\b[^\W\d_]\w+\b"  # words of 2+ characters starting with a letter
# Keywords are counted on at most this many documents per cluster, the ones nearest its
# centre: the core of a cluster names it, and the cost stays bounded on large collections
# (on 20 Newsgroups 300 per cluster halved describe()'s time and every label kept its topic;
# measured on the map of scripts/bench_map.py acceptance; figures in scripts/BENCHMARKS.md, section bench_map.py).
MAX_KEYWORD_DOCUMENTS = 300
# Terms in more than this share of all documents say nothing about any one cluster
# (on 20 Newsgroups: the Usenet header words "lines", "subject", "organization", "edu").
MAX_DOCUMENT_FREQUENCY = 0.4
# Added to scikit-learn's English stop words for ``stop_words="english"``: words of news
# text that name no topic. Honorifics (a politics cluster of BBC News was named "mr,
# labour, election"), reporting verbs, news agencies, weekdays, and the HTML entities
# left in scraped news (AG News: "&lt;TXN.N&gt;", "#39;s", "&quot;" made "lt, gt" the
# label of its business cluster).
NEWS_STOP_WORDS = frozenset({
    "mr", "mrs", "ms", "dr", "miss", "sir",
    "said", "says", "say", "saying", "told", "tells", "according", "reported", "reports", "announced",
    "reuters", "ap", "afp", "ft", "upi", "dpa", "bbc", "cnn",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "yesterday", "today",
    "lt", "gt", "quot", "amp", "nbsp", "apos", "href", "http", "https", "www", "com", "html", "htm", "font",
    "target", "fullquote", "quickinfo", "aspx", "img", "src",
})


_EMAIL = re.compile(r"(?<!\S)[^\s@]*@\S+")
_URL = re.compile(r"(?:https?://|www\.)\S+")
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,40}:[ \t]")


def keyword_stop_words() -> list[str]:
    """The words keywords never are: scikit-learn's English list plus ``NEWS_STOP_WORDS``, sorted."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(ENGLISH_STOP_WORDS | NEWS_STOP_WORDS)


def without_headers(text: str) -> str:
    """``text`` without a leading block of two or more ``Name: value`` header lines (e-mail,
    Usenet), except for the ``Subject:`` text."""
    lines = str(text).split("\n")
    end = 0
    while end < len(lines) and _HEADER_LINE.match(lines[end]):
        end += 1
    if end < 2:
        return str(text)
    subjects = [line.split(":", 1)[1] for line in lines[:end] if line.lower().startswith("subject:")]
    return "\n".join(subjects + lines[end:])


def keyword_text(text: str) -> str:
    """The part of a document that keywords are counted on.

    Cut to the first 10,000 characters; a leading block of two or more ``Name: value``
    header lines (e-mail, Usenet) is dropped except for the ``Subject:`` text; e-mail
    addresses and URLs are removed. The embeddings are not affected.
    """
    text = without_headers(str(text)[:_MAX_CHARS])
    if "@" in text:
        text = _EMAIL.sub(" ", text)
    if "www." in text or "://" in text:
        text = _URL.sub(" ", text)
    return text


def class_tfidf_keywords(texts, classes, *, n_keywords: int = 10, ngram_range=(1, 2), min_df: int = 2,
                         max_df: float = MAX_DOCUMENT_FREQUENCY, stop_words="english") -> dict:
    """Top keywords of each class by class-based TF-IDF.

    Parameters
    ----------
    texts : sequence of str of length n
    classes : array-like of int of length n
        Class (cluster) of each text; every distinct value is a class, -1 included.
    n_keywords : int, default=10
    ngram_range : tuple of int, default=(1, 2)
    min_df : int, default=2
        Ignore terms found in fewer documents (lowered to 1 for tiny inputs).
    max_df : float, default=MAX_DOCUMENT_FREQUENCY
        Ignore terms found in a larger share of the documents (collection-specific stop
        words such as e-mail headers); not applied below 50 documents.
    stop_words : "english", list of str or None, default="english"
        ``"english"`` is scikit-learn's English list plus ``NEWS_STOP_WORDS`` (honorifics
        such as "mr", "said", news agencies, weekdays, HTML entity names).

    Returns
    -------
    dict
        ``{class: [(term, weight), ...]}``, best first.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    texts = [keyword_text(t) for t in texts]
    classes = np.asarray(classes)
    if len(texts) != len(classes):
        raise InputError(f"{len(texts)} texts but {len(classes)} class labels")
    ids, inverse = np.unique(classes, return_inverse=True)
    words = keyword_stop_words() if isinstance(stop_words, str) and stop_words == "english" else stop_words

    def fit(df):
        vectorizer = CountVectorizer(ngram_range=ngram_range, min_df=df, max_df=max_df if len(texts) >= 50 else 1.0,
                                     stop_words=words,
                                     token_pattern=_TOKEN_PATTERN, lowercase=True)
        return vectorizer, vectorizer.fit_transform(texts)

    try:
        vectorizer, counts = fit(min_df if len(texts) >= 10 * min_df else 1)
    except ValueError:  # nothing survived min_df / stop words
        try:
            vectorizer, counts = fit(1)
        except ValueError:
            return {int(c): [] for c in ids}
    membership = sparse.csr_matrix((np.ones(len(texts)), (inverse, np.arange(len(texts)))), shape=(len(ids), len(texts)))
    class_counts = np.asarray((membership @ counts).todense(), dtype=np.float64)
    totals = class_counts.sum(axis=1, keepdims=True)
    tf = class_counts / np.maximum(totals, 1.0)
    average_words = class_counts.sum() / len(ids)
    term_frequency = class_counts.sum(axis=0)
    idf = np.log(1.0 + average_words / np.maximum(term_frequency, 1.0))
    weights = tf * idf[None, :]
    terms = vectorizer.get_feature_names_out()
    keywords = {}
    for row, cls in enumerate(ids):
        order = np.argsort(-weights[row], kind="stable")[: n_keywords * 3]
        keywords[int(cls)] = [(str(terms[j]), float(weights[row, j])) for j in order if weights[row, j] > 0][: n_keywords * 3]
    return keywords


def term_counts(texts, *, ngram_range=(1, 2), min_df: int = 2, max_df: float = MAX_DOCUMENT_FREQUENCY):
    """Document-by-term counts of unigrams and bigrams, counted as :func:`class_tfidf_keywords` counts them.

    Parameters
    ----------
    texts : sequence of str of length n
    ngram_range : tuple of int, default=(1, 2)
    min_df : int, default=2
        Lowered to 1 for fewer than ``10 * min_df`` texts.
    max_df : float, default=MAX_DOCUMENT_FREQUENCY

    Returns
    -------
    counts : scipy.sparse.csr_matrix of shape (n, terms) or None
        None when no term survives.
    terms : list of str
    """
    from sklearn.feature_extraction.text import CountVectorizer

    texts = [keyword_text(t) for t in texts]
    words = keyword_stop_words()
    for df in dict.fromkeys((min_df if len(texts) >= 10 * min_df else 1, 1)):
        vectorizer = CountVectorizer(ngram_range=ngram_range, min_df=df, max_df=max_df if len(texts) >= 50 else 1.0,
                                     stop_words=words, token_pattern=_TOKEN_PATTERN, lowercase=True)
        try:
            counts = vectorizer.fit_transform(texts)
        except ValueError:  # nothing survived min_df / stop words
            continue
        return counts.tocsr(), [str(t) for t in vectorizer.get_feature_names_out()]
    return None, []


def short_label(keywords, *, n_terms: int = 3, max_chars: int = 40) -> str:
    """Join the top keywords into a short label, skipping ones that repeat words already used.

    Parameters
    ----------
    keywords : list of str or of (str, float)
        Keywords, best first.
    n_terms : int, default=3
    max_chars : int, default=40

    Returns
    -------
    str
        E.g. ``"god, jesus, bible"``; empty when there are no keywords.
    """
    chosen: list[str] = []
    used: set[str] = set()
    for item in keywords:
        term = item[0] if isinstance(item, tuple) else item
        words = set(term.split())
        if words & used:
            continue
        if len(", ".join(chosen + [term])) > max_chars and chosen:
            break
        chosen.append(term)
        used |= words
        if len(chosen) == n_terms:
            break
    return ", ".join(chosen)


def _distinct_keywords(ranked, n_keywords: int) -> list[str]:
    """The first ``n_keywords`` terms, dropping a unigram already inside a chosen bigram and vice versa."""
    chosen: list[str] = []
    for term, _ in ranked:
        words = term.split()
        if any(term in other.split() or (len(words) > 1 and set(words) <= set(other.split())) for other in chosen):
            continue
        if len(words) > 1 and all(w in chosen for w in words):
            continue
        chosen.append(term)
        if len(chosen) == n_keywords:
            break
    return chosen


def _by_centrality(vectors: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``members`` ordered by cosine similarity to the members' mean vector, nearest first."""
    block = np.asarray(vectors[members], dtype=np.float32)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    block = block / np.maximum(norms, 1e-12)
    centre = block.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    order = np.argsort(-(block @ centre), kind="stable")
    return members[order]


def _distinct_examples(members: np.ndarray, texts: list[str], n: int) -> list[int]:
    """The first ``n`` rows of ``members`` (most central first) whose texts differ.

    Texts are compared after white space and case are folded, so a collection that holds
    an article several times shows it once among a cluster's representatives.
    """
    seen: set[str] = set()
    chosen = []
    for row in members:
        key = " ".join(str(texts[row]).split()).casefold()
        if key in seen:
            continue
        seen.add(key)
        chosen.append(int(row))
        if len(chosen) == n:
            break
    return chosen


def describe(space, *, cluster_col: str = "cluster", n_keywords: int = 10, n_examples: int = 3, level: int | None = None):
    """One row per cluster: size, keywords, a short label and representative documents.

    Parameters
    ----------
    space : EmbeddingSet
        A mapped set (see :func:`embedspace.map`) with a ``cluster`` column.
    cluster_col : str, default="cluster"
    n_keywords : int, default=10
    n_examples : int, default=3
    level : int, optional
        A level of the topic tree (0 = top): describes column ``cluster_l{level}``
        instead of ``cluster_col`` (level names that tell siblings apart come from
        :func:`embedspace.topic_tree`).

    Returns
    -------
    pandas.DataFrame
        Columns ``cluster`` (int; -1 = outliers), ``size``, ``share`` (fraction of
        documents), ``label`` (str), ``keywords`` (list of str), ``example_rows``
        (list of int) and ``examples`` (list of str), largest cluster first,
        outliers last.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> es.describe(es.map(es.embed("corpus:20newsgroups"))).head()  # doctest: +SKIP
    """
    import pandas as pd

    table = space.table
    if level is not None:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 0:
            raise InputError(f"level must be a whole number >= 0, got {level!r}")
        cluster_col = f"cluster_l{int(level)}"
        if cluster_col not in table.columns:
            found = sorted(str(c) for c in table.columns if re.match(r"^cluster_l\d+$", str(c)))
            raise InputError(f"level={level} is not in this map (levels: {', '.join(found) or 'none, an older map'})")
    if cluster_col not in table.columns:
        raise InputError(
            f"no column '{cluster_col}' to describe (columns: {', '.join(map(str, table.columns))}); "
            "run embedspace.map(space) first"
        )
    clusters = table[cluster_col].to_numpy()
    try:
        clusters = clusters.astype(np.int64)
    except (TypeError, ValueError):
        raise InputError(f"column '{cluster_col}' must hold whole numbers (cluster ids, -1 for outliers)") from None
    texts = table["text"].tolist()
    vectors = space.vectors
    ordered = {int(cls): _by_centrality(vectors, np.flatnonzero(clusters == cls)) for cls in np.unique(clusters)}
    sample = np.sort(np.concatenate([rows[:MAX_KEYWORD_DOCUMENTS] for rows in ordered.values()]))
    ranked = class_tfidf_keywords([texts[i] for i in sample], clusters[sample], n_keywords=n_keywords)
    rows = []
    for cls, members in ordered.items():
        keywords = _distinct_keywords(ranked.get(int(cls), []), n_keywords)
        examples = _distinct_examples(members, texts, n_examples)
        rows.append({
            "cluster": int(cls),
            "size": int(len(members)),
            "share": len(members) / len(clusters),
            "label": NOISE_LABEL if cls == -1 else (short_label(keywords) or f"cluster {cls}"),
            "keywords": keywords,
            "example_rows": [int(i) for i in examples],
            "examples": [texts[i] for i in examples],
        })
    frame = pd.DataFrame(rows, columns=["cluster", "size", "share", "label", "keywords", "example_rows", "examples"])
    frame["_noise"] = frame["cluster"] == -1
    frame = frame.sort_values(["_noise", "size", "cluster"], ascending=[True, False, True], kind="stable")
    return frame.drop(columns="_noise").reset_index(drop=True)
