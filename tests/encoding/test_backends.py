"""Every backend against the torch reference: shapes, exactness, neighbours, cached models."""

from __future__ import annotations

import os

import numpy as np
import pytest

from embedspace.encoding.encoders import BACKENDS, PADDING_SENSITIVE, load_encoder

FAST = [b for b in BACKENDS if b not in ("auto", "torch")]
EXACT = ("onnx", "openvino")
EDGE = ["  padded with spaces  ", "x " * 600, "émigré café 🙂", "a"]


@pytest.fixture(scope="module")
def torch_vectors(torch_encoder, sentences):
    """torch fp32 vectors of the 1,000 real sentences, computed once for this module."""
    return torch_encoder.encode(sentences)


@pytest.fixture(scope="module")
def reference(torch_encoder, torch_vectors, sentences):
    texts = sentences[:200] + EDGE
    return texts, np.vstack([torch_vectors[:200], torch_encoder.encode(EDGE)])


@pytest.fixture(scope="module")
def fast_encoders():
    return {b: load_encoder(backend=b) for b in FAST}


@pytest.mark.parametrize("backend", FAST)
def test_backend_shapes_and_unit_norm(backend, fast_encoders, reference):
    texts, ref = reference
    vectors = fast_encoders[backend].encode(texts)
    assert vectors.shape == ref.shape == (len(texts), 384)
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert fast_encoders[backend].encode([]).shape == (0, 384)
    # approximate backends still point the same way
    assert float(np.min(np.sum(vectors * ref, axis=1))) > 0.97


@pytest.mark.parametrize("backend", EXACT)
def test_exact_backends_equal_torch(backend, fast_encoders, reference):
    texts, ref = reference
    assert np.abs(fast_encoders[backend].encode(texts) - ref).max() <= 1e-4


def _top10(vectors):
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, 10, axis=1)[:, :10]


def test_default_backend_keeps_top10_neighbours(encoder, torch_vectors, sentences):
    ref, fast = torch_vectors, encoder.encode(sentences)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(_top10(ref), _top10(fast))])
    assert overlap >= 0.99, f"default backend {encoder.backend}: top-10 overlap {overlap:.4f}"


def test_quantized_models_are_cached_beside_the_export_and_reused(fast_encoders, monkeypatch):
    from embedspace.encoding import _quantize
    from embedspace.encoding._onnx_export import _int8_model, exported_model

    enc = fast_encoders["onnx-int8"]
    export = exported_model(enc.folder, enc.identity.weights_sha256)
    assert enc.identity.weights_sha256[:24] in export.name
    built = [_int8_model(export), _quantize.int8_weights_model(export)]
    for path in built:
        assert path.parent == export and path.is_file()
    stamps = [p.stat().st_mtime_ns for p in built]

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a cached quantised model was rebuilt")

    monkeypatch.setattr(_quantize, "build_int8_weights", no_rebuild)
    assert _quantize.int8_weights_model(export) == built[1]
    assert [p.stat().st_mtime_ns for p in built] == stamps


def test_cached_file_is_atomic(tmp_path):
    from embedspace.encoding._quantize import cached_file

    target = tmp_path / "model-x.onnx"

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        cached_file(target, broken)
    assert not target.exists() and [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    calls = []
    for _ in range(2):
        cached_file(target, lambda tmp: (calls.append(1), tmp.write_bytes(b"whole")))
    assert target.read_bytes() == b"whole" and len(calls) == 1


def test_unknown_backend_is_an_input_error():
    from embedspace.errors import InputError

    with pytest.raises(InputError, match="unknown backend"):
        load_encoder(backend="onnx-int3")
    assert os.environ.get("EMBEDSPACE_CACHE_DIR")  # tests never touch the user's cache


def test_gptq_rounding_beats_nearest_rounding_on_its_inputs():
    from embedspace.encoding._quantize import gptq_quantize

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 64)) * np.linspace(0.2, 3.0, 64)  # uneven input scales
    x[:, :8] += x[:, 8:16]  # correlated inputs
    w = rng.standard_normal((64, 32)).astype(np.float32)
    q, scale = gptq_quantize(w, x.T @ x)
    assert q.dtype == np.int8 and q.shape == w.shape and scale.shape == (32,)
    nearest = np.clip(np.round(w / scale), -127, 127) * scale
    err_gptq = np.linalg.norm(x @ (q * scale) - x @ w)
    err_nearest = np.linalg.norm(x @ nearest - x @ w)
    assert err_gptq < err_nearest


