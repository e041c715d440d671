"""``embedspace embed``: read a source, embed every text (cached), write an EmbeddingSet."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from embedspace._fs import check_output_path
from embedspace.analysis import drop_duplicates
from embedspace.cli._common import (
    add_command,
    add_engine_options,
    check_engine_options,
    emit_json,
    positive_int,
    progress_of,
)
from embedspace.distributed import embed_with_ray
from embedspace.encoding import BACKENDS, embed_to_disk
from embedspace.embeddingset import EmbeddingSet


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "embed",
        help="embed a collection of texts into an EmbeddingSet directory",
        description=(
            "Read INPUT (.txt one document per line, .csv/.tsv/.jsonl[.gz]/.parquet with a text column, "
            "a folder of .txt files, or corpus:NAME), embed every text with the model (vectors already in "
            "the cache are reused), and write the set to OUTPUT atomically."
        ),
        examples=[
            "embedspace embed corpus:20newsgroups -o news.set",
            "embedspace embed reviews.csv --text-col body -o reviews.set --dtype float16",
            "embedspace embed big.parquet -o big.set --engine ray --ray-address ray-head:6379",
            "embedspace embed posts.jsonl -o posts.set --dedupe",
        ],
        handler=run,
    )
    parser.add_argument("input", metavar="INPUT", help="file, folder or corpus:NAME")
    parser.add_argument("-o", "--output", required=True, metavar="SET", help="output EmbeddingSet directory")
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--model", default=None, help="sentence-transformers model folder or cached name (default: all-MiniLM-L6-v2)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default: auto = fastest accurate one here)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="texts per forward pass (default: 64 on openvino-bf16, else 32; measured by scripts/bench_embed.py)")
    parser.add_argument("--max-tokens", type=positive_int, default=None, metavar="N",
                        help="tokens kept per text, longer texts are cut (default: the model's window, 256 for the default model)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="storage type of the vectors")
    add_engine_options(parser, local="embed in this process", ray="with encoder actors on a Ray cluster")
    parser.add_argument("--strict", action="store_true", help="refuse empty texts and undecodable bytes instead of dropping/replacing them")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument("--dedupe", action="store_true",
                        help="drop exact and near duplicates, keeping one text per group (the default rule of "
                             "'embedspace duplicates'); the set gets a source_row column (the row in INPUT)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args) -> int:
    options = dict(
        text_col=args.text_col,
        model=args.model,
        backend=args.backend,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        dtype=args.dtype,
        overwrite=args.overwrite,
        strict=args.strict,
        cache=not args.no_cache,
        progress=progress_of(args),
    )
    check_engine_options(args)
    if args.dedupe:
        summary, n_dropped = _embed_deduplicated(args, options)
    else:
        summary, n_dropped = _embed(args, args.output, options), None
    if args.json:
        emit_json(summary.to_dict() if n_dropped is None else {**summary.to_dict(), "n_dropped": n_dropped})
    elif not args.quiet:
        rate = summary.n / summary.seconds if summary.seconds > 0 else float("inf")
        kept = "" if n_dropped is None else f", {n_dropped} duplicates dropped"
        print(
            f"wrote {summary.path}: {summary.n} vectors x {summary.dim} ({summary.n_cached} from cache{kept}), "
            f"backend {summary.backend}, {summary.seconds:.1f} s ({rate:.0f} texts/s)",
            file=sys.stderr,
        )
    return 0


def _embed(args, output, options):
    if args.engine == "ray":
        return embed_with_ray(args.input, output, address=args.ray_address, workers=args.ray_workers, **options)
    return embed_to_disk(args.input, output, **options)


def _embed_deduplicated(args, options):
    """Embed into a temporary set beside OUTPUT, then write OUTPUT with one row per duplicate group."""
    target = check_output_path(args.output, overwrite=args.overwrite, inputs=[args.input],
                               kind="embedspace.embeddingset")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.dedupe-") as scratch:
        summary = _embed(args, Path(scratch) / "all.set", {**options, "overwrite": False})
        space = EmbeddingSet.load(summary.path)
        kept = drop_duplicates(space, progress=options["progress"])
        kept.save(target, overwrite=args.overwrite)
    n_dropped = summary.n - len(kept)
    summary.path, summary.n = target, len(kept)
    return summary, n_dropped
