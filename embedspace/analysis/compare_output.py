"""The ``compare sets`` directory: regions.csv, documents.parquet, compare.png, compare.html, metrics.json.

The page is this module's own small offline template (no network, no scripts from
elsewhere): both sets drawn on one layout on a canvas, with buttons to show A and B
together, only A, only B, or the significant regions coloured by direction; hovering a
point shows its text. Document text is escaped for a ``<script>`` element the same way
as the map page's (``<``, ``>``, ``&``, U+2028/9 as ``\\u`` escapes).
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np

from embedspace._fs import atomic_directory, atomic_write_json, check_output_path
from embedspace.store import (
    TableSink,
    csv_safe,
    jsonable,
    library_versions,
    write_manifest,
)

__all__ = ["COMPARE_FORMAT", "write_comparison", "write_group_comparison", "write_model_comparison"]

COMPARE_FORMAT = "embedspace.compare"
COMPARE_FORMAT_VERSION = 1
_COLORS = {"A": "#1f77b4", "B": "#ff7f0e", "more": "#d62728", "less": "#2ca02c", "other": "#c8c8c8"}
_PAGE_TEXT = 300
_PAGE_ROWS = 50_000
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _script_json(obj) -> str:
    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return value

    text = json.dumps(finite(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def _html_text(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def plot_comparison(result, path, *, dpi: int = 130, size_inches: float = 10.0, max_marked: int = 12) -> None:
    """Draw A and B on one layout; mark the significant regions (red: more in B, green: less in B)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = result.space.table
    names = result.metrics["names"]
    x, y = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    is_b = (table["source"] == names[1]).to_numpy()
    marker = float(np.clip(20000.0 / max(len(x), 1), 1.0, 20.0))
    fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    order = np.random.default_rng(0).permutation(len(x))  # neither set hides the other
    colors = np.where(is_b[order], _COLORS["B"], _COLORS["A"])
    ax.scatter(x[order], y[order], s=marker, c=colors, linewidths=0, alpha=0.5, rasterized=True)
    marked = result.regions[result.regions["significant"]].head(max_marked)
    for region in marked.itertuples():
        members = result.members(region.cluster)
        cx, cy = float(np.median(x[members])), float(np.median(y[members]))
        color = _COLORS["more"] if region.log2_ratio > 0 else _COLORS["less"]
        sign = "+" if region.log2_ratio > 0 else "−"
        ax.scatter([cx], [cy], s=160, facecolors="none", edgecolors=color, linewidths=2.0)
        ax.annotate(f"{sign} {region.label} ({region.share_a:.1%}→{region.share_b:.1%})", (cx, cy), fontsize=8,
                    color=color, xytext=(6, 6), textcoords="offset points",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "alpha": 0.8})
    for name, color in ((names[0], _COLORS["A"]), (names[1], _COLORS["B"])):
        ax.scatter([], [], s=30, c=color, label=name)
    ax.scatter([], [], s=80, facecolors="none", edgecolors=_COLORS["more"], label=f"more in {names[1]} (q<{result.metrics['alpha']})")
    ax.scatter([], [], s=80, facecolors="none", edgecolors=_COLORS["less"], label=f"less in {names[1]}")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    m = result.metrics
    ax.set_title(f"{names[0]} ({m['n_a']:,}) vs {names[1]} ({m['n_b']:,}): {m['test']} test p = {m['p_value']:.3g}, "
                 f"{m['n_significant']} of {m['n_regions']} regions differ", fontsize=10)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _region_of_row(table) -> np.ndarray:
    """Each document's region for the page: its significant pocket if it is in one, else its map region."""
    clusters = table["cluster"].to_numpy()
    if "pocket" in table.columns:
        pocket = table["pocket"].to_numpy()
        clusters = np.where(pocket >= 0, pocket, clusters)
    return clusters


