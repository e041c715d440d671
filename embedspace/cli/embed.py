"""``embedspace embed``: read a source, embed every text (cached), write an EmbeddingSet."""

from __future__ import annotations

import sys

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
    if args.engine == "ray":
        summary = embed_with_ray(args.input, args.output, address=args.ray_address, workers=args.ray_workers, **options)
    else:
        summary = embed_to_disk(args.input, args.output, **options)
    if args.json:
        emit_json(summary.to_dict())
    elif not args.quiet:
        rate = summary.n / summary.seconds if summary.seconds > 0 else float("inf")
        print(
            f"wrote {summary.path}: {summary.n} vectors x {summary.dim} ({summary.n_cached} from cache), "
            f"backend {summary.backend}, {summary.seconds:.1f} s ({rate:.0f} texts/s)",
            file=sys.stderr,
        )
    return 0
