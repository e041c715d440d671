"""Turn texts into an EmbeddingSet: cached, deduplicated, streamed.

:func:`embed` is the in-memory entry point (a source, a DataFrame or a list of texts in,
an :class:`~embedspace.embeddingset.EmbeddingSet` out). :func:`embed_to_disk` is the
streaming one behind ``embedspace embed``: it reads the input in chunks, looks every
text up in the cache, embeds only the misses (each distinct text once), stores them in
the cache as it goes and appends the vectors to the output set, so memory does not grow
with the input and a killed run, started again, redoes only what was not cached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from embedspace._fs import check_output_path
from embedspace._progress import progress_bar
from embedspace.embeddingset import FORMAT as SET_FORMAT
from embedspace.embeddingset import EmbeddingSet, EmbeddingSetWriter
from embedspace.encoding._tokens import truncation_summary
from embedspace.encoding.cache import EmbeddingCache
from embedspace.encoding.encoders import load_encoder
from embedspace.errors import InputError
from embedspace.sources import ReadReport, iter_chunks, read, replace_surrogates

__all__ = ["embed", "embed_to_disk", "encode_texts", "is_set_directory", "load_or_embed", "open_cache", "EmbedSummary"]

log = logging.getLogger("embedspace")

CACHE_EVERY = 1024
"""Most texts embedded between two writes to the cache (see :func:`encode_texts`)."""
CACHE_SECONDS = 5.0
"""Most seconds of embedding between two writes to the cache."""


def encode_texts(
    encoder, texts: Sequence[str], *, cache: EmbeddingCache | None = None, progress=None,
    cache_every: int = CACHE_EVERY, cache_seconds: float = CACHE_SECONDS,
) -> tuple[np.ndarray, int]:
    """Embed texts through the cache, each distinct text once, keeping finished work on an interrupt.

    The texts not in the cache are embedded one encoder batch at a time, shortest first.
    Finished vectors reach the cache every ``cache_every`` texts or ``cache_seconds``
    seconds, whichever comes first, and when the work stops early (Ctrl-C, SIGTERM, an
    error) the finished batches are written before the exception goes on, with a note
    ``"N texts saved to the cache; run the same command again to continue"`` added to it
    (``exception.__notes__``). The cost of the small writes is measured by
    ``scripts/bench_embed_cli.py`` (see ``scripts/BENCHMARKS.md``).

    Parameters
    ----------
    encoder : Encoder
        Any object with ``identity``, ``dim`` and ``encode`` (and optionally ``batch_size``).
    texts : sequence of str of length n
    cache : EmbeddingCache or None
        Where to look vectors up and store new ones; ``None`` disables caching.
    progress : bool, None or progress bar
        Passed to ``encoder.encode``.
    cache_every : int, default=CACHE_EVERY
        Most texts embedded between two writes to the cache.
    cache_seconds : float, default=CACHE_SECONDS
        Most seconds between two writes to the cache.

    Returns
    -------
    vectors : ndarray of shape (n, dim), float32
    n_cached : int
        How many of the n texts were found in the cache.
    """
    texts = list(texts)
    if cache is not None:
        found, vectors = cache.get(encoder.identity, texts)
    else:
        found, vectors = np.zeros(len(texts), dtype=bool), np.zeros((len(texts), encoder.dim), dtype=np.float32)
    missing = np.flatnonzero(~found)
    unique: list[str] = []
    if len(missing):
        first: dict[str, int] = {}
        for i in missing:
            first.setdefault(texts[i], len(first))
        unique = list(first)
        with truncation_summary():
            new = _encode_keeping_work(encoder, unique, cache, progress, cache_every, cache_seconds)
        vectors[missing] = new[[first[texts[i]] for i in missing]]
    if hasattr(progress, "update"):
        progress.update(len(texts) - len(unique))
    return vectors, int(found.sum())


def _encode_keeping_work(encoder, unique: list[str], cache, progress, cache_every: int, cache_seconds: float) -> np.ndarray:
    """Vectors of shape (len(unique), dim), each batch written to the cache soon after it is done.

    Slices of ``_SLICE`` texts of similar length go to the encoder (large enough for full,
    evenly padded batches); an encoder with ``encode_batches`` hands back each batch as it
    finishes, so the progress count and what an interrupt keeps are the same texts.
    """
    new = np.empty((len(unique), encoder.dim), dtype=np.float32)
    by_length = np.argsort([len(t) for t in unique], kind="stable")
    pending: list[np.ndarray] = []
    n_pending = saved = 0
    last_write = time.monotonic()

    def write() -> int:
        nonlocal pending, n_pending, last_write
        written = 0
        if cache is not None and pending:
            rows = np.concatenate(pending)
            cache.put(encoder.identity, [unique[i] for i in rows], new[rows])
            written, last_write = len(rows), time.monotonic()
        pending, n_pending = [], 0
        return written

    shared = hasattr(progress, "update")
    bar = progress if shared else progress_bar(len(unique), "embedding", progress=progress, unit="text")
    try:
        for start in range(0, len(unique), _SLICE):
            block = by_length[start:start + _SLICE]
            texts = [unique[i] for i in block]
            if hasattr(encoder, "encode_batches"):
                batches = encoder.encode_batches(texts)
            else:
                batches = [(np.arange(len(block)), encoder.encode(texts, progress=False))]
            for positions, vectors in batches:
                rows = block[positions]
                new[rows] = vectors
                pending.append(rows)  # before the count goes up: every text counted is kept on an interrupt
                n_pending += len(rows)
                bar.update(len(rows))
                if n_pending >= cache_every or time.monotonic() - last_write >= cache_seconds:
                    saved += write()
    except BaseException as stopped:
        if cache is not None:
            with contextlib.suppress(Exception):
                saved += write()
            if saved and hasattr(stopped, "add_note"):
                stopped.add_note(f"{saved} {'text' if saved == 1 else 'texts'} saved to the cache; run the same "
                                 "command again to continue")
        raise
    finally:
        if not shared:
            bar.close()
    write()
    return new


_SLICE = 4096  # texts handed to the encoder at once: batches stay full and evenly padded


def _as_table(data, text_col: str, strict: bool):
    import pandas as pd

    if isinstance(data, (str, os.PathLike)):
        return read(data, text_col=text_col, strict=strict)
    if isinstance(data, pd.DataFrame):
        if text_col not in data.columns:
            raise InputError(f"no column '{text_col}' (columns: {', '.join(map(str, data.columns))})")
        table = data.rename(columns={text_col: "text"}) if text_col != "text" else data
        table = table[["text"] + [c for c in table.columns if c != "text"]].reset_index(drop=True)
        if table["text"].dtype == object:
            table = table.assign(text=_without_surrogates(table["text"].tolist(), strict))
    else:
        if isinstance(data, str) or not hasattr(data, "__iter__"):
            raise InputError("embed() takes a source path, a DataFrame or a list of texts")
        table = pd.DataFrame({"text": _without_surrogates(list(data), strict)})
    bad = [i for i, t in enumerate(table["text"]) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise InputError(f"{len(bad)} texts are empty or not strings (first at row {bad[0]})")
    if len(table) == 0:
        raise InputError("no texts to embed")
    return table


def _without_surrogates(texts: list, strict: bool) -> list:
    """Texts with lone surrogates ("\\ud800", not text) replaced by U+FFFD, as undecodable bytes are (refused if strict)."""
    replaced = 0
    out = []
    for i, text in enumerate(texts):
        if isinstance(text, str):
            text, n = replace_surrogates(text)
            if n and strict:
                raise InputError(f"text {i + 1} holds a lone surrogate, which is not text "
                                 "(use strict=False to replace it with U+FFFD)")
            replaced += bool(n)
        out.append(text)
    if replaced:
        log.warning("replaced lone surrogates with U+FFFD in %d text%s", replaced, "" if replaced == 1 else "s")
    return out


def embed(
    data,
    *,
    text_col: str = "text",
    model: str | None = None,
    backend: str = "auto",
    batch_size: int | None = None,
    max_tokens: int | None = None,
    encoder=None,
    cache: bool | EmbeddingCache = True,
    strict: bool = False,
    progress: bool | None = None,
) -> EmbeddingSet:
    """Embed a source, a DataFrame or a list of texts.

    Parameters
    ----------
    data : str, path-like, pandas.DataFrame or list of str
        A source that :func:`embedspace.read` accepts, a table with ``text_col``, or texts.
    text_col : str, default="text"
        Text column of a file or DataFrame.
    model : str, optional
        Model name or folder; default all-MiniLM-L6-v2.
    backend : str, default="auto"
        See :mod:`embedspace.encoding.encoders`.
    batch_size : int, optional
        Texts per forward pass; default the backend's (:func:`embedspace.encoding.encoders.default_batch_size`).
    max_tokens : int, optional
        Tokens kept per text; default the model's window (256 for the default model).
    encoder : Encoder, optional
        A ready encoder; overrides ``model``, ``backend``, ``batch_size`` and ``max_tokens``.
    cache : bool or EmbeddingCache, default=True
        Use the on-disk cache (or the given one).
    strict : bool, default=False
        Refuse empty texts and undecodable bytes when reading a source.
    progress : bool or None, default=None
        Progress bar (default: when stderr is a terminal).

    Returns
    -------
    EmbeddingSet
        n vectors of the model's dimension and the table (``text`` + metadata).

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> space = es.embed(["the market fell", "prices rose sharply"])  # doctest: +SKIP
    >>> space.vectors.shape  # doctest: +SKIP
    (2, 384)
    """
    table = _as_table(data, text_col, strict)
    encoder = encoder or load_encoder(model, backend=backend, batch_size=batch_size, max_tokens=max_tokens)
    store = open_cache(cache)
    try:
        vectors, _ = encode_texts(encoder, table["text"].tolist(), cache=store, progress=progress)
    finally:
        if store is not None and store is not cache:
            store.close()
    return EmbeddingSet(vectors, table, encoder.identity)


def is_set_directory(source) -> bool:
    """True when ``source`` names a saved EmbeddingSet (a directory with a manifest), not text to embed."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    path = Path(source)
    return path.is_dir() and (path / "manifest.json").is_file()


