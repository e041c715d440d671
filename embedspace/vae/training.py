"""Training a text VAE on a CPU: bucketed batches, annealed KL, validation, checkpoints.

The loop (one function, :func:`train`) reads the corpus, builds the vocabulary, holds out
a validation share, and runs Adam over batches of sentences of similar length. The loss
per sentence is ``-log p(x|z) + beta * sum_d max(free_bits, KL_d)`` with ``beta`` following
a cyclical schedule (Fu et al. 2019) and ``KL_d`` the batch-mean KL of dimension d (free
bits, Kingma et al. 2016); decoder inputs get word dropout. After every epoch (and when
``max_minutes`` runs out) the validation sentences are scored — the true -ELBO, and the
training objective at beta = 1 (free bits included), which picks the model kept. With
``average_decay`` the weights scored, kept and saved are an exponential moving average of
the trained ones (:class:`WeightAverage`).

Progress lives in a work folder next to the output (``.NAME.train/``): ``best/`` (a
complete VAE directory) and ``last.pt`` (model, optimiser, position and random state, a
``torch.save`` of tensors and plain values, read back with ``weights_only=True``). A run
that is killed or runs out of time continues from there with ``resume=True``; when
training ends, ``best/`` becomes the output directory atomically and the folder goes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from embedspace._fs import atomic_directory, check_output_path, output_lock, remove_stale_temporaries
from embedspace._progress import progress_bar
from embedspace.encoding import EmbeddingCache, encode_texts, load_encoder
from embedspace.errors import FormatError, InputError, OutputExistsError
from embedspace.sources import read
from embedspace.vae.config import TrainConfig, VAEConfig
from embedspace.vae.model import SentenceVAE, make_batch
from embedspace.vae.pretrained import token_embedding_init
from embedspace.vae.textvae import FORMAT, TextVAE
from embedspace.vae.vocab import Vocabulary, tokenize

__all__ = ["train", "kl_weight", "length_buckets", "WeightAverage"]

log = logging.getLogger("embedspace")

_CHECKPOINT = "last.pt"
_BEST = "best"


def kl_weight(step: int, steps_per_cycle: float, ramp: float) -> float:
    """Cyclical annealing: rises linearly from 0 to 1 over ``ramp`` of each cycle, then stays 1."""
    position = (step % max(1.0, steps_per_cycle)) / max(1.0, steps_per_cycle)
    return min(1.0, position / ramp)


def training_phase(done: float, final_phase: float) -> tuple[bool, float]:
    """Whether training is in its final phase, and the learning-rate multiplier.

    ``done`` is the share of the budget used (0..1). In the last ``final_phase`` of it the
    rate falls linearly from 1 to 0.1.
    """
    start = 1.0 - final_phase
    if final_phase <= 0 or done < start:
        return False, 1.0
    return True, max(0.1, 1.0 - 0.9 * (done - start) / final_phase)


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging).

    After update ``n`` the average moves towards the current weights by
    ``1 - min(decay, (1 + n) / (10 + n))``: a short window at the start, so the random
    initial weights do not linger, growing to ``1 / (1 - decay)`` steps.

    Parameters
    ----------
    model : SentenceVAE
        The model being trained; the average starts as a copy of its weights.
    decay : float
        In (0, 1).
    updates : int, default=0
        Updates already made (when resuming).
    """

    def __init__(self, model: SentenceVAE, decay: float, updates: int = 0):
        self.model = _copy(model).requires_grad_(False)
        self.decay = decay
        self.updates = updates

    @torch.no_grad()
    def update(self, model: SentenceVAE) -> None:
        """Move the average towards ``model``'s current weights."""
        self.updates += 1
        weight = 1.0 - min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.lerp_(theirs, weight)


