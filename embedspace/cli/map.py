"""``embedspace map`` and ``embedspace eval clustering``: lay out, cluster, name and score a collection."""

from __future__ import annotations

import argparse

from embedspace._fs import check_output_path
from embedspace.analysis import add_map_columns, drop_duplicates
from embedspace.cli import map_add
from embedspace.cli._common import (
    UsageError,
    add_command,
    add_engine_options,
    check_engine_options,
    emit_json,
    number,
    positive_int,
    print_table,
    progress_of,
    seed,
)
from embedspace.encoding import BACKENDS
from embedspace.evaluation import evaluate_clustering
from embedspace.mapping import (
    MAP_FORMAT,
    MAX_LEVELS,
    MIN_SAMPLE,
    CollectionMapper,
    clustering_stability,
    collection_name,
    make_mapper,
    space_to_map,
    write_map,
)

_at_least_two = number(int, at_least=2, why="runs to compare")
_sample_size = number(int, at_least=MIN_SAMPLE, why="rows to fit a map on")


def _add_input_options(parser) -> None:
    parser.add_argument("input", metavar="INPUT|SET", help="file, folder, corpus:NAME, or an EmbeddingSet directory")
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--model", default=None, help="model for embedding INPUT (default: all-MiniLM-L6-v2)")

    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="inference backend for embedding INPUT (default: auto, the backend 'embedspace embed' uses, so "
                             "a set embedded before is reused from the cache; openvino-int8-bf16 clusters alike and "
                             "embeds long documents about 1.3x faster on a CPU with native bf16: see "
                             "scripts/BENCHMARKS.md)")
    parser.add_argument("--max-tokens", type=positive_int, default=None, metavar="N",
                        help="tokens of each document embedded when INPUT is text (default: the model's window, 256; "
                             "fewer is faster on long documents but maps them less well: see scripts/BENCHMARKS.md)")
    parser.add_argument("--k", type=positive_int, default=None, metavar="N",
                        help="ask for exactly N clusters (k-means on the embeddings beside the 5-D layout, best of 10 "
                             "starts; no outliers)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed; the same seed gives the same map (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "map",
        help="lay out and cluster a collection; write map.png, map.html, clusters and metrics",
        description=(
            "Embed INPUT (or load an EmbeddingSet), build one nearest-neighbour graph, lay it out with UMAP in 2-D "
            "for display and 5-D for clustering, cluster with HDBSCAN (granularity chosen automatically, or exactly "
            "--k clusters), name each cluster by class-based TF-IDF keywords and write DIR with documents.parquet, "
            "clusters.csv, map.png, map.html (opens offline) and metrics.json. Outliers get cluster -1 unless "
            "--assign-outliers. With --label-col the clustering is scored against those labels (ARI, NMI, V-measure). "
            "The same --seed gives the same map. Collections of 5 to 30 documents get a PCA layout and one cluster "
            "(or k-means with --k); fewer than 5 documents is an error. "
            "Collections larger than --sample-size (default 50,000) are mapped by fitting UMAP and HDBSCAN on a seeded "
            "sample of that many rows and placing every other row with UMAP's transform and HDBSCAN's approximate "
            "prediction, in parallel batches: in this process, or on Ray with --engine ray (a local cluster, or "
            "--ray-address). --stability then reruns the clustering on the sample rows."
        ),
        examples=[
            "embedspace map corpus:20newsgroups -o news-map --label-col label",
            "embedspace map reviews.csv --text-col body -o reviews-map --k 12",
            "embedspace map news.set -o news-map --seed 1 --stability 5 --json",
            "embedspace map big.set -o big-map --sample-size 50000 --engine ray --ray-address ray-head:6379",
        ],
        handler=run,
    )
    _add_input_options(parser)
    parser.add_argument("more", nargs="*", help=argparse.SUPPRESS)  # 'map add MAP INPUT': see embedspace.cli.map_add
    parser.usage = "embedspace map INPUT|SET -o DIR [options]\n       " + map_add.USAGE
    parser.description += " " + map_add.DESCRIPTION
    parser.epilog += "\n" + "\n".join(f"  {line}" for line in map_add.EXAMPLES)
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output map directory")
    parser.add_argument("--label-col", default=None, metavar="L", help="column of reference labels to score against")
    parser.add_argument("--min-cluster-size", type=positive_int, default=None, metavar="N",
                        help="smallest cluster (default: chosen automatically from the data)")
    parser.add_argument("--assign-outliers", action="store_true", help="attach outliers to their nearest cluster")
    parser.add_argument("--dedupe", action="store_true",
                        help="map one document per group of exact and near duplicates (the default rule of "
                             "'embedspace duplicates'); documents.parquet gets source_row, the row in INPUT")
    parser.add_argument("--levels", type=_levels, default="auto", metavar="auto|N",
                        help="levels of the topic tree (cluster_l0 = the clusters, then finer ones nested inside; "
                             f"default auto: chosen from the data; N from 1 to {MAX_LEVELS}); see 'embedspace topics DIR'")
    parser.add_argument("--stability", type=_at_least_two, default=None, metavar="N",
                        help="also cluster with N seeds and report the mean pairwise ARI between them")
    parser.add_argument("--title", default=None,
                        help="title of map.png, map.html and report.html (default: the collection's name: the file "
                             "stem of INPUT, the set folder's name, or the corpus name; never a path)")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    parser.add_argument("--sample-size", type=_sample_size, default=None, metavar="N",
                        help="fit the map on a sample of N rows and place the others (default: 50000; smaller "
                             "collections are mapped whole)")
    add_engine_options(parser, local="place the rows outside the sample in this process", ray="on Ray")


