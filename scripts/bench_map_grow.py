"""Growing a map (``embedspace map add`` / ``es.add_to_map``): old rows, known posts, new topics, speed.

Protocol (issue 35), 20 Newsgroups with cached embeddings (an EmbeddingSet with columns
text, split, label — e.g. ``embedspace embed corpus:20newsgroups -o 20ng.set``): for each
group G, map the test split without G (seed 0), then add the train split's posts of G plus
2,000 train posts drawn from the other 19 groups (seed 0). Per group it reports:

* ``old_same``: the old rows' x, y, cluster, probability, outlier_score are byte-identical;
* ``own_old``: share of the mapped test posts in a cluster whose majority group is their own;
  ``own_new``: the same for the added posts of the 19 known groups (majority taken from the
  mapped rows); the target is ``own_new >= own_old - 0.05``;
* novelty: precision, recall and F1 of the new-topic clusters (all of them together) for G;
* ``add_s``: seconds of ``add_to_map`` (in memory, cached embeddings) against ``scratch_s``,
  mapping test + added posts from scratch in the same run (``--speed`` groups only).

Also: which groups a full map of the test split puts in a cluster of their own (a cluster
whose posts are >= 80% that group holding >= 50% of the group's posts).

Run::

    nice -n 10 python scripts/bench_map_grow.py --set /tmp/emb/20ng.set             # all 20 groups
    nice -n 10 python scripts/bench_map_grow.py --set 20ng.set --groups sci.med      # one group
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

import embedspace as es
from embedspace.mapping import CollectionMapper, write_grown_map, write_map

try:
    from _bench_machine import cpu_name
except ImportError:  # run from elsewhere
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bench_machine import cpu_name

MAP_COLUMNS = ("x", "y", "cluster", "probability", "outlier_score")
ADDED_OTHERS = 2_000


def majority(clusters: np.ndarray, labels: np.ndarray) -> dict:
    """{cluster: its majority label} over clustered rows."""
    out = {}
    for c in np.unique(clusters[clusters >= 0]):
        values, counts = np.unique(labels[clusters == c], return_counts=True)
        out[int(c)] = values[counts.argmax()]
    return out


def own_rate(clusters: np.ndarray, labels: np.ndarray, major: dict) -> float:
    hits = [c >= 0 and major.get(int(c)) == lab for c, lab in zip(clusters, labels)]
    return float(np.mean(hits)) if hits else float("nan")


def own_clusters(mapped, labels) -> dict:
    """{group: (precision, recall)} for groups with a cluster >= 80% theirs holding >= 50% of them."""
    clusters = mapped.table["cluster"].to_numpy()
    found = {}
    for group in np.unique(labels):
        mine = labels == group
        for c in np.unique(clusters[clusters >= 0]):
            members = clusters == c
            precision = float(mine[members].mean())
            recall = float((mine & members).sum() / mine.sum())
            if precision >= 0.8 and recall >= 0.5:
                found[str(group)] = (round(precision, 3), round(recall, 3))
    return found


def one_group(space, group: str, *, speed: bool, via_directory: bool) -> dict:
    table = space.table
    labels = table["label"].astype(str).to_numpy()
    split = table["split"].astype(str).to_numpy()
    old = np.flatnonzero((split == "test") & (labels != group))
    rng = np.random.default_rng(0)
    others = np.flatnonzero((split == "train") & (labels != group))
    new = np.concatenate([np.flatnonzero((split == "train") & (labels == group)),
                          np.sort(rng.choice(others, ADDED_OTHERS, replace=False))])
    started = time.perf_counter()
    mapper = CollectionMapper(random_state=0, progress=False).fit(space.select(old))
    mapped = mapper.space_
    map_s = time.perf_counter() - started
    size = int(mapper.clusterer_.min_cluster_size_)  # what metrics.json of its map directory holds
    started = time.perf_counter()
    growth = es.add_to_map(mapped, space.select(new), min_cluster_size=size, progress=False)
    add_s = time.perf_counter() - started
    n_old = growth.n_old
    grown = growth.space.table
    same = all(np.array_equal(np.asarray(grown[c].iloc[:n_old]).view(np.uint8),
                              np.asarray(mapped.table[c]).view(np.uint8)) for c in MAP_COLUMNS)
    old_clusters = mapped.table["cluster"].to_numpy()
    major = majority(old_clusters, labels[old])
    new_clusters = grown["cluster"].to_numpy()[n_old:]
    new_labels = labels[new]
    known = new_labels != group
    in_topics = np.isin(new_clusters, growth.new_topics)
    is_g = new_labels == group
    precision = float(is_g[in_topics].mean()) if in_topics.any() else 0.0
    recall = float((is_g & in_topics).sum() / max(is_g.sum(), 1))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    row = {"group": group, "min_cluster_size": size, "n_old": n_old, "n_new": len(new), "n_g": int(is_g.sum()), "old_same": same,
           "own_old": own_rate(old_clusters, labels[old], major),
           "own_new": own_rate(new_clusters[known], new_labels[known], major),
           "new_topics": len(growth.new_topics), "precision": precision, "recall": recall, "f1": f1,
           "candidates": growth.counts["novelty_candidates"], "outliers_new": growth.counts["outliers"],
           "map_s": map_s, "add_s": add_s}
    if speed:
        started = time.perf_counter()
        es.map(space.select(np.concatenate([old, new])), seed=0, progress=False)
        row["scratch_s"] = time.perf_counter() - started
    if via_directory:
        with tempfile.TemporaryDirectory() as tmp:
            write_map(mapped, Path(tmp) / "old", label_col="label", mapper=mapper)
            started = time.perf_counter()
            again = es.add_to_map(Path(tmp) / "old", space.select(new), progress=False)
            row["add_dir_s"] = time.perf_counter() - started
            row["dir_same"] = bool(np.array_equal(again.space.table["cluster"].to_numpy(), grown["cluster"].to_numpy()))
            write_grown_map(again, Path(tmp) / "grown")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="/tmp/emb/20ng.set", help="EmbeddingSet of 20 Newsgroups (text, split, label)")
    parser.add_argument("--groups", default="all", help="comma list of groups, or 'all'")
    parser.add_argument("--speed", default="sci.med,comp.graphics,rec.autos",
                        help="groups whose test + added posts are also mapped from scratch (timing); 'all' for every one")
    args = parser.parse_args()
    if Path(args.set).exists():
        space = es.load(args.set)
    else:  # the shipped corpus (../shared/corpora/clustering/20newsgroups), embedded once and then cached
        print(f"# {args.set} not found: embedding corpus:20newsgroups (cached after the first run)")
        space = es.embed("corpus:20newsgroups", progress=False)
    labels = space.table["label"].astype(str).to_numpy()
    groups = sorted(np.unique(labels)) if args.groups == "all" else args.groups.split(",")
    unknown = sorted(set(groups) - set(np.unique(labels)))
    if unknown:
        sys.exit(f"unknown group(s): {', '.join(unknown)} (the set's labels: {', '.join(sorted(np.unique(labels)))})")
    speed = set(groups) if args.speed == "all" else set(args.speed.split(","))
    print(f"# bench_map_grow.py, {cpu_name()}, {date.today()}, set {args.set} ({len(space)} posts)")
    test = np.flatnonzero(space.table["split"].astype(str).to_numpy() == "test")
    full = es.map(space.select(test), seed=0, progress=False)
    own = own_clusters(full, labels[test])
    print(f"full test map: {full.table['cluster'].max() + 1} clusters; groups with a cluster of their own "
          f"(>= 80% theirs, >= 50% of them): " + ", ".join(f"{g} {p}/{r}" for g, (p, r) in sorted(own.items())))
    rows = []
    print("| G | old rows same | own rate mapped | own rate added | Δ | new topics | precision | recall | F1 | add s | scratch s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, group in enumerate(groups):
        row = one_group(space, group, speed=group in speed, via_directory=(i == 0))
        rows.append(row)
        scratch = row.get("scratch_s")
        ratio = f"{row['add_s'] / scratch:.2f}" if scratch else "-"
        print(f"| {group}{' *' if group in own else ''} | {row['old_same']} | {row['own_old']:.3f} | {row['own_new']:.3f} | "
              f"{row['own_new'] - row['own_old']:+.3f} | {row['new_topics']} | {row['precision']:.2f} | {row['recall']:.2f} | "
              f"{row['f1']:.2f} | {row['add_s']:.1f} | {f'{scratch:.1f}' if scratch else '-'} | "
              f"{ratio} |", flush=True)
        print(f"  (min_cluster_size {row['min_cluster_size']}, novelty candidates {row['candidates']})", flush=True)
        if "add_dir_s" in row:
            print(f"  (from the map directory, texts re-embedded from the cache: {row['add_dir_s']:.1f} s; "
                  f"same clusters as in memory: {row['dir_same']})", flush=True)
    f1s = [r["f1"] for r in rows]
    print(f"\nmedian F1 over {len(rows)} groups: {statistics.median(f1s):.2f}; "
          f"F1 of the own-cluster groups: " + ", ".join(f"{r['group']} {r['f1']:.2f}" for r in rows if r["group"] in own))
    print(f"old rows byte-identical in every run: {all(r['old_same'] for r in rows)}; "
          f"own rate added >= mapped - 0.05 in {sum(r['own_new'] >= r['own_old'] - 0.05 for r in rows)}/{len(rows)}")
    timed = [r for r in rows if r.get("scratch_s")]
    if timed:
        print("add / scratch: " + ", ".join(f"{r['group']} {r['add_s'] / r['scratch_s']:.2f}" for r in timed))


if __name__ == "__main__":
    main()
