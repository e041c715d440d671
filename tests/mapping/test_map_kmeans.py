"""``map --k`` (issue 31, item 3): k-means on the embeddings beside the layout, and a summary of its own parameters.

320 real posts of eight 20 Newsgroups groups, some of them close (three computer groups and
electronics, atheism and religion), mapped once by the CLI with ``--k 8``. The full
measurement, seeds 0-4 on 20 Newsgroups and AG News, is ``scripts/bench_kmeans.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

GROUPS = ("comp.graphics", "comp.windows.x", "comp.sys.mac.hardware", "sci.electronics", "rec.autos",
          "rec.sport.hockey", "alt.atheism", "talk.religion.misc")
PER_GROUP = 40


@pytest.fixture(scope="module")
def kmeans_map(tmp_path_factory, encoder):
    import embedspace as es
    from embedspace.cli import main
    from helpers import short_posts

    docs = es.read("corpus:20newsgroups")
    docs = short_posts(pd.concat([docs[docs["label"] == g].head(PER_GROUP) for g in GROUPS], ignore_index=True))
    space = es.embed(docs[["text", "label"]], encoder=encoder, progress=False)
    root = tmp_path_factory.mktemp("kmeans")
    space.save(root / "posts.set")
    return root, space, main


def test_k_is_not_worse_than_kmeans_on_the_raw_vectors(kmeans_map, cli):
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    root, space, _ = kmeans_map
    status, out, err = cli("map", root / "posts.set", "-o", root / "map", "--k", str(len(GROUPS)),
                           "--label-col", "label", "--seed", "0")
    assert status == 0, err
    metrics = json.loads((root / "map" / "metrics.json").read_text())
    truth = space.table["label"].to_numpy()
    x = np.asarray(space.vectors, dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    baseline = normalized_mutual_info_score(truth, KMeans(len(GROUPS), random_state=0).fit(x).labels_)
    assert metrics["n_clusters"] == len(GROUPS) and metrics["noise_fraction"] == 0.0
    assert metrics["nmi"] >= baseline - 0.02, f"--k NMI {metrics['nmi']:.3f} vs KMeans(k) on the vectors {baseline:.3f}"

    # a k-means run names k-means' own parameters, never HDBSCAN's
    assert "min_cluster_size" not in metrics and "min_cluster_size" not in metrics["params"]
    assert metrics["k"] == len(GROUPS) and metrics["kmeans"] == {"k": len(GROUPS), "n_init": 10,
                                                                  "features": "unit vectors + layout"}
    summary = out.splitlines()[0]
    assert "min_cluster_size" not in summary and f"k {len(GROUPS)}, best of 10 k-means starts" in summary


def test_kmeans_features_weigh_both_blocks_alike():
    from embedspace.mapping.clustering import kmeans_features

    rng = np.random.default_rng(0)
    vectors, layout = rng.normal(size=(50, 16)) * 7.0, rng.normal(size=(50, 5)) * 100.0
    joint = kmeans_features(layout, vectors)
    assert joint.shape == (50, 21)
    for block in (joint[:, :16], joint[:, 16:]):
        assert abs(block.mean(axis=0)).max() < 1e-9
        assert abs((block ** 2).sum(axis=1).mean() - 1.0) < 1e-9
