"""Vectors to a picture and groups: kNN graph, UMAP/PCA/t-SNE, HDBSCAN/k-means, names, map.png / map.html.

Where things happen, in pipeline order:

- :mod:`~embedspace.mapping.pipeline` — :func:`map_collection` (``es.map``) picks the
  estimator for the collection's size and fits it;
- :mod:`~embedspace.mapping.mapper` — :class:`CollectionMapper`: one kNN graph
  (:mod:`~embedspace.mapping.neighbors`), UMAP layouts (:mod:`~embedspace.mapping.reduction`),
  clusters (:mod:`~embedspace.mapping.clustering`);
- :mod:`~embedspace.mapping.sampled` — :class:`SampledMapper` for large collections: fit on a
  sample, place the other rows;
- :mod:`~embedspace.mapping.tree` — the topic tree's levels (``cluster_l0`` ... ``cluster_lN``),
  nested in the map's clusters; :mod:`~embedspace.mapping.topics` — :func:`topic_tree` names them
  (``topics.csv``, ``embedspace topics``) and scores them (NPMI);
- :mod:`~embedspace.mapping.labels` — :func:`describe`: c-TF-IDF keywords and examples;
- :mod:`~embedspace.mapping.output` — :func:`write_map`: the map directory, drawn by
  :mod:`~embedspace.mapping.plotting` (map.png), :mod:`~embedspace.mapping.page` (map.html)
  and :mod:`~embedspace.mapping.report` (report.html); :mod:`~embedspace.mapping.notebook` —
  :func:`show`: the page inline in a notebook.
"""

from __future__ import annotations

from embedspace.mapping.clustering import Clusterer, assign_outliers, cluster, clustering_scores
from embedspace.mapping.demo import run_demo
from embedspace.mapping.grow import MapGrowth, add_to_map, read_map, write_grown_map
from embedspace.mapping.labels import class_tfidf_keywords, describe
from embedspace.mapping.mapper import MAP_FORMAT, MAP_FORMAT_VERSION, MIN_DOCUMENTS, CollectionMapper
from embedspace.mapping.neighbors import KNNGraph, knn_graph
from embedspace.mapping.notebook import MapView, show
from embedspace.mapping.output import write_map
from embedspace.mapping.pipeline import (
    clustering_stability,
    collection_name,
    make_mapper,
    map_collection,
    space_to_map,
)
from embedspace.mapping.reduction import reduce
from embedspace.mapping.sampled import MIN_SAMPLE, SAMPLE_SIZE, SampledMapper
from embedspace.mapping.topics import npmi_coherence, read_topics, topic_tree, tree_lines
from embedspace.mapping.tree import MAX_LEVELS, build_levels, split_features

__all__ = [
    "Clusterer",
    "CollectionMapper",
    "KNNGraph",
    "MAP_FORMAT",
    "MAP_FORMAT_VERSION",
    "MAX_LEVELS",
    "MIN_DOCUMENTS",
    "MIN_SAMPLE",
    "MapGrowth",
    "MapView",
    "SAMPLE_SIZE",
    "SampledMapper",
    "add_to_map",
    "assign_outliers",
    "build_levels",
    "split_features",
    "class_tfidf_keywords",
    "cluster",
    "clustering_scores",
    "clustering_stability",
    "collection_name",
    "describe",
    "knn_graph",
    "make_mapper",
    "map_collection",
    "npmi_coherence",
    "read_map",
    "read_topics",
    "reduce",
    "run_demo",
    "show",
    "space_to_map",
    "topic_tree",
    "tree_lines",
    "write_map",
    "write_grown_map",
]
