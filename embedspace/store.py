"""Versioned, checksummed, atomically written directories.

Every artefact embedspace keeps for users (an EmbeddingSet, an index, a map, a VAE) is a
directory with a ``manifest.json``::

    {"format": "embedspace.embeddingset", "format_version": 1,
     "files": {"vectors.npy": {"sha256": "...", "bytes": 1536000}, ...},
     "library_versions": {...}, ...artefact fields...}

:func:`write_manifest` records the payload checksums; :func:`read_manifest` checks the
format name, refuses versions newer than this code understands, and (by default)
verifies every payload's size and sha256. Nothing is pickled.

This module also holds the streaming writers for the two payloads of an EmbeddingSet:
``vectors.npy`` (appended chunk by chunk; the header is written last) and
``table.parquet`` (schema-unified across chunks, so mixed-type metadata survives).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from embedspace._fs import sha256_file
from embedspace.errors import FormatError, InputError

__all__ = [
    "MANIFEST",
    "jsonable",
    "library_versions",
    "write_manifest",
    "read_manifest",
    "NpyAppender",
    "TableSink",
    "arrow_safe",
]

MANIFEST = "manifest.json"

# Known formats, so that a directory of another kind gets a helpful message.
_FORMAT_NAMES = {
    "embedspace.embeddingset": "an EmbeddingSet",
    "embedspace.index": "a search index",
    "embedspace.map": "a map directory",
    "embedspace.vae": "a VAE model",
}



def jsonable(value):
    """``value`` with numpy scalars, tuples and paths made JSON-ready; NaN and infinities become None.

    Dict keys become strings. Used for every JSON file and ``--json`` output, so that a
    non-finite figure is written as ``null``, never as the invalid token ``NaN``.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

