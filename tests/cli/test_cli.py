"""The command line: outputs, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import STS_DEV, snapshot
import embedspace as es
from embedspace import EmbeddingSet


@pytest.fixture
def docs(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text("text,label\nthe cat sat on the mat,a\nstocks fell sharply today,b\n,c\nan apple a day,a\n", encoding="utf-8")
    return path


def test_embed_writes_a_set_and_reports(cli, docs, tmp_path):
    status, out, err = cli("embed", docs, "-o", tmp_path / "s", "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["n"] == 3 and summary["dim"] == 384
    assert "dropped 1 empty" in err
    space = EmbeddingSet.load(tmp_path / "s")
    assert space.table["label"].tolist() == ["a", "b", "a"]
    status, out, _ = cli("info", tmp_path / "s", "--json")
    assert status == 0 and json.loads(out)["columns"] == ["text", "label"]


def test_float16_and_overwrite(cli, docs, tmp_path):
    assert cli("embed", docs, "-o", tmp_path / "s", "--quiet")[0] == 0
    before = snapshot(tmp_path / "s")
    status, _, err = cli("embed", docs, "-o", tmp_path / "s")
    assert status == 2 and err.strip().startswith("error:") and "--overwrite" in err
    assert snapshot(tmp_path / "s") == before
    assert cli("embed", docs, "-o", tmp_path / "s", "--dtype", "float16", "--overwrite", "--quiet")[0] == 0
    assert EmbeddingSet.load(tmp_path / "s").stored_vectors.dtype == np.float16


def _bad_inputs(tmp_path):
    (tmp_path / "cols.csv").write_text("title,body\nx,y\n")
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": \n')
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    (tmp_path / "data.xlsx").write_bytes(b"x")
    (tmp_path / "ok.txt").write_text("fine text\n")
    return [
        (["embed", tmp_path / "missing.txt", "-o", tmp_path / "o"], "no such file"),
        (["embed", tmp_path / "data.xlsx", "-o", tmp_path / "o"], "unknown file type"),
        (["embed", tmp_path / "cols.csv", "-o", tmp_path / "o"], "columns: 'title', 'body'"),
        (["embed", tmp_path / "empty.txt", "-o", tmp_path / "o"], "all 2 texts are empty"),
        (["embed", tmp_path / "bad.jsonl", "-o", tmp_path / "o"], "line 2: invalid JSON"),
        (["embed", tmp_path / "bad.jsonl.gz", "-o", tmp_path / "o"], "cannot read gzip"),
        (["embed", tmp_path / "ok.txt", "-o", tmp_path / "o", "--model", "no-such/model"], "cannot download models"),
        (["embed", tmp_path / "ok.txt", "-o", tmp_path / "o", "--batch-size", "0"], "at least 1"),
        (["embed", tmp_path / "ok.txt"], "required: -o/--output"),
        (["embed", tmp_path / "ok.txt", "-o", tmp_path / "nofolder" / "o"], "does not exist"),
        (["nonsense-verb"], "invalid choice"),
        (["eval", "sts", tmp_path / "ok.txt"], "STS-B layout"),
    ]


def test_bad_input_is_one_error_line(cli, tmp_path):
    for argv, message in _bad_inputs(tmp_path):
        status, out, err = cli(*argv)
        lines = err.strip().splitlines()
        assert status == 2, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert message in lines[0], (argv, lines[0])
        assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_corrupt_set_is_refused(cli, docs, tmp_path):
    assert cli("embed", docs, "-o", tmp_path / "s", "--quiet")[0] == 0
    vectors = tmp_path / "s" / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-64])
    status, _, err = cli("info", tmp_path / "s")
    assert status == 2 and err.startswith("error:") and "truncated or edited" in err
    data = bytearray(vectors.read_bytes() + b"\0" * 64)
    vectors.write_bytes(bytes(data))
    status, _, err = cli("info", tmp_path / "s")
    assert status == 2 and "checksum" in err


def test_eval_sts_reference_figure(cli):
    status, out, err = cli("eval", "sts", STS_DEV, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["n"] == 1500
    assert abs(result["spearman"] - 0.8672) <= 0.003


def test_eval_sts_header_layout(cli, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        "sentence1,sentence2,score\nA man plays guitar.,A man is playing a guitar.,4.8\n"
        "A cat sleeps.,Stocks fell sharply.,0.1\nA dog runs.,A puppy is running.,4.0\n",
        encoding="utf-8",
    )
    status, out, _ = cli("eval", "sts", path, "--json")
    assert status == 0 and json.loads(out)["n"] == 3


def test_console_script_help_has_example():
    out = subprocess.run([sys.executable, "-m", "embedspace.cli", "embed", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "examples:" in out.stdout and "embedspace embed" in out.stdout


def test_subprocess_error_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "embedspace.cli", "embed", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.txt'}: no such file or folder"]


def test_library_errors_name_parameters_and_the_cli_names_flags(cli, tmp_path):
    import pandas as pd

    from embedspace.cli.main import as_flags, build_parser

    source = tmp_path / "docs.csv"
    pd.DataFrame({"body": ["one text", "another text"]}).to_csv(source, index=False)
    with pytest.raises(es.InputError, match="choose one with text_col=") as caught:
        es.read(source)
    assert "--" not in str(caught.value)
    status, _, err = cli("embed", source, "-o", tmp_path / "d.set")
    assert status == 2 and "choose one with --text-col" in err and "text_col=" not in err
    parser = build_parser()
    assert as_flags("use overwrite=True to replace it", parser) == "use --overwrite to replace it"
    assert as_flags("use backend='torch'", parser) == "use --backend torch"
    assert as_flags("use cache=False", parser) == "use --no-cache"
    assert as_flags("no row has label == 'sport'; a=b", parser) == "no row has label == 'sport'; a=b"


@pytest.mark.slow
def test_the_own_data_example_runs(tmp_path):
    """scripts/example_own_data.py: the README's 'Your own data' steps on a CSV file with its own column names."""
    import subprocess
    import sys

    from helpers import REPO

    run = subprocess.run([sys.executable, str(REPO / "scripts" / "example_own_data.py"), "--n", "120", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "sci.space" in run.stdout and "against 'topic': NMI" in run.stdout
    assert (tmp_path / "articles.set" / "manifest.json").is_file()
