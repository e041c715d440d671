#!/usr/bin/env python3
"""Benchmarks of ``embedspace map``: quality on labelled sets, speed and quality against BERTopic.

Five modes::

    python scripts/bench_map.py acceptance [--ag-news PATH] [--max-tokens N]
        20 Newsgroups (test split, shipped) and AG News (test split, read from PATH):
        the automatic clustering (NMI, noise, clusters; also with outliers assigned),
        --k = number of labels (V-measure) and scikit-learn KMeans(k) on the same
        embeddings, in this one script.

    python scripts/bench_map.py sweep [--ag-news PATH] [--seeds 0,1,2] [--neighbors 15,30,50]
        How the defaults were chosen: clustering quality over UMAP n_neighbors and seeds,
        for the automatic granularity and for k-means with k = number of labels.

    python scripts/bench_map.py bertopic [--n 10000]
        One run on n documents (a seeded sample of 20 Newsgroups, both splits): wall time
        and NMI of `embedspace map` in a fresh process without cached embeddings, again
        with cached embeddings, and of BERTopic 0.17 with its defaults (the same
        all-MiniLM-L6-v2 model, loaded from the shipped package since nothing may be
        downloaded). "Without cached embeddings" uses an empty embedding cache but keeps
        the one-time install artefacts (the exported ONNX model and numba's compiled
        UMAP), as on any machine after the first run (--cold times a fully cold first run
        too; --also-backend openvino-int8 an uncached run with approximate int8 vectors;
        --also-max-tokens 128 an uncached run embedding only each post's first 128 tokens).
        Wall seconds and CPU seconds (user + system of the whole process tree) are both
        reported: on a shared machine the CPU ratio is the steadier one.
        Needs the bench extra: pip install -e '.[bench]'.

    python scripts/bench_map.py tree levels|overhead|bertopic|page|keywords|names [options]
        The topic tree (issue 32): runs ``scripts/bench_map_tree.py`` (modes and columns in its
        notes) with the options given after ``tree``.

    python scripts/bench_map.py grow [--set PATH] [--groups G,...] [--speed G,...|all]
        Growing a map (``map add``, issue 35): runs ``scripts/bench_map_grow.py`` (protocol and
        columns in its notes) with the options given after ``grow``.

Timed runs hold ``/tmp/embedspace-bench.lock`` (flock) so two timing runs never overlap.
AG News is research-only: it is read from its path and never copied.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
AG_NEWS = ROOT.parent / "shared" / "corpora" / "clustering" / "ag_news" / "test.csv"
LOCK = "/tmp/embedspace-bench.lock"


@contextlib.contextmanager
def bench_lock():
    with open(LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ag_news_table(path: Path):
    """AG News test split as a DataFrame: text = title + ". " + description, label = class."""
    import pandas as pd

    if not Path(path).is_file():
        sys.exit(f"AG News not found at {path}; pass --ag-news PATH")
    frame = pd.read_csv(path, header=None, names=["class_index", "title", "description"])
    names = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}
    frame["text"] = frame["title"] + ". " + frame["description"].str.replace("\\", " ", regex=False)
    return pd.DataFrame({"text": frame["text"], "label": frame["class_index"].map(names)})


def labelled_sets(ag_path: Path, max_tokens: int | None = None, backend: str = "auto"):
    import embedspace as es
    from embedspace.encoding.encoders import default_map_backend

    backend = default_map_backend() if backend == "auto" else backend

    yield "20newsgroups", es.embed("corpus:20newsgroups", max_tokens=max_tokens, backend=backend, progress=False)
    yield "ag_news", es.embed(ag_news_table(ag_path), max_tokens=max_tokens, backend=backend, progress=False)


def _kmeans_v(vectors, truth, k, seed=0) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    return float(v_measure_score(truth, KMeans(k, n_init="auto", random_state=seed).fit_predict(vectors)))


def acceptance(args) -> None:
    from embedspace.mapping.clustering import clustering_scores
    from embedspace.mapping.mapper import CollectionMapper

    rows = []
    for name, space in labelled_sets(Path(args.ag_news), args.max_tokens, args.backend):
        truth = space.table["label"].astype(str).to_numpy()
        k = len(np.unique(truth))
        started = time.perf_counter()
        auto = CollectionMapper(random_state=0, display=False, progress=False).fit(space)
        seconds = time.perf_counter() - started
        scores = clustering_scores(auto.clusterer_.labels_, truth)
        from embedspace.mapping.clustering import assign_outliers

        assigned = clustering_scores(assign_outliers(auto.cluster_embedding_, auto.clusterer_.labels_), truth)
        with_k = CollectionMapper(n_clusters=k, random_state=0, display=False, progress=False).fit(space)
        k_scores = clustering_scores(with_k.clusterer_.labels_, truth)
        baseline = [_kmeans_v(space.vectors, truth, k, seed) for seed in (0, 1, 2)]
        rows.append({
            "set": name, "n": len(space), "labels": k, "max_tokens": space.model.max_seq_length,
            "backend": space.model.backend,
            "auto_nmi": scores["nmi"], "auto_noise": scores["noise_fraction"], "auto_clusters": scores["n_clusters"],
            "auto_ari": scores["ari"], "auto_nmi_assigned": assigned["nmi"], "auto_seconds": round(seconds, 1),
            "k_v_measure": k_scores["v_measure"], "k_nmi": k_scores["nmi"], "k_ari": k_scores["ari"],
            "kmeans_raw_v_measure_seed0": baseline[0], "kmeans_raw_v_measure_mean3": float(np.mean(baseline)),
        })
        print(json.dumps(rows[-1]), flush=True)


def sweep(args) -> None:
    from embedspace.mapping.clustering import Clusterer, clustering_scores
    from embedspace.mapping.neighbors import knn_graph
    from embedspace.mapping.reduction import UMAPReducer

    seeds = [int(s) for s in args.seeds.split(",")]
    neighbours = [int(s) for s in args.neighbors.split(",")]
    epochs = [None if e == "auto" else int(e) for e in args.epochs.split(",")]
    dims = [int(d) for d in args.dimensions.split(",")]
    print("set,n_neighbors,dimensions,epochs,seed,auto_nmi,auto_noise,auto_clusters,k_v_measure,umap_cpu_s", flush=True)
    for name, space in labelled_sets(Path(args.ag_news), args.max_tokens, args.backend):
        truth = space.table["label"].astype(str).to_numpy()
        k = len(np.unique(truth))
        graph = knn_graph(space, k=max(neighbours))
        for nn in neighbours:
            for dim in dims:
                for epoch in epochs:
                    for seed in seeds:
                        cpu = time.process_time()
                        layout = UMAPReducer(dim, n_neighbors=nn, min_dist=0.0, n_epochs=epoch,
                                             random_state=seed).fit_transform(space.vectors, knn=graph)
                        cpu = time.process_time() - cpu
                        auto = clustering_scores(Clusterer(random_state=seed).fit_predict(layout), truth)
                        with_k = clustering_scores(Clusterer(n_clusters=k, random_state=seed).fit_predict(layout), truth)
                        print(f"{name},{nn},{dim},{epoch or 'auto'},{seed},{auto['nmi']:.4f},{auto['noise_fraction']:.4f},"
                              f"{auto['n_clusters']},{with_k['v_measure']:.4f},{cpu:.1f}", flush=True)


_BERTOPIC_RUN = r"""
import json, sys, time
started = time.time()
import pandas as pd
from bertopic import BERTopic
from sentence_transformers import SentenceTransformer
from sklearn.metrics import normalized_mutual_info_score
from embedspace.encoding.encoders import resolve_model
frame = pd.read_parquet(sys.argv[1])
model = SentenceTransformer(str(resolve_model()[1]), device="cpu")
topics, _ = BERTopic(embedding_model=model).fit_transform(frame["text"].tolist())
print(json.dumps({"seconds_inside": time.time() - started, "nmi": normalized_mutual_info_score(frame["label"], topics),
                  "n_topics": len(set(topics) - {-1}), "noise_fraction": sum(t == -1 for t in topics) / len(topics)}))