def library_versions(*extra: str) -> dict[str, str]:
    """Versions of embedspace and of the libraries that shaped an artefact."""
    from importlib import metadata

    names = ("embedspace", "numpy", "pandas", "pyarrow") + tuple(extra)
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(directory: str | os.PathLike, fmt: str, version: int, fields: dict, *, files: list[str]) -> dict:
    """Checksum ``files`` inside ``directory`` and write ``manifest.json``.

    Parameters
    ----------
    directory : path-like
        The (temporary) directory holding the payloads.
    fmt : str
        Format name, e.g. ``"embedspace.embeddingset"``.
    version : int
        Format version written.
    fields : dict
        Artefact-specific fields (JSON-serialisable).
    files : list of str
        Payload file names relative to ``directory``.

    Returns
    -------
    dict
        The manifest written.
    """
    directory = Path(directory)
    manifest = {"format": fmt, "format_version": version}
    manifest.update(fields)
    manifest["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest["library_versions"] = fields.get("library_versions") or library_versions()
    manifest["files"] = {
        name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size} for name in files
    }
    with open(directory / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def read_manifest(directory: str | os.PathLike, fmt: str, max_version: int, *, verify: bool = True) -> dict:
    """Read and check ``manifest.json`` of an artefact directory.

    Parameters
    ----------
    directory : path-like
        The artefact directory.
    fmt : str
        Expected format name.
    max_version : int
        Newest format version this code reads.
    verify : bool, default=True
        Check size and sha256 of every payload listed.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    InputError
        If ``directory`` does not exist.
    FormatError
        If the manifest is missing or unreadable, the format is another one, the version
        is newer than ``max_version``, or a payload is missing or fails its checksum.
    """
    directory = Path(directory)
    wanted = _FORMAT_NAMES.get(fmt, fmt)
    if not directory.exists():
        raise InputError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise FormatError(f"{directory}: is a file, not {wanted} directory")
    path = directory / MANIFEST
    if not path.is_file():
        raise FormatError(f"{directory}: not {wanted} (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise FormatError(f"{path}: unreadable manifest (not a JSON object)")
    found = manifest.get("format")
    if found != fmt:
        what = _FORMAT_NAMES.get(found, f"format '{found}'")
        raise FormatError(f"{directory}: this is {what}, not {wanted}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise FormatError(f"{path}: invalid format_version {version!r}")
    if version > max_version:
        raise FormatError(
            f"{directory}: written by a newer embedspace (format version {version}, this one reads up to "
            f"{max_version}); upgrade embedspace to read it"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise FormatError(f"{path}: manifest lists no files")
    for name, meta in files.items():
        payload = directory / name
        if not payload.is_file():
            raise FormatError(f"{directory}: {name} is missing")
        if payload.stat().st_size != meta.get("bytes"):
            raise FormatError(
                f"{directory}: {name} has {payload.stat().st_size} bytes, manifest says {meta.get('bytes')} "
                "(truncated or edited)"
            )
        if verify and sha256_file(payload) != meta.get("sha256"):
            raise FormatError(f"{directory}: {name} fails its sha256 checksum (the file was changed or corrupted)")
    return manifest


class NpyAppender:
    """Write a 2-D ``.npy`` file whose row count is known only at the end.

    A fixed-size header is reserved, rows are appended as they come, and :meth:`close`
    writes the real header. The result is a standard ``.npy`` (format 1.0) that
    ``np.load(..., mmap_mode="r")`` opens.

    Parameters
    ----------
    path : path-like
        File to create.
    dim : int
        Number of columns.
    dtype : numpy dtype, default=float32
        Element type written.
    """

    _HEADER_BYTES = 128

    def __init__(self, path, dim: int, dtype=np.float32):
        self.path = Path(path)
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._handle = open(self.path, "wb")
        self._handle.write(b"\0" * self._HEADER_BYTES)

    def append(self, block: np.ndarray) -> None:
        """Append rows; ``block`` has shape (m, dim) and is cast to the file's dtype."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise ValueError(f"expected rows of width {self.dim}, got shape {block.shape}")
        self._handle.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        """Write the header and close the file."""
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = "{'descr': %r, 'fortran_order': False, 'shape': (%d, %d), }" % (descr, self.rows, self.dim)
        room = self._HEADER_BYTES - 10
        header = header.ljust(room - 1) + "\n"
        if len(header) != room:
            raise ValueError("npy header does not fit")
        self._handle.seek(0)
        self._handle.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + header.encode("latin1"))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the file)."""
        self._handle.close()


def arrow_safe(frame):
    """Return ``frame`` with columns pyarrow cannot store as one type turned into strings."""
    import pyarrow as pa

    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            frame[column] = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in frame[column]]
    return frame


class TableSink:
    """Write a parquet table from DataFrame chunks whose column types may disagree.

    Each chunk is written as a part file; :meth:`close` unifies the schemas (columns
    whose types conflict become strings) and streams the parts into one parquet file.

    Parameters
    ----------
    path : path-like
        Final parquet file.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._parts: list[Path] = []
        self._columns: list[str] | None = None

    def append(self, frame) -> None:
        """Add rows; ``frame`` must have the same column names as the first chunk."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = [str(c) for c in frame.columns]
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise InputError(f"columns changed between chunks: {self._columns} then {columns}")
        table = pa.Table.from_pandas(arrow_safe(frame.reset_index(drop=True)), preserve_index=False)
        part = self.path.with_name(f".{self.path.name}.part{len(self._parts):06d}")
        pq.write_table(table, part)
        self._parts.append(part)

    def close(self) -> None:
        """Unify part schemas and write the final file; remove the parts."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._parts:
            raise ValueError("no rows were written")
        schemas = [pq.read_schema(p) for p in self._parts]
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            schema = None
        if schema is None or not all(_castable(s, schema) for s in schemas):
            fields = []
            for name in schemas[0].names:
                types = {s.field(name).type for s in schemas}
                types.discard(pa.null())
                fields.append(pa.field(name, types.pop() if len(types) == 1 else pa.string()))
            schema = pa.schema(fields)
        schema = schema.remove_metadata()
        with pq.ParquetWriter(self.path, schema) as writer:
            for part in self._parts:
                table = pq.read_table(part).replace_schema_metadata(None)
                writer.write_table(_cast(table, schema))
        for part in self._parts:
            part.unlink(missing_ok=True)


def _castable(schema, target) -> bool:
    import pyarrow as pa

    for field in schema:
        wanted = target.field(field.name).type
        if field.type == wanted or field.type == pa.null():
            continue
        if pa.types.is_integer(field.type) and (pa.types.is_floating(wanted) or pa.types.is_integer(wanted)):
            continue
        return False
    return True


def _cast(table, schema):
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            if pa.types.is_string(field.type) and not pa.types.is_string(column.type):
                column = pc.cast(column, pa.string(), safe=False) if not pa.types.is_null(column.type) else pa.nulls(len(column), pa.string())
            else:
                column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
