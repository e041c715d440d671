"""Pockets (analysis/compare_pockets.py): a planted pocket is found, pure and whole.

Its extent leaves a shared neighbouring topic out, also with unequal sets; a random split gives none.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedspace.analysis.compare_pockets import (
    find_pockets,
    neighbours_without_self,
    pocket_neighbours,
    smoothed_share,
)
from embedspace.errors import InputError
from embedspace.mapping import knn_graph


def _blobs(n_per_blob: int, centres: np.ndarray, rng) -> np.ndarray:
    return np.vstack([c + 0.35 * rng.normal(size=(n_per_blob, centres.shape[1])) for c in centres])


@pytest.fixture(scope="module")
def planted():
    """A: 12 shared topics; B: the same 12 topics and a 13th (5% of B, 2.5% of the union) that A lacks."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(13, 24))
    a = _blobs(100, centres[:12], rng)
    b = np.vstack([_blobs(95, centres[:12], rng)[:1140], _blobs(60, centres[12:], rng)])
    vectors = np.vstack([a, b]).astype(np.float32)
    source = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    planted = np.r_[np.zeros(len(vectors) - 60, bool), np.ones(60, bool)]
    return knn_graph(vectors, k=15).indices, source, planted


def test_planted_pocket_is_found_pure_and_whole(planted):
    indices, source, injected = planted
    found = find_pockets(indices, source, permutations=200, seed=0)
    top = found["pockets"][0]
    assert top["side"] == "B" and top["significant"] and top["p_value"] < 0.01
    members = top["members"]
    assert injected[members].mean() >= 0.9  # purity
    assert injected[members].sum() >= 0.8 * injected.sum()  # coverage
    assert not any(p["significant"] for p in found["pockets"][1:])
    again = find_pockets(indices, source, permutations=200, seed=0)
    assert np.array_equal(again["pockets"][0]["members"], members) and np.array_equal(again["null_max"], found["null_max"])


def _beside_shared_topic(seed: int, a_per_topic: int, distance: float):
    """12 shared topics (A: ``a_per_topic`` each, B: 95 each) and a B-only topic of 60 at ``distance`` from topic 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, 24))
    direction = rng.normal(size=24)
    lone = centres[0] + distance * direction / np.linalg.norm(direction)
    a = _blobs(a_per_topic, centres, rng)
    b = np.vstack([_blobs(95, centres, rng), lone + 0.35 * rng.normal(size=(60, 24))])
    vectors = np.vstack([a, b]).astype(np.float32)
    source = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    topic = np.r_[np.repeat(np.arange(12), a_per_topic), np.repeat(np.arange(12), 95), np.full(60, 12)]
    return knn_graph(vectors, k=15).indices, source, topic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extent_takes_the_lone_topic_and_leaves_its_shared_neighbour(seed):
    indices, source, topic = _beside_shared_topic(seed, 100, 1.5)  # the two blobs touch
    found = find_pockets(indices, source, seed=seed)
    top = found["pockets"][0]
    assert top["side"] == "B" and top["significant"]
    members = top["members"]
    assert set(top["core"]) <= set(members) and len(top["core"]) == top["core_size"]
    assert (topic[members] == 12).mean() >= 0.9 and (topic[members] == 12).sum() >= 0.9 * 60
    b_of_neighbour = source & (topic == 0)
    assert np.isin(np.flatnonzero(b_of_neighbour), members).mean() <= 0.1, "B's half of the shared topic stays out"


def test_extent_holds_when_a_is_half_the_size_of_b():
    # the blobs touch and A is half of B: the earlier fixed-share extent (0.35 of the neighbours of A or in the
    # pocket) took B's half of the shared topic here (purity 0.39); the walk does not
    indices, source, topic = _beside_shared_topic(1, 50, 1.5)
    top = find_pockets(indices, source, seed=1)["pockets"][0]
    assert top["side"] == "B" and top["significant"]
    members = top["members"]
    assert (topic[members] == 12).mean() >= 0.9 and (topic[members] == 12).sum() >= 0.9 * 60


def test_extent_bar_is_a_probability():
    indices, source, _ = _beside_shared_topic(0, 100, 2.0)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(InputError, match="extend"):
            find_pockets(indices, source, extend=bad)
    loose, strict = (find_pockets(indices, source, seed=0, extend=bar)["pockets"][0] for bar in (0.05, 0.6))
    assert set(strict["members"]) <= set(loose["members"]) and np.array_equal(strict["core"], loose["core"])


def test_random_split_gives_no_significant_pocket():
    for seed in range(3):
        rng = np.random.default_rng(10 + seed)
        vectors = _blobs(100, rng.normal(size=(12, 24)), rng).astype(np.float32)
        source = rng.permutation(np.arange(len(vectors)) % 2 == 1)
        found = find_pockets(knn_graph(vectors, k=15).indices, source, permutations=200, seed=seed)
        assert not any(p["significant"] for p in found["pockets"])


def test_shares_and_bad_input():
    indices = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0], [0, 1, 2]])
    neighbours = neighbours_without_self(indices)
    assert neighbours.tolist() == [[1, 2], [0, 2], [1, 0], [0, 1]]  # row 3 lacks itself: its last neighbour goes
    share = smoothed_share(neighbours, np.array([True, True, False, False]))
    assert share.shape == (4,) and 0 <= share.min() <= share.max() <= 1
    with pytest.raises(InputError, match="rows"):
        find_pockets(indices, np.ones(3, bool))
    assert find_pockets(indices, np.ones(4, bool))["pockets"] == []


def test_pocket_graph_keeps_the_maps_neighbours_and_adds_as_many_by_embedding_and_words():
    from helpers import short_posts

    import embedspace as es

    texts = short_posts(es.read("corpus:20newsgroups").head(120))[["text"]]
    vectors = np.random.default_rng(0).normal(size=(len(texts), 16)).astype(np.float32)
    union = es.EmbeddingSet(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), texts, None)
    indices = knn_graph(vectors, k=15).indices
    joined = pocket_neighbours(indices, union, seed=0)
    assert joined.shape == (len(texts), 29) and np.array_equal(joined[:, :15], indices)
    assert not (joined[:, 15:] == np.arange(len(texts))[:, None]).any(), "no row is its own words neighbour"
    assert np.array_equal(joined, pocket_neighbours(indices, union, seed=0))
    tiny = knn_graph(vectors[:2], k=2).indices
    assert pocket_neighbours(tiny, es.EmbeddingSet(vectors[:2], texts.head(2), None)).shape[0] == 2
