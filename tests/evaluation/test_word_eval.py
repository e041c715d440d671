"""Word benchmarks: the acceptance figures with the default model, agreement with gensim's
``evaluate_word_pairs`` / ``evaluate_word_analogies`` on the same vectors, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import REPO, SHARED
from embedspace.errors import InputError
from embedspace.evaluation import evaluate_analogy, evaluate_word_similarity, read_analogies, read_word_pairs
from embedspace.relations.wordvectors import TermSpace, load_vocabulary

MEN = REPO / "corpora" / "word_similarity" / "MEN_dataset_natural_form_full"
QUESTIONS = REPO / "corpora" / "analogy" / "questions-words.txt"
WS353 = SHARED / "word_similarity" / "wordsim353_combined.csv"  # no license stated: read by path, not shipped
RG65 = SHARED / "word_similarity" / "extra" / "EN-RG-65.txt"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own init_sims calls


# --- acceptance figures (default model, each word encoded alone) --------------------------------
def test_word_similarity_figures(encoder):
    space = TermSpace.from_encoder(None, encoder=encoder)
    men = evaluate_word_similarity(MEN, space=space)
    assert men["spearman"] == pytest.approx(0.764, abs=0.005)
    assert (men["n"], men["oov"], men["pairs"]) == (3000, 0, 3000)
    ws = evaluate_word_similarity(WS353, space=space)
    assert ws["spearman"] == pytest.approx(0.729, abs=0.005) and ws["n"] == 353


def test_templates_improve_word_similarity(encoder):
    plain = evaluate_word_similarity(RG65, space=TermSpace.from_encoder(None, encoder=encoder))
    templated = evaluate_word_similarity(RG65, space=TermSpace.from_encoder(None, encoder=encoder, templates=True))
    assert templated["templates"] == 5 and plain["templates"] == 0
    assert templated["spearman"] > plain["spearman"] + 0.02


def test_analogy_figures_over_the_files_own_words(encoder):
    space = TermSpace.from_encoder(None, encoder=encoder)
    add = evaluate_analogy(QUESTIONS, space=space, method="add")
    assert add["accuracy"] == pytest.approx(0.656, abs=0.005)
    assert (add["n"], add["oov"]) == (19544, 0) and add["candidates"] == "the file's own words (905 terms)"
    assert len(add["per_section"]) == 14 and add["per_section"]["family"]["n"] == 506
    assert 0 < add["semantic"] < 1 and 0 < add["syntactic"] < 1
    mul = evaluate_analogy(QUESTIONS, space=space, method="mul")
    assert mul["accuracy"] == pytest.approx(0.662, abs=0.005)


# --- agreement with gensim -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_files(encoder, tmp_path_factory):
    """A small analogy file, a pair file and word2vec vectors for them (made by the real model).

    The vectors hold the analogy words in order of appearance except one (so some questions
    are out of vocabulary), the MEN words, 150 distractor words and a lower-case variant of
    'Athens'; the pair file has a pair with an unknown word and a differently cased one.
    """
    folder = tmp_path_factory.mktemp("gensim")
    sections, current = {}, None
    for line in QUESTIONS.read_text().splitlines():
        if line.startswith(":"):
            current = line[2:]
            continue
        if current in ("capital-common-countries", "family", "gram2-opposite") and len(sections.setdefault(current, [])) < 30:
            sections[current].append(line)
    analogies = folder / "analogies.txt"
    analogies.write_text("".join(f": {name}\n" + "\n".join(lines) + "\n" for name, lines in sections.items()))
    analogy_words = list(dict.fromkeys(w for lines in sections.values() for line in lines for w in line.split()))
    men_lines = MEN.read_text().splitlines()[1:61]
    men_words = list(dict.fromkeys(w for line in men_lines for w in line.split()[:2]))
    keys = [w for w in analogy_words if w != "grandson"] + [w for w in men_words if w not in analogy_words]
    keys += [w for w in load_vocabulary()[:400] if w not in keys and w.upper() not in {k.upper() for k in keys}][:150]
    vectors = encoder.encode(keys)
    keys.append("athens")
    vectors = np.vstack([vectors, vectors[keys.index("Athens")] + 0.3 * vectors[keys.index("Baghdad")]])
    path = folder / "vectors.txt"
    path.write_text(f"{len(keys)} {vectors.shape[1]}\n" + "".join(
        k + " " + " ".join(f"{v:.7f}" for v in row) + "\n" for k, row in zip(keys, vectors)))
    pairs = folder / "pairs.tsv"
    rows = ["\t".join(line.split()) for line in men_lines] + ["sun\tzzzqqq\t7.0", "ATHENS\tbaghdad\t20.0"]
    pairs.write_text("word1\tword2\tscore\n" + "\n".join(rows) + "\n")
    return analogies, pairs, path, len(keys)


def _gensim_counts(sections):
    return {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections if s["section"] != "Total accuracy"}


def _ours_counts(result):
    return {name: (entry["correct"], entry["n"]) for name, entry in result["per_section"].items()}


@pytest.mark.parametrize("restrict", ["all", 60])
def test_analogy_3cosadd_equals_gensim(bench_files, restrict):
    from gensim.models import KeyedVectors

    analogies, _, vectors, n_keys = bench_files
    restrict_vocab = n_keys if restrict == "all" else restrict
    kv = KeyedVectors.load_word2vec_format(str(vectors))
    score, sections = kv.evaluate_word_analogies(str(analogies), restrict_vocab=restrict_vocab)
    ours = evaluate_analogy(analogies, space=TermSpace.from_file(vectors), restrict_vocab=restrict_vocab)
    assert ours["accuracy"] == pytest.approx(score, abs=1e-6)
    assert _ours_counts(ours) == _gensim_counts(sections)
    assert ours["oov"] == 90 - ours["n"] and ours["oov"] > 0
    assert 0.2 < ours["accuracy"] < 1.0  # a real test: neither trivial nor hopeless


def _gensim_cosmul_accuracy(kv, analogies):
    """gensim's evaluate_word_analogies loop (ok_vocab, case folding, top-5 filter) scored with
    most_similar_cosmul, which evaluate_word_analogies itself does not offer."""
    ok_vocab = {k.upper(): kv.get_index(k) for k in reversed(kv.index_to_key)}
    correct = total = 0
    for section, *words in read_analogies(analogies):
        a, b, c, expected = [w.upper() for w in words]
        if not all(w in ok_vocab for w in (a, b, c, expected)):
            continue
        original, kv.key_to_index = kv.key_to_index, ok_vocab
        sims = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        kv.key_to_index = original
        predicted = None
        for key, _ in sims:
            predicted = key.upper()
            if predicted not in {a, b, c}:
                break
        correct += predicted == expected
        total += 1
    return correct / total, total


def test_analogy_3cosmul_equals_gensim_cosmul(bench_files):
    from gensim.models import KeyedVectors

    analogies, _, vectors, _ = bench_files
    kv = KeyedVectors.load_word2vec_format(str(vectors))
    accuracy, n = _gensim_cosmul_accuracy(kv, analogies)
    ours = evaluate_analogy(analogies, space=TermSpace.from_file(vectors), restrict_vocab=len(kv), method="mul")
    assert ours["accuracy"] == pytest.approx(accuracy, abs=1e-6) and ours["n"] == n


def test_default_candidates_are_the_files_words_as_gensim_restricted_to_them(bench_files):
    from gensim.models import KeyedVectors

    analogies, _, vectors, _ = bench_files
    full = KeyedVectors.load_word2vec_format(str(vectors))
    words = {w.upper() for q in read_analogies(analogies) for w in q[1:]}
    kept = [k for k in full.index_to_key if k.upper() in words and k != "athens"]
    kv = KeyedVectors(vector_size=full.vector_size)
    kv.add_vectors(kept, full[kept])
    score, sections = kv.evaluate_word_analogies(str(analogies), restrict_vocab=len(kept))
    ours = evaluate_analogy(analogies, space=TermSpace.from_file(vectors))
    assert ours["accuracy"] == pytest.approx(score, abs=1e-6)
    assert _ours_counts(ours) == _gensim_counts(sections)
    assert ours["candidates"] == f"the file's own words ({len(kept)} terms)"


@pytest.mark.parametrize("restrict", ["all", 200])
def test_word_similarity_equals_gensim(bench_files, restrict):
    from gensim.models import KeyedVectors

    _, pairs, vectors, n_keys = bench_files
    restrict_vocab = n_keys if restrict == "all" else restrict
    kv = KeyedVectors.load_word2vec_format(str(vectors))
    pearson, spearman, oov_ratio = kv.evaluate_word_pairs(str(pairs), restrict_vocab=restrict_vocab)
    ours = evaluate_word_similarity(pairs, space=TermSpace.from_file(vectors), restrict_vocab=restrict_vocab)
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    assert 100 * ours["oov"] / ours["pairs"] == pytest.approx(oov_ratio, abs=1e-9) and ours["oov"] >= 1


# --- file formats and bad input -------------------------------------------------------------------
def test_pair_files_in_every_layout(tmp_path):
    for name, text in {
        "space.txt": "word1 word2 score\nsun sunlight 50\ncar automobile 48.5\n",
        "comma.csv": "Word 1,Word 2,Human (mean)\nsun,sunlight,9\nice cream, frozen dessert ,8\n",
        "tab.tsv": "# a comment\nsun\tsunlight\t9\n\nhot dog\tsausage\t7\n",
    }.items():
        (tmp_path / name).write_text(text)
        first, second, scores = read_word_pairs(tmp_path / name)
        assert len(first) == len(second) == len(scores) == 2 and first[0] == "sun"
    assert read_word_pairs(tmp_path / "comma.csv")[1][1] == "frozen dessert"


def test_cli_eval_word_sim_and_analogy_json(cli, tmp_path):
    status, out, err = cli("eval", "word-sim", RG65, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert {"spearman", "n", "oov"} <= set(result) and result["n"] == 65 and result["oov"] == 0
    (tmp_path / "q.txt").write_text(": capitals\nAthens Greece Paris France\nParis France Athens Greece\n"
                                    ": gram-plural\ncar cars dog dogs\ndog dogs car cars\n")
    status, out, err = cli("eval", "analogy", tmp_path / "q.txt", "--method", "mul", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert {"accuracy", "n", "per_section", "semantic", "syntactic"} <= set(result)
    assert result["n"] == 4 and result["accuracy"] == 1.0 and result["method"] == "mul"
    assert result["per_section"]["capitals"] == {"accuracy": 1.0, "correct": 2, "n": 2, "oov": 0}


def test_cli_eval_analogy_with_a_vocabulary(cli, tmp_path):
    (tmp_path / "q.txt").write_text(": capitals\nAthens Greece Paris France\nParis France Athens Greece\n"
                                    "Paris France Berlin Germany\n")
    (tmp_path / "vocab.txt").write_text("athens\ngreece\nparis\nfrance\ncar\nhouse\ndog\n")
    status, out, err = cli("eval", "analogy", tmp_path / "q.txt", "--vocab", tmp_path / "vocab.txt", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert (result["n"], result["oov"]) == (2, 1) and result["accuracy"] == 1.0
    assert result["candidates"] == f"{tmp_path / 'vocab.txt'} (7 terms)"


def test_cli_eval_on_word_vectors_counts_missing_words_as_oov(cli, bench_files):
    _, pairs, vectors, _ = bench_files
    status, out, err = cli("eval", "word-sim", pairs, "--vectors", vectors, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["oov"] == 1 and result["n"] == 61 and result["vectors"] == str(vectors)
    analogies = bench_files[0]
    status, out, err = cli("eval", "analogy", analogies, "--vectors", vectors, "--json")
    assert status == 0, err
    assert json.loads(out)["oov"] > 0


@pytest.mark.parametrize("verb, content, message", [
    ("word-sim", "word1 word2 score\nsun sunlight 50\ncar automobile\n", "line 3: expected 'word1 word2 score'"),
    ("word-sim", "sun sunlight 50\ncar automobile high\n", "line 2: score 'high' is not a number"),
    ("word-sim", "", "file is empty"),
    ("word-sim", "\n\n", "file is empty"),
    ("analogy", ": capitals\nAthens Greece Paris\n", "line 2: expected 4 words 'a b c d'"),
    ("analogy", "", "file is empty"),
    ("analogy", ": only a section\n", "no analogy questions"),
])
def test_cli_eval_bad_files(cli, tmp_path, verb, content, message):
    path = tmp_path / "bench.txt"
    path.write_text(content)
    status, out, err = cli("eval", verb, path)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_eval_bad_vectors_and_options(cli, tmp_path):
    (tmp_path / "pairs.txt").write_text("sun moon 5\n")
    (tmp_path / "bad.txt").write_text("2 3\nsun 0.1 0.2 0.3\nmoon 0.1 0.2\n")
    status, _, err = cli("eval", "word-sim", tmp_path / "pairs.txt", "--vectors", tmp_path / "bad.txt")
    assert status == 2 and "line 3: expected a word and 3 numbers" in err
    (tmp_path / "empty.txt").write_text("")
    status, _, err = cli("eval", "word-sim", tmp_path / "pairs.txt", "--vectors", tmp_path / "empty.txt")
    assert status == 2 and "file is empty" in err
    status, _, err = cli("eval", "word-sim", tmp_path / "pairs.txt", "--restrict-vocab", 10)
    assert status == 2 and "--restrict-vocab applies to --vectors" in err
    with pytest.raises(InputError, match="every pair has a word"):
        (tmp_path / "v.txt").write_text("1 2\nstar 1 0\n")
        evaluate_word_similarity(tmp_path / "pairs.txt", space=TermSpace.from_file(tmp_path / "v.txt"))
