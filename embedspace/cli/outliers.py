"""``embedspace outliers``: rank the documents of a collection by how little they belong (or how new they are)."""

from __future__ import annotations

import math

from embedspace._fs import check_output_path
from embedspace.analysis import DEFAULT_K, DEFAULT_METHOD, METHODS, outlier_scores
from embedspace.cli._common import add_command, emit_json, positive_int, print_table, progress_of
from embedspace.embeddingset import EmbeddingSet
from embedspace.encoding import is_set_directory, load_or_embed
from embedspace.errors import InputError

_SNIPPET = 90


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "outliers",
        help="score every document by how little it belongs; print the top outliers",
        description=(
            "Embed INPUT (or load an EmbeddingSet) and give every document an outlier score, higher = more unusual. "
            "Without --reference each document is compared with the rest of the collection; with --reference REF "
            "(text or a set of the same model) each is compared with REF: novelty. Methods: contrast (default: "
            "with --reference, the distance to REF's k nearest documents less half the distance to the 2k nearest "
            "of REF and INPUT together; without, the same as knn), knn (mean cosine distance to the k nearest "
            "documents, 1.0 = typical), lof (local outlier factor), iforest (isolation forest, a baseline). Prints the --top N documents with "
            "their scores; -o writes the whole collection with an outlier_score column as an EmbeddingSet. --json "
            "prints {\"method\", \"rows\": [{\"rank\", \"row\", \"score\", \"text\", ...metadata}]}."
        ),
        examples=[
            "embedspace outliers corpus:20newsgroups --top 20",
            "embedspace outliers new-posts.csv --reference old-posts.set --json",
            "embedspace outliers news.set --method lof -o news-scored.set",
        ],
        handler=run,
    )
    parser.add_argument("input", metavar="INPUT|SET", help="file, folder, corpus:NAME, or an EmbeddingSet directory")
    parser.add_argument("--reference", metavar="REF", default=None,
                        help="what is normal: score INPUT's documents against REF's (file, corpus:NAME or set)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS, help=f"score (default: {DEFAULT_METHOD})")
    parser.add_argument("-k", "--k", dest="k", type=positive_int, default=DEFAULT_K, metavar="N",
                        help=f"neighbours per document for contrast, knn and lof (default: {DEFAULT_K})")
    parser.add_argument("--top", type=positive_int, default=10, metavar="N", help="documents shown (default: 10)")
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--model", default=None, help="model for embedding text (default: a set's own, else all-MiniLM-L6-v2)")
    parser.add_argument("-o", "--output", default=None, metavar="SET",
                        help="write the collection with an outlier_score column (an EmbeddingSet directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace the -o directory if it exists")
    parser.add_argument("--seed", type=int, default=0, help="random seed of iforest and large indexes (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def load_pair(args, progress):
    """INPUT and, when given, REF as EmbeddingSets of one model (text is embedded with a set's model)."""
    inputs = [args.input] + ([args.reference] if args.reference else [])
    model = args.model
    if model is None:  # text beside a set: embed it with the set's model
        for source in inputs:
            if is_set_directory(source):
                known = EmbeddingSet.load(source).model
                model = known.name if known is not None else None
                break
    space = load_or_embed(args.input, text_col=args.text_col, model=model, progress=progress)
    reference = None
    if args.reference:
        reference = load_or_embed(args.reference, text_col=args.text_col, model=model, progress=progress)
    return space, reference


def run(args) -> int:
    progress = progress_of(args)
    if args.output:
        check_output_path(args.output, overwrite=args.overwrite, inputs=[args.input, args.reference],
                          kind="embedspace.embeddingset")
    space, reference = load_pair(args, progress)
    scores = outlier_scores(space, reference, method=args.method, k=args.k, random_state=args.seed, progress=progress)
    if args.output:
        space.assign(outlier_score=scores).save(args.output, overwrite=args.overwrite)
    order = sorted(range(len(scores)), key=lambda i: (-_finite(scores[i]), i))[: args.top]
    rows = []
    table = space.table
    for rank, row in enumerate(order, start=1):
        record = {"rank": rank, "row": int(row), "score": float(scores[row]), "text": table["text"].iat[row]}
        for column in table.columns:
            if column not in record and column != "text":
                record[column] = table[column].iat[row]
        rows.append(record)
    if args.json:
        emit_json({"method": args.method, "rows": rows})
        return 0
    if args.quiet:
        return 0
    import pandas as pd

    against = f"against {args.reference}" if args.reference else "against the rest of the collection"
    print(f"{len(space)} documents scored by {args.method} {against}; the {len(rows)} most unusual:")
    shown = pd.DataFrame(rows)[["rank", "row", "score", "text"]]
    shown["score"] = shown["score"].map(lambda s: f"{s:.4f}")
    shown["text"] = shown["text"].map(_shorten)
    print_table(shown, max_width=_SNIPPET)
    if args.output:
        print(f"wrote {args.output} (column outlier_score)")
    return 0


def _shorten(value, width: int = _SNIPPET) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _finite(value) -> float:
    value = float(value)
    if math.isnan(value):
        raise InputError("an outlier score is NaN; re-embed the collection (its vectors may hold NaN)")
    return value
