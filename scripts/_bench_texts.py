"""Real sentences for the search benchmark, read from the shipped and shared corpora.

Kept apart from ``bench_search.py`` so the (slow, cached) embedding can be prepared
on its own: ``python scripts/_bench_texts.py 101000`` embeds the first N sentences of
the pool into the shared embedding cache.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _news_sentences():
    """Sentences of the 20 Newsgroups bodies (headers, quotes and signatures dropped)."""
    path = REPO / "corpora" / "20newsgroups" / "20news_bydate.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            body = json.loads(line)["text"].split("\n\n", 1)[-1].split("\n-- \n", 1)[0]
            kept = [
                row for row in body.split("\n")
                if row.strip() and not row.lstrip().startswith((">", "|", ":")) and "@" not in row
            ]
            yield from _SENTENCE_END.split(" ".join(" ".join(kept).split()))


def _ptb_sentences(root: Path):
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        path = root / "sentences" / "ptb" / name
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                yield from (line.strip() for line in handle)


def _ag_news(root: Path):
    path = root / "clustering" / "ag_news" / "test.csv"
    if path.is_file():
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                yield row[1]
                yield from _SENTENCE_END.split(row[2].replace("\\", " "))


def _scifact_sentences(root: Path):
    path = root / "retrieval" / "scifact" / "corpus.jsonl.gz"
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                yield from _SENTENCE_END.split(json.loads(line)["text"])


def real_sentences(shared: Path = SHARED, seed: int = 0) -> list[str]:
    """Distinct real sentences of 5-60 words from every local corpus, shuffled with ``seed``."""
    seen: dict[str, None] = {}
    for source in (_news_sentences(), _ptb_sentences(shared), _ag_news(shared), _scifact_sentences(shared)):
        for sentence in source:
            sentence = " ".join(sentence.split())
            if 5 <= len(sentence.split()) <= 60:
                seen.setdefault(sentence, None)
    pool = list(seen)
    random.Random(seed).shuffle(pool)
    return pool


def embed_pool(n: int, *, progress=None):
    """Vectors (n, 384) of the first n pool sentences, through the shared embedding cache."""
    from embedspace.encoding.cache import EmbeddingCache
    from embedspace.encoding.encoders import load_encoder
    from embedspace.encoding.pipeline import encode_texts

    texts = real_sentences()[:n]
    encoder = load_encoder()
    cache = EmbeddingCache()
    vectors = []
    try:
        for start in range(0, n, 5000):
            block, _ = encode_texts(encoder, texts[start:start + 5000], cache=cache, progress=progress)
            vectors.append(block)
            print(f"embedded {start + len(block)} / {n}", file=sys.stderr, flush=True)
    finally:
        cache.close()
    import numpy as np

    return texts, np.concatenate(vectors), encoder


if __name__ == "__main__":
    pool = real_sentences()
    print(f"{len(pool)} distinct sentences in the pool", file=sys.stderr)
    embed_pool(int(sys.argv[1]) if len(sys.argv) > 1 else 101_000, progress=False)
