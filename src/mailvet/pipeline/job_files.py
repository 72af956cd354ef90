"""A job's file for the services that stream it (intake, publisher, resultgen): the layout
intake learnt, kept on the job (StoredLayout), and local copies of stored files.

A storage whose objects are files (LocalFiles: adapters/storage/local.py) is read in place
and has files moved in and linked out rather than copied: a million-row list is 50 MB in and
150 MB out, and each copy of it cost more CPU than the row checks of a tenth of it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import msgspec

from mailvet.domain.ports import LocalFiles, ObjectStorage
from mailvet.tabular import FileLayout


class StoredLayout(msgspec.Struct, frozen=True, kw_only=True):
    """What intake learnt about the file, kept on the job for the later services."""

    layout: FileLayout
    chunk_size: int
    # when intake accepted the job (UTC): the API's `started_at`; None in a job accepted
    # before intake recorded it
    accepted_at: datetime | None = None


def encode_stored_layout(stored: StoredLayout) -> bytes:
    return msgspec.msgpack.encode(stored)


def decode_stored_layout(data: bytes) -> StoredLayout:
    return msgspec.msgpack.decode(data, type=StoredLayout)


@contextlib.contextmanager
def scratch_folder(scratch: Path) -> Iterator[Path]:
    """A new folder inside `scratch` (Settings.scratch_dir, under the data folder: a job's
    files never go to the system temp folder), removed with what it holds afterwards."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="job-", dir=scratch) as folder:
        yield Path(folder)


@contextlib.asynccontextmanager
async def local_copy(storage: ObjectStorage, key: str, scratch: Path) -> AsyncIterator[Path]:
    """A local file holding `key`, only to be read: the object's own file when the storage
    has LocalFiles, else a download into a scratch_folder, removed afterwards."""
    if isinstance(storage, LocalFiles):
        yield storage.local_file(key)
        return
    with scratch_folder(scratch) as folder:
        path = folder / "file"
        await storage.get_file(key, path)
        yield path


async def store_file(storage: ObjectStorage, key: str, path: Path) -> None:
    """Store a file of our own that is not needed afterwards (moved in when the storage has
    LocalFiles, else uploaded; it may be gone afterwards)."""
    if isinstance(storage, LocalFiles):
        await storage.adopt_file(key, path)
    else:
        await storage.put_file(key, path)


async def take_file(storage: ObjectStorage, key: str, path: Path) -> None:
    """Write the object to a new file `path` for a caller that deletes the object next and
    never writes to `path` before (a hard link when the storage has LocalFiles, else a
    download)."""
    if isinstance(storage, LocalFiles):
        await storage.take_file(key, path)
    else:
        await storage.get_file(key, path)
