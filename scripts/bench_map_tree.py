#!/usr/bin/env python3
"""The topic tree (issue 32): levels on 20 Newsgroups and AG News, its overhead, BERTopic's hierarchy.

Run through ``python scripts/bench_map.py tree [options]`` (or directly)::

    levels     20 Newsgroups test (7,532 posts) and AG News test (7,600 headlines), seeds 0-2:
               every level's cluster count, noise share, NMI against the classes and NPMI
               coherence; the nested-HDBSCAN alternative (each finer grid candidate's clusters
               cut to their parents) on the same layouts for comparison; 20 Newsgroups seed 0
               again with assign_outliers.
    overhead   `embedspace map` of the cached 20 Newsgroups test vectors with --levels 1 and
               --levels auto, twice each, alternating: wall and CPU seconds.
    page       map.html at 200,000 synthetic points (scripts/bench_mappage.py's layout and timing) without
               and with a 3-level tree, alternately: time until interactive, redraw, browser CPU.
    names      20 Newsgroups test and AG News test, seeds 0-2: mean NPMI of every level's top 10 keywords,
               c-TF-IDF alone against the default (a finer level's keywords chosen for coherence among its
               30 best c-TF-IDF terms), and the CPU seconds of es.topic_tree with each.
    keywords   20 Newsgroups test, seed 0: mean NPMI of every level's top 10 keywords, c-TF-IDF against
               re-ranking its 15 or 30 best terms by the terms' embeddings (MMR lambda 0.5, 0.7, none).
    bertopic   10,000 20 Newsgroups posts (all splits, sample seed 0), the same vectors for both:
               BERTopic 0.17 defaults + hierarchical_topics + reduce_topics(nr_topics=20) against
               our level with 15-40 clusters (nearest 20): NMI, mean NPMI, noise share, seconds;
               and our NPMI checked against gensim's CoherenceModel(coherence="c_npmi").

Embeddings come from the saved sets (``--set20``, ``--ag``: default backend), so no model runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_machine import cpu_name  # noqa: E402

warnings.filterwarnings("ignore")


def _sets(args):
    import embedspace as es

    full = es.load(args.set20)
    test = full.select(np.flatnonzero(full.table["split"].to_numpy() == "test"))
    return full, test, es.load(args.ag)


def _nested_hdbscan(layout, top, size):
    """The alternative construction: HDBSCAN at ``size`` cut to the top clusters (noise inside -> nearest)."""
    import hdbscan
    from sklearn.neighbors import NearestNeighbors

    fine = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=min(10, size), core_dist_n_jobs=1).fit(layout).labels_
    out, next_id = np.full(len(top), -1), 0
    for p in np.unique(top[top >= 0]):
        idx = np.flatnonzero(top == p)
        g = fine[idx].copy()
        if (g < 0).all():
            g[:] = 0
        elif (g < 0).any():
            _, j = NearestNeighbors(n_neighbors=1).fit(layout[idx[g >= 0]]).kneighbors(layout[idx[g < 0]])
            g[g < 0] = g[g >= 0][j[:, 0]]
        _, g = np.unique(g, return_inverse=True)
        out[idx] = g + next_id
        next_id += g.max() + 1
    return out


def levels(args) -> None:
    from embedspace.mapping import CollectionMapper, clustering_scores, npmi_coherence, topic_tree

    _, test20, ag = _sets(args)
    print(f"# topic tree levels; CPU: {cpu_name()}")
    print("corpus,seed,assign_outliers,level,n_clusters,noise,nmi,npmi,tree_seconds,nested_hdbscan_k,nested_hdbscan_nmi")
    runs = [("20ng", test20, s, False) for s in args.seeds] + [("agnews", ag, s, False) for s in args.seeds]
    runs.append(("20ng", test20, args.seeds[0], True))
    for name, space, seed, assign in runs:
        mapper = CollectionMapper(random_state=seed, progress=False, display=False, assign_outliers=assign).fit(space)
        table = mapper.space_.table
        truth = table["label"].astype(str).to_numpy()
        tree = topic_tree(mapper.space_)
        texts = table["text"].tolist()
        top = mapper.levels_[0]
        sizes = sorted({c["min_cluster_size"] for c in mapper.clusterer_.candidates_})
        for i, level in enumerate(mapper.levels_):
            scores = clustering_scores(level, truth)
            npmi = npmi_coherence(texts, tree[(tree["level"] == i) & (tree["cluster"] >= 0)]["keywords"].tolist())["mean"]
            alt_k = alt_nmi = ""
            if i > 0 and not assign:  # the grid candidate nearest this level's count, nested the HDBSCAN way
                counts = {c["min_cluster_size"]: c["n_clusters"] for c in mapper.clusterer_.candidates_}
                size = min(sizes, key=lambda s: abs(counts[s] - scores["n_clusters"]))
                alt = _nested_hdbscan(mapper.cluster_embedding_, top, size)
                alt_k, alt_nmi = len(np.unique(alt[alt >= 0])), f"{clustering_scores(alt, truth)['nmi']:.4f}"
            print(f"{name},{seed},{assign},{i},{scores['n_clusters']},{scores['noise_fraction']:.4f},{scores['nmi']:.4f},"
                  f"{npmi:.4f},{mapper.timings_['tree']:.2f},{alt_k},{alt_nmi}", flush=True)


def overhead(args) -> None:
    _, test20, _ = _sets(args)
    work = Path(tempfile.mkdtemp(prefix="bench-tree-"))
    test20.save(work / "20ng-test.set")
    print(f"# embedspace map of the cached 20 Newsgroups test vectors; CPU: {cpu_name()}")
    print("levels,run,wall_seconds,cpu_seconds,n_levels,tree_seconds")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    for run in range(args.repeats):
        for levels_arg in ("1", "auto"):
            command = [sys.executable, "-m", "embedspace.cli", "map", str(work / "20ng-test.set"), "-o", str(work / "map"),
                       "--overwrite", "--json", "--levels", levels_arg, "--label-col", "label"]
            before = os.times()
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - started
            after = os.times()
            if done.returncode:
                sys.exit(done.stderr[-2000:])
            metrics = json.loads((work / "map" / "metrics.json").read_text())
            cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
            print(f"{levels_arg},{run},{wall:.1f},{cpu:.1f},{len(metrics['levels'])},{metrics['timings'].get('tree', 0):.2f}",
                  flush=True)


def _gensim_npmi(texts, keyword_lists):
    """gensim's c_npmi over the same tokens (unigrams + bigrams), one window per document."""
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel
    from sklearn.feature_extraction.text import CountVectorizer

    from embedspace.mapping.labels import _TOKEN_PATTERN, NEWS_STOP_WORDS, keyword_text
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    analyzer = CountVectorizer(ngram_range=(1, 2), token_pattern=_TOKEN_PATTERN, lowercase=True,
                               stop_words=sorted(ENGLISH_STOP_WORDS | NEWS_STOP_WORDS)).build_analyzer()
    tokens = [analyzer(keyword_text(t)) for t in texts]
    dictionary = Dictionary(tokens)
    topics = [[w for w in words[:10] if w in dictionary.token2id] for words in keyword_lists]
    topics = [t for t in topics if len(t) >= 2]
    window = max(len(t) for t in tokens) + 1
    model = CoherenceModel(topics=topics, texts=tokens, dictionary=dictionary, coherence="c_npmi", window_size=window,
                           processes=1)
    return float(model.get_coherence())


