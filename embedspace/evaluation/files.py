"""Reading the benchmark files that every ``eval`` verb takes: one rule for missing, non-UTF-8 and empty files."""

from __future__ import annotations

from pathlib import Path

from embedspace.errors import InputError

__all__ = ["read_benchmark_file"]


def read_benchmark_file(path: str | Path) -> tuple[str, list[str]]:
    """Read a UTF-8 benchmark file that must hold at least one non-blank line.

    Returns
    -------
    text : str
        The whole file.
    lines : list of str
        ``text.splitlines()``.

    Raises
    ------
    InputError
        Missing file, bytes that are not UTF-8 (the offset is given), or only blank lines.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 near byte {exc.start}") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{path}: file is empty")
    return text, lines
