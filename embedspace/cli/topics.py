"""``embedspace topics MAP [--level L] [--json]``: the topic tree of a map directory, indented."""

from __future__ import annotations

from embedspace.cli._common import UsageError, add_command, emit_json, number, printable
from embedspace.mapping import read_topics, tree_lines


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "topics",
        help="print the topic tree of a map: clusters at each level, with sizes and labels",
        description="Read MAP (a directory written by 'embedspace map') and print its topic tree: the top level's "
                    "clusters, and under each the clusters of the next level inside it, with size, share and label "
                    "(topics.csv). A map made before topic trees has one level.",
        examples=["embedspace topics news-map", "embedspace topics news-map --level 1", "embedspace topics news-map --json"],
        handler=run,
    )
    parser.add_argument("map", metavar="MAP", help="map directory")
    parser.add_argument("--level", type=number(int, at_least=0), default=None, metavar="L",
                        help="show levels 0 (the top) to L only (default: every level)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    tree = read_topics(args.map)
    n_levels = int(tree["level"].max()) + 1 if len(tree) else 0
    if args.level is not None and args.level >= n_levels:
        raise UsageError(f"--level {args.level}: the map has levels 0 to {n_levels - 1}")
    shown = tree if args.level is None else tree[tree["level"] <= args.level]
    if args.json:
        emit_json({
            "map": str(args.map),
            "n_levels": n_levels,
            "levels": [{"level": int(level), "n_clusters": int(((tree["level"] == level) & (tree["cluster"] >= 0)).sum())}
                       for level in range(n_levels)],
            "topics": [{"level": int(r.level), "cluster": int(r.cluster), "parent": int(r.parent), "size": int(r.size),
                        "share": float(r.share), "label": r.label, "keywords": list(r.keywords)}
                       for r in shown.itertuples()],
        })
        return 0
    counts = ", ".join(f"level {level}: {int(((tree['level'] == level) & (tree['cluster'] >= 0)).sum())}"
                       for level in range(n_levels))
    print(f"{n_levels} level{'s' if n_levels != 1 else ''} ({counts} clusters)")
    for line in tree_lines(shown):
        print(printable(line))
    return 0
