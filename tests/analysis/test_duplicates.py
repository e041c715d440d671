"""Exact and near duplicate groups: real sentences and their copies, FAISS against exact numpy, the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from helpers import assert_one_error_line

import embedspace as es
from embedspace.analysis import duplicate_groups, resolve_threshold
from embedspace.search import NeighbourSearch


def _typo(text: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    i = rng.choice(letters)
    return text[:i] + text[i + 1:]


@pytest.fixture(scope="module")
def newsgroups():
    """The first 6,000 20 Newsgroups posts (read once for both fixtures below)."""
    return es.read("corpus:20newsgroups")["text"].head(6000)


@pytest.fixture(scope="module")
def copies(encoder, newsgroups):
    """300 distinct 20 Newsgroups posts, then a copy of each of the first 60: 20 exact (case/space), 40 with a typo.

    Headers, signatures and quoted replies are removed (replies quoting each other are real near duplicates).
    """
    from sklearn.datasets._twenty_newsgroups import (strip_newsgroup_footer, strip_newsgroup_header,
                                                     strip_newsgroup_quoting)

    rng = random.Random(0)
    docs = newsgroups.head(1500)
    bodies = [strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(t)))[:600] for t in docs]
    base = list(dict.fromkeys(t.strip() for t in bodies if len(t.split()) >= 30))[:300]
    exact = ["  " + s.upper().replace(" ", "   ") for s in base[:20]]
    near = [_typo(s, rng) for s in base[20:60]]
    texts = base + exact + near
    source = list(range(300)) + list(range(20)) + list(range(20, 60))
    import pandas as pd

    return es.embed(pd.DataFrame({"text": texts, "source": source}), encoder=encoder, progress=False)


def _pairs(labels):
    out = set()
    for g in set(labels) - {-1}:
        rows = np.flatnonzero(labels == g)
        out |= {(int(a), int(b)) for i, a in enumerate(rows) for b in rows[i + 1:]}
    return out


def test_copies_are_grouped_and_distinct_sentences_are_not(copies):
    groups = es.find_duplicates(copies)
    labels = duplicate_groups(copies)
    source = copies.table["source"].to_numpy()
    truth = {(a, b) for a in range(len(source)) for b in range(a + 1, len(source)) if source[a] == source[b]}
    found = _pairs(labels)
    recall = len(found & truth) / len(truth)
    precision = len(found & truth) / max(len(found), 1)
    assert recall >= 0.95 and precision >= 0.9, (recall, precision)  # 1.0 and 0.923 measured (0.983, 0.967 at 0.95)
    exact_groups = groups[groups["exact"]]
    assert len(exact_groups) == 20  # every case/space copy, whatever its vector
    assert set(map(tuple, exact_groups["rows"].map(sorted))) == {(i, 300 + i) for i in range(20)}
    assert (groups["size"] >= 2).all() and list(groups["group"]) == list(range(len(groups)))
    for g in groups.itertuples():
        unit = copies.vectors[g.rows]
        assert g.min_similarity == pytest.approx(float((unit @ unit.T).min()), abs=1e-4)
        assert g.central == g.rows[0]


def test_threshold_one_keeps_only_exact_copies(copies):
    groups = es.find_duplicates(copies, threshold=1.0)
    assert groups["exact"].all() and len(groups) == 20
    loose = es.find_duplicates(copies, threshold="paraphrase")
    assert len(_pairs(duplicate_groups(copies, "paraphrase"))) >= len(_pairs(duplicate_groups(copies)))
    assert loose["size"].sum() >= 100


def test_chained_pairs_form_one_group_with_its_smallest_similarity():
    angles = np.radians([0.0, 14.0, 28.0, 90.0])  # cos 14 deg = 0.970, cos 28 deg = 0.883
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    import pandas as pd

    space = es.EmbeddingSet(vectors, pd.DataFrame({"text": ["a", "b", "c", "d"]}))
    groups = es.find_duplicates(space, threshold=0.95)
    assert len(groups) == 1 and sorted(groups["rows"][0]) == [0, 1, 2]
    assert groups["central"][0] == 1
    assert groups["min_similarity"][0] == pytest.approx(np.cos(np.radians(28.0)), abs=1e-5)


def test_range_search_matches_exact_numpy(copies):
    vectors = copies.vectors
    sims = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    rows, cols = np.nonzero(np.triu(sims >= 0.8, k=1))
    truth = set(zip(rows.tolist(), cols.tolist()))
    for exact in (True, False):
        found = set()
        for left, right, similarity in NeighbourSearch(vectors, exact=exact).pairs_above(0.8):
            assert (similarity >= 0.8).all() and (left < right).all()
            np.testing.assert_allclose(similarity, sims[left, right], atol=1e-5)
            found |= set(zip(left.tolist(), right.tolist()))
        if exact:
            assert found == truth
        else:
            assert found <= truth and len(found) >= 0.95 * len(truth)


def test_drop_duplicates_keeps_the_central_member(copies):
    groups = es.find_duplicates(copies)
    kept = es.drop_duplicates(copies)
    assert len(kept) == len(copies) - int((groups["size"] - 1).sum())
    rows = set(kept.table["source_row"])
    for g in groups.itertuples():
        assert g.central in rows and not (set(g.rows[1:]) & rows)


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, "strict", True, float("nan")])
def test_bad_thresholds_are_refused(bad):
    with pytest.raises(es.InputError, match="threshold"):
        resolve_threshold(bad)


def test_presets_and_one_document(copies):
    assert resolve_threshold("near") == "near" and resolve_threshold("0.9") == 0.9
    with pytest.raises(es.InputError, match="at least 2 documents"):
        es.find_duplicates(copies.select([0]))


def test_cli_duplicates_json_and_drop(copies, cli, tmp_path):
    source = tmp_path / "copies.set"
    copies.save(source)
    status, out, err = cli("duplicates", source, "--json", "--drop", tmp_path / "dedup.set")
    assert status == 0, err
    groups = json.loads(out)["groups"]
    assert groups and {"group", "rows", "min_similarity"} <= set(groups[0])
    kept = es.load(tmp_path / "dedup.set")
    assert len(kept) == len(copies) - sum(len(g["rows"]) - 1 for g in groups)
    status, out, err = cli("duplicates", source, "--drop", tmp_path / "dedup.set")
    assert_one_error_line(status, out, err, "exists")
    status, out, err = cli("duplicates", source, "--threshold", "1.5")
    assert_one_error_line(status, out, err, "(0, 1]")
    status, out, err = cli("duplicates", source)
    assert status == 0 and "duplicate groups" in out


def test_cli_outliers(copies, cli, tmp_path):
    source = tmp_path / "copies.set"
    copies.save(source)
    status, out, err = cli("outliers", source, "--json", "--top", "5", "-o", tmp_path / "scored.set")
    assert status == 0, err
    result = json.loads(out)
    assert result["method"] == "contrast" and [r["rank"] for r in result["rows"]] == [1, 2, 3, 4, 5]
    assert {"rank", "row", "score", "text", "source"} <= set(result["rows"][0])
    scores = [r["score"] for r in result["rows"]]
    assert scores == sorted(scores, reverse=True)
    scored = es.load(tmp_path / "scored.set")
    assert scored.table["outlier_score"].max() == pytest.approx(scores[0])
    copies.select([0]).save(tmp_path / "one.set")
    status, out, err = cli("outliers", tmp_path / "one.set")
    assert_one_error_line(status, out, err, "at least 2 documents")
    status, out, err = cli("outliers", tmp_path / "one.set", "--reference", source, "--json")
    assert status == 0 and len(json.loads(out)["rows"]) == 1
    status, out, err = cli("outliers", source, "--top", "0")
    assert_one_error_line(status, out, err, "--top")
    other = es.EmbeddingSet(np.ones((3, 384), dtype=np.float32), copies.table.head(3),
                            es.ModelIdentity(name="another-model", weights_sha256="0" * 64, dim=384, normalized=True))
    other.save(tmp_path / "other.set")
    status, out, err = cli("outliers", source, "--reference", tmp_path / "other.set")
    assert_one_error_line(status, out, err, "another-model")
    (tmp_path / "empty.txt").write_text("")
    status, out, err = cli("outliers", source, "--reference", tmp_path / "empty.txt")
    assert_one_error_line(status, out, err)


def _python_grams(text: str) -> set:
    from embedspace.analysis.shingles import GRAM, lexical_form

    s = lexical_form(text).encode("utf-8")
    s = s + b"\0" * (GRAM - len(s)) if 0 < len(s) < GRAM else s
    return {s[i:i + GRAM] for i in range(len(s) - GRAM + 1)}


def test_shingle_overlap_matches_python_sets():
    from embedspace.analysis.shingles import SKETCH, lexical_form, overlap, shingle_sets

    assert lexical_form("In article <1@x.edu>, Bo writes:\n> Hello,  WORLD!") == "hello world"
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 8))) for _ in range(3000)]
    texts = ["Hello,  WORLD!", "hello world", "> hello world\n:: again", "hi", "", "!!!", " ".join(words[:100]),
             " ".join(words[50:100]), " ".join(words[:2000]), " ".join(words[500:2000] + words[2500:2900])]
    left = np.array([0, 0, 3, 4, 5, 6, 8, 1, 6], dtype=np.int64)
    right = np.array([1, 2, 3, 0, 5, 7, 9, 2, 8], dtype=np.int64)
    containment, ratio = overlap(shingle_sets(texts), left, right)
    for p, (a, b) in enumerate(zip(left, right)):
        ga, gb = _python_grams(texts[a]), _python_grams(texts[b])
        small, large = sorted((len(ga), len(gb)))
        truth = len(ga & gb) / small if small else 0.0
        assert ratio[p] == pytest.approx(small / large if large else 0.0, abs=1e-6)
        exact = max(len(ga), len(gb)) <= SKETCH
        assert containment[p] == pytest.approx(truth, abs=1e-6 if exact else 0.08), (p, truth)


@pytest.fixture(scope="module")
def long_copies(encoder, newsgroups):
    """10 long 20 Newsgroups posts (past the model's 256 tokens) and three copies of each that cosine misses most:
    quoted under an attribution line with a short answer, first half only, sentences reversed. Posts sharing an
    8-word passage with one kept before are skipped (20 Newsgroups holds cross-posts: real near copies)."""
    import re

    from sklearn.datasets._twenty_newsgroups import (strip_newsgroup_footer, strip_newsgroup_header,
                                                     strip_newsgroup_quoting)

    posts, seen = [], set()
    for raw in newsgroups.iloc[2000:]:
        body = " ".join(strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(raw))).split())
        words = body.lower().split()
        grams = {tuple(words[j:j + 8]) for j in range(len(words) - 7)}
        if 300 <= len(words) <= 450 and not grams & seen:
            posts.append(body)
            seen |= grams
            if len(posts) == 10:
                break
    texts, source = [], []
    for i, post in enumerate(posts):
        words = post.split()
        sentences = re.split(r"(?<=[.!?])\s+", post)
        answer = " ".join(posts[(i + 1) % len(posts)].split()[:30])
        quoted = "\n".join("> " + " ".join(words[j:j + 12]) for j in range(0, len(words), 12))
        for text in (post, f"In article <{i}@news.example.edu>, someone writes:\n{quoted}\n\n{answer}",
                     " ".join(words[: len(words) // 2]), " ".join(reversed(sentences))):
            texts.append(text)
            source.append(i)
    import pandas as pd

    return es.embed(pd.DataFrame({"text": texts, "source": source}), encoder=encoder, progress=False)


def test_near_rule_finds_copies_that_cosine_misses(long_copies):
    source = long_copies.table["source"].to_numpy()
    truth = {(a, b) for a in range(len(source)) for b in range(a + 1, len(source)) if source[a] == source[b]}

    def scores(threshold):
        found = _pairs(duplicate_groups(long_copies, threshold))
        return len(found & truth) / len(truth), len(found & truth) / max(len(found), 1)

    recall, precision = scores("near")
    cosine_recall, _ = scores(0.85)
    assert recall >= 0.85 and precision == 1.0, (recall, precision)  # 0.90 measured (two copies missed of 30)
    assert cosine_recall <= recall - 0.2, (cosine_recall, recall)


def test_map_columns_rank_outliers_and_mark_copies(copies):
    from embedspace.analysis import add_map_columns

    glosh = np.linspace(0, 1, len(copies), dtype=np.float32)
    mapped = add_map_columns(copies.assign(outlier_score=glosh))
    table = mapped.table
    np.testing.assert_array_equal(table["glosh"].to_numpy(), glosh)
    score = table["outlier_score"].to_numpy()
    assert score.min() >= 0 and score.max() <= 1 and score.dtype == np.float32
    knn = es.outlier_scores(copies)
    assert np.corrcoef(np.argsort(np.argsort(knn)), score)[0, 1] > 0.999  # the rank of the default method
    np.testing.assert_array_equal(table["duplicate_group"].to_numpy(), duplicate_groups(copies))
    with pytest.raises(es.InputError, match="not mapped"):
        add_map_columns(copies)
    with pytest.raises(es.InputError, match="duplicate_group"):
        add_map_columns(mapped)


def test_cli_dedupe_on_embed_index_and_map(copies, sentences, cli, tmp_path):
    import pandas as pd

    base = sentences[:40]
    texts = base + ["  " + s.upper() for s in base[:5]] + [s.replace(" ", "  ", 2) + " " for s in base[5:10]]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "texts.csv", index=False)
    status, out, err = cli("embed", tmp_path / "texts.csv", "-o", tmp_path / "texts.set", "--dedupe", "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["n_dropped"] >= 10 and summary["n"] == 50 - summary["n_dropped"]
    written = es.load(tmp_path / "texts.set")
    kept = set(written.table["source_row"])
    assert len(written) == summary["n"] and all(len({i, 40 + i} & kept) == 1 for i in range(10))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch set left behind

    copies.save(tmp_path / "copies.set")
    dropped = int((es.find_duplicates(copies)["size"] - 1).sum())
    status, out, err = cli("index", tmp_path / "copies.set", "-o", tmp_path / "copies.index", "--dedupe", "--json")
    assert status == 0, err
    assert json.loads(out)["n_dropped"] == dropped and json.loads(out)["n"] == len(copies) - dropped

    status, out, err = cli("map", tmp_path / "copies.set", "-o", tmp_path / "map", "--dedupe", "--json", "--quiet")
    assert status == 0, err
    assert json.loads(out)["n_dropped"] == dropped
    documents = pd.read_parquet(tmp_path / "map" / "documents.parquet")
    assert len(documents) == len(copies) - dropped and (documents["duplicate_group"] == -1).all()
    assert {"glosh", "outlier_score", "source_row"} <= set(documents.columns)
    assert documents["outlier_score"].between(0, 1).all()


def test_file_rows_read_a_saved_set_like_its_memory_map(copies, tmp_path, monkeypatch):
    from embedspace.analysis import _rows
    from embedspace.analysis._rows import FileRows, file_rows

    monkeypatch.setattr(_rows, "_FEW_ROWS", 20)  # scattered rows past 20 are read in windows of 64 rows
    monkeypatch.setattr(_rows, "_BLOCK_ROWS", 64)
    copies.save(tmp_path / "copies.set")
    mapped = es.load(tmp_path / "copies.set").vectors
    rows = file_rows(mapped)
    assert isinstance(rows, FileRows) and rows.shape == mapped.shape
    assert file_rows(mapped[5:9]) is not None and not isinstance(file_rows(mapped[5:9]), FileRows)  # a view: as is
    rng = np.random.default_rng(0)
    for item in (slice(0, 7), slice(350, 400), slice(3, 90, 4), rng.integers(0, len(copies), 50),
                 np.sort(rng.choice(len(copies), 200, replace=False)), -1):
        np.testing.assert_array_equal(rows[item], np.asarray(mapped[item]))
