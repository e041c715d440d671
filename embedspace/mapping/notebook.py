"""The map page inline in a notebook: :func:`show` (``es.show``), offline like ``map.html``."""

from __future__ import annotations

import html

import numpy as np

from embedspace.errors import InputError
from embedspace.mapping.labels import describe
from embedspace.mapping.mapper import MAP_COLUMNS
from embedspace.mapping.page import page_data, render_map_html
from embedspace.mapping.plotting import cluster_colors
from embedspace.mapping.topics import topic_tree

__all__ = ["MapView", "show"]


class MapView:
    """A rendered map page; a notebook shows it inline (``_repr_html_``), with no network access.

    Attributes
    ----------
    html : str
        The whole self-contained page (what ``map.html`` holds).
    height : int
        Height of the inline frame in pixels.
    """

    def __init__(self, page: str, height: int = 640):
        self.html = page
        self.height = int(height)

    def _repr_html_(self) -> str:
        # the page runs inside a sandboxed frame (its own scripts only), so the notebook's page is untouched
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" sandbox="allow-scripts" '
                f'style="width:100%;height:{self.height}px;border:1px solid #ddd" title="embedspace map"></iframe>')

    def save(self, path) -> None:
        """Write the page to ``path`` (an ``.html`` file)."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.html)


def show(mapped, *, title: str = "embedspace map", height: int = 640) -> MapView:
    """The interactive map page of a mapped set, for a notebook (``es.show(mapped)``).

    Parameters
    ----------
    mapped : EmbeddingSet
        Output of :func:`embedspace.map`.
    title : str, default="embedspace map"
    height : int, default=640
        Pixels of the inline frame.

    Returns
    -------
    MapView
        Shows itself inline in Jupyter; ``.html`` is the page, ``.save(path)`` writes it.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> es.show(es.map(es.embed("corpus:20newsgroups")))  # doctest: +SKIP
    """
    table = getattr(mapped, "table", None)
    missing = [c for c in MAP_COLUMNS if table is None or c not in table.columns]
    if missing:
        raise InputError(f"the set is not mapped (no {', '.join(missing)}); run embedspace.map(space) first")
    if "cluster_l0" not in table.columns:
        mapped = mapped.assign(cluster_l0=table["cluster"].to_numpy().astype(np.int64))
    clusters = describe(mapped)
    real = clusters[clusters["cluster"] >= 0]
    colors = dict(zip(real["cluster"].tolist(), cluster_colors(len(real))))
    documents = mapped.table
    caption = f"{len(documents):,} documents, {len(real)} clusters"
    data = page_data(documents, clusters, title=title, colors=colors, caption=caption, tree=topic_tree(mapped))
    return MapView(render_map_html(data), height=height)
