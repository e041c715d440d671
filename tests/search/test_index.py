"""FAISS indexes on real sentence embeddings: kinds, tuning, exact filters, persistence, growth."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import embedspace as es
from embedspace.search import ann as _ann
from embedspace.embeddingset import ModelIdentity
from embedspace.errors import FormatError, InputError, ModelMismatchError


@pytest.fixture(scope="module")
def space(encoder, sentences):
    """900 real STS-B sentences with metadata, embedded with the default model."""
    texts = sentences[:900]
    table = pd.DataFrame({
        "text": texts,
        "bucket": np.arange(len(texts)) % 10,
        "length": [len(t.split()) for t in texts],
        "half": np.where(np.arange(len(texts)) < 450, "first", "second"),
    })
    return es.embed(table, encoder=encoder)


@pytest.fixture(scope="module")
def queries(encoder, sentences):
    """100 held-out real sentences as query vectors."""
    texts = sentences[900:1000]
    return texts, encoder.encode(texts)


def _exact(vectors, queries, k, mask=None):
    scores = queries @ vectors.T
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def _recall(found, truth):
    return np.mean([len(set(f[f >= 0]) & set(t[t >= 0])) / max(len(t[t >= 0]), 1) for f, t in zip(found, truth)])


@pytest.fixture(scope="module")
def built(space):
    return {kind: es.build_index(space, kind=kind, lexical=False) for kind in ("flat", "hnsw", "ivf", "ivfpq")}


def test_flat_is_exact(space, queries, built):
    _, vectors = queries
    scores, rows = built["flat"].search_vectors(vectors, 10)
    truth_scores, truth_rows = _exact(space.vectors, vectors, 10)
    assert np.allclose(scores, truth_scores, atol=1e-5)
    differ = rows != truth_rows  # only where two rows tie to float precision
    assert differ.mean() < 0.01 and np.allclose(scores[differ], truth_scores[differ], atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq"])
def test_approximate_kinds_reach_the_tuned_recall(space, queries, built, kind):
    index = built[kind]
    assert index.kind == kind
    assert index.params["tuned_recall"] >= 0.95 and index.params["tuning_queries"] == 450  # half of 900 held out
    _, vectors = queries
    scores, rows = index.search_vectors(vectors, 10)
    _, truth = _exact(space.vectors, vectors, 10)
    assert _recall(rows, truth) >= 0.93  # held-out queries, tuned on own vectors
    exact_scores = np.einsum("md,mkd->mk", vectors, space.vectors[rows])
    assert np.allclose(scores, exact_scores, atol=1e-4)  # scores are exact cosines (ivfpq re-ranks)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_hnsw_effort_has_headroom_over_its_tuning(built):
    params = built["hnsw"].params
    reached = params["efSearch_reaching_target"]
    # doubled, and at least 2·M: held-out rows over-promise on collections of near-copies
    assert params["efSearch"] == max(2 * reached, 2 * params["M"])
    assert params["efSearch"] >= 2 * params["M"] > 2 * reached  # the floor binds on this small set


def test_auto_choice_follows_size_and_memory(space):
    assert _ann.choose_kind(49_999, 384, None) == "flat"
    assert _ann.choose_kind(50_000, 384, None) == "hnsw"
    assert _ann.choose_kind(1_000_000, 384, _ann.parse_memory("4GB")) == "hnsw"
    assert _ann.choose_kind(1_000_000, 384, _ann.parse_memory("1GB")) == "ivfpq"
    with pytest.raises(InputError, match="raise memory_budget="):
        _ann.choose_kind(1_000_000, 384, _ann.parse_memory("10MB"))
    assert _ann.parse_memory("2GB") == 2 * 10**9 and _ann.parse_memory("1.5GiB") == int(1.5 * 2**30)
    for bad in ("lots", "-1GB", "0", "2XB"):
        with pytest.raises(InputError, match="memory budget"):
            _ann.parse_memory(bad)
    assert es.build_index(space, lexical=False).kind == "flat"
    small = es.build_index(space, memory_budget="1MB", lexical=False)  # floats (1.4 MB) do not fit
    assert small.kind == "ivfpq" and small.info["estimated_bytes"] <= 10**6
    assert _ann.default_params("ivf", 1_000_000, 384)["nlist"] == 4000


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
@pytest.mark.parametrize("through_faiss", [False, True])
def test_filtered_search_is_the_true_top_k_among_matches(space, queries, built, kind, through_faiss, monkeypatch):
    if through_faiss:  # force the IDSelector path that large sets take
        monkeypatch.setattr(_ann, "SUBSET_EXACT_LIMIT", 0)
    _, vectors = queries
    mask = space.table["bucket"].to_numpy() == 3
    scores, rows = built[kind].search_vectors(vectors, 10, where="bucket == 3")
    assert np.all(mask[rows])
    truth_scores, truth = _exact(space.vectors, vectors, 10, mask)
    wanted = 1.0 if kind == "flat" or not through_faiss else 0.99
    assert _recall(rows, truth) >= wanted


def test_filter_with_few_matches_pads(space, built, queries):
    _, vectors = queries
    mask = np.zeros(len(space), dtype=bool)
    mask[[5, 17, 600]] = True
    scores, rows = built["hnsw"].search_vectors(vectors[:2], 5, where=mask)
    assert set(rows[0, :3]) == {5, 17, 600} and np.all(rows[:, 3:] == -1) and np.all(np.isinf(scores[:, 3:]))
    _, rows = built["flat"].search_vectors(vectors[:1], 3, where="bucket == 99")
    assert np.all(rows == -1)


def test_search_returns_a_table_with_text_and_metadata(space, built):
    hits = built["flat"].search(["A man is playing a guitar.", "Stock markets fell"], k=4, where="half == 'second'")
    assert list(hits.columns) == ["query", "rank", "row", "score", "text", "bucket", "length", "half"]
    assert len(hits) == 8 and (hits["half"] == "second").all() and (hits["row"] >= 450).all()
    assert hits["rank"].tolist() == [1, 2, 3, 4] * 2
    assert hits["text"].tolist() == space.table["text"].iloc[hits["row"]].tolist()
    assert "guitar" in hits["text"].iloc[0].lower()


def test_search_refuses_bad_arguments(built):
    index = built["flat"]
    with pytest.raises(InputError, match="k must be"):
        index.search(["x"], k=0)
    with pytest.raises(InputError, match="query 2 is empty"):
        index.search(["x", "  "])
    with pytest.raises(InputError, match="no query"):
        index.search([])
    with pytest.raises(InputError, match="unknown search mode"):
        index.search(["x"], mode="fuzzy")
    with pytest.raises(InputError, match="unknown column 'nope'"):
        index.search(["x"], where="nope == 1")
    with pytest.raises(InputError, match="built without BM25"):
        index.search(["x"], mode="bm25")
    with pytest.raises(ModelMismatchError, match="384-dimensional"):
        index.search_vectors(np.zeros((1, 768), np.float32), 5)


class _OtherModel:
    """An encoder of another model: only its identity matters to the check."""

    identity = ModelIdentity(name="other/model", weights_sha256="f" * 64, dim=384, normalized=True)
    dim = 384

    def encode(self, texts, progress=None):  # pragma: no cover - refused before encoding
        raise AssertionError("must not be called")


def test_queries_from_another_model_are_refused(built):
    with pytest.raises(ModelMismatchError) as caught:
        built["flat"].search(["x"], encoder=_OtherModel())
    assert "model (384-d, weights ffffffff)" in str(caught.value) and "all-MiniLM-L6-v2" in str(caught.value)


def test_save_load_round_trip_refers_to_the_set(space, tmp_path, queries):
    space.save(tmp_path / "s.set")
    index = es.build_index(tmp_path / "s.set", kind="hnsw")
    index.save(tmp_path / "s.index")
    manifest = json.loads((tmp_path / "s.index" / "manifest.json").read_text())
    assert manifest["format"] == "embedspace.index" and manifest["kind"] == "hnsw" and manifest["metric"] == "cosine"
    assert manifest["n"] == 900 and manifest["d"] == 384 and manifest["model"]["dim"] == 384
    assert manifest["params"]["efSearch"] >= 16 and manifest["params"]["M"] == 32
    (source,) = manifest["sources"]
    assert source["path"] == "../s.set" and len(source["manifest_sha256"]) == 64 and not source["embedded"]
    assert "index.faiss" in manifest["files"] and any(f.startswith("bm25/") for f in manifest["files"])
    loaded = es.load_index(tmp_path / "s.index")
    _, vectors = queries
    assert np.array_equal(loaded.search_vectors(vectors, 10)[1], index.search_vectors(vectors, 10)[1])
    texts = ["A woman is slicing an onion."]
    pd.testing.assert_frame_equal(loaded.search(texts, mode="hybrid"), index.search(texts, mode="hybrid"))
    # moved together: the relative path still finds the set
    shutil.move(tmp_path / "s.set", tmp_path / "moved.set")
    with pytest.raises(FormatError, match="is missing"):
        es.load_index(tmp_path / "s.index")
    shutil.move(tmp_path / "moved.set", tmp_path / "s.set")
    assert len(es.load_index(tmp_path / "s.index")) == 900


def test_changed_set_is_detected(space, tmp_path):
    space.save(tmp_path / "s.set")
    es.build_index(tmp_path / "s.set", lexical=False).save(tmp_path / "i")
    space.select(np.arange(900)[::-1]).save(tmp_path / "s.set", overwrite=True)
    with pytest.raises(FormatError, match="changed after the index was built"):
        es.load_index(tmp_path / "i")


def test_in_memory_set_is_kept_inside_the_index(space, tmp_path):
    index = es.build_index(space.select(np.arange(100)), lexical=False)
    index.save(tmp_path / "i")
    manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
    assert manifest["sources"][0]["embedded"] and (tmp_path / "i" / "sets" / "0" / "vectors.npy").is_file()
    assert es.load_index(tmp_path / "i").search(["a dog runs"], k=1)["row"].iloc[0] < 100


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_appends_rows_with_stable_ids(space, tmp_path, kind):
    first, second = space.select(np.arange(600)), space.select(np.arange(600, 900))
    first.save(tmp_path / "a.set")
    second.save(tmp_path / "b.set")
    index = es.build_index(tmp_path / "a.set", kind=kind)
    before = index.search(["A man is playing a flute."], k=5)
    index.add(tmp_path / "b.set")
    assert len(index) == 900 and index.params.get("tuned_recall", 1.0) >= 0.95
    index.save(tmp_path / "i")
    loaded = es.load_index(tmp_path / "i")
    assert len(loaded.table) == 900 and loaded.table["text"].tolist() == space.texts
    probe = space.texts[700]
    top = loaded.search([probe], k=1, mode="hybrid")
    assert top["row"].iloc[0] == 700 and top["text"].iloc[0] == probe
    if kind == "flat":  # the old rows answer exactly as before
        after = loaded.search(["A man is playing a flute."], k=5, where=np.arange(900) < 600)
        pd.testing.assert_frame_equal(after, before)
    other = es.EmbeddingSet(second.vectors, second.table, ModelIdentity("other/model", "e" * 64, 384, True))
    with pytest.raises(ModelMismatchError, match="other/model"):
        loaded.add(other)
    narrow = es.EmbeddingSet(np.ones((2, 8), np.float32), pd.DataFrame({"text": ["a", "b"]}), None)
    with pytest.raises(ModelMismatchError, match="8-dimensional"):
        loaded.add(narrow)
    assert len(loaded) == 900


def test_bm25_finds_exact_terms(space):
    index = es.build_index(space, lexical=True)
    rare = next(t for t in space.texts if "guitar" in t.lower())
    hits = index.search(["guitar"], k=5, mode="bm25")
    assert len(hits) > 0 and all("guitar" in t.lower() for t in hits["text"])
    assert rare in hits["text"].tolist() or len(hits) == 5
    hybrid = index.search(["guitar"], k=5, mode="hybrid")
    assert hybrid["score"].is_monotonic_decreasing and len(hybrid) == 5
    none = index.search(["zzzxxqq"], k=5, mode="bm25")
    assert len(none) == 0
