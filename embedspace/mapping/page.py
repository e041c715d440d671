"""The interactive map page (``map.html``): one self-contained file that opens offline.

Why a hand-written page and not plotly: at 200,000 points the page is about 8x smaller
(plotly.js alone is 4.8 MB before any data) and becomes interactive sooner in headless
Chromium; it needs no WebGL (points are rasterised straight into an ``ImageData``
buffer, which is fast on any machine, GPU or not); and it makes no network request of
any kind (no CDN, no fonts, no images; a Content-Security-Policy forbids them).
``scripts/bench_mappage.py`` measures both ways in the same run.

What the page does: pan (drag) and zoom (wheel, about the cursor); hovering a point
shows its snippet and cluster; cluster labels are drawn at their anchors (the largest
first; a label that would overlap one placed moves a step up, down or sideways, else is
skipped), each box shifted to lie wholly inside the canvas; the legend toggles clusters;
a search box
highlights documents whose text, or whose cluster's label or keywords, contain the
query; clicking a point opens its text in a side panel; outliers are dimmed. The
"unusual" button rings the documents with the highest ``outlier_score`` (the top 1%, at
least 10 and at most 1,000: :func:`top_outliers`) and lists them, most unusual first;
clicking one opens it. The page
exposes ``window.embedspaceMap`` (``n``, ``drawn``, ``matches``, ``timings``,
``labelBoxes``, ``canvasSize``, ``search(q)``, ``toggle(id)``, ``showOutliers(on)``,
``outliersShown``) for tests and benchmarks.
The page never scrolls sideways (checked at 1280x720 and 1400x900 by
``tests/mapping/test_map_browser.py``): long titles and texts wrap inside the side panel.
Cluster colours are :func:`embedspace.mapping.plotting.cluster_colors`, as in ``map.png``,
none of them grey (grey is for outliers).

Hostile text is inert by construction:

* document strings reach the page only inside one ``<script type="application/json">``
  block, serialised by :func:`json_for_script`, which escapes ``<``, ``>``, ``&`` and
  the JavaScript line separators as ``\\uXXXX`` — so ``</script>``, ``<!--`` and
  ``<![CDATA[`` cannot end or change the block;
* the script reads that block with ``JSON.parse`` and writes text only through
  ``textContent`` and canvas ``fillText`` (never ``innerHTML``);
* the few strings placed in HTML (title, caption) go through :func:`html.escape`,
  which also quotes ``"`` and ``'`` for attributes.

To keep a 200k-point page compact, coordinates are rounded to about 1/100,000 of the
layout's extent, and each document's text is capped (4,000 characters for small maps,
down to 160 at 200k documents: :func:`text_limit`); ``documents.parquet`` holds the
full texts.
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources

import numpy as np

from embedspace.mapping.plotting import NOISE_COLOR, _anchor, cluster_colors

__all__ = ["page_data", "render_map_html", "write_map_html", "json_for_script", "text_limit", "top_outliers"]

#: Total characters of document text a page carries; spread over the documents.
TEXT_BUDGET = 32_000_000
MAX_TEXT_CHARS = 4_000
MIN_TEXT_CHARS = 160
#: Share of the documents the page's "unusual" button rings, and its bounds.
OUTLIER_SHARE, MIN_OUTLIERS, MAX_OUTLIERS = 0.01, 10, 1_000

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_for_script(obj) -> str:
    """Serialise ``obj`` as JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e``, ``\\u0026`` inside strings
    (they can only occur there), so no ``</script>``, ``<!--`` or entity can appear in
    the output; U+2028/U+2029 are escaped for older JavaScript parsers. NaN and
    infinities become ``null``.
    """
    text = json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def text_limit(n: int) -> int:
    """Characters of each document's text a page of ``n`` documents keeps.

    ``TEXT_BUDGET / n``, clipped to ``[MIN_TEXT_CHARS, MAX_TEXT_CHARS]``: 4,000 up to
    8,000 documents, 160 at 200,000.
    """
    return int(min(MAX_TEXT_CHARS, max(MIN_TEXT_CHARS, TEXT_BUDGET // max(int(n), 1))))


def _capped(text, limit: int) -> str:
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rounded(values: np.ndarray) -> list:
    """Coordinates rounded to ~1e-5 of their extent (NaN kept, as ``null`` in JSON)."""
    finite = values[np.isfinite(values)]
    extent = float(finite.max() - finite.min()) if finite.size else 1.0
    decimals = int(min(10, max(0, math.ceil(-math.log10(max(extent, 1e-12) / 1e5)))))
    rounded = np.round(values, decimals).tolist()
    as_number = int if decimals == 0 else float
    return [as_number(v) if math.isfinite(v) else None for v in rounded]


def top_outliers(scores) -> list[int]:
    """Rows of the most unusual documents, most unusual first: the top 1% by score (at least 10, at most 1,000).

    Parameters
    ----------
    scores : array-like of float, shape (n,)
        ``outlier_score`` (higher = more unusual); NaN never counts.

    Returns
    -------
    list of int
        At most ``min(n, max(10, min(1000, ceil(0.01 n))))`` row numbers; ties keep row order.
    """
    values = np.asarray(scores, dtype=np.float64)
    count = min(int(np.isfinite(values).sum()),
                max(MIN_OUTLIERS, min(MAX_OUTLIERS, math.ceil(OUTLIER_SHARE * len(values)))))
    if count <= 0:
        return []
    order = np.argsort(-np.where(np.isfinite(values), values, -np.inf), kind="stable")
    return [int(i) for i in order[:count]]


def _tree_nodes(documents, tree, x, y, finite) -> tuple[list, list | None]:
    """Label anchors of the tree's finer levels, and each document's level-1 cluster (None without levels)."""
    if tree is None or "level" not in tree or tree["level"].max() < 1:
        return [], None
    nodes = []
    for row in tree[(tree["level"] >= 1) & (tree["cluster"] >= 0)].itertuples(index=False):
        column = f"cluster_l{int(row.level)}"
        if column not in documents.columns:
            continue
        members = (documents[column].to_numpy() == row.cluster) & finite
        ax, ay = _anchor(np.column_stack([x[members], y[members]])) if members.any() else (0.0, 0.0)
        nodes.append({"level": int(row.level), "id": int(row.cluster), "parent": int(row.parent),
                      "label": str(row.label), "keywords": [str(k) for k in row.keywords][:10],
                      "size": int(row.size), "x": float(ax), "y": float(ay)})
    level1 = documents["cluster_l1"].to_numpy().astype(np.int64).tolist() if "cluster_l1" in documents.columns else None
    return nodes, level1


def page_data(documents, clusters, *, title: str = "embedspace map", colors: dict | None = None,
              caption: str = "", tree=None) -> dict:
    """The data object a map page draws.

    Parameters
    ----------
    documents : pandas.DataFrame
        One row per document with ``x``, ``y``, ``cluster`` and ``text``.
    clusters : pandas.DataFrame
        The cluster table of :func:`embedspace.mapping.labels` (``cluster``, ``label``,
        ``keywords``, ``size``).
    title : str, default="embedspace map"
    colors : dict, optional
        ``{cluster: "#rrggbb"}``; default as in :func:`embedspace.mapping.plotting.cluster_colors`.
    caption : str, default=""
    tree : pandas.DataFrame, optional
        The topic tree (:func:`embedspace.mapping.topics.topic_tree`); its finer levels
        become ``"tree"`` label anchors (drawn as the page zooms in, and the legend's
        branches) and ``points["l1"]`` (each document's level-1 cluster).

    Returns
    -------
    dict
        ``{"title", "caption", "n", "text_limit", "points": {"x", "y", "cluster", "text"[, "l1"]},
        "clusters": [{"id", "label", "keywords", "size", "color", "x", "y"}],
        "tree": [{"level", "id", "parent", "label", "keywords", "size", "x", "y"}]}``; ``x``
        and ``y`` have length n (``null`` where not finite), ``text`` holds each
        document's text capped at ``text_limit`` characters. With an ``outlier_score``
        column, ``"outliers"`` lists :func:`top_outliers`.
    """

    n = len(documents)
    x = documents["x"].to_numpy(dtype=np.float64)
    y = documents["y"].to_numpy(dtype=np.float64)
    labels = documents["cluster"].to_numpy().astype(np.int64)
    real = clusters[clusters["cluster"] >= 0].sort_values("size", ascending=False, kind="stable")
    if colors is None:
        colors = dict(zip(real["cluster"].tolist(), cluster_colors(len(real))))
    finite = np.isfinite(x) & np.isfinite(y)
    cluster_rows = []
    for row in clusters.itertuples(index=False):
        members = (labels == row.cluster) & finite
        ax, ay = _anchor(np.column_stack([x[members], y[members]])) if members.any() else (0.0, 0.0)
        cluster_rows.append({
            "id": int(row.cluster),
            "label": str(row.label),
            "keywords": [str(k) for k in row.keywords],
            "size": int(row.size),
            "color": NOISE_COLOR if row.cluster < 0 else colors.get(int(row.cluster), NOISE_COLOR),
            "x": float(ax),
            "y": float(ay),
        })
    limit = text_limit(n)
    nodes, level1 = _tree_nodes(documents, tree, x, y, finite)
    points = {
        "x": _rounded(x),
        "y": _rounded(y),
        "cluster": labels.tolist(),
        "text": [_capped(t, limit) for t in documents["text"].tolist()],
    }
    if level1 is not None:
        points["l1"] = level1
    data = {
        "title": str(title),
        "caption": str(caption),
        "n": int(n),
        "text_limit": limit,
        "points": points,
        "clusters": cluster_rows,
        "tree": nodes,
    }
    if "outlier_score" in documents.columns:
        data["outliers"] = top_outliers(documents["outlier_score"].to_numpy())
    return data


def _template() -> str:
    return resources.files("embedspace.mapping").joinpath("page_template.html").read_text(encoding="utf-8")


def render_map_html(data: dict, *, caption: str | None = None) -> str:
    """Render :func:`page_data` output as one self-contained HTML document.

    Parameters
    ----------
    data : dict
        From :func:`page_data`.
    caption : str, optional
        A line shown under the title (escaped); default ``data["caption"]``.

    Returns
    -------
    str
    """
    caption = data.get("caption", "") if caption is None else caption
    fields = {
        "__TITLE__": html.escape(str(data.get("title", "")), quote=True),
        "__CAPTION__": html.escape(str(caption), quote=True),
        "__DATA__": json_for_script(data),
    }
    # One pass, so a title that contains "__DATA__" is never substituted again.
    return re.sub("__TITLE__|__CAPTION__|__DATA__", lambda match: fields[match.group(0)], _template())


def write_map_html(documents, clusters, path, *, title: str = "embedspace map", caption: str = "",
                   colors: dict | None = None, tree=None) -> None:
    """Write ``map.html`` for a mapped collection (see :func:`page_data` for the inputs)."""
    data = page_data(documents, clusters, title=title, colors=colors, caption=caption, tree=tree)
    text = render_map_html(data)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
