"""Grow a map: place new documents into an existing layout and clusters, and find the topics that are new.

:func:`add_to_map` (``embedspace.add_to_map``, ``embedspace map add MAP INPUT -o DIR``)
takes a map (a map directory, or a mapped EmbeddingSet) and new documents, and returns
the grown collection: the old rows exactly as they were (coordinates, every cluster
column, probabilities — byte for byte), the new rows placed, clustered or marked new.
:func:`write_grown_map` writes it as a new map directory (the old one is not touched).

What a map directory gives placement
------------------------------------
``documents.parquet`` (texts, ``x``, ``y``, clusters), ``manifest.json`` (the model
that embedded it) and ``metrics.json`` (``n_neighbors``, ``min_cluster_size``, seed).
The vectors are not stored: they are the map's texts embedded again with the map's
recorded model and backend, which the embedding cache answers (0.5 s for 7,000 texts
of 20 Newsgroups; a cleared cache means embedding them again). So a map made by today's
``embedspace map``, one made with ``--sample-size``, and a grown map all grow alike,
and the map format is unchanged (version 1).

Rules (chosen by ``scripts/bench_map_grow.py``, table in ``scripts/BENCHMARKS.md``)
-----------------------------------------------------------------------------------
``k`` is the map's own ``n_neighbors`` (15 by default).

1. **New or known** — the new document's ``k`` nearest neighbours among mapped *and*
   new documents (cosine, exact FAISS search). If the new batch is a share ``p`` of
   that union, a document on known ground has about ``p`` of its neighbours new; a
   document of a topic the map lacks has nearly all of them new. A document whose new
   share exceeds the midpoint ``(1 + p) / 2`` is a *novelty candidate*. (A distance
   threshold alone cannot tell a new topic next to a known one — hockey next to
   baseball — from a stray post: at the mapped documents' 95th-percentile distance it
   flagged 31% of hockey posts and 13% of the others; the share rule flags 95% and 2%.)
2. **Cluster of a known document** — the vote of its ``k`` nearest mapped documents,
   weighted by UMAP's membership strengths, over their clusters (outliers, -1, vote
   too); ``probability`` is the winner's share of the vote. It is left unassigned (-1)
   when it is farther from the map than the map's own scale: its mean distance to its
   ``k`` nearest mapped documents above the 99th percentile of the same quantity for
   the mapped documents themselves (each against the others; at most 2,000 of them,
   seeded). ``outlier_score`` is where its distance falls in that distribution (0-1).
3. **Position** — UMAP's transform against the map's fixed 2-D layout, as for the rows
   of a sampled map (:mod:`embedspace.mapping.sampled`): membership strengths of the
   ``k`` nearest mapped documents, start at their weighted mean, ``N_EPOCHS // 3``
   epochs of optimisation with the old points fixed. Seeded: the same inputs give the
   same positions.
4. **New topics** — the novelty candidates are clustered among themselves as the map
   clusters (UMAP to 5-D, HDBSCAN) with the map's own ``min_cluster_size`` (the size rule
   of the map), allowing a single cluster (:func:`_new_topics`). Each HDBSCAN cluster
   becomes a new cluster, numbered after the map's largest id, largest first; candidates
   HDBSCAN leaves out join the topic their nearest new documents in a topic are in, round
   after round (label propagation, :func:`_attach_to_topics`); a candidate never reached
   is an outlier (-1). Fewer than ``min_cluster_size`` candidates (or than 31) make no
   new topic.

Topic-tree columns (``cluster_l0``, ``cluster_l1`` …) of the old rows are kept; a new
row that joins cluster ``c`` takes, at each level, the value its nearest mapped
neighbours inside ``c`` vote for (so finer levels nest in ``c``); a new topic gets a new
id at every level.

Rule 2 is not the sampled map's (HDBSCAN's ``approximate_predict`` in the 5-D clustering
layout), because a map directory does not keep that layout; it is held to the same bar by
measurement: on 20 Newsgroups the added posts of known groups land in a cluster whose
majority is their own group as often as the mapped posts do (within 0.05, every group). Documents whose text is already in the
map, or repeated in the batch, are skipped and counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedspace.embeddingset import EmbeddingSet, ModelIdentity
from embedspace.encoding import embed, load_or_embed
from embedspace.errors import FormatError, InputError, ModelMismatchError
from embedspace.mapping.clustering import MIN_SAMPLES
from embedspace.mapping.mapper import (
    CLUSTER_DIMENSIONS,
    DISPLAY_MIN_DIST,
    MAP_COLUMNS,
    MAP_FORMAT,
    MAP_FORMAT_VERSION,
    N_EPOCHS,
    N_NEIGHBORS,
    SMALL_COLLECTION,
)
from embedspace.mapping.neighbors import knn_graph
from embedspace.mapping.output import write_map
from embedspace.mapping.reduction import UMAPReducer, prepare_numba
from embedspace.mapping.sampled import initial_positions
from embedspace.store import read_manifest

__all__ = ["FAR_QUANTILE", "SCALE_SAMPLE", "MapGrowth", "add_to_map", "read_map", "write_grown_map"]

FAR_QUANTILE = 0.99
"""A known document is unassigned when farther from the map than this share of mapped documents are."""
SCALE_SAMPLE = 2_000
"""Mapped documents whose own neighbour distances set the map's distance scale."""
_LEVEL = re.compile(r"^cluster_l\d+$")


