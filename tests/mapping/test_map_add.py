"""``map add`` / ``es.add_to_map``: old rows untouched, new rows placed, a missing topic found, bad input refused.

One small real map, made once: 3 groups of the shipped 20 Newsgroups test split, 80 short
posts each. The new documents: 20 more posts of each mapped group and 80 posts of a group
the map lacks (talk.politics.mideast).
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line, chromium_context, short_posts, snapshot

MAPPED = ("rec.sport.hockey", "sci.space", "soc.religion.christian")
NEW_GROUP = "talk.politics.mideast"
PER_GROUP = 80


@pytest.fixture(scope="module")
def posts():
    import embedspace as es

    docs = es.read("corpus:20newsgroups")
    docs = short_posts(docs[docs["split"] == "test"])
    old = pd.concat([docs[docs["label"] == g].head(PER_GROUP) for g in MAPPED], ignore_index=True)
    new = pd.concat([docs[docs["label"] == g].iloc[PER_GROUP:PER_GROUP + 20] for g in MAPPED]
                    + [docs[docs["label"] == NEW_GROUP].head(PER_GROUP)], ignore_index=True)
    return old[["text", "label"]], new[["text", "label"]]


@pytest.fixture(scope="module")
def maps(posts, encoder, tmp_path_factory):
    """The map directory, its grown successor (library calls) and the growth object."""
    import embedspace as es
    from embedspace.mapping import CollectionMapper, write_grown_map, write_map

    old, new = posts
    root = tmp_path_factory.mktemp("grow")
    space = es.embed(old, encoder=encoder, progress=False)
    mapper = CollectionMapper(random_state=0, progress=False).fit(space)
    write_map(mapper.space_, root / "old-map", label_col="label", mapper=mapper)
    growth = es.add_to_map(root / "old-map", es.embed(new, encoder=encoder, progress=False), progress=False)
    write_grown_map(growth, root / "grown-map")
    return root, growth, mapper.space_


def _documents(path):
    import pyarrow.parquet as pq

    return pq.read_table(path / "documents.parquet")


def _old_rows_same(before, after) -> None:
    old, grown = _documents(before), _documents(after)
    assert grown.num_rows > old.num_rows
    for name in old.column_names:
        assert grown.column(name).slice(0, old.num_rows).equals(old.column(name)), name


def test_old_rows_are_byte_identical_and_new_rows_are_placed(maps):
    root, growth, _ = maps
    _old_rows_same(root / "old-map", root / "grown-map")
    table = _documents(root / "grown-map").to_pandas()
    new = table.iloc[growth.n_old:]
    assert (new["row"].to_numpy() == np.arange(growth.n_old, len(table))).all()
    assert np.isfinite(new[["x", "y"]].to_numpy()).all()
    assert new["probability"].between(0, 1).all() and new["outlier_score"].between(0, 1).all()
    metrics = json.loads((root / "grown-map" / "metrics.json").read_text())
    c = {k: metrics[k] for k in ("added", "assigned", "outliers", "in_new_topics", "duplicates_skipped")}
    assert c["added"] == 140 and c["duplicates_skipped"] == 0
    assert c["assigned"] + c["outliers"] + c["in_new_topics"] == c["added"]
    assert metrics["n"] == growth.n_old + 140 and metrics["params"]["n_neighbors"] == 15


def test_known_posts_join_their_group_and_the_missing_group_becomes_a_new_topic(maps, posts):
    root, growth, mapped = maps
    _, new = posts
    old_table = mapped.table
    major = {c: old_table.loc[old_table["cluster"] == c, "label"].mode()[0] for c in set(old_table["cluster"]) if c >= 0}
    clusters = growth.space.table["cluster"].to_numpy()[growth.n_old:]
    labels = new["label"].to_numpy()
    known = labels != NEW_GROUP
    own = np.mean([major.get(c) == g for c, g in zip(clusters[known], labels[known])])
    assert own >= 0.8, own
    assert growth.new_topics, growth.counts
    in_topics = np.isin(clusters, growth.new_topics)
    assert (labels[in_topics] == NEW_GROUP).mean() >= 0.8
    assert in_topics[labels == NEW_GROUP].mean() >= 0.7
    table = pd.read_csv(root / "grown-map" / "clusters.csv")
    flagged = table.loc[table["new"], "cluster"].tolist()
    assert sorted(flagged) == growth.new_topics
    assert table.loc[table["new"], "label"].str.startswith("new: ").all()
    assert not table.loc[~table["new"], "label"].str.startswith("new: ").any()
    topics = pd.read_csv(root / "grown-map" / "topics.csv")
    assert sorted(topics.loc[topics["new"] & (topics["level"] == 0), "cluster"]) == growth.new_topics


def test_the_grown_map_page_has_the_structure_of_any_map_page(maps):
    root, _, _ = maps

    def skeleton(path):
        html = (path / "map.html").read_text(encoding="utf-8")
        data = re.sub(r"(?s)<script type=\"application/json\"[^>]*>.*?</script>", "", html)
        return re.findall(r"<(/?[a-z]+)[^>]*?(?:id=\"([^\"]+)\")?", data), html

    old_shape, _ = skeleton(root / "old-map")
    new_shape, html = skeleton(root / "grown-map")
    assert new_shape == old_shape
    assert "new: " in html
    assert (root / "grown-map" / "map.png").stat().st_size > 10_000


def test_cli_map_add_prints_what_joined_where_and_a_grown_map_grows_again(maps, posts, cli, tmp_path):
    root, growth, _ = maps
    before = snapshot(root / "grown-map")
    extra = posts[1].head(10).assign(text=lambda d: d["text"] + "\nP.S. one more thought on this.")
    extra = pd.concat([extra, posts[1].head(2)], ignore_index=True)  # 2 texts already in the map
    extra.to_csv(tmp_path / "more.csv", index=False)
    status, out, err = cli("map", "add", root / "grown-map", tmp_path / "more.csv", "-o", tmp_path / "again", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["added"] == 10 and result["duplicates_skipped"] == 2 and result["n_before"] == growth.n_old + 140
    assert sum(row["joined"] for row in result["joined"]) == 10
    assert snapshot(root / "grown-map") == before
    _old_rows_same(root / "grown-map", tmp_path / "again")
    status, out, err = cli("map", "add", root / "old-map", tmp_path / "more.csv", "-o", tmp_path / "third")
    assert status == 0, err
    assert re.search(r"added 12 documents to a map of 240:", out) and "joined" in out


def test_a_sampled_map_grows(posts, encoder, tmp_path):
    import embedspace as es
    from embedspace.mapping import SampledMapper, write_grown_map, write_map

    old, new = posts
    space = es.embed(old, encoder=encoder, progress=False)
    mapper = SampledMapper(sample_size=150, random_state=0, progress=False).fit(space)
    assert mapper.n_placed_ == 90
    write_map(mapper.space_, tmp_path / "sampled", mapper=mapper, extra={"sampling": {"sample_size": 150}})
    growth = es.add_to_map(tmp_path / "sampled", new.head(30)["text"].tolist(), progress=False)
    write_grown_map(growth, tmp_path / "grown")
    _old_rows_same(tmp_path / "sampled", tmp_path / "grown")
    assert growth.counts["added"] == 30


def test_bad_input_is_one_error_line_and_damages_nothing(maps, posts, encoder, cli, tmp_path):
    import embedspace as es
    from embedspace.embeddingset import EmbeddingSet, ModelIdentity

    root, _, _ = maps
    before = snapshot(root / "old-map")
    pd.DataFrame({"text": posts[0]["text"].head(5)}).to_csv(tmp_path / "old.csv", index=False)
    pd.DataFrame({"text": ["a new post about elections"]}).to_csv(tmp_path / "one.csv", index=False)
    (tmp_path / "empty.csv").write_text("text\n")
    space = es.embed(["a new post about elections", "and another one"], encoder=encoder, progress=False)
    other = ModelIdentity(**{**space.model.to_dict(), "weights_sha256": "0" * 64, "name": "other-model"})
    EmbeddingSet(space.vectors, space.table, other).save(tmp_path / "other.set")
    damaged = tmp_path / "damaged-map"
    shutil.copytree(root / "old-map", damaged)
    with open(damaged / "documents.parquet", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    out = tmp_path / "out"
    cases = [
        ((root / "no-such-map", tmp_path / "one.csv"), "no such directory"),
        ((damaged, tmp_path / "one.csv"), "checksum"),
        ((root / "old-map", tmp_path / "other.set"), "model"),
        ((root / "old-map", tmp_path / "empty.csv"), ""),
        ((root / "old-map", tmp_path / "old.csv"), "already in the map"),
        ((root / "old-map",), "takes a map and the new documents"),
    ]
    for paths, message in cases:
        status, stdout, err = cli("map", "add", *paths, "-o", out)
        assert_one_error_line(status, stdout, err, message)
        assert not out.exists(), paths
    status, stdout, err = cli("map", "add", root / "old-map", tmp_path / "one.csv", "-o", out, "--k", "3")
    assert_one_error_line(status, stdout, err, "--k")
    assert snapshot(root / "old-map") == before


def test_topic_tree_columns_of_new_rows_nest_inside_their_cluster(maps, posts, encoder):
    import embedspace as es

    root, growth, mapped = maps
    size = json.loads((root / "old-map" / "metrics.json").read_text())["min_cluster_size"]
    table = mapped.table
    finer = table["cluster"].to_numpy() * 2 + (table["x"] > table["x"].median()).to_numpy()
    tree = mapped.assign(cluster_l0=table["cluster"].to_numpy(), cluster_l1=np.where(table["cluster"] < 0, -1, finer))
    grown = es.add_to_map(tree, es.embed(posts[1], encoder=encoder, progress=False), min_cluster_size=size,
                          progress=False)
    new = grown.space.table.iloc[grown.n_old:]
    pairs = set(zip(tree.table["cluster"], tree.table["cluster_l1"]))
    for row in new.itertuples():
        if row.cluster in grown.new_topics:
            assert row.cluster_l0 > table["cluster"].max() and row.cluster_l1 > finer.max()
        elif row.cluster >= 0:
            assert row.cluster_l0 == row.cluster and (row.cluster, row.cluster_l1) in pairs
        else:
            assert row.cluster_l0 == -1 and row.cluster_l1 == -1
    assert grown.counts == growth.counts, "in memory with the map's min_cluster_size = from its directory"


@pytest.mark.slow
def test_a_grown_map_opens_in_the_browser_like_any_map(maps, tmp_path):
    """map.html of a grown map in headless Chromium (as tests/mapping/test_map_browser.py opens maps)."""
    import time

    root, growth, _ = maps
    errors = []
    with chromium_context(tmp_path / "profile") as context:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((root / "grown-map" / "map.html").as_uri())
        deadline = time.monotonic() + 20
        while not page.evaluate("document.documentElement.dataset.ready === '1'"):
            assert time.monotonic() < deadline, "the grown map's page never got ready"
            time.sleep(0.02)
        n = len(growth.space)
        assert page.evaluate("embedspaceMap.n") == n and page.evaluate("embedspaceMap.drawn") == n
        legend = " ".join(page.locator("#legend .item").all_text_contents())
        assert "new: " in legend
    assert not errors, errors
