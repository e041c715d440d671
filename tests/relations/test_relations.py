"""Word and phrase relations: gensim semantics on static vectors, sensible answers from the
default model, and the ``embedspace relate`` command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import REPO, snapshot
from embedspace import relations
from embedspace.errors import InputError
from embedspace.relations.wordvectors import TermSpace, load_vocabulary

STATIC_WORDS = ["king", "queen", "man", "woman", "prince", "princess", "boy", "girl", "apple", "banana",
                "car", "truck", "breakfast", "lunch", "dinner", "paris", "france", "berlin", "germany", "tokyo"]


@pytest.fixture(scope="module")
def static_file(encoder, tmp_path_factory):
    """Real (model-made) vectors written as a word2vec text file, so relations are meaningful."""
    vectors = encoder.encode(STATIC_WORDS)
    path = tmp_path_factory.mktemp("vectors") / "words.txt"
    lines = [f"{len(STATIC_WORDS)} {vectors.shape[1]}"]
    lines += [w + " " + " ".join(f"{v:.7f}" for v in row) for w, row in zip(STATIC_WORDS, vectors)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def keyed_vectors(static_file):
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(str(static_file))


@pytest.fixture(scope="module")
def word_space(encoder):
    """The default model over the 2,000 most frequent words of the shipped list."""
    return TermSpace.from_encoder(load_vocabulary()[:2000], encoder=encoder)


def _pairs(frame):
    return list(zip(frame["term"], frame["score"]))


def _assert_same(ours, theirs):
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own init_sims call
def test_static_relations_agree_with_gensim(static_file, keyed_vectors):
    space = TermSpace.from_file(static_file)
    kv = keyed_vectors
    _assert_same(_pairs(relations.neighbors("king", k=5, space=space)), kv.most_similar("king", topn=5))
    _assert_same(_pairs(relations.analogy("man", "king", "woman", k=5, space=space)),
                 kv.most_similar(positive=["king", "woman"], negative=["man"], topn=5))
    _assert_same(_pairs(relations.analogy("france", "paris", "germany", k=5, method="mul", space=space)),
                 kv.most_similar_cosmul(positive=["paris", "germany"], negative=["france"], topn=5))
    assert relations.similarity("car", "truck", space=space) == pytest.approx(kv.similarity("car", "truck"), abs=1e-6)
    odd = relations.odd_one_out(["breakfast", "lunch", "dinner", "car"], space=space)
    assert odd.loc[odd["odd"], "term"].item() == kv.doesnt_match(["breakfast", "lunch", "dinner", "car"]) == "car"
    expected = [(w, float(s)) for s, w in kv.rank_by_centrality(["breakfast", "lunch", "dinner", "car"])]
    _assert_same(list(zip(odd["term"], odd["centroid_similarity"])), expected)


def test_default_model_gives_sensible_answers(word_space):
    answers = relations.analogy("man", "king", "woman", k=3, space=word_space)
    assert answers["term"].iloc[0] == "queen"
    assert not {"man", "king", "woman"} & set(answers["term"])
    assert relations.analogy("man", "king", "woman", k=3, method="mul", space=word_space)["term"].iloc[0] == "queen"
    odd = relations.odd_one_out(["breakfast", "lunch", "dinner", "car"], space=word_space)
    assert odd.loc[odd["odd"], "term"].item() == "car" and odd["term"].iloc[-1] == "car"
    result = relations.axis("good", "bad", ["excellent", "terrible", "mediocre"], space=word_space, permutations=300)
    position = dict(zip(result.table["term"], result.table["position"]))
    assert position["excellent"] > 0.5 > position["mediocre"] and position["terrible"] < -0.5
    assert position["excellent"] > position["mediocre"] > position["terrible"]
    assert result.p_value < 0.05 and result.permutations == 300


def test_phrases_are_terms(word_space):
    near = relations.neighbors(["ice cream", "king"], k=5, space=word_space)
    assert list(near["query"].unique()) == ["ice cream", "king"]
    assert {"food", "eating", "coffee", "dessert"} & set(near.loc[near["query"] == "ice cream", "term"])
    assert "king" not in set(near["term"])  # a query is never its own neighbour
    sim = relations.similarity_matrix(["ice cream", "frozen dessert", "sports car"], space=word_space)
    assert sim.loc["ice cream", "frozen dessert"] > sim.loc["ice cream", "sports car"]
    pole = relations.axis(["hot weather"], ["cold weather"], ["summer", "winter"], space=word_space, permutations=0)
    assert pole.table.set_index("term")["position"]["summer"] > pole.table.set_index("term")["position"]["winter"]
    assert np.isnan(pole.p_value)
    answers = relations.analogy("france", "paris", "united kingdom", k=3, space=word_space)
    assert "london" in set(answers["term"])
    odd = relations.odd_one_out(["ice cream", "frozen yogurt", "chocolate cake", "sports car"], space=word_space)
    assert odd["term"].iloc[-1] == "sports car"


def test_axis_with_sets_of_poles_and_same_seed_same_p(word_space):
    kwargs = dict(space=word_space, permutations=200, seed=3)
    a = relations.axis(["good", "great"], ["bad", "awful"], ["fine", "dreadful"], **kwargs)
    b = relations.axis(["good", "great"], ["bad", "awful"], ["fine", "dreadful"], **kwargs)
    assert a.p_value == b.p_value and a.pos == ["good", "great"]
    assert a.to_dict()["terms"][0]["term"] == "fine"
    with pytest.raises(InputError, match="no direction"):
        relations.axis("good", "good", ["fine"], space=word_space)


def test_bad_arguments_are_input_errors(word_space):
    with pytest.raises(InputError, match="at least 3"):
        relations.odd_one_out(["a", "b"], space=word_space)
    with pytest.raises(InputError, match="non-empty"):
        relations.neighbors(["  "], space=word_space)
    with pytest.raises(InputError, match="k must be"):
        relations.neighbors("king", k=0, space=word_space)
    with pytest.raises(InputError, match="unknown analogy method"):
        relations.analogy("a", "b", "c", method="sub", space=word_space)
    with pytest.raises(InputError, match="needs a vocabulary"):
        relations.neighbors("king", space=TermSpace.from_encoder(None, encoder=word_space._embedder.encoder))


# --- command line ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "words.txt"
    path.write_text("\n".join(load_vocabulary()[:2000]) + "\n")
    return path


def test_cli_relate_verbs_with_json(cli, vocab_file, word_space):
    status, out, err = cli("relate", "analogy", "man", "king", "woman", "--vocab", vocab_file, "-k", 3, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["results"][0]["term"] == "queen" and set(result["results"][0]) == {"rank", "term", "score"}
    status, out, _ = cli("relate", "odd-one-out", "breakfast", "lunch", "dinner", "car", "--json")
    assert status == 0 and json.loads(out)["odd"] == "car"
    status, out, _ = cli("relate", "axis", "good", "bad", "excellent", "terrible", "mediocre", "--vocab", vocab_file,
                         "--permutations", 200, "--json")
    result = json.loads(out)
    assert status == 0 and result["pos"] == ["good"] and result["neg"] == ["bad"] and result["p_value"] < 0.05
    assert [t["term"] for t in result["terms"]] == ["excellent", "terrible", "mediocre"]
    status, out, _ = cli("relate", "neighbors", "ice cream", "--vocab", vocab_file, "-k", 2, "--json")
    assert status == 0 and json.loads(out)["queries"][0]["query"] == "ice cream"
    status, out, _ = cli("relate", "similarity", "cat", "dog")
    assert status == 0 and out.startswith("cosine('cat', 'dog') = 0.")


def test_cli_plots_are_written_and_never_overwritten_silently(cli, vocab_file, tmp_path):
    heat = tmp_path / "heat.png"
    status, out, err = cli("relate", "similarity", "--matrix", "cat", "dog", "ice cream", "--plot", heat, "--json")
    assert status == 0, err
    assert heat.read_bytes().startswith(b"\x89PNG")
    assert json.loads(out)["matrix"][0][0] == pytest.approx(1.0, abs=1e-5)
    before = snapshot(heat)
    status, _, err = cli("relate", "similarity", "--matrix", "cat", "dog", "--plot", heat)
    assert status == 2 and "already exists" in err and snapshot(heat) == before
    two = tmp_path / "two.png"
    status, _, err = cli("relate", "axis", "man", "woman", "king", "queen", "--y-pos", "rich", "--y-neg", "poor",
                         "--vocab", vocab_file, "--permutations", 50, "--plot", two)
    assert status == 0, err
    assert two.read_bytes().startswith(b"\x89PNG")
    assert f"wrote {two}" in err  # a picture is never written silently (issue 31, item 10)
    one = tmp_path / "one.png"
    status, _, err = cli("relate", "axis", "--pos", "good,great", "--neg", "bad", "fine", "--vocab", vocab_file,
                         "--permutations", 0, "--plot", one, "--quiet")
    assert status == 0, err
    assert one.read_bytes().startswith(b"\x89PNG")


def test_cli_relate_on_word_vectors(cli, static_file):
    status, out, err = cli("relate", "analogy", "man", "king", "woman", "--vectors", static_file, "-k", 1, "--json")
    assert status == 0, err
    assert json.loads(out)["results"][0]["term"] == "queen"
    status, _, err = cli("relate", "neighbors", "zebra", "--vectors", static_file)
    assert status == 2 and err.startswith("error: not in the word vectors: 'zebra'") and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["relate", "similarity", "a", "b", "c"], "exactly two terms"),
    (["relate", "axis", "good", "bad"], "at least one TERM"),
    (["relate", "axis", "--pos", "good", "fine"], "give both --pos and --neg"),
    (["relate", "odd-one-out", "a", "b"], "at least 3"),
    (["relate", "analogy", "a", "b"], "required"),
    (["relate", "analogy", "a", "b", "c", "-k", "0"], "at least 1"),
    (["relate", "neighbors", "king", "--vectors", "missing.txt"], "no such file"),
    (["relate", "neighbors", "king", "--vectors", "x.txt", "--templates"], "--templates apply to the sentence encoder"),
    (["relate"], "required: RELATION"),
])
def test_cli_bad_input_is_one_error_line(cli, argv, message):
    status, out, err = cli(*argv)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_example_script_runs(tmp_path, capsys, word_space):
    import runpy
    import sys

    argv, sys.argv = sys.argv, ["example_relations.py", "--vocab-size", "2000", "--plots", str(tmp_path)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(REPO / "scripts" / "example_relations.py"), run_name="__main__")
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "queen" in out and "MEN: spearman 0.76" in out and "accuracy 0.65" in out
    assert (tmp_path / "similarity.png").is_file() and (tmp_path / "axis.png").is_file()
