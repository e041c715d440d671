"""Decode a point of the semantic space by searching for a sentence that embeds near it.

An ``embedding``-encoder VAE decodes a sentence vector in one greedy pass, and that
sentence's own embedding is often far from the vector it came from (see
``scripts/BENCHMARKS.md``, section bench_vae_refine.py). Because the sentence encoder is at hand, the decoder's guess can be checked and
improved, as vec2text (Morris et al. 2023) does with a trained corrector. Here the search
needs no training:

1. a pool of candidates: the greedy and beam decodes of the posterior mean and a few
   sampled ones; then two *corrections* that decode ``t + a (t - e)``, the target ``t``
   pushed away from the best candidate's embedding ``e``;
2. ``rounds`` of local search around the best sentence so far. The edits proposed are the
   decoder's likeliest word substitutions and insertions (each also continued greedily to
   the end of the sentence), the words whose own vectors best explain the missing part
   ``t - e`` placed where the decoder likes them best, and the deletion of the words that
   most pull ``e`` away from ``t``, and greedy decodes in which each word of the best
   sentence earns a bonus (the found words in an order the decoder likes). Every candidate
   is embedded, and the best replaces the current sentence when it scores higher.

A candidate's score is its cosine with the target plus ``fluency`` times its mean log
probability per word under the decoder given the target's z, which keeps the search from
drifting to word salad that happens to embed well.

Cost: about 80 sentence embeddings per sentence per round. At the defaults (5 rounds) it
raises BLEU and the cosine to the target well above one greedy pass on PTB test, at a few
seconds per sentence on 2 cores (measured by ``scripts/bench_vae_refine.py``; figures in
``scripts/BENCHMARKS.md``, section bench_vae_refine.py).
"""

from __future__ import annotations

import numpy as np
import torch

from embedspace._progress import progress_bar
from embedspace.errors import InputError
from embedspace.vae.sampling import beam_decode, greedy_decode, sample_decode
from embedspace.vae.vocab import BOS, EOS, PAD, SPECIALS

__all__ = ["refine_decode"]

FREQUENT = 50  # the commonest words are never proposed from the residual: they explain little
_CHUNK = 2048  # decoder rows per pass
_BLOCK = 256  # sentences whose edits are proposed together
BAG_BONUSES = (1.5, 3.0)  # log-probability bonus per found word in the bag decodes


def refine_decode(vae, targets, *, rounds: int = 5, restarts: int = 1, fluency: float = 0.02, proposals: int = 12,
                  words: int = 8, seed: int = 0, progress: bool | None = None) -> tuple[list[str], np.ndarray]:
    """Sentences whose embeddings lie near ``targets``.

    Parameters
    ----------
    vae : TextVAE
        Trained with the ``embedding`` encoder.
    targets : array-like of shape (n, sentence_dim)
        Points of the sentence model's space (unit length when the model normalises).
    rounds : int, default=5
        Rounds of local search after the candidate pool; 0 keeps the best of the pool.
    restarts : int, default=1
        Searches per target, each starting from a different one of the pool's best
        distinct candidates; the best-scoring result is kept. Costs ``restarts`` times as
        much. Restarts raise BLEU where more rounds of one search stay level
        (``scripts/bench_vae_refine.py --restarts 3``; see ``scripts/BENCHMARKS.md``).
    fluency : float, default=0.02
        Weight of the decoder's mean log probability per word in the score.
    proposals : int, default=12
        Decoder edits tried per sentence and round (each as substitution, insertion and
        continuation).
    words : int, default=8
        Words proposed per sentence and round from the residual ``t - e``.
    seed : int, default=0
        For the sampled candidates.
    progress : bool, optional
        Draw a progress bar (default: when stderr is a terminal).

    Returns
    -------
    sentences : list of n str
    cosines : ndarray of shape (n,)
        Cosine of each sentence's embedding with its target.

    Raises
    ------
    InputError
        If there are no targets, they have the wrong size, ``rounds``, ``proposals`` or
        ``words`` is negative, or the VAE reads tokens (encoder ``gru``).
    """
    targets = np.atleast_2d(np.asarray(targets, dtype=np.float32))
    if len(targets) == 0:
        raise InputError("no points to decode")
    for name, value in (("refine rounds", rounds), ("proposals", proposals), ("words", words)):
        if int(value) < 0:
            raise InputError(f"{name} must be >= 0, got {value}")
    if int(restarts) < 1:
        raise InputError(f"restarts must be >= 1, got {restarts}")
    search = _Search(vae, targets, fluency, int(restarts))
    with progress_bar(rounds + 1, "refining", progress=progress, unit="round") as bar:
        search.start(seed)
        bar.update(1)
        for _ in range(int(rounds)):
            search.step(proposals, words)
            bar.set_postfix(cos=f"{search.result()[1].mean():.3f}")
            bar.update(1)
    sentences, cosines = search.result()
    return [vae.vocab.decode(ids) for ids in sentences], cosines