def _page_data(result) -> dict:
    table = result.space.table
    names = result.metrics["names"]
    rows = np.arange(len(table))
    if len(rows) > _PAGE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(rows), _PAGE_ROWS, replace=False))
    direction = dict(zip(result.regions["cluster"], result.regions["direction"]))
    label = dict(zip(result.regions["cluster"], result.regions["label"]))
    clusters = _region_of_row(table)
    return {
        "names": names,
        "x": [round(float(v), 4) for v in table["x"].to_numpy()[rows]],
        "y": [round(float(v), 4) for v in table["y"].to_numpy()[rows]],
        "b": [int(v) for v in (table["source"].to_numpy()[rows] == names[1])],
        "d": [{"more in B": 1, "less in B": -1}.get(direction.get(int(c), ""), 0) for c in clusters[rows]],
        "r": [int(c) for c in clusters[rows]],
        "t": [" ".join(str(v).split())[:_PAGE_TEXT] for v in table["text"].to_numpy()[rows]],
        "labels": {str(int(k)): str(v) for k, v in label.items()},
    }


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>body{font:14px sans-serif;margin:12px}canvas{border:1px solid #ccc}#tip{position:fixed;max-width:420px;
background:#fff;border:1px solid #999;padding:4px;font-size:12px;display:none;pointer-events:none}
button.on{font-weight:bold}</style></head><body>
<h3>__TITLE__</h3><p>__CAPTION__</p>
<div><button id="both" class="on">both</button><button id="a">__A__ only</button><button id="b">__B__ only</button>
<button id="regions">regions that differ</button>
<span style="color:#1f77b4">&#9679; __A__</span> <span style="color:#ff7f0e">&#9679; __B__</span>
<span style="color:#d62728">&#9679; more in __B__</span> <span style="color:#2ca02c">&#9679; less in __B__</span></div>
<canvas id="c" width="900" height="900"></canvas><div id="tip"></div>
<script>
const D = __DATA__;
const cv = document.getElementById("c"), ctx = cv.getContext("2d"), tip = document.getElementById("tip");
const n = D.x.length; let mode = "both";
const minx = Math.min(...D.x), maxx = Math.max(...D.x), miny = Math.min(...D.y), maxy = Math.max(...D.y);
const px = i => 20 + (D.x[i] - minx) / ((maxx - minx) || 1) * 860, py = i => 880 - (D.y[i] - miny) / ((maxy - miny) || 1) * 860;
function shown(i) { return mode === "both" || mode === "regions" || (mode === "a") === (D.b[i] === 0); }
function color(i) {
  if (mode === "regions") return D.d[i] > 0 ? "#d62728" : D.d[i] < 0 ? "#2ca02c" : "#c8c8c8";
  return D.b[i] ? "#ff7f0e" : "#1f77b4";
}
function draw() {
  ctx.clearRect(0, 0, cv.width, cv.height);
  for (let i = 0; i < n; i++) { if (!shown(i)) continue; ctx.fillStyle = color(i); ctx.globalAlpha = 0.6;
    ctx.fillRect(px(i) - 1.5, py(i) - 1.5, 3, 3); }
}
for (const id of ["both", "a", "b", "regions"]) document.getElementById(id).onclick = () => {
  mode = id; for (const o of document.querySelectorAll("button")) o.className = o.id === id ? "on" : ""; draw(); };
cv.onmousemove = e => {
  const r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top; let best = -1, bd = 36;
  for (let i = 0; i < n; i++) { if (!shown(i)) continue; const d = (px(i) - mx) ** 2 + (py(i) - my) ** 2; if (d < bd) { bd = d; best = i; } }
  if (best < 0) { tip.style.display = "none"; return; }
  tip.textContent = (D.b[best] ? D.names[1] : D.names[0]) + " · region " + D.r[best] + " (" + (D.labels[D.r[best]] || "") + "): " + D.t[best];
  tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px"; tip.style.display = "block";
};
draw();
</script></body></html>
"""


@contextlib.contextmanager
def _compare_directory(directory, *, overwrite: bool, inputs):
    """Yield (target, temporary folder) for a compare result: checked first, renamed into place when done."""
    target = check_output_path(directory, overwrite=overwrite, inputs=inputs, kind=COMPARE_FORMAT)
    with atomic_directory(target, overwrite=overwrite, kind=COMPARE_FORMAT, inputs=inputs) as tmp:
        yield target, tmp


def write_comparison_html(result, path, *, title: str = "embedspace compare") -> None:
    """Write the self-contained A/B page (see the module notes)."""
    names = result.metrics["names"]
    m = result.metrics
    caption = (f"{m['n_a']:,} {names[0]} and {m['n_b']:,} {names[1]} documents; {m['test']} test p = {m['p_value']:.3g}; "
               f"{m['n_significant']} of {m['n_regions']} regions differ at q &lt; {m['alpha']}")
    page = (_TEMPLATE.replace("__TITLE__", _html_text(title)).replace("__CAPTION__", caption)
            .replace("__A__", _html_text(names[0])).replace("__B__", _html_text(names[1]))
            .replace("__DATA__", _script_json(_page_data(result))))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)


def _regions_csv(regions):
    flat = regions.assign(
        keywords=regions["keywords"].map(lambda k: "; ".join(k) if isinstance(k, list) else ""),
        examples_a=regions["examples_a"].map(lambda texts: " || ".join(" ".join(t.split())[:300] for t in texts)),
        examples_b=regions["examples_b"].map(lambda texts: " || ".join(" ".join(t.split())[:300] for t in texts)),
        example_rows_a=regions["example_rows_a"].map(lambda rows: " ".join(map(str, rows))),
        example_rows_b=regions["example_rows_b"].map(lambda rows: " ".join(map(str, rows))),
    )
    return csv_safe(flat)


def write_comparison(result, directory, *, overwrite: bool = False, inputs=(), title: str = "embedspace compare") -> str:
    """Write a :class:`~embedspace.analysis.compare_collections.SetComparison` to ``directory``.

    Parameters
    ----------
    result : SetComparison
    directory : path-like
        Created atomically; an existing one is replaced only with ``overwrite`` and only
        if it is an ``embedspace.compare`` directory.
    overwrite : bool, default=False
    inputs : iterable, default=()
        Paths read (an output may not replace them).
    title : str, default="embedspace compare"

    Returns
    -------
    str
        The absolute output path.
    """
    with _compare_directory(directory, overwrite=overwrite, inputs=inputs) as (target, tmp):
        documents = result.space.table.copy()
        documents.insert(0, "row", np.arange(len(documents), dtype=np.int64))
        first = ["row", "source", "source_row", "novelty", "cluster", "map_cluster", "x", "y", "text"]
        documents = documents[first + [c for c in documents.columns if c not in first]]
        sink = TableSink(tmp / "documents.parquet")
        sink.append(documents)
        sink.close()
        _regions_csv(result.regions).to_csv(tmp / "regions.csv", index=False)
        plot_comparison(result, tmp / "compare.png")
        write_comparison_html(result, tmp / "compare.html", title=title)
        atomic_write_json(tmp / "metrics.json", jsonable(result.metrics))
        files = ["documents.parquet", "regions.csv", "compare.png", "compare.html", "metrics.json"]
        fields = {"n_a": result.metrics["n_a"], "n_b": result.metrics["n_b"],
                  "model": result.space.model.to_dict() if result.space.model else None,
                  "library_versions": library_versions("umap-learn", "hdbscan", "faiss-cpu", "scikit-learn")}
        write_manifest(tmp, COMPARE_FORMAT, COMPARE_FORMAT_VERSION, fields, files=files)
    return str(target)


def plot_groups(result, path, *, max_topics: int = 12, dpi: int = 130) -> None:
    """A stacked area of topic shares over ordered bins, or a heatmap of topic shares per class."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    real = result.topics[result.topics["cluster"] >= 0]
    shown = real.head(max_topics)  # the most significant topics
    shares = shown[[f"share:{g}" for g in result.groups]].to_numpy(dtype=np.float64)
    names = [f"{c}: {label}" for c, label in zip(shown["cluster"], shown["label"])]
    if result.metrics["kind"] == "ordered":
        fig = Figure(figsize=(11, 6), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        rest = np.clip(1.0 - shares.sum(axis=0), 0.0, 1.0)
        ax.stackplot(np.arange(len(result.groups)), np.vstack([shares, rest]), labels=names + ["other topics"], alpha=0.85)
        ax.set_xticks(np.arange(len(result.groups)))
        ax.set_xticklabels([g.split(":", 1)[1] for g in result.groups], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share of the bin's documents")
        ax.set_ylim(0, 1)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
        ax.set_title(f"topics over {result.metrics['by']} ({len(result.groups)} bins); the {len(shown)} most significant trends")
    else:
        fig = Figure(figsize=(max(6, 0.5 * len(result.groups) + 4), max(4, 0.35 * len(shown) + 2)), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        image = ax.imshow(shares, aspect="auto", cmap="viridis")
        ax.set_xticks(np.arange(len(result.groups)))
        ax.set_xticklabels(result.groups, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(np.arange(len(names)))
        ax.set_yticklabels(names, fontsize=7)
        fig.colorbar(image, ax=ax, label="share of the group's documents")
        ax.set_title(f"topics per {result.metrics['by']}: the {len(shown)} most significant", fontsize=10)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


def write_group_comparison(result, directory, *, overwrite: bool = False, inputs=()) -> str:
    """Write a :class:`~embedspace.analysis.compare_slices.GroupComparison`: topics.csv, groups.png, metrics.json.

    Returns
    -------
    str
        The absolute output path.
    """
    with _compare_directory(directory, overwrite=overwrite, inputs=inputs) as (target, tmp):
        topics = result.topics.assign(keywords=result.topics["keywords"].map(
            lambda k: "; ".join(k) if isinstance(k, list) else ""))
        csv_safe(topics).to_csv(tmp / "topics.csv", index=False)
        counts = result.counts.copy()
        csv_safe(counts.reset_index()).to_csv(tmp / "counts.csv", index=False)
        plot_groups(result, tmp / "groups.png")
        atomic_write_json(tmp / "metrics.json", jsonable({**result.metrics, "groups": result.groups}))
        files = ["topics.csv", "counts.csv", "groups.png", "metrics.json"]
        fields = {"n": result.metrics["n"], "by": result.metrics["by"],
                  "model": result.space.model.to_dict() if result.space.model else None}
        write_manifest(tmp, COMPARE_FORMAT, COMPARE_FORMAT_VERSION, fields, files=files)
    return str(target)


def write_model_comparison(result, directory, *, overwrite: bool = False, inputs=()) -> str:
    """Write a :class:`~embedspace.analysis.compare_spaces.ModelComparison`: documents.parquet, clusters.csv, metrics.json.

    Returns
    -------
    str
        The absolute output path.
    """
    with _compare_directory(directory, overwrite=overwrite, inputs=inputs) as (target, tmp):
        documents = result.documents.copy()
        documents.insert(0, "row", np.arange(len(documents), dtype=np.int64))
        sink = TableSink(tmp / "documents.parquet")
        sink.append(documents)
        sink.close()
        csv_safe(result.clusters).to_csv(tmp / "clusters.csv", index=False)
        atomic_write_json(tmp / "metrics.json", jsonable(result.metrics))
        files = ["documents.parquet", "clusters.csv", "metrics.json"]
        write_manifest(tmp, COMPARE_FORMAT, COMPARE_FORMAT_VERSION, {"n": result.metrics["n"]}, files=files)
    return str(target)