def register_eval(verbs) -> None:
    parser = add_command(
        verbs,
        "clustering",
        help="cluster a labelled collection and score it: ari, nmi, v_measure, noise_fraction, n_clusters",
        description=(
            "Run the map pipeline on INPUT (no files written) and compare its clusters with the labels in "
            "--label-col. Outliers count as a class of their own."
        ),
        examples=[
            "embedspace eval clustering corpus:20newsgroups --label-col label",
            "embedspace eval clustering news.csv --label-col topic --k 20 --json",
        ],
        handler=run_eval,
    )
    _add_input_options(parser)
    parser.add_argument("--label-col", required=True, metavar="L", help="column of reference labels")


def _levels(text: str):
    """``--levels``: "auto" or a whole number from 1 to MAX_LEVELS."""
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number, got '{text}'") from None
    if not 1 <= value <= MAX_LEVELS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LEVELS}, got {text}")
    return value


def run(args) -> int:
    if args.input == "add":
        return map_add.run_add(args, args.more)
    if args.more:
        raise UsageError(f"expected one INPUT|SET to map, got {1 + len(args.more)}: {args.input} {' '.join(args.more)} "
                         "(to add documents to a map: embedspace map add MAP INPUT -o DIR)")
    progress = progress_of(args)
    check_engine_options(args)
    check_output_path(args.output, overwrite=args.overwrite, inputs=[args.input], kind=MAP_FORMAT)
    space = space_to_map(args.input, text_col=args.text_col, label_col=args.label_col, model=args.model,
                         backend=args.backend, max_tokens=args.max_tokens, progress=progress)
    n_dropped = None
    if args.dedupe:
        kept = drop_duplicates(space, progress=progress)
        n_dropped, space = len(space) - len(kept), kept
    mapper = make_mapper(space, sample_size=args.sample_size, engine=args.engine, address=args.ray_address,
                         workers=args.ray_workers,
                         min_cluster_size=args.min_cluster_size or "auto", n_clusters=args.k,
                         assign_outliers=args.assign_outliers, random_state=args.seed, progress=progress)
    if isinstance(mapper, CollectionMapper):
        mapper.levels = args.levels
    mapper.fit(space)
    extra = {}
    sampled = getattr(mapper, "sample_rows_", None)
    if sampled is not None:
        extra["sampling"] = {"sample_size": len(sampled), "n_placed": int(mapper.n_placed_), "engine": args.engine}
    if args.stability:
        seeds = [args.seed + i for i in range(args.stability)]
        stability_space = space if sampled is None or mapper.n_placed_ == 0 else space.select(sampled)
        extra["stability"] = clustering_stability(
            stability_space, seeds, progress=progress, min_cluster_size=args.min_cluster_size or "auto", k=args.k,
            assign_outliers=args.assign_outliers,
        )
        if stability_space is not space:
            extra["stability"]["sample_rows"] = len(stability_space)
    mapped = add_map_columns(mapper.space_, progress=progress)  # outlier_score, glosh, duplicate_group
    result = write_map(mapped, args.output, label_col=args.label_col, overwrite=args.overwrite, mapper=mapper,
                       title=args.title or collection_name(args.input), extra=extra, command=args.command_line)
    metrics, clusters = result["metrics"], result["clusters"]
    if args.json:
        summary = {key: metrics[key] for key in ("n", "n_clusters", "noise_fraction", "ari", "nmi", "v_measure",
                                                 "homogeneity", "completeness", "silhouette", "dbcv", "min_cluster_size",
                                                 "k", "method") if key in metrics}
        summary["output"] = result["output"]
        if n_dropped is not None:
            summary["n_dropped"] = n_dropped
        summary["levels"] = [{k: level[k] for k in ("level", "n_clusters", "noise_fraction", "nmi", "npmi") if k in level}
                             for level in metrics.get("levels", [])]
        if "stability" in metrics:
            summary["stability"] = metrics["stability"]
        summary["clusters"] = [
            {"cluster": int(r.cluster), "size": int(r.size), "label": r.label, "keywords": list(r.keywords)}
            for r in clusters.itertuples()
        ]
        emit_json(summary)
        return 0
    if args.quiet:
        return 0
    _print_summary(metrics, clusters)
    if "stability" in metrics:
        s = metrics["stability"]
        print(f"stability: mean pairwise ARI {s['mean_ari']:.3f} over seeds {s['seeds'][0]}..{s['seeds'][-1]} "
              f"(min {s['min_ari']:.3f}; clusters per run {s['n_clusters']})")
    out = result["output"]
    if n_dropped is not None:
        print(f"--dedupe: {n_dropped} duplicates dropped before mapping")
    levels = metrics.get("levels", [])
    if len(levels) > 1:
        print(f"topic tree: {len(levels)} levels of {', '.join(str(level['n_clusters']) for level in levels)} clusters "
              f"(embedspace topics {out})")
    print(f"\nwrote {out}/: map.png (static map), map.html (open in a browser, works offline), report.html, clusters.csv, "
          "topics.csv, documents.parquet, metrics.json")
    return 0


