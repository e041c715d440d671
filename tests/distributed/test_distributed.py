"""The Ray engine writes the same EmbeddingSet as the local path (local 2-CPU Ray cluster)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from embedspace import EmbeddingSet  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses, kills, Ray or a browser: CI runs it, the fast lane skips it


def test_ray_embed_equals_local(ray_cluster, cli, tmp_path, sentences):
    rows = pd.DataFrame({"text": sentences[:600] + [""] * 3, "n": range(603), "tag": ["a", "b", "c"] * 201})
    rows.to_csv(tmp_path / "in.csv", index=False)
    status, _, err = cli("embed", tmp_path / "in.csv", "-o", tmp_path / "local", "--no-cache", "--quiet")
    assert status == 0, err
    status, _, err = cli("embed", tmp_path / "in.csv", "-o", tmp_path / "ray", "--engine", "ray", "--no-cache", "--quiet")
    assert status == 0, err
    local, remote = EmbeddingSet.load(tmp_path / "local"), EmbeddingSet.load(tmp_path / "ray")
    assert len(remote) == len(local) == 600
    pd.testing.assert_frame_equal(remote.table, local.table)
    assert np.abs(remote.vectors - local.vectors).max() <= 1e-4
    manifest = (tmp_path / "ray" / "manifest.json").read_text()
    assert '"engine": "ray"' in manifest


def test_ray_bad_input_is_one_error_line(ray_cluster, cli, tmp_path):
    (tmp_path / "cols.csv").write_text("title,body\nx,y\n")
    status, _, err = cli("embed", tmp_path / "cols.csv", "-o", tmp_path / "o", "--engine", "ray")
    assert status == 2 and err.strip().startswith("error:") and "columns: 'title', 'body'" in err
    assert not (tmp_path / "o").exists()


def test_ray_embed_honours_max_tokens(ray_cluster, cli, tmp_path, sentences):
    """--max-tokens reaches the encoder actors: the Ray set equals the local one cut to the same window."""
    long_texts = [" ".join(sentences[i:i + 12]) for i in range(0, 240, 12)]
    pd.DataFrame({"text": long_texts}).to_csv(tmp_path / "long.csv", index=False)
    for engine in ("local", "ray"):
        status, _, err = cli("embed", tmp_path / "long.csv", "-o", tmp_path / engine, "--engine", engine,
                             "--max-tokens", "16", "--no-cache", "--quiet")
        assert status == 0, err
    local, remote = EmbeddingSet.load(tmp_path / "local"), EmbeddingSet.load(tmp_path / "ray")
    assert local.model.max_seq_length == remote.model.max_seq_length == 16
    assert np.abs(remote.vectors - local.vectors).max() <= 1e-4
