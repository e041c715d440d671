"""``embedspace map add MAP INPUT|SET -o DIR``: place new documents into a map; the old rows do not move.

The ``map`` verb dispatches here when its first word is ``add`` (as ``index add``): argparse
cannot tell an INPUT called ``add`` from the word, so ``map`` takes its extra positional
words and :func:`run_add` sorts them out (a file really called ``add`` is given as ``./add``).
"""

from __future__ import annotations

from embedspace._fs import check_output_path
from embedspace.cli._common import emit_json, print_table, progress_of
from embedspace.errors import InputError
from embedspace.mapping import MAP_FORMAT, add_to_map, collection_name, write_grown_map

__all__ = ["DESCRIPTION", "EXAMPLES", "USAGE", "run_add"]

USAGE = "embedspace map add MAP INPUT|SET -o DIR [--text-col C] [--title T] [--overwrite] [--json] [--quiet]"
DESCRIPTION = (
    "'embedspace map add MAP INPUT|SET -o DIR' places new documents into an existing map without moving it: "
    "each new document is embedded with the map's model (cached), placed among its nearest mapped documents "
    "(UMAP's transform against the fixed layout) and joins the cluster they vote for, or none when it lies farther "
    "from the map than the map's own documents do; documents of a topic the map lacks are clustered among "
    "themselves into new topics (marked new in clusters.csv, map.png and map.html). DIR is a new map (MAP is "
    "not touched); the old rows keep their coordinates, clusters and probabilities exactly. Texts already in "
    "the map are skipped and counted."
)
EXAMPLES = ["embedspace map add news-map this-week.csv -o news-map-2", "embedspace map add news-map more.set -o news-map-2 --json"]

# map options that make a map and have no meaning when placing into one: (attribute, default, flag)
_MAP_ONLY = (("label_col", None, "--label-col"), ("min_cluster_size", None, "--min-cluster-size"),
             ("assign_outliers", False, "--assign-outliers"), ("stability", None, "--stability"),
             ("sample_size", None, "--sample-size"), ("k", None, "--k"), ("seed", 0, "--seed"),
             ("model", None, "--model"), ("backend", "auto", "--backend"), ("max_tokens", None, "--max-tokens"),
             ("engine", "local", "--engine"), ("ray_address", None, "--ray-address"), ("ray_workers", None, "--ray-workers"),
             ("levels", None, "--levels"))


def run_add(args, words: list[str]) -> int:
    """Handle ``map add``: ``words`` are the positional words after ``add``."""
    if len(words) != 2:
        raise InputError(f"'map add' takes a map and the new documents: {USAGE} (got {len(words)} paths)")
    given = [flag for name, default, flag in _MAP_ONLY if getattr(args, name, default) not in (default, "auto")]
    if given:
        raise InputError(f"'map add' places documents with the map's own model and settings; {', '.join(given)} "
                         "apply only to making a map")
    map_dir, source = words
    check_output_path(args.output, overwrite=args.overwrite, inputs=[map_dir, source], kind=MAP_FORMAT)
    growth = add_to_map(map_dir, source, text_col=args.text_col, progress=progress_of(args))
    title = args.title or f"{collection_name(map_dir)} + {collection_name(source, 'new documents')}"
    result = write_grown_map(growth, args.output, overwrite=args.overwrite, title=title, command=args.command_line)
    clusters = result["clusters"]
    joined = _joined_table(growth, clusters)
    if args.json:
        emit_json({**growth.counts, "n": len(growth.space), "n_before": growth.n_old,
                   "n_clusters": result["metrics"]["n_clusters"], "new_topics": growth.new_topics,
                   "output": result["output"], "joined": joined})
        return 0
    if args.quiet:
        return 0
    c = growth.counts
    skipped = f", {c['duplicates_skipped']} skipped as already in the map" if c["duplicates_skipped"] else ""
    print(f"added {c['added']} documents to a map of {growth.n_old}{skipped}: {c['assigned']} joined existing "
          f"clusters, {c['in_new_topics']} formed {len(growth.new_topics)} new topic(s), {c['outliers']} outliers")
    if joined:
        print_table(_frame(joined), max_width=70)
    print(f"\nwrote {result['output']}/: map.png, map.html, report.html, clusters.csv (column new), documents.parquet "
          "(new rows after the old ones), metrics.json")
    return 0


def _joined_table(growth, clusters) -> list[dict]:
    labels = {int(r.cluster): str(r.label) for r in clusters.itertuples()}
    rows = []
    for cluster, count in sorted(growth.joined.items(), key=lambda kv: (-kv[1], kv[0])):
        rows.append({"cluster": cluster, "joined": count, "new": cluster in growth.new_topics,
                     "label": labels.get(cluster, "outliers" if cluster < 0 else "")})
    return rows


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["cluster", "joined", "new", "label"])