def load_or_embed(source, *, text_col: str = "text", label_col: str | None = None, model: str | None = None,
                  backend: str = "auto", max_tokens: int | None = None, min_documents: int = 1,
                  progress: bool | None = None) -> EmbeddingSet:
    """An EmbeddingSet from a set directory, or from any source :func:`embedspace.read` accepts, embedded.

    What the verbs that take ``INPUT|SET`` share: a saved set is loaded as it is; text is
    read, checked and embedded (through the cache). Checks run before the model loads.

    Parameters
    ----------
    source : str, path-like, EmbeddingSet, DataFrame or list of str
    text_col : str, default="text"
        Text column of a file or DataFrame.
    label_col : str, optional
        A column that must exist (checked first, with the columns listed in the error).
    model, backend, max_tokens
        As for :func:`embed`; ``max_tokens`` is refused for a saved set (already embedded).
    min_documents : int, default=1
        Fewest documents, and fewest distinct texts, the caller can work with.
    progress : bool or None

    Returns
    -------
    EmbeddingSet

    Raises
    ------
    InputError
        A missing ``label_col``, fewer than ``min_documents`` (distinct) documents,
        ``max_tokens`` for a saved set, or anything :func:`embedspace.read` refuses.
    """
    if isinstance(source, EmbeddingSet) or is_set_directory(source):
        if max_tokens is not None:
            raise InputError(f"{source} is an EmbeddingSet, already embedded: max_tokens= applies only to text "
                             "(embed the text again with max_tokens=)")
        space = source if isinstance(source, EmbeddingSet) else EmbeddingSet.load(source)
        _require_column(space.table, label_col, source)
        return space
    table = _as_table(source, text_col, strict=False)
    _require_column(table, label_col, source)
    if len(table) < min_documents:
        raise InputError(f"needs at least {min_documents} documents, got {len(table)}; add documents")
    distinct = table["text"].nunique()
    if distinct < min_documents:
        raise InputError(f"the {len(table)} documents have only {distinct} distinct text(s); "
                         f"needs at least {min_documents} different documents")
    return embed(table, model=model, backend=backend, max_tokens=max_tokens, progress=progress)


