"""Read and name a topic tree: :func:`topic_tree` (``es.topic_tree``), :func:`npmi_coherence`.

Names at every level
--------------------
* Level 0 is named exactly as ``describe`` names the map's clusters (class-based TF-IDF
  over the top clusters, :mod:`embedspace.mapping.labels`), so ``clusters.csv`` and the
  tree agree.
* A child is named by what sets it apart **from its siblings**: its term frequency times
  ``log(1 + A_s / f_s)`` (``A_s`` the siblings' average word count, ``f_s`` the term's
  count over the siblings) times the level-wide c-TF-IDF idf, so a word all siblings
  share (their parent's topic) drops out while a word rare in the whole collection is
  still preferred. Of a child's ``COHERENT_CANDIDATES`` (30) best terms, the first stays
  first and the other keywords are chosen greedily, each time the candidate with the
  highest mean NPMI with those already chosen (co-occurrence in the counted documents,
  no model): words that appear together in the cluster's documents rather than words
  merely frequent in it ("people, don, think"). It raised the mean NPMI of the first finer
  level on 20 Newsgroups and AG News test (seeds 0-2) and took it past BERTopic's
  (``scripts/bench_map.py tree names`` and ``tree bertopic``; figures in
  ``scripts/BENCHMARKS.md``, section bench_map_tree.py). Level 0 keeps ``describe``'s names. Siblings never share
  their first keyword: in size order, each child's first keyword is its best one no
  larger sibling has taken first.
* Three representative documents per cluster: the distinct texts nearest the cluster's
  mean embedding. Terms are counted on at most ``MAX_KEYWORD_DOCUMENTS`` central documents
  per finest cluster, one vectorizer pass for the whole tree.

Coherence
---------
:func:`npmi_coherence` is the NPMI of each cluster's top-10 keywords over the collection
itself, documents as the co-occurrence windows, the formula of gensim's ``c_npmi``
(``log((p_ij + eps) / (p_i p_j)) / -log(p_ij + eps)``, eps = 1e-12, the mean over keyword
pairs, then over clusters); ``scripts/bench_map.py`` checks it against gensim's
``CoherenceModel(coherence="c_npmi")`` with a window as long as the longest document.
"""

from __future__ import annotations

import re

import numpy as np

from embedspace.encoding import embed
from embedspace.errors import FormatError, InputError
from embedspace.mapping.clustering import clustering_scores
from embedspace.mapping.labels import (
    MAX_KEYWORD_DOCUMENTS,
    NOISE_LABEL,
    _by_centrality,
    _distinct_examples,
    _distinct_keywords,
    describe,
    keyword_stop_words,
    keyword_text,
    short_label,
    term_counts,
)
from embedspace.mapping.mapper import MAP_FORMAT, MAP_FORMAT_VERSION
from embedspace.mapping.tree import level_parents
from embedspace.store import read_manifest

__all__ = ["topic_tree", "rerank_keywords", "RERANK_CANDIDATES", "COHERENT_CANDIDATES", "NPMI_DOCUMENTS", "TREE_KEYWORD_DOCUMENTS", "tree_levels", "tree_metrics", "topics_table", "read_topics", "tree_lines", "npmi_coherence",
           "TREE_COLUMNS"]

# metrics.json's NPMI is counted over at most this many documents (a seeded sample).
NPMI_DOCUMENTS = 2000
# Finer levels' keywords are counted on about this many documents in all (the most central
# of each finest cluster, at least 20 and at most MAX_KEYWORD_DOCUMENTS each). 2,000 rather
# than 3,000 keeps the tree within its time budget since the levels count words too (0.35 CPU
# s less on 20 Newsgroups test; the first finer level's NPMI 0.45-0.50 against 0.48-0.50;
# scripts/bench_map.py tree overhead and tree levels).
TREE_KEYWORD_DOCUMENTS = 2000
# keywords="embedding" re-ranks this many c-TF-IDF candidates per cluster (30 scored a higher
# NPMI than 15 at levels 0 and 2 and lower at 1 and 3 on 20 Newsgroups; scripts/bench_map.py
# tree keywords).
RERANK_CANDIDATES = 30
# A finer level's keywords are chosen for coherence from this many c-TF-IDF candidates (15
# raised the mean NPMI of 20 Newsgroups' first finer level less than 30: 0.42-0.45 against
# 0.48-0.50; 0 turns the choice off; see the module notes).
COHERENT_CANDIDATES = 30
TREE_COLUMNS = ["level", "cluster", "parent", "size", "share", "label", "keywords", "example_rows", "examples"]
_LEVEL = re.compile(r"^cluster_l(\d+)$")


