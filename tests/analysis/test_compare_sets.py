"""compare sets: an injected topic is found (test, region, novelty), a random split is not, the directory, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line, short_posts, snapshot

import embedspace as es
from embedspace.analysis import write_comparison
from embedspace.errors import InputError, ModelMismatchError, OutputExistsError

BACKGROUND = ["rec.autos", "comp.graphics", "talk.politics.guns", "sci.med"]


@pytest.fixture(scope="module")
def posts(encoder):
    docs = es.read("corpus:20newsgroups")
    docs = short_posts(docs[docs["label"].isin(BACKGROUND + ["sci.space"])])
    docs = docs.groupby("label", group_keys=False).head(160).reset_index(drop=True)
    return es.embed(docs, encoder=encoder, progress=False)


@pytest.fixture(scope="module")
def injected(posts):
    """A: 300 background posts; B: 240 other background posts + 60 sci.space posts."""
    labels = posts.table["label"].to_numpy()
    rng = np.random.default_rng(0)
    background = rng.permutation(np.flatnonzero(labels != "sci.space"))
    space = rng.permutation(np.flatnonzero(labels == "sci.space"))[:60]
    a = posts.select(background[:300])
    b = posts.select(np.r_[background[300:540], space])
    return a, b, es.compare_sets(a, b, seed=0, progress=False)


@pytest.mark.slow
def test_injected_topic_is_detected_located_and_novel(injected):
    a, b, result = injected
    assert result.metrics["p_value"] < 0.01 and result.metrics["auroc"] > 0.5
    # B's top over-represented region is a pocket of the injected topic: pure, and holding most of it
    top = result.regions[result.regions["direction"] == "more in B"].iloc[0]
    assert top["significant"] and top["kind"] == "pocket" and top["q_value"] < 0.05
    table = result.space.table
    members = table[result.members(top["cluster"])]
    assert (members["label"] == "sci.space").mean() >= 0.8
    assert ((members["label"] == "sci.space") & (members["source"] == "B")).sum() >= 0.7 * 60
    assert (table["pocket"] == top["cluster"]).sum() == top["n_a"] + top["n_b"]
    # novelty: defined on B only, and the injected posts rank first
    from sklearn.metrics import roc_auc_score

    assert table.loc[table["source"] == "A", "novelty"].isna().all()
    on_b = table[table["source"] == "B"]
    assert roc_auc_score(on_b["label"] == "sci.space", on_b["novelty"]) > 0.8
    assert len(result.space) == len(a) + len(b)
    assert set(result.to_json()) >= {"p_value", "statistic", "auroc", "regions"}


@pytest.mark.slow
def test_random_split_is_not_significant_and_seed_is_deterministic(posts):
    labels = posts.table["label"].to_numpy()
    rows = np.random.default_rng(5).permutation(np.flatnonzero(labels != "sci.space"))[:600]
    a, b = posts.select(rows[:300]), posts.select(rows[300:])
    first = es.compare_sets(a, b, seed=3, progress=False)
    assert first.metrics["p_value"] > 0.05
    assert first.metrics["n_significant"] == 0
    again = es.compare_sets(a, b, seed=3, progress=False)
    assert again.metrics["p_value"] == first.metrics["p_value"]
    pd.testing.assert_frame_equal(again.regions.drop(columns=["keywords", "examples_a", "examples_b", "example_rows_a",
                                                              "example_rows_b"]),
                                  first.regions.drop(columns=["keywords", "examples_a", "examples_b", "example_rows_a",
                                                              "example_rows_b"]))


@pytest.mark.slow
def test_directory_holds_every_file(injected, tmp_path):
    _, b, result = injected
    out = write_comparison(result, tmp_path / "cmp")
    names = {p.name for p in (tmp_path / "cmp").iterdir()}
    assert {"regions.csv", "documents.parquet", "compare.png", "compare.html", "metrics.json", "manifest.json"} <= names
    documents = pd.read_parquet(tmp_path / "cmp" / "documents.parquet")
    assert documents["source"].value_counts()["B"] == len(b)
    regions = pd.read_csv(tmp_path / "cmp" / "regions.csv")
    assert {"cluster", "label", "share_a", "share_b", "p_value", "q_value"} <= set(regions.columns)
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "</script>" in page and "http" not in page.split("<script>")[1].split("</script>")[0]
    assert json.loads((tmp_path / "cmp" / "metrics.json").read_text())["n_b"] == len(b)
    with pytest.raises(OutputExistsError):
        write_comparison(result, out)  # exists, no overwrite
    write_comparison(result, out, overwrite=True)


def test_bad_input(posts):
    one = posts.select([0])
    with pytest.raises(InputError, match="at least 2 documents"):
        es.compare_sets(one, posts.select(np.arange(10)))
    with pytest.raises(InputError, match="at least 2 documents"):
        es.compare_sets(posts.select(np.arange(10)), posts.select(np.array([], dtype=int)))
    other = es.EmbeddingSet(np.random.default_rng(0).normal(size=(10, 8)), posts.table.head(10))
    with pytest.raises(ModelMismatchError):
        es.compare_sets(posts.select(np.arange(10)), other)
    with pytest.raises(InputError, match="unknown test"):
        es.compare_sets(posts.select(np.arange(10)), posts.select(np.arange(10, 20)), test="t")
    with pytest.raises(InputError, match="pocket_permutations must be at least 1"):
        es.compare_sets(posts.select(np.arange(10)), posts.select(np.arange(10, 20)), pocket_permutations=0)


@pytest.mark.slow
def test_cli_json_and_errors(posts, cli, tmp_path):
    a, b = tmp_path / "a.set", tmp_path / "b.set"
    posts.select(np.arange(0, 200)).save(a)
    posts.select(np.arange(400, 600)).save(b)
    status, out, err = cli("compare", "sets", a, b, "-o", tmp_path / "out", "--json", "--quiet", "--permutations", "200")
    assert status == 0, err
    data = json.loads(out)
    assert {"p_value", "statistic", "auroc", "regions", "novel"} <= set(data)
    before = snapshot(tmp_path / "out")
    status, out, err = cli("compare", "sets", a, b, "-o", tmp_path / "out", "--quiet")
    assert_one_error_line(status, out, err, "exists")
    assert snapshot(tmp_path / "out") == before
    one = tmp_path / "one.set"
    posts.select([0]).save(one)
    status, out, err = cli("compare", "sets", a, one, "-o", tmp_path / "out2", "--quiet")
    assert_one_error_line(status, out, err, "at least 2 documents")
