"""Reading every supported input, and refusing bad ones with a clear message."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from embedspace import InputError, read
from embedspace.sources import iter_chunks


def test_txt_one_document_per_line(tmp_path, caplog):
    path = tmp_path / "docs.txt"
    path.write_text("first doc\n\n   \nsecond doc\r\nthird\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="embedspace"):
        frame = read(path)
    assert frame["text"].tolist() == ["first doc", "second doc", "third"]
    assert list(frame.index) == [0, 1, 2]
    assert "dropped 2 empty" in caplog.text


def test_csv_tsv_metadata_and_text_col(tmp_path):
    (tmp_path / "a.csv").write_text('body,year,tag\n"hello, world",2001,x\nbye,2002,y\n', encoding="utf-8")
    frame = read(tmp_path / "a.csv", text_col="body")
    assert frame.columns.tolist() == ["text", "year", "tag"]
    assert frame["year"].tolist() == [2001, 2002]
    (tmp_path / "a.tsv").write_text("text\tn\nx y\t1\n", encoding="utf-8")
    assert read(tmp_path / "a.tsv")["n"].tolist() == [1]


def test_jsonl_and_gzip(tmp_path):
    rows = [{"text": f"doc {i}", "id": i} for i in range(5)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows))
    assert read(tmp_path / "a.jsonl")["id"].tolist() == list(range(5))
    assert read(tmp_path / "b.jsonl.gz")["text"].tolist() == [f"doc {i}" for i in range(5)]


def test_parquet_with_none_nan_and_numbers(tmp_path, caplog):
    pd.DataFrame({"text": ["ok", None, "", "fine"], "k": [1, 2, 3, 4]}).to_parquet(tmp_path / "a.parquet")
    out = read(tmp_path / "a.parquet")
    assert out["text"].tolist() == ["ok", "fine"]
    assert out["k"].tolist() == [1, 4]
    pd.DataFrame({"text": [1.5, float("nan"), 3.0]}).to_parquet(tmp_path / "n.parquet")
    with caplog.at_level("WARNING", logger="embedspace"):
        out = read(tmp_path / "n.parquet")
    assert out["text"].tolist() == ["1.5", "3.0"]
    assert "converted 2 non-string" in caplog.text


def test_folder_of_txt_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "sub" / "a.txt").write_text("first\nfile", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("no", encoding="utf-8")
    frame = read(tmp_path)
    assert frame["path"].tolist() == ["b.txt", "sub/a.txt"]
    assert frame["text"].tolist() == ["second", "first\nfile"]


def test_shipped_corpus():
    frame = read("corpus:20newsgroups")
    assert len(frame) == 7532
    assert frame["label"].nunique() == 20
    assert {"text", "label", "label_id", "split", "id"} <= set(frame.columns)


def test_invalid_utf8_replaced_and_counted_or_strict(tmp_path, caplog):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff\xfe bytes\n")
    with caplog.at_level("WARNING", logger="embedspace"):
        frame = read(path)
    assert frame["text"].tolist()[1] == "bad \ufffd\ufffd bytes"
    assert "replaced 2 undecodable" in caplog.text
    with pytest.raises(InputError, match="not valid UTF-8"):
        read(path, strict=True)


def test_strict_refuses_empty_text(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(InputError, match="document 2 has no text"):
        read(path, strict=True)


def test_chunks_keep_order_and_index(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("\n".join(f"line {i}" for i in range(25)), encoding="utf-8")
    chunks = list(iter_chunks(path, chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert pd.concat(chunks)["text"].tolist() == [f"line {i}" for i in range(25)]
    assert chunks[2].index[0] == 20


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, "no such file"),
        ("data.xlsx", b"x", "unknown file type"),
        ("a.csv", b"title,body\nx,y\n", "no column 'text' \\(columns: 'title', 'body'\\)"),
        ("a.txt", b"\n  \n\t\n", "all 3 texts are empty"),
        ("e.txt", b"", "empty"),
        ("a.jsonl", b'{"text": "ok"}\n{"text": broken}\n', "line 2: invalid JSON"),
        ("a.jsonl.gz", b"this is not gzip data at all", "cannot read gzip"),
        ("a.parquet", b"PAR1 nonsense", "not a readable Parquet"),
    ],
)
def test_bad_input_messages(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read(path)


def test_unknown_corpus():
    with pytest.raises(InputError, match="unknown corpus 'nope'"):
        read("corpus:nope")
