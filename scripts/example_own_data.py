"""Your own data, start to finish: a CSV file in, an index to search and a map out.

Writes a few hundred posts of the shipped 20 Newsgroups corpus as a CSV file with its own
column names (``body``, ``topic``), as a user's export would look, then runs the README's
"Your own data" steps on it with the public API: embed (text column ``body``), save and
load the set, build an index, search with a metadata filter, and map the set scored
against ``topic``.

    python scripts/example_own_data.py              # 400 posts, in a temporary folder
    python scripts/example_own_data.py --n 120 --out my-folder
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import embedspace as es

TOPICS = ("sci.space", "rec.autos", "comp.graphics", "talk.politics.mideast")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="posts in the CSV file (default 400)")
    parser.add_argument("--out", default=None, help="folder for the CSV, set, index and map (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        posts = es.read("corpus:20newsgroups")
        posts = posts[posts["label"].isin(TOPICS)].sample(n=args.n, random_state=0)
        posts = posts.rename(columns={"text": "body", "label": "topic"})[["body", "topic"]]
        posts["body"] = posts["body"].str.split("\n\n", n=1).str[-1].str.slice(0, 1500)  # no mail headers
        posts.to_csv(folder / "articles.csv", index=False)

        space = es.embed(folder / "articles.csv", text_col="body")
        space.save(folder / "articles.set", overwrite=True)
        space = es.load(folder / "articles.set")
        print(space)

        index = es.build_index(space)
        hits = index.search(["rocket launch to orbit"], k=3, where="topic != 'rec.autos'")
        print(hits[["rank", "score", "topic"]].to_string(index=False))

        mapped = es.map(space, seed=0)  # the set with x, y, cluster, probability, outlier_score columns
        clusters = mapped.table["cluster"]
        print(f"{clusters.max() + 1} clusters, {(clusters < 0).mean():.0%} outliers")
        print(mapped.table.groupby("cluster")["topic"].agg(lambda t: t.value_counts().index[0]).to_string())
        from sklearn.metrics import normalized_mutual_info_score  # es.evaluate_clustering does this from a file

        print(f"against 'topic': NMI {normalized_mutual_info_score(mapped.table['topic'], clusters):.3f}")


if __name__ == "__main__":
    main()
