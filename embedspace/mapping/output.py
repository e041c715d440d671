"""A map directory: documents.parquet, clusters.csv, map.png, map.html, report.html, metrics.json.

:func:`write_map` writes everything a mapped set is shown and read back by, atomically,
with a manifest of format ``embedspace.map``.
"""

from __future__ import annotations

import numpy as np

from embedspace._fs import atomic_directory, atomic_write_json, check_output_path
from embedspace.errors import InputError
from embedspace.mapping.clustering import clustering_scores
from embedspace.mapping.labels import describe
from embedspace.mapping.mapper import MAP_COLUMNS, MAP_FORMAT, MAP_FORMAT_VERSION
from embedspace.mapping.page import write_map_html
from embedspace.mapping.plotting import cluster_colors, plot_map
from embedspace.mapping.report import write_report_html
from embedspace.mapping.topics import topic_tree, topics_table, tree_levels, tree_metrics
from embedspace.store import TableSink, csv_safe, jsonable, library_versions, write_manifest

__all__ = ["write_map"]


def _metrics(mapped, label_col, mapper) -> dict:
    table = mapped.table
    labels = table["cluster"].to_numpy()
    truth = None
    if label_col is not None:
        truth = table[label_col].to_numpy()
    scores = clustering_scores(labels, truth, X=None if truth is not None else getattr(mapper, "cluster_embedding_", None))
    if label_col is not None:
        scores["label_col"] = label_col
        scores["n_labels"] = int(len(np.unique(np.asarray(truth).astype(str))))
    return scores