def test_max_tokens_cuts_every_backend_to_the_same_window(torch_encoder, sentences):
    """``max_tokens`` truncates on the fast path and on torch alike, and is part of the identity."""
    from embedspace.encoding.cache import namespace_of

    long_text = " ".join(sentences[:30])
    longer = long_text + " " + " ".join(sentences[30:60])  # the same first 16 tokens
    onnx16 = load_encoder(backend="onnx", max_tokens=16)
    torch16 = load_encoder(backend="torch", max_tokens=16)
    a, b = onnx16.encode([long_text, longer])
    assert np.array_equal(a, b)
    assert np.abs(torch16.encode([long_text])[0] - a).max() <= 1e-4
    assert np.abs(torch_encoder.encode([long_text])[0] - a).max() > 1e-2  # the 256-token window differs
    assert onnx16.identity.max_seq_length == 16
    assert namespace_of(onnx16.identity) != namespace_of(load_encoder(backend="onnx").identity)


@pytest.mark.parametrize("bad", [0, 1, 513])
def test_max_tokens_outside_the_models_limits_is_refused(bad):
    from embedspace.errors import InputError

    with pytest.raises(InputError, match="max tokens"):
        load_encoder(max_tokens=bad)


def test_cli_embed_max_tokens(cli, tmp_path):
    (tmp_path / "docs.txt").write_text("a first document about graphics cards\na second one about baseball\n")
    status, _, err = cli("embed", tmp_path / "docs.txt", "-o", tmp_path / "set", "--max-tokens", "8", "--quiet")
    assert status == 0, err
    from embedspace import EmbeddingSet

    assert EmbeddingSet.load(tmp_path / "set").model.max_seq_length == 8
    status, _, err = cli("embed", tmp_path / "docs.txt", "-o", tmp_path / "other", "--max-tokens", "9999")
    assert status == 2 and err.startswith("error: ") and "max tokens" in err and err.count("\n") == 1
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("backend", sorted(PADDING_SENSITIVE))
def test_a_texts_vector_does_not_depend_on_its_batch(backend, fast_encoders, sentences):
    """Quantised backends pad each text to a width of its own, so neighbours in a batch change nothing."""
    encoder = fast_encoders[backend]
    texts = sentences[:40]
    alone = np.stack([encoder.encode([text])[0] for text in texts[:8]])
    long_post = " ".join(sentences[100:160])  # pads every other batch in the old scheme to 256 tokens
    mixed = encoder.encode([long_post, *texts, "ok."])[1:9]
    assert np.array_equal(alone, mixed)


def test_padded_width_rounds_up_by_length():
    from embedspace.encoding.encoders import padded_width

    assert padded_width(np.array([1, 4, 5, 64, 65, 129, 250, 256]), 256).tolist() == [1, 4, 5, 64, 72, 144, 256, 256]


def test_auto_takes_bf16_only_where_the_cpu_runs_it_fast(monkeypatch):
    """bf16 ran at 3.09x plain on AMD's native avx512_bf16 and 0.87x on a Xeon without AMX."""
    import embedspace.encoding.backends as backend_choice
    import embedspace.encoding.encoders as encoders

    monkeypatch.delenv("EMBEDSPACE_BACKEND", raising=False)
    cases = [
        ("AuthenticAMD", {"avx512_bf16", "avx512_vnni"}, "openvino-bf16"),
        ("GenuineIntel", {"avx512_bf16", "avx512_vnni"}, "openvino-int8-mixed"),
        ("GenuineIntel", {"avx512_bf16", "amx_bf16", "amx_int8"}, "openvino-bf16"),
        ("AuthenticAMD", {"avx2"}, "onnx"),
    ]
    for vendor, flags, expected in cases:
        monkeypatch.setattr(backend_choice, "_cpu_vendor", lambda v=vendor: v)
        monkeypatch.setattr(backend_choice, "_cpu_flags", lambda f=flags: set(f))
        assert encoders.default_backend() == expected, (vendor, flags)
    assert encoders.default_batch_size("openvino-bf16") == 64
    assert encoders.default_batch_size("onnx") == 32
    assert encoders.load_encoder(backend="openvino-bf16").batch_size == 64
    assert encoders.load_encoder(backend="onnx", batch_size=8).batch_size == 8


