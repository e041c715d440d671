"""Texts to vectors: the model's files, its backends (torch, ONNX, OpenVINO, int8/bf16), tokens and the cache.

:func:`embed` turns a table of texts into an :class:`~embedspace.embeddingset.EmbeddingSet`;
:func:`embed_to_disk` streams a file of any size into a set directory;
:func:`load_encoder` gives the encoder itself; :class:`EmbeddingCache` keeps every vector
once per model and backend.
"""

from __future__ import annotations

from embedspace.encoding.backends import BACKENDS, PADDING_SENSITIVE, default_backend, default_map_backend
from embedspace.encoding.cache import EmbeddingCache, namespace_of, text_key
from embedspace.encoding.encoders import Encoder, SentenceEncoder, load_encoder
from embedspace.encoding.model_files import DEFAULT_MODEL, resolve_model
from embedspace.encoding.pipeline import (
    EmbedSummary,
    embed,
    embed_to_disk,
    encode_texts,
    is_set_directory,
    load_or_embed,
    open_cache,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "EmbedSummary",
    "EmbeddingCache",
    "Encoder",
    "PADDING_SENSITIVE",
    "SentenceEncoder",
    "default_backend",
    "default_map_backend",
    "embed",
    "embed_to_disk",
    "encode_texts",
    "is_set_directory",
    "load_or_embed",
    "load_encoder",
    "namespace_of",
    "open_cache",
    "resolve_model",
    "text_key",
]
