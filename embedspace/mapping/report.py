"""The map report (``report.html``): one offline page that says what a map shows and how it was made.

``map.html`` is for exploring; the report is for reading and keeping: the interactive
map (``map.html`` embedded by relative path, with ``map.png`` inline as a fallback), the
cluster table (label, keywords, size, representative documents), the metrics, and the
command line and library versions that produced it. It sits next to ``map.html`` in
every map directory (``embedspace map`` and ``embedspace demo`` write it).

The page has no script at all, and its Content-Security-Policy forbids scripts and
every network request; every string from the data goes through :func:`html.escape`
(``quote=True``, so it is safe in attributes too). A document containing
``<script>`` or ``"><img onerror=…>`` shows as text.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import platform
import shlex
import sys

from embedspace.store import library_versions

__all__ = ["api_invocation", "render_report_html", "write_report_html"]

#: The libraries whose versions the report lists (those installed).
REPORT_LIBRARIES = ("numpy", "pandas", "pyarrow", "scikit-learn", "umap-learn", "hdbscan", "faiss-cpu",
                    "sentence-transformers", "onnxruntime", "openvino", "torch")

_EXAMPLE_CHARS = 400
_SHOWN_EXAMPLES = 3

# Ordered metrics shown first, with a short explanation each; the rest follow as they come.
_METRIC_NOTES = {
    "n": "documents",
    "n_clusters": "clusters found",
    "noise_fraction": "share of documents left unclustered (outliers)",
    "ari": "adjusted Rand index against the reference labels (1 = identical partition)",
    "nmi": "normalised mutual information against the reference labels",
    "v_measure": "V-measure against the reference labels",
    "homogeneity": "each cluster holds one reference label",
    "completeness": "each reference label falls in one cluster",
    "silhouette": "silhouette of the clusters in the clustering space (-1..1)",
    "dbcv": "density-based cluster validity (-1..1)",
    "label_col": "reference label column",
    "n_labels": "distinct reference labels",
    "method": "clustering method",
    "min_cluster_size": "HDBSCAN minimum cluster size used",
    "n_levels": "levels of the topic tree (cluster_l0 = the clusters above, then finer ones inside them)",
    "coherence_npmi": "mean NPMI of the clusters' top-10 keywords over the collection (-1..1, higher = words co-occur)",
}


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def api_invocation() -> str:
    """How this Python process was started, as a shell line (the report of a map made from Python)."""
    return "python " + shlex.join(sys.argv) + "  (embedspace API)"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    versions.update(library_versions(*REPORT_LIBRARIES))
    return versions


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_format(v) for v in list(value)[:12])
        return f"[{shown}{', …' if len(value) > 12 else ''}]"
    return "—" if value is None else str(value)


def _metric_rows(metrics: dict) -> str:
    keys = [k for k in _METRIC_NOTES if k in metrics]
    keys += [k for k in metrics if k not in _METRIC_NOTES and k not in ("granularity_candidates", "levels")]
    rows = []
    for key in keys:
        value = metrics[key]
        if key == "stability" and isinstance(value, dict):
            value = {k: value[k] for k in ("mean_ari", "min_ari", "seeds", "n_clusters") if k in value}
        rows.append(f"<tr><th>{_e(key)}</th><td>{_e(_format(value))}</td><td class=note>{_e(_METRIC_NOTES.get(key, ''))}</td></tr>")
    return "\n".join(rows)


def _cluster_rows(clusters) -> str:
    rows = []
    for row in clusters.itertuples(index=False):
        examples = list(getattr(row, "examples", []) or [])[:_SHOWN_EXAMPLES]
        items = "".join(
            f"<li>{_e(_clip(text))}</li>" for text in examples
        )
        share = getattr(row, "share", None)
        size = f"{int(row.size):,}" + (f" <span class=note>({share:.1%})</span>" if share is not None else "")
        rows.append(
            f"<tr><td class=num>{int(row.cluster)}</td><td>{_e(row.label)}</td>"
            f"<td>{_e(', '.join(map(str, row.keywords)))}</td><td class=num>{size}</td>"
            f"<td><ol class=ex>{items}</ol></td></tr>"
        )
    return "\n".join(rows)


def _tree_tables(tree, level: int = 0, parent: int = -1, nodes=None) -> str:
    """The topic tree as nested tables: each cluster's row holds the table of its children."""
    if nodes is None:  # {(level, parent): rows, largest first}, built once (filtering per node cost 0.2 s)
        nodes = {}
        real = tree[tree["cluster"] >= 0].sort_values(["size", "cluster"], ascending=[False, True], kind="stable")
        for row in real.itertuples(index=False):
            nodes.setdefault((int(row.level), int(row.parent) if int(row.level) > 0 else -1), []).append(row)
    rows = nodes.get((level, parent), [])
    if not rows:
        return ""
    body = []
    for row in rows:
        inner = _tree_tables(tree, level + 1, int(row.cluster), nodes)
        parts = len(nodes.get((level + 1, int(row.cluster)), []))
        children = f"<details><summary>{parts} parts</summary>{inner}</details>" if inner else ""
        body.append(f"<tr><td class=num>{level}.{int(row.cluster)}</td><td>{_e(row.label)}"
                    f"<div class=note>{_e(', '.join(map(str, list(row.keywords)[:6])))}</div>{children}</td>"
                    f"<td class=num>{int(row.size):,} <span class=note>({row.share:.1%})</span></td></tr>")
    return ("<table class=tree><thead><tr><th>level.cluster</th><th>label, keywords and the parts inside</th>"
            "<th>size</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def _level_rows(levels) -> str:
    rows = []
    for level in levels or []:
        scores = " ".join(f"{key} {_format(level[key])}" for key in ("nmi", "ari", "v_measure", "silhouette", "npmi")
                          if level.get(key) is not None)
        rows.append(f"<tr><td class=num>{int(level['level'])}</td><td class=num>{int(level['n_clusters'])}</td>"
                    f"<td>{_e(scores)}</td></tr>")
    return "\n".join(rows)


def _tree_section(tree, metrics: dict) -> str:
    if tree is None or "level" not in tree or tree["level"].max() < 1:
        return ""
    return (f"<h2>Topic tree</h2><p class=note>Each cluster above, and the parts of it found at finer levels "
            f"(topics.csv; <code>embedspace topics DIR</code>).</p>"
            f"<table><thead><tr><th>level</th><th>clusters</th><th>scores</th></tr></thead><tbody>"
            f"{_level_rows(metrics.get('levels'))}</tbody></table><p></p>{_tree_tables(tree)}")


def _clip(text) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _EXAMPLE_CHARS else flat[: _EXAMPLE_CHARS - 1] + "…"


_STYLE = """
body{margin:0 auto;max-width:1200px;padding:16px 20px 40px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222}
h1{font-size:21px;margin:4px 0}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
.sub{color:#666;margin:0 0 10px}
iframe{width:100%;height:680px;border:1px solid #ccc;border-radius:4px}
img.png{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f4f4f4;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}.note{color:#777;font-size:12px}
ol.ex{margin:0;padding-left:18px;font-size:12px;color:#444}ol.ex li{margin-bottom:3px}
code,pre{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f6f6f6;border-radius:3px}
pre{padding:8px;white-space:pre-wrap;word-break:break-all}
details{margin:8px 0}
table.tree table.tree{margin:4px 0 4px 12px;width:calc(100% - 12px)}table.tree summary{color:#555;font-size:12px;cursor:pointer}
"""

_CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-src 'self' file:; base-uri 'none'; form-action 'none'")


def render_report_html(*, title: str, metrics: dict, clusters, command: str, versions: dict,
                       model: dict | None = None, map_png: bytes | None = None,
                       created: str | None = None, files: list[str] | None = None, tree=None) -> str:
    """Render the report page.

    Parameters
    ----------
    title : str
    metrics : dict
        As written to ``metrics.json``.
    clusters : pandas.DataFrame
        :func:`embedspace.mapping.labels` output (``cluster``, ``size``, ``share``, ``label``,
        ``keywords``, ``examples``).
    command : str
        The command line that produced the map.
    versions : dict
        ``{library: version}``.
    model : dict, optional
        The model identity (``name``, ``backend``, ``dim``, ...).
    map_png : bytes, optional
        ``map.png`` to inline as the static picture of the map.
    created : str, optional
        A timestamp (default: now, UTC).
    files : list of str, optional
        The map directory's files, linked by relative path.
    tree : pandas.DataFrame, optional
        The topic tree (:func:`embedspace.mapping.topics.topic_tree`); with more than one
        level it is shown as nested tables.

    Returns
    -------
    str
    """
    created = created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    n, k = metrics.get("n"), metrics.get("n_clusters")
    noise = metrics.get("noise_fraction")
    summary = f"{n:,} documents, {k} clusters" if isinstance(n, int) else ""
    if isinstance(noise, float):
        summary += f", {noise:.1%} outliers"
    picture = ""
    if map_png:
        encoded = base64.b64encode(map_png).decode("ascii")
        picture = (f"<details><summary>the same map as a picture (map.png)</summary>"
                   f"<img class=png alt=\"static map\" src=\"data:image/png;base64,{encoded}\"></details>")
    model_rows = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in (model or {}).items()
                         if key in ("name", "backend", "dim", "normalized", "max_seq_length", "weights_sha256"))
    version_rows = "".join(f"<tr><th>{_e(name)}</th><td>{_e(version)}</td></tr>" for name, version in versions.items())
    file_links = " · ".join(f"<a href=\"{_e(name)}\">{_e(name)}</a>" for name in (files or []))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} — report</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class=sub>{_e(summary)} · made {_e(created)}</p>
