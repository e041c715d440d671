"""Semantic search: FAISS indexes over EmbeddingSets, filtered, dense, BM25 or hybrid.

:func:`build_index` turns an :class:`~embedspace.embeddingset.EmbeddingSet` into an
:class:`Index`; ``kind="auto"`` picks exact search for small sets, HNSW for larger ones and
IVF-PQ when float vectors would not fit the memory budget, and tunes the search effort
so that recall@10 against exact search reaches 0.95 on a sample of the set's own vectors
(see :mod:`embedspace.search.ann`). :meth:`Index.search` embeds the queries with the index's
model and returns a table of ranked hits with their text and metadata; ``where=`` filters
on metadata (:mod:`embedspace.search.filters`), ``mode=`` chooses dense, BM25 or hybrid ranking
(:mod:`embedspace.search.lexical`).

On disk (format ``embedspace.search.index``, version 1)::

    INDEX/
      manifest.json   kind, metric, parameters, n, d, model identity, and for each
                      EmbeddingSet the index reads texts and metadata from: its path
                      (relative and absolute) and the sha256 of its manifest
      index.faiss     the FAISS index (row i of the index is row i of the sets, in order)
      bm25/           the BM25 matrix and vocabulary (.npy + JSON), when built
      sets/<i>/       copies of sets that had no directory of their own (built in memory)

An index refers to its EmbeddingSet(s) instead of copying texts; if a set is moved back
in place the index works again, if it is changed the index refuses to load.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from embedspace._fs import atomic_directory, check_output_path, sha256_file
from embedspace.embeddingset import EmbeddingSet
from embedspace.encoding import load_encoder
from embedspace.errors import FormatError, InputError, ModelMismatchError
from embedspace.search import ann
from embedspace.search.distinct import collapse_identical
from embedspace.search.filters import Filter
from embedspace.search.lexical import FUSION_DEPTH, BM25Index, reciprocal_rank_fusion
from embedspace.search.queries import check_k, check_queries
from embedspace.search.set_sources import (
    SetSource,
    VectorRows,
    check_same_space,
    combine_tables,
    describe_model,
    verify_payloads,
)
from embedspace.store import library_versions, refuse_links, write_manifest

__all__ = ["Index", "build_index", "FORMAT", "FORMAT_VERSION", "KINDS", "MODES"]

log = logging.getLogger("embedspace")
_WORD = re.compile(r"[^\W_]")  # a letter or a digit, in any script

FORMAT = "embedspace.index"
FORMAT_VERSION = 1
KINDS = ("auto",) + ann.KINDS
MODES = ("dense", "bm25", "hybrid")
_RESULT_FIELDS = ("query", "rank", "row", "score", "text")


# --- the index ---------------------------------------------------------------------------
class Index:
    """A searchable index over the vectors, texts and metadata of EmbeddingSets.

    Build one with :func:`build_index` or read one with :func:`load_index`.

    Attributes
    ----------
    kind : str
        ``flat``, ``hnsw``, ``ivf`` or ``ivfpq``.
    params : dict
        Construction and (tuned) search parameters.
    model : ModelIdentity or None
        The encoder of the vectors; queries must come from the same weights.
    path : Path or None
        Directory the index was loaded from or last saved to.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> index = es.build_index(es.embed("corpus:20newsgroups"))  # doctest: +SKIP
    >>> index.search(["graphics cards for linux"], k=3, where="label == 'comp.graphics'")  # doctest: +SKIP
    """

    def __init__(self, faiss_index, *, kind: str, params: dict, model, normalize: bool, sources: list[SetSource],
                 lexical_settings: dict | None = None, lexical=None, path: Path | None = None, info: dict | None = None,
                 snapshot=None):
        self._faiss = faiss_index
        self.kind = kind
        self.params = params
        self.model = model
        self.normalize = normalize
        self._sources = sources
        self._lexical_settings = lexical_settings
        self._lexical = lexical
        self.path = path
        self.info = dict(info or {})
        self._rows = VectorRows(sources, normalize)
        self._arrow = None
        self._encoder = None
        self._snapshot = snapshot  # the generation of `path` this index was read from
        self.last_add = None  # {"added", "skipped"} of the latest add()

    # -- description
    @property
    def n(self) -> int:
        """Number of indexed rows."""
        return self._rows.n

    @property
    def d(self) -> int:
        """Vector dimension."""
        return self._rows.d

    @property
    def has_bm25(self) -> bool:
        """Whether the index keeps BM25 term statistics (``mode="bm25"`` and ``"hybrid"`` work)."""
        return bool(self._lexical_settings)

    @property
    def columns(self) -> list[str]:
        """Names of the indexed table's columns (``text`` and metadata)."""
        return [str(name) for name in self._table().column_names]

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        model = self.model.describe() if self.model else "unknown model"
        lexical = ", bm25" if self._lexical_settings else ""
        return f"Index<{self.kind}, n={self.n}, d={self.d}, model={model}{lexical}>"

    @property
    def table(self):
        """pandas.DataFrame of the indexed rows: ``text`` and metadata, row i = index row i."""
        return self._table().to_pandas()

    def _table(self):
        if self._arrow is None:

            self._arrow = _combined(self._sources)
        return self._arrow

    # -- search
    def search_vectors(self, vectors, k: int = 10, where=None):
        """Top-k rows for query vectors (the low-level search).

        Parameters
        ----------
        vectors : array-like of shape (m, d)
            Query vectors in the index's space (normalised here if the index normalises).
        k : int, default=10
        where : str, ndarray of shape (n,) bool, or None
            A filter expression (see :mod:`embedspace.search.filters`) or a row mask.

        Returns
        -------
        scores : ndarray of shape (m, k), float32
            Cosine similarity, best first; -inf where fewer than k rows match.
        rows : ndarray of shape (m, k), int64
            Row ids; -1 where fewer than k rows match.

        Raises
        ------
        ModelMismatchError
            If the vectors' dimension is not the index's.
        """
        queries = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.d:
            raise ModelMismatchError(
                f"query vectors have shape {queries.shape} but the index holds {self.d}-dimensional vectors "
                f"of {describe_model(self.model)}"
            )
        k = check_k(k)
        if self.normalize:
            queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        return ann.ann_search(self._faiss, self.kind, self.params, queries, k, self._rows, self._mask(where))

    def _mask(self, where):
        if where is None:
            return None
        if isinstance(where, str):
            return Filter.parse(where).mask(self._table())
        mask = np.asarray(where)
        if mask.dtype != bool or mask.shape != (self.n,):
            raise InputError(f"where must be a filter expression or a boolean mask of shape ({self.n},), got {mask.dtype} {mask.shape}")
        return mask

    def search_rows(self, queries, k: int = 10, where=None, mode: str = "dense", encoder=None):
        """Rank rows for text queries without fetching texts (parameters as :meth:`search`).

        Returns
        -------
        scores : ndarray of shape (m, k), float32
            Cosine similarity (dense), BM25 score (bm25) or fused reciprocal-rank score
            (hybrid); -inf padding.
        rows : ndarray of shape (m, k), int64
            Row ids best first; -1 padding.
        """
        return self._search_rows(queries, k, where, mode, encoder, warn=True)

    def _search_rows(self, queries, k, where, mode, encoder, *, warn: bool):
        queries = check_queries(queries)
        k = check_k(k)
        if mode not in MODES:
            raise InputError(f"unknown search mode '{mode}' (choose from {', '.join(MODES)})")
        mask = self._mask(where)
        for warning in self._warnings(queries, where, mask) if warn else ():
            log.warning("%s", warning)

        depth = max(k, FUSION_DEPTH) if mode == "hybrid" else k
        if mode != "bm25":
            dense_scores, dense_rows = self._dense(queries, depth, mask, encoder)
        if mode != "dense":
            lexical_scores, lexical_rows = self._lexical_index().search(queries, depth, mask)
        if mode == "dense":
            scores, rows = dense_scores, dense_rows
        elif mode == "bm25":
            scores, rows = lexical_scores, lexical_rows
        else:
            scores, rows = reciprocal_rank_fusion([dense_rows, lexical_rows], k)
        return scores, rows

    def warnings(self, queries, where=None) -> list[str]:
        """Why results of ``queries`` / ``where`` will be empty or arbitrary, in words (``[]`` when fine).

        A query with no letter or digit has no meaning for the model, so its nearest texts
        are arbitrary; a filter that matches no row is explained with
        :meth:`embedspace.search.filters.Filter.explain_no_match` (the condition that
        emptied it, and the column's closest values). :meth:`search` logs these as warnings;
        ``embedspace search --json`` returns them as ``warnings``.

        Returns
        -------
        list of str
        """
        queries = check_queries(queries)
        return self._warnings(queries, where, self._mask(where))

    def _warnings(self, queries, where, mask) -> list[str]:
        found = [f"query {q!r} has no word (no letter or digit); its results are arbitrary"
                 for q in queries if not _WORD.search(q)]
        if mask is not None and not mask.any():
            if isinstance(where, str):
                found.append(Filter.parse(where).explain_no_match(self._table()))
            else:
                found.append("the where= mask selects no row")
        return found

    def search_records(self, queries, k: int = 10, where=None, mode: str = "dense", encoder=None,
                       distinct: bool = False) -> list[dict]:
        """Search and return plain Python objects: the shape of ``embedspace search --json``.

        Parameters are those of :meth:`search`.

        Returns
        -------
        list of dict
            ``[{"query": str, "results": [{"rank", "row", "score", "text", ...metadata}]}]``
            in the order of ``queries``; with ``distinct=True`` each hit also has
            ``copies`` after ``text``. Metadata columns named like a result field are
            prefixed with ``meta_``.
        """
        queries = check_queries(queries)
        if not distinct:
            scores, rows = self.search_rows(queries, k=k, where=where, mode=mode, encoder=encoder)
            return self._records(queries, scores, rows)
        k = check_k(k)
        depth, warn = min(self.n, 2 * k + 10), True
        while True:  # deeper until every query has k distinct texts with all their copies ranked
            scores, rows = self._search_rows(queries, depth, where, mode, encoder, warn=warn)
            texts = {row: self._table().slice(row, 1).column("text")[0].as_py()
                     for row in np.unique(rows[rows >= 0]).tolist()}
            kept_scores, kept_rows, copies, complete = collapse_identical(scores, rows, texts, k)
            if complete.all() or depth >= self.n:
                return self._records(queries, kept_scores, kept_rows, copies)
            depth, warn = min(self.n, depth * 4), False

    def search(self, queries, k: int = 10, where=None, mode: str = "dense", encoder=None, distinct: bool = False):
        """Search with text queries.

        Parameters
        ----------
        queries : str or list of str
            One or more queries (non-empty).
        k : int, default=10
            Hits per query.
        where : str, ndarray of shape (n,) bool, or None
            Metadata filter, e.g. ``"label == 'sci.space' and year >= 2000"``; the hits are
            the true top-k among matching rows.
        mode : {"dense", "bm25", "hybrid"}, default="dense"
            Embedding similarity, BM25, or their reciprocal-rank fusion.
        encoder : Encoder, optional
            Embeds the queries; default the index's own model (loaded once, offline).
        distinct : bool, default=False
            One hit per distinct text (white space folded), with a ``copies`` column: how
            many rows hold it (:mod:`embedspace.search.distinct`). ``embedspace search``
            does this unless ``--keep-duplicates``.

        Returns
        -------
        pandas.DataFrame
            Columns ``query, rank, row, score, text`` (``copies`` next with ``distinct``),
            then the metadata columns; one row per hit, queries in order, ranks from 1.

        Raises
        ------
        InputError
            Empty query, k < 1, bad filter, unknown mode.
        ModelMismatchError
            If ``encoder`` is another model than the index's.
        """
        import pandas as pd

        records = self.search_records(queries, k=k, where=where, mode=mode, encoder=encoder, distinct=distinct)
        rows = [{"query": item["query"], **hit} for item in records for hit in item["results"]]
        columns = list(_RESULT_FIELDS) + ["copies"] * bool(distinct) + [
            _meta_name(c, distinct) for c in self._table().column_names if c != "text"]
        return pd.DataFrame(rows, columns=columns)

    def _dense(self, queries, depth, mask, encoder):
        encoder = self._query_encoder(encoder)
        vectors = encoder.encode(queries, progress=False)
        return self.search_vectors(vectors, depth, mask)

    def _query_encoder(self, encoder):
        if encoder is None:
            if self._encoder is None:
                if self.model is None:
                    raise InputError("this index's vectors have no recorded model; pass encoder= to embed the queries")
                self._encoder = _default_encoder(self.model)
            encoder = self._encoder
        identity = getattr(encoder, "identity", None)
        if identity is not None and self.model is not None and not self.model.same_space(identity):
            raise ModelMismatchError(
                f"the queries would be embedded by {describe_model(identity)} but the index holds vectors of "
                f"{describe_model(self.model)}; search with the index's model or rebuild the index with this one"
            )
        if getattr(encoder, "dim", self.d) != self.d:
            raise ModelMismatchError(f"the query encoder makes {encoder.dim}-dimensional vectors, the index holds {self.d}-dimensional ones")
        return encoder

    def _lexical_index(self):
        if self._lexical is None:
            if not self._lexical_settings:
                raise InputError("this index was built without BM25 (lexical=False); rebuild it to use mode='bm25' or 'hybrid'")

            if self.path is None:
                raise InputError("BM25 data is missing from this in-memory index")
            try:
                verify_payloads(self.path, prefix="bm25/")
                lexical = BM25Index.load(self.path / "bm25")
            except (FormatError, OSError, ValueError) as exc:
                if self._snapshot is not None and self._snapshot.changed():
                    raise self._snapshot.busy() from exc
                raise
            if self._snapshot is not None:
                self._snapshot.check()  # the BM25 files read belong to the index that was loaded
            self._lexical = lexical
        return self._lexical

    def _records(self, queries, scores, rows, copies=None) -> list[dict]:
        table = self._table()
        # one-row slices: Table.take would make pyarrow import pandas, costing more than the search
        by_row = {row: table.slice(row, 1).to_pylist()[0] for row in np.unique(rows[rows >= 0]).tolist()}
        out = []
        for q, query in enumerate(queries):
            results = []
            for rank, (row, score) in enumerate(zip(rows[q].tolist(), scores[q].tolist()), start=1):
                if row < 0:
                    break
                values = by_row[row]
                hit = {"rank": rank, "row": row, "score": round(float(score), 6), "text": values.get("text")}
                if copies is not None:
                    hit["copies"] = int(copies[q, rank - 1])
                hit.update({_meta_name(key, copies is not None): value for key, value in values.items() if key != "text"})
                results.append(hit)
            out.append({"query": query, "results": results})
        return out

    # -- growth and persistence
    def add(self, space, *, progress=None, allow_duplicates: bool = False) -> "Index":
        """Append the rows of another EmbeddingSet (object or directory); row ids of existing rows stay.

        Rows already in the index are skipped unless ``allow_duplicates``: a row is already
        there when its text (and its ``id``, where both sets have an ``id`` column) equals
        an indexed row's. How many were added and skipped is in :attr:`last_add`.

        Raises
        ------
        ModelMismatchError
            If ``space`` was embedded by another model or has another dimension.
        """
        source = SetSource.of(space)
        what = str(space) if isinstance(space, (str, os.PathLike)) else "the new set"
        check_same_space(self.model, self.d, source.model, source.d, what=what)
        if source.path is not None and self.path is not None and not source.embedded:
            inside = Path(os.path.realpath(source.path))
            if Path(os.path.realpath(self.path)) in inside.parents:
                raise InputError(f"{what} is stored inside the index {self.path}, which is rewritten as a whole when it "
                                 "changes; move the set out of the index folder first")
        skipped = 0
        if not allow_duplicates:
            source, skipped = self._without_indexed_rows(source, space)
        self.last_add = {"added": source.n if source is not None else 0, "skipped": skipped}
        if skipped:
            log.info("skipped %d of %d rows of %s already in the index (allow_duplicates=True keeps them)",
                     skipped, skipped + self.last_add["added"], what)
        if source is None:
            return self
        # validate before anything changes: every column must keep one type across the sets
        combined = _combined(self._sources + [source], names=[str(s.path or f"set {i + 1}") for i, s in
                                                              enumerate(self._sources)] + [what])
        start = self.n
        self._sources.append(source)
        self._rows = VectorRows(self._sources, self.normalize)
        self._arrow = combined
        self.params = ann.extend(self._faiss, self.kind, self.params, self._rows, start, progress=progress,
                                  random_state=self.info.get("random_state", 0))
        if self._lexical_settings:
            settings = self._lexical_settings
            self._lexical = BM25Index(k1=settings["k1"], b=settings["b"], stemmer=settings["stemmer"], stopwords=settings["stopwords"])
            self._lexical.fit(self._table().column("text").to_pylist(), progress=progress)
            self._lexical_settings = self._lexical.settings()
        return self

    def _without_indexed_rows(self, source: SetSource, space):
        """``source`` less the rows already indexed (None if none is left), and how many were dropped."""
        table, indexed = source.table(), self._table()
        key_columns = ["id", "text"] if "id" in table.column_names and "id" in indexed.column_names else ["text"]

        def keys(arrow):
            return list(zip(*(map(str, arrow.column(c).to_pylist()) for c in key_columns)))

        known = set(keys(indexed))
        keep = [i for i, key in enumerate(keys(table)) if key not in known]
        if len(keep) == source.n:
            return source, 0
        if not keep:
            return None, source.n
        whole = source.space if source.space is not None else EmbeddingSet.load(source.path)
        return SetSource.of(whole.select(keep)), source.n - len(keep)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the index directory atomically (see the module docstring for its layout).

        Sets built in memory are stored inside it under ``sets/``; sets on disk are
        referenced by path and manifest checksum.
        """
        import faiss

        inputs = [source.path for source in self._sources if source.path is not None and not source.embedded]
        target = check_output_path(path, overwrite=overwrite, kind=FORMAT, inputs=inputs)
        with atomic_directory(target, overwrite=overwrite, kind=FORMAT, inputs=inputs) as tmp:
            try:
                faiss.write_index(self._faiss, str(tmp / "index.faiss"))
            except RuntimeError as exc:  # FAISS reports a failed write (a full disk) as RuntimeError
                if "No space left on device" in str(exc):
                    raise OSError(errno.ENOSPC, "no space left on device", str(target)) from None
                raise OSError(f"cannot write index.faiss: {str(exc).splitlines()[0]}") from None
            files = ["index.faiss"]
            if self._lexical_settings:
                lexical = self._lexical_index()
                files += [f"bm25/{name}" for name in lexical.save(tmp / "bm25")]
            entries = [self._save_source(i, source, tmp, target) for i, source in enumerate(self._sources)]
            fields = {
                "kind": self.kind, "metric": "cosine", "normalize": self.normalize, "params": self.params,
                "n": self.n, "d": self.d, "model": self.model.to_dict() if self.model else None,
                "sources": entries, "lexical": self._lexical_settings, "build": self.info,
            }

            fields["library_versions"] = library_versions("faiss-cpu", "bm25s")
            write_manifest(tmp, FORMAT, FORMAT_VERSION, fields, files=files)
        self.path = target
        return target

    def _save_source(self, i: int, source: SetSource, tmp: Path, target: Path) -> dict:
        if source.space is not None or source.embedded:
            inner = Path("sets") / str(i)
            (tmp / "sets").mkdir(exist_ok=True)
            if source.space is not None:
                source.space.save(tmp / inner)
            else:
                refuse_links(source.path)  # a copy never takes what a link points to
                shutil.copytree(source.path, tmp / inner, symlinks=True)
                if sha256_file(tmp / inner / "manifest.json") != source.manifest_sha256:
                    raise (source.snapshot.busy() if source.snapshot is not None else
                           FormatError(f"{source.path}: the set changed while the index was being saved"))
            sha = sha256_file(tmp / inner / "manifest.json")
            return {"path": str(inner), "embedded": True, "manifest_sha256": sha, "n": source.n}
        return {
            "path": os.path.relpath(source.path, target), "absolute_path": str(source.path), "embedded": False,
            "manifest_sha256": source.manifest_sha256, "n": source.n,
        }


_ENCODERS: dict = {}


def _default_encoder(model):
    """The index model's encoder, loaded once per process (several indexes share it)."""
    key = (model.name, model.weights_sha256)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(model.name)
    return _ENCODERS[key]


