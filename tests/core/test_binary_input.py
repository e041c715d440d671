"""Files that are not text are refused by their content, whatever their name (issue 31, item 6).

Before, a PDF renamed .txt was embedded as 287 lines of junk and a binary gave 700 vectors.
"""

from __future__ import annotations

import gzip
import re

import pytest

import embedspace as es
from embedspace.errors import InputError

CASES = {
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n" * 20, "looks like a PDF document"),
    "docx": (b"PK\x03\x04\x14\x00\x06\x00" + b"word/document.xml" * 50, "ZIP archive or an Office document"),
    "elf": (b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8, "ELF executable"),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" * 30, "PNG image"),
    "utf16": ("one document\nanother one\n".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    "nul-heavy": (b"abc" + b"\x00" * 40 + b"def\n", "binary file, not text (40 NUL bytes"),
    "gzip-unnamed": (gzip.compress(b"a line\nanother\n"), "name it .gz"),
}


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
@pytest.mark.parametrize("kind", sorted(CASES))
def test_binary_content_is_refused_naming_its_kind(tmp_path, kind, suffix):
    data, message = CASES[kind]
    path = tmp_path / f"docs{suffix}"
    path.write_bytes(data)
    with pytest.raises(InputError, match=re.escape(message)):
        es.read(path)


def test_gzipped_binary_and_a_binary_file_in_a_folder_are_refused(tmp_path):
    (tmp_path / "doc.txt.gz").write_bytes(gzip.compress(CASES["pdf"][0]))
    with pytest.raises(InputError, match="looks like a PDF"):
        es.read(tmp_path / "doc.txt.gz")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("a real note about the garden\n", encoding="utf-8")
    (folder / "report.txt").write_bytes(CASES["pdf"][0])
    with pytest.raises(InputError, match=r"report\.txt: looks like a PDF"):
        es.read(folder)


def test_text_with_a_few_stray_nul_bytes_is_still_read(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes(b"first line\x00 here\nsecond line\n")
    assert es.read(path)["text"].tolist() == ["first line here", "second line"]


def test_the_cli_says_it_in_one_line(tmp_path, cli):
    path = tmp_path / "paper.txt"
    path.write_bytes(CASES["pdf"][0])
    status, _, err = cli("embed", path, "-o", tmp_path / "out.set")
    assert status == 2 and err.strip().startswith("error: ") and "extract its text first" in err
    assert not (tmp_path / "out.set").exists()
