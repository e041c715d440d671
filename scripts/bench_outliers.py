"""Outliers and duplicates, measured on published protocols (issue 34); tables in scripts/BENCHMARKS.md.

Parts (``--part``, repeatable; default all):

``cvdd``
    The CVDD one-class protocol (Ruff et al. 2019): 20 Newsgroups stripped as
    ``fetch_20newsgroups(remove=("headers", "footers", "quotes"))``, six super-groups; the
    normal super-group's train posts are the reference, every test post is scored, AUROC
    per super-group. Every scoring rule tried is a row (:func:`variants`), beside the
    library's methods and the published means; ``--windows`` adds posts embedded as
    150-word windows, GLOSH is a map of the reference (``--no-glosh`` skips it). This
    table chose ``contrast`` as the default of ``es.outlier_scores``.
``contaminated``
    One super-group's test posts plus 3% from the others, scored without a reference.
``duplicates``
    2,000 posts and seven kinds of copies; pair precision and recall of the ``near`` rule
    and of cosine thresholds against MinHash (datasketch, 128 permutations, word 5-grams,
    Jaccard 0.5). Posts of 20 Newsgroups that share a 25-word passage (cross-posts,
    unmarked quotes) are one family in the ground truth; the raw precision counts them as
    errors. This table chose the ``near`` rule of ``es.find_duplicates`` on ``--seed 0``;
    ``--seed 1`` (other posts, other copies) checks it.
``scale``
    ``--scale-n`` short texts of scripts/bench_scale.py embedded once into /tmp/emb, then
    duplicates and outliers each in a child process: seconds and peak RSS (psutil).

Run with ``nice -n 10``; ``--prepare`` only embeds the CVDD texts (cached by es.embed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

import embedspace as es  # noqa: E402
from _bench_copies import COPY_KINDS, REUSE_WORDS, duplicate_collection, minhash_groups, pair_scores, reuse_families  # noqa: E402
from _bench_machine import cpu_name  # noqa: E402

SUPER_GROUPS = {
    "comp": ["comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware",
             "comp.windows.x"],
    "rec": ["rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey"],
    "sci": ["sci.crypt", "sci.electronics", "sci.med", "sci.space"],
    "misc": ["misc.forsale"],
    "pol": ["talk.politics.guns", "talk.politics.mideast", "talk.politics.misc"],
    "rel": ["talk.religion.misc", "alt.atheism", "soc.religion.christian"],
}
WINDOW_WORDS = 150  # ~200 word pieces: one window fits the model's 256-token window


def cvdd_table():
    """Both splits of 20 Newsgroups, stripped as ``fetch_20newsgroups(remove=("headers", "footers", "quotes"))``.

    Posts left empty by the stripping are dropped (there is nothing to embed).
    Columns: text, split, label, group (the super-group).
    """
    from sklearn.datasets._twenty_newsgroups import (
        strip_newsgroup_footer,
        strip_newsgroup_header,
        strip_newsgroup_quoting,
    )

    docs = es.read("corpus:20newsgroups-all")
    stripped = [strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(t))) for t in docs["text"]]
    table = docs.assign(text=stripped)
    group_of = {label: group for group, labels in SUPER_GROUPS.items() for label in labels}
    table = table.assign(group=table["label"].map(group_of))
    keep = table["text"].str.strip().str.len() > 0
    return table[keep].reset_index(drop=True)[["text", "split", "label", "group"]]


def windows(text: str, size: int = WINDOW_WORDS) -> list[str]:
    """The text cut into consecutive windows of ``size`` words (one window when it is short)."""
    words = text.split()
    return [" ".join(words[i:i + size]) for i in range(0, max(len(words), 1), size)]


def chunk_vectors(texts, *, pool: str = "mean", progress=False) -> np.ndarray:
    """One unit vector per text: the ``pool`` ("mean" or "max") over its windows' vectors."""
    pieces, owner = [], []
    for i, text in enumerate(texts):
        for piece in windows(text):
            pieces.append(piece)
            owner.append(i)
    vectors = es.embed(pieces, progress=progress).vectors
    owner = np.asarray(owner)
    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float64)
    if pool == "mean":
        np.add.at(out, owner, vectors)
    else:
        out[:] = -np.inf
        np.maximum.at(out, owner, vectors)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