<h2>The map</h2>
<p class=note>Hover a point to read its snippet, click it for the whole text, search in the box on the right,
click a legend entry to hide or show a cluster. <a href="map.html">Open map.html on its own</a>.</p>
<iframe src="map.html" title="interactive map"></iframe>
{picture}
<h2>Clusters</h2>
<table><thead><tr><th>cluster</th><th>label</th><th>keywords</th><th>size</th><th>representative documents</th></tr></thead>
<tbody>
{_cluster_rows(clusters)}
</tbody></table>
{_tree_section(tree, metrics)}
<h2>Metrics</h2>
<table><tbody>
{_metric_rows(metrics)}
</tbody></table>
<h2>How it was made</h2>
<p>Command:</p>
<pre>{_e(command)}</pre>
<table><tbody>
{model_rows}
{version_rows}
</tbody></table>
<p class=note>Files: {file_links}</p>
</body>
</html>
"""


def write_report_html(path, *, title: str, metrics: dict, clusters, model: dict | None = None,
                      map_png_path=None, command: str | None = None, files: list[str] | None = None,
                      tree=None) -> None:
    """Write ``report.html`` (see :func:`render_report_html`); the command defaults to :func:`api_invocation`."""
    png = None
    if map_png_path is not None:
        with open(map_png_path, "rb") as handle:
            png = handle.read()
    text = render_report_html(title=title, metrics=metrics, clusters=clusters,
                              command=command or api_invocation(), versions=_versions(), model=model,
                              map_png=png, files=files, tree=tree)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
