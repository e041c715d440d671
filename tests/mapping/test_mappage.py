"""map.html and report.html without a browser: data, escaping in every context, no remote URL.

The browser itself is exercised in tests/test_map_browser.py; these checks are fast and
run everywhere.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</script><script>window.__pwned=1</script>",
    "<!-- comment opener",
    "line\u2028separator\u2029paragraph & <b>amp</b>",
    "' onmouseover='alert(1)",
]
REMOTE = re.compile(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|<link|<img|\bsrc\s*=|@import|url\(")


def _tables(texts=HOSTILE):
    n = len(texts)
    documents = pd.DataFrame({"x": np.linspace(0, 1, n), "y": np.linspace(5, 3, n),
                              "cluster": [0, 0, 1, 1, -1, 0][:n], "text": texts})
    clusters = pd.DataFrame({
        "cluster": [0, 1, -1], "size": [3, 2, 1], "share": [0.5, 1 / 3, 1 / 6],
        "label": ['</script><img src=x onerror=alert(2)>', '"quoted" & <i>', "(unclustered)"],
        "keywords": [["<!--", "a&b"], ["</style>"], []],
        "examples": [[HOSTILE[1], HOSTILE[2]], [HOSTILE[0]], []],
        "example_rows": [[1, 2], [0], []],
    })
    return documents, clusters


def _tags(page: str) -> list[tuple[str, dict]]:
    """Every element an HTML parser finds, with its attributes."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect(convert_charrefs=True).feed(page)
    return found


def _fetched(page: str) -> list[str]:
    """The URLs a browser would load: src / href / srcset / poster / data attributes, and CSS url()/@import."""
    urls = [value for _, attrs in _tags(page) for name, value in attrs.items()
            if name in ("src", "srcset", "poster", "data", "action", "formaction") or
            (name == "href" and _ != "a")]
    return urls


def _data_block(page: str) -> dict:
    start = page.index('<script type="application/json" id="map-data">') + len('<script type="application/json" id="map-data">')
    return json.loads(page[start:page.index("</script>", start)])


def test_json_for_script_cannot_close_the_block_or_open_a_comment():
    from embedspace.mapping.page import json_for_script

    text = json_for_script({"t": HOSTILE, "nan": float("nan"), "inf": [float("inf")]})
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == {"t": HOSTILE, "nan": None, "inf": [None]}


def test_map_page_carries_every_document_and_only_its_own_markup(tmp_path):
    from embedspace.mapping.page import write_map_html

    documents, clusters = _tables()
    path = tmp_path / "map.html"
    write_map_html(documents, clusters, path, title='"><script>alert(3)</script>', caption="<i>c</i> & 'q'")
    page = path.read_text(encoding="utf-8")
    assert page.count("<script") == 2 and page.count("</script>") == 2, "only the page's own two script blocks"
    for bad in ("<!--", "<img", "<i>", "\u2028", "<b>"):
        assert bad not in page.replace('<b id="tipc">', "")
    assert "<title>&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;</title>" in page
    assert "&lt;i&gt;c&lt;/i&gt; &amp; &#x27;q&#x27;" in page, "the caption is escaped for text and attributes"
    tags = _tags(page)
    assert _fetched(page) == [], "nothing a browser would fetch"
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs), "no inline event handler"
    assert {tag for tag, _ in tags} <= {"html", "head", "meta", "title", "style", "body", "div", "canvas", "b", "span",
                                        "small", "h1", "p", "input", "button", "h2", "pre", "script"}
    markup = page.replace(page[page.index('id="map-data">'):page.index("</script>", page.index('id="map-data">'))], "")
    assert not REMOTE.search(markup), "no URL outside the JSON block (document text lives only there)"
    assert "default-src 'none'" in page, "a Content-Security-Policy forbids every network request"
    data = _data_block(page)
    assert data["n"] == len(HOSTILE) and data["points"]["text"] == [t.strip() for t in HOSTILE]
    assert data["points"]["cluster"] == documents["cluster"].tolist()
    assert data["clusters"][0]["label"] == clusters["label"][0]
    assert [c["id"] for c in data["clusters"]] == [0, 1, -1]


def test_page_data_caps_text_rounds_coordinates_and_keeps_missing_ones():
    from embedspace.mapping.page import MAX_TEXT_CHARS, MIN_TEXT_CHARS, page_data, text_limit

    assert text_limit(100) == MAX_TEXT_CHARS and text_limit(200_000) == MIN_TEXT_CHARS
    assert text_limit(20_000) == 1_600
    long = "word " * 2_000
    documents = pd.DataFrame({"x": [0.123456789, 1.0, np.nan], "y": [2.0, np.inf, 3.0], "cluster": [0, 0, -1],
                              "text": [long, "  short  ", "x"]})
    clusters = pd.DataFrame({"cluster": [0, -1], "size": [2, 1], "label": ["a", "(unclustered)"], "keywords": [["k"], []]})
    data = page_data(documents, clusters)
    text = data["points"]["text"]
    assert len(text[0]) == data["text_limit"] == MAX_TEXT_CHARS and text[0].endswith("…")
    assert text[1] == "short"
    assert data["points"]["x"] == [0.123457, 1.0, None] and data["points"]["y"][1] is None
    assert data["clusters"][0]["x"] == pytest.approx(0.123456789), "anchors sit on a finite member"


