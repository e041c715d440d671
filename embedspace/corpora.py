"""Corpora shipped with embedspace, read as ``corpus:NAME``.

The files live in the project's ``corpora/`` folder (provenance, license and sha256 of
each in ``corpora/README.md``). ``EMBEDSPACE_CORPORA_DIR`` points elsewhere.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from embedspace.errors import InputError

__all__ = ["Corpus", "list_corpora", "corpora_dir", "corpus_path"]


@dataclass(frozen=True)
class Corpus:
    """A shipped corpus.

    Attributes
    ----------
    name : str
        What follows ``corpus:``.
    file : str
        Path relative to the corpora folder.
    description : str
        One line for listings.
    keep : callable or None
        Predicate on a JSON record; records for which it is false are skipped.
    """

    name: str
    file: str
    description: str
    keep: Callable[[dict], bool] | None = None


_NEWSGROUPS = "20newsgroups/20news_bydate.jsonl.gz"

CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in [
        Corpus(
            "20newsgroups",
            _NEWSGROUPS,
            "20 Newsgroups 'bydate' test split: 7,532 Usenet posts in 20 groups (label, label_id)",
            keep=lambda r: r["split"] == "test",
        ),
        Corpus(
            "20newsgroups-train",
            _NEWSGROUPS,
            "20 Newsgroups 'bydate' train split: 11,314 posts",
            keep=lambda r: r["split"] == "train",
        ),
        Corpus("20newsgroups-all", _NEWSGROUPS, "20 Newsgroups, both splits: 18,846 posts (column split)"),
        Corpus(
            "sts-captions",
            "sts-captions/sentences.jsonl",
            "2,404 image captions and SNLI sentences from STS-B train/dev (CC BY-SA): the default VAE corpus",
        ),
    ]
}


def corpora_dir() -> Path:
    """Return the folder holding the shipped corpora."""
    override = os.environ.get("EMBEDSPACE_CORPORA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "corpora"


def corpus_path(name: str) -> Path:
    """Return the file of a shipped corpus, raising :class:`InputError` if unknown or missing."""
    if name not in CORPORA:
        known = ", ".join(sorted(CORPORA))
        raise InputError(f"unknown corpus '{name}' (shipped corpora: {known})")
    path = corpora_dir() / CORPORA[name].file
    if not path.is_file():
        raise InputError(f"corpus '{name}' is missing: {path} not found (set EMBEDSPACE_CORPORA_DIR)")
    return path


def list_corpora() -> dict[str, str]:
    """Return ``{name: description}`` of the shipped corpora."""
    return {name: corpus.description for name, corpus in sorted(CORPORA.items())}


def corpus_chunks(name: str, *, chunk_rows: int) -> Iterator:
    """Yield a shipped corpus as DataFrames with ``text`` first (used by :mod:`embedspace.sources`)."""
    import pandas as pd

    corpus = CORPORA.get(name)
    path = corpus_path(name)
    opener = gzip.open if path.name.endswith(".gz") else open
    records = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if corpus.keep is not None and not corpus.keep(record):
                continue
            records.append(record)
            if len(records) >= chunk_rows:
                yield _frame(pd, records)
                records = []
    if records:
        yield _frame(pd, records)


def _frame(pd, records):
    frame = pd.DataFrame.from_records(records)
    return frame[["text"] + [c for c in frame.columns if c != "text"]]
