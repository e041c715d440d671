"""Bad input to ``embedspace map`` / ``eval clustering``: one ``error:`` line, exit 2, nothing written."""

from __future__ import annotations

import pandas as pd

from helpers import snapshot

SENTENCES = [
    "The goalie stopped every shot in the third period.",
    "NASA delayed the shuttle launch because of the weather.",
    "Bake the bread until the crust turns golden brown.",
    "The new graphics card renders 3D scenes quickly.",
    "The senate voted on the budget bill late at night.",
    "Fresh basil and tomatoes make a simple summer salad.",
    "The striker scored twice in the championship final.",
    "Astronomers found a planet orbiting a distant star.",
    "Interest rates rose for the third month in a row.",
    "The museum opened an exhibition of early photographs.",
    "Heavy rain flooded the roads near the river.",
    "The programmer fixed a memory leak in the server.",
]


def _csv(tmp_path, texts, name="docs.csv", **extra):
    path = tmp_path / name
    pd.DataFrame({"text": texts, **extra}).to_csv(path, index=False)
    return path


def _refused(cli, tmp_path, *argv, match):
    out = tmp_path / "out"
    status, stdout, err = cli(*argv, "-o", out) if argv[0] == "map" else cli(*argv)
    assert status == 2, (stdout, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err
    assert not out.exists(), "nothing is written on bad input"


def test_missing_text_column(cli, tmp_path):
    path = tmp_path / "docs.csv"
    pd.DataFrame({"body": SENTENCES}).to_csv(path, index=False)
    _refused(cli, tmp_path, "map", path, match="no column 'text'")


def test_missing_label_column_is_refused_before_embedding(cli, tmp_path):
    path = _csv(tmp_path, SENTENCES)
    _refused(cli, tmp_path, "map", path, "--label-col", "topic", match="no label column 'topic'")
    _refused(cli, tmp_path, "eval", "clustering", path, "--label-col", "topic", match="no label column 'topic'")


def test_three_documents(cli, tmp_path):
    _refused(cli, tmp_path, "map", _csv(tmp_path, SENTENCES[:3]), match="at least 5 documents, got 3")


def test_all_documents_identical(cli, tmp_path):
    _refused(cli, tmp_path, "map", _csv(tmp_path, [SENTENCES[0]] * 40), match="only 1 distinct")


def test_k_larger_than_the_collection(cli, tmp_path):
    _refused(cli, tmp_path, "map", _csv(tmp_path, SENTENCES), "--k", "50", match="only 12 documents")
    _refused(cli, tmp_path, "map", _csv(tmp_path, SENTENCES), "--k", "0", match="at least 1")


def test_failed_overwrite_leaves_the_old_map_untouched(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old map")
    before = snapshot(out)
    status, _, err = cli("map", _csv(tmp_path, SENTENCES[:3]), "-o", out, "--overwrite")
    assert status == 2 and err.startswith("error: ")
    assert snapshot(out) == before


def test_a_dozen_documents_get_the_documented_fallback(cli, tmp_path):
    """Up to 30 documents: a PCA layout and one cluster (with a warning), not a library traceback."""
    import json

    status, out, err = cli("map", _csv(tmp_path, SENTENCES), "-o", tmp_path / "m", "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["n_clusters"] == 1 and summary["method"] == "pca+one-cluster"
    assert "too few for UMAP" in err
    status, out, err = cli("map", _csv(tmp_path, SENTENCES), "-o", tmp_path / "m3", "--k", "3", "--json")
    assert status == 0, err
    assert json.loads(out)["n_clusters"] == 3
    assert (tmp_path / "m" / "map.png").is_file() and (tmp_path / "m" / "map.html").is_file()
