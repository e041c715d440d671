"""The EmbeddingSets behind a search index: lazy, checksummed access without pandas.

An index does not copy texts and metadata; it reads them from the EmbeddingSet(s) it
was built from (:class:`SetSource`), either a set directory on disk (its manifest
checksum recorded in the index manifest, payloads hashed when first read) or a set held
in memory. :class:`VectorRows` gives row access across several sets as normalised
float32 for building, exact re-ranking and exact filtered search.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from embedspace._fs import sha256_file
from embedspace.embeddingset import PAYLOADS, ModelIdentity
from embedspace.errors import FormatError, InputError, ModelMismatchError
from embedspace.store import Snapshot, arrow_safe, read_manifest

__all__ = ["SetSource", "VectorRows", "combine_tables", "open_entry", "verify_payloads"]

_SET_FORMAT = "embedspace.embeddingset"


class SetSource:
    """One EmbeddingSet behind an index: on disk (read lazily, without pandas) or in memory."""

    def __init__(self, n: int, d: int, model, *, path: Path | None = None, manifest_sha256: str | None = None,
                 embedded: bool = False, space=None, manifest: dict | None = None, snapshot: Snapshot | None = None):
        self.n, self.d, self.model = n, d, model
        self.path, self.manifest_sha256, self.embedded = path, manifest_sha256, embedded
        self.space, self._manifest = space, manifest
        # the generation payloads are read from: the index's for a set kept inside it, else the set's own
        self.snapshot = snapshot
        self._vectors = None
        self._table = None

    @classmethod
    def of(cls, space) -> "SetSource":
        """From an EmbeddingSet object or the path of a set directory."""
        if isinstance(space, (str, os.PathLike)):
            return cls.open(Path(space).expanduser().absolute())
        if not hasattr(space, "vectors") or not hasattr(space, "table"):
            raise InputError(f"expected an EmbeddingSet or the path of one, got {type(space).__name__}")
        return cls(len(space), space.dim, space.model, space=space)

    @classmethod
    def open(cls, path: Path, expected_sha256: str | None = None, *, embedded: bool = False, index_dir=None,
             snapshot: Snapshot | None = None) -> "SetSource":
        own = Snapshot(path)
        if (path / "manifest.json").is_file():
            sha = sha256_file(path / "manifest.json")
            if expected_sha256 and sha != expected_sha256:
                raise FormatError(
                    f"{index_dir}: the EmbeddingSet {path} changed after the index was built (its manifest checksum "
                    f"differs); rebuild the index: embedspace index {path} -o {index_dir} --overwrite"
                )
        manifest = read_manifest(path, _SET_FORMAT, 1, verify=False, required=PAYLOADS)
        try:
            n, d = int(manifest["n"]), int(manifest["d"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{path}: the set's manifest lacks n or d ({exc})") from None
        model = ModelIdentity.from_dict(manifest.get("model"))
        if model is not None and model.dim != d:
            raise FormatError(f"{path}: the manifest says the model makes {model.dim}-d vectors, the set holds {d}-d ones")
        source = cls(n, d, model, path=path, manifest_sha256=sha256_file(path / "manifest.json"),
                     embedded=embedded, manifest=manifest, snapshot=snapshot or own)
        own.check()  # the set was not replaced while its manifest was read
        return source

    def _read(self, name: str, read):
        """``read(path)`` of a payload whose sha256 is checked first; a concurrent replacement is :class:`BusyError`."""
        payload = self.path / name
        try:
            if sha256_file(payload) != self._manifest["files"][name]["sha256"]:
                raise FormatError(f"{self.path}: {name} fails its sha256 checksum (the file was changed or corrupted)")
            result = read(payload)
        except (FormatError, OSError, ValueError) as exc:
            if self.snapshot is not None and self.snapshot.changed():
                raise self.snapshot.busy() from exc
            raise
        if self.snapshot is not None:
            self.snapshot.check()  # what was checked is what was read
        return result

    def vectors(self) -> np.ndarray:
        """The (n, d) vectors as stored (memory-mapped for sets on disk)."""
        if self._vectors is None:
            if self.space is not None:
                self._vectors = self.space.stored_vectors
            else:
                self._vectors = self._read("vectors.npy", lambda p: np.load(p, mmap_mode="r", allow_pickle=False))
                if self._vectors.shape != (self.n, self.d):
                    raise FormatError(f"{self.path}: vectors.npy has shape {self._vectors.shape}, expected ({self.n}, {self.d})")
        return self._vectors

    def peek(self, rows) -> np.ndarray:
        """A few rows of the vectors as stored, read without hashing the whole file (for a cross-check)."""
        if self._vectors is not None or self.space is not None:
            return np.asarray(self.vectors()[rows])
        try:
            mapped = np.load(self.path / "vectors.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{self.path}: unreadable vectors.npy ({exc})") from None
        if mapped.shape != (self.n, self.d):
            raise FormatError(f"{self.path}: vectors.npy has shape {mapped.shape}, expected ({self.n}, {self.d})")
        return np.asarray(mapped[rows])

    def table(self):
        """The table as a pyarrow Table."""
        if self._table is None:
            import pyarrow as pa

            if self.space is not None:
                self._table = pa.Table.from_pandas(arrow_safe(self.space.table), preserve_index=False)
            else:
                import pyarrow.parquet as pq

                def read(path):
                    try:  # ParquetFile, not read_table: pyarrow.dataset would import pandas (~0.3 s)
                        return pq.ParquetFile(path).read()
                    except pa.ArrowException as exc:
                        raise FormatError(f"{self.path}: unreadable table.parquet ({exc})") from None

                self._table = self._read("table.parquet", read)
            if self._table.num_rows != self.n or "text" not in self._table.column_names:
                raise FormatError(f"{self.path}: table.parquet does not match its manifest ({self._table.num_rows} rows)")
        return self._table


class VectorRows:
    """Row access across the sources: ``take(rows)`` gives L2-normalised float32 rows."""

    def __init__(self, sources: list[SetSource], normalize: bool):
        self.sources = sources
        self.normalize = normalize
        self.offsets = np.cumsum([0] + [s.n for s in sources])
        self.n = int(self.offsets[-1])
        self.d = sources[0].d

    def take(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        parts = []
        for i, source in enumerate(self.sources):
            lo, hi = np.searchsorted(rows, [self.offsets[i], self.offsets[i + 1]])
            if hi > lo:
                local = rows[lo:hi] - self.offsets[i]
                array = source.vectors()
                contiguous = local[-1] - local[0] + 1 == len(local)
                parts.append(array[local[0]:local[-1] + 1] if contiguous else array[local])
        block = np.ascontiguousarray(np.concatenate(parts) if len(parts) != 1 else parts[0], dtype=np.float32)
        if self.normalize:
            block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        return block


def verify_payloads(directory: Path, *, prefix: str, manifest: dict | None = None) -> None:
    """Check the sha256 of the manifest's payloads whose names start with ``prefix``.

    The BM25 files are checked only when a BM25 search first needs them, so a dense
    search does not pay for hashing them.
    """
    if manifest is None:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    for name, meta in manifest.get("files", {}).items():
        if name.startswith(prefix) and sha256_file(directory / name) != meta.get("sha256"):
            raise FormatError(f"{directory}: {name} fails its sha256 checksum (the file was changed or corrupted)")


def open_entry(directory: Path, entry: dict, snapshot: Snapshot | None = None) -> SetSource:
    """The EmbeddingSet an index manifest's ``sources`` entry names (inside the index, or where it was)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("n"), int):
        raise FormatError(f"{directory}: an entry of the manifest's 'sources' is not a set path with a row count")
    embedded = bool(entry.get("embedded"))
    if embedded:  # a copy kept inside the index: never a path that leads out of it
        inner = Path(entry["path"])
        if inner.is_absolute() or ".." in inner.parts or (directory / inner).is_symlink():
            raise FormatError(f"{directory}: the manifest names a set kept inside the index at {entry['path']!r}, "
                              "which is outside it")
    candidates = [directory / entry["path"]]
    if entry.get("absolute_path") and not embedded:
        candidates.append(Path(entry["absolute_path"]))
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            source = SetSource.open(candidate.resolve(), entry.get("manifest_sha256"), embedded=embedded, index_dir=directory,
                                    snapshot=snapshot if embedded else None)
            if source.n != entry.get("n"):
                raise FormatError(f"{directory}: the EmbeddingSet {candidate} has {source.n} rows, the index expects {entry.get('n')}")
            return source
    shown = entry.get("absolute_path") or str(directory / entry["path"])
    raise FormatError(
        f"{directory}: the EmbeddingSet this index reads texts from is missing ({shown}); put it back or rebuild the "
        f"index from a set: embedspace index SET -o {directory} --overwrite"
    )


