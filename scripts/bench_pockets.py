"""compare's pockets (analysis/compare_pockets.py): how well B's top pocket recovers an injected topic, per extent rule.

A = ``--a-size`` random documents without group G; B = ``--b-size`` other documents of which
a share x are documents of G. B's top pocket (the first significant pocket of B, as
``compare sets`` ranks them) "meets both" when it is >= 80% G and holds >= 70% of the
injected documents (issue 33's bars). For each corpus and setting the script counts the
splits that meet both, for each extent bar (``find_pockets(extend=...)``) and for the earlier
rule (``--earlier``: a document of B joined when at least 0.35 of its neighbours of A or in the
pocket were in the pocket, in up to 10 rounds, then members below that bar were dropped once).
The cores and their p-values do not depend on the rule, so every rule sees the same cores.

Settings: ``x5`` (3,000 a side, x = 5%: the acceptance cell), ``x10`` (x = 10%),
``smallA`` (A = 1,500, B = 3,000, x = 5%: unequal sets). Corpora: 20 Newsgroups test split
(G = sci.space, sci.med, rec.autos) and AG News test split (G = World, Sports; texts are
title + description), both embedded with the default model through the cache.

    nice -n 10 .venv/bin/python scripts/bench_pockets.py --seeds 20 --earlier
    nice -n 10 .venv/bin/python scripts/bench_pockets.py --corpora 20ng --settings x5 --seeds 40 --first-seed 0
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
from bench_compare import injected_split
from bench_map import AG_NEWS, ag_news_table

import embedspace as es
from embedspace.analysis.compare_pockets import (
    find_pockets,
    neighbours_without_self,
    pocket_neighbours,
)
from embedspace.mapping import knn_graph

GROUPS = {"20ng": ["sci.space", "sci.med", "rec.autos"], "ag": ["World", "Sports"]}
SETTINGS = {"x5": (3000, 3000, 0.05), "x10": (3000, 3000, 0.10), "smallA": (1500, 3000, 0.05)}
EARLIER_BAR = 0.35


def load(corpus: str):
    if corpus == "20ng":
        return es.embed("corpus:20newsgroups", progress=False)
    return es.embed(ag_news_table(AG_NEWS), progress=False)


def earlier_extent(neighbours, own, members):
    """The rule shipped before the walk: grow by the 0.35 share of pocket among A-or-pocket neighbours."""
    inside = members.copy()

    def holds(now):
        known = (~own | now)[neighbours].sum(axis=1)
        return now[neighbours].sum(axis=1) >= EARLIER_BAR * np.maximum(known, 1), known

    for _ in range(10):
        ok, known = holds(inside)
        join = own & ~inside & (known >= 3) & ok
        if not join.any():
            break
        inside |= join
    return inside & holds(inside)[0]


def top_of_b(found):
    return next((p for p in found["pockets"] if p["significant"] and p["side"] == "B"), None)


def score(members, injected) -> tuple[float, float]:
    if not members.any():
        return 0.0, 0.0
    return float(injected[members].mean()), float((members & injected).sum() / injected.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default="20ng,ag")
    parser.add_argument("--settings", default="x5,x10,smallA")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--bars", default="0.15,0.18,0.2,0.22,0.25", help="extent bars to score")
    parser.add_argument("--earlier", action="store_true", help="also score the earlier fixed-share rule")
    parser.add_argument("--out", default="/tmp/bench_pockets.jsonl")
    args = parser.parse_args()
    bars = [float(x) for x in args.bars.split(",")]
    rules = [f"walk {bar:g}" for bar in bars] + (["earlier 0.35"] if args.earlier else [])
    print(f"CPU: {cpu_name()}; {time.strftime('%Y-%m-%d')}", flush=True)
    table: dict[tuple[str, str], dict[str, int]] = {}
    seconds = {"graph": 0.0, "pockets": 0.0}
    with open(args.out, "w", encoding="utf-8") as log:
        for corpus in args.corpora.split(","):
            space = load(corpus)
            labels = space.table["label"].to_numpy().astype(str)
            for setting in args.settings.split(","):
                a_size, b_size, share = SETTINGS[setting]
                cell = table.setdefault((corpus, setting), {"splits": 0, **{rule: 0 for rule in rules}})
                for group in GROUPS[corpus]:
                    for seed in range(args.first_seed, args.first_seed + args.seeds):
                        a, b, _ = injected_split(np.arange(len(labels)), labels, group, share, seed,
                                                 a_size=a_size, b_size=b_size)
                        union = space.select(np.r_[a, b])
                        source = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
                        injected = source & (labels[np.r_[a, b]] == group)
                        clock = time.perf_counter()
                        graph = pocket_neighbours(knn_graph(union, k=15).indices, union, seed=seed)
                        seconds["graph"] += time.perf_counter() - clock
                        row = {"corpus": corpus, "setting": setting, "group": group, "seed": seed}
                        for bar in bars:
                            clock = time.perf_counter()
                            top = top_of_b(find_pockets(graph, source, seed=seed, extend=bar))
                            seconds["pockets"] += time.perf_counter() - clock
                            members = np.zeros(len(source), bool)
                            if top is not None:
                                members[top["members"]] = True
                            row[f"walk {bar:g}"] = score(members, injected)
                            if args.earlier and bar == bars[0]:
                                core = np.zeros(len(source), bool)
                                if top is not None:
                                    core[top["core"]] = True
                                    members = earlier_extent(neighbours_without_self(graph), source, core)
                                row["earlier 0.35"] = score(members if top is not None else core, injected)
                        cell["splits"] += 1
                        for rule in rules:
                            purity, coverage = row[rule]
                            cell[rule] += purity >= 0.8 and coverage >= 0.7
                        log.write(json.dumps(row) + "\n")
                        log.flush()
                print(f"{corpus} {setting}: " + ", ".join(f"{rule} {cell[rule]}/{cell['splits']}" for rule in rules),
                      flush=True)
    seeds = f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
    print(f"\nB's top pocket >= 80% G and holding >= 70% of it, splits meeting both ({seeds}):\n")
    print("| corpus | setting | " + " | ".join(rules) + " |")
    print("|---|---|" + "---|" * len(rules))
    for (corpus, setting), cell in table.items():
        print(f"| {corpus} | {setting} | " + " | ".join(f"{cell[rule]}/{cell['splits']}" for rule in rules) + " |")
    print(f"\nseconds: pocket graphs {seconds['graph']:.0f}, find_pockets {seconds['pockets']:.0f} "
          f"({len(bars)} bars); per-split rows in {args.out}")


if __name__ == "__main__":
    main()
