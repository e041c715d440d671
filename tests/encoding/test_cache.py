"""The embedding cache's on-disk schema: compact rows, and old databases migrated in place."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from embedspace.encoding.cache import EmbeddingCache, namespace_of, text_key
from embedspace.embeddingset import ModelIdentity
from embedspace.errors import InputError

IDENTITY = ModelIdentity(name="test-model", weights_sha256="0" * 64, dim=384, normalized=True, max_seq_length=256,
                         backend="onnx")


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, IDENTITY.dim)).astype(np.float32)


def test_a_384_d_vector_takes_under_1_9_kb_on_disk(tmp_path):
    texts = [f"sentence number {i}" for i in range(3000)]
    vectors = _vectors(len(texts))
    with EmbeddingCache(tmp_path / "embeddings.sqlite") as cache:
        for start in range(0, len(texts), 1000):
            cache.put(IDENTITY, texts[start:start + 1000], vectors[start:start + 1000])
        cache._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        found, back = cache.get(IDENTITY, texts)
    assert found.all() and np.array_equal(back, vectors)
    per_vector = (tmp_path / "embeddings.sqlite").stat().st_size / len(texts)
    assert per_vector < 1900, per_vector  # 1536 bytes of float32 + key, namespace and index


def test_a_version_1_cache_is_migrated_and_keeps_its_vectors(tmp_path):
    path = tmp_path / "embeddings.sqlite"
    texts = ["a cat sat on the mat", "a dog ran in the park", "two people talk"]
    vectors = _vectors(len(texts), seed=1)
    ns = namespace_of(IDENTITY)
    with sqlite3.connect(path) as conn:  # the schema embedspace wrote before version 2
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE namespaces (ns TEXT PRIMARY KEY, model TEXT, backend TEXT, dim INTEGER, created TEXT);
            CREATE TABLE vectors (ns TEXT NOT NULL, key BLOB NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
            INSERT INTO meta VALUES ('schema_version', '1');
        """)
        conn.execute("INSERT INTO namespaces VALUES (?, ?, ?, ?, datetime('now'))", (ns, IDENTITY.name, IDENTITY.backend, IDENTITY.dim))
        conn.executemany("INSERT INTO vectors VALUES (?, ?, ?)", [(ns, text_key(t), v.tobytes()) for t, v in zip(texts, vectors)])
    with EmbeddingCache(path) as cache:
        found, back = cache.get(IDENTITY, texts + ["never cached"])
        assert found.tolist() == [True, True, True, False]
        assert np.array_equal(back[:3], vectors)
        cache.put(IDENTITY, ["never cached"], _vectors(1, seed=2))
        assert cache.info()["n_vectors"] == 4
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "vectors_v1" not in tables


def test_a_cache_from_a_newer_embedspace_is_left_alone_and_not_used(tmp_path, caplog):
    path = tmp_path / "embeddings.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    cache = EmbeddingCache(path)
    found, _ = cache.get(IDENTITY, ["x"])  # the command goes on, without the cache (issue 30: it never traps)
    cache.put(IDENTITY, ["x"], np.ones((1, 384), dtype=np.float32))
    cache.close()
    assert not found.any() and "upgrade" in caplog.text
    with sqlite3.connect(path) as conn:  # its content as it was: nothing migrated, nothing written
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("meta",)]
        assert conn.execute("SELECT value FROM meta").fetchall() == [("99",)]


_OPEN_AT = """
import sys, time
from embedspace.encoding.cache import EmbeddingCache
start = float(sys.argv[2])
while time.time() < start:
    pass
EmbeddingCache(sys.argv[1])._connect()
"""


@pytest.mark.slow
def test_two_processes_opening_a_new_cache_at_the_same_moment_both_succeed(tmp_path):
    """Setting WAL on a new database races: the loser got 'database is locked' at once (17 of 40 pairs)."""
    import subprocess
    import sys
    import time

    for attempt in range(8):
        path = tmp_path / str(attempt) / "embeddings.sqlite"
        path.parent.mkdir()
        start = str(time.time() + 1.0)  # both past their imports, then open together
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, str(path), start],
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
