"""Outlier and novelty scores: FAISS paths against exact numpy / scikit-learn, quality on real posts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import short_posts

import embedspace as es
from embedspace.analysis import DEFAULT_METHOD
from embedspace.search import NeighbourSearch


@pytest.fixture(scope="module")
def posts(encoder):
    """Short 20 Newsgroups test posts of four groups, embedded with the default model."""
    docs = es.read("corpus:20newsgroups")
    groups = ["sci.space", "rec.autos", "comp.graphics", "talk.politics.guns"]
    docs = short_posts(docs[docs["label"].isin(groups)])
    docs = docs.groupby("label", group_keys=False).head(150).reset_index(drop=True)
    return es.embed(docs, encoder=encoder, progress=False)


def _auroc(scores, positive) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))


def _exact_mean_distance(queries, base, k, leave_out_self=False):
    sims = np.asarray(queries, dtype=np.float64) @ np.asarray(base, dtype=np.float64).T
    if leave_out_self:
        np.fill_diagonal(sims, -np.inf)
    return 1.0 - np.sort(sims, axis=1)[:, ::-1][:, :k].mean(axis=1)


def test_knn_matches_exact_numpy(posts):
    space = posts.select(np.arange(0, 600, 2))
    reference = posts.select(np.arange(1, 600, 2))
    typical = np.median(_exact_mean_distance(reference.vectors, reference.vectors, 10, True))
    got = es.outlier_scores(space, reference=reference, method="knn", k=10)
    np.testing.assert_allclose(got, _exact_mean_distance(space.vectors, reference.vectors, 10) / typical, atol=1e-5)
    own = es.outlier_scores(space, method="knn", k=10)
    exact = _exact_mean_distance(space.vectors, space.vectors, 10, True)
    np.testing.assert_allclose(own, exact / np.median(exact), atol=1e-5)


def test_contrast_matches_exact_numpy(posts):
    space = posts.select(np.arange(0, 600, 2))
    reference = posts.select(np.arange(1, 600, 2))
    typical = np.median(_exact_mean_distance(reference.vectors, reference.vectors, 10, True))
    near = _exact_mean_distance(space.vectors, reference.vectors, 10)
    everything = np.concatenate([reference.vectors, space.vectors])
    sims = space.vectors.astype(np.float64) @ everything.astype(np.float64).T
    sims[np.arange(len(space)), len(reference) + np.arange(len(space))] = -np.inf  # each row's own
    wide = 1.0 - np.sort(sims, axis=1)[:, ::-1][:, :20].mean(axis=1)
    got = es.outlier_scores(space, reference=reference, method="contrast", k=10)
    np.testing.assert_allclose(got, (near - 0.5 * wide) / typical, atol=1e-5)
    assert DEFAULT_METHOD == "contrast"  # chosen by scripts/bench_outliers.py
    # without a reference the contrast is the plain k-NN score; one scored document has only the reference
    np.testing.assert_array_equal(es.outlier_scores(space), es.outlier_scores(space, method="knn"))
    one = es.outlier_scores(space.select([0]), reference=reference, method="contrast")
    assert one.shape == (1,) and np.isfinite(one).all()


def test_ivf_index_finds_nearly_the_exact_neighbours(posts):
    vectors = posts.vectors
    exact = NeighbourSearch(vectors, exact=True)
    approximate = NeighbourSearch(vectors, exact=False)
    s1, i1 = exact.search(vectors, 10, self_offset=0)
    s2, i2 = approximate.search(vectors, 10, self_offset=0)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i1, i2)])
    assert recall >= 0.9
    assert not (i1 == np.arange(len(vectors))[:, None]).any()  # each row's own row is left out
    assert np.abs(s1.mean(axis=1) - s2.mean(axis=1)).mean() < 0.01


def test_lof_matches_scikit_learn(posts):
    from sklearn.neighbors import LocalOutlierFactor

    reference, space = posts.select(np.arange(400)), posts.select(np.arange(400, 600))
    own = LocalOutlierFactor(n_neighbors=20, metric="cosine", algorithm="brute").fit(space.vectors)
    np.testing.assert_allclose(es.outlier_scores(space, method="lof"), -own.negative_outlier_factor_, rtol=1e-4)
    novelty = LocalOutlierFactor(n_neighbors=20, metric="cosine", algorithm="brute", novelty=True).fit(reference.vectors)
    np.testing.assert_allclose(es.outlier_scores(space, reference=reference, method="lof"),
                               -novelty.score_samples(space.vectors), rtol=1e-4)


def test_novel_topics_score_higher_than_the_reference_topic(posts):
    labels = posts.table["label"].to_numpy()
    space_rows = np.flatnonzero(labels == "sci.space")
    reference = posts.select(space_rows[:100])
    new = posts.select(np.concatenate([space_rows[100:], np.flatnonzero(labels != "sci.space")[::3]]))
    novel = new.table["label"].to_numpy() != "sci.space"
    assert _auroc(es.outlier_scores(new, reference=reference), novel) >= 0.92  # contrast, the default
    assert _auroc(es.outlier_scores(new, reference=reference, method="knn"), novel) >= 0.92  # 0.939 measured
    assert _auroc(es.outlier_scores(new, reference=reference, method="lof"), novel) >= 0.9  # 0.917
    assert _auroc(es.outlier_scores(new, reference=reference, method="iforest"), novel) >= 0.8  # 0.847


def test_planted_posts_rank_first_without_a_reference(posts):
    labels = posts.table["label"].to_numpy()
    rows = np.concatenate([np.flatnonzero(labels == "rec.autos"), np.flatnonzero(labels == "sci.space")[:6]])
    space = posts.select(rows)
    planted = space.table["label"].to_numpy() == "sci.space"
    scores = es.outlier_scores(space)
    assert scores.shape == (len(space),) and scores.dtype == np.float32
    top = np.argsort(-scores)[:6]
    assert planted[top].sum() >= 4
    assert _auroc(scores, planted) >= 0.95


def test_exact_duplicates_give_finite_scores(posts):
    twice = posts.select(np.concatenate([np.arange(50), np.arange(50)]))
    for method in ("contrast", "knn", "lof"):
        scores = es.outlier_scores(twice, method=method)
        assert np.isfinite(scores).all(), method
        scores = es.outlier_scores(posts.select(np.arange(60)), reference=twice, method=method)
        assert np.isfinite(scores).all(), method


def test_bad_input_is_refused(posts):
    one = posts.select([0])
    with pytest.raises(es.InputError, match="at least 2 documents"):
        es.outlier_scores(one)
    assert es.outlier_scores(one, reference=posts.select(np.arange(1, 50))).shape == (1,)
    with pytest.raises(es.InputError, match="empty"):
        es.outlier_scores(posts, reference=posts.select(np.arange(0)))
    with pytest.raises(es.InputError, match="unknown method"):
        es.outlier_scores(posts, method="magic")
    with pytest.raises(es.InputError, match="k must be"):
        es.outlier_scores(posts, k=0)
    other = es.EmbeddingSet(np.ones((5, 384), dtype=np.float32), posts.table.head(5),
                            es.ModelIdentity(name="another-model", weights_sha256="0" * 64, dim=384, normalized=True))
    with pytest.raises(es.ModelMismatchError, match="another-model"):
        es.outlier_scores(posts, reference=other)