def test_long_texts_are_tokenised_from_a_prefix_to_the_same_ids(encoder):
    """Long texts are tokenised from a prefix; the window must equal the whole text's."""
    import embedspace as es
    from embedspace.encoding._tokens import encode_window

    tokenizer = encoder._get_tokenizer()
    posts = [t.strip() for t in es.read("corpus:20newsgroups")["text"].tolist()[:400]]
    edge = ["word " * 2000, "x" * 5000, "a" * 1279 + " " + "b" * 300 + " tail" * 500, "漢字" * 3000,
            "e\u0301" * 4000, "émigré café, " * 400, "short text"]
    texts = posts + edge
    fast, windows = encode_window(tokenizer, texts, 256)
    whole = tokenizer.encode_batch(texts)
    assert [e.ids for e in fast] == [e.ids for e in whole]
    assert [bool(w) for w in windows] == [bool(e.overflowing) for e in whole]
    exact = np.array([len(e.overflowing) for e in whole])
    long = exact >= 3
    assert 0.8 <= np.median((np.array(windows)[long] + 1) / (exact[long] + 1)) <= 1.25  # the estimate
    assert sum(len(t) > 5 * 256 for t in posts) > 50  # the prefix path is exercised


def test_map_embeds_with_int8_products_only_where_bf16_is_native(monkeypatch):
    import embedspace.encoding.backends as backend_choice
    import embedspace.encoding.encoders as encoders

    monkeypatch.delenv("EMBEDSPACE_BACKEND", raising=False)
    for vendor, flags, expected in [
        ("AuthenticAMD", {"avx512_bf16", "avx512_vnni"}, "openvino-int8-bf16"),
        ("GenuineIntel", {"avx512_bf16", "avx512_vnni"}, "openvino-int8-mixed"),
        ("AuthenticAMD", {"avx2"}, "onnx"),
    ]:
        monkeypatch.setattr(backend_choice, "_cpu_vendor", lambda v=vendor: v)
        monkeypatch.setattr(backend_choice, "_cpu_flags", lambda f=flags: set(f))
        assert encoders.default_map_backend() == expected, (vendor, flags)
    monkeypatch.setenv("EMBEDSPACE_BACKEND", "onnx")
    assert encoders.default_map_backend() == "onnx"


def test_onnx_split_sessions_give_the_one_session_result_for_any_batch(fast_encoders, sentences):
    """With 2+ threads exact ONNX runs two sessions on the halves of a batch; 1 or 3 rows included."""
    from embedspace.encoding._onnx_export import make_runner

    encoder = fast_encoders["onnx"]
    encoder.encode(sentences[:2])  # builds the export
    ids, mask, order = encoder._tokenize_sorted(sentences[:7])
    width = int(mask.sum(axis=1).max())
    split = make_runner(encoder.folder, encoder.identity.weights_sha256, "onnx", 2)
    single = make_runner(encoder.folder, encoder.identity.weights_sha256, "onnx", 1)
    assert "_split_runner" in split.__qualname__ and "_split_runner" not in single.__qualname__
    for rows in (1, 3, 7):
        got = split(ids[:rows, :width], mask[:rows, :width])
        want = single(ids[:rows, :width], mask[:rows, :width])
        assert got.shape == want.shape == (rows, width, 384)
        np.testing.assert_allclose(got, want, atol=1e-5)
