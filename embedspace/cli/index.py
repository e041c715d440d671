"""``embedspace index``: build a search index from an EmbeddingSet, or add a set to one.

Two forms share the verb::

    embedspace index SET -o INDEX [--kind auto|flat|hnsw|ivf|ivfpq] [--memory-budget 2GB] [--overwrite]
    embedspace index add INDEX SET

argparse cannot tell ``SET`` from the word ``add`` by itself, so the verb takes its
positional words as a list and :func:`run` sorts them out (a set directory that is
really called ``add`` is given as ``./add``).
"""

from __future__ import annotations

import sys
import time

from embedspace._fs import check_output_path
from embedspace.analysis import drop_duplicates
from embedspace.cli._common import (
    add_command,
    add_engine_options,
    check_engine_options,
    emit_json,
    progress_of,
    seed,
)
from embedspace.distributed import build_index_with_ray
from embedspace.embeddingset import EmbeddingSet
from embedspace.errors import InputError
from embedspace.search import FORMAT, KINDS, add_to_index, build_index

_USAGE = (
    "embedspace index SET -o INDEX [--kind auto|flat|hnsw|ivf|ivfpq] [--memory-budget SIZE] [--no-bm25] [--overwrite] [--json]\n"
    "                        [--engine local|ray [--ray-address ADDR] [--ray-workers N]]\n"
    "       embedspace index add INDEX SET [--json]"
)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "index",
        help="build a search index over an EmbeddingSet (or add a set to an index)",
        description=(
            "Build a FAISS index over the vectors of SET, plus a BM25 index over its texts, and write it to INDEX "
            "atomically. --kind auto picks exact search below 50,000 vectors, HNSW above, and IVF-PQ when HNSW "
            "would not fit --memory-budget (default: half the available RAM); the search effort is tuned so that "
            "recall@10 against exact search is at least 0.95 on a sample of the set's own vectors. The index "
            "refers to SET for texts and metadata, so keep SET where it is. "
            "'embedspace index add INDEX SET' appends the rows of another set embedded with the same model; "
            "existing row ids stay the same. "
            "--engine ray trains IVF / IVF-PQ on a sample in this process, adds the rows in parallel shards on a Ray "
            "cluster (a local one, or --ray-address) and merges them into one index, identical to the local build; "
            "there auto means IVF where the local engine would use HNSW."
        ),
        examples=[
            "embedspace embed corpus:20newsgroups -o news.set",
            "embedspace index news.set -o news.index",
            "embedspace index big.set -o big.index --kind auto --memory-budget 2GB",
            "embedspace index add news.index more-news.set",
            "embedspace index big.set -o big.index --engine ray --ray-address ray-head:6379 --kind ivfpq",
        ],
        handler=run,
    )
    parser.usage = _USAGE
    parser.add_argument("words", nargs="+", metavar="SET | add INDEX SET", help="the set to index, or: add INDEX SET")
    parser.add_argument("-o", "--output", metavar="INDEX", help="output index directory (building)")
    parser.add_argument("--kind", default="auto", choices=KINDS, help="index kind (default: auto)")
    parser.add_argument("--memory-budget", metavar="SIZE", help="RAM the index may use, e.g. 2GB or 512MiB (default: half the available memory)")
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 index (then only --mode dense works)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of k-means training and the tuning sample (default: 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace INDEX if it exists")
    parser.add_argument("--allow-duplicates", action="store_true",
                        help="index add: also add rows whose text (and id) are already in the index (default: skip them)")
    parser.add_argument("--dedupe", action="store_true",
                        help="index one document per group of exact and near duplicates (the default rule of "
                             "'embedspace duplicates'); results carry source_row, the row in SET")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    add_engine_options(parser, local="add rows in this process", ray="in shards on Ray")


def run(args) -> int:
    words = args.words
    if words[0] == "add":
        if len(words) != 3:
            raise InputError(f"'index add' takes an index and a set: embedspace index add INDEX SET (got {len(words) - 1} paths)")
        if args.output:
            raise InputError("'index add' changes INDEX in place; -o/--output is only for building a new index")
        if args.engine != "local" or args.ray_address or args.ray_workers:
            raise InputError("'index add' runs in this process; --engine ray is for building an index")
        if args.dedupe:
            raise InputError("'index add' already skips texts the index holds; --dedupe is for building an index")
        return _add(args, words[1], words[2])
    if len(words) != 1:
        raise InputError(f"expected one EmbeddingSet to index, got {len(words)}: {' '.join(words)} (to add a set: embedspace index add INDEX SET)")
    if not args.output:
        raise InputError("the following arguments are required: -o/--output (the index directory to write)")
    check_engine_options(args)
    return _build(args, words[0])


def _build(args, set_path: str) -> int:
    check_output_path(args.output, overwrite=args.overwrite, inputs=[set_path], kind=FORMAT)
    started = time.perf_counter()
    options = dict(kind=args.kind, memory_budget=args.memory_budget, progress=progress_of(args), random_state=args.seed,
                   lexical=not args.no_bm25)
    extra = None
    if args.dedupe:
        if args.engine == "ray":
            raise InputError("--dedupe builds the index in this process; drop the duplicates first "
                             "(embedspace duplicates SET --drop OUT) to build it on Ray")
        space = EmbeddingSet.load(set_path)
        kept = drop_duplicates(space, progress=options["progress"])
        extra = {"n_dropped": len(space) - len(kept)}
        index = build_index(kept, **options)
    elif args.engine == "ray":
        index = build_index_with_ray(set_path, address=args.ray_address, workers=args.ray_workers, **options)
    else:
        index = build_index(set_path, **options)
    index.save(args.output, overwrite=args.overwrite)
    dropped = f" ({extra['n_dropped']} duplicates dropped)" if extra else ""
    _report(args, index, time.perf_counter() - started, "wrote", extra=extra, note=dropped)
    return 0


def _add(args, index_path: str, set_path: str) -> int:
    started = time.perf_counter()
    index = add_to_index(index_path, set_path, progress=progress_of(args), allow_duplicates=args.allow_duplicates)
    added, skipped = index.last_add["added"], index.last_add["skipped"]
    _report(args, index, time.perf_counter() - started, f"added {added} rows to",
            extra={"added": added, "skipped": skipped})
    return 0


def _report(args, index, seconds: float, verb: str, extra: dict | None = None, note: str = "") -> None:
    summary = {
        "path": str(index.path), "kind": index.kind, "n": index.n, "d": index.d, "params": index.params,
        "bm25": index.has_bm25, "seconds": round(seconds, 3), **(extra or {}),
    }
    if args.json:
        emit_json(summary)
    elif not args.quiet:
        tuned = index.params.get("tuned_recall")
        effort = {k: v for k, v in index.params.items() if k in ("efSearch", "nprobe", "rerank")}
        detail = f", {', '.join(f'{k} {v}' for k, v in effort.items())} (recall@10 {tuned:.3f} on own vectors)" if tuned else ""
        print(f"{verb} {index.path}: {index.kind} index of {index.n} vectors{note}{detail}, {seconds:.1f} s", file=sys.stderr)
