"""``embedspace compare sets|groups|models``: what differs between two collections, a collection's groups, or two models."""

from __future__ import annotations

import argparse

from embedspace._fs import check_output_path
from embedspace.analysis import (
    ALPHA,
    COMPARE_FORMAT,
    DEFAULT_TEST,
    TESTS,
    compare_groups,
    compare_models,
    compare_sets,
    write_comparison,
    write_group_comparison,
    write_model_comparison,
)
from embedspace.cli._common import (
    add_command,
    emit_json,
    positive_int,
    print_table,
    progress_of,
)
from embedspace.embeddingset import EmbeddingSet
from embedspace.encoding import is_set_directory, load_or_embed
from embedspace.errors import InputError
from embedspace.store import jsonable

_SNIPPET = 70


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two collections (sets), one collection's groups (groups), or two models (models)",
        description="What changed: two collections of one model, one collection split by a column, or two "
                    "embeddings of the same texts.",
        epilog="examples:\n  embedspace compare sets old.csv new.csv -o old-vs-new\n"
               "  embedspace compare groups posts.set --by label -o by-label\n"
               "  embedspace compare models minilm.set mpnet.set --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="what", metavar="sets|groups|models", parser_class=type(parser))
    _register_sets(verbs)
    _register_groups(verbs)
    _register_models(verbs)