def _require_column(table, column: str | None, source) -> None:
    if column is not None and column not in table.columns:
        where = f"{source}: " if isinstance(source, (str, os.PathLike)) else ""
        raise InputError(f"{where}no label column '{column}' (columns: {', '.join(map(str, table.columns))})")


def open_cache(cache) -> EmbeddingCache | None:
    """The cache a ``cache=`` argument means: the cache given, the default cache for True, None for False."""
    if isinstance(cache, EmbeddingCache):
        return cache
    return EmbeddingCache() if cache else None


@dataclass
class EmbedSummary:
    """What :func:`embed_to_disk` did.

    Attributes
    ----------
    path : Path
    n : int
        Rows written.
    dim : int
    n_cached : int
        Rows whose vector came from the cache.
    seconds : float
    backend : str
    model : str
    n_distinct : int or None
        Distinct texts among the n rows (None where not counted).
    """

    path: Path
    n: int
    dim: int
    n_cached: int
    seconds: float
    backend: str
    model: str
    n_distinct: int | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {
            "path": str(self.path), "n": self.n, "dim": self.dim, "n_cached": self.n_cached,
            "seconds": round(self.seconds, 3), "backend": self.backend, "model": self.model,
            "n_distinct": self.n_distinct,
        }


def _text_hashes(texts) -> np.ndarray:
    """64-bit hashes of texts, shape (n,), uint64 (equal texts, equal hashes)."""
    import pandas as pd

    return pd.util.hash_array(np.asarray(texts, dtype=object))


