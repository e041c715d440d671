"""Refined decoding of an embedding-encoder VAE against one greedy pass, on PTB test.

For each of N PTB test sentences (the first N, or the N after the first M with ``--skip
M``), decode its all-MiniLM-L6-v2 vector two ways, in the same run: the greedy decode of the
posterior mean (what ``vae eval`` scores as ``bleu``) and ``refine_decode`` (``vae
reconstruct --refine R``: a search for a sentence whose own embedding lies near the vector).
Prints corpus BLEU (sacrebleu) against the inputs, the mean cosine of each decode's
embedding with the input's, and the seconds per sentence.

    python scripts/bench_vae_refine.py bench-vae/embedding.vae --sentences 1000 --rounds 5
    python scripts/bench_vae_refine.py bench-vae/embedding.vae --skip 100 --sentences 300 --restarts 3

Run ``scripts/bench_vae.py --models embedding`` first to train the VAE. PTB is read by path
from the research-only shared copy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_PTB = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "sentences" / "ptb"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vae", help="an embedding-encoder VAE directory")
    parser.add_argument("--ptb", default=str(DEFAULT_PTB), help="folder with ptb.test.txt")
    parser.add_argument("--sentences", type=int, default=1000, help="how many test sentences, after --skip (default: 1000)")
    parser.add_argument("--skip", type=int, default=0, help="start after the first M test sentences (default: 0)")
    parser.add_argument("--rounds", type=int, default=5, help="refinement rounds (default: 5)")
    parser.add_argument("--restarts", type=int, default=1, help="searches per sentence from different starts (default: 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the figures and decodes to this JSON file")
    args = parser.parse_args(argv)

    import sacrebleu
    import torch

    import embedspace.vae as V
    from embedspace.vae.refine import refine_decode

    torch.set_num_threads(args.threads)
    vae = V.load(args.vae)
    test = [line.strip() for line in open(Path(args.ptb) / "ptb.test.txt", encoding="utf-8") if line.strip()][args.skip: args.skip + args.sentences]
    targets = vae.sentence_vectors(test)
    encoder = vae.sentence_encoder()

    def cosine(texts):
        vectors = encoder.encode([t or "." for t in texts], progress=False)
        return float(((vectors * targets).sum(1) / np.linalg.norm(vectors, axis=1)).mean())

    started = time.time()
    greedy = vae.decode_embeddings(targets)
    greedy_seconds = time.time() - started
    started = time.time()
    refined, _ = refine_decode(vae, targets, rounds=args.rounds, restarts=args.restarts)
    refine_seconds = time.time() - started
    figures = {
        "vae": args.vae, "skip": args.skip, "sentences": len(test), "rounds": args.rounds, "restarts": args.restarts,
        "threads": args.threads,
        "bleu_greedy": round(sacrebleu.corpus_bleu(greedy, [test]).score, 2),
        "bleu_refined": round(sacrebleu.corpus_bleu(refined, [test]).score, 2),
        "cosine_greedy": round(cosine(greedy), 4), "cosine_refined": round(cosine(refined), 4),
        "seconds_per_sentence_greedy": round(greedy_seconds / len(test), 4),
        "seconds_per_sentence_refined": round(refine_seconds / len(test), 3),
    }
    print(json.dumps(figures, indent=2))
    for text, g, r in list(zip(test, greedy, refined))[:5]:
        print(f"{text}\n  greedy  -> {g}\n  refined -> {r}")
    if args.out:
        figures["decodes"] = [{"text": t, "greedy": g, "refined": r} for t, g, r in zip(test, greedy, refined)]
        Path(args.out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