def tree_levels(table) -> list[str]:
    """The level columns of a mapped table, top first (``["cluster"]`` for an old map without them)."""
    found = sorted((int(m.group(1)), c) for c in table.columns if (m := _LEVEL.match(str(c))))
    if not found:
        if "cluster" not in table.columns:
            raise InputError("the set is not mapped (no 'cluster' column); run embedspace.map(space) first")
        return ["cluster"]
    if [i for i, _ in found] != list(range(len(found))):
        raise InputError(f"the level columns {', '.join(c for _, c in found)} are not cluster_l0 ... cluster_lN")
    return [c for _, c in found]


def _sibling_weights(counts: np.ndarray, parent_of: np.ndarray) -> np.ndarray:
    """Class-by-term weights: tf x sibling idf x level idf (see the module notes)."""
    totals = counts.sum(axis=1, keepdims=True)
    tf = counts / np.maximum(totals, 1.0)
    level_idf = np.log(1.0 + (counts.sum() / max(len(counts), 1)) / np.maximum(counts.sum(axis=0), 1.0))
    weights = np.zeros_like(tf)
    for p in np.unique(parent_of):
        rows = np.flatnonzero(parent_of == p)
        block = counts[rows]
        sibling_idf = np.log(1.0 + (block.sum() / len(rows)) / np.maximum(block.sum(axis=0), 1.0))
        weights[rows] = tf[rows] * sibling_idf[None, :] * level_idf[None, :]
    return weights


def _unique_first(keywords_by_cluster: dict, order: list[int]) -> None:
    """Reorder keyword lists in place so that no two clusters in ``order`` share the first."""
    taken: set[str] = set()
    for c in order:
        words = keywords_by_cluster[c]
        pick = next((w for w in words if w not in taken), None)
        if pick is not None:
            words.remove(pick)
            words.insert(0, pick)
            taken.add(pick)


def _finer_level_rows(level_index, labels, parents, texts, vectors, counts_of, n, n_keywords, n_examples):
    ids = sorted(parents)
    counts = np.vstack([counts_of(labels == c) for c in ids])
    parent_of = np.array([parents[c] for c in ids])
    weights = _sibling_weights(counts, parent_of)
    keywords = {}
    pool = max(n_keywords, COHERENT_CANDIDATES)
    for row, c in enumerate(ids):
        order = np.argsort(-weights[row], kind="stable")[: pool * 3]
        ranked = [(counts_of.terms[j], float(weights[row, j])) for j in order if weights[row, j] > 0]
        candidates = _distinct_keywords(ranked, pool)
        keywords[c] = counts_of.coherent(candidates, n_keywords) if COHERENT_CANDIDATES else candidates[:n_keywords]
    sizes = {c: int((labels == c).sum()) for c in ids}
    for p in np.unique(parent_of):
        siblings = sorted((c for c in ids if parents[c] == p), key=lambda c: (-sizes[c], c))
        _unique_first(keywords, siblings)
    rows = []
    for c in ids:
        members = _by_centrality(vectors, np.flatnonzero(labels == c))
        examples = _distinct_examples(members, texts, n_examples)
        rows.append({"level": level_index, "cluster": c, "parent": parents[c], "size": sizes[c], "share": sizes[c] / n,
                     "label": short_label(keywords[c]) or f"cluster {c}", "keywords": keywords[c],
                     "example_rows": [int(i) for i in examples], "examples": [texts[i] for i in examples]})
    return rows


