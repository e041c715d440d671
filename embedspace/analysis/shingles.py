"""Lexical overlap of two texts: how much of the shorter one's character 5-grams the longer one holds.

The second signal of the ``near`` duplicate rule (:mod:`embedspace.analysis.duplicates`):
a sentence embedding truncated at 256 tokens misses a copy whose first 256 tokens differ
(a reply quoting the post under a new line, sentences moved, a first half), while the
copy still holds most of the original's text. Each text is reduced to its words (``\\w+``,
case folded, so white space, punctuation and quote markers such as ``>`` or ``:`` at the
start of a line do not count) with lines like ``"In article <…>, someone writes:"``
removed; its *shingles* are the hashed character 5-grams of the words joined by single
spaces (a typo changes at most five of them).

:func:`shingle_sets` hashes a batch of texts with numpy (no Python loop over characters);
:func:`overlap` scores many pairs at once by sorting their shingles together, in blocks
of about :data:`PAIR_BLOCK` shingles, so memory stays bounded for millions of pairs.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["GRAM", "PAIR_BLOCK", "SKETCH", "lexical_form", "overlap", "shingle_sets"]

GRAM = 5
"""Characters per shingle: scripts/bench_outliers.py (duplicates table) compared word 1- and
3-grams and character 5-grams; 5-grams keep typo copies (1-3 edits per 100 characters)."""
SKETCH = 256
"""Smallest hashes kept per text (a bottom-k sketch): below the smaller of two texts' largest kept
hash both sketches are complete, so the shingles shared there estimate the containment from at
least ``SKETCH x length ratio`` samples, exactly for texts of up to 256 shingles."""
PAIR_BLOCK = 1_000_000
"""Shingles sorted together per block of pairs (8 MB of uint64 keys; with the gathers about 60 MB)."""
_TEXT_BLOCK = 1 << 20
"""Bytes of text hashed per batch (its temporaries take about 60 bytes per byte: 60 MB)."""

_WORD = re.compile(r"\w+")
_ATTRIBUTION = re.compile(r"^[^\n]*\b(?:writes|wrote|said)\s*:[ \t]*$", re.MULTILINE | re.IGNORECASE)
_MASK32 = np.uint64(0xFFFFFFFF)


def lexical_form(text: str) -> str:
    """The words of ``text``, case folded and joined by single spaces, attribution lines removed.

    >>> lexical_form("In article <1@x.edu>, Bo writes:\\n> Hello,  WORLD!")
    'hello world'
    """
    return " ".join(_WORD.findall(_ATTRIBUTION.sub(" ", str(text)).casefold()))


def shingle_sets(texts) -> tuple[np.ndarray, np.ndarray]:
    """The distinct hashed character 5-grams of every text, as compressed rows.

    Parameters
    ----------
    texts : sequence of str, length m

    Returns
    -------
    indptr : ndarray of shape (m + 1,), int64
        Text ``i`` owns ``grams[indptr[i]:indptr[i + 1]]``.
    grams : ndarray of shape (indptr[-1],), uint64
        32-bit hashes (held in uint64), sorted and distinct within each text. A text
        shorter than 5 bytes is one gram (itself, padded); a text with no word has none.
    """
    encoded = [lexical_form(t).encode("utf-8") for t in texts]
    encoded = [s + b"\0" * (GRAM - len(s)) if 0 < len(s) < GRAM else s for s in encoded]
    sizes = np.zeros(len(encoded), dtype=np.int64)
    parts, start = [], 0
    while start < len(encoded):
        stop, total = start, 0
        while stop < len(encoded) and (total < _TEXT_BLOCK or stop == start):
            total += len(encoded[stop])
            stop += 1
        counts, grams = _hash_block(encoded[start:stop])
        sizes[start:stop] = counts
        parts.append(grams)
        start = stop
    indptr = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.minimum(sizes, SKETCH), out=indptr[1:])
    return sizes, indptr, (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64))


def _hash_block(encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct gram hashes per text of one batch: (counts (b,), grams sorted within each text)."""
    lengths = np.fromiter((len(s) for s in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    counts = np.maximum(lengths - GRAM + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(len(encoded), dtype=np.int64), np.zeros(0, dtype=np.uint64)
    starts = np.cumsum(lengths) - lengths
    owner = np.repeat(np.arange(len(encoded), dtype=np.int64), counts)
    position = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts) + starts[owner]
    with np.errstate(over="ignore"):
        h = np.zeros(total, dtype=np.uint64)
        for j in range(GRAM):
            h = (h * np.uint64(0x100000001B3)) ^ data[position + j].astype(np.uint64)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    keys = (owner.astype(np.uint64) << np.uint64(32)) | (h & _MASK32)
    keys.sort()  # sort + neighbour test: numpy 2's hash-based np.unique is ~20x slower here
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    owner = (keys >> np.uint64(32)).astype(np.int64)
    counts = np.bincount(owner, minlength=len(encoded))
    rank = np.arange(len(keys), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return counts, keys[rank < SKETCH] & _MASK32  # the SKETCH smallest hashes of each text


def _gather(indptr: np.ndarray, grams: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grams of ``rows[p]`` for every p, and p for each of them."""
    lengths = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return grams[indptr[rows][owner] + offsets], owner


def overlap(sketches, left: np.ndarray, right: np.ndarray):
    """Containment and length ratio of text pairs ``(left[p], right[p])``.

    Parameters
    ----------
    sketches : tuple
        What :func:`shingle_sets` returned.
    left, right : ndarray of shape (p,), int64
        Rows of the texts given to :func:`shingle_sets`.

    Returns
    -------
    containment : ndarray of shape (p,), float32
        Shared shingles over the shingles of the smaller text (0 when either has none),
        counted below ``tau``, the smaller of the two sketches' largest hashes (all hashes
        when a text has at most :data:`SKETCH` shingles).
    ratio : ndarray of shape (p,), float32
        Shingles of the smaller text over those of the larger one.
    """
    sizes, indptr, grams = sketches
    top = np.full(len(sizes), np.iinfo(np.uint64).max, dtype=np.uint64)
    full = sizes > SKETCH
    top[full] = grams[indptr[1:][full] - 1]
    smaller = np.where(sizes[left] <= sizes[right], left, right)
    small, large = sizes[smaller], np.maximum(sizes[left], sizes[right])
    shared = np.zeros(len(left), dtype=np.int64)
    below = np.zeros(len(left), dtype=np.int64)
    kept = np.diff(indptr)
    cumulative = np.cumsum(kept[left] + kept[right])
    start = 0
    while start < len(left):
        done = int(cumulative[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cumulative, done + PAIR_BLOCK, side="right")), start + 1)
        tau = np.minimum(top[left[start:stop]], top[right[start:stop]])
        keys = []
        for rows in (left[start:stop], right[start:stop]):
            values, owner = _gather(indptr, grams, rows)
            keep = values <= tau[owner]
            keys.append((owner[keep].astype(np.uint64) << np.uint64(32)) | values[keep])
        values, owner = _gather(indptr, grams, smaller[start:stop])
        below[start:stop] = np.bincount(owner[values <= tau[owner]], minlength=stop - start)
        keys = np.concatenate(keys)
        keys.sort()
        same = keys[1:][keys[1:] == keys[:-1]]
        shared[start:stop] = np.bincount((same >> np.uint64(32)).astype(np.int64), minlength=stop - start)
        start = stop
    containment = np.where(below > 0, shared / np.maximum(below, 1), 0.0).astype(np.float32)
    ratio = np.where(large > 0, small / np.maximum(large, 1), 0.0).astype(np.float32)
    return containment, ratio
