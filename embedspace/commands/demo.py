"""``embedspace demo``: the main job on the shipped corpus and model."""

from __future__ import annotations

from ._common import add_command, emit_json, progress_of


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "demo",
        help="run the main job on the shipped 20 Newsgroups corpus",
        description="Embed the shipped 20 Newsgroups test split with the default model (cached after the first run) and answer three example searches.",
        examples=["embedspace demo", "embedspace demo -o /tmp/demo --json"],
        handler=run,
    )
    parser.add_argument("-o", "--output", default="embedspace-demo", metavar="DIR", help="output folder (default: ./embedspace-demo)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _snippet(text: str, width: int = 110) -> str:
    lines = [line for line in text.splitlines() if line.strip() and ":" not in line[:20]]
    body = " ".join(" ".join(lines).split()) or " ".join(text.split())
    return body if len(body) <= width else body[: width - 1] + "…"


def run(args) -> int:
    from ..demo import run_demo

    result = run_demo(args.output, progress=progress_of(args))
    if args.json:
        emit_json(result)
        return 0
    print(f"embedded {result['n']} newsgroup posts ({result['labels']} groups) into {result['dim']}-d vectors [{result['backend']}]")
    for query in result["queries"]:
        print(f"\nquery: {query['query']}")
        for hit in query["results"]:
            print(f"  {hit['rank']}. {hit['score']:.3f} [{hit['label']}] {_snippet(hit['text'])}")
    print(f"\noutputs in {result['output']}/ (space/ is the EmbeddingSet)")
    return 0