def length_buckets(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of sentence indices of similar length (little padding, random order)."""
    lengths = np.asarray(lengths, dtype=float)
    keys = lengths + rng.uniform(-0.5, 0.5, size=len(lengths)) * 2.0
    order = np.argsort(keys, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def default_cutoffs(vocab_size: int) -> tuple:
    """Adaptive-softmax cutoffs for a vocabulary; a full softmax below 6,000 tokens."""
    if vocab_size < 6000:
        return ()
    return tuple(c for c in (2000, 6000, 20000) if c < vocab_size - 500)


def _texts_of(source, text_col: str) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        return read(source, text_col=text_col)["text"].tolist()
    texts = [t for t in source if isinstance(t, str) and t.strip()]
    if not texts:
        raise InputError("the corpus holds no sentences")
    return texts


def _short_enough(texts: list[str], config: VAEConfig, max_length: int, what: str) -> list[str]:
    """The texts with 1..max_length tokens; an error naming the problem when none is left."""

    lengths = [len(tokenize(t, mode=config.tokenizer, lowercase=config.lowercase)) for t in texts]
    kept = [t for t, n in zip(texts, lengths) if 0 < n <= max_length]
    if not kept:
        raise InputError(
            f"every sentence of the {what} is longer than max_length={max_length} tokens (shortest has {min(lengths)}); "
            "split the text into sentences or raise max_length="
        )
    if len(kept) < len(texts):
        log.warning("skipped %d of %d %s sentences longer than %d tokens", len(texts) - len(kept), len(texts), what, max_length)
    return kept


def train(
    corpus,
    output: str | os.PathLike | None = None,
    *,
    encoder: str = "gru",
    valid=None,
    config: VAEConfig | None = None,
    train_config: TrainConfig | None = None,
    epochs: int | None = None,
    max_minutes: float | None = None,
    seed: int | None = None,
    text_col: str = "text",
    sentence_encoder=None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    stop=None,
) -> TextVAE:
    """Train a sentence VAE (or, with ``encoder="none"``, a GRU language model).

    Parameters
    ----------
    corpus : str, path-like or list of str
        Anything :func:`embedspace.read` accepts (one sentence per line for ``.txt``), or sentences.
    output : path-like, optional
        VAE directory to write (atomically). Without it the model is only returned.
    encoder : {"gru", "embedding", "none"}, default="gru"
        Overrides ``config.encoder``.
    valid : str, path-like or list of str, optional
        Validation sentences; default a held-out share of ``corpus``.
    config : VAEConfig, optional
        Architecture; defaults from :class:`VAEConfig`.
    train_config : TrainConfig, optional
        Training settings; ``epochs``, ``max_minutes`` and ``seed`` override it.
    text_col : str, default="text"
    sentence_encoder : Encoder, optional
        For ``encoder="embedding"``: the sentence encoder (default all-MiniLM-L6-v2).
    overwrite : bool, default=False
        Replace an existing ``output`` (and discard an interrupted run's progress).
    resume : bool, default=False
        Continue an interrupted run of the same command from its last checkpoint.
    progress : bool or None
        Progress bar with running NLL and KL (default: on a terminal).
    stop : callable, optional
        ``stop() -> bool``, asked after every step; True stops training cleanly, as when
        ``max_minutes`` runs out (e.g. a wall-clock deadline on top of a CPU-time budget).

    Returns
    -------
    TextVAE
        The model with the best validation objective (the -ELBO with the free-bits floor).

    Raises
    ------
    InputError
        Empty corpus, every sentence too long, bad settings, an existing output.
    """
    config = (config or VAEConfig()).replace(encoder=encoder).validate()
    overrides = {k: v for k, v in {"epochs": epochs, "max_minutes": max_minutes, "seed": seed}.items() if v is not None}
    train_config = (train_config or TrainConfig()).replace(**overrides).validate()
    # one training run per output at a time: the work folder and the result are this run's alone
    with output_lock(output) if output is not None else contextlib.nullcontext():
        work = None
        if output is not None:
            target = check_output_path(output, overwrite=overwrite, inputs=[corpus, valid], kind=FORMAT)
            work = target.with_name(f".{target.name}.train")
            if work.exists() and not resume:
                if not overwrite:
                    raise OutputExistsError(
                        f"an interrupted training run for '{output}' is in {work}; continue it with resume=True "
                        "or start over with overwrite=True"
                    )
                _remove_work(work)
        elif resume:
            raise InputError("resume needs an output directory")
        threads_before = torch.get_num_threads()
        if train_config.threads:
            torch.set_num_threads(train_config.threads)
        try:
            return _train(corpus, valid, output=output, work=work, config=config, train_config=train_config,
                          overrides=overrides, text_col=text_col, sentence_encoder=sentence_encoder, overwrite=overwrite,
                          resume=resume, progress=progress, stop=stop)
        except BaseException:
            # A failed run keeps its checkpoint for --resume; a work folder still empty would
            # only make the next run ask for --resume or --overwrite.
            if work is not None and work.is_dir() and not any(work.iterdir()):
                work.rmdir()
            raise
        finally:
            torch.set_num_threads(threads_before)


@dataclass
class _Run:
    """What the stages of one training run share: the data, the model and its optimiser, the position reached."""

    config: VAEConfig
    train_config: TrainConfig
    vocab: Vocabulary
    train_ids: list
    valid_ids: list
    train_vectors: np.ndarray | None
    valid_vectors: np.ndarray | None
    model: SentenceVAE
    optimizer: torch.optim.Optimizer
    average: WeightAverage | None
    best: TextVAE
    state: dict
    work: Path | None


class _Budget:
    """The time budget of a run, counted over all sessions of a resumed run (validation included),
    on the wall clock or on this process's CPU clock (``TrainConfig.clock``)."""

    def __init__(self, train_config: TrainConfig, state: dict):
        self.clock = time.process_time if train_config.clock == "cpu" else time.monotonic
        self.prior = state["seconds"]
        self.prior_wall, self.prior_cpu = state.get("wall_seconds", 0.0), state.get("cpu_seconds", 0.0)
        self.started = self.clock()
        self.wall_started, self.cpu_started = time.monotonic(), time.process_time()
        self.seconds = 60.0 * train_config.max_minutes if train_config.max_minutes else math.inf

    def used(self) -> float:
        """Seconds of the budget used so far."""
        return self.prior + self.clock() - self.started

    def share_used(self) -> float:
        return self.used() / self.seconds

    def spent(self) -> bool:
        return self.used() > self.seconds

    def record(self, state: dict) -> None:
        """Write the time used, on the budget's clock, the wall clock and the CPU clock, into ``state``."""
        state["seconds"] = self.used()
        state["wall_seconds"] = self.prior_wall + time.monotonic() - self.wall_started
        state["cpu_seconds"] = self.prior_cpu + time.process_time() - self.cpu_started


def _train(corpus, valid, *, output, work, config, train_config, overrides, text_col, sentence_encoder, overwrite,
           resume, progress, stop):
    """The stages of a run: the texts, the model (new or resumed), epochs, then the best model saved."""
    train_texts, valid_texts = _split_texts(corpus, valid, text_col, config, train_config)
    checkpoint = _load_checkpoint(work) if (resume and work is not None and (work / _CHECKPOINT).exists()) else None
    run = _prepare(train_texts, valid_texts, config, train_config, overrides, checkpoint, sentence_encoder, work,
                   progress)
    budget = _Budget(run.train_config, run.state)
    stopped = None
    while run.state["epoch"] < run.train_config.epochs and not stopped:
        epoch = run.state["epoch"]
        stopped, running, n_batches = _train_epoch(run, budget, progress, stop)
        _end_epoch(run, budget, epoch, stopped, running, n_batches)
    if stopped:
        log.info("stopped after %.1f %s minutes (%s); keeping the best model", run.state["seconds"] / 60.0,
                 run.train_config.clock, stopped)
    if output is not None:
        run.best.save(output, overwrite=overwrite)
        shutil.rmtree(work, ignore_errors=True)
    return run.best


def _split_texts(corpus, valid, text_col: str, config: VAEConfig, train_config: TrainConfig):
    """Training and validation sentences: ``valid`` if given, else a seeded held-out share; too long ones dropped."""
    texts = _texts_of(corpus, text_col)
    if valid is not None:
        valid_texts = _texts_of(valid, text_col)
        train_texts = texts
    else:
        rng = np.random.default_rng(train_config.seed)
        order = rng.permutation(len(texts))
        n_valid = min(2000, max(1, int(round(len(texts) * train_config.valid_fraction)))) if len(texts) > 1 else 0
        valid_texts = [texts[i] for i in order[:n_valid]]
        train_texts = [texts[i] for i in order[n_valid:]] or texts
        valid_texts = valid_texts or train_texts[:1]
    train_texts = _short_enough(train_texts, config, config.max_length, "training corpus")
    valid_texts = _short_enough(valid_texts, config, config.max_length * 4, "validation set")
    return train_texts, valid_texts


def _prepare(train_texts, valid_texts, config, train_config, overrides, checkpoint, sentence_encoder, work,
             progress) -> _Run:
    """Vocabulary, token ids, sentence vectors, model, optimiser and position: new, or as a checkpoint left them."""
    if checkpoint is not None:
        vocab = Vocabulary.from_json(checkpoint["vocab"])
        config = VAEConfig.from_dict(_json(checkpoint["config"]))
        train_config = TrainConfig.from_dict(_json(checkpoint["train_config"])).replace(**overrides)
    else:
        vocab = Vocabulary.build(train_texts, min_count=config.min_count, max_size=config.max_vocab,
                                 tokenizer=config.tokenizer, lowercase=config.lowercase)
        config = config.replace(vocab_size=len(vocab),
                                softmax_cutoffs=config.softmax_cutoffs or default_cutoffs(len(vocab)))
    train_vectors = valid_vectors = None
    if config.encoder == "embedding":
        train_vectors, valid_vectors, config = _sentence_vectors(config, sentence_encoder, train_texts, valid_texts,
                                                                 progress)
    torch.manual_seed(train_config.seed)
    model = SentenceVAE(config)
    if checkpoint is None and train_config.embedding_init == "sentence-model":
        _start_from_token_embeddings(model, vocab, train_config.embedding_init_model)
    optimizer = _adam(model, train_config.learning_rate)
    state = {"epoch": 0, "batch": 0, "step": 0, "best": math.inf, "history": [], "seconds": 0.0}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state.update(_json(checkpoint["state"]))
        log.info("resuming at epoch %d, batch %d (best validation objective %.2f)", state["epoch"] + 1, state["batch"],
                 state["best"])
    average = WeightAverage(model, train_config.average_decay, state["step"]) if train_config.average_decay > 0 else None
    if average is not None and checkpoint is not None and "average" in checkpoint:
        average.model.load_state_dict(checkpoint["average"])
    best = TextVAE(_copy(model), vocab, train_config=train_config, history=state["history"])
    if work is not None and (work / _BEST).exists():
        best = TextVAE.load(work / _BEST)
    if checkpoint is not None:
        # Restored only now: building the models above draws from torch's generator, and
        # the resumed run must continue the interrupted run's random stream exactly.
        torch.set_rng_state(checkpoint["torch_rng"])
    if work is not None:
        work.mkdir(exist_ok=True)
        remove_stale_temporaries(work, ours_only_here=True)  # checkpoints half-written by a killed run
    return _Run(config, train_config, vocab, [vocab.encode(t) for t in train_texts],
                [vocab.encode(t) for t in valid_texts], train_vectors, valid_vectors, model, optimizer, average, best,
                state, work)


def _train_epoch(run: _Run, budget: _Budget, progress, stop):
    """Steps through the current epoch from the batch reached; return (why it stopped early or None, running sums, batches)."""
    config, train_config, state = run.config, run.train_config, run.state
    epoch = state["epoch"]
    lengths = [len(x) for x in run.train_ids]
    steps_per_cycle = train_config.kl_cycle_epochs * math.ceil(len(run.train_ids) / train_config.batch_size)
    batches = length_buckets(lengths, train_config.batch_size, np.random.default_rng([train_config.seed, epoch]))
    running = {"nll": 0.0, "kl": 0.0, "n": 0}
    stopped = None
    run.model.train()
    with progress_bar(len(batches), f"epoch {epoch + 1}/{train_config.epochs}", progress=progress, unit="batch") as bar:
        bar.update(state["batch"])
        for index in range(state["batch"], len(batches)):
            rows = batches[index]
            done = (epoch + index / len(batches)) / train_config.epochs
            if train_config.max_minutes:
                done = max(done, budget.share_used())
            final, lr_scale = training_phase(min(1.0, done), train_config.final_phase)
            beta = 1.0 if final else kl_weight(state["step"], steps_per_cycle, train_config.kl_ramp)
            terms = _step(run, rows, lr_scale, beta if config.has_latent else 0.0)
            state["step"] += 1
            state["batch"] = index + 1
            running["nll"] += float(terms["rec"].detach().sum())
            running["kl"] += float(terms["kl"].detach().sum())
            running["n"] += len(rows)
            if state["step"] % 100 == 0:
                log.debug("step %d (%.1f %s min): running nll %.2f kl %.2f beta %.2f lr x%.2f", state["step"],
                          budget.used() / 60.0, train_config.clock, running["nll"] / running["n"],
                          running["kl"] / running["n"], beta, lr_scale)
            bar.update(1)
            bar.set_postfix(nll=f"{running['nll'] / running['n']:.2f}", kl=f"{running['kl'] / running['n']:.2f}",
                            beta=f"{beta:.2f}", lr=f"{lr_scale:.2f}")
            if budget.spent():
                stopped = "max_minutes ran out"
            elif stop is not None and stop():
                stopped = "stop() asked for it"
            if stopped:
                break
    return stopped, running, len(batches)


def _step(run: _Run, rows, lr_scale: float, beta: float) -> dict:
    """One optimiser step on the sentences ``rows``: loss = rec + beta * sum_d max(free_bits, KL_d) (+ bag of words)."""
    config, train_config = run.config, run.train_config
    batch = make_batch([run.train_ids[i] for i in rows], None if run.train_vectors is None else run.train_vectors[rows])
    for group in run.optimizer.param_groups:
        group["lr"] = train_config.learning_rate * lr_scale
    terms = run.model(batch, word_dropout=train_config.word_dropout, weight_drop=train_config.weight_drop)
    kl_per_dim = terms["kl"].mean(0)  # (L,)
    kl_term = torch.clamp(kl_per_dim, min=train_config.free_bits).sum() if config.has_latent else 0.0
    loss = terms["rec"].mean() + beta * kl_term
    if "bow" in terms:
        loss = loss + config.bow_weight * terms["bow"].mean()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), train_config.clip_grad)
    run.optimizer.step()
    if run.average is not None:
        run.average.update(run.model)
    return terms


