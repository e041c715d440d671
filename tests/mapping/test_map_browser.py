"""map.html and report.html in a real browser: Debian's chromium, driven by playwright.

A small real map (300 posts of four 20 Newsgroups groups plus hostile documents) is
written with the public API; the pages are opened from ``file://`` in headless Chromium
with a fresh profile. Checked: no console errors, no request but the page itself, every
point drawn, hover / click / search / legend change what is shown, and the hostile
documents show as text and run nothing.

Without ``/usr/bin/chromium`` the tests skip, unless ``EMBEDSPACE_REQUIRE_BROWSER=1``
(set by ``.ci/run``), where they fail. No browser is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import browser_or_skip, chromium_context

GROUPS = ("rec.sport.hockey", "sci.space", "soc.religion.christian", "comp.graphics")
PER_GROUP = 75
HOSTILE = [
    "<script>alert(1)</script> hostile one",
    '"><img src=x onerror=alert(1)> hostile two',
    "</script><script>window.__pwned=1</script> hostile three",
    "<!-- hostile four <script>window.__pwned=2</script>",
    "hostile five \u2028 line separator \u2029 and & ampersand",
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def map_dir(tmp_path_factory, encoder):
    browser_or_skip()
    import embedspace as es

    docs = es.read("corpus:20newsgroups")
    docs = pd.concat([docs[docs["label"] == g].head(PER_GROUP) for g in GROUPS], ignore_index=True)
    body = docs["text"].str.split("\n\n", n=1).str[1].fillna("")
    docs["text"] = body.str.strip().str.slice(0, 700)
    hostile = pd.DataFrame({"text": HOSTILE, "label": ["hostile"] * len(HOSTILE)})
    docs = pd.concat([docs[["text", "label"]], hostile], ignore_index=True)
    space = es.embed(docs, encoder=encoder, progress=False)
    mapped = es.map(space, seed=0, progress=False, levels=3)
    out = tmp_path_factory.mktemp("browser") / "map"
    es.write_map(mapped, out, label_col="label", title='four groups "><b>bold?</b>')
    return out, docs


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium_context(tmp_path_factory.mktemp("chromium-profile"), viewport={"width": 1200, "height": 800}) as context:
        yield context


class Watch:
    """Console errors, page errors, dialogs and requests of one page."""

    def __init__(self, page):
        self.errors, self.dialogs, self.requests = [], [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: self.requests.append(r.url))


def _wait(page, expression: str, timeout_ms: int) -> None:
    """Poll ``expression`` until true (wait_for_function would eval a string, which the page's CSP refuses)."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for {expression}")
        time.sleep(0.02)


def _open(browser, path: Path):
    page = browser.new_page()
    watch = Watch(page)
    page.goto(path.as_uri())
    return page, watch


def test_map_page_draws_every_point_responds_and_runs_no_hostile_text(browser, map_dir, tmp_path):
    out, docs = map_dir
    page, watch = _open(browser, out / "map.html")
    _wait(page, "document.documentElement.dataset.ready === '1'", 20_000)
    n = len(docs)
    assert page.evaluate("embedspaceMap.n") == n
    assert page.evaluate("embedspaceMap.drawn") == n, "every document is a point on screen"
    assert page.title() == 'four groups "><b>bold?</b>', "the title shows as text"
    assert page.locator("#legend .item").count() == page.evaluate("JSON.parse(document.getElementById('map-data').textContent).clusters.length")

    # hover a hostile document: its snippet shows, as text
    canvas = page.locator("#map").bounding_box()
    row = n - 3  # "</script><script>window.__pwned=1</script> hostile three"
    before = page.locator("#map").screenshot()
    x, y = page.evaluate(f"embedspaceMap.screenOf({row})")
    page.mouse.move(canvas["x"] + x, canvas["y"] + y)
    _wait(page, "document.getElementById('tip').style.display === 'block'", 5_000)
    shown = page.locator("#tipt").text_content()
    hovered = page.evaluate("embedspaceMap.hovered")
    assert hovered >= n - len(HOSTILE), "the hostile documents sit together; one of them is under the cursor"
    assert shown == " ".join(HOSTILE[hovered - (n - len(HOSTILE))].split()), "shown as text, not markup"
    assert page.locator("#map").screenshot() != before, "the hovered point is ringed"

    # click opens the whole text in the side panel
    page.mouse.down()
    page.mouse.up()
    assert page.locator("#doc").is_visible()
    assert page.locator("#doctext").text_content() == docs["text"][hovered].strip()

    # search highlights matches (texts and cluster keywords), counted in the panel
    page.mouse.move(canvas["x"] + 2, canvas["y"] + 2)
    page.fill("#search", "hostile")
    _wait(page, "embedspaceMap.matches > 0", 5_000)
    assert page.evaluate("embedspaceMap.matches") >= len(HOSTILE)
    assert page.locator("#found").text_content().startswith(f"{page.evaluate('embedspaceMap.matches')} of {n}")
    searched = page.locator("#map").screenshot()
    assert searched != before, "searching redraws matches on top and fades the rest"
    page.fill("#search", "")
    _wait(page, "embedspaceMap.matches === 0", 5_000)

    # the legend hides a cluster
    first_size = int(page.locator("#legend .item .cnt").first.text_content())
    page.locator("#legend .item").first.click()
    _wait(page, f"embedspaceMap.drawn === {n - first_size}", 5_000)
    page.locator("#legend .item").first.click()
    _wait(page, f"embedspaceMap.drawn === {n}", 5_000)

    # pan and zoom move the picture
    page.mouse.move(canvas["x"] + 300, canvas["y"] + 300)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(100)
    assert page.locator("#map").screenshot() != before

    page.screenshot(path=str(tmp_path / "map-page.png"))
    assert (tmp_path / "map-page.png").stat().st_size > 10_000
    assert page.evaluate("window.__pwned") is None and not watch.dialogs
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('img, iframe, b:not(#tipc)').length") == 0
    assert watch.errors == []
    assert watch.requests == [(out / "map.html").as_uri()], "no request but the page itself"
    page.close()


def test_report_page_shows_hostile_text_and_embeds_the_map_offline(browser, map_dir):
    out, docs = map_dir
    page, watch = _open(browser, out / "report.html")
    page.wait_for_load_state("load")
    frame = next(f for f in page.frames if f.url.endswith("/map.html"))
    _wait(frame, "document.documentElement.dataset.ready === '1'", 20_000)
    assert frame.evaluate("embedspaceMap.drawn") == len(docs), "the embedded map draws every point"
    body = page.locator("body").inner_text()
    for heading in ("Clusters", "Metrics", "How it was made"):
        assert heading in body
    assert "embedspace" in page.locator("pre").first.text_content()
    cluster_rows = page.locator("h2:has-text('Clusters') + table tbody tr").count()
    assert cluster_rows == pd.read_csv(out / "clusters.csv").shape[0]
    assert page.evaluate("window.__pwned") is None and not watch.dialogs
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.evaluate("document.querySelectorAll('body img:not(.png)').length") == 0
    assert watch.errors == []
    allowed = {(out / name).as_uri() for name in ("report.html", "map.html")}
    assert [u for u in watch.requests if u not in allowed and not u.startswith("data:")] == []
    page.close()


LONG_TITLE = "/home/someone/projects/" + "very-long-folder-name-without-spaces-" * 6 + "docs.jsonl"


@pytest.mark.parametrize("width,height", [(1280, 720), (1400, 900)])
def test_map_page_fits_the_window_and_keeps_labels_inside_the_canvas(browser, map_dir, tmp_path, width, height):
    """Issue 31 item 9: no sideways scroll, label boxes inside the canvas, the title shown whole, at both sizes."""
    import json
    import re

    from embedspace.mapping.page import render_map_html

    out, docs = map_dir
    block = re.search(r'<script type="application/json" id="map-data">(.*?)</script>',
                      (out / "map.html").read_text(encoding="utf-8"), re.S).group(1)
    data = json.loads(block)
    data["title"] = LONG_TITLE  # the worst case: a long title with no place to break
    page_path = tmp_path / "long-title.html"
    page_path.write_text(render_map_html(data), encoding="utf-8")

    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": height})
    watch = Watch(page)
    for path in (out / "map.html", page_path):
        page.goto(path.as_uri())
        _wait(page, "document.documentElement.dataset.ready === '1'", 20_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth")
        assert page.evaluate("document.body.scrollWidth") <= page.evaluate("window.innerWidth")
        side = page.locator("#side").bounding_box()
        assert side["x"] + side["width"] <= width + 0.5, "the side panel is inside the window"
        heading = page.locator("#head h1")
        assert heading.text_content() == page.title()
        box = heading.bounding_box()
        assert box["x"] >= side["x"] - 0.5 and box["x"] + box["width"] <= side["x"] + side["width"] + 0.5, \
            "the title wraps inside the panel"
        _check_label_boxes(page)
        # zoomed in on a corner and panned, labels whose anchors stay on screen are shifted inside
        canvas = page.locator("#map").bounding_box()
        for cx, cy in ((30, 30), (canvas["width"] - 30, canvas["height"] - 30)):
            page.evaluate("embedspaceMap.openDoc(-1)")
            page.mouse.move(canvas["x"] + cx, canvas["y"] + cy)
            page.mouse.wheel(0, -500)
            page.wait_for_timeout(80)
            _check_label_boxes(page, at_least=0)
            page.dblclick("#map", position={"x": 5, "y": 5})
            page.wait_for_timeout(80)
        # the longest document open in the side panel does not widen the page either
        longest = int(max(range(len(docs)), key=lambda i: len(docs["text"][i])))
        page.evaluate(f"embedspaceMap.openDoc({longest})")
        assert page.locator("#doc").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth")
    assert page.title() == LONG_TITLE
    assert watch.errors == []
    page.close()


def _check_label_boxes(page, at_least: int = 1) -> None:
    boxes = page.evaluate("embedspaceMap.labelBoxes")
    w, h = page.evaluate("embedspaceMap.canvasSize")
    assert len(boxes) >= at_least, "cluster labels are drawn"
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, f"label box {[x0, y0, x1, y1]} leaves the {w}x{h} canvas"


def test_map_page_drills_down_the_topic_tree(browser, map_dir):
    """Issue 32: zoomed out only the top level is labelled; zoomed in, finer labels join where there is room;
    a legend branch opens, highlights its children, and a child hides its documents."""
    out, _ = map_dir
    page, watch = _open(browser, out / "map.html")
    _wait(page, "document.documentElement.dataset.ready === '1'", 20_000)
    tree = page.evaluate("JSON.parse(document.getElementById('map-data').textContent).tree")
    assert {node["level"] for node in tree} >= {1}
    out_levels = page.evaluate("embedspaceMap.labelLevels")
    assert out_levels and set(out_levels) == {0}, "zoomed out: the top level's labels only"
    largest = page.evaluate("JSON.parse(document.getElementById('map-data').textContent).clusters[0]")
    out_owned = page.evaluate("embedspaceMap.labelOwners").count(largest["id"])
    # zoom in 2.5 times on the largest cluster (centred on its label's anchor)
    page.evaluate(f"embedspaceMap.zoomBy(2.5, {largest['x']}, {largest['y']})")
    in_levels, owners = page.evaluate("embedspaceMap.labelLevels"), page.evaluate("embedspaceMap.labelOwners")
    in_owned = owners.count(largest["id"])
    assert out_owned == 1 and in_owned > out_owned and max(in_levels) >= 1, (out_levels, in_levels, owners)
    _check_label_boxes(page)  # no two labels overlap and all lie inside the canvas
    boxes = page.evaluate("embedspaceMap.labelBoxes")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    page.dblclick("#map", position={"x": 5, "y": 5})
    page.wait_for_timeout(80)
    # the first branch: its caret opens it and highlights its children (their labels show zoomed out)
    page.locator("#legend .caret").first.click()
    page.wait_for_timeout(80)
    assert page.locator("#legend .kids.open .sub").count() >= 2
    assert 1 in page.evaluate("embedspaceMap.labelLevels")
    before = page.evaluate("embedspaceMap.drawn")
    child = int(page.locator("#legend .kids.open .sub").first.get_attribute("data-id"))
    size = next(node["size"] for node in tree if node["level"] == 1 and node["id"] == child)
    page.locator("#legend .kids.open .sub").first.click()
    page.wait_for_timeout(80)
    assert before - page.evaluate("embedspaceMap.drawn") == size, "hiding a branch hides its documents"
    page.locator("#legend .kids.open .sub").first.click()
    page.wait_for_timeout(80)
    assert page.evaluate("embedspaceMap.drawn") == before
    assert watch.errors == [] and all(url.startswith("file://") for url in watch.requests)
    page.close()


def test_map_page_rings_the_most_unusual_documents(browser, map_dir):
    """Issue 34: the "unusual" button rings the top outlier scores of documents.parquet (the map's default
    outlier method), lists them most unusual first, and a listed document opens; a search turns it off."""
    out, _ = map_dir
    documents = pd.read_parquet(out / "documents.parquet")
    assert {"glosh", "duplicate_group"} <= set(documents.columns), "es.map adds the analysis columns"
    page, watch = _open(browser, out / "map.html")
    _wait(page, "document.documentElement.dataset.ready === '1'", 20_000)
    listed = page.evaluate("embedspaceMap.outliers")
    scores = documents["outlier_score"].to_numpy()
    assert len(listed) == 10 and list(scores[listed]) == sorted(scores[listed], reverse=True)
    assert scores[listed].min() >= sorted(scores, reverse=True)[9], "the ten highest scores, most unusual first"
    drawn = page.evaluate("embedspaceMap.drawn")
    page.click("#unusual")
    page.wait_for_timeout(80)
    assert page.evaluate("embedspaceMap.outliersShown") == len(listed)
    assert page.evaluate("embedspaceMap.drawn") == drawn, "ringing fades the rest, it hides nothing"
    assert page.locator("#outlist .orow").count() == len(listed) and not page.locator("#legend").is_visible()
    page.locator("#outlist .orow").first.click()
    page.wait_for_timeout(80)
    assert page.evaluate("embedspaceMap.selected") == listed[0]
    assert page.locator("#docnote").inner_text().startswith("Unusual: number 1 of the 10")
    page.fill("#search", "hockey")
    _wait(page, "embedspaceMap.matches > 0", 5_000)
    assert page.evaluate("embedspaceMap.outliersShown") == 0 and page.locator("#legend").is_visible()
    assert watch.errors == [] and all(url.startswith("file://") for url in watch.requests)
    page.close()
