"""kill -9 at random moments during embed, index, map and vae train.

Each verb first writes an *earlier result* at the output path. Then the same command, on
other input and with ``--overwrite``, is started again and again in a real subprocess and
killed with SIGKILL at a seeded random moment. The moments cycle through three windows of an
uninterrupted reference run: start-up (imports, model loading), work (embedding, training,
layout) and writing (from the moment a temporary sibling of the output appears to the end),
so kills land before, during and after the replacement starts. After every kill:

- the earlier result is byte-identical and loads (format, version and checksums checked),
  or, when the kill landed after the atomic swap (while the old copy was being removed or
  the process was exiting), the new result is complete and equals the reference;
- the inputs are unchanged;
- for ``embed``, the embedding cache passes SQLite's ``integrity_check`` and still returns
  the earlier result's vectors bit for bit.

At the end the command runs once more to completion (``vae train`` with ``--resume``, which
continues from the last checkpoint a killed run left) and must give the result of the
uninterrupted run, with no temporary sibling left behind for a later run to trip on.

The seed of the kill moments is printed; set ``EMBEDSPACE_CRASH_SEED`` to replay a run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import cli_env, private_cache, sts_sentences, tree
from embedspace import EmbeddingSet

pytestmark = pytest.mark.slow  # subprocesses, kills, Ray or a browser: CI runs it, the fast lane skips it

SEED = int(os.environ.get("EMBEDSPACE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
VAE_TINY = ["--hidden-dim", "16", "--latent-dim", "2", "--batch-size", "16"]
PHASES = ("start-up", "work", "writing")


@dataclass
class Job:
    """One verb under test: how to make its earlier result and its new one, and check them."""

    argv: list  # the command without -o, writing the new result
    earlier: list  # the command without -o, writing the earlier result
    load: object  # load(path) -> anything; raises if the result is corrupt
    same_as_reference: object  # (result, reference) -> None, asserts they are equal
    inputs: list  # paths that must never change
    env: dict = field(default_factory=cli_env)  # environment of the killed runs
    reference_env: dict = field(default_factory=cli_env)  # environment of the uninterrupted run
    rerun_extra: tuple = ()
    after_kill: object = None  # after_kill() -> None, more checks after every kill


def _cli(argv, env, out, moment=float("inf"), log=None, kill_when: Path | None = None) -> dict:
    """Run ``embedspace ARGV -o OUT --quiet`` and SIGKILL it ``moment`` seconds after the start
    (or as soon as the file ``kill_when`` exists)."""
    command = [sys.executable, "-m", "embedspace.cli", *map(str, argv), "-o", str(out), "--quiet"]
    with open(log or os.devnull, "wb") as errors:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        started = time.monotonic()
        writing_from = None
        while proc.poll() is None:
            now = time.monotonic() - started
            siblings = _siblings(out, proc.pid)
            if writing_from is None and any(".tmp-" in name for name in siblings):
                writing_from = now
            if now >= moment or (kill_when is not None and kill_when.exists()):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return {"killed": True, "at": now, "siblings": siblings}
            time.sleep(0.005)
    return {"killed": False, "status": proc.returncode, "seconds": time.monotonic() - started,
            "writing_from": writing_from}


def _siblings(out: Path, pid: int | None = None) -> list[str]:
    """Hidden siblings of ``out`` that embedspace writes through (temporary, old, training).

    With ``pid``, only those of that process (and the training folder): a killed run's
    temporary folder stays until the next run removes it, and must not be taken for the
    next run's.
    """
    try:
        names = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
    except FileNotFoundError:
        return []
    return [n for n in names if pid is None or f"-{pid}-" in n or n.endswith(".train")]


def _moment(rng: random.Random, phase: str, duration: float, writing_from: float | None) -> float:
    """A random moment in one window of a run that takes ``duration`` seconds."""
    write = writing_from if writing_from is not None else 0.85 * duration
    if phase == "start-up":
        return rng.uniform(0.1 * write, 0.4 * write)  # imports, reading the input, loading the model
    if phase == "work":
        return rng.uniform(0.4 * write, write)
    return rng.uniform(write, duration * 1.02)


def _seen_phase(siblings: list[str]) -> str:
    """What the killed run was doing, judged by the siblings of its output."""
    if any(".tmp-" in name for name in siblings):
        return "writing the result"
    if any(name.endswith(".train") for name in siblings):
        return "training"
    return "before writing"


# --- the four jobs --------------------------------------------------------------------------


def _embed_job(tmp: Path) -> Job:
    from embedspace.encoding.cache import EmbeddingCache

    texts = sts_sentences(400, skip=1200)
    (tmp / "new.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (tmp / "old.txt").write_text("\n".join(sts_sentences(40, skip=1700)) + "\n", encoding="utf-8")
    cache = private_cache(tmp / "cache")  # the killed runs' cache, filled by the earlier run

    def same(result: EmbeddingSet, reference: EmbeddingSet) -> None:
        pd.testing.assert_frame_equal(result.table, reference.table)
        np.testing.assert_allclose(result.vectors, reference.vectors, atol=1e-6)

    def cache_still_good() -> None:
        # The vectors the earlier run stored are still there, bit for bit, in a sound database.
        earlier = EmbeddingSet.load(tmp / "earlier-copy")
        with sqlite3.connect(cache / "embeddings.sqlite") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with EmbeddingCache(cache / "embeddings.sqlite") as store:
            found, vectors = store.get(earlier.model, earlier.texts)
        assert found.all()
        np.testing.assert_array_equal(vectors, earlier.vectors)

    return Job(argv=["embed", tmp / "new.txt"], earlier=["embed", tmp / "old.txt"], load=EmbeddingSet.load,
               same_as_reference=same, inputs=[tmp / "new.txt", tmp / "old.txt"], env=cli_env(cache),
               reference_env=cli_env(private_cache(tmp / "reference-cache")), after_kill=cache_still_good)


def _index_job(tmp: Path) -> Job:
    from embedspace.encoding.encoders import load_encoder
    from embedspace.search import load_index

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20_000, 384)).astype(np.float32)
    words = np.array("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split())
    table = pd.DataFrame({"text": [" ".join(rng.choice(words, 6)) for _ in range(len(vectors))]})
    identity = load_encoder().identity  # the real model's identity; no weights are loaded
    EmbeddingSet(vectors, table, identity).save(tmp / "new.set")
    EmbeddingSet(vectors[:100], table.iloc[:100], identity).save(tmp / "old.set")

    def same(result, reference) -> None:
        assert result.n == reference.n == 20_000
        assert (result.path / "index.faiss").read_bytes() == (reference.path / "index.faiss").read_bytes()

    return Job(argv=["index", tmp / "new.set", "--kind", "flat"], earlier=["index", tmp / "old.set", "--kind", "flat"],
               load=load_index, same_as_reference=same, inputs=[tmp / "new.set", tmp / "old.set"])


def _map_job(tmp: Path) -> Job:
    from embedspace.store import read_manifest

    sentences = sts_sentences(240)
    (tmp / "new.txt").write_text("\n".join(sentences[:200]) + "\n", encoding="utf-8")
    (tmp / "old.txt").write_text("\n".join(sentences[200:]) + "\n", encoding="utf-8")

    def load(path):
        read_manifest(path, "embedspace.map", 1)  # format, version and every checksum
        return pd.read_parquet(path / "documents.parquet")

    def same(result, reference) -> None:
        assert result["cluster"].tolist() == reference["cluster"].tolist()
        np.testing.assert_allclose(result[["x", "y"]].to_numpy(), reference[["x", "y"]].to_numpy(), atol=1e-5)
        assert result["text"].tolist() == reference["text"].tolist()

    return Job(argv=["map", tmp / "new.txt"], earlier=["map", tmp / "old.txt"], load=load, same_as_reference=same,
               inputs=[tmp / "new.txt", tmp / "old.txt"])


def _vae_job(tmp: Path) -> Job:
    from embedspace.vae import load

    sentences = sts_sentences(100)
    (tmp / "new.txt").write_text("\n".join(sentences[:64]) + "\n", encoding="utf-8")
    (tmp / "old.txt").write_text("\n".join(sentences[64:]) + "\n", encoding="utf-8")

    def same(result, reference) -> None:
        # --resume continues from the last checkpoint (model, optimiser, random state) a
        # killed run left, so the finished model is the uninterrupted run's.
        assert result.config == reference.config
        assert len(result.history) == len(reference.history) == 3
        theirs = reference.model.state_dict()
        for name, tensor in result.model.state_dict().items():
            np.testing.assert_allclose(tensor.numpy(), theirs[name].numpy(), atol=1e-5, err_msg=name)

    return Job(argv=["vae", "train", tmp / "new.txt", "--epochs", "3", *VAE_TINY],
               earlier=["vae", "train", tmp / "old.txt", "--epochs", "1", *VAE_TINY], load=load,
               same_as_reference=same, inputs=[tmp / "new.txt", tmp / "old.txt"], rerun_extra=("--resume",))


# verb: (job, kills wanted). 22 kills in all; embed and index runs are the cheapest.
JOBS = {"embed": (_embed_job, 9), "index": (_index_job, 7), "map": (_map_job, 3), "vae-train": (_vae_job, 3)}


@pytest.mark.parametrize("verb", list(JOBS))
def test_kill_minus_9_never_damages_an_earlier_result(verb, tmp_path):
    make_job, wanted_kills = JOBS[verb]
    job = make_job(tmp_path)
    rng = random.Random(f"{SEED}-{verb}")
    out, reference_out, backup = tmp_path / "out", tmp_path / "reference", tmp_path / "earlier-copy"
    inputs_before = {str(p): tree(p) for p in job.inputs}

    assert _cli(job.earlier, job.env, out)["status"] == 0
    shutil.copytree(out, backup)  # to put the earlier result back after a run that was not killed
    earlier = tree(out)
    reference_run = _cli(job.argv, job.reference_env, reference_out, log=tmp_path / "reference.log")
    assert reference_run["status"] == 0, (tmp_path / "reference.log").read_text()
    reference = job.load(reference_out)
    duration, writing_from = reference_run["seconds"], reference_run["writing_from"]

    kills, finished = [], 0
    for attempt in range(3 * wanted_kills):
        if len(kills) == wanted_kills:
            break
        # Cycle through the windows so that the last kill lands in the work (a VAE then
        # leaves a checkpoint that the final --resume run continues from).
        phase = PHASES[(attempt + 2 - wanted_kills) % len(PHASES)]
        moment = _moment(rng, phase, duration, writing_from)
        run = _cli([*job.argv, "--overwrite"], job.env, out, moment)
        context = f"seed {SEED}, {verb}, kill in {phase} at {moment:.2f} s of ~{duration:.2f} s"
        if not run["killed"]:  # it finished first: the new result must be whole; put the earlier one back
            assert run["status"] == 0, context
            job.same_as_reference(job.load(out), reference)
            finished += 1
            duration = run["seconds"]  # warm runs are faster than the reference: aim within them
            writing_from = run["writing_from"] or writing_from
            shutil.rmtree(out)
            shutil.copytree(backup, out)
            continue
        seen = _seen_phase(run["siblings"])
        if tree(out) != earlier:
            # Killed after its atomic swap (while removing the old copy or exiting): the
            # new result must then be complete. Put the earlier one back for the next kill.
            job.same_as_reference(job.load(out), reference)
            seen = "after the swap"
            shutil.rmtree(out)
            shutil.copytree(backup, out)
        kills.append((phase, round(moment, 2), seen))
        assert tree(out) == earlier, f"{context}: the earlier result changed"
        job.load(out)
        assert {str(p): tree(p) for p in job.inputs} == inputs_before, f"{context}: an input changed"
        if job.after_kill is not None:
            job.after_kill()
    print(f"{verb}: seed {SEED}, {len(kills)} kills, {finished} runs finished first; "
          f"(window, moment s, seen): {kills}")
    assert len(kills) == wanted_kills, f"only {len(kills)} of {wanted_kills} runs were killed (seed {SEED})"

    checkpoint = tmp_path / f".{out.name}.train" / "last.pt"
    if job.rerun_extra:
        if not checkpoint.exists():
            # The random kills left no checkpoint: kill once more right after the first one
            # is written, so that the final run does continue an interrupted run.
            assert _cli([*job.argv, "--overwrite"], job.env, out, kill_when=checkpoint)["killed"]
            assert tree(out) == earlier
        assert checkpoint.exists()
        print(f"{verb}: the final --resume run continues from {checkpoint.name}")
    final = _cli([*job.argv, "--overwrite", *job.rerun_extra], job.env, out, log=tmp_path / "final.log")
    assert final["status"] == 0, (tmp_path / "final.log").read_text()
    job.same_as_reference(job.load(out), reference)
    assert _siblings(out) == [], "temporary folders of killed runs were not cleaned up"
    assert {str(p): tree(p) for p in job.inputs} == inputs_before
    if verb == "embed":
        with sqlite3.connect(tmp_path / "cache" / "embeddings.sqlite") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 400 + 40
