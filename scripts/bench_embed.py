"""Benchmark every embedding backend against plain sentence-transformers, in one run.

Why this script exists: the speed of a backend only means something next to the way
people embed text without embedspace, measured on the same machine, in the same run,
over the same real sentences, and next to what it costs in accuracy. So one run

1. loads N distinct real sentences (STS-B train, mean ~18 tokens) and, optionally, a
   second set of long texts (20 Newsgroups posts) to show the effect of length;
2. embeds them with plain ``SentenceTransformer.encode`` (fp32, batch 32, the same
   number of threads) — the reference, both for time and for vectors;
3. embeds them with each embedspace backend, and
4. prints, per backend, throughput divided by the plain library's (median over rounds,
   and the range), mean cosine to the reference vectors, top-10 neighbour overlap
   (each sentence's 10 nearest neighbours by cosine, self excluded, as a fraction kept),
   and the largest absolute difference of any coordinate.

Timings are interleaved (plain library, then every backend, per round) so that a change
of load on a shared machine hits all of them alike; wrap the run in
``flock /tmp/embedspace-bench.lock`` so it never overlaps another timing job. Model
export and quantisation happen during the warm-up, outside the timed region (they are
cached once per model; ``scripts/bench_embed_cli.py`` measures the whole process).

Usage::

    flock /tmp/embedspace-bench.lock python scripts/bench_embed.py            # 6,000 sentences, 3 rounds
    python scripts/bench_embed.py --n 5000 --rounds 5 --backends onnx onnx-int8
    python scripts/bench_embed.py --long 600 --json bench.json
    python scripts/bench_embed.py --backends auto openvino-bf16 --batch-size 32   # one batch size for all
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
STS_TRAIN = REPO.parent / "shared" / "corpora" / "sts" / "stsbenchmark" / "sts-train.csv"


def sts_sentences(n: int, path: Path = STS_TRAIN) -> list[str]:
    """The first ``n`` distinct sentences of STS-B train (columns 6 and 7)."""
    sentences: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            sentences += [fields[5], fields[6]]
    distinct = list(dict.fromkeys(sentences))
    if len(distinct) < n:
        sys.exit(f"error: only {len(distinct)} distinct sentences in {path}, asked for {n}")
    return distinct[:n]


def newsgroup_posts(n: int) -> list[str]:
    """The first ``n`` posts of the shipped 20 Newsgroups corpus (long texts)."""
    import embedspace as es

    return es.read("corpus:20newsgroups")["text"].tolist()[:n]


def top_k(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of each row's k nearest rows by cosine (self excluded), unordered."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, k, axis=1)[:, :k]


def compare(vectors: np.ndarray, reference: np.ndarray, ref_top: np.ndarray, k: int = 10) -> dict:
    """Mean cosine, top-k neighbour overlap and max |delta| of ``vectors`` against the reference."""
    top = top_k(vectors, k)
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_top, top)])
    cos = np.sum(vectors * reference, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
    return {
        "overlap": float(overlap),
        "mean_cos": float(cos.mean()),
        "min_cos": float(cos.min()),
        "max_abs_delta": float(np.abs(vectors - reference).max()),
    }


def _threads() -> int:
    from embedspace.encoding.backends import encoder_threads as embedspace_threads

    return embedspace_threads()


class PlainLibrary:
    """Plain ``SentenceTransformer.encode``: fp32, batch 32, same thread count."""

    name = "plain sentence-transformers"

    def __init__(self, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        from embedspace.encoding.encoders import resolve_model

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(resolve_model()[1]), device="cpu", local_files_only=True)

    def encode(self, texts):
        return self.model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True)


class Backend:
    """One embedspace backend through the public encoder API."""

    def __init__(self, backend: str, batch_size: int | None):
        from embedspace.encoding.encoders import load_encoder

        self.encoder = load_encoder(backend=backend, batch_size=batch_size)
        name = backend if backend != "auto" else f"auto ({self.encoder.backend})"
        self.name = f"{name} b{self.encoder.batch_size}"

    def encode(self, texts):
        return self.encoder.encode(texts, progress=False)


def timed(runner, texts) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = runner.encode(texts)
    return np.asarray(vectors, dtype=np.float32), time.perf_counter() - started


def run_set(label: str, texts: list[str], runners: list, rounds: int) -> list[dict]:
    """Time every runner ``rounds`` times, interleaved, and compare to the first (plain)."""
    for runner in runners:  # warm-up: builds/caches exported and quantised models, untimed
        runner.encode(texts[:64])
    seconds = {r.name: [] for r in runners}
    vectors = {}
    for round_no in range(rounds):
        for runner in runners:
            vecs, dt = timed(runner, texts)
            seconds[runner.name].append(dt)
            vectors.setdefault(runner.name, vecs)
        print(f"[{label}] round {round_no + 1}/{rounds}: "
              + ", ".join(f"{r.name} {len(texts) / seconds[r.name][-1]:.0f}/s" for r in runners),
              file=sys.stderr, flush=True)
    plain = runners[0].name
    reference = vectors[plain]
    ref_top = top_k(reference)
    rows = []
    for runner in runners:
        # speed-up per round (same round = same machine load), then median and range
        ratios = [p / s for p, s in zip(seconds[plain], seconds[runner.name])]
        row = {
            "set": label, "backend": runner.name, "n": len(texts),
            "texts_per_s": len(texts) / statistics.median(seconds[runner.name]),
            "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
            "seconds": [round(s, 3) for s in seconds[runner.name]],
        }
        row.update(compare(vectors[runner.name], reference, ref_top))
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    header = f"{'set':<7} {'backend':<26} {'texts/s':>8} {'x plain':>8} {'(range)':>13} {'top10':>7} {'mean cos':>9} {'max|d|':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        spread = f"{r['speedup_min']:.2f}-{r['speedup_max']:.2f}"
        print(f"{r['set']:<7} {r['backend']:<26} {r['texts_per_s']:>8.0f} {r['speedup']:>7.2f}x {spread:>13} "
              f"{r['overlap']:>7.4f} {r['mean_cos']:>9.6f} {r['max_abs_delta']:>9.2e}")


def main(argv=None) -> int:
    from embedspace.encoding.encoders import BACKENDS, default_backend

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="distinct STS-B train sentences (default 6000)")
    parser.add_argument("--long", type=int, default=0, metavar="N", help="also run N 20 Newsgroups posts")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per backend (default 3)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="texts per forward pass for every backend (default: each backend's own, "
                             "embedspace.encoding.encoders.default_batch_size; the plain library always uses 32)")
    parser.add_argument("--backends", nargs="+", default=[b for b in BACKENDS if b not in ("auto", "torch")],
                        help="embedspace backends to measure (default: all but torch)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    threads = _threads()
    print(f"threads {threads}; default backend on this machine: {default_backend()}", file=sys.stderr)
    runners = [PlainLibrary(threads)] + [Backend(b, args.batch_size) for b in args.backends]
    rows = run_set("sts", sts_sentences(args.n), runners, args.rounds)
    if args.long:
        rows += run_set("20news", newsgroup_posts(args.long), runners, args.rounds)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
