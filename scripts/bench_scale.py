"""Embed a million short texts with bounded memory, locally and on Ray; predict cluster throughput.

Why this script exists: issue 8 promises that ``embedspace embed`` streams — memory flat in
n, throughput that of the encoder itself — and that Ray adds workers at a known cost. Each
claim is measured here, in one run, against the plain way in the same run:

1. **Texts** (:func:`short_texts`): sentences of the shipped and shared corpora — 20 Newsgroups
   bodies (all 18,846 posts; headers, quoted lines, signatures dropped), PTB train/valid/test,
   AG News test (titles and descriptions), the SciFact corpus — split after ``.``, ``!`` or
   ``?`` followed by white space (``scripts/_bench_texts.py``); each sentence is cut into
   windows of up to 8 words starting at every 4th word (windows of fewer than 4 words
   dropped); deduplicated (first occurrence kept), shuffled with seed 0, the first ``--n``
   kept and written to ``texts.parquet``. All distinct, so every text is really embedded.
2. **Plain rate**: ``encoder.encode`` of the default model and backend on a random 20,000-text
   subset, in memory, no cache, no I/O — the encoder's own rate.
3. **Streaming** (child process): :func:`embedspace.encoding.pipeline.embed_to_disk` of all ``--n``
   texts into a set, with a FRESH cache directory (``--cache-dir``, deleted afterwards), so
   the figure is uncached; peak RSS of the whole process tree is sampled with psutil every
   0.2 s; CPU seconds are those of the tree.
4. **Driver I/O rate**: reading the parquet in chunks and appending (zero) vectors to a set —
   the work left to the driver of a Ray run; it caps what any number of workers can give.
5. **Ray** (child processes, local cluster of this machine's CPUs, no cache): the same
   slice of ``--ray-n`` texts embedded locally and with ``--engine ray`` (one actor of 2
   threads, the default here) gives Ray's overhead; one actor of 1 thread and two actors of 1
   thread on ``--ray-rate-n`` texts give the per-worker rate and the 1 -> 2 worker efficiency.

Throughput model for W one-CPU workers: ``min(W * r1 * e, driver_rate)``, where ``r1`` is
the rate of one actor with one CPU and ``e`` the efficiency from 1 to 2 actors. ``e`` is
given two ways: by wall time (``r2 / (2 r1)``; on this shared 2-core machine it also holds
the driver's, Ray's daemons' and other users' use of the same two cores) and by CPU time
(CPU-s per text of one actor over that of two — what is left of the loss when each worker
has its own CPU, as on separate nodes). The cap is the driver's read + write rate (stage 4),
since every row passes through the driver once.

Run it under the shared lock (timings of two jobs must not overlap)::

    flock /tmp/embedspace-bench.lock python scripts/bench_scale.py --n 1000000 --json scale.json
    python scripts/bench_scale.py --n 50000 --ray-n 20000 --ray-rate-n 10000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

WINDOW = 8
STRIDE = 4
MIN_WORDS = 4


def short_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct short texts: 4-8 word windows of the corpora's sentences (see the module notes)."""
    from _bench_texts import SHARED, _ag_news, _news_sentences, _ptb_sentences, _scifact_sentences

    seen: dict[str, None] = {}
    for source in (_news_sentences(), _ptb_sentences(SHARED), _ag_news(SHARED), _scifact_sentences(SHARED)):
        for sentence in source:
            words = sentence.split()
            for start in range(0, max(1, len(words) - MIN_WORDS + 1), STRIDE):
                window = words[start:start + WINDOW]
                if len(window) >= MIN_WORDS:
                    seen.setdefault(" ".join(window), None)
    pool = list(seen)
    if len(pool) < n:
        sys.exit(f"error: the corpora give {len(pool):,} distinct short texts, fewer than --n {n:,}")
    random.Random(seed).shuffle(pool)
    return pool[:n]