@dataclass
class MapGrowth:
    """The result of :func:`add_to_map`.

    Attributes
    ----------
    space : EmbeddingSet
        Old rows then new rows, with ``x``, ``y``, ``cluster``, ``probability``,
        ``outlier_score`` (and any ``cluster_l*`` columns).
    n_old : int
        Rows of the map (rows ``0 .. n_old - 1`` of ``space``, unchanged).
    new_topics : list of int
        Cluster ids of the new topics.
    joined : dict
        ``{cluster id: new documents that joined it}`` (existing clusters and new topics).
    counts : dict
        ``added``, ``assigned``, ``outliers``, ``in_new_topics``, ``duplicates_skipped``,
        ``novelty_candidates``.
    params : dict
        The map's ``n_neighbors``, ``min_cluster_size``, ``seed`` and the rules' values.
    metrics : dict
        The map's ``metrics.json`` (carried into the grown map's).
    """

    space: EmbeddingSet
    n_old: int
    new_topics: list
    joined: dict
    counts: dict
    params: dict
    metrics: dict = field(default_factory=dict)
    topics: object = None


def read_map(directory, *, progress: bool | None = None):
    """Read a map directory back as a mapped EmbeddingSet, with its metrics.

    The vectors are the map's texts embedded with the map's recorded model and backend
    (cache hits when the map was made on this machine).

    Parameters
    ----------
    directory : path-like
        A directory written by ``embedspace map`` (or ``map add``).
    progress : bool or None

    Returns
    -------
    (EmbeddingSet, dict)
        The mapped set (table without ``row``) and ``metrics.json`` (plus ``"topics"``,
        the DataFrame of ``topics.csv`` when the map has one).

    Raises
    ------
    InputError
        No such directory.
    FormatError
        Not a map, damaged (checksums), or missing what placement needs.
    """
    import pandas as pd

    directory = Path(directory)
    manifest = read_manifest(directory, MAP_FORMAT, MAP_FORMAT_VERSION, required=("documents.parquet", "metrics.json"))
    model = ModelIdentity.from_dict(manifest.get("model"))
    if model is None:
        raise FormatError(f"{directory}: the map records no model, so its documents cannot be embedded again to place "
                          "new ones; map the collection again with this version of embedspace")
    try:
        table = pd.read_parquet(directory / "documents.parquet")
        metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(f"{directory}: unreadable map ({exc})") from None
    missing = [c for c in ("text", *MAP_COLUMNS) if c not in table.columns]
    if missing or not isinstance(metrics, dict):
        raise FormatError(f"{directory}: documents.parquet lacks {', '.join(missing) or 'nothing'} / metrics.json is "
                          "not an object; not a map this version can grow")
    if "topics.csv" in manifest.get("files", {}):
        metrics["topics"] = pd.read_csv(directory / "topics.csv")
    table = table.drop(columns=["row"], errors="ignore").reset_index(drop=True)
    texts = table["text"].astype(str).tolist()
    recovered = embed(texts, model=model.name, backend=model.backend, max_tokens=model.max_seq_length or None,
                      progress=progress)
    if not model.same_space(recovered.model):
        raise ModelMismatchError(f"{directory}: embedding its texts again gave {recovered.model.describe()}, "
                                 f"not the map's {model.describe()}")
    return EmbeddingSet(recovered.vectors, table, model), metrics


