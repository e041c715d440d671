"""Read user input into a table with a ``text`` column.

Accepted inputs
---------------
- ``.txt`` — one document per line;
- ``.csv`` / ``.tsv`` — a header row; the text is in ``text_col`` (default ``text``);
- ``.jsonl`` — one JSON object per line, text under ``text_col``;
- ``.parquet`` — text under ``text_col``;
- any of the above compressed with gzip (``.jsonl.gz``, ``.csv.gz``, ...);
- a folder — every ``*.txt`` file below it is one document (column ``path`` keeps its name);
- ``corpus:NAME`` — a corpus shipped with embedspace (see :func:`embedspace.corpora.list_corpora`).

Every other column is kept as metadata. Texts that are missing, empty or only whitespace
are dropped and counted (one line on stderr through the ``embedspace`` logger); bytes that
are not valid UTF-8 are replaced with U+FFFD and counted. With ``strict=True`` both are
errors instead. Large inputs can be read in chunks with :func:`iter_chunks`, which keeps
memory flat however long the file is.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import logging
import math
import os
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from embedspace.corpora import corpus_chunks
from embedspace.errors import InputError

__all__ = ["read", "iter_chunks", "ReadReport", "SUPPORTED_SUFFIXES", "fs_text", "replace_surrogates"]

log = logging.getLogger("embedspace")

SUPPORTED_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
_DEFAULT_CHUNK_ROWS = 20_000

# --- counting replacement of undecodable bytes -------------------------------------------
_counter = threading.local()


def _count_and_replace(exc: UnicodeDecodeError):
    _counter.n = getattr(_counter, "n", 0) + 1
    return ("\ufffd", exc.end)


codecs.register_error("embedspace-count", _count_and_replace)

# A str can hold a lone surrogate (JSON "\\ud800", a file name of undecodable bytes read
# through surrogateescape) that no UTF-8 writer, tokenizer or terminal accepts: it is
# treated like an undecodable byte (replaced by U+FFFD and counted, refused under strict).
_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> tuple[str, int]:
    """``text`` with each lone surrogate replaced by U+FFFD, and how many were replaced."""
    return _SURROGATE.subn("\ufffd", text)


def fs_text(path) -> str:
    """A file name as text: undecodable bytes (kept by Python as surrogates) become U+FFFD."""
    try:
        return os.fsencode(path).decode("utf-8", errors="replace")
    except UnicodeEncodeError:  # a surrogate that no byte stands for
        return replace_surrogates(os.fspath(path))[0]


@dataclass
class ReadReport:
    """What reading a source dropped or repaired.

    Attributes
    ----------
    source : str
        The source as given.
    n_rows : int
        Rows read before cleaning.
    n_kept : int
        Rows kept.
    n_empty : int
        Rows dropped because their text was missing, empty or whitespace.
    n_replaced_bytes : int
        Undecodable byte sequences replaced by U+FFFD.
    n_non_string : int
        Texts that were numbers or other non-strings and were converted with ``str``.
    """

    source: str
    n_rows: int = 0
    n_kept: int = 0
    n_empty: int = 0
    n_replaced_bytes: int = 0
    n_non_string: int = 0
    columns: list = field(default_factory=list)

    def log(self) -> None:
        """Write one line per repair to the ``embedspace`` logger (stderr in the CLI)."""
        if self.n_empty:
            log.warning("dropped %d empty or missing texts of %d in %s", self.n_empty, self.n_rows, self.source)
        if self.n_replaced_bytes:
            log.warning(
                "replaced %d undecodable byte sequences with U+FFFD in %s (use strict=True to refuse them)",
                self.n_replaced_bytes,
                self.source,
            )
        if self.n_non_string:
            log.warning("converted %d non-string texts to strings in %s", self.n_non_string, self.source)


def read(source: str | os.PathLike, *, text_col: str = "text", strict: bool = False):
    """Read a whole source into a DataFrame.

    Parameters
    ----------
    source : str or path-like
        A file, a folder of ``.txt`` files, or ``corpus:NAME``.
    text_col : str, default="text"
        Column holding the text (CSV, TSV, JSONL, Parquet).
    strict : bool, default=False
        Refuse empty texts and undecodable bytes instead of dropping / replacing them.

    Returns
    -------
    pandas.DataFrame of shape (n_documents, 1 + n_metadata)
        Column ``text`` first, then the metadata columns, index ``0..n-1``.

    Raises
    ------
    InputError
        Missing or unreadable file, unknown extension, missing column, invalid JSON,
        or no text left after cleaning.

    Examples
    --------
    >>> docs = read("corpus:20newsgroups")  # doctest: +SKIP
    >>> docs.columns.tolist()  # doctest: +SKIP
    ['text', 'id', 'split', 'label', 'label_id']
    """
    import pandas as pd

    report = ReadReport(str(source))
    chunks = list(iter_chunks(source, text_col=text_col, strict=strict, report=report))
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    return frame


def iter_chunks(
    source: str | os.PathLike,
    *,
    text_col: str = "text",
    strict: bool = False,
    chunk_rows: int = _DEFAULT_CHUNK_ROWS,
    report: ReadReport | None = None,
) -> Iterator:
    """Read a source as a sequence of DataFrames of at most ``chunk_rows`` rows.

    Parameters are those of :func:`read`, plus ``chunk_rows`` and an optional
    :class:`ReadReport` that is filled in as chunks are read. The report is logged
    once the source is exhausted. Raises :class:`InputError` if no text is left.

    Yields
    ------
    pandas.DataFrame
        Cleaned rows with the ``text`` column first; the index continues across chunks.
    """
    report = report if report is not None else ReadReport(str(source))
    raw_chunks = _raw_chunks(source, text_col=text_col, strict=strict, chunk_rows=chunk_rows)
    offset = 0
    _counter.n = 0
    for raw in raw_chunks:
        report.n_replaced_bytes = getattr(_counter, "n", 0)
        if strict and report.n_replaced_bytes:
            raise InputError(f"{source}: text is not valid UTF-8 (use strict=False to replace bad bytes)")
        frame = _clean(raw, report=report, strict=strict, source=str(source), first_row=report.n_rows)
        frame.index = range(offset, offset + len(frame))
        offset += len(frame)
        if len(frame):
            yield frame
    report.n_replaced_bytes = getattr(_counter, "n", 0)
    if report.n_kept == 0:
        if report.n_rows == 0:
            raise InputError(f"{source}: no documents found (the input is empty)")
        raise InputError(f"{source}: no text to embed: all {report.n_rows} texts are empty")
    report.log()


# --- cleaning -------------------------------------------------------------------------------
def _clean(frame, *, report: ReadReport, strict: bool, source: str, first_row: int):
    """Normalise the text column, drop empty texts and count what was changed."""
    texts = frame["text"]
    report.n_rows += len(frame)
    values = texts.tolist()
    keep = []
    cleaned = []
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = ""
        elif isinstance(value, str):
            text = value
        elif isinstance(value, bytes):
            text = value.decode("utf-8", errors="strict" if strict else "embedspace-count")
        else:
            report.n_non_string += 1
            text = str(value)
        if "\x00" in text:
            text = text.replace("\x00", "")
        text = _without_surrogates(text, report, strict, source, f"document {first_row + i + 1}")
        if not text.strip():
            if strict:
                raise InputError(f"{source}: document {first_row + i + 1} has no text (use strict=False to skip empty texts)")
            report.n_empty += 1
            continue
        keep.append(i)
        cleaned.append(text)
    out = frame.iloc[keep].copy() if len(keep) != len(values) else frame.copy()
    out["text"] = cleaned
    for column in out.columns:  # metadata text with lone surrogates could not be written to parquet
        if column != "text" and (out[column].dtype == object or str(out[column].dtype) in ("str", "string")):
            if any(isinstance(v, str) and _SURROGATE.search(v) for v in out[column]):
                out[column] = [_without_surrogates(v, report, strict, source, f"column {column!r}")
                               if isinstance(v, str) else v for v in out[column]]
    report.n_kept += len(out)
    return out


def _without_surrogates(text: str, report: ReadReport, strict: bool, source: str, where: str) -> str:
    if not _SURROGATE.search(text):
        return text
    if strict:
        raise InputError(f"{source}: {where} holds a lone surrogate, which is not valid Unicode "
                         "(without strict=True it is replaced by U+FFFD)")
    text, n = replace_surrogates(text)
    _counter.n = getattr(_counter, "n", 0) + n
    report.n_replaced_bytes = _counter.n
    return text


def _record_without_surrogates(record: dict, strict: bool, path, lineno: int) -> dict:
    """A JSON object whose strings (``"\\ud800"`` escapes) may hold lone surrogates, cleaned like bytes."""
    def clean(value):
        if isinstance(value, str) and _SURROGATE.search(value):
            if strict:
                raise InputError(f"{path}: line {lineno}: a string holds a lone surrogate, which is not valid "
                                 "Unicode (without strict=True it is replaced by U+FFFD)")
            value, n = replace_surrogates(value)
            _counter.n = getattr(_counter, "n", 0) + n
        return value

    return {clean(key): clean(value) for key, value in record.items()}


def _with_text_first(frame, text_col: str, source: str):
    if text_col not in frame.columns:
        columns = ", ".join(repr(str(c)) for c in frame.columns) or "none"
        raise InputError(f"{source}: no column '{text_col}' (columns: {columns}); choose one with text_col=")
    frame = frame.rename(columns={text_col: "text"}) if text_col != "text" else frame
    if list(frame.columns).count("text") > 1:
        raise InputError(f"{source}: both '{text_col}' and 'text' columns exist; rename one of them")
    others = [c for c in frame.columns if c != "text"]
    frame.columns = [str(c) for c in frame.columns]
    return frame[["text"] + [str(c) for c in others]]


# --- readers -------------------------------------------------------------------------------
def _raw_chunks(source, *, text_col: str, strict: bool, chunk_rows: int):
    text = str(source)
    if text.startswith("corpus:"):
        yield from corpus_chunks(text[len("corpus:"):], chunk_rows=chunk_rows)
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"{source}: no such file or folder")
    if path.is_dir():
        yield from _folder_chunks(path, strict=strict, chunk_rows=chunk_rows)
        return
    if not os.access(path, os.R_OK):
        raise InputError(f"{source}: file is not readable (permission denied)")
    name = path.name.lower()
    compressed = name.endswith(".gz")
    base = name[:-3] if compressed else name
    suffix = Path(base).suffix
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{source}: unknown file type '{suffix or name}' (expected one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}, optionally .gz, a folder of .txt files, or corpus:NAME)"
        )
    errors = "strict" if strict else "embedspace-count"
    if suffix != ".parquet":
        _refuse_binary(path, _head(path, compressed))
    try:
        if suffix == ".txt":
            yield from _txt_chunks(path, compressed, errors, chunk_rows)
        elif suffix == ".jsonl":
            yield from _jsonl_chunks(path, compressed, errors, chunk_rows, text_col)
        elif suffix in (".csv", ".tsv"):
            yield from _csv_chunks(path, compressed, errors, chunk_rows, text_col, "\t" if suffix == ".tsv" else ",")
        else:
            yield from _parquet_chunks(path, chunk_rows, text_col)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: not valid UTF-8 near byte {exc.start} (use strict=False to replace undecodable bytes)"
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{source}: cannot read gzip data: {exc or 'file is truncated'}") from None
    except IsADirectoryError as exc:
        raise InputError(f"{source}: {exc.strerror}") from None


# Leading bytes of file kinds that are not text, and what to say about each.
_SIGNATURES = (
    (b"%PDF-", "a PDF document; extract its text first (e.g. pdftotext)"),
    (b"PK\x03\x04", "a ZIP archive or an Office document (docx, xlsx, odt); extract or export its text first"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (doc, xls, ppt); export its text first"),
    (b"\x7fELF", "a program (ELF executable), not text"),
    (b"\x89PNG", "a PNG image, not text"),
    (b"\xff\xd8\xff", "a JPEG image, not text"),
    (b"GIF8", "a GIF image, not text"),
    (b"\x1f\x8b", "gzip-compressed; name it .gz (e.g. docs.txt.gz) so that it is read decompressed"),
    (b"SQLite format 3\x00", "an SQLite database, not text"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8"),
)
_HEAD_BYTES = 8192
_BINARY_NULS = 16  # NUL bytes in the first 8 KiB that make a file binary (a few stray ones are removed)


def _head(path: Path, compressed: bool) -> bytes:
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            return handle.read(_HEAD_BYTES)
    except (OSError, EOFError, zlib.error):
        return b""  # the reader says what is wrong


def _refuse_binary(path, head: bytes) -> None:
    """Refuse a file that is not text by its content, whatever its name says.

    Rule: a known signature at its start (PDF, ZIP/Office, ELF, images, gzip under a plain
    name, SQLite, UTF-16), or at least 16 NUL bytes in its first 8 KiB. A PDF renamed
    ``.txt`` used to be embedded as hundreds of lines of junk.
    """
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise InputError(f"{fs_text(path)}: looks like {what}")
    nuls = head.count(b"\x00")
    if nuls >= _BINARY_NULS:
        raise InputError(f"{fs_text(path)}: looks like a binary file, not text ({nuls} NUL bytes in its first "
                         f"{len(head):,} bytes)")


def _open_text(path: Path, compressed: bool, errors: str):
    raw = gzip.open(path, "rb") if compressed else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline="")


def _txt_chunks(path, compressed, errors, chunk_rows):
    import pandas as pd

    with _open_text(path, compressed, errors) as handle:
        lines = []
        for line in handle:
            lines.append(line.rstrip("\r\n").lstrip("\ufeff") if not lines else line.rstrip("\r\n"))
            if len(lines) >= chunk_rows:
                yield pd.DataFrame({"text": lines})
                lines = []
        yield pd.DataFrame({"text": lines})


def _jsonl_chunks(path, compressed, errors, chunk_rows, text_col):
    import pandas as pd

    with _open_text(path, compressed, errors) as handle:
        records = []
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}: line {lineno}: expected a JSON object, got {type(record).__name__}")
            if "\\u" in line:  # only an escape can make a lone surrogate
                record = _record_without_surrogates(record, errors == "strict", path, lineno)
            if text_col not in record:
                keys = ", ".join(repr(k) for k in record) or "none"
                raise InputError(f"{path}: line {lineno}: no key '{text_col}' (keys: {keys}); choose one with text_col=")
            records.append(record)
            if len(records) >= chunk_rows:
                yield _with_text_first(pd.DataFrame.from_records(records), text_col, str(path))
                records = []
        if records:
            yield _with_text_first(pd.DataFrame.from_records(records), text_col, str(path))


def _csv_chunks(path, compressed, errors, chunk_rows, text_col, sep):
    import pandas as pd

    with _open_text(path, compressed, errors) as handle:
        try:
            reader = pd.read_csv(handle, sep=sep, chunksize=chunk_rows, dtype={text_col: "object"}, keep_default_na=False, na_values=[""])
            for chunk in reader:
                yield _with_text_first(chunk, text_col, str(path))
        except pd.errors.EmptyDataError:
            return
        except pd.errors.ParserError as exc:
            raise InputError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {str(exc).strip()}") from None


def _parquet_chunks(path, chunk_rows, text_col):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    if text_col not in names:
        columns = ", ".join(repr(c) for c in names) or "none"
        raise InputError(f"{path}: no column '{text_col}' (columns: {columns}); choose one with text_col=")
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield _with_text_first(batch.to_pandas(), text_col, str(path))


def _folder_chunks(folder: Path, *, strict: bool, chunk_rows: int):
    import pandas as pd

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise InputError(f"{folder}: folder holds no .txt files")
    errors = "strict" if strict else "embedspace-count"
    texts, names = [], []
    for file in files:
        try:
            data = file.read_bytes()
            _refuse_binary(file, data[:_HEAD_BYTES])
            texts.append(data.decode("utf-8", errors=errors).lstrip("\ufeff"))
        except UnicodeDecodeError as exc:
            raise InputError(f"{file}: not valid UTF-8 near byte {exc.start} (use strict=False to replace undecodable bytes)") from None
        except OSError as exc:
            raise InputError(f"{file}: cannot read ({exc.strerror})") from None
        name = str(file.relative_to(folder))
        if _SURROGATE.search(name):  # a file name that is not UTF-8
            if strict:
                raise InputError(f"{fs_text(file)}: the file name is not valid UTF-8 (without strict=True "
                                 "its undecodable bytes are replaced)")
            name = fs_text(name)
        names.append(name)
        if len(texts) >= chunk_rows:
            yield pd.DataFrame({"text": texts, "path": names})
            texts, names = [], []
    if texts:
        yield pd.DataFrame({"text": texts, "path": names})
