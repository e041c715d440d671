"""Property: any mix of ``index add`` / ``search`` / ``index --overwrite`` on one index loses nothing.

Four processes (N >= 4) each run a random sequence (seeded, the seeds are in the failure
message) of the three operations on one index path for 60 seconds, logging when each
operation started and ended and how it exited. Afterwards:

- no lost update: every ``index add`` that exited 0 and that no ``index --overwrite`` can
  have followed (every overwrite ended before the add started) is in the final index;
  an add that an overwrite certainly followed (the overwrite started after the add ended)
  is not, since an overwrite rebuilds the index from the base set alone;
- no read error: every ``search`` exited 0 with hits from sets that were added, or failed
  with one error line that says the index was busy;
- every writer exited 0, or failed with one clean error line (never ``unexpected``).

Each process runs its commands in-process (``embedspace.cli.main``), so the 60 seconds are
spent on the operations, not on starting Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO, cli_env, sts_sentences

pytestmark = pytest.mark.slow

WORKERS = 4
SECONDS = 60
SETS_PER_WORKER = 10
TEXTS = sts_sentences(20 + 3 * WORKERS * SETS_PER_WORKER, skip=900)

_WORKER = r'''
import contextlib, io, json, random, sys, time
sys.path.insert(0, {tests!r})
from embedspace.cli import main

index, base, seed, seconds, sets = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
rng = random.Random(seed)
log = []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    op = rng.choice(["add", "add", "search", "search", "search", "overwrite"])
    if op == "add" and not sets:
        op = "search"
    if op == "add":
        argv = ["index", "add", index, sets.pop(0), "--quiet"]
    elif op == "search":
        argv = ["search", index, "what happened today", "-k", "100000", "--json", "--quiet"]
    else:
        argv = ["index", base, "-o", index, "--overwrite", "--quiet"]
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    log.append({{"op": op, "argv": argv, "start": started, "end": time.monotonic(), "status": status,
                "out": out.getvalue() if op == "search" and status == 0 else "", "err": err.getvalue()}})
print(json.dumps(log))
'''


def _csv(path: Path, texts, years) -> Path:
    pd.DataFrame({"text": texts, "year": years}).to_csv(path, index=False)
    return path


def test_random_adds_searches_and_overwrites_lose_nothing(tmp_path, cli):
    base = tmp_path / "base.set"
    assert cli("embed", _csv(tmp_path / "base.csv", TEXTS[:20], list(range(20))), "-o", base, "--quiet")[0] == 0
    texts_of = {str(base): set(TEXTS[:20])}
    pools = [[] for _ in range(WORKERS)]
    for number in range(WORKERS * SETS_PER_WORKER):
        texts = TEXTS[20 + 3 * number: 23 + 3 * number]
        path = tmp_path / f"s{number:02d}.set"
        source = _csv(tmp_path / f"s{number:02d}.csv", texts, [number] * 3)
        assert cli("embed", source, "-o", path, "--quiet")[0] == 0
        texts_of[str(path)] = set(texts)
        pools[number % WORKERS].append(str(path))
    index = tmp_path / "shared.index"
    assert cli("index", base, "-o", index, "--quiet")[0] == 0

    seeds = list(range(101, 101 + WORKERS))
    worker = _WORKER.format(tests=str(REPO / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", worker, str(index), str(base), str(seed), str(SECONDS), *pool],
                              cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed, pool in zip(seeds, pools)]
    logs = []
    for proc in procs:
        out, err = proc.communicate(timeout=SECONDS + 600)
        assert proc.returncode == 0, err[-3000:]
        logs.extend(json.loads(out.strip().splitlines()[-1]))
    where = f"(seeds {seeds})"

    counts = {op: sum(e["op"] == op for e in logs) for op in ("add", "search", "overwrite")}
    busy = sum(e["op"] == "search" and e["status"] != 0 for e in logs)
    problems = []
    for entry in logs:
        lines = entry["err"].strip().splitlines()
        if entry["status"] == 0:
            continue
        one_clean_line = entry["status"] == 2 and len(lines) == 1 and lines[0].startswith("error: ") \
            and not lines[0].startswith("error: unexpected")
        if entry["op"] == "search" and not (one_clean_line and "busy" in lines[0]):
            problems.append(f"search failed: {entry['err'].strip()}")
        elif entry["op"] != "search" and not one_clean_line:
            problems.append(f"{entry['op']} failed uncleanly: {entry['err'].strip()}")
    assert not problems, f"{len(problems)} bad outcomes {where}, e.g. {problems[:3]}"

    added = [e for e in logs if e["op"] == "add" and e["status"] == 0]
    overwrites = [e for e in logs if e["op"] == "overwrite" and e["status"] == 0]
    known = set().union(*texts_of.values())
    for entry in logs:
        if entry["op"] == "search" and entry["status"] == 0:
            hits = {hit["text"] for hit in json.loads(entry["out"])["queries"][0]["results"]}
            assert hits <= known and set(TEXTS[:20]) <= hits, f"a search saw a mixed or partial index {where}"

    status, out, err = cli("search", index, "what happened today", "-k", 100000, "--json")
    assert status == 0, err
    final = {hit["text"] for hit in json.loads(out)["queries"][0]["results"]}
    assert set(TEXTS[:20]) <= final
    for entry in added:
        texts = texts_of[entry["argv"][3]]
        if all(o["end"] <= entry["start"] for o in overwrites):
            assert texts <= final, f"lost update: {entry['argv'][3]} was added (exit 0) but is missing {where}"
        elif any(o["start"] >= entry["end"] for o in overwrites):
            assert not texts & final, f"{entry['argv'][3]} survived an overwrite that followed it {where}"
    assert len(added) >= WORKERS, f"only {len(added)} adds succeeded in {SECONDS} s {where}"
    print(f"{len(logs)} operations {counts}, {busy} busy searches {where}")  # shown with pytest -s
