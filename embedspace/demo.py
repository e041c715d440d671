"""The main job on the shipped defaults: 20 Newsgroups embedded with all-MiniLM-L6-v2.

:func:`run_demo` embeds the shipped corpus (cached after the first run), saves the
EmbeddingSet under the output folder and answers three example queries by nearest
neighbours. Later stages (index, map) extend it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["run_demo", "EXAMPLE_QUERIES", "DEMO_CORPUS"]

DEMO_CORPUS = "corpus:20newsgroups"
EXAMPLE_QUERIES = (
    "graphics cards and 3D rendering on linux",
    "the pitcher threw a no-hitter last night",
    "is there evidence that god exists?",
)


def run_demo(output: str | Path = "embedspace-demo", *, overwrite: bool = True, k: int = 3, progress: bool | None = None) -> dict:
    """Embed the shipped corpus and answer the example queries.

    Parameters
    ----------
    output : path-like, default="embedspace-demo"
        Folder for the outputs (``space/`` holds the EmbeddingSet).
    overwrite : bool, default=True
        Replace earlier demo outputs.
    k : int, default=3
        Neighbours shown per query.
    progress : bool or None
        Progress bars.

    Returns
    -------
    dict
        ``{"output", "n", "dim", "backend", "labels", "queries": [{"query", "results": [...]}]}``
    """
    from .embedding import embed
    from .encoders import load_encoder

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder()
    space = embed(DEMO_CORPUS, encoder=encoder, progress=progress)
    space.save(output / "space", overwrite=overwrite)
    queries = encoder.encode(list(EXAMPLE_QUERIES), progress=False)
    scores = queries @ space.vectors.T
    results = []
    for q, query in enumerate(EXAMPLE_QUERIES):
        top = np.argsort(-scores[q])[:k]
        hits = [
            {"rank": r + 1, "row": int(i), "score": float(scores[q, i]), "label": str(space.table["label"].iat[i]),
             "text": space.table["text"].iat[i]}
            for r, i in enumerate(top)
        ]
        results.append({"query": query, "results": hits})
    return {
        "output": str(output),
        "n": len(space),
        "dim": space.dim,
        "backend": encoder.identity.backend,
        "labels": int(space.table["label"].nunique()),
        "queries": results,
    }
