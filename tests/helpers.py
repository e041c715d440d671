"""Helpers shared by the tests: real data paths, snapshots of directories, and the CLI contract.

Free of fixtures (those live in ``conftest.py``): each test file builds what it needs; these
functions read the shared corpora, run the CLI, compare directory trees and check the
command-line contract (one ``error:`` line on stderr, exit status 2, no traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora"
STS_DEV = SHARED / "sts" / "stsbenchmark" / "sts-dev.csv"
STS_TRAIN = SHARED / "sts" / "stsbenchmark" / "sts-train.csv"

# One subprocess runs many CLI commands in-process (one import of embedspace and the model
# for all of them) and prints their outcomes as JSON. Optional ``guard`` code runs first.
_RUNNER = r'''
import contextlib, io, json, sys
sys.path.insert(0, {tests!r})
{guard}
from embedspace.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # --help exits through argparse
            status = exc.code
    results.append({{"argv": argv, "status": status, "out": out.getvalue(), "err": err.getvalue()}})
print("\n@@RESULTS@@" + json.dumps(results))
'''


def run_many(commands, *, env=None, guard: str = "", wrapper=(), timeout=600, **popen) -> list[dict]:
    """Run several ``embedspace`` command lines in one fresh Python process.

    Parameters
    ----------
    commands : list of list of str
        Argument vectors for :func:`embedspace.cli.main`.
    env : dict, optional
        Environment of the process (default: this one).
    guard : str, default=""
        Python code executed before embedspace is imported (e.g. a socket guard).
    wrapper : sequence of str, default=()
        A command that runs the Python command line given after it (e.g. ``unshare ...``).
    timeout : float, default=600
    **popen
        More arguments of :func:`subprocess.run` (``user``, ``group``, ``preexec_fn``, ``cwd``).

    Returns
    -------
    list of dict
        ``{"argv", "status", "out", "err"}`` per command, in order.
    """
    code = _RUNNER.format(tests=str(REPO / "tests"), guard=guard)
    done = subprocess.run(
        [*map(str, wrapper), sys.executable, "-c", code, json.dumps([[str(a) for a in argv] for argv in commands])],
        env=env, capture_output=True, text=True, timeout=timeout, **popen,
    )
    marker = "\n@@RESULTS@@"
    assert done.returncode == 0 and marker in done.stdout, f"runner failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.rsplit(marker, 1)[1])


def assert_one_error_line(status: int, out: str, err: str, contains: str = "", *, after_work: bool = False) -> str:
    """Check the failure contract: exit status 2, one stderr line ``error: ...``, no traceback.

    stderr is exactly that line: warnings and notes a failing command logged in its
    first moments are held back by the CLI and dropped when it fails. With
    ``after_work=True`` (a failure while writing results, e.g. a full disk) the warnings
    the command printed while it worked may precede the error line.
    ``error: unexpected ...`` is how the CLI reports an exception nobody anticipated; the
    battery counts it as a bug, like a traceback. Returns the error line.
    """
    lines = err.strip().splitlines()
    assert status == 2, f"exit status {status}, stderr: {err!r}"
    assert "Traceback" not in err + out, err
    assert lines and lines[-1].startswith("error: "), f"stderr does not end with an error line: {err!r}"
    before = lines[:-1]
    if after_work:
        before = [line for line in before if not line.startswith("warning: ")]
    assert not before, f"stderr is not one error line: {err!r}"
    assert not lines[-1].startswith("error: unexpected "), f"unanticipated exception: {lines[-1]}"
    assert contains in lines[-1], f"{contains!r} not in {lines[-1]!r}"
    return lines[-1]


def assert_success(status: int, out: str, err: str) -> None:
    """Check a successful run: exit status 0 and no traceback or error line."""
    assert status == 0, f"exit status {status}, stderr: {err!r}"
    assert "Traceback" not in err + out, err
    assert not any(line.startswith("error:") for line in err.splitlines()), err


def tree(root) -> dict:
    """Every file (its bytes) and folder (``None``) below ``root``, by relative path.

    Two equal trees mean nothing was added, removed or changed, not even an empty
    temporary folder.
    """
    root = Path(root)
    if not root.exists():
        return {}
    if root.is_file():
        return {".": root.read_bytes()}
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = ("symlink", os.readlink(path))
        elif path.is_dir():
            state[rel] = None
        else:
            state[rel] = path.read_bytes()
    return state


def private_cache(folder: Path) -> Path:
    """A new, empty embedding cache folder that reuses the test run's exported model.

    The exported ONNX model, numba's compiled UMAP code and the weights-hash memo are
    shared (linked or copied) so a fresh process starts warm; the embedding database is
    the folder's own.
    """
    shared = Path(os.environ["EMBEDSPACE_CACHE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("models", "numba"):
        if (shared / name).is_dir() and not (folder / name).exists():
            (folder / name).symlink_to(shared / name)
    if (shared / "model-hashes.json").is_file():
        shutil.copy(shared / "model-hashes.json", folder / "model-hashes.json")
    return folder


def cli_env(cache: Path | None = None, **extra) -> dict:
    """Environment for an ``embedspace`` subprocess (quiet, optional private cache)."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    env.pop("EMBEDSPACE_DEBUG", None)
    if cache is not None:
        env["EMBEDSPACE_CACHE_DIR"] = str(cache)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sts_sentences(limit: int, *, skip: int = 0) -> list[str]:
    """Distinct real sentences from STS-B train (the shared corpus the suite uses)."""
    seen: dict[str, None] = {}
    with open(STS_TRAIN, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            for sentence in fields[5:7]:
                seen.setdefault(sentence, None)
            if len(seen) >= skip + limit:
                break
    return list(seen)[skip:skip + limit]


@dataclass
class World:
    """Inputs and artefacts that hardening tests read and never write (built once per run)."""

    root: Path
    docs: Path  # CSV: text, label, id, score (24 rows, ids repeated)
    sentences: Path  # .txt, 120 real sentences, one per line
    words: Path  # a word list for relate --vocab
    vectors: Path  # word2vec text vectors of the words
    sts: Path  # sentence1,sentence2,score
    set: Path  # EmbeddingSet of docs
    index: Path  # index of set
    map: Path  # map of set
    vae: Path  # a tiny VAE trained on sentences


_WORLD: list = []


def shared_world(tmp_path_factory) -> World:
    """Build the :class:`World` on first use (in-process, a few seconds) and return it."""
    if _WORLD:
        return _WORLD[0]
    import numpy as np
    import pandas as pd

    from embedspace.cli import main

    def quietly(*argv):
        assert main([str(a) for a in argv] + ["--quiet"]) == 0, argv

    root = tmp_path_factory.mktemp("hardening-world")
    texts = sts_sentences(120)
    pd.DataFrame({
        "text": texts[:24], "label": ["music", "animals", "food", "sport"] * 6,
        "id": list(range(12)) * 2, "score": np.linspace(0.0, 1.0, 24).round(3),
    }).to_csv(root / "docs.csv", index=False)
    (root / "sentences.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    words = ["king", "queen", "man", "woman", "cat", "dog", "car", "truck", "apple", "pear", "red", "blue",
             "good", "bad", "happy", "sad", "paris", "france", "tokyo", "japan"]
    (root / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    (root / "vectors.txt").write_text(
        f"{len(words)} 4\n" + "".join(f"{w} {' '.join(f'{v:.4f}' for v in rng.normal(size=4))}\n" for w in words),
        encoding="utf-8",
    )
    (root / "sts.csv").write_text(
        "sentence1,sentence2,score\nA man plays guitar.,A man is playing a guitar.,4.8\n"
        "A cat sleeps.,Stocks fell sharply.,0.1\nA dog runs.,A puppy is running.,4.0\n", encoding="utf-8",
    )
    quietly("embed", root / "docs.csv", "-o", root / "good.set")
    quietly("index", root / "good.set", "-o", root / "good.index")
    quietly("map", root / "good.set", "-o", root / "good.map")
    quietly("vae", "train", root / "sentences.txt", "-o", root / "good.vae", "--epochs", "1", "--hidden-dim", "16",
            "--latent-dim", "2", "--batch-size", "32")
    world = World(root, root / "docs.csv", root / "sentences.txt", root / "words.txt", root / "vectors.txt",
                  root / "sts.csv", root / "good.set", root / "good.index", root / "good.map", root / "good.vae")
    _WORLD.append(world)
    return world


class Case:
    """What one case gets: the shared world and its own empty folder to write inputs in."""

    def __init__(self, world: World, tmp: Path):
        self.w = world
        self.tmp = tmp

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def parquet(self, name: str, columns: dict) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.tmp / name
        pq.write_table(pa.table(columns), path)
        return path

    def copy(self, artefact: Path, name: str | None = None) -> Path:
        target = self.tmp / (name or artefact.name)
        shutil.copytree(artefact, target)
        return target

    def out(self, name: str = "out") -> Path:
        return self.tmp / name


@dataclass
class Err:
    """The case must fail with one error line containing ``contains``."""

    contains: str = ""


@dataclass
class Ok:
    """The case must succeed; ``check(case, out, err)`` inspects the result; ``changes`` may change."""

    check: object = None
    changes: tuple = ("out",)


def run_case(world: World, tmp: Path, build, expect, cli) -> None:
    """Build a case's input, run it with ``cli`` and check the contract for ``expect``."""
    case = Case(world, tmp)
    argv = build(case)
    before_world, before_case = tree(world.root), tree(tmp)
    status, out, err = cli(*argv)
    if isinstance(expect, Err):
        assert_one_error_line(status, out, err, expect.contains)
        assert tree(tmp) == before_case, "a failed command changed or left files in its folder"
    else:
        assert_success(status, out, err)
        if expect.check is not None:
            assert expect.check(case, out, err) is not False
        after = tree(tmp)
        changed = {p for p in set(after) | set(before_case) if after.get(p) != before_case.get(p)}
        allowed = {p for p in changed if any(p == name or p.startswith(name + "/") for name in expect.changes)}
        assert changed == allowed, f"unexpected changes: {sorted(changed - allowed)}"
    assert tree(world.root) == before_world, "the shared artefacts changed"


def snapshot(path: Path) -> dict:
    """Bytes of every file below ``path`` (to prove nothing changed)."""
    path = Path(path)
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def short_posts(docs):
    """Newsgroup posts cut to their subject line and the first 600 characters of the body.

    Headers are dropped; quick to embed in tests while keeping each post's topic.
    """
    subject = docs["text"].str.extract(r"(?m)^Subject:(.*)$", expand=False).fillna("")
    body = docs["text"].str.split("\n\n", n=1).str[1].fillna("")
    docs = docs.copy()
    docs["text"] = (subject.str.strip() + "\n" + body.str.slice(0, 600)).str.strip()
    return docs


# --- headless Chromium (the map page's browser tests) -------------------------------------
CHROMIUM = os.environ.get("EMBEDSPACE_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]


def browser_or_skip() -> None:
    """Skip the test without Debian's chromium and playwright; fail instead under EMBEDSPACE_REQUIRE_BROWSER=1 (CI)."""
    import pytest

    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK) and shutil.which("true"):
        try:
            import playwright.sync_api  # noqa: F401
            return
        except ImportError as exc:
            reason = f"the playwright package is missing ({exc}); pip install -e '.[test]'"
    else:
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("EMBEDSPACE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"EMBEDSPACE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium_context(profile: Path, **options):
    """A headless Chromium browser context on its own ``profile`` folder (skips or fails as :func:`browser_or_skip`)."""
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True, **options)
        try:
            yield context
        finally:
            context.close()


def parse_python(source: str):
    """``ast.parse(source)``, retried when CPython 3.11 raises its spurious "AST constructor recursion depth
    mismatch" SystemError (python/cpython#106905: the check's counter is shared with other threads, such as
    the Ray session's that the distributed tests leave running in the same worker)."""
    import ast

    for attempt in range(5):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == 4:
                raise
