"""Full disks, read-only folders and a 5 MB document: the CLI fails cleanly or copes.

A write that fails midway must leave no partial result and every existing one untouched;
a folder that cannot be written is refused before any work; a huge document is cut to the
model's window (with a warning), not embedded whole.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from helpers import (
    assert_one_error_line, assert_success, cli_env, private_cache, run_many, shared_world, tree,
)
from embedspace import EmbeddingSet

VAE_TINY = ["--epochs", "1", "--hidden-dim", "16", "--latent-dim", "2", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return shared_world(tmp_path_factory)


# --- a disk that fills up while the result is being written ---------------------------------

# Each writer's last step is its manifest; the fake below writes half of one and then finds
# the disk full, as a real ENOSPC would. The attribute patched is the name the writer calls.
WRITERS = {
    "set": ("embedspace.embeddingset.write_manifest", lambda w, out: ["embed", w.docs, "-o", out], "good.set"),
    "index": ("embedspace.search.index.write_manifest", lambda w, out: ["index", w.set, "-o", out], "good.index"),
    "map": ("embedspace.mapping.output.write_manifest", lambda w, out: ["map", w.set, "-o", out, "--quiet"], "good.map"),
    "vae": ("embedspace.vae.textvae.write_manifest",
            lambda w, out: ["vae", "train", w.sentences, "-o", out, *VAE_TINY], "good.vae"),
}


def _disk_full(directory, *args, **kwargs):
    path = Path(directory) / "manifest.json"
    path.write_text('{"format": "embedspace.', encoding="utf-8")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("replacing", [False, True], ids=["fresh-output", "replacing-an-earlier-result"])
@pytest.mark.parametrize("kind", list(WRITERS))
def test_disk_full_while_writing_leaves_nothing_half_written(world, tmp_path, monkeypatch, cli, kind, replacing):
    target, argv_of, earlier = WRITERS[kind]
    out = tmp_path / "out"
    if replacing:
        shutil.copytree(world.root / earlier, out)
    before = tree(tmp_path)
    monkeypatch.setattr(target, _disk_full)
    status, stdout, stderr = cli(*argv_of(world, out), *(["--overwrite"] if replacing else []))
    assert_one_error_line(status, stdout, stderr, "No space left on device", after_work=True)
    assert tree(tmp_path) == before  # the earlier result byte-identical, no temporary folder left


@pytest.mark.slow
def test_file_size_limit_in_a_real_process(world, tmp_path):
    """RLIMIT_FSIZE makes every write past 32 KB fail (EFBIG) in a real subprocess."""
    limit = 32 * 1024
    big_set = tmp_path / "big.set"
    assert_success(*_in_process("embed", world.sentences, "-o", big_set, "--quiet"))  # 120 x 384 floats > 32 KB
    for name in ("good.set", "good.index", "good.map", "good.vae"):
        shutil.copytree(world.root / name, tmp_path / f"old-{name}")
    cache = private_cache(tmp_path / "cache")
    commands = [
        ["embed", world.sentences, "-o", tmp_path / "new.set", "--no-cache"],
        ["embed", world.sentences, "-o", tmp_path / "old-good.set", "--overwrite", "--no-cache"],
        ["index", big_set, "-o", tmp_path / "old-good.index", "--overwrite"],
        ["map", world.set, "-o", tmp_path / "old-good.map", "--overwrite"],
        ["vae", "train", world.sentences, "-o", tmp_path / "old-good.vae", "--overwrite", *VAE_TINY],
        ["embed", world.sentences, "-o", tmp_path / "cached.set"],  # the private embedding cache outgrows the limit
    ]
    before = tree(tmp_path)
    results = run_many([[*argv, "--quiet"] for argv in commands], env=cli_env(cache),
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    for result in results:
        line = assert_one_error_line(result["status"], result["out"], result["err"], after_work=True)
        assert "too large" in line or "I/O error" in line, line
    after = tree(tmp_path)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    # Only the embedding cache may have changed, and it must still be a sound database.
    assert all(p.startswith("cache/") for p in changed), changed
    with sqlite3.connect(cache / "embeddings.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _in_process(*argv):
    import contextlib
    import io

    from embedspace.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


# --- folders that cannot be written ---------------------------------------------------------

# Root writes through any permission bits, so as root the folder is made read-only the way
# root cannot bypass: a read-only bind mount, in a mount namespace private to the process.
_READ_ONLY_MOUNT = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"']


def test_read_only_folders_are_refused_before_any_work(world, tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    for name in ("good.set", "good.index"):  # earlier results inside the read-only folder
        shutil.copytree(world.root / name, read_only / name)
    commands = [
        ["embed", world.docs, "-o", read_only / "out", "--no-cache"],
        ["index", world.set, "-o", read_only / "out"],
        ["map", world.set, "-o", read_only / "out"],
        ["vae", "train", world.sentences, "-o", read_only / "out", *VAE_TINY],
        ["relate", "similarity", "--matrix", "cat", "dog", "--plot", read_only / "sim.png"],
        ["embed", world.docs, "-o", read_only / "good.set", "--overwrite", "--no-cache"],
        ["index", world.set, "-o", read_only / "good.index", "--overwrite"],
    ]
    before = tree(tmp_path)
    as_root = os.geteuid() == 0
    if not as_root:
        for path in (read_only, read_only / "good.set", read_only / "good.index"):
            path.chmod(0o555)
    try:
        results = run_many([[*argv, "--quiet"] for argv in commands], env=cli_env(),
                           wrapper=[*_READ_ONLY_MOUNT, read_only] if as_root else ())
    finally:
        for path in (read_only, read_only / "good.set", read_only / "good.index"):
            path.chmod(0o755)
    for result in results:
        line = assert_one_error_line(result["status"], result["out"], result["err"])
        assert "not writable" in line or "read-only" in line, line
    assert tree(tmp_path) == before


def test_a_read_only_result_is_not_replaced(world, tmp_path, cli, monkeypatch):
    """A result whose folder is write-protected (chmod a-w) is refused even with --overwrite."""
    out = tmp_path / "out"
    shutil.copytree(world.set, out)
    before = tree(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (mode & os.W_OK and Path(path) == out))
    status, stdout, stderr = cli("embed", world.docs, "-o", out, "--overwrite")
    assert_one_error_line(status, stdout, stderr, "read-only")
    assert tree(tmp_path) == before


# --- one document of 5 MB -------------------------------------------------------------------


def test_a_5_mb_document_is_cut_to_the_model_window_with_a_warning(tmp_path, cli):
    sentence = "the quick brown fox jumps over the lazy dog. "
    huge = (sentence * (5_000_000 // len(sentence) + 1))[:5_000_000].rstrip()
    source = tmp_path / "huge.txt"
    source.write_text(huge + "\na short second document\n", encoding="utf-8")
    prefix = tmp_path / "prefix.txt"
    prefix.write_text(sentence * 100 + "\n", encoding="utf-8")  # ~1,000 tokens: also cut at 256
    status, out, err = cli("embed", source, "-o", tmp_path / "huge.set", "--no-cache")  # the warning comes from encoding
    assert_success(status, out, err)
    assert "longer than 256 tokens" in err and "warning:" in err and "truncated" in err
    assert_success(*cli("embed", prefix, "-o", tmp_path / "prefix.set"))
    huge_set, prefix_set = EmbeddingSet.load(tmp_path / "huge.set"), EmbeddingSet.load(tmp_path / "prefix.set")
    assert len(huge_set) == 2 and len(huge_set.texts[0]) == len(huge)  # the text is kept whole
    # The vector is that of the first 256 tokens: the same as for any longer-than-window prefix.
    np.testing.assert_allclose(huge_set.vectors[0], prefix_set.vectors[0], atol=1e-5)