def test_map_page_for_200k_points_stays_compact():
    from embedspace.mapping.page import render_map_html, page_data

    n = 200_000
    rng = np.random.default_rng(0)
    documents = pd.DataFrame({"x": rng.normal(size=n) * 5, "y": rng.normal(size=n) * 5,
                              "cluster": rng.integers(-1, 50, n), "text": ["lorem ipsum dolor sit amet " * 20] * n})
    clusters = pd.DataFrame({"cluster": list(range(50)) + [-1], "size": [n // 51] * 51,
                             "label": [f"c{i}" for i in range(50)] + ["(unclustered)"], "keywords": [["k"]] * 51})
    page = render_map_html(page_data(documents, clusters))
    size = len(page.encode("utf-8"))
    assert size < 48_000_000, f"{size / 1e6:.1f} MB"


def test_report_escapes_every_string_and_says_how_it_was_made(tmp_path):
    from embedspace.mapping.report import render_report_html

    _, clusters = _tables()
    metrics = {"n": 6, "n_clusters": 2, "noise_fraction": 1 / 6, "nmi": 0.5, "label_col": "<b>lab</b>",
               "params": {"seed": 0}, "timings": {"umap": 1.5}}
    page = render_report_html(title='"><script>alert(4)</script>', metrics=metrics, clusters=clusters,
                              command="embedspace map '<script>x</script>' -o out", versions={"python": "3.11"},
                              model={"name": "m<odel>", "dim": 384}, map_png=b"\x89PNG fake", files=["map.html"])
    assert "<script" not in page and "<img" not in page.replace('<img class=png alt="static map"', "")
    assert "<b>" not in page and "<!--" not in page and "<i>" not in page
    assert "&quot;&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in page
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page, "cluster labels are text"
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page, "representative documents are text"
    assert "embedspace map &#x27;&lt;script&gt;x&lt;/script&gt;&#x27; -o out" in page
    assert "script-src 'none'" in page and '<iframe src="map.html"' in page
    fetched = _fetched(page)
    assert fetched[0] == "map.html" and fetched[1].startswith("data:image/png;base64,") and len(fetched) == 2
    tags = _tags(page)
    assert [tag for tag, _ in tags].count("img") == 1 and "script" not in {tag for tag, _ in tags}
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs), "no inline event handler"
    assert not re.search(r"(?i)https?://", page), "no remote URL"
    for expected in ("0.5000", "16.7%", "m&lt;odel&gt;", "umap=1.5000", "seed=0"):
        assert expected in page


def test_report_records_the_command_that_made_the_map(tmp_path, cli):
    from embedspace.mapping.report import api_invocation

    assert api_invocation().startswith("python ")
    docs = tmp_path / "my docs.csv"
    pd.DataFrame({"text": [f"note number {i} about {topic}" for i in range(20) for topic in ("cats", "ships")]}).to_csv(
        docs, index=False)
    status, _, err = cli("map", docs, "-o", tmp_path / "out", "--quiet")
    assert status == 0, err
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "embedspace map &#x27;" in report and "my docs.csv&#x27; -o" in report
    page = (tmp_path / "out" / "map.html").read_text(encoding="utf-8")
    assert "<title>my docs</title>" in page and "<h1>my docs</h1>" in page, "the title is the file's stem, not its path"


def test_the_template_ships_as_package_data():
    from importlib import resources

    template = resources.files("embedspace.mapping").joinpath("page_template.html").read_text(encoding="utf-8")
    assert template.count("__DATA__") == 1 and "window.embedspaceMap" in template
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "page_template.html" in project["tool"]["setuptools"]["package-data"]["embedspace.mapping"]


def test_the_page_lists_the_top_one_percent_of_outlier_scores_most_unusual_first():
    from embedspace.mapping.page import page_data, top_outliers

    rng = np.random.default_rng(0)
    scores = rng.random(5_000)
    scores[[7, 70]] = [np.nan, 2.0]
    listed = top_outliers(scores)
    assert len(listed) == 50 and listed[0] == 70 and 7 not in listed
    assert list(scores[listed]) == sorted(scores[listed], reverse=True)
    assert scores[listed].min() >= np.sort(scores[np.isfinite(scores)])[-50]
    assert len(top_outliers(np.ones(300))) == 10 and top_outliers(np.ones(300))[:3] == [0, 1, 2]  # ties keep row order
    assert len(top_outliers(rng.random(200_000))) == 1_000 and len(top_outliers([0.1, np.nan])) == 1
    documents, clusters = _tables()
    assert "outliers" not in page_data(documents, clusters)
    data = page_data(documents.assign(outlier_score=[0.1, 0.9, 0.2, 0.3, 0.8, 0.0]), clusters)
    assert data["outliers"] == [1, 4, 3, 2, 0, 5]