# --- child-process stages ----------------------------------------------------------------------
def _stage(args) -> None:
    """Run one measured stage in this (child) process; print its JSON result on stdout."""
    from embedspace.encoding.pipeline import embed_to_disk

    result = {}
    started = time.perf_counter()
    if args.stage == "stream":
        summary = embed_to_disk(args.input, args.output, overwrite=True, progress=False, cache=not args.no_cache)
        result = {"n": summary.n, "n_cached": summary.n_cached, "backend": summary.backend}
    elif args.stage == "ray":
        from embedspace.distributed.session import embed_with_ray, ray_session

        ray_session(num_cpus=os.cpu_count())
        result["ray_init_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()  # rates below exclude the cluster start (actor start-up is included)
        summary = embed_with_ray(args.input, args.output, overwrite=True, progress=False, cache=False,
                                 workers=args.workers, threads_per_worker=args.threads)
        result.update(n=summary.n, backend=summary.backend, workers=args.workers, threads=args.threads)
    elif args.stage == "io":
        import numpy as np

        from embedspace.embeddingset import EmbeddingSetWriter
        from embedspace.sources import iter_chunks

        rows = 0
        with EmbeddingSetWriter(args.output, dim=384, model=None, overwrite=True) as writer:
            for chunk in iter_chunks(args.input):
                writer.append(np.zeros((len(chunk), 384), dtype=np.float32), chunk)
                rows += len(chunk)
        result = {"n": rows}
    result["seconds_inside"] = time.perf_counter() - started
    print(json.dumps(result))


def _cached(cache_dir: Path | None) -> int | None:
    import sqlite3

    path = cache_dir / "embeddings.sqlite" if cache_dir else None
    if path is None or not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return None


def _measure(argv: list[str], env: dict | None = None, watch_cache: Path | None = None, report_every: float = 60.0) -> dict:
    """Run a stage in a child; sample the RSS and CPU of its whole process tree.

    Every ``report_every`` seconds a line with the elapsed time, the vectors in
    ``watch_cache`` and the peak RSS so far goes to stderr (a partial figure if the run is cut).
    """
    import psutil

    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or os.environ.copy())
    root = psutil.Process(proc.pid)
    peak, cpu_seen, reported = 0, {}, started
    while proc.poll() is None:
        if time.perf_counter() - reported >= report_every:
            reported = time.perf_counter()
            print(f"  ... {reported - started:.0f} s: {_cached(watch_cache)} vectors cached, tree CPU "
                  f"{sum(cpu_seen.values()):.0f} s, peak RSS {peak / 1e9:.2f} GB", file=sys.stderr, flush=True)
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss = 0
        for member in tree:
            try:
                with member.oneshot():
                    rss += member.memory_info().rss
                    times = member.cpu_times()
                    cpu_seen[member.pid] = times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
        peak = max(peak, rss)
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"error: stage {argv[1]} failed:\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result.update(wall_s=round(wall, 2), cpu_s=round(sum(cpu_seen.values()), 2), peak_rss_gb=round(peak / 1e9, 3))
    result["rate"] = round(result["n"] / wall, 1)
    result["cpu_s_per_1k"] = round(1000 * result["cpu_s"] / result["n"], 3)
    return result


def _plain_rate(texts: list[str]) -> dict:
    """The default encoder's own rate on ``texts``, in memory, no cache."""
    import resource

    from embedspace.encoding.encoders import load_encoder

    encoder = load_encoder()
    encoder.encode(texts[:256])  # warm-up (compilation, first allocations)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    encoder.encode(texts)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {"n": len(texts), "backend": encoder.identity.backend, "wall_s": round(wall, 2), "cpu_s": round(cpu_s, 2),
            "rate": round(len(texts) / wall, 1), "cpu_s_per_1k": round(1000 * cpu_s / len(texts), 3)}


