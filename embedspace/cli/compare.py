"""``embedspace compare sets|groups|models``: what differs between two collections, a collection's groups, or two models."""

from __future__ import annotations

import argparse

from embedspace._fs import check_output_path
from embedspace.analysis import ALPHA, COMPARE_FORMAT, DEFAULT_TEST, TESTS, compare_sets, write_comparison
from embedspace.cli._common import add_command, emit_json, positive_int, print_table, progress_of
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
    for name in ("_register_groups", "_register_models"):
        if name in globals():
            globals()[name](verbs)


def _register_sets(verbs) -> None:
    parser = add_command(
        verbs,
        "sets",
        help="is B drawn like A? a global test, the regions that differ, and B's most novel documents",
        description=(
            "Map A and B together (one kNN graph) and test whether they come from one distribution: the default "
            f"'{DEFAULT_TEST}' test is a classifier two-sample test on the map's neighbour graph with a permutation "
            "p-value. Then, per region of the map, the share of A and of B, a two-sided Fisher exact test and "
            "Benjamini-Hochberg q-values; regions with q < --alpha are ranked by effect size. Every document of B gets "
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
    print(f"{m['n_significant']} of {m['n_regions']} regions differ at q < {m['alpha']}"
          + (":" if len(significant) else ""))
    if len(significant):
        shown = significant[["cluster", "label", "n_a", "n_b", "share_a", "share_b", "q_value", "direction"]].copy()
        for column in ("share_a", "share_b"):
            shown[column] = shown[column].map(lambda v: f"{v:.1%}")
        shown["q_value"] = shown["q_value"].map(lambda v: f"{v:.2g}")
        print_table(shown, max_width=40)
    print(f"the {len(novel)} documents of B most unlike A (novelty, 1.0 = typical):")
    for row in novel:
        print(f"  {row['novelty']:.3f}  B row {row['row']}: {_shorten(row['text'])}")
    print(f"wrote {output}")
    return 0
