"""Which jobs of an embedded SQLite database belong to a `mailvet validate` run, and which
of those runs are gone.

`mailvet validate` runs the whole pipeline in its own process and keeps no queue between
runs: a job it leaves unfinished (the process was killed) can never finish. Each run holds
an exclusive lock (flock) on a marker file named after its job, in a folder beside the
database file, for as long as it lives; the kernel drops the lock when the process dies,
however it dies. A marker that can be locked is therefore a dead run's: its job may be
abandoned. A job without a marker (a `mailvet run all` process on the same database,
another running `validate`) is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from mailvet.adapters.db.sqlite import sqlite_path

_JOB_ID = re.compile(r"[0-9a-f]{32}")


def runs_folder(database_url: str) -> Path | None:
    """The marker folder of a SQLite file database (`<file>.validate-runs/`), else None."""
    path = sqlite_path(database_url)
    if path is None:
        return None
    database = path.resolve()
    return database.with_name(f"{database.name}.validate-runs")


class RunMarker:
    """This process's claim on one job, held from before the job exists until released."""

    def __init__(self, folder: Path, job_id: str) -> None:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / job_id
        # locked under a temporary name, then renamed: another run never sees it unlocked
        temp = folder / f".{job_id}.{os.getpid()}.tmp"
        self._fd: int | None = os.open(temp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        os.replace(temp, self.path)

    def release(self) -> None:
        """The run is over (finished or failed): drop the marker and its lock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Try to take the lock of `path`: True (held until the block ends) if nobody holds it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def dead_runs(folder: Path) -> Iterator[str]:
    """Job ids whose run has ended without releasing its marker; each marker is removed
    once the caller has dealt with its job (the lock is held meanwhile, so two runs
    sweeping at once do not both take the same one)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if not _JOB_ID.fullmatch(path.name):
            if path.name.endswith(".tmp") and _older_than(path, 60.0):  # killed mid-claim
                with _locked(path) as free:
                    if free:
                        path.unlink(missing_ok=True)
            continue
        with _locked(path) as free:
            if not free:
                continue  # a live run holds it
            yield path.name
            path.unlink(missing_ok=True)
