"""Safe formats: nothing users keep is pickled, every load checks what it reads, --where is no eval.

``test_hardening_battery`` already damages sets, indexes and VAEs through the CLI (no or
garbled manifest, newer version, foreign format, flipped byte, truncated or missing payload).
This file fills the gaps:

- every file of each saved artefact (set, index, map, VAE) and of the embedding cache is
  read back with a loader that cannot unpickle (``allow_pickle=False``, safetensors, FAISS,
  Parquet, JSON, raw float32 blobs), and none is a pickle;
- the map directory's manifest is checked like the others (version, format, checksum);
- a payload swapped for a pickle *with its checksums rewritten to match* is refused by the
  loader and the pickle's code never runs (sets, VAE weights, the BM25 arrays of an index,
  the VAE's training checkpoint);
- ``--where`` is parsed by the toolkit's own grammar: code in it is an error that creates
  nothing, and the filter module calls no ``eval``, ``exec`` or pandas query.
"""

from __future__ import annotations

import ast
import builtins
import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import (REPO, assert_one_error_line, assert_success, cli_env, parse_python, private_cache, run_many,
                     shared_world, tree)
from embedspace.store import read_manifest

KINDS = {"set": "embedspace.embeddingset", "index": "embedspace.index", "map": "embedspace.map", "vae": "embedspace.vae"}
PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".joblib", ".bin", ".ckpt"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return shared_world(tmp_path_factory)


def _artefact(world, kind: str) -> Path:
    return {"set": world.set, "index": world.index, "map": world.map, "vae": world.vae}[kind]


def _is_pickle(data: bytes) -> bool:
    """A pickle of protocol 2 or newer starts with PROTO (0x80) and its version."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def _read_without_pickle(path: Path) -> None:
    """Read ``path`` with a loader that cannot run pickled code; raise if it is not one."""
    data = path.read_bytes()
    assert path.suffix.lower() not in PICKLE_SUFFIXES, path
    assert not _is_pickle(data), f"{path} is a pickle"
    if zipfile.is_zipfile(path):  # torch.save writes a zip holding data.pkl
        assert not any(n.endswith(".pkl") for n in zipfile.ZipFile(path).namelist()), f"{path} holds a pickle"
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        assert array.dtype != object
    elif suffix == ".json":
        json.loads(data.decode("utf-8"))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.read_table(path)
    elif suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as weights:
            assert list(weights.keys())
    elif suffix == ".faiss":
        import faiss

        assert faiss.read_index(str(path)).ntotal > 0
    elif suffix in (".csv", ".html", ".txt"):
        data.decode("utf-8")
    elif suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        raise AssertionError(f"{path}: a file type this test does not know; add its safe loader here")


@pytest.mark.parametrize("kind", list(KINDS))
def test_saved_artefacts_hold_no_pickle(world, kind):
    root = _artefact(world, kind)
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    assert files
    for path in files:
        _read_without_pickle(path)
    manifest = read_manifest(root, KINDS[kind], 1)  # format, version and every checksum
    assert manifest["format"] == KINDS[kind]


def test_the_embedding_cache_holds_no_pickle(tmp_path, world):
    """Vectors are raw float32 blobs; derived word matrices are plain .npy files."""
    cache = private_cache(tmp_path / "cache")
    results = run_many([["embed", world.docs, "-o", tmp_path / "s.set", "--quiet"],
                        ["relate", "neighbors", "cat", "--vocab", world.words, "--json"]], env=cli_env(cache))
    for result in results:
        assert_success(result["status"], result["out"], result["err"])
    with sqlite3.connect(cache / "embeddings.sqlite") as conn:
        dims = dict(conn.execute("SELECT ns, dim FROM namespaces").fetchall())
        rows = conn.execute("SELECT ns, vec FROM vectors").fetchall()
    assert len(rows) >= 24
    for ns, blob in rows:
        assert len(blob) == 4 * dims[ns] and not _is_pickle(blob)
        assert np.isfinite(np.frombuffer(blob, dtype=np.float32)).all()
    derived = [p for p in cache.rglob("*") if p.is_file() and "models" not in p.relative_to(cache).parts[:1]
               and p.name != "embeddings.sqlite" and not p.name.startswith("embeddings.sqlite-")]
    assert any(p.suffix == ".npy" for p in derived), derived  # the embedded word list
    for path in derived:
        _read_without_pickle(path)


# --- the map manifest, checked like the others ------------------------------------------------


@pytest.mark.parametrize("how, message", [
    ("newer-version", "upgrade embedspace"),
    ("foreign-format", "format 'someone.else'"),
    ("changed-checksum", "checksum"),
    ("edited-payload", "documents.parquet"),
])
def test_a_damaged_map_manifest_is_refused(world, tmp_path, how, message):
    import shutil

    from embedspace.errors import FormatError

    damaged = tmp_path / "damaged.map"
    shutil.copytree(world.map, damaged)
    manifest = json.loads((damaged / "manifest.json").read_text())
    if how == "newer-version":
        manifest["format_version"] = 99
    elif how == "foreign-format":
        manifest["format"] = "someone.else"
    elif how == "changed-checksum":
        manifest["files"]["documents.parquet"]["sha256"] = "0" * 64
    else:
        (damaged / "documents.parquet").write_bytes((damaged / "documents.parquet").read_bytes()[:-1] + b"\0")
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match=message):
        read_manifest(damaged, "embedspace.map", 1)


# --- a pickle smuggled in, checksums and all --------------------------------------------------


class _Trap:
    """Unpickling this creates ``marker`` (harmless proof that the pickle's code ran)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _rewrite_checksums(directory: Path) -> None:
    """Make the manifest agree with the files, as an attacker who edits both would."""
    from embedspace._fs import sha256_file

    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    for name, entry in manifest.get("files", {}).items():
        if (directory / name).is_file():
            entry.update(sha256=sha256_file(directory / name), bytes=(directory / name).stat().st_size)
    path.write_text(json.dumps(manifest, indent=2))


def _smuggle_npy(path: Path, marker: Path) -> None:
    np.save(path, np.array([_Trap(marker)], dtype=object), allow_pickle=True)


def _smuggle_torch(path: Path, marker: Path) -> None:
    import torch

    torch.save({"weights": _Trap(marker)}, path)


SMUGGLED = {
    "set-vectors": ("set", "vectors.npy", _smuggle_npy, lambda p: ["info", p]),
    "vae-weights": ("vae", "weights.safetensors", _smuggle_torch, lambda p: ["vae", "sample", p, "-n", "1"]),
    "index-bm25-arrays": ("index", None, _smuggle_npy, lambda p: ["search", p, "a query", "--mode", "bm25"]),
}


@pytest.mark.parametrize("case", list(SMUGGLED))
def test_a_smuggled_pickle_is_refused_and_never_runs(world, tmp_path, cli, case):
    import shutil

    kind, name, smuggle, argv_of = SMUGGLED[case]
    target = tmp_path / f"smuggled.{kind}"
    shutil.copytree(_artefact(world, kind), target)
    if name is None:  # the largest .npy below the index (its BM25 arrays)
        payload = max(target.rglob("*.npy"), key=lambda p: p.stat().st_size)
    else:
        payload = target / name
    marker = tmp_path / "PWNED"
    smuggle(payload, marker)
    if payload.suffix == ".npy" and payload.read_bytes()[:6] != b"\x93NUMPY":
        raise AssertionError("np.save did not write a .npy")
    if (payload.parent / "manifest.json").is_file():
        _rewrite_checksums(payload.parent)
    _rewrite_checksums(target)
    before = tree(tmp_path)
    status, out, err = cli(*argv_of(target))
    assert_one_error_line(status, out, err)
    assert not marker.exists(), "the pickle's code ran"
    assert tree(tmp_path) == before


def test_a_pickled_training_checkpoint_is_refused_on_resume(world, tmp_path, cli):
    """``last.pt`` is read with ``torch.load(weights_only=True)``: a code-carrying pickle is an error."""
    work = tmp_path / ".tiny.vae.train"
    work.mkdir()
    marker = tmp_path / "PWNED"
    _smuggle_torch(work / "last.pt", marker)
    status, out, err = cli("vae", "train", world.sentences, "-o", tmp_path / "tiny.vae", "--resume", "--epochs", "1",
                           "--hidden-dim", "16", "--latent-dim", "2", "--quiet")
    assert_one_error_line(status, out, err, "unreadable checkpoint")
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "tiny.vae").exists()


