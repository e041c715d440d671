"""Progress without a terminal: lines every LINE_SECONDS on the embedspace logger, nothing for short stages."""

from __future__ import annotations

import logging

import embedspace._progress as progress


def test_long_stages_report_lines_and_short_ones_stay_quiet(monkeypatch, caplog):
    clock = iter([0.0, 3.0, 11.0, 12.0, 25.0, 26.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    with caplog.at_level(logging.INFO, logger="embedspace"):
        bar = progress.progress_bar(400, "embedding", unit="text")   # started at 0 s
        bar.update(100)   # 3 s: too soon for a line
        bar.update(100)   # 11 s: a line with the share done and the time left
        bar.update(100)   # 12 s
        bar.update(100)   # 25 s: a line
        bar.close()       # 26 s: the stage says it ended
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["embedding: 200 of 400 texts (50%), 11 s, about 11 s left",
                     "embedding: 400 of 400 texts, 25 s",
                     "embedding: done, 400 of 400 texts, 26 s"]

    caplog.clear()
    monkeypatch.setattr(progress.time, "monotonic", lambda: 1.0)
    with caplog.at_level(logging.INFO, logger="embedspace"):
        quick = progress.progress_bar(None, "indexing", unit="vector")
        quick.update(5)
        quick.close()
    assert caplog.records == []


def test_no_lines_when_progress_is_off(monkeypatch, caplog):
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert type(progress.progress_bar(10, "x", progress=False)).__name__ == "_NullBar"
