"""compare (issue 33), measured on the 20 Newsgroups test split with the default model.

Parts (``--part``; each prints markdown tables and saves its raw numbers as JSON under --out):

- ``calibration``: random half-splits of the test split (seeds 0..N-1): p < 0.05 count of the
  k-NN test (our default), the linear classifier test and the MMD permutation baseline, and how
  many splits have a region with q < 0.05 (full ``es.compare_sets``).
- ``power``: A = 3,000 random test posts without group G, B = 3,000 other posts of which x% are
  posts of G; detection rate (p < 0.05) per cell for the three tests; at x = 5% (every cell with
  --compare-all) also the full ``compare_sets``: purity and coverage of B's top over-represented
  region (a pocket, ``analysis/compare_pockets.py``, or a map region), read with ``result.members``.
- ``speed``: ``compare_sets`` on two 3,000-post sets against ``es.map`` of their union.
- ``groups``: ``compare_groups --by label`` on the test split (is each group's own topic first
  in its column?), and a synthetic date column over 10 bins of 350 posts in which sci.space's
  share rises from 1% to 20% (is that topic flagged, and no other at q < 0.01?).
- ``models``: ``compare_models`` of the default backend against exact ``onnx``, and of
  ``max_tokens=64`` against the full window (embedded here, through the cache).

Embeddings are read from /tmp/emb/20ng.set (all of 20 Newsgroups, default backend; see
scripts/BENCHMARKS.md); nothing is downloaded.

    nice -n 10 .venv/bin/python scripts/bench_compare.py --part calibration --seeds 20
    nice -n 10 .venv/bin/python scripts/bench_compare.py --part power --seeds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from _bench_machine import cpu_name

import embedspace as es
from embedspace.analysis.compare_stats import (
    knn_two_sample_test,
    linear_two_sample_test,
    mmd_test,
)
from embedspace.mapping import knn_graph

GROUPS = ["sci.space", "sci.med", "rec.autos"]
SHARES = [0.01, 0.02, 0.05, 0.10]
SET_SIZE = 3000


def load(path: str):
    space = es.load(path)
    test = np.flatnonzero(space.table["split"].to_numpy() == "test")
    return space, test, space.table["label"].to_numpy()


def global_tests(vectors, source, seed: int, mmd: bool = True, linear: bool = True) -> dict:
    """p-values and seconds of the three global tests on one split (the k-NN test on a k = 15 graph, as the map's)."""
    out = {}
    clock = time.perf_counter()
    graph = knn_graph(vectors, k=15)
    out["knn"] = knn_two_sample_test(graph.indices, source, permutations=1000, seed=seed)["p_value"]
    out["t_knn"] = time.perf_counter() - clock
    if linear:
        clock = time.perf_counter()
        out["linear"] = linear_two_sample_test(vectors, source, seed=seed)["p_value"]
        out["t_linear"] = time.perf_counter() - clock
    if mmd:
        clock = time.perf_counter()
        out["mmd"] = mmd_test(vectors, source, permutations=1000, seed=seed)["p_value"]
        out["t_mmd"] = time.perf_counter() - clock
    return out


def calibration(space, test, labels, seeds: int, args) -> list[dict]:
    rows = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(test)
        half = len(order) // 2
        a, b = space.select(order[:half]), space.select(order[half:])
        source = np.r_[np.zeros(half, bool), np.ones(len(order) - half, bool)]
        vectors = np.asarray(space.vectors[order], dtype=np.float32)
        row = {"seed": seed, **global_tests(vectors, source, seed, mmd=not args.no_mmd, linear=not args.no_linear)}
        if not args.tests_only:
            result = es.compare_sets(a, b, seed=seed, progress=False)
            row["compare_p"] = result.metrics["p_value"]
            row["p_regions"] = result.metrics["global_test"]["parts"]["regions"]["p_value"]
            row["n_significant"] = result.metrics["n_significant"]
            row["n_pockets"] = result.metrics["n_pockets"]
            row["largest_core"] = result.metrics["pockets"]["largest_core"]
            row["timings"] = result.metrics["timings"]
            row["n_regions"] = result.metrics["n_regions"]
            row["min_q"] = float(result.regions["q_value"].min())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def injected_split(test, labels, group: str, share: float, seed: int, a_size: int = SET_SIZE, b_size: int = SET_SIZE):
    """A: ``a_size`` rows of ``test`` without ``group``; B: ``b_size`` other rows, ``round(b_size * share)`` of them of it."""
    rng = np.random.default_rng(seed)
    others = rng.permutation(test[labels[test] != group])
    members = test[labels[test] == group]
    n_g = round(b_size * share)
    a = others[:a_size]
    b = np.r_[others[a_size:a_size + b_size - n_g], rng.choice(members, n_g, replace=False)]
    return a, b, n_g


def power(space, test, labels, seeds: int, args) -> list[dict]:
    rows = []
    wanted = [float(x) for x in args.shares.split(",")] if args.shares else SHARES
    for share in [x for x in [0.05] + SHARES[:2] + SHARES[3:] if x in wanted]:  # the acceptance cell first
        for group in GROUPS:
            count = seeds if share == 0.05 or not args.other_seeds else args.other_seeds
            for seed in range(args.first_seed, args.first_seed + count):
                a, b, n_g = injected_split(test, labels, group, share, seed)
                order = np.r_[a, b]
                source = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
                vectors = np.asarray(space.vectors[order], dtype=np.float32)
                row = {"group": group, "share": share, "seed": seed, **global_tests(vectors, source, seed, mmd=not args.no_mmd,
                                                                                   linear=not args.no_linear)}
                if (share == 0.05 or args.compare_all) and not args.tests_only:
                    row.update(top_region(space, a, b, group, n_g, seed))
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def top_region(space, a, b, group: str, n_g: int, seed: int) -> dict:
    result = es.compare_sets(space.select(a), space.select(b), seed=seed, progress=False)
    table = result.space.table
    over = result.regions[(result.regions["significant"]) & (result.regions["log2_ratio"] > 0)]
    out = {"compare_p": result.metrics["p_value"], "n_significant": result.metrics["n_significant"],
           "p_knn_map": result.metrics["global_test"]["parts"]["knn"]["p_value"],
           "p_regions": result.metrics["global_test"]["parts"]["regions"]["p_value"],
           "compare_seconds": result.metrics["timings"]["total"], "timings": result.metrics["timings"]}
    if len(over) == 0:
        return {**out, "purity": 0.0, "coverage": 0.0}
    members = result.members(over.iloc[0]["cluster"])
    injected = (table["label"].to_numpy() == group) & (table["source"].to_numpy() == "B")
    return {**out, "purity": float((table["label"].to_numpy()[members] == group).mean()),
            "coverage": float((members & injected).sum() / n_g), "top_label": over.iloc[0]["label"],
            "top_kind": over.iloc[0]["kind"], "n_pockets": result.metrics["n_pockets"]}


def speed(space, test, labels, args) -> list[dict]:
    rows = []
    for seed in range(args.seeds):
        a, b, _ = injected_split(test, labels, "sci.space", 0.05, seed)
        union = space.select(np.r_[a, b])
        clock = time.perf_counter()
        es.map(union, seed=seed, progress=False)
        t_map = time.perf_counter() - clock
        clock = time.perf_counter()
        result = es.compare_sets(space.select(a), space.select(b), seed=seed, progress=False)
        t_cmp = time.perf_counter() - clock
        rows.append({"seed": seed, "map_s": t_map, "compare_s": t_cmp, "ratio": t_cmp / t_map,
                     "compare_timings": result.metrics["timings"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def groups(space, test, labels, args) -> dict:
    """--by label on the test split; a synthetic date column in which sci.space rises from 1% to 20% over 10 bins."""
    out = {}
    clock = time.perf_counter()
    result = es.compare_groups(space.select(test), by="label", seed=0, progress=False)
    table = result.space.table
    majority = table[table["cluster"] >= 0].groupby("cluster")["label"].agg(lambda v: v.value_counts().index[0])
    out["by_label"] = {"own_first": int(sum(majority[result.metrics["top_topics"][g][0]] == g for g in result.groups)),
                       "groups": len(result.groups), "topics": result.metrics["n_topics"],
                       "significant": result.metrics["n_significant"], "seconds": time.perf_counter() - clock}
    print(json.dumps(out["by_label"]), flush=True)
    trend = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        space_rows = list(rng.permutation(test[labels[test] == "sci.space"]))
        other_rows = list(rng.permutation(test[labels[test] != "sci.space"]))
        rows, dates = [], []
        for b, share in enumerate(np.linspace(0.01, 0.20, 10)):
            n_space = round(350 * share)
            rows += [space_rows.pop() for _ in range(n_space)] + [other_rows.pop() for _ in range(350 - n_space)]
            dates += [f"2024-{b + 1:02d}-{d:02d}" for d in rng.integers(1, 28, 350)]
        chosen = space.select(np.array(rows)).assign(date=dates)
        result = es.compare_groups(chosen, by="date", bins=10, seed=seed, progress=False)
        topics, table = result.topics, result.space.table
        real = topics[topics["cluster"] >= 0]
        purity = {int(c): float((table.loc[table["cluster"] == c, "label"] == "sci.space").mean()) for c in real["cluster"]}
        space_topics = [c for c, p in purity.items() if p >= 0.5]
        flagged = real[real["cluster"].isin(space_topics)]
        others = real[~real["cluster"].isin(space_topics)]
        row = {"seed": seed, "space_topics": len(space_topics),
               "space_min_q": float(flagged["q_value"].min()) if len(flagged) else None,
               "space_rising": bool((flagged["statistic"] > 0).all()) if len(flagged) else None,
               "other_min_q": float(others["q_value"].min()), "others_below_001": int((others["q_value"] < 0.01).sum()),
               "others_below_005": int((others["q_value"] < 0.05).sum()), "topics": len(real)}
        trend.append(row)
        print(json.dumps(row), flush=True)
    out["trend"] = trend
    return out


def models(space, test, labels, args) -> dict:
    """Default backend against exact onnx, and --max-tokens 64 against the full window, on the test split."""
    docs = space.table.iloc[test][["text", "label"]].reset_index(drop=True)
    if args.limit:
        docs = docs.head(args.limit)
    base = space.select(test[: len(docs)])
    out = {}
    for name, kwargs in (("onnx", {"backend": "onnx"}), ("max_tokens_64", {"max_tokens": 64})):
        clock = time.perf_counter()
        other = es.embed(docs, progress=False, **kwargs)
        t_embed = time.perf_counter() - clock
        clock = time.perf_counter()
        result = es.compare_models(base, other, seed=0, progress=False)
        worst = result.clusters[result.clusters["cluster"] >= 0].head(3)
        out[name] = {**{k: result.metrics[k] for k in ("knn_overlap", "cka", "cka_debiased", "spearman", "n")},
                     "embed_seconds": t_embed, "compare_seconds": time.perf_counter() - clock,
                     "worst": worst.to_dict(orient="records"), "model_b": result.metrics["models"][1]}
        print(json.dumps(out[name], default=str), flush=True)
    return out


def report_calibration(rows) -> None:
    n = len(rows)
    print(f"\ncalibration, {n} random half-splits of the 20NG test split (3,766 vs 3,766):\n")
    print("| test | splits with p < 0.05 | mean p | mean seconds |")
    print("|---|---|---|---|")
    for test in ("knn", "linear", "mmd"):
        if test in rows[0]:
            p = np.array([r[test] for r in rows])
            t = np.mean([r[f"t_{test}"] for r in rows])
            print(f"| {test} | {(p < 0.05).sum()} of {n} | {p.mean():.3f} | {t:.1f} |")
    if "compare_p" in rows[0]:
        print(f"| knn+regions (default; full compare_sets) | {sum(r['compare_p'] < 0.05 for r in rows)} of {n} | "
              f"{np.mean([r['compare_p'] for r in rows]):.3f} | |")
    if "n_significant" in rows[0]:
        clean = sum(r["n_significant"] == 0 for r in rows)
        print(f"\nsplits with no region at q < 0.05 (pockets: family-wise p < 0.05): {clean} of {n} "
              f"(smallest q over all splits: {min(r['min_q'] for r in rows):.3f}); splits with a pocket: "
              f"{sum(r.get('n_pockets', 0) > 0 for r in rows)} of {n}")


def report_power(rows) -> None:
    tests = [t for t in ("knn", "linear", "mmd") if t in rows[0]]
    shares = sorted({r["share"] for r in rows})
    print("\npower: detection rate (p < 0.05) per cell (detected/seeds), A = B = 3,000 posts, B holds x% posts of G:\n")
    print("| G | x | " + " | ".join(tests) + " |")
    print("|---|---|" + "---|" * len(tests))
    for group in GROUPS:
        for share in shares:
            cell = [r for r in rows if r["group"] == group and r["share"] == share]
            if cell:
                rates = " | ".join(f"{sum(r[t] < 0.05 for r in cell)}/{len(cell)}" for t in tests)
                print(f"| {group} | {share:.0%} | {rates} |")
    top = [r for r in rows if "purity" in r]
    if top:
        print("\nx = 5%: B's top over-represented region (full compare_sets):\n")
        print("| G | detected (compare p < 0.05) | purity >= 0.8 | coverage >= 0.7 | mean purity | mean coverage |")
        print("|---|---|---|---|---|---|")
        for group in GROUPS:
            cell = [r for r in top if r["group"] == group]
            print(f"| {group} | {sum(r['compare_p'] < 0.05 for r in cell)}/{len(cell)} | "
                  f"{sum(r['purity'] >= 0.8 for r in cell)}/{len(cell)} | {sum(r['coverage'] >= 0.7 for r in cell)}/{len(cell)} | "
                  f"{np.mean([r['purity'] for r in cell]):.2f} | {np.mean([r['coverage'] for r in cell]):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["calibration", "power", "speed", "groups", "models"], required=True)
    parser.add_argument("--limit", type=int, default=0, help="models: first N test posts only (0 = all)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="power: first split seed (10 with --seeds 10: the held-out seeds 10-19)")
    parser.add_argument("--set", default="/tmp/emb/20ng.set")
    parser.add_argument("--out", default="/tmp/bench_compare")
    parser.add_argument("--no-mmd", action="store_true", help="skip the MMD baseline")
    parser.add_argument("--compare-all", action="store_true", help="power: full compare_sets in every cell, not only x = 5%%")
    parser.add_argument("--shares", default="", help="power: comma-separated shares to run (default: all)")
    parser.add_argument("--other-seeds", type=int, default=0, help="power: seeds of the cells other than x = 5%% (default: --seeds)")
    parser.add_argument("--no-linear", action="store_true", help="skip the linear classifier test")
    parser.add_argument("--tests-only", action="store_true", help="global tests only (no compare_sets)")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; {time.strftime('%Y-%m-%d')}", flush=True)
    space, test, labels = load(args.set)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.part == "calibration":
        rows = calibration(space, test, labels, args.seeds, args)
        report_calibration(rows)
    elif args.part == "power":
        rows = power(space, test, labels, args.seeds, args)
        report_power(rows)
    elif args.part == "groups":
        rows = groups(space, test, labels, args)
        t = rows["trend"]
        print(f"\ngroups --by label: own topic first for {rows['by_label']['own_first']} of {rows['by_label']['groups']} "
              f"groups ({rows['by_label']['topics']} topics)")
        print(f"date trend over {len(t)} seeds: sci.space topic q < 0.05 and rising in "
              f"{sum(r['space_min_q'] is not None and r['space_min_q'] < 0.05 and r['space_rising'] for r in t)}; "
              f"no other topic at q < 0.01 in {sum(r['others_below_001'] == 0 for r in t)}")
    elif args.part == "models":
        rows = models(space, test, labels, args)
    else:
        rows = speed(space, test, labels, args)
        ratios = [r["ratio"] for r in rows]
        print(f"\nspeed: compare_sets / map of the union, {len(rows)} seeds: median {np.median(ratios):.2f}x "
              f"(map {np.median([r['map_s'] for r in rows]):.1f} s, compare {np.median([r['compare_s'] for r in rows]):.1f} s)")
    (Path(args.out) / f"{args.part}.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
