"""Reading a saved index, and adding a set to one in place.

:func:`load_index` reads the manifest, ``index.faiss`` and the sets as one generation (a
reader never mixes two versions of an index that another process replaces) and checks the
manifest's claims against the payload: the FAISS type, the sizes, and a few rows of each set
against the vectors ``index.faiss`` holds. :func:`add_to_index` is a locked
read-modify-write, so concurrent additions never lose one another.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedspace._fs import output_lock
from embedspace.embeddingset import ModelIdentity
from embedspace.errors import FormatError
from embedspace.search import ann
from embedspace.search.index import FORMAT, FORMAT_VERSION, Index
from embedspace.search.set_sources import (
    VectorRows,
    check_same_space,
    open_entry,
    verify_payloads,
)
from embedspace.store import read_consistently, read_manifest

__all__ = ["add_to_index", "load_index"]


def load_index(path: str | os.PathLike) -> Index:
    """Read an index directory written by :meth:`Index.save`.

    The manifest, ``index.faiss`` and the sets are read as one generation: if another
    process replaces the index meanwhile, it is read again.

    Raises
    ------
    FormatError
        Not an index (e.g. an EmbeddingSet directory), a newer format, a corrupted or
        edited file, a missing or changed EmbeddingSet, or sets that do not hold the
        vectors ``index.faiss`` holds.
    BusyError
        If the index kept being replaced while it was read.
    """
    directory = Path(path).expanduser().absolute()
    return read_consistently(directory, lambda snapshot: _load_index(directory, snapshot))


def add_to_index(path: str | os.PathLike, space, *, progress=None, allow_duplicates: bool = False) -> Index:
    """Append the rows of a set to a saved index, in place, as one locked read-modify-write.

    The index directory's lock is held from reading the index to writing it back, so two
    processes adding sets to one index take turns and neither addition is lost; readers
    keep seeing the old index, whole, until the new one replaces it.

    Parameters
    ----------
    path : path-like
        The index directory.
    space : EmbeddingSet or path-like
        The set to add (same model); a set stored inside the index folder is refused.
    progress : bool or None
    allow_duplicates : bool, default=False
        Also add rows already in the index (see :meth:`Index.add`).

    Returns
    -------
    Index
        The index as written.

    Raises
    ------
    InputError
        A set inside the index folder, or metadata columns whose types cannot be reconciled
        (checked before anything is written).
    ModelMismatchError
        A set of another model or dimension.
    """
    with output_lock(path):
        index = load_index(path)
        index.add(space, progress=progress, allow_duplicates=allow_duplicates)
        if index.last_add["added"]:  # every row already there: nothing to rewrite
            index.save(path, overwrite=True)
    return index


_FAISS_TYPES = {"flat": ("IndexFlatIP",), "hnsw": ("IndexIDMap",), "ivf": ("IndexIVFFlat",), "ivfpq": ("IndexIVFPQ",)}
_CHECKED_ROWS = 8  # rows per set compared with what index.faiss holds


def _load_index(directory: Path, snapshot) -> Index:
    import faiss

    manifest = read_manifest(directory, FORMAT, FORMAT_VERSION, verify=False, required=("index.faiss",))  # sha256 below
    verify_payloads(directory, prefix="index.faiss", manifest=manifest)
    try:
        kind, n, d = manifest["kind"], int(manifest["n"]), int(manifest["d"])
        entries = list(manifest["sources"])
        params = dict(manifest["params"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{directory}: index manifest lacks a field ({exc})") from None
    if kind not in ann.KINDS:
        raise FormatError(f"{directory}: unknown index kind '{kind}' (written by a newer embedspace?)")
    if not entries:
        raise FormatError(f"{directory}: the manifest names no EmbeddingSet to read texts from")
    if manifest.get("lexical") and "bm25/settings.json" not in manifest["files"]:
        raise FormatError(f"{directory}: the manifest promises a BM25 index but does not list bm25/settings.json")
    try:
        faiss_index = faiss.read_index(str(directory / "index.faiss"))
    except RuntimeError as exc:
        raise FormatError(f"{directory}: index.faiss is not a readable FAISS index ({str(exc).splitlines()[0]})") from None
    found = type(faiss.downcast_index(faiss_index)).__name__  # a view of the same object: faiss_index keeps owning it
    if found not in _FAISS_TYPES[kind] or faiss_index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise FormatError(f"{directory}: index.faiss is a {found}, not the {kind} index its manifest says")
    if faiss_index.ntotal != n or faiss_index.d != d:
        raise FormatError(f"{directory}: index.faiss holds {faiss_index.ntotal} x {faiss_index.d} vectors, the manifest says {n} x {d}")
    sources = [open_entry(directory, entry, snapshot) for entry in entries]
    if sum(s.n for s in sources) != n:
        raise FormatError(f"{directory}: its EmbeddingSets hold {sum(s.n for s in sources)} rows, the index {n}")
    model = ModelIdentity.from_dict(manifest.get("model"))
    for source in sources:
        check_same_space(model, d, source.model, source.d, what=f"the EmbeddingSet {source.path}")
    normalize = bool(manifest.get("normalize"))
    _check_sources_hold_the_vectors(directory, faiss_index, kind, sources, normalize)
    return Index(faiss_index, kind=kind, params=params, model=model, normalize=normalize,
                 sources=sources, lexical_settings=manifest.get("lexical"), path=directory, info=manifest.get("build"),
                 snapshot=snapshot)


def _check_sources_hold_the_vectors(directory: Path, faiss_index, kind: str, sources, normalize: bool) -> None:
    """Compare a few rows of each set with what ``index.faiss`` holds for them.

    The manifest's ``sources`` say where texts and metadata come from; if they named
    another set (edited, or a set replaced by one of the same size and model), searches
    would return the texts of other rows beside the vectors. The first, the last and a few
    seeded rows of each set must be the vectors the index holds (for ``ivfpq``, the rows
    encoded and decoded must give the decoded codes the index holds).
    """
    rows = VectorRows(sources, normalize)
    rng = np.random.default_rng(0)
    checked = []
    for i, source in enumerate(sources):
        lo = int(rows.offsets[i])
        picks = {lo, lo + source.n - 1, *rng.integers(lo, lo + source.n, size=min(source.n, _CHECKED_ROWS - 2)).tolist()}
        checked += sorted(picks)
    checked = np.array(sorted(set(checked)), dtype=np.int64)
    try:
        held = ann.stored_vectors(faiss_index, kind, checked)
        wanted = np.vstack([sources[i].peek(checked[(checked >= rows.offsets[i]) & (checked < rows.offsets[i + 1])]
                                            - rows.offsets[i]) for i in range(len(sources))]).astype(np.float32)
        if normalize:
            wanted = wanted / np.maximum(np.linalg.norm(wanted, axis=1, keepdims=True), 1e-12)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise FormatError(f"{directory}: index.faiss does not hold the rows its sets have ({str(exc).splitlines()[0]})") from None
    agree = np.max(np.abs(held - ann.as_stored(faiss_index, kind, wanted)), axis=1) <= 1e-4
    if not agree.all():
        row = int(checked[np.flatnonzero(~agree)[0]])
        source = sources[int(np.searchsorted(rows.offsets, row, side="right") - 1)]
        raise FormatError(
            f"{directory}: index.faiss does not hold the vectors of {source.path} (row {row} differs); the manifest's "
            f"sources were edited or the set was replaced. Rebuild the index: embedspace index SET -o {directory} --overwrite"
        )