def bertopic(args) -> None:
    from bertopic import BERTopic
    from sklearn.metrics import normalized_mutual_info_score

    import embedspace as es
    from embedspace.mapping import clustering_scores, npmi_coherence

    full, _, _ = _sets(args)
    rows = np.sort(np.random.default_rng(0).choice(len(full), args.n, replace=False))
    space = full.select(rows)
    texts, truth = space.table["text"].tolist(), space.table["label"].astype(str).to_numpy()
    # held-out reference: the posts not in the sample, which neither side's keywords were chosen on
    held_out = full.table["text"].to_numpy()[np.setdiff1d(np.arange(len(full)), rows)].tolist()
    print(f"# {args.n} 20 Newsgroups posts, the same cached vectors for both; CPU: {cpu_name()}")
    started, cpu0 = time.perf_counter(), time.process_time()
    mapped = es.map(space, seed=0, progress=False)
    tree = es.topic_tree(mapped)
    ours_seconds, ours_cpu = time.perf_counter() - started, time.process_time() - cpu0
    counts = {int(c[9:]): len(np.unique(mapped.table[c][mapped.table[c] >= 0]))
              for c in mapped.table.columns if str(c).startswith("cluster_l")}
    level = min((lv for lv, k in counts.items() if 15 <= k <= 40), key=lambda lv: abs(counts[lv] - 20), default=None)
    result = {"n": args.n, "levels": counts}
    for lv in sorted(counts):
        keywords = tree[(tree["level"] == lv) & (tree["cluster"] >= 0)]["keywords"].tolist()
        scores = clustering_scores(mapped.table[f"cluster_l{lv}"].to_numpy(), truth)
        result[f"ours_level{lv}"] = {"n_clusters": counts[lv], "nmi": round(scores["nmi"], 4),
                                     "noise_fraction": round(scores["noise_fraction"], 4),
                                     "npmi": round(npmi_coherence(texts, keywords)["mean"], 4),
                                     "npmi_held_out": round(npmi_coherence(held_out, keywords)["mean"], 4)}
    started = time.perf_counter()
    reranked = es.topic_tree(mapped, keywords="embedding")
    result["rerank_seconds"] = round(time.perf_counter() - started, 1)
    for lv in sorted(counts):
        keywords = reranked[(reranked["level"] == lv) & (reranked["cluster"] >= 0)]["keywords"].tolist()
        result[f"ours_level{lv}"]["npmi_embedding_keywords"] = round(npmi_coherence(texts, keywords)["mean"], 4)
    result["ours_level_15_40"] = level
    result["ours_seconds"], result["ours_cpu_seconds"] = round(ours_seconds, 1), round(ours_cpu, 1)
    top_keywords = tree[(tree["level"] == 0) & (tree["cluster"] >= 0)]["keywords"].tolist()
    result["npmi_check_level0"] = {"ours": round(npmi_coherence(texts, top_keywords)["mean"], 4),
                                   "gensim_c_npmi": round(_gensim_npmi(texts, top_keywords), 4)}
    started, cpu0 = time.perf_counter(), time.process_time()
    model = BERTopic(embedding_model=None)
    topics, _ = model.fit_transform(texts, embeddings=np.asarray(space.vectors, dtype=np.float32))
    fitted = (time.perf_counter() - started, len(set(topics) - {-1}), float(np.mean(np.asarray(topics) == -1)))
    model.hierarchical_topics(texts)
    model.reduce_topics(texts, nr_topics=20)
    reduced = np.asarray(model.topics_)
    bert_seconds, bert_cpu = time.perf_counter() - started, time.process_time() - cpu0
    words = [[w for w, _ in model.get_topic(t)][:10] for t in sorted(set(reduced.tolist()) - {-1})]
    result["bertopic_defaults"] = {"seconds": round(fitted[0], 1), "n_topics": fitted[1], "noise_fraction": round(fitted[2], 4)}
    result["bertopic_reduced_20"] = {
        "n_topics": len(words), "nmi": round(float(normalized_mutual_info_score(truth, reduced)), 4),
        "noise_fraction": round(float(np.mean(reduced == -1)), 4), "npmi": round(npmi_coherence(texts, words)["mean"], 4),
        "npmi_held_out": round(npmi_coherence(held_out, words)["mean"], 4),
        "seconds": round(bert_seconds, 1), "cpu_seconds": round(bert_cpu, 1)}
    print(json.dumps(result, indent=2))