def _with_known_total(chunks, bar):
    """Yield ``chunks``, reading one ahead: when the input is one chunk, ``bar`` learns its total
    (rows) before the first text is embedded, so it shows a percentage and an ETA."""
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None and getattr(bar, "total", 0) is None:
        bar.total = len(first)
        if hasattr(bar, "refresh"):
            bar.refresh()
    yield first
    if second is not None:
        yield second
        yield from chunks


def embed_to_disk(
    source,
    output: str | os.PathLike,
    *,
    text_col: str = "text",
    model: str | None = None,
    backend: str = "auto",
    batch_size: int | None = None,
    max_tokens: int | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    strict: bool = False,
    cache: bool | EmbeddingCache = True,
    encoder=None,
    chunk_rows: int = 20_000,
    progress: bool | None = None,
) -> EmbedSummary:
    """Embed a source into an EmbeddingSet directory, streaming.

    Parameters
    ----------
    source : str or path-like
        Any input :func:`embedspace.read` accepts.
    output : path-like
        The set directory to write (atomically).
    dtype : {"float32", "float16"}, default="float32"
        Storage type of the vectors.
    overwrite : bool, default=False
        Replace an existing ``output``.
    chunk_rows : int, default=20000
        Rows read, embedded and written at a time; bounds memory.
    Other parameters are those of :func:`embed`.

    Returns
    -------
    EmbedSummary
    """

    check_output_path(output, overwrite=overwrite, inputs=[source], kind=SET_FORMAT)
    started = time.perf_counter()
    encoder = encoder or load_encoder(model, backend=backend, batch_size=batch_size, max_tokens=max_tokens)
    store = open_cache(cache)
    report = ReadReport(str(source))
    n_cached = 0
    hashes: list[np.ndarray] = []  # 8 bytes per row: counts repeated texts without keeping them
    bar = progress_bar(None, "embedding", progress=progress, unit="text")
    extra = {"source": str(source), "text_col": text_col}
    try:
        with truncation_summary(), EmbeddingSetWriter(output, dim=encoder.dim, model=encoder.identity, dtype=dtype,
                                                      overwrite=overwrite, extra=extra, inputs=[source]) as writer:
            chunks = iter_chunks(source, text_col=text_col, strict=strict, chunk_rows=chunk_rows, report=report)
            for chunk in _with_known_total(chunks, bar):
                vectors, cached = encode_texts(encoder, chunk["text"].tolist(), cache=store, progress=bar)
                n_cached += cached
                hashes.append(_text_hashes(chunk["text"]))
                writer.append(vectors, chunk)
    finally:
        bar.close()
        if store is not None and store is not cache:
            store.close()
    n_distinct = len(np.unique(np.concatenate(hashes))) if hashes else 0
    if n_distinct < writer.rows:
        repeats = writer.rows - n_distinct
        log.info("%d of %d texts repeat an earlier text (%d distinct); 'embedspace duplicates' groups exact and near "
                 "copies", repeats, writer.rows, n_distinct)
    return EmbedSummary(
        path=Path(output), n=writer.rows, dim=encoder.dim, n_cached=n_cached,
        seconds=time.perf_counter() - started, backend=encoder.identity.backend, model=encoder.identity.name,
        n_distinct=n_distinct,
    )