def _print_summary(metrics: dict, clusters) -> None:
    noise = metrics["noise_fraction"]
    if "kmeans" in metrics:  # each method's own parameters
        own = metrics["kmeans"]
        how = f"k {own['k']}, best of {own['n_init']} k-means starts on the {own['features']}"
    else:
        how = f"min_cluster_size {metrics.get('min_cluster_size')}"
    print(f"{metrics['n']} documents -> {metrics['n_clusters']} clusters, {noise:.1%} outliers "
          f"({metrics.get('method', 'map')}, {how})")
    shown = clusters.assign(keywords=clusters["keywords"].map(lambda k: ", ".join(k[:6])))[["cluster", "size", "label", "keywords"]]
    print_table(shown.head(40), max_width=70)
    if len(clusters) > 40:
        print(f"... and {len(clusters) - 40} more clusters (see clusters.csv)")
    if "nmi" in metrics:
        print(f"against '{metrics['label_col']}' ({metrics['n_labels']} labels): ARI {metrics['ari']:.3f}  "
              f"NMI {metrics['nmi']:.3f}  V-measure {metrics['v_measure']:.3f}")
    elif metrics.get("silhouette") is not None:
        dbcv = metrics.get("dbcv")
        print(f"silhouette {metrics['silhouette']:.3f}" + (f"  DBCV {dbcv:.3f}" if dbcv is not None else ""))


def run_eval(args) -> int:
    result = evaluate_clustering(args.input, args.label_col, text_col=args.text_col, k=args.k, seed=args.seed,
                                 model=args.model, backend=args.backend, max_tokens=args.max_tokens,
                                 progress=progress_of(args))
    if args.json:
        emit_json(result)
    else:
        print(f"ari {result['ari']:.4f}  nmi {result['nmi']:.4f}  v_measure {result['v_measure']:.4f}  "
              f"noise_fraction {result['noise_fraction']:.4f}  n_clusters {result['n_clusters']}  n {result['n']}")
    return 0