def page(args) -> None:
    """map.html at ``--points`` points without and with a 3-level tree, opened alternately (bench_mappage.py's timing)."""
    import statistics

    import pandas as pd
    from playwright.sync_api import sync_playwright

    from bench_mappage import ARGS, CHROMIUM, synthetic_map, time_page
    from embedspace.mapping.page import page_data, render_map_html

    documents, clusters = synthetic_map(args.points)
    top = documents["cluster"].to_numpy()
    # a synthetic tree: each cluster in 3 parts by x, each part in 2 by y (the page's cost does not depend on how)
    l1, l2 = np.full(len(top), -1), np.full(len(top), -1)
    nodes = []
    for c in np.unique(top[top >= 0]):
        idx = np.flatnonzero(top == c)
        xs = documents["x"].to_numpy()[idx]
        part = np.searchsorted(np.quantile(xs, [1 / 3, 2 / 3]), xs)
        for p in range(3):
            child = 3 * c + p
            l1[idx[part == p]] = child
            nodes.append(dict(level=1, cluster=child, parent=c, size=int((part == p).sum()), share=0.0,
                              label=f"part {child}: words", keywords=["w"]))
            sub = idx[part == p]
            half = documents["y"].to_numpy()[sub] > np.median(documents["y"].to_numpy()[sub])
            for h in range(2):
                l2[sub[half == h]] = 2 * child + h
                nodes.append(dict(level=2, cluster=2 * child + h, parent=child, size=int((half == h).sum()), share=0.0,
                                  label=f"sub {2 * child + h}", keywords=["v"]))
    with_tree = documents.assign(cluster_l0=top, cluster_l1=l1, cluster_l2=l2)
    tree = pd.DataFrame(nodes)
    work = Path(tempfile.mkdtemp(prefix="bench-tree-page-"))
    pages = {}
    for name, docs, t in (("no_tree", documents, None), ("tree", with_tree, tree)):
        started = time.perf_counter()
        (work / f"{name}.html").write_text(render_map_html(page_data(docs, clusters, tree=t)), encoding="utf-8")
        print(f"{name}: {(work / f'{name}.html').stat().st_size / 1e6:.1f} MB written in {time.perf_counter() - started:.1f} s")
        pages[name] = work / f"{name}.html"
    results = {name: [] for name in pages}
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                                headless=True, viewport={"width": 1400, "height": 900})
        for _ in range(args.repeats):
            for name, path in pages.items():
                results[name].append(time_page(context, path, ours=True))
        context.close()
    print(f"# {args.points:,} points, median of {args.repeats} runs; CPU: {cpu_name()}")
    print("page,ready_s,parse_ms,setup_ms,first_draw_ms,redraw_ms,browser_cpu_s,errors")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("ready_ms", "parse_ms", "setup_ms", "first_draw_ms",
                                                                   "redraw_ms", "cpu_s")}
        print(f"{name},{med['ready_ms'] / 1000:.2f},{med['parse_ms']:.0f},{med['setup_ms']:.0f},{med['first_draw_ms']:.0f},"
              f"{med['redraw_ms']:.0f},{med['cpu_s']:.2f},{sum(len(r['errors']) for r in runs)}")


