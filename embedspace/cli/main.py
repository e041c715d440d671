"""The ``embedspace`` command line: parse, call the public API, print.

Each verb lives in a small module under :mod:`embedspace.cli` that registers its
parser and handler. This module owns what every verb shares: the parser class whose
errors are one line, logging to stderr, and the translation of errors into
``error: <message>`` with exit status 2 (never a traceback; set ``EMBEDSPACE_DEBUG=1``
to see one for an unexpected failure).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import sys
import threading
import time

from embedspace import __version__
from embedspace.cli._common import UsageError, printable
from embedspace.errors import EmbedspaceError

__all__ = ["main", "build_parser"]

_COMMANDS = ("embed", "info", "index", "search", "map", "topics", "outliers", "duplicates", "compare", "relate", "evaluate", "vae",
             "cache", "demo")


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become one ``error:`` line instead of usage + exit."""

    def error(self, message):  # noqa: D102 - argparse API
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _command_modules():
    import importlib

    modules = []
    for name in _COMMANDS:
        try:
            modules.append(importlib.import_module(f"embedspace.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"embedspace.cli.{name}":
                raise
    return modules


def build_parser() -> Parser:
    """Build the full ``embedspace`` parser with every verb registered."""

    parser = Parser(
        prog="embedspace",
        description="Explore the latent semantic space of text: embed, search, map, relate, generate.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  embedspace demo\n  embedspace embed docs.csv -o docs.set\n  embedspace <command> --help",
    )
    parser.add_argument("--version", action="version", version=f"embedspace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in _command_modules():
        module.register(sub)
    return parser


class _DeferredHandler(logging.StreamHandler):
    """Writes log lines to stderr, holding back those logged before the real work starts.

    Why: a command that fails on bad input fails while it reads and checks, often after
    a warning or a note (e.g. "replaced 1 undecodable byte"); the failure contract is one
    ``error: ...`` line on stderr, so lines still held when the command fails are dropped
    (:meth:`drop_held`). Held lines are printed (:meth:`flush_held`) when a progress bar starts
    (long work begins), when GRACE_SECONDS have passed, or when the command succeeds.
    """

    _embedspace_cli = True
    GRACE_SECONDS = 10.0

    def __init__(self, stream):
        super().__init__(stream)
        self._held: list[logging.LogRecord] | None = []
        self._started = time.monotonic()

    def emit(self, record):
        if self._held is not None:
            self._held.append(record)
            if time.monotonic() - self._started < self.GRACE_SECONDS:
                return
            self.flush_held()
            return
        self._write(record)

    def _write(self, record) -> None:
        """One line on stderr, above any progress bar being drawn (never into its line)."""
        bars = sys.modules.get("tqdm")
        if bars is None or not getattr(self.stream, "isatty", lambda: False)():
            super().emit(record)
            return
        try:
            bars.tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - a log line must never stop a command
            self.handleError(record)

    def flush_held(self) -> None:
        held, self._held = self._held or [], None
        for record in held:
            self._write(record)

    def drop_held(self) -> None:
        if self._held is not None:
            self._held = []


def _configure_logging(quiet: bool, parser) -> tuple[_DeferredHandler, tuple]:
    """Send embedspace's log lines to stderr for one command; return the handler and the settings to restore."""
    logger = logging.getLogger("embedspace")
    saved = (logger.level, logger.propagate)
    handler = _DeferredHandler(sys.stderr)

    class _Format(logging.Formatter):
        def format(self, record):
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            return prefix + as_flags(record.getMessage(), parser)

    handler.setFormatter(_Format())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    return handler, saved


def _restore_logging(handler: _DeferredHandler, saved: tuple) -> None:
    logger = logging.getLogger("embedspace")
    logger.removeHandler(handler)
    logger.level, logger.propagate = saved


def _one_line(message: str) -> str:
    return printable(" ".join(str(message).split()))


# Library errors name parameters (``text_col=``); these are the flags whose name differs
# from the parameter's, or which stand for one of its values.
_FLAG_OF = {"vocabulary": "--vocab", "cache=False": "--no-cache", "lexical=False": "--no-bm25",
            "output": "-o", "vectors": "--vectors", "space": "--vectors"}
_PARAMETER = re.compile(r"\b([a-z][a-z0-9_]*)=(True|False|'[^'\s]*'|\"[^\"\s]*\"|[A-Za-z0-9_.:/-]+)?(?![=\w])")


def as_flags(message: str, parser: argparse.ArgumentParser | None = None) -> str:
    """Say a library error in the command line's words: ``text_col=`` becomes ``--text-col``.

    ``name=True`` becomes the bare flag, ``name='value'`` the flag and its value; names that
    are no option of any verb are left as they are.
    """
    flags = _option_names(parser) if parser is not None else set()

    def flag(match):
        name, value = match.group(1), match.group(2)
        special = _FLAG_OF.get(f"{name}={value}") or _FLAG_OF.get(name)
        option = special or ("--" + name.replace("_", "-"))
        if special is None and option not in flags:
            return match.group(0)
        if value is None or value == "True" or f"{name}={value}" in _FLAG_OF:
            return option
        return f"{option} {value.strip(chr(39) + chr(34))}"

    return _PARAMETER.sub(flag, message)


def _option_names(parser) -> set[str]:
    names = set()
    for action in parser._actions:  # argparse keeps no public list of a parser's options
        names.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= _option_names(sub)
    return names


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` and temporary-folder cleanup runs."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _handle_sigterm():
    """Make SIGTERM end the command like Ctrl-C; return what to restore (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input or failure).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    """

    argv = list(sys.argv[1:] if argv is None else argv)
    log_lines = saved_logging = parser = None
    saved_sigterm = _handle_sigterm()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            names = ", ".join(_COMMANDS).replace("evaluate", "eval")
            raise UsageError(f"no command given; choose one of: {names} (see 'embedspace --help')")
        args.command_line = shlex.join(["embedspace", *argv])
        quiet = bool(getattr(args, "quiet", False))
        log_lines, saved_logging = _configure_logging(quiet, parser)
        status = args.handler(args)
        log_lines.flush_held()
        sys.stdout.flush()
        return int(status or 0)
    except UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except EmbedspaceError as exc:
        print(f"error: {as_flags(_one_line(exc), parser)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        notes = "; ".join(getattr(exc, "__notes__", ()))  # e.g. how much finished work was kept
        stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"  # SIGTERM or Ctrl-C
        print(f"error: {stopped}{f' ({notes})' if notes else ''}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except MemoryError:
        print("error: out of memory (try a smaller input or --batch-size)", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure: still one line unless debugging
        if os.environ.get("EMBEDSPACE_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with EMBEDSPACE_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 2
    finally:
        if saved_sigterm is not None:
            signal.signal(signal.SIGTERM, saved_sigterm)
        if log_lines is not None:
            log_lines.drop_held()  # a failure: only its error line (lines already released stay)
            log_lines.flush_held()
            _restore_logging(log_lines, saved_logging)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
