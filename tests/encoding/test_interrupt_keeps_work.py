"""An interrupted embed keeps its finished batches in the cache (issue 31, item 1).

Before: vectors reached the cache every 4,096 texts, so Ctrl-C at 992 of 2,225 texts kept
nothing and the next run embedded everything again.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

from helpers import cli_env, private_cache, sts_sentences

_CHILD = r"""
import sys
from embedspace.encoding import EmbeddingCache, encode_texts, load_encoder

class Counter:
    n = 0
    def update(self, k):
        self.n += k
        print(self.n, flush=True)
    def close(self):
        pass

texts = open(sys.argv[1], encoding="utf-8").read().splitlines()
try:
    encode_texts(load_encoder(), texts, cache=EmbeddingCache(), progress=Counter())
except KeyboardInterrupt as exc:
    print("NOTE " + "; ".join(getattr(exc, "__notes__", [])), flush=True)
    sys.exit(130)
print("FINISHED", flush=True)
"""


def _interrupt_at(target: int, corpus, env) -> tuple[int, str]:
    """Run the child until it reports ``target`` texts embedded, then SIGINT it.

    Returns the last count the child reported before the signal, and its note.
    """
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(corpus)], stdout=subprocess.PIPE, text=True, env=env)
    seen, note = 0, ""
    for line in child.stdout:
        line = line.strip()
        if line.isdigit():
            seen = int(line)
            if seen >= target:
                child.send_signal(signal.SIGINT)
                break
    for line in child.stdout:
        if line.startswith("NOTE "):
            note = line[5:].strip()
    assert child.wait(timeout=120) == 130, "the child finished before it was interrupted"
    return seen, note


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigint_during_embed_keeps_finished_batches(tmp_path, seed):
    texts = sts_sentences(3000, skip=2000 + 3000 * seed)  # fresh texts: the cache below is new anyway
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    env = cli_env(private_cache(tmp_path / "cache"))
    target = random.Random(seed).randint(200, 2700)

    before, note = _interrupt_at(target, corpus, env)
    assert "saved to the cache; run the same command again to continue" in note
    saved = int(note.split()[0])
    assert saved >= 0.9 * before, f"{saved} saved after an interrupt at {before} of {len(texts)} texts"
    if seed:  # what the re-run would find, read from the cache itself (the re-run's embedding is not needed again)
        from embedspace.encoding import EmbeddingCache, load_encoder

        cache = EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite")
        assert int(cache.get(load_encoder().identity, texts)[0].sum()) == saved
        cache.close()
        return
    run = subprocess.run([sys.executable, "-m", "embedspace.cli", "embed", str(corpus), "-o", str(tmp_path / "out.set"),
                          "--json", "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["n_cached"] == saved


def test_batch_by_batch_embedding_gives_the_vectors_of_one_call(encoder, sentences, tmp_path):
    """Embedding batch by batch (to keep work on an interrupt) changes when vectors reach the cache, not the vectors."""
    from embedspace.encoding import PADDING_SENSITIVE, EmbeddingCache, encode_texts

    texts = sentences[:300]
    whole = encoder.encode(texts)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    sliced, cached = encode_texts(encoder, texts, cache=cache, cache_every=1)
    assert cached == 0
    if encoder.backend in PADDING_SENSITIVE:  # a text's vector depends on its own length only
        np.testing.assert_array_equal(sliced, whole)
    else:
        np.testing.assert_allclose(sliced, whole, atol=1e-4)
    again, cached = encode_texts(encoder, texts, cache=cache)
    assert cached == len(set(texts))
    np.testing.assert_array_equal(again, sliced)
    cache.close()
