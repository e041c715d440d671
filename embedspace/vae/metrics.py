"""The standard figures of a text VAE, in nats per sentence (lower is better).

- ``nll``: importance-weighted estimate of -log p(x) with K samples from q(z|x)
  (Burda et al. 2016), end token included; for a language model the exact -log p(x).
- ``elbo``: -ELBO = E_q[-log p(x|z)] + KL, the expectation averaged over the same K samples.
- ``kl``: KL(q(z|x) || p(z)), analytic.
- ``ppl``: exp(total nll / total tokens), tokens counted with the end token.
- ``active_units``: latent dimensions whose posterior mean varies across the data,
  Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016).
- ``mi``: I(x; z) under q, the estimator of He et al. (2019), with the aggregate
  posterior taken over the whole evaluation set.
- ``bleu``: corpus BLEU (sacrebleu) of the greedy decoding of the posterior mean
  against the (tokenized, as the model sees it) input.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from embedspace._progress import progress_bar
from embedspace.errors import InputError
from embedspace.vae.model import gaussian_kl, log_normal, make_batch

__all__ = ["evaluate", "mutual_information", "active_units"]


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Count dimensions of ``mu`` (n, L) whose variance over rows exceeds ``threshold``."""
    if mu.shape[0] < 2:
        return 0
    return int((np.var(mu, axis=0, ddof=1) > threshold).sum())


@torch.no_grad()
def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, *, generator=None, chunk: int = 256) -> float:
    """I(x; z) = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)] (He et al. 2019).

    Parameters
    ----------
    mu, logvar : FloatTensor of shape (n, L)
        Posterior parameters of n sentences; q(z) is their equal-weight mixture.
    """
    n, latent = mu.shape
    if n < 2 or latent == 0:
        return 0.0
    neg_entropy = (-0.5 * latent * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(-1)).mean()
    z = mu + torch.randn(mu.shape, generator=generator) * (0.5 * logvar).exp()
    log_qz = []
    for start in range(0, n, chunk):
        zc = z[start:start + chunk].unsqueeze(1)  # (c, 1, L)
        log_density = log_normal(zc, mu.unsqueeze(0), logvar.unsqueeze(0))  # (c, n)
        log_qz.append(torch.logsumexp(log_density, dim=1) - math.log(n))
    return float(neg_entropy - torch.cat(log_qz).mean())


@torch.no_grad()
def evaluate(vae, texts, *, samples: int = 500, progress: bool | None = None, seed: int = 0, rows_per_pass: int = 2048,
             refine: int = 0, restarts: int = 1) -> dict:
    """All metrics of ``vae`` on ``texts``.

    Parameters
    ----------
    vae : TextVAE
    texts : sequence of str
    samples : int, default=500
        K, importance samples per sentence for ``nll`` (and ``elbo``).
    progress : bool or None
        Progress bar over sentences.
    seed : int, default=0
    rows_per_pass : int, default=2048
        Decoder rows (sentences x samples) per forward pass.
    refine : int, default=0
        ``embedding`` encoder: also score :func:`embedspace.vae.refine.refine_decode` with
        this many rounds (keys ``bleu_refined``, ``cosine_refined``, ``refine_rounds``,
        ``refine_restarts``).
    restarts : int, default=1
        Searches per sentence when refining.

    Returns
    -------
    dict with keys nll, elbo, kl, ppl, active_units, mi, bleu (None for a language
    model), n (sentences), tokens (with end tokens), samples.
    """
    if int(samples) < 1:
        raise InputError(f"samples must be at least 1, got {samples}")
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise InputError("no sentences to evaluate")
    if refine:
        vae._need_embedding_encoder("refine=")
    vae.model.eval()
    config = vae.config
    generator = torch.Generator().manual_seed(seed)
    ids = [vae.vocab.encode(t) for t in texts]
    k = int(samples) if config.has_latent else 1
    scores = _importance_scores(vae, texts, ids, k=k, generator=generator, rows_per_pass=rows_per_pass,
                                progress=progress)
    n, tokens = len(texts), int(sum(len(x) + 1 for x in ids))
    nll, rec, kl, mus, logvars = scores
    result = {
        "nll": float(nll.mean()),
        "elbo": float((rec + kl).mean()),
        "kl": float(kl.mean()),
        "ppl": float(math.exp(nll.sum() / tokens)),
        "active_units": active_units(mus) if config.has_latent else 0,
        "mi": mutual_information(torch.from_numpy(mus), torch.from_numpy(logvars), generator=generator) if config.has_latent else 0.0,
        "bleu": None,
        "n": n,
        "tokens": tokens,
        "samples": k,
    }
    references = [vae.vocab.normalize(t) for t in texts]
    if config.has_latent:
        hypotheses = []
        for start in range(0, n, 256):
            hypotheses += vae.decode(mus[start:start + 256])
        result["bleu"] = _corpus_bleu(hypotheses, references)
    if refine:
        from embedspace.vae.refine import refine_decode

        refined, cosines = refine_decode(vae, vae.sentence_vectors(texts), rounds=int(refine), restarts=restarts,
                                         progress=progress)
        result.update(bleu_refined=_corpus_bleu(refined, references), cosine_refined=float(cosines.mean()),
                      refine_rounds=int(refine), refine_restarts=int(restarts))
    return result


def _corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


def _importance_scores(vae, texts, ids, *, k: int, generator, rows_per_pass: int, progress):
    """Per-sentence importance-sampled NLL, reconstruction term and KL, with the posteriors.

    Sentences go through in passes of about ``rows_per_pass`` decoder rows (sentences x
    ``k`` samples), shortest first so that padding stays small.

    Returns
    -------
    nll, rec, kl : ndarray of shape (n,)
    mus, logvars : ndarray of shape (n, latent_dim), float32 (latent_dim 0 for a language model)
    """
    model, config = vae.model, vae.config
    n = len(texts)
    vectors = vae.sentence_vectors(texts) if config.encoder == "embedding" else None
    order = np.argsort([len(x) for x in ids], kind="stable")
    nll, rec, kl = np.zeros(n), np.zeros(n), np.zeros(n)
    mus = np.zeros((n, config.latent_dim if config.has_latent else 0), dtype=np.float32)
    logvars = np.zeros_like(mus)
    per_pass = max(1, rows_per_pass // k)
    bar = progress_bar(n, "evaluating", progress=progress, unit="sent")
    for start in range(0, n, per_pass):
        rows = order[start:start + per_pass]
        batch = make_batch([ids[i] for i in rows], None if vectors is None else vectors[rows])
        if not config.has_latent:
            nll[rows] = rec[rows] = -model.log_likelihood(None, batch).numpy()
        else:
            mu, logvar = model.encode(batch)  # (b, L)
            mus[rows], logvars[rows] = mu.numpy(), logvar.numpy()
            kl[rows] = gaussian_kl(mu, logvar).sum(-1).numpy()
            mu_k, logvar_k = mu.repeat_interleave(k, 0), logvar.repeat_interleave(k, 0)
            z = mu_k + torch.randn(mu_k.shape, generator=generator) * (0.5 * logvar_k).exp()
            log_px_z = model.log_likelihood(z, batch.repeat(k)).view(-1, k)  # (b, K)
            log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).view(-1, k)
            log_qz = log_normal(z, mu_k, logvar_k).view(-1, k)
            log_w = log_px_z + log_pz - log_qz
            nll[rows] = -(torch.logsumexp(log_w, dim=1) - math.log(k)).numpy()
            rec[rows] = -log_px_z.mean(dim=1).numpy()
        bar.update(len(rows))
    bar.close()
    return nll, rec, kl, mus, logvars
