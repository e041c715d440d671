"""What `map --k N` runs k-means on: measured against scikit-learn KMeans(k) on the raw vectors.

Usage::

    nice -n 10 python scripts/bench_kmeans.py [--seeds 0 1 2 3 4] [--set20 /tmp/emb/20ng.set] [--agnews /tmp/emb/agnews.set]

Collections (embedded with the default model, loaded from EmbeddingSets):

* 20 Newsgroups, test split (7,532 posts), k = 20, labels = newsgroup;
* AG News, test split (7,600 headlines), k = 4, labels = topic.

Methods, each run with seeds 0-4 (the seed of k-means and of UMAP):

* ``kmeans_raw``: the baseline, ``sklearn.cluster.KMeans(k, random_state=seed)`` with its
  defaults (one k-means++ start in scikit-learn >= 1.4) on the unit vectors;
* ``raw_best10``: k-means on the unit vectors, best of 10 starts by inertia (label-free);
* ``umap5``: k-means (10 starts) on the 5-D UMAP clustering layout alone (what
  ``map --k`` ran before issue 31);
* ``pca50``: k-means (10 starts) on a 50-D PCA of the vectors, re-normalised to unit length;
* ``best_silhouette``: of ``raw_best10`` and ``umap5``, the partition with the higher
  cosine silhouette on the raw vectors (label-free);
* ``joint`` (what ``map --k`` runs now): ``CollectionMapper(n_clusters=k)``, k-means (10
  starts) on the unit vectors beside the 5-D layout, each block scaled to total variance 1
  (:func:`embedspace.mapping.clustering.kmeans_features`).

Besides the two collections of the acceptance test, four subsets (test split; 3,800 AG
News World + Business headlines) where the methods differ more: 20 Newsgroups' five
distant groups, its six computer/electronics groups, its four religion/mideast groups.

Printed: NMI and V-measure per method and seed, the mean and the worst seed, and each
method's time as a ratio of the baseline's (same run, same machine, CPU named); times of
``umap5``/``joint``/``best_silhouette`` include the kNN graph and the UMAP layout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_machine import cpu_name  # noqa: E402

import embedspace as es  # noqa: E402
from embedspace.mapping import CollectionMapper  # noqa: E402

METHODS = ("kmeans_raw", "raw_best10", "umap5", "pca50", "best_silhouette", "joint")


def _unit(vectors) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _kmeans(x, k, seed, n_init):
    from sklearn.cluster import KMeans

    kwargs = {} if n_init is None else {"n_init": n_init}
    return KMeans(n_clusters=k, random_state=seed, **kwargs).fit(x).labels_


def _silhouette(x, labels, seed) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(x, labels, metric="cosine", sample_size=min(len(x), 4000), random_state=seed))


def run_corpus(name, space, truth, k, seeds) -> dict:
    """``{method: {"nmi": [...], "v": [...], "seconds": [...]}}`` over ``seeds``."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import normalized_mutual_info_score, v_measure_score

    x = _unit(space.vectors)
    results = {m: {"nmi": [], "v": [], "seconds": []} for m in METHODS}

    def record(method, labels, seconds):
        results[method]["nmi"].append(float(normalized_mutual_info_score(truth, labels)))
        results[method]["v"].append(float(v_measure_score(truth, labels)))
        results[method]["seconds"].append(seconds)

    for seed in seeds:
        t = time.perf_counter()
        record("kmeans_raw", _kmeans(x, k, seed, None), time.perf_counter() - t)
        t = time.perf_counter()
        raw = _kmeans(x, k, seed, 10)
        raw_seconds = time.perf_counter() - t
        record("raw_best10", raw, raw_seconds)
        t = time.perf_counter()
        mapper = CollectionMapper(n_clusters=k, random_state=seed, display=False, progress=False).fit(space)
        layout_seconds = mapper.timings_["neighbours"] + mapper.timings_["clustering layout"]
        record("joint", mapper.clusterer_.labels_, layout_seconds + mapper.timings_["clusters"])
        t = time.perf_counter()
        umap = _kmeans(mapper.cluster_embedding_, k, seed, 10)
        umap_seconds = layout_seconds + time.perf_counter() - t
        record("umap5", umap, umap_seconds)
        t = time.perf_counter()
        reduced = _unit(PCA(n_components=50, random_state=seed).fit_transform(x))
        record("pca50", _kmeans(reduced, k, seed, 10), time.perf_counter() - t)
        t = time.perf_counter()
        s_raw, s_umap = _silhouette(x, raw, seed), _silhouette(x, umap, seed)
        pick = raw if s_raw >= s_umap else umap
        record("best_silhouette", pick, raw_seconds + umap_seconds + time.perf_counter() - t)
        print(f"{name} seed {seed}: " + "  ".join(f"{m} {results[m]['nmi'][-1]:.3f}" for m in METHODS)
              + f"  (silhouette raw {s_raw:.3f} umap {s_umap:.3f})", flush=True)
    return results


def table(name, k, results, seeds) -> str:
    base_time = float(np.mean(results["kmeans_raw"]["seconds"]))
    lines = [f"{name}, k={k}, seeds {seeds[0]}-{seeds[-1]}", "",
             "| method | NMI per seed | NMI mean | NMI worst | V per seed | V mean | V worst | time / KMeans(k) raw |",
             "|---|---|---|---|---|---|---|---|"]
    for m in METHODS:
        r = results[m]
        lines.append(f"| {m} | {' '.join(f'{v:.3f}' for v in r['nmi'])} | {np.mean(r['nmi']):.3f} | {min(r['nmi']):.3f} "
                     f"| {' '.join(f'{v:.3f}' for v in r['v'])} | {np.mean(r['v']):.3f} | {min(r['v']):.3f} "
                     f"| {np.mean(r['seconds']) / base_time:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set20", default="/tmp/emb/20ng.set")
    parser.add_argument("--agnews", default="/tmp/emb/agnews.set")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; {time.strftime('%Y-%m-%d')}")
    news = es.load(args.set20)
    test = news.table["split"].to_numpy() == "test"
    ag = es.load(args.agnews)
    collections = [("20 Newsgroups test", news.select(np.flatnonzero(test))), ("AG News test", ag)]
    for name, space, groups in (
        ("AG News World + Business", ag, ["World", "Business"]),
        ("20 Newsgroups test, 5 distant groups", news,
         ["comp.graphics", "rec.autos", "sci.med", "talk.politics.guns", "rec.sport.hockey"]),
        ("20 Newsgroups test, 6 computer groups", news,
         ["comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware",
          "comp.windows.x", "sci.electronics"]),
        ("20 Newsgroups test, religion + mideast", news,
         ["alt.atheism", "soc.religion.christian", "talk.religion.misc", "talk.politics.mideast"]),
    ):
        keep = space.table["label"].isin(groups).to_numpy() & (test if space is news else True)
        collections.append((name, space.select(np.flatnonzero(keep))))
    out = []
    for name, space in collections:
        truth = space.table["label"].astype(str).to_numpy()
        k = len(np.unique(truth))
        out.append(table(name, k, run_corpus(name, space, truth, k, args.seeds), args.seeds))
    print("\n\n".join(out))

if __name__ == "__main__":
    main()
