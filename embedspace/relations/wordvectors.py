"""Term spaces: words and phrases with unit vectors, from the sentence encoder or a word-vector file.

The relation verbs (neighbours, analogies, odd one out, axes) and the word benchmarks need
two things: a way to turn any query term into a vector, and a *vocabulary* of candidate
terms to rank. :class:`TermSpace` holds both, whatever made the vectors:

- the sentence encoder (default all-MiniLM-L6-v2): any string, a word or a phrase, is
  embedded on demand through the embedding cache, optionally as the average of a few
  prompt templates (:data:`WORD_TEMPLATES`); the vocabulary is the shipped English word
  list (``corpora/words/english-30k.txt``), another word list, or an EmbeddingSet;
- classic static vectors read by :func:`read_word_vectors` (word2vec text or binary, GloVe
  text): a term is a key of the file (exact match first, then case-insensitively); a phrase
  that is not a key is the mean of its words' unit vectors; anything else is
  out-of-vocabulary.

Vectors are kept L2-normalised, so every score is a cosine. The vocabulary matrix of the
encoder is also saved as a ``.npy`` file in the cache folder, keyed by model, templates and
word list, so after the first run it loads memory-mapped in milliseconds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from embedspace._fs import atomic_write_bytes, cache_dir
from embedspace.corpora import corpora_dir
from embedspace.embeddingset import EmbeddingSet
from embedspace.encoding import EmbeddingCache, encode_texts, load_encoder, namespace_of
from embedspace.errors import InputError, ModelMismatchError
from embedspace.sources import read

__all__ = [
    "DEFAULT_VOCABULARY",
    "WORD_TEMPLATES",
    "TermSpace",
    "load_vocabulary",
    "read_word_vectors",
]

log = logging.getLogger("embedspace")

DEFAULT_VOCABULARY = "words/english-30k.txt"
"""The shipped word list, relative to the corpora folder (see ``corpora/README.md``)."""

WORD_TEMPLATES = (
    "{}",
    'the word "{}"',
    'the meaning of the word "{}"',
    "a sentence about {}.",
    "something related to {}.",
)
"""Prompt templates averaged by ``templates=True`` (prompt ensembling, as in CLIP, Radford et
al. 2021): each term is embedded in every template, the unit vectors are averaged and the
mean is normalised. Chosen on MTurk-771; it raises MEN from 0.764 to 0.819 and WS-353 from
0.729 to 0.777 with the default model (``scripts/bench_words.py``; table in
``scripts/BENCHMARKS.md``, section bench_words.py)."""


# --- vocabularies ---------------------------------------------------------------------------
def _unique_terms(terms) -> list[str]:
    cleaned = (" ".join(str(t).split()) for t in terms)
    return list(dict.fromkeys(t for t in cleaned if t))


def load_vocabulary(source=None) -> list[str]:
    """Read a list of candidate terms.

    Parameters
    ----------
    source : None, "default", path-like or sequence of str
        ``None`` or ``"default"``: the shipped list of the 30,000 most frequent English words.
        A ``.txt`` file: one term (word or phrase) per line. Any other file that
        :func:`embedspace.read` accepts: its ``text`` column. A sequence: the terms themselves.

    Returns
    -------
    list of str
        Distinct terms in their first order, whitespace collapsed, blanks dropped.

    Raises
    ------
    InputError
        Missing file, or no terms.
    """
    if source is None or (isinstance(source, str) and source == "default"):
        path = corpora_dir() / DEFAULT_VOCABULARY
        if not path.is_file():
            raise InputError(f"the shipped word list is missing: {path} (set EMBEDSPACE_CORPORA_DIR)")
        return _unique_terms(path.read_text(encoding="utf-8").splitlines())
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"vocabulary '{source}': no such file")
        if path.is_dir() and (path / "manifest.json").is_file():
            return _unique_terms(EmbeddingSet.load(path).texts)
        if path.is_file() and path.suffix.lower() == ".txt":
            try:
                terms = _unique_terms(path.read_text(encoding="utf-8").splitlines())
            except UnicodeDecodeError as exc:
                raise InputError(f"vocabulary '{source}': not valid UTF-8 near byte {exc.start}") from None
        else:
            terms = _unique_terms(read(path)["text"].tolist())
        if not terms:
            raise InputError(f"vocabulary '{source}' has no terms (expected one word or phrase per line)")
        return terms
    terms = _unique_terms(source)
    if not terms:
        raise InputError("the vocabulary is empty: give at least one term")
    return terms


# --- word-vector files ----------------------------------------------------------------------
def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _looks_binary(path: Path) -> bool:
    if path.name.endswith((".bin", ".bin.gz")):
        return True
    with _open_binary(path) as handle:
        handle.readline()
        sample = handle.read(1 << 16)
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 4  # a character cut at the end of the sample is fine
    return False


_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf|infinity)"


def _parse_header(first: str) -> tuple[int, int] | None:
    fields = first.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


def read_word_vectors(path, *, binary: bool | None = None, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read word2vec (text or binary) or GloVe (text, no header) vectors.

    Parameters
    ----------
    path : path-like
        The vector file; ``.gz`` is decompressed on the fly.
    binary : bool or None, default=None
        word2vec binary layout; ``None`` decides from the name (``.bin``) and the bytes.
    limit : int, optional
        Read only the first ``limit`` vectors (files are usually sorted by frequency).

    Returns
    -------
    keys : list of str of length n
        In file order; a repeated key keeps its first vector.
    vectors : ndarray of shape (n, d), float32
        As stored (not normalised).

    Raises
    ------
    InputError
        Missing or empty file, a malformed line (its number is given), a wrong count in
        the header, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"word vectors '{path}': no such file")
    if path.stat().st_size == 0:
        raise InputError(f"word vectors '{path}': file is empty (expected word2vec or GloVe vectors)")
    if binary is None:
        binary = _looks_binary(path)
    keys, rows = (_read_binary if binary else _read_text)(path, limit)
    if not keys:
        raise InputError(f"word vectors '{path}': no vectors in the file")
    vectors = np.vstack(rows).astype(np.float32, copy=False)
    if not np.isfinite(vectors).all():
        bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise InputError(f"word vectors '{path}': the vector of '{keys[bad]}' has NaN or infinite values")
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    if len(first) < len(keys):
        log.warning("%s: %d repeated keys; the first vector of each is kept", path, len(keys) - len(first))
        index = np.fromiter(first.values(), dtype=np.int64)
        keys, vectors = list(first), vectors[index]
    return keys, vectors


def _read_text(path: Path, limit):
    keys: list[str] = []
    rows: list[np.ndarray] = []
    with _open_binary(path) as raw:
        handle = io.TextIOWrapper(raw, encoding="utf-8", newline=None)
        lineno = 0
        header = None
        dim = None
        try:
            for line in handle:
                lineno += 1
                if not line.strip():
                    continue
                if lineno == 1 and (header := _parse_header(line)) is not None:
                    dim = header[1]
                    if dim < 1:
                        raise InputError(f"word vectors '{path}': line 1: dimension must be at least 1, got {dim}")
                    continue
                stripped = line.rstrip()
                fields = [f for f in stripped.split(" ") if f]  # not str.split(): keys may hold other spaces
                if len(fields) == 1:
                    fields = stripped.split()
                if dim is None:
                    dim = len(fields) - 1
                    if dim < 1:
                        raise InputError(f"word vectors '{path}': line {lineno}: expected a word followed by numbers, got '{line.strip()[:60]}'")
                if len(fields) < dim + 1:
                    raise InputError(
                        f"word vectors '{path}': line {lineno}: expected a word and {dim} numbers, "
                        f"found {len(fields) - 1} values"
                    )
                try:
                    values = np.array(fields[-dim:], dtype=np.float32)
                except ValueError:
                    bad = next((f for f in fields[-dim:] if not re.fullmatch(_NUMBER, f, re.I)), fields[-1])
                    raise InputError(f"word vectors '{path}': line {lineno}: '{bad[:30]}' is not a number") from None
                keys.append(" ".join(fields[:-dim]))
                rows.append(values)
                if limit is not None and len(keys) >= limit:
                    break
        except UnicodeDecodeError:
            raise InputError(
                f"word vectors '{path}': line {lineno + 1}: not valid UTF-8 (a word2vec binary file? pass binary=True)"
            ) from None
    if header is not None and limit is None and len(keys) != header[0]:
        raise InputError(f"word vectors '{path}': the header announces {header[0]} vectors but the file has {len(keys)}")
    return keys, rows


def _read_binary(path: Path, limit):
    keys: list[str] = []
    rows: list[np.ndarray] = []
    with _open_binary(path) as handle:
        header = _parse_header(handle.readline().decode("ascii", "replace"))
        if header is None:
            raise InputError(f"word vectors '{path}': line 1: a word2vec binary file starts with 'COUNT DIM'")
        count, dim = header
        count = count if limit is None else min(count, limit)
        width = 4 * dim
        for record in range(1, count + 1):
            word = bytearray()
            while True:
                byte = handle.read(1)
                if not byte:
                    raise InputError(f"word vectors '{path}': record {record}: file ends early (header announces {header[0]} vectors)")
                if byte == b" ":
                    break
                if byte != b"\n" or word:
                    word += byte
            data = handle.read(width)
            if len(data) != width:
                raise InputError(f"word vectors '{path}': record {record}: file ends early (header announces {header[0]} vectors)")
            try:
                keys.append(word.decode("utf-8"))
            except UnicodeDecodeError:
                raise InputError(f"word vectors '{path}': record {record}: the word is not valid UTF-8") from None
            rows.append(np.frombuffer(data, dtype="<f4"))
    return keys, rows


# --- embedders: turn terms into unit vectors -----------------------------------------------
def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class _EncoderTerms:
    """Embed any string with a sentence encoder, through the cache, with optional templates."""

    kind = "encoder"

    def __init__(self, encoder, templates: Sequence[str] | None, cache: bool):
        self.encoder = encoder
        self.templates = tuple(templates) if templates else ("{}",)
        self.cache = cache
        self.identity = encoder.identity
        self.dim = encoder.dim

    def describe(self) -> str:
        extra = f", {len(self.templates)} templates" if self.templates != ("{}",) else ""
        return f"{self.identity.describe()}{extra}"

    def key(self) -> str:
        templates = hashlib.sha256("\x1f".join(self.templates).encode()).hexdigest()[:12]
        return f"{namespace_of(self.identity)}-{templates}"

    def embed(self, terms: Sequence[str], *, case_insensitive: bool = False, progress=None):
        terms = list(terms)
        total = np.zeros((len(terms), self.dim), dtype=np.float32)
        if terms:
            store = EmbeddingCache() if self.cache else None
            try:
                for template in self.templates:
                    texts = [template.format(t) for t in terms]
                    vectors, _ = encode_texts(self.encoder, texts, cache=store, progress=progress)
                    total += _unit(vectors)
            finally:
                if store is not None:
                    store.close()
        return _unit(total), np.ones(len(terms), dtype=bool)


class _StaticTerms:
    """Look terms up in static word vectors; phrases are the mean of their words."""

    kind = "static"
    identity = None

    def __init__(self, keys: list[str], vectors: np.ndarray, source: str):
        self.keys = keys
        self.unit = _unit(vectors)
        self.unit.flags.writeable = False
        self.dim = self.unit.shape[1]
        self.source = source
        self.exact = {k: i for i, k in enumerate(keys)}
        self.folded: dict[str, int] = {}
        for i, k in enumerate(keys):
            self.folded.setdefault(k.upper(), i)  # first (most frequent) case variant wins, as in gensim

    def describe(self) -> str:
        return f"{self.source} ({len(self.keys)} vectors, {self.dim}-d)"

    def first(self, n: int) -> "_StaticTerms":
        """The same vectors with only the first ``n`` keys known."""
        return _StaticTerms(self.keys[:n], self.unit[:n], self.source)

    def index(self, term: str, case_insensitive: bool = False) -> int | None:
        """Row of ``term``: gensim's case-insensitive rule when asked, else exact then folded."""
        if case_insensitive:
            return self.folded.get(term.upper())
        found = self.exact.get(term)
        return found if found is not None else self.folded.get(term.upper())

    def embed(self, terms: Sequence[str], *, case_insensitive: bool = False, progress=None):
        vectors = np.zeros((len(terms), self.dim), dtype=np.float32)
        found = np.zeros(len(terms), dtype=bool)
        for i, term in enumerate(terms):
            row = self.index(term, case_insensitive)
            if row is None and " " in term:
                row = self.index(term.replace(" ", "_"), case_insensitive)
            if row is not None:
                vectors[i], found[i] = self.unit[row], True
                continue
            words = term.split()
            rows = [self.index(w, case_insensitive) for w in words]
            if len(words) > 1 and all(r is not None for r in rows):
                vectors[i], found[i] = _unit(self.unit[rows].mean(axis=0, keepdims=True))[0], True
        return vectors, found


