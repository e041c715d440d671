"""BEIR retrieval evaluation: metric arithmetic, the loader, and a real SciFact subset."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from helpers import SHARED
from embedspace import InputError, evaluate_retrieval
from embedspace.evaluation.retrieval import load_beir, retrieval_metrics

SCIFACT = SHARED / "retrieval" / "scifact"


def test_metrics_by_hand():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d5": 2, "d2": 1}, "q3": {"d4": 1}}
    ranked = {"q1": ["d2", "d1", "d4", "d3"], "q2": ["d5", "d2"], "q3": []}
    result = retrieval_metrics(ranked, qrels, k=10)
    q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert result["ndcg@10"] == pytest.approx((q1 + 1 + 0) / 3, abs=1e-4)
    assert result["recall@10"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["mrr@10"] == pytest.approx(0.5, abs=1e-4)
    assert result["n_queries"] == 3
    assert retrieval_metrics({"q1": ["d3", "x", "d1"]}, {"q1": {"d1": 1, "d3": 1}}, k=1) == {
        "ndcg@1": 1.0, "recall@1": 0.5, "mrr@1": 1.0, "n_queries": 1}


def test_graded_gains_are_linear_as_in_trec_eval():
    # one query, relevance 2 at rank 2 and 1 at rank 1: DCG = 1 + 2/log2(3); ideal = 2 + 1/log2(3)
    result = retrieval_metrics({"q": ["a", "b", "c"]}, {"q": {"a": 1, "b": 2}})
    assert result["ndcg@10"] == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)), abs=1e-4)


def _write_beir(root, docs, queries, qrels, *, gz=False, header=True):
    root.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(d) + "\n" for d in docs)
    if gz:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        (root / "corpus.jsonl").write_text(lines, encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    rows = ["query-id\tcorpus-id\tscore"] if header else []
    rows += [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_loader_joins_title_and_text_and_keeps_judged_queries(tmp_path):
    root = _write_beir(
        tmp_path / "b",
        [{"_id": "1", "title": "Cats", "text": "purr loudly. "}, {"_id": "2", "title": "", "text": " Dogs bark"}],
        [{"_id": "a", "text": "what purrs"}, {"_id": "b", "text": "unjudged"}, {"_id": "c", "text": "zero only"}],
        [("a", "1", 1), ("c", "2", 0)],
        gz=True,
    )
    data = load_beir(root)
    assert data.doc_ids == ["1", "2"] and data.doc_texts == ["Cats purr loudly.", "Dogs bark"]
    assert data.queries == {"a": "what purrs"} and data.qrels == {"a": {"1": 1}}


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "qrels" / "test.tsv").unlink(), "no qrels/test.tsv"),
    (lambda r: (r / "corpus.jsonl").unlink(), "no corpus.jsonl"),
    (lambda r: (r / "corpus.jsonl").write_text('{"_id": "1", "text": "a"}\n{"text": \n'), "line 2: invalid JSON"),
    (lambda r: (r / "queries.jsonl").write_text('{"text": "no id"}\n'), "needs an '_id'"),
    (lambda r: (r / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\n"), "line 2: expected"),
    (lambda r: (r / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nzz\t1\t1\n"), "none of the judged queries"),
])
def test_loader_refuses_broken_folders(tmp_path, damage, message):
    root = _write_beir(tmp_path / "b", [{"_id": "1", "title": "t", "text": "x"}], [{"_id": "q", "text": "x"}], [("q", "1", 1)])
    damage(root)
    with pytest.raises(InputError, match=message):
        load_beir(root)


@pytest.fixture(scope="module")
def scifact_subset(tmp_path_factory):
    """12 SciFact test queries, their cited abstracts and 24 other abstracts, in BEIR layout."""
    qrels = [line.rstrip("\n").split("\t") for line in open(SCIFACT / "qrels" / "test.tsv", encoding="utf-8")][1:]
    chosen = list(dict.fromkeys(q for q, _, _ in qrels))[:12]
    pairs = [(q, d, int(s)) for q, d, s in qrels if q in chosen]
    relevant = {d for _, d, _ in pairs}
    docs, others = [], 0
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in relevant or others < 24:
                others += doc["_id"] not in relevant
                docs.append(doc)
    queries = [json.loads(line) for line in open(SCIFACT / "queries.jsonl", encoding="utf-8")]
    return _write_beir(tmp_path_factory.mktemp("scifact") / "beir", docs, [q for q in queries if q["_id"] in chosen], pairs)


def test_scifact_subset_in_every_mode(scifact_subset, encoder):
    scores = {mode: evaluate_retrieval(scifact_subset, mode=mode, encoder=encoder) for mode in ("dense", "bm25", "hybrid")}
    for mode, result in scores.items():
        assert result["n_queries"] == 12 and result["mode"] == mode and result["kind"] == "flat"
        assert 0.0 <= result["ndcg@10"] <= 1.0 and 0.0 <= result["mrr@10"] <= 1.0
    # every cited abstract is among 60 documents: each ranking finds most of them
    assert min(result["ndcg@10"] for result in scores.values()) >= 0.6


def test_eval_retrieval_cli_keys(cli, scifact_subset):
    status, out, err = cli("eval", "retrieval", scifact_subset, "--mode", "hybrid", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert {"ndcg@10", "recall@10", "mrr@10", "n_queries"} <= set(result) and result["n_queries"] == 12
    status, out, _ = cli("eval", "retrieval", scifact_subset)
    assert status == 0 and out.startswith("ndcg@10 ")
