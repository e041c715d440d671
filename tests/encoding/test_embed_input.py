"""What es.embed accepts from Python: lists and DataFrames with hostile text."""

from __future__ import annotations

import pandas as pd
import pytest

import embedspace as es
from embedspace.errors import InputError


def test_lone_surrogates_from_python_are_replaced_or_refused_under_strict(encoder, caplog):
    """A lone surrogate cannot be tokenised or written: replaced like an undecodable byte (it used to crash)."""
    with caplog.at_level("WARNING", logger="embedspace"):
        space = es.embed(["a cat \ud800 sat", "a dog"], encoder=encoder, progress=False)
    assert space.table["text"].tolist() == ["a cat \ufffd sat", "a dog"]
    assert "replaced lone surrogates with U+FFFD in 1 text" in caplog.text
    frame = pd.DataFrame({"text": pd.Series(["x \udcff y", "z"], dtype=object)})
    assert es.embed(frame, encoder=encoder, progress=False).table["text"].iloc[0] == "x \ufffd y"
    with pytest.raises(InputError, match="lone surrogate"):
        es.embed(["a \ud800"], encoder=encoder, strict=True, progress=False)


def test_embed_says_how_many_texts_repeat(tmp_path, cli):
    """Issue 31, item 5: 98 repeated articles were embedded without a word."""
    import json

    source = tmp_path / "docs.txt"
    source.write_text("a cat sat\na dog ran\na cat sat\nA cat sat\na cat sat\n", encoding="utf-8")
    status, out, err = cli("embed", source, "-o", tmp_path / "docs.set", "--json")
    assert status == 0, err
    assert json.loads(out)["n_distinct"] == 3
    assert "2 of 5 texts repeat an earlier text (3 distinct)" in err
    status, _, err = cli("embed", source, "-o", tmp_path / "docs.set", "--overwrite", "--quiet")
    assert status == 0 and "repeat" not in err
