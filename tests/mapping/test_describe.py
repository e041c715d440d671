"""Cluster names (class-based TF-IDF), representative documents, the PNG and the HTML page."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embedspace.errors import InputError

TEXTS = [
    "The goalie made a great save in the hockey game last night",
    "Hockey playoffs: the team won the game in overtime",
    "A hockey fan watched the game and the goalie",
    "NASA launched the space shuttle into orbit",
    "The space station orbit was adjusted by NASA engineers",
    "Astronauts on the space shuttle saw the earth from orbit",
    "Bake the bread at high heat and let the dough rise",
]
CLASSES = [0, 0, 0, 1, 1, 1, -1]


def _toy_space():
    from embedspace.embeddingset import EmbeddingSet

    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.2, 0], [0, 1, 0], [0.1, 0.9, 0], [0, 0.8, 0.2], [0, 0, 1]],
                       dtype=np.float32)
    table = pd.DataFrame({"text": TEXTS, "cluster": CLASSES})
    return EmbeddingSet(vectors, table)


def test_class_tfidf_ranks_each_clusters_own_words_first():
    from embedspace.mapping.labels import class_tfidf_keywords

    keywords = class_tfidf_keywords(TEXTS, CLASSES, n_keywords=3)
    assert set(keywords) == {-1, 0, 1}
    assert keywords[0][0][0] in ("hockey", "game", "goalie")
    assert keywords[1][0][0] in ("space", "orbit", "nasa", "shuttle", "space shuttle")
    assert all(term not in ("the", "and", "in") for term, _ in keywords[0])


def test_short_label_skips_repeated_words():
    from embedspace.mapping.labels import short_label

    assert short_label(["space shuttle", "space", "shuttle", "orbit", "nasa"]) == "space shuttle, orbit, nasa"
    assert short_label([]) == ""
    assert len(short_label(["a" * 30, "b" * 30, "c"], max_chars=40)) <= 40


def test_describe_table_sizes_labels_and_examples():
    import embedspace as es

    table = es.describe(_toy_space(), n_examples=2)
    assert list(table["cluster"]) == [0, 1, -1]
    assert list(table["size"]) == [3, 3, 1] and table["share"].sum() == pytest.approx(1.0)
    assert table.loc[2, "label"] == "(unclustered)"
    assert table.loc[0, "example_rows"][0] == 1, "the member closest to the cluster's mean comes first"
    assert all(len(e) == 2 for e in table["examples"][:2])
    from embedspace.embeddingset import EmbeddingSet

    with pytest.raises(InputError, match="run embedspace.map"):
        es.describe(EmbeddingSet(np.eye(2, dtype=np.float32), pd.DataFrame({"text": ["a", "b"]})))


HOSTILE = [
    "</script><script>window.__pwned = 1</script>",
    '"><img src=x onerror=alert(1)>',
    "<!-- <script>alert(2)</script>",
    "plain & simple \u2028 line separator",
]


def _page(tmp_path):
    from embedspace.mapping.page import write_map_html

    documents = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.5, np.nan], "cluster": [0, 0, 1, -1],
                              "text": HOSTILE})
    clusters = pd.DataFrame({"cluster": [0, 1, -1], "size": [2, 1, 1],
                             "label": ["</script><b>x</b>", "ok", "(unclustered)"],
                             "keywords": [["<!--", "a"], ["b"], []]})
    path = tmp_path / "map.html"
    write_map_html(documents, clusters, path, title='"><script>alert(3)</script>', caption="<i>c</i>")
    return path.read_text(encoding="utf-8")


def test_map_html_neutralises_hostile_text(tmp_path):
    page = _page(tmp_path)
    assert page.count("<script") == 2 and page.count("</script>") == 2, "only the page's own two script blocks"
    assert "<!--" not in page and "<img" not in page and "<i>" not in page and "\u2028" not in page
    assert "&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    start = page.index('id="map-data">') + len('id="map-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data["points"]["text"][:3] == HOSTILE[:3] and data["points"]["y"][3] is None
    assert data["clusters"][0]["label"] == "</script><b>x</b>"
    assert "default-src 'none'" in page, "a Content-Security-Policy forbids every network request"


def test_plot_map_writes_a_legible_png(tmp_path):
    from embedspace.mapping.plotting import cluster_colors, plot_map

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 300), rng.normal(5, 1, 200), rng.uniform(-3, 8, 40)])
    y = np.concatenate([rng.normal(0, 1, 300), rng.normal(5, 1, 200), rng.uniform(-3, 8, 40)])
    clusters = np.concatenate([np.zeros(300, int), np.ones(200, int), -np.ones(40, int)])
    plot_map(x, y, clusters, {0: "hockey, goalie", 1: "space, orbit"}, tmp_path / "m.png", title="t")
    from matplotlib.image import imread

    image = imread(tmp_path / "m.png")
    assert image.shape[0] == image.shape[1] >= 1500
    assert len(set(cluster_colors(40))) == 40
    with pytest.raises(InputError):
        plot_map(x, y[:5], clusters, {}, tmp_path / "bad.png")
