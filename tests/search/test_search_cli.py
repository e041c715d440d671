"""``embedspace index`` / ``search`` from the command line: outputs, JSON shape, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import snapshot
import embedspace as es
from embedspace.embeddingset import ModelIdentity
from embedspace.encoding.encoders import DEFAULT_MODEL


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, sentences, encoder):
    """A set of 400 real sentences with metadata, and an index built from it by the CLI."""
    from embedspace.cli import main

    root = tmp_path_factory.mktemp("search-cli")
    texts = sentences[:400]
    table = pd.DataFrame({
        "text": texts,
        "topic": np.where(np.arange(400) % 4 == 0, "music", "other"),
        "year": 1990 + np.arange(400) % 30,
    })
    es.embed(table, encoder=encoder).save(root / "docs.set")
    assert main(["index", str(root / "docs.set"), "-o", str(root / "docs.index"), "--quiet"]) == 0
    return root


def test_index_then_search_prints_a_table(cli, workdir):
    status, out, err = cli("search", workdir / "docs.index", "A man is playing a guitar.", "-k", "3")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "query: A man is playing a guitar."
    assert lines[1].split() == ["rank", "score", "row", "topic", "year", "text"]
    assert len(lines) == 5 and "guitar" in lines[2].lower()


def test_json_has_the_documented_shape(cli, workdir):
    status, out, err = cli("search", workdir / "docs.index", "A dog runs in the park.", "stocks fell", "-k", "4",
                           "--where", "topic == 'music' and year >= 2000", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert list(data) == ["queries", "warnings"] and data["warnings"] == [] and [q["query"] for q in data["queries"]] == ["A dog runs in the park.", "stocks fell"]
    for query in data["queries"]:
        assert [hit["rank"] for hit in query["results"]] == [1, 2, 3, 4]
        for hit in query["results"]:
            assert list(hit)[:4] == ["rank", "row", "score", "text"]
            assert hit["topic"] == "music" and hit["year"] >= 2000 and hit["row"] % 4 == 0
            assert isinstance(hit["score"], float)
        scores = [hit["score"] for hit in query["results"]]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_lexical_modes(cli, workdir, mode):
    status, out, err = cli("search", workdir / "docs.index", "guitar", "--mode", mode, "-k", "3", "--json")
    assert status == 0, err
    hits = json.loads(out)["queries"][0]["results"]
    assert len(hits) == 3 and "guitar" in hits[0]["text"].lower()


def test_index_add_appends_and_keeps_row_ids(cli, workdir, tmp_path, sentences, encoder):
    shutil.copytree(workdir / "docs.index", tmp_path / "docs.index")
    shutil.copytree(workdir / "docs.set", tmp_path / "docs.set")
    extra = sentences[400:450]
    es.embed(pd.DataFrame({"text": extra, "topic": "new"}), encoder=encoder).save(tmp_path / "more.set")
    status, out, err = cli("index", "add", tmp_path / "docs.index", tmp_path / "more.set", "--json")
    assert status == 0, err
    assert json.loads(out)["n"] == 450
    status, out, _ = cli("search", tmp_path / "docs.index", extra[10], "-k", "1", "--json")
    hit = json.loads(out)["queries"][0]["results"][0]
    assert hit["row"] == 410 and hit["text"] == extra[10] and hit["topic"] == "new" and hit["year"] is None


def test_one_search_in_a_fresh_process(workdir):
    out = subprocess.run(
        [sys.executable, "-m", "embedspace.cli", "search", str(workdir / "docs.index"), "A woman is dancing.", "-k", "2", "--json"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["queries"][0]["results"]) == 2


def test_example_script_runs(tmp_path):
    from helpers import REPO

    out = subprocess.run([sys.executable, str(REPO / "scripts" / "example_search.py"), "--limit", "12", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "same hits = True" in out.stdout and (tmp_path / "news.index" / "index.faiss").is_file()


def _foreign_dirs(root):
    import faiss

    foreign = root / "plain-faiss"
    foreign.mkdir(exist_ok=True)
    faiss.write_index(faiss.IndexFlatIP(384), str(foreign / "index.faiss"))
    other = root / "other-format"
    shutil.copytree(root / "good.index", other, dirs_exist_ok=True)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["format"] = "acme.vectors"
    (other / "manifest.json").write_text(json.dumps(manifest))
    corrupt = root / "corrupt.index"
    shutil.copytree(root / "good.index", corrupt, dirs_exist_ok=True)
    data = bytearray((corrupt / "index.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "index.faiss").write_bytes(bytes(data))
    truncated = root / "truncated.index"
    shutil.copytree(root / "good.index", truncated, dirs_exist_ok=True)
    (truncated / "index.faiss").write_bytes((truncated / "index.faiss").read_bytes()[:-100])
    return foreign, other, corrupt, truncated


@pytest.fixture(scope="module")
def bad_setup(workdir, encoder, sentences):
    """Directories for the refusals: a stale-model index, foreign and damaged ones."""
    root = workdir / "bad"
    root.mkdir()
    shutil.copytree(workdir / "docs.index", root / "good.index")
    stale = ModelIdentity(name=DEFAULT_MODEL, weights_sha256="0" * 64, dim=384, normalized=True)
    space = es.load(workdir / "docs.set")
    es.EmbeddingSet(space.vectors[:60], space.table.iloc[:60], stale).save(root / "stale.set")
    es.build_index(root / "stale.set", lexical=False).save(root / "stale.index")
    other = ModelIdentity(name="acme/other-model", weights_sha256="1" * 64, dim=384, normalized=True)
    es.EmbeddingSet(space.vectors[:5], space.table.iloc[:5], other).save(root / "other.set")
    es.build_index(space.select(np.arange(50)), lexical=False).save(root / "dense-only.index")
    _foreign_dirs(root)
    return root


def _bad_inputs(root, workdir):
    good = root / "good.index"
    return [
        (["search", good, "x", "-k", "0"], "must be at least 1, got 0"),
        (["search", good, "x", "-k", "-3"], "must be at least 1, got -3"),
        (["search", good, "x", "-k", "ten"], "expected a whole number"),
        (["search", good, ""], "query 1 is empty"),
        (["search", good, "fine", "   "], "query 2 is empty"),
        (["search", good, "x", "--where", "colour == 'red'"], "unknown column 'colour'"),
        (["search", good, "x", "--where", "topic =="], "malformed filter"),
        (["search", good, "x", "--where", "topic == 'a' and (year > 3"], "expected ')'"),
        (["search", good, "x", "--where", "year == 'nineteen'"], "column 'year' holds numbers"),
        (["search", good, "x", "--where", "__import__('os').system('touch pwned')"], "malformed filter"),
        (["search", good, "x", "--where", "topic == 'a' or exec('import os')"], "malformed filter"),
        (["search", good, "x", "--mode", "fuzzy"], "invalid choice"),
        (["search", root / "plain-faiss", "x"], "not a search index (no manifest.json)"),
        (["search", root / "other-format", "x"], "this is format 'acme.vectors', not a search index"),
        (["search", root / "corrupt.index", "x"], "index.faiss fails its sha256 checksum"),
        (["search", root / "truncated.index", "x"], "truncated or edited"),
        (["search", workdir / "docs.set", "x"], "is an EmbeddingSet, not a search index; build an index first"),
        (["search", root / "missing.index", "x"], "no such directory"),
        (["search", root / "stale.index", "x"], "weights 00000000"),
        (["search", root / "dense-only.index", "x", "--mode", "hybrid"], "built without BM25"),
        (["search", good], "the following arguments are required: QUERY"),
        (["index", "add", good, root / "other.set"], "embedded by acme/other-model"),
        (["index", "add", good], "takes an index and a set"),
        (["index", "add", good, root / "other.set", "-o", root / "x"], "only for building"),
        (["index", workdir / "docs.set", "-o", good], "already exists"),
        (["index", workdir / "docs.set"], "required: -o/--output"),
        (["index", workdir / "docs.set", "-o", root / "new.index", "--memory-budget", "lots"], "memory budget 'lots'"),
        (["index", workdir / "docs.set", "-o", root / "new.index", "--memory-budget", "1KB"], "raise --memory-budget"),
        (["index", good, "-o", root / "new.index"], "this is a search index, not an EmbeddingSet"),
        (["index", workdir / "docs.set", "-o", root / "new.index", "--kind", "annoy"], "invalid choice"),
        (["eval", "retrieval", workdir], "no qrels/test.tsv"),
    ]


def test_bad_input_is_one_error_line_and_changes_nothing(cli, bad_setup, workdir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(workdir)
    for argv, message in _bad_inputs(bad_setup, workdir):
        status, out, err = cli(*argv)
        lines = err.strip().splitlines()
        assert status == 2, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert message in lines[0], (argv, lines[0])
        assert "Traceback" not in err and out == ""
    assert snapshot(workdir) == before
    assert not (bad_setup / "new.index").exists() and not (tmp_path / "pwned").exists()


def test_stale_model_message_names_both_models(cli, bad_setup):
    status, _, err = cli("search", bad_setup / "stale.index", "x")
    assert status == 2
    assert "sentence-transformers/all-MiniLM-L6-v2 (384-d, weights c4a57a7f)" in err and "weights 00000000" in err


def test_help_has_examples(capsys):
    from embedspace.cli import main

    for verb in (["index"], ["search"], ["eval", "retrieval"]):
        with pytest.raises(SystemExit) as done:
            main([*verb, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0 and "examples:" in out and f"embedspace {verb[-1] if verb[0] != 'eval' else 'eval retrieval'}" in out


def test_empty_and_odd_results_explain_themselves(workdir, cli):
    """Issue 31, item 4: '(no matching rows)' and arbitrary hits for a punctuation query came without a word."""
    index = workdir / "docs.index"
    status, out, err = cli("search", index, "a man playing music", "--where", "topic == 'musik'")
    assert status == 0 and "(no matching rows)" in out
    assert "warning: no row has topic == 'musik'; did you mean 'music'?" in err
    status, out, _ = cli("search", index, "?!...", "--where", "topic == 'music' and year > 3000", "--json")
    warnings = json.loads(out)["warnings"]
    assert warnings[0].startswith("query '?!...' has no word")
    assert warnings[1] == "no row has year > 3000"
    status, out, err = cli("search", index, "a man playing music", "--json")
    assert json.loads(out)["warnings"] == [] and "warning" not in err


def test_a_filter_explains_which_condition_emptied_it():
    import pandas as pd

    from embedspace.search.filters import Filter

    table = pd.DataFrame({"text": ["a", "b", "c"], "label": ["sport", "tech", "business"], "year": [2001, 2005, 2010]})
    explain = lambda text: Filter.parse(text).explain_no_match(table)  # noqa: E731
    assert explain("label == 'sports'") == "no row has label == 'sports'; did you mean 'sport'?"
    assert explain("label in ['tec', 'busines']") == "no row has label in ['tec', 'busines']; did you mean 'tech' or 'business'?"
    assert explain("label == 'zzz'").startswith("no row has label == 'zzz' (values of 'label' include 'business'")
    assert "no row matches the whole filter" in explain("label == 'sport' and year > 2005")


def test_index_add_skips_rows_already_indexed(workdir, cli, tmp_path, encoder, sentences):
    """Issue 31, item 5: 'index add' of documents already in the index added them again silently."""
    import shutil

    index = tmp_path / "docs.index"
    shutil.copytree(workdir / "docs.index", index)
    before = es.load_index(index).n
    old = es.load(workdir / "docs.set").table.head(5)[["text", "topic", "year"]]
    new = pd.DataFrame({"text": sentences[-5:], "topic": "other", "year": 2001})
    es.embed(pd.concat([old, new], ignore_index=True), encoder=encoder).save(tmp_path / "more.set")
    status, out, err = cli("index", "add", index, tmp_path / "more.set", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert (report["added"], report["skipped"], report["n"]) == (5, 5, before + 5)
    assert "skipped 5 of 10 rows" in err
    texts = es.load_index(index).table["text"].tolist()
    assert texts[before:] == sentences[-5:] and len(set(texts)) == len(texts)
    status, out, _ = cli("index", "add", index, tmp_path / "more.set", "--allow-duplicates", "--json")
    assert json.loads(out)["added"] == 10
