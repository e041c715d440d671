"""The static map: a scatter of the 2-D layout coloured by cluster, labels on the map.

matplotlib is imported lazily and drawn on an Agg canvas (no pyplot, no global state), so plotting works
on a headless machine and ``import embedspace`` stays light. Outliers are drawn first,
small and grey; clusters get distinct colours (tab20, then evenly spaced hues); each
cluster's short label sits at its densest point (the member nearest the median) in a
white box, nudged away from labels already placed so none overlap, with a thin leader
line when it had to move.
"""

from __future__ import annotations

import colorsys

import numpy as np

from embedspace.errors import InputError

__all__ = ["plot_map", "cluster_colors", "NOISE_COLOR", "BASE_COLORS", "MIN_CHANNEL_SPREAD"]

NOISE_COLOR = "#c8c8c8"


#: The first 20 cluster colours: tab20-like, with its grey (#7f7f7f) and the greyish
#: pastels (#aec7e8, #c5b0d5, #c49c94) replaced by saturated colours, because grey means
#: outlier (``NOISE_COLOR``). Every colour's channel spread (max - min of R, G, B) is
#: at least ``MIN_CHANNEL_SPREAD``.
BASE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#e7ba52", "#6baed6", "#ffbb78", "#98df8a", "#ff9896", "#a55194", "#637939",
               "#f7b6d2", "#9edae5", "#dbdb8d", "#393b79")
MIN_CHANNEL_SPREAD = 60


def cluster_colors(n: int) -> list[str]:
    """``n`` distinct hex colours, none grey: ``BASE_COLORS``, then golden-ratio hues.

    Generated hues have HLS saturation 0.75 and lightness 0.42 or 0.54, so their channel
    spread is at least 160 of 255: grey is left to outliers (``NOISE_COLOR``).
    """
    base = list(BASE_COLORS)
    colors = base[:n]
    hue = 0.11
    while len(colors) < n:
        hue = (hue + 0.618033988749895) % 1.0
        lightness = 0.42 + 0.12 * ((len(colors) // 7) % 2)
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.75)
        colors.append("#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255)))
    return colors


def _anchor(points: np.ndarray) -> np.ndarray:
    """The member nearest the coordinate-wise median (always on the cluster, unlike a mean)."""
    median = np.median(points, axis=0)
    return points[np.argmin(((points - median) ** 2).sum(axis=1))]


def _overlaps(box, placed, pad: float) -> bool:
    return any(
        box.x0 - pad < other.x1 and other.x0 - pad < box.x1 and box.y0 - pad < other.y1 and other.y0 - pad < box.y1
        for other in placed
    )


def _place_labels(ax, anchors, labels, colors, *, fontsize: float):
    """Draw labels at their anchors, moving each along a spiral until it overlaps none placed."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_pixels = ax.transData
    from_pixels = ax.transData.inverted()
    placed = []
    for (x, y), label, color in zip(anchors, labels, colors):
        text = ax.text(x, y, label, fontsize=fontsize, ha="center", va="center", zorder=5, color="#111111",
                       bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor=color, linewidth=1.2, alpha=0.88))
        base = to_pixels.transform((x, y))
        box = text.get_window_extent(renderer).expanded(1.08, 1.25)
        step = box.height * 0.9
        moved = False
        for attempt in range(1, 240):
            if not _overlaps(box, placed, 2.0):
                break
            angle = attempt * 0.9
            radius = step * (0.35 * attempt) ** 0.85
            target = base + radius * np.array([1.6 * np.cos(angle), np.sin(angle)])
            text.set_position(from_pixels.transform(target))
            box = text.get_window_extent(renderer).expanded(1.08, 1.25)
            moved = True
        if moved:
            tx, ty = text.get_position()
            ax.plot([x, tx], [y, ty], color=color, linewidth=0.8, zorder=4, alpha=0.9)
        placed.append(box)


def plot_map(x, y, clusters, labels: dict, path, *, title: str | None = None, max_labels: int = 60,
             dpi: int = 150, size_inches: float = 11.0) -> None:
    """Write the static map as a PNG.

    Parameters
    ----------
    x, y : array-like of shape (n,)
        2-D layout.
    clusters : array-like of int of shape (n,)
        Cluster of each point; -1 = outlier.
    labels : dict
        ``{cluster: short label}``; clusters missing from it are drawn unlabelled; points of
        clusters whose label starts with "new: " (new topics of a grown map) are ringed.
    path : path-like
        Output PNG.
    title : str, optional
    max_labels : int, default=60
        Label at most this many clusters (the largest).
    dpi : int, default=150
    size_inches : float, default=11.0
        Width and height of the square figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    clusters = np.asarray(clusters)
    if not (len(x) == len(y) == len(clusters)):
        raise InputError(f"x, y and clusters differ in length ({len(x)}, {len(y)}, {len(clusters)})")
    n = len(x)
    ids, sizes = np.unique(clusters[clusters >= 0], return_counts=True)
    by_size = ids[np.argsort(-sizes, kind="stable")]
    palette = dict(zip(by_size.tolist(), cluster_colors(len(by_size))))
    marker = float(np.clip(30000.0 / max(n, 1), 1.2, 24.0))

    fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    noise = clusters < 0
    if noise.any():
        ax.scatter(x[noise], y[noise], s=marker * 0.6, c=NOISE_COLOR, linewidths=0, alpha=0.6, zorder=1,
                   rasterized=True)
    members = ~noise
    colors = np.array([palette.get(int(c), NOISE_COLOR) for c in clusters[members]])
    ax.scatter(x[members], y[members], s=marker, c=colors, linewidths=0, alpha=0.75, zorder=2, rasterized=True)
    fresh = np.isin(clusters, [c for c, text in labels.items() if str(text).startswith("new: ")])
    if fresh.any():  # the new topics of a grown map (embedspace.mapping.grow): ringed in black
        ax.scatter(x[fresh], y[fresh], s=marker * 1.8, facecolors="none", edgecolors="black", linewidths=0.6,
                   alpha=0.8, zorder=3, rasterized=True)
    pad_x = (np.ptp(x) or 1.0) * 0.04
    pad_y = (np.ptp(y) or 1.0) * 0.04
    ax.set_xlim(x.min() - pad_x, x.max() + pad_x)
    ax.set_ylim(y.min() - pad_y, y.max() + pad_y)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    shown = [c for c in by_size[:max_labels].tolist() if labels.get(c)]
    anchors = [_anchor(np.column_stack([x[clusters == c], y[clusters == c]])) for c in shown]
    fontsize = 9.5 if len(shown) <= 30 else 8.0
    fig.canvas.draw()
    _place_labels(ax, anchors, [str(labels[c]) for c in shown], [palette[c] for c in shown], fontsize=fontsize)
    n_noise = int(noise.sum())
    caption = f"{n:,} documents, {len(ids)} clusters"
    if n_noise:
        caption += f", {n_noise:,} outliers (grey)"
    ax.set_title(f"{title}\n{caption}" if title else caption, fontsize=12, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
