"""``embedspace relate ...``: how words and phrases relate; ``eval word-sim`` and ``eval analogy``.

Every verb works on the default sentence encoder (with the shipped 30,000-word English
vocabulary as candidates) or, with ``--vectors FILE``, on classic word2vec / GloVe vectors.
Terms may be phrases: quote them (``"ice cream"``).
"""

from __future__ import annotations

import sys

from embedspace._fs import FILE, check_output_path
from embedspace.cli._common import add_command, emit_json, positive_int, print_table, progress_of
from embedspace.encoding import BACKENDS
from embedspace.errors import InputError
from embedspace.evaluation import evaluate_analogy, evaluate_word_similarity
from embedspace.relations import (
    TermSpace,
    analogy,
    axis,
    neighbors,
    odd_one_out,
    plot_axis,
    plot_similarity_heatmap,
    similarity,
    similarity_matrix,
)


def _term_space_options(parser, *, vocabulary: bool = True) -> None:
    parser.add_argument("--vectors", metavar="FILE", help="word2vec (text or binary) or GloVe vectors to use instead of the sentence encoder")
    if vocabulary:
        parser.add_argument("--vocab", metavar="FILE", help="candidate terms: a word list (one per line) or an EmbeddingSet "
                            "(default: the shipped 30,000 English words, or every key of --vectors)")
    parser.add_argument("--model", default=None, help="sentence-transformers model folder or cached name (default: all-MiniLM-L6-v2)")

    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="encoder backend (default auto)")
    parser.add_argument("--templates", action="store_true", help="embed each term as the average of a few prompt templates "
                        "(better word similarity with sentence models)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _space(args, *, candidates: bool):
    """The TermSpace the options ask for; ``candidates`` says whether a vocabulary is needed."""

    vocab = getattr(args, "vocab", None)
    if args.vectors:
        given = [flag for flag, on in (("--model", args.model), ("--templates", args.templates), ("--backend", args.backend != "auto")) if on]
        if given:
            raise InputError(f"{' and '.join(given)} apply to the sentence encoder, not to --vectors; drop {'them' if len(given) > 1 else 'it'}")
        space = TermSpace.from_file(args.vectors)
        return space.with_vocabulary(vocab) if vocab and candidates else space
    vocabulary = (vocab or "default") if candidates else None
    return TermSpace.from_encoder(vocabulary, model=args.model, backend=args.backend, templates=args.templates, progress=progress_of(args))


def _check_plot(args) -> None:
    if getattr(args, "plot", None):
        check_output_path(args.plot, overwrite=args.overwrite, inputs=[args.vectors, getattr(args, "vocab", None)], kind=FILE)


def _say_wrote(args) -> None:
    """Say where the picture went (``--json`` carries it as ``plot``; ``--quiet`` says nothing)."""
    if not args.json and not args.quiet:
        print(f"wrote {args.plot}", file=sys.stderr)


def _plot_options(parser) -> None:
    parser.add_argument("--plot", metavar="PNG", help="also draw a picture to this PNG file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def _rows(frame) -> list[dict]:
    return frame.to_dict(orient="records")


# --- handlers -----------------------------------------------------------------------------------
def _run_neighbors(args) -> int:
    table = neighbors(args.terms, k=args.k, space=_space(args, candidates=True))
    if args.json:
        emit_json({"k": args.k, "queries": [
            {"query": q, "neighbors": _rows(group.drop(columns="query"))} for q, group in table.groupby("query", sort=False)
        ]})
    else:
        print_table(table.round({"score": 4}))
    return 0


def _run_similarity(args) -> int:
    if not args.matrix:
        if len(args.terms) != 2 or args.plot:
            raise InputError("similarity takes exactly two terms A B; for more (or --plot) use --matrix TERM...")
        value = similarity(args.terms[0], args.terms[1], space=_space(args, candidates=False))
        if args.json:
            emit_json({"a": args.terms[0], "b": args.terms[1], "similarity": value})
        else:
            print(f"cosine({args.terms[0]!r}, {args.terms[1]!r}) = {value:.4f}")
        return 0
    _check_plot(args)
    matrix = similarity_matrix(args.terms, space=_space(args, candidates=False))
    if args.plot:
        plot_similarity_heatmap(matrix, args.plot, overwrite=args.overwrite)
        _say_wrote(args)
    if args.json:
        emit_json({"terms": list(matrix.index), "matrix": matrix.to_numpy().tolist(), "plot": args.plot})
    else:
        print_table(matrix.round(3).reset_index(names=""))
    return 0


def _run_analogy(args) -> int:
    table = analogy(args.a, args.b, args.c, k=args.k, method=args.method, space=_space(args, candidates=True))
    if args.json:
        emit_json({"a": args.a, "b": args.b, "c": args.c, "method": args.method, "results": _rows(table)})
    else:
        print(f"{args.a} : {args.b} :: {args.c} : ?   (3Cos{args.method.capitalize()})")
        print_table(table.round({"score": 4}))
    return 0


def _run_odd_one_out(args) -> int:
    table = odd_one_out(args.terms, space=_space(args, candidates=False))
    odd = str(table.loc[table["odd"], "term"].iloc[0])
    if args.json:
        emit_json({"odd": odd, "terms": _rows(table)})
    else:
        print(f"odd one out: {odd}")
        print_table(table.round({"centroid_similarity": 4, "mean_similarity": 4}))
    return 0


def _run_axis(args) -> int:
    pos, neg, terms = _split(args.pos), _split(args.neg), list(args.terms)
    if bool(pos) != bool(neg):
        raise InputError("give both --pos and --neg (comma-separated poles), or neither and POS NEG as the first two terms")
    if not pos:
        if len(terms) < 3:
            raise InputError(f"axis needs POS NEG and at least one TERM, got {len(terms)} argument(s): {' '.join(terms) or '(none)'}")
        pos, neg, terms = [terms[0]], [terms[1]], terms[2:]
    y_pos, y_neg = _split(args.y_pos), _split(args.y_neg)
    if bool(y_pos) != bool(y_neg):
        raise InputError("a second axis needs both --y-pos and --y-neg")
    _check_plot(args)
    space = _space(args, candidates=True)
    x = axis(pos, neg, terms, space=space, permutations=args.permutations, seed=args.seed)
    y = axis(y_pos, y_neg, terms, space=space, permutations=args.permutations, seed=args.seed) if y_pos else None
    if args.plot:
        plot_axis(x, args.plot, y=y, overwrite=args.overwrite)
        _say_wrote(args)
    if args.json:
        emit_json({**x.to_dict(), "y": y.to_dict() if y else None, "plot": args.plot})
        return 0
    for result in filter(None, (x, y)):
        p = "n/a" if result.p_value != result.p_value else f"{result.p_value:.4g}"
        print(f"axis {result.name}: permutation p = {p} ({result.permutations} random axes), rms cosine {result.statistic:.4f}")
        print_table(result.table.round({"score": 4, "position": 4}))
    return 0


# --- registration -------------------------------------------------------------------------------
def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "relate",
        help="word and phrase relations: neighbors, similarity, analogy, odd-one-out, axis",
        description="How words and phrases relate in the semantic space (or in --vectors word vectors). "
                    "Quote phrases: \"ice cream\".",
        epilog="examples:\n  embedspace relate analogy man king woman\n  embedspace relate axis good bad excellent terrible mediocre",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="relation", metavar="RELATION", parser_class=type(parser))
    verbs.required = True

    p = add_command(verbs, "neighbors", help="nearest terms in the vocabulary",
                    description="List the k nearest vocabulary terms of each TERM (the term itself excluded).",
                    examples=["embedspace relate neighbors king \"ice cream\" -k 5",
                              "embedspace relate neighbors king --vectors glove.6B.50d.txt --json"],
                    handler=_run_neighbors, aliases=("neighbours",))
    p.add_argument("terms", nargs="+", metavar="TERM")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours per term (default 10)")
    _term_space_options(p)

    p = add_command(verbs, "similarity", help="cosine similarity of two terms, or a matrix",
                    description="Cosine similarity of A and B, or with --matrix of every pair of TERMs (--plot draws a heatmap).",
                    examples=["embedspace relate similarity cat dog",
                              "embedspace relate similarity --matrix cat dog car truck --plot sim.png"],
                    handler=_run_similarity)
    p.add_argument("terms", nargs="+", metavar="TERM")
    p.add_argument("--matrix", action="store_true", help="similarity of every pair of the terms")
    _plot_options(p)
    _term_space_options(p, vocabulary=False)

    p = add_command(verbs, "analogy", help="a : b :: c : ?",
                    description="Answer 'A is to B as C is to ?' with 3CosAdd (--method add) or 3CosMul (--method mul); "
                                "A, B and C are never answers.",
                    examples=["embedspace relate analogy man king woman", "embedspace relate analogy paris france tokyo --method mul -k 3"],
                    handler=_run_analogy)
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("c", metavar="C")
    p.add_argument("-k", type=positive_int, default=10, help="answers to list (default 10)")
    p.add_argument("--method", choices=("add", "mul"), default="add", help="3CosAdd or 3CosMul (default add)")
    _term_space_options(p)

    p = add_command(verbs, "odd-one-out", help="the term that does not belong",
                    description="Pick the TERM least similar to the centroid of all of them (gensim's doesnt_match).",
                    examples=["embedspace relate odd-one-out breakfast lunch dinner car"], handler=_run_odd_one_out)
    p.add_argument("terms", nargs="+", metavar="TERM")
    _term_space_options(p, vocabulary=False)

    p = add_command(verbs, "axis", help="project terms on the direction between two poles",
                    description="Score TERMs on the axis from NEG to POS: cosine with the direction and position "
                                "(-1 at NEG, +1 at POS), with a permutation-test p-value (random vocabulary words "
                                "in place of the poles). --pos/--neg take comma-separated sets of poles.",
                    examples=["embedspace relate axis good bad excellent terrible mediocre",
                              "embedspace relate axis --pos good,great --neg bad,awful fine superb dreadful --plot axis.png",
                              "embedspace relate axis man woman king queen doctor nurse --y-pos rich --y-neg poor --plot two.png"],
                    handler=_run_axis)
    p.add_argument("terms", nargs="*", metavar="TERM", help="POS NEG TERM... (or TERM... with --pos/--neg)")
    p.add_argument("--pos", help="comma-separated positive poles")
    p.add_argument("--neg", help="comma-separated negative poles")
    p.add_argument("--y-pos", help="positive pole(s) of a second (vertical) axis for --plot")
    p.add_argument("--y-neg", help="negative pole(s) of the second axis")
    p.add_argument("--permutations", type=int, default=1000, help="random axes for the p-value (default 1000; 0 skips)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random axes (default 0)")
    _plot_options(p)
    _term_space_options(p)


def register_eval(verbs) -> None:
    """Add ``eval word-sim`` and ``eval analogy``."""
    p = add_command(verbs, "word-sim", help="word similarity: spearman, n, oov",
                    description="Spearman correlation of cosine similarity with human scores. FILE has lines "
                                "'word1 word2 score' (tab, space or comma separated; an optional header). Words are "
                                "encoded alone unless --templates; with --vectors, pairs with a missing word are "
                                "counted in oov and skipped.",
                    examples=["embedspace eval word-sim corpora/word_similarity/MEN_dataset_natural_form_full",
                              "embedspace eval word-sim wordsim353.csv --templates --json",
                              "embedspace eval word-sim men.txt --vectors glove.6B.300d.txt"],
                    handler=_run_word_sim)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--restrict-vocab", type=positive_int, metavar="N", help="with --vectors: only the first N keys are known (gensim)")
    p.add_argument("--case-sensitive", action="store_true", help="with --vectors: match words exactly (default: ignore case, as gensim)")
    _term_space_options(p, vocabulary=False)

    p = add_command(verbs, "analogy", help="word analogies: accuracy, n, per_section",
                    description="Accuracy on 'a b c d' questions (questions-words.txt layout: ': section' lines). "
                                "Candidate answers are the file's own words unless --vocab (or --restrict-vocab with "
                                "--vectors) says otherwise; questions with a word outside the candidates count as oov.",
                    examples=["embedspace eval analogy corpora/analogy/questions-words.txt",
                              "embedspace eval analogy questions-words.txt --method mul --json",
                              "embedspace eval analogy questions-words.txt --vectors glove.txt --restrict-vocab 30000"],
                    handler=_run_analogy_eval)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--method", choices=("add", "mul"), default="add", help="3CosAdd or 3CosMul (default add)")
    p.add_argument("--restrict-vocab", type=positive_int, metavar="N", help="with --vectors: candidates are the first N keys (gensim)")
    p.add_argument("--case-sensitive", action="store_true", help="compare words exactly (default: ignore case, as gensim)")
    _term_space_options(p)


def _eval_space(args):
    if args.restrict_vocab and not args.vectors:
        raise InputError("--restrict-vocab applies to --vectors word vectors")
    return _space(args, candidates=False) if args.vectors else None


def _run_word_sim(args) -> int:
    result = evaluate_word_similarity(
        args.file, space=_eval_space(args), model=args.model, backend=args.backend, templates=args.templates,
        case_insensitive=not args.case_sensitive, restrict_vocab=args.restrict_vocab, progress=progress_of(args),
    )
    if args.json:
        emit_json(result)
    else:
        print(f"spearman {result['spearman']:.4f}  pearson {result['pearson']:.4f}  n {result['n']}  oov {result['oov']}")
    return 0


def _run_analogy_eval(args) -> int:
    result = evaluate_analogy(
        args.file, space=_eval_space(args), method=args.method, vocab=args.vocab, restrict_vocab=args.restrict_vocab,
        model=args.model, backend=args.backend, templates=args.templates, case_insensitive=not args.case_sensitive,
        progress=progress_of(args),
    )
    if args.json:
        emit_json(result)
        return 0
    print(f"accuracy {result['accuracy']:.4f}  n {result['n']}  oov {result['oov']}  (3Cos{args.method.capitalize()}; "
          f"candidates: {result['candidates']})")
    import pandas as pd

    sections = pd.DataFrame([{"section": name, **entry} for name, entry in result["per_section"].items()])
    print_table(sections.round({"accuracy": 4}))
    if result["semantic"] is not None:
        print(f"semantic {result['semantic']:.4f}  syntactic {result['syntactic']:.4f}")
    return 0
