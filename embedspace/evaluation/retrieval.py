"""Retrieval evaluation on the BEIR layout: nDCG@10, recall@10 and MRR@10.

BEIR (Thakur et al., 2021) is the standard zero-shot retrieval benchmark, and MTEB's
retrieval scores are computed on it, so the numbers here can be compared with published
ones (all-MiniLM-L6-v2 on SciFact: nDCG@10 = 0.6451 with exact search). A BEIR folder
holds::

    corpus.jsonl[.gz]    {"_id": ..., "title": ..., "text": ...} per line
    queries.jsonl[.gz]   {"_id": ..., "text": ...} per line
    qrels/test.tsv       query-id <TAB> corpus-id <TAB> score, with a header line

As BEIR does, a document's text is ``title + " " + text`` stripped; queries are the ids
that appear in the qrels with a positive score; a document whose id equals the query's
id is ignored (BEIR's ``ignore_identical_ids``); gains are the graded relevance scores
(``DCG = sum rel_i / log2(i + 1)``, as trec_eval computes nDCG).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedspace.embeddingset import EmbeddingSet
from embedspace.encoding import encode_texts, load_encoder, open_cache
from embedspace.errors import InputError
from embedspace.search import MODES, build_index

__all__ = ["BeirDataset", "load_beir", "evaluate_retrieval", "retrieval_metrics"]


@dataclass
class BeirDataset:
    """A BEIR folder in memory.

    Attributes
    ----------
    doc_ids : list of str
    doc_texts : list of str
        ``title + " " + text``, stripped.
    queries : dict of str to str
        Query id to text, only the queries judged in the split.
    qrels : dict of str to dict of str to int
        Query id to {doc id: relevance > 0}.
    split : str
    """

    doc_ids: list
    doc_texts: list
    queries: dict
    qrels: dict
    split: str


def _open_jsonl(directory: Path, stem: str):
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        path = directory / name
        if path.is_file():
            return path
    raise InputError(f"{directory}: no {stem}.jsonl (a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/test.tsv)")


def _read_jsonl(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
                if not isinstance(record, dict) or "_id" not in record:
                    raise InputError(f"{path}: line {number}: a record needs an '_id' field")
                yield record
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def load_beir(directory: str | os.PathLike, split: str = "test") -> BeirDataset:
    """Read a BEIR folder.

    Parameters
    ----------
    directory : path-like
    split : str, default="test"
        Which ``qrels/<split>.tsv`` to use.

    Returns
    -------
    BeirDataset

    Raises
    ------
    InputError
        A missing file, a malformed line, or qrels naming unknown queries only.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such folder (expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/)")
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InputError(f"{directory}: no qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if number == 1 and not fields[-1].lstrip("-").isdigit():
                continue  # header
            if not line.strip():
                continue
            if len(fields) != 3 or not fields[2].strip().lstrip("-").isdigit():
                raise InputError(f"{qrels_path}: line {number}: expected query-id<TAB>corpus-id<TAB>score")
            if int(fields[2]) > 0:
                qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    doc_ids, doc_texts = [], []
    for record in _read_jsonl(_open_jsonl(directory, "corpus")):
        doc_ids.append(str(record["_id"]))
        doc_texts.append((str(record.get("title") or "") + " " + str(record.get("text") or "")).strip())
    wanted = set(qrels)
    queries = {}
    for record in _read_jsonl(_open_jsonl(directory, "queries")):
        if str(record["_id"]) in wanted:
            queries[str(record["_id"])] = str(record.get("text") or "")
    qrels = {q: rel for q, rel in qrels.items() if q in queries}
    if not qrels:
        raise InputError(f"{qrels_path}: none of the judged queries is in queries.jsonl")
    if not doc_ids:
        raise InputError(f"{directory}: the corpus is empty")
    return BeirDataset(doc_ids, doc_texts, {q: queries[q] for q in qrels}, qrels, split)


def retrieval_metrics(ranked: dict, qrels: dict, k: int = 10) -> dict:
    """nDCG@k, recall@k and MRR@k averaged over the judged queries.

    Parameters
    ----------
    ranked : dict of str to list of str
        Query id to doc ids, best first (at least k when available).
    qrels : dict of str to dict of str to int
        Query id to {doc id: relevance > 0}.
    k : int, default=10

    Returns
    -------
    dict
        ``{"ndcg@k", "recall@k", "mrr@k", "n_queries"}``; a query without results scores 0.
    """
    ndcg, recall, mrr = [], [], []
    for query, relevant in qrels.items():
        top = ranked.get(query, [])[:k]
        gains = [relevant.get(doc, 0) for doc in top]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(relevant.values(), reverse=True)[:k]))
        ndcg.append(dcg / ideal if ideal > 0 else 0.0)
        recall.append(sum(1 for g in gains if g > 0) / len(relevant))
        first = next((i for i, g in enumerate(gains) if g > 0), None)
        mrr.append(0.0 if first is None else 1.0 / (first + 1))
    return {
        f"ndcg@{k}": round(float(np.mean(ndcg)), 4),
        f"recall@{k}": round(float(np.mean(recall)), 4),
        f"mrr@{k}": round(float(np.mean(mrr)), 4),
        "n_queries": len(qrels),
    }


