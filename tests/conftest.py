"""Shared fixtures: an isolated cache, the real default model loaded once, real data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora"
STS_DEV = SHARED / "sts" / "stsbenchmark" / "sts-dev.csv"
STS_TRAIN = SHARED / "sts" / "stsbenchmark" / "sts-train.csv"


def pytest_configure(config):
    # One cache for the whole run, outside the user's own cache; set before any test
    # imports embedspace so every code path (and every subprocess) sees it.
    if "EMBEDSPACE_CACHE_DIR" not in os.environ or os.environ.get("EMBEDSPACE_TEST_FRESH_CACHE"):
        base = Path(os.environ.get("EMBEDSPACE_TEST_CACHE", REPO / ".pytest_cache" / "embedspace-cache"))
        os.environ["EMBEDSPACE_CACHE_DIR"] = str(base)
    os.environ.setdefault("EMBEDSPACE_QUIET", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def encoder():
    """The default model with the default backend, loaded once."""
    from embedspace.encoding.encoders import load_encoder

    enc = load_encoder()
    enc.encode(["warm up"])
    return enc


@pytest.fixture(scope="session")
def torch_encoder():
    """The reference torch backend, loaded once."""
    from embedspace.encoding.encoders import load_encoder

    enc = load_encoder(backend="torch")
    enc.encode(["warm up"])
    return enc


def _sts_sentences(path: Path, limit: int) -> list[str]:
    sentences = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            sentences += [fields[5], fields[6]]
    return list(dict.fromkeys(sentences))[:limit]


@pytest.fixture(scope="session")
def sentences():
    """1,000 distinct real sentences from STS-B train."""
    return _sts_sentences(STS_TRAIN, 1000)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (status, stdout, stderr)."""
    from embedspace.cli import main

    def run(*argv):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def snapshot(path: Path) -> dict:
    """Bytes of every file below ``path`` (to prove nothing changed)."""
    path = Path(path)
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def short_posts(docs):
    """Newsgroup posts cut to their subject line and the first 600 characters of the body.

    Headers are dropped; quick to embed in tests while keeping each post's topic.
    """
    subject = docs["text"].str.extract(r"(?m)^Subject:(.*)$", expand=False).fillna("")
    body = docs["text"].str.split("\n\n", n=1).str[1].fillna("")
    docs = docs.copy()
    docs["text"] = (subject.str.strip() + "\n" + body.str.slice(0, 600)).str.strip()
    return docs