class _Counts:
    """Term counts of a sample of documents, summed per selection of rows."""

    def __init__(self, texts, sample):
        matrix, terms = term_counts([texts[i] for i in sample])
        self.matrix, self.terms, self.sample = matrix, terms, sample
        self._present = None

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            return np.zeros(1)
        rows = np.flatnonzero(mask[self.sample])
        return np.asarray(self.matrix[rows].sum(axis=0), dtype=np.float64).ravel()

    def coherent(self, candidates: list[str], n_keywords: int) -> list[str]:
        """``n_keywords`` of ``candidates`` (best c-TF-IDF first): the first, then greedily the
        candidate with the highest mean NPMI with those chosen, over the counted documents."""
        if self.matrix is None or len(candidates) <= n_keywords:
            return candidates[:n_keywords]
        if self._present is None:
            self._present = (self.matrix > 0).tocsc().astype(np.float64)
            self._column = {t: j for j, t in enumerate(self.terms)}
        _, npmi = _npmi_matrix(self._present[:, [self._column[t] for t in candidates]])
        chosen = [0]
        while len(chosen) < n_keywords:
            left = [j for j in range(len(candidates)) if j not in chosen]
            gains = npmi[np.ix_(left, chosen)].mean(axis=1)
            chosen.append(left[int(np.argmax(gains))])
        return [candidates[j] for j in chosen]


