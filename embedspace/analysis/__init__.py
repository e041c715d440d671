"""Questions about a collection: what does not belong, what is there twice, and how two sets (or two models) differ.

Each question is a function that takes EmbeddingSets and returns tables with a score per
document or per region, under the keys the CLI prints with ``--json``.
"""

from __future__ import annotations

from embedspace.analysis.outliers import outlier_scores

__all__ = [
    "outlier_scores",
]
