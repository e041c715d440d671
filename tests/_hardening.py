"""Helpers shared by the hardening tests (bad-input battery, crash, concurrency, no network).

Kept small and free of fixtures: each test file builds what it needs, these functions only
run the CLI, compare directory trees and check the command-line contract (one ``error:``
line on stderr, exit status 2, no traceback).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

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


def run_many(commands, *, env=None, user=None, guard: str = "", cwd=None, timeout=600) -> list[dict]:
    """Run several ``embedspace`` command lines in one fresh Python process.

    Parameters
    ----------
    commands : list of list of str
        Argument vectors for :func:`embedspace.cli.main`.
    env : dict, optional
        Environment of the process (default: this one).
    user : str or int, optional
        Run as this user (only possible as root).
    guard : str, default=""
        Python code executed before embedspace is imported (e.g. a socket guard).
    cwd : path-like, optional
    timeout : float, default=600

    Returns
    -------
    list of dict
        ``{"argv", "status", "out", "err"}`` per command, in order.
    """
    code = _RUNNER.format(tests=str(REPO / "tests"), guard=guard)
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps([[str(a) for a in argv] for argv in commands])],
        env=env, user=user, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )
    marker = "\n@@RESULTS@@"
    assert done.returncode == 0 and marker in done.stdout, f"runner failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.rsplit(marker, 1)[1])


def assert_one_error_line(status: int, out: str, err: str, contains: str = "") -> str:
    """Check the failure contract: exit status 2, one stderr line ``error: ...``, no traceback.

    ``error: unexpected ...`` is how the CLI reports an exception nobody anticipated; the
    battery counts it as a bug, like a traceback.
    """
    lines = err.strip().splitlines()
    assert status == 2, f"exit status {status}, stderr: {err!r}"
    assert "Traceback" not in err + out, err
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr is not one error line: {err!r}"
    assert not lines[0].startswith("error: unexpected "), f"unanticipated exception: {lines[0]}"
    assert contains in lines[0], f"{contains!r} not in {lines[0]!r}"
    return lines[0]


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
    env = dict(os.environ, EMBEDSPACE_QUIET="1", TOKENIZERS_PARALLELISM="false")
    env.pop("EMBEDSPACE_DEBUG", None)
    if cache is not None:
        env["EMBEDSPACE_CACHE_DIR"] = str(cache)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sts_sentences(limit: int, *, skip: int = 0) -> list[str]:
    """Distinct real sentences from STS-B train (the shared corpus the suite uses)."""
    from conftest import STS_TRAIN

    seen: dict[str, None] = {}
    with open(STS_TRAIN, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            for sentence in fields[5:7]:
                seen.setdefault(sentence, None)
            if len(seen) >= skip + limit:
                break
    return list(seen)[skip:skip + limit]