def _register_sets(verbs) -> None:
    parser = add_command(
        verbs,
        "sets",
        help="is B drawn like A? a global test, the regions that differ, and B's most novel documents",
        description=(
            "Map A and B together (one kNN graph) and test whether they come from one distribution: the default "
            f"'{DEFAULT_TEST}' test combines (Bonferroni) a classifier two-sample test on the map's neighbour graph and "
            "a test of the smallest per-region p-value, both with permutation p-values. Then, per region of the map, the share of A and of B, a two-sided Fisher exact test and "
            "Benjamini-Hochberg q-values; regions with q < --alpha are ranked by effect size. Before them come the "
            "pockets: places in the neighbour graph where documents of one set have few neighbours from the other, "
            "each with a family-wise permutation p-value (kind 'pocket'). Every document of B gets "
            "a novelty score against A (1.0 = as close to A as A's own documents are). -o DIR gets regions.csv, "
            "documents.parquet (with a source column), compare.png, compare.html and metrics.json. --json prints "
            "{\"p_value\", \"statistic\", \"auroc\", \"regions\": [{\"cluster\", \"label\", \"share_a\", \"share_b\", "
            "\"q_value\", ...}], \"novel\": [...]}."
        ),
        examples=[
            "embedspace compare sets last-month.csv this-month.csv -o month-vs-month",
            "embedspace compare sets a.set b.set -o a-vs-b --json",
            "embedspace compare sets a.set b.set -o a-vs-b --test linear --seed 1 --overwrite",
        ],
        handler=_run_sets,
    )
    parser.add_argument("a", metavar="A", help="the reference collection: file, folder, corpus:NAME or an EmbeddingSet")
    parser.add_argument("b", metavar="B", help="the collection compared with A (same model)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="result directory")
    parser.add_argument("--test", default=DEFAULT_TEST, choices=TESTS, help=f"global test (default: {DEFAULT_TEST})")
    parser.add_argument("--permutations", type=positive_int, default=1000, metavar="N",
                        help="permutations of the test's null distribution (default: 1000)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"q-value threshold of a region (default: {ALPHA})")
    parser.add_argument("--top", type=positive_int, default=10, metavar="N", help="regions and novel documents shown (default: 10)")
    _loading_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace the -o directory if it is a compare result")
    parser.add_argument("--seed", type=int, default=0, help="seed of the map, the regions and the permutations (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _loading_options(parser) -> None:
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--model", default=None, help="model for embedding text (default: a set's own, else all-MiniLM-L6-v2)")


def _load_same_model(sources, args, progress) -> list:
    """Each source as an EmbeddingSet; text is embedded with the model of a set among them (or --model)."""
    model = args.model
    if model is None:
        for source in sources:
            if isinstance(source, str) and is_set_directory(source):
                known = EmbeddingSet.load(source).model
                model = known.name if known is not None else None
                break
    return [load_or_embed(s, text_col=args.text_col, model=model, progress=progress) for s in sources]


def _shorten(value, width: int = _SNIPPET) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _novel_rows(result, top: int) -> list[dict]:
    table = result.space.table
    b_rows = table[table["source"] == result.metrics["names"][1]]
    ranked = b_rows.sort_values(["novelty", "source_row"], ascending=[False, True], kind="stable").head(top)
    return [{"row": int(r.source_row), "novelty": float(r.novelty), "cluster": int(r.cluster), "text": r.text}
            for r in ranked.itertuples()]


def _run_sets(args) -> int:
    if not 0 < args.alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {args.alpha}")
    progress = progress_of(args)
    check_output_path(args.output, overwrite=args.overwrite, inputs=[args.a, args.b], kind=COMPARE_FORMAT)
    a, b = _load_same_model([args.a, args.b], args, progress)
    result = compare_sets(a, b, test=args.test, permutations=args.permutations, alpha=args.alpha, seed=args.seed,
                          progress=progress)
    output = write_comparison(result, args.output, overwrite=args.overwrite, inputs=[args.a, args.b])
    novel = _novel_rows(result, args.top)
    if args.json:
        emit_json(jsonable({**result.to_json(top=None), "novel": novel, "output": output}))
        return 0
    if args.quiet:
        return 0
    m = result.metrics
    print(f"A: {m['n_a']:,} documents, B: {m['n_b']:,}; {m['test']} test: p = {m['p_value']:.4g}, "
          f"AUROC = {m['auroc'] if m['auroc'] is None else round(m['auroc'], 4)}, statistic = {m['statistic']:.2f}")
    significant = result.regions[result.regions["significant"]].head(args.top)
    print(f"{m['n_significant'] - m['n_pockets']} of {m['n_regions']} map regions differ at q < {m['alpha']}, "
          f"and {m['n_pockets']} pocket{'' if m['n_pockets'] == 1 else 's'} at family-wise p < {m['alpha']}" + (":" if len(significant) else ""))
    if len(significant):
        shown = significant[["cluster", "kind", "label", "n_a", "n_b", "share_a", "share_b", "q_value", "direction"]].copy()
        for column in ("share_a", "share_b"):
            shown[column] = shown[column].map(lambda v: f"{v:.1%}")
        shown["q_value"] = shown["q_value"].map(lambda v: f"{v:.2g}")
        print_table(shown, max_width=40)
    print(f"the {len(novel)} documents of B most unlike A (novelty, 1.0 = typical):")
    for row in novel:
        print(f"  {row['novelty']:.3f}  B row {row['row']}: {_shorten(row['text'])}")
    print(f"wrote {output}")
    return 0


def _register_groups(verbs) -> None:
    parser = add_command(
        verbs,
        "groups",
        help="topics per class or over time: each topic's share per group, a test per topic, q-values",
        description=(
            "Split one collection by --by COLUMN: every distinct value is a group (topics per class; a chi-square test "
            "per topic), or with --bins N a number or date column is cut into N equal-width bins (topics over time; a "
            "Cochran-Armitage trend test per topic). Topics are the set's own 'cluster' column, else the regions of a "
            "fresh map. Benjamini-Hochberg q-values over the topics. -o DIR gets topics.csv (shares per group), "
            "counts.csv, groups.png (a heatmap per class, or a stacked area over time) and metrics.json. --json prints "
            "{\"by\", \"kind\", \"test\", \"groups\", \"top_topics\", \"topics\": [{\"cluster\", \"label\", \"p_value\", "
            "\"q_value\", \"shares\"}]}."
        ),
        examples=[
            "embedspace compare groups corpus:20newsgroups --by label -o by-label",
            "embedspace compare groups tickets.set --by created --bins 12 -o tickets-over-time --json",
        ],
        handler=_run_groups,
    )
    parser.add_argument("input", metavar="INPUT|SET", help="file, folder, corpus:NAME or an EmbeddingSet directory")
    parser.add_argument("--by", required=True, metavar="COLUMN", help="the column that defines the groups")
    parser.add_argument("--bins", type=positive_int, default=None, metavar="N",
                        help="cut a number or date column into N equal-width bins and test trends")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="result directory")
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"q-value threshold (default: {ALPHA})")
    parser.add_argument("--top", type=positive_int, default=10, metavar="N", help="topics shown (default: 10)")
    _loading_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace the -o directory if it is a compare result")
    parser.add_argument("--seed", type=int, default=0, help="seed of the map (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _run_groups(args) -> int:
    if not 0 < args.alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {args.alpha}")
    progress = progress_of(args)
    check_output_path(args.output, overwrite=args.overwrite, inputs=[args.input], kind=COMPARE_FORMAT)
    space = load_or_embed(args.input, text_col=args.text_col, label_col=args.by, model=args.model, progress=progress)
    result = compare_groups(space, by=args.by, bins=args.bins, alpha=args.alpha, seed=args.seed, progress=progress)
    output = write_group_comparison(result, args.output, overwrite=args.overwrite, inputs=[args.input])
    if args.json:
        emit_json(jsonable({**result.to_json(), "output": output}))
        return 0
    if args.quiet:
        return 0
    m = result.metrics
    print(f"{m['n']:,} documents in {m['n_groups']} groups of '{m['by']}' ({m['kind']}); {m['test']} test per topic: "
          f"{m['n_significant']} of {m['n_topics']} topics differ at q < {m['alpha']}")
    shown = result.topics[result.topics["cluster"] >= 0].head(args.top)[["cluster", "label", "size", "statistic", "q_value"]].copy()
    shown["statistic"] = shown["statistic"].map(lambda v: f"{v:.2f}")
    shown["q_value"] = shown["q_value"].map(lambda v: f"{v:.2g}")
    print_table(shown, max_width=40)
    print(f"wrote {output}")
    return 0


def _register_models(verbs) -> None:
    parser = add_command(
        verbs,
        "models",
        help="two embeddings of the same texts: k-NN overlap, CKA, Spearman of similarities, where they disagree",
        description=(
            "A and B hold the same texts in the same order, embedded by two models, backends, token windows or dtypes "
            "(any dimensions). Prints the mean k-NN overlap (k = --k), linear CKA and its debiased form, the Spearman "
            "correlation of cosine similarities over random pairs, and the topics whose documents keep the fewest "
            "neighbours. -o DIR gets documents.parquet (each document's overlap), clusters.csv and metrics.json. "
            "--json prints {\"knn_overlap\", \"cka\", \"cka_debiased\", \"spearman\", \"n\", \"k\", \"clusters\"}."
        ),
        examples=[
            "embedspace compare models minilm.set mpnet.set --json",
            "embedspace compare models full.set short64.set -o full-vs-64",
        ],
        handler=_run_models,
    )
    parser.add_argument("a", metavar="A", help="an EmbeddingSet (or text, embedded with the default model)")
    parser.add_argument("b", metavar="B", help="the same texts in the same order, embedded another way")
    parser.add_argument("-k", "--k", dest="k", type=positive_int, default=10, metavar="N", help="neighbours (default: 10)")
    parser.add_argument("-o", "--output", default=None, metavar="DIR", help="also write a result directory")
    parser.add_argument("--top", type=positive_int, default=5, metavar="N", help="topics shown (default: 5)")
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--overwrite", action="store_true", help="replace the -o directory if it is a compare result")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair sample and the map (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _run_models(args) -> int:
    progress = progress_of(args)
    if args.output:
        check_output_path(args.output, overwrite=args.overwrite, inputs=[args.a, args.b], kind=COMPARE_FORMAT)
    a = load_or_embed(args.a, text_col=args.text_col, progress=progress)
    b = load_or_embed(args.b, text_col=args.text_col, progress=progress)
    result = compare_models(a, b, k=args.k, seed=args.seed, progress=progress)
    output = write_model_comparison(result, args.output, overwrite=args.overwrite,
                                    inputs=[args.a, args.b]) if args.output else None
    if args.json:
        emit_json(jsonable({**result.to_json(top=args.top), "output": output}))
        return 0
    if args.quiet:
        return 0
    m = result.metrics
    print(f"{m['n']:,} texts, {m['dims'][0]}-d vs {m['dims'][1]}-d: k-NN overlap (k={m['k']}) {m['knn_overlap']:.3f}, "
          f"CKA {m['cka']:.3f} (debiased {m['cka_debiased']:.3f}), Spearman of cosines {m['spearman']:.3f}")
    print(f"the {args.top} topics where the two disagree most (mean overlap):")
    print_table(result.clusters[result.clusters["cluster"] >= 0].head(args.top), max_width=40)
    if output:
        print(f"wrote {output}")
    return 0
