"""Clustering, the neighbour graph and the reducers, on small seeded synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from embedspace.errors import InputError


@pytest.fixture(scope="module")
def blobs():
    """Three blobs of different sizes in 5-d plus a sprinkle of uniform noise."""
    rng = np.random.default_rng(7)
    centres = np.array([[0, 0, 0, 0, 0], [8, 0, 0, 0, 0], [0, 8, 0, 0, 0]], dtype=float)
    sizes = (400, 250, 150)
    points = [rng.normal(c, 0.6, size=(m, 5)) for c, m in zip(centres, sizes)]
    noise = rng.uniform(-6, 14, size=(30, 5))
    X = np.vstack(points + [noise])
    truth = np.concatenate([np.full(m, i) for i, m in enumerate(sizes)] + [np.full(30, -1)])
    return X, truth


def test_auto_granularity_finds_the_three_blobs(blobs):
    from embedspace.mapping.clustering import Clusterer, clustering_scores

    X, truth = blobs
    model = Clusterer(random_state=0).fit(X)
    assert model.n_clusters_ == 3 and model.method_ == "hdbscan"
    core = truth >= 0
    assert clustering_scores(model.labels_[core], truth[core])["ari"] >= 0.95
    assert (np.bincount(model.labels_[model.labels_ >= 0]) == np.sort(np.bincount(model.labels_[model.labels_ >= 0]))[::-1]).all()
    sizes = [c["min_cluster_size"] for c in model.candidates_]
    assert sizes == sorted(sizes) and model.min_cluster_size_ in sizes[1:-1]
    assert {"n_clusters", "noise_fraction", "plateau"} <= set(model.candidates_[0])


def test_granularity_takes_the_middle_of_the_widest_plateau_not_a_lone_agreeing_pair():
    """The grid of a shattered layout (int8 vectors of 20 Newsgroups, seed 0) had one candidate
    agreeing 0.75 with both neighbours and a wider run of agreeing coarse candidates."""
    from embedspace.mapping.clustering import _plateau_choice

    def candidates(agreement, clusters):
        return [{"min_cluster_size": 10 * (i + 1), "n_clusters": c,
                 "plateau": min(agreement[j] for j in (i - 1, i) if 0 <= j < len(agreement))}
                for i, c in enumerate(clusters)]

    clusters = [89, 61, 36, 24, 18, 9, 9, 9, 7]
    agreement = [0.74, 0.55, 0.76, 0.75, 0.40, 0.95, 0.97, 0.46]  # runs: (5, 7)
    assert _plateau_choice(candidates(agreement, clusters), agreement) == 6
    # two runs of equal width: the coarser; an even run: its upper middle
    agreement = [0.95, 0.50, 0.30, 0.20, 0.10, 0.30, 0.20, 0.93]
    assert _plateau_choice(candidates(agreement, clusters), agreement) == 7
    agreement = [0.10, 0.20, 0.95, 0.96, 0.97, 0.30, 0.20, 0.10]  # run (2, 5)
    assert _plateau_choice(candidates(agreement, clusters), agreement) == 4
    # no plateau at all: the candidate agreeing best with both neighbours
    agreement = [0.10, 0.20, 0.60, 0.70, 0.30, 0.20, 0.50, 0.40]
    assert _plateau_choice(candidates(agreement, clusters), agreement) == 3


def test_outliers_have_zero_probability_and_high_glosh(blobs):
    from embedspace.mapping.clustering import Clusterer

    X, truth = blobs
    model = Clusterer().fit(X)
    assert model.probabilities_.dtype == np.float32 and model.outlier_scores_.dtype == np.float32
    assert (model.probabilities_[model.labels_ < 0] == 0).all()
    assert 0 <= model.outlier_scores_.min() and model.outlier_scores_.max() <= 1
    assert model.outlier_scores_[truth < 0].mean() > model.outlier_scores_[truth >= 0].mean() + 0.2


def test_fixed_min_cluster_size_and_assigning_outliers(blobs):
    from embedspace.mapping.clustering import Clusterer

    X, _ = blobs
    model = Clusterer(min_cluster_size=50, assign_outliers=True).fit(X)
    assert model.min_cluster_size_ == 50 and model.candidates_ == []
    assert (model.labels_ >= 0).all()


def test_k_mode_gives_exactly_k_with_margins(blobs):
    from embedspace.mapping.clustering import Clusterer

    X, _ = blobs
    model = Clusterer(n_clusters=5, random_state=3).fit(X)
    assert model.method_ == "kmeans" and model.n_clusters_ == 5 and (model.labels_ >= 0).all()
    assert ((0 <= model.probabilities_) & (model.probabilities_ <= 1)).all()
    again = Clusterer(n_clusters=5, random_state=3).fit(X)
    assert np.array_equal(model.labels_, again.labels_)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_clusters": 900}, "only 830 documents"),
        ({"n_clusters": 0}, "whole number"),
        ({"min_cluster_size": 1}, "min_cluster_size"),
        ({"min_cluster_size": 5000}, "larger than"),
        ({"min_samples": 0}, "min_samples"),
    ],
)
def test_bad_parameters_are_input_errors(blobs, params, message):
    from embedspace.mapping.clustering import Clusterer

    with pytest.raises(InputError, match=message):
        Clusterer(**params).fit(blobs[0])


def test_k_beyond_the_distinct_points_is_refused():
    from embedspace.mapping.clustering import Clusterer

    X = np.repeat(np.eye(3), 10, axis=0)
    with pytest.raises(InputError, match="3 distinct"):
        Clusterer(n_clusters=4).fit(X)


def test_scores_count_noise_as_a_class_and_internal_scores_without_labels(blobs):
    from embedspace.mapping.clustering import clustering_scores

    X, truth = blobs
    perfect = clustering_scores(truth, truth)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["noise_fraction"] == pytest.approx(30 / 830)
    assert perfect["n_clusters"] == 3
    internal = clustering_scores(truth, X=X)
    assert internal["silhouette"] > 0.5 and internal["dbcv"] is not None


def test_knn_graph_puts_each_row_first_even_with_duplicates():
    from embedspace.mapping.neighbors import knn_graph

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8)).astype(np.float32)
    X = np.vstack([X, X[:10]])  # rows 50..59 duplicate rows 0..9
    for exact in (True, False):
        graph = knn_graph(X, k=5, exact=exact)
        assert (graph.indices[:, 0] == np.arange(60)).all()
        assert (graph.distances[:, 0] == 0).all() and (np.diff(graph.distances, axis=1) >= 0).all()
        assert (graph.indices[:10, 1] == np.arange(50, 60)).all()
    assert knn_graph(X[:4], k=30).n_neighbors == 4
    with pytest.raises(InputError):
        knn_graph(X[:1], k=5)


def test_exact_knn_graph_is_the_same_on_any_number_of_threads():
    """FAISS's float32 scores vary with its thread count; the graph must not (UMAP is chaotic)."""
    import faiss

    from embedspace.mapping.neighbors import knn_graph

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 384))
    X = (centres[rng.integers(0, 20, 3000)] + 0.8 * rng.normal(size=(3000, 384))).astype(np.float32)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    before = faiss.omp_get_max_threads()
    try:
        graphs = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            graphs.append(knn_graph(X, k=15, exact=True))
    finally:
        faiss.omp_set_num_threads(before)
    assert (graphs[0].indices == graphs[1].indices).all() and (graphs[0].distances == graphs[1].distances).all()
    # ...and it is the float64 answer, ties by row number.
    u64 = unit.astype(np.float64)
    scores = u64 @ u64.T
    expected = np.lexsort((np.broadcast_to(np.arange(3000), scores.shape), -scores), axis=-1)[:, :15]
    assert (graphs[0].indices == expected).all()
    want = np.maximum.accumulate(np.clip(1 - np.take_along_axis(scores, expected, 1).astype(np.float32), 0, 2), axis=1)
    want[:, 0] = 0
    np.testing.assert_array_equal(graphs[0].distances, want)


@pytest.mark.slow
def test_reducers_shapes_and_determinism():
    from embedspace.mapping.reduction import PCAReducer, TSNEReducer, UMAPReducer, reduce

    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (60, 16)), rng.normal(6, 1, (60, 16))]).astype(np.float32)
    pca = PCAReducer(3).fit(X)
    assert pca.embedding_.shape == (120, 3) and pca.explained_variance_ratio_[0] > 0.5
    assert np.array_equal(pca.embedding_, PCAReducer(3).fit_transform(X))
    assert TSNEReducer(random_state=0).fit_transform(X).shape == (120, 2)
    first = UMAPReducer(2, n_neighbors=10, random_state=4, n_epochs=50).fit_transform(X)
    assert first.shape == (120, 2) and first.dtype == np.float32
    assert np.array_equal(first, reduce(X, "umap", 2, n_neighbors=10, random_state=4, n_epochs=50))
    with pytest.raises(InputError, match="unknown reduction"):
        reduce(X, "lda")
    with pytest.raises(InputError, match="more than"):
        UMAPReducer(5).fit(X[:4])