def _end_epoch(run: _Run, budget: _Budget, epoch: int, stopped, running: dict, n_batches: int) -> None:
    """Validate, record the epoch in the history, keep the best model, write the checkpoint."""
    state, train_config = run.state, run.train_config
    if not stopped:
        state["epoch"] += 1
        state["batch"] = 0
    budget.record(state)
    free_bits = train_config.free_bits if run.config.has_latent else 0.0
    scored = run.model if run.average is None else run.average.model
    figures = _validate(scored, run.valid_ids, run.valid_vectors, train_config.batch_size * 4, free_bits)
    record = {
        "epoch": epoch + 1 if not stopped else round(epoch + state["batch"] / n_batches, 3),
        "step": state["step"],
        "train_nll": running["nll"] / max(1, running["n"]),
        "train_kl": running["kl"] / max(1, running["n"]),
        "valid_elbo": figures["elbo"],
        "valid_rec": figures["rec"],
        "valid_kl": figures["kl"],
        "valid_objective": figures["objective"],
        "minutes": round(state["wall_seconds"] / 60.0, 2),
        "cpu_minutes": round(state["cpu_seconds"] / 60.0, 2),
    }
    if run.average is not None:  # what the averaging buys, in the log and the history
        record["valid_elbo_unaveraged"] = _validate(run.model, run.valid_ids, run.valid_vectors,
                                                    train_config.batch_size * 4)["elbo"]
    state["history"].append(record)
    improved = figures["objective"] < state["best"]
    log.info("epoch %s: train nll %.2f kl %.2f | valid -elbo %.2f (rec %.2f + kl %.2f)%s [%.1f min, %.1f CPU min]",
             record["epoch"], record["train_nll"], record["train_kl"], figures["elbo"], figures["rec"], figures["kl"],
             " best" if improved else "", record["minutes"], record["cpu_minutes"])
    if run.average is not None:
        log.info("  (the weights before averaging: valid -elbo %.2f)", record["valid_elbo_unaveraged"])
    if improved:
        state["best"] = figures["objective"]
        run.best = TextVAE(_copy(scored), run.vocab, train_config=train_config, history=state["history"])
        if run.work is not None:
            _replace_dir(run.work / _BEST, run.best)
    run.best.history = list(state["history"])
    if run.work is not None:
        _save_checkpoint(run.work, run.model, run.optimizer, run.vocab, run.config, train_config, state, run.average)


