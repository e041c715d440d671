"""The EmbeddingSet object and its checked, atomic directory format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import snapshot
from embedspace import EmbeddingSet, FormatError, InputError, ModelIdentity, OutputExistsError

IDENTITY = ModelIdentity(name="test-model", weights_sha256="ab" * 32, dim=8, normalized=True, max_seq_length=16)


def make_set(n=50, d=8, seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"text": [f"doc {i}" for i in range(n)], "year": np.arange(n) % 7, "tag": ["a", "b"] * (n // 2)})
    return EmbeddingSet(rng.standard_normal((n, d)).astype(np.float32), table, IDENTITY)


def test_round_trip_is_exact_and_memory_mapped(tmp_path):
    space = make_set()
    space.save(tmp_path / "s")
    loaded = EmbeddingSet.load(tmp_path / "s")
    assert isinstance(loaded.stored_vectors, np.memmap)
    np.testing.assert_array_equal(loaded.vectors, space.vectors)
    pd.testing.assert_frame_equal(loaded.table, space.table)
    assert loaded.model == IDENTITY
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["format"] == "embedspace.embeddingset" and manifest["format_version"] == 1
    assert set(manifest["files"]) == {"vectors.npy", "table.parquet"}
    assert manifest["n"] == 50 and manifest["d"] == 8 and manifest["model"]["name"] == "test-model"


def test_vectors_are_read_only_and_operations_return_new_sets():
    space = make_set()
    with pytest.raises(ValueError):
        space.vectors[0, 0] = 1.0
    other = space.assign(cluster=np.zeros(len(space), dtype=int))
    assert "cluster" in other.table and "cluster" not in space.table
    sub = space.select(space.table["tag"] == "a")
    assert len(sub) == 25 and list(sub.table.index) == list(range(25))
    np.testing.assert_array_equal(sub.vectors[1], space.vectors[2])


def test_float16_storage(tmp_path):
    space = make_set()
    space.save(tmp_path / "h", dtype="float16")
    loaded = EmbeddingSet.load(tmp_path / "h")
    assert loaded.stored_vectors.dtype == np.float16
    assert loaded.vectors.dtype == np.float32
    assert np.abs(loaded.vectors - space.vectors).max() < 2e-3 * np.abs(space.vectors).max()


def test_mixed_type_metadata_survives(tmp_path):
    table = pd.DataFrame({"text": ["a", "b", "c"], "mixed": [1, "two", 3.5], "none": [None, None, None]})
    EmbeddingSet(np.zeros((3, 4), np.float32), table).save(tmp_path / "m")
    loaded = EmbeddingSet.load(tmp_path / "m")
    assert loaded.table["mixed"].tolist() == ["1", "two", "3.5"]


def test_existing_output_refused_then_replaced_whole(tmp_path):
    make_set(seed=1).save(tmp_path / "s")
    before = snapshot(tmp_path / "s")
    with pytest.raises(OutputExistsError):
        make_set(seed=2).save(tmp_path / "s")
    assert snapshot(tmp_path / "s") == before
    make_set(seed=2).save(tmp_path / "s", overwrite=True)
    np.testing.assert_array_equal(EmbeddingSet.load(tmp_path / "s").vectors, make_set(seed=2).vectors)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary siblings left


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    from embedspace import store

    def disk_full(self, frame):
        raise OSError(28, "No space left on device")

    make_set(seed=1).save(tmp_path / "s")
    before = snapshot(tmp_path / "s")
    monkeypatch.setattr(store.TableSink, "append", disk_full)
    with pytest.raises(OSError):
        make_set(seed=3).save(tmp_path / "s", overwrite=True)
    with pytest.raises(OSError):
        make_set(seed=3).save(tmp_path / "new")
    assert snapshot(tmp_path / "s") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest", "newer"])
def test_corruption_is_detected(tmp_path, damage):
    make_set().save(tmp_path / "s")
    vectors = tmp_path / "s" / "vectors.npy"
    manifest = tmp_path / "s" / "manifest.json"
    if damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[:-100])
        message = "truncated or edited"
    elif damage == "flip":
        data = bytearray(vectors.read_bytes())
        data[-5] ^= 0xFF
        vectors.write_bytes(bytes(data))
        message = "checksum"
    elif damage == "delete":
        (tmp_path / "s" / "table.parquet").unlink()
        message = "table.parquet is missing"
    elif damage == "manifest":
        manifest.write_text("{not json")
        message = "unreadable manifest"
    else:
        data = json.loads(manifest.read_text())
        data["format_version"] = 99
        manifest.write_text(json.dumps(data))
        message = "newer embedspace.*upgrade"
    with pytest.raises(FormatError, match=message):
        EmbeddingSet.load(tmp_path / "s")


def test_foreign_directory_and_bad_construction(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FormatError, match="no manifest.json"):
        EmbeddingSet.load(tmp_path / "x")
    with pytest.raises(InputError, match="no such directory"):
        EmbeddingSet.load(tmp_path / "missing")
    with pytest.raises(InputError, match="3 vectors but 2 table rows"):
        EmbeddingSet(np.zeros((3, 2)), pd.DataFrame({"text": ["a", "b"]}))
    with pytest.raises(InputError, match="'text' column"):
        EmbeddingSet(np.zeros((1, 2)), pd.DataFrame({"body": ["a"]}))
