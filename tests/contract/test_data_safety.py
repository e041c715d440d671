"""Never lose a user's data: one test per numbered finding of issue 30 (reproduced on ``ad25b1a``).

Each test drives the command line (in-process through the ``cli`` fixture, or as real
processes where two of them must run at once, or a signal must arrive), so the same file
runs against an older checkout (``PYTHONPATH=<old tree> pytest tests/contract/...``) and
fails there. Library classes are named by their class name only (``BusyError``), never
imported, for the same reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import assert_one_error_line, assert_success, cli_env, private_cache, snapshot, sts_sentences, tree

TEXTS = sts_sentences(60, skip=400)


def _csv(path: Path, texts, **columns) -> Path:
    pd.DataFrame({"text": list(texts), **columns}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Sets and an index the tests copy and never change: a (year int), b (year int), c (year text)."""
    from embedspace.cli import main

    root = tmp_path_factory.mktemp("data-safety")
    parts = {"a": TEXTS[0:20], "b": TEXTS[20:40], "c": TEXTS[40:60]}
    years = {"a": list(range(2000, 2020)), "b": list(range(1980, 2000)), "c": [f"y{i}" for i in range(20)]}
    for name, texts in parts.items():
        _csv(root / f"{name}.csv", texts, year=years[name])
        assert main(["embed", str(root / f"{name}.csv"), "-o", str(root / f"{name}.set"), "--quiet"]) == 0
    assert main(["index", str(root / "a.set"), "-o", str(root / "a.index"), "--quiet"]) == 0
    return root


def _rows(cli, index: Path, k: int = 100) -> list[str]:
    status, out, err = cli("search", index, "a question", "-k", k, "--json")
    assert_success(status, out, err)
    return [hit["text"] for hit in json.loads(out)["queries"][0]["results"]]


def _folder_of_other_files(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "chapter1.tex").write_text("three years of work\n")
    (path / "photos").mkdir()
    (path / "photos" / "cat.jpg").write_bytes(os.urandom(256))
    return path


# --- 1. --overwrite deletes any folder ----------------------------------------------------
@pytest.mark.parametrize("verb", ["embed", "index", "map"])
def test_1_overwrite_never_replaces_a_folder_of_other_files(verb, world, tmp_path, cli):
    thesis = _folder_of_other_files(tmp_path / "thesis")
    before = tree(thesis)
    source = world / ("a.csv" if verb == "embed" else "a.set")
    status, out, err = cli(verb, source, "-o", thesis, "--overwrite", "--quiet")
    assert_one_error_line(status, out, err, "refusing to replace")
    assert tree(thesis) == before


@pytest.mark.parametrize("verb", ["embed", "index", "map"])
def test_1_overwrite_never_replaces_the_current_folder(verb, world, tmp_path, cli, monkeypatch):
    """``cd ~/thesis && embedspace embed notes.txt -o . --overwrite``, the input inside or elsewhere."""
    thesis = _folder_of_other_files(tmp_path / "thesis")
    (thesis / "notes.txt").write_text("\n".join(TEXTS[:12]) + "\n")
    before = tree(thesis)
    monkeypatch.chdir(thesis)
    for source in (["notes.txt"] if verb == "embed" else []) + [world / ("a.csv" if verb == "embed" else "a.set")]:
        status, out, err = cli(verb, source, "-o", ".", "--overwrite", "--quiet")
        assert_one_error_line(status, out, err)
        assert tree(thesis) == before


def test_1_overwrite_still_replaces_what_embedspace_wrote(world, tmp_path, cli):
    out = tmp_path / "b.set"
    shutil.copytree(world / "a.set", out)
    status, stdout, err = cli("embed", world / "b.csv", "-o", out, "--overwrite", "--quiet")
    assert_success(status, stdout, err)
    assert pd.read_parquet(out / "table.parquet")["text"].tolist() == TEXTS[20:40]


