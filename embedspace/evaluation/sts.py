"""Semantic textual similarity: how well cosine similarity of two sentences' embeddings follows human scores.

:func:`evaluate_sts` reads the STS-B layout, or a CSV/TSV with a ``sentence1,sentence2,score``
header, and returns Spearman and Pearson correlation under stable keys.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from embedspace.encoding import EmbeddingCache, encode_texts, load_encoder
from embedspace.errors import InputError
from embedspace.evaluation.files import read_benchmark_file

__all__ = ["evaluate_sts", "read_sts_pairs"]


def read_sts_pairs(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read sentence pairs with a similarity score.

    Two layouts are accepted: the STS-B files (tab-separated, no header, no quoting;
    score in column 5, sentences in columns 6 and 7; extra trailing columns ignored),
    and any CSV or TSV whose header names ``sentence1``, ``sentence2`` and ``score``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    sentences1, sentences2 : list of str, length n
    scores : ndarray of shape (n,)

    Raises
    ------
    InputError
        Missing file, no pairs, or a malformed line (its number is given).
    """
    path = Path(path)
    text, lines = read_benchmark_file(path)
    first = lines[0].lower()
    s1, s2, scores = [], [], []
    if "sentence1" in first and "sentence2" in first:
        delimiter = "\t" if "\t" in lines[0] else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        fields = {name.strip().lower(): name for name in (reader.fieldnames or [])}
        if "score" not in fields:
            raise InputError(f"{path}: header has no 'score' column (columns: {', '.join(reader.fieldnames)})")
        for lineno, row in enumerate(reader, start=2):
            try:
                s1.append(row[fields["sentence1"]])
                s2.append(row[fields["sentence2"]])
                scores.append(float(row[fields["score"]]))
            except (TypeError, ValueError):
                raise InputError(f"{path}: line {lineno}: expected sentence1, sentence2 and a numeric score") from None
    else:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 7:
                raise InputError(
                    f"{path}: line {lineno}: expected the STS-B layout (7 tab-separated fields) "
                    "or a header with sentence1, sentence2, score"
                )
            try:
                scores.append(float(fields[4]))
            except ValueError:
                raise InputError(f"{path}: line {lineno}: score '{fields[4]}' is not a number") from None
            s1.append(fields[5])
            s2.append(fields[6])
    if not scores:
        raise InputError(f"{path}: no sentence pairs found")
    if any(not a.strip() or not b.strip() for a, b in zip(s1, s2)):
        raise InputError(f"{path}: some sentence pairs have an empty sentence")
    return s1, s2, np.asarray(scores, dtype=np.float64)


def evaluate_sts(path: str | Path, *, encoder=None, model: str | None = None, backend: str = "auto", cache: bool = True, progress: bool | None = None) -> dict:
    """Score an encoder on a semantic-textual-similarity file.

    Parameters
    ----------
    path : str or Path
        See :func:`read_sts_pairs`.
    encoder : Encoder, optional
        Ready encoder; default: :func:`~embedspace.encoding.encoders.load_encoder` with ``model`` and ``backend``.
    model, backend : str, optional
        Used when ``encoder`` is not given.
    cache : bool, default=True
        Use the embedding cache.
    progress : bool or None
        Progress bar.

    Returns
    -------
    dict
        ``{"spearman", "pearson", "n", "model", "backend"}``; correlations of cosine
        similarity with the gold scores.
    """
    from scipy.stats import pearsonr, spearmanr

    s1, s2, gold = read_sts_pairs(path)
    encoder = encoder or load_encoder(model, backend=backend)
    unique = list(dict.fromkeys(s1 + s2))
    store = EmbeddingCache() if cache else None
    try:
        vectors, _ = encode_texts(encoder, unique, cache=store, progress=progress)
    finally:
        if store is not None:
            store.close()
    row = {text: i for i, text in enumerate(unique)}
    a = vectors[[row[t] for t in s1]].astype(np.float64)
    b = vectors[[row[t] for t in s2]].astype(np.float64)
    cosine = (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {
        "spearman": float(spearmanr(cosine, gold).statistic),
        "pearson": float(pearsonr(cosine, gold).statistic),
        "n": int(len(gold)),
        "model": encoder.identity.name,
        "backend": encoder.identity.backend,
    }