def topic_tree(mapped, *, n_keywords: int = 10, n_examples: int = 3, keywords: str = "ctfidf", encoder=None,
               top=None):
    """The topic tree of a mapped set, one row per cluster per level.

    Parameters
    ----------
    mapped : EmbeddingSet
        Output of :func:`embedspace.map` (columns ``cluster_l0`` ...; a map without them
        has one level, ``cluster``).
    n_keywords : int, default=10
    n_examples : int, default=3
    keywords : {"ctfidf", "embedding"}, default="ctfidf"
        ``"embedding"`` re-ranks each cluster's ``RERANK_CANDIDATES`` best c-TF-IDF terms
        by the cosine between the term's own embedding (the map's model) and the
        cluster's mean document vector (KeyBERT-style; see :func:`rerank_keywords`).
    encoder : SentenceEncoder, optional
        For ``keywords="embedding"``: the map's model already loaded.
    top : pandas.DataFrame, optional
        ``describe(mapped, cluster_col="cluster_l0")`` when already computed (reused
        with ``keywords="ctfidf"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``level`` (0 = top), ``cluster``, ``parent`` (its cluster in the level
        above; -1 at level 0), ``size``, ``share``, ``label``, ``keywords`` (list of
        str), ``example_rows`` and ``examples``; level by level, largest first, the
        outliers (cluster -1, level 0 only) last.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> es.topic_tree(es.map(es.embed("corpus:20newsgroups"))).query("level == 1").head()  # doctest: +SKIP
    """
    import pandas as pd

    if keywords not in ("ctfidf", "embedding"):
        raise InputError(f"keywords must be 'ctfidf' or 'embedding', got {keywords!r}")
    final = n_keywords
    if keywords == "embedding":
        n_keywords = max(n_keywords, RERANK_CANDIDATES)
    table = mapped.table
    columns = tree_levels(table)
    if top is None or keywords != "ctfidf":
        top = describe(mapped, cluster_col=columns[0], n_keywords=n_keywords, n_examples=n_examples)
    top = top.copy()
    top.insert(0, "level", 0)
    top.insert(2, "parent", -1)
    frames = [top[top["cluster"] >= 0]]
    if len(columns) > 1:
        levels = [table[c].to_numpy().astype(np.int64) for c in columns]
        parents = level_parents(levels)
        texts, n = table["text"].tolist(), len(table)
        finest = levels[-1]
        ids = np.unique(finest[finest >= 0])
        per_cluster = int(min(MAX_KEYWORD_DOCUMENTS, max(20, -(-TREE_KEYWORD_DOCUMENTS // max(len(ids), 1)))))
        picked = [_by_centrality(mapped.vectors, np.flatnonzero(finest == c))[:per_cluster] for c in ids]
        counts_of = _Counts(texts, np.sort(np.concatenate(picked)))
        for i in range(1, len(columns)):
            rows = _finer_level_rows(i, levels[i], parents[i], texts, mapped.vectors, counts_of, n, n_keywords, n_examples)
            frame = pd.DataFrame(rows, columns=TREE_COLUMNS)
            frames.append(frame.sort_values(["parent", "size", "cluster"], ascending=[True, False, True], kind="stable"))
    frames.append(top[top["cluster"] < 0])
    tree = pd.concat(frames, ignore_index=True)[TREE_COLUMNS]
    if keywords == "embedding":
        return rerank_keywords(tree, mapped, n_keywords=final, encoder=encoder)
    return tree.assign(keywords=tree["keywords"].map(lambda words: list(words)[:final]))


def rerank_keywords(tree, mapped, *, n_keywords: int = 10, encoder=None):
    """Re-rank each cluster's candidate keywords by their embedding's closeness to the cluster's centre.

    The candidates are the tree's keyword lists (best c-TF-IDF first); each term is
    embedded with the map's own model (cached like any text) and scored by its cosine
    with the mean of the cluster's unit document vectors; the ``n_keywords`` best are
    kept, siblings' first keywords made distinct again, labels rebuilt. No MMR diversity
    term. On 20 Newsgroups test (seed 0) re-ranking the 30 best c-TF-IDF terms raised the
    mean NPMI of the top 10 at levels 0-2 (0.309 -> 0.382, 0.293 -> 0.296, 0.310 -> 0.331)
    and lowered it at the finest level (0.334 -> 0.319); MMR (lambda 0.5 or 0.7) lowered it
    almost everywhere; on 10,000 posts the level of 25 clusters went from 0.321 to 0.348
    (``scripts/bench_map.py tree keywords`` and ``tree bertopic``; ``scripts/BENCHMARKS.md``,
    section bench_map_tree.py; measured on the earlier levels and c-TF-IDF names). Not the
    default: loading the model for the terms and embedding them took 9.3 s on those 10,000
    posts, and the default's coherent choice (module notes) now scores higher at the finer
    levels (``tree bertopic``; BENCHMARKS.md).

    Parameters
    ----------
    tree : pandas.DataFrame
        :func:`topic_tree` rows (``keywords`` lists of candidates).
    mapped : EmbeddingSet
        The mapped set (its vectors and model identity).
    n_keywords : int, default=10
    encoder : SentenceEncoder, optional
        The model, already loaded (default: loaded from ``mapped.model``).

    Returns
    -------
    pandas.DataFrame
        ``tree`` with re-ranked ``keywords`` and ``label``; unchanged (candidates cut
        to ``n_keywords``) when the set records no model.
    """
    cut = tree.assign(keywords=tree["keywords"].map(lambda words: list(words)[:n_keywords]))
    model = getattr(mapped, "model", None)
    terms = sorted({w for words in tree["keywords"] for w in words})
    if model is None or not terms:
        return cut
    found = embed(terms, model=model.name, backend=model.backend, max_tokens=model.max_seq_length or None,
                  encoder=encoder, progress=False)
    if not model.same_space(found.model):
        return cut
    term_vectors = _unit(found.vectors)
    index = {w: i for i, w in enumerate(terms)}
    documents = _unit(mapped.vectors)
    table = mapped.table
    ranked = {}
    for row in tree.itertuples(index=False):
        column = f"cluster_l{int(row.level)}" if f"cluster_l{int(row.level)}" in table.columns else "cluster"
        members = table[column].to_numpy() == row.cluster
        words = list(row.keywords)
        if not members.any() or not words:
            ranked[(row.level, row.cluster)] = words[:n_keywords]
            continue
        centre = documents[members].mean(axis=0)
        scores = term_vectors[[index[w] for w in words]] @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
        order = np.argsort(-scores, kind="stable")
        ranked[(row.level, row.cluster)] = [words[i] for i in order][:n_keywords]
    sizes = {(r.level, r.cluster): r.size for r in tree.itertuples(index=False)}
    for (level, parent), group in tree[tree["cluster"] >= 0].groupby(["level", "parent"]):
        order = sorted(((level, c) for c in group["cluster"]), key=lambda key: (-sizes[key], key[1]))
        _unique_first(ranked, order)
    out = tree.copy()
    out["keywords"] = [ranked[(r.level, r.cluster)] for r in tree.itertuples(index=False)]
    out["label"] = [NOISE_LABEL if r.cluster < 0 else (short_label(ranked[(r.level, r.cluster)]) or r.label)
                    for r in tree.itertuples(index=False)]
    return out


def _unit(vectors) -> np.ndarray:
    array = np.array(vectors, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def npmi_coherence(texts, keyword_lists, *, top_n: int = 10, groups=None) -> dict:
    """NPMI coherence of keyword lists over a collection, documents as windows (see the module notes).

    Parameters
    ----------
    texts : sequence of str of length n
    keyword_lists : sequence of list of str
        One list per cluster (unigrams or bigrams), best first; the first ``top_n`` count.
    top_n : int, default=10
    groups : sequence of hashable of the same length as ``keyword_lists``, optional
        Score several groups of lists (the levels of a tree) with one pass over the texts:
        ``"by_group"`` then holds each group's mean.

    Returns
    -------
    dict
        ``{"mean": float or None, "per_cluster": [float or None, ...]}`` (and
        ``"by_group": {group: float or None}`` with ``groups``); a list with fewer than 2
        keywords seen in the collection scores None.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    lists = [[str(w) for w in words[:top_n]] for words in keyword_lists]
    vocabulary = sorted({w for words in lists for w in words})
    if not vocabulary:
        out = {"mean": None, "per_cluster": [None] * len(lists)}
        return out if groups is None else {**out, "by_group": {g: None for g in groups}}
    vectorizer = CountVectorizer(vocabulary=vocabulary, ngram_range=(1, 2), binary=True, lowercase=True,
                                 token_pattern=r"(?u)\b[^\W\d_]\w+\b", stop_words=keyword_stop_words())
    present = vectorizer.transform([keyword_text(t) for t in texts]).tocsc().astype(np.float64)
    index = {w: j for j, w in enumerate(vocabulary)}
    scores = []
    for words in lists:
        cols = [index[w] for w in words]
        p, npmi = _npmi_matrix(present[:, cols])
        values = [npmi[a, b] for a in range(len(cols)) for b in range(a + 1, len(cols)) if p[a] > 0 and p[b] > 0]
        scores.append(float(np.mean(values)) if values else None)
    valid = [s for s in scores if s is not None]
    out = {"mean": float(np.mean(valid)) if valid else None, "per_cluster": scores}
    if groups is not None:
        by_group = {}
        for g in dict.fromkeys(groups):
            mine = [v for v, h in zip(scores, groups) if h == g and v is not None]
            by_group[g] = float(np.mean(mine)) if mine else None
        out["by_group"] = by_group
    return out


def _npmi_matrix(present) -> tuple[np.ndarray, np.ndarray]:
    """Document frequencies p (m,) and pairwise NPMI (m, m) of the m columns of a binary documents x terms matrix.

    ``NPMI(a, b) = log(p_ab / (p_a p_b)) / -log(p_ab)``, with ``1e-12`` added to ``p_ab`` (a pair
    never seen together scores -1); pairs with a term never seen are meaningless (callers skip them).
    """
    n = max(present.shape[0], 1)
    p = np.asarray(present.sum(axis=0)).ravel() / n
    joint = np.asarray((present.T @ present).todense()) / n
    eps = 1e-12
    expected = np.outer(p, p)
    expected[expected == 0] = eps
    return p, np.log((joint + eps) / expected) / -np.log(joint + eps)


def tree_metrics(mapped, tree, *, label_col: str | None = None, X=None) -> list[dict]:
    """Scores of every level of a topic tree: clustering scores and NPMI coherence.

    Parameters
    ----------
    mapped : EmbeddingSet
    tree : pandas.DataFrame
        Output of :func:`topic_tree`.
    label_col : str, optional
        Reference labels: ``ari``, ``nmi``, ``v_measure`` per level.
    X : array-like of shape (n, d), optional
        Clustering layout: ``silhouette`` and ``dbcv`` per level when there is no
        ``label_col``.

    Returns
    -------
    list of dict
        One per level: ``level``, ``column``, ``n_clusters``, ``noise_fraction``, the
        scores, ``npmi`` (mean NPMI of the clusters' top-10 keywords) and
        ``npmi_documents`` (it is counted over a seeded sample of at most
        ``NPMI_DOCUMENTS`` documents, one pass for every level: the whole collection cost
        as much as the rest of the tree on 20 Newsgroups; ``scripts/bench_map.py tree``
        reports NPMI over whole collections).
    """
    table = mapped.table
    truth = table[label_col].to_numpy() if label_col is not None else None
    texts = table["text"].tolist()
    if len(texts) > NPMI_DOCUMENTS:
        rows = np.sort(np.random.default_rng(0).choice(len(texts), NPMI_DOCUMENTS, replace=False))
        texts = [texts[i] for i in rows]
    real = tree[tree["cluster"] >= 0]
    coherence = npmi_coherence(texts, real["keywords"].tolist(), groups=real["level"].tolist())["by_group"]
    out = []
    for i, column in enumerate(tree_levels(table)):
        scores = clustering_scores(table[column].to_numpy(), truth, X=None if truth is not None else X)
        scores["npmi"] = coherence.get(i)
        scores["npmi_documents"] = len(texts)
        out.append({"level": i, "column": column, **scores})
    return out


def topics_table(tree):
    """``topics.csv``'s columns: the tree with keywords joined by "; ", example rows by spaces and texts by " || "."""
    return tree.assign(
        keywords=tree["keywords"].map("; ".join),
        example_rows=tree["example_rows"].map(lambda rows: " ".join(map(str, rows))),
        examples=tree["examples"].map(lambda texts: " || ".join(" ".join(str(t).split())[:300] for t in texts)),
    )


def read_topics(directory):
    """The topic tree of a map directory, from ``topics.csv`` (or ``clusters.csv`` of a map made before the tree).

    Parameters
    ----------
    directory : path-like
        A directory written by ``embedspace map``.

    Returns
    -------
    pandas.DataFrame
        :data:`TREE_COLUMNS` (``keywords`` as lists of str, ``example_rows`` as lists of
        int, ``examples`` as lists of str); an older map gives one level (level 0).

    Raises
    ------
    InputError
        No such directory.
    FormatError
        Not a map, or damaged.
    """
    from pathlib import Path

    import pandas as pd

    directory = Path(directory)
    manifest = read_manifest(directory, MAP_FORMAT, MAP_FORMAT_VERSION, required=("clusters.csv",))
    name = "topics.csv" if "topics.csv" in manifest.get("files", {}) else "clusters.csv"
    try:
        frame = pd.read_csv(directory / name, keep_default_na=False, dtype={"label": str, "keywords": str})
    except (OSError, ValueError) as exc:
        raise FormatError(f"{directory}: unreadable {name} ({exc})") from None
    if name == "clusters.csv":
        frame = frame.assign(level=0, parent=-1)
    missing = [c for c in ("level", "cluster", "parent", "size", "share", "label", "keywords") if c not in frame.columns]
    if missing:
        raise FormatError(f"{directory}: {name} lacks the column(s) {', '.join(missing)}")
    def split(sep):
        return lambda cell: [t for t in str(cell).split(sep) if t.strip()] if isinstance(cell, str) else []

    frame = frame.assign(
        keywords=frame["keywords"].map(lambda cell: [t.strip() for t in split(";")(cell)]),
        example_rows=frame.get("example_rows", pd.Series([""] * len(frame))).map(
            lambda cell: [int(t) for t in split(" ")(cell) if t.lstrip("-").isdigit()]),
        examples=frame.get("examples", pd.Series([""] * len(frame))).map(lambda cell: split(" || ")(cell)),
    )
    for column in ("level", "cluster", "parent", "size"):
        frame[column] = frame[column].astype(np.int64)
    return frame[TREE_COLUMNS].reset_index(drop=True)


def tree_lines(tree, *, max_level: int | None = None, width: int = 100) -> list[str]:
    """The tree as indented lines, each child under its parent: ``cluster  size  share  label``.

    A cluster that is the only child of its parent (the same documents) is not repeated;
    its own children are shown under the parent.

    Parameters
    ----------
    tree : pandas.DataFrame
        :func:`topic_tree` or :func:`read_topics`.
    max_level : int, optional
        Deepest level shown (default: all).
    width : int, default=100

    Returns
    -------
    list of str
    """
    rows = tree if max_level is None else tree[tree["level"] <= max_level]
    children: dict = {}
    for r in rows.itertuples():
        if r.cluster >= 0 and r.level > 0:
            children.setdefault((r.level - 1, r.parent), []).append(r)
    lines = []

    def kids(r):
        found = children.get((r.level, r.cluster), [])
        while len(found) == 1 and found[0].size == r.size:  # an only child is its parent again: look below it
            found = children.get((found[0].level, found[0].cluster), [])
        return sorted(found, key=lambda c: (-c.size, c.cluster))

    def walk(r, depth):
        text = f"{'  ' * depth}{r.cluster:>3}  {r.size:>7,}  {r.share:6.1%}  {r.label}"
        lines.append(text if len(text) <= width else text[: width - 1] + "…")
        for child in kids(r):
            walk(child, depth + 1)

    for r in rows[(rows["level"] == 0)].itertuples():
        if r.cluster >= 0:
            walk(r, 0)
    for r in rows[(rows["level"] == 0) & (rows["cluster"] < 0)].itertuples():
        lines.append(f" -1  {r.size:>7,}  {r.share:6.1%}  {r.label}")
    return lines
