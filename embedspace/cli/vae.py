"""``embedspace vae ...``: train a sentence VAE, then sample, reconstruct, interpolate, evaluate."""

from __future__ import annotations

import argparse
import sys

from embedspace.cli._common import (
    UsageError,
    add_command,
    emit_json,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    progress_of,
)
from embedspace.sources import read
from embedspace.vae import TrainConfig, VAEConfig, load, train


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "vae",
        help="train a sentence VAE and generate from its latent space",
        description=(
            "A small text VAE (GRU decoder; a GRU encoder over the words, or an MLP over the toolkit's sentence "
            "embeddings) that trains on a CPU, then samples, reconstructs and interpolates sentences."
        ),
        epilog=(
            "examples:\n  embedspace vae train corpus:sts-captions -o captions.vae --max-minutes 10\n"
            "  embedspace vae sample captions.vae -n 5\n"
            "  embedspace vae interpolate captions.vae 'a man is playing a guitar.' 'a dog runs on the beach.'"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda args: _missing_verb(parser))
    verbs = parser.add_subparsers(dest="vae_command", metavar="VERB", parser_class=type(parser))
    _register_train(verbs)
    _register_sample(verbs)
    _register_reconstruct(verbs)
    _register_interpolate(verbs)
    _register_arithmetic(verbs)
    _register_eval(verbs, "eval")


def _check_restarts(args) -> None:
    """``--restarts`` only means something with ``--refine``: say so rather than ignore it."""

    if args.restarts > 1 and not args.refine:
        raise UsageError(f"--restarts {args.restarts} needs --refine N (restarts repeat the refining search)")


def _missing_verb(parser) -> int:
    raise UsageError("no VAE command given; choose one of: train, sample, reconstruct, interpolate, arithmetic, eval "
                     f"(see '{parser.prog} --help')")


def register_eval(verbs) -> None:
    """``embedspace eval vae VAE FILE``: the same as ``embedspace vae eval``."""
    _register_eval(verbs, "vae")


def _register_train(verbs) -> None:
    p = add_command(
        verbs,
        "train",
        help="train a VAE on a corpus of sentences",
        description=(
            "Train a sentence VAE on CORPUS (.txt one sentence per line, .csv/.tsv/.jsonl/.parquet with a text column, "
            "or corpus:NAME) and write it to VAE atomically. A share of the corpus is held out for validation unless "
            "--valid is given; the model with the best validation objective (-ELBO with the free-bits floor) is kept. Training stops after --epochs or "
            "--max-minutes, whichever comes first; an interrupted run continues with --resume."
        ),
        examples=[
            "embedspace vae train corpus:sts-captions -o captions.vae",
            "embedspace vae train sentences.txt -o my.vae --encoder embedding --max-minutes 15 --seed 1",
        ],
        handler=_run_train,
    )
    p.add_argument("corpus", metavar="CORPUS", help="file, folder or corpus:NAME")
    p.add_argument("-o", "--output", required=True, metavar="VAE", help="output VAE directory")
    p.add_argument("--encoder", choices=("gru", "embedding"), default="gru", help="gru: reads the words; embedding: reads sentence embeddings (default: gru)")
    p.add_argument("--epochs", type=positive_int, default=30, help="passes over the corpus at most (default: 30)")
    p.add_argument("--max-minutes", type=positive_float, default=None, help="stop cleanly after this many minutes, keeping the best model")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--valid", default=None, metavar="FILE", help="validation sentences (default: 5%% of CORPUS held out)")
    p.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    p.add_argument("--max-length", type=positive_int, default=60, help="skip training sentences with more tokens (default: 60)")
    p.add_argument("--latent-dim", type=positive_int, default=32, help="size of z (default: 32)")
    p.add_argument("--hidden-dim", type=positive_int, default=512, help="decoder GRU size (default: 512)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sentences per step (default: 64)")
    p.add_argument("--tokenizer", choices=("simple", "whitespace"), default="simple", help="simple splits off punctuation; whitespace keeps pre-tokenized text")
    p.add_argument("--embedding-init", choices=("sentence-model", "random"), default="sentence-model",
                   help="word embeddings start from the shipped sentence model's token embeddings (default; a lower PTB validation -ELBO for the same CPU time, see scripts/BENCHMARKS.md) or at random")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of this command")
    p.add_argument("--overwrite", action="store_true", help="replace VAE if it exists")
    p.add_argument("--json", action="store_true", help="print the training history as JSON")