@torch.no_grad()
def _validate(model, ids, vectors, batch_size, free_bits: float = 0.0) -> dict:
    """Validation figures per sentence (beta = 1, one posterior sample, fixed seed).

    ``elbo`` is the true -ELBO; ``objective`` is what training minimises at beta = 1,
    rec + sum_d max(free_bits, mean KL_d), and picks the model kept: with free bits the
    KL under the floor is not a cost the model was asked to avoid.
    """
    model.eval()
    saved = torch.get_rng_state()
    torch.manual_seed(12345)
    rec = 0.0
    kl_per_dim = None
    order = np.argsort([len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = make_batch([ids[i] for i in rows], None if vectors is None else vectors[rows])
        terms = model(batch)
        rec += float(terms["rec"].sum())
        kl_sum = terms["kl"].sum(0)
        kl_per_dim = kl_sum if kl_per_dim is None else kl_per_dim + kl_sum
    torch.set_rng_state(saved)
    model.train()
    n = max(1, len(ids))
    kl_mean = kl_per_dim / n
    kl = float(kl_mean.sum())
    floor = float(torch.clamp(kl_mean, min=free_bits).sum())
    return {"elbo": rec / n + kl, "rec": rec / n, "kl": kl, "objective": rec / n + floor}


def _sentence_vectors(config, encoder, train_texts, valid_texts, progress):
    if encoder is None:
        identity = config.sentence_model
        encoder = load_encoder(identity["name"] if identity else None)
    log.info("embedding %d sentences with %s (cached)", len(train_texts) + len(valid_texts), encoder.identity.describe())
    with EmbeddingCache() as cache:
        vectors, _ = encode_texts(encoder, list(train_texts) + list(valid_texts), cache=cache, progress=progress)
    config = config.replace(sentence_model=encoder.identity.to_dict(), sentence_dim=int(encoder.dim))
    return vectors[: len(train_texts)], vectors[len(train_texts):], config


def _start_from_token_embeddings(model: SentenceVAE, vocab: Vocabulary, sentence_model) -> None:
    """Copy a sentence-transformers model's token embeddings into the word-embedding table."""

    vectors, rows = token_embedding_init(vocab, model.config.embed_dim, sentence_model)
    with torch.no_grad():
        model.embedding.weight[torch.from_numpy(rows)] = torch.from_numpy(vectors[rows])
    log.info("word embeddings start from %s's token embeddings (%d of %d rows)", sentence_model or "all-MiniLM-L6-v2", rows.sum(), len(rows))


def _adam(model: SentenceVAE, learning_rate: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has it for the CPU (6x faster than the loop)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=learning_rate)


def _copy(model: SentenceVAE) -> SentenceVAE:
    clone = SentenceVAE(model.config)
    clone.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()})
    return clone.eval()


