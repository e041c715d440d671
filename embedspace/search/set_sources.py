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
from embedspace.embeddingset import ModelIdentity
from embedspace.errors import FormatError, InputError
from embedspace.store import arrow_safe, read_manifest

__all__ = ["SetSource", "VectorRows", "open_entry", "verify_payloads"]

_SET_FORMAT = "embedspace.embeddingset"


class SetSource:
    """One EmbeddingSet behind an index: on disk (read lazily, without pandas) or in memory."""

    def __init__(self, n: int, d: int, model, *, path: Path | None = None, manifest_sha256: str | None = None,
                 embedded: bool = False, space=None, manifest: dict | None = None):
        self.n, self.d, self.model = n, d, model
        self.path, self.manifest_sha256, self.embedded = path, manifest_sha256, embedded
        self.space, self._manifest = space, manifest
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
    def open(cls, path: Path, expected_sha256: str | None = None, *, embedded: bool = False, index_dir=None) -> "SetSource":
        if (path / "manifest.json").is_file():
            sha = sha256_file(path / "manifest.json")
            if expected_sha256 and sha != expected_sha256:
                raise FormatError(
                    f"{index_dir}: the EmbeddingSet {path} changed after the index was built (its manifest checksum "
                    f"differs); rebuild the index: embedspace index {path} -o {index_dir} --overwrite"
                )
        manifest = read_manifest(path, _SET_FORMAT, 1, verify=False)
        model = ModelIdentity.from_dict(manifest.get("model"))
        return cls(int(manifest["n"]), int(manifest["d"]), model, path=path, manifest_sha256=sha256_file(path / "manifest.json"),
                   embedded=embedded, manifest=manifest)

    def _verified(self, name: str) -> Path:
        payload = self.path / name
        if sha256_file(payload) != self._manifest["files"][name]["sha256"]:
            raise FormatError(f"{self.path}: {name} fails its sha256 checksum (the file was changed or corrupted)")
        return payload

    def vectors(self) -> np.ndarray:
        """The (n, d) vectors as stored (memory-mapped for sets on disk)."""
        if self._vectors is None:
            if self.space is not None:
                self._vectors = self.space.stored_vectors
            else:
                self._vectors = np.load(self._verified("vectors.npy"), mmap_mode="r", allow_pickle=False)
                if self._vectors.shape != (self.n, self.d):
                    raise FormatError(f"{self.path}: vectors.npy has shape {self._vectors.shape}, expected ({self.n}, {self.d})")
        return self._vectors

    def table(self):
        """The table as a pyarrow Table."""
        if self._table is None:
            import pyarrow as pa

            if self.space is not None:
                self._table = pa.Table.from_pandas(arrow_safe(self.space.table), preserve_index=False)
            else:
                import pyarrow.parquet as pq

                try:  # ParquetFile, not read_table: pyarrow.dataset would import pandas (~0.3 s)
                    self._table = pq.ParquetFile(self._verified("table.parquet")).read()
                except (OSError, pa.ArrowException) as exc:
                    raise FormatError(f"{self.path}: unreadable table.parquet ({exc})") from None
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


def open_entry(directory: Path, entry: dict) -> SetSource:
    candidates = [directory / entry["path"]]
    if entry.get("absolute_path"):
        candidates.append(Path(entry["absolute_path"]))
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            source = SetSource.open(candidate.resolve(), entry.get("manifest_sha256"), embedded=bool(entry.get("embedded")), index_dir=directory)
            if source.n != entry.get("n"):
                raise FormatError(f"{directory}: the EmbeddingSet {candidate} has {source.n} rows, the index expects {entry.get('n')}")
            return source
    shown = entry.get("absolute_path") or str(directory / entry["path"])
    raise FormatError(
        f"{directory}: the EmbeddingSet this index reads texts from is missing ({shown}); put it back or rebuild the "
        f"index from a set: embedspace index SET -o {directory} --overwrite"
    )
