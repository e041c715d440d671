"""Every benchmark from one harness: STS, word similarity, analogy, retrieval and clustering.

Each ``evaluate_*`` function reads a public benchmark file (or folder), scores the
semantic space on it and returns a dict of numbers under the stable keys that
``embedspace eval ... --json`` prints.
"""

from __future__ import annotations

from embedspace.evaluation.clustering import evaluate_clustering
from embedspace.evaluation.files import read_benchmark_file
from embedspace.evaluation.retrieval import evaluate_retrieval, load_beir, retrieval_metrics
from embedspace.evaluation.sts import evaluate_sts, read_sts_pairs
from embedspace.evaluation.words import evaluate_analogy, evaluate_word_similarity, read_analogies, read_word_pairs

__all__ = [
    "evaluate_analogy",
    "evaluate_clustering",
    "evaluate_retrieval",
    "evaluate_sts",
    "evaluate_word_similarity",
    "load_beir",
    "read_analogies",
    "read_benchmark_file",
    "read_sts_pairs",
    "read_word_pairs",
    "retrieval_metrics",
]