def names(args) -> None:
    """Mean NPMI of every level's top 10: the finer levels' coherent choice (the default) against c-TF-IDF alone."""
    import embedspace.mapping.topics as topics
    from embedspace.mapping import CollectionMapper, npmi_coherence, topic_tree

    _, test20, ag = _sets(args)
    print(f"# mean NPMI of the top-10 keywords per level, whole collection; CPU: {cpu_name()}")
    print("corpus,seed,level,n_clusters,npmi_ctfidf,npmi_coherent,seconds_ctfidf,seconds_coherent")
    default = topics.COHERENT_CANDIDATES
    for name, space in (("20ng", test20), ("agnews", ag)):
        for seed in args.seeds:
            mapped = CollectionMapper(random_state=seed, progress=False, display=False).fit(space).space_
            texts, scores, seconds = mapped.table["text"].tolist(), {}, {}
            for rule, candidates in (("ctfidf", 0), ("coherent", default)):
                topics.COHERENT_CANDIDATES = candidates
                started = time.process_time()
                tree = topic_tree(mapped)
                seconds[rule] = time.process_time() - started
                real = tree[tree["cluster"] >= 0]
                scores[rule] = npmi_coherence(texts, real["keywords"].tolist(), groups=real["level"].tolist())["by_group"]
            topics.COHERENT_CANDIDATES = default
            for level in sorted(scores["ctfidf"]):
                k = int((real["level"] == level).sum())
                print(f"{name},{seed},{level},{k},{scores['ctfidf'][level]:.4f},{scores['coherent'][level]:.4f},"
                      f"{seconds['ctfidf']:.2f},{seconds['coherent']:.2f}", flush=True)


