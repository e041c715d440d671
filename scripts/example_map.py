"""Map a collection with the public API: embed, lay out and cluster, name the clusters, write the map.

    python scripts/example_map.py                                  # shipped 20 Newsgroups (7,532 posts)
    python scripts/example_map.py --limit 1000 -o /tmp/news-map    # a quick look
    python scripts/example_map.py my.set -o my-map                 # a saved EmbeddingSet

Then open ``<out>/map.html`` in a browser (it works offline) or look at ``<out>/map.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import embedspace as es


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default="corpus:20newsgroups", help="a source or an EmbeddingSet directory")
    parser.add_argument("-o", "--out", default="example-map", help="map directory to write (replaced if present)")
    parser.add_argument("--limit", type=int, default=None, help="use a random sample of N documents")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if Path(args.input).is_dir():
        space = es.load(args.input)
    else:
        docs = es.read(args.input)
        if args.limit:
            docs = docs.sample(n=min(args.limit, len(docs)), random_state=args.seed).reset_index(drop=True)
        space = es.embed(docs)  # cached: a second run does not embed again

    mapped = es.map(space, seed=args.seed)  # adds x, y, cluster, probability, outlier_score
    table = mapped.table
    print(f"{len(table)} documents, {table['cluster'].max() + 1} clusters, "
          f"{(table['cluster'] < 0).mean():.1%} outliers (cluster -1)")

    clusters = es.describe(mapped)  # one row per cluster: size, label, keywords, examples
    print(clusters[["cluster", "size", "label"]].head(15).to_string(index=False))

    label_col = "label" if "label" in table.columns else None
    result = es.write_map(mapped, args.out, label_col=label_col, overwrite=True)
    metrics = result["metrics"]
    if label_col:
        print(f"against the '{label_col}' column: NMI {metrics['nmi']:.3f}, ARI {metrics['ari']:.3f}")
    print(f"wrote {result['output']}/ (map.png, map.html, clusters.csv, documents.parquet, metrics.json)")


if __name__ == "__main__":
    main()