# --- CVDD one-class protocol -------------------------------------------------------------------
PUBLISHED = {  # mean AUROC and per super-group (comp, rec, sci, misc, pol, rel) where the papers give them
    "isolation forest (CVDD paper)": (0.637, None),
    "OCSVM (CVDD paper)": (0.716, None),
    "CVDD (Ruff et al. 2019)": (0.697, None),
    "DATE (Manolache et al. 2021)": (0.832, None),
}


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _mean_dist(queries, base, k, leave_out_self=False):
    """Mean cosine distance of each query to its k nearest base rows (exact, FAISS)."""
    from embedspace.search import NeighbourSearch

    index = NeighbourSearch(base, exact=True)
    sims, rows = index.search(queries, k, self_offset=0 if leave_out_self else None)
    return 1.0 - sims.astype(np.float64), rows


def _binned_median(x_ref, y_ref, x, bins=10):
    """Median of ``y_ref`` in quantile bins of ``x_ref``, interpolated at ``x``."""
    edges = np.quantile(x_ref, np.linspace(0, 1, bins + 1))
    centres, medians = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (x_ref >= low) & (x_ref <= high)
        if inside.sum() > 5:
            centres.append(np.median(x_ref[inside]))
            medians.append(np.median(y_ref[inside]))
    return np.interp(x, centres, medians)


