"""``embedspace info SET``: verify a saved EmbeddingSet and describe it."""

from __future__ import annotations

from embedspace.cli._common import add_command, emit_json, printable
from embedspace.embeddingset import EmbeddingSet


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "info",
        help="check and describe a saved EmbeddingSet",
        description="Load SET, verify its manifest and checksums, and print its size, model and columns.",
        examples=["embedspace info news.set", "embedspace info news.set --json"],
        handler=run,
    )
    parser.add_argument("path", metavar="SET")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    space = EmbeddingSet.load(args.path)
    info = {
        "path": args.path,
        "n": len(space),
        "d": space.dim,
        "dtype": str(space.stored_vectors.dtype),
        "model": space.model.to_dict() if space.model else None,
        "columns": [str(c) for c in space.table.columns],
    }
    if args.json:
        emit_json(info)
    else:
        print(f"{args.path}: {info['n']} vectors x {info['d']} ({info['dtype']}), checksums ok")
        print(f"model:   {space.model.describe() if space.model else 'unknown'} [{space.model.backend if space.model else '-'}]")
        print(f"columns: {printable(', '.join(map(str, info['columns'])))}")
    return 0
