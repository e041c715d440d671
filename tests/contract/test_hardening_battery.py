"""The bad-input battery: every CLI verb against messy files, wrong artefacts and failing disks.

Each case builds its input in a fresh folder, runs ``embedspace`` in-process and checks the
command-line contract (DESIGN.md §5):

- a failure is exit status 2 with exactly one stderr line ``error: ...`` (no traceback, no
  ``error: unexpected ...``), and every file and folder that existed before, the shared
  artefacts included, is byte-identical afterwards, with nothing added — not even a
  temporary folder;
- a success is exit status 0, the result loads, and nothing but the declared output changed.

The shared artefacts (a set, an index, a map and a VAE) are built once per module and only
read; a case that damages one works on its own copy. Hand-written cases are followed by
hypothesis-generated ones (random bytes and random unicode fed to embed and map), held to
the same contract.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import Case, Err, Ok, World, assert_one_error_line, assert_success, run_case, shared_world, tree
from embedspace import EmbeddingSet

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return shared_world(tmp_path_factory)


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# --- checks for successful cases ------------------------------------------------------------


def _loads_set(n: int | None = None, name: str = "out"):
    def check(c: Case, out: str, err: str) -> EmbeddingSet:
        space = EmbeddingSet.load(c.out(name))
        assert n is None or len(space) == n, len(space)
        assert np.isfinite(space.vectors).all()
        return space
    return check


def _set_with(texts=None, n=None, warn: str = "", columns=None):
    def check(c: Case, out: str, err: str):
        space = EmbeddingSet.load(c.out())
        if texts is not None:
            assert space.texts == texts
        if n is not None:
            assert len(space) == n
        if columns is not None:
            assert list(space.table.columns) == columns
        if warn:
            assert warn in err, err
        return space
    return check


def _json_out(check):
    def wrapped(c: Case, out: str, err: str):
        return check(json.loads(out))
    return wrapped


# --- case builders: one function per case, named by what it feeds the CLI --------------------
# Each returns the argv; inputs are written into the case's own folder.

_MIXED = [
    {"text": "first", "meta": 1, "tag": "x"},
    {"text": "second", "meta": "two", "tag": None},
    {"text": "third", "meta": [3, "three"], "tag": 3.5},
    {"text": "fourth", "meta": {"n": 4}, "tag": True},
    {"text": "fifth", "meta": None},
]
_SCRIPTS = [
    "I ❤️ embeddings 🚀🔥 👩‍👩‍👧‍👦",
    "مرحبا بالعالم، هذا نص عربي",
    "שלום עולם וזה טקסט בעברית",
    "e\u0301 n\u0303 a\u0308 Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o",
    "mixed \u202eright-to-left override\u202c and 中文 and русский",
]


EMBED_INPUTS = [
    # empty inputs of every kind
    pytest.param(lambda c: ["embed", c.file("empty.txt", ""), "-o", c.out()], Err("the input is empty"), id="embed-empty-txt"),
    pytest.param(lambda c: ["embed", c.file("blank.txt", "\n  \n\t\n"), "-o", c.out()], Err("all 3 texts are empty"), id="embed-whitespace-only-txt"),
    pytest.param(lambda c: ["embed", c.file("empty.csv", ""), "-o", c.out()], Err("empty"), id="embed-empty-csv"),
    pytest.param(lambda c: ["embed", c.file("header.csv", "text,label\n"), "-o", c.out()], Err("empty"), id="embed-csv-header-only"),
    pytest.param(lambda c: ["embed", c.file("empty.tsv", ""), "-o", c.out()], Err("empty"), id="embed-empty-tsv"),
    pytest.param(lambda c: ["embed", c.file("empty.jsonl", ""), "-o", c.out()], Err("empty"), id="embed-empty-jsonl"),
    pytest.param(lambda c: ["embed", c.file("empty.jsonl.gz", gzip.compress(b"")), "-o", c.out()], Err("empty"), id="embed-empty-jsonl-gz"),
    pytest.param(lambda c: ["embed", c.parquet("empty.parquet", {"text": pa.array([], pa.string())}), "-o", c.out()], Err("empty"), id="embed-empty-parquet"),
    pytest.param(lambda c: ["embed", c.file("zero.parquet", b""), "-o", c.out()], Err("not a readable Parquet file"), id="embed-zero-byte-parquet"),
    pytest.param(lambda c: ["embed", (c.tmp / "nothing").mkdir() or c.tmp / "nothing", "-o", c.out()], Err("holds no .txt files"), id="embed-empty-folder"),
    # random bytes under every extension
    pytest.param(lambda c: ["embed", c.file("noise.txt", _random_bytes(4000, 1)), "-o", c.out()], Ok(_set_with(warn="undecodable byte sequences")), id="embed-random-bytes-txt-replaced"),
    pytest.param(lambda c: ["embed", c.file("noise.txt", _random_bytes(4000, 1)), "-o", c.out(), "--strict"], Err("not valid UTF-8"), id="embed-random-bytes-txt-strict"),
    pytest.param(lambda c: ["embed", c.file("noise.jsonl", _random_bytes(4000, 2)), "-o", c.out()], Err("looks like a binary file, not text"), id="embed-random-bytes-jsonl"),
    pytest.param(lambda c: ["embed", c.file("noise.jsonl.gz", _random_bytes(4000, 3)), "-o", c.out()], Err("cannot read gzip"), id="embed-random-bytes-gz"),
    pytest.param(lambda c: ["embed", c.file("noise.parquet", _random_bytes(4000, 4)), "-o", c.out()], Err("not a readable Parquet file"), id="embed-random-bytes-parquet"),
    pytest.param(lambda c: ["embed", c.file("noise.csv", b"text\n" + _random_bytes(4000, 5).replace(b"\0", b"")), "-o", c.out(), "--strict"], Err("not valid UTF-8"), id="embed-random-bytes-csv-strict"),
    pytest.param(lambda c: ["embed", c.file("truncated.csv.gz", gzip.compress(b"text\nhello there\n" * 50)[:-30]), "-o", c.out()], Err("cannot read gzip"), id="embed-truncated-gzip"),
    # invalid UTF-8 inside otherwise good files
    pytest.param(lambda c: ["embed", c.file("latin1.txt", "caf\xe9 au lait\nna\xefve r\xe9sum\xe9\nplain line\n".encode("latin-1")), "-o", c.out()],
                 Ok(_set_with(texts=["caf\ufffd au lait", "na\ufffdve r\ufffdsum\ufffd", "plain line"], warn="replaced 4 undecodable")), id="embed-invalid-utf8-txt-replaced-and-counted"),
    pytest.param(lambda c: ["embed", c.file("latin1.txt", "caf\xe9 au lait\n".encode("latin-1")), "-o", c.out(), "--strict"], Err("not valid UTF-8"), id="embed-invalid-utf8-txt-strict"),
    pytest.param(lambda c: ["embed", c.file("latin1.csv", "text,tag\ncaf\xe9,x\nthe end,y\n".encode("latin-1")), "-o", c.out()],
                 Ok(_set_with(texts=["caf\ufffd", "the end"], warn="replaced 1 undecodable")), id="embed-invalid-utf8-csv-replaced"),
    pytest.param(lambda c: ["embed", c.file("latin1.jsonl", '{"text": "caf\xe9 noir"}\n'.encode("latin-1")), "-o", c.out(), "--strict"], Err("not valid UTF-8"), id="embed-invalid-utf8-jsonl-strict"),
    pytest.param(lambda c: ["embed", c.file("folder/a.txt", b"ok text") and c.file("folder/b.txt", b"bad \xff\xfe byte") and c.tmp / "folder", "-o", c.out()],
                 Ok(_set_with(n=2, warn="undecodable")), id="embed-invalid-utf8-folder-replaced"),
    pytest.param(lambda c: ["embed", c.file("folder/a.txt", b"ok text") and c.file("folder/b.txt", b"bad \xff byte") and c.tmp / "folder", "-o", c.out(), "--strict"],
                 Err("not valid UTF-8"), id="embed-invalid-utf8-folder-strict"),
    # parquet text columns holding None, NaN and numbers
    pytest.param(lambda c: ["embed", c.parquet("nulls.parquet", {"text": ["a real sentence", None, "another one", None]}), "-o", c.out()],
                 Ok(_set_with(texts=["a real sentence", "another one"], warn="dropped 2 empty or missing")), id="embed-parquet-text-none-dropped"),
    pytest.param(lambda c: ["embed", c.parquet("numbers.parquet", {"text": [1.5, float("nan"), None, 42.0], "k": [1, 2, 3, 4]}), "-o", c.out()],
                 Ok(_set_with(texts=["1.5", "42.0"], warn="converted 2 non-string")), id="embed-parquet-text-numbers-nan-none"),
    pytest.param(lambda c: ["embed", c.parquet("ints.parquet", {"text": [7, 8, 9]}), "-o", c.out()], Ok(_set_with(texts=["7", "8", "9"])), id="embed-parquet-text-all-integers"),
    pytest.param(lambda c: ["embed", c.parquet("nulls.parquet", {"text": ["fine", None]}), "-o", c.out(), "--strict"], Err("document 2 has no text"), id="embed-parquet-text-none-strict"),
    pytest.param(lambda c: ["embed", c.parquet("allnull.parquet", {"text": pa.array([None, None], pa.string())}), "-o", c.out()], Err("all 2 texts are empty"), id="embed-parquet-text-all-null"),
    pytest.param(lambda c: ["embed", c.parquet("nested.parquet", {"text": [["a", "list"], ["b"]]}), "-o", c.out()], Ok(_loads_set(2)), id="embed-parquet-text-lists"),
    # duplicate ids and texts, metadata of mixed types
    pytest.param(lambda c: ["embed", c.file("dups.csv", "id,text\n1,same text\n1,same text\n2,other text\n1,same text\n"), "-o", c.out()],
                 Ok(lambda c, out, err: _check_duplicates(c)), id="embed-duplicate-ids-and-texts-kept-in-order"),
    pytest.param(lambda c: ["embed", c.file("mixed.jsonl", "".join(json.dumps(r) + "\n" for r in _MIXED)), "-o", c.out()],
                 Ok(lambda c, out, err: _check_mixed(c)), id="embed-jsonl-metadata-of-mixed-types"),
    pytest.param(lambda c: ["embed", c.file("ragged.csv", "text,a\nfirst,1\nsecond,2,extra\n"), "-o", c.out()], Err("cannot parse as CSV"), id="embed-csv-ragged-row"),
    pytest.param(lambda c: ["embed", c.file("notobj.jsonl", '["a list", 1]\n'), "-o", c.out()], Err("expected a JSON object"), id="embed-jsonl-array-line"),
    pytest.param(lambda c: ["embed", c.file("twotext.csv", "body,text\na,b\n"), "-o", c.out(), "--text-col", "body"], Err("both 'body' and 'text'"), id="embed-csv-two-text-columns"),
    # scripts, emoji, right-to-left and combining characters survive untouched
    pytest.param(lambda c: ["embed", c.file("scripts.txt", "\n".join(_SCRIPTS) + "\n"), "-o", c.out()], Ok(_set_with(texts=_SCRIPTS)), id="embed-emoji-rtl-combining"),
    pytest.param(lambda c: ["embed", c.file("bom.txt", "\ufeffstarts with a BOM\r\nwindows line\r\n"), "-o", c.out()],
                 Ok(_set_with(texts=["starts with a BOM", "windows line"])), id="embed-bom-and-crlf"),
    pytest.param(lambda c: ["embed", c.file("nul.txt", b"nul\x00 inside\n\x00\x00\n"), "-o", c.out()], Ok(_set_with(texts=["nul inside"])), id="embed-nul-bytes"),
    # paths with spaces and non-ASCII
    pytest.param(lambda c: ["embed", c.file("my docs é/ファイル 1.txt", "a line of text\n"), "-o", c.tmp / "out ü ✓"],
                 Ok(_loads_set(1, "out ü ✓"), changes=("out ü ✓",)), id="embed-paths-with-spaces-and-non-ascii"),
    pytest.param(lambda c: ["embed", "corpus:no-such-corpus", "-o", c.out()], Err("no-such-corpus"), id="embed-unknown-corpus"),
    pytest.param(lambda c: ["embed", c.w.set, "-o", c.out()], Err("holds no .txt files"), id="embed-a-set-directory-as-input"),
]

def _check_duplicates(c: Case) -> None:
    space = EmbeddingSet.load(c.out())
    assert space.table["id"].tolist() == [1, 1, 2, 1]
    assert space.texts == ["same text", "same text", "other text", "same text"]
    np.testing.assert_array_equal(space.vectors[0], space.vectors[1])
    np.testing.assert_array_equal(space.vectors[0], space.vectors[3])


def _check_mixed(c: Case) -> None:
    space = EmbeddingSet.load(c.out())
    assert space.texts == ["first", "second", "third", "fourth", "fifth"]
    assert list(space.table.columns) == ["text", "meta", "tag"]
    meta = space.table["meta"].tolist()
    assert meta[0] in (1, "1") and meta[1] == "two" and pd.isna(meta[4])


def _corrupt(path: Path, how: str) -> Path:
    """Damage an artefact directory in one of the ways a loader must notice."""
    manifest = path / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.is_file() else None
    if how == "no-manifest":
        manifest.unlink()
    elif how == "garbled-manifest":
        manifest.write_bytes(manifest.read_bytes()[:40])
    elif how == "manifest-not-object":
        manifest.write_text("[1, 2, 3]")
    elif how == "newer-version":
        manifest.write_text(json.dumps(dict(data, format_version=99)))
    elif how == "foreign-format":
        manifest.write_text(json.dumps(dict(data, format="someone.else")))
    elif how in ("flipped-byte", "truncated-payload"):
        name = max(data["files"], key=lambda n: data["files"][n]["bytes"])
        payload = bytearray((path / name).read_bytes())
        if how == "flipped-byte":
            payload[len(payload) // 2] ^= 0xFF
            (path / name).write_bytes(bytes(payload))
        else:
            (path / name).write_bytes(bytes(payload[:-16]))
    elif how == "missing-payload":
        name = max(data["files"], key=lambda n: data["files"][n]["bytes"])
        (path / name).unlink()
    else:
        raise ValueError(how)
    return path


DAMAGE = {
    "no-manifest": "no manifest.json",
    "garbled-manifest": "unreadable manifest",
    "manifest-not-object": "not a JSON object",
    "newer-version": "upgrade embedspace",
    "foreign-format": "format 'someone.else'",
    "flipped-byte": "checksum",
    "truncated-payload": "truncated or edited",
    "missing-payload": "is missing",
}
# How each loadable kind is read from the command line.
READERS = {
    "set": lambda c, p: ["info", p],
    "index": lambda c, p: ["search", p, "a query"],
    "vae": lambda c, p: ["vae", "sample", p, "-n", "1"],
}
MANIFEST_CASES = [
    pytest.param(kind, how, id=f"{kind}-{how}") for kind in READERS for how in DAMAGE
]

WRONG_KINDS = [
    # an EmbeddingSet where something else is expected
    pytest.param(lambda c: ["search", c.w.set, "q"], Err("is an EmbeddingSet, not a search index; build an index first: embedspace index"), id="search-given-a-set"),
    pytest.param(lambda c: ["index", "add", c.w.set, c.w.set], Err("this is an EmbeddingSet, not a search index"), id="index-add-given-a-set-as-index"),
    pytest.param(lambda c: ["vae", "sample", c.w.set], Err("this is an EmbeddingSet, not a VAE model"), id="vae-sample-given-a-set"),
    pytest.param(lambda c: ["vae", "interpolate", c.w.set, "a", "b"], Err("not a VAE model"), id="vae-interpolate-given-a-set"),
    # an index where something else is expected
    pytest.param(lambda c: ["info", c.w.index, "--json"], Ok(_json_out(lambda r: r["format"] == "embedspace.index" and r["n"] == 24), changes=()), id="info-given-an-index"),
    pytest.param(lambda c: ["index", c.w.index, "-o", c.out()], Err("this is a search index, not an EmbeddingSet"), id="index-given-an-index"),
    pytest.param(lambda c: ["index", "add", c.w.index, c.w.index], Err("this is a search index, not an EmbeddingSet"), id="index-add-given-an-index-as-set"),
    pytest.param(lambda c: ["map", c.w.index, "-o", c.out()], Err("this is a search index, not an EmbeddingSet"), id="map-given-an-index"),
    pytest.param(lambda c: ["vae", "reconstruct", c.w.index, "a cat"], Err("not a VAE model"), id="vae-reconstruct-given-an-index"),
    # a map directory where something else is expected
    pytest.param(lambda c: ["vae", "sample", c.w.map], Err("this is a map directory, not a VAE model"), id="vae-sample-given-a-map"),
    pytest.param(lambda c: ["vae", "eval", c.w.map, c.w.sentences], Err("this is a map directory, not a VAE model"), id="vae-eval-given-a-map"),
    pytest.param(lambda c: ["search", c.w.map, "q"], Err("this is a map directory, not a search index"), id="search-given-a-map"),
    pytest.param(lambda c: ["info", c.w.map, "--json"], Ok(_json_out(lambda r: r["format"] == "embedspace.map"), changes=()), id="info-given-a-map"),
    pytest.param(lambda c: ["index", c.w.map, "-o", c.out()], Err("this is a map directory, not an EmbeddingSet"), id="index-given-a-map"),
    pytest.param(lambda c: ["map", c.w.map, "-o", c.out()], Err("this is a map directory, not an EmbeddingSet"), id="map-given-a-map"),
    # a VAE where something else is expected
    pytest.param(lambda c: ["info", c.w.vae, "--json"], Ok(_json_out(lambda r: r["format"] == "embedspace.vae" and r["vocab_size"] > 4), changes=()), id="info-given-a-vae"),
    pytest.param(lambda c: ["search", c.w.vae, "q"], Err("this is a VAE model, not a search index"), id="search-given-a-vae"),
    pytest.param(lambda c: ["index", c.w.vae, "-o", c.out()], Err("this is a VAE model, not an EmbeddingSet"), id="index-given-a-vae"),
    pytest.param(lambda c: ["relate", "neighbors", "cat", "--vocab", c.w.index], Err("not an EmbeddingSet"), id="relate-vocab-given-an-index"),
    # plain files where a directory is expected, and directories where a file is expected
    pytest.param(lambda c: ["info", c.w.docs], Err("is a file, not an EmbeddingSet directory"), id="info-given-a-plain-file"),
    pytest.param(lambda c: ["search", c.w.docs, "q"], Err("is a file, not a search index directory"), id="search-given-a-plain-file"),
    pytest.param(lambda c: ["index", c.w.docs, "-o", c.out()], Err("is a file"), id="index-given-a-plain-file"),
    pytest.param(lambda c: ["vae", "sample", c.w.docs], Err("is a file, not a VAE model directory"), id="vae-sample-given-a-plain-file"),
    pytest.param(lambda c: ["eval", "retrieval", c.w.docs], Err(str("docs.csv")), id="eval-retrieval-given-a-plain-file"),
    pytest.param(lambda c: ["eval", "retrieval", c.w.set], Err("qrels"), id="eval-retrieval-given-a-set"),
    pytest.param(lambda c: ["eval", "sts", c.w.set], Err("good.set"), id="eval-sts-given-a-directory"),
    pytest.param(lambda c: ["eval", "word-sim", c.w.set], Err("good.set"), id="eval-word-sim-given-a-directory"),
    pytest.param(lambda c: ["eval", "analogy", c.w.index], Err("good.index"), id="eval-analogy-given-a-directory"),
    pytest.param(lambda c: ["relate", "similarity", "a", "b", "--vectors", c.w.set], Err("good.set"), id="relate-vectors-given-a-directory"),
    pytest.param(lambda c: ["info", c.tmp / "missing"], Err("no such directory"), id="info-missing-path"),
    pytest.param(lambda c: ["vae", "sample", c.tmp / "missing.vae"], Err("no such directory"), id="vae-sample-missing-path"),
]

OUTPUTS = [
    # an output that exists is refused without --overwrite, by every writer
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.copy(c.w.set, "out")], Err("--overwrite"), id="embed-existing-output"),
    pytest.param(lambda c: ["index", c.w.set, "-o", c.copy(c.w.index, "out")], Err("--overwrite"), id="index-existing-output"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.copy(c.w.map, "out")], Err("--overwrite"), id="map-existing-output"),
    pytest.param(lambda c: ["vae", "train", c.w.sentences, "-o", c.copy(c.w.vae, "out"), "--epochs", "1"], Err("--overwrite"), id="vae-train-existing-output"),
    pytest.param(lambda c: ["relate", "similarity", "--matrix", "a", "b", "--plot", c.file("out", "keep me")], Err("--overwrite"), id="relate-plot-existing-output"),
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.file("out", "a plain file")], Err("--overwrite"), id="embed-output-is-a-plain-file"),
    # with --overwrite it is replaced as a whole: nothing of the old one survives inside
    pytest.param(lambda c: ["embed", c.w.sentences, "-o", c.copy(c.w.set, "out"), "--overwrite"],
                 Ok(lambda c, out, err: _replaced_whole(c, 120)), id="embed-overwrite-replaces-whole"),
    pytest.param(lambda c: ["index", c.w.set, "-o", c.copy(c.w.index, "out"), "--overwrite"],
                 Ok(lambda c, out, err: _replaced_index(c)), id="index-overwrite-replaces-whole"),
    # ... but a result that holds files embedspace did not write is kept, with those files (issue 30)
    pytest.param(lambda c: ["embed", c.w.sentences, "-o", _with_stray(c.copy(c.w.set, "out")), "--overwrite"],
                 Err("did not write"), id="embed-overwrite-keeps-a-set-holding-other-files"),
    pytest.param(lambda c: ["index", c.w.set, "-o", _with_stray(c.copy(c.w.index, "out")), "--overwrite"],
                 Err("did not write"), id="index-overwrite-keeps-an-index-holding-other-files"),
    # an output that is (or holds) the input is never replaced by the output
    pytest.param(lambda c: ["embed", c.file("in.txt", "some text\n"), "-o", c.tmp / "in.txt", "--overwrite"], Err("input"), id="embed-output-is-the-input"),
    pytest.param(lambda c: ["embed", c.file("data/in.txt", "some text\n"), "-o", c.tmp / "data", "--overwrite"], Err("input"), id="embed-output-folder-holds-the-input"),
    pytest.param(lambda c: ["index", c.copy(c.w.set, "s"), "-o", c.tmp / "s", "--overwrite"], Err("input"), id="index-output-is-its-set"),
    pytest.param(lambda c: ["map", c.copy(c.w.set, "s"), "-o", c.tmp / "s", "--overwrite"], Err("input"), id="map-output-is-its-set"),
    pytest.param(lambda c: ["vae", "train", c.file("c/corpus.txt", "a b c\n"), "-o", c.tmp / "c", "--overwrite"], Err("input"), id="vae-train-output-holds-its-corpus"),
    pytest.param(lambda c: ["demo", "-o", c.file("demo/map/notes.txt", "my own notes").parent.parent], Err("not an embedspace"), id="demo-refuses-a-foreign-subfolder"),
    # parents that are missing
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.tmp / "no" / "such" / "dir"], Err("does not exist"), id="embed-output-parent-missing"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.tmp / "no" / "dir"], Err("does not exist"), id="map-output-parent-missing"),
    pytest.param(lambda c: ["vae", "train", c.w.sentences, "-o", c.tmp / "no" / "v.vae"], Err("does not exist"), id="vae-train-output-parent-missing"),
    pytest.param(lambda c: ["index", c.w.set, "-o", c.file("afile", "x") / "idx"], Err("afile"), id="index-output-parent-is-a-file"),
]


def _with_stray(path: Path) -> Path:
    (path / "stray-from-the-old-result.txt").write_text("old")
    return path


def _replaced_whole(c: Case, n: int) -> None:
    assert not (c.out() / "stray-from-the-old-result.txt").exists()
    assert len(EmbeddingSet.load(c.out())) == n
    assert not [p for p in c.tmp.iterdir() if p.name.startswith(".out")]


def _replaced_index(c: Case) -> None:
    from embedspace.search import load_index

    assert not (c.out() / "stray-from-the-old-result.txt").exists()
    assert load_index(c.out()).n == 24


USAGE = [
    # numbers out of range and malformed options, verb by verb
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.out(), "--batch-size", "0"], Err("at least 1"), id="embed-batch-size-zero"),
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.out(), "--dtype", "float64"], Err("invalid choice"), id="embed-dtype-float64"),
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.out(), "--text-col", "nope"], Err("no column 'nope'"), id="embed-text-col-missing"),
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.out(), "--ray-address", "x:1"], Err("need --engine ray"), id="embed-ray-address-without-ray"),
    pytest.param(lambda c: ["embed", c.w.docs, "-o", c.out(), "--model", c.tmp], Err(""), id="embed-model-folder-is-not-a-model"),
    pytest.param(lambda c: ["index"], Err("required"), id="index-no-arguments"),
    pytest.param(lambda c: ["index", c.w.set], Err("-o/--output"), id="index-without-output"),
    pytest.param(lambda c: ["index", "add", c.w.index], Err("takes an index and a set"), id="index-add-without-set"),
    pytest.param(lambda c: ["index", c.w.set, "-o", c.out(), "--memory-budget", "lots"], Err("lots"), id="index-memory-budget-garbage"),
    pytest.param(lambda c: ["index", c.w.set, "-o", c.out(), "--kind", "btree"], Err("invalid choice"), id="index-unknown-kind"),
    pytest.param(lambda c: ["search", c.w.index, "q", "-k", "0"], Err("at least 1"), id="search-k-zero"),
    pytest.param(lambda c: ["search", c.w.index, "   "], Err("empty"), id="search-blank-query"),
    pytest.param(lambda c: ["search", c.w.index, "q", "--where", "label =="], Err(""), id="search-where-truncated"),
    pytest.param(lambda c: ["search", c.w.index, "q", "--where", "nosuch == 1"], Err("nosuch"), id="search-where-unknown-column"),
    pytest.param(lambda c: ["search", c.w.index, "q", "--where", "score == 'text'"], Err("score"), id="search-where-type-mismatch"),
    pytest.param(lambda c: ["search", c.w.index, "q", "--where", "(" * 500 + "id == 1" + ")" * 500], Err(""), id="search-where-deeply-nested"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.out(), "--k", "0"], Err("at least 1"), id="map-k-zero"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.out(), "--k", "500"], Err("500"), id="map-k-larger-than-n"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.out(), "--seed", "-1"], Err("between 0"), id="map-negative-seed"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.out(), "--label-col", "nope"], Err("no label column 'nope'"), id="map-label-col-missing"),
    pytest.param(lambda c: ["map", c.file("three.txt", "one doc\ntwo doc\nthree doc\n"), "-o", c.out()], Err("3"), id="map-three-documents"),
    pytest.param(lambda c: ["relate", "similarity", "a", "b", "c"], Err("exactly two terms"), id="relate-similarity-three-terms"),
    pytest.param(lambda c: ["relate", "axis", "good", "bad"], Err("at least one TERM"), id="relate-axis-without-terms"),
    pytest.param(lambda c: ["relate", "analogy", "a", "b"], Err("required"), id="relate-analogy-two-terms"),
    pytest.param(lambda c: ["relate", "similarity", "a", "b", "--vectors", c.tmp / "none.txt"], Err("none.txt"), id="relate-vectors-missing-file"),
    pytest.param(lambda c: ["relate", "similarity", "a", "b", "--vectors", c.file("bad.vec", "2 3\nw 1 2 x\n")], Err("line 2"), id="relate-vectors-malformed-line"),
    pytest.param(lambda c: ["relate", "similarity", "king", "unicorn", "--vectors", c.w.vectors], Err("unicorn"), id="relate-vectors-term-missing"),
    pytest.param(lambda c: ["relate", "neighbors", "cat", "--vocab", c.file("empty-vocab.txt", "")], Err("empty-vocab.txt"), id="relate-empty-vocab"),
    pytest.param(lambda c: ["eval", "sts", c.file("empty.csv", "")], Err("empty.csv"), id="eval-sts-empty-file"),
    pytest.param(lambda c: ["eval", "sts", c.file("noise.csv", _random_bytes(2000, 9))], Err("noise.csv"), id="eval-sts-random-bytes"),
    pytest.param(lambda c: ["eval", "word-sim", c.file("ws.txt", "")], Err("ws.txt"), id="eval-word-sim-empty-file"),
    pytest.param(lambda c: ["eval", "analogy", c.file("q.txt", ": capitals\nparis france tokyo\n")], Err("line 2"), id="eval-analogy-three-word-line"),
    pytest.param(lambda c: ["eval", "word-sim", c.w.words, "--restrict-vocab", "5"], Err("--vectors"), id="eval-word-sim-restrict-vocab-without-vectors"),
    pytest.param(lambda c: ["eval", "retrieval", (c.tmp / "beir").mkdir() or c.tmp / "beir"], Err("qrels"), id="eval-retrieval-empty-folder"),
    pytest.param(lambda c: ["eval", "clustering", c.w.docs, "--label-col", "nope"], Err("nope"), id="eval-clustering-label-col-missing"),
    pytest.param(lambda c: ["eval", "vae", c.w.vae, c.file("empty.txt", "")], Err("empty"), id="eval-vae-empty-file"),
    pytest.param(lambda c: ["vae", "train", c.file("empty.txt", ""), "-o", c.out()], Err("empty"), id="vae-train-empty-corpus"),
    pytest.param(lambda c: ["vae", "train", c.file("long.txt", "one two three four five\n" * 5), "-o", c.out(), "--max-length", "2"], Err("longer than --max-length"), id="vae-train-every-sentence-too-long"),
    pytest.param(lambda c: ["vae", "train", c.w.sentences, "-o", c.out(), "--max-minutes", "0"], Err("positive"), id="vae-train-zero-minutes"),
    pytest.param(lambda c: ["vae", "sample", c.w.vae, "-n", "0"], Err("at least 1"), id="vae-sample-n-zero"),
    pytest.param(lambda c: ["vae", "sample", c.w.vae, "--temperature", "-1"], Err("at least 0"), id="vae-sample-negative-temperature"),
    pytest.param(lambda c: ["vae", "interpolate", c.w.vae, "a", "b", "--steps", "-1"], Err("at least 0"), id="vae-interpolate-negative-steps"),
    pytest.param(lambda c: ["vae", "reconstruct", c.w.vae, ""], Err("empty"), id="vae-reconstruct-empty-text"),
    pytest.param(lambda c: ["vae"], Err(""), id="vae-without-verb"),
    pytest.param(lambda c: ["cache", "shred"], Err("invalid choice"), id="cache-unknown-action"),
    pytest.param(lambda c: ["frobnicate"], Err("invalid choice"), id="unknown-verb"),
    pytest.param(lambda c: [], Err(""), id="no-verb-at-all"),
]

SUCCESSES = [
    # the same verbs on good but unusual input succeed
    pytest.param(lambda c: ["search", c.w.index, "🚀 rockets", "مرحبا", "--json"], Ok(_json_out(lambda r: len(r["queries"]) == 2), changes=()), id="search-emoji-and-rtl-queries"),
    pytest.param(lambda c: ["search", c.w.index, "music", "--where", "id == 3 and label in ['music', 'sport']", "--json"],
                 Ok(_json_out(lambda r: _all_match(r)), changes=()), id="search-where-on-duplicate-ids"),
    pytest.param(lambda c: ["index", "add", c.copy(c.w.index, "out"), c.w.set], Ok(lambda c, out, err: _index_rows(c, 24)), id="index-add-the-same-set-twice"),
    pytest.param(lambda c: ["index", "add", c.copy(c.w.index, "out"), c.w.set, "--allow-duplicates"], Ok(lambda c, out, err: _index_rows(c, 48)), id="index-add-the-same-set-twice-allowing-duplicates"),
    pytest.param(lambda c: ["map", c.w.set, "-o", c.tmp / "map é ü", "--quiet"], Ok(changes=("map é ü",)), id="map-output-with-non-ascii-path"),
    pytest.param(lambda c: ["relate", "similarity", "🚀", "مرحبا", "--json"], Ok(changes=()), id="relate-similarity-emoji-rtl"),
    pytest.param(lambda c: ["vae", "reconstruct", c.w.vae, "a man ❤️ a guitar ♪ e\u0301"], Ok(changes=()), id="vae-reconstruct-unknown-words-and-emoji"),
    pytest.param(lambda c: ["eval", "sts", c.w.sts, "--json", "--quiet"], Ok(_json_out(lambda r: r["n"] == 3), changes=()), id="eval-sts-small-file"),
    pytest.param(lambda c: ["info", c.w.set, "--json"], Ok(_json_out(lambda r: r["n"] == 24), changes=()), id="info-good-set"),
]


def _all_match(result) -> bool:
    hits = result["queries"][0]["results"]
    assert hits and all(h["id"] == 3 for h in hits), hits
    return True


def _index_rows(c: Case, n: int) -> None:
    from embedspace.search import load_index

    assert load_index(c.out()).n == n


# --- the runner -----------------------------------------------------------------------------


def _beir(c: Case, corpus: bytes | str, queries: str, qrels: str) -> Path:
    c.file("beir/corpus.jsonl", corpus)
    c.file("beir/queries.jsonl", queries)
    c.file("beir/qrels/test.tsv", qrels)
    return c.tmp / "beir"


_QUERIES = '{"_id": "q1", "text": "a man plays music"}\n'
_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"


def _mixed_metadata_index(c: Case) -> Path:
    """An index over a CSV whose 'meta' column mixes integers, text, floats and blanks."""
    from embedspace.cli import main

    rows = "".join(f'"{t}",{m}\n' for t, m in zip(["a man plays a guitar", "a cat sleeps", "stocks fell", "a dog runs"],
                                                      ["1", "two", "3.5", ""]))
    source = c.file("mixed meta é.csv", "text,meta\n" + rows)
    assert main(["embed", str(source), "-o", str(c.tmp / "mixed é.set"), "--quiet"]) == 0
    assert main(["index", str(c.tmp / "mixed é.set"), "-o", str(c.tmp / "mixed é.index"), "--quiet"]) == 0
    return c.tmp / "mixed é.index"


def _orphan_index(c: Case) -> Path:
    """An index whose EmbeddingSet was deleted after it was built."""
    import shutil

    from embedspace.cli import main

    space = c.copy(c.w.set, "gone.set")
    assert main(["index", str(space), "-o", str(c.tmp / "orphan.index"), "--quiet"]) == 0
    shutil.rmtree(space)
    return c.tmp / "orphan.index"


def _foreign_dim_set(c: Case) -> Path:
    """A set of 8-d vectors with no model: it cannot join a 384-d index."""
    rng = np.random.default_rng(0)
    EmbeddingSet(rng.normal(size=(3, 8)).astype(np.float32), pd.DataFrame({"text": ["a", "b", "c"]}), None).save(c.tmp / "d8.set")
    return c.tmp / "d8.set"


MORE_VERBS = [
    # relate, eval and vae verbs the lists above do not reach
    pytest.param(lambda c: ["relate", "odd-one-out", "cat"], Err("at least"), id="relate-odd-one-out-one-term"),
    pytest.param(lambda c: ["relate", "neighbors", "cat", "--vectors", c.file("noise.bin", _random_bytes(3000, 11))], Err("noise.bin"), id="relate-vectors-random-bytes"),
    pytest.param(lambda c: ["relate", "axis", "good", "bad", "fine", "--vectors", c.file("empty.vec", "")], Err("empty.vec"), id="relate-axis-empty-vectors-file"),
    pytest.param(lambda c: ["vae", "arithmetic", c.w.vae, "a", "b"], Err("required"), id="vae-arithmetic-two-texts"),
    pytest.param(lambda c: ["vae", "arithmetic", c.w.index, "a", "b", "c"], Err("not a VAE model"), id="vae-arithmetic-given-an-index"),
    pytest.param(lambda c: ["vae", "eval", c.w.vae, c.file("noise.txt", _random_bytes(3000, 12)), "--strict"], Err(""), id="vae-eval-random-bytes-strict"),
    pytest.param(lambda c: ["vae", "eval", c.w.vae, c.w.sentences, "--samples", "0"], Err("at least 1"), id="vae-eval-zero-samples"),
    pytest.param(lambda c: ["eval", "sts", c.file("bad.csv", "sentence1,sentence2,score\na b,c d,high\n")], Err("bad.csv"), id="eval-sts-score-not-a-number"),
    pytest.param(lambda c: ["eval", "sts", c.file("cols.csv", "left,right,score\na,b,1\n")], Err("cols.csv"), id="eval-sts-wrong-header"),
    pytest.param(lambda c: ["eval", "word-sim", c.file("ws.txt", _random_bytes(3000, 13))], Err("ws.txt"), id="eval-word-sim-random-bytes"),
    pytest.param(lambda c: ["eval", "analogy", c.file("q.txt", "")], Err("q.txt"), id="eval-analogy-empty-file"),
    pytest.param(lambda c: ["eval", "retrieval", _beir(c, _random_bytes(3000, 14), _QUERIES, _QRELS)], Err("corpus.jsonl"), id="eval-retrieval-random-bytes-corpus"),
    pytest.param(lambda c: ["eval", "retrieval", _beir(c, '{"_id": "d1", "text": "music"}\n', _QUERIES, "nothing useful\n")], Err("test.tsv"), id="eval-retrieval-garbled-qrels"),
    pytest.param(lambda c: ["eval", "clustering", c.file("empty.csv", ""), "--label-col", "label"], Err("empty"), id="eval-clustering-empty-file"),
    pytest.param(lambda c: ["eval", "clustering", c.w.docs, "--label-col", "label", "--k", "0"], Err("at least 1"), id="eval-clustering-k-zero"),
    # indexes and their sets
    pytest.param(lambda c: ["search", _orphan_index(c), "music"], Err("gone.set"), id="search-index-whose-set-was-deleted"),
    pytest.param(lambda c: ["index", "add", c.copy(c.w.index, "i"), _foreign_dim_set(c)], Err(""), id="index-add-set-of-another-dimension"),
    pytest.param(lambda c: ["cache", "info", "--json", "extra"], Err("unrecognized"), id="cache-extra-argument"),
]

MORE_SUCCESSES = [
    pytest.param(lambda c: ["search", _mixed_metadata_index(c), "music", "--where", "meta == 'two'", "--json"],
                 Ok(_json_out(lambda r: [h["meta"] for h in r["queries"][0]["results"]] == ["two"]), changes=()),
                 id="search-where-on-mixed-type-metadata"),
    pytest.param(lambda c: ["index", c.copy(c.w.set, "ein Satz ü.set"), "-o", c.tmp / "mein Index ✓", "--quiet"],
                 Ok(changes=("mein Index ✓",)), id="index-paths-with-spaces-and-non-ascii"),
    pytest.param(lambda c: ["vae", "sample", c.copy(c.w.vae, "my vae ü"), "-n", "2"], Ok(changes=()), id="vae-sample-path-with-spaces-and-non-ascii"),
    pytest.param(lambda c: ["vae", "interpolate", c.w.vae, "🚀 ❤️", "שלום עולם", "--steps", "2"], Err("none of the words of input 1"), id="vae-interpolate-emoji-and-rtl"),
    pytest.param(lambda c: ["vae", "arithmetic", c.w.vae, "a man", "e\u0301", "مرحبا"], Err("none of the words of input 2"), id="vae-arithmetic-combining-and-rtl"),
    pytest.param(lambda c: ["relate", "odd-one-out", "cat", "dog", "🚀", "--vectors", c.w.vectors], Err("🚀"), id="relate-odd-one-out-emoji-not-in-vectors"),
    pytest.param(lambda c: ["eval", "clustering", c.w.docs, "--label-col", "label", "--json", "--quiet"],
                 Ok(_json_out(lambda r: {"ari", "nmi", "v_measure", "noise_fraction", "n_clusters"} <= set(r)), changes=()), id="eval-clustering-small-file"),
    pytest.param(lambda c: ["cache", "info", "--json"], Ok(_json_out(lambda r: "n_vectors" in r), changes=()), id="cache-info"),
]


@pytest.mark.parametrize("build, expect", EMBED_INPUTS + WRONG_KINDS + OUTPUTS + USAGE + SUCCESSES + MORE_VERBS + MORE_SUCCESSES)
def test_cli_case(world, tmp_path, build, expect, cli):
    run_case(world, tmp_path, build, expect, cli)


@pytest.mark.parametrize("kind, how", MANIFEST_CASES)
def test_damaged_artefact_is_refused(world, tmp_path, kind, how, cli):
    source = {"set": world.set, "index": world.index, "vae": world.vae}[kind]

    def build(c: Case):
        return READERS[kind](c, _corrupt(c.copy(source, f"damaged.{kind}"), how))

    run_case(world, tmp_path, build, Err(DAMAGE[how]), cli)


# --- generated inputs -------------------------------------------------------------------------
# Random bytes and random unicode (any script, control characters, combining marks, emoji;
# no lone surrogates, which no file can hold as UTF-8) under the extensions embed and map
# read. Whatever comes in, the command either succeeds with a loadable result or fails with
# one error line and leaves its folder as it was.


_UNICODE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120)
_GENERATED = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _generated_case(tmp_path_factory, cli, world, name: str, data: bytes, verb: str, strict: bool) -> None:
    tmp = tmp_path_factory.mktemp("generated")
    source = tmp / name
    source.write_bytes(data)
    out = tmp / "out"
    argv = [verb, source, "-o", out, *(["--strict"] if strict else []), *(["--quiet"] if verb == "map" else [])]
    before, before_world = tree(tmp), tree(world.root)
    status, stdout, stderr = cli(*argv)
    if status == 0:
        assert_success(status, stdout, stderr)
        if verb == "embed":
            space = EmbeddingSet.load(out)
            assert len(space) >= 1 and np.isfinite(space.vectors).all()
        else:
            documents = pd.read_parquet(out / "documents.parquet")
            assert len(documents) >= 1 and np.isfinite(documents[["x", "y"]].to_numpy()).all()
        after = tree(tmp)
        changed = {p for p in set(after) | set(before) if after.get(p) != before.get(p)}
        assert all(p == "out" or p.startswith("out/") for p in changed), sorted(changed)
    else:
        assert_one_error_line(status, stdout, stderr)
        assert tree(tmp) == before, "a failed command changed or left files in its folder"
    assert tree(world.root) == before_world


@_GENERATED
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".txt", ".csv", ".tsv", ".jsonl", ".jsonl.gz", ".parquet"]),
       strict=st.booleans())
def test_embed_random_bytes(world, tmp_path_factory, cli, data, suffix, strict):
    _generated_case(tmp_path_factory, cli, world, "input" + suffix, data, "embed", strict)


@_GENERATED
@given(lines=st.lists(_UNICODE, max_size=25), suffix=st.sampled_from([".txt", ".csv", ".jsonl"]), strict=st.booleans())
def test_embed_random_unicode(world, tmp_path_factory, cli, lines, suffix, strict):
    if suffix == ".jsonl":
        text = "".join(json.dumps({"text": line}) + "\n" for line in lines)
    elif suffix == ".csv":
        text = "text\n" + "".join('"' + line.replace('"', '""') + '"\n' for line in lines)
    else:
        text = "\n".join(lines)
    _generated_case(tmp_path_factory, cli, world, "input é" + suffix, text.encode("utf-8"), "embed", strict)


@settings(_GENERATED, max_examples=5)
@given(lines=st.lists(_UNICODE, min_size=0, max_size=60), noise=st.binary(max_size=400))
def test_map_random_unicode_and_bytes(world, tmp_path_factory, cli, lines, noise):
    _generated_case(tmp_path_factory, cli, world, "input.txt", "\n".join(lines).encode("utf-8") + noise, "map", False)
