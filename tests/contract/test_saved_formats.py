"""Directories written by earlier code still load: a set, an index, a map and a VAE.

The fixtures under ``tests/fixtures/formats/`` were written by ``scripts/make_format_fixtures.py``
at commit ad25b1a, before the package was regrouped into one folder per job; they are
never regenerated, so a change that breaks what users already keep fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import embedspace as es

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"


@pytest.fixture
def formats(tmp_path):
    """A private copy (indexes record their sets by relative path; loading must not write)."""
    target = tmp_path / "formats"
    shutil.copytree(FIXTURES, target)
    return target


def test_a_set_written_before_loads_with_its_checksums(formats):
    space = es.load(formats / "news.set")
    assert len(space) == 60 and space.dim == 384
    assert space.model.name.endswith("all-MiniLM-L6-v2")
    assert np.allclose(np.linalg.norm(space.vectors, axis=1), 1.0, atol=1e-3)
    assert {"text", "label"} <= set(space.table.columns)


def test_an_index_written_before_searches(formats):
    index = es.load_index(formats / "news.index")
    space = es.load(formats / "news.set")
    query = space.vectors[7:8]
    scores, rows = index.search_vectors(query, k=3)
    assert int(np.asarray(rows)[0][0]) == 7
    hits = index.search(["space shuttle launch orbit"], k=3)
    assert len(hits) == 3 and hits["text"].str.len().min() > 0
    lexical = index.search(["space shuttle launch orbit"], k=3, mode="bm25")
    assert len(lexical) == 3


def test_a_map_written_before_reads_as_tables(formats):
    directory = formats / "news.map"
    documents = pd.read_parquet(directory / "documents.parquet")
    assert {"row", "x", "y", "cluster", "probability", "text"} <= set(documents.columns)
    assert len(documents) == 60
    clusters = pd.read_csv(directory / "clusters.csv")
    assert {"cluster", "size", "label", "keywords"} <= set(clusters.columns)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["format"] == "embedspace.map"


def test_a_vae_written_before_loads_and_decodes(formats):
    pytest.importorskip("torch")
    vae = es.vae.load(formats / "captions.vae")
    out = vae.reconstruct(["a man is playing a guitar ."])
    assert len(out) == 1 and isinstance(out[0], str)
    assert len(vae.sample(3, seed=0)) == 3
