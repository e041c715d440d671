"""The main job on the shipped defaults: 20 Newsgroups, all-MiniLM-L6-v2, search and map.

:func:`run_demo` embeds the shipped corpus (cached after the first run), builds a search
index, maps and clusters the collection, answers three example searches and writes
everything under one folder::

    embedspace-demo/
      space/   the EmbeddingSet (vectors + table)
      index/   the search index (embedspace search embedspace-demo/index "...")
      map/     map.html, map.png, clusters.csv, documents.parquet, metrics.json

Each sub-folder is replaced as a whole (atomically) when the demo runs again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from embedspace._fs import check_output_path
from embedspace.encoding import embed, load_encoder
from embedspace.errors import OutputExistsError
from embedspace.mapping.mapper import CollectionMapper
from embedspace.mapping.output import write_map
from embedspace.search import build_index

__all__ = ["run_demo", "EXAMPLE_QUERIES", "DEMO_CORPUS"]

log = logging.getLogger("embedspace")

DEMO_CORPUS = "corpus:20newsgroups"
EXAMPLE_QUERIES = (
    "graphics cards and 3D rendering on linux",
    "the pitcher threw a no-hitter last night",
    "is there evidence that god exists?",
)


_SUBFOLDERS = {"space": "embedspace.embeddingset", "index": "embedspace.index", "map": "embedspace.map"}


def _check_replaceable(output: Path) -> None:
    """Refuse to run when ``output`` holds a ``space``, ``index`` or ``map`` that the demo did not write.

    The demo replaces its three sub-folders on every run; a folder of the same name that
    is not the artefact the demo writes there (someone's own ``map/``, say) is never
    deleted (the rule every writer follows: :func:`embedspace._fs.check_output_path`).

    Raises
    ------
    OutputExistsError
        If a sub-folder exists and is not the embedspace artefact of its name.
    """
    for name, fmt in _SUBFOLDERS.items():
        if not ((output / name).exists() or (output / name).is_symlink()):
            continue
        try:
            check_output_path(output / name, overwrite=True, kind=fmt)
        except OutputExistsError as exc:
            raise OutputExistsError(f"{exc} (the demo replaces {output}/space, index and map: choose another folder "
                                    "for output=)") from None


def run_demo(output: str | Path = "embedspace-demo", *, space=None, k: int = 3, seed: int = 0,
             progress: bool | None = None, command: str | None = None) -> dict:
    """Embed, index, map and search the shipped corpus.

    Parameters
    ----------
    output : path-like, default="embedspace-demo"
        Folder for ``space/``, ``index/`` and ``map/`` (created if missing).
    space : EmbeddingSet, optional
        Use this set instead of embedding the shipped corpus (tests, custom demos).
    k : int, default=3
        Hits shown per query.
    seed : int, default=0
        Seed of the map.
    progress : bool or None
        Progress bars.
    command : str, optional
        The command line shown in the map's ``report.html``.

    Returns
    -------
    dict
        ``output``, ``n``, ``dim``, ``backend``, ``labels``, ``index_kind``, ``map`` (the
        map's metrics), ``clusters`` (one dict per cluster: ``cluster``, ``size``,
        ``label``, ``keywords``), ``levels`` (the topic tree's levels: ``level``,
        ``n_clusters``), ``inside_largest`` (the largest cluster's ``cluster``, ``label``
        and ``children`` at the next level), ``queries`` (``[{"query", "results": [{"rank", "row",
        "score", "label", "cluster", "cluster_label", "text"}]}]``) and ``files``
        (what to open).
    """

    output = Path(output)
    _check_replaceable(output)
    output.mkdir(parents=True, exist_ok=True)
    encoder = None  # the index loads the set's own model for the queries
    if space is None:
        encoder = load_encoder()
        log.info("embedding the 20 Newsgroups test split (7,532 posts; cached after the first run)")
        space = embed(DEMO_CORPUS, encoder=encoder, progress=progress)
    space.save(output / "space", overwrite=True)
    log.info("building the search index")
    index = build_index(space, progress=progress)
    index.save(output / "index", overwrite=True)
    log.info("mapping: neighbour graph, UMAP layouts, HDBSCAN clusters")
    mapper = CollectionMapper(random_state=seed, progress=progress).fit(space)
    label_col = "label" if "label" in space.table.columns else None
    written = write_map(mapper.space_, output / "map", label_col=label_col, overwrite=True, mapper=mapper,
                        title="20 Newsgroups (test split) — embedspace demo", command=command)
    clusters = written["clusters"]
    names = dict(zip(clusters["cluster"], clusters["label"]))
    mapped = mapper.space_.table
    hits = index.search(list(EXAMPLE_QUERIES), k=k, encoder=encoder)
    queries = []
    for query in EXAMPLE_QUERIES:
        rows = hits[hits["query"] == query].sort_values("rank")
        results = []
        for hit in rows.itertuples(index=False):
            cluster = int(mapped["cluster"].iat[hit.row])
            results.append({
                "rank": int(hit.rank), "row": int(hit.row), "score": float(hit.score),
                "label": str(mapped["label"].iat[hit.row]) if label_col else None,
                "cluster": cluster, "cluster_label": names.get(cluster, ""), "text": str(hit.text),
            })
        queries.append({"query": query, "results": results})
    metrics = written["metrics"]
    tree = written["tree"]
    top = tree[(tree["level"] == 0) & (tree["cluster"] >= 0)].sort_values("size", ascending=False, kind="stable")
    inside = {}
    if len(top):
        largest = top.iloc[0]
        children = tree[(tree["level"] == 1) & (tree["parent"] == largest["cluster"])]
        inside = {"cluster": int(largest["cluster"]), "label": largest["label"],
                  "children": [{"cluster": int(r.cluster), "size": int(r.size), "label": r.label,
                                "keywords": list(r.keywords)} for r in children.itertuples()]}
    return {
        "output": str(output),
        "n": len(space),
        "dim": space.dim,
        "backend": space.model.backend if space.model else None,
        "labels": int(space.table[label_col].nunique()) if label_col else None,
        "index_kind": index.kind,
        "map": {key: metrics[key] for key in ("n_clusters", "noise_fraction", "nmi", "ari", "v_measure",
                                              "min_cluster_size") if key in metrics},
        "clusters": [{"cluster": int(r.cluster), "size": int(r.size), "label": r.label, "keywords": list(r.keywords)}
                     for r in clusters.itertuples()],
        "levels": [{"level": int(level["level"]), "n_clusters": int(level["n_clusters"])} for level in metrics["levels"]],
        "inside_largest": inside,
        "queries": queries,
        "files": {
            "map_html": str(output / "map" / "map.html"),
            "report_html": str(output / "map" / "report.html"),
            "map_png": str(output / "map" / "map.png"),
            "clusters_csv": str(output / "map" / "clusters.csv"),
            "space": str(output / "space"),
            "index": str(output / "index"),
        },
    }
