"""Two ``embedspace embed`` processes at once, sharing one embedding cache.

Users run several embeds side by side (a notebook and a script, two shells). The cache is
one SQLite file for all of them, so two real processes are started together on one fresh
cache folder, once with texts that overlap and once with texts that do not. Both sets must
equal what one process alone computes (same rows in the same order, vectors within 1e-6),
the database must pass ``PRAGMA integrity_check``, and a third run over all the texts must
find every one of them in the cache.

The processes use the exact ``onnx`` backend: the default int8 backend quantises each
batch's activations with scales of that batch, so a text's vector moves by up to ~5e-4
with the company it is embedded in, and a vector one process cached would not match the
other's own within 1e-6 for reasons that have nothing to do with the cache.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import cli_env, private_cache, sts_sentences
from embedspace import EmbeddingSet

pytestmark = pytest.mark.slow  # subprocesses, kills, Ray or a browser: CI runs it, the fast lane skips it

SENTENCES = sts_sentences(480, skip=2200)
SCENARIOS = {
    # name: (rows of the first process, rows of the second)
    "overlapping": (slice(0, 240), slice(120, 360)),
    "disjoint": (slice(0, 240), slice(240, 480)),
}


BACKEND = "onnx"


def _embed_command(source: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "embedspace.cli", "embed", str(source), "-o", str(out), "--quiet",
            "--backend", BACKEND, *extra]


@pytest.fixture(scope="module")
def exact_encoder():
    from embedspace.encoding.encoders import load_encoder

    return load_encoder(backend=BACKEND)


@pytest.fixture(scope="module")
def alone(exact_encoder) -> np.ndarray:
    """Vectors of every sentence computed by one process with no cache."""
    from embedspace.encoding.pipeline import encode_texts

    vectors, n_cached = encode_texts(exact_encoder, SENTENCES, cache=None)
    assert n_cached == 0
    return vectors


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_two_embeds_sharing_one_cache(scenario, tmp_path, alone, exact_encoder):
    cache = private_cache(tmp_path / "cache")
    env = cli_env(cache)
    rows = [np.arange(len(SENTENCES))[part] for part in SCENARIOS[scenario]]
    sources = []
    for number, chosen in enumerate(rows):
        source = tmp_path / f"input-{number}.txt"
        source.write_text("\n".join(SENTENCES[i] for i in chosen) + "\n", encoding="utf-8")
        sources.append(source)

    # Both start before either has loaded its model, so they embed and write at the same time.
    procs = [subprocess.Popen(_embed_command(source, tmp_path / f"set-{n}"), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, source in enumerate(sources)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    for n, chosen in enumerate(rows):
        space = EmbeddingSet.load(tmp_path / f"set-{n}")
        assert space.texts == [SENTENCES[i] for i in chosen]
        assert space.model.same_space(exact_encoder.identity)
        np.testing.assert_allclose(space.vectors, alone[chosen], rtol=0, atol=1e-6)

    database = cache / "embeddings.sqlite"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == len(set(np.concatenate(rows)))

    union = np.unique(np.concatenate(rows))
    (tmp_path / "all.txt").write_text("\n".join(SENTENCES[i] for i in union) + "\n", encoding="utf-8")
    third = subprocess.run(_embed_command(tmp_path / "all.txt", tmp_path / "all.set", "--json"), env=env,
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout)
    assert summary["n"] == summary["n_cached"] == len(union), summary
    np.testing.assert_allclose(EmbeddingSet.load(tmp_path / "all.set").vectors, alone[union], rtol=0, atol=1e-6)