def variants(ref, test, *, k=10, ref_len=None, test_len=None):
    """Every scoring rule tried: name -> scores of the test rows (higher = more anomalous)."""
    from sklearn.covariance import LedoitWolf

    out = {}
    d_test, rows = _mean_dist(test, ref, 50)
    d_ref, _ = _mean_dist(ref, ref, 50, leave_out_self=True)
    for kk in (1, 5, 10, 20, 50):
        out[f"knn k={kk}"] = d_test[:, :kk].mean(axis=1)
    plain = d_test[:, :k].mean(axis=1)
    # ensemble over k: mean of the k-NN distances' ranks for k = 1, 5, 10, 20, 50
    ranks = [np.argsort(np.argsort(d_test[:, :kk].mean(axis=1))) for kk in (1, 5, 10, 20, 50)]
    out["knn rank-ensemble k=1..50"] = np.mean(ranks, axis=0)
    # local density: divide by the neighbours' own k-NN distance inside the reference
    own = d_ref[:, :k].mean(axis=1)
    out["knn / neighbours' own k-NN distance"] = plain / own[rows[:, :k]].mean(axis=1)
    # length: the reference's own k-NN distance as a function of log(words), subtracted or divided
    if ref_len is not None:
        expected = _binned_median(ref_len, own, test_len)
        out["knn - expected knn at this length"] = plain - expected
        out["knn / expected knn at this length"] = plain / expected
    # centred: subtract the reference's (or everything's) mean vector, renormalise, then k-NN
    centre = ref.mean(axis=0, keepdims=True)
    d_c, _ = _mean_dist(_unit(test - centre), _unit(ref - centre), k)
    out["knn, centred on the reference mean"] = d_c.mean(axis=1)
    centre = np.concatenate([ref, test]).mean(axis=0, keepdims=True)
    c_ref, c_test = _unit(ref - centre), _unit(test - centre)
    d_c, _ = _mean_dist(c_test, c_ref, k)
    d_cs, _ = _mean_dist(c_test, c_test, k, leave_out_self=True)
    out["knn, centred on the mean of reference + scored"] = d_c.mean(axis=1)
    out["centred (ref + scored), knn ref - 0.5 knn within the scored"] = d_c.mean(axis=1) - 0.5 * d_cs.mean(axis=1)
    # transductive: the scored set's own density (its k nearest other scored posts)
    d_self, _ = _mean_dist(test, test, 20, leave_out_self=True)
    out["knn ref / knn within the scored"] = plain / d_self[:, :k].mean(axis=1)
    out["log knn ref - 0.5 log knn within the scored"] = np.log(plain) - 0.5 * np.log(d_self[:, :k].mean(axis=1))
    for beta in (0.3, 0.5, 0.7, 1.0):
        out[f"knn ref - {beta} knn within the scored"] = plain - beta * d_self[:, :k].mean(axis=1)
    out["knn ref - 0.5 knn(20) within the scored"] = plain - 0.5 * d_self.mean(axis=1)
    # contrast with everything: distance to the k_all nearest of reference + scored (own row left out)
    d_all, _ = _mean_dist(test, np.concatenate([ref, test]), 31)
    d_all = d_all[:, 1:]  # the post itself
    for k_all in (10, 20, 30):
        for beta in (0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
            if beta in (0.4, 0.5, 0.6) or k_all == 10:
                out[f"knn ref - {beta} knn({k_all}) in ref + scored"] = plain - beta * d_all[:, :k_all].mean(axis=1)
    out["log knn ref - 0.8 log knn(10) in ref + scored"] = np.log(plain) - 0.8 * np.log(d_all[:, :k].mean(axis=1))
    lw = LedoitWolf().fit(ref)
    out["Mahalanobis (Ledoit-Wolf)"] = lw.mahalanobis(test)
    return out


def library_methods(ref, test, *, seed=0, batches=(1000, 100)):
    """The library's own methods (es.outlier_scores) with a reference; the default also on new posts
    arriving in random batches (its scored set is then only the batch)."""
    from embedspace.analysis import DEFAULT_METHOD, METHODS

    out = {}
    for method in METHODS:
        out[f"es: {method}"] = es.outlier_scores(test, reference=ref, method=method, random_state=seed)
    rng = np.random.default_rng(seed)
    for size in batches:
        scores, order = np.empty(len(test), dtype=np.float32), rng.permutation(len(test))
        for start in range(0, len(test), size):
            rows = order[start:start + size]
            scores[rows] = es.outlier_scores(test[rows], reference=ref, method=DEFAULT_METHOD, random_state=seed)
        out[f"es: {DEFAULT_METHOD}, posts scored in batches of {size}"] = scores
    return out


def glosh_novelty(ref, test, *, seed=0):
    """GLOSH of the map's clustering: UMAP (15 neighbours, 5-D, min_dist 0) and HDBSCAN fitted on the
    reference as `map` does; test posts placed by UMAP's transform, scored by approximate_predict_scores."""
    import hdbscan
    import umap
    from embedspace.mapping.clustering import MIN_SAMPLES, auto_min_cluster_size

    reducer = umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed,
                        n_epochs=200)
    layout = reducer.fit_transform(ref)
    size = auto_min_cluster_size(len(ref))
    model = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=min(MIN_SAMPLES, size), prediction_data=True)
    model.fit(layout.astype(np.float64))
    placed = reducer.transform(test)
    return np.nan_to_num(np.asarray(hdbscan.approximate_predict_scores(model, placed.astype(np.float64))), nan=1.0)