def combine_tables(tables: list, names: list[str] | None = None):
    """One pyarrow Table of the rows of several sets, each column of one type, no value changed.

    A column's types across sets are reconciled only without loss: missing or all-null
    columns take the others' type, integers widen to a wider integer, integers meet floats
    as float64 only when every value is exactly representable, strings meet large strings.
    Anything else (a column of numbers in one set and of text in the other) is refused:
    searching such an index would fail on every query.

    Parameters
    ----------
    tables : list of pyarrow.Table
        The sets' tables, in index order.
    names : list of str, optional
        How to name each table in messages (its set's path).

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    InputError
        A column whose values cannot share one type, naming the column and both types.
    """
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    names = names or [f"set {i + 1}" for i in range(len(tables))]
    columns: dict[str, list] = {}
    for i, table in enumerate(tables):
        for field in table.schema:
            columns.setdefault(field.name, []).append((i, field.type))
    fields = []
    for column, types in columns.items():
        target = None
        for i, kind in types:
            if pa.types.is_null(kind):
                continue
            if target is None:
                target, first, first_kind = kind, i, kind
                continue
            if kind == target:
                continue
            try:
                target = pa.unify_schemas([pa.schema([(column, target)]), pa.schema([(column, kind)])],
                                          promote_options="permissive").field(column).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                target = None
            if target is None:
                raise InputError(
                    f"column '{column}' holds {first_kind} in {names[first]} but {kind} in {names[i]}; the sets of "
                    "one index need the same type in each "
                    "column (convert it in one of them and embed it again)"
                )
        fields.append(pa.field(column, target if target is not None else pa.null()))
    schema = pa.schema(fields)
    out = []
    for i, table in enumerate(tables):
        arrays = []
        for field in schema:
            if field.name not in table.column_names:
                arrays.append(pa.nulls(table.num_rows, field.type))
                continue
            column = table.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    raise InputError(
                        f"column '{field.name}' of {names[i]} cannot become {field.type} without changing values "
                        f"({str(exc).splitlines()[0]}); the sets of one index need the same type in each column"
                    ) from None
            arrays.append(column)
        out.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(out)


def describe_model(model) -> str:
    """A model's full name, dimension and weights prefix (for messages naming two models)."""
    if model is None:
        return "an unknown model"
    return f"{model.name} ({model.dim}-d, weights {model.weights_sha256[:8]})"


def check_same_space(model, d, other, other_d, *, what: str) -> None:
    """Refuse ``other`` (``what``, e.g. "the EmbeddingSet x.set") unless it shares the index's vector space."""
    if d != other_d:
        raise ModelMismatchError(f"{what} has {other_d}-dimensional vectors but the index holds {d}-dimensional ones")
    if (model is None) != (other is None) or (model is not None and not model.same_space(other)):
        raise ModelMismatchError(
            f"{what} was embedded by {describe_model(other)} but the index holds vectors of {describe_model(model)}; "
            "embed it with the index's model"
        )
