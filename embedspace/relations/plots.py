"""Pictures of word relations: a similarity heatmap and whatlies-style axis plots.

whatlies (archived) showed embeddings by placing words on axes defined by other words;
:func:`plot_axis` does the same from :func:`embedspace.relations.operations.axis` results: with one
axis the terms sit on a line from the negative to the positive pole, with two axes each
term is a point whose x and y are its positions on the two axes. matplotlib is imported
only here, with the Agg canvas (no display needed), and files are written atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from embedspace._fs import FILE, atomic_write_bytes, check_output_path, output_lock
from embedspace.errors import InputError, require

__all__ = ["plot_similarity_heatmap", "plot_axis"]


def _figure(width: float, height: float):
    require("matplotlib", feature="relation plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path, overwrite: bool) -> Path:
    target = check_output_path(path, overwrite=overwrite, kind=FILE)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    with output_lock(target):
        check_output_path(target, overwrite=overwrite, kind=FILE)  # again: nothing else put a folder there meanwhile
        atomic_write_bytes(target, buffer.getvalue())
    return Path(path)


def plot_similarity_heatmap(matrix, path: str | os.PathLike, *, title: str | None = None, overwrite: bool = False) -> Path:
    """Draw a term-by-term cosine similarity matrix as an annotated heatmap PNG.

    Parameters
    ----------
    matrix : pandas.DataFrame of shape (n, n)
        From :func:`embedspace.relations.operations.similarity_matrix`.
    path : path-like
        The PNG to write.
    title : str, optional
    overwrite : bool, default=False
        Replace an existing file.

    Returns
    -------
    Path
    """
    values = matrix.to_numpy(dtype=float)
    labels = [str(t) for t in matrix.index]
    n = len(labels)
    size = max(3.5, 0.55 * n + 2.0)
    figure = _figure(size + 1.0, size)
    ax = figure.add_subplot()
    image = ax.imshow(values, cmap="viridis", vmin=min(0.0, float(values.min())), vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] < 0.6 else "black")
    figure.colorbar(image, ax=ax, label="cosine similarity", shrink=0.8)
    ax.set_title(title or "cosine similarity")
    return _save(figure, path, overwrite)


def plot_axis(x, path: str | os.PathLike, *, y=None, title: str | None = None, overwrite: bool = False) -> Path:
    """Place terms on one or two concept axes (whatlies style).

    Parameters
    ----------
    x : AxisResult
        The horizontal axis (:func:`embedspace.relations.operations.axis`).
    path : path-like
        The PNG to write.
    y : AxisResult, optional
        A vertical axis over the same terms; without it the terms sit on one line.
    title : str, optional
    overwrite : bool, default=False

    Returns
    -------
    Path
    """

    terms = list(x.table["term"])
    xs = x.table["position"].to_numpy(dtype=float)
    if y is not None:
        if list(y.table["term"]) != terms:
            raise InputError("the two axes must project the same terms")
        return _plot_two_axes(x, y, terms, xs, y.table["position"].to_numpy(dtype=float), path, title, overwrite)
    figure = _figure(9.0, 3.2)
    ax = figure.add_subplot()
    low, high = min(-1.2, float(xs.min()) - 0.2), max(1.2, float(xs.max()) + 0.2)
    ax.axhline(0.0, color="0.6", lw=1, zorder=0)
    for pole, where in ((", ".join(x.neg), -1.0), (", ".join(x.pos), 1.0)):
        ax.plot([where], [0.0], marker="s", color="0.35", ms=7)
        ax.annotate(pole, (where, 0.0), xytext=(0, -18), textcoords="offset points", ha="center", fontsize=10, weight="bold")
    order = np.argsort(xs, kind="stable")
    for k, i in enumerate(order):
        lift = 14 + 14 * (k % 3)  # stagger labels so neighbours do not overlap
        ax.plot([xs[i]], [0.0], marker="o", color="tab:blue", ms=6)
        ax.annotate(terms[i], (xs[i], 0.0), xytext=(0, lift), textcoords="offset points", ha="center", fontsize=9,
                    arrowprops={"arrowstyle": "-", "color": "0.7", "lw": 0.6})
    ax.set_xlim(low, high)
    ax.set_ylim(-1.0, 1.6)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"position on the axis {x.name}  (−1 = {', '.join(x.neg)}, +1 = {', '.join(x.pos)})")
    ax.set_title(title or f"{x.name}  (permutation p = {_p(x)})")
    return _save(figure, path, overwrite)


def _p(result) -> str:
    return "n/a" if np.isnan(result.p_value) else f"{result.p_value:.3g}"


def _plot_two_axes(x, y, terms, xs, ys, path, title, overwrite):
    figure = _figure(7.0, 6.0)
    ax = figure.add_subplot()
    ax.axhline(0.0, color="0.8", lw=0.8, ls="--", zorder=0)
    ax.axvline(0.0, color="0.8", lw=0.8, ls="--", zorder=0)
    ax.scatter(xs, ys, color="tab:blue", s=24)
    for term, px, py in zip(terms, xs, ys):
        ax.annotate(term, (px, py), xytext=(4, 4), textcoords="offset points", fontsize=9)
    ax.set_xlabel(f"{x.name}  (p = {_p(x)})")
    ax.set_ylabel(f"{y.name}  (p = {_p(y)})")
    ax.set_title(title or "terms on two concept axes")
    return _save(figure, path, overwrite)