def keywords(args) -> None:
    """NPMI of each level's top 10 keywords: c-TF-IDF against re-ranking by the terms' embeddings (with MMR)."""
    import embedspace as es
    from embedspace.mapping import CollectionMapper, npmi_coherence

    _, test20, _ = _sets(args)
    mapper = CollectionMapper(random_state=args.seeds[0], progress=False, display=False).fit(test20)
    mapped = mapper.space_
    tree = es.topic_tree(mapped, n_keywords=30)
    texts, table = mapped.table["text"].tolist(), mapped.table
    docs = np.array(mapped.vectors, dtype=np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    terms = sorted({w for words in tree["keywords"] for w in words})
    term_vectors = np.array(es.embed(terms, progress=False).vectors, dtype=np.float32)
    term_vectors /= np.linalg.norm(term_vectors, axis=1, keepdims=True)
    index = {w: i for i, w in enumerate(terms)}

    def mmr(words, centre, lam, k=10):
        vectors = term_vectors[[index[w] for w in words]]
        similarity, chosen = vectors @ centre, []
        while len(chosen) < min(k, len(words)):
            redundancy = (vectors @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(words))
            score = lam * similarity - (1 - lam) * redundancy
            score[chosen] = -np.inf
            chosen.append(int(np.argmax(score)))
        return [words[i] for i in chosen]

    print(f"# 20 Newsgroups test, seed {args.seeds[0]}, mean NPMI of the top-10 keywords per level; CPU: {cpu_name()}")
    print("level,n_clusters,ctfidf,rerank15_mmr0.5,rerank15_mmr0.7,rerank15,rerank30_mmr0.5,rerank30_mmr0.7,rerank30")
    for level in sorted(set(tree["level"])):
        rows = tree[(tree["level"] == level) & (tree["cluster"] >= 0)]
        labels = table[f"cluster_l{level}"].to_numpy()
        line = [npmi_coherence(texts, [w[:10] for w in rows["keywords"]])["mean"]]
        for candidates in (15, 30):
            for lam in (0.5, 0.7, 1.0):
                lists = []
                for row in rows.itertuples(index=False):
                    centre = docs[labels == row.cluster].mean(axis=0)
                    lists.append(mmr(list(row.keywords)[:candidates], centre / np.linalg.norm(centre), lam))
                line.append(npmi_coherence(texts, lists)["mean"])
        print(f"{level},{len(rows)}," + ",".join(f"{v:.4f}" for v in line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("levels", "overhead", "bertopic", "page", "keywords", "names"))
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--set20", default="/tmp/emb/20ng.set", help="saved set of the 20 Newsgroups posts (all splits)")
    parser.add_argument("--ag", default="/tmp/emb/agnews.set", help="saved set of AG News test")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("-n", type=int, default=10_000)
    args = parser.parse_args()
    {"levels": levels, "overhead": overhead, "bertopic": bertopic, "page": page, "keywords": keywords,
     "names": names}[args.mode](args)


if __name__ == "__main__":
    main()
