"""Turning latent codes into sentences, and moving around the latent space.

Greedy and beam decoding of z, sampling words with a temperature, linear and spherical
interpolation paths, and latent arithmetic. The functions take a :class:`SentenceVAE`
(in eval mode) and tensors; :class:`embedspace.vae.TextVAE` wraps them for texts.
"""

from __future__ import annotations

import torch

from .vocab import BOS, EOS, PAD

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
def sample_decode(model, z, *, max_length: int, temperature: float = 1.0, generator: torch.Generator | None = None, n: int | None = None) -> list[list[int]]:
    """Draw each next word from p(w | history, z) ** (1 / temperature); 0 means greedy.

    Returns
    -------
    list of N lists of word ids (without the end token)
    """
    count = z.shape[0] if z is not None else int(n)
    token = torch.full((count, 1), BOS, dtype=torch.long)
    state = None
    done = torch.zeros(count, dtype=torch.bool)
    steps = []
    for _ in range(max_length + 1):
        outputs, state = model.decoder_states(z, token, state=state)
        log_probs = model.next_log_probs(outputs[:, 0])  # (N, V)
        log_probs[:, PAD] = -float("inf")
        log_probs[:, BOS] = -float("inf")
        if temperature > 0:
            probs = torch.softmax(log_probs / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            nxt = log_probs.argmax(dim=-1)
        nxt = nxt.masked_fill(done, EOS)
        steps.append(nxt)
        done |= nxt == EOS
        if bool(done.all()):
            break
        token = nxt.unsqueeze(1)
    ids = torch.stack(steps, dim=1).tolist()
    return [row[: row.index(EOS)] if EOS in row else row[:max_length] for row in ids]


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
