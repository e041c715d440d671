"""compare groups: each class's own topic ranks first, a rising topic is flagged by the trend test, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line, short_posts

import embedspace as es
from embedspace.analysis.compare_slices import group_labels
from embedspace.errors import InputError

GROUPS = ["rec.autos", "comp.graphics", "talk.politics.guns", "sci.med", "sci.space"]


@pytest.fixture(scope="module")
def posts(encoder):
    docs = es.read("corpus:20newsgroups")
    docs = short_posts(docs[docs["label"].isin(GROUPS)])
    docs = docs.groupby("label", group_keys=False).head(160).reset_index(drop=True)
    return es.embed(docs, encoder=encoder, progress=False)


@pytest.mark.slow
def test_each_class_has_its_own_topic_first(posts):
    result = es.compare_groups(posts, by="label", seed=0, progress=False)
    table = result.space.table
    majority = table[table["cluster"] >= 0].groupby("cluster")["label"].agg(lambda v: v.value_counts().index[0])
    own = sum(majority[result.metrics["top_topics"][g][0]] == g for g in GROUPS)
    assert own >= 4
    assert result.metrics["kind"] == "categorical" and result.metrics["n_significant"] >= 3
    shares = result.topics[[f"share:{g}" for g in GROUPS]].sum(axis=0)
    assert np.allclose(shares, 1.0)


@pytest.mark.slow
def test_rising_topic_is_flagged_over_time(posts, tmp_path):
    labels = posts.table["label"].to_numpy()
    rng = np.random.default_rng(0)
    space_rows = list(rng.permutation(np.flatnonzero(labels == "sci.space")))
    other_rows = list(rng.permutation(np.flatnonzero(labels != "sci.space")))
    rows, dates = [], []
    # 80 posts a bin: with 60 the rising posts split into several small topics and the best one's q ranged
    # up to 0.058 (date seed 0), depending on the CPU's bf16 arithmetic; with 80 it is <= 0.003 on three date
    # seeds and three map seeds
    for b, share in enumerate(np.linspace(0.02, 0.4, 8)):
        n_space = round(80 * share)
        rows += [space_rows.pop() for _ in range(n_space)] + [other_rows.pop() for _ in range(80 - n_space)]
        dates += [f"2024-{b + 1:02d}-{d:02d}" for d in rng.integers(1, 28, 80)]
    space = posts.select(np.array(rows)).assign(date=dates)
    result = es.compare_groups(space, by="date", bins=8, seed=0, progress=False)
    assert result.metrics["kind"] == "ordered" and len(result.groups) == 8
    top = result.topics.iloc[0]
    members = result.space.table["cluster"] == top["cluster"]
    assert (result.space.table.loc[members, "label"] == "sci.space").mean() > 0.7
    assert top["q_value"] < 0.05 and top["statistic"] > 0
    out = es.analysis.write_group_comparison(result, tmp_path / "g")
    assert {"topics.csv", "counts.csv", "groups.png", "metrics.json"} <= {p.name for p in (tmp_path / "g").iterdir()}
    assert len(pd.read_csv(tmp_path / "g" / "topics.csv")) == len(result.topics)
    assert out.endswith("g")


def test_group_labels_rules():
    labels, order, kind = group_labels(np.array(["b", "a", "b"]), None, "c")
    assert order == ["a", "b"] and kind == "categorical"
    labels, order, kind = group_labels(np.array([1.0, 2.0, 3.0, 4.0]), 2, "c")
    assert kind == "ordered" and len(order) == 2 and labels[0] != labels[-1]
    labels, order, _ = group_labels(np.array(["2024-01-01", "2024-06-01", "2024-12-31"]), 3, "d")
    assert order[0].startswith("00:2024-01")
    with pytest.raises(InputError, match="does not parse"):
        group_labels(np.array(["soon", "later"]), 3, "d")
    with pytest.raises(InputError, match="one value"):
        group_labels(np.array(["x", "x"]), None, "c")
    with pytest.raises(InputError, match="one value"):
        group_labels(np.array([5, 5, 5]), 3, "c")


def test_bad_input(posts, cli, tmp_path):
    with pytest.raises(InputError, match="no column 'nope'"):
        es.compare_groups(posts, by="nope")
    with pytest.raises(InputError, match="at least 2 documents"):
        es.compare_groups(posts.select([0]), by="label")
    with pytest.raises(InputError, match="one value"):
        es.compare_groups(posts.select(np.arange(20)).assign(label="x"), by="label")
    path = tmp_path / "p.set"
    posts.select(np.arange(40)).save(path)
    status, out, err = cli("compare", "groups", path, "--by", "nope", "-o", tmp_path / "o", "--quiet")
    assert_one_error_line(status, out, err, "nope")
    status, out, err = cli("compare", "groups", path, "--by", "text", "--bins", "3", "-o", tmp_path / "o", "--quiet")
    assert_one_error_line(status, out, err, "does not parse")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_json(posts, cli, tmp_path):
    path = tmp_path / "p.set"
    posts.select(np.arange(0, 800, 2)).save(path)
    status, out, err = cli("compare", "groups", path, "--by", "label", "-o", tmp_path / "o", "--json", "--quiet")
    assert status == 0, err
    data = json.loads(out)
    assert {"by", "kind", "test", "groups", "topics", "top_topics"} <= set(data)
    assert {"cluster", "label", "p_value", "q_value", "shares"} <= set(data["topics"][0])
