"""The sentence VAE network: an encoder to q(z|x) and a GRU decoder p(x|z).

Two encoders (``VAEConfig.encoder``):

- ``gru`` — a bidirectional GRU over the word embeddings; its two final states give
  (mu, log sigma^2) (Bowman et al. 2016);
- ``embedding`` — a precomputed, frozen sentence embedding (the toolkit's own encoder)
  through a small MLP, so any point of the semantic space can be mapped to q(z|x).

The decoder is a GRU conditioned on z twice: z sets its initial state and is appended
to every input embedding, which keeps z useful to the decoder (fights posterior
collapse). ``encoder="none"`` drops z: the same decoder is then a plain language model.
The output layer is a full softmax, or an adaptive softmax for large vocabularies (exact
normalised probabilities, much cheaper on a CPU).

Shapes: ``B`` sentences, ``T`` decoder steps, ``E`` embedding, ``H`` decoder state,
``L`` latent size, ``V`` vocabulary, ``S`` sentence-embedding size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from embedspace.vae.config import VAEConfig
from embedspace.vae.recurrence import bidirectional_final_states, gru_layer
from embedspace.vae.vocab import BOS, EOS, PAD, UNK

__all__ = ["SentenceVAE", "LockedDropout", "Batch", "make_batch", "gaussian_kl", "log_normal"]

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class Batch:
    """Padded token ids of B sentences.

    Attributes
    ----------
    inputs : LongTensor of shape (B, T)
        ``<s> w1 ... wn <pad>...`` (decoder inputs).
    targets : LongTensor of shape (B, T)
        ``w1 ... wn </s> <pad>...`` (what the decoder predicts; also the GRU encoder's input).
    lengths : LongTensor of shape (B,)
        n + 1 (words plus the end token) per sentence.
    vectors : FloatTensor of shape (B, S) or None
        Sentence embeddings, for the ``embedding`` encoder.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    vectors: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor:
        """BoolTensor of shape (B, T): True on real target tokens."""
        return self.targets != PAD

    def repeat(self, k: int) -> "Batch":
        """Each sentence ``k`` times in a row (for importance sampling): B -> B*k rows."""
        rep = lambda t: None if t is None else t.repeat_interleave(k, dim=0)  # noqa: E731
        return Batch(rep(self.inputs), rep(self.targets), rep(self.lengths), rep(self.vectors))


def make_batch(id_lists, vectors=None) -> Batch:
    """Pad lists of word ids (without start/end ids) into a :class:`Batch`.

    Parameters
    ----------
    id_lists : list of list of int, length B
    vectors : array-like of shape (B, S), optional
    """
    n = len(id_lists)
    width = max(len(ids) for ids in id_lists) + 1
    inputs = torch.full((n, width), PAD, dtype=torch.long)
    targets = torch.full((n, width), PAD, dtype=torch.long)
    for row, ids in enumerate(id_lists):
        ids = torch.as_tensor(list(ids), dtype=torch.long)
        inputs[row, 0] = BOS
        inputs[row, 1:len(ids) + 1] = ids
        targets[row, :len(ids)] = ids
        targets[row, len(ids)] = EOS
    lengths = torch.tensor([len(ids) + 1 for ids in id_lists], dtype=torch.long)
    if vectors is not None:
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
    return Batch(inputs, targets, lengths, vectors)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per dimension, shape of ``mu``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + _LOG_2PI).sum(-1)


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all its time steps (Gal & Ghahramani 2016).

    Input of shape (B, T, F): the mask has shape (B, 1, F). Identity outside training.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:  # p = 1 would divide by zero; nn.Dropout refuses p outside [0, 1] too
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(keep).div_(keep)
        return x * mask


