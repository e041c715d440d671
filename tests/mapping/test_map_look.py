"""What a map looks like (issue 31, item 9): no grey cluster colour, a title that is a name, no honorifics in names."""

from __future__ import annotations

import pytest

from embedspace.mapping import collection_name
from embedspace.mapping.labels import class_tfidf_keywords
from embedspace.mapping.plotting import BASE_COLORS, MIN_CHANNEL_SPREAD, NOISE_COLOR, cluster_colors


def _spread(color: str) -> int:
    channels = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return max(channels) - min(channels)


def test_no_cluster_colour_is_grey():
    colors = cluster_colors(300)
    assert len(set(colors)) == 300
    assert len(BASE_COLORS) == 20 and colors[:20] == list(BASE_COLORS)
    assert _spread(NOISE_COLOR) == 0, "outliers are the grey ones"
    greyish = [c for c in colors if _spread(c) < MIN_CHANNEL_SPREAD]
    assert not greyish, f"grey means outlier, yet clusters got {greyish}"
    assert MIN_CHANNEL_SPREAD >= 60


@pytest.mark.parametrize("source,name", [
    ("corpus:20newsgroups", "20newsgroups"),
    ("/data/news/docs.jsonl", "docs"),
    ("runs/news.set", "news"),
    ("runs/news.set/", "news"),
    ("my docs.csv", "my docs"),
    ("folder/of-texts/", "of-texts"),
])
def test_collection_name_is_a_name_not_a_path(source, name):
    assert collection_name(source) == name


def test_collection_name_of_a_folder_that_exists(tmp_path):
    (tmp_path / "notes.v2").mkdir()
    assert collection_name(tmp_path / "notes.v2") == "notes.v2"
    assert collection_name(["a text", "another"]) == "embedspace map"


def test_honorifics_and_news_words_are_not_keywords():
    politics = [f"Mr Blair said on Monday that Labour would win the election, Reuters reported ({i})" for i in range(30)]
    markets = [f"Shares of Acme Corp. &lt;ACME.N&gt; rose on Tuesday, Mr Smith said &quot;strong&quot; ({i})"
               for i in range(30)]
    keywords = class_tfidf_keywords(politics + markets, [0] * 30 + [1] * 30, ngram_range=(1, 1), max_df=1.0)
    words = {term for terms in keywords.values() for term, _ in terms}
    for stop in ("mr", "said", "monday", "tuesday", "reuters", "reported", "lt", "gt", "quot"):
        assert stop not in words
    assert {"labour", "election"} <= {t for t, _ in keywords[0]}
    assert {"shares", "acme"} <= {t for t, _ in keywords[1]}
