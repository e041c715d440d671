"""Crash-safe, careful file-system helpers: what may be replaced, locks, atomic writes, checksums.

Everything embedspace writes for users goes through :func:`atomic_directory` or
:func:`atomic_write_bytes`: the content is written to a temporary sibling and renamed
into place, so a killed process or a full disk never leaves a half-written result, and
an existing result is either kept untouched or replaced as a whole, after the new one is
complete.

Three rules keep a user's own files safe, and every writer shares them through
:func:`check_output_path`:

- ``--overwrite`` replaces only what embedspace wrote: a missing path, an empty folder, or
  an embedspace directory of the kind being written (its ``manifest.json`` says so) that
  holds nothing its manifest does not account for. A folder of other files, a file where
  a directory goes, a symbolic link, ``.`` (or any folder above it), the home folder and
  ``/`` are refused whatever the flags.
- An output never replaces or removes one of the command's inputs (the output is an
  input, or a folder holding one).
- Two processes writing the same output take turns: :func:`output_lock` is an exclusive
  lock (``filelock``) per output path, held from the final checks to the rename, and by
  ``index add`` for its whole read-modify-write. Lock files live in a per-user folder
  under the system's temporary directory, never beside the user's files.

Temporary siblings and half-written exports left by processes that died (``kill -9``, a
power cut) are removed by the next run that writes beside them
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

from embedspace.errors import InputError, OutputExistsError

__all__ = [
    "FILE",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_json",
    "cache_dir",
    "check_output_path",
    "check_replaceable",
    "output_lock",
    "remove_stale_temporaries",
    "sha256_file",
]

log = logging.getLogger("embedspace")

MANIFEST = "manifest.json"
FILE = "file"
"""``kind=`` of outputs that are one file (a plot), not an embedspace directory."""

_KIND_NAMES = {
    "embedspace.embeddingset": "an EmbeddingSet",
    "embedspace.index": "a search index",
    "embedspace.map": "a map directory",
    "embedspace.vae": "a VAE model",
    FILE: "a file",
}


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
# The temporary siblings atomic_directory / atomic_write_bytes make: ".NAME.tmp-PID-8hex".
_OUR_SIBLING = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-[0-9a-f]{8}$")
# Anything of ours that a process marks with its PID, in folders only embedspace writes (the cache).
_ANY_TEMPORARY = re.compile(r"\.(?:tmp|old)-(\d+)(?:-[0-9a-f]{8})?(?:\.[A-Za-z0-9]+)?$")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


# --- what an output may replace ------------------------------------------------------------
def check_output_path(path: str | os.PathLike, *, overwrite: bool, inputs=(), kind: str | None = None) -> Path:
    """Validate an output path before any expensive work starts (and again before the rename).

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
    kind : str, optional
        The format written (``"embedspace.embeddingset"``, ``"embedspace.index"``,
        ``"embedspace.map"``, ``"embedspace.vae"``) or ``"file"`` for a single file.
        ``overwrite`` replaces only a directory of this kind (see :func:`check_replaceable`);
        ``None`` accepts any embedspace directory.

    Returns
    -------
    Path
        The absolute output path.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false, or it exists and is not something
        embedspace may replace.
    InputError
        If ``path`` is or holds one of ``inputs``, is a read-only directory, or its parent
        directory is missing or not writable.
    """
    target = Path(path).expanduser().absolute()
    exists = target.exists() or target.is_symlink()
    if exists and not overwrite:
        raise OutputExistsError(f"output '{path}' already exists (use overwrite=True to replace it)")
    _check_not_an_input(target, path, inputs)
    if exists:
        check_replaceable(target, kind, shown=path)
    if target.is_dir() and not target.is_symlink() and not os.access(target, os.W_OK | os.X_OK):
        # Replacing it would leave its read-only content behind, undeletable, in a hidden sibling.
        raise InputError(f"cannot replace '{path}': it is read-only (make it writable, or write somewhere else)")
    parent = target.parent
    if not parent.is_dir():
        raise InputError(f"cannot write '{path}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write '{path}': folder '{parent}' is not writable")
    return target


def check_replaceable(target: Path, kind: str | None, *, shown=None) -> None:
    """Refuse to replace ``target`` unless embedspace wrote it as a ``kind`` output.

    Replaceable: an empty folder; an image file (PNG, PDF, SVG…) when ``kind`` is ``"file"``
    (plots; a user's text or data file of the same name is refused); a directory whose
    ``manifest.json`` names the format ``kind`` (any ``embedspace.*`` format when ``kind``
    is ``None``) and which holds only what that manifest accounts for (its payload files,
    and the EmbeddingSets an index keeps inside itself). Never replaceable: a symbolic
    link, the current folder or one above it, the home folder, ``/``.

    Raises
    ------
    OutputExistsError
        With a message that says what ``target`` is and why it stays.
    """
    shown = target if shown is None else shown
    wanted = _KIND_NAMES.get(kind, f"an embedspace '{kind}'") if kind else "an embedspace result"
    refuse = f"refusing to replace '{shown}'"
    if target.is_symlink():
        raise OutputExistsError(f"{refuse}: it is a symbolic link (embedspace never replaces a link or what it points to); "
                                "write to another path")
    real = Path(os.path.realpath(target))
    for protected, what in _protected_folders():
        if real == protected or protected.is_relative_to(real):
            raise OutputExistsError(f"{refuse}: it is {what}; write the output to a new folder")
    if not target.is_dir():
        if kind == FILE:
            if _is_image(target):
                return
            raise OutputExistsError(f"{refuse}: it is not an image embedspace could have written (a plot is PNG, "
                                    "PDF or SVG); write the plot to another path")
        raise OutputExistsError(f"{refuse}: it is a file, not {wanted}; write the output somewhere else")
    try:
        entries = [entry.name for entry in os.scandir(target)]
    except OSError as exc:
        raise OutputExistsError(f"{refuse}: cannot look inside it ({exc.strerror})") from None
    if not entries:
        return
    if kind == FILE:
        raise OutputExistsError(f"{refuse}: it is a folder, not a file; write the output somewhere else")
    manifest = _manifest_of(target)
    found = manifest.get("format") if manifest else None
    if not isinstance(found, str) or not found.startswith("embedspace."):
        raise OutputExistsError(
            f"{refuse}: it is not an embedspace result but a folder of other files (it holds {_some(entries)}); "
            f"overwrite=True replaces only {wanted} that embedspace wrote, so write the output to a new folder"
        )
    if kind is not None and found != kind:
        raise OutputExistsError(
            f"{refuse}: it is {_KIND_NAMES.get(found, found)}, not {wanted}; overwrite=True replaces only {wanted}"
        )
    extra = _unaccounted(target, manifest)
    if extra:
        raise OutputExistsError(
            f"{refuse}: besides its own files it holds {_some(extra)}, which embedspace did not write; move them out "
            "first or write the output somewhere else"
        )


_IMAGE_STARTS = (b"\x89PNG\r\n\x1a\n", b"%PDF-", b"<?xml", b"<svg", b"\xff\xd8\xff", b"%!PS")


def _is_image(path: Path) -> bool:
    """Whether a file starts like an image or plot document (what a ``kind="file"`` output replaces)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return head.startswith(_IMAGE_STARTS)


def _some(names: list[str], limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _protected_folders() -> list[tuple[Path, str]]:
    folders = []
    with contextlib.suppress(OSError):
        folders.append((Path(os.path.realpath(os.getcwd())), "the current folder (or holds it)"))
    home = os.path.expanduser("~")
    if home and home != "~":
        folders.append((Path(os.path.realpath(home)), "the home folder"))
    folders.append((Path(os.path.realpath(os.sep)), "the root folder"))
    return folders


def _manifest_of(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _unaccounted(directory: Path, manifest: dict) -> list[str]:
    """Entries below ``directory`` that its manifest does not account for (links always count)."""
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    allowed = {MANIFEST, *(os.path.normpath(str(name)) for name in files)}
    inside = [os.path.normpath(entry["path"]) for entry in manifest.get("sources") or []
              if isinstance(entry, dict) and entry.get("embedded") and isinstance(entry.get("path"), str)]
    kept = allowed | set(inside)  # files, and folders written whole (an index's own copies of its sets)
    parents = {os.path.dirname(name) for name in kept}
    parents |= {p for name in parents for p in _ancestors(name)}

    def accounted(rel: str, is_dir: bool) -> bool:
        if any(rel == p or rel.startswith(p + os.sep) for p in inside):
            return True
        return rel in parents if is_dir else rel in allowed

    extra = []
    for root, dirs, names in os.walk(directory):
        rel_root = os.path.relpath(root, directory)
        for name in list(dirs) + names:
            rel = os.path.normpath(os.path.join(rel_root, name))
            is_link = os.path.islink(os.path.join(root, name))
            if is_link or not accounted(rel, name in dirs):
                extra.append(rel)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_root, d)) not in extra]
    return extra


