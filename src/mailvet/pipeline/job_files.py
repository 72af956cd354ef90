"""A job's file for the services that stream it (intake, publisher, resultgen): the layout
intake learnt, kept on the job (StoredLayout), and local copies of stored files."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec

from mailvet.domain.ports import ObjectStorage
from mailvet.tabular import FileLayout


class StoredLayout(msgspec.Struct, frozen=True, kw_only=True):
    """What intake learnt about the file, kept on the job for the later services."""

    layout: FileLayout
    chunk_size: int


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
    """Download `key` to a file in a scratch_folder, removed afterwards."""
    with scratch_folder(scratch) as folder:
        path = folder / "file"
        await storage.get_file(key, path)
        yield path
