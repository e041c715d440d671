"""The fast backends against the torch reference, the cache, and model resolution."""

from __future__ import annotations

import numpy as np
import pytest

from embedspace import EmbeddingCache, ModelNotFoundError, embed
from embedspace.encoding.pipeline import encode_texts
from embedspace.encoding.encoders import load_encoder, resolve_model


def test_default_model_is_offline_package():
    name, folder = resolve_model()
    assert name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (folder / "model.safetensors").is_file()


def test_unknown_model_name_says_no_download():
    with pytest.raises(ModelNotFoundError, match="cannot download models.*model=PATH"):
        load_encoder("intfloat/e5-nonexistent-model")


def test_onnx_equals_torch(encoder, torch_encoder, sentences):
    texts = sentences[:300] + ["  padded with spaces  ", "x " * 600, "émigré café 🙂"]
    exact = load_encoder(backend="onnx")
    ref = torch_encoder.encode(texts)
    fast = exact.encode(texts)
    assert fast.shape == (len(texts), 384) and fast.dtype == np.float32
    assert np.abs(fast - ref).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_default_backend_keeps_neighbours(encoder, torch_encoder, sentences):
    ref = torch_encoder.encode(sentences)
    fast = encoder.encode(sentences)
    k = 10
    a = np.argsort(-(ref @ ref.T), axis=1)[:, 1:k + 1]
    b = np.argsort(-(fast @ fast.T), axis=1)[:, 1:k + 1]
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])
    assert overlap >= 0.99


def test_order_is_input_order_whatever_the_lengths(encoder):
    texts = ["short", "a much longer sentence with many more tokens in it", "mid length text"]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_cache_round_trip_and_dedup(tmp_path, encoder):
    calls = []

    class Counting:
        identity = encoder.identity
        dim = encoder.dim

        def encode(self, texts, progress=None):
            calls.append(list(texts))
            return encoder.encode(texts)

    cache = EmbeddingCache(tmp_path / "c.sqlite")
    texts = ["alpha", "beta", "alpha", "gamma"]
    first, hits = encode_texts(Counting(), texts, cache=cache)
    assert hits == 0 and len(calls) == 1 and sorted(calls[0]) == ["alpha", "beta", "gamma"]
    np.testing.assert_array_equal(first[0], first[2])
    second, hits = encode_texts(Counting(), texts + ["delta"], cache=cache)
    assert hits == 4 and calls[-1] == ["delta"]
    np.testing.assert_array_equal(second[:4], first)
    info = cache.info()
    assert info["n_vectors"] == 4 and info["models"][0]["backend"] == encoder.identity.backend
    assert cache.clear() == 4 and cache.info()["n_vectors"] == 0


def test_embed_api_accepts_lists_and_frames(encoder):
    import pandas as pd

    space = embed(["one text", "two texts"], encoder=encoder, cache=False)
    assert space.vectors.shape == (2, 384) and space.model == encoder.identity
    frame = pd.DataFrame({"body": ["x y", "z"], "n": [1, 2]})
    space = embed(frame, text_col="body", encoder=encoder, cache=False)
    assert space.table.columns.tolist() == ["text", "n"]


def test_cache_clear_removes_derived_matrices(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    encode_texts(encoder, ["one", "two"], cache=cache)
    (tmp_path / "vocabularies").mkdir()
    (tmp_path / "vocabularies" / "m.npy").write_bytes(b"x" * 100)
    assert cache.info()["bytes"] >= 100
    assert cache.clear() == 2
    assert not list((tmp_path / "vocabularies").iterdir())
