"""Edited copies of real posts and pair scores for the duplicates part of scripts/bench_outliers.py.

Seven kinds of copies of each post (:data:`COPY_KINDS`), the ground truth's reuse families
(posts that share a passage of :data:`REUSE_WORDS` words), pair precision/recall of a grouping,
and the MinHash baseline (datasketch).
"""

from __future__ import annotations

import numpy as np

_SENTENCE = __import__("re").compile(r"(?<=[.!?])\s+")
REUSE_WORDS = 25
"""Consecutive words two 20 Newsgroups posts must share to count as one post's copies in the ground truth."""
COPY_KINDS = ("exact", "space-case", "typos", "drop-sentence", "reorder", "quoted-reply", "first-half")


def _sentences(text):
    return [s for s in _SENTENCE.split(" ".join(text.split())) if s]


def _typos(text, rng):
    chars = list(text)
    n = max(1, int(round(rng.uniform(1, 3) * len(text) / 100)))
    for _ in range(n):
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if not letters:
            break
        i = int(rng.choice(letters))
        op = rng.integers(4)
        if op == 0:
            chars[i] = chr(ord("a") + int(rng.integers(26)))
        elif op == 1:
            del chars[i]
        elif op == 2:
            chars.insert(i, chr(ord("a") + int(rng.integers(26))))
        elif i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def make_copy(text, kind, rng, filler):
    """One near copy of ``text`` of the given kind (see COPY_KINDS)."""
    if kind == "exact":
        return text
    if kind == "space-case":
        words = text.split()
        seps = rng.choice(["  ", " ", "\n", " \t"], size=len(words))
        body = "".join(w + sep for w, sep in zip(words, seps))
        return body.lower() if rng.random() < 0.5 else body.upper()
    if kind == "typos":
        return _typos(text, rng)
    sentences = _sentences(text)
    if kind == "drop-sentence":
        drop = int(rng.integers(len(sentences)))
        return " ".join(s for i, s in enumerate(sentences) if i != drop)
    if kind == "reorder":
        order = rng.permutation(len(sentences))
        while len(sentences) > 1 and (order == np.arange(len(sentences))).all():
            order = rng.permutation(len(sentences))
        return " ".join(sentences[i] for i in order)
    if kind == "quoted-reply":
        quoted = "\n".join("> " + line for line in text.splitlines() if line.strip())
        return f"In article <{int(rng.integers(1e6))}@news.example.edu>, someone writes:\n{quoted}\n\n{filler}"
    if kind == "first-half":
        words = text.split()
        return " ".join(words[: max(1, len(words) // 2)])
    raise ValueError(kind)


def duplicate_collection(table, *, n=2000, seed=0):
    """``n`` distinct posts (>= 3 sentences) and one copy of each kind; columns text, source, kind."""
    import pandas as pd
    from embedspace.analysis import normalize_text

    rng = np.random.default_rng(seed)
    texts = table["text"].tolist()
    seen, pool = set(), []
    for i in rng.permutation(len(texts)):
        key = normalize_text(texts[i])
        if key in seen or len(_sentences(texts[i])) < 3 or len(texts[i].split()) < 20:
            continue
        seen.add(key)
        pool.append(texts[i].strip())
    originals, fillers = pool[:n], pool[n:]
    rows = [{"text": t, "source": i, "kind": "original"} for i, t in enumerate(originals)]
    for i, text in enumerate(originals):
        filler = " ".join(_sentences(fillers[i % len(fillers)])[:2])
        for kind in COPY_KINDS:
            rows.append({"text": make_copy(text, kind, rng, filler), "source": i, "kind": kind})
    return pd.DataFrame(rows)


def reuse_families(docs, *, words=REUSE_WORDS):
    """Ground truth of 20 Newsgroups' own text reuse: originals that share a passage of ``words`` consecutive
    words (case folded, punctuation ignored) are one family (cross-posts, unmarked quotes, reposts).

    Returns an array: the family of each document (its ``source`` merged by union-find), and the number of
    originals merged into another's family.
    """
    from embedspace.analysis.shingles import lexical_form

    originals = docs[docs["kind"] == "original"]
    parent = np.arange(int(docs["source"].max()) + 1)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for source, text in zip(originals["source"], originals["text"]):
        tokens = lexical_form(text).split()
        for j in range(max(0, len(tokens) - words + 1)):
            other = owner.setdefault(hash(tuple(tokens[j:j + words])), source)
            a, b = find(other), find(source)
            if a != b:
                parent[max(a, b)] = min(a, b)
    family = np.array([find(i) for i in range(len(parent))])
    return family[docs["source"].to_numpy()], int(len(parent) - len(np.unique(family)))


def pair_scores(labels, source, kind, family=None):
    """Precision of all pairs put in one group (a pair is true when both come from one post, or from one
    ``family`` of posts when given); recall of (original, copy) pairs per kind; recall of all pairs."""
    from collections import Counter

    family = source if family is None else family
    predicted = true = 0
    for g in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == g)
        counts = Counter(family[members].tolist())
        predicted += len(members) * (len(members) - 1) // 2
        true += sum(c * (c - 1) // 2 for c in counts.values())
    precision = true / predicted if predicted else 1.0
    originals = np.flatnonzero(kind == "original")
    label_of_source = dict(zip(source[originals].tolist(), labels[originals].tolist()))
    recall = {}
    for k in COPY_KINDS:
        rows = np.flatnonzero(kind == k)
        hits = [labels[r] >= 0 and labels[r] == label_of_source[source[r]] for r in rows]
        recall[k] = float(np.mean(hits))
    found = 0
    for s in np.unique(source):
        members = labels[source == s]
        found += sum(c * (c - 1) // 2 for c in Counter(members[members >= 0].tolist()).values())
    family_size = len(COPY_KINDS) + 1
    all_true = len(originals) * family_size * (family_size - 1) // 2
    return precision, recall, found / all_true


def minhash_groups(texts, *, num_perm=128, ngram=5, threshold=0.5, seed=1):
    """text-dedup's MinHash baseline: word 5-gram shingles (lower case), LSH at Jaccard 0.5, union-find."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent = np.arange(len(texts))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, text in enumerate(texts):
        words = text.lower().split()
        grams = {" ".join(words[j:j + ngram]) for j in range(max(1, len(words) - ngram + 1))}
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([g.encode("utf-8") for g in grams])
        for j in lsh.query(m):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(i, m)
    roots = np.array([find(i) for i in range(len(texts))])
    sizes = np.bincount(roots, minlength=len(texts))
    return np.where(sizes[roots] >= 2, roots, -1)