"""


def _timed(command, env) -> tuple[dict, str]:
    """Run ``command``; wall seconds and the CPU seconds (user + system) of the process tree."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1)}, done.stdout


def _fresh_cache(work: Path, name: str, user_cache: Path) -> Path:
    """An embedding cache with no embeddings but the install artefacts (ONNX/OpenVINO models, numba)."""
    fresh = work / name
    fresh.mkdir()
    for keep in ("models", "numba", "model-hashes.json"):
        if (user_cache / keep).exists():
            os.symlink(user_cache / keep, fresh / keep)
    return fresh


def bertopic(args) -> None:
    import embedspace as es
    from embedspace._fs import cache_dir

    try:
        import bertopic  # noqa: F401
    except ImportError:
        sys.exit("BERTopic is not installed: pip install -e '.[bench]'")
    work = Path(tempfile.mkdtemp(prefix="bench-map-"))
    try:
        docs = es.read("corpus:20newsgroups-all").sample(n=args.n, random_state=0)[["text", "label"]]
        data = work / "docs.parquet"
        docs.reset_index(drop=True).to_parquet(data)
        user_cache = cache_dir()
        base_env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        base_env.pop("NUMBA_CACHE_DIR", None)
        env = dict(base_env, EMBEDSPACE_CACHE_DIR=str(_fresh_cache(work, "cache", user_cache)))
        cli = [sys.executable, "-m", "embedspace.cli", "map", str(data), "--label-col", "label", "--json", "--overwrite"]
        script = work / "bertopic_run.py"
        script.write_text(_BERTOPIC_RUN)
        results = {}
        with bench_lock():
            timing, out = _timed(cli + ["-o", str(work / "map1")], env)
            results["embedspace_uncached"] = dict(timing, **_pick(json.loads(out)))
            timing, out = _timed([sys.executable, str(script), str(data)], dict(os.environ, TOKENIZERS_PARALLELISM="false"))
            results["bertopic_defaults"] = dict(timing, **json.loads(out.strip().splitlines()[-1]))
            timing, out = _timed(cli + ["-o", str(work / "map2")], env)
            results["embedspace_cached"] = dict(timing, **_pick(json.loads(out)))
            variants = [(f"max_tokens_{w}", ["--max-tokens", str(w)]) for w in args.also_max_tokens]
            variants += [(backend, ["--backend", backend]) for backend in args.also_backend]
            for name, extra in variants:  # each uncached, in a fresh cache of its own
                other = dict(base_env, EMBEDSPACE_CACHE_DIR=str(_fresh_cache(work, f"cache-{name}", user_cache)))
                timing, out = _timed(cli + ["-o", str(work / f"map-{name}"), *extra], other)
                results[f"embedspace_uncached_{name}"] = dict(timing, **_pick(json.loads(out)))
            if args.cold:
                cold = work / "cold-cache"
                cold.mkdir()
                timing, out = _timed(cli + ["-o", str(work / "map3")], dict(base_env, EMBEDSPACE_CACHE_DIR=str(cold)))
                results["embedspace_cold_install"] = dict(timing, **_pick(json.loads(out)))
        bert = results["bertopic_defaults"]
        for key in [k for k in results if k.startswith("embedspace")]:
            results[key]["ratio_to_bertopic"] = round(results[key]["seconds"] / bert["seconds"], 3)
            results[key]["cpu_ratio_to_bertopic"] = round(results[key]["cpu_seconds"] / bert["cpu_seconds"], 3)
        results["n"] = args.n
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pick(summary: dict) -> dict:
    return {key: summary[key] for key in ("nmi", "n_clusters", "noise_fraction") if key in summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    for name in ("acceptance", "sweep"):
        sub = modes.add_parser(name)
        sub.add_argument("--ag-news", default=str(AG_NEWS), help="AG News test.csv (research-only; read in place)")
        sub.add_argument("--max-tokens", type=int, default=None,
                         help="tokens embedded per document (default: the model's window, 256)")
        sub.add_argument("--backend", default="auto",
                         help="embedding backend (default: auto, resolved as `embedspace map` does)")
    modes.choices["sweep"].add_argument("--seeds", default="0,1,2")
    modes.choices["sweep"].add_argument("--neighbors", default="15,30,50")
    modes.choices["sweep"].add_argument("--epochs", default="200", help="comma list; 'auto' = umap-learn's rule")
    modes.choices["sweep"].add_argument("--dimensions", default="5")
    sub = modes.add_parser("bertopic")
    sub.add_argument("--n", type=int, default=10_000)
    sub.add_argument("--cold", action="store_true", help="also time a first run with an empty cache (ONNX export, JIT)")
    sub.add_argument("--also-max-tokens", action="append", type=int, default=[], metavar="N",
                     help="also time an uncached run embedding N tokens per post (the map embeds 256 by default)")
    sub.add_argument("--also-backend", action="append", default=[], metavar="B",
                     help="also time an uncached run embedding with this backend (e.g. openvino-int8)")
    sub = modes.add_parser("tree", help="the topic tree (issue 32): scripts/bench_map_tree.py with the options that follow")
    sub.add_argument("rest", nargs=argparse.REMAINDER)
    sub = modes.add_parser("grow", help="map add on 20 Newsgroups: scripts/bench_map_grow.py with the options that follow")
    sub.add_argument("rest", nargs=argparse.REMAINDER)
    argv = sys.argv[1:]
    if argv[:1] in (["tree"], ["grow"]) and argv[1:2] != ["-h"]:  # REMAINDER would refuse options right after the mode
        return _delegate(f"bench_map_{argv[0]}.py", argv[1:])
    args = parser.parse_args()
    {"acceptance": acceptance, "sweep": sweep, "bertopic": bertopic, "grow": grow, "tree": tree}[args.mode](args)


def tree(args) -> None:
    """The topic tree: ``scripts/bench_map_tree.py`` (levels, overhead, bertopic, page) with the options after ``tree``."""
    _delegate("bench_map_tree.py", args.rest)


def grow(args) -> None:
    """Growing a map: ``scripts/bench_map_grow.py`` with the options given after ``grow``."""
    _delegate("bench_map_grow.py", args.rest)


def _delegate(name: str, rest: list[str]) -> None:
    import runpy

    script = Path(__file__).resolve().parent / name
    saved = sys.argv
    sys.argv = [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
