"""``embedspace cache info|clear``: inspect or empty the embedding cache."""

from __future__ import annotations

from embedspace.cli._common import add_command, emit_json
from embedspace.encoding import EmbeddingCache


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "cache",
        help="show or clear the embedding cache",
        description="Every embedded text is cached by (model, weights hash, backend, text); 'info' shows the cache, 'clear' empties it.",
        examples=["embedspace cache info", "embedspace cache info --json", "embedspace cache clear"],
        handler=run,
    )
    parser.add_argument("action", choices=("info", "clear"), help="what to do")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    with EmbeddingCache() as cache:
        if args.action == "clear":
            removed = cache.clear()
            result = {"path": str(cache.path), "removed": removed}
            if args.json:
                emit_json(result)
            else:
                print(f"removed {removed} cached vectors from {cache.path}")
            return 0
        info = cache.info()
    if args.json:
        emit_json(info)
        return 0
    print(f"cache: {info['path']}")
    print(f"size:  {info['bytes'] / 1e6:.1f} MB, {info['n_vectors']} vectors")
    for entry in info["models"]:
        print(f"  {entry['model']} [{entry['backend']}, {entry['dim']}-d]: {entry['n_vectors']} vectors")
    return 0
