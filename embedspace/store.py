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
import re
import struct
import time
from pathlib import Path

import numpy as np

from embedspace._fs import sha256_file
from embedspace.errors import BusyError, EmbedspaceError, FormatError, InputError

__all__ = [
    "MANIFEST",
    "jsonable",
    "library_versions",
    "write_manifest",
    "read_manifest",
    "read_consistently",
    "Snapshot",
    "csv_safe",
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


def read_manifest(directory: str | os.PathLike, fmt: str, max_version: int, *, verify: bool = True,
                  required=()) -> dict:
    """Read and check ``manifest.json`` of an artefact directory.

    A manifest is a claim, checked against what is on disk: it must list every payload the
    format needs (``required``), each with a plain relative name, size and sha256; each
    listed payload must exist with that size (and that checksum with ``verify``); and the
    directory must hold no symbolic link, so reading it never leaves it.

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
    required : iterable of str, default=()
        Payload names the format cannot do without.

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
        is newer than ``max_version``, a required payload is not listed, a payload is
        missing or fails its checksum, or the directory holds a link.
    """
    directory = Path(directory)
    wanted = _FORMAT_NAMES.get(fmt, fmt)
    if not directory.exists():
        raise InputError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise FormatError(f"{directory}: is a file, not {wanted} directory")
    path = directory / MANIFEST
    if not path.is_file() and not path.is_symlink():
        raise FormatError(f"{directory}: not {wanted} (no {MANIFEST})")
    refuse_links(directory)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise FormatError(f"{path}: unreadable manifest (not a JSON object)")
    found = manifest.get("format")
    if found != fmt:
        what = _FORMAT_NAMES.get(found, f"format '{found}'") if isinstance(found, str) else "not an embedspace format"
        raise FormatError(f"{directory}: this is {what}, not {wanted}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{path}: invalid format_version {version!r}")
    if version > max_version:
        raise FormatError(
            f"{directory}: written by a newer embedspace (format version {version}, this one reads up to "
            f"{max_version}); upgrade embedspace to read it"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise FormatError(f"{path}: the manifest lists no payload files, so nothing in {directory} can be checked")
    for name, meta in files.items():
        _check_payload_entry(path, name, meta)
    missing = [name for name in required if name not in files]
    if missing:
        raise FormatError(f"{path}: the manifest does not list {', '.join(missing)}, which {wanted} needs")
    for name, meta in files.items():
        payload = directory / name
        if not payload.is_file():
            raise FormatError(f"{directory}: {name} is missing")
        if payload.stat().st_size != meta["bytes"]:
            raise FormatError(
                f"{directory}: {name} has {payload.stat().st_size} bytes, manifest says {meta['bytes']} "
                "(truncated or edited)"
            )
        if verify and sha256_file(payload) != meta["sha256"]:
            raise FormatError(f"{directory}: {name} fails its sha256 checksum (the file was changed or corrupted)")
    return manifest


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_payload_entry(path: Path, name, meta) -> None:
    """A ``files`` entry: a plain relative name inside the directory, an exact size and a sha256."""
    parts = Path(name).parts if isinstance(name, str) else ()
    if (not parts or os.path.isabs(name) or ".." in parts or "\\" in name or "\x00" in name
            or os.path.normpath(name) != name or name == MANIFEST):
        raise FormatError(f"{path}: the manifest lists a payload outside its directory or with a bad name: {name!r}")
    if (not isinstance(meta, dict) or not isinstance(meta.get("bytes"), int) or isinstance(meta.get("bytes"), bool)
            or meta["bytes"] < 0 or not isinstance(meta.get("sha256"), str) or not _SHA256.match(meta["sha256"])):
        raise FormatError(f"{path}: the manifest entry of {name!r} lacks a size or a sha256")


def refuse_links(directory: str | os.PathLike) -> None:
    """Raise :class:`FormatError` if anything below ``directory`` is a symbolic link.

    embedspace never writes links into its directories; one found there would make a
    reader (or a copy, such as ``index add`` makes) leave the directory.
    """
    directory = Path(directory)
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            full = os.path.join(root, name)
            if os.path.islink(full):
                raise FormatError(f"{directory}: {os.path.relpath(full, directory)} is a symbolic link; embedspace "
                                  "directories hold no links (put the file itself there, or rebuild the directory)")


class Snapshot:
    """Which generation of a directory a reader started from, to tell a concurrent replacement from damage.

    Writers replace a directory as a whole (a rename), so the directory's inode and its
    manifest's inode identify one generation. A reader takes a snapshot, reads, and asks
    :meth:`changed`: if the directory was swapped meanwhile, what it read may mix two
    generations and must be read again; if not, any error it met is real.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.stamp = self._stamp()

    def _stamp(self):
        try:
            folder = os.stat(self.directory)
            manifest = os.stat(self.directory / MANIFEST)
        except OSError:
            return None
        # ctimes too: a rename changes the moved folder's ctime, so even a generation swapped out and
        # back (same inodes, same times) between two looks is seen as changed
        return (folder.st_dev, folder.st_ino, folder.st_ctime_ns, manifest.st_ino, manifest.st_mtime_ns,
                manifest.st_ctime_ns, manifest.st_size)

    def changed(self) -> bool:
        """True if the directory is no longer the generation this snapshot saw."""
        return self._stamp() != self.stamp

    def busy(self) -> BusyError:
        """The error to raise when :meth:`changed` is true."""
        return BusyError(f"{self.directory} was replaced by another process while it was being read (busy); "
                         "run the command again")

    def check(self) -> None:
        """Raise :class:`BusyError` if the directory changed since the snapshot."""
        if self.changed():
            raise self.busy()


def read_consistently(directory: str | os.PathLike, read, *, attempts: int = 8):
    """Call ``read(snapshot)`` until it reads one generation of ``directory`` whole.

    Parameters
    ----------
    directory : path-like
    read : callable
        ``read(snapshot) -> result``; reads the directory (and may keep ``snapshot`` to
        check later, lazy reads against).
    attempts : int, default=8

    Returns
    -------
    The result of ``read``.

    Raises
    ------
    BusyError
        If the directory was replaced during every attempt.
    Other errors of ``read`` when the directory did not change while it ran.
    """
    snapshot = None
    for attempt in range(attempts):
        snapshot = Snapshot(directory)
        try:
            result = read(snapshot)
        except (EmbedspaceError, OSError, ValueError):
            if not snapshot.changed():
                raise
        else:
            if not snapshot.changed():
                return result
        time.sleep(0.02 * (attempt + 1))
    raise snapshot.busy()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame):
    """``frame`` with text cells that a spreadsheet would run as a formula made inert.

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
    prefixed with ``'`` (the OWASP rule for CSV injection), so text taken from documents
    (``=HYPERLINK(...)``) is shown, never evaluated. Numbers are left as they are; text
    columns are treated alike whether pandas holds them as ``object`` or ``str``.
    """
    import pandas as pd

    frame = frame.copy()
    for column in frame.columns:
        kind = frame[column].dtype
        if not (kind == object or pd.api.types.is_string_dtype(kind)):  # numbers, dates: never a formula
            continue
        frame[column] = [("'" + v) if isinstance(v, str) and v.startswith(_FORMULA_START) else v for v in frame[column]]
    return frame


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