def _run_train(args) -> int:
    config = VAEConfig(max_length=args.max_length, latent_dim=args.latent_dim, hidden_dim=args.hidden_dim, tokenizer=args.tokenizer)
    vae = train(
        args.corpus,
        args.output,
        encoder=args.encoder,
        valid=args.valid,
        config=config,
        train_config=TrainConfig(batch_size=args.batch_size, embedding_init=args.embedding_init),
        epochs=args.epochs,
        max_minutes=args.max_minutes,
        seed=args.seed,
        text_col=args.text_col,
        overwrite=args.overwrite,
        resume=args.resume,
        progress=progress_of(args),
    )
    if args.json:
        emit_json({"output": str(args.output), "history": vae.history})
    elif not args.quiet:
        last = min(vae.history, key=lambda r: r.get("valid_objective", r["valid_elbo"])) if vae.history else {}
        print(
            f"wrote {args.output}: {vae!r}, best validation -ELBO {last.get('valid_elbo', float('nan')):.2f} "
            f"(rec {last.get('valid_rec', float('nan')):.2f} + KL {last.get('valid_kl', float('nan')):.2f}) at epoch {last.get('epoch')}",
            file=sys.stderr,
        )
    return 0


def _register_sample(verbs) -> None:
    p = add_command(
        verbs,
        "sample",
        help="sentences from random points of the latent space",
        description="Draw z from the prior N(0, I) and decode it (greedily, or sampling words with --temperature).",
        examples=["embedspace vae sample captions.vae -n 5", "embedspace vae sample captions.vae --temperature 0.8 --seed 3"],
        handler=_run_sample,
    )
    p.add_argument("vae", metavar="VAE")
    p.add_argument("-n", type=positive_int, default=10, help="how many sentences (default: 10)")
    p.add_argument("--temperature", type=non_negative_float, default=0.0, help="0: greedy decoding of each z (default); > 0: sample words")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--json", action="store_true", help="print {\"samples\": [...]}")


def _run_sample(args) -> int:
    samples = load(args.vae).sample(args.n, temperature=args.temperature, seed=args.seed)
    _print_lines("samples", samples, args.json)
    return 0


def _register_reconstruct(verbs) -> None:
    p = add_command(
        verbs,
        "reconstruct",
        help="encode sentences and decode them back",
        description=(
            "Decode the posterior mean of each TEXT (greedy, or beam search with --beam). With an embedding-encoder "
            "VAE, --refine N instead searches N rounds for a sentence whose own embedding lies near the TEXT's "
            "(about 80 embeddings per TEXT and round); --restarts R runs R such searches from different starts "
            "and keeps the best."
        ),
        examples=["embedspace vae reconstruct captions.vae 'a man is playing a guitar.'", "embedspace vae reconstruct captions.vae 'a cat sleeps.' --beam 5",
                  "embedspace vae reconstruct emb.vae 'a cat sleeps.' --refine 5 --restarts 3"],
        handler=_run_reconstruct,
    )
    p.add_argument("vae", metavar="VAE")
    p.add_argument("texts", metavar="TEXT", nargs="+")
    p.add_argument("--beam", type=positive_int, default=1, help="beam size (default: 1, greedy)")
    p.add_argument("--refine", type=non_negative_int, default=0, metavar="N",
                   help="embedding encoder: N rounds of search for a sentence that embeds near the input (default: 0, off)")
    p.add_argument("--restarts", type=positive_int, default=1, metavar="R",
                   help="with --refine: searches per TEXT from different starts, the best kept (default: 1; R times the time)")
    p.add_argument("--json", action="store_true", help="print {\"reconstructions\": [{\"text\", \"reconstruction\"}]}")


def _run_reconstruct(args) -> int:
    _check_restarts(args)
    outputs = load(args.vae).reconstruct(args.texts, beam_size=args.beam, refine=args.refine, restarts=args.restarts,
                                         progress=progress_of(args))
    if args.json:
        emit_json({"reconstructions": [{"text": t, "reconstruction": r} for t, r in zip(args.texts, outputs)]})
    else:
        sys.stdout.write("".join(f"{line}\n" for line in outputs))
    return 0