def cvdd(table, vectors, *, chunked=None, glosh=True, seed=0):
    """AUROC per super-group of every scoring rule: {rule: {group: auroc}}."""
    from sklearn.metrics import roc_auc_score

    results: dict = {}
    split = table["split"].to_numpy()
    group = table["group"].to_numpy()
    test_rows = np.flatnonzero(split == "test")
    lengths = np.log1p(table["text"].str.split().str.len().to_numpy())
    for name in SUPER_GROUPS:
        ref_rows = np.flatnonzero((split == "train") & (group == name))
        anomalous = group[test_rows] != name
        scores = variants(vectors[ref_rows], vectors[test_rows], ref_len=lengths[ref_rows],
                          test_len=lengths[test_rows])
        scores.update(library_methods(vectors[ref_rows], vectors[test_rows], seed=seed))
        if chunked is not None:
            for pool, chunk in chunked.items():
                d, _ = _mean_dist(chunk[test_rows], chunk[ref_rows], 10)
                scores[f"knn k=10, {pool} over {WINDOW_WORDS}-word windows"] = d.mean(axis=1)
                scores[f"knn k=10, truncated + {pool} over windows (sum)"] = d.mean(axis=1) + scores["knn k=10"]
        if glosh:
            scores["GLOSH (map clustering of the reference)"] = glosh_novelty(vectors[ref_rows], vectors[test_rows],
                                                                             seed=seed)
        for rule, values in scores.items():
            results.setdefault(rule, {})[name] = float(roc_auc_score(anomalous, values))
        print(f"  {name}: {len(ref_rows)} reference posts, {len(test_rows)} scored, "
              f"{int(anomalous.sum())} anomalous", flush=True)
    return results