# --- --where is parsed, never evaluated -------------------------------------------------------

INJECTIONS = [
    "__import__('os').system('touch PWNED')",
    "label == 'music' or __import__('os').system('touch PWNED') == 0",
    "open('PWNED', 'w')",
    "label.__class__.__name__ == 'str'",
    "(lambda: open('PWNED', 'w'))() == 1",
    "id == 1; open('PWNED', 'w')",
    "label in [__import__('os').system('touch PWNED')]",
    "label == f'{open(\"PWNED\", \"w\")}'",
    "@open('PWNED', 'w')",
    "id == 1 and `touch PWNED`",
]


@pytest.mark.parametrize("where", INJECTIONS, ids=range(len(INJECTIONS)))
def test_where_with_code_is_an_error_that_creates_nothing(world, tmp_path, monkeypatch, cli, where):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    status, out, err = cli("search", world.index, "music", "--where", where)
    assert_one_error_line(status, out, err)
    assert not (tmp_path / "PWNED").exists()
    assert tree(tmp_path) == before


def test_where_never_reaches_eval(world, monkeypatch, cli):
    import pandas as pd

    assert_success(*cli("search", world.index, "warm up", "--where", "id >= 0"))  # imports done first

    def refuse(*args, **kwargs):
        raise AssertionError("eval was called")

    for owner, name in [(builtins, "eval"), (pd, "eval"), (pd.DataFrame, "eval"), (pd.DataFrame, "query")]:
        monkeypatch.setattr(owner, name, refuse)
    status, out, err = cli("search", world.index, "music", "--where", "label in ['music', 'food'] and not id == 3",
                           "--json")
    assert_success(status, out, err)
    hits = json.loads(out)["queries"][0]["results"]
    assert hits and all(h["label"] in ("music", "food") and h["id"] != 3 for h in hits)


def test_the_filter_module_calls_no_evaluator():
    source = (REPO / "embedspace" / "search" / "filters.py").read_text(encoding="utf-8")
    called = set()
    for node in ast.walk(parse_python(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called.add(node.func.attr)
    forbidden = {"eval", "exec", "__import__", "query", "literal_eval"}
    assert not called & forbidden, called & forbidden
