"""The embed bar knows its total when the input is one chunk (issue 31, item 7: "on a terminal
the bar has no total or ETA although the count is known")."""

from __future__ import annotations

import pandas as pd

from embedspace.encoding import pipeline


class _Recorder:
    def __init__(self):
        self.total, self.n, self.total_at_first_update = None, 0, "never"

    def update(self, n=1):
        if self.total_at_first_update == "never":
            self.total_at_first_update = self.total
        self.n += n

    def close(self):
        pass


def _embed(tmp_path, monkeypatch, encoder, rows: int, chunk_rows: int) -> _Recorder:
    bars = []
    monkeypatch.setattr(pipeline, "progress_bar", lambda total, desc, **kw: bars.append(_Recorder()) or bars[-1])
    texts = [f"sentence number {i} about the weather" for i in range(rows // 2)] * 2  # repeats count too
    source = tmp_path / "docs.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    pipeline.embed_to_disk(source, tmp_path / "docs.set", encoder=encoder, chunk_rows=chunk_rows)
    (bar,) = bars
    assert bar.n == rows
    return bar


def test_a_one_chunk_input_gives_the_bar_its_total_before_the_first_text(tmp_path, monkeypatch, encoder):
    assert _embed(tmp_path, monkeypatch, encoder, rows=60, chunk_rows=1000).total_at_first_update == 60


def test_a_longer_input_still_counts_every_row(tmp_path, monkeypatch, encoder):
    assert _embed(tmp_path, monkeypatch, encoder, rows=60, chunk_rows=25).total_at_first_update is None
