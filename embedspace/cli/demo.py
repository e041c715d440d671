"""``embedspace demo``: the main job on the shipped corpus and model."""

from __future__ import annotations

from embedspace.cli._common import add_command, emit_json, print_table, progress_of
from embedspace.mapping import run_demo


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "demo",
        help="run the main job on the shipped 20 Newsgroups corpus: embed, index, map, search",
        description=(
            "Embed the shipped 20 Newsgroups test split with the default model (cached after the first run), "
            "build a search index, map and cluster the posts (map.html, map.png, clusters.csv), answer three "
            "example searches, and say where to look. Outputs go to DIR (space/, index/, map/; each replaced "
            "when the demo runs again)."
        ),
        examples=["embedspace demo", "embedspace demo -o /tmp/demo --json"],
        handler=run,
    )
    parser.add_argument("-o", "--output", default="embedspace-demo", metavar="DIR", help="output folder (default: ./embedspace-demo)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _snippet(text: str, width: int = 100) -> str:
    lines = [line for line in text.splitlines() if line.strip() and ":" not in line[:20] and not line.startswith(">")]
    body = " ".join(" ".join(lines).split()) or " ".join(text.split())
    return body if len(body) <= width else body[: width - 1] + "…"


def run(args) -> int:
    import pandas as pd

    result = run_demo(args.output, progress=progress_of(args), command=args.command_line)
    if args.json:
        emit_json(result)
        return 0
    m = result["map"]
    print(f"embedded {result['n']} newsgroup posts ({result['labels']} groups) into {result['dim']}-d vectors "
          f"[{result['backend']}]; search index: {result['index_kind']}")
    print(f"\nmap: {m['n_clusters']} clusters, {m['noise_fraction']:.1%} outliers; against the newsgroup labels "
          f"NMI {m.get('nmi', float('nan')):.3f}, ARI {m.get('ari', float('nan')):.3f}")
    table = pd.DataFrame(result["clusters"])
    table["keywords"] = table["keywords"].map(lambda words: ", ".join(words[:6]))
    print_table(table[["cluster", "size", "label", "keywords"]], max_width=64)
    inside = result.get("inside_largest") or {}
    if inside.get("children"):
        counts = ", ".join(str(level["n_clusters"]) for level in result["levels"])
        print(f"\ntopic tree: {len(result['levels'])} levels ({counts} clusters); inside the largest cluster, "
              f"{inside['cluster']} '{inside['label']}':")
        parts = pd.DataFrame(inside["children"])
        parts["keywords"] = parts["keywords"].map(lambda words: ", ".join(words[:6]))
        print_table(parts[["cluster", "size", "label", "keywords"]], max_width=64)
    for query in result["queries"]:
        print(f"\nsearch: {query['query']}")
        for hit in query["results"]:
            print(f"  {hit['rank']}. {hit['score']:.3f} [{hit['label']}; cluster {hit['cluster']}: {hit['cluster_label']}] "
                  f"{_snippet(hit['text'])}")
    files = result["files"]
    print("\nwhere to look:")
    print(f"  {files['map_html']}   the map: open it in a browser (works offline); hover a point to read the post")
    print(f"  {files['report_html']} the report: the map, the cluster table, the metrics and how it was made")
    print(f"  {files['map_png']}    the same map as a picture, clusters labelled")
    print(f"  {files['clusters_csv']}  each cluster's size, keywords and three representative posts")
    print(f"  {files['index']}/   search it: embedspace search {files['index']} \"your question\"")
    return 0
