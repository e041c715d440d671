"""Word and phrase relations with embedspace's public API.

Neighbours, analogies, odd one out, concept axes and a similarity matrix over the shipped
English vocabulary with the default model, then the two word benchmarks on the shipped MEN
and questions-words files. Phrases work wherever words do.

    python scripts/example_relations.py                      # full 30,000-word vocabulary
    python scripts/example_relations.py --vocab-size 2000    # quicker (the tests use this)
    python scripts/example_relations.py --plots out/         # also write the PNGs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import embedspace as es

CORPORA = Path(__file__).resolve().parent.parent / "corpora"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-size", type=int, default=30_000, help="most frequent words used as candidates")
    parser.add_argument("--plots", type=Path, help="folder to write similarity.png and axis.png into")
    parser.add_argument("--skip-benchmarks", action="store_true", help="do not score MEN and questions-words")
    args = parser.parse_args(argv)

    space = es.TermSpace.from_encoder(es.load_vocabulary()[: args.vocab_size])
    print(space.describe(), end="\n\n")

    print("man : king :: woman : ?")
    print(es.relations.analogy("man", "king", "woman", k=5, space=space).to_string(index=False), end="\n\n")
    print("odd one out of breakfast, lunch, dinner, car")
    print(es.relations.odd_one_out(["breakfast", "lunch", "dinner", "car"], space=space).to_string(index=False), end="\n\n")
    print("neighbours of a phrase and of a word")
    print(es.relations.neighbors(["ice cream", "king"], k=5, space=space).to_string(index=False), end="\n\n")

    axis = es.relations.axis("good", "bad", ["excellent", "terrible", "mediocre"], space=space)
    print(f"axis {axis.name}: permutation p = {axis.p_value:.4f}")
    print(axis.table.to_string(index=False), end="\n\n")

    matrix = es.relations.similarity_matrix(["cat", "dog", "car", "truck", "ice cream"], space=space)
    print(matrix.round(3), end="\n\n")
    if args.plots:
        from embedspace.relations.plots import plot_axis, plot_similarity_heatmap

        args.plots.mkdir(parents=True, exist_ok=True)
        plot_similarity_heatmap(matrix, args.plots / "similarity.png", overwrite=True)
        gender = es.relations.axis("man", "woman", ["king", "queen", "doctor", "nurse"], space=space)
        wealth = es.relations.axis("rich", "poor", ["king", "queen", "doctor", "nurse"], space=space)
        plot_axis(gender, args.plots / "axis.png", y=wealth, overwrite=True)
        print(f"plots written to {args.plots}/", end="\n\n")

    if not args.skip_benchmarks:
        men = es.evaluate_word_similarity(CORPORA / "word_similarity" / "MEN_dataset_natural_form_full")
        print(f"MEN: spearman {men['spearman']:.4f} over {men['n']} pairs")
        analogies = es.evaluate_analogy(CORPORA / "analogy" / "questions-words.txt", method="add")
        print(f"questions-words (3CosAdd, {analogies['candidates']}): accuracy {analogies['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
