"""What the command modules share: parser construction, JSON output, option types."""

from __future__ import annotations

import argparse
import json
import sys

from embedspace.store import jsonable

__all__ = ["UsageError", "add_command", "emit_json", "positive_int", "progress_of", "print_table"]


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


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
        text = " ".join(str(value).split())
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].map(shorten)
    with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
        sys.stdout.write(shown.to_string(index=False) + "\n")
