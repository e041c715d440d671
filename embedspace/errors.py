"""Exceptions raised by embedspace.

Every error the toolkit raises on purpose derives from :class:`EmbedspaceError`
and also from the built-in exception a caller would naturally catch, so
``except ValueError`` keeps working::

    EmbedspaceError
    ├── InputError(ValueError)            bad user input: a missing file, a wrong column, empty texts
    │   ├── OutputExistsError             an output path exists and --overwrite was not given
    │   └── ModelNotFoundError            a model that is not on disk (nothing is downloaded)
    ├── FormatError(ValueError)           a saved directory that is corrupt, foreign or too new
    │   └── BusyError                     it was replaced by another process while being read (read it again)
    ├── ModelMismatchError(ValueError)    vectors from one model used with another
    └── MissingDependencyError(ImportError)  an optional library is not installed

The command line turns each of them into one line ``error: <message>`` and exit status 2.
"""

from __future__ import annotations

__all__ = [
    "EmbedspaceError",
    "InputError",
    "OutputExistsError",
    "ModelNotFoundError",
    "FormatError",
    "BusyError",
    "ModelMismatchError",
    "MissingDependencyError",
]


class EmbedspaceError(Exception):
    """Base class of every error embedspace raises on purpose."""


class InputError(EmbedspaceError, ValueError):
    """The input given by the user cannot be used (file, column, text, option)."""


class OutputExistsError(InputError, FileExistsError):
    """The output path exists and overwriting was not asked for."""


class ModelNotFoundError(InputError):
    """The requested model is not on this machine; models are never downloaded."""


class FormatError(EmbedspaceError, ValueError):
    """A saved embedspace directory is corrupt, foreign, or written by a newer version."""


class BusyError(FormatError):
    """A saved directory was replaced by another process while it was being read; reading it again succeeds."""


class ModelMismatchError(EmbedspaceError, ValueError):
    """Vectors embedded by one model were combined with another model or dimension."""


class MissingDependencyError(EmbedspaceError, ImportError):
    """An optional dependency needed for this operation is not installed."""


def require(module: str, *, feature: str, package: str | None = None):
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"faiss"``.
    feature : str
        What the caller wanted to do, used in the message.
    package : str, optional
        The pip package name when it differs from ``module``.

    Returns
    -------
    module
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the '{package or module}' package: pip install {package or module}"
        ) from exc
