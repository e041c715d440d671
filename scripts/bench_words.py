"""Word benchmarks of a sentence model: the figures of issue 5, plain and with prompt templates.

Scores word similarity (MEN natural form, WordSim-353, and the extra sets RG-65, MTurk-771,
WS-353 SIM/REL, RW when present) and questions-words analogies (3CosAdd and 3CosMul, over the
file's own words and optionally over the shipped 30,000-word vocabulary), each with words
encoded alone and averaged over :data:`embedspace.relations.wordvectors.WORD_TEMPLATES`. The template set
was chosen on MTurk-771 (best of the candidate sets tried there); MEN and WS-353 were not used
to choose it.

    python scripts/bench_words.py                          # writes JSON to stdout
    python scripts/bench_words.py --open-vocabulary --out words.json
    python scripts/bench_words.py --shared ../shared/corpora

WordSim-353 and the extra sets are read from ``--shared`` (default ``../shared/corpora``):
they are not shipped (no license stated).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--open-vocabulary", action="store_true",
                        help="also score analogies with the 30,000 shipped words as candidates")
    parser.add_argument("--out", type=Path, help="write the JSON here as well")
    args = parser.parse_args(argv)

    import embedspace as es

    encoder = es.load_encoder(args.model, backend=args.backend)
    word_sets = {
        "men": ROOT / "corpora" / "word_similarity" / "MEN_dataset_natural_form_full",
        "ws353": args.shared / "word_similarity" / "wordsim353_combined.csv",
        "rg65": args.shared / "word_similarity" / "extra" / "EN-RG-65.txt",
        "mturk771": args.shared / "word_similarity" / "extra" / "EN-MTurk-771.txt",
        "ws353_sim": args.shared / "word_similarity" / "extra" / "EN-WS-353-SIM.txt",
        "ws353_rel": args.shared / "word_similarity" / "extra" / "EN-WS-353-REL.txt",
        "rw": args.shared / "word_similarity" / "extra" / "EN-RW-STANFORD.txt",
    }
    questions = ROOT / "corpora" / "analogy" / "questions-words.txt"
    report = {"model": encoder.identity.name, "backend": encoder.identity.backend,
              "templates": list(es.wordvectors.WORD_TEMPLATES), "word_similarity": {}, "analogy": {}}
    for mode, templates in (("plain", False), ("templates", True)):
        space = es.TermSpace.from_encoder(None, encoder=encoder, templates=templates)
        for name, path in word_sets.items():
            if not path.is_file():
                print(f"skipping {name}: {path} not found", file=sys.stderr)
                continue
            result = es.evaluate_word_similarity(path, space=space)
            report["word_similarity"].setdefault(name, {})[mode] = {k: result[k] for k in ("spearman", "pearson", "n", "oov")}
            print(f"{name:10s} {mode:9s} spearman {result['spearman']:.4f}  (n {result['n']})", file=sys.stderr)
        for method in ("add", "mul"):
            started = time.perf_counter()
            result = es.evaluate_analogy(questions, space=space, method=method)
            key = f"file_vocabulary_{method}"
            report["analogy"].setdefault(key, {})[mode] = _analogy_summary(result, started)
            print(f"analogy {key} {mode}: {result['accuracy']:.4f}", file=sys.stderr)
    if args.open_vocabulary:
        space = es.TermSpace.from_encoder(None, encoder=encoder)
        for method in ("add", "mul"):
            started = time.perf_counter()
            result = es.evaluate_analogy(questions, space=space, method=method, vocab="default")
            report["analogy"].setdefault(f"english30k_{method}", {})["plain"] = _analogy_summary(result, started)
            print(f"analogy english30k_{method}: {result['accuracy']:.4f} (oov {result['oov']})", file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _analogy_summary(result: dict, started: float) -> dict:
    keys = ("accuracy", "semantic", "syntactic", "n", "oov", "candidates")
    return {**{k: result[k] for k in keys}, "seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    sys.exit(main())
