"""Stored files read in place, moved in and linked out (LocalStorage's LocalFiles and the
pipeline's helpers over them, pipeline/job_files.py), instead of copied."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailvet.adapters.storage.local import LocalStorage
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.ports import LocalFiles, ObjectNotFound
from mailvet.pipeline import object_keys
from mailvet.pipeline.job_files import local_copy, store_file, take_file
from mailvet.pipeline.submit import fetch_result

pytestmark = pytest.mark.unit

SHM = Path("/dev/shm")  # noqa: S108 - a tmpfs: another file system, folders removed after


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than tmp_path (a tmpfs), removed afterwards."""
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    with tempfile.TemporaryDirectory(prefix="mailvet-test-", dir=SHM) as folder:
        yield Path(folder)


def test_only_local_storage_has_local_files(tmp_path: Path) -> None:
    assert isinstance(LocalStorage(tmp_path), LocalFiles)
    assert not isinstance(MemoryStorage(), LocalFiles)


async def test_an_object_is_read_in_place_and_a_reader_keeps_what_it_opened(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    await storage.put_bytes("in/list", b"old")
    path = storage.local_file("in/list")
    assert path == storage.path_of("in/list")
    with path.open("rb") as reading:
        await storage.put_bytes("in/list", b"new")  # a new file renamed into place
        assert reading.read() == b"old"
    assert storage.local_file("in/list").read_bytes() == b"new"
    with pytest.raises(ObjectNotFound):
        storage.local_file("in/missing")


async def test_local_copy_of_local_storage_is_the_object_itself(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    scratch = tmp_path / "scratch"
    await storage.put_bytes("in/list", b"a@b.c\n")
    async with local_copy(storage, "in/list", scratch) as path:
        assert path == storage.path_of("in/list")
        assert path.read_bytes() == b"a@b.c\n"
    assert not scratch.exists()  # nothing downloaded
    assert await storage.get_bytes("in/list") == b"a@b.c\n"  # and nothing removed
    with pytest.raises(ObjectNotFound):
        async with local_copy(storage, "in/missing", scratch):
            pass


async def test_local_copy_of_other_storage_is_a_download_removed_after(tmp_path: Path) -> None:
    storage = MemoryStorage()
    scratch = tmp_path / "scratch"
    await storage.put_bytes("in/list", b"a@b.c\n")
    async with local_copy(storage, "in/list", scratch) as path:
        assert scratch in path.parents
        assert path.read_bytes() == b"a@b.c\n"
    assert list(scratch.iterdir()) == []


async def test_a_stored_file_of_ours_is_moved_in(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    ours = tmp_path / "result.csv"
    ours.write_bytes(b"rows")
    inode = ours.stat().st_ino
    await store_file(storage, "done/result", ours)
    assert not ours.exists()
    assert storage.path_of("done/result").stat().st_ino == inode  # renamed, not copied
    assert await storage.get_bytes("done/result") == b"rows"


async def test_a_file_on_another_file_system_is_copied_in(tmp_path: Path, other_fs: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    ours = other_fs / "result.csv"
    ours.write_bytes(b"rows")
    await storage.adopt_file("done/result", ours)
    assert not ours.exists()
    assert await storage.get_bytes("done/result") == b"rows"
    assert sorted(p.name for p in storage.path_of("done/result").parent.iterdir()) == ["result"]


async def test_other_storage_uploads_a_stored_file(tmp_path: Path) -> None:
    storage = MemoryStorage()
    ours = tmp_path / "result.csv"
    ours.write_bytes(b"rows")
    await store_file(storage, "done/result", ours)
    assert storage.objects == {"done/result": b"rows"}


async def test_a_taken_object_is_linked_out_and_kept_until_deleted(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    await storage.put_bytes("done/result", b"rows")
    out = tmp_path / "out.csv"
    await take_file(storage, "done/result", out)
    assert out.read_bytes() == b"rows"
    assert out.stat().st_ino == storage.path_of("done/result").stat().st_ino
    await storage.delete_prefix("done/")
    assert out.read_bytes() == b"rows"
    with pytest.raises(FileExistsError):
        await storage.put_bytes("done/result", b"again")
        await storage.take_file("done/result", out)  # never over an existing file


async def test_an_object_taken_to_another_file_system_is_copied(
    tmp_path: Path, other_fs: Path
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    await storage.put_bytes("done/result", b"rows")
    out = other_fs / "out.csv"
    await storage.take_file("done/result", out)
    assert out.read_bytes() == b"rows"
    assert await storage.get_bytes("done/result") == b"rows"


class OneJob:
    def __init__(self, job: Job) -> None:
        self.job = job

    async def get(self, job_id: str) -> Job:
        return self.job


async def test_fetch_result_taking_the_result_gives_it_the_outputs_mode(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    job = Job(id="j" * 32, file=FileInfo(filename="a.csv"), status=JobStatus.COMPLETED)
    await storage.put_bytes(object_keys.completed(job.id), b"email\r\na@b.c\r\n")
    await storage.put_bytes(object_keys.summary(job.id), b'{"rows": 1}')
    out = tmp_path / "out.csv"
    out.touch()
    out.chmod(0o640)
    summary = await fetch_result(OneJob(job), storage, job.id, out, take=True)
    assert summary.rows == 1
    assert out.read_bytes() == b"email\r\na@b.c\r\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects", "out.csv"]  # no .part
    # without take, a copy: the stored result is another file
    again = tmp_path / "again.csv"
    await fetch_result(OneJob(job), storage, job.id, again)
    assert again.stat().st_ino != storage.path_of(object_keys.completed(job.id)).stat().st_ino
