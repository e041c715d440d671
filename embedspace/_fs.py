"""Crash-safe file-system helpers: atomic directories and files, checksums.

Everything embedspace writes for users goes through :func:`atomic_directory` or
:func:`atomic_write_bytes`: the content is written to a temporary sibling and renamed
into place, so a killed process or a full disk never leaves a half-written result, and
an existing result is either kept untouched or replaced as a whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from embedspace.errors import InputError, OutputExistsError

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_json",
    "cache_dir",
    "check_output_path",
    "sha256_file",
]

def cache_dir() -> Path:
    """Return the embedspace cache folder (created on demand by writers).

    ``EMBEDSPACE_CACHE_DIR`` wins; otherwise the platform's user cache directory
    (``~/.cache/embedspace`` on Linux).
    """
    override = os.environ.get("EMBEDSPACE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("embedspace", appauthor=False))


_TMP_MARK = ".tmp-"
_OLD_MARK = ".old-"


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output_path(path: str | os.PathLike, *, overwrite: bool, inputs=()) -> Path:
    """Validate an output path before any expensive work starts.

    Parameters
    ----------
    path : path-like
        Where a result directory or file will be written.
    overwrite : bool
        Whether an existing result may be replaced.
    inputs : iterable of path-like or other objects, default=()
        What the command reads. Replacing ``path`` must not delete any of them, so an
        output that is an input, or a folder holding one, is refused even with
        ``overwrite``. Items that are not paths (``None``, ``corpus:NAME``, lists of
        texts) are ignored.

    Returns
    -------
    Path
        The absolute output path.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    InputError
        If ``path`` is or holds one of ``inputs``, is a read-only directory, or its parent
        directory is missing or not writable.
    """
    target = Path(path).expanduser().absolute()
    if target.exists() and not overwrite:
        raise OutputExistsError(f"output '{path}' already exists (use --overwrite to replace it)")
    _check_not_an_input(target, path, inputs)
    if target.is_dir() and not target.is_symlink() and not os.access(target, os.W_OK | os.X_OK):
        # Replacing it would leave its read-only content behind, undeletable, in a hidden sibling.
        raise InputError(f"cannot replace '{path}': it is read-only (make it writable, or write somewhere else)")
    parent = target.parent
    if not parent.is_dir():
        raise InputError(f"cannot write '{path}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write '{path}': folder '{parent}' is not writable")
    return target


def _check_not_an_input(target: Path, path, inputs) -> None:
    """Refuse an output whose replacement would delete one of the command's inputs."""
    if not target.exists():
        return
    real_target = Path(os.path.realpath(target))
    for source in inputs:
        if not isinstance(source, (str, os.PathLike)) or str(source).startswith("corpus:"):
            continue
        real_source = Path(os.path.realpath(Path(source).expanduser()))
        if real_source == real_target or real_target in real_source.parents:
            what = "is the input" if real_source == real_target else "holds the input"
            raise InputError(f"output '{path}' {what} '{source}'; replacing it would delete the input, "
                             "so write the output somewhere else")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_siblings(target: Path) -> None:
    """Delete temporary siblings of ``target`` left by processes that died."""
    prefix = f".{target.name}"
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return
    for sibling in siblings:
        name = sibling.name
        if not name.startswith(prefix) or (_TMP_MARK not in name and _OLD_MARK not in name):
            continue
        try:
            pid = int(name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(sibling, ignore_errors=True) if sibling.is_dir() else sibling.unlink(missing_ok=True)


def _sibling(target: Path, mark: str) -> Path:
    return target.with_name(f".{target.name}{mark}{os.getpid()}-{uuid.uuid4().hex[:8]}")


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished temporary ``tmp`` to ``target``, replacing it as a whole if allowed."""
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"output '{target}' already exists (use --overwrite to replace it)")
        if target.is_dir() and _exchange(tmp, target):
            # tmp now holds the old content
            shutil.rmtree(tmp, ignore_errors=True)
            _fsync_dir(target.parent)
            return
        old = _sibling(target, _OLD_MARK)
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    else:
        os.rename(tmp, target)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a directory atomically.

    Yields a fresh temporary directory next to ``path``. When the block finishes without
    an exception the temporary directory replaces ``path`` in one rename (an existing
    directory is swapped out whole when ``overwrite`` is true). On any exception the
    temporary directory is removed and ``path`` is left exactly as it was.

    Parameters
    ----------
    path : path-like
        Final location of the directory.
    overwrite : bool, default=False
        Replace an existing ``path``.

    Yields
    ------
    Path
        The temporary directory to fill.
    """
    target = check_output_path(path, overwrite=overwrite)
    _remove_stale_siblings(target)
    tmp = _sibling(target, _TMP_MARK)
    tmp.mkdir()
    try:
        yield tmp
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and ``os.replace``."""
    target = Path(path)
    tmp = _sibling(target, _TMP_MARK)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))
