"""Search shows one hit per distinct text, with its number of copies (issue 31, item 5)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import embedspace as es
from embedspace.search.distinct import collapse_identical

GUITAR = "A man is playing a guitar."


@pytest.fixture(scope="module")
def repeated(tmp_path_factory, sentences, encoder):
    """120 distinct sentences; the guitar sentence 3 times (white space varies), another one 40 times."""
    from embedspace.cli import main

    root = tmp_path_factory.mktemp("distinct")
    base = [s for s in dict.fromkeys(sentences[:200]) if " ".join(s.split()) != GUITAR][:120]
    many = base[5]
    texts = base + [GUITAR, "  A man is playing  a guitar. ", GUITAR + "\n"] + [many] * 39
    table = pd.DataFrame({"text": texts, "copies": np.arange(len(texts)) % 2})  # a metadata column named copies
    es.embed(table, encoder=encoder, progress=False).save(root / "docs.set")
    assert main(["index", str(root / "docs.set"), "-o", str(root / "docs.index"), "--quiet"]) == 0
    return root, many


def test_search_collapses_identical_texts_and_counts_them(cli, repeated):
    root, many = repeated
    status, out, err = cli("search", root / "docs.index", GUITAR, many, "-k", "3", "--json")
    assert status == 0, err
    guitar, crowded = json.loads(out)["queries"]
    hits = guitar["results"]
    assert list(hits[0])[:5] == ["rank", "row", "score", "text", "copies"] and "meta_copies" in hits[0]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert " ".join(hits[0]["text"].split()) == GUITAR and hits[0]["copies"] == 3
    assert len({" ".join(h["text"].split()) for h in hits}) == 3, "three distinct texts"
    assert crowded["results"][0]["text"] == many and crowded["results"][0]["copies"] == 40
    assert len({h["text"] for h in crowded["results"]}) == 3, "40 copies do not crowd out the other hits"

    status, out, err = cli("search", root / "docs.index", GUITAR, "-k", "3", "--json", "--keep-duplicates")
    assert status == 0, err
    kept = json.loads(out)["queries"][0]["results"]
    assert all(" ".join(h["text"].split()) == GUITAR for h in kept) and "copies" in kept[0] and "meta_copies" not in kept[0]

    status, out, err = cli("search", root / "docs.index", GUITAR, "-k", "2")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["rank", "score", "row", "copies"] and lines[2].split()[3] == "3"


def test_api_distinct_and_the_collapse_rule(repeated, encoder):
    root, many = repeated
    index = es.load_index(root / "docs.index")
    hits = index.search([many], k=5, distinct=True, encoder=encoder)
    assert list(hits.columns) == ["query", "rank", "row", "score", "text", "copies", "meta_copies"]
    assert hits["copies"].tolist()[0] == 40 and hits["text"].nunique() == 5
    plain = index.search([many], k=5, encoder=encoder)
    assert list(plain.columns) == ["query", "rank", "row", "score", "text", "copies"], "the metadata column, unrenamed"
    assert plain["text"].nunique() == 1, "without distinct=True the copies fill the hits"

    scores = np.array([[0.9, 0.9, 0.8, 0.7, -np.inf]], dtype=np.float32)
    rows = np.array([[4, 7, 2, 9, -1]])
    texts = {4: "a  b", 7: "a b", 2: "c", 9: "d"}
    s, r, c, complete = collapse_identical(scores, rows, texts, 2)
    assert r.tolist() == [[4, 2]] and c.tolist() == [[2, 1]] and complete.tolist() == [True]
    s, r, c, complete = collapse_identical(scores[:, :2], rows[:, :2], texts, 2)
    assert r.tolist() == [[4, -1]] and c.tolist() == [[2, 0]] and complete.tolist() == [False], "not yet final"
