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

The settings this script's defaults came from, and every attempt at moving the figures (with
their results), are in ``scripts/BENCHMARKS.md``, section bench_vae.py, "Settings and attempts".

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