class _Search:
    """The state of a refinement: best sentence, its embedding and score, per search.

    With ``restarts`` searches per target, search ``r * n + i`` belongs to target ``i``
    (of ``n``); searches ``0 .. n - 1`` are the ones a single search would run.
    """

    def __init__(self, vae, targets: np.ndarray, fluency: float, restarts: int = 1):
        self.vae, self.model = vae, vae.model
        self.encoder = vae.sentence_encoder()
        norms = np.linalg.norm(targets, axis=1, keepdims=True)
        self.n, self.restarts = len(targets), restarts
        self.targets = np.tile(targets / norms.clip(1e-12), (restarts, 1))
        self.fluency = float(fluency)
        self.max_length = vae.config.max_length
        self.z = torch.from_numpy(vae.encode_embeddings(targets)).repeat(restarts, 1)
        self.word_vectors = vae.word_vectors()  # (V, D), rows of the specials are zero
        self.pool = None  # while start() runs: every candidate scored, (row, ids, vector, score)

    # --- scoring ----------------------------------------------------------------------
    def embed(self, id_lists) -> np.ndarray:
        texts = [self.vae.vocab.decode(ids) or "." for ids in id_lists]
        vectors = np.asarray(self.encoder.encode(texts, progress=False), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)

    @torch.no_grad()
    def log_prob_per_word(self, rows: np.ndarray, id_lists) -> np.ndarray:
        """Mean log p(w | history, z) over each sentence's words and end token."""
        out = []
        for a in range(0, len(id_lists), _CHUNK):
            seqs = id_lists[a:a + _CHUNK]
            inputs, targets = _padded([[BOS] + s for s in seqs]), _padded([s + [EOS] for s in seqs])
            states, _ = self.model.decoder_states(self.z[rows[a:a + _CHUNK]], inputs)
            total = self.model.target_log_probs(states, targets).sum(1)
            out.append((total / torch.tensor([len(s) + 1.0 for s in seqs])).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, rows: np.ndarray, id_lists):
        vectors = self.embed(id_lists)
        scores = (vectors * self.targets[rows]).sum(1)
        if self.fluency:
            scores = scores + self.fluency * self.log_prob_per_word(rows, id_lists)
        return vectors, scores

    def offer(self, rows, id_lists) -> None:
        """Score candidates (one row index each) and keep each row's best if it beats the current."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return
        vectors, scores = self.score(rows, id_lists)
        if self.pool is not None:
            self.pool += zip(rows.tolist(), id_lists, vectors, scores)
        for k in np.argsort(-scores, kind="stable"):
            i = rows[k]
            if scores[k] > self.scores[i] + 1e-6:
                self.best[i], self.vectors[i], self.scores[i] = list(id_lists[k]), vectors[k], scores[k]

    def result(self) -> tuple[list[list[int]], np.ndarray]:
        """Each target's best sentence over its searches, and that sentence's cosine."""
        cosines = (self.vectors * self.targets).sum(1).reshape(self.restarts, self.n)
        winner = np.asarray(self.scores).reshape(self.restarts, self.n).argmax(0)
        rows = winner * self.n + np.arange(self.n)
        return [self.best[r] for r in rows], cosines[winner, np.arange(self.n)]

    # --- the search -------------------------------------------------------------------
    @torch.no_grad()
    def start(self, seed: int) -> None:
        """The candidate pool, then the two corrections in the sentence space.

        The first search of each target starts from the pool's best candidate, restart
        ``r`` from the next best distinct one (or the best again when the pool runs short).
        """
        n, limit, z, targets = self.n, self.max_length, self.z[: self.n], self.targets[: self.n]
        pools = [greedy_decode(self.model, z, max_length=limit), beam_decode(self.model, z, beam_size=5, max_length=limit)]
        generator = torch.Generator().manual_seed(int(seed))
        pools += [sample_decode(self.model, z, max_length=limit, temperature=0.6, generator=generator) for _ in range(4)]
        self.best = list(pools[0])
        self.vectors, self.scores = self.score(np.arange(n), self.best)
        self.pool = list(zip(range(n), self.best, self.vectors, self.scores))
        for pool in pools[1:]:
            self.offer(np.arange(n), pool)
        for push in (1.0, 2.0):
            moved = targets + push * (targets - self.vectors)
            moved /= np.linalg.norm(moved, axis=1, keepdims=True).clip(1e-12)
            z_moved = torch.from_numpy(self.vae.encode_embeddings(moved))
            self.offer(np.arange(n), greedy_decode(self.model, z_moved, max_length=limit))
        starts = [[(self.best[i], self.vectors[i], self.scores[i])] for i in range(n)]
        for i, ids, vector, score in sorted(self.pool, key=lambda entry: -entry[3]):
            if len(starts[i]) < self.restarts and all(ids != kept[0] for kept in starts[i]):
                starts[i].append((ids, vector, score))
        self.pool = None
        seeds = [starts[i][r] if r < len(starts[i]) else starts[i][0] for r in range(self.restarts) for i in range(n)]
        self.best = [list(ids) for ids, _, _ in seeds]
        self.vectors = np.stack([vector for _, vector, _ in seeds])
        self.scores = np.array([score for _, _, score in seeds])

    @torch.no_grad()
    def step(self, proposals: int, words: int) -> None:
        rows, candidates, branches = [], [], []
        for first in range(0, len(self.best), _BLOCK):
            block = np.arange(first, min(first + _BLOCK, len(self.best)))
            states = self.decoder_states(block, [self.best[i] for i in block])
            for k, i in enumerate(block.tolist()):
                sentence = self.best[i]
                log_probs = self.model.next_log_probs(states[k, : len(sentence) + 1])  # (T, V)
                log_probs[:, PAD] = log_probs[:, BOS] = -1e9
                edits, branch = self.edits(i, sentence, log_probs, proposals, words)
                rows += [i] * len(edits)
                candidates += edits
                branches += [(i, prefix) for prefix in branch]
        if branches:
            finished = self.complete(np.array([i for i, _ in branches]), [p for _, p in branches])
            rows += [i for i, _ in branches]
            candidates += finished
        for bonus in BAG_BONUSES:
            rows += list(range(len(self.best)))
            candidates += self.bag_decode(bonus)
        keep = [k for k, c in enumerate(candidates) if 0 < len(c) <= self.max_length]
        self.offer([rows[k] for k in keep], [candidates[k] for k in keep])

    def edits(self, i: int, sentence: list[int], log_probs: torch.Tensor, proposals: int, words: int):
        """Candidate sentences for row ``i``, and prefixes to continue greedily."""
        current = torch.tensor(sentence + [EOS])
        held = log_probs.gather(1, current[:, None]).squeeze(1)  # (T,)
        top = log_probs.topk(4, dim=-1)
        ranked = sorted(
            ((value - held[j].item(), j, w) for j in range(len(current))
             for w, value in zip(top.indices[j].tolist(), top.values[j].tolist()) if w != current[j].item()),
            reverse=True,
        )
        edits, branch = [], []
        for _, j, w in ranked[:proposals]:
            if w == EOS:
                edits.append(sentence[:j])
                continue
            edits += [sentence[:j] + [w] + sentence[j + 1:], sentence[:j] + [w] + sentence[j:]]
            branch.append(sentence[:j] + [w])
        residual = self.targets[i] - self.vectors[i]
        fit = self.word_vectors @ residual
        fit[: len(SPECIALS) + FREQUENT] = -np.inf
        present = set(sentence)
        for w in [int(w) for w in np.argsort(-fit)[: words * 3] if int(w) not in present][:words]:
            column = log_probs[:, w]
            edits += [sentence[:j] + [w] + sentence[j:] for j in column.topk(min(2, len(column))).indices.tolist()]
            edits += [sentence[:j] + [w] + sentence[j + 1:] for j in (column - held).topk(min(2, len(column))).indices.tolist()
                      if j < len(sentence)]
            branch.append(sentence[: int(column.argmax())] + [w])
        if len(sentence) > 1:
            pull = self.word_vectors[sentence] @ (self.vectors[i] - self.targets[i])
            edits += [sentence[:j] + sentence[j + 1:] for j in np.argsort(-pull)[:4]]
        return edits, branch

    @torch.no_grad()
    def bag_decode(self, bonus: float) -> list[list[int]]:
        """Greedy decodes of z where each word of the current best sentence earns ``bonus`` once.

        Puts the words the search found back into an order the decoder finds fluent.
        """
        out = []
        for first in range(0, len(self.best), _BLOCK):
            rows = np.arange(first, min(first + _BLOCK, len(self.best)))
            owed = torch.zeros(len(rows), len(self.vae.vocab))
            for k, i in enumerate(rows.tolist()):
                owed[k, [w for w in self.best[i] if w >= len(SPECIALS) + FREQUENT]] = bonus
            out += sample_decode(self.model, self.z[rows], max_length=self.max_length, temperature=0.0, bonus=owed)
        return out

    @torch.no_grad()
    def decoder_states(self, rows: np.ndarray, id_lists) -> torch.Tensor:
        """Decoder outputs after ``<s>`` and each word, shape (n, T, H), for rows' z."""
        states, _ = self.model.decoder_states(self.z[rows], _padded([[BOS] + s for s in id_lists]))
        return states

    def complete(self, rows: np.ndarray, prefixes) -> list[list[int]]:
        """Continue each prefix greedily to the end token (or the length limit)."""
        out = []
        for a in range(0, len(prefixes), _CHUNK):
            out += sample_decode(self.model, self.z[rows[a:a + _CHUNK]], max_length=self.max_length, temperature=0.0,
                                 prefixes=prefixes[a:a + _CHUNK])
        return out


def _padded(id_lists) -> torch.Tensor:
    width = max(len(s) for s in id_lists)
    batch = torch.full((len(id_lists), width), PAD, dtype=torch.long)
    for k, s in enumerate(id_lists):
        batch[k, : len(s)] = torch.tensor(s, dtype=torch.long)
    return batch