def _meta_name(column: str, distinct: bool = False) -> str:
    return f"meta_{column}" if column in _RESULT_FIELDS or (distinct and column == "copies") else column


def build_index(space, kind: str = "auto", memory_budget=None, progress=None, random_state: int = 0, *, lexical: bool = True,
                adder=None) -> Index:
    """Build a search index over an EmbeddingSet.

    Parameters
    ----------
    space : EmbeddingSet or path-like
        The set (an object, or the directory of a saved set, which the index then refers to).
    kind : {"auto", "flat", "hnsw", "ivf", "ivfpq"}, default="auto"
        ``auto``: exact below 50,000 vectors, HNSW above, IVF-PQ when HNSW would not fit
        ``memory_budget``.
    memory_budget : int or str, optional
        Bytes of RAM the index may use, e.g. ``"2GB"``; default half the available memory.
    progress : bool or None
        Progress bars (default: on a terminal).
    random_state : int, default=0
        Seeds k-means training and the tuning sample.
    lexical : bool, default=True
        Also build the BM25 index used by ``mode="bm25"`` and ``"hybrid"``.
    adder : callable, optional
        Adds the bulk of the rows to a trained index (see :func:`embedspace.search.ann.build`);
        :func:`embedspace.distributed.index.build_index_with_ray` uses it to add shards on Ray.

    Returns
    -------
    Index

    Raises
    ------
    InputError
        Unknown kind, an unparsable or too small memory budget, an empty set.
    """
    started = time.perf_counter()
    if kind not in KINDS:
        raise InputError(f"unknown index kind '{kind}' (choose from {', '.join(KINDS)})")
    budget = ann.parse_memory(memory_budget) if memory_budget is not None else ann.default_budget()
    source = SetSource.of(space)
    if source.n == 0:
        raise InputError("cannot index an empty EmbeddingSet")
    model = source.model
    normalize = model is None or not model.normalized
    rows = VectorRows([source], normalize)
    chosen = ann.choose_kind(source.n, source.d, budget) if kind == "auto" else kind
    params = ann.default_params(chosen, source.n, source.d)
    faiss_index, params = ann.build(chosen, rows, params, progress=progress, random_state=random_state, adder=adder)
    lexical_index = settings = None
    if lexical:
        lexical_index = BM25Index().fit(source.table().column("text").to_pylist(), progress=progress)
        settings = lexical_index.settings()
    info = {
        "requested_kind": kind, "memory_budget": budget, "random_state": random_state,
        "seconds": round(time.perf_counter() - started, 3),
        "estimated_bytes": ann.estimate_bytes(chosen, source.n, source.d, params),
    }
    return Index(faiss_index, kind=chosen, params=params, model=model, normalize=normalize, sources=[source],
                 lexical_settings=settings, lexical=lexical_index, info=info)


def _combined(sources, names=None):
    """The sources' tables as one pyarrow Table (see :func:`embedspace.search.set_sources.combine_tables`)."""
    tables = [source.table() for source in sources]
    names = names or [str(source.path or f"set {i + 1}") for i, source in enumerate(sources)]
    return combine_tables(tables, names)
