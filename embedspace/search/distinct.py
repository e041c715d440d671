"""One hit per distinct text: a search's identical texts collapse into one hit that counts its copies.

A collection that holds an article several times would otherwise fill the top hits with
it (issue 31: 98 repeated articles in 2,225, the same one twice in every top five).
Texts are identical when they are equal after runs of white space are folded to one
space and the ends stripped; the first (best-ranked) row of each text is kept.
``embedspace search`` does this by default (``--keep-duplicates`` turns it off);
:meth:`embedspace.search.Index.search` with ``distinct=True``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["text_key", "collapse_identical"]


def text_key(text) -> str:
    """The text as compared: white space folded, ends stripped (``None`` is the empty text)."""
    return " ".join(str("" if text is None else text).split())


def collapse_identical(scores: np.ndarray, rows: np.ndarray, texts: dict, k: int):
    """Keep the best-ranked row of each distinct text, up to ``k`` per query.

    Parameters
    ----------
    scores : ndarray of shape (m, depth)
        Ranked scores, best first; -inf padding.
    rows : ndarray of shape (m, depth), int64
        Ranked row ids; -1 padding.
    texts : dict
        ``{row: text}`` for every row id in ``rows``.
    k : int
        Distinct hits wanted per query.

    Returns
    -------
    scores : ndarray of shape (m, k), float32
    rows : ndarray of shape (m, k), int64
        -1 padding where fewer than ``k`` distinct texts were found.
    copies : ndarray of shape (m, k), int64
        Rows among the ranked ones with that text (1 = no copy); 0 in padding.
    complete : ndarray of shape (m,), bool
        True where the counts are final: a ``k + 1``-th distinct text was ranked (so every
        copy of the first ``k`` ranked above it), or the ranking ran out of rows.
    """
    m, depth = rows.shape
    out_scores = np.full((m, k), -np.inf, dtype=np.float32)
    out_rows = np.full((m, k), -1, dtype=np.int64)
    copies = np.zeros((m, k), dtype=np.int64)
    complete = np.zeros(m, dtype=bool)
    for q in range(m):
        slot_of: dict[str, int] = {}
        for j in range(depth):
            row = int(rows[q, j])
            if row < 0:
                complete[q] = True  # fewer rows matched than were asked for: nothing more to find
                break
            key = text_key(texts[row])
            slot = slot_of.get(key)
            if slot is None:
                if len(slot_of) == k:
                    complete[q] = True
                    break
                slot = slot_of[key] = len(slot_of)
                out_scores[q, slot] = scores[q, j]
                out_rows[q, slot] = row
            copies[q, slot] += 1
    return out_scores, out_rows, copies, complete
