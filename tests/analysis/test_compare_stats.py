"""The statistics of compare: exact tests against scipy/sklearn, null calibration, CKA invariances, BH."""

from __future__ import annotations

import numpy as np
import pytest

from embedspace.analysis.compare_stats import (
    auroc,
    benjamini_hochberg,
    cochran_armitage,
    fisher_regions,
    knn_overlap,
    knn_two_sample_test,
    linear_cka,
    linear_two_sample_test,
    mmd_test,
)
from embedspace.errors import InputError


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 300).astype(float)
    labels = rng.random(300) < 0.4
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_benjamini_hochberg_matches_statsmodels_formula():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan, 0.002])
    q = benjamini_hochberg(p)
    finite = p[~np.isnan(p)]
    m = len(finite)
    order = np.argsort(finite)
    expected = np.minimum.accumulate((finite[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    got = q[~np.isnan(p)][order]
    assert np.allclose(got, np.minimum(expected, 1.0))
    assert np.isnan(q[4])


def test_fisher_regions_matches_scipy():
    from scipy.stats import fisher_exact

    clusters = np.r_[np.zeros(50), np.ones(50), np.full(20, 2), np.full(5, -1)].astype(int)
    source = np.r_[np.zeros(40, bool), np.ones(10, bool), np.zeros(25, bool), np.ones(25, bool),
                   np.ones(20, bool), np.zeros(5, bool)]
    frame = fisher_regions(clusters, source).set_index("cluster")
    n_b, n_a = source.sum(), (~source).sum()
    _, p = fisher_exact([[10, n_b - 10], [40, n_a - 40]])
    assert frame.loc[0, "p_value"] == pytest.approx(p)
    assert np.isnan(frame.loc[-1, "p_value"])
    assert frame.loc[2, "log2_ratio"] > 0 and frame.loc[0, "log2_ratio"] < 0


def _random_graph(n, k, rng):
    indices = np.stack([rng.choice(n, k, replace=False) for _ in range(n)])
    indices[:, 0] = np.arange(n)
    return indices


def test_knn_test_is_calibrated_on_random_labels():
    rng = np.random.default_rng(0)
    n = 400
    points = rng.normal(size=(n, 5))
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    graph = np.argsort(distances, axis=1)[:, :11]
    p_values = []
    for seed in range(40):
        source = np.random.default_rng(seed).permutation(np.r_[np.zeros(n // 2, bool), np.ones(n // 2, bool)])
        p_values.append(knn_two_sample_test(graph, source, permutations=200, seed=seed)["p_value"])
    p_values = np.array(p_values)
    assert (p_values < 0.05).sum() <= 6  # expected 2 of 40; binomial 99.9% bound
    assert 0.3 < p_values.mean() < 0.7


def test_knn_test_detects_a_shift_and_matches_plain_auroc():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 5))
    b = rng.normal(size=(200, 5)) + np.r_[1.0, 0, 0, 0, 0]
    points = np.vstack([a, b])
    source = np.r_[np.zeros(200, bool), np.ones(200, bool)]
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    graph = np.argsort(distances, axis=1)[:, :11]
    result = knn_two_sample_test(graph, source, permutations=200)
    assert result["p_value"] < 0.01
    assert result["auroc"] == pytest.approx(auroc(result["scores"], source))


def test_linear_and_mmd_tests_null_and_shift():
    rng = np.random.default_rng(2)
    same = rng.normal(size=(300, 8))
    source = np.r_[np.zeros(150, bool), np.ones(150, bool)]
    shifted = same.copy()
    shifted[150:, 0] += 1.0
    assert linear_two_sample_test(shifted, source)["p_value"] < 0.01
    assert mmd_test(shifted, source, permutations=200)["p_value"] < 0.01
    assert linear_two_sample_test(same, source)["p_value"] > 0.01
    assert mmd_test(same, source, permutations=200)["p_value"] > 0.01


def test_cka_identity_rotation_scaling_and_dimensions():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 16))
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0)
    assert linear_cka(x, 0.2 * x @ rotation, debiased=True) == pytest.approx(1.0)
    wider = np.hstack([x @ rotation, np.zeros((200, 8))])  # 16 vs 24 dimensions
    assert linear_cka(x, wider) == pytest.approx(1.0)
    noise = rng.normal(size=(200, 150))  # unrelated: the plain CKA is biased upward, the debiased one near 0
    assert abs(linear_cka(x, noise, debiased=True)) < 0.05 < linear_cka(x, noise)


def test_cka_matches_the_gram_matrix_form():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 9))
    h = np.eye(50) - 1.0 / 50
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h
    expected = (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())
    assert linear_cka(x, y) == pytest.approx(expected)


def test_knn_overlap_and_trend():
    a = np.array([[1, 2, 3], [0, 2, 3]])
    assert knn_overlap(a, a).tolist() == [1.0, 1.0]
    assert knn_overlap(a, np.array([[3, 4, 5], [4, 5, 6]])).tolist() == [1 / 3, 0.0]
    z, p = cochran_armitage([1, 2, 5, 9, 14], [100] * 5)
    assert z > 0 and p < 1e-3
    z, p = cochran_armitage([5, 5, 5, 5], [100] * 4)
    assert abs(z) < 1e-9 and p == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(InputError):
        knn_two_sample_test(np.zeros((4, 3), int), np.ones(4, bool))
    with pytest.raises(InputError):
        linear_cka(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(InputError):
        knn_overlap(np.zeros((3, 2)), np.zeros((3, 4)))


def test_region_test_null_and_one_region_that_grew():
    from embedspace.analysis.compare_stats import region_test

    rng = np.random.default_rng(6)
    regions = rng.integers(0, 20, 1000)
    p_values = [region_test(regions, rng.permutation(np.r_[np.zeros(500, bool), np.ones(500, bool)]),
                            permutations=200, seed=s)["p_value"] for s in range(30)]
    assert sum(p < 0.05 for p in p_values) <= 5
    source = rng.random(1000) < 0.5
    source[regions == 3] = rng.random((regions == 3).sum()) < 0.9  # region 3 mostly B
    assert region_test(regions, source, permutations=200)["p_value"] < 0.01
