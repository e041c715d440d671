"""Generate from the latent space: a small sentence VAE that trains on a CPU.

A variational autoencoder over sentences (Bowman et al. 2016) with a GRU decoder and two
encoders: ``gru`` reads the words, ``embedding`` reads the toolkit's own sentence
embeddings, so any point of the semantic space (a search hit, a cluster centre, the
midpoint of two documents) can be decoded into a sentence.

Importing this package is light; torch is loaded by the first function that needs it.

Examples
--------
>>> import embedspace as es  # doctest: +SKIP
>>> vae = es.vae.train("corpus:sts-captions", "captions.vae", max_minutes=10)  # doctest: +SKIP
>>> vae.sample(3)  # doctest: +SKIP
>>> vae.interpolate("a man is playing a guitar.", "a dog runs on the beach.", steps=8)  # doctest: +SKIP
>>> es.vae.load("captions.vae").evaluate(["a cat sits on a mat."], samples=50)  # doctest: +SKIP
"""

from __future__ import annotations

from embedspace.vae.config import TrainConfig, VAEConfig
from embedspace.vae.vocab import Vocabulary

__all__ = ["TextVAE", "TrainConfig", "VAEConfig", "Vocabulary", "load", "train"]


def train(corpus, output=None, **options):
    """Train a sentence VAE; see :func:`embedspace.vae.training.train` for the options."""
    from embedspace.vae.training import train as train_vae  # torch, loaded on first use

    return train_vae(corpus, output, **options)


def load(path):
    """Load a VAE directory; see :meth:`TextVAE.load`."""
    from embedspace.vae.textvae import TextVAE  # torch, loaded on first use

    return TextVAE.load(path)


def __getattr__(name):
    if name == "TextVAE":
        from embedspace.vae.textvae import TextVAE

        return TextVAE
    raise AttributeError(f"module 'embedspace.vae' has no attribute '{name}'")
