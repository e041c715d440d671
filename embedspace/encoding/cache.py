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

The cache is a convenience, so it never stops a command: a read-only cache is read
without writing, a damaged database is moved aside and replaced, ``clear`` works on a
damaged one, and vectors read back are checked (finite, the right size) before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Sequence

import numpy as np

from embedspace._fs import cache_dir, remove_stale_temporaries
from embedspace.encoding.backends import PADDING_SENSITIVE
from embedspace.errors import InputError

__all__ = ["EmbeddingCache", "namespace_of", "text_key"]

log = logging.getLogger("embedspace")

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
            raise _NewerSchema(f"it was written by a newer embedspace (schema {version}); upgrade embedspace, or set "
                               "EMBEDSPACE_CACHE_DIR to another folder")
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

    The cache never stops a command. A cache that cannot be written (a read-only folder or
    file) is read without adding to it; a damaged database is moved aside as
    ``embeddings.sqlite.damaged-DATE`` and a new one is started; each is said once, as a
    warning. A cached vector that is not finite or has the wrong dimension is dropped and
    computed again.

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
        self.read_only = False  # set when the cache is read but never written
        self._opened_inode = None

    # -- connection
    def _connect(self) -> sqlite3.Connection | None:
        """The connection, opened on first use; ``None`` when there is no usable cache (work goes on without)."""
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection | None:
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._writable():
            return self._open_read_only("it is read-only")
        _remove_dead_exports(self.path.parent / "models")
        try:
            conn = _open_database(self.path)
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                self._set_aside(exc)
                try:
                    conn = _open_database(self.path)
                except sqlite3.DatabaseError as again:
                    return self._without(f"a new cache cannot be started ({again})")
            elif _is_read_only(exc):
                return self._open_read_only(f"it cannot be written ({exc})")
            else:
                return self._without(str(exc))
        except _NewerSchema as exc:
            return self._without(str(exc))
        self._opened_inode = _inode(self.path)
        return conn

    def _writable(self) -> bool:
        if self.path.exists():
            return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK | os.X_OK)
        return os.access(self.path.parent, os.W_OK | os.X_OK)

    def _open_read_only(self, why: str) -> sqlite3.Connection | None:
        self.read_only = True
        if not self.path.is_file():
            _say_once(self.path, f"the embedding cache {self.path} cannot be written ({why}); working without a cache")
            return None
        uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
        for mode in ("?mode=ro", "?immutable=1"):  # immutable: no -wal/-shm to create beside it
            try:
                conn = sqlite3.connect(uri + mode, uri=True, isolation_level=None)
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    return self._without(f"it is damaged ({exc}) and cannot be moved aside ({why})")
                continue
            if not row or row[0] != str(_SCHEMA_VERSION):
                conn.close()
                return self._without(f"its schema is {row[0] if row else 'missing'} and {why}")
            _say_once(self.path, f"the embedding cache {self.path} is read-only ({why}): reading vectors from it, "
                                 "not adding new ones")
            return conn
        return self._without(f"{why}, and it cannot be opened for reading")

    def _without(self, why: str) -> None:
        self.read_only = True
        _say_once(self.path, f"the embedding cache {self.path} cannot be used ({why}); working without a cache")
        return None

    def _set_aside(self, exc: Exception, conn: sqlite3.Connection | None = None) -> None:
        """Move a damaged database out of the way (once, whichever process sees it first)."""
        from filelock import FileLock

        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            with FileLock(str(self.path) + ".lock"):
                # only the file this process found damaged: another may have started a new one already
                if self._opened_inode is None or _inode(self.path) == self._opened_inode:
                    if self.path.exists():
                        os.replace(self.path, aside)
                    for suffix in ("-wal", "-shm"):
                        extra = Path(str(self.path) + suffix)
                        if extra.exists():
                            os.replace(extra, Path(str(aside) + suffix))
        except OSError as error:
            raise OSError(f"embedding cache {self.path} is damaged ({exc}) and cannot be moved aside "
                          f"({error.strerror or error}); use cache=False, or set EMBEDSPACE_CACHE_DIR to another folder") from None
        self._opened_inode = None
        _say_once(self.path, f"the embedding cache {self.path} was damaged ({exc}); moved it aside to {aside.name} "
                             "and started a new one")

    def _recover(self, exc: sqlite3.DatabaseError) -> bool:
        """After a failed query: True if the database was damaged and a new one is now open."""
        if not _is_damage(exc) or self.read_only:
            return False
        conn, self._conn = self._conn, None
        self._set_aside(exc, conn)
        return self._connect() is not None

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
            Rows where ``found`` is false are zero. Cached vectors that are not finite or
            have another dimension count as not found (and are removed from the cache).
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
        try:
            rows = self._select(ns, list(position))
        except sqlite3.DatabaseError as exc:
            if not self._recover(exc):
                raise _as_os_error(self.path, exc) from None
            return found, vectors  # a new, empty cache
        bad = []
        for key, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32) if len(blob) % 4 == 0 else np.zeros(0, np.float32)
            if vector.shape[0] != identity.dim or not np.isfinite(vector).all():
                bad.append(key)
                continue
            for i in position[key]:
                vectors[i] = vector
                found[i] = True
        if bad:
            self._drop(ns, bad)
        return found, vectors

    def _select(self, ns: str, keys: list[bytes]) -> list:
        conn = self._connect()
        if conn is None:
            return []
        rows = []
        for start in range(0, len(keys), _PARAMS_PER_QUERY):
            block = keys[start:start + _PARAMS_PER_QUERY]
            marks = ",".join("?" * len(block))
            rows += conn.execute(f"SELECT key, vec FROM vectors WHERE ns = ? AND key IN ({marks})", [ns, *block]).fetchall()
        return rows

    def _drop(self, ns: str, keys: list[bytes]) -> None:
        """Remove bad cached vectors so that they are computed and stored again."""
        log.warning("dropped %d damaged cached vectors (not finite, or of the wrong size) from %s; computing them again",
                    len(keys), self.path)
        conn = self._connect()
        if conn is None or self.read_only:
            return
        with contextlib.suppress(sqlite3.Error), _write_transaction(conn):
            conn.executemany("DELETE FROM vectors WHERE ns = ? AND key = ?", [(ns, key) for key in keys])

    def put(self, identity, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors of shape (n, dim) for ``texts`` in one transaction (not finite ones are not stored)."""
        if len(texts) == 0:
            return
        ns = namespace_of(identity)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        finite = np.isfinite(vectors).all(axis=1)
        rows = [(ns, text_key(t), vectors[i].tobytes()) for i, t in enumerate(texts) if finite[i]]
        for attempt in range(2):
            conn = self._connect()
            if conn is None or self.read_only:
                return
            try:
                with _write_transaction(conn):
                    conn.execute(
                        "INSERT OR IGNORE INTO namespaces VALUES (?, ?, ?, ?, datetime('now'))",
                        (ns, identity.name, identity.backend, identity.dim),
                    )
                    conn.executemany("INSERT OR IGNORE INTO vectors (ns, key, vec) VALUES (?, ?, ?)", rows)
                return
            except sqlite3.DatabaseError as exc:
                if _is_read_only(exc):
                    self.read_only = True
                    _say_once(self.path, f"the embedding cache {self.path} is read-only ({exc}): reading vectors "
                                         "from it, not adding new ones")
                    return
                if attempt or not self._recover(exc):
                    raise _as_os_error(self.path, exc) from None

    # -- maintenance
    def info(self) -> dict:
        """Summary: path, size on disk and vectors per model/backend.

        Returns
        -------
        dict
            ``{"path", "bytes", "n_vectors", "models": [{"model", "backend", "dim", "n_vectors"}], "read_only"}``
        """
        exists = self.path.is_file()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()) if exists else 0
        size += sum(p.stat().st_size for p in self._derived_files())
        result = {"path": str(self.path), "bytes": size, "n_vectors": 0, "models": []}
        conn = self._connect() if exists else None
        if conn is not None:
            try:
                for ns, model, backend, dim in conn.execute("SELECT ns, model, backend, dim FROM namespaces ORDER BY created").fetchall():
                    (count,) = conn.execute("SELECT COUNT(*) FROM vectors WHERE ns = ?", (ns,)).fetchone()
                    result["models"].append({"model": model, "backend": backend, "dim": dim, "n_vectors": count})
                    result["n_vectors"] += count
            except sqlite3.DatabaseError as exc:
                if not self._recover(exc):
                    raise _as_os_error(self.path, exc) from None
                result["models"], result["n_vectors"] = [], 0
        result["read_only"] = self.read_only
        return result

    def _derived_files(self) -> list[Path]:
        return [p for name in _DERIVED_DIRS for p in (self.path.parent / name).glob("*") if p.is_file()]

    def clear(self) -> int:
        """Delete every cached vector (and matrices derived from them); return how many vectors there were.

        Works whatever state the cache is in: a damaged database (and any copy a damaged
        one was moved aside to) is deleted as a file.

        Raises
        ------
        InputError
            If the cache folder cannot be written.
        """
        for path in self._derived_files():
            path.unlink(missing_ok=True)
        for aside in self.path.parent.glob(self.path.name + ".damaged-*"):
            aside.unlink(missing_ok=True)
        if not self.path.is_file():
            return 0
        if not self._writable():
            raise InputError(f"cannot clear the embedding cache {self.path}: it is read-only")
        self.close()
        count = 0
        try:
            conn = _open_database(self.path)
            try:
                (count,) = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()
                with _write_transaction(conn):
                    conn.execute("DELETE FROM vectors")
                    conn.execute("DELETE FROM namespaces")
                conn.execute("VACUUM")
            finally:
                conn.close()
        except (sqlite3.DatabaseError, _NewerSchema):
            # not a database we can empty: it is only a cache, so the file goes
            for name in (self.path.name, self.path.name + "-wal", self.path.name + "-shm"):
                (self.path.parent / name).unlink(missing_ok=True)
        return int(count)


class _NewerSchema(Exception):
    """The database was written by a newer embedspace."""


_DAMAGE = ("file is not a database", "malformed", "not a database", "file is encrypted")
_READ_ONLY = ("readonly", "read-only", "unable to open database file", "attempt to write")
_said: set = set()


def _remove_dead_exports(models: Path) -> None:
    """Delete half-written model exports (``NAME.tmp-PID``) whose process died (kill -9, power cut)."""
    if not models.is_dir():
        return
    remove_stale_temporaries(models, ours_only_here=True)
    with contextlib.suppress(OSError):
        for entry in os.scandir(models):
            if entry.is_dir(follow_symlinks=False):
                remove_stale_temporaries(entry.path, ours_only_here=True)


def _is_damage(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(word in str(exc).lower() for word in _DAMAGE)


def _is_read_only(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(word in str(exc).lower() for word in _READ_ONLY)


def _inode(path: Path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _say_once(path: Path, message: str) -> None:
    """A warning about the cache, once per process and message."""
    if (str(path), message) not in _said:
        _said.add((str(path), message))
        log.warning("%s", message)


def _as_os_error(path: Path, exc: sqlite3.DatabaseError) -> OSError:
    return OSError(f"embedding cache {path}: {exc} (free some disk space, run 'embedspace cache clear', or use cache=False)")
