"""The EmbeddingSet: vectors, a table of texts and metadata, and the model that made them.

It is the one object that flows between embedspace's stages. Vectors are one read-only
float32 array of shape ``(n, d)``; texts and metadata are columns of a pandas table with
one row per vector. Operations return new sets; nothing is changed in place.

On disk a set is a directory (format ``embedspace.embeddingset``, version 1)::

    SET/
      manifest.json   format, version, n, d, dtype, model identity, library versions,
                      sha256 and size of each payload
      vectors.npy     (n, d) float32 or float16, loadable memory-mapped
      table.parquet   the table, row i describing vector i

It is written to a temporary sibling and renamed into place, and loading verifies the
manifest and the checksums.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embedspace._fs import atomic_directory
from embedspace.errors import FormatError, InputError
from embedspace.store import NpyAppender, TableSink, read_consistently, read_manifest, write_manifest

__all__ = ["EmbeddingSet", "EmbeddingSetWriter", "FORMAT", "FORMAT_VERSION", "ModelIdentity"]

FORMAT = "embedspace.embeddingset"
FORMAT_VERSION = 1
_DTYPES = ("float32", "float16")
PAYLOADS = ("vectors.npy", "table.parquet")


@dataclass(frozen=True)
class ModelIdentity:
    """Who made a set of vectors: model, exact weights, backend and post-processing.

    Attributes
    ----------
    name : str
        Model name (``sentence-transformers/all-MiniLM-L6-v2``) or local folder.
    weights_sha256 : str
        sha256 over the model's files; two folders with the same files agree.
    dim : int
        Vector dimension.
    normalized : bool
        Whether vectors have unit L2 norm.
    max_seq_length : int
        Tokens kept per text; longer texts are truncated.
    backend : str
        The backend that computed the vectors.
    """

    name: str
    weights_sha256: str
    dim: int
    normalized: bool
    max_seq_length: int = 0
    backend: str = "torch"

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "ModelIdentity | None":
        """Rebuild from :meth:`to_dict` output (``None`` stays ``None``)."""
        if not data:
            return None
        if not isinstance(data, dict):
            raise FormatError(f"a model identity must be a JSON object, got {type(data).__name__}")
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        types = {"name": str, "weights_sha256": str, "dim": int, "normalized": bool, "max_seq_length": int, "backend": str}
        for name, value in known.items():
            if not isinstance(value, types[name]) or (types[name] is int and (isinstance(value, bool) or value < 0)):
                raise FormatError(f"model identity field '{name}' has an invalid value {value!r}")
        try:
            return cls(**known)
        except TypeError as exc:
            raise FormatError(f"incomplete model identity ({exc})") from None

    def same_space(self, other: "ModelIdentity | None") -> bool:
        """True when vectors of ``self`` and ``other`` can be compared (same weights and dim)."""
        return other is not None and self.weights_sha256 == other.weights_sha256 and self.dim == other.dim

    def describe(self) -> str:
        """Short human-readable form, e.g. ``all-MiniLM-L6-v2 (384-d, weights 1a2b3c4d)``."""
        return f"{Path(self.name).name or self.name} ({self.dim}-d, weights {self.weights_sha256[:8]})"


class EmbeddingSet:
    """Vectors plus a table of texts and metadata, one row per vector.

    Parameters
    ----------
    vectors : array-like of shape (n, d)
        Embeddings; stored as read-only (float32 unless already float16).
    table : pandas.DataFrame of n rows
        Must contain a ``text`` column; other columns are metadata.
    model : ModelIdentity or dict, optional
        The encoder that produced ``vectors``; ``None`` for vectors of unknown origin.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> space = es.embed(["a cat", "a dog"])  # doctest: +SKIP
    >>> space  # doctest: +SKIP
    EmbeddingSet<n=2, d=384, model=all-MiniLM-L6-v2 (384-d, weights 53aa5172)>
    """

    def __init__(self, vectors, table, model: ModelIdentity | dict | None = None):
        import pandas as pd

        array = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors)
        if array.dtype not in (np.float32, np.float16):
            array = array.astype(np.float32)
        if array.ndim != 2:
            raise InputError(f"vectors must have shape (n, d), got {array.shape}")
        if not isinstance(table, pd.DataFrame):
            raise InputError(f"table must be a pandas DataFrame, got {type(table).__name__}")
        if "text" not in table.columns:
            raise InputError(f"table needs a 'text' column (columns: {', '.join(map(str, table.columns))})")
        if len(table) != array.shape[0]:
            raise InputError(f"{array.shape[0]} vectors but {len(table)} table rows")
        if isinstance(array, np.memmap) or not array.flags.writeable:
            self._vectors = array
        else:
            self._vectors = array.view()
            self._vectors.flags.writeable = False
        self._table = table.reset_index(drop=True) if not isinstance(table.index, pd.RangeIndex) or table.index.start != 0 else table
        self.model = ModelIdentity.from_dict(model) if isinstance(model, dict) else model

    # -- basic access
    @property
    def vectors(self) -> np.ndarray:
        """ndarray of shape (n, d), float32, read-only (converted once if stored as float16)."""
        if self._vectors.dtype != np.float32:
            converted = self._vectors.astype(np.float32)
            converted.flags.writeable = False
            self._vectors = converted
        return self._vectors

    @property
    def stored_vectors(self) -> np.ndarray:
        """The vectors as stored (float16 or float32, possibly memory-mapped)."""
        return self._vectors

    @property
    def table(self):
        """pandas.DataFrame with ``text`` and metadata; treat as read-only."""
        return self._table

    @property
    def texts(self) -> list[str]:
        """The texts, in row order."""
        return self._table["text"].tolist()

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return int(self._vectors.shape[1])

    def __len__(self) -> int:
        return int(self._vectors.shape[0])

    def __repr__(self) -> str:
        model = self.model.describe() if self.model else "unknown model"
        return f"EmbeddingSet<n={len(self)}, d={self.dim}, model={model}>"

    # -- operations returning new sets
    def assign(self, **columns) -> "EmbeddingSet":
        """Return a new set with columns added or replaced (each of length n)."""
        return EmbeddingSet(self._vectors, self._table.assign(**columns), self.model)

    def select(self, rows) -> "EmbeddingSet":
        """Return a new set with the given rows (indices or boolean mask), renumbered 0..m-1."""
        index = np.asarray(rows)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return EmbeddingSet(
            np.asarray(self._vectors[index]), self._table.iloc[index].reset_index(drop=True), self.model
        )

    # -- persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False, dtype: str = "float32") -> Path:
        """Write the set as a directory, atomically.

        Parameters
        ----------
        path : path-like
            Output directory.
        overwrite : bool, default=False
            Replace an existing directory (as a whole).
        dtype : {"float32", "float16"}, default="float32"
            Element type of ``vectors.npy``.

        Returns
        -------
        Path
            The directory written.
        """
        with EmbeddingSetWriter(path, dim=self.dim, model=self.model, dtype=dtype, overwrite=overwrite) as writer:
            step = 65536
            for start in range(0, len(self), step):
                writer.append(self._vectors[start:start + step], self._table.iloc[start:start + step])
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True, verify: bool = True) -> "EmbeddingSet":
        """Read a set saved by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The set directory.
        mmap : bool, default=True
            Memory-map ``vectors.npy`` instead of reading it.
        verify : bool, default=True
            Check the sha256 of every payload.

        Raises
        ------
        FormatError
            Missing or foreign manifest, a newer format version, a failed checksum, or
            payloads that disagree with the manifest.
        """
        directory = Path(path)
        return read_consistently(directory, lambda snapshot: cls._load(directory, mmap, verify))

    @classmethod
    def _load(cls, directory: Path, mmap: bool, verify: bool) -> "EmbeddingSet":
        import pandas as pd
        import pyarrow.parquet as pq

        manifest = read_manifest(directory, FORMAT, FORMAT_VERSION, verify=verify, required=PAYLOADS)
        try:
            vectors = np.load(directory / "vectors.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
            table = pq.read_table(directory / "table.parquet").to_pandas()
        except (ValueError, OSError) as exc:
            raise FormatError(f"{directory}: unreadable payload ({exc})") from None
        n, d = manifest.get("n"), manifest.get("d")
        if vectors.ndim != 2 or vectors.shape != (n, d) or str(vectors.dtype) != manifest.get("dtype"):
            raise FormatError(f"{directory}: vectors.npy has shape {vectors.shape} {vectors.dtype}, manifest says ({n}, {d}) {manifest.get('dtype')}")
        if len(table) != n:
            raise FormatError(f"{directory}: table.parquet has {len(table)} rows, manifest says {n}")
        if "text" not in table.columns:
            raise FormatError(f"{directory}: table.parquet has no 'text' column")
        model = ModelIdentity.from_dict(manifest.get("model"))
        if model is not None and model.dim != d:
            raise FormatError(f"{directory}: the manifest says the model makes {model.dim}-d vectors, vectors.npy holds {d}-d ones")
        if not isinstance(table.index, pd.RangeIndex):
            table = table.reset_index(drop=True)
        return cls(vectors, table, model)


class EmbeddingSetWriter:
    """Stream an EmbeddingSet to disk chunk by chunk, with memory independent of n.

    Used as a context manager; the directory appears (atomically) only when the block
    ends without error.

    Parameters
    ----------
    path : path-like
        Output directory.
    dim : int
        Vector dimension.
    model : ModelIdentity or None
        Recorded in the manifest.
    dtype : {"float32", "float16"}, default="float32"
    overwrite : bool, default=False
    extra : dict, optional
        Extra manifest fields (e.g. the source it was read from).
    inputs : iterable, default=()
        What the set is computed from; an output that is or holds one is refused.
    """

    def __init__(self, path, *, dim: int, model: ModelIdentity | None, dtype: str = "float32", overwrite: bool = False,
                 extra: dict | None = None, inputs=()):
        if dtype not in _DTYPES:
            raise InputError(f"dtype must be one of {', '.join(_DTYPES)}, got '{dtype}'")
        self.path = Path(path)
        self.dim = int(dim)
        self.model = model
        self.dtype = dtype
        self.overwrite = overwrite
        self.extra = dict(extra or {})
        self.inputs = tuple(inputs)
        self._context = None
        self._vectors: NpyAppender | None = None
        self._table: TableSink | None = None
        self.rows = 0

    def __enter__(self) -> "EmbeddingSetWriter":
        self._context = atomic_directory(self.path, overwrite=self.overwrite, kind=FORMAT, inputs=self.inputs)
        self._tmp = self._context.__enter__()
        self._vectors = NpyAppender(self._tmp / "vectors.npy", self.dim, np.dtype(self.dtype))
        self._table = TableSink(self._tmp / "table.parquet")
        return self

    def append(self, vectors: np.ndarray, table) -> None:
        """Append rows: ``vectors`` of shape (m, dim) and a table of m rows with ``text``."""
        if len(table) != len(vectors):
            raise InputError(f"{len(vectors)} vectors but {len(table)} table rows")
        if "text" not in table.columns:
            raise InputError("table needs a 'text' column")
        if len(table) == 0:
            return
        self._vectors.append(vectors)
        self._table.append(table)
        self.rows += len(table)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                if self.rows == 0:
                    raise InputError("nothing to save: the set is empty")
                self._vectors.close()
                self._table.close()
                fields = {
                    "n": self.rows,
                    "d": self.dim,
                    "dtype": self.dtype,
                    "model": self.model.to_dict() if self.model else None,
                }
                fields.update(self.extra)
                write_manifest(self._tmp, FORMAT, FORMAT_VERSION, fields, files=list(PAYLOADS))
            else:
                self._vectors.abort()
        except BaseException as error:
            self._vectors.abort()
            self._context.__exit__(type(error), error, error.__traceback__)
            raise
        return self._context.__exit__(exc_type, exc, tb)
