"""Word benchmarks: word-similarity correlation and analogy accuracy.

Both score a :class:`~embedspace.relations.wordvectors.TermSpace` (the sentence encoder, words
encoded alone or averaged over prompt templates, or static word vectors read with
``--vectors``) and follow gensim's ``KeyedVectors.evaluate_word_pairs`` and
``evaluate_word_analogies`` so the numbers agree with it on the same vectors:

- words are matched case-insensitively by default (upper case, the first key of a case
  family wins); a pair or question with a word that the vectors lack is out of vocabulary:
  counted (``oov``) and skipped;
- an analogy is right when the best-scoring candidate, other than its three inputs, is the
  expected word. Candidates are the analogy file's own words by default (the questions are
  then a closed-vocabulary task), or a given vocabulary (``vocab=``), or the first N keys of
  the vectors (``restrict_vocab=N``, gensim's rule); a question whose four words are not all
  candidates is out of vocabulary.

The public entry points are re-exported by :mod:`embedspace.evaluation`.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from embedspace._progress import progress_bar
from embedspace.errors import InputError
from embedspace.evaluation.files import read_benchmark_file
from embedspace.relations import METHODS, TermSpace, analogy_scores

__all__ = ["read_word_pairs", "read_analogies", "evaluate_word_similarity", "evaluate_analogy"]

log = logging.getLogger("embedspace")
_DELIMITERS = {"\t": "tab", ",": "comma", None: "space"}


def read_word_pairs(path) -> tuple[list[str], list[str], np.ndarray]:
    """Read a word-similarity file: lines ``word1 word2 score``.

    Fields are separated by tabs, commas or spaces (decided from the first line; with tabs
    or commas a term may be a phrase). A first line whose score is not a number is a header;
    blank lines and lines starting with ``#`` are skipped.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    words1, words2 : list of str of length n
    scores : ndarray of shape (n,), float64

    Raises
    ------
    InputError
        Missing or empty file, or a malformed line (its number is given).
    """
    lines = read_benchmark_file(path)[1]
    first = next(line for line in lines if line.strip() and not line.startswith("#"))
    delimiter = "\t" if "\t" in first else "," if "," in first else None
    words1, words2, scores = [], [], []
    header_seen = False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(delimiter)] if delimiter else line.split()
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise InputError(
                f"{path}: line {lineno}: expected 'word1 word2 score' separated by {_DELIMITERS[delimiter]}s, "
                f"found {len(fields)} fields: '{line.strip()[:80]}'"
            )
        try:
            score = float(fields[2])
        except ValueError:
            if not header_seen and not words1:
                header_seen = True  # a header line such as "word1 word2 score"
                continue
            raise InputError(f"{path}: line {lineno}: score '{fields[2]}' is not a number") from None
        if not np.isfinite(score):
            raise InputError(f"{path}: line {lineno}: score '{fields[2]}' is not a finite number")
        words1.append(" ".join(fields[0].split()))
        words2.append(" ".join(fields[1].split()))
        scores.append(score)
    if not scores:
        raise InputError(f"{path}: no word pairs found (expected lines 'word1 word2 score')")
    return words1, words2, np.asarray(scores, dtype=np.float64)


def read_analogies(path) -> list[tuple[str, str, str, str, str]]:
    """Read an analogy file in the ``questions-words.txt`` layout.

    Lines ``: section name`` start a section; every other non-blank line is ``a b c d``
    (a : b :: c : d). Questions before the first section line belong to section ``""``.

    Returns
    -------
    list of (section, a, b, c, d)

    Raises
    ------
    InputError
        Missing or empty file, a question line without exactly four words (its number is
        given), or a file without questions.
    """
    lines = read_benchmark_file(path)[1]
    questions = []
    section = ""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.split()
        if len(words) != 4:
            raise InputError(
                f"{path}: line {lineno}: expected 4 words 'a b c d' (a is to b as c is to d), "
                f"found {len(words)}: '{line.strip()[:80]}'"
            )
        questions.append((section, *words))
    if not questions:
        raise InputError(f"{path}: no analogy questions found (expected ': section' lines and 'a b c d' lines)")
    return questions


def _resolve_space(space, model, backend, templates, vocabulary=None):
    if space is not None:
        if templates:
            raise InputError("templates apply to the sentence encoder; they cannot be combined with given word vectors")
        return space
    return TermSpace.from_encoder(vocabulary, model=model, backend=backend, templates=templates)


def _identify(space) -> dict:
    if space.kind == "encoder":
        info = {"model": space.identity.name, "backend": space.identity.backend}
        templates = space._embedder.templates
        info["templates"] = len(templates) if templates != ("{}",) else 0
        return info
    return {"vectors": space._embedder.source}


def evaluate_word_similarity(path, *, space=None, model: str | None = None, backend: str = "auto", templates=False,
                             case_insensitive: bool = True, restrict_vocab: int | None = None, progress=None) -> dict:
    """Correlate cosine similarity with human word-similarity scores.

    Parameters
    ----------
    path : path-like
        See :func:`read_word_pairs` (MEN, WordSim-353, RG-65, ...).
    space : TermSpace, optional
        Static vectors (:meth:`TermSpace.from_file`) or a ready encoder space; default the
        sentence encoder given by ``model`` / ``backend``, each word encoded alone.
    templates : bool or sequence of str, default=False
        Encoder only: average prompt templates (:data:`~embedspace.relations.wordvectors.WORD_TEMPLATES`).
    case_insensitive : bool, default=True
        Static vectors: gensim's case-insensitive matching.
    restrict_vocab : int, optional
        Static vectors: only the first N keys count as known (gensim's ``restrict_vocab``).

    Returns
    -------
    dict
        ``spearman``, ``pearson``, ``n`` (pairs scored), ``oov`` (pairs skipped because a
        word is out of vocabulary), ``pairs`` (in the file), and the model or vectors.
    """
    from scipy.stats import pearsonr, spearmanr

    words1, words2, gold = read_word_pairs(path)
    space = _resolve_space(space, model, backend, templates)
    space = _restricted(space, restrict_vocab)
    unique = list(dict.fromkeys(words1 + words2))
    vectors, found = space.embed(unique, missing="mask", case_insensitive=case_insensitive, progress=progress)
    row = {w: i for i, w in enumerate(unique)}
    a, b = np.array([row[w] for w in words1]), np.array([row[w] for w in words2])
    known = found[a] & found[b]
    if not known.any():
        raise InputError(f"{path}: every pair has a word the vectors lack ({len(gold)} pairs out of vocabulary)")
    cosine = np.sum(vectors[a[known]] * vectors[b[known]], axis=1)
    result = {
        "spearman": float(spearmanr(gold[known], cosine).statistic),
        "pearson": float(pearsonr(gold[known], cosine).statistic) if known.sum() > 1 else float("nan"),
        "n": int(known.sum()),
        "oov": int((~known).sum()),
        "pairs": int(len(gold)),
    }
    return {**result, **_identify(space)}


def _restricted(space, restrict_vocab):
    return space if restrict_vocab is None else space.restrict(restrict_vocab)


def _candidate_space(space, questions, vocab, restrict_vocab, case_insensitive, progress):
    """The space whose vocabulary holds the candidates, and a label saying what they are."""
    if restrict_vocab is not None:
        if vocab is not None:
            raise InputError("give either a vocabulary or restrict_vocab, not both")
        return _restricted(space, restrict_vocab), f"first {restrict_vocab} keys of the vectors"
    if vocab is not None:
        candidates = space.with_vocabulary(vocab, progress=progress)
        return candidates, f"{candidates.vocabulary_source} ({len(candidates)} terms)"
    first: dict[str, str] = {}
    for word in (w for q in questions for w in q[1:]):
        first.setdefault(word.upper() if case_insensitive else word, word)
    words = list(first.values())
    if space.kind == "static":
        rows = (space._embedder.index(w, case_insensitive) for w in words)
        rows = list(dict.fromkeys(r for r in rows if r is not None))
        if not rows:
            raise InputError(f"none of the analogy file's {len(words)} words is in {space._embedder.describe()}")
        kept = [space._embedder.keys[r] for r in rows]
        candidates = TermSpace(kept, space._embedder.unit[rows], space._embedder, vocabulary_source="the file's words")
    else:
        candidates = space.with_vocabulary(words, progress=progress)
    return candidates, f"the file's own words ({len(candidates)} terms)"


def evaluate_analogy(path, *, space=None, method: str = "add", vocab=None, restrict_vocab: int | None = None,
                     model: str | None = None, backend: str = "auto", templates=False, case_insensitive: bool = True,
                     batch_size: int = 512, progress=None) -> dict:
    """Accuracy on analogy questions a : b :: c : d (the ``questions-words.txt`` layout).

    Parameters
    ----------
    path : path-like
        See :func:`read_analogies`.
    space : TermSpace, optional
        Static vectors or a ready encoder space; default the sentence encoder (``model``,
        ``backend``), each word encoded alone.
    method : {"add", "mul"}, default="add"
        3CosAdd or 3CosMul (:func:`embedspace.relations.operations.analogy_scores`).
    vocab : None, path-like or sequence of str
        Candidate answers; default the file's own words.
    restrict_vocab : int, optional
        Static vectors: candidates are the first N keys (gensim's ``restrict_vocab``).
    templates : bool or sequence of str, default=False
        Encoder only: average prompt templates.
    case_insensitive : bool, default=True
        Compare and exclude words ignoring case (gensim's default).
    batch_size : int, default=512
        Questions scored per matrix product.

    Returns
    -------
    dict
        ``accuracy``, ``n`` (questions scored), ``oov`` (skipped), ``per_section``
        (``{name: {"accuracy", "correct", "n"}}``), ``semantic`` and ``syntactic`` (accuracy
        over the non-``gram`` and the ``gram*`` sections of the Google set; null when the file
        has no ``gram`` section), ``method``, ``candidates`` (what the answers were chosen
        from), and the model or vectors.
    """

    if method not in METHODS:
        raise InputError(f"unknown analogy method '{method}' (choose add or mul)")
    questions = read_analogies(path)
    space = _resolve_space(space, model, backend, templates)
    candidates, label = _candidate_space(space, questions, vocab, restrict_vocab, case_insensitive, progress)
    fold = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
    index: dict[str, int] = {}
    for i, term in enumerate(candidates.terms):
        index.setdefault(fold(term), i)
    keys = np.array([fold(t) for t in candidates.terms], dtype=object)
    family: dict[str, list[int]] = {}  # every candidate spelled like an input is excluded
    for i, key in enumerate(keys):
        family.setdefault(key, []).append(i)
    known = [q for q in questions if all(fold(w) in index for w in q[1:])]
    oov = len(questions) - len(known)
    correct = np.zeros(len(known), dtype=bool)
    vectors = np.asarray(candidates.vectors, dtype=np.float32)
    bar = progress_bar(len(known), "analogies", progress=progress, unit="question")
    for start in range(0, len(known), batch_size):
        block = known[start:start + batch_size]
        rows = np.array([[index[fold(w)] for w in q[1:]] for q in block])
        scores = analogy_scores(vectors, vectors[rows[:, 0]], vectors[rows[:, 1]], vectors[rows[:, 2]], method)
        for j, q in enumerate(block):
            scores[j, [i for w in {fold(w) for w in q[1:4]} for i in family[w]]] = -np.inf
        predicted = keys[np.argmax(scores, axis=1)]
        correct[start:start + len(block)] = predicted == np.array([fold(q[4]) for q in block], dtype=object)
        bar.update(len(block))
    bar.close()
    if not known:
        raise InputError(f"{path}: every question has a word outside the candidates ({oov} out of vocabulary)")
    return {**_accuracies(questions, known, correct), "oov": oov, "method": method, "candidates": label, **_identify(space)}


def _accuracies(questions, known, correct) -> dict:
    per_section: dict[str, dict] = {}
    for q in questions:  # every section of the file, also one whose questions were all oov
        per_section.setdefault(q[0], {"accuracy": None, "correct": 0, "n": 0, "oov": 0})["oov"] += 1
    for q, ok in zip(known, correct):
        entry = per_section[q[0]]
        entry["correct"] += int(ok)
        entry["n"] += 1
        entry["oov"] -= 1
    for entry in per_section.values():
        entry["accuracy"] = entry["correct"] / entry["n"] if entry["n"] else None
    syntactic = np.array([bool(re.match(r"gram", q[0])) for q in known])
    has_gram = syntactic.any()

    def share(mask):
        return float(correct[mask].mean()) if has_gram and mask.any() else None

    return {
        "accuracy": float(correct.mean()),
        "n": int(len(known)),
        "per_section": per_section,
        "semantic": share(~syntactic),
        "syntactic": share(syntactic),
    }