def _unit(vectors) -> np.ndarray:
    array = np.array(vectors, dtype=np.float32)
    return np.ascontiguousarray(array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12))


def _search(base: np.ndarray, queries: np.ndarray, k: int, skip_self: bool = False):
    """Exact cosine k nearest rows of ``base`` (unit vectors): (similarities, indices)."""
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    found, rows = index.search(queries, min(k + int(skip_self), len(base)))
    return (found[:, 1:], rows[:, 1:]) if skip_self else (found, rows)


def _new_rows(space, old_texts: set):
    """Rows of ``space`` whose text is neither in the map nor earlier in the batch; and the count skipped."""
    seen = set(old_texts)
    keep = []
    for i, text in enumerate(space.table["text"].astype(str).tolist()):
        if text not in seen:
            seen.add(text)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64), len(space) - len(keep)


def _as_new_space(space, model: ModelIdentity, text_col: str, progress):
    if isinstance(space, EmbeddingSet):
        new = space
    elif isinstance(space, (str, Path)) and (Path(space) / "manifest.json").is_file():
        new = load_or_embed(space, progress=progress)
    else:
        new = load_or_embed(space, text_col=text_col, model=model.name, backend=model.backend, progress=progress)
    if not model.same_space(new.model):
        theirs = new.model.describe() if new.model else "an unknown model"
        raise ModelMismatchError(f"the new documents were embedded with {theirs}, the map with {model.describe()}; "
                                 "embed them with the map's model (or map again)")
    if len(new) == 0:
        raise InputError("no new documents to add (space= is empty)")
    return new


def add_to_map(mapped, space, *, text_col: str = "text", min_cluster_size: int | None = None,
               progress: bool | None = None) -> MapGrowth:
    """Place new documents into a map without moving the old ones; find the topics that are new.

    See the module notes for the rules (``scripts/bench_map_grow.py`` measured them).

    Parameters
    ----------
    mapped : path-like or EmbeddingSet
        A map directory, or a mapped EmbeddingSet (``es.map`` output, or a grown one).
    space : EmbeddingSet, path-like, DataFrame or list of str
        The new documents: an EmbeddingSet of the map's model, or text embedded with it.
    text_col : str, default="text"
        Text column when ``space`` is a file or DataFrame.
    min_cluster_size : int, optional
        Smallest new topic. Default: the map's own (``metrics.json`` of a map directory);
        for a mapped set in memory, which does not carry it, ``round(sqrt(n) / 2)`` of its
        ``n`` rows (the low end of the map's automatic grid, ``0.25..4 * sqrt(n)``).
    progress : bool or None

    Returns
    -------
    MapGrowth
        ``space`` holds n_old + m rows (m = new documents less duplicates).

    Raises
    ------
    ModelMismatchError
        The new documents come from another model than the map.
    InputError
        No new documents, or all of them already in the map.
    FormatError
        A damaged or incomplete map directory.

    Examples
    --------
    >>> grown = es.add_to_map("news-map", "this-week.csv")  # doctest: +SKIP
    >>> grown.counts["in_new_topics"], grown.new_topics  # doctest: +SKIP
    """
    if isinstance(mapped, EmbeddingSet):
        missing = [c for c in MAP_COLUMNS if c not in mapped.table.columns]
        if missing:
            raise InputError(f"mapped= is not mapped (no {', '.join(missing)}); run embedspace.map first")
        old, metrics = mapped, {}
    else:
        old, metrics = read_map(mapped, progress=progress)
    new = _as_new_space(space, old.model, text_col, progress)
    keep, skipped = _new_rows(new, set(old.table["text"].astype(str)))
    if len(keep) == 0:
        raise InputError(f"all {len(new)} new documents are already in the map (same text); nothing to add")
    new = new.select(keep)
    if min_cluster_size is not None:
        if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, (int, np.integer)) \
                or min_cluster_size < 2:
            raise InputError(f"min_cluster_size must be a whole number >= 2, got {min_cluster_size!r}")
        metrics = {**metrics, "min_cluster_size": int(min_cluster_size)}
    params = _params(metrics, len(old))
    placed = _place(old, new, params)
    return _grow(old, new, placed, params, metrics, skipped)


