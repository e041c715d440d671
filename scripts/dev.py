#!/usr/bin/env python3
"""Set up embedspace in ./.venv and run the demo or the tests, with only python3 and pip.

    python3 scripts/dev.py demo     # create .venv, install, run `embedspace demo`
    python3 scripts/dev.py test     # create .venv, install with test extras, run pytest
    python3 scripts/dev.py setup    # only install

torch is installed first and pinned to 2.13.0 (the CPU wheel this project is built on;
an unpinned torch would pull a multi-GB CUDA build). Installation is skipped when
pyproject.toml has not changed since the last successful one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("EMBEDSPACE_VENV", ROOT / ".venv"))
TORCH = "torch==2.13.0"


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def _run(*cmd) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def setup(extras: str) -> None:
    """Create the venv and install embedspace (editable) with ``extras``, once per pyproject change."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / ".embedspace-installed"
    if stamp.is_file() and wanted in stamp.read_text().split():
        return
    if not _bin("python").exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [_bin("python"), "-m", "pip", "install", "--disable-pip-version-check"]
    _run(*pip, "--upgrade", "pip")
    _run(*pip, TORCH)
    _run(*pip, "-e", f".[{extras}]" if extras else ".", TORCH)
    previous = stamp.read_text().split() if stamp.is_file() else []
    stamp.write_text("\n".join(previous + [wanted]) + "\n")


def _workers(rest: list[str]) -> list[str]:
    """pytest-xdist options: one worker per core, 2 to 4, unless the command line chooses.

    The suite is many short CPU-bound tests plus long ones that partly wait (killed
    subprocesses, a 60-second concurrency run, Ray); on the 2-core CI machine two workers
    finish it sooner than one (the serial suite took 598-639 s). ``--dist loadfile`` keeps each
    module on one worker (its module fixtures run once); tests/conftest.py starts the modules
    with most slow tests first.
    """
    if any(arg in ("-n", "--numprocesses", "no:xdist") or arg.startswith(("-n", "--numprocesses=")) for arg in rest):
        return []
    workers = min(4, max(2, os.cpu_count() or 2))
    return ["-n", str(workers), "--dist", "loadfile", "--no-loadscope-reorder"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "setup"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "test":
        setup("test")
        # Two workers on two cores: OpenMP threads (torch, faiss) that wait passively instead of spinning
        # leave the cores to the other worker (5% less wall time on the slow modules, tests/conftest.py).
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        return subprocess.run([str(_bin("python")), "-m", "pytest", *_workers(rest), *rest], cwd=ROOT, env=env).returncode
    setup("")
    if command == "demo":
        return subprocess.run([str(_bin("embedspace")), "demo", *rest], cwd=ROOT).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
