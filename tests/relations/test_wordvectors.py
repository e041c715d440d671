"""Term spaces: word-vector files (word2vec text/binary, GloVe), vocabularies, encoder terms."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from embedspace.errors import InputError, ModelMismatchError
from embedspace.relations.wordvectors import TermSpace, load_vocabulary, read_word_vectors

KEYS = ["king", "queen", "man", "woman", "Paris", "paris", "ice", "cream"]


@pytest.fixture(scope="module")
def vectors():
    return np.random.default_rng(7).normal(size=(len(KEYS), 5)).astype(np.float32)


def write_text(path, keys, vectors, *, header=True):
    lines = [f"{len(keys)} {vectors.shape[1]}"] if header else []
    lines += [f"{k} " + " ".join(f"{v:.6f}" for v in row) for k, row in zip(keys, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_word2vec_text_glove_and_binary_read_the_same(tmp_path, vectors):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=5)
    kv.add_vectors(KEYS, vectors)
    kv.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    text = write_text(tmp_path / "v.txt", KEYS, vectors)
    glove = write_text(tmp_path / "glove.txt", KEYS, vectors, header=False)
    with gzip.open(tmp_path / "v.txt.gz", "wb") as handle:
        handle.write(text.read_bytes())
    for path in (text, glove, tmp_path / "v.bin", tmp_path / "v.txt.gz"):
        keys, read = read_word_vectors(path)
        assert keys == KEYS
        np.testing.assert_allclose(read, vectors, atol=1e-6)
    keys, read = read_word_vectors(text, limit=3)
    assert keys == KEYS[:3] and read.shape == (3, 5)


def test_malformed_line_names_its_number(tmp_path, vectors):
    path = write_text(tmp_path / "v.txt", KEYS, vectors)
    lines = path.read_text().splitlines()
    lines[3] = "man 0.1 0.2"  # too few values on line 4
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 4: expected a word and 5 numbers, found 2"):
        read_word_vectors(path)
    lines[3] = "man 0.1 0.2 abc 0.4 0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 4: 'abc' is not a number"):
        read_word_vectors(path)


def test_empty_truncated_and_missing_files_are_input_errors(tmp_path, vectors):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="file is empty"):
        read_word_vectors(tmp_path / "empty.txt")
    with pytest.raises(InputError, match="no such file"):
        read_word_vectors(tmp_path / "nope.txt")
    path = write_text(tmp_path / "v.txt", KEYS, vectors)
    path.write_text(path.read_text().replace(f"{len(KEYS)} 5", f"{len(KEYS) + 2} 5", 1))
    with pytest.raises(InputError, match="header announces 10 vectors but the file has 8"):
        read_word_vectors(path)
    binary = tmp_path / "v.bin"
    binary.write_bytes(b"3 5\nking " + np.zeros(5, "<f4").tobytes() + b"\nqueen " + b"\0" * 7)
    with pytest.raises(InputError, match="record 2: file ends early"):
        read_word_vectors(binary)


def test_repeated_keys_keep_the_first_vector(tmp_path, vectors):
    path = write_text(tmp_path / "v.txt", KEYS + ["king"], np.vstack([vectors, vectors[1:2]]))
    keys, read = read_word_vectors(path)
    assert keys == KEYS
    np.testing.assert_allclose(read[0], vectors[0], atol=1e-6)


def test_static_lookup_case_phrases_and_oov(tmp_path, vectors):
    space = TermSpace.from_file(write_text(tmp_path / "v.txt", KEYS, vectors))
    assert space.kind == "static" and len(space) == len(KEYS) and space.dim == 5
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found, ok = space.embed(["paris", "PARIS", "King"])
    np.testing.assert_allclose(found[0], unit[5], atol=1e-6)  # exact key first
    np.testing.assert_allclose(found[1], unit[4], atol=1e-6)  # otherwise the first case variant
    np.testing.assert_allclose(found[2], unit[0], atol=1e-6)
    found, _ = space.embed(["paris"], case_insensitive=True)  # gensim's rule: first of the family
    np.testing.assert_allclose(found[0], unit[4], atol=1e-6)
    phrase, _ = space.embed(["ice cream"])
    mean = unit[6] + unit[7]
    np.testing.assert_allclose(phrase[0], mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(InputError, match="not in the word vectors: 'zebra'"):
        space.embed(["king", "zebra"])
    masked, ok = space.embed(["king", "zebra", "ice zebra"], missing="mask")
    assert ok.tolist() == [True, False, False] and not masked[1].any()


def test_static_vocabulary_and_restriction(tmp_path, vectors):
    space = TermSpace.from_file(write_text(tmp_path / "v.txt", KEYS, vectors))
    (tmp_path / "vocab.txt").write_text("queen\nWOMAN\nzebra\n\nqueen\n")
    restricted = space.with_vocabulary(tmp_path / "vocab.txt")
    assert restricted.terms == ["queen", "woman"]
    head = space.restrict(3)
    assert head.terms == KEYS[:3]
    assert not head.embed(["woman"], missing="mask")[1][0]  # unknown beyond the first 3 keys
    with pytest.raises(InputError, match="none of the 1 vocabulary terms"):
        space.with_vocabulary(["zebra"])


def test_load_vocabulary_default_file_and_errors(tmp_path):
    words = load_vocabulary()
    assert len(words) == 30_000 and len(set(words)) == 30_000
    assert words[:3] == ["the", "to", "and"] and "queen" in words
    (tmp_path / "terms.txt").write_text("ice cream\n  hot   dog \n\nice cream\n")
    assert load_vocabulary(tmp_path / "terms.txt") == ["ice cream", "hot dog"]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError, match="has no terms"):
        load_vocabulary(tmp_path / "empty.txt")
    with pytest.raises(InputError, match="no such file"):
        load_vocabulary(tmp_path / "missing.txt")


def test_encoder_space_vocabulary_is_saved_and_reloaded(encoder, tmp_path):
    terms = ["apple", "banana", "car", "ice cream"]
    first = TermSpace.from_encoder(terms, encoder=encoder)
    again = TermSpace.from_encoder(terms, encoder=encoder)
    assert isinstance(again.vectors, np.memmap)  # loaded from the saved .npy, not re-embedded
    np.testing.assert_array_equal(np.asarray(first.vectors), np.asarray(again.vectors))
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)
    direct = encoder.encode(["banana"])[0]
    np.testing.assert_allclose(first.vectors[1], direct / np.linalg.norm(direct), atol=1e-5)
    assert not first.vectors.flags.writeable


def test_templates_average_prompts(encoder):
    plain = TermSpace.from_encoder(None, encoder=encoder)
    templated = TermSpace.from_encoder(None, encoder=encoder, templates=["{}", "a photo of {}"])
    a, _ = plain.embed(["dog"])
    b, _ = templated.embed(["dog"])
    photo = encoder.encode(["a photo of dog"])[0]
    expected = a[0] + photo / np.linalg.norm(photo)
    np.testing.assert_allclose(b[0], expected / np.linalg.norm(expected), atol=1e-5)
    with pytest.raises(InputError, match="exactly once"):
        TermSpace.from_encoder(None, encoder=encoder, templates=["no slot"])


def test_embeddingset_vocabulary_must_come_from_the_same_model(encoder, tmp_path):
    from dataclasses import replace

    from embedspace import embed

    words = embed(["red", "green", "blue"], encoder=encoder)
    space = TermSpace.from_encoder(words, encoder=encoder)
    assert space.terms == ["red", "green", "blue"]
    words.save(tmp_path / "colours")
    assert TermSpace.from_encoder(tmp_path / "colours", encoder=encoder).terms == ["red", "green", "blue"]
    other = type(words)(words.vectors, words.table, replace(encoder.identity, weights_sha256="0" * 64))
    with pytest.raises(ModelMismatchError, match="embed the vocabulary with the same model"):
        TermSpace.from_encoder(other, encoder=encoder)
