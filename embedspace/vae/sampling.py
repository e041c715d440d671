"""Turning latent codes into sentences, and moving around the latent space.

Greedy and beam decoding of z, sampling words with a temperature, linear and spherical
interpolation paths, and latent arithmetic. The functions take a :class:`SentenceVAE`
(in eval mode) and tensors; :class:`embedspace.vae.TextVAE` wraps them for texts.
"""

from __future__ import annotations

import torch

from embedspace.vae.vocab import BOS, EOS, PAD

__all__ = ["greedy_decode", "sample_decode", "beam_decode", "interpolation_path", "slerp"]


@torch.no_grad()
def greedy_decode(model, z: torch.Tensor | None, *, max_length: int, n: int | None = None) -> list[list[int]]:
    """Most likely next word at every step.

    Parameters
    ----------
    model : SentenceVAE
    z : FloatTensor of shape (N, L), or None for a language model (then give ``n``)
    max_length : int
        Words generated at most per sentence.

    Returns
    -------
    list of N lists of word ids (without the end token)
    """
    return sample_decode(model, z, max_length=max_length, temperature=0.0, n=n)


@torch.no_grad()
def sample_decode(model, z, *, max_length: int, temperature: float = 1.0, generator: torch.Generator | None = None, n: int | None = None,
                  prefixes: list[list[int]] | None = None, bonus: torch.Tensor | None = None) -> list[list[int]]:
    """Draw each next word from p(w | history, z) ** (1 / temperature); 0 means greedy.

    Parameters
    ----------
    prefixes : list of N lists of word ids, optional
        Continue these sentences instead of starting each from ``<s>``; every result
        begins with its prefix.
    bonus : FloatTensor of shape (N, V), optional
        Added to the log-probabilities; a word's bonus is spent once the word is chosen
        (the tensor is changed in place).

    Returns
    -------
    list of N lists of word ids (without the end token), at most ``max_length`` long
    """
    count = z.shape[0] if z is not None else int(n)
    token, state = torch.full((count, 1), BOS, dtype=torch.long), None
    if prefixes is not None and any(prefixes):
        token, state = _after_prefixes(model, z, prefixes)
    done = torch.zeros(count, dtype=torch.bool)
    steps = []
    for _ in range(max_length + 1):
        outputs, state = model.decoder_states(z, token, state=state)
        log_probs = model.next_log_probs(outputs[:, 0])  # (N, V)
        if bonus is not None:
            log_probs += bonus
        log_probs[:, PAD] = -float("inf")
        log_probs[:, BOS] = -float("inf")
        if temperature > 0:
            probs = torch.softmax(log_probs / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            nxt = log_probs.argmax(dim=-1)
        nxt = nxt.masked_fill(done, EOS)
        if bonus is not None:
            bonus[torch.arange(count), nxt] = 0.0
        steps.append(nxt)
        done |= nxt == EOS
        if bool(done.all()):
            break
        token = nxt.unsqueeze(1)
    ids = torch.stack(steps, dim=1).tolist()
    rows = [row[: row.index(EOS)] if EOS in row else row for row in ids]
    if prefixes is not None:
        rows = [list(p) + row for p, row in zip(prefixes, rows)]
    return [row[:max_length] for row in rows]


def _after_prefixes(model, z, prefixes):
    """The last input token of each ``<s>`` + prefix, and the decoder state before it, shape (1, N, H)."""
    histories = [[BOS] + list(p) for p in prefixes]
    width = max(len(h) for h in histories)
    inputs = torch.full((len(histories), width), PAD, dtype=torch.long)
    for k, h in enumerate(histories):
        inputs[k, : len(h)] = torch.tensor(h, dtype=torch.long)
    outputs, _ = model.decoder_states(z, inputs)  # (N, T, H); row k after its first t + 1 tokens at t
    before = model.initial_state(z, len(histories))[0].clone()  # (N, H): the state before <s>
    lengths = torch.tensor([len(h) for h in histories])
    has_prefix = lengths > 1
    before[has_prefix] = outputs[has_prefix, lengths[has_prefix] - 2]
    token = inputs[torch.arange(len(histories)), lengths - 1].unsqueeze(1)
    return token, before.unsqueeze(0).contiguous()


@torch.no_grad()
def beam_decode(model, z: torch.Tensor, *, beam_size: int = 5, max_length: int) -> list[list[int]]:
    """Beam search for the most likely sentence given each z (length-normalised score).

    Parameters
    ----------
    z : FloatTensor of shape (N, L)
    beam_size : int, default=5

    Returns
    -------
    list of N lists of word ids
    """
    results = []
    for row in range(z.shape[0]):
        zk = z[row:row + 1].expand(beam_size, -1)
        beams = [([], 0.0)]
        state = model.initial_state(z[row:row + 1], 1)
        states = state
        finished = []
        for _ in range(max_length + 1):
            last = torch.tensor([[b[0][-1] if b[0] else BOS] for b in beams], dtype=torch.long)
            outputs, new_states = model.decoder_states(zk[: len(beams)], last, state=states)
            log_probs = model.next_log_probs(outputs[:, 0])
            log_probs[:, PAD] = -float("inf")
            log_probs[:, BOS] = -float("inf")
            scores = torch.tensor([b[1] for b in beams]).unsqueeze(1) + log_probs  # (beams, V)
            top = scores.flatten().topk(min(beam_size * 2, scores.numel()))
            candidates = []
            vocab_size = log_probs.shape[1]
            for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                source, word = divmod(flat, vocab_size)
                if word == EOS:
                    finished.append((beams[source][0], score / (len(beams[source][0]) + 1)))
                else:
                    candidates.append((source, beams[source][0] + [word], score))
                if len(candidates) == beam_size:
                    break
            if not candidates or (len(finished) >= beam_size and max(f[1] for f in finished) >= max(c[2] / (len(c[1]) + 1) for c in candidates)):
                break
            index = torch.tensor([c[0] for c in candidates])
            states = new_states[:, index]
            beams = [(c[1], c[2]) for c in candidates]
        if not finished:
            finished = [(b[0], b[1] / (len(b[0]) + 1)) for b in beams]
        results.append(max(finished, key=lambda f: f[1])[0])
    return results


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between two vectors (linear when they are parallel)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolation_path(za: torch.Tensor, zb: torch.Tensor, *, steps: int, method: str = "linear") -> torch.Tensor:
    """``steps + 2`` points from ``za`` to ``zb`` inclusive, shape (steps + 2, L)."""
    ts = torch.linspace(0.0, 1.0, steps + 2)
    if method == "linear":
        return torch.stack([(1 - t) * za + t * zb for t in ts])
    return torch.stack([slerp(za, zb, float(t)) for t in ts])
