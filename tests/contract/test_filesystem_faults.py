"""Every writing verb against four hostile places: unrelated files, ``.``, a read-only mount, a full disk.

For each place every verb that writes (embed, index, index add, map, vae train, relate
--plot, duplicates --drop, compare sets, demo) must fail with one clear error line and
leave every file that was there byte-identical, with no temporary left behind:

- a folder of the user's own files given as the output, with ``--overwrite``;
- ``.`` as the output, from inside such a folder;
- a read-only mount: a bind mount remounted ``ro`` in a private mount namespace (root
  writes through permission bits, so ``chmod`` proves nothing here);
- a full disk: a 4 MB tmpfs in a private mount namespace holding the user's files and an
  earlier index, then filled to the last byte, so every write fails with a real ENOSPC.

The mount cases need root and ``unshare -m`` (both present in the CI container); they
are skipped, saying so, where mounts cannot be made. ``demo`` adds its ``space/``,
``index/`` and ``map/`` to a folder (other files stay), so the user's folder holds a
``map/`` of its own, which demo must refuse to replace; it embeds 18,846 posts, so it is
not run on the full disk (minutes of embedding before the first write).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import assert_one_error_line, cli_env, run_many, shared_world, tree

VAE_TINY = ["--epochs", "1", "--hidden-dim", "16", "--latent-dim", "2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = shared_world(tmp_path_factory)
    other = world.root / "other.set"
    if not other.exists():
        from embedspace.cli import main

        assert main(["embed", str(world.sentences), "-o", str(other), "--quiet"]) == 0
    return world


def _writers(w, out: Path, index: Path, *, demo: bool = True) -> dict[str, list]:
    """Every writing verb, writing to ``out`` (``index add`` changes ``index``)."""
    writers = {
        "embed": ["embed", w.docs, "-o", out, "--no-cache"],
        "index": ["index", w.set, "-o", out],
        "index add": ["index", "add", index, w.root / "other.set"],
        "map": ["map", w.set, "-o", out],
        "vae train": ["vae", "train", w.sentences, "-o", out, *VAE_TINY],
        "relate --plot": ["relate", "similarity", "--matrix", "cat", "dog", "--plot", out],
        "duplicates --drop": ["duplicates", w.set, "--drop", out],
        "compare sets": ["compare", "sets", w.set, w.root / "other.set", "-o", out, "--permutations", "20"],
    }
    if demo:
        writers["demo"] = ["demo", "-o", out]
    return writers


def _users_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("three years of work\n")
    (path / "data").mkdir()
    (path / "data" / "measurements.csv").write_bytes(os.urandom(2048))
    (path / "map").mkdir()  # the user's own map/ (of a city), where demo would put its map
    (path / "map" / "route.gpx").write_text("<gpx/>\n")
    return path


def _check(results, names, *, after_work: bool = False) -> None:
    for name, result in zip(names, results):
        try:
            assert_one_error_line(result["status"], result["out"], result["err"], after_work=after_work)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_a_folder_of_unrelated_files_and_dot_are_never_replaced(world, tmp_path):
    users = _users_folder(tmp_path / "users")
    shutil.copytree(world.index, users / "data" / "x.index")  # so 'index add' has an index to change
    before = tree(tmp_path)
    writers = _writers(world, users, users / "data" / "x.index")
    writers["index add"] = ["index", "add", users, world.root / "other.set"]  # a folder that is no index
    names = list(writers)
    results = run_many([[*argv, "--overwrite", "--quiet"] if name not in ("index add", "demo") else
                        [*argv, "--quiet"] for name, argv in writers.items()], env=cli_env())
    _check(results, names)
    dot = _writers(world, Path("."), users / "data" / "x.index")
    dot["index add"] = ["index", "add", ".", world.root / "other.set"]
    results = run_many([[*argv, "--overwrite", "--quiet"] if name not in ("index add", "demo") else
                        [*argv, "--quiet"] for name, argv in dot.items()], env=cli_env(), cwd=users)
    _check(results, list(dot))
    # a plot replaces only an image: never the user's own file of that name
    results = run_many([["relate", "similarity", "--matrix", "cat", "dog", "--plot", users / "thesis.tex", "--overwrite",
                         "--quiet"]], env=cli_env())
    _check(results, ["relate --plot over a user's file"])
    assert tree(tmp_path) == before


def _mounts_work() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _mounts_work(), reason="needs root and unshare -m to make a read-only or full mount")

# $0 is the folder; the command line after it runs with the folder mounted read-only.
_READ_ONLY = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"']
# $0 is the mount point: a 4 MB tmpfs gets the files of "$0.seed", is filled to the last
# byte, the command line runs, and what the tmpfs then holds is copied to "$0.after".
_FULL_DISK = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs -o size=4m tmpfs "$0" && cp -a "$0.seed/." "$0/" && '
              '{ dd if=/dev/zero of="$0/ballast" bs=4k 2>/dev/null; true; } && "$@"; status=$?; '
              'cp -a "$0/." "$0.after/"; exit $status']


@needs_mounts
@pytest.mark.slow
def test_a_read_only_mount_is_refused_and_left_as_it_was(world, tmp_path):
    folder = _users_folder(tmp_path / "read-only")
    shutil.copytree(world.index, folder / "x.index")
    shutil.copytree(world.set, folder / "good.set")
    before = tree(tmp_path)
    writers = _writers(world, folder / "out", folder / "x.index")
    writers["embed --overwrite"] = ["embed", world.docs, "-o", folder / "good.set", "--overwrite", "--no-cache"]
    results = run_many([[*argv, "--quiet"] for argv in writers.values()], env=cli_env(), wrapper=[*_READ_ONLY, folder])
    _check(results, list(writers))
    for name, result in zip(writers, results):
        assert "read-only" in result["err"] or "not writable" in result["err"], f"{name}: {result['err']}"
    assert tree(tmp_path) == before


@needs_mounts
@pytest.mark.slow
def test_a_full_disk_fails_cleanly_and_keeps_every_file(world, tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    seed = _users_folder(tmp_path / "disk.seed")
    shutil.copytree(world.index, seed / "x.index")
    (tmp_path / "disk.after").mkdir()
    writers = _writers(world, mount / "out", mount / "x.index", demo=False)
    results = run_many([[*argv, "--quiet"] for argv in writers.values()], env=cli_env(), wrapper=[*_FULL_DISK, mount])
    _check(results, list(writers), after_work=True)
    after = tree(tmp_path / "disk.after")
    assert after.pop("ballast", None) is not None, "the disk was not filled"
    assert after == tree(seed), "files on the full disk changed, or a temporary was left behind"
