from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailvet.adapters.storage.local import LocalStorage
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.ports import ObjectNotFound

pytestmark = pytest.mark.unit

Storage = LocalStorage | MemoryStorage


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "objects")
    return MemoryStorage()


async def test_bytes_round_trip_and_overwrite(storage: Storage) -> None:
    await storage.put_bytes("validation/uploaded/j1", b"first")
    await storage.put_bytes("validation/uploaded/j1", b"second")

    assert await storage.get_bytes("validation/uploaded/j1") == b"second"
    assert await storage.exists("validation/uploaded/j1")
    assert not await storage.exists("validation/uploaded/j2")
    assert not await storage.exists("validation/uploaded")  # a prefix is not an object


async def test_file_round_trip(storage: Storage, tmp_path: Path) -> None:
    source, copy = tmp_path / "in.csv", tmp_path / "out.csv"
    content = b"email\n" + b"someone@example.com\n" * 200_000  # a few MB
    source.write_bytes(content)

    await storage.put_file("validation/uploaded/j1", source)
    await storage.get_file("validation/uploaded/j1", copy)

    assert copy.read_bytes() == content
    assert await storage.get_bytes("validation/uploaded/j1") == content


async def test_move(storage: Storage) -> None:
    await storage.put_bytes("validation/uploaded/j1", b"data")

    await storage.move("validation/uploaded/j1", "validation/in_progress/j1")

    assert not await storage.exists("validation/uploaded/j1")
    assert await storage.get_bytes("validation/in_progress/j1") == b"data"


async def test_missing_key(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.get_bytes("nothing/here")
    with pytest.raises(ObjectNotFound):
        await storage.get_file("nothing/here", tmp_path / "out")
    with pytest.raises(ObjectNotFound):
        await storage.move("nothing/here", "elsewhere")
    assert not (tmp_path / "out").exists()


async def test_delete_prefix(storage: Storage) -> None:
    keys = ["results/j1/a", "results/j1/b", "results/j12/c", "results/j2/d", "other/j1"]
    for key in keys:
        await storage.put_bytes(key, b"x")

    await storage.delete_prefix("results/j1/")
    assert [await storage.exists(k) for k in keys] == [False, False, True, True, True]

    await storage.delete_prefix("results/j1")  # a plain prefix, as on S3: j12 matches
    assert [await storage.exists(k) for k in keys] == [False, False, False, True, True]

    await storage.delete_prefix("no/such/prefix")
    assert await storage.exists("results/j2/d")


BAD_KEYS = ["", "/etc/passwd", "../up", "a/../../b", "a/..", "a//b", "./a", "a/", "a\\b"]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_rejected(storage: Storage, key: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: storage.put_bytes(key, b"x"),
        lambda: storage.get_bytes(key),
        lambda: storage.put_file(key, tmp_path / "f"),
        lambda: storage.get_file(key, tmp_path / "g"),
        lambda: storage.exists(key),
        lambda: storage.move("fine", key),
        lambda: storage.move(key, "fine"),
    ]
    await storage.put_bytes("fine", b"ok")
    for call in calls:
        with pytest.raises(ValueError):
            await call()
    assert await storage.get_bytes("fine") == b"ok"


@pytest.mark.parametrize("prefix", ["", "/", "../", "a/../b", "/abs"])
async def test_bad_prefixes_are_rejected(storage: Storage, prefix: str) -> None:
    with pytest.raises(ValueError):
        await storage.delete_prefix(prefix)


async def test_local_keys_are_files_under_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put_bytes("validation/results/j1", b"done")

    assert storage.path_of("validation/results/j1") == tmp_path / "validation/results/j1"
    assert (tmp_path / "validation/results/j1").read_bytes() == b"done"
    # atomic writes leave no temporary file behind
    assert sorted(p.name for p in (tmp_path / "validation/results").iterdir()) == ["j1"]
    with pytest.raises(ValueError):
        storage.path_of("../escape")


async def test_local_failed_write_keeps_the_old_object(tmp_path: Path) -> None:
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
