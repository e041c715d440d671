"""The ``embedspace`` command line: one module per verb; each parses, calls the public API and prints.

:mod:`~embedspace.cli.main` holds what every verb shares (one-line errors, exit status 2,
logging to stderr); :mod:`~embedspace.cli._common` the parser helpers and option types.
"""

from __future__ import annotations

from embedspace.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
