"""A trained text VAE with its vocabulary and settings: save, load, and use it on texts.

On disk a VAE is a directory in the ``embedspace.vae`` format::

    manifest.json         format, version, model and training settings, history, checksums
    weights.safetensors   the network's state_dict (no pickle)
    vocab.json            the vocabulary

written atomically (a temporary sibling renamed into place) and verified on load.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from embedspace._fs import atomic_directory
from embedspace.embeddingset import ModelIdentity
from embedspace.encoding import EmbeddingCache, encode_texts, load_encoder
from embedspace.errors import FormatError, InputError, ModelMismatchError
from embedspace.store import library_versions, read_consistently, read_manifest, write_manifest
from embedspace.vae.config import TrainConfig, VAEConfig
from embedspace.vae.model import Batch, SentenceVAE, make_batch
from embedspace.vae.sampling import beam_decode, greedy_decode, interpolation_path, sample_decode
from embedspace.vae.vocab import SPECIALS, UNK, Vocabulary

log = logging.getLogger("embedspace")

__all__ = ["TextVAE", "FORMAT", "FORMAT_VERSION"]

_MAX_LENGTH = 10_000

FORMAT = "embedspace.vae"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
VOCAB = "vocab.json"


class TextVAE:
    """A sentence VAE ready for use: reconstruct, sample, interpolate, evaluate.

    Parameters
    ----------
    model : SentenceVAE
    vocab : Vocabulary
    train_config : TrainConfig, optional
        How it was trained (saved with it).
    history : list of dict, optional
        Per-epoch training and validation figures.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> vae = es.vae.load("captions.vae")  # doctest: +SKIP
    >>> vae.interpolate("a man is playing a guitar.", "a dog runs on the beach.", steps=3)  # doctest: +SKIP
    """

    def __init__(self, model: SentenceVAE, vocab: Vocabulary, *, train_config: TrainConfig | None = None, history=None):
        self.model = model.eval()
        self.vocab = vocab
        self.train_config = train_config or TrainConfig()
        self.history = list(history or [])
        self._sentence_encoder = None
        self._word_vectors = None

    @property
    def config(self) -> VAEConfig:
        """The architecture settings."""
        return self.model.config

    def __repr__(self) -> str:
        c = self.config
        return f"TextVAE<encoder={c.encoder}, latent={c.latent_dim}, hidden={c.hidden_dim}, vocab={len(self.vocab)}>"

    # --- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the VAE directory atomically; return its path."""
        with atomic_directory(path, overwrite=overwrite, kind=FORMAT) as tmp:
            self.write_into(tmp)
        return Path(path)

    def write_into(self, directory: Path) -> None:
        """Write payloads and manifest into an existing (temporary) directory."""
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
        try:
            save_file(state, str(Path(directory) / WEIGHTS))
        except SafetensorError as exc:  # e.g. a full disk: an I/O failure, not a bug
            raise OSError(f"cannot write {WEIGHTS}: {exc}") from None
        (Path(directory) / VOCAB).write_text(self.vocab.to_json(), encoding="utf-8")
        fields = {
            "model_config": self.config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "history": self.history,
            "library_versions": library_versions("torch", "safetensors"),
        }
        write_manifest(directory, FORMAT, FORMAT_VERSION, fields, files=[WEIGHTS, VOCAB])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TextVAE":
        """Read a VAE directory written by :meth:`save`.

        Raises
        ------
        InputError
            If ``path`` does not exist.
        FormatError
            If it is not a VAE directory, was written by a newer embedspace, or is corrupt.
        """
        directory = Path(path)
        return read_consistently(directory, lambda snapshot: cls._load(directory))

    @classmethod
    def _load(cls, directory: Path) -> "TextVAE":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        manifest = read_manifest(directory, FORMAT, FORMAT_VERSION, required=(WEIGHTS, VOCAB))
        config = VAEConfig.from_dict(manifest.get("model_config"))
        try:
            config.validate()
        except InputError as exc:
            raise FormatError(f"{directory}: invalid model settings ({exc})") from None
        if config.max_length > _MAX_LENGTH:
            raise FormatError(f"{directory}: max_length {config.max_length} is beyond any sentence ({_MAX_LENGTH} tokens at most)")
        train_config = TrainConfig.from_dict(manifest.get("train_config") or {})
        vocab = Vocabulary.from_json((directory / VOCAB).read_text(encoding="utf-8"))
        if len(vocab) != config.vocab_size:
            raise FormatError(f"{directory}: vocabulary has {len(vocab)} tokens, the model expects {config.vocab_size}")
        _check_shapes(directory, config)  # before any allocation: the settings must describe these weights
        model = SentenceVAE(config)
        try:
            state = load_file(str(directory / WEIGHTS))
            model.load_state_dict(state, strict=True)
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise FormatError(f"{directory}: weights do not fit the saved settings ({str(exc).splitlines()[0]})") from None
        return cls(model, vocab, train_config=train_config, history=manifest.get("history"))

    # --- texts <-> tensors -----------------------------------------------------------------
    def batch_of(self, texts: Sequence[str], vectors=None) -> Batch:
        """Token ids (and, for the embedding encoder, sentence vectors) of ``texts``."""
        texts = _check_texts(texts)
        if self.config.encoder == "embedding" and vectors is None:
            vectors = self.sentence_vectors(texts)
        return make_batch([self.vocab.encode(t)[: self.config.max_length * 4] for t in texts], vectors)

    def sentence_encoder(self):
        """The sentence encoder this VAE was trained on (``embedding`` encoder), loaded once.

        Raises
        ------
        InputError
            If the VAE reads tokens.
        ModelMismatchError
            If the model found on this machine is not the one the VAE was trained on.
        """

        if self.config.encoder != "embedding":
            raise InputError(f"this VAE reads tokens (encoder '{self.config.encoder}'), not sentence embeddings")
        if self._sentence_encoder is None:
            identity = ModelIdentity.from_dict(self.config.sentence_model)
            encoder = load_encoder(identity.name)
            if not encoder.identity.same_space(identity):
                raise ModelMismatchError(
                    f"the VAE was trained on embeddings of {identity.describe()}, but that model on this machine is "
                    f"{encoder.identity.describe()}"
                )
            self._sentence_encoder = encoder
        return self._sentence_encoder

    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` with the sentence encoder this VAE was trained on (cached)."""

        encoder = self.sentence_encoder()
        with EmbeddingCache() as cache:
            vectors, _ = encode_texts(encoder, list(texts), cache=cache)
        return vectors

    def word_vectors(self) -> np.ndarray:
        """Each vocabulary word embedded alone by the sentence encoder (cached), shape (V, sentence_dim).

        Rows of the special tokens are zero.
        """
        if self._word_vectors is None:
            words = self.vocab.itos[len(SPECIALS):]
            vectors = np.zeros((len(self.vocab), self.config.sentence_dim), dtype=np.float32)
            vectors[len(SPECIALS):] = self.sentence_vectors(words)
            self._word_vectors = vectors
        return self._word_vectors

    @torch.no_grad()
    def posterior(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and log-variance of q(z|x) for each text.

        Returns
        -------
        mu, logvar : ndarray of shape (n, latent_dim)
        """
        self._need_latent()
        mu, logvar = self.model.encode(self.batch_of(texts))
        return mu.numpy(), logvar.numpy()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Posterior means of ``texts``, shape (n, latent_dim)."""
        return self.posterior(texts)[0]

    @torch.no_grad()
    def encode_embeddings(self, vectors) -> np.ndarray:
        """Posterior means for sentence embeddings (the ``embedding`` encoder), shape (n, latent_dim).

        Parameters
        ----------
        vectors : array-like of shape (n, sentence_dim)
            Rows of an EmbeddingSet, a cluster centroid, the midpoint of two documents...
        """
        self._need_embedding_encoder("decoding an embedding")
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.config.sentence_dim:
            raise InputError(f"expected vectors of size {self.config.sentence_dim}, got {vectors.shape[1]}")
        features = self.model.encoder_mlp(torch.from_numpy(vectors))
        return self.model.posterior(features).chunk(2, dim=-1)[0].numpy()

    @torch.no_grad()
    def decode(self, z, *, beam_size: int = 1, temperature: float = 0.0, seed: int | None = None) -> list[str]:
        """Sentences for latent codes.

        Parameters
        ----------
        z : array-like of shape (n, latent_dim)
        beam_size : int, default=1
            1 is greedy decoding; more uses beam search.
        temperature : float, default=0
            > 0 samples words instead (ignores ``beam_size``).
        seed : int, optional
            For sampling.
        """
        z = torch.as_tensor(np.atleast_2d(np.asarray(z, dtype=np.float32)))
        if z.shape[1] != self.config.latent_dim:
            raise InputError(f"expected latent codes of size {self.config.latent_dim}, got {z.shape[1]}")
        limit = self.config.max_length
        if temperature > 0:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            ids = sample_decode(self.model, z, max_length=limit, temperature=temperature, generator=generator)
        elif beam_size > 1:
            ids = beam_decode(self.model, z, beam_size=beam_size, max_length=limit)
        else:
            ids = greedy_decode(self.model, z, max_length=limit)
        return [self.vocab.decode(row) for row in ids]

    def decode_embeddings(self, vectors, *, beam_size: int = 1, refine: int = 0, restarts: int = 1,
                          progress: bool | None = None) -> list[str]:
        """Decode points of the semantic space (``embedding`` encoder) into sentences.

        Parameters
        ----------
        vectors : array-like of shape (n, sentence_dim)
        beam_size : int, default=1
            1 is greedy decoding; more uses beam search (ignored when refining).
        refine : int, default=0
            Rounds of search for a sentence that embeds nearer each point
            (:func:`embedspace.vae.refine.refine_decode`); 0 decodes once. About 80
            sentence embeddings per point and round: 5 rounds take about 2 s a point on 2 cores.
        restarts : int, default=1
            Searches per point from different starts when refining, the best kept; each
            costs as much as the first.
        progress : bool, optional
            Progress bar while refining.
        """
        if int(refine) < 0:
            raise InputError(f"refine rounds must be >= 0, got {refine}")
        if refine:
            from embedspace.vae.refine import refine_decode

            return refine_decode(self, vectors, rounds=int(refine), restarts=restarts, progress=progress)[0]
        return self.decode(self.encode_embeddings(vectors), beam_size=beam_size)

    def decode_centroids(self, space, labels, *, beam_size: int = 1, refine: int = 0, restarts: int = 1):
        """Decode the centre of each group of an EmbeddingSet (a cluster, a class).

        Parameters
        ----------
        space : EmbeddingSet
            Vectors from the sentence encoder this VAE was trained on.
        labels : str or array-like of length n
            A column of ``space.table`` (e.g. ``"cluster"`` from a map, or ``"label"``) or
            one label per row. Rows labelled -1 (HDBSCAN noise) or missing are left out.
        beam_size : int, default=1
        refine : int, default=0
            Rounds of search for a sentence that embeds nearer each centroid (see
            :meth:`decode_embeddings`).
        restarts : int, default=1
            Searches per centroid when refining (see :meth:`decode_embeddings`).

        Returns
        -------
        pandas.DataFrame
            One row per group: ``label``, ``size``, ``sentence`` (the decoded centroid,
            renormalised to unit length when the space is normalised).

        Raises
        ------
        ModelMismatchError
            If ``space`` was embedded by another model.
        """
        import pandas as pd

        identity = ModelIdentity.from_dict(self.config.sentence_model) if self.config.sentence_model else None
        if identity is None or space.model is None or not identity.same_space(space.model):
            found = space.model.describe() if space.model is not None else "an unknown model"
            wanted = identity.describe() if identity is not None else "no sentence encoder (encoder 'gru')"
            raise ModelMismatchError(f"the set was embedded by {found}, but this VAE reads {wanted}")
        if isinstance(labels, str):
            if labels not in space.table.columns:
                raise InputError(f"no column '{labels}' in the set (columns: {', '.join(map(str, space.table.columns))})")
            labels = space.table[labels]
        labels = pd.Series(list(labels))
        if len(labels) != len(space):
            raise InputError(f"got {len(labels)} labels for {len(space)} vectors")
        keep = labels.notna() & (labels.astype(str) != "-1")
        groups = labels[keep].groupby(labels[keep], sort=True).groups
        names = list(groups)
        centroids = np.stack([np.asarray(space.vectors[np.asarray(groups[g])], dtype=np.float32).mean(axis=0) for g in names])
        if identity.normalized:
            centroids /= np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-12)
        sentences = self.decode_embeddings(centroids, beam_size=beam_size, refine=refine, restarts=restarts)
        return pd.DataFrame({"label": names, "size": [len(groups[g]) for g in names], "sentence": sentences})

    # --- the user-facing operations --------------------------------------------------------
    def reconstruct(self, texts: Sequence[str], *, beam_size: int = 1, refine: int = 0, restarts: int = 1,
                    progress: bool | None = None) -> list[str]:
        """Decode the posterior mean of each text (greedy, or beam search).

        With ``refine`` > 0 (``embedding`` encoder only), search instead for sentences that
        embed near each text's embedding; see :meth:`decode_embeddings`.
        """
        texts = self._check_known_words(_check_texts(texts))
        if refine:
            self._need_embedding_encoder("refine=")
            vectors = self.sentence_vectors(texts)
            return self.decode_embeddings(vectors, refine=refine, restarts=restarts, progress=progress)
        return self.decode(self.encode(texts), beam_size=beam_size)

    def sample(self, n: int = 10, *, temperature: float = 0.0, seed: int | None = None) -> list[str]:
        """Sentences from z ~ N(0, I).

        Parameters
        ----------
        n : int, default=10
        temperature : float, default=0
            0 decodes each z greedily; > 0 also samples the words with this temperature.
        seed : int, optional
        """
        if int(n) < 1:
            raise InputError(f"number of samples must be at least 1, got {n}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if not self.config.has_latent:
            ids = sample_decode(self.model, None, n=int(n), max_length=self.config.max_length, temperature=temperature or 1.0, generator=generator)
            return [self.vocab.decode(row) for row in ids]
        z = torch.randn(int(n), self.config.latent_dim, generator=generator)
        return self.decode(z.numpy(), temperature=temperature, seed=seed)

    def interpolate(self, a: str, b: str, *, steps: int = 8, method: str = "linear", beam_size: int = 1) -> list[str]:
        """Walk from ``a`` to ``b`` in latent space.

        Returns
        -------
        list of ``steps + 2`` sentences: the reconstruction of ``a``, ``steps`` points on
        the path, the reconstruction of ``b``.
        """
        if method not in ("linear", "spherical"):
            raise InputError(f"interpolation method must be 'linear' or 'spherical', got '{method}'")
        if int(steps) < 0:
            raise InputError(f"steps must be >= 0, got {steps}")
        za, zb = torch.as_tensor(self.encode(self._check_known_words([a, b])))
        path = interpolation_path(za, zb, steps=int(steps), method=method)
        return self.decode(path.numpy(), beam_size=beam_size)

    def arithmetic(self, a: str, b: str, c: str, *, beam_size: int = 1) -> str:
        """Decode z(a) - z(b) + z(c) ("a is to b as ? is to c" in latent space)."""
        za, zb, zc = self.encode(self._check_known_words([a, b, c]))
        return self.decode((za - zb + zc)[None], beam_size=beam_size)[0]

    def evaluate(self, texts: Sequence[str], *, samples: int = 500, progress: bool | None = None, seed: int = 0, refine: int = 0,
                 restarts: int = 1) -> dict:
        """The standard metrics on ``texts``; see :func:`embedspace.vae.metrics.evaluate`."""
        from embedspace.vae.metrics import evaluate

        return evaluate(self, texts, samples=samples, progress=progress, seed=seed, refine=refine, restarts=restarts)

    def _check_known_words(self, texts: list[str]) -> list[str]:
        """Warn about inputs whose words the VAE mostly does not know; refuse ones it knows none of.

        Rule: more than ``UNKNOWN_WARN`` of an input's words outside the vocabulary is said
        (once per call, naming the worst input); with a word encoder an input none of whose
        words is known would be read as a row of ``<unk>`` and is refused. An ``embedding``
        encoder reads the text through the sentence model, so there it is only said: the
        decoder can still write only its own vocabulary.
        """
        worst, share_worst, unknown_all = None, 0.0, []
        for i, text in enumerate(texts):
            tokens = self.vocab.tokens(text) if isinstance(text, str) else []
            if not tokens:
                continue
            unknown = sum(1 for t in tokens if self.vocab.stoi.get(t, UNK) == UNK)
            share = unknown / len(tokens)
            if share == 1.0:
                unknown_all.append(i)
            if share > share_worst:
                worst, share_worst = i, share
        size = f"{len(self.vocab):,}-word"
        if unknown_all and self.config.encoder != "embedding":
            i = unknown_all[0]
            raise InputError(f"none of the words of input {i + 1} ({_shorten(texts[i])!r}) is in this VAE's {size} "
                             "vocabulary: it would be read as unknown words only; give a sentence like its training text")
        if worst is not None and share_worst > UNKNOWN_WARN:
            log.warning("%.0f%% of the words of input %d (%r) are not in this VAE's %s vocabulary; the result will "
                        "be poor (unknown words are read and written as <unk>)", 100 * share_worst, worst + 1,
                        _shorten(texts[worst]), size)
        return texts

    def _need_embedding_encoder(self, what: str) -> None:
        if self.config.encoder != "embedding":
            raise InputError(f"{what} needs a VAE trained with encoder='embedding' (this one: {self.config.encoder})")

    def _need_latent(self):
        if not self.config.has_latent:
            raise InputError("this model is a plain language model (no latent space): it can only sample")


UNKNOWN_WARN = 0.2
"""Share of an input's words outside the vocabulary above which reconstruct, interpolate and
arithmetic warn (issue 31: a news sentence given to the captions VAE came back as all <unk>)."""


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise InputError("no texts given")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise InputError(f"text {bad[0] + 1} of {len(texts)} is empty or not a string")
    return texts


def _check_shapes(directory: Path, config: VAEConfig) -> None:
    """Refuse settings that do not describe the saved weights, before building the network.

    The network is first built on torch's ``meta`` device, which allocates nothing, and
    its parameter shapes are compared with the tensor shapes in the safetensors header;
    so settings edited to ask for a huge layer are an error, not an attempt to allocate it.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(directory / WEIGHTS), framework="pt") as weights:
            held = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise FormatError(f"{directory}: unreadable {WEIGHTS} ({str(exc).splitlines()[0]})") from None
    try:
        with torch.device("meta"):
            skeleton = SentenceVAE(config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FormatError(f"{directory}: the saved settings do not make a network ({str(exc).splitlines()[0]})") from None
    wanted = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
    if wanted != held:
        differ = sorted(name for name in set(wanted) | set(held) if wanted.get(name) != held.get(name))
        name = differ[0]
        raise FormatError(
            f"{directory}: the saved settings do not describe {WEIGHTS} ({name}: the settings ask for "
            f"{wanted.get(name, 'nothing')}, the weights hold {held.get(name, 'nothing')})"
        )