def _register_interpolate(verbs) -> None:
    p = add_command(
        verbs,
        "interpolate",
        help="walk from one sentence to another in latent space",
        description=(
            "Print STEPS + 2 lines: the reconstruction of A, STEPS sentences decoded from evenly spaced points between "
            "the posterior means of A and B, and the reconstruction of B."
        ),
        examples=[
            "embedspace vae interpolate captions.vae 'a man is playing a guitar.' 'a dog runs on the beach.'",
            "embedspace vae interpolate captions.vae 'a cat sleeps.' 'two men ride horses.' --steps 4 --method spherical",
        ],
        handler=_run_interpolate,
    )
    p.add_argument("vae", metavar="VAE")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--steps", type=non_negative_int, default=8, help="points between A and B (default: 8)")
    p.add_argument("--method", choices=("linear", "spherical"), default="linear", help="path shape (default: linear)")
    p.add_argument("--json", action="store_true", help="print {\"path\": [...]}")


def _run_interpolate(args) -> int:
    path = load(args.vae).interpolate(args.a, args.b, steps=args.steps, method=args.method)
    _print_lines("path", path, args.json)
    return 0


def _register_arithmetic(verbs) -> None:
    p = add_command(
        verbs,
        "arithmetic",
        help="decode z(A) - z(B) + z(C)",
        description="Latent arithmetic: decode the point z(A) - z(B) + z(C).",
        examples=["embedspace vae arithmetic captions.vae 'a man is playing a guitar.' 'a man.' 'a woman.'"],
        handler=_run_arithmetic,
    )
    p.add_argument("vae", metavar="VAE")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("c", metavar="C")
    p.add_argument("--json", action="store_true", help="print {\"result\": ...}")


def _run_arithmetic(args) -> int:
    result = load(args.vae).arithmetic(args.a, args.b, args.c)
    if args.json:
        emit_json({"result": result})
    else:
        print(result)
    return 0


def _register_eval(verbs, name) -> None:
    p = add_command(
        verbs,
        name,
        help="NLL, -ELBO, KL, PPL, active units, MI, BLEU of a VAE on sentences",
        description=(
            "Score VAE on the sentences of FILE: nll (importance-weighted with --samples K), elbo (-ELBO), kl, "
            "ppl (per token, end token included), active_units, mi, bleu (greedy reconstruction vs input). "
            "nll, elbo and kl are positive nats per sentence; lower is better."
        ),
        examples=[f"embedspace {'vae eval' if name == 'eval' else 'eval vae'} captions.vae test.txt --json", "embedspace vae eval my.vae test.txt --samples 50"],
        handler=_run_eval,
    )
    p.add_argument("vae", metavar="VAE")
    p.add_argument("file", metavar="FILE", help="sentences: any input embedspace reads")
    p.add_argument("--samples", type=positive_int, default=500, help="importance samples per sentence (default: 500)")
    p.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refine", type=non_negative_int, default=0, metavar="N",
                   help="embedding encoder: also score N rounds of refined decoding (keys bleu_refined, cosine_refined)")
    p.add_argument("--restarts", type=positive_int, default=1, metavar="R",
                   help="with --refine: searches per sentence from different starts, the best kept (default: 1)")
    p.add_argument("--json", action="store_true", help="print JSON with keys nll, elbo, kl, ppl, active_units, mi, bleu")


def _run_eval(args) -> int:
    _check_restarts(args)
    vae = load(args.vae)
    texts = read(args.file, text_col=args.text_col)["text"].tolist()
    result = vae.evaluate(texts, samples=args.samples, progress=progress_of(args), seed=args.seed, refine=args.refine,
                          restarts=args.restarts)
    if args.json:
        emit_json(result)
    else:
        bleu = "-" if result["bleu"] is None else f"{result['bleu']:.2f}"
        print(
            f"nll {result['nll']:.2f}  elbo {result['elbo']:.2f}  kl {result['kl']:.2f}  ppl {result['ppl']:.2f}  "
            f"active_units {result['active_units']}  mi {result['mi']:.3f}  bleu {bleu}  "
            f"(n {result['n']}, K {result['samples']})"
        )
        if "bleu_refined" in result:
            print(f"bleu_refined {result['bleu_refined']:.2f}  cosine_refined {result['cosine_refined']:.4f}  (rounds {result['refine_rounds']}, restarts {result['refine_restarts']})")
    return 0


def _print_lines(key, lines, as_json) -> None:
    if as_json:
        emit_json({key: list(lines)})
    else:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
