"""`mailvet validate` touches only its own jobs, and refuses settings that name shared services."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.db.runs import RunMarker, dead_runs, runs_folder
from mailvet.bootstrap import prepare_schema
from mailvet.cli import app
from mailvet.domain.job import ACTIVE_STATUSES, FileInfo, Job, JobStatus
from mailvet.settings import load_settings

pytestmark = pytest.mark.pipeline


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"MAILVET_DATA_DIR": str(tmp_path / "data")}


def database_of(env: dict[str, str]) -> str:
    return load_settings(env).database


async def add_active_job(url: str, job_id: str) -> None:
    """A job in progress, as another process on the same database (`run all`) leaves it."""
    await prepare_schema(url)
    database = make_database(url)
    try:
        jobs = SqlJobRepository(database)
        await jobs.add(Job(id=job_id, file=FileInfo(filename="theirs.csv")))
        for status in (JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS):
            await jobs.set_status(job_id, status)
    finally:
        await database.dispose()


async def read_jobs(url: str) -> dict[str, Job]:
    database = make_database(url)
    try:
        return {job.id: job for job in await SqlJobRepository(database).list_jobs()}
    finally:
        await database.dispose()


def validate(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    source = tmp_path / "list.csv"
    source.write_text("email\na@example.com\nb@example.org\n")
    result = CliRunner().invoke(
        app,
        ["validate", str(source), "-o", str(tmp_path / "out.csv"), "--checks", "syntax"],
        env=env,
    )
    return result.exit_code, result.output


def test_an_active_job_of_another_process_is_left_alone(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    url = database_of(env)
    asyncio.run(add_active_job(url, "1" * 32))  # e.g. `mailvet run all` on this database
    code, output = validate(tmp_path, env)
    assert code == 0, output
    jobs = asyncio.run(read_jobs(url))
    assert jobs["1" * 32].status is JobStatus.IN_PROGRESS and jobs["1" * 32].error == ""
    [mine] = [job for job in jobs.values() if job.id != "1" * 32]
    assert mine.status is JobStatus.COMPLETED
    assert list(runs_folder(url).iterdir()) == []  # type: ignore[union-attr]  # marker released


def test_a_running_validates_job_is_left_alone(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    url = database_of(env)
    asyncio.run(add_active_job(url, "2" * 32))
    folder = runs_folder(url)
    assert folder is not None
    live = RunMarker(folder, "2" * 32)  # held, as by a `validate` still running
    try:
        code, output = validate(tmp_path, env)
        assert code == 0, output
        assert asyncio.run(read_jobs(url))["2" * 32].status is JobStatus.IN_PROGRESS
        assert (folder / ("2" * 32)).exists()
    finally:
        live.release()


def test_the_job_of_a_dead_validate_run_is_abandoned(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    url = database_of(env)
    asyncio.run(add_active_job(url, "3" * 32))
    folder = runs_folder(url)
    assert folder is not None
    dead = RunMarker(folder, "3" * 32)
    os.close(dead._fd)  # type: ignore[arg-type]  # the process died: its lock is gone, the file stays
    dead._fd = None
    code, output = validate(tmp_path, env)
    assert code == 0, output
    job = asyncio.run(read_jobs(url))["3" * 32]
    assert job.status is JobStatus.ERROR_INTERNAL and "interrupted" in job.error
    assert not (folder / ("3" * 32)).exists()


def test_a_killed_validate_is_abandoned_by_the_next_run_and_nothing_else(tmp_path: Path) -> None:
    """End to end: SIGKILL a `mailvet validate` whose lookups hang, run another."""
    env = env_for(tmp_path)
    url = database_of(env)
    asyncio.run(add_active_job(url, "4" * 32))
    source = tmp_path / "slow.csv"
    source.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(50)))
    hang = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")},
        **env,
        "MAILVET_DNS_SERVERS": "192.0.2.1",  # TEST-NET-1: never answers
        "MAILVET_DNS_TIMEOUT": "60",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "mailvet", "validate", str(source), "--checks", "dns"],
        env=hang,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = runs_folder(url)
    assert folder is not None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ours = [j for j in asyncio.run(read_jobs(url)).values() if j.id != "4" * 32]
            if ours and ours[0].status in ACTIVE_STATUSES:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the first validate never got its job going")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    [killed] = [j.id for j in asyncio.run(read_jobs(url)).values() if j.id != "4" * 32]
    assert (folder / killed).exists()

    code, output = validate(tmp_path, env)
    assert code == 0, output
    jobs = asyncio.run(read_jobs(url))
    assert jobs[killed].status is JobStatus.ERROR_INTERNAL and "interrupted" in jobs[killed].error
    assert jobs["4" * 32].status is JobStatus.IN_PROGRESS  # not a validate's: untouched
    assert list(folder.iterdir()) == []


def test_dead_runs_skips_held_markers(tmp_path: Path) -> None:
    held = RunMarker(tmp_path, "5" * 32)
    gone = RunMarker(tmp_path, "6" * 32)
    os.close(gone._fd)  # type: ignore[arg-type]
    gone._fd = None
    (tmp_path / "not-a-job").write_text("")
    try:
        assert list(dead_runs(tmp_path)) == ["6" * 32]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["5" * 32, "not-a-job"]
    finally:
        held.release()


SHARED = {
    "rabbit": ({"MAILVET_BUS": "rabbit"}, "MAILVET_BUS=rabbit"),
    "postgresql": (
        {"MAILVET_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/cluster"},
        "non-SQLite MAILVET_DATABASE_URL",
    ),
    "s3": ({"MAILVET_STORAGE": "s3"}, "MAILVET_STORAGE=s3"),
}


@pytest.mark.parametrize("case", sorted(SHARED))
def test_settings_naming_shared_services_are_refused(case: str, tmp_path: Path) -> None:
    extra, named = SHARED[case]
    env = {**env_for(tmp_path), **extra}
    code, output = validate(tmp_path, env)
    assert code == 2
    lines = [line for line in output.splitlines() if line.startswith("mailvet: error:")]
    assert len(lines) == 1, output
    assert named in lines[0] and "mailvet submit" in lines[0]
    assert not (tmp_path / "data").exists()  # nothing was built or touched
    assert not (tmp_path / "out.csv").exists()
