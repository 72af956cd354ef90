"""Where a result file goes: a regular file only, written whole or not at all.

`mailvet validate -o PATH` and `mailvet fetch -o PATH` write a result the user names. A
name that is already something other than a regular file (a FIFO, a device node, a
symbolic link, a directory) is refused instead of being replaced or written through, and
so is a place that cannot hold a file (/proc, /sys, a folder without write permission).
The check runs before a job starts (so a long run is not wasted), and again just before the
finished file is renamed into place: the result is written to a temporary file in the
target's folder, then moved over PATH in one rename, which replaces a name and never
follows it. On any failure the temporary file goes and PATH is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


class OutputPathError(Exception):
    """The output cannot be written there; str() is one line for the user."""


def _reason(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or errno.EIO)


def check_output(path: Path) -> None:
    """OutputPathError unless `path` names a regular file or nothing, in a folder that
    exists and takes new files; lstat: a symbolic link is refused, not followed."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # nothing there, or no folder: the folder's check says which
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write the result there ({_reason(exc)})") from None
    else:
        for test, kind in _KINDS:
            if test(info.st_mode):
                raise OutputPathError(
                    f"{path}: is {kind}; the result is written to a regular file only"
                )
    parent = path.parent
    try:
        resolved = parent.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise OutputPathError(f"{parent}: no such directory for the output") from None
    except OSError as exc:
        raise OutputPathError(f"{parent}: cannot write the result there ({_reason(exc)})") from None
    if not resolved.is_dir():
        raise OutputPathError(f"{parent}: no such directory for the output")
    for top in _PSEUDO_FILESYSTEMS:
        if resolved == top or top in resolved.parents:
            raise OutputPathError(f"{path}: {top} is a system folder, not a place for a result")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name[:180]}.{uuid.uuid4().hex[:12]}.mailvet-tmp")


def _create(temp: Path, target: Path) -> None:
    """The temporary file, created exclusively (O_EXCL, never following a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(temp, flags, 0o644))
    except OSError as exc:
        raise OutputPathError(f"{target}: cannot write the result there ({_reason(exc)})") from None


@contextlib.contextmanager
def output_file(path: Path) -> Iterator[Path]:
    """Check `path`, then yield a temporary path in its folder to write the result to
    (it exists, empty; the writer may replace it). On a clean exit the temporary file is
    renamed over `path` after a second check; on any exception it is removed and `path`
    left as it was. OutputPathError when `path` cannot take the result."""
    check_output(path)
    temp = _temporary(path)
    _create(temp, path)
    try:
        yield temp
        check_output(path)  # nothing turned into a link, pipe or folder meanwhile
        try:
            info = os.lstat(temp)
        except OSError as exc:
            raise OutputPathError(f"{path}: the result was not written ({_reason(exc)})") from None
        if not stat.S_ISREG(info.st_mode):
            raise OutputPathError(f"{path}: the result was not written (not a regular file)")
        try:
            os.replace(temp, path)
        except OSError as exc:
            raise OutputPathError(
                f"{path}: cannot write the result there ({_reason(exc)})"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def preflight(path: Path) -> None:
    """Check, before a long job, that `path` will take the result: the checks of
    check_output, and a file really created (and removed) in its folder."""
    check_output(path)
    temp = _temporary(path)
    _create(temp, path)
    with contextlib.suppress(OSError):
        os.unlink(temp)
