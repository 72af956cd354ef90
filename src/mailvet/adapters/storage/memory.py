"""ObjectStorage in a dict, for tests and the all-in-memory mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailvet.adapters.storage.key_check import check_key
from mailvet.domain.ports import ObjectNotFound


class MemoryStorage:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put_file(self, key: str, path: Path) -> None:
        self.objects[check_key(key)] = await asyncio.to_thread(path.read_bytes)

    async def get_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(path.write_bytes, self._get(key))

    async def put_bytes(self, key: str, data: bytes) -> None:
        self.objects[check_key(key)] = bytes(data)

    async def get_bytes(self, key: str) -> bytes:
        return self._get(key)

    async def move(self, src: str, dst: str) -> None:
        data = self._get(src)
        self.objects[check_key(dst)] = data
        if dst != src:
            del self.objects[src]

    async def exists(self, key: str) -> bool:
        return check_key(key) in self.objects

    async def delete_prefix(self, prefix: str) -> None:
        check_key(prefix, prefix=True)
        for key in [k for k in self.objects if k.startswith(prefix)]:
            del self.objects[key]

    def _get(self, key: str) -> bytes:
        try:
            return self.objects[check_key(key)]
        except KeyError:
            raise ObjectNotFound(key) from None