def _params(metrics: dict, n_old: int) -> dict:
    given = metrics.get("params") or {}
    size = metrics.get("min_cluster_size") or given.get("min_cluster_size")
    if not isinstance(size, int) or size < 2:
        size = max(5, round(np.sqrt(n_old) / 2))
    k = given.get("n_neighbors") if isinstance(given.get("n_neighbors"), int) else N_NEIGHBORS
    seed = given.get("seed") if isinstance(given.get("seed"), int) else 0
    return {"n_neighbors": max(2, k), "min_cluster_size": int(size), "seed": seed, "far_quantile": FAR_QUANTILE}


def _place(old, new, params) -> dict:
    """Neighbours, novelty share, vote, distance scale and 2-D position of every new row."""
    k = min(params["n_neighbors"], len(old))
    old_unit, new_unit = _unit(old.vectors), _unit(new.vectors)
    sims, nearest = _search(old_unit, new_unit, k)
    distances = np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)
    # 1. novelty: share of new documents among the k nearest of old + new (the k nearest of the
    # union are among the k nearest old and the k nearest other new ones: two searches merged)
    new_sims, new_nearest = _search(new_unit, new_unit, min(k, len(new_unit) - 1), skip_self=True)
    merged = np.concatenate([sims, new_sims], axis=1)
    is_new = np.concatenate([np.zeros_like(sims, dtype=bool), np.ones_like(new_sims, dtype=bool)], axis=1)
    top = np.argsort(-merged, axis=1, kind="stable")[:, :k]
    share = np.take_along_axis(is_new, top, axis=1).mean(axis=1)
    p = len(new_unit) / (len(new_unit) + len(old_unit))
    candidate = share > (1.0 + p) / 2.0
    # the map's own distance scale: mapped documents against the other mapped documents
    rng = np.random.default_rng(params["seed"])
    probe = rng.choice(len(old_unit), size=min(SCALE_SAMPLE, len(old_unit)), replace=False)
    own_sims, _ = _search(old_unit, old_unit[probe], k, skip_self=True)
    own = np.sort((1.0 - own_sims).mean(axis=1))
    mean_distance = distances.mean(axis=1)
    limit = float(np.quantile(own, params["far_quantile"]))
    scale_rank = np.searchsorted(own, mean_distance, side="right") / max(len(own), 1)
    weights = _strengths(nearest, distances, k)
    position = _positions(nearest, distances, weights, old.table, params["seed"], k)
    return {"nearest": nearest, "weights": weights, "candidate": candidate, "new_nearest": new_nearest,
            "new_weights": _strengths(new_nearest, np.clip(1.0 - new_sims, 0.0, 2.0).astype(np.float32), k), "far": mean_distance > limit,
            "outlier_score": scale_rank.astype(np.float32), "position": position, "share": share, "limit": limit}


def _strengths(nearest, distances, k):
    from umap.umap_ import compute_membership_strengths, smooth_knn_dist

    sigmas, rhos = smooth_knn_dist(distances, float(k), local_connectivity=0.0)
    _, _, strengths, _ = compute_membership_strengths(nearest, distances, sigmas, rhos, bipartite=True)
    return strengths.reshape(nearest.shape)


