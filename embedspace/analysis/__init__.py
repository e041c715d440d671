"""Questions about a collection: what does not belong, what is there twice, and how two sets (or two models) differ.

Each question is a function that takes EmbeddingSets and returns tables with a score per
document or per region, under the keys the CLI prints with ``--json``.
"""

from __future__ import annotations

from embedspace.analysis.compare_collections import ALPHA, DEFAULT_TEST, SetComparison, compare_sets
from embedspace.analysis.compare_output import (
    COMPARE_FORMAT,
    write_comparison,
    write_group_comparison,
    write_model_comparison,
)
from embedspace.analysis.compare_slices import GroupComparison, compare_groups
from embedspace.analysis.compare_spaces import ModelComparison, compare_models
from embedspace.analysis.compare_stats import TESTS
from embedspace.analysis.duplicates import (
    PRESETS,
    THRESHOLD,
    describe_threshold,
    drop_duplicates,
    duplicate_groups,
    find_duplicates,
    normalize_text,
    resolve_threshold,
)
from embedspace.analysis.map_columns import ANALYSIS_COLUMNS, add_map_columns, map_and_score
from embedspace.analysis.outliers import DEFAULT_K, DEFAULT_METHOD, METHODS, outlier_scores

__all__ = [
    "ALPHA",
    "ANALYSIS_COLUMNS",
    "add_map_columns",
    "map_and_score",
    "COMPARE_FORMAT",
    "DEFAULT_TEST",
    "GroupComparison",
    "ModelComparison",
    "SetComparison",
    "TESTS",
    "compare_groups",
    "compare_models",
    "compare_sets",
    "write_comparison",
    "write_group_comparison",
    "write_model_comparison",
    "DEFAULT_K",
    "DEFAULT_METHOD",
    "METHODS",
    "PRESETS",
    "THRESHOLD",
    "describe_threshold",
    "drop_duplicates",
    "duplicate_groups",
    "find_duplicates",
    "normalize_text",
    "outlier_scores",
    "resolve_threshold",
]