# --- 2. concurrent index add loses an update ----------------------------------------------
@pytest.mark.slow
def test_2_two_concurrent_compatible_index_adds_both_land(world, tmp_path, cli):
    extra = _csv(tmp_path / "d.csv", [t + " (again)" for t in TEXTS[:20]], year=list(range(1960, 1980)))
    assert cli("embed", extra, "-o", tmp_path / "d.set", "--quiet")[0] == 0
    for round_ in range(3):
        index = tmp_path / f"x{round_}.index"
        shutil.copytree(world / "a.index", index)
        procs = [subprocess.Popen([sys.executable, "-m", "embedspace.cli", "index", "add", str(index), str(s), "--quiet"],
                                  cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for s in (world / "b.set", tmp_path / "d.set")]
        for proc in procs:
            assert proc.wait(timeout=300) == 0, proc.stderr.read()
        assert len(_rows(cli, index)) == 60, f"round {round_}: an update was lost"


# --- 3. index add deletes a set stored inside the index folder ----------------------------
def test_3_index_add_never_deletes_a_set_inside_the_index(world, tmp_path, cli):
    index = tmp_path / "x.index"
    shutil.copytree(world / "a.index", index)
    shutil.copytree(world / "b.set", index / "more.set")
    before = snapshot(index / "more.set")
    status, out, err = cli("index", "add", index, index / "more.set", "--quiet")
    assert (index / "more.set").is_dir() and snapshot(index / "more.set") == before, "the input set was deleted"
    assert status == 2, err
    assert_one_error_line(status, out, err)
    assert set(_rows(cli, index)) == set(TEXTS[:20])


# --- 4. an index add that succeeds leaves the index unusable -------------------------------
def test_4_index_add_refuses_an_incompatible_column_and_the_index_keeps_working(world, tmp_path, cli):
    index = tmp_path / "x.index"
    shutil.copytree(world / "a.index", index)
    before = tree(index)
    status, out, err = cli("index", "add", index, world / "c.set", "--quiet")
    assert_one_error_line(status, out, err, "year")
    assert tree(index) == before
    assert set(_rows(cli, index)) == set(TEXTS[:20])


def test_4_index_add_casts_a_lossless_column_type(world, tmp_path, cli):
    index = tmp_path / "x.index"
    shutil.copytree(world / "a.index", index)
    narrow = tmp_path / "narrow.parquet"
    pd.DataFrame({"text": [t + " (narrow)" for t in TEXTS[:5]], "year": np.arange(5, dtype=np.int32)}).to_parquet(narrow)
    assert cli("embed", narrow, "-o", tmp_path / "narrow.set", "--quiet")[0] == 0
    status, out, err = cli("index", "add", index, tmp_path / "narrow.set", "--quiet")
    assert_success(status, out, err)
    status, out, err = cli("search", index, "a question", "-k", 30, "--where", "year < 10", "--json")
    assert_success(status, out, err)
    assert len(json.loads(out)["queries"][0]["results"]) == 5


# --- 5. links are followed out of our directories ------------------------------------------
def test_5_a_link_inside_our_directories_is_refused_never_followed(world, tmp_path, cli):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("PRIVATE")
    index = tmp_path / "x.index"
    shutil.copytree(world / "a.index", index)
    inner = next(p for p in sorted(index.iterdir()) if p.is_dir()) if any(p.is_dir() for p in index.iterdir()) else index
    (inner / "evil").symlink_to(secret)
    a_set = tmp_path / "a.set"
    shutil.copytree(world / "a.set", a_set)
    (a_set / "evil").symlink_to(secret)
    for argv in (("index", "add", index, world / "b.set"), ("index", a_set, "-o", tmp_path / "new.index"),
                 ("search", index, "a question"), ("info", a_set)):
        status, out, err = cli(*argv, "--quiet")
        assert_one_error_line(status, out, err, "link")
    copies = [p for p in tmp_path.rglob("key") if p.resolve() != (secret / "key").resolve()]
    assert not copies, f"the link's target was copied: {copies}"


def test_5_a_link_loop_is_one_short_error(world, tmp_path, cli):
    a_set = tmp_path / "loop.set"
    shutil.copytree(world / "a.set", a_set)
    (a_set / "loop").symlink_to(a_set / "loop")
    for argv in (("index", a_set, "-o", tmp_path / "x.index"), ("info", a_set)):
        status, out, err = cli(*argv, "--quiet")
        line = assert_one_error_line(status, out, err)
        assert len(line) < 300, line


# --- 6. a manifest vouches for what was never checked ----------------------------------------
def _edit_manifest(directory: Path, edit) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_6_a_manifest_with_no_files_is_a_format_error(world, tmp_path, cli):
    a_set = tmp_path / "a.set"
    shutil.copytree(world / "a.set", a_set)
    _edit_manifest(a_set, lambda m: m.update(files={}))
    status, out, err = cli("info", a_set)
    assert "checksums ok" not in out
    assert_one_error_line(status, out, err)


def test_6_index_sources_are_checked_against_the_set(world, tmp_path, cli):
    index = tmp_path / "x.index"
    shutil.copytree(world / "a.index", index)
    other = tmp_path / "other.set"
    shutil.copytree(world / "b.set", other)

    def point_elsewhere(manifest):  # the edit an attacker makes: path and the checksum that vouches for it
        for entry in manifest["sources"]:
            entry["path"] = os.path.relpath(other, index)
            entry["absolute_path"] = str(other)
            entry["manifest_sha256"] = hashlib.sha256((other / "manifest.json").read_bytes()).hexdigest()

    _edit_manifest(index, point_elsewhere)
    status, out, err = cli("search", index, "a question", "--json")
    assert not (status == 0 and set(TEXTS[20:40]) & {h["text"] for h in json.loads(out)["queries"][0]["results"]}), \
        "search returned texts of another set beside the index's vectors"
    assert_one_error_line(status, out, err)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "formats"


def test_6_vae_settings_are_bounded_by_the_weights(tmp_path, cli):
    vae = tmp_path / "big.vae"
    shutil.copytree(FIXTURES / "captions.vae", vae)
    _edit_manifest(vae, lambda m: m["model_config"].update(hidden_dim=200_000))
    started = time.monotonic()
    status, out, err = cli("vae", "sample", vae, "-n", 2, "--quiet")
    assert_one_error_line(status, out, err)
    assert time.monotonic() - started < 60


# --- 7. readers see false corruption during a replace ----------------------------------------
def _exchange(a: Path, b: Path) -> None:
    """Swap two directories atomically (renameat2 RENAME_EXCHANGE), as a replacing writer does."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


@pytest.mark.slow
def test_7_a_reader_never_mixes_two_generations_of_an_index(world, tmp_path, cli):
    """Replace one index path, again and again, by a new generation (20 or 40 rows) while searching it.

    Each replacement is what a writer does: a fresh copy of the next generation (new files,
    new times) swapped in atomically, the old one deleted. Every search must see one whole
    generation (all hits from one of the two sets of texts) or fail with a 'busy' error;
    never 'N bytes, manifest says M'.
    """
    index, small, large = tmp_path / "x.index", tmp_path / "small.index", tmp_path / "large.index"
    assert cli("index", world / "a.set", "-o", small, "--quiet")[0] == 0
    both = _csv(tmp_path / "ab.csv", TEXTS[:40], year=list(range(40)))
    assert cli("embed", both, "-o", tmp_path / "ab.set", "--quiet")[0] == 0
    assert cli("index", tmp_path / "ab.set", "-o", large, "--quiet")[0] == 0
    shutil.copytree(small, index, copy_function=shutil.copy)
    stop = threading.Event()

    def writer():
        generation = 0
        while not stop.is_set():
            generation += 1
            fresh = tmp_path / f".x.index.tmp-{generation}"
            shutil.copytree(large if generation % 2 else small, fresh, copy_function=shutil.copy)
            _exchange(fresh, index)
            shutil.rmtree(fresh)
            time.sleep(0.003)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    failures, reads, deadline = [], 0, time.monotonic() + 10  # ad25b1a failed 39 of 543 reads in 20 s
    try:
        while time.monotonic() < deadline:
            status, out, err = cli("search", index, "a question", "-k", 100, "--json")
            reads += 1
            if status != 0:
                if "busy" not in err:
                    failures.append(err.strip())
                continue
            texts = [hit["text"] for hit in json.loads(out)["queries"][0]["results"]]
            if len(texts) not in (20, 40) or (len(texts) == 20 and set(texts) != set(TEXTS[:20])):
                failures.append(f"mixed generation: {len(texts)} hits")
    finally:
        stop.set()
        thread.join()
    assert reads > 20
    assert not failures, f"{len(failures)} of {reads} reads failed, e.g. {failures[:3]}"


# --- 8. the cache can trap the user ----------------------------------------------------------
def _cache_run(cli, cache: Path, monkeypatch, *argv):
    monkeypatch.setenv("EMBEDSPACE_CACHE_DIR", str(cache))
    return cli(*argv)


@pytest.mark.parametrize("damage", ["garbage", "model-hashes", "truncated"])
def test_8_a_damaged_cache_never_stops_a_command(damage, world, tmp_path, cli, monkeypatch):
    cache = private_cache(tmp_path / "cache")
    status, out, err = _cache_run(cli, cache, monkeypatch, "embed", world / "a.csv", "-o", tmp_path / "first.set", "--quiet")
    assert_success(status, out, err)
    database = cache / "embeddings.sqlite"
    if damage == "garbage":
        database.write_bytes(b"this is not a database " * 200)
    elif damage == "truncated":
        data = database.read_bytes()
        database.write_bytes(data[: len(data) // 3] + os.urandom(4096))
    else:
        (cache / "model-hashes.json").write_text("[]")
    for argv in (("embed", world / "a.csv", "-o", tmp_path / "again.set", "--quiet"), ("cache", "info"),
                 ("cache", "clear"), ("embed", world / "a.csv", "-o", tmp_path / "third.set", "--quiet")):
        status, out, err = _cache_run(cli, cache, monkeypatch, *argv)
        assert_success(status, out, err)
    first = np.load(tmp_path / "first.set" / "vectors.npy")
    assert np.allclose(np.load(tmp_path / "third.set" / "vectors.npy"), first, atol=1e-3)


def test_8_bad_cached_vectors_are_dropped_and_recomputed(world, tmp_path, cli, monkeypatch):
    import sqlite3

    cache = private_cache(tmp_path / "cache")
    status, out, err = _cache_run(cli, cache, monkeypatch, "embed", world / "a.csv", "-o", tmp_path / "first.set", "--quiet")
    assert_success(status, out, err)
    with sqlite3.connect(cache / "embeddings.sqlite") as conn:
        table = next(name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                     if "vec" in {c[1] for c in conn.execute(f"PRAGMA table_info({name})")})
        rows = conn.execute(f"SELECT rowid, vec FROM {table}").fetchall()
        assert rows
        for rowid, blob in rows[::2]:
            nan = np.full(len(blob) // 4, np.nan, dtype=np.float32).tobytes()
            conn.execute(f"UPDATE {table} SET vec = ? WHERE rowid = ?", (nan, rowid))
        for rowid, blob in rows[1::4]:
            conn.execute(f"UPDATE {table} SET vec = ? WHERE rowid = ?", (blob[:100], rowid))
    for name in ("second", "third"):
        status, out, err = _cache_run(cli, cache, monkeypatch, "embed", world / "a.csv", "-o", tmp_path / f"{name}.set",
                                      "--quiet")
        assert_success(status, out, err)
        vectors = np.load(tmp_path / f"{name}.set" / "vectors.npy")
        assert np.isfinite(vectors).all()
        assert np.allclose(vectors, np.load(tmp_path / "first.set" / "vectors.npy"), atol=1e-3)


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m,ro tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs root and mount namespaces (unshare -m) for a read-only mount")
def test_8_a_read_only_cache_is_read_without_writing(world, tmp_path, cli):
    """Root ignores file modes, so the cache is made read-only by a read-only bind mount."""
    cache = private_cache(tmp_path / "cache")
    env = cli_env(cache)
    first = subprocess.run([sys.executable, "-m", "embedspace.cli", "embed", str(world / "a.csv"), "-o",
                            str(tmp_path / "first.set"), "--quiet"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = tree(cache / "embeddings.sqlite")
    script = (f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache} && "
              f"{sys.executable} -m embedspace.cli embed {world / 'b.csv'} -o {tmp_path / 'second.set'} --quiet && "
              f"{sys.executable} -m embedspace.cli embed {world / 'a.csv'} -o {tmp_path / 'third.set'} --quiet && "
              f"{sys.executable} -m embedspace.cli cache clear")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True)
    assert "Traceback" not in done.stderr and "error: unexpected" not in done.stderr, done.stderr
    assert (tmp_path / "second.set").is_dir() and (tmp_path / "third.set").is_dir(), done.stderr
    assert tree(cache / "embeddings.sqlite") == before