class SentenceVAE(nn.Module):
    """Sentence VAE (or, with ``encoder="none"``, a GRU language model).

    Parameters
    ----------
    config : VAEConfig
        ``vocab_size`` must be set.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c = config
        latent = c.latent_dim if c.has_latent else 0
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        if c.encoder == "gru":
            self.encoder_rnn = nn.GRU(c.embed_dim, c.encoder_hidden_dim, batch_first=True, bidirectional=True)
        elif c.encoder == "embedding":
            width = 2 * c.encoder_hidden_dim
            self.encoder_mlp = nn.Sequential(nn.Linear(c.sentence_dim, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh())
        if c.has_latent:
            self.posterior = nn.Linear(2 * c.encoder_hidden_dim, 2 * latent)
            self.latent_to_hidden = nn.Linear(latent, c.hidden_dim)
            if c.bow_weight > 0:
                self.bag_of_words = nn.Linear(latent, c.vocab_size)
        self.decoder_rnn = nn.GRU(c.embed_dim + latent, c.hidden_dim, batch_first=True)
        self.dropout = LockedDropout(c.dropout) if c.locked_dropout else nn.Dropout(c.dropout)
        if c.softmax_cutoffs:
            self.output = nn.AdaptiveLogSoftmaxWithLoss(c.hidden_dim, c.vocab_size, cutoffs=list(c.softmax_cutoffs), div_value=4.0)
        else:
            self.output = nn.Linear(c.hidden_dim, c.vocab_size)

    # --- q(z|x) ---------------------------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters.

        Returns
        -------
        mu, logvar : FloatTensor of shape (B, L)
        """
        if self.config.encoder == "gru":
            embedded = self.dropout(self.embedding(batch.targets))  # (B, T, E)
            if torch.is_grad_enabled():  # training: one autograd node for the recurrence
                final = bidirectional_final_states(self.encoder_rnn, embedded, batch.lengths)  # (2, B, He)
            else:
                packed = pack_padded_sequence(embedded, batch.lengths.cpu(), batch_first=True, enforce_sorted=False)
                _, final = self.encoder_rnn(packed)
            features = torch.cat([final[0], final[1]], dim=-1)
        elif self.config.encoder == "embedding":
            if batch.vectors is None:
                raise ValueError("the embedding encoder needs sentence vectors in the batch")
            features = self.encoder_mlp(batch.vectors)
        else:
            raise ValueError("a language model (encoder='none') has no posterior")
        mu, logvar = self.posterior(features).chunk(2, dim=-1)
        return mu, logvar.clamp(-20.0, 10.0)

    # --- p(x|z) ---------------------------------------------------------------------------
    def initial_state(self, z: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """Decoder state at step 0, shape (1, B, H)."""
        if z is None or not self.config.has_latent:
            return torch.zeros(1, batch_size, self.config.hidden_dim)
        return torch.tanh(self.latent_to_hidden(z)).unsqueeze(0)

    def decoder_states(self, z, inputs: torch.Tensor, *, word_dropout: float = 0.0, weight_drop: float = 0.0, state=None):
        """Run the decoder GRU over ``inputs``.

        Parameters
        ----------
        z : FloatTensor of shape (B, L) or None
        inputs : LongTensor of shape (B, T)
        word_dropout : float, default=0
            In training, the probability of replacing an input word (not ``<s>``) by ``<unk>``.
        weight_drop : float, default=0
            In training, DropConnect on the decoder's recurrent weights (see :func:`gru_layer`).
        state : FloatTensor of shape (1, B, H), optional
            Continue from this state instead of the one z gives.

        Returns
        -------
        outputs : FloatTensor of shape (B, T, H)
        state : FloatTensor of shape (1, B, H)
        """
        if word_dropout > 0 and self.training:
            drop = (torch.rand(inputs.shape) < word_dropout) & (inputs != PAD) & (inputs != BOS)
            inputs = inputs.masked_fill(drop, UNK)
        embedded = self.dropout(self.embedding(inputs))  # (B, T, E)
        if z is not None and self.config.has_latent:
            embedded = torch.cat([embedded, z.unsqueeze(1).expand(-1, inputs.shape[1], -1)], dim=-1)
        if state is None:
            state = self.initial_state(z, inputs.shape[0])
        if torch.is_grad_enabled():
            outputs = gru_layer(self.decoder_rnn, embedded, state, weight_drop=weight_drop if self.training else 0.0)
            state = outputs[:, -1].unsqueeze(0)
        else:
            outputs, state = self.decoder_rnn(embedded, state)
        return self.dropout(outputs), state

    def target_log_probs(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target | history) for each position.

        Parameters
        ----------
        outputs : FloatTensor of shape (B, T, H)
        targets : LongTensor of shape (B, T)

        Returns
        -------
        FloatTensor of shape (B, T), 0 where the target is ``<pad>``.
        """
        mask = targets != PAD
        flat = outputs[mask]  # (N, H)
        wanted = targets[mask]
        if isinstance(self.output, nn.AdaptiveLogSoftmaxWithLoss):
            picked = self.output(flat, wanted).output
        else:
            picked = torch.log_softmax(self.output(flat), dim=-1).gather(1, wanted.unsqueeze(1)).squeeze(1)
        result = outputs.new_zeros(targets.shape)
        result[mask] = picked
        return result

    def next_log_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Full distribution over the vocabulary: (N, H) -> (N, V) log-probabilities."""
        if isinstance(self.output, nn.AdaptiveLogSoftmaxWithLoss):
            return self.output.log_prob(outputs)
        return torch.log_softmax(self.output(outputs), dim=-1)

    def log_likelihood(self, z, batch: Batch, *, word_dropout: float = 0.0, weight_drop: float = 0.0) -> torch.Tensor:
        """log p(x | z) per sentence (end token included), shape (B,)."""
        outputs, _ = self.decoder_states(z, batch.inputs, word_dropout=word_dropout, weight_drop=weight_drop)
        return self.target_log_probs(outputs, batch.targets).sum(dim=1)

    def logits(self, z, batch: Batch) -> torch.Tensor:
        """Log-probabilities of every word at every step, shape (B, T, V) (for tests and tools)."""
        outputs, _ = self.decoder_states(z, batch.inputs)
        return self.next_log_probs(outputs.reshape(-1, outputs.shape[-1])).reshape(*batch.inputs.shape, -1)

    # --- the training objective -----------------------------------------------------------
    def forward(self, batch: Batch, *, word_dropout: float = 0.0, weight_drop: float = 0.0, sample: bool = True) -> dict:
        """One-sample ELBO terms (``word_dropout`` and ``weight_drop`` act in training only).

        Returns
        -------
        dict with
            ``rec`` : (B,) reconstruction NLL, -log p(x|z) with z ~ q(z|x) (or z = mu);
            ``kl`` : (B, L) KL(q(z|x) || p(z)) per dimension (empty for a language model);
            ``mu``, ``logvar`` : (B, L);
            ``bow`` : (B,) in training with ``config.bow_weight > 0``: -sum of log p(w | z)
            over the sentence's words under the bag-of-words head.
        """
        if not self.config.has_latent:
            rec = -self.log_likelihood(None, batch, word_dropout=word_dropout, weight_drop=weight_drop)
            empty = rec.new_zeros(rec.shape[0], 0)
            return {"rec": rec, "kl": empty, "mu": empty, "logvar": empty}
        mu, logvar = self.encode(batch)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        rec = -self.log_likelihood(z, batch, word_dropout=word_dropout, weight_drop=weight_drop)
        terms = {"rec": rec, "kl": gaussian_kl(mu, logvar), "mu": mu, "logvar": logvar}
        if self.training and self.config.bow_weight > 0:
            words = batch.mask & (batch.targets != EOS)  # (B, T)
            log_probs = torch.log_softmax(self.bag_of_words(z), dim=-1).gather(1, batch.targets)  # (B, T)
            terms["bow"] = -(log_probs * words).sum(1)
        return terms
