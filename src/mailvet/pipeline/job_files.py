"""A job's file for the services that stream it (intake, publisher, resultgen): the layout
intake learnt, kept on the job (StoredLayout), and local copies of stored files."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def local_copy(storage: ObjectStorage, key: str) -> AsyncIterator[Path]:
    """Download `key` to a temporary file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="mailvet-") as folder:
        path = Path(folder) / "file"
        await storage.get_file(key, path)
        yield path