def _write_texts(texts: list[str], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": texts}), path, row_group_size=20_000)


def predicted(r1: float, efficiency: float, driver_rate: float, workers=(1, 4, 16)) -> list[dict]:
    """Rows of the throughput table: ``min(W * r1 * efficiency, driver_rate)`` (efficiency 1 for one worker)."""
    rows = []
    for w in workers:
        raw = r1 * w * (1.0 if w == 1 else min(1.0, efficiency))
        rows.append({"workers": w, "texts_per_s": round(min(raw, driver_rate), 1), "capped_by_driver": raw > driver_rate,
                     "hours_per_100M": round(1e8 / min(raw, driver_rate) / 3600, 1)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="texts streamed (default 1,000,000)")
    parser.add_argument("--plain-n", type=int, default=20_000, help="subset for the plain encoder rate")
    parser.add_argument("--ray-n", type=int, default=100_000, help="slice embedded locally and on Ray (overhead)")
    parser.add_argument("--ray-rate-n", type=int, default=20_000, help="slice for the 1- and 2-worker rates")
    parser.add_argument("--work", type=Path, default=Path("/tmp/embedspace-scale"), help="scratch folder (deleted)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/scale-cache"), help="fresh cache (deleted)")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--stage", choices=("stream", "ray", "io"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        _stage(args)
        return 0

    for folder in (args.work, args.cache_dir):
        if folder.exists():
            sys.exit(f"error: {folder} exists; remove it first (the figures need a fresh cache and scratch folder)")
    args.work.mkdir(parents=True)
    results: dict = {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    try:
        started = time.perf_counter()
        texts = short_texts(args.n)
        words = [len(t.split()) for t in texts[:100_000]]
        results["texts"] = {"n": len(texts), "mean_words": round(sum(words) / len(words), 2),
                            "build_s": round(time.perf_counter() - started, 1)}
        source = args.work / "texts.parquet"
        _write_texts(texts, source)
        print(f"{len(texts):,} distinct short texts (mean {results['texts']['mean_words']} words) -> {source}", flush=True)

        plain = _plain_rate(random.Random(1).sample(texts, min(args.plain_n, len(texts))))
        results["plain"] = plain
        print(f"plain encoder ({plain['backend']}) on {plain['n']:,}: {plain['rate']:.0f} texts/s, "
              f"{plain['cpu_s_per_1k']:.2f} CPU-s per 1k", flush=True)

        env = dict(os.environ, EMBEDSPACE_CACHE_DIR=str(args.cache_dir))
        models = Path(os.environ.get("EMBEDSPACE_CACHE_DIR", Path.home() / ".cache" / "embedspace")) / "models"
        args.cache_dir.mkdir(parents=True)
        if models.is_dir():
            (args.cache_dir / "models").symlink_to(models)  # the exported model, not vectors
        if not args.skip_stream:
            stream = _measure(["--stage", "stream", "--input", str(source), "--output", str(args.work / "big.set")], env,
                              watch_cache=args.cache_dir)
            stream["vs_plain_rate"] = round(stream["rate"] / plain["rate"], 3)
            stream["vs_plain_cpu"] = round(plain["cpu_s_per_1k"] / stream["cpu_s_per_1k"], 3)
            results["stream"] = stream
            print(f"streaming embed_to_disk of {stream['n']:,} (fresh cache): {stream['rate']:.0f} texts/s "
                  f"({stream['vs_plain_rate']:.2f}x plain by wall, {stream['vs_plain_cpu']:.2f}x by CPU), "
                  f"{stream['cpu_s_per_1k']:.2f} CPU-s per 1k, peak RSS {stream['peak_rss_gb']:.2f} GB", flush=True)
            shutil.rmtree(args.work / "big.set", ignore_errors=True)
        io = _measure(["--stage", "io", "--input", str(source), "--output", str(args.work / "io.set")], env)
        results["driver_io"] = io
        print(f"driver read+write only: {io['rate']:.0f} rows/s", flush=True)
        shutil.rmtree(args.work / "io.set", ignore_errors=True)

        if not args.skip_ray:
            ray_source = args.work / "ray-slice.parquet"
            _write_texts(texts[:args.ray_n], ray_source)
            rate_source = args.work / "ray-rate.parquet"
            _write_texts(texts[:args.ray_rate_n], rate_source)
            runs = {}
            for name, stage_args, src in (
                ("local_no_cache", ["--stage", "stream", "--no-cache"], ray_source),
                ("ray_1x2threads", ["--stage", "ray", "--workers", "1", "--threads", "2"], ray_source),
                ("ray_1x1thread", ["--stage", "ray", "--workers", "1", "--threads", "1"], rate_source),
                ("ray_2x1thread", ["--stage", "ray", "--workers", "2", "--threads", "1"], rate_source),
            ):
                runs[name] = _measure([*stage_args, "--input", str(src), "--output", str(args.work / f"{name}.set")], env)
                shutil.rmtree(args.work / f"{name}.set", ignore_errors=True)
                print(f"{name}: {runs[name]['rate']:.0f} texts/s, {runs[name]['cpu_s_per_1k']:.2f} CPU-s per 1k, "
                      f"peak RSS {runs[name]['peak_rss_gb']:.2f} GB (wall {runs[name]['wall_s']} s)", flush=True)
            after_init = runs["ray_1x2threads"]["n"] / runs["ray_1x2threads"]["seconds_inside"]
            runs["ray_overhead"] = {
                "wall": round(runs["local_no_cache"]["rate"] / runs["ray_1x2threads"]["rate"] - 1, 3),
                "wall_after_cluster_start": round(runs["local_no_cache"]["rate"] / after_init - 1, 3),
                "cluster_start_s": runs["ray_1x2threads"]["ray_init_s"],
                "cpu": round(runs["ray_1x2threads"]["cpu_s_per_1k"] / runs["local_no_cache"]["cpu_s_per_1k"] - 1, 3),
            }
            one, two = runs["ray_1x1thread"], runs["ray_2x1thread"]
            r1 = one["n"] / one["seconds_inside"]
            r2 = two["n"] / two["seconds_inside"]
            by_wall, by_cpu = r2 / (2 * r1), one["cpu_s_per_1k"] / two["cpu_s_per_1k"]
            runs["model"] = {"r1": round(r1, 1), "r2": round(r2, 1), "efficiency_by_wall": round(by_wall, 3),
                             "efficiency_by_cpu": round(by_cpu, 3), "driver_rate": io["rate"],
                             "table_by_wall": predicted(r1, by_wall, io["rate"]),
                             "table_by_cpu": predicted(r1, by_cpu, io["rate"])}
            results["ray"] = runs
            over = runs["ray_overhead"]
            print(f"Ray overhead vs local (same {args.ray_n:,} texts, no cache): {over['wall']:+.1%} wall "
                  f"({over['wall_after_cluster_start']:+.1%} after the {over['cluster_start_s']} s cluster start), "
                  f"{over['cpu']:+.1%} CPU per text", flush=True)
            print(f"per-worker rate (1 CPU): {r1:.0f}/s; 2 workers {r2:.0f}/s; efficiency 1 -> 2 by wall {by_wall:.2f}, "
                  f"by CPU {by_cpu:.2f}; driver cap {io['rate']:.0f} rows/s")
            print("workers  texts/s (e by wall)  texts/s (e by CPU)  hours per 100M (by CPU)")
            for a, b in zip(runs["model"]["table_by_wall"], runs["model"]["table_by_cpu"]):
                print(f"{a['workers']:>7}  {a['texts_per_s']:>17.0f}  {b['texts_per_s']:>17.0f}  {b['hours_per_100M']:>10}")
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
        shutil.rmtree(args.cache_dir, ignore_errors=True)
    results["load_avg_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
