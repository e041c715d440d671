"""Progress bars that appear only where a person is watching.

A bar is drawn on stderr when stderr is a terminal and progress is not switched off
(``progress=False`` in the API, which the command line passes for ``--quiet`` and
``--json``). Everywhere else the helpers are silent no-ops, so JSON output and logs stay
clean.
"""

from __future__ import annotations

import sys

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled(progress: bool | None = None) -> bool:
    """Decide whether to draw a bar.

    Parameters
    ----------
    progress : bool or None, default=None
        Explicit choice; ``None`` means "when stderr is a terminal".
    """
    if progress is None:
        return sys.stderr.isatty()
    return bool(progress)


class _NullBar:
    def __init__(self, total=None, **_):
        self.total = total
        self.n = 0

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(total: int | None, desc: str, *, progress: bool | None = None, unit: str = "it"):
    """Return a tqdm bar on stderr, or a silent stand-in.

    Parameters
    ----------
    total : int or None
        Expected number of units, if known.
    desc : str
        Short label shown before the bar.
    progress : bool or None, default=None
        See :func:`progress_enabled`.
    unit : str, default="it"
        Unit name shown in the rate.
    """
    _release_held_log_lines()
    if not progress_enabled(progress):
        return _NullBar(total=total)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


def _release_held_log_lines() -> None:
    """Long work is starting: print the log lines the CLI holds back (see ``embedspace.cli``)."""
    import logging

    for handler in logging.getLogger("embedspace").handlers:
        release = getattr(handler, "flush_held", None)
        if getattr(handler, "_embedspace_cli", False) and release is not None:
            release()