# --- the term space -------------------------------------------------------------------------
class TermSpace:
    """Candidate terms with unit vectors, plus the means to embed any query term.

    Build one with :meth:`from_encoder` (which also takes an EmbeddingSet as vocabulary) or :meth:`from_file`.

    Attributes
    ----------
    terms : list of str of length n
        The vocabulary: candidates for neighbours, analogy answers and random axis poles.
    vectors : ndarray of shape (n, d), float32, read-only
        Unit vectors of ``terms``.
    kind : {"encoder", "static"}
    identity : ModelIdentity or None
        The encoder, for encoder-made spaces.

    Examples
    --------
    >>> from embedspace.relations.wordvectors import TermSpace  # doctest: +SKIP
    >>> space = TermSpace.from_encoder()  # doctest: +SKIP
    >>> space  # doctest: +SKIP
    TermSpace<30000 terms, all-MiniLM-L6-v2 (384-d, weights c4a57a7f)>
    """

    def __init__(self, terms: Sequence[str], vectors: np.ndarray, embedder, *, vocabulary_source: str = ""):
        vectors = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors)  # keeps a memmap mapped
        if vectors.ndim != 2 or vectors.shape[0] != len(terms):
            raise InputError(f"{len(terms)} terms but vectors of shape {vectors.shape}")
        if vectors.shape[0] and vectors.shape[1] != embedder.dim:
            raise ModelMismatchError(f"vocabulary vectors are {vectors.shape[1]}-d but the term embedder is {embedder.dim}-d")
        self.terms = list(terms)
        self.vectors = vectors if not vectors.flags.writeable else vectors.view()
        if self.vectors.flags.writeable:
            self.vectors.flags.writeable = False
        self._embedder = embedder
        self.vocabulary_source = vocabulary_source
        self._folded: dict[str, list[int]] | None = None

    # -- construction
    @classmethod
    def from_encoder(cls, vocabulary="default", *, encoder=None, model: str | None = None, backend: str = "auto",
                     templates: bool | Sequence[str] = False, cache: bool = True, progress=None) -> "TermSpace":
        """A space whose terms are embedded by a sentence encoder.

        Parameters
        ----------
        vocabulary : "default", None, path-like, sequence of str or EmbeddingSet
            Candidate terms (see :func:`load_vocabulary`); ``None`` for none (query-only use,
            e.g. word-similarity). An EmbeddingSet supplies its texts and vectors as they are.
        encoder : Encoder, optional
            A ready encoder; default :func:`~embedspace.encoding.encoders.load_encoder`\\ (``model``, ``backend``).
        templates : bool or sequence of str, default=False
            ``True`` averages :data:`WORD_TEMPLATES`; a sequence gives templates with ``{}``.
        cache : bool, default=True
            Use the embedding cache (and the saved vocabulary matrix).
        progress : bool or None
            Progress bar while embedding a new vocabulary.
        """

        if templates is True:
            templates = WORD_TEMPLATES
        if templates:
            bad = [t for t in templates if t.count("{}") != 1]
            if bad:
                raise InputError(f"template '{bad[0]}' must contain '{{}}' exactly once (where the term goes)")
        encoder = encoder or load_encoder(model, backend=backend)
        embedder = _EncoderTerms(encoder, templates or None, cache)
        if isinstance(vocabulary, EmbeddingSet):
            return cls._from_set(vocabulary, embedder)
        if vocabulary is None:
            return cls([], np.zeros((0, embedder.dim), dtype=np.float32), embedder, vocabulary_source="(none)")
        if isinstance(vocabulary, (str, os.PathLike)) and Path(vocabulary).is_dir():
            return cls._from_set(EmbeddingSet.load(vocabulary), embedder)
        return cls(embedder=embedder, terms=[], vectors=np.zeros((0, embedder.dim), np.float32)).with_vocabulary(vocabulary, progress=progress)

    @classmethod
    def from_file(cls, path, *, vocabulary=None, binary: bool | None = None, limit: int | None = None) -> "TermSpace":
        """A space of static word vectors (word2vec text/binary or GloVe text).

        Parameters
        ----------
        path : path-like
            See :func:`read_word_vectors`.
        vocabulary : None, path-like or sequence of str
            Candidates; default every key of the file. Terms of a given vocabulary that the
            file lacks are left out.
        binary : bool or None
        limit : int, optional
            Read only the first ``limit`` vectors.
        """
        keys, vectors = read_word_vectors(path, binary=binary, limit=limit)
        embedder = _StaticTerms(keys, vectors, str(path))
        space = cls(keys, embedder.unit, embedder, vocabulary_source=f"{Path(path).name} (all keys)")
        return space if vocabulary is None else space.with_vocabulary(vocabulary)

    @classmethod
    def _from_set(cls, embedding_set, embedder) -> "TermSpace":
        if embedding_set.model is None or not embedder.identity.same_space(embedding_set.model):
            made_by = embedding_set.model.describe() if embedding_set.model else "an unknown model"
            raise ModelMismatchError(
                f"the vocabulary set was embedded by {made_by}, but terms are embedded by "
                f"{embedder.identity.describe()}; embed the vocabulary with the same model"
            )
        return cls(embedding_set.texts, _unit(embedding_set.vectors), embedder, vocabulary_source="EmbeddingSet")

    # -- derived spaces
    def with_vocabulary(self, vocabulary, *, progress=None) -> "TermSpace":
        """The same embedder with other candidate terms.

        For static vectors the candidates are the given terms that the file has (its own
        spelling of each, once); for the encoder every term is embedded.
        """
        terms = load_vocabulary(vocabulary)
        if self.kind == "encoder":
            label = "english-30k (shipped)" if isinstance(vocabulary, str) and vocabulary == "default" else (
                str(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else f"{len(terms)} given terms")
            return TermSpace(terms, _vocabulary_matrix(self._embedder, terms, progress), self._embedder, vocabulary_source=label)
        rows = [self._embedder.index(t) for t in terms]
        rows = list(dict.fromkeys(r for r in rows if r is not None))
        if not rows:
            raise InputError(f"none of the {len(terms)} vocabulary terms is in {self._embedder.source}")
        kept = [self._embedder.keys[r] for r in rows]
        return TermSpace(kept, self._embedder.unit[rows], self._embedder, vocabulary_source=f"{len(kept)} of {len(terms)} vocabulary terms")

    def restrict(self, n: int) -> "TermSpace":
        """Static vectors with only their first ``n`` keys, for queries and candidates alike
        (gensim's ``restrict_vocab``)."""
        if self.kind != "static":
            raise InputError("restrict_vocab= applies to static word vectors read from a file, not to the sentence encoder")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"restrict_vocab must be a whole number of at least 1, got {n!r}")
        embedder = self._embedder.first(int(n))
        return TermSpace(embedder.keys, embedder.unit, embedder, vocabulary_source=f"first {len(embedder.keys)} keys")

    # -- access
    @property
    def kind(self) -> str:
        return self._embedder.kind

    @property
    def identity(self):
        return self._embedder.identity

    @property
    def dim(self) -> int:
        return int(self._embedder.dim)

    def describe(self) -> str:
        """One line: what embeds the terms and what the vocabulary is."""
        return f"{self._embedder.describe()}; vocabulary {self.vocabulary_source} ({len(self)} terms)"

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        return f"TermSpace<{len(self)} terms, {self._embedder.describe()}>"

    def embed(self, terms: Sequence[str], *, missing: str = "raise", case_insensitive: bool = False, progress=None):
        """Unit vectors of query terms.

        Parameters
        ----------
        terms : sequence of str of length k
            Words or phrases.
        missing : {"raise", "mask"}, default="raise"
            For static vectors: raise :class:`InputError` naming the out-of-vocabulary terms,
            or return them as zero rows with ``found`` false.
        case_insensitive : bool, default=False
            Static vectors: match keys by upper case only, first key winning (gensim's rule).

        Returns
        -------
        vectors : ndarray of shape (k, d), float32
        found : ndarray of shape (k,), bool
        """
        vectors, found = self._embedder.embed(list(terms), case_insensitive=case_insensitive, progress=progress)
        if missing == "raise" and not found.all():
            absent = [t for t, ok in zip(terms, found) if not ok]
            raise InputError(
                f"not in the word vectors: {', '.join(repr(t) for t in absent[:10])}"
                f"{' …' if len(absent) > 10 else ''} (check the spelling, or use terms of {self._embedder.describe()})"
            )
        return vectors, found

    def same_term_rows(self, term: str) -> list[int]:
        """Candidate rows whose term equals ``term`` ignoring case (what answers must exclude)."""
        if self._folded is None:
            folded: dict[str, list[int]] = {}
            for i, t in enumerate(self.terms):
                folded.setdefault(t.upper(), []).append(i)
            self._folded = folded
        return self._folded.get(" ".join(term.split()).upper(), [])


def _vocabulary_matrix(embedder: _EncoderTerms, terms: list[str], progress) -> np.ndarray:
    """Unit vectors of ``terms``, saved once per (model, templates, word list) as a .npy file."""

    digest = hashlib.sha256("\n".join(terms).encode("utf-8")).hexdigest()[:16]
    path = cache_dir() / "vocabularies" / f"{embedder.key()}-{digest}.npy"
    if embedder.cache and path.is_file():
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
            if matrix.shape == (len(terms), embedder.dim) and matrix.dtype == np.float32:
                return matrix
        except (ValueError, OSError):
            pass
        log.warning("rebuilding the unreadable vocabulary matrix %s", path)
    if len(terms) > 5000:
        log.info("embedding a vocabulary of %d terms once (saved in %s for later runs)", len(terms), path.parent)
    matrix, _ = embedder.embed(terms, progress=progress)
    if embedder.cache:
        buffer = io.BytesIO()
        np.save(buffer, matrix, allow_pickle=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as exc:
            log.warning("could not save the vocabulary matrix to %s (%s)", path, exc)
    return matrix
