"""The ObjectStorage contract on the local and in-memory adapters, and what only they have."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.adapters.storage.local import LocalStorage
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.ports import ObjectStorage
from tests.contracts.storage import StorageContract

pytestmark = pytest.mark.unit


class TestLocal(StorageContract):
    nested_keys = False  # a file cannot also be a folder

    @pytest.fixture
    def storage(self, tmp_path: Path) -> ObjectStorage:
        return LocalStorage(tmp_path / "objects")


class TestMemory(StorageContract):
    @pytest.fixture
    def storage(self) -> ObjectStorage:
        return MemoryStorage()


async def test_local_keys_are_files_under_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put_bytes("validation/results/j1", b"done")

    assert storage.path_of("validation/results/j1") == tmp_path / "validation/results/j1"
    assert (tmp_path / "validation/results/j1").read_bytes() == b"done"
    # atomic writes leave no temporary file behind
    assert sorted(p.name for p in (tmp_path / "validation/results").iterdir()) == ["j1"]
    with pytest.raises(ValueError):
        storage.path_of("../escape")


async def test_local_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put_bytes("k", b"old")

    with pytest.raises(FileNotFoundError):
        await storage.put_file("k", tmp_path / "missing-source")

    assert await storage.get_bytes("k") == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


async def test_memory_objects_are_visible() -> None:
    storage = MemoryStorage()
    await storage.put_bytes("a/b", b"1")
    await storage.move("a/b", "c/d")

    assert storage.objects == {"c/d": b"1"}
