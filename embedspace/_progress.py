"""Progress that tells the truth, where a person is watching.

On a terminal a tqdm bar is drawn on stderr (with a total and an ETA wherever the count is
known). Without a terminal (a log file, CI, a pipe) long work is reported as lines on the
``embedspace`` logger instead: one line every ``LINE_SECONDS`` while a stage runs and one
when it ends — nothing for a stage shorter than that, so quick commands stay quiet. The
command line shows those lines; ``progress=False`` (``--quiet``, ``--json``) switches both
off.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["LINE_SECONDS", "progress_bar", "progress_enabled"]

log = logging.getLogger("embedspace")

LINE_SECONDS = 10.0
"""Seconds between two progress lines when stderr is not a terminal."""


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


class _LineProgress(_NullBar):
    """Progress as log lines, for a stderr that is not a terminal (see the module docstring)."""

    def __init__(self, total=None, *, desc: str = "", unit: str = "it"):
        super().__init__(total=total)
        self.desc, self.unit = desc, unit
        self._started = self._last = time.monotonic()
        self._said = False

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self._last >= LINE_SECONDS:
            self._last, self._said = now, True
            log.info("%s: %s", self.desc, self._state(now))

    def _state(self, now: float) -> str:
        elapsed = now - self._started
        count = self.total or self.n
        unit = self.unit if count == 1 or self.unit.endswith("s") or self.unit == "it" else self.unit + "s"
        done = f"{self.n:,}{f' of {self.total:,}' if self.total else ''} {unit}"
        if self.total and 0 < self.n < self.total:
            left = elapsed * (self.total - self.n) / self.n
            return f"{done} ({100 * self.n / self.total:.0f}%), {elapsed:.0f} s, about {left:.0f} s left"
        return f"{done}, {elapsed:.0f} s"

    def close(self):
        if self._said:  # a stage long enough to have been reported says that it ended
            self._said = False
            log.info("%s: done, %s", self.desc, self._state(time.monotonic()))


def progress_bar(total: int | None, desc: str, *, progress: bool | None = None, unit: str = "it"):
    """Return a tqdm bar on stderr, log lines when stderr is not a terminal, or a silent stand-in.

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
    if progress is None and not sys.stderr.isatty():
        return _LineProgress(total, desc=desc, unit=unit)
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
