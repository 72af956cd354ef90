"""ObjectStorage on a local directory: each key is a file under `root`.

A stored file is never written again: every write makes a new file and renames it into place.
So a reader may read an object's file in place (`local_file`), and a file may be moved into
the store (`adopt_file`) or linked out of it (`take_file`) instead of copied, within one file system
(pipeline/job_files.py uses these when the storage has them: no copy of a big list or result).
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mailvet.adapters.storage.key_check import check_key
from mailvet.domain.ports import ObjectNotFound


class LocalStorage:
    """Limit of the file system: a key cannot also be a folder of other keys (`a` and `a/b`
    at once); storing the second of them raises OSError and leaves the first as it was. The
    pipeline's keys never nest so (tests/contracts/storage.py)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, key: str) -> Path:
        """The file that holds `key` (it may not exist)."""
        return self.root / check_key(key)

    async def put_file(self, key: str, path: Path) -> None:
        target = self.path_of(key)
        await asyncio.to_thread(_write_atomic, target, lambda tmp: shutil.copyfile(path, tmp))

    async def get_file(self, key: str, path: Path) -> None:
        source = self.path_of(key)
        try:
            await asyncio.to_thread(shutil.copyfile, source, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            if source.is_file():  # the destination (or its directory) is what is wrong
                raise
            raise ObjectNotFound(key) from None

    def local_file(self, key: str) -> Path:
        """The file holding `key`, to be read in place and never written (ObjectNotFound
        if there is none). An object stored again meanwhile is a new file: what is open
        keeps reading the old one."""
        path = self.path_of(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    async def adopt_file(self, key: str, path: Path) -> None:
        """put_file that takes `path` itself, renamed into place when it is on the store's
        file system (copied otherwise): `path` is gone afterwards."""
        target = self.path_of(key)
        await asyncio.to_thread(_adopt, Path(path), target)

    async def take_file(self, key: str, path: Path) -> None:
        """get_file for a caller that deletes the object next: `path` becomes another name of
        the object's own file (a hard link; a copy on another file system). `path` must not
        exist (FileExistsError); the object is kept until deleted."""
        source = self.local_file(key)
        await asyncio.to_thread(_take, source, Path(path))

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path_of(key)
        await asyncio.to_thread(_write_atomic, target, lambda tmp: Path(tmp).write_bytes(data))

    async def get_bytes(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(key).read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            # no such file; a folder (`a` when `a/b` exists); a file on the way (`a/b` when `a`
            # is an object)
            raise ObjectNotFound(key) from None

    async def move(self, src: str, dst: str) -> None:
        source, target = self.path_of(src), self.path_of(dst)
        if not source.is_file():
            raise ObjectNotFound(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    async def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix` (`a/b` also matches `a/bc`)."""
        check_key(prefix, prefix=True)
        directory, _, start = prefix.rpartition("/")
        await asyncio.to_thread(_delete_matching, self.root / directory, start)


def _write_atomic(target: Path, write: Callable[[str], object]) -> None:
    """Write through a temporary file in the target's directory, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _adopt(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # not another file system: a real failure
            raise
        _write_atomic(target, lambda tmp: shutil.copyfile(path, tmp))
        path.unlink()


def _take(source: Path, path: Path) -> None:
    try:
        os.link(source, path)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise  # FileExistsError, a missing folder...: as get_file would fail
        shutil.copyfile(source, path)  # another file system, or one without hard links


def _delete_matching(directory: Path, start: str) -> None:
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if not entry.name.startswith(start):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
