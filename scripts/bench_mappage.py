#!/usr/bin/env python3
"""Benchmark the interactive map page at 200,000 points: file size and time until interactive.

    flock /tmp/embedspace-bench.lock python scripts/bench_mappage.py [--n 200000] [--runs 5]

The layout is synthetic (50 Gaussian clusters plus 10% scattered outliers; the page's
speed does not depend on how the layout was made), the texts are real: the 20 Newsgroups
posts, cycled, so snippets have realistic lengths. The same points are also written as
the plain-library page, plotly ``scattergl`` with plotly.js inlined (one trace per
cluster, hover text = the same capped text), and both are opened in headless Debian
Chromium (``/usr/bin/chromium``, the test's flags, a fresh profile).

Time until interactive = from navigation start (``performance.now() == 0``) until the
page has drawn every point and the frame after it has run (two ``requestAnimationFrame``
callbacks after the first full draw; for plotly: after ``Plotly.newPlot``'s promise
resolves). Our page also reports where the time went: reading the 200k-point HTML
(until the page's script starts: the parser has read the whole JSON block),
``JSON.parse`` of the data block, building typed arrays and the hover grid, and the
first draw; and what one interaction costs afterwards (a full redraw, as in a pan or
zoom frame; a search over every text). CPU seconds are the browser processes' own
(user + system), comparable on a shared machine; wall times are medians over runs.
"""

from __future__ import annotations

import argparse
import html
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def synthetic_map(n: int, n_clusters: int = 50, seed: int = 0):
    """Documents (x, y, cluster, text) and a cluster table for an ``n``-point map."""
    import embedspace as es

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(n_clusters, 2))
    cluster = rng.integers(0, n_clusters, n)
    noise = rng.random(n) < 0.10
    xy = centres[cluster] + rng.normal(scale=rng.uniform(0.6, 2.0, n_clusters)[cluster][:, None], size=(n, 2))
    xy[noise] = rng.uniform(-24, 24, size=(int(noise.sum()), 2))
    cluster[noise] = -1
    texts = es.read("corpus:20newsgroups")["text"].tolist()
    documents = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cluster": cluster,
                              "text": [texts[i % len(texts)] for i in range(n)]})
    ids = list(range(n_clusters)) + [-1]
    sizes = [int((cluster == c).sum()) for c in ids]
    clusters = pd.DataFrame({"cluster": ids, "size": sizes,
                             "label": [f"topic {c}: words, more words" for c in range(n_clusters)] + ["(unclustered)"],
                             "keywords": [[f"word{c}", f"term{c}", "shared"] for c in range(n_clusters)] + [[]]})
    return documents, clusters


def write_plotly_page(documents, clusters, path: Path, text_chars: int) -> None:
    """The plain-library way: plotly scattergl, one trace per cluster, plotly.js inlined."""
    import plotly.graph_objects as go

    from embedspace.mapping.plotting import NOISE_COLOR, cluster_colors

    figure = go.Figure()
    real = clusters[clusters["cluster"] >= 0]
    colors = dict(zip(real["cluster"], cluster_colors(len(real))))
    for row in clusters.itertuples():
        members = documents[documents["cluster"] == row.cluster]
        hover = [html.escape(" ".join(t.split())[:text_chars]) for t in members["text"]]
        figure.add_trace(go.Scattergl(x=members["x"].round(4), y=members["y"].round(4), mode="markers", name=row.label,
                                      hovertext=hover, hoverinfo="text",
                                      marker={"size": 3, "color": colors.get(row.cluster, NOISE_COLOR),
                                              "opacity": 0.4 if row.cluster < 0 else 0.85}))
    post = ("requestAnimationFrame(function(){requestAnimationFrame(function(){"
            "window.__ready=performance.now();document.documentElement.dataset.ready='1';});});")
    figure.write_html(str(path), include_plotlyjs=True, full_html=True, post_script=post)


