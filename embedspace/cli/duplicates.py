"""``embedspace duplicates``: groups of exact and near duplicate documents; optionally a deduplicated set."""

from __future__ import annotations

import argparse

from embedspace._fs import check_output_path
from embedspace.analysis import (
    PRESETS,
    THRESHOLD,
    describe_threshold,
    drop_duplicates,
    find_duplicates,
    resolve_threshold,
)
from embedspace.cli._common import add_command, emit_json, positive_int, print_table, progress_of
from embedspace.encoding import load_or_embed
from embedspace.errors import InputError

_SNIPPET = 80


def _shorten(value, width: int = _SNIPPET) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _threshold(text: str) -> float:
    try:
        return resolve_threshold(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers) -> None:
    presets = "; ".join(f"{name} = {describe_threshold(name)}" for name in PRESETS)
    parser = add_command(
        subparsers,
        "duplicates",
        help="find groups of exact and near duplicate documents; --drop writes a deduplicated set",
        description=(
            "Embed INPUT (or load an EmbeddingSet) and group its duplicates: exact ones (the same text after white "
            "space and case are normalised) and near ones (by default near copies: a close neighbour whose text "
            "holds most of the other's; with a number, cosine similarity >= --threshold), joined into groups "
            "(A~B and B~C make one group). Each group lists its rows, most central member first, and the smallest "
            f"similarity between two of its members. --threshold takes a number in (0, 1] or a preset ({presets}; "
            "default near). --drop OUT writes the collection keeping one document per group (the central one). "
            "--json prints {\"groups\": [{\"group\", \"rows\": [...], \"min_similarity\", \"size\", \"central\", "
            "\"exact\"}]}."
        ),
        examples=[
            "embedspace duplicates corpus:20newsgroups",
            "embedspace duplicates posts.csv --threshold paraphrase --json",
            "embedspace duplicates news.set --threshold 0.97 --drop news-dedup.set",
        ],
        handler=run,
    )
    parser.add_argument("input", metavar="INPUT|SET", help="file, folder, corpus:NAME, or an EmbeddingSet directory")
    parser.add_argument("--threshold", type=_threshold, default=THRESHOLD, metavar="T",
                        help=f"a preset ({', '.join(PRESETS)}) or a cosine similarity in (0, 1] (default: {THRESHOLD})")
    parser.add_argument("--drop", default=None, metavar="OUT",
                        help="write the collection with one document per group (an EmbeddingSet directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace the --drop directory if it exists")
    parser.add_argument("--top", type=positive_int, default=20, metavar="N", help="groups shown (default: 20)")
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--model", default=None, help="model for embedding INPUT (default: all-MiniLM-L6-v2)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    progress = progress_of(args)
    if args.drop:
        check_output_path(args.drop, overwrite=args.overwrite, inputs=[args.input], kind="embedspace.embeddingset")
    space = load_or_embed(args.input, text_col=args.text_col, model=args.model, progress=progress)
    groups = find_duplicates(space, args.threshold, progress=progress)
    n_dropped = int((groups["size"] - 1).sum()) if len(groups) else 0
    if args.drop:
        drop_duplicates(space, groups=groups).save(args.drop, overwrite=args.overwrite)
    if args.json:
        emit_json({"groups": [
            {"group": int(g.group), "rows": [int(r) for r in g.rows], "min_similarity": float(g.min_similarity),
             "size": int(g.size), "central": int(g.central), "exact": bool(g.exact)}
            for g in groups.itertuples()
        ]})
        return 0
    if args.quiet:
        return 0
    n_exact = int(groups["exact"].sum()) if len(groups) else 0
    print(f"{len(space)} documents: {len(groups)} duplicate groups ({n_exact} exact, {len(groups) - n_exact} near, "
          f"{describe_threshold(args.threshold)}); {n_dropped} documents are extra copies")
    if len(groups):
        import pandas as pd

        texts = space.table["text"]
        shown = pd.DataFrame({
            "group": groups["group"], "size": groups["size"],
            "min_sim": groups["min_similarity"].map(lambda s: f"{s:.3f}"),
            "rows": groups["rows"].map(lambda rows: ",".join(map(str, rows[:6])) + ("…" if len(rows) > 6 else "")),
            "central text": groups["central"].map(lambda r: _shorten(texts.iat[r])),
        }).head(args.top)
        print_table(shown, max_width=_SNIPPET)
        if len(groups) > args.top:
            print(f"... and {len(groups) - args.top} more groups (--top N or --json for all)")
    if args.drop:
        print(f"wrote {args.drop}: {len(space) - n_dropped} documents, one per group (column source_row)")
    return 0
