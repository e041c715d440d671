"""``embedspace eval ...``: score the semantic space on public benchmarks.

Each benchmark is a sub-verb. ``eval sts`` lives here; any command module listed in
``_PROVIDERS`` that defines ``register_eval(verbs)`` adds its own (``eval retrieval`` from
``search``, ``eval word-sim`` / ``eval analogy`` from ``relate``, ``eval clustering`` from
``map``, ...).
"""

from __future__ import annotations

import argparse

from embedspace.cli._common import add_command, emit_json, progress_of
from embedspace.encoding import BACKENDS
from embedspace.evaluation import evaluate_sts

_PROVIDERS = ("relate", "search", "map", "vae")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate on a benchmark (sts, ...)",
        description="Score the space on a public benchmark; --json prints the numbers under stable keys.",
        epilog="examples:\n  embedspace eval sts sts-dev.csv --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", parser_class=type(parser))
    _register_sts(verbs)
    import importlib

    for name in _PROVIDERS:
        try:
            module = importlib.import_module(f"embedspace.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"embedspace.cli.{name}":
                raise
            continue
        if hasattr(module, "register_eval"):
            module.register_eval(verbs)


def _register_sts(verbs) -> None:
    parser = add_command(
        verbs,
        "sts",
        help="semantic textual similarity: spearman, pearson, n",
        description=(
            "Correlate cosine similarity of sentence embeddings with human scores. FILE is in the STS-B layout "
            "(tab-separated, no header; score in column 5, sentences in 6 and 7) or a CSV/TSV with header "
            "sentence1,sentence2,score."
        ),
        examples=["embedspace eval sts sts-dev.csv", "embedspace eval sts pairs.csv --backend torch --json"],
        handler=_run_sts,
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--model", default=None, help="model folder or cached name (default: all-MiniLM-L6-v2)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--no-cache", action="store_true", help="do not use the embedding cache")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _run_sts(args) -> int:
    result = evaluate_sts(args.file, model=args.model, backend=args.backend, cache=not args.no_cache, progress=progress_of(args))
    if args.json:
        emit_json(result)
    else:
        print(f"spearman {result['spearman']:.4f}  pearson {result['pearson']:.4f}  n {result['n']}  ({result['backend']})")
    return 0
