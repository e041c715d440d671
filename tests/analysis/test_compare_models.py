"""compare models: identical, rotated and scaled spaces agree fully; different texts are refused; real backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_one_error_line, short_posts

import embedspace as es
from embedspace.errors import InputError


@pytest.fixture(scope="module")
def posts(encoder):
    docs = es.read("corpus:20newsgroups")
    docs = short_posts(docs[docs["label"].isin(["rec.autos", "sci.space", "sci.med", "comp.graphics"])])
    docs = docs.groupby("label", group_keys=False).head(100).reset_index(drop=True)
    return es.embed(docs, encoder=encoder, progress=False)


def test_identical_rotated_scaled_and_wider_spaces_agree(posts):
    same = es.compare_models(posts, posts, progress=False).metrics
    assert same["knn_overlap"] == pytest.approx(1.0) and same["cka"] == pytest.approx(1.0)
    assert same["cka_debiased"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(768, 384)))  # 384 orthonormal columns in 768 dimensions
    wider = es.EmbeddingSet(2.5 * posts.vectors @ basis.T, posts.table)
    moved = es.compare_models(posts, wider, progress=False).metrics
    assert moved["dims"] == [384, 768]
    assert moved["cka"] == pytest.approx(1.0, abs=1e-6) and moved["cka_debiased"] == pytest.approx(1.0, abs=1e-6)
    assert moved["knn_overlap"] > 0.99
    noisy = es.EmbeddingSet(posts.vectors + rng.normal(scale=0.05, size=posts.vectors.shape), posts.table)
    worse = es.compare_models(posts, noisy, progress=False)
    assert worse.metrics["knn_overlap"] < 0.9 and worse.metrics["cka"] < 1.0
    assert len(worse.documents) == len(posts) and worse.documents["overlap"].between(0, 1).all()
    assert worse.clusters["overlap"].is_monotonic_increasing


def test_different_texts_are_named(posts, cli, tmp_path):
    shuffled = posts.select(np.r_[1, 0, np.arange(2, len(posts))])
    with pytest.raises(InputError, match=r"2 of \d+ rows hold different texts .*rows 0, 1"):
        es.compare_models(posts, shuffled)
    with pytest.raises(InputError, match="same texts"):
        es.compare_models(posts, posts.select(np.arange(10)))
    a, b = tmp_path / "a.set", tmp_path / "b.set"
    posts.save(a)
    shuffled.save(b)
    status, out, err = cli("compare", "models", a, b, "--quiet")
    assert_one_error_line(status, out, err, "different texts")


@pytest.mark.slow
def test_cli_json(posts, cli, tmp_path):
    a = tmp_path / "a.set"
    posts.save(a)
    status, out, err = cli("compare", "models", a, a, "--json", "--quiet", "-o", tmp_path / "o")
    assert status == 0, err
    data = json.loads(out)
    assert {"knn_overlap", "cka", "n"} <= set(data)
    assert data["knn_overlap"] == pytest.approx(1.0) and data["n"] == len(posts)
    assert (tmp_path / "o" / "documents.parquet").exists()
