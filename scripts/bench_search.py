"""Benchmark embedspace search against exact FAISS search, on real sentence embeddings.

What it measures, in one run (run it under ``flock /tmp/embedspace-bench.lock``):

1. **Index kinds** at each size (default 100k and 1M vectors): build time (CPU seconds
   of the process, and wall), RAM growth of the process, bytes per vector of
   ``index.faiss``, queries per CPU-second for a batch of held-out real queries through
   ``Index.search_vectors``, recall@10 against exact search, and the QPS ratio against
   exact search done the plain-library way (``faiss.IndexFlatIP.search`` on the same
   batch, same threads, same run). CPU time is used because on a shared machine the wall
   time measures the neighbours; both are printed.
2. **Filtered search** with a filter that keeps 10% of rows (``bucket == 3``): recall@10
   against exact search over the matching rows.
3. **SciFact** (BEIR, research-only data read by path): nDCG@10 for dense / bm25 /
   hybrid on the test qrels, and the fusion comparison on the *train* qrels.
4. **One CLI query** on a 50k-vector index, as a fresh process, with the time split
   into its parts.

Data: the first 100,000 distinct real sentences of the local corpora (20 Newsgroups,
PTB, AG News, SciFact abstracts; see ``_bench_texts.py``), embedded with the default
model through the shared embedding cache; 1,000 further sentences are the queries.
Sizes above 100k add jittered copies of the real vectors, as FAISS's own benchmarks do:
``normalize(v + noise)`` with isotropic Gaussian noise scaled so that a copy's cosine
to its original equals the median cosine between a real sentence and its nearest real
neighbour (so copies are as close as real neighbours are, not exact duplicates).

Usage::

    flock /tmp/embedspace-bench.lock nice -n 10 python scripts/bench_search.py
    python scripts/bench_search.py --sizes 100000 --skip-scifact --skip-cli   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# FAISS's OpenMP threads sleep instead of spinning while they wait: on a shared machine
# spinning threads burn the CPU time the other thread needs (set before faiss loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_texts  # noqa: E402

REAL = 100_000
QUERIES = 1_000
SCIFACT = _bench_texts.SHARED / "retrieval" / "scifact"


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def jittered(real: np.ndarray, size: int, rng) -> np.ndarray:
    """``real`` followed by jittered copies up to ``size`` rows (see the module docstring)."""
    import faiss

    if size <= len(real):
        return real[:size]
    sample = real[rng.choice(len(real), 1000, replace=False)]
    flat = faiss.IndexFlatIP(real.shape[1])
    flat.add(real)
    scores, _ = flat.search(sample, 2)
    target = float(np.median(scores[:, 1]))  # nearest other real sentence
    sigma = float(np.sqrt(1.0 / target**2 - 1.0))  # |noise| = sigma gives cos = 1/sqrt(1 + sigma^2)
    print(f"jitter: median nearest-neighbour cosine {target:.3f} -> noise norm {sigma:.3f}", flush=True)
    out = np.empty((size, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    for start in range(len(real), size, len(real)):
        stop = min(start + len(real), size)
        base = real[: stop - start]
        noise = rng.standard_normal(base.shape, dtype=np.float32) * (sigma / np.sqrt(real.shape[1]))
        block = base + noise
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t[t >= 0])) / max(len(t[t >= 0]), 1) for f, t in zip(found, truth)]))


def timed(function, repeat: int = 3):
    """Best CPU time (all threads of this process) of ``repeat`` calls, best wall time, and the last result.

    QPS is reported per CPU-second: on a shared machine the wall time depends on what
    else runs, the CPU time that this process spends does not (FAISS threads sleep
    rather than spin, see OMP_WAIT_POLICY above).
    """
    best_cpu, best_wall, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall, result


def bench_size(size, real, queries, kinds, args, rng):
    import faiss
    import pandas as pd

    import embedspace as es
    from embedspace.encoding.encoders import load_encoder

    vectors = jittered(real, size, rng)
    table = pd.DataFrame({"text": [f"row {i}" for i in range(size)], "bucket": rng.integers(0, 10, size)})
    space = es.EmbeddingSet(vectors, table, load_encoder().identity)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    exact_seconds, exact_wall, (_, truth) = timed(lambda: exact.search(queries, 10))
    exact_qps = len(queries) / exact_seconds
    mask = table["bucket"].to_numpy() == 3
    rows = np.flatnonzero(mask)
    sub = faiss.IndexFlatIP(vectors.shape[1])
    sub.add(vectors[rows])
    _, local = sub.search(queries, 10)
    filtered_truth = rows[local]
    exact.reset()
    sub.reset()
    print(f"\n== {size:,} vectors ({min(size, len(real)):,} real) ==  exact (faiss IndexFlatIP, batch of "
          f"{len(queries)}): {exact_qps:,.0f} QPS per CPU-second ({len(queries) / exact_wall:,.0f} per wall second)", flush=True)
    print(f"{'kind':>12} {'build s':>8} {'(wall)':>7} {'RAM MB':>7} {'B/vec':>7} {'QPS/cpu':>8} {'x exact':>8} {'recall@10':>9} "
          f"{'filt rec':>8} {'filt QPS':>9}  params", flush=True)
    results = []
    for kind in kinds:
        budget = args.ivfpq_budget if kind == "auto-budget" else None
        before = rss_bytes()
        started, started_cpu = time.perf_counter(), time.process_time()
        index = es.build_index(space, kind="auto" if kind.startswith("auto") else kind, memory_budget=budget, lexical=False)
        build_wall, build_seconds = time.perf_counter() - started, time.process_time() - started_cpu
        grown = rss_bytes() - before
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            faiss.write_index(index._faiss, os.path.join(tmp, "index.faiss"))
            per_vector = os.path.getsize(os.path.join(tmp, "index.faiss")) / size
        seconds, wall, (_, found) = timed(lambda: index.search_vectors(queries, 10))
        qps = len(queries) / seconds
        filtered_seconds, _, (_, filtered) = timed(lambda: index.search_vectors(queries, 10, where=mask), repeat=1)
        assert np.all(mask[filtered[filtered >= 0]])
        row = {
            "size": size, "kind": kind, "chosen": index.kind, "build_cpu_s": round(build_seconds, 1),
            "build_wall_s": round(build_wall, 1), "ram_mb": round(grown / 1e6), "wall_qps": round(len(queries) / wall),
            "bytes_per_vector": round(per_vector, 1), "qps": round(qps), "x_exact": round(qps / exact_qps, 1),
            "recall@10": round(recall_at(found, truth), 4), "filtered_recall@10": round(recall_at(filtered, filtered_truth), 4),
            "filtered_qps": round(len(queries) / max(filtered_seconds, 1e-9)), "params": index.params, "exact_qps": round(exact_qps),
        }
        results.append(row)
        shown = {k: v for k, v in index.params.items() if k not in ("tuning_queries", "target_recall")}
        label = f"{kind}={index.kind}" if kind.startswith("auto") else kind
        print(f"{label:>12} {row['build_cpu_s']:>8} {row['build_wall_s']:>7} {row['ram_mb']:>7} {row['bytes_per_vector']:>7} "
              f"{row['qps']:>8,} {row['x_exact']:>8} {row['recall@10']:>9} {row['filtered_recall@10']:>8} {row['filtered_qps']:>9,}  {shown}",
              flush=True)
        index = None  # free it before the next kind
    return results


def bench_scifact():
    from embedspace.evaluation.retrieval import evaluate_retrieval

    out = {}
    for split, modes in (("test", ("dense", "bm25", "hybrid")), ("train", ("dense", "bm25", "hybrid"))):
        for mode in modes:
            result = evaluate_retrieval(SCIFACT, mode=mode, split=split, progress=False)
            out[f"{split}/{mode}"] = result
            print(f"scifact {split:5} {mode:6}: ndcg@10 {result['ndcg@10']:.4f} recall@10 {result['recall@10']:.4f} "
                  f"mrr@10 {result['mrr@10']:.4f} ({result['n_queries']} queries)", flush=True)
    out["fusion_on_train"] = fusion_comparison()
    return out


def fusion_comparison():
    """RRF (k = 20, 60, 100) against min-max score blending (w = 0.3 .. 0.7), SciFact train qrels."""
    import pandas as pd

    from embedspace.embeddingset import EmbeddingSet
    from embedspace.encoding.cache import EmbeddingCache
    from embedspace.encoding.encoders import load_encoder
    from embedspace.evaluation.retrieval import _CachedEncoder, load_beir, retrieval_metrics
    from embedspace.search import build_index
    from embedspace.search.lexical import reciprocal_rank_fusion

    data = load_beir(SCIFACT, "train")
    encoder = _CachedEncoder(load_encoder(), EmbeddingCache())
    space = EmbeddingSet(encoder.encode(data.doc_texts), pd.DataFrame({"text": data.doc_texts}), encoder.identity)
    index = build_index(space, kind="flat")
    ids = list(data.queries)
    texts = [data.queries[q] for q in ids]
    dense_scores, dense_rows = index.search_rows(texts, k=100, mode="dense", encoder=encoder)
    bm25_scores, bm25_rows = index.search_rows(texts, k=100, mode="bm25")

    def score(rows):
        ranked = {q: [data.doc_ids[r] for r in found if r >= 0 and data.doc_ids[r] != q][:10] for q, found in zip(ids, rows)}
        return retrieval_metrics(ranked, data.qrels)["ndcg@10"]

    table = {}
    for constant in (20, 60, 100):
        table[f"rrf k={constant}"] = score(reciprocal_rank_fusion([dense_rows, bm25_rows], 10, rrf_k=constant)[1])
    for weight in (0.3, 0.5, 0.7):
        fused = []
        for q in range(len(ids)):
            combined = {}
            for scores, rows, w in ((dense_scores[q], dense_rows[q], weight), (bm25_scores[q], bm25_rows[q], 1 - weight)):
                valid = rows >= 0
                if not valid.any():
                    continue
                s = scores[valid]
                span = float(s.max() - s.min()) or 1.0
                for r, v in zip(rows[valid], (s - s.min()) / span):
                    combined[int(r)] = combined.get(int(r), 0.0) + w * float(v)
            fused.append([r for r, _ in sorted(combined.items(), key=lambda kv: -kv[1])[:10]] + [-1] * 10)
        table[f"minmax w_dense={weight}"] = score(np.array([f[:10] for f in fused]))
    for name, value in table.items():
        print(f"fusion on SciFact train: {name:20} ndcg@10 {value:.4f}", flush=True)
    return table


CLI_PROBE = r"""
import time, sys
t0 = time.perf_counter()
from embedspace.search import load_index
t1 = time.perf_counter()
index = load_index(sys.argv[1])
t2 = time.perf_counter()
encoder = index._query_encoder(None)
vectors = encoder.encode(["graphics cards for linux"], progress=False)
t3 = time.perf_counter()
scores, rows = index.search_vectors(vectors, 10)
t4 = time.perf_counter()
records = index._records(["graphics cards for linux"], scores, rows)
t5 = time.perf_counter()
heavy = [m for m in ("pandas", "torch", "sklearn", "bm25s", "scipy") if m in sys.modules]
print(f"{t1-t0:.3f} {t2-t1:.3f} {t3-t2:.3f} {t4-t3:.3f} {t5-t4:.3f} {','.join(heavy) or '-'}")
"""


def bench_cli(real_texts, real, workdir):
    """Wall time of `embedspace search INDEX QUERY` on a 50k index, in fresh processes."""
    import pandas as pd

    import embedspace as es
    from embedspace.encoding.encoders import load_encoder

    root = Path(workdir) / "cli50k"
    if not (root / "news.index" / "manifest.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        es.EmbeddingSet(real[:50_000], pd.DataFrame({"text": real_texts[:50_000]}), load_encoder().identity).save(root / "s.set", overwrite=True)
        es.build_index(root / "s.set").save(root / "news.index", overwrite=True)
    command = [sys.executable, "-m", "embedspace.cli", "search", str(root / "news.index"), "graphics cards for linux", "-k", "10"]
    subprocess.run(command, capture_output=True, check=True)  # warm the page cache
    walls, cpus = [], []
    for _ in range(5):
        started, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
    start_only = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        start_only.append(time.perf_counter() - started)
    parts = subprocess.run([sys.executable, "-c", CLI_PROBE, str(root / "news.index")], capture_output=True, text=True, check=True).stdout.split()
    names = ("import", "load index (sha256 + faiss read)", "encoder load + encode", "faiss search", "fetch rows (pyarrow)")
    print(f"\nCLI search on a 50,000-vector index: median {statistics.median(walls):.2f} s wall over 5 runs "
          f"(min {min(walls):.2f}), median {statistics.median(cpus):.2f} s CPU (user + sys); bare python start "
          f"{statistics.median(start_only):.2f} s", flush=True)
    for name, value in zip(names, parts):
        print(f"  {name:34} {float(value):.3f} s", flush=True)
    print(f"  heavy modules imported: {parts[-1]}", flush=True)
    return {"median_s": statistics.median(walls), "min_s": min(walls), "median_cpu_s": statistics.median(cpus),
            "parts": dict(zip(names, map(float, parts[:5])))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kinds-small", nargs="+", default=["auto", "flat", "ivf", "ivfpq"], help="auto is hnsw here")
    parser.add_argument("--kinds-large", nargs="+", default=["auto", "auto-budget"])
    parser.add_argument("--ivfpq-budget", default="400MB", help="memory budget of the auto-budget row (forces IVF-PQ at 1M)")
    parser.add_argument("--skip-scifact", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    parser.add_argument("--json", help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    started = time.perf_counter()
    texts, vectors, _ = _bench_texts.embed_pool(QUERIES + REAL)
    queries, real = vectors[:QUERIES], vectors[QUERIES:]
    print(f"{len(real):,} real sentence vectors + {len(queries):,} held-out queries ready "
          f"({time.perf_counter() - started:.0f} s, cached after the first run)", flush=True)
    rng = np.random.default_rng(0)
    report = {"sizes": []}

    def save():  # after every section, so a long run that is stopped keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")

    for size in sorted(s for s in args.sizes if s <= REAL):
        report["sizes"] += bench_size(size, real, queries, args.kinds_small, args, rng)
        save()
    if not args.skip_cli:
        report["cli"] = bench_cli(texts[QUERIES:], real, args.workdir)
        save()
    if not args.skip_scifact:
        report["scifact"] = bench_scifact()
        save()
    for size in sorted(s for s in args.sizes if s > REAL):
        report["sizes"] += bench_size(size, real, queries, args.kinds_large, args, rng)
        save()
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
