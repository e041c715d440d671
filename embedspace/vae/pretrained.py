"""Start a VAE's word embeddings from a sentence-transformers model's token embeddings.

A text VAE trained from scratch on a small corpus (PTB has 0.9 M words) learns its word
vectors from what little text it sees. The input token embeddings of a sentence encoder
(all-MiniLM-L6-v2's 30,522 x 384 word pieces, shipped with embedspace) already place
related words near each other, and a VAE whose embedding table starts from them learns
faster and generalises better: on PTB it reaches a lower validation -ELBO than a random
start for the same CPU time (measured by ``scripts/bench_vae.py``; figures in
``scripts/BENCHMARKS.md``, section bench_vae.py, "Where the word embeddings start").

Each vocabulary word is split into the model's word pieces and gets the mean of their
vectors (``<unk>`` gets the model's unknown token); the rows are centred, projected on
their top principal directions when the VAE's embedding is narrower than the model's,
and scaled to unit standard deviation, the scale of torch's default initialisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedspace.encoding import resolve_model
from embedspace.errors import InputError
from embedspace.vae.vocab import SPECIALS, UNK, Vocabulary

__all__ = ["token_embedding_init"]


def token_embedding_init(vocab: Vocabulary, dim: int, model: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Word vectors for ``vocab`` from a sentence-transformers model's input token embeddings.

    Parameters
    ----------
    vocab : Vocabulary
        The VAE's vocabulary (V entries, the special tokens first).
    dim : int
        The VAE's word-embedding size E; at most the model's embedding width D.
    model : str or path-like, optional
        A sentence-transformers name on this machine or a local folder (default: the
        shipped all-MiniLM-L6-v2). It needs ``tokenizer.json`` and ``model.safetensors``.

    Returns
    -------
    vectors : ndarray of float32, shape (V, E)
        Centred, projected on the top-E principal directions of the word rows when E < D,
        and scaled to unit standard deviation (a vocabulary of n < E words spans n
        directions; the other columns are 0).
    rows : ndarray of bool, shape (V,)
        Which rows to copy into the embedding table (False for ``<pad>``, ``<s>``, ``</s>``).

    Raises
    ------
    InputError
        The model lacks the files, has no token-embedding tensor, or ``dim`` exceeds D.
    """

    _, folder = resolve_model(model)
    table = _token_table(folder)
    tokenizer = _tokenizer(folder)
    if dim > table.shape[1]:
        raise InputError(
            f"the VAE's word embeddings ({dim}) are wider than {folder.name}'s token embeddings "
            f"({table.shape[1]}); use embed_dim <= {table.shape[1]} or embedding_init='random'"
        )
    unk = tokenizer.token_to_id(getattr(tokenizer.model, "unk_token", None) or "[UNK]")  # "[UNK]" in BERT's word pieces
    rows = np.zeros((len(vocab), table.shape[1]))
    for i, word in enumerate(vocab.itos):
        if word in SPECIALS and i != UNK:
            continue
        pieces = [] if i == UNK else tokenizer.encode(word, add_special_tokens=False).ids
        pieces = pieces or ([unk] if unk is not None else [])
        if pieces:
            rows[i] = table[pieces].mean(axis=0)
    words = rows[len(SPECIALS):]
    centred = rows - words.mean(axis=0)
    if dim < table.shape[1]:
        _, _, directions = np.linalg.svd(centred[len(SPECIALS):], full_matrices=False)
        centred = centred @ directions[:dim].T  # a vocabulary of n < dim words spans n directions at most
    scale = centred[len(SPECIALS):].std()
    vectors = np.zeros((len(vocab), dim))
    vectors[:, : centred.shape[1]] = centred / (scale if scale > 0 else 1.0)
    filled = np.ones(len(vocab), dtype=bool)
    filled[[i for i, w in enumerate(SPECIALS) if i != UNK]] = False
    return vectors.astype(np.float32), filled


def _token_table(folder: Path) -> np.ndarray:
    """The (D-wide) input token-embedding matrix of a transformer checkpoint, as float64."""
    path = folder / "model.safetensors"
    if not path.is_file():
        raise InputError(f"{folder}: no model.safetensors to take token embeddings from; use embedding_init='random'")
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as weights:
        names = [n for n in weights.keys() if n.endswith(("word_embeddings.weight", "embed_tokens.weight"))]
        if not names:
            raise InputError(f"{path}: no token-embedding tensor (word_embeddings.weight); use embedding_init='random'")
        return weights.get_tensor(sorted(names, key=len)[0]).astype(np.float64)


def _tokenizer(folder: Path):
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{folder}: no tokenizer.json to split words into the model's pieces; use embedding_init='random'")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()  # the file pads every text to the model's length: one word needs its pieces only
    tokenizer.no_truncation()
    return tokenizer
