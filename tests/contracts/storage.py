"""The ObjectStorage contract: what LocalStorage, MemoryStorage and S3Storage all do.

Subclass `StorageContract` in a test module (its name starting with `Test`) and give it a
`storage` fixture; every test here then runs on that adapter:

    class TestMemory(StorageContract):
        @pytest.fixture
        def storage(self) -> ObjectStorage:
            return MemoryStorage()

tests/unit/test_storage.py runs it on the local and memory adapters,
tests/integration/test_s3_storage.py on S3 (moto's server). What only one adapter has (S3's
links and retries, local files under a root) stays in that adapter's module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailvet.domain.ports import ObjectNotFound, ObjectStorage

BAD_KEYS = ["", "/etc/passwd", "../up", "a/../../b", "a/..", "a//b", "./a", "a/", "a\\b", "a\x00b"]
BAD_PREFIXES = ["", "/", "../", "a/../b", "/abs", "a//"]
# keys a URL or a file system could mangle: non-ASCII, spaces, URL and shell metacharacters
ODD_KEYS = [
    "validation/uploaded/jöb-名前-✉",
    "validation/uploaded/with space",
    "validation/uploaded/a+b%20c?d#e&f=g;h",
    "validation/uploaded/'quoted' \"double\" *star* [x] {y} ~z",
    "validation/ünïcödé/😀/k",
]
LARGE = b"email\n" + b"someone@example.com\n" * 600_000  # 12 MB: several parts on S3


class StorageContract:
    """Every ObjectStorage port method and its edge cases. Needs a `storage` fixture."""

    # can `a` and `a/b` both be objects? (not on a file system: LocalStorage sets False)
    nested_keys = True
    # puts at once when a test stores many objects (network round trips overlap on S3; a
    # local disk is fastest one at a time)
    parallel_puts = 1

    @pytest.fixture
    def files(self, tmp_path: Path) -> Path:
        """A folder for the local files the test reads and writes (nothing else in it)."""
        folder = tmp_path / "files"
        folder.mkdir()
        return folder

    # --- bytes -------------------------------------------------------------------------

    async def test_bytes_round_trip_and_overwrite(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("validation/uploaded/j1", b"first")
        await storage.put_bytes("validation/uploaded/j1", b"second")

        got = await storage.get_bytes("validation/uploaded/j1")
        assert got == b"second" and type(got) is bytes
        assert await storage.exists("validation/uploaded/j1")
        assert not await storage.exists("validation/uploaded/j2")

    async def test_a_prefix_is_not_an_object(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("validation/uploaded/j1", b"x")

        assert not await storage.exists("validation/uploaded")
        assert not await storage.exists("validation")
        with pytest.raises(ObjectNotFound):
            await storage.get_bytes("validation/uploaded")

    async def test_empty_object(self, storage: ObjectStorage, files: Path) -> None:
        await storage.put_bytes("empty", b"")

        assert await storage.exists("empty")
        assert await storage.get_bytes("empty") == b""
        await storage.get_file("empty", files / "out")
        assert (files / "out").read_bytes() == b""

    async def test_all_byte_values(self, storage: ObjectStorage) -> None:
        data = bytes(range(256)) * 4 + b"\r\n\x00\xff"
        await storage.put_bytes("binary", data)
        assert await storage.get_bytes("binary") == data

    @pytest.mark.parametrize("key", ODD_KEYS)
    async def test_odd_keys_are_plain_names(self, storage: ObjectStorage, key: str) -> None:
        await storage.put_bytes(key, b"odd")
        await storage.put_bytes(key + "-sibling", b"sibling")

        assert await storage.exists(key)
        assert await storage.get_bytes(key) == b"odd"
        await storage.move(key, key + "-moved")
        assert not await storage.exists(key)
        assert await storage.get_bytes(key + "-moved") == b"odd"
        await storage.delete_prefix(key)  # the prefix matches all three
        assert not await storage.exists(key + "-moved")
        assert not await storage.exists(key + "-sibling")

    async def test_a_key_below_an_object_is_missing(
        self, storage: ObjectStorage, files: Path
    ) -> None:
        await storage.put_bytes("jobs/j1", b"x")

        assert not await storage.exists("jobs/j1/input")
        with pytest.raises(ObjectNotFound):
            await storage.get_bytes("jobs/j1/input")
        with pytest.raises(ObjectNotFound):
            await storage.get_file("jobs/j1/input", files / "out")
        with pytest.raises(ObjectNotFound):
            await storage.move("jobs/j1/input", "elsewhere")
        assert list(files.iterdir()) == []

    async def test_a_key_and_keys_below_it(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("a/b", b"below")
        await storage.put_bytes("c", b"above")
        if self.nested_keys:
            await storage.put_bytes("a", b"above")
            await storage.put_bytes("c/d", b"below")
            assert await storage.get_bytes("a") == b"above"
            assert await storage.get_bytes("c/d") == b"below"
        else:  # refused, and what was there stays
            with pytest.raises(OSError):
                await storage.put_bytes("a", b"above")
            with pytest.raises(OSError):
                await storage.put_bytes("c/d", b"below")
            assert not await storage.exists("a") and not await storage.exists("c/d")
        assert await storage.get_bytes("a/b") == b"below"
        assert await storage.get_bytes("c") == b"above"

    # --- files -------------------------------------------------------------------------

    async def test_large_file_round_trip(self, storage: ObjectStorage, files: Path) -> None:
        source, copy = files / "in.csv", files / "copy.csv"
        source.write_bytes(LARGE)

        await storage.put_file("validation/uploaded/j1", source)
        await storage.get_file("validation/uploaded/j1", copy)

        assert copy.read_bytes() == LARGE
        assert await storage.get_bytes("validation/uploaded/j1") == LARGE
        assert sorted(p.name for p in files.iterdir()) == ["copy.csv", "in.csv"]  # no temp file

    async def test_an_object_is_a_copy_of_the_file(
        self, storage: ObjectStorage, files: Path
    ) -> None:
        source = files / "in"
        source.write_bytes(b"as uploaded")
        await storage.put_file("k", source)

        source.write_bytes(b"changed later")
        source.unlink()

        assert await storage.get_bytes("k") == b"as uploaded"

    async def test_get_file_replaces_an_existing_file(
        self, storage: ObjectStorage, files: Path
    ) -> None:
        target = files / "out"
        target.write_bytes(b"old and longer")
        await storage.put_bytes("k", b"new")

        await storage.get_file("k", target)

        assert target.read_bytes() == b"new"
        assert [p.name for p in files.iterdir()] == ["out"]

    async def test_get_file_into_a_missing_folder(
        self, storage: ObjectStorage, files: Path
    ) -> None:
        await storage.put_bytes("k", b"x")
        with pytest.raises(FileNotFoundError):
            await storage.get_file("k", files / "no" / "such" / "dir")
        with pytest.raises(ObjectNotFound):  # a missing object is reported first
            await storage.get_file("missing", files / "no" / "such" / "dir")
        assert list(files.iterdir()) == []

    async def test_a_missing_source_file_keeps_the_old_object(
        self, storage: ObjectStorage, files: Path
    ) -> None:
        await storage.put_bytes("k", b"old")

        with pytest.raises(FileNotFoundError):
            await storage.put_file("k", files / "missing-source")

        assert await storage.get_bytes("k") == b"old"
        assert not await storage.exists("missing-source")

    # --- move --------------------------------------------------------------------------

    async def test_move(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("validation/uploaded/j1", b"data")

        await storage.move("validation/uploaded/j1", "validation/in-progress/j1/input")

        assert not await storage.exists("validation/uploaded/j1")
        assert await storage.get_bytes("validation/in-progress/j1/input") == b"data"

    async def test_move_onto_itself_changes_nothing(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("k", b"data")

        await storage.move("k", "k")

        assert await storage.get_bytes("k") == b"data"

    async def test_move_overwrites(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("a", b"new")
        await storage.put_bytes("b", b"old")

        await storage.move("a", "b")

        assert await storage.get_bytes("b") == b"new"
        assert not await storage.exists("a")

    async def test_move_of_a_large_object(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("big", LARGE)
        await storage.move("big", "moved/big")
        assert await storage.get_bytes("moved/big") == LARGE
        assert not await storage.exists("big")

    # --- missing keys ------------------------------------------------------------------

    async def test_missing_key(self, storage: ObjectStorage, files: Path) -> None:
        with pytest.raises(ObjectNotFound):
            await storage.get_bytes("nothing/here")
        with pytest.raises(ObjectNotFound):
            await storage.get_file("nothing/here", files / "out")
        with pytest.raises(ObjectNotFound):
            await storage.move("nothing/here", "elsewhere")
        with pytest.raises(ObjectNotFound):
            await storage.move("nothing/here", "nothing/here")
        assert list(files.iterdir()) == []  # no file left by the failed download
        assert not await storage.exists("elsewhere")
        assert not await storage.exists("nothing/here")

    async def test_a_missing_key_names_itself(self, storage: ObjectStorage) -> None:
        with pytest.raises(ObjectNotFound, match="nothing/here"):
            await storage.get_bytes("nothing/here")

    # --- delete_prefix -----------------------------------------------------------------

    async def test_delete_prefix(self, storage: ObjectStorage) -> None:
        keys = ["results/j1/a", "results/j1/b", "results/j12/c", "results/j2/d", "other/j1"]
        for key in keys:
            await storage.put_bytes(key, b"x")

        await storage.delete_prefix("results/j1/")
        assert [await storage.exists(k) for k in keys] == [False, False, True, True, True]

        await storage.delete_prefix("results/j1")  # a plain prefix, as on S3: j12 matches
        assert [await storage.exists(k) for k in keys] == [False, False, False, True, True]

        await storage.delete_prefix("no/such/prefix")  # nothing to delete is fine
        assert await storage.exists("results/j2/d")

    async def test_delete_prefix_reaches_every_depth(self, storage: ObjectStorage) -> None:
        keys = ["jobs/j1/input", "jobs/j1/chunks/00000001", "jobs/j1/chunks/deep/er/x", "jobs/j2"]
        for key in keys:
            await storage.put_bytes(key, b"x")

        await storage.delete_prefix("jobs/j1/")

        assert [await storage.exists(k) for k in keys] == [False, False, False, True]
        await storage.put_bytes("jobs/j1/chunks/00000001", b"again")  # the name is usable again
        assert await storage.get_bytes("jobs/j1/chunks/00000001") == b"again"

    async def test_delete_prefix_of_a_whole_key(self, storage: ObjectStorage) -> None:
        await storage.put_bytes("a/b", b"x")
        await storage.put_bytes("a/bc", b"x")

        await storage.delete_prefix("a/b")

        assert not await storage.exists("a/b") and not await storage.exists("a/bc")

    async def test_delete_prefix_beyond_one_page(self, storage: ObjectStorage) -> None:
        """More than 1,000 objects: S3 lists and deletes them in pages of 1,000."""
        await storage.put_bytes("keep", b"x")
        names = [f"chunks/j1/{i:05d}" for i in range(1_050)]
        semaphore = asyncio.Semaphore(self.parallel_puts)

        async def put(name: str) -> None:
            async with semaphore:
                await storage.put_bytes(name, b"x")

        await asyncio.gather(*(put(name) for name in names))

        await storage.delete_prefix("chunks/")

        assert await storage.exists("keep")
        for name in names[::50] + names[-3:]:
            assert not await storage.exists(name)

    # --- bad keys ----------------------------------------------------------------------

    @pytest.mark.parametrize("key", BAD_KEYS)
    async def test_bad_keys_are_rejected(
        self, storage: ObjectStorage, key: str, files: Path
    ) -> None:
        (files / "f").write_bytes(b"x")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: storage.put_bytes(key, b"x"),
            lambda: storage.get_bytes(key),
            lambda: storage.put_file(key, files / "f"),
            lambda: storage.get_file(key, files / "g"),
            lambda: storage.exists(key),
            lambda: storage.move("fine", key),
            lambda: storage.move(key, "fine"),
        ]
        await storage.put_bytes("fine", b"ok")
        for call in calls:
            with pytest.raises(ValueError):
                await call()
        assert await storage.get_bytes("fine") == b"ok"
        assert sorted(p.name for p in files.iterdir()) == ["f"]

    @pytest.mark.parametrize("prefix", BAD_PREFIXES)
    async def test_bad_prefixes_are_rejected(self, storage: ObjectStorage, prefix: str) -> None:
        await storage.put_bytes("fine", b"ok")
        with pytest.raises(ValueError):
            await storage.delete_prefix(prefix)
        assert await storage.get_bytes("fine") == b"ok"