def _ancestors(name: str) -> list[str]:
    out = []
    while name and name != os.sep:
        out.append(name)
        name = os.path.dirname(name)
    return out


def _check_not_an_input(target: Path, path, inputs) -> None:
    """Refuse an output whose replacement would delete one of the command's inputs."""
    if not (target.exists() or target.is_symlink()):
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


# --- locks ---------------------------------------------------------------------------------
def _lock_file(target: Path) -> Path | None:
    """The lock file of an output path: one per real path, in a per-user folder of the temp dir."""
    try:
        parent = os.path.realpath(target.parent)
        folder = Path(tempfile.gettempdir()) / f"embedspace-locks-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    key = hashlib.sha256(os.fsencode(parent) + b"/" + os.fsencode(target.name)).hexdigest()[:32]
    return folder / f"{key}.lock"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of an output path (waiting for another process that holds it).

    Re-entrant within a thread, exclusive between threads and processes of this user on
    this machine. Where no lock can be taken (no writable temporary folder) the block runs
    unlocked rather than failing.
    """
    from filelock import FileLock, Timeout

    target = Path(path).expanduser().absolute()
    lock_path = _lock_file(target)
    if lock_path is None:
        yield
        return
    lock = FileLock(str(lock_path), is_singleton=True)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another embedspace process that is writing %s", target)
            lock.acquire()
        held = True
    except OSError:
        held = False
    try:
        yield
    finally:
        if held:
            lock.release()


# --- stale temporaries ---------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _is_stale(path: Path, pid: int) -> bool:
    """A temporary is stale when its process is gone, or the PID now belongs to a younger process."""
    if pid == os.getpid():
        return False
    if not _pid_alive(pid):
        return True
    started = _process_start(pid)
    try:
        modified = path.lstat().st_mtime
    except OSError:
        return False
    return started is not None and started > modified + 2.0


def remove_stale_temporaries(folder: str | os.PathLike, *, ours_only_here: bool = False) -> None:
    """Delete temporary siblings and half-written files left in ``folder`` by processes that died.

    Parameters
    ----------
    folder : path-like
    ours_only_here : bool, default=False
        ``folder`` belongs to embedspace (the cache): also remove the ``NAME.tmp-PID``
        files and folders of model exports and checkpoints. Otherwise (a user's folder)
        only the hidden ``.NAME.tmp-PID-xxxxxxxx`` siblings :func:`atomic_directory` makes.
    """
    pattern = _ANY_TEMPORARY if ours_only_here else _OUR_SIBLING
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = pattern.search(entry.name)
        if match is None:
            continue
        path = Path(entry.path)
        if not _is_stale(path, int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()


# --- atomic directories and files ----------------------------------------------------------
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


def _publish(tmp: Path, target: Path, overwrite: bool, kind: str | None) -> None:
    """Move a finished temporary ``tmp`` to ``target``, replacing it as a whole if allowed.

    Called with the output's lock held; what is at ``target`` is checked once more, since
    something else may have put a folder there while the result was being computed.
    """
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"output '{target}' already exists (use overwrite=True to replace it)")
        check_replaceable(target, kind)
        if target.is_dir() and _exchange(tmp, target):
            # tmp now holds the old content, removed only now that the new one is in place
            shutil.rmtree(tmp, ignore_errors=True)
            _fsync_dir(target.parent)
            return
        old = _sibling(target, _OLD_MARK)
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    else:
        try:
            os.rename(tmp, target)
        except OSError as exc:  # something that takes no lock made the path meanwhile
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                raise
            raise OutputExistsError(f"output '{target}' appeared while embedspace was writing it; nothing was "
                                    "replaced (run the command again to decide)") from None
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False, kind: str | None = None,
                     inputs=()) -> Iterator[Path]:
    """Write a directory atomically, holding the output's lock.

    Yields a fresh temporary directory next to ``path``. When the block finishes without
    an exception the temporary directory replaces ``path`` in one rename (an existing
    directory is swapped out whole when ``overwrite`` is true and it may be replaced, see
    :func:`check_replaceable`; the old one is removed only after the swap). On any
    exception the temporary directory is removed and ``path`` is left exactly as it was.

    Parameters
    ----------
    path : path-like
        Final location of the directory.
    overwrite : bool, default=False
        Replace an existing ``path``.
    kind : str, optional
        The format written (see :func:`check_output_path`).
    inputs : iterable, default=()
        What the result is computed from (see :func:`check_output_path`).

    Yields
    ------
    Path
        The temporary directory to fill.
    """
    target = Path(path).expanduser().absolute()
    with output_lock(target):
        target = check_output_path(path, overwrite=overwrite, kind=kind, inputs=inputs)
        remove_stale_temporaries(target.parent)
        tmp = _sibling(target, _TMP_MARK)
        tmp.mkdir()
        try:
            yield tmp
            _publish(tmp, target, overwrite, kind)
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