class _CachedEncoder:
    """Wraps an encoder so every text goes through the embedding cache."""

    def __init__(self, encoder, cache):
        self.encoder, self.cache = encoder, cache
        self.identity, self.dim = encoder.identity, encoder.dim

    def encode(self, texts, *, progress=None):
        return encode_texts(self.encoder, texts, cache=self.cache, progress=progress)[0]


def evaluate_retrieval(directory, *, mode: str = "dense", split: str = "test", model=None, backend: str = "auto",
                       kind: str = "flat", encoder=None, cache=True, progress=None, k: int = 10) -> dict:
    """Score search on a BEIR folder.

    Parameters
    ----------
    directory : path-like
        A BEIR folder (see the module docstring).
    mode : {"dense", "bm25", "hybrid"}, default="dense"
    split : str, default="test"
    model, backend : str, optional
        The encoder (default all-MiniLM-L6-v2, fastest exact backend).
    kind : str, default="flat"
        Index kind; ``flat`` (exact) measures the model, not the approximation.
    encoder : Encoder, optional
        Overrides ``model`` and ``backend``.
    cache : bool or EmbeddingCache, default=True
    progress : bool or None
    k : int, default=10

    Returns
    -------
    dict
        ``{"ndcg@10", "recall@10", "mrr@10", "n_queries", "n_docs", "mode", "split", "kind", "model"}``
    """
    import pandas as pd

    if mode not in MODES:
        raise InputError(f"unknown search mode '{mode}' (choose from {', '.join(MODES)})")
    data = load_beir(directory, split)
    encoder = encoder or load_encoder(model, backend=backend)
    store = open_cache(cache)
    try:
        cached = _CachedEncoder(encoder, store)
        vectors = cached.encode(data.doc_texts, progress=progress)
        space = EmbeddingSet(vectors, pd.DataFrame({"text": data.doc_texts, "doc_id": data.doc_ids}), encoder.identity)
        index = build_index(space, kind=kind, progress=progress, lexical=mode != "dense")
        query_ids = list(data.queries)
        depth = min(k + 1, len(space))
        _, rows = index.search_rows([data.queries[q] for q in query_ids], k=depth, mode=mode, encoder=cached)
    finally:
        if store is not None and store is not cache:
            store.close()
    ranked = {}
    for query, found in zip(query_ids, rows):
        docs = [data.doc_ids[r] for r in found if r >= 0]
        ranked[query] = [doc for doc in docs if doc != query][:k]
    result = retrieval_metrics(ranked, data.qrels, k)
    result.update({"n_docs": len(data.doc_ids), "mode": mode, "split": split, "kind": index.kind, "model": encoder.identity.name})
    return result
