"""Shared fixtures: an isolated cache, the real default model loaded once, real sentences.

Helpers that tests import live in ``helpers.py``, never here.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import REPO, sts_sentences


def pytest_configure(config):
    # One cache for the whole run, outside the user's own cache; set before any test
    # imports embedspace so every code path (and every subprocess) sees it.
    if "EMBEDSPACE_CACHE_DIR" not in os.environ or os.environ.get("EMBEDSPACE_TEST_FRESH_CACHE"):
        base = Path(os.environ.get("EMBEDSPACE_TEST_CACHE", REPO / ".pytest_cache" / "embedspace-cache"))
        os.environ["EMBEDSPACE_CACHE_DIR"] = str(base)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if hasattr(config, "workerinput"):
        # pytest-xdist workers ignore SIGINT (Ctrl-C belongs to the controller), and an ignored
        # signal stays ignored in every child: the tests that interrupt a child need the default.
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``scripts/dev.py test``: ``--dist loadfile``, each module on one worker, so
    module fixtures run once), the modules with most slow tests come first, so that no long module
    starts last and runs alone while the other worker idles."""
    if not hasattr(config, "workerinput"):  # only xdist workers collect for the scheduler
        return
    weight: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        weight[module] = weight.get(module, 0) + (20 if item.get_closest_marker("slow") else 1)
    order = {module: rank for rank, module in enumerate(sorted(weight, key=lambda m: -weight[m]))}
    items.sort(key=lambda item: order[item.nodeid.split("::", 1)[0]])  # stable inside a module


@pytest.fixture(scope="session")
def encoder():
    """The default model with the default backend, loaded once."""
    from embedspace.encoding.encoders import load_encoder

    enc = load_encoder()
    enc.encode(["warm up"])
    return enc


@pytest.fixture(scope="session")
def torch_encoder():
    """The reference torch backend, loaded once."""
    from embedspace.encoding.encoders import load_encoder

    enc = load_encoder(backend="torch")
    enc.encode(["warm up"])
    return enc


@pytest.fixture(scope="session")
def sentences():
    """1,000 distinct real sentences from STS-B train."""
    return sts_sentences(1000)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (status, stdout, stderr)."""
    from embedspace.cli import main

    def run(*argv):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run
