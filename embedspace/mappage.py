"""A basic self-contained interactive map page (``map.html``).

One HTML file with its data and a small canvas script inline: it opens from disk,
offline, and makes no network request of any kind (no CDN, no fonts, no images). It
draws every point coloured by cluster, pans (drag) and zooms (wheel), shows a hovered
document's snippet and cluster, lists clusters in a legend whose entries toggle them,
and places cluster labels at their anchors.

Hostile text is inert by construction:

* document strings reach the page only inside one ``<script type="application/json">``
  block, serialised by :func:`json_for_script`, which escapes ``<``, ``>``, ``&`` and
  the JavaScript line separators as ``\\uXXXX`` — so ``</script>``, ``<!--`` and
  ``<![CDATA[`` cannot end or change the block;
* the script reads that block with ``JSON.parse`` and writes text only through
  ``textContent`` and canvas ``fillText`` (never ``innerHTML``);
* the few strings placed in HTML (title, captions) go through :func:`html.escape`,
  which also quotes ``"`` and ``'`` for attributes.

:func:`page_data` builds the data object (points, clusters, metadata); the richer page
of a later version can reuse it with a different template.
"""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np

__all__ = ["page_data", "render_map_html", "write_map_html", "json_for_script"]

_SNIPPET_CHARS = 280

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