def print_auroc_table(results, title):
    names = list(SUPER_GROUPS)
    print(f"\n{title}\n")
    print("| method | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for rule, per in sorted(results.items(), key=lambda item: -np.mean(list(item[1].values()))):
        cells = [f"{per[g]:.3f}" for g in names]
        print(f"| {rule} | " + " | ".join(cells) + f" | **{np.mean(list(per.values())):.3f}** |")
    for rule, (mean, _) in PUBLISHED.items():
        print(f"| {rule} (published) | " + " | ".join("" for _ in names) + f" | {mean:.3f} |")


# --- contaminated collection -------------------------------------------------------------------
def contaminated(table, vectors, *, share=0.03, seeds=(0, 1, 2, 3, 4), glosh=True):
    """Each super-group's test posts plus ``share`` posts from the others, scored without a reference.

    Returns {method: {group: (auroc, precision at the number of anomalies)}}, means over ``seeds``.
    """
    from sklearn.metrics import roc_auc_score

    from embedspace.analysis import METHODS

    split = table["split"].to_numpy()
    group = table["group"].to_numpy()
    results: dict = {}
    for name in SUPER_GROUPS:
        normal = np.flatnonzero((split == "test") & (group == name))
        others = np.flatnonzero((split == "test") & (group != name))
        n_anomalies = int(round(share * len(normal) / (1 - share)))
        per: dict = {}
        for seed in seeds:
            rng = np.random.default_rng(seed)
            rows = np.concatenate([normal, rng.choice(others, size=n_anomalies, replace=False)])
            truth = np.arange(len(rows)) >= len(normal)
            collection = es.EmbeddingSet(vectors[rows], table.iloc[rows].reset_index(drop=True))
            scores = {f"es: {m}": es.outlier_scores(collection, method=m, random_state=seed)
                      for m in METHODS}
            scores["knn k=1"] = es.outlier_scores(collection, method="knn", k=1)
            scores["knn k=20"] = es.outlier_scores(collection, method="knn", k=20)
            if glosh and seed == seeds[0]:  # one map per super-group: the maps are most of the run's time
                from embedspace.mapping import CollectionMapper

                mapper = CollectionMapper(display=False, random_state=seed, progress=False).fit(collection)
                scores["GLOSH (map), first draw only"] = mapper.space_.table["outlier_score"].to_numpy()
            for method, values in scores.items():
                top = np.argsort(-np.asarray(values), kind="stable")[:n_anomalies]
                per.setdefault(method, []).append((roc_auc_score(truth, values), truth[top].mean()))
        for method, pairs in per.items():
            results.setdefault(method, {})[name] = tuple(np.mean(pairs, axis=0))
        print(f"  {name}: {len(normal)} posts + {n_anomalies} from other groups, {len(seeds)} draws", flush=True)
    return results


def print_contaminated(results):
    names = list(SUPER_GROUPS)
    print("\nContaminated collection (no reference): AUROC / precision@(number of anomalies), mean of 5 draws\n")
    print("| method | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for method, per in sorted(results.items(), key=lambda item: -np.mean([v[0] for v in item[1].values()])):
        cells = [f"{per[g][0]:.3f} / {per[g][1]:.2f}" for g in names]
        mean_auc = np.mean([per[g][0] for g in names])
        mean_p = np.mean([per[g][1] for g in names])
        print(f"| {method} | " + " | ".join(cells) + f" | **{mean_auc:.3f} / {mean_p:.2f}** |")


# --- duplicates --------------------------------------------------------------------------------
def run_duplicates(args):
    from embedspace.analysis import describe_threshold, duplicate_groups

    table = cvdd_table()
    docs = duplicate_collection(table, n=args.dup_n, seed=args.seed)
    started = time.perf_counter()
    space = es.embed(docs, progress=False)
    print(f"  {len(docs)} documents ({args.dup_n} posts x {len(COPY_KINDS) + 1}, seed {args.seed}) embedded in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    source, kind = docs["source"].to_numpy(), docs["kind"].to_numpy()
    family, merged = reuse_families(docs)
    print(f"  ground truth: {merged} of the {args.dup_n} posts share a passage of {REUSE_WORDS}+ words with "
          "another post (cross-posts, unmarked quotes): their copies form one family", flush=True)
    rows = []
    for threshold in ("near", 0.70, 0.75, 0.80, 0.85, 0.90, 0.95):
        started = time.perf_counter()
        labels = duplicate_groups(space, threshold, progress=False)
        took = time.perf_counter() - started
        precision, recall, overall = pair_scores(labels, source, kind, family)
        raw = pair_scores(labels, source, kind)[0]
        name = f"embedspace {describe_threshold(threshold)}" + (" (default)" if threshold == "near" else "")
        rows.append((name, precision, raw, recall, overall, took))
    started = time.perf_counter()
    labels = minhash_groups(docs["text"].tolist())
    took = time.perf_counter() - started
    precision, recall, overall = pair_scores(labels, source, kind, family)
    rows.append(("MinHash (datasketch, 128 perm, word 5-grams, J >= 0.5)", precision,
                 pair_scores(labels, source, kind)[0], recall, overall, took))
    print("\nDuplicate pairs: precision of grouped pairs (reuse families / every other post counted false); "
          "recall of (original, copy) pairs per copy kind\n")
    print("| method | precision | precision, raw | " + " | ".join(COPY_KINDS) + " | all pairs recall | seconds |")
    print("|---|---|---|" + "---|" * (len(COPY_KINDS) + 2))
    for name, precision, raw, recall, overall, took in rows:
        cells = " | ".join(f"{recall[k]:.3f}" for k in COPY_KINDS)
        print(f"| {name} | {precision:.3f} | {raw:.3f} | {cells} | {overall:.3f} | {took:.1f} |")
    return rows


# --- scale ---------------------------------------------------------------------------------------
def scale_set(n: int) -> Path:
    """The ``n`` short texts of scripts/bench_scale.py embedded once into /tmp/emb (streamed, cached)."""
    from bench_scale import short_texts

    from embedspace.encoding.pipeline import embed_to_disk

    path = Path("/tmp/emb") / (f"scale{n // 1_000_000}m.set" if n % 1_000_000 == 0 else f"scale{n // 1000}k.set")
    if path.exists():
        return path
    import pandas as pd

    texts = Path(f"/tmp/emb/scale-texts-{n}.parquet")
    pd.DataFrame({"text": short_texts(n)}).to_parquet(texts)
    started = time.perf_counter()
    embed_to_disk(str(texts), path, progress=True)
    print(f"  embedded {n:,} short texts into {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def scale_stage(stage: str, path: str) -> None:
    """One measured job in this (child) process: prints a JSON line with its seconds and result size."""
    import json

    space = es.load(path)
    started = time.perf_counter()
    if stage == "duplicates":
        groups = es.find_duplicates(space, progress=True)
        result = {"groups": len(groups), "documents in groups": int(groups["size"].sum()) if len(groups) else 0}
    else:
        scores = es.outlier_scores(space, progress=True)
        result = {"mean score": float(np.mean(scores))}
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result), flush=True)


def _measured_child(argv: list[str]) -> tuple[dict, float, float]:
    """Run this script as a child with ``argv``: its JSON result, its peak RSS and its peak RSS less
    file-backed shared pages (the memory-mapped vectors, which the kernel can drop), in GB (psutil, polled)."""
    import json
    import subprocess

    import psutil

    child = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True)
    process, peak, peak_private = psutil.Process(child.pid), 0, 0
    while child.poll() is None:
        try:
            info = process.memory_info()
        except psutil.NoSuchProcess:
            break
        peak = max(peak, info.rss)
        peak_private = max(peak_private, info.rss - getattr(info, "shared", 0))
        time.sleep(0.2)
    out = child.stdout.read().strip().splitlines()
    if child.returncode != 0:
        raise SystemExit(f"child {argv} failed with status {child.returncode}")
    return json.loads(out[-1]), peak / 1e9, peak_private / 1e9


def run_scale(args) -> None:
    path = scale_set(args.scale_n)
    print(f"\nScale: {args.scale_n:,} short texts ({path}), one child process per job\n")
    print("| job | seconds | peak RSS (GB) | peak RSS less file-backed pages (GB) | result |")
    print("|---|---|---|---|---|")
    for stage in ("duplicates", "outliers"):
        result, peak, private = _measured_child(["--scale-stage", stage, str(path)])
        seconds = result.pop("seconds")
        print(f"| {stage} | {seconds:.0f} | {peak:.2f} | {private:.2f} | {result} |", flush=True)


def prepare() -> None:
    started = time.perf_counter()
    table = cvdd_table()
    print(f"{len(table)} posts after stripping", flush=True)
    es.embed(table, progress=False)
    print(f"embedded (truncated) in {time.perf_counter() - started:.0f} s", flush=True)
    chunk_vectors(table["text"].tolist())
    print(f"embedded windows in {time.perf_counter() - started:.0f} s", flush=True)


def run_cvdd(args) -> dict:
    table = cvdd_table()
    space = es.embed(table, progress=False)
    chunked = None
    if args.windows:
        texts = table["text"].tolist()
        chunked = {pool: chunk_vectors(texts, pool=pool) for pool in ("mean", "max")}
    results = cvdd(table, space.vectors, chunked=chunked, glosh=not args.no_glosh, seed=args.seed)
    print_auroc_table(results, "One-class AUROC, CVDD protocol (20 Newsgroups, 6 super-groups)")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="only embed the CVDD texts (cached)")
    parser.add_argument("--part", action="append", choices=("cvdd", "contaminated", "duplicates", "scale"),
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--windows", action="store_true", help="also score posts embedded as word windows")
    parser.add_argument("--no-glosh", action="store_true", help="skip the (slow) GLOSH column")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-n", type=int, default=2000, help="posts copied for the duplicates table")
    parser.add_argument("--scale-n", type=int, default=1_000_000, help="short texts of the scale table")
    parser.add_argument("--scale-stage", nargs=2, metavar=("JOB", "SET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale_stage:
        scale_stage(*args.scale_stage)
        return 0
    print(f"CPU: {cpu_name()}", flush=True)
    if args.prepare:
        prepare()
        return 0
    parts = args.part or ["cvdd", "contaminated", "duplicates", "scale"]
    if "cvdd" in parts:
        run_cvdd(args)
    if "contaminated" in parts:
        table = cvdd_table()
        space = es.embed(table, progress=False)
        print_contaminated(contaminated(table, space.vectors, glosh=not args.no_glosh))
    if "duplicates" in parts:
        run_duplicates(args)
    if "scale" in parts:
        run_scale(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
