"""What the command modules share: parser construction, JSON output, option types."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

from embedspace.store import jsonable

__all__ = [
    "UsageError",
    "add_command",
    "add_engine_options",
    "check_engine_options",
    "emit_json",
    "non_negative_float",
    "non_negative_int",
    "number",
    "positive_float",
    "positive_int",
    "print_table",
    "printable",
    "progress_of",
    "saved_format",
    "seed",
]


# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts colour and
# title sequences), bidirectional overrides, and lone surrogates (which cannot be printed).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text) -> str:
    """``text`` safe to print on a terminal: control characters shown as escapes (``\\x1b``).

    Document text, metadata and queries can hold escape sequences that would recolour,
    retitle or clear the user's terminal; they are printed as text instead. Tabs and
    newlines are kept (callers that need one line collapse them).
    """
    def escape(match):
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, str(text))


class UsageError(Exception):
    """A command-line usage mistake (bad flag, missing argument)."""


def add_command(subparsers, name: str, *, help: str, description: str, examples: list[str], handler, aliases=()):
    """Add a verb with an example-bearing ``--help`` and the shared ``--quiet`` flag.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    name : str
        The verb.
    help : str
        One line for the verb list.
    description : str
        Paragraph shown by ``--help``.
    examples : list of str
        Command lines shown under "examples:".
    handler : callable
        ``handler(args) -> int | None``.

    Returns
    -------
    argparse.ArgumentParser
    """
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        aliases=list(aliases),
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or informational messages")
    parser.set_defaults(handler=handler)
    return parser


def number(kind=int, *, at_least=None, above=None, below=None, why: str = ""):
    """An argparse type: a number of ``kind`` within bounds, with one clear message when it is not.

    Parameters
    ----------
    kind : {int, float}, default=int
    at_least, above, below : number, optional
        Inclusive lower bound, exclusive lower bound, exclusive upper bound.
    why : str, optional
        Said after the bound when a value is out of range ("rows to fit a map on").

    Examples
    --------
    >>> number(int, at_least=2, why="runs to compare")("1")  # doctest: +SKIP
    argparse.ArgumentTypeError: must be at least 2 runs to compare, got 1
    """
    what = "a whole number" if kind is int else "a number"
    reason = f" {why}" if why else ""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
        if at_least is not None and below is not None and not at_least <= value < below:
            raise argparse.ArgumentTypeError(f"must be between {at_least} and {below - 1}{reason}, got {text}")
        if at_least is not None and not value >= at_least:
            raise argparse.ArgumentTypeError(f"must be at least {at_least}{reason}, got {text}")
        if above is not None and not value > above:
            bound = "positive" if above == 0 else f"more than {above}"
            raise argparse.ArgumentTypeError(f"must be {bound}{reason}, got {text}")
        if below is not None and not value < below:
            raise argparse.ArgumentTypeError(f"must be less than {below}{reason}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = number(int, at_least=1)
non_negative_int = number(int, at_least=0)
positive_float = number(float, above=0)
non_negative_float = number(float, at_least=0)
seed = number(int, at_least=0, below=2**32)


def add_engine_options(parser, *, local: str, ray: str) -> None:
    """``--engine local|ray``, ``--ray-address`` and ``--ray-workers``, worded for one verb.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    local, ray : str
        What the verb does on each engine, for ``--engine``'s help.
    """
    parser.add_argument("--engine", default="local", choices=("local", "ray"), help=f"{local} (default) or {ray}")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="Ray cluster to join (default with --engine ray: start a local one)")
    parser.add_argument("--ray-workers", type=positive_int, default=None, metavar="N",
                        help="parallel workers on Ray (default: the cluster's CPUs)")


def check_engine_options(args) -> None:
    """Refuse Ray settings without ``--engine ray`` (one usage error)."""
    if args.engine != "ray" and (args.ray_address or args.ray_workers):
        raise UsageError("--ray-address and --ray-workers need --engine ray")


def progress_of(args) -> bool | None:
    """``False`` when ``--quiet`` or ``--json`` was given, else ``None`` (bar on a terminal)."""
    return False if getattr(args, "quiet", False) or getattr(args, "json", False) else None


def emit_json(obj) -> None:
    """Print one JSON object on stdout (NaN and infinities become null)."""
    sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")


def print_table(frame, *, max_width: int = 60) -> None:
    """Print a DataFrame as an aligned text table with long cells shortened."""
    import pandas as pd

    def shorten(value):
        text = printable(" ".join(str(value).split()))  # escape codes in document text are shown, never run
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].map(shorten)
    with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
        sys.stdout.write(shown.to_string(index=False) + "\n")


def saved_format(path) -> str | None:
    """The format a saved directory's ``manifest.json`` names (``"embedspace.index"``…), or None.

    Only a hint for choosing what to load or what to suggest: the loader still checks
    everything.
    """
    try:
        with open(os.path.join(path, "manifest.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        return None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    return found if isinstance(found, str) else None