def _remove_work(work: Path) -> None:
    """Remove an earlier run's work folder, only if it holds nothing but a run's progress."""
    extra = sorted(p.name for p in work.iterdir() if p.name not in (_CHECKPOINT, _BEST) and ".tmp-" not in p.name)
    if extra or work.is_symlink():
        raise OutputExistsError(f"{work} holds files a training run did not write ({', '.join(extra[:3]) or 'a link'}); "
                                "move them out before starting over")
    shutil.rmtree(work)


def _replace_dir(path: Path, vae: TextVAE) -> None:
    with atomic_directory(path, overwrite=True, kind=FORMAT) as tmp:
        vae.write_into(tmp)


def _save_checkpoint(work, model, optimizer, vocab, config, train_config, state, average=None) -> None:
    import json

    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "vocab": vocab.to_json(),
        "config": json.dumps(config.to_dict()),
        "train_config": json.dumps(train_config.to_dict()),
        "state": json.dumps(state),
    }
    if average is not None:
        payload["average"] = average.model.state_dict()
    tmp = work / f".{_CHECKPOINT}.tmp-{os.getpid()}"
    try:
        torch.save(payload, tmp)
        os.replace(tmp, work / _CHECKPOINT)
    finally:
        tmp.unlink(missing_ok=True)


def _load_checkpoint(work):
    try:
        return torch.load(work / _CHECKPOINT, weights_only=True)
    except Exception as exc:  # a torn or foreign file: say so, do not guess
        raise FormatError(f"{work / _CHECKPOINT}: unreadable checkpoint ({exc}); start over with overwrite=True") from None


def _json(text):
    import json

    return json.loads(text)
