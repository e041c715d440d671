"""The topic tree on real data: nesting, sibling names, determinism, outputs and the topics CLI.

One small real collection (6 groups of the 20 Newsgroups test split, 60 short posts each),
mapped once for the module with three forced levels.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

GROUPS = ("rec.sport.hockey", "sci.space", "soc.religion.christian", "comp.graphics", "rec.autos", "sci.med")
PER_GROUP = 60


@pytest.fixture(scope="module")
def tree_space(encoder):
    import embedspace as es
    from helpers import short_posts

    docs = es.read("corpus:20newsgroups")
    docs = docs[docs["split"] == "test"]
    docs = pd.concat([docs[docs["label"] == g].head(PER_GROUP) for g in GROUPS], ignore_index=True)
    return es.embed(short_posts(docs)[["text", "label"]], encoder=encoder, progress=False)


@pytest.fixture(scope="module")
def tree_mapper(tree_space):
    from embedspace.mapping import CollectionMapper

    return CollectionMapper(random_state=0, progress=False, display=False, levels=3).fit(tree_space)


@pytest.fixture(scope="module")
def tree_map_dir(tree_mapper, tmp_path_factory):
    from embedspace.mapping import write_map

    out = tmp_path_factory.mktemp("tree") / "news-map"
    return out, write_map(tree_mapper.space_, out, label_col="label", mapper=tree_mapper)


def _levels(table):
    columns = sorted((c for c in table.columns if str(c).startswith("cluster_l")), key=lambda c: int(c[9:]))
    return [table[c].to_numpy() for c in columns]


def test_levels_nest_and_each_adds_structure(tree_mapper):
    levels = _levels(tree_mapper.space_.table)
    assert len(levels) == 3
    assert np.array_equal(levels[0], tree_mapper.space_.table["cluster"].to_numpy())
    counts = [len(np.unique(level[level >= 0])) for level in levels]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts
    for above, below in zip(levels, levels[1:]):
        assert np.array_equal(above < 0, below < 0)  # outliers stay outliers at every level
        for child in np.unique(below[below >= 0]):
            assert len(np.unique(above[below == child])) == 1  # inside exactly one parent


def test_finer_level_separates_the_groups_at_least_as_well(tree_mapper):
    from embedspace.mapping import clustering_scores

    table = tree_mapper.space_.table
    levels = _levels(table)
    homogeneity = [clustering_scores(level, table["label"])["homogeneity"] for level in levels]
    assert homogeneity[1] >= homogeneity[0] - 1e-9 and homogeneity[1] > 0.6, homogeneity


def test_siblings_never_share_their_first_keyword(tree_map_dir):
    tree = pd.read_csv(tree_map_dir[0] / "topics.csv", keep_default_na=False)
    assert list(tree.columns[:8]) == ["level", "cluster", "parent", "size", "share", "label", "keywords", "example_rows"]
    children = tree[(tree["level"] > 0)]
    assert len(children) > 0
    for (_, _), siblings in children.groupby(["level", "parent"]):
        first = siblings["keywords"].str.split("; ").str[0]
        assert first.is_unique, siblings[["cluster", "keywords"]]
    real = tree[tree["cluster"] >= 0]
    assert (real["examples"].str.count(r" \|\| ") == 2).all()  # three representative documents each
    sizes = real.groupby("level")["size"].sum()
    assert sizes.nunique() == 1  # every level covers the same clustered documents


def test_outputs_hold_every_level(tree_map_dir, tree_mapper):
    out, result = tree_map_dir
    documents = pd.read_parquet(out / "documents.parquet")
    assert [c for c in documents.columns if str(c).startswith("cluster_l")] == ["cluster_l0", "cluster_l1", "cluster_l2"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [level["level"] for level in metrics["levels"]] == [0, 1, 2]
    for level in metrics["levels"]:
        assert {"nmi", "ari", "v_measure", "npmi", "n_clusters"} <= set(level)
        assert -1.0 <= level["npmi"] <= 1.0
    assert metrics["levels"][0]["nmi"] == pytest.approx(metrics["nmi"])
    report = (out / "report.html").read_text()
    assert "Topic tree" in report and "parts</summary>" in report  # the tree as nested tables


def test_npmi_matches_a_direct_count():
    from embedspace.mapping import npmi_coherence

    texts = ["apple banana", "apple banana cherry", "cherry", "banana"]
    # p(apple)=.5, p(banana)=.75, p(apple, banana)=.5 -> log(.5/.375) / -log(.5)
    expected = np.log(0.5 / 0.375) / -np.log(0.5)
    assert npmi_coherence(texts, [["apple", "banana"]])["mean"] == pytest.approx(expected, rel=1e-6)


def test_same_seed_same_tree_on_any_thread_count(tree_mapper):
    from threadpoolctl import threadpool_limits

    from embedspace.mapping import build_levels, split_features

    table = tree_mapper.space_.table
    levels = _levels(table)
    layout, top = tree_mapper.cluster_embedding_, levels[0]
    for threads in (1, 2):
        with threadpool_limits(threads):
            features = split_features(layout, table["text"].tolist(), random_state=0)
            again = build_levels(features, top, levels=3, min_child=max(5, tree_mapper.clusterer_.min_cluster_size_ // 4),
                                 random_state=0)
        assert all(np.array_equal(a, b) for a, b in zip(again, levels)) and len(again) == len(levels)


def test_describe_by_level_and_topic_tree_frame(tree_mapper):
    import embedspace as es

    tree = es.topic_tree(tree_mapper.space_)
    assert set(tree["level"]) == {0, 1, 2}
    level1 = es.describe(tree_mapper.space_, level=1)
    assert sorted(level1.loc[level1["cluster"] >= 0, "cluster"]) == sorted(tree.loc[tree["level"] == 1, "cluster"])
    with pytest.raises(es.InputError, match="level=7"):
        es.describe(tree_mapper.space_, level=7)
    with pytest.raises(es.InputError, match="levels must be"):
        es.map(tree_mapper.space_, levels=0)


def test_topics_cli_prints_the_indented_tree(tree_map_dir, cli):
    out = str(tree_map_dir[0])
    status, text, err = cli("topics", out)
    assert status == 0, err
    lines = text.splitlines()
    assert lines[0].startswith("3 levels")
    assert any(line.startswith("  ") and not line.startswith("   ") for line in lines[1:])  # a child, indented
    status, text, _ = cli("topics", out, "--level", "0", "--json")
    payload = json.loads(text)
    assert payload["n_levels"] == 3 and {t["level"] for t in payload["topics"]} == {0}
    status, _, err = cli("topics", out, "--level", "5")
    assert status == 2 and err.startswith("error:") and "levels 0 to 2" in err


def test_topics_cli_reads_an_old_map(cli):
    from helpers import REPO

    status, text, err = cli("topics", str(REPO / "tests" / "fixtures" / "formats" / "news.map"))
    assert status == 0, err
    assert text.splitlines()[0].startswith("1 level")


def test_show_renders_the_page_inline_and_offline(tree_mapper):
    import embedspace as es

    view = es.show(tree_mapper.space_, title="tree <b>")
    inline = view._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in inline
    assert 'id="map-data"' in view.html and '"tree": [' in view.html.replace('"tree":[', '"tree": [')
    assert "src=\"http" not in view.html and "<b>" not in view.html.split("</title>")[0]
    with pytest.raises(es.InputError, match="not mapped"):
        es.show(es.EmbeddingSet(tree_mapper.space_.vectors[:3], tree_mapper.space_.table[["text"]].head(3)))


def test_embedding_reranked_keywords_come_from_the_candidates(tree_mapper, encoder):
    import embedspace as es

    plain = es.topic_tree(tree_mapper.space_, n_keywords=30)
    reranked = es.topic_tree(tree_mapper.space_, keywords="embedding", encoder=encoder)
    assert list(reranked[["level", "cluster"]].itertuples(index=False)) == list(plain[["level", "cluster"]].itertuples(index=False))
    for words, candidates in zip(reranked["keywords"], plain["keywords"]):
        assert len(words) <= 10 and set(words) <= set(candidates)
    children = reranked[reranked["level"] > 0]
    for _, siblings in children.groupby(["level", "parent"]):
        assert siblings["keywords"].str[0].is_unique


def test_finer_keywords_after_the_first_are_the_ones_that_occur_together():
    """The coherent choice: after the best term, the candidates that co-occur with those chosen, not the frequent ones."""
    from embedspace.mapping.topics import _Counts

    texts = (["engine carburetor repair"] * 12 + ["engine carburetor"] * 6 + ["weather lovely today"] * 20
             + ["engine weather"] * 2)
    counts = _Counts(texts, np.arange(len(texts)))
    # ranked as c-TF-IDF might: "weather" is frequent but appears with "engine" in 2 documents only
    assert counts.coherent(["engine", "weather", "carburetor", "repair"], 3) == ["engine", "carburetor", "repair"]
    assert counts.coherent(["engine", "weather"], 3) == ["engine", "weather"]  # fewer candidates than keywords


def test_split_features_put_layout_and_words_side_by_side_with_equal_weight():
    from embedspace.errors import InputError
    from embedspace.mapping import split_features

    rng = np.random.default_rng(0)
    layout = rng.normal(size=(60, 5)) * 40.0
    texts = [f"{'rocket orbit launch' if i % 2 else 'pitcher inning baseball'} note{i % 7}" for i in range(60)]
    both = split_features(layout, texts, random_state=0)
    assert both.shape[0] == 60 and both.shape[1] > 5
    weight = [float((block ** 2).sum(axis=1).mean()) for block in (both[:, :5], both[:, 5:])]
    assert np.allclose(weight, 1.0), weight  # the layout's scale does not drown the words
    assert np.array_equal(both, split_features(layout, texts, random_state=0))
    assert split_features(layout).shape == (60, 5)
    assert split_features(layout, [""] * 60).shape == (60, 5)  # no word survives: the layout alone
    with pytest.raises(InputError, match="texts"):
        split_features(layout, texts[:10])
