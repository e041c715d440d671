"""``embedspace search`` and ``embedspace eval retrieval``.

``search`` answers text queries from an index directory. Its path is kept light: numpy,
faiss, pyarrow (the table) and the ONNX encoder (onnxruntime + tokenizers) only; no
pandas and no torch, so one query answers in about a second including process start.
"""

from __future__ import annotations

import datetime
import decimal
import sys

from embedspace.cli._common import UsageError, add_command, emit_json, positive_int, printable, progress_of, saved_format
from embedspace.encoding import BACKENDS
from embedspace.evaluation import evaluate_retrieval
from embedspace.search import KINDS, MODES, load_index
from embedspace.sources import fs_text

_SNIPPET = 100
_CELL = 30


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "search",
        help="search an index with text queries",
        description=(
            "Embed each QUERY with the index's model and print the k nearest rows with rank, row id, score, a "
            "text snippet and the metadata columns. --where keeps only rows whose metadata match, e.g. "
            "\"label == 'sci.space' and year >= 2000\" (operators ==, !=, <, <=, >, >=, in [...], not in [...], "
            "and, or, not, parentheses; quote text values). --mode bm25 ranks by keywords, --mode hybrid fuses "
            "both rankings by reciprocal rank. Identical texts (white space aside) show as one hit with the number of "
            "rows that hold it (copies); --keep-duplicates shows every row. --json prints {\"queries\": [{\"query\": "
            "..., \"results\": [{\"rank\", \"row\", \"score\", \"text\", \"copies\", ...metadata}]}]} with the full "
            "texts (no copies key with --keep-duplicates)."
        ),
        examples=[
            "embedspace search news.index \"graphics cards for linux\"",
            "embedspace search news.index \"space shuttle\" \"hockey playoffs\" -k 5 --json",
            "embedspace search news.index \"engine trouble\" --where \"label in ['rec.autos', 'rec.motorcycles']\"",
            "embedspace search news.index \"NASA budget 1993\" --mode hybrid",
        ],
        handler=run,
    )
    parser.add_argument("index", metavar="INDEX", help="index directory (from 'embedspace index')")
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="one or more query texts")
    parser.add_argument("-k", type=positive_int, default=10, help="hits per query (default: 10)")
    parser.add_argument("--where", metavar="EXPR", help="metadata filter expression")
    parser.add_argument("--mode", default="dense", choices=MODES, help="ranking (default: dense)")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="show every row of a text the index holds several times (default: one hit per distinct "
                             "text, with its number of copies)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    if saved_format(args.index) == "embedspace.embeddingset":
        raise UsageError(f"{args.index} is an EmbeddingSet, not a search index; build an index first: "
                         f"embedspace index {args.index} -o {str(args.index).rstrip('/')}.index")
    index = load_index(args.index)
    queries = [fs_text(q) for q in args.queries]  # bytes that are not UTF-8 (kept as surrogates) become U+FFFD
    records = index.search_records(queries, k=args.k, where=args.where, mode=args.mode,
                                   distinct=not args.keep_duplicates)
    if args.json:
        emit_json({"queries": [{"query": r["query"], "results": [_plain(hit) for hit in r["results"]]} for r in records],
                   "warnings": index.warnings(queries, where=args.where)})
    else:
        _print_results(records, distinct=not args.keep_duplicates)
    return 0


def _plain(hit: dict) -> dict:
    """Make metadata values JSON-friendly (dates as ISO text, decimals as floats)."""
    out = {}
    for key, value in hit.items():
        if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
            value = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            value = float(value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        out[key] = value
    return out


def _shorten(value, width: int) -> str:
    text = printable(" ".join(str("" if value is None else value).split()))  # escape codes shown, never run
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_results(records: list[dict], distinct: bool = True) -> None:
    """An aligned table per query: rank, score, row, metadata columns, then the snippet."""
    write = sys.stdout.write
    for number, record in enumerate(records):
        if number:
            write("\n")
        write(f"query: {printable(' '.join(record['query'].split()))}\n")
        hits = record["results"]
        if not hits:
            write("  (no matching rows)\n")
            continue
        shown = ("rank", "row", "score", "text", "copies") if distinct else ("rank", "row", "score", "text")
        meta = [key for key in hits[0] if key not in shown]
        copies = distinct and any(h["copies"] > 1 for h in hits)  # a column only when some text repeats
        header = ["rank", "score", "row"] + ["copies"] * copies + [_shorten(m, _CELL) for m in meta] + ["text"]
        rows = [
            [str(h["rank"]), f"{h['score']:.4f}", str(h["row"])] + [str(h.get("copies", 1))] * copies
            + [_shorten(h.get(m), _CELL) for m in meta] + [_shorten(h["text"], _SNIPPET)]
            for h in hits
        ]
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header) - 1)]
        numeric = 3 + copies
        for line in [header] + rows:
            cells = [c.rjust(w) if i < numeric else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
            write("  " + "  ".join(cells + [line[-1]]).rstrip() + "\n")


def register_eval(verbs) -> None:
    """Add ``embedspace eval retrieval`` (called by the ``eval`` command)."""

    parser = add_command(
        verbs,
        "retrieval",
        help="retrieval on a BEIR folder: ndcg@10, recall@10, mrr@10",
        description=(
            "Embed the corpus and queries of a BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv; "
            "documents are title + ' ' + text as in BEIR), search with --mode and score nDCG@10, recall@10 and "
            "MRR@10 over the judged queries. Exact search (--kind flat) by default, so the figure measures the "
            "model."
        ),
        examples=[
            "embedspace eval retrieval ../shared/corpora/retrieval/scifact --json",
            "embedspace eval retrieval scifact/ --mode hybrid",
        ],
        handler=_run_eval,
    )
    parser.add_argument("directory", metavar="DIR", help="BEIR folder")
    parser.add_argument("--mode", default="dense", choices=MODES, help="ranking (default: dense)")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument("--kind", default="flat", choices=KINDS, help="index kind (default: flat = exact)")
    parser.add_argument("--model", default=None, help="model folder or cached name (default: all-MiniLM-L6-v2)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--no-cache", action="store_true", help="do not use the embedding cache")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _run_eval(args) -> int:
    result = evaluate_retrieval(args.directory, mode=args.mode, split=args.split, kind=args.kind, model=args.model,
                                backend=args.backend, cache=not args.no_cache, progress=progress_of(args))
    if args.json:
        emit_json(result)
    else:
        print(
            f"ndcg@10 {result['ndcg@10']:.4f}  recall@10 {result['recall@10']:.4f}  mrr@10 {result['mrr@10']:.4f}  "
            f"n_queries {result['n_queries']}  ({result['mode']}, {result['kind']}, {result['n_docs']} docs)"
        )
    return 0
