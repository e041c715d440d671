"""A content-addressed, multi-process-safe cache of embeddings.

Vectors are stored in one SQLite database (WAL mode) under the user cache directory
(``EMBEDSPACE_CACHE_DIR`` overrides it). A vector is found by its *namespace* — a hash of
the model identity (name, sha256 of the weights, backend, normalisation, dimension,
maximum length) — and a 128-bit BLAKE2 hash of its text, so no text is embedded twice
by the same model and backend, whatever file it came from.

SQLite gives the safety properties for free: writes are transactions, so a process
killed mid-write leaves the cache as it was before that transaction; two processes
writing at once serialise on SQLite's lock (with a generous busy timeout); and
``INSERT OR IGNORE`` makes concurrent writes of the same text harmless.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from embedspace._fs import cache_dir
from embedspace.encoding.backends import PADDING_SENSITIVE
from embedspace.errors import InputError

__all__ = ["EmbeddingCache", "namespace_of", "text_key"]

_SCHEMA_VERSION = 2
"""2: vectors in a rowid table with a unique (ns, key) index (1.7 KB per 384-d vector
on disk); 1 kept them in a WITHOUT ROWID table, where every 1.5 KB row spilled to an
overflow page (4.7 KB per vector). Version-1 databases are migrated when opened."""
_PAGE_SIZE = 8192  # five 384-d float32 rows per page
_VECTORS_TABLE = (
    "CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, key BLOB NOT NULL, vec BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS vectors_ns_key ON vectors (ns, key)",
)
# Folders next to the database holding matrices derived from cached vectors (e.g. the
# embedded word list of `relate`); `clear` empties them too. Exported models are kept.
_DERIVED_DIRS = ("vocabularies",)
_PARAMS_PER_QUERY = 900  # below SQLite's default limit on bound parameters


@contextlib.contextmanager
def _database_errors(path: Path):
    """Report a failing cache database (disk full, I/O error, damaged file) as one clear OSError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise OSError(
            f"embedding cache {path}: {exc} (free some disk space, run 'embedspace cache clear', or use cache=False)"
        ) from None


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` … ``COMMIT``; on any failure roll back and re-raise the original error.

    SQLite has already rolled back after some errors (a full disk): then there is nothing
    to roll back, and the original error is the one to report.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _create_or_migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables, or bring a version-1 database to the current schema, in one transaction."""
    with contextlib.suppress(sqlite3.OperationalError):  # no meta table yet: a new database
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row and row[0] == str(_SCHEMA_VERSION):
            return  # the usual case: nothing to write, so a read-only cache still reads
    with _write_transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE IF NOT EXISTS namespaces (ns TEXT PRIMARY KEY, model TEXT, backend TEXT, dim INTEGER, created TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else None
        if version is not None and version > _SCHEMA_VERSION:
            raise InputError(f"embedding cache {path} was written by a newer embedspace (schema {version}); "
                             "upgrade embedspace, or set EMBEDSPACE_CACHE_DIR to another folder")
        if version == 1:
            conn.execute("ALTER TABLE vectors RENAME TO vectors_v1")
        for statement in _VECTORS_TABLE:  # one by one: executescript would commit the transaction
            conn.execute(statement)
        if version == 1:
            conn.execute("INSERT OR IGNORE INTO vectors (ns, key, vec) SELECT ns, key, vec FROM vectors_v1")
            conn.execute("DROP TABLE vectors_v1")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),))


def _open_database(path: Path, *, patience: float = 120.0) -> sqlite3.Connection:
    """Connect, switch to WAL and create or migrate the schema, waiting out other processes.

    Two processes opening a new cache at the same moment race to set its journal mode:
    SQLite answers the loser "database is locked" at once, without its busy timeout
    (17 of 40 simultaneous pairs here). Setting up is idempotent, so it is retried with a
    short random pause until ``patience`` seconds have passed.
    """
    import random
    import time

    deadline = time.monotonic() + patience
    while True:
        conn = sqlite3.connect(str(path), timeout=patience, isolation_level=None)
        try:
            conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # only takes effect on a new database
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            _create_or_migrate(conn, path)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.02, 0.2))
        except BaseException:
            conn.close()
            raise


def namespace_of(identity) -> str:
    """Hash of everything about an encoder that changes its vectors."""
    parts = [
        identity.name,
        identity.weights_sha256,
        identity.backend,
        str(bool(identity.normalized)),
        str(identity.dim),
        str(identity.max_seq_length),
    ]

    if identity.backend in PADDING_SENSITIVE:
        # vectors since per-text padding widths (batch-independent; v2: short texts are not
        # padded at all); older entries, which differ by up to 1e-3, are never mixed with them
        parts.append("padding=per-text-v2")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def text_key(text: str) -> bytes:
    """128-bit BLAKE2b digest of a text's UTF-8 bytes."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingCache:
    """Embeddings keyed by (model namespace, text hash).

    Parameters
    ----------
    path : path-like, optional
        SQLite file; default ``cache_dir() / "embeddings.sqlite"``.

    Examples
    --------
    >>> cache = EmbeddingCache("/tmp/demo.sqlite")  # doctest: +SKIP
    >>> found, vectors = cache.get(encoder.identity, ["hello"])  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else cache_dir() / "embeddings.sqlite"
        self._conn: sqlite3.Connection | None = None

    # -- connection
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = _open_database(self.path)
            except sqlite3.DatabaseError as exc:
                raise InputError(
                    f"embedding cache {self.path} is unusable ({exc}); run 'embedspace cache clear'"
                ) from None
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the database connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- access
    def get(self, identity, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Look up vectors.

        Parameters
        ----------
        identity : ModelIdentity
            The encoder that made (or would make) the vectors.
        texts : sequence of str of length n

        Returns
        -------
        found : ndarray of shape (n,), bool
        vectors : ndarray of shape (n, dim), float32
            Rows where ``found`` is false are zero.
        """
        ns = namespace_of(identity)
        keys = [text_key(t) for t in texts]
        found = np.zeros(len(texts), dtype=bool)
        vectors = np.zeros((len(texts), identity.dim), dtype=np.float32)
        if not keys:
            return found, vectors
        position: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            position.setdefault(key, []).append(i)
        conn = self._connect()
        unique = list(position)
        for start in range(0, len(unique), _PARAMS_PER_QUERY):
            block = unique[start:start + _PARAMS_PER_QUERY]
            marks = ",".join("?" * len(block))
            with _database_errors(self.path):
                rows = conn.execute(f"SELECT key, vec FROM vectors WHERE ns = ? AND key IN ({marks})", [ns, *block]).fetchall()
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape[0] != identity.dim:
                    continue
                for i in position[key]:
                    vectors[i] = vector
                    found[i] = True
        return found, vectors

    def put(self, identity, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors of shape (n, dim) for ``texts`` in one transaction."""
        if len(texts) == 0:
            return
        ns = namespace_of(identity)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(ns, text_key(t), vectors[i].tobytes()) for i, t in enumerate(texts)]
        conn = self._connect()
        with _database_errors(self.path), _write_transaction(conn):
            conn.execute(
                "INSERT OR IGNORE INTO namespaces VALUES (?, ?, ?, ?, datetime('now'))",
                (ns, identity.name, identity.backend, identity.dim),
            )
            conn.executemany("INSERT OR IGNORE INTO vectors (ns, key, vec) VALUES (?, ?, ?)", rows)

    # -- maintenance
    def info(self) -> dict:
        """Summary: path, size on disk and vectors per model/backend.

        Returns
        -------
        dict
            ``{"path", "bytes", "n_vectors", "models": [{"model", "backend", "dim", "n_vectors"}]}``
        """
        exists = self.path.is_file()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()) if exists else 0
        size += sum(p.stat().st_size for p in self._derived_files())
        result = {"path": str(self.path), "bytes": size, "n_vectors": 0, "models": []}
        if not exists:
            return result
        conn = self._connect()
        for ns, model, backend, dim in conn.execute("SELECT ns, model, backend, dim FROM namespaces ORDER BY created"):
            (count,) = conn.execute("SELECT COUNT(*) FROM vectors WHERE ns = ?", (ns,)).fetchone()
            result["models"].append({"model": model, "backend": backend, "dim": dim, "n_vectors": count})
            result["n_vectors"] += count
        return result

    def _derived_files(self) -> list[Path]:
        return [p for name in _DERIVED_DIRS for p in (self.path.parent / name).glob("*") if p.is_file()]

    def clear(self) -> int:
        """Delete every cached vector (and matrices derived from them); return how many vectors there were."""
        for path in self._derived_files():
            path.unlink(missing_ok=True)
        if not self.path.is_file():
            return 0
        conn = self._connect()
        (count,) = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()
        with _write_transaction(conn):
            conn.execute("DELETE FROM vectors")
            conn.execute("DELETE FROM namespaces")
        conn.execute("VACUUM")
        return int(count)
