"""Semantic search over the shipped 20 Newsgroups corpus, with the public API only.

Embeds the corpus (cached after the first run), builds an index (the kind is chosen by
size), asks questions in words with and without a metadata filter, compares dense, BM25
and hybrid ranking, and saves and reloads the index.

    python scripts/example_search.py                 # the 7,532 test-split posts
    python scripts/example_search.py --limit 300     # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import embedspace as es


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N posts")
    parser.add_argument("--out", default=None, help="folder for the saved set and index (default: a temporary one)")
    args = parser.parse_args(argv)

    docs = es.read("corpus:20newsgroups")  # text + label, label_id, split, id
    if args.limit:
        docs = docs.sample(n=min(args.limit, len(docs)), random_state=0).reset_index(drop=True)
    space = es.embed(docs)  # EmbeddingSet: vectors (n, 384) + the table
    index = es.build_index(space)  # flat below 50k vectors, HNSW above
    print(index)

    question = "graphics cards and 3D rendering on linux"
    hits = index.search([question], k=5)
    print(f"\n{question!r}, nearest posts:")
    print(hits[["rank", "score", "label"]].to_string(index=False))

    label = hits["label"].iloc[0]
    filtered = index.search([question], k=3, where=f"label != '{label}'")
    print(f"\nthe same question outside {label}:")
    print(filtered[["rank", "score", "label"]].to_string(index=False))

    print("\n'NASA shuttle launch schedule', top 3 by ranking:")
    for mode in ("dense", "bm25", "hybrid"):
        top = index.search(["NASA shuttle launch schedule"], k=3, mode=mode)
        print(f"{mode:>6}: " + ", ".join(f"{row.label} ({row.score:.3f})" for row in top.itertuples()))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        index.save(folder / "news.index", overwrite=True)
        again = es.load_index(folder / "news.index")
        same = again.search([question], k=5)["row"].tolist() == hits["row"].tolist()
        print(f"\nsaved to {folder / 'news.index'} and reloaded: same hits = {same}")


if __name__ == "__main__":
    main()
