"""embedspace: explore the latent semantic space of text.

Embed text with sentence-transformers, keep it in an :class:`EmbeddingSet`, and search,
map, relate and generate from it. Importing the package is light: torch, faiss, umap
and hdbscan are imported only by the functions that use them.

Examples
--------
>>> import embedspace as es  # doctest: +SKIP
>>> docs = es.read("corpus:20newsgroups")  # doctest: +SKIP
>>> space = es.embed(docs)  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"


def _quiet_interrupt_at_start() -> None:
    """In the ``embedspace`` program only: Ctrl-C while it is still importing prints one line, no traceback.

    ``embedspace.cli.main`` handles Ctrl-C and SIGTERM once it runs; before that (this
    package's imports take a second) an interrupt would end in a traceback. A library
    import (``import embedspace``) changes nothing.
    """
    import os
    import sys

    command = list(getattr(sys, "orig_argv", []))
    is_cli = os.path.basename(sys.argv[0] if sys.argv else "") == "embedspace" or any(
        a == "-m" and b in ("embedspace", "embedspace.cli") for a, b in zip(command, command[1:]))
    if not is_cli or getattr(sys.excepthook, "_embedspace", False):
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print("error: interrupted", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    hook._embedspace = True
    sys.excepthook = hook


_quiet_interrupt_at_start()

from embedspace import relations as relations  # es.relations.analogy("man", "king", "woman")
from embedspace.analysis import (
    compare_groups,
    compare_models,
    compare_sets,
    drop_duplicates,
    find_duplicates,
    map_and_score,
    outlier_scores,
)
from embedspace.embeddingset import EmbeddingSet, ModelIdentity
from embedspace.encoding import EmbeddingCache, embed, embed_to_disk, load_encoder
from embedspace.errors import (
    EmbedspaceError,
    FormatError,
    InputError,
    MissingDependencyError,
    ModelMismatchError,
    ModelNotFoundError,
    OutputExistsError,
)
from embedspace.evaluation import (
    evaluate_analogy,
    evaluate_clustering,
    evaluate_retrieval,
    evaluate_sts,
    evaluate_word_similarity,
)
from embedspace.mapping import add_to_map, describe, map_collection, show, topic_tree, write_map
from embedspace.relations import TermSpace, load_vocabulary, read_word_vectors
from embedspace.search import Index, build_index, load_index
from embedspace.sources import read

map = map_and_score  # es.map(space, seed=0): the map with outlier and duplicate columns, as `embedspace map`

def __getattr__(name):
    # ``es.vae`` (the text VAE) is imported on first use: it needs torch.
    if name == "vae":
        import importlib

        return importlib.import_module(".vae", __name__)
    raise AttributeError(f"module 'embedspace' has no attribute '{name}'")


def load(path) -> EmbeddingSet:
    """Load an EmbeddingSet directory (see :meth:`EmbeddingSet.load`)."""
    return EmbeddingSet.load(path)


__all__ = [
    "EmbedspaceError",
    "EmbeddingCache",
    "EmbeddingSet",
    "FormatError",
    "Index",
    "InputError",
    "MissingDependencyError",
    "ModelIdentity",
    "ModelMismatchError",
    "ModelNotFoundError",
    "OutputExistsError",
    "TermSpace",
    "add_to_map",
    "build_index",
    "describe",
    "topic_tree",
    "drop_duplicates",
    "embed",
    "embed_to_disk",
    "evaluate_analogy",
    "evaluate_clustering",
    "evaluate_retrieval",
    "evaluate_sts",
    "evaluate_word_similarity",
    "find_duplicates",
    "load",
    "load_encoder",
    "load_index",
    "load_vocabulary",
    "map",
    "map_and_score",
    "map_collection",
    "outlier_scores",
    "compare_sets",
    "compare_groups",
    "compare_models",
    "read",
    "read_word_vectors",
    "show",
    "write_map",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("embedspace."):
        try:
            _obj.__module__ = "embedspace"
        except (AttributeError, TypeError):
            pass
del _name, _obj