def _positions(nearest, distances, weights, table, seed: int, k: int) -> np.ndarray:
    """UMAP's transform against the fixed 2-D layout (as :func:`embedspace.mapping.sampled.place_rows`)."""
    import scipy.sparse
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import find_ab_params

    prepare_numba()
    layout = np.ascontiguousarray(table[["x", "y"]].to_numpy(dtype=np.float32))
    m = len(nearest)
    start = initial_positions(nearest, weights, layout)
    lost = ~np.isfinite(start).all(axis=1)
    start[lost] = layout[nearest[lost, 0]]
    rows = np.repeat(np.arange(m), nearest.shape[1])
    n_epochs = max(1, N_EPOCHS // 3)
    graph = scipy.sparse.coo_matrix((weights.ravel(), (rows, nearest.ravel())), shape=(m, len(layout)))
    graph.data[graph.data < 1.0 / n_epochs] = 0.0
    graph.eliminate_zeros()
    epochs_per_sample = np.where(graph.data > 0, 1.0 / np.maximum(graph.data, 1e-300), -1.0)
    a, b = map(float, find_ab_params(1.0, DISPLAY_MIN_DIST))
    rng_state = np.random.RandomState(seed).randint(-2147483647, 2147483646, 3).astype(np.int64)
    moved = optimize_layout_euclidean(np.ascontiguousarray(start, dtype=np.float32), layout.copy(), graph.row,
                                      graph.col, n_epochs, len(layout), epochs_per_sample, a, b, rng_state, 1.0, 0.25,
                                      5.0, False, move_other=False)
    return np.ascontiguousarray(moved, dtype=np.float32)


def _vote(labels: np.ndarray, nearest: np.ndarray, weights: np.ndarray):
    """Weighted majority of the neighbours' labels; (winner, its share of the vote)."""
    values, codes = np.unique(labels[nearest], return_inverse=True)
    codes = codes.reshape(nearest.shape)
    tally = np.zeros((len(nearest), len(values)))
    np.add.at(tally, (np.repeat(np.arange(len(nearest)), nearest.shape[1]), codes.ravel()),
              np.maximum(weights, 1e-9).ravel())
    best = tally.argmax(axis=1)
    share = tally[np.arange(len(nearest)), best] / tally.sum(axis=1)
    return values[best], share.astype(np.float32)


def _new_topics(new, candidates: np.ndarray, params, first_id: int):
    """Cluster the novelty candidates among themselves; (cluster per candidate, probability).

    The map pipeline's clustering half: UMAP to ``CLUSTER_DIMENSIONS`` (``min_dist=0``,
    ``N_EPOCHS``, the map's seed) and HDBSCAN at the map's ``min_cluster_size``, with
    ``allow_single_cluster`` — the candidates are often one topic, which plain HDBSCAN
    never returns as a cluster (it found none for 80 talk.politics.mideast posts).
    """
    import hdbscan

    size = params["min_cluster_size"]
    labels = np.full(len(candidates), -1, dtype=np.int64)
    probability = np.zeros(len(candidates), dtype=np.float32)
    if len(candidates) < max(size, SMALL_COLLECTION + 1):
        return labels, probability
    vectors = _unit(new.vectors[candidates])
    k = min(params["n_neighbors"], len(candidates) - 1)
    reducer = UMAPReducer(CLUSTER_DIMENSIONS, n_neighbors=k, min_dist=0.0, n_epochs=N_EPOCHS,
                          random_state=params["seed"])
    layout = reducer.fit_transform(vectors, knn=knn_graph(vectors, k=k))
    model = hdbscan.HDBSCAN(min_cluster_size=int(size), min_samples=int(min(MIN_SAMPLES, size)),
                            cluster_selection_method="eom", allow_single_cluster=True, core_dist_n_jobs=1)
    raw = model.fit_predict(np.asarray(layout, dtype=np.float64)).astype(np.int64)
    ids, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = ids[np.argsort(-sizes, kind="stable")]
    for j, c in enumerate(order):
        labels[raw == c] = first_id + j
    probability[raw >= 0] = np.asarray(model.probabilities_, dtype=np.float32)[raw >= 0]
    return labels, probability


def _attach_to_topics(topic: np.ndarray, candidates: np.ndarray, nearest: np.ndarray, weights: np.ndarray):
    """Candidates HDBSCAN left out join the new topic their nearest new documents in a topic are in, repeatedly.

    Candidates already lie where the map has no documents; at the map's own
    ``min_cluster_size`` HDBSCAN keeps only the dense core of a new topic
    (rec.sport.hockey, ``min_cluster_size`` 169: 36% of its candidates). Each round, a
    left-out candidate with members of a topic among its ``k`` nearest new documents joins
    the topic with the most membership strength there; rounds repeat until none joins (a
    label propagation over the candidates' neighbour graph: 36% -> 76% after one round,
    100% when repeated; hockey's recall 0.72 -> 0.95 at precision 0.98 in
    ``scripts/bench_map_grow.py``). A candidate never reached stays an outlier.
    """
    if not (topic >= 0).any():
        return topic
    label = np.full(len(nearest), -1, dtype=np.int64)
    label[candidates] = topic
    for _ in range(50):
        noise = candidates[label[candidates] < 0]
        if not len(noise):
            break
        neighbours = label[nearest[noise]]
        votes = np.where(neighbours >= 0, np.maximum(weights[noise], 1e-9), 0.0)
        reached = votes.sum(axis=1) > 0
        if not reached.any():
            break
        for row, values, strength in zip(noise[reached], neighbours[reached], votes[reached]):
            tally: dict = {}
            for value, weight in zip(values, strength):
                if weight > 0:
                    tally[int(value)] = tally.get(int(value), 0.0) + float(weight)
            label[row] = max(sorted(tally), key=tally.get)
    return label[candidates]


def _grow(old, new, placed, params, metrics, skipped) -> MapGrowth:
    import pandas as pd

    table = old.table
    old_clusters = table["cluster"].to_numpy(dtype=np.int64)
    cluster, probability = _vote(old_clusters, placed["nearest"], placed["weights"])
    cluster = cluster.astype(np.int64)
    far = placed["far"] & ~placed["candidate"]
    cluster[far] = -1
    candidates = np.flatnonzero(placed["candidate"])
    first_id = int(old_clusters.max()) + 1 if len(old_clusters) else 0
    topic, topic_probability = _new_topics(new, candidates, params, max(first_id, 0))
    topic = _attach_to_topics(topic, candidates, placed["new_nearest"], placed["new_weights"])
    cluster[candidates] = topic
    probability[candidates] = topic_probability
    probability[cluster < 0] = 0.0
    columns = {"x": placed["position"][:, 0], "y": placed["position"][:, 1], "cluster": cluster,
               "probability": probability, "outlier_score": placed["outlier_score"]}
    new_topics = sorted({int(c) for c in topic if c >= 0})
    for name in [c for c in table.columns if _LEVEL.match(str(c))]:
        columns[name] = _level_values(table[name].to_numpy(), old_clusters, cluster, new_topics, placed)
    added = new.table.copy()
    for name, values in columns.items():
        added[name] = np.asarray(values).astype(table[name].dtype)
    grown_table = pd.concat(_align(table, added), ignore_index=True)
    grown_table = grown_table[list(table.columns) + [c for c in grown_table.columns if c not in table.columns]]
    vectors = np.vstack([np.asarray(old.vectors, dtype=np.float32), np.asarray(new.vectors, dtype=np.float32)])
    grown = EmbeddingSet(vectors, grown_table, old.model)
    ids, counts = np.unique(cluster, return_counts=True)
    joined = {int(c): int(n) for c, n in zip(ids, counts)}
    in_new = int(np.isin(cluster, new_topics).sum())
    summary = {"added": len(new), "assigned": int((cluster >= 0).sum()) - in_new, "outliers": int((cluster < 0).sum()),
               "in_new_topics": in_new, "duplicates_skipped": int(skipped), "novelty_candidates": len(candidates),
               "new_topics": len(new_topics)}
    return MapGrowth(space=grown, n_old=len(old), new_topics=new_topics, joined=joined, counts=summary,
                     params={**params, "distance_limit": round(placed["limit"], 6)}, metrics=metrics,
                     topics=metrics.get("topics"))


def _align(table, added):
    """The old and new tables with the old columns the new rows lack filled so that no old value changes type.

    Integers and booleans become pandas' nullable types (the same values, stored as
    int64/bool with nulls) instead of float64 with NaN; others take None/NaN.
    """
    import pandas as pd

    table, added = table.copy(), added.copy()
    for name in table.columns:
        if name in added.columns:
            if added[name].dtype != table[name].dtype and pd.api.types.is_integer_dtype(table[name].dtype) \
                    and not pd.api.types.is_integer_dtype(added[name].dtype):
                table[name] = table[name].astype("Int64")
            continue
        kind = table[name].dtype
        if pd.api.types.is_bool_dtype(kind) or pd.api.types.is_integer_dtype(kind):
            nullable = "boolean" if pd.api.types.is_bool_dtype(kind) else "Int64"
            table[name] = table[name].astype(nullable)
            added[name] = pd.array([pd.NA] * len(added), dtype=nullable)
        else:
            added[name] = pd.Series([None] * len(added), dtype=object if kind == object else kind, index=added.index) \
                if not pd.api.types.is_float_dtype(kind) else np.nan
    return table, added


def _level_values(level: np.ndarray, old_clusters: np.ndarray, cluster: np.ndarray, new_topics: list,
                  placed: dict) -> np.ndarray:
    """A topic-tree column (``cluster_l*``) for the new rows.

    A row that joined cluster ``c`` takes the level's value its nearest mapped neighbours
    in ``c`` vote for (so a finer level nests inside ``c``), or the value most old rows of
    ``c`` have when none of its neighbours is in ``c``; a new topic gets a new id at every
    level; an outlier gets -1.
    """
    out = np.full(len(cluster), -1, dtype=np.int64)
    nearest, weights = placed["nearest"], placed["weights"]
    for c in np.unique(cluster[cluster >= 0]):
        members = level[old_clusters == c]
        if not len(members):
            continue
        values, counts = np.unique(members, return_counts=True)
        rows = np.flatnonzero(cluster == c)
        out[rows] = values[counts.argmax()]
        inside = old_clusters[nearest[rows]] == c
        voted = inside.any(axis=1)
        if voted.any():
            w = np.where(inside, weights[rows] + 1e-6, 0.0)[voted]  # neighbours outside c count 1e-9 (_vote's floor)
            out[rows[voted]], _ = _vote(level, nearest[rows][voted], w)
    start = int(np.max(level)) + 1 if len(level) else 0
    for j, c in enumerate(new_topics):
        out[cluster == c] = start + j
    return out


def write_grown_map(growth: MapGrowth, directory, *, overwrite: bool = False, title: str | None = None,
                    command: str | None = None) -> dict:
    """Write a grown map as a new map directory, atomically (see :func:`embedspace.mapping.write_map`).

    ``clusters.csv`` gets a ``new`` column (True for the new topics, whose labels start
    with "new: " in ``map.png`` and ``map.html``); ``metrics.json`` gets ``added``,
    ``assigned``, ``outliers``, ``in_new_topics``, ``duplicates_skipped`` and a ``growth``
    object (the rules' values, the new topics, how many joined each cluster), and keeps
    the map's ``params``/``min_cluster_size`` so that the grown map can grow again.

    Parameters
    ----------
    growth : MapGrowth
        Output of :func:`add_to_map`.
    directory : path-like
        The new map directory (refused if it exists, unless ``overwrite``).
    overwrite : bool, default=False
    title : str, optional
    command : str, optional

    Returns
    -------
    dict
        As :func:`embedspace.mapping.write_map`.
    """
    carried = {k: growth.metrics[k] for k in ("method", "min_cluster_size", "params", "sampling") if k in growth.metrics}
    if "params" not in carried:
        carried["params"] = {"seed": growth.params["seed"], "n_neighbors": growth.params["n_neighbors"],
                             "min_cluster_size": growth.params["min_cluster_size"]}
        carried["min_cluster_size"] = growth.params["min_cluster_size"]
    extra = {**carried, **{k: v for k, v in growth.counts.items() if k != "new_topics"},
             "growth": {"n_before": growth.n_old, "new_topic_ids": growth.new_topics,
                        "joined": {str(c): n for c, n in growth.joined.items()}, "rules": growth.params}}
    label_col = growth.metrics.get("label_col")
    if not (isinstance(label_col, str) and label_col in growth.space.table.columns
            and not growth.space.table[label_col].isna().any()):
        label_col = None
    return write_map(growth.space, directory, label_col=label_col, overwrite=overwrite, title=title, extra=extra,
                     command=command, new_clusters=growth.new_topics)