def _browser_cpu(root_pid: int) -> float:
    import psutil

    total = 0.0
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _wait_ready(page, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while page.evaluate("document.documentElement.dataset.ready") != "1":
        if time.monotonic() > deadline:
            raise TimeoutError("the page never became interactive")
        time.sleep(0.02)


def time_page(context, path: Path, *, ours: bool) -> dict:
    import os

    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    cpu0 = _browser_cpu(os.getpid())
    page.goto(path.as_uri(), timeout=180_000)
    _wait_ready(page)
    cpu = _browser_cpu(os.getpid()) - cpu0
    nav = page.evaluate("(() => { const e = performance.getEntriesByType('navigation')[0];"
                        " return {response_end: e.responseEnd, dom_interactive: e.domInteractive}; })()")
    result = {"cpu_s": cpu, "errors": errors, **nav}
    if ours:
        result.update(page.evaluate("({...embedspaceMap.timings, drawn: embedspaceMap.drawn})"))
        result["redraw_ms"] = page.evaluate("(() => { const t = performance.now(); embedspaceMap.draw();"
                                            " return performance.now() - t; })()")
        result["search_ms"] = page.evaluate("(() => { const t = performance.now(); embedspaceMap.search('space');"
                                            " return performance.now() - t; })()")
        result["ready_ms"] = result["ready_at_ms"]
    else:
        result["ready_ms"] = page.evaluate("window.__ready")
    page.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-plotly", action="store_true", help="skip the plotly scattergl comparison")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from embedspace.mapping.page import page_data, render_map_html

    work = Path(tempfile.mkdtemp(prefix="bench-mappage-"))
    documents, clusters = synthetic_map(args.n)
    cpu0, t0 = time.process_time(), time.perf_counter()
    page_text = render_map_html(page_data(documents, clusters, title=f"{args.n:,} points"))
    (work / "map.html").write_text(page_text, encoding="utf-8")
    print(f"embedspace map.html: {args.n:,} points, {(work / 'map.html').stat().st_size / 1e6:.1f} MB, "
          f"written in {time.perf_counter() - t0:.1f} s ({time.process_time() - cpu0:.1f} CPU-s); "
          f"text capped at {_limit(args.n)} chars per document")
    pages = {"embedspace": work / "map.html"}
    if not args.no_plotly:
        write_plotly_page(documents, clusters, work / "plotly.html", _limit(args.n))
        print(f"plotly scattergl page: {(work / 'plotly.html').stat().st_size / 1e6:.1f} MB")
        pages["plotly"] = work / "plotly.html"
    results = {name: [] for name in pages}
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                                headless=True, viewport={"width": 1400, "height": 900})
        for run in range(args.runs):
            for name, path in pages.items():
                try:
                    results[name].append(time_page(context, path, ours=name == "embedspace"))
                except Exception as exc:  # report, keep measuring the other page
                    results[name].append({"failed": f"{type(exc).__name__}: {exc}"[:300]})
        context.close()
    for name, runs in results.items():
        good = [r for r in runs if "failed" not in r]
        if not good:
            print(f"{name}: failed: {runs[0]['failed']}")
            continue
        med = {key: statistics.median(r[key] for r in good) for key in good[0]
               if isinstance(good[0][key], (int, float))}
        errors = sorted({e[:120] for r in good for e in r["errors"]})
        print(f"\n{name}: time until interactive, median of {len(good)} runs: {med['ready_ms'] / 1000:.2f} s "
              f"(runs: {', '.join('%.2f' % (r['ready_ms'] / 1000) for r in good)}); browser CPU {med['cpu_s']:.2f} s/run")
        if name == "embedspace":
            print(f"  reading and parsing the HTML up to the page's script: {med['script_start_ms'] / 1000:.2f} s")
            print(f"  JSON.parse {med['parse_ms']:.0f} ms, typed arrays + hover grid {med['setup_ms']:.0f} ms, "
                  f"first draw {med['first_draw_ms']:.0f} ms, points drawn {int(med['drawn']):,}")
            print(f"  afterwards: a full redraw (one pan/zoom frame) {med['redraw_ms']:.0f} ms, "
                  f"a search over every text {med['search_ms']:.0f} ms")
        if errors:
            print(f"  console errors: {errors}")
    if all(results.values()) and len(results) == 2:
        ours = [r["ready_ms"] for r in results["embedspace"] if "failed" not in r]
        theirs = [r["ready_ms"] for r in results["plotly"] if "failed" not in r]
        if ours and theirs:
            print(f"\nplotly / embedspace time until interactive: {statistics.median(theirs) / statistics.median(ours):.2f}x; "
                  f"size {(work / 'plotly.html').stat().st_size / (work / 'map.html').stat().st_size:.2f}x")
    print(f"pages kept in {work}")
    return 0


def _limit(n: int) -> int:
    from embedspace.mapping.page import text_limit

    return text_limit(n)


if __name__ == "__main__":
    raise SystemExit(main())