def _snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def page_data(documents, clusters, *, title: str = "embedspace map", colors: dict | None = None) -> dict:
    """The data object a map page draws.

    Parameters
    ----------
    documents : pandas.DataFrame
        One row per document with ``x``, ``y``, ``cluster`` and ``text``.
    clusters : pandas.DataFrame
        The cluster table of :func:`embedspace.describe` (``cluster``, ``label``,
        ``keywords``, ``size``).
    title : str, default="embedspace map"
    colors : dict, optional
        ``{cluster: "#rrggbb"}``; default as in :func:`embedspace.plotting.cluster_colors`.

    Returns
    -------
    dict
        ``{"title", "n", "points": {"x", "y", "cluster", "text"}, "clusters": [{"id", "label",
        "keywords", "size", "color", "x", "y"}]}`` with coordinates rounded to 4 decimals.
    """
    from .plotting import NOISE_COLOR, _anchor, cluster_colors

    x = np.round(documents["x"].to_numpy(dtype=np.float64), 4)
    y = np.round(documents["y"].to_numpy(dtype=np.float64), 4)
    labels = documents["cluster"].to_numpy().astype(np.int64)
    real = clusters[clusters["cluster"] >= 0].sort_values("size", ascending=False, kind="stable")
    if colors is None:
        colors = dict(zip(real["cluster"].tolist(), cluster_colors(len(real))))
    cluster_rows = []
    for row in clusters.itertuples(index=False):
        members = labels == row.cluster
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
    return {
        "title": str(title),
        "n": int(len(documents)),
        "points": {
            "x": x.tolist(),
            "y": y.tolist(),
            "cluster": labels.tolist(),
            "text": [_snippet(t) for t in documents["text"].tolist()],
        },
        "clusters": cluster_rows,
    }


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
html,body{margin:0;height:100%;font:13px system-ui,-apple-system,"Segoe UI",sans-serif;color:#222}
#wrap{display:flex;height:100%}
#plot{flex:1;position:relative;overflow:hidden;background:#fff}
canvas{display:block;width:100%;height:100%;cursor:grab}
#side{width:280px;overflow:auto;border-left:1px solid #ddd;padding:8px 10px;background:#fafafa}
#side h1{font-size:15px;margin:4px 0 2px}
#side p{margin:2px 0 8px;color:#666}
.item{display:flex;align-items:center;gap:6px;padding:2px 0;cursor:pointer;user-select:none}
.item.off{opacity:.35}
.sw{width:11px;height:11px;border-radius:2px;flex:none}
.cnt{margin-left:auto;color:#888}
#tip{position:absolute;pointer-events:none;max-width:380px;background:rgba(255,255,255,.96);border:1px solid #bbb;
 border-radius:4px;padding:6px 8px;box-shadow:0 2px 6px rgba(0,0,0,.15);display:none;white-space:normal}
#tip b{display:block;margin-bottom:3px}
</style>
</head>
<body>
<div id="wrap">
<div id="plot"><canvas id="map"></canvas><div id="tip"><b id="tipc"></b><span id="tipt"></span></div></div>
<div id="side"><h1>__TITLE__</h1><p>__CAPTION__</p><p>Drag to pan, wheel to zoom, click a cluster to hide or show it.</p><div id="legend"></div></div>
</div>
<script type="application/json" id="map-data">__DATA__</script>
<script>
"use strict";
(function(){
const data=JSON.parse(document.getElementById("map-data").textContent);
const P=data.points,N=P.x.length,canvas=document.getElementById("map"),ctx=canvas.getContext("2d");
const byId=new Map(data.clusters.map(c=>[c.id,c])),hidden=new Set();
const tip=document.getElementById("tip");
let minX=Infinity,maxX=-Infinity,minY=Infinity,maxY=-Infinity;
for(let i=0;i<N;i++){minX=Math.min(minX,P.x[i]);maxX=Math.max(maxX,P.x[i]);minY=Math.min(minY,P.y[i]);maxY=Math.max(maxY,P.y[i]);}
if(!N){minX=minY=0;maxX=maxY=1;}
let scale=1,ox=0,oy=0,W=1,H=1,dpr=1;
function fit(){const r=canvas.parentElement.getBoundingClientRect();dpr=window.devicePixelRatio||1;W=r.width;H=r.height;
 canvas.width=W*dpr;canvas.height=H*dpr;const sx=(W-40)/((maxX-minX)||1),sy=(H-40)/((maxY-minY)||1);scale=Math.min(sx,sy);
 ox=W/2-scale*(minX+maxX)/2;oy=H/2+scale*(minY+maxY)/2;}
const sxOf=i=>ox+scale*P.x[i],syOf=i=>oy-scale*P.y[i];
const radius=()=>Math.max(1.2,Math.min(4,1800/Math.sqrt(N+1)/10));
function draw(){ctx.setTransform(dpr,0,0,dpr,0,0);ctx.clearRect(0,0,W,H);const r=radius();
 for(const pass of [0,1]){for(let i=0;i<N;i++){const c=P.cluster[i];if((c<0)!==(pass===0)||hidden.has(c))continue;
  const cl=byId.get(c);ctx.fillStyle=cl?cl.color:"#c8c8c8";ctx.globalAlpha=c<0?0.45:0.8;
  ctx.fillRect(sxOf(i)-r/2,syOf(i)-r/2,r,r);}}
 ctx.globalAlpha=1;ctx.font="12px system-ui,sans-serif";ctx.textAlign="center";ctx.textBaseline="middle";
 for(const c of data.clusters){if(c.id<0||hidden.has(c.id))continue;const x=ox+scale*c.x,y=oy-scale*c.y;
  const w=ctx.measureText(c.label).width+8;ctx.fillStyle="rgba(255,255,255,.85)";ctx.fillRect(x-w/2,y-9,w,18);
  ctx.strokeStyle=c.color;ctx.strokeRect(x-w/2,y-9,w,18);ctx.fillStyle="#111";ctx.fillText(c.label,x,y);}}
function nearest(mx,my){let best=-1,bd=64;for(let i=0;i<N;i++){if(hidden.has(P.cluster[i]))continue;
 const dx=sxOf(i)-mx,dy=syOf(i)-my,d=dx*dx+dy*dy;if(d<bd){bd=d;best=i;}}return best;}
let drag=null;
canvas.addEventListener("mousedown",e=>{drag={x:e.clientX,y:e.clientY};canvas.style.cursor="grabbing";});
window.addEventListener("mouseup",()=>{drag=null;canvas.style.cursor="grab";});
canvas.addEventListener("mousemove",e=>{const r=canvas.getBoundingClientRect(),mx=e.clientX-r.left,my=e.clientY-r.top;
 if(drag){ox+=e.clientX-drag.x;oy+=e.clientY-drag.y;drag={x:e.clientX,y:e.clientY};tip.style.display="none";draw();return;}
 const i=nearest(mx,my);if(i<0){tip.style.display="none";return;}const cl=byId.get(P.cluster[i]);
 document.getElementById("tipc").textContent=cl?cl.label:"";document.getElementById("tipt").textContent=P.text[i];
 tip.style.display="block";tip.style.left=Math.min(mx+12,W-390)+"px";tip.style.top=(my+12)+"px";});
canvas.addEventListener("mouseleave",()=>{tip.style.display="none";});
canvas.addEventListener("wheel",e=>{e.preventDefault();const r=canvas.getBoundingClientRect(),mx=e.clientX-r.left,my=e.clientY-r.top;
 const f=Math.exp(-e.deltaY*0.0015);ox=mx-(mx-ox)*f;oy=my-(my-oy)*f;scale*=f;draw();},{passive:false});
const legend=document.getElementById("legend");
for(const c of data.clusters){const row=document.createElement("div");row.className="item";
 const sw=document.createElement("span");sw.className="sw";sw.style.background=c.color;
 const name=document.createElement("span");name.textContent=c.label;
 const cnt=document.createElement("span");cnt.className="cnt";cnt.textContent=String(c.size);
 row.append(sw,name,cnt);row.title=c.keywords.join(", ");
 row.addEventListener("click",()=>{if(hidden.has(c.id))hidden.delete(c.id);else hidden.add(c.id);row.classList.toggle("off");draw();});
 legend.appendChild(row);}
window.addEventListener("resize",()=>{fit();draw();});
fit();draw();
})();
</script>
</body>
</html>
"""


def render_map_html(data: dict, *, caption: str = "") -> str:
    """Render :func:`page_data` output as one self-contained HTML document.

    Parameters
    ----------
    data : dict
        From :func:`page_data`.
    caption : str, default=""
        A line shown under the title (escaped).

    Returns
    -------
    str
    """
    fields = {
        "__TITLE__": html.escape(str(data.get("title", "")), quote=True),
        "__CAPTION__": html.escape(caption, quote=True),
        "__DATA__": json_for_script(data),
    }
    # One pass, so a title that contains "__DATA__" is never substituted again.
    return re.sub("__TITLE__|__CAPTION__|__DATA__", lambda match: fields[match.group(0)], _TEMPLATE)


def write_map_html(documents, clusters, path, *, title: str = "embedspace map", caption: str = "",
                   colors: dict | None = None) -> None:
    """Write ``map.html`` for a mapped collection (see :func:`page_data` for the inputs)."""
    text = render_map_html(page_data(documents, clusters, title=title, colors=colors), caption=caption)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