def write_map(mapped, directory, *, label_col: str | None = None, overwrite: bool = False, mapper=None,
              title: str | None = None, extra: dict | None = None, command: str | None = None,
              new_clusters=None) -> dict:
    """Write a map directory for a mapped set, atomically.

    Files: ``documents.parquet`` (row, x, y, cluster, probability, outlier_score, text,
    metadata, ``cluster_l0`` ... ``cluster_lN``), ``clusters.csv`` (cluster, size, share,
    label, keywords, example rows and texts), ``topics.csv`` (the topic tree: level,
    cluster, parent, size, share, label, keywords, examples;
    :func:`embedspace.mapping.topics.topic_tree`), ``map.png``, ``map.html``, ``report.html``, ``metrics.json`` and ``manifest.json`` (format
    ``embedspace.map``).

    Parameters
    ----------
    mapped : EmbeddingSet
        Output of :func:`map_collection`.
    directory : path-like
    label_col : str, optional
        Reference labels for ``ari`` / ``nmi`` / ``v_measure``.
    overwrite : bool, default=False
    mapper : CollectionMapper, optional
        The fitted pipeline (adds parameters, timings and unsupervised scores).
    title : str, optional
    extra : dict, optional
        More fields for ``metrics.json`` (e.g. stability).
    command : str, optional
        The command line that made the map, shown in ``report.html`` (default: how this
        Python process was started).
    new_clusters : sequence of int, optional
        Clusters a grown map found new (``embedspace.mapping.grow``): ``clusters.csv`` and
        ``topics.csv`` get a ``new`` column and their labels start with "new: " in map.png
        and map.html.

    Returns
    -------
    dict
        ``{"metrics": ..., "clusters": DataFrame, "tree": DataFrame (topics.csv), "output": str}``
    """
    table = mapped.table
    missing = [c for c in MAP_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"the set is not mapped (no {', '.join(missing)}); run embedspace.map(space) first")
    if label_col is not None and label_col not in table.columns:
        raise InputError(f"no label column '{label_col}' (columns: {', '.join(map(str, table.columns))})")
    target = check_output_path(directory, overwrite=overwrite, kind=MAP_FORMAT)
    title = title or "embedspace map"
    metrics = _metrics(mapped, label_col, mapper)
    if mapper is not None:
        metrics["method"] = mapper.method_
        metrics["params"] = {"seed": mapper.random_state, "n_neighbors": mapper.n_neighbors,
                             "cluster_dimensions": mapper.cluster_dimensions, "assign_outliers": mapper.assign_outliers}
        if getattr(mapper.clusterer_, "method_", None) == "kmeans":  # k-means' own parameters only
            metrics["k"] = int(mapper.clusterer_.params_["k"])
            metrics["kmeans"] = dict(mapper.clusterer_.params_)
            metrics["params"]["k"] = mapper.n_clusters
        else:
            metrics["min_cluster_size"] = int(mapper.clusterer_.min_cluster_size_)
            metrics["params"]["min_cluster_size"] = mapper.min_cluster_size
        metrics["granularity_candidates"] = mapper.clusterer_.candidates_
        metrics["timings"] = dict(mapper.timings_)
    metrics.update(extra or {})
    if "cluster_l0" not in table.columns:  # a set mapped before the topic tree: one level
        mapped = mapped.assign(cluster_l0=table["cluster"].to_numpy().astype(np.int64))
        table = mapped.table
    clusters = describe(mapped)
    same_top = bool((table["cluster"].to_numpy() == table["cluster_l0"].to_numpy()).all())
    tree = topic_tree(mapped, top=clusters if same_top else None)
    if new_clusters is not None:
        tree = _mark_new_in_tree(tree, table, new_clusters)
    metrics["levels"] = tree_metrics(mapped, tree, label_col=label_col,
                                     X=getattr(mapper, "cluster_embedding_", None) if label_col is None else None)
    metrics["n_levels"] = len(tree_levels(table))
    metrics["coherence_npmi"] = metrics["levels"][0]["npmi"]
    if new_clusters is not None:
        clusters = _mark_new(clusters, new_clusters)
    real = clusters[clusters["cluster"] >= 0]
    colors = dict(zip(real.sort_values("size", ascending=False, kind="stable")["cluster"].tolist(),
                      cluster_colors(len(real))))
    with atomic_directory(target, overwrite=overwrite, kind=MAP_FORMAT) as tmp:
        documents = table.copy()
        documents.insert(0, "row", np.arange(len(documents), dtype=np.int64))
        first = ["row", *MAP_COLUMNS, "text"]
        documents = documents[first + [c for c in documents.columns if c not in first]]
        _write_parquet(documents, tmp / "documents.parquet")
        flat = clusters.assign(
            keywords=clusters["keywords"].map("; ".join),
            example_rows=clusters["example_rows"].map(lambda rows: " ".join(map(str, rows))),
            examples=clusters["examples"].map(lambda texts: " || ".join(" ".join(t.split())[:300] for t in texts)),
        )
        csv_safe(flat).to_csv(tmp / "clusters.csv", index=False)  # document text never runs as a formula
        csv_safe(topics_table(tree)).to_csv(tmp / "topics.csv", index=False)
        labels = {int(r.cluster): r.label for r in clusters.itertuples() if r.cluster >= 0}
        plot_map(table["x"], table["y"], table["cluster"], labels, tmp / "map.png", title=title)
        caption = f"{len(table):,} documents, {metrics['n_clusters']} clusters"
        write_map_html(documents, clusters, tmp / "map.html", title=title, caption=caption, colors=colors, tree=tree)
        atomic_write_json(tmp / "metrics.json", jsonable(metrics))
        files = ["documents.parquet", "clusters.csv", "topics.csv", "map.png", "map.html", "metrics.json"]
        write_report_html(tmp / "report.html", title=title, metrics=jsonable(metrics), clusters=clusters,
                          model=mapped.model.to_dict() if mapped.model else None, map_png_path=tmp / "map.png",
                          files=files, command=command, tree=tree)
        files.append("report.html")
        fields = {"n": len(table), "n_clusters": metrics["n_clusters"],
                  "model": mapped.model.to_dict() if mapped.model else None,
                  "library_versions": library_versions("umap-learn", "hdbscan", "faiss-cpu", "scikit-learn")}
        write_manifest(tmp, MAP_FORMAT, MAP_FORMAT_VERSION, fields, files=files)
    return {"metrics": metrics, "clusters": clusters, "tree": tree, "output": str(target)}


def _mark_new(clusters, new_clusters):
    new = clusters["cluster"].isin([int(c) for c in new_clusters])
    clusters = clusters.assign(new=new.to_numpy())
    clusters.loc[new, "label"] = "new: " + clusters.loc[new, "label"].astype(str)
    return clusters


def _mark_new_in_tree(tree, table, new_clusters):
    """``topics.csv``'s ``new``: the topics (any level) whose documents all lie in the new clusters."""
    fresh = table["cluster"].isin([int(c) for c in new_clusters]).to_numpy()
    new = np.zeros(len(tree), dtype=bool)
    for i, (level, cluster) in enumerate(zip(tree["level"], tree["cluster"])):
        column = f"cluster_l{int(level)}"
        if column in table.columns and cluster >= 0:
            members = table[column].to_numpy() == cluster
            new[i] = bool(members.any() and fresh[members].all())
    return tree.assign(new=new)


def _write_parquet(frame, path) -> None:
    sink = TableSink(path)
    sink.append(frame)
    sink.close()
